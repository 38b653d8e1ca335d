//! INSERT (with ON CONFLICT and UPSERT), UPDATE and DELETE, with RETURNING.
//!
//! Binding produces a [`BoundDml`]: the table, the plan that yields the source
//! rows (VALUES or a query for INSERT, a filtered scan for UPDATE/DELETE), the
//! bound column DEFAULTs, SET expressions and CHECK constraints. Executing it
//! computes full table rows (defaults filled, values assigned to the column types,
//! checks evaluated) and hands them to [`crate::rowenc`], which writes the primary
//! and secondary index entries in one KV batch and enforces NOT NULL, uniqueness
//! and foreign keys.

use std::sync::Arc;

use sqlparser::ast::{self as ast, AssignmentTarget, Expr, SelectItem, SetExpr, Statement};
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value, ops};

use super::Executor;
use super::eval::{eval, eval_predicate};
use crate::catalog::TableDesc;
use crate::plan::bind::{
    Binder, Scope, ScopeColumn, column_name_of, normalize, push_filter, table_name,
};
use crate::plan::{Rel, Row, Scalar, Scan};
use crate::rowenc;
use crate::session::QueryOutput;

/// A bound INSERT, UPDATE or DELETE.
pub struct BoundDml {
    table: Arc<TableDesc>,
    kind: DmlKind,
    /// (constraint name, predicate over the table row).
    checks: Vec<(String, Scalar)>,
    /// RETURNING expressions over the table row, and their output columns.
    returning: Option<(Vec<Scalar>, Scope)>,
}

enum DmlKind {
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
    Update {
        source: Rel,
        sets: Vec<(usize, Scalar)>,
    },
    Delete {
        source: Rel,
    },
}

struct OnConflict {
    /// Table column positions of the arbiter index (empty: any unique index).
    arbiter: Vec<usize>,
    /// `DO UPDATE SET …` over (existing row ++ excluded row); `None` is DO NOTHING.
    update: Option<(Vec<(usize, Scalar)>, Option<Scalar>)>,
}

