//! The bound form of INSERT (with ON CONFLICT and UPSERT), UPDATE and DELETE,
//! with RETURNING: the plan stage of DML.
//!
//! Takes a DML [`Statement`] and the statement's [`Binder`] (tables resolved
//! in the transaction); gives a [`BoundDml`]: the table, the plan that yields
//! the source rows (VALUES or a query for INSERT, a filtered scan for
//! UPDATE/DELETE), the bound column DEFAULTs, SET expressions and CHECK
//! constraints, and its `EXPLAIN` lines. Running it is the executor's
//! ([`crate::exec::dml`]); nothing here reads or writes table data.

use std::sync::Arc;

use sqlparser::ast::{self as ast, AssignmentTarget, Expr, SelectItem, SetExpr, Statement};
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType};

use crate::catalog::{Generated, TableDesc};
use crate::plan::bind::{
    Binder, Scope, ScopeColumn, column_name_of, normalize, push_filter, table_name,
};
use crate::plan::{JoinKind, Rel, Scalar, Scan};

/// A bound INSERT, UPDATE or DELETE.
pub struct BoundDml {
    pub(crate) table: Arc<TableDesc>,
    pub(crate) kind: DmlKind,
    /// (constraint name, predicate over the table row).
    pub(crate) checks: Vec<(String, Scalar)>,
    /// Stored generated columns: (table column position, expression over
    /// the table row), computed in this order after every other value of
    /// a written row is known.
    pub(crate) generated: Vec<(usize, Scalar)>,
    /// RETURNING expressions over the table row (followed by the `FROM` /
    /// `USING` items' columns for UPDATE and DELETE), and their output
    /// columns.
    pub(crate) returning: Option<(Vec<Scalar>, Scope)>,
}

pub(crate) enum DmlKind {
    Insert {
        source: Rel,
        source_types: Vec<SqlType>,
        /// Table column position of each source column.
        targets: Vec<usize>,
        /// Bound DEFAULT of every table column.
        defaults: Vec<Option<Scalar>>,
        upsert: bool,
        on_conflict: Option<OnConflict>,
    },
    /// `source` gives the table's rows, each followed by the columns of the
    /// `FROM` items it joined with (none without `FROM`); `sets` and
    /// `returning` read the whole joined row.
    Update {
        source: Rel,
        sets: Vec<(usize, Scalar)>,
    },
    /// As for `Update`, with the `USING` items.
    Delete { source: Rel },
}

pub(crate) struct OnConflict {
    /// Table column positions of the arbiter index (empty: any unique index).
    pub(crate) arbiter: Vec<usize>,
    /// A partial unique index as the arbiter (`ON CONFLICT (cols) WHERE p`,
    /// where `p` implies the index's predicate); `None`: a full unique
    /// index on the arbiter columns.
    pub(crate) arbiter_index: Option<crate::catalog::IndexId>,
    /// `DO UPDATE SET …` over (existing row ++ excluded row); `None` is DO NOTHING.
    pub(crate) update: Option<(Vec<(usize, Scalar)>, Option<Scalar>)>,
}

/// The columns of `table` as a scope whose rows are the table's rows,
/// qualified by `name`.
pub(crate) fn table_scope(table: &TableDesc, name: &str) -> Scope {
    table
        .columns
        .iter()
        .map(|c| ScopeColumn {
            table: Some(name.to_string()),
            name: c.name.clone(),
            ty: c.ty,
            hidden: c.hidden,
        })
        .collect()
}

fn full_scan(binder: &mut Binder<'_>, table: &Arc<TableDesc>) -> SqlResult<Rel> {
    Ok(Rel::Scan(Scan {
        table: table.clone(),
        index: table.primary_index.id,
        constraint: None,
        reverse: false,
        limit: None,
        covering: true,
        stats: None,
        reads: None,
        project: None,
        index_exprs: binder.index_expressions(table)?,
    }))
}

/// The arbiter of `ON CONFLICT (cols) WHERE p`: `None` when a full unique
/// index on exactly `cols` exists (it arbitrates whatever `p` says), else a
/// partial unique index on `cols` whose predicate `p` implies (each of its
/// conjuncts is one of `p`'s); 42P10 when there is neither.
fn partial_arbiter(
    binder: &mut Binder<'_>,
    table: &Arc<TableDesc>,
    cols: &[usize],
    p: &Expr,
    scope: &Scope,
) -> SqlResult<Option<crate::catalog::IndexId>> {
    let ids: Vec<u32> = cols.iter().map(|&p| table.columns[p].id).collect();
    let on_cols = |i: &&crate::catalog::IndexDesc| {
        i.columns.len() == ids.len() && ids.iter().all(|id| i.columns.contains(id))
    };
    let full = std::iter::once(&table.primary_index)
        .chain(table.indexes.iter().filter(|i| i.unique && !i.is_partial()))
        .any(|i| on_cols(&i));
    if full {
        return Ok(None);
    }
    let bound = binder.bind_expr(p, scope)?;
    let bound = crate::plan::norm::simplify_scalar(binder.coerce_bool(bound, "WHERE")?);
    let mut given = Vec::new();
    crate::plan::bind::conjuncts(bound, &mut given);
    let exprs = binder.index_expressions(table)?;
    let implied = |col: crate::catalog::ColumnId| {
        let Some(pos) = table.column_position(col) else {
            return false;
        };
        let Some((_, predicate)) = exprs.iter().flat_map(|e| e.iter()).find(|(p, _)| *p == pos)
        else {
            return false;
        };
        let mut needed = Vec::new();
        crate::plan::bind::conjuncts(predicate.clone(), &mut needed);
        needed.iter().all(|n| given.contains(n))
    };
    table
        .indexes
        .iter()
        .filter(|i| i.unique)
        .filter(on_cols)
        .find(|i| i.predicate.is_some_and(implied))
        .map(|i| Some(i.id))
        .ok_or_else(|| {
            SqlError::new(
                "42P10",
                "there is no unique or exclusion constraint matching the ON CONFLICT specification",
            )
        })
}

/// Parses a stored SQL expression (DEFAULT, CHECK).
pub fn parse_stored_expr(text: &str) -> SqlResult<Expr> {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::internal(format!("stored expression {text:?} does not parse: {e}")))
}

fn column_position(table: &TableDesc, name: &str) -> SqlResult<usize> {
    table
        .columns
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| {
            SqlError::undefined_column(name).with_detail(format!("of relation \"{}\"", table.name))
        })
}

pub fn bind_dml(binder: &mut Binder<'_>, statement: &Statement) -> SqlResult<BoundDml> {
    binder.binding_dml(|binder| match statement {
        Statement::Insert(insert) => bind_insert(binder, insert),
        Statement::Update(update) => bind_update(binder, update),
        Statement::Delete(delete) => bind_delete(binder, delete),
        other => Err(SqlError::unsupported(format!(
            "not a DML statement: {other}"
        ))),
    })
}

fn bind_checks(
    binder: &mut Binder<'_>,
    table: &TableDesc,
    scope: &Scope,
) -> SqlResult<Vec<(String, Scalar)>> {
    let mut out = Vec::new();
    for check in &table.checks {
        let expr = parse_stored_expr(&check.expr)?;
        let s = binder.bind_expr(&expr, scope)?;
        out.push((check.name.clone(), binder.coerce_bool(s, "CHECK")?));
    }
    Ok(out)
}

/// The stored generated columns' expressions over the table row.
pub(crate) fn bind_generated(
    binder: &mut Binder<'_>,
    table: &TableDesc,
    scope: &Scope,
) -> SqlResult<Vec<(usize, Scalar)>> {
    let mut out = Vec::new();
    for (pos, col) in table.columns.iter().enumerate() {
        let Some(text) = col.generation_expr() else {
            continue;
        };
        let expr = parse_stored_expr(text)?;
        let s = binder.bind_expr(&expr, scope)?;
        out.push((pos, binder.coerce(s, col.ty, "generated column")?));
    }
    Ok(out)
}