fn table_scope(table: &TableDesc, name: &str) -> Scope {
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

fn full_scan(table: &Arc<TableDesc>) -> Rel {
    Rel::Scan(Scan {
        table: table.clone(),
        index: table.primary_index.id,
        constraint: None,
        reverse: false,
        limit: None,
        covering: true,
        stats: None,
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
    match statement {
        Statement::Insert(insert) => bind_insert(binder, insert),
        Statement::Update(update) => bind_update(binder, update),
        Statement::Delete(delete) => bind_delete(binder, delete),
        other => Err(SqlError::unsupported(format!(
            "not a DML statement: {other}"
        ))),
    }
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

fn bind_assignments(
    binder: &mut Binder<'_>,
    table: &TableDesc,
    assignments: &[ast::Assignment],
    scope: &Scope,
) -> SqlResult<Vec<(usize, Scalar)>> {
    let mut sets = Vec::new();
    for a in assignments {
        let AssignmentTarget::ColumnName(name) = &a.target else {
            return Err(SqlError::unsupported("tuple assignment is not supported"));
        };
        let pos = column_position(table, &table_name(name))?;
        if sets.iter().any(|(p, _)| *p == pos) {
            return Err(SqlError::syntax(format!(
                "multiple assignments to same column \"{}\"",
                table.columns[pos].name
            )));
        }
        let col = &table.columns[pos];
        let s = if matches!(&a.value, Expr::Identifier(id) if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"))
        {
            match &col.default {
                Some(text) => {
                    let e = parse_stored_expr(text)?;
                    binder.bind_expr(&e, &Scope::new())?
                }
                None => Scalar::null(),
            }
        } else {
            binder.bind_expr(&a.value, scope)?
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
                let mut coerced = Vec::with_capacity(rows.len());
                for row in rows {
                    let mut out = Vec::with_capacity(row.len());
                    for (i, s) in row.into_iter().enumerate() {
                        let col = &table.columns[targets[i]];
                        if matches!(&s, Scalar::Func { name, .. } if name == "default") {
                            out.push(s);
                            continue;
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
                let bound = binder.bind_query(q)?;
                let visible: Vec<&ScopeColumn> = bound.scope.iter().filter(|c| !c.hidden).collect();
                if visible.len() > targets.len() {
                    return Err(SqlError::syntax(
                        "INSERT has more expressions than target columns",
                    ));
                }
                let types = visible.iter().map(|c| c.ty).collect();
                (crate::plan::index::optimize(bound.rel), types)
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
            let arbiter = match &oc.conflict_target {
                None => Vec::new(),
                Some(ast::ConflictTarget::Columns { columns, .. }) => columns
                    .iter()
                    .map(|c| column_position(&table, &normalize(c)))
                    .collect::<SqlResult<Vec<_>>>()?,
                Some(ast::ConflictTarget::OnConstraint(name)) => {
                    let n = table_name(name);
                    let index = std::iter::once(&table.primary_index)
                        .chain(table.indexes.iter())
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
            Some(OnConflict { arbiter, update })
        }
        Some(_) => return Err(SqlError::unsupported("ON DUPLICATE KEY is not supported")),
    };
    let checks = bind_checks(binder, &table, &scope)?;
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
        returning,
    })
}

/// The table an UPDATE or DELETE writes, its scope under `alias`, and the scan
/// of the rows its WHERE clause selects.
fn bind_target(
    binder: &mut Binder<'_>,
    relation: &ast::TableFactor,
    selection: Option<&Expr>,
    action: &str,
) -> SqlResult<(Arc<TableDesc>, Scope, Rel)> {
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
    let mut source = full_scan(&table);
    if let Some(selection) = selection {
        let s = binder.bind_expr(selection, &scope)?;
        source = push_filter(source, binder.coerce_bool(s, "WHERE")?);
    }
    Ok((table, scope, crate::plan::index::optimize(source)))
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
    if update.from.is_some() {
        return Err(SqlError::unsupported("UPDATE … FROM is not supported"));
    }
    if !update.table.joins.is_empty() {
        return Err(SqlError::unsupported("UPDATE of a join is not supported"));
    }
    let (table, scope, source) = bind_target(
        binder,
        &update.table.relation,
        update.selection.as_ref(),
        "update",
    )?;
    let sets = bind_assignments(binder, &table, &update.assignments, &scope)?;
    let checks = bind_checks(binder, &table, &scope)?;
    let returning = bind_returning(binder, &update.returning, &scope)?;
    Ok(BoundDml {
        table,
        kind: DmlKind::Update { source, sets },
        checks,
        returning,
    })
}

fn bind_delete(binder: &mut Binder<'_>, delete: &ast::Delete) -> SqlResult<BoundDml> {
    let tables = match &delete.from {
        ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
    };
    if tables.len() != 1 || !tables[0].joins.is_empty() || delete.using.is_some() {
        return Err(SqlError::unsupported(
            "DELETE from several tables is not supported",
        ));
    }
    let (table, scope, source) = bind_target(
        binder,
        &tables[0].relation,
        delete.selection.as_ref(),
        "delete from",
    )?;
    let returning = bind_returning(binder, &delete.returning, &scope)?;
    Ok(BoundDml {
        table,
        kind: DmlKind::Delete { source },
        checks: Vec::new(),
        returning,
    })
}

/// Converts a value to a column's type as an assignment does: numeric
/// conversions with range checks, strings checked against the length limit.
pub fn assign(v: Value, from: SqlType, col_ty: SqlType, col_name: &str) -> SqlResult<Value> {
    if v.is_null() {
        return Ok(v);
    }
    // An array is assigned element by element (a too long VARCHAR(n) element is
    // an error, not truncated as by an explicit cast).
    let v = match (v, col_ty.element()) {
        (Value::Array(items), Some(elem)) => {
            let from_elem = from.element().unwrap_or(SqlType::Unknown);
            return items
                .into_iter()
                .map(|x| assign(x, from_elem, elem, col_name))
                .collect::<SqlResult<Vec<_>>>()
                .map(Value::Array);
        }
        (v, _) => v,
    };
    if let (Value::Text(s), SqlType::Varchar(Some(n)) | SqlType::Char(n)) = (&v, col_ty) {
        let trimmed_len = s.trim_end_matches(' ').chars().count();
        if trimmed_len > n as usize {
            let tname = if matches!(col_ty, SqlType::Char(_)) {
                "character"
            } else {
                "character varying"
            };
            return Err(SqlError::new(
                codes::STRING_DATA_RIGHT_TRUNCATION,
                format!("value too long for type {tname}({n})"),
            )
            .with_detail(format!("column \"{col_name}\"")));
        }
        // cut the excess spaces (VARCHAR) or pad (CHAR)
        return tardigrade_sqltypes::value::coerce_string(s, col_ty).map(Value::Text);
    }
    if from == col_ty
        && !matches!(
            col_ty,
            SqlType::Decimal(Some(_)) | SqlType::Int2 | SqlType::Int4
        )
    {
        return Ok(v);
    }
    ops::cast(
        &v,
        if from == SqlType::Unknown {
            SqlType::Text
        } else {
            from
        },
        col_ty,
    )
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

    fn check_row(&self, row: &Row, exec: &Executor<'_>) -> SqlResult<()> {
        let ctx = exec.ctx(&[], None);
        for (name, check) in &self.checks {
            if matches!(eval(check, row, &ctx)?, Value::Bool(false)) {
                return Err(SqlError::new(
                    codes::CHECK_VIOLATION,
                    format!(
                        "new row for relation \"{}\" violates check constraint \"{name}\"",
                        self.table.name
                    ),
                ));
            }
        }
        Ok(())
    }

    pub async fn execute(&self, exec: &mut Executor<'_>) -> SqlResult<QueryOutput> {
        let (affected, rows) = match &self.kind {
            DmlKind::Insert { .. } => self.execute_insert(exec).await?,
            DmlKind::Update { source, sets } => {
                let old_rows = exec.run_locking(source).await?;
                let exprs: Vec<&Scalar> = sets.iter().map(|(_, s)| s).collect();
                let needs_async = exprs.iter().any(|e| e.needs_async());
                let mut pairs = Vec::with_capacity(old_rows.len());
                for old in old_rows {
                    let values = if needs_async {
                        Some(exec.eval_row(&exprs, &old, &[]).await?)
                    } else {
                        None
                    };
                    let ctx = exec.ctx(&[], values.as_ref());
                    let mut new = old.clone();
                    for (pos, s) in sets {
                        let col = &self.table.columns[*pos];
                        new[*pos] = assign(eval(s, &old, &ctx)?, s.ty(), col.ty, &col.name)?;
                    }
                    self.check_row(&new, exec)?;
                    pairs.push((old, new));
                }
                rowenc::update_rows(exec.txn, &exec.node.catalog, &self.table, &pairs).await?;
                exec.forget_scans();
                (pairs.len(), pairs.into_iter().map(|(_, n)| n).collect())
            }
            DmlKind::Delete { source } => {
                let rows = exec.run_locking(source).await?;
                rowenc::delete_rows(exec.txn, &exec.node.catalog, &self.table, &rows).await?;
                exec.forget_scans();
                (rows.len(), rows)
            }
        };
        exec.node
            .stats
            .note_changes(&exec.node.db, &self.table, affected as u64);
        let verb = match &self.kind {
            DmlKind::Insert { .. } => "INSERT 0",
            DmlKind::Update { .. } => "UPDATE",
            DmlKind::Delete { .. } => "DELETE",
        };
        match &self.returning {
            None => Ok(QueryOutput::command(format!("{verb} {affected}"))),
            Some((exprs, scope)) => {
                let ctx = exec.ctx(&[], None);
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(
                        exprs
                            .iter()
                            .map(|e| eval(e, row, &ctx))
                            .collect::<SqlResult<Row>>()?,
                    );
                }
                Ok(super::rows_output(scope, out, |_| {
                    format!("{verb} {affected}")
                }))
            }
        }
    }

    async fn execute_insert(&self, exec: &mut Executor<'_>) -> SqlResult<(usize, Vec<Row>)> {
        let DmlKind::Insert {
            source,
            source_types,
            targets,
            defaults,
            upsert,
            on_conflict,
        } = &self.kind
        else {
            return Err(SqlError::internal("not an insert"));
        };
        // VALUES rows are evaluated here so that DEFAULT entries stay "not given".
        let source_rows: Vec<Vec<Option<Value>>> = match source {
            Rel::Values {
                rows: value_rows, ..
            } => {
                let mut out = Vec::with_capacity(value_rows.len());
                for r in value_rows {
                    let exprs: Vec<&Scalar> = r.iter().collect();
                    let values = if exprs.iter().any(|e| e.needs_async()) {
                        Some(exec.eval_row(&exprs, &[], &[]).await?)
                    } else {
                        None
                    };
                    let ctx = exec.ctx(&[], values.as_ref());
                    let mut row = Vec::with_capacity(r.len());
                    for e in r {
                        if matches!(e, Scalar::Func { name, .. } if name == "default") {
                            row.push(None);
                        } else {
                            row.push(Some(eval(e, &[], &ctx)?));
                        }
                    }
                    out.push(row);
                }
                out
            }
            other => exec
                .run(other, &[])
                .await?
                .into_iter()
                .map(|r| r.into_iter().map(Some).collect())
                .collect(),
        };
        let default_exprs: Vec<&Scalar> = defaults.iter().flatten().collect();
        let defaults_async = default_exprs.iter().any(|e| e.needs_async());
        let mut rows = Vec::with_capacity(source_rows.len());
        for src in source_rows {
            let values = if defaults_async {
                Some(exec.eval_row(&default_exprs, &[], &[]).await?)
            } else {
                None
            };
            let ctx = exec.ctx(&[], values.as_ref());
            let mut row: Row = vec![Value::Null; self.table.columns.len()];
            let mut given = vec![false; row.len()];
            for (i, v) in src.into_iter().enumerate() {
                let Some(&pos) = targets.get(i) else { break };
                let Some(v) = v else { continue };
                given[pos] = true;
                let col = &self.table.columns[pos];
                row[pos] = assign(
                    v,
                    source_types.get(i).copied().unwrap_or(SqlType::Unknown),
                    col.ty,
                    &col.name,
                )?;
            }
            for (pos, d) in defaults.iter().enumerate() {
                if !given[pos]
                    && let Some(d) = d
                {
                    row[pos] = eval(d, &[], &ctx)?;
                }
            }
            self.check_row(&row, exec)?;
            rows.push(row);
        }
        match on_conflict {
            None => {
                rowenc::insert_rows(exec.txn, &exec.node.catalog, &self.table, &rows, *upsert)
                    .await?;
                exec.forget_scans();
                Ok((rows.len(), rows))
            }
            Some(oc) => self.insert_on_conflict(exec, rows, oc).await,
        }
    }

    /// INSERT … ON CONFLICT: rows whose arbiter key exists are skipped or turned
    /// into updates of the existing row.
    async fn insert_on_conflict(
        &self,
        exec: &mut Executor<'_>,
        rows: Vec<Row>,
        oc: &OnConflict,
    ) -> SqlResult<(usize, Vec<Row>)> {
        let table = &self.table;
        let arbiters: Vec<Vec<usize>> = if oc.arbiter.is_empty() {
            std::iter::once(&table.primary_index)
                .chain(table.indexes.iter().filter(|i| i.unique))
                .map(|i| {
                    i.columns
                        .iter()
                        .filter_map(|id| table.columns.iter().position(|c| c.id == *id))
                        .collect()
                })
                .collect()
        } else {
            vec![oc.arbiter.clone()]
        };
        let mut affected = 0;
        let mut out = Vec::new();
        let mut inserted_keys: Vec<Vec<Value>> = Vec::new();
        for row in rows {
            let mut existing: Option<Row> = None;
            for cols in &arbiters {
                if let Some(found) = self.find_by_columns(exec, cols, &row).await? {
                    existing = Some(found);
                    break;
                }
            }
            // Two rows of this statement with the same key.
            let key: Vec<Value> = arbiters
                .first()
                .map(|c| c.iter().map(|p| row[*p].clone()).collect())
                .unwrap_or_default();
            if existing.is_none() && inserted_keys.contains(&key) && oc.update.is_some() {
                return Err(SqlError::new(
                    codes::CARDINALITY_VIOLATION,
                    "ON CONFLICT DO UPDATE command cannot affect row a second time",
                ));
            }
            match (existing, &oc.update) {
                (None, _) => {
                    rowenc::insert_rows(
                        exec.txn,
                        &exec.node.catalog,
                        table,
                        std::slice::from_ref(&row),
                        false,
                    )
                    .await?;
                    exec.forget_scans();
                    inserted_keys.push(key);
                    affected += 1;
                    out.push(row);
                }
                (Some(_), None) => {}
                (Some(old), Some((sets, selection))) => {
                    let mut both = old.clone();
                    both.extend(row.iter().cloned());
                    let ctx = exec.ctx(&[], None);
                    if let Some(sel) = selection
                        && !eval_predicate(sel, &both, &ctx)?
                    {
                        continue;
                    }
                    let mut new = old.clone();
                    for (pos, s) in sets {
                        let col = &table.columns[*pos];
                        new[*pos] = assign(eval(s, &both, &ctx)?, s.ty(), col.ty, &col.name)?;
                    }
                    self.check_row(&new, exec)?;
                    rowenc::update_rows(exec.txn, &exec.node.catalog, table, &[(old, new.clone())])
                        .await?;
                    exec.forget_scans();
                    affected += 1;
                    out.push(new);
                }
            }
        }
        Ok((affected, out))
    }

    /// The existing row whose `cols` equal the row's (through an index on exactly
    /// those columns when there is one, else by scanning).
    async fn find_by_columns(
        &self,
        exec: &mut Executor<'_>,
        cols: &[usize],
        row: &Row,
    ) -> SqlResult<Option<Row>> {
        let table = &self.table;
        let values: Vec<Value> = cols.iter().map(|p| row[*p].clone()).collect();
        if values.iter().any(|v| v.is_null()) {
            return Ok(None);
        }
        let ids: Vec<u32> = cols.iter().map(|p| table.columns[*p].id).collect();
        let index = std::iter::once(&table.primary_index)
            .chain(table.indexes.iter())
            .find(|i| i.columns.len() == ids.len() && ids.iter().all(|id| i.columns.contains(id)));
        let Some(index) = index else {
            return Err(SqlError::new(
                "42P10",
                "there is no unique or exclusion constraint matching the ON CONFLICT specification",
            ));
        };
        let ordered: Vec<Value> = index
            .columns
            .iter()
            .filter_map(|id| table.columns.iter().position(|c| c.id == *id))
            .map(|p| row[p].clone())
            .collect();
        let prefix = rowenc::index_key_prefix(table, index.id, &ordered)?;
        let end = tardigrade_encoding::keys::prefix_end(&prefix);
        let mut scanner =
            rowenc::RowScanner::new(table.clone(), index.id, vec![(prefix, end)], false);
        let found = scanner
            .next_batch(exec.txn, 1)
            .await?
            .and_then(|b| b.into_iter().next());
        match found {
            None => Ok(None),
            Some(r) if index.id == table.primary_index.id => Ok(Some(r)),
            Some(r) => {
                let pk: Vec<Value> = table
                    .primary_index
                    .columns
                    .iter()
                    .filter_map(|id| table.columns.iter().position(|c| c.id == *id))
                    .map(|p| r[p].clone())
                    .collect();
                Ok(rowenc::get_rows_by_pk(exec.txn, table, &[pk])
                    .await?
                    .into_iter()
                    .next()
                    .flatten())
            }
        }
    }
}