/// 428C9 for a value a statement gives a column that makes its own: a
/// stored generated column, or an identity column `GENERATED ALWAYS`
/// (unless the INSERT says `OVERRIDING SYSTEM VALUE`).
fn refuse_given_value(col: &crate::catalog::ColumnDesc, inserting: bool) -> SqlError {
    let message = if inserting {
        format!(
            "cannot insert a non-DEFAULT value into column \"{}\"",
            col.name
        )
    } else {
        format!("column \"{}\" can only be updated to DEFAULT", col.name)
    };
    let err = SqlError::new(codes::GENERATED_ALWAYS, message);
    if col.is_identity() {
        let err = err.with_detail(format!(
            "Column \"{}\" is an identity column defined as GENERATED ALWAYS.",
            col.name
        ));
        if inserting {
            err.with_hint("Use OVERRIDING SYSTEM VALUE to override.")
        } else {
            err
        }
    } else {
        err.with_detail(format!("Column \"{}\" is a generated column.", col.name))
    }
}

/// The `DEFAULT` of a VALUES row: the column's default is used.
fn default_marker() -> Scalar {
    Scalar::Func {
        name: "default".into(),
        args: Vec::new(),
        ty: SqlType::Unknown,
    }
}

fn is_default_marker(s: &Scalar) -> bool {
    matches!(s, Scalar::Func { name, .. } if name == "default")
}

/// Whether a statement may give column `col` a value of its own.
fn takes_given_values(col: &crate::catalog::ColumnDesc, overriding_system: bool) -> bool {
    match &col.generated {
        Some(Generated::Stored(_) | Generated::IndexExpression(_)) => false,
        Some(Generated::IdentityAlways) => overriding_system,
        Some(Generated::IdentityByDefault) | None => true,
    }
}

fn bind_returning(
    binder: &mut Binder<'_>,
    items: &Option<Vec<SelectItem>>,
    scope: &Scope,
) -> SqlResult<Option<(Vec<Scalar>, Scope)>> {
    let Some(items) = items else { return Ok(None) };
    let mut exprs = Vec::new();
    let mut out_scope = Scope::new();
    for item in items {
        match item {
            SelectItem::Wildcard(_) => {
                for (i, c) in scope.iter().enumerate() {
                    if !c.hidden {
                        exprs.push(Scalar::Column { index: i, ty: c.ty });
                        out_scope.push(ScopeColumn {
                            table: None,
                            name: c.name.clone(),
                            ty: c.ty,
                            hidden: false,
                        });
                    }
                }
            }
            SelectItem::UnnamedExpr(e) => {
                let s = binder.bind_expr(e, scope)?;
                out_scope.push(ScopeColumn {
                    table: None,
                    name: column_name_of(e),
                    ty: s.ty(),
                    hidden: false,
                });
                exprs.push(s);
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                let s = binder.bind_expr(expr, scope)?;
                out_scope.push(ScopeColumn {
                    table: None,
                    name: normalize(alias),
                    ty: s.ty(),
                    hidden: false,
                });
                exprs.push(s);
            }
            other => return Err(SqlError::unsupported(format!("RETURNING {other}"))),
        }
    }
    Ok(Some((exprs, out_scope)))
}

/// The value of one assigned column: an expression to bind, or a column of a
/// multi-column assignment's sub-SELECT, already bound.
enum AssignedValue<'e> {
    Expr(&'e Expr),
    Bound(Scalar),
}

fn is_default_keyword(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(id) if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"))
}

/// The (column, value) pairs of `SET` assignments, the multi-column forms
/// `(a, b) = (x, y)`, `(a, b) = ROW(x, y)` and `(a, b) = (SELECT x, y …)`
/// taken apart into one pair per column.
fn expand_assignments<'e>(
    binder: &mut Binder<'_>,
    assignments: &'e [ast::Assignment],
    scope: &Scope,
) -> SqlResult<Vec<(String, AssignedValue<'e>)>> {
    let mut out = Vec::new();
    for a in assignments {
        let names = match &a.target {
            AssignmentTarget::ColumnName(name) => {
                out.push((table_name(name), AssignedValue::Expr(&a.value)));
                continue;
            }
            AssignmentTarget::Tuple(names) => names,
        };
        let mismatch = || SqlError::syntax("number of columns does not match number of values");
        let row_values: Option<Vec<&Expr>> = match &a.value {
            Expr::Tuple(values) => Some(values.iter().collect()),
            Expr::Function(f) if table_name(&f.name) == "row" => match &f.args {
                ast::FunctionArguments::List(list) => list
                    .args
                    .iter()
                    .map(|arg| match arg {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e),
                        _ => None,
                    })
                    .collect(),
                ast::FunctionArguments::None => Some(Vec::new()),
                ast::FunctionArguments::Subquery(_) => None,
            },
            _ => None,
        };
        if let Some(values) = row_values {
            if values.len() != names.len() {
                return Err(mismatch());
            }
            for (n, v) in names.iter().zip(values) {
                out.push((table_name(n), AssignedValue::Expr(v)));
            }
            continue;
        }
        match &a.value {
            Expr::Subquery(q) => {
                let columns = binder.bind_row_subquery(q, scope)?;
                if columns.len() != names.len() {
                    return Err(mismatch());
                }
                for (n, v) in names.iter().zip(columns) {
                    out.push((table_name(n), AssignedValue::Bound(v)));
                }
            }
            _ => {
                return Err(SqlError::syntax(
                    "source for a multiple-column UPDATE item must be a sub-SELECT or ROW() expression",
                ));
            }
        }
    }
    Ok(out)
}

fn bind_assignments(
    binder: &mut Binder<'_>,
    table: &TableDesc,
    assignments: &[ast::Assignment],
    scope: &Scope,
) -> SqlResult<Vec<(usize, Scalar)>> {
    let mut sets = Vec::new();
    for (name, value) in expand_assignments(binder, assignments, scope)? {
        let pos = column_position(table, &name)?;
        if sets.iter().any(|(p, _)| *p == pos) {
            return Err(SqlError::syntax(format!(
                "multiple assignments to same column \"{}\"",
                table.columns[pos].name
            )));
        }
        let col = &table.columns[pos];
        let to_default = matches!(&value, AssignedValue::Expr(e) if is_default_keyword(e));
        if !to_default && !takes_given_values(col, false) {
            return Err(refuse_given_value(col, false));
        }
        if to_default && col.generation_expr().is_some() {
            // Recomputed with the row's other generated columns.
            continue;
        }
        let s = match value {
            AssignedValue::Expr(e) if is_default_keyword(e) => match &col.default {
                Some(text) => {
                    let e = parse_stored_expr(text)?;
                    binder.bind_expr(&e, &Scope::new())?
                }
                None => Scalar::null(),
            },
            AssignedValue::Expr(e) => binder.bind_expr(e, scope)?,
            AssignedValue::Bound(s) => s,
        };
        let from = s.ty();
        let s = binder
            .coerce(s, col.ty, &format!("column \"{}\"", col.name))
            .map_err(|e| {
                if e.code == codes::DATATYPE_MISMATCH {
                    SqlError::datatype_mismatch(format!(
                        "column \"{}\" is of type {} but expression is of type {}",
                        col.name, col.ty, from
                    ))
                } else {
                    e
                }
            })?;
        sets.push((pos, s));
    }
    Ok(sets)
}

fn bind_insert(binder: &mut Binder<'_>, insert: &ast::Insert) -> SqlResult<BoundDml> {
    let ast::TableObject::TableName(name) = &insert.table else {
        return Err(SqlError::unsupported("INSERT into a table function"));
    };
    let table = writable_table(binder, name, "insert into")?;
    let alias = insert
        .table_alias
        .as_ref()
        .map(|a| normalize(&a.alias))
        .unwrap_or_else(|| table.name.clone());
    let scope = table_scope(&table, &alias);
    let targets: Vec<usize> = if insert.columns.is_empty() {
        table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.hidden)
            .map(|(i, _)| i)
            .collect()
    } else {
        let mut t = Vec::new();
        for c in &insert.columns {
            let pos = column_position(&table, &table_name(c))?;
            if t.contains(&pos) {
                return Err(SqlError::new(
                    codes::DUPLICATE_COLUMN,
                    format!(
                        "column \"{}\" specified more than once",
                        table.columns[pos].name
                    ),
                ));
            }
            t.push(pos);
        }
        t
    };
    let overriding_system = matches!(insert.overriding, Some(ast::InsertOverriding::System));
    // OVERRIDING USER VALUE: values given for identity columns are
    // replaced by the sequence's.
    let overriding_user = matches!(insert.overriding, Some(ast::InsertOverriding::User));
    let target_types: Vec<SqlType> = targets.iter().map(|p| table.columns[*p].ty).collect();
    let (source, source_types) = match &insert.source {
        None => (
            Rel::Values {
                rows: vec![vec![]],
                types: vec![],
            },
            Vec::new(),
        ),
        Some(q) => match q.body.as_ref() {
            SetExpr::Values(values)
                if q.order_by.is_none() && q.limit_clause.is_none() && q.with.is_none() =>
            {
                let bound = binder.bind_values(values, Some(&target_types))?;
                let Rel::Values { rows, .. } = bound.rel else {
                    return Err(SqlError::internal("VALUES did not bind to values"));
                };
                if rows.first().is_some_and(|r| r.len() > targets.len()) {
                    return Err(SqlError::syntax(
                        "INSERT has more expressions than target columns",
                    ));
                }
                // With a column list every listed column needs a value.
                if !insert.columns.is_empty()
                    && rows.first().is_some_and(|r| r.len() < targets.len())
                {
                    return Err(SqlError::syntax(
                        "INSERT has more target columns than expressions",
                    ));
                }
                let mut coerced = Vec::with_capacity(rows.len());
                for row in rows {
                    let mut out = Vec::with_capacity(row.len());
                    for (i, s) in row.into_iter().enumerate() {
                        let col = &table.columns[targets[i]];
                        let s = if overriding_user && col.is_identity() {
                            default_marker()
                        } else {
                            s
                        };
                        if is_default_marker(&s) {
                            out.push(s);
                            continue;
                        }
                        if !takes_given_values(col, overriding_system) {
                            return Err(refuse_given_value(col, true));
                        }
                        let from = s.ty();
                        out.push(binder.coerce(s, col.ty, "INSERT").map_err(|e| {
                            if e.code == codes::DATATYPE_MISMATCH {
                                SqlError::datatype_mismatch(format!(
                                    "column \"{}\" is of type {} but expression is of type {}",
                                    col.name, col.ty, from
                                ))
                            } else {
                                e
                            }
                        })?);
                    }
                    coerced.push(out);
                }
                let width = coerced.first().map(|r| r.len()).unwrap_or(0);
                let types = target_types[..width].to_vec();
                (
                    Rel::Values {
                        rows: coerced,
                        types: types.clone(),
                    },
                    types,
                )
            }
            _ => {
                for &pos in &targets {
                    let col = &table.columns[pos];
                    if !takes_given_values(col, overriding_system) {
                        return Err(refuse_given_value(col, true));
                    }
                    if overriding_user && col.is_identity() {
                        return Err(SqlError::unsupported(
                            "OVERRIDING USER VALUE with a query (only with VALUES)",
                        ));
                    }
                }
                let bound = binder.bind_query(q)?;
                let visible: Vec<&ScopeColumn> = bound.scope.iter().filter(|c| !c.hidden).collect();
                if visible.len() > targets.len() {
                    return Err(SqlError::syntax(
                        "INSERT has more expressions than target columns",
                    ));
                }
                if !insert.columns.is_empty() && visible.len() < targets.len() {
                    return Err(SqlError::syntax(
                        "INSERT has more target columns than expressions",
                    ));
                }
                let types = visible.iter().map(|c| c.ty).collect();
                (
                    crate::plan::index::optimize_with(bound.rel, binder.rules()),
                    types,
                )
            }
        },
    };
    let mut defaults = Vec::with_capacity(table.columns.len());
    for col in &table.columns {
        defaults.push(match &col.default {
            Some(text) => {
                let e = parse_stored_expr(text)?;
                let s = binder.bind_expr(&e, &Scope::new())?;
                Some(binder.coerce(s, col.ty, "DEFAULT")?)
            }
            None => None,
        });
    }
    let on_conflict = match &insert.on {
        None => None,
        Some(ast::OnInsert::OnConflict(oc)) => {
            let mut arbiter_index = None;
            let arbiter = match &oc.conflict_target {
                None => Vec::new(),
                Some(ast::ConflictTarget::Columns { columns, predicate }) => {
                    let cols = columns
                        .iter()
                        .map(|c| column_position(&table, &normalize(c)))
                        .collect::<SqlResult<Vec<_>>>()?;
                    if let Some(p) = predicate {
                        arbiter_index = partial_arbiter(binder, &table, &cols, p, &scope)?;
                    }
                    cols
                }
                Some(ast::ConflictTarget::OnConstraint(name)) => {
                    let n = table_name(name);
                    let index = std::iter::once(&table.primary_index)
                        .chain(table.indexes.iter().filter(|i| !i.is_partial()))
                        .find(|i| i.name == n)
                        .ok_or_else(|| {
                            SqlError::new(
                                codes::UNDEFINED_OBJECT,
                                format!("constraint \"{n}\" does not exist"),
                            )
                        })?;
                    index
                        .columns
                        .iter()
                        .filter_map(|id| table.columns.iter().position(|c| c.id == *id))
                        .collect()
                }
            };
            let update = match &oc.action {
                ast::OnConflictAction::DoNothing => None,
                ast::OnConflictAction::DoUpdate(du) => {
                    if arbiter.is_empty() {
                        return Err(SqlError::syntax(
                            "ON CONFLICT DO UPDATE requires inference specification or constraint name",
                        ));
                    }
                    let mut both = scope.clone();
                    both.extend(table_scope(&table, "excluded"));
                    let sets = bind_assignments(binder, &table, &du.assignments, &both)?;
                    let selection = match &du.selection {
                        Some(e) => {
                            let s = binder.bind_expr(e, &both)?;
                            Some(binder.coerce_bool(s, "WHERE")?)
                        }
                        None => None,
                    };
                    Some((sets, selection))
                }
            };
            Some(OnConflict {
                arbiter,
                arbiter_index,
                update,
            })
        }
        Some(_) => return Err(SqlError::unsupported("ON DUPLICATE KEY is not supported")),
    };
    let checks = bind_checks(binder, &table, &scope)?;
    let generated = bind_generated(binder, &table, &scope)?;
    let returning = bind_returning(binder, &insert.returning, &scope)?;
    Ok(BoundDml {
        table,
        kind: DmlKind::Insert {
            source,
            source_types,
            targets,
            defaults,
            upsert: insert.replace_into,
            on_conflict,
        },
        checks,
        generated,
        returning,
    })
}

/// The table an UPDATE or DELETE writes, its scope under `alias`, the scope
/// of its rows joined with the `FROM` / `USING` items (the table's columns
/// first), and the plan of the rows its WHERE clause selects, over that
/// joined scope.
fn bind_target(
    binder: &mut Binder<'_>,
    relation: &ast::TableFactor,
    from: &[ast::TableWithJoins],
    selection: Option<&Expr>,
    action: &str,
) -> SqlResult<(Arc<TableDesc>, Scope, Scope, Rel)> {
    let ast::TableFactor::Table { name, alias, .. } = relation else {
        return Err(SqlError::unsupported(format!(
            "cannot {action} anything but a table"
        )));
    };
    let table = writable_table(binder, name, action)?;
    let alias = alias
        .as_ref()
        .map(|a| normalize(&a.name))
        .unwrap_or_else(|| table.name.clone());
    let scope = table_scope(&table, &alias);
    let mut source = full_scan(binder, &table)?;
    let mut joined = scope.clone();
    if !from.is_empty() {
        let (from_rel, from_scope) = binder.bind_from(from)?;
        if from_scope
            .iter()
            .any(|c| c.table.as_deref() == Some(alias.as_str()))
        {
            return Err(SqlError::new(
                "42712",
                format!("table name \"{alias}\" specified more than once"),
            ));
        }
        joined.extend(from_scope);
        source = Rel::Join {
            kind: JoinKind::Inner,
            left: Box::new(source),
            right: Box::new(from_rel),
            on: None,
            equi: Vec::new(),
        };
    }
    if let Some(selection) = selection {
        let s = binder.bind_expr(selection, &joined)?;
        source = push_filter(source, binder.coerce_bool(s, "WHERE")?);
    }
    let source = crate::plan::index::optimize_with(source, binder.rules());
    Ok((table, scope, joined, source))
}

/// A table that DML may write (views cannot be written: 42809). `action` is
/// "insert into", "update" or "delete from", as PostgreSQL's message says it.
fn writable_table(
    binder: &Binder<'_>,
    name: &ast::ObjectName,
    action: &str,
) -> SqlResult<Arc<TableDesc>> {
    let table = binder.table(name)?;
    if table.view_query.is_some() {
        return Err(SqlError::new(
            codes::WRONG_OBJECT_TYPE,
            format!("cannot {action} view \"{}\"", table.name),
        ));
    }
    Ok(table)
}

fn bind_update(binder: &mut Binder<'_>, update: &ast::Update) -> SqlResult<BoundDml> {
    let from: &[ast::TableWithJoins] = match &update.from {
        None => &[],
        Some(ast::UpdateTableFromKind::AfterSet(from)) => from,
        Some(ast::UpdateTableFromKind::BeforeSet(_)) => {
            return Err(SqlError::syntax("syntax error at or near \"FROM\""));
        }
    };
    if !update.table.joins.is_empty() {
        return Err(SqlError::unsupported("UPDATE of a join is not supported"));
    }
    let (table, scope, joined, source) = bind_target(
        binder,
        &update.table.relation,
        from,
        update.selection.as_ref(),
        "update",
    )?;
    let sets = bind_assignments(binder, &table, &update.assignments, &joined)?;
    let checks = bind_checks(binder, &table, &scope)?;
    let generated = bind_generated(binder, &table, &scope)?;
    let returning = bind_returning(binder, &update.returning, &joined)?;
    Ok(BoundDml {
        table,
        kind: DmlKind::Update { source, sets },
        checks,
        generated,
        returning,
    })
}

fn bind_delete(binder: &mut Binder<'_>, delete: &ast::Delete) -> SqlResult<BoundDml> {
    let tables = match &delete.from {
        ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
    };
    if tables.len() != 1 || !tables[0].joins.is_empty() || !delete.tables.is_empty() {
        return Err(SqlError::unsupported(
            "DELETE from several tables is not supported",
        ));
    }
    let using: &[ast::TableWithJoins] = delete.using.as_deref().unwrap_or_default();
    let (table, _, joined, source) = bind_target(
        binder,
        &tables[0].relation,
        using,
        delete.selection.as_ref(),
        "delete from",
    )?;
    let returning = bind_returning(binder, &delete.returning, &joined)?;
    Ok(BoundDml {
        table,
        kind: DmlKind::Delete { source },
        checks: Vec::new(),
        generated: Vec::new(),
        returning,
    })
}

impl BoundDml {
    pub fn returning_scope(&self) -> Option<Scope> {
        self.returning.as_ref().map(|(_, s)| s.clone())
    }

    pub fn explain(
        &self,
        options: crate::plan::explain::Options,
        measured: Option<&crate::plan::explain::Measurements>,
    ) -> Vec<String> {
        let (verb, source) = match &self.kind {
            DmlKind::Insert { source, upsert, .. } => {
                (if *upsert { "upsert" } else { "insert" }, source)
            }
            DmlKind::Update { source, .. } => ("update", source),
            DmlKind::Delete { source } => ("delete", source),
        };
        let mut out = vec![format!("{verb} {}", self.table.name)];
        out.extend(
            crate::plan::explain::render_with(source, options, measured)
                .into_iter()
                .map(|l| format!("  {l}")),
        );
        out
    }
}
