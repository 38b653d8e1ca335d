//! The binder: resolves names, checks types and builds the [`Rel`] tree.
//!
//! Binding is synchronous: the tables a statement names are looked up first
//! ([`collect_tables`], through the statement's transaction so the catalog read is
//! serializable with DDL), then the binder walks the AST with that map. Scopes are
//! lists of visible columns; a subquery sees the scopes of the queries around it
//! and references to them become [`Scalar::Outer`], which marks the subquery
//! correlated.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use sqlparser::ast::{
    self as ast, BinaryOperator, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, OrderByKind, Query,
    Select, SelectItem, SetExpr, SetOperator, SetQuantifier, Statement, TableFactor, UnaryOperator,
};
use tardigrade_kv::Txn;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::ops::{self, BinOp, UnOp};
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value, agg};

use super::{AggCall, JoinKind, Rel, Scalar, Scan, SetOpKind, SortKey, Subquery, SubqueryKind};
use crate::catalog::TableDesc;
use crate::node::{Column, SqlNode};

mod window;
use window::WindowBan;

/// Deepest expression tree the binder accepts (54001 beyond): binding,
/// folding and evaluation recurse on the tree, and a statement must not be able
/// to exhaust a worker thread's stack.
pub const MAX_EXPR_DEPTH: usize = 128;

/// A column visible to expressions: where it comes from and what it is called.
#[derive(Clone, Debug)]
pub struct ScopeColumn {
    pub table: Option<String>,
    pub name: String,
    pub ty: SqlType,
    /// Not expanded by `*` (the implicit `rowid`).
    pub hidden: bool,
}

pub type Scope = Vec<ScopeColumn>;

/// Tables a statement names, by normalized name.
pub type TableMap = HashMap<String, Arc<TableDesc>>;

/// A bound query: its plan and its output columns.
pub struct BoundQuery {
    pub rel: Rel,
    pub scope: Scope,
}

/// Binds one statement.
pub struct Binder<'a> {
    tables: &'a TableMap,
    /// Parameter types, extended as `$n` are seen and refined by inference.
    pub params: Vec<SqlType>,
    /// Enclosing scopes, innermost last.
    outer: Vec<Scope>,
    /// For each subquery being bound: does it reference an enclosing scope?
    correlated: Vec<bool>,
    /// Common table expressions in scope, innermost last.
    ctes: Vec<HashMap<String, Arc<(Rel, Scope)>>>,
    /// The aggregates of the query block being bound, when aggregates are allowed.
    aggs: Option<Vec<AggCall>>,
    /// The set-returning functions of the select list being bound (the only
    /// place they are allowed outside FROM).
    srfs: Option<Vec<super::SrfCall>>,
    /// The window function calls of the query block being bound, where they
    /// are allowed (its select list and ORDER BY); else why they are not.
    windows: Option<Vec<window::WindowCall>>,
    window_ban: WindowBan,
    /// The `WINDOW` clause of the query block being bound.
    named_windows: Vec<ast::NamedWindowDefinition>,
    next_subquery: usize,
    /// Statistics of the statement's tables, attached to their scans.
    stats: crate::stats::StatsMap,
    /// The optimizer rules the plans bound here (DML sources) run with.
    rules: super::rules::Rules,
    /// The data-modifying CTEs of the statement, in order, each with the id
    /// of the [`Rel::WorkTable`] its RETURNING rows are read as
    /// ([`Binder::take_modifying_ctes`]).
    modifying: Vec<(usize, super::dml::BoundDml)>,
    /// How many queries are being bound, one inside the other (1: the
    /// statement's own).
    query_depth: usize,
}

pub use crate::parse::normalize;

/// The parts of an object name, normalized.
pub fn object_name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => normalize(i),
            ObjectNamePart::Function(f) => normalize(&f.name),
        })
        .collect()
}

/// `unnest`'s arguments, which are all positional.
fn unnest_args(args: &[FunctionArg]) -> SqlResult<Vec<Expr>> {
    args.iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e.clone()),
            _ => Err(SqlError::syntax("unnest takes positional arguments")),
        })
        .collect()
}

/// The table part of a possibly qualified name.
pub fn table_name(name: &ObjectName) -> String {
    object_name_parts(name).pop().unwrap_or_default()
}

/// Looks up every table and view a statement names (through `txn`), following
/// views into their queries. Names that are not tables (CTEs) are skipped; the
/// binder reports unknown ones.
pub async fn collect_tables(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    statement: &Statement,
) -> SqlResult<TableMap> {
    let mut names = Vec::new();
    let _ = sqlparser::ast::visit_relations(statement, |name| {
        names.push(name.clone());
        ControlFlow::<()>::Continue(())
    });
    // `'t'::regclass` names a table too.
    let _ = sqlparser::ast::visit_expressions(statement, |e| {
        if let Some(name) = regclass_literal(e)
            && let Some(parts) = crate::vtable::split_relation_name(name)
        {
            names.push(ObjectName::from(
                parts
                    .into_iter()
                    .map(|p| ast::Ident::with_quote('"', p))
                    .collect::<Vec<_>>(),
            ));
        }
        ControlFlow::<()>::Continue(())
    });
    let mut tables = TableMap::new();
    let mut pending: Vec<ObjectName> = names;
    let mut seen = 0;
    // Built at the first system catalog the statement reads.
    let mut snapshot: Option<crate::vtable::Snapshot> = None;
    while let Some(name) = pending.pop() {
        seen += 1;
        if seen > 1000 {
            return Err(SqlError::new(
                codes::STATEMENT_TOO_COMPLEX,
                "too many relations",
            ));
        }
        let parts = object_name_parts(&name);
        let Some(table) = parts.last() else { continue };
        if tables.contains_key(table) {
            continue;
        }
        let schema = if parts.len() >= 2 {
            Some(parts[parts.len() - 2].as_str())
        } else {
            None
        };
        let schema = match schema {
            Some("public") | None => None,
            Some(other) => Some(other),
        };
        if let Some(virtual_table) = crate::vtable::lookup(schema, table) {
            let user_table = match schema {
                None => {
                    node.catalog
                        .resolve_table(txn, database, None, table)
                        .await?
                }
                Some(_) => None,
            };
            if user_table.is_none() {
                let s = match &mut snapshot {
                    Some(s) => s,
                    None => snapshot.insert(crate::vtable::Snapshot {
                        database: database.to_string(),
                        databases: node.catalog.list_databases(txn).await?,
                        tables: node.catalog.list_tables(txn, database).await?,
                    }),
                };
                let desc = crate::vtable::descriptor(virtual_table, s)?;
                tables.insert(table.clone(), Arc::new(desc));
                if !tables.contains_key(crate::vtable::DEFINITIONS) {
                    tables.insert(
                        crate::vtable::DEFINITIONS.to_string(),
                        Arc::new(crate::vtable::definitions(s)),
                    );
                }
                continue;
            }
        }
        if let Some(desc) = node
            .catalog
            .resolve_table(txn, database, schema, table)
            .await?
        {
            if let Some(view) = &desc.view_query {
                for statement in crate::parse::parse_statements(view)? {
                    let _ = sqlparser::ast::visit_relations(&statement, |name| {
                        pending.push(name.clone());
                        ControlFlow::<()>::Continue(())
                    });
                }
            }
            tables.insert(table.clone(), desc);
        }
    }
    Ok(tables)
}

/// The parameter types and result columns of a statement, for Describe.
pub async fn describe(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    statement: &Statement,
    param_types: &[SqlType],
) -> SqlResult<(Vec<SqlType>, Option<Vec<Column>>)> {
    let tables = collect_tables(node, txn, database, statement).await?;
    let mut binder = Binder::new(&tables, param_types);
    let columns = match statement {
        Statement::Query(q) => match binder.bind_query_dml(q)? {
            Some(dml) => dml.returning_scope(),
            None => Some(binder.bind_query(q)?.scope),
        },
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
            let dml = super::dml::bind_dml(&mut binder, statement)?;
            dml.returning_scope()
        }
        Statement::Explain { .. } => {
            return Ok((
                binder.finish_params(),
                Some(vec![Column {
                    name: "info".into(),
                    ty: SqlType::Text,
                }]),
            ));
        }
        Statement::ShowVariable { variable } => {
            return Ok((
                binder.finish_params(),
                Some(
                    crate::settings::show_column_names(variable, database)
                        .into_iter()
                        .map(|name| Column {
                            name,
                            ty: SqlType::Text,
                        })
                        .collect(),
                ),
            ));
        }
        _ => None,
    };
    let columns = columns.map(|scope| {
        scope
            .into_iter()
            .filter(|c| !c.hidden)
            .map(|c| Column {
                name: c.name,
                ty: output_type(c.ty),
            })
            .collect()
    });
    Ok((binder.finish_params(), columns))
}

/// Result columns of unknown type (a bare NULL or string literal) are sent as text.
pub fn output_type(ty: SqlType) -> SqlType {
    if ty == SqlType::Unknown {
        SqlType::Text
    } else {
        ty
    }
}

impl<'a> Binder<'a> {
    pub fn new(tables: &'a TableMap, param_types: &[SqlType]) -> Binder<'a> {
        Binder {
            tables,
            params: param_types.to_vec(),
            outer: Vec::new(),
            correlated: Vec::new(),
            ctes: Vec::new(),
            aggs: None,
            srfs: None,
            windows: None,
            window_ban: WindowBan::Here,
            named_windows: Vec::new(),
            next_subquery: 0,
            modifying: Vec::new(),
            query_depth: 0,
            stats: crate::stats::StatsMap::new(),
            rules: super::rules::Rules::all(),
        }
    }

    /// Attaches these table statistics to the scans the binder builds.
    pub fn with_stats(mut self, stats: crate::stats::StatsMap) -> Binder<'a> {
        self.stats = stats;
        self
    }

    /// Plans the DML statements bound here with only `rules` (tests).
    pub fn with_rules(mut self, rules: super::rules::Rules) -> Binder<'a> {
        self.rules = rules;
        self
    }

    /// The rules DML source plans are optimized with.
    pub fn rules(&self) -> super::rules::Rules {
        self.rules
    }

    /// Parameter types after inference; unresolved ones are text.
    pub fn finish_params(&self) -> Vec<SqlType> {
        self.params.iter().map(|t| output_type(*t)).collect()
    }

    pub fn table(&self, name: &ObjectName) -> SqlResult<Arc<TableDesc>> {
        let n = table_name(name);
        self.tables
            .get(&n)
            .cloned()
            .ok_or_else(|| SqlError::undefined_table(&n))
    }

    // ----- queries -----

    pub fn bind_query(&mut self, query: &Query) -> SqlResult<BoundQuery> {
        self.query_depth += 1;
        let bound = crate::stack::grow(|| self.bind_query_node(query));
        self.query_depth -= 1;
        bound
    }

    /// `WITH … INSERT / UPDATE / DELETE`: the statement bound with its CTEs
    /// in scope; `None` when `query` is a plain query.
    pub fn bind_query_dml(&mut self, query: &Query) -> SqlResult<Option<super::dml::BoundDml>> {
        let (SetExpr::Insert(statement) | SetExpr::Update(statement) | SetExpr::Delete(statement)) =
            query.body.as_ref()
        else {
            return Ok(None);
        };
        self.query_depth += 1;
        if let Some(with) = &query.with {
            self.ctes.push(HashMap::new());
            self.bind_ctes(with)?;
        }
        let dml = super::dml::bind_dml(self, statement);
        if query.with.is_some() {
            self.ctes.pop();
        }
        self.query_depth -= 1;
        dml.map(Some)
    }

    /// The data-modifying CTEs bound so far (see `modifying`): the executor
    /// runs each once, in order, before the statement, and keeps its
    /// RETURNING rows as the work table of the id.
    pub fn take_modifying_ctes(&mut self) -> Vec<(usize, super::dml::BoundDml)> {
        std::mem::take(&mut self.modifying)
    }

    fn bind_query_node(&mut self, query: &Query) -> SqlResult<BoundQuery> {
        let mut pushed_ctes = false;
        if let Some(with) = &query.with {
            self.ctes.push(HashMap::new());
            pushed_ctes = true;
            self.bind_ctes(with)?;
        }
        let result = self.bind_query_body(query);
        if pushed_ctes {
            self.ctes.pop();
        }
        result
    }

    /// Binds the CTEs of `with` into the innermost CTE frame.
    fn bind_ctes(&mut self, with: &ast::With) -> SqlResult<()> {
        for cte in &with.cte_tables {
            let name = normalize(&cte.alias.name);
            if let SetExpr::Merge(_) = cte.query.body.as_ref() {
                return Err(SqlError::unsupported("MERGE in WITH is not supported"));
            }
            if let SetExpr::Insert(statement)
            | SetExpr::Update(statement)
            | SetExpr::Delete(statement) = cte.query.body.as_ref()
            {
                self.bind_modifying_cte(cte, &name, statement)?;
                continue;
            }
            if with.recursive
                && let Some(bound) = self.bind_recursive_cte(cte, &name)?
            {
                if let Some(frame) = self.ctes.last_mut() {
                    frame.insert(name, Arc::new((bound.rel, bound.scope)));
                }
                continue;
            }
            let bound = self.bind_query(&cte.query)?;
            let mut scope = bound.scope;
            for (i, c) in cte.alias.columns.iter().enumerate() {
                if let Some(col) = scope.get_mut(i) {
                    col.name = normalize(&c.name);
                }
            }
            for col in &mut scope {
                col.table = Some(name.clone());
            }
            if let Some(frame) = self.ctes.last_mut() {
                frame.insert(name, Arc::new((bound.rel, scope)));
            }
        }
        Ok(())
    }

    /// A data-modifying CTE (`x AS (INSERT … RETURNING …)`): bound here,
    /// run once by the executor before the statement (even when nothing
    /// reads it); its references read its RETURNING rows as a
    /// [`Rel::WorkTable`].
    // TODO(issue 13): the statement reads the tables after the CTEs wrote
    // them (in its transaction), where PostgreSQL's statement sees the
    // snapshot from before them: `WITH d AS (DELETE FROM t RETURNING *)
    // SELECT count(*) FROM t` counts the rows left here. A CTE without
    // RETURNING is not in scope (42P01 where PostgreSQL reports 42P10 when
    // it is read).
    fn bind_modifying_cte(
        &mut self,
        cte: &ast::Cte,
        name: &str,
        statement: &Statement,
    ) -> SqlResult<()> {
        if self.query_depth > 1 {
            return Err(SqlError::unsupported(
                "WITH clause containing a data-modifying statement must be at the top level",
            ));
        }
        let dml = super::dml::bind_dml(self, statement)?;
        let id = self.next_subquery;
        self.next_subquery += 1;
        let returning = dml.returning_scope();
        self.modifying.push((id, dml));
        let Some(returning) = returning else {
            return Ok(());
        };
        let mut scope: Scope = returning.into_iter().filter(|c| !c.hidden).collect();
        for (i, c) in cte.alias.columns.iter().enumerate() {
            if let Some(col) = scope.get_mut(i) {
                col.name = normalize(&c.name);
            }
        }
        for col in &mut scope {
            col.table = Some(name.to_string());
        }
        let types = scope.iter().map(|c| c.ty).collect();
        if let Some(frame) = self.ctes.last_mut() {
            frame.insert(
                name.to_string(),
                Arc::new((Rel::WorkTable { id, types }, scope)),
            );
        }
        Ok(())
    }

    /// A CTE of `WITH RECURSIVE` whose query is `base UNION [ALL] step`
    /// with `step` reading the CTE itself: `None` when it is not of that
    /// shape (then it binds as a plain CTE). Its columns take the base's
    /// types (untyped ones as text), as in PostgreSQL.
    fn bind_recursive_cte(&mut self, cte: &ast::Cte, name: &str) -> SqlResult<Option<BoundQuery>> {
        let SetExpr::SetOperation {
            op: SetOperator::Union,
            set_quantifier,
            left,
            right,
        } = cte.query.body.as_ref()
        else {
            return Ok(None);
        };
        let mentions = |e: &SetExpr| {
            let mut found = false;
            let _ = sqlparser::ast::visit_relations(e, |n| {
                found |= table_name(n) == name;
                ControlFlow::<()>::Continue(())
            });
            found
        };
        if mentions(left) {
            return Err(SqlError::new(
                codes::INVALID_RECURSION,
                format!(
                    "recursive reference to query \"{name}\" must not appear within its non-recursive term"
                ),
            ));
        }
        if !mentions(right) {
            return Ok(None);
        }
        if cte.query.order_by.is_some() || cte.query.limit_clause.is_some() {
            return Err(SqlError::unsupported(
                "ORDER BY or LIMIT in a recursive query is not supported",
            ));
        }
        let base = self.bind_set_expr(left)?;
        let types: Vec<SqlType> = base
            .scope
            .iter()
            .filter(|c| !c.hidden)
            .map(|c| {
                if c.ty == SqlType::Unknown {
                    SqlType::Text
                } else {
                    c.ty
                }
            })
            .collect();
        let mut scope: Scope = base
            .scope
            .iter()
            .filter(|c| !c.hidden)
            .zip(&types)
            .map(|(c, ty)| ScopeColumn {
                table: Some(name.to_string()),
                name: c.name.clone(),
                ty: *ty,
                hidden: false,
            })
            .collect();
        for (i, c) in cte.alias.columns.iter().enumerate() {
            if let Some(col) = scope.get_mut(i) {
                col.name = normalize(&c.name);
            }
        }
        let id = self.next_subquery;
        self.next_subquery += 1;
        if let Some(frame) = self.ctes.last_mut() {
            frame.insert(
                name.to_string(),
                Arc::new((
                    Rel::WorkTable {
                        id,
                        types: types.clone(),
                    },
                    scope.clone(),
                )),
            );
        }
        let step = self.bind_set_expr(right)?;
        let step_width = step.scope.iter().filter(|c| !c.hidden).count();
        if step_width != types.len() {
            return Err(SqlError::syntax(
                "each UNION query must have the same number of columns",
            ));
        }
        let rel = Rel::RecursiveUnion {
            id,
            all: matches!(set_quantifier, SetQuantifier::All),
            base: Box::new(project_visible_as(base.rel, &base.scope, &types)),
            step: Box::new(project_visible_as(step.rel, &step.scope, &types)),
        };
        Ok(Some(BoundQuery { rel, scope }))
    }

    fn bind_query_body(&mut self, query: &Query) -> SqlResult<BoundQuery> {
        let order_by: &[ast::OrderByExpr] = match &query.order_by {
            Some(ob) => match &ob.kind {
                OrderByKind::Expressions(e) => e,
                OrderByKind::All(_) => {
                    return Err(SqlError::unsupported("ORDER BY ALL is not supported"));
                }
            },
            None => &[],
        };
        let (limit, offset) = match &query.limit_clause {
            None => (None, None),
            Some(ast::LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if !limit_by.is_empty() {
                    return Err(SqlError::unsupported("LIMIT BY is not supported"));
                }
                (limit.clone(), offset.as_ref().map(|o| o.value.clone()))
            }
            Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => {
                (Some(limit.clone()), Some(offset.clone()))
            }
        };
        let with_ties = query.fetch.as_ref().is_some_and(|f| f.with_ties);
        if with_ties && order_by.is_empty() {
            return Err(SqlError::syntax(
                "WITH TIES cannot be specified without ORDER BY clause",
            ));
        }
        let limit = match &query.fetch {
            // Not PostgreSQL syntax.
            Some(fetch) if fetch.percent => {
                return Err(SqlError::syntax("syntax error at or near \"PERCENT\""));
            }
            // `FETCH FIRST ROW ONLY`: one row.
            Some(fetch) => Some(
                fetch
                    .quantity
                    .clone()
                    .unwrap_or_else(|| Expr::value(ast::Value::Number("1".into(), false))),
            ),
            None => limit,
        };
        let mut bound = match query.body.as_ref() {
            SetExpr::Select(select) => self.bind_select(select, order_by)?,
            body => {
                let mut bound = self.bind_set_expr(body)?;
                if !order_by.is_empty() {
                    let mut keys = Vec::new();
                    for ob in order_by {
                        let expr =
                            self.bind_output_ref(&ob.expr, &bound.scope)?
                                .ok_or_else(|| {
                                    SqlError::unsupported(
                                        "ORDER BY on a set operation must name an output column",
                                    )
                                })?;
                        keys.push(sort_key(expr, &ob.options));
                    }
                    bound.rel = Rel::Sort {
                        input: Box::new(bound.rel),
                        keys,
                    };
                }
                bound
            }
        };
        if limit.is_some() || offset.is_some() {
            let scope = Scope::new();
            let limit = match limit {
                Some(Expr::Value(v)) if matches!(v.value, ast::Value::Null) => None,
                Some(e) => Some(self.bind_int_expr(&e, &scope)?),
                None => None,
            };
            let offset = match offset {
                Some(e) => Some(self.bind_int_expr(&e, &scope)?),
                None => None,
            };
            if with_ties {
                let Some(limit) = limit else {
                    return Err(SqlError::new(
                        "2201W",
                        "row count cannot be null in FETCH FIRST ... WITH TIES clause",
                    ));
                };
                bound.rel = self.fetch_with_ties(bound.rel, limit, offset)?;
                return Ok(bound);
            }
            bound.rel = Rel::Limit {
                input: Box::new(bound.rel),
                limit,
                offset,
            };
        }
        Ok(bound)
    }

    /// `OFFSET m FETCH FIRST n ROWS WITH TIES` over a sorted query (`Sort`,
    /// under the projection that drops extra sort columns): the rows past
    /// the first `m` whose rank in the ORDER BY is at most `m + n` (the
    /// first `n` and the peers of the last of them), as a window over the
    /// sort's input. A `Limit` with no limit above checks that neither
    /// count is negative (2201W / 2201X), as PostgreSQL does.
    fn fetch_with_ties(
        &mut self,
        rel: Rel,
        limit: Scalar,
        offset: Option<Scalar>,
    ) -> SqlResult<Rel> {
        if matches!(&limit, Scalar::Literal { value, .. } if value.is_null()) {
            return Err(SqlError::new(
                "2201W",
                "row count cannot be null in FETCH FIRST ... WITH TIES clause",
            ));
        }
        let (trim, sorted) = match rel {
            Rel::Project { input, exprs } if matches!(*input, Rel::Sort { .. }) => {
                (Some(exprs), *input)
            }
            sorted @ Rel::Sort { .. } => (None, sorted),
            _ => {
                // TODO(issue 13): WITH TIES over DISTINCT ON.
                return Err(SqlError::unsupported(
                    "FETCH FIRST … WITH TIES is not supported in this query",
                ));
            }
        };
        let Rel::Sort { input, keys } = sorted else {
            return Err(SqlError::internal("WITH TIES: no sort"));
        };
        let width = input.width();
        let types = super::join_order::output_types(&input);
        let ranking = |name: &str| super::WindowFunc {
            name: name.to_string(),
            args: Vec::new(),
            arg_types: Vec::new(),
            is_agg: false,
            filter: None,
            frame: super::WindowFrame::default_frame(),
            ty: SqlType::Int8,
        };
        let windowed = Rel::Window {
            input,
            partition: Vec::new(),
            order: keys.clone(),
            funcs: vec![ranking("rank"), ranking("row_number")],
        };
        let rank = Scalar::Column {
            index: width,
            ty: SqlType::Int8,
        };
        let row_number = Scalar::Column {
            index: width + 1,
            ty: SqlType::Int8,
        };
        let last = match &offset {
            Some(o) => self.binary(BinOp::Add, limit.clone(), o.clone())?,
            None => limit.clone(),
        };
        let mut predicate = self.binary(BinOp::LtEq, rank, last)?;
        if let Some(o) = &offset {
            let past = self.binary(BinOp::Gt, row_number, o.clone())?;
            predicate = self.binary(BinOp::And, predicate, past)?;
        }
        let filtered = Rel::Sort {
            input: Box::new(Rel::Filter {
                input: Box::new(windowed),
                predicate,
            }),
            keys,
        };
        let exprs = trim.unwrap_or_else(|| {
            types
                .iter()
                .enumerate()
                .map(|(index, ty)| Scalar::Column { index, ty: *ty })
                .collect()
        });
        let negative_only = |n: Scalar| -> SqlResult<Scalar> {
            let zero = Scalar::literal(Value::Int(0), SqlType::Int8);
            Ok(fold(Scalar::Case {
                operand: None,
                whens: vec![(
                    Scalar::Binary {
                        op: BinOp::Lt,
                        left: Box::new(n.clone()),
                        right: Box::new(zero),
                        ty: SqlType::Bool,
                    },
                    n,
                )],
                otherwise: None,
                ty: SqlType::Int8,
            }))
        };
        Ok(Rel::Limit {
            input: Box::new(Rel::Project {
                input: Box::new(filtered),
                exprs,
            }),
            limit: Some(negative_only(limit)?),
            offset: offset.map(negative_only).transpose()?,
        })
    }

    fn bind_int_expr(&mut self, e: &Expr, scope: &Scope) -> SqlResult<Scalar> {
        let s = self.bind_expr(e, scope)?;
        Ok(fold(self.coerce(s, SqlType::Int8, "LIMIT")?))
    }

    fn bind_set_expr(&mut self, body: &SetExpr) -> SqlResult<BoundQuery> {
        match body {
            SetExpr::Select(select) => self.bind_select(select, &[]),
            SetExpr::Query(q) => self.bind_query(q),
            SetExpr::Values(values) => self.bind_values(values, None),
            SetExpr::SetOperation {
                op, set_quantifier, ..
            } => self.bind_set_chain(body, *op, *set_quantifier),
            _ => Err(SqlError::unsupported(format!("unsupported query: {body}"))),
        }
    }

    /// A chain of one set operation with one quantifier: the group of
    /// `body`'s operations of that kind that are directly nested (however the
    /// parser or the rebalancing in `parse::nesting` shaped it), read as the
    /// left-to-right chain of its branches, as the parser wrote it:
    /// `b1 op b2 op … op bn`. Column types are resolved pairwise from the left,
    /// as PostgreSQL does. The plan is a balanced tree of binary operations
    /// (`UNION` and `INTERSECT` are associative; `b1 EXCEPT b2 EXCEPT …` is
    /// `b1 EXCEPT (b2 UNION ALL …)`), so thousands of branches nest only a
    /// few levels deep.
    fn bind_set_chain(
        &mut self,
        body: &SetExpr,
        op: SetOperator,
        quantifier: SetQuantifier,
    ) -> SqlResult<BoundQuery> {
        let kind = match op {
            SetOperator::Union => SetOpKind::Union,
            SetOperator::Intersect => SetOpKind::Intersect,
            SetOperator::Except | SetOperator::Minus => SetOpKind::Except,
        };
        let name = match kind {
            SetOpKind::Union => "UNION",
            SetOpKind::Intersect => "INTERSECT",
            SetOpKind::Except => "EXCEPT",
        };
        // The branches in order, without recursion.
        let mut branches: Vec<&SetExpr> = Vec::new();
        let mut stack = vec![body];
        while let Some(node) = stack.pop() {
            match node {
                SetExpr::SetOperation {
                    left,
                    op: o,
                    set_quantifier: q,
                    right,
                } if *o == op && *q == quantifier => {
                    stack.push(right);
                    stack.push(left);
                }
                branch => branches.push(branch),
            }
        }
        let mut bound = Vec::with_capacity(branches.len());
        let mut types: Vec<SqlType> = Vec::new();
        for (i, branch) in branches.into_iter().enumerate() {
            let b = self.bind_set_expr(branch)?;
            let visible: Vec<SqlType> =
                b.scope.iter().filter(|c| !c.hidden).map(|c| c.ty).collect();
            if i == 0 {
                types = visible;
            } else {
                if visible.len() != types.len() {
                    return Err(SqlError::syntax(format!(
                        "each {name} query must have the same number of columns"
                    )));
                }
                for (l, r) in types.iter_mut().zip(&visible) {
                    let ty = ops::common_type(&[*l, *r]).map_err(|_| {
                        SqlError::datatype_mismatch(format!(
                            "{name} types {l} and {r} cannot be matched"
                        ))
                    })?;
                    *l = if ty == SqlType::Unknown {
                        SqlType::Text
                    } else {
                        ty
                    };
                }
            }
            bound.push(b);
        }
        let scope: Scope = match bound.first() {
            Some(first) => first
                .scope
                .iter()
                .filter(|c| !c.hidden)
                .zip(&types)
                .map(|(c, ty)| ScopeColumn {
                    table: None,
                    name: c.name.clone(),
                    ty: *ty,
                    hidden: false,
                })
                .collect(),
            None => return Err(SqlError::internal("empty set operation")),
        };
        let mut rels: Vec<Rel> = bound
            .into_iter()
            .map(|b| project_visible_as(b.rel, &b.scope, &types))
            .collect();
        let all = matches!(quantifier, SetQuantifier::All);
        let rel = if kind == SetOpKind::Except {
            let first = rels.remove(0);
            let rest = balanced_set_op(SetOpKind::Union, true, rels);
            Rel::SetOp {
                op: kind,
                all,
                left: Box::new(first),
                right: Box::new(rest),
            }
        } else {
            balanced_set_op(kind, all, rels)
        };
        Ok(BoundQuery { rel, scope })
    }

    /// VALUES rows; `target` gives the column types when they feed an INSERT.
    pub fn bind_values(
        &mut self,
        values: &ast::Values,
        target: Option<&[SqlType]>,
    ) -> SqlResult<BoundQuery> {
        let scope = Scope::new();
        let width = values.rows.first().map(|r| r.content.len()).unwrap_or(0);
        let mut rows = Vec::with_capacity(values.rows.len());
        for row in &values.rows {
            if row.content.len() != width {
                return Err(SqlError::syntax("VALUES lists must all be the same length"));
            }
            let mut out = Vec::with_capacity(width);
            for (i, e) in row.content.iter().enumerate() {
                // DEFAULT is allowed only where VALUES feeds an INSERT column.
                if target.is_some_and(|t| i < t.len())
                    && matches!(e, Expr::Identifier(id) if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"))
                {
                    out.push(Scalar::Func {
                        name: "default".into(),
                        args: vec![],
                        ty: SqlType::Unknown,
                    });
                    continue;
                }
                out.push(self.bind_expr(e, &scope)?);
            }
            rows.push(out);
        }
        let mut types = Vec::with_capacity(width);
        for col in 0..width {
            let ty = match target.and_then(|t| t.get(col)) {
                Some(t) => *t,
                None => {
                    let col_types: Vec<SqlType> =
                        rows.iter().map(|r: &Vec<Scalar>| r[col].ty()).collect();
                    let t = ops::common_type(&col_types).map_err(|e| {
                        SqlError::datatype_mismatch(format!("VALUES {}", e.message))
                    })?;
                    if t == SqlType::Unknown {
                        SqlType::Text
                    } else {
                        t
                    }
                }
            };
            types.push(ty);
        }
        if target.is_none() {
            for row in &mut rows {
                for (col, ty) in types.iter().enumerate() {
                    let s = std::mem::replace(&mut row[col], Scalar::null());
                    row[col] = self.coerce(s, *ty, "VALUES")?;
                }
            }
        }
        let scope = types
            .iter()
            .enumerate()
            .map(|(i, ty)| ScopeColumn {
                table: None,
                name: format!("column{}", i + 1),
                ty: *ty,
                hidden: false,
            })
            .collect();
        Ok(BoundQuery {
            rel: Rel::Values { rows, types },
            scope,
        })
    }

    fn bind_select(
        &mut self,
        select: &Select,
        order_by: &[ast::OrderByExpr],
    ) -> SqlResult<BoundQuery> {
        // The block's own window context: none until its select list.
        let saved_windows = self.windows.take();
        let saved_ban = std::mem::replace(&mut self.window_ban, WindowBan::Here);
        let saved_named = std::mem::replace(&mut self.named_windows, select.named_window.clone());
        let result = self.bind_select_block(select, order_by);
        self.windows = saved_windows;
        self.window_ban = saved_ban;
        self.named_windows = saved_named;
        result
    }

    fn bind_select_block(
        &mut self,
        select: &Select,
        order_by: &[ast::OrderByExpr],
    ) -> SqlResult<BoundQuery> {
        if select.into.is_some() {
            return Err(SqlError::unsupported("SELECT INTO is not supported"));
        }
        // FROM
        let (mut rel, scope) = self.bind_from(&select.from)?;
        // WHERE
        if let Some(selection) = &select.selection {
            let saved = self.aggs.take();
            self.window_ban = WindowBan::In("WHERE");
            let predicate = self.bind_expr(selection, &scope);
            self.window_ban = WindowBan::Here;
            self.aggs = saved;
            let predicate = self.coerce_bool(predicate?, "WHERE")?;
            rel = push_filter(rel, predicate);
        }

        // Select list, with aggregates and window functions collected.
        self.windows = Some(Vec::new());
        let saved_aggs = self.aggs.replace(Vec::new());
        let result = self.bind_select_list(select, order_by, rel, &scope);
        self.aggs = saved_aggs;
        result
    }

    fn bind_select_list(
        &mut self,
        select: &Select,
        order_by: &[ast::OrderByExpr],
        rel: Rel,
        scope: &Scope,
    ) -> SqlResult<BoundQuery> {
        let mut items: Vec<(Scalar, String)> = Vec::new();
        let saved_srfs = self.srfs.replace(Vec::new());
        let bound_items = self.bind_select_items(select, scope, &mut items);
        let srfs = std::mem::replace(&mut self.srfs, saved_srfs).unwrap_or_default();
        bound_items?;
        self.finish_select_list(select, order_by, rel, scope, items, srfs)
    }

    fn bind_select_items(
        &mut self,
        select: &Select,
        scope: &Scope,
        items: &mut Vec<(Scalar, String)>,
    ) -> SqlResult<()> {
        for item in &select.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    let s = self.bind_expr(e, scope)?;
                    items.push((s, column_name_of(e)));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let s = self.bind_expr(expr, scope)?;
                    items.push((s, normalize(alias)));
                }
                SelectItem::Wildcard(_) => {
                    if scope.is_empty() {
                        return Err(SqlError::syntax(
                            "SELECT * with no tables specified is not valid",
                        ));
                    }
                    for (i, c) in scope.iter().enumerate() {
                        if !c.hidden {
                            items.push((Scalar::Column { index: i, ty: c.ty }, c.name.clone()));
                        }
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let qualifier = match kind {
                        ast::SelectItemQualifiedWildcardKind::ObjectName(n) => table_name(n),
                        ast::SelectItemQualifiedWildcardKind::Expr(e) => {
                            e.to_string().to_lowercase()
                        }
                    };
                    let mut any = false;
                    for (i, c) in scope.iter().enumerate() {
                        if !c.hidden && c.table.as_deref() == Some(qualifier.as_str()) {
                            items.push((Scalar::Column { index: i, ty: c.ty }, c.name.clone()));
                            any = true;
                        }
                    }
                    if !any {
                        return Err(SqlError::new(
                            codes::UNDEFINED_TABLE,
                            format!("missing FROM-clause entry for table \"{qualifier}\""),
                        ));
                    }
                }
                SelectItem::ExprWithAliases { .. } => {
                    return Err(SqlError::unsupported("multiple aliases"));
                }
            }
        }
        Ok(())
    }

    fn finish_select_list(
        &mut self,
        select: &Select,
        order_by: &[ast::OrderByExpr],
        rel: Rel,
        scope: &Scope,
        mut items: Vec<(Scalar, String)>,
        mut srfs: Vec<super::SrfCall>,
    ) -> SqlResult<BoundQuery> {
        // GROUP BY
        let mut group: Vec<Scalar> = Vec::new();
        match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    return Err(SqlError::unsupported(
                        "GROUP BY modifiers are not supported",
                    ));
                }
                for e in exprs {
                    let saved = self.aggs.take();
                    let bound = match self.select_item_ref(e, &items, scope)? {
                        Some(s) => Ok(s),
                        None => self.bind_expr(e, scope),
                    };
                    self.aggs = saved;
                    let bound = bound?;
                    if contains_agg(&bound) {
                        return Err(SqlError::new(
                            codes::GROUPING_ERROR,
                            "aggregate functions are not allowed in GROUP BY",
                        ));
                    }
                    if window::contains_window(&bound) {
                        return Err(window::ban_error(WindowBan::In("GROUP BY")));
                    }
                    group.push(bound);
                }
            }
            GroupByExpr::All(_) => {
                return Err(SqlError::unsupported("GROUP BY ALL is not supported"));
            }
        }

        let dependent = self.functionally_dependent(&group, scope);

        let having = match &select.having {
            Some(h) => {
                let s = self.bind_expr(h, scope)?;
                if window::contains_window(&s) {
                    return Err(window::ban_error(WindowBan::In("HAVING")));
                }
                Some(self.coerce_bool(s, "HAVING")?)
            }
            None => None,
        };

        // ORDER BY: output column references, or expressions over the input.
        let mut sort_exprs: Vec<(SortTarget, &ast::OrderByOptions)> = Vec::new();
        for ob in order_by {
            let target = match self.output_ref_index(&ob.expr, &items, scope)? {
                Some(i) => SortTarget::Output(i),
                None => SortTarget::Expr(self.bind_expr(&ob.expr, scope)?),
            };
            sort_exprs.push((target, &ob.options));
        }

        let aggs = self.aggs.take().unwrap_or_default();
        self.aggs = Some(Vec::new());
        let mut windows = self.windows.take().unwrap_or_default();
        let aggregating = !aggs.is_empty() || !group.is_empty() || having.is_some();
        let distinct = matches!(select.distinct, Some(ast::Distinct::Distinct));
        // DISTINCT ON (exprs): output column references or expressions over
        // the input, as ORDER BY items are.
        let mut distinct_on: Option<Vec<SortTarget>> = None;
        if let Some(ast::Distinct::On(on)) = &select.distinct {
            let mut targets = Vec::with_capacity(on.len());
            for e in on {
                targets.push(match self.output_ref_index(e, &items, scope)? {
                    Some(i) => SortTarget::Output(i),
                    None => SortTarget::Expr(self.bind_expr(e, scope)?),
                });
            }
            distinct_on = Some(targets);
        }

        let mut rel = rel;
        let mut having = having;
        if aggregating {
            // Columns the GROUP BY's primary keys determine, that the query
            // reads: group keys too.
            if !dependent.is_empty() {
                let mut used: Vec<(usize, SqlType)> = Vec::new();
                for (s, _) in &items {
                    column_refs(s, &mut used);
                }
                if let Some(h) = &having {
                    column_refs(h, &mut used);
                }
                for (t, _) in &sort_exprs {
                    if let SortTarget::Expr(e) = t {
                        column_refs(e, &mut used);
                    }
                }
                let mut added = HashSet::new();
                for (index, ty) in used {
                    if dependent.contains(&index) && added.insert(index) {
                        group.push(Scalar::Column { index, ty });
                    }
                }
            }
            let ngroup = group.len();
            let rewrite = |s: Scalar| rewrite_after_agg(s, &group, ngroup);
            for (s, _) in &mut items {
                *s = rewrite(std::mem::replace(s, Scalar::null()))?;
            }
            if let Some(h) = having.take() {
                having = Some(rewrite(h)?);
            }
            for c in &mut srfs {
                for a in &mut c.args {
                    *a = rewrite(std::mem::replace(a, Scalar::null()))?;
                }
            }
            for w in &mut windows {
                w.try_map(&mut |s| rewrite(s))?;
            }
            for (t, _) in &mut sort_exprs {
                if let SortTarget::Expr(e) = t {
                    *e = rewrite(std::mem::replace(e, Scalar::null()))?;
                }
            }
            for t in distinct_on.iter_mut().flatten() {
                if let SortTarget::Expr(e) = t {
                    *e = rewrite(std::mem::replace(e, Scalar::null()))?;
                }
            }
            rel = Rel::Aggregate {
                input: Box::new(rel),
                group,
                aggs,
            };
            if let Some(h) = having {
                rel = Rel::Filter {
                    input: Box::new(rel),
                    predicate: h,
                };
            }
        }

        // Window functions: one window operator per partitioning and order,
        // whose columns the projection (and the SRFs' arguments) read.
        if !windows.is_empty() {
            let (windowed, positions) = window::plan_windows(rel, windows);
            rel = windowed;
            let resolve = |s: &mut Scalar| {
                *s = window::resolve_window_refs(std::mem::replace(s, Scalar::null()), &positions);
            };
            for (s, _) in &mut items {
                resolve(s);
            }
            for c in &mut srfs {
                c.args.iter_mut().for_each(resolve);
            }
            for (t, _) in &mut sort_exprs {
                if let SortTarget::Expr(e) = t {
                    resolve(e);
                }
            }
            for t in distinct_on.iter_mut().flatten() {
                if let SortTarget::Expr(e) = t {
                    resolve(e);
                }
            }
        }

        // Set-returning functions of the select list: their rows, then the
        // projection reads them as columns.
        if !srfs.is_empty() {
            let base = rel.width();
            for (s, _) in &mut items {
                *s = resolve_srf_refs(std::mem::replace(s, Scalar::null()), base);
            }
            rel = Rel::ProjectSet {
                input: Box::new(rel),
                srfs,
            };
        }

        // Project the select list plus extra sort expressions.
        let visible = items.len();
        let mut exprs: Vec<Scalar> = items.iter().map(|(s, _)| s.clone()).collect();
        let mut keys = Vec::new();
        for (target, options) in sort_exprs {
            let index = match target {
                SortTarget::Output(i) => i,
                SortTarget::Expr(e) => match exprs.iter().position(|x| *x == e) {
                    Some(i) => i,
                    None => {
                        if distinct {
                            return Err(SqlError::new(
                                "42P10",
                                "for SELECT DISTINCT, ORDER BY expressions must appear in select list",
                            ));
                        }
                        exprs.push(e);
                        exprs.len() - 1
                    }
                },
            };
            let ty = exprs[index].ty();
            keys.push(sort_key(Scalar::Column { index, ty }, options));
        }
        // DISTINCT ON: the first row of each group in ORDER BY order, so
        // the groups' expressions must lead the ORDER BY (in any order).
        let mut on_columns: Vec<usize> = Vec::new();
        for target in distinct_on.into_iter().flatten() {
            let index = match target {
                SortTarget::Output(i) => i,
                SortTarget::Expr(e) => match exprs.iter().position(|x| *x == e) {
                    Some(i) => i,
                    None => {
                        exprs.push(e);
                        exprs.len() - 1
                    }
                },
            };
            on_columns.push(index);
        }
        if !on_columns.is_empty() {
            let mismatch = || {
                SqlError::new(
                    "42P10",
                    "SELECT DISTINCT ON expressions must match initial ORDER BY expressions",
                )
            };
            let mut skipped = false;
            let mut covered = Vec::new();
            for k in &keys {
                let Scalar::Column { index, .. } = k.expr else {
                    continue;
                };
                if on_columns.contains(&index) {
                    if skipped {
                        return Err(mismatch());
                    }
                    covered.push(index);
                } else {
                    skipped = true;
                }
            }
            for &index in &on_columns {
                if covered.contains(&index) {
                    continue;
                }
                if skipped {
                    return Err(mismatch());
                }
                covered.push(index);
                let ty = exprs[index].ty();
                keys.push(SortKey {
                    expr: Scalar::Column { index, ty },
                    descending: false,
                    nulls_first: false,
                });
            }
        }
        let width = exprs.len();
        let types: Vec<SqlType> = exprs.iter().map(Scalar::ty).collect();
        rel = Rel::Project {
            input: Box::new(rel),
            exprs,
        };
        if !on_columns.is_empty() {
            // Sorted, the group's columns moved first for the DISTINCT
            // (which keeps the first row of each key), then the select list.
            rel = Rel::Sort {
                input: Box::new(rel),
                keys: std::mem::take(&mut keys),
            };
            let k = on_columns.len();
            let mut exprs: Vec<Scalar> = on_columns
                .iter()
                .map(|&index| Scalar::Column {
                    index,
                    ty: types[index],
                })
                .collect();
            exprs.extend((0..visible).map(|index| Scalar::Column {
                index,
                ty: types[index],
            }));
            rel = Rel::Distinct {
                input: Box::new(Rel::Project {
                    input: Box::new(rel),
                    exprs,
                }),
                key_len: k,
            };
            rel = Rel::Project {
                input: Box::new(rel),
                exprs: (0..visible)
                    .map(|i| Scalar::Column {
                        index: k + i,
                        ty: types[i],
                    })
                    .collect(),
            };
        }
        if distinct {
            rel = Rel::Distinct {
                input: Box::new(rel),
                key_len: visible,
            };
        }
        if !keys.is_empty() {
            rel = Rel::Sort {
                input: Box::new(rel),
                keys,
            };
        }
        if width > visible && on_columns.is_empty() {
            let exprs = (0..visible)
                .map(|i| Scalar::Column {
                    index: i,
                    ty: items[i].0.ty(),
                })
                .collect();
            rel = Rel::Project {
                input: Box::new(rel),
                exprs,
            };
        }
        let scope = items
            .into_iter()
            .map(|(s, name)| ScopeColumn {
                table: None,
                name,
                ty: s.ty(),
                hidden: false,
            })
            .collect();
        Ok(BoundQuery { rel, scope })
    }

    /// PostgreSQL's functional dependency: when the GROUP BY holds every
    /// primary key column of a table of the FROM clause, that table's other
    /// columns may be selected too (`SELECT a.name, count(*) … GROUP BY
    /// a.id`, as Django writes it): the columns of such tables not in the
    /// GROUP BY, which become group keys when the query reads them (that
    /// changes no group). Tables are recognized by name, so an aliased table
    /// does not get this. TODO(issue 13): aliased tables (the scope would
    /// need to carry each column's table id).
    fn functionally_dependent(&self, group: &[Scalar], scope: &Scope) -> HashSet<usize> {
        let mut dependent = HashSet::new();
        let grouped: HashSet<usize> = group
            .iter()
            .filter_map(|g| match g {
                Scalar::Column { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        if grouped.is_empty() {
            return dependent;
        }
        let mut tables: Vec<&str> = scope.iter().filter_map(|c| c.table.as_deref()).collect();
        tables.sort_unstable();
        tables.dedup();
        for name in tables {
            let Some(desc) = self.tables.get(name) else {
                continue;
            };
            // The scope's columns under that name must be that table's
            // (an alias may name another table).
            let names: Vec<&str> = scope
                .iter()
                .filter(|c| c.table.as_deref() == Some(name))
                .map(|c| c.name.as_str())
                .collect();
            if desc.virtual_rows.is_some()
                || names.len() != desc.columns.len()
                || names.iter().zip(&desc.columns).any(|(a, b)| *a != b.name)
            {
                continue;
            }
            let position = |col_name: &str| {
                scope
                    .iter()
                    .position(|c| c.table.as_deref() == Some(name) && c.name == col_name)
            };
            let pk_grouped = desc.primary_index.columns.iter().all(|id| {
                desc.columns
                    .iter()
                    .find(|c| c.id == *id)
                    .and_then(|c| position(&c.name))
                    .is_some_and(|p| grouped.contains(&p))
            });
            if !pk_grouped {
                continue;
            }
            for (i, c) in scope.iter().enumerate() {
                if c.table.as_deref() == Some(name) && !grouped.contains(&i) {
                    dependent.insert(i);
                }
            }
        }
        dependent
    }

    /// `GROUP BY 1` / `GROUP BY alias`: the select item it names.
    fn select_item_ref(
        &mut self,
        e: &Expr,
        items: &[(Scalar, String)],
        scope: &Scope,
    ) -> SqlResult<Option<Scalar>> {
        Ok(self
            .output_ref_index(e, items, scope)?
            .map(|i| items[i].0.clone()))
    }

    /// An ORDER BY / GROUP BY item that names an output column: an ordinal, or a
    /// bare name that is an output alias (and, for ORDER BY as in PostgreSQL, takes
    /// precedence over input columns).
    fn output_ref_index(
        &mut self,
        e: &Expr,
        items: &[(Scalar, String)],
        _scope: &Scope,
    ) -> SqlResult<Option<usize>> {
        match e {
            Expr::Value(v) => {
                if let ast::Value::Number(n, _) = &v.value {
                    let pos: usize = n.parse().map_err(|_| {
                        SqlError::syntax(format!("non-integer constant in ORDER BY: {n}"))
                    })?;
                    if pos == 0 || pos > items.len() {
                        return Err(SqlError::new(
                            "42P10",
                            format!("ORDER BY position {pos} is not in select list"),
                        ));
                    }
                    return Ok(Some(pos - 1));
                }
                Ok(None)
            }
            Expr::Identifier(id) => {
                let name = normalize(id);
                let matches: Vec<usize> = items
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, n))| *n == name)
                    .map(|(i, _)| i)
                    .collect();
                match matches.len() {
                    0 => Ok(None),
                    1 => Ok(Some(matches[0])),
                    _ => {
                        // Several items with this name: fine if they are the same expression.
                        let first = &items[matches[0]].0;
                        if matches.iter().all(|i| items[*i].0 == *first) {
                            Ok(Some(matches[0]))
                        } else {
                            Err(SqlError::new(
                                codes::AMBIGUOUS_COLUMN,
                                format!("ORDER BY \"{name}\" is ambiguous"),
                            ))
                        }
                    }
                }
            }
            _ => Ok(None),
        }
    }

    fn bind_output_ref(&mut self, e: &Expr, scope: &Scope) -> SqlResult<Option<Scalar>> {
        let items: Vec<(Scalar, String)> = scope
            .iter()
            .enumerate()
            .map(|(i, c)| (Scalar::Column { index: i, ty: c.ty }, c.name.clone()))
            .collect();
        if let Some(i) = self.output_ref_index(e, &items, scope)? {
            return Ok(Some(items[i].0.clone()));
        }
        // Any expression over the output columns.
        let saved = self.aggs.take();
        let r = self.bind_expr(e, scope);
        self.aggs = saved;
        Ok(Some(r?))
    }

    // ----- FROM -----

    pub(crate) fn bind_from(&mut self, from: &[ast::TableWithJoins]) -> SqlResult<(Rel, Scope)> {
        if from.is_empty() {
            return Ok((
                Rel::Values {
                    rows: vec![vec![]],
                    types: vec![],
                },
                Scope::new(),
            ));
        }
        let mut acc: Option<(Rel, Scope)> = None;
        for twj in from {
            // A LATERAL item (or a function) after a comma reads the items
            // before it: it joins them directly, and the item's own JOINs
            // apply to that join.
            let lateral_first = acc.is_some() && is_lateral(&twj.relation);
            let (mut rel, mut scope) = match acc.take() {
                Some((lrel, lscope)) if lateral_first => {
                    let (rrel, rscope, correlated) =
                        self.bind_lateral_factor(&twj.relation, &lscope)?;
                    let mut combined = lscope;
                    combined.extend(rscope);
                    (
                        lateral_join(JoinKind::Inner, lrel, rrel, None, correlated),
                        combined,
                    )
                }
                other => {
                    acc = other;
                    self.bind_table_factor(&twj.relation)?
                }
            };
            for join in &twj.joins {
                let (rrel, rscope, correlated) = if is_lateral(&join.relation) {
                    self.bind_lateral_factor(&join.relation, &scope)?
                } else {
                    let (r, s) = self.bind_table_factor(&join.relation)?;
                    (r, s, false)
                };
                let (kind, constraint) = match &join.join_operator {
                    JoinOperator::Join(c) | JoinOperator::Inner(c) => (JoinKind::Inner, Some(c)),
                    JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (JoinKind::Left, Some(c)),
                    JoinOperator::Right(c) | JoinOperator::RightOuter(c) => {
                        (JoinKind::Right, Some(c))
                    }
                    JoinOperator::FullOuter(c) => (JoinKind::Full, Some(c)),
                    JoinOperator::CrossJoin(_) => (JoinKind::Inner, None),
                    other => {
                        return Err(SqlError::unsupported(
                            format!("unsupported join: {other:?}")
                                .chars()
                                .take(80)
                                .collect::<String>(),
                        ));
                    }
                };
                let left_width = scope.len();
                let mut combined: Scope = scope.clone();
                combined.extend(rscope.iter().cloned());
                // The column pairs USING/NATURAL merges.
                let mut merged: Vec<(usize, usize)> = Vec::new();
                let on = match constraint {
                    None | Some(JoinConstraint::None) => None,
                    Some(JoinConstraint::On(e)) => {
                        let s = self.bind_expr(e, &combined)?;
                        Some(self.coerce_bool(s, "JOIN/ON")?)
                    }
                    Some(JoinConstraint::Using(cols)) => {
                        let names: Vec<String> = cols.iter().map(table_name).collect();
                        Some(self.using_condition(
                            &names,
                            &scope,
                            &rscope,
                            &mut combined,
                            (left_width, &mut merged),
                        )?)
                    }
                    Some(JoinConstraint::Natural) => {
                        let names: Vec<String> = scope
                            .iter()
                            .filter(|c| {
                                !c.hidden && rscope.iter().any(|r| !r.hidden && r.name == c.name)
                            })
                            .map(|c| c.name.clone())
                            .collect();
                        if names.is_empty() {
                            None
                        } else {
                            Some(self.using_condition(
                                &names,
                                &scope,
                                &rscope,
                                &mut combined,
                                (left_width, &mut merged),
                            )?)
                        }
                    }
                    Some(other) => {
                        return Err(SqlError::unsupported(format!(
                            "unsupported join constraint {other:?}"
                        )));
                    }
                };
                if correlated && !matches!(kind, JoinKind::Inner | JoinKind::Left) {
                    return Err(SqlError::new(
                        "42P10",
                        "invalid reference to FROM-clause entry",
                    )
                    .with_detail(
                        "The combining JOIN type must be INNER or LEFT for a LATERAL reference.",
                    ));
                }
                let join = lateral_join(kind, rel, rrel, on, correlated);
                (rel, scope) =
                    self.merge_using_columns(kind, join, combined, left_width, &merged)?;
            }
            if lateral_first {
                acc = Some((rel, scope));
                continue;
            }
            acc = Some(match acc {
                None => (rel, scope),
                Some((lrel, mut lscope)) => {
                    lscope.extend(scope);
                    (
                        Rel::Join {
                            kind: JoinKind::Inner,
                            left: Box::new(lrel),
                            right: Box::new(rel),
                            on: None,
                            equi: vec![],
                        },
                        lscope,
                    )
                }
            });
        }
        acc.ok_or_else(|| SqlError::internal("empty FROM"))
    }

    /// The condition of USING (`names`) / NATURAL; the column pairs it
    /// merges go to `merged` (right ones from 0).
    /// A FROM item that may read the items before it (`LATERAL (…)`, or a
    /// function, which is implicitly lateral), bound with their columns
    /// (`left`) as the innermost enclosing scope; whether it reads them.
    fn bind_lateral_factor(
        &mut self,
        factor: &TableFactor,
        left: &Scope,
    ) -> SqlResult<(Rel, Scope, bool)> {
        self.outer.push(left.clone());
        self.correlated.push(false);
        let bound = self.bind_table_factor(factor);
        let correlated = self.correlated.pop().unwrap_or(false);
        self.outer.pop();
        let (rel, scope) = bound?;
        Ok((rel, scope, correlated))
    }

    fn using_condition(
        &mut self,
        names: &[String],
        left: &Scope,
        right: &Scope,
        combined: &mut Scope,
        (left_width, merged): (usize, &mut Vec<(usize, usize)>),
    ) -> SqlResult<Scalar> {
        let mut cond: Option<Scalar> = None;
        for name in names {
            let li = find_column(left, None, name)?.ok_or_else(|| {
                SqlError::undefined_column(name).with_detail("in the left table of USING")
            })?;
            let ri = find_column(right, None, name)?.ok_or_else(|| {
                SqlError::undefined_column(name).with_detail("in the right table of USING")
            })?;
            merged.push((li, ri));
            let l = Scalar::Column {
                index: li,
                ty: left[li].ty,
            };
            let r = Scalar::Column {
                index: left_width + ri,
                ty: right[ri].ty,
            };
            let eq = self.binary(BinOp::Eq, l, r)?;
            // Merged (see `merge_using_columns`): only `t.k` reaches it.
            combined[left_width + ri].hidden = true;
            cond = Some(match cond {
                None => eq,
                Some(c) => Scalar::Binary {
                    op: BinOp::And,
                    left: Box::new(c),
                    right: Box::new(eq),
                    ty: SqlType::Bool,
                },
            });
        }
        cond.ok_or_else(|| SqlError::syntax("USING needs columns"))
    }

    /// The columns a USING/NATURAL join merged (`merged`: pairs of left and
    /// right columns, right ones from 0), as PostgreSQL has them: each is
    /// the left column in an inner or left join, the right one in a right
    /// join, their COALESCE in a full join; `*` lists them first, and the
    /// joined tables' own columns stay reachable as `t.k` (hidden, still
    /// qualified: see [`find_column`]). An inner or left join whose USING
    /// columns lead the left table, of the same types on both sides, keeps
    /// its columns as they are (no projection between joins to reorder).
    fn merge_using_columns(
        &mut self,
        kind: JoinKind,
        join: Rel,
        mut scope: Scope,
        left_width: usize,
        merged: &[(usize, usize)],
    ) -> SqlResult<(Rel, Scope)> {
        let in_place = matches!(kind, JoinKind::Inner | JoinKind::Left)
            && merged
                .iter()
                .enumerate()
                .all(|(n, (li, ri))| *li == n && scope[*li].ty == scope[left_width + *ri].ty);
        if merged.is_empty() || in_place {
            return Ok((join, scope));
        }
        let mut exprs = Vec::with_capacity(merged.len() + scope.len());
        let mut front = Vec::with_capacity(merged.len());
        for &(li, ri) in merged {
            let ri = left_width + ri;
            let ty = ops::common_type(&[scope[li].ty, scope[ri].ty])?;
            let l = Scalar::Column {
                index: li,
                ty: scope[li].ty,
            };
            let r = Scalar::Column {
                index: ri,
                ty: scope[ri].ty,
            };
            let l = self.coerce(l, ty, "JOIN/USING")?;
            let r = self.coerce(r, ty, "JOIN/USING")?;
            exprs.push(match kind {
                JoinKind::Right => r,
                JoinKind::Full => Scalar::Coalesce {
                    args: vec![l, r],
                    ty,
                },
                _ => l,
            });
            let mut column = scope[li].clone();
            column.table = None;
            column.ty = ty;
            column.hidden = false;
            front.push(column);
            scope[li].hidden = true;
        }
        exprs.extend(
            scope
                .iter()
                .enumerate()
                .map(|(i, c)| Scalar::Column { index: i, ty: c.ty }),
        );
        front.extend(scope);
        Ok((
            Rel::Project {
                input: Box::new(join),
                exprs,
            },
            front,
        ))
    }

    fn bind_table_factor(&mut self, factor: &TableFactor) -> SqlResult<(Rel, Scope)> {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args,
                with_ordinality,
                ..
            } => {
                if let Some(args) = args {
                    if *with_ordinality {
                        return self.bind_function_with_ordinality(
                            name,
                            &args.args,
                            alias.as_ref(),
                        );
                    }
                    return self.bind_table_function(name, &args.args, alias.as_ref());
                }
                let tname = table_name(name);
                let parts = object_name_parts(name);
                // CTEs shadow tables.
                if parts.len() == 1 {
                    for frame in self.ctes.iter().rev() {
                        if let Some(cte) = frame.get(&tname) {
                            let (rel, scope) = (cte.0.clone(), cte.1.clone());
                            return Ok(apply_alias(rel, scope, alias.as_ref(), &tname));
                        }
                    }
                }
                let desc = self.table(name)?;
                if let Some(rows) = &desc.virtual_rows {
                    return Ok(virtual_table(&desc, rows, &tname, alias.as_ref()));
                }
                if let Some(view) = &desc.view_query {
                    let statements = crate::parse::parse_statements(view)?;
                    let Some(Statement::Query(q)) = statements.into_iter().next() else {
                        return Err(SqlError::internal(format!("view \"{tname}\" has no query")));
                    };
                    let saved_outer = std::mem::take(&mut self.outer);
                    let bound = self.bind_query(&q);
                    self.outer = saved_outer;
                    let bound = bound?;
                    let mut scope: Scope = bound.scope;
                    for (c, d) in scope.iter_mut().zip(&desc.columns) {
                        c.name = d.name.clone();
                    }
                    return Ok(apply_alias(bound.rel, scope, alias.as_ref(), &tname));
                }
                let scope = desc
                    .columns
                    .iter()
                    .map(|c| ScopeColumn {
                        table: Some(tname.clone()),
                        name: c.name.clone(),
                        ty: c.ty,
                        hidden: c.hidden,
                    })
                    .collect();
                let stats = self.stats.get(&desc.id).cloned();
                let rel = Rel::Scan(Scan {
                    index: desc.primary_index.id,
                    table: desc,
                    constraint: None,
                    reverse: false,
                    limit: None,
                    covering: true,
                    stats,
                    reads: None,
                    project: None,
                });
                Ok(apply_alias(rel, scope, alias.as_ref(), &tname))
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                ..
            } => {
                // A LATERAL subquery reaches here with the items before it
                // as its innermost enclosing scope (see `bind_from`).
                let _ = lateral;
                let saved_aggs = self.aggs.take();
                let bound = self.bind_query(subquery);
                self.aggs = saved_aggs;
                let bound = bound?;
                let name = alias
                    .as_ref()
                    .map(|a| normalize(&a.name))
                    .unwrap_or_default();
                Ok(apply_alias(bound.rel, bound.scope, alias.as_ref(), &name))
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                let (rel, scope) =
                    self.bind_from(std::slice::from_ref(table_with_joins.as_ref()))?;
                let name = alias
                    .as_ref()
                    .map(|a| normalize(&a.name))
                    .unwrap_or_default();
                if alias.is_some() {
                    Ok(apply_alias(rel, scope, alias.as_ref(), &name))
                } else {
                    Ok((rel, scope))
                }
            }
            TableFactor::Function {
                name, args, alias, ..
            } => {
                let args: Vec<FunctionArg> = args.clone();
                self.bind_table_function(name, &args, alias.as_ref())
            }
            TableFactor::UNNEST {
                alias,
                array_exprs,
                with_offset: false,
                with_ordinality,
                ..
            } => self.bind_unnest(array_exprs, *with_ordinality, alias.as_ref()),
            other => Err(SqlError::unsupported(format!(
                "unsupported FROM item: {other}"
            ))),
        }
    }

    /// A function in FROM `WITH ORDINALITY`: its rows numbered from 1 in
    /// the order it returns them, in one more column (`ordinality`, or the
    /// alias's next column name). The function's own columns are named as
    /// without it.
    fn bind_function_with_ordinality(
        &mut self,
        name: &ObjectName,
        args: &[FunctionArg],
        alias: Option<&ast::TableAlias>,
    ) -> SqlResult<(Rel, Scope)> {
        let fname = table_name(name);
        if fname == "unnest" {
            return self.bind_unnest(&unnest_args(args)?, true, alias);
        }
        let bare = alias.map(|a| ast::TableAlias {
            columns: Vec::new(),
            ..a.clone()
        });
        let (rel, mut scope) = self.bind_table_function(name, args, bare.as_ref())?;
        let mut column = scope
            .first()
            .cloned()
            .ok_or_else(|| SqlError::internal("a function without columns"))?;
        column.name = "ordinality".into();
        column.ty = SqlType::Int8;
        column.hidden = false;
        scope.push(column);
        // No partition and no order: the window keeps its input's order
        // (its sort is stable).
        let rel = Rel::Window {
            input: Box::new(rel),
            partition: Vec::new(),
            order: Vec::new(),
            funcs: vec![super::WindowFunc {
                name: "row_number".into(),
                args: Vec::new(),
                arg_types: Vec::new(),
                is_agg: false,
                filter: None,
                frame: super::WindowFrame::default_frame(),
                ty: SqlType::Int8,
            }],
        };
        Ok(apply_alias(rel, scope, alias, &fname))
    }

    fn bind_table_function(
        &mut self,
        name: &ObjectName,
        args: &[FunctionArg],
        alias: Option<&ast::TableAlias>,
    ) -> SqlResult<(Rel, Scope)> {
        let fname = table_name(name);
        if fname == "unnest" {
            return self.bind_unnest(&unnest_args(args)?, false, alias);
        }
        if fname != "generate_series" && is_set_returning(&fname) {
            return self.bind_from_srf(&fname, args, alias);
        }
        if fname != "generate_series" {
            return Err(SqlError::undefined_function(format!(
                "function {fname} does not exist"
            )));
        }
        let scope = Scope::new();
        let mut bound = Vec::new();
        for a in args {
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                    bound.push(self.bind_expr(e, &scope)?)
                }
                _ => {
                    return Err(SqlError::syntax(
                        "generate_series takes positional arguments",
                    ));
                }
            }
        }
        if bound.len() < 2 || bound.len() > 3 {
            return Err(SqlError::undefined_function(
                "function generate_series needs 2 or 3 arguments",
            ));
        }
        // Only the integer form: a numeric or timestamp series must not be
        // silently rounded to integers.
        // TODO(issue 13): generate_series over numerics and timestamps.
        if let Some(b) = bound
            .iter()
            .find(|b| !b.ty().is_integer() && b.ty() != SqlType::Unknown)
        {
            return Err(SqlError::undefined_function(format!(
                "function generate_series does not exist for an argument of type {}",
                b.ty()
            )));
        }
        let mut coerced = Vec::new();
        for b in bound {
            coerced.push(self.coerce(b, SqlType::Int8, "generate_series")?);
        }
        let mut it = coerced.into_iter();
        let (Some(start), Some(stop)) = (it.next(), it.next()) else {
            return Err(SqlError::internal("generate_series arguments"));
        };
        let rel = Rel::Series {
            start,
            stop,
            step: it.next(),
        };
        // A function's single column is named after the function, or after the
        // alias when no column names are given (PostgreSQL).
        let column = alias
            .filter(|a| a.columns.is_empty())
            .map(|a| normalize(&a.name))
            .unwrap_or_else(|| fname.clone());
        let scope = vec![ScopeColumn {
            table: Some(fname.clone()),
            name: column,
            ty: SqlType::Int8,
            hidden: false,
        }];
        Ok(apply_alias(rel, scope, alias, &fname))
    }

    /// A set-returning function of a select list (`jsonb_array_elements`,
    /// `generate_subscripts`, …) in FROM: its rows, as a
    /// [`Rel::ProjectSet`] over one empty row. Its column is named as
    /// PostgreSQL names it: `value` for the `jsonb_array_elements`
    /// functions (their OUT parameter), else the alias or the function.
    fn bind_from_srf(
        &mut self,
        fname: &str,
        args: &[FunctionArg],
        alias: Option<&ast::TableAlias>,
    ) -> SqlResult<(Rel, Scope)> {
        let exprs = args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e.clone()),
                _ => Err(SqlError::syntax(format!(
                    "{fname} takes positional arguments"
                ))),
            })
            .collect::<SqlResult<Vec<_>>>()?;
        let saved = self.srfs.replace(Vec::new());
        let bound = self.bind_srf_call(fname, &exprs, false, &Scope::new(), 0);
        let srfs = std::mem::replace(&mut self.srfs, saved).unwrap_or_default();
        let bound = bound?;
        if srfs.iter().any(|c| c.args.iter().any(Scalar::needs_async)) {
            // TODO(issue 4): set-returning function arguments are evaluated
            // without computing their subqueries first.
            return Err(SqlError::unsupported(format!(
                "{fname} of an expression with a subquery is not supported in FROM"
            )));
        }
        let ty = bound.ty();
        let named = alias
            .map(|a| normalize(&a.name))
            .unwrap_or_else(|| fname.to_string());
        let mut rel = Rel::ProjectSet {
            input: Box::new(Rel::Values {
                rows: vec![vec![]],
                types: vec![],
            }),
            srfs,
        };
        let mut scope = vec![ScopeColumn {
            table: Some(fname.to_string()),
            name: named.clone(),
            ty,
            hidden: false,
        }];
        if fname.starts_with("jsonb_array_elements") {
            // The column is `value`; the item's name reads it too (as a
            // whole-row reference to a one-column function does).
            scope[0].name = "value".into();
            scope.push(ScopeColumn {
                table: Some(fname.to_string()),
                name: named,
                ty,
                hidden: true,
            });
            let value = Scalar::Column { index: 0, ty };
            rel = Rel::Project {
                input: Box::new(rel),
                exprs: vec![value.clone(), value],
            };
        }
        Ok(apply_alias(rel, scope, alias, fname))
    }

    /// `unnest(array, …)` in FROM, as `arr[i]` for `i` in
    /// `generate_series(1, greatest(cardinality(arr), …))` (shorter arrays
    /// give NULLs, as in PostgreSQL; the arrays are evaluated once, before
    /// the rows; like generate_series they cannot read columns of other FROM
    /// items).
    fn bind_unnest(
        &mut self,
        args: &[Expr],
        ordinality: bool,
        alias: Option<&ast::TableAlias>,
    ) -> SqlResult<(Rel, Scope)> {
        let fname = "unnest".to_string();
        if args.is_empty() {
            return Err(SqlError::undefined_function(
                "function unnest() does not exist",
            ));
        }
        let mut arrays = Vec::with_capacity(args.len());
        for e in args {
            let arr = self.bind_expr(e, &Scope::new())?;
            let Some(elem) = arr.ty().element() else {
                return Err(SqlError::undefined_function(format!(
                    "function unnest({}) does not exist",
                    arr.ty()
                )));
            };
            if arr.needs_async() {
                // TODO(issue 4): generate_series and unnest arguments are evaluated
                // without computing their subqueries first.
                return Err(SqlError::unsupported(
                    "unnest of an expression with a subquery is not supported",
                ));
            }
            arrays.push((arr, elem));
        }
        let mut lens = Vec::with_capacity(arrays.len());
        for (arr, _) in &arrays {
            let len = self.call("cardinality", vec![arr.clone()])?;
            lens.push(self.cast(len, SqlType::Int8)?);
        }
        let stop = if lens.len() == 1 {
            lens.remove(0)
        } else {
            Scalar::Extreme {
                args: lens,
                greatest: true,
                ty: SqlType::Int8,
            }
        };
        let series = Rel::Series {
            start: Scalar::literal(Value::Int(1), SqlType::Int8),
            stop,
            step: None,
        };
        let position = Scalar::Column {
            index: 0,
            ty: SqlType::Int8,
        };
        let single = arrays.len() == 1;
        let mut exprs = Vec::with_capacity(arrays.len() + 1);
        let mut scope = Vec::with_capacity(arrays.len() + 1);
        for (arr, elem) in arrays {
            exprs.push(Scalar::Func {
                name: "array_subscript".into(),
                args: vec![arr, position.clone()],
                ty: elem,
            });
            // A single array's column is named after the alias when no
            // column names are given (PostgreSQL).
            let column = alias
                .filter(|a| a.columns.is_empty() && single)
                .map(|a| normalize(&a.name))
                .unwrap_or_else(|| fname.clone());
            scope.push(ScopeColumn {
                table: Some(fname.clone()),
                name: column,
                ty: elem,
                hidden: false,
            });
        }
        if ordinality {
            exprs.push(position);
            scope.push(ScopeColumn {
                table: Some(fname.clone()),
                name: "ordinality".into(),
                ty: SqlType::Int8,
                hidden: false,
            });
        }
        let rel = Rel::Project {
            input: Box::new(series),
            exprs,
        };
        Ok(apply_alias(rel, scope, alias, &fname))
    }

    // ----- expressions -----

    /// Binds an expression and folds its constant parts.
    pub fn bind_expr(&mut self, e: &Expr, scope: &Scope) -> SqlResult<Scalar> {
        let s = self.bind_expr_inner(e, scope, 0)?;
        Ok(fold(s))
    }

    fn bind_expr_inner(&mut self, e: &Expr, scope: &Scope, depth: usize) -> SqlResult<Scalar> {
        crate::stack::grow(|| self.bind_expr_node(e, scope, depth))
    }

    fn bind_expr_node(&mut self, e: &Expr, scope: &Scope, depth: usize) -> SqlResult<Scalar> {
        if depth > MAX_EXPR_DEPTH {
            return Err(SqlError::new(
                codes::STATEMENT_TOO_COMPLEX,
                "expression is too deeply nested",
            ));
        }
        let d = depth + 1;
        Ok(match e {
            Expr::Identifier(id) => self.resolve(&[normalize(id)], scope)?,
            Expr::CompoundIdentifier(ids) => {
                let parts: Vec<String> = ids.iter().map(normalize).collect();
                self.resolve(&parts, scope)?
            }
            Expr::Value(v) => self.bind_value(&v.value)?,
            Expr::Nested(inner) => self.bind_expr_inner(inner, scope, d)?,
            // Strings compare byte-wise (the C collation); the default
            // collation and C are that, others do not exist here.
            Expr::Collate { expr, collation } => {
                let name = table_name(collation);
                if !matches!(name.as_str(), "default" | "C" | "POSIX" | "c" | "posix") {
                    return Err(SqlError::new(
                        codes::UNDEFINED_OBJECT,
                        format!("collation \"{name}\" for encoding \"UTF8\" does not exist"),
                    ));
                }
                self.bind_expr_inner(expr, scope, d)?
            }
            Expr::BinaryOp { left, op, right }
                if matches!(
                    (unnest_parens(left), unnest_parens(right)),
                    (Expr::Tuple(_), Expr::Tuple(_))
                ) =>
            {
                let (Expr::Tuple(ls), Expr::Tuple(rs)) =
                    (unnest_parens(left), unnest_parens(right))
                else {
                    return Err(SqlError::internal("row comparison"));
                };
                let expanded = expand_row_comparison(op, ls, rs)?;
                self.bind_expr_inner(&expanded, scope, d)?
            }
            Expr::BinaryOp { left, op, right } => {
                let l = self.bind_expr_inner(left, scope, d)?;
                let r = self.bind_expr_inner(right, scope, d)?;
                // `OPERATOR(pg_catalog.~)`: the operator it names.
                let op = &match op {
                    BinaryOperator::PGCustomBinaryOperator(parts) => custom_operator(parts)?,
                    other => other.clone(),
                };
                let regex = match op {
                    BinaryOperator::PGRegexMatch => Some(("textregexeq", false)),
                    BinaryOperator::PGRegexIMatch => Some(("texticregexeq", false)),
                    BinaryOperator::PGRegexNotMatch => Some(("textregexeq", true)),
                    BinaryOperator::PGRegexNotIMatch => Some(("texticregexeq", true)),
                    _ => None,
                };
                if let Some((name, negated)) = regex {
                    let l = self.coerce_soft(l, SqlType::Text)?;
                    let r = self.coerce_soft(r, SqlType::Text)?;
                    let matched = self.call(name, vec![l, r])?;
                    return Ok(if negated {
                        Scalar::Unary {
                            op: UnOp::Not,
                            expr: Box::new(matched),
                            ty: SqlType::Bool,
                        }
                    } else {
                        matched
                    });
                }
                // jsonb operators are calls of the functions implementing
                // them (`@>` and `<@` on arrays are the array functions below)
                let jsonb_op = match op {
                    BinaryOperator::AtArrow => Some("@>"),
                    BinaryOperator::ArrowAt => Some("<@"),
                    BinaryOperator::Question => Some("?"),
                    BinaryOperator::QuestionPipe => Some("?|"),
                    BinaryOperator::QuestionAnd => Some("?&"),
                    BinaryOperator::HashArrow => Some("#>"),
                    BinaryOperator::HashLongArrow => Some("#>>"),
                    BinaryOperator::HashMinus => Some("#-"),
                    BinaryOperator::Minus => Some("-"),
                    _ => None,
                };
                if let Some(sym) = jsonb_op
                    && let Some((name, lt, rt)) =
                        tardigrade_sqltypes::jsonb::operator_function(sym, l.ty(), r.ty())?
                {
                    let l = self.coerce_soft(l, lt)?;
                    let r = self.coerce_soft(r, rt)?;
                    return self.call(name, vec![l, r]);
                }
                // `jsonb || 'literal'` concatenates jsonb, as PostgreSQL
                // resolves the untyped side
                let (l, r) = match (op, l.ty(), r.ty()) {
                    (BinaryOperator::StringConcat, SqlType::Jsonb, SqlType::Unknown) => {
                        let r = self.coerce_soft(r, SqlType::Jsonb)?;
                        (l, r)
                    }
                    (BinaryOperator::StringConcat, SqlType::Unknown, SqlType::Jsonb) => {
                        (self.coerce_soft(l, SqlType::Jsonb)?, r)
                    }
                    _ => (l, r),
                };
                let containment = match op {
                    BinaryOperator::AtArrow => Some("array_contains"),
                    BinaryOperator::ArrowAt => Some("array_contained"),
                    BinaryOperator::PGOverlap => Some("array_overlap"),
                    _ => None,
                };
                if let Some(name) = containment {
                    return self.array_containment(name, op, l, r);
                }
                let op = binop(op)?;
                self.binary(op, l, r)?
            }
            Expr::UnaryOp { op, expr } => {
                let inner = self.bind_expr_inner(expr, scope, d)?;
                let op = match op {
                    UnaryOperator::Minus => UnOp::Neg,
                    UnaryOperator::Plus => UnOp::Plus,
                    UnaryOperator::Not => UnOp::Not,
                    UnaryOperator::BitwiseNot => UnOp::BitNot,
                    UnaryOperator::PGSquareRoot | UnaryOperator::PGCubeRoot => {
                        let f = if *op == UnaryOperator::PGSquareRoot {
                            "sqrt"
                        } else {
                            "cbrt"
                        };
                        // float8 only, as PostgreSQL's `|/` and `||/`.
                        let inner = self.coerce(inner, SqlType::Float8, f)?;
                        return self.call(f, vec![inner]);
                    }
                    UnaryOperator::PGAbs => return self.call("abs", vec![inner]),
                    other => {
                        return Err(SqlError::unsupported(format!(
                            "unsupported operator {other}"
                        )));
                    }
                };
                // Negative numeric literals stay literals (so -2147483648 is an int4).
                if op == UnOp::Neg
                    && let Expr::Value(v) = expr.as_ref()
                    && let ast::Value::Number(n, _) = &v.value
                {
                    return number_literal(&format!("-{n}"));
                }
                let inner = if op == UnOp::Not {
                    self.coerce_bool(inner, "NOT")?
                } else {
                    inner
                };
                let ty = ops::unary_type(op, inner.ty())?;
                Scalar::Unary {
                    op,
                    expr: Box::new(inner),
                    ty,
                }
            }
            Expr::IsNull(inner) => Scalar::IsNull {
                expr: Box::new(self.bind_expr_inner(inner, scope, d)?),
                negated: false,
            },
            Expr::IsNotNull(inner) => Scalar::IsNull {
                expr: Box::new(self.bind_expr_inner(inner, scope, d)?),
                negated: true,
            },
            Expr::IsTrue(inner)
            | Expr::IsNotTrue(inner)
            | Expr::IsFalse(inner)
            | Expr::IsNotFalse(inner) => {
                let s = self.bind_expr_inner(inner, scope, d)?;
                let s = self.coerce_bool(s, "IS")?;
                let (value, negated) = match e {
                    Expr::IsTrue(_) => (true, false),
                    Expr::IsNotTrue(_) => (true, true),
                    Expr::IsFalse(_) => (false, false),
                    _ => (false, true),
                };
                Scalar::IsBool {
                    expr: Box::new(s),
                    value,
                    negated,
                }
            }
            Expr::IsUnknown(inner) => {
                let s = self.bind_expr_inner(inner, scope, d)?;
                Scalar::IsNull {
                    expr: Box::new(self.coerce_bool(s, "IS UNKNOWN")?),
                    negated: false,
                }
            }
            Expr::IsNotUnknown(inner) => {
                let s = self.bind_expr_inner(inner, scope, d)?;
                Scalar::IsNull {
                    expr: Box::new(self.coerce_bool(s, "IS NOT UNKNOWN")?),
                    negated: true,
                }
            }
            Expr::IsDistinctFrom(a, b) => {
                let l = self.bind_expr_inner(a, scope, d)?;
                let r = self.bind_expr_inner(b, scope, d)?;
                self.binary(BinOp::IsDistinctFrom, l, r)?
            }
            Expr::IsNotDistinctFrom(a, b) => {
                let l = self.bind_expr_inner(a, scope, d)?;
                let r = self.bind_expr_inner(b, scope, d)?;
                self.binary(BinOp::IsNotDistinctFrom, l, r)?
            }
            Expr::In {
                expr,
                target,
                negated,
                ..
            } => match target {
                ast::InTarget::List(list) => {
                    let left = self.bind_expr_inner(expr, scope, d)?;
                    let mut items = Vec::with_capacity(list.len());
                    for item in list {
                        items.push(self.bind_expr_inner(item, scope, d)?);
                    }
                    let mut types = vec![left.ty()];
                    types.extend(items.iter().map(|i| i.ty()));
                    let ty = ops::common_type(&types)
                        .map_err(|e| SqlError::datatype_mismatch(format!("IN {}", e.message)))?;
                    let left = self.coerce_soft(left, ty)?;
                    let items = items
                        .into_iter()
                        .map(|i| self.coerce_soft(i, ty))
                        .collect::<SqlResult<Vec<_>>>()?;
                    Scalar::InList {
                        expr: Box::new(left),
                        list: items,
                        negated: *negated,
                    }
                }
                ast::InTarget::Subquery(q) if matches!(unnest_parens(expr), Expr::Tuple(_)) => {
                    let Expr::Tuple(items) = unnest_parens(expr) else {
                        return Err(SqlError::internal("row IN: not a row"));
                    };
                    let s = self.row_in_subquery(items, q, scope, d)?;
                    if *negated {
                        Scalar::Unary {
                            op: UnOp::Not,
                            expr: Box::new(s),
                            ty: SqlType::Bool,
                        }
                    } else {
                        s
                    }
                }
                ast::InTarget::Subquery(q) => {
                    let left = self.bind_expr_inner(expr, scope, d)?;
                    let mut sub = self.bind_subquery(q, scope)?;
                    let col_ty = first_visible_type(&sub.1)?;
                    let left = self.coerce_soft(left, col_ty)?;
                    ops::binary_type(BinOp::Eq, left.ty(), col_ty)?;
                    sub.0.kind = SubqueryKind::In {
                        expr: Box::new(left),
                        cmp: BinOp::Eq,
                    };
                    sub.0.ty = SqlType::Bool;
                    let s = Scalar::Subquery(Box::new(sub.0));
                    if *negated {
                        Scalar::Unary {
                            op: UnOp::Not,
                            expr: Box::new(s),
                            ty: SqlType::Bool,
                        }
                    } else {
                        s
                    }
                }
                _ => return Err(SqlError::unsupported("unsupported IN target")),
            },
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let v = self.bind_expr_inner(expr, scope, d)?;
                let lo = self.bind_expr_inner(low, scope, d)?;
                let hi = self.bind_expr_inner(high, scope, d)?;
                let ge = self.binary(BinOp::GtEq, v.clone(), lo)?;
                let le = self.binary(BinOp::LtEq, v, hi)?;
                let both = Scalar::Binary {
                    op: BinOp::And,
                    left: Box::new(ge),
                    right: Box::new(le),
                    ty: SqlType::Bool,
                };
                if *negated {
                    Scalar::Unary {
                        op: UnOp::Not,
                        expr: Box::new(both),
                        ty: SqlType::Bool,
                    }
                } else {
                    both
                }
            }
            Expr::Like {
                negated,
                expr,
                pattern,
                escape_char,
                any,
                ..
            }
            | Expr::ILike {
                negated,
                expr,
                pattern,
                escape_char,
                any,
                ..
            } => {
                if escape_char.is_some() {
                    return Err(SqlError::unsupported("LIKE … ESCAPE is not supported"));
                }
                let ilike = matches!(e, Expr::ILike { .. });
                let op = match (ilike, negated) {
                    (false, false) => BinOp::Like,
                    (false, true) => BinOp::NotLike,
                    (true, false) => BinOp::ILike,
                    (true, true) => BinOp::NotILike,
                };
                let l = self.bind_expr_inner(expr, scope, d)?;
                let r = self.bind_expr_inner(pattern, scope, d)?;
                if *any {
                    // `x LIKE ANY (array)`
                    return self.quantified_array(op, false, l, r);
                }
                self.binary(op, l, r)?
            }
            Expr::Cast { .. } if regclass_literal(e).is_some() => {
                let name = regclass_literal(e).unwrap_or_default();
                Scalar::literal(Value::Int(self.regclass_oid(name)?), SqlType::Oid)
            }
            Expr::Cast {
                expr, data_type, ..
            } => {
                let to = sql_type_of(data_type)?;
                // `ARRAY[]::int[]`: an empty constructor takes the cast's type.
                if let (Expr::Array(a), SqlType::Array(_)) = (expr.as_ref(), to)
                    && a.elem.is_empty()
                {
                    return Ok(Scalar::Literal {
                        value: Value::Array(Vec::new()),
                        ty: to,
                    });
                }
                let inner = self.bind_expr_inner(expr, scope, d)?;
                let to_regclass = match data_type {
                    DataType::Regclass => true,
                    DataType::Custom(n, _) => table_name(n) == "regclass",
                    _ => false,
                };
                if to_regclass && (inner.ty().is_string() || inner.ty() == SqlType::Unknown) {
                    // A name known only when the statement runs (a
                    // parameter): system catalogs and OIDs.
                    // TODO(issue 13): user tables named by a parameter.
                    let inner = self.coerce(inner, SqlType::Text, "regclass")?;
                    Scalar::Func {
                        name: "regclass".into(),
                        args: vec![inner],
                        ty: SqlType::Oid,
                    }
                } else {
                    let cast = self.cast(inner, to)?;
                    with_timestamp_precision(cast, data_type)
                }
            }
            Expr::TypedString(ts) => {
                let to = sql_type_of(&ts.data_type)?;
                let text = match &ts.value.value {
                    ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
                        s.clone()
                    }
                    other => other.to_string(),
                };
                let literal = Scalar::Literal {
                    value: Value::from_text(&text, to)?,
                    ty: to,
                };
                with_timestamp_precision(literal, &ts.data_type)
            }
            Expr::Interval(iv) => {
                let inner = self.bind_expr_inner(&iv.value, scope, d)?;
                let inner = match (&inner, &iv.leading_field) {
                    (
                        Scalar::Literal {
                            value: Value::Text(t),
                            ..
                        },
                        Some(field),
                    ) => Scalar::Literal {
                        value: Value::Text(format!("{t} {field}")),
                        ty: SqlType::Unknown,
                    },
                    _ => inner,
                };
                self.cast(inner, SqlType::Interval)?
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let operand = match operand {
                    Some(o) => Some(self.bind_expr_inner(o, scope, d)?),
                    None => None,
                };
                let mut whens = Vec::with_capacity(conditions.len());
                for cw in conditions {
                    let cond = self.bind_expr_inner(&cw.condition, scope, d)?;
                    let cond = match &operand {
                        Some(o) => self.binary(BinOp::Eq, o.clone(), cond)?,
                        None => self.coerce_bool(cond, "CASE/WHEN")?,
                    };
                    let result = self.bind_expr_inner(&cw.result, scope, d)?;
                    whens.push((cond, result));
                }
                let otherwise = match else_result {
                    Some(e) => Some(self.bind_expr_inner(e, scope, d)?),
                    None => None,
                };
                let mut types: Vec<SqlType> = whens.iter().map(|(_, r)| r.ty()).collect();
                if let Some(o) = &otherwise {
                    types.push(o.ty());
                }
                let ty = ops::common_type(&types)
                    .map_err(|e| SqlError::datatype_mismatch(format!("CASE {}", e.message)))?;
                let whens = whens
                    .into_iter()
                    .map(|(c, r)| Ok((c, self.coerce_soft(r, ty)?)))
                    .collect::<SqlResult<Vec<_>>>()?;
                let otherwise = match otherwise {
                    Some(o) => Some(Box::new(self.coerce_soft(o, ty)?)),
                    None => None,
                };
                Scalar::Case {
                    operand: None,
                    whens,
                    otherwise,
                    ty,
                }
            }
            Expr::Function(f) => self.bind_function(f, scope, d)?,
            Expr::Exists { subquery, negated } => {
                let mut sub = self.bind_subquery(subquery, scope)?.0;
                sub.kind = SubqueryKind::Exists;
                sub.ty = SqlType::Bool;
                let s = Scalar::Subquery(Box::new(sub));
                if *negated {
                    Scalar::Unary {
                        op: UnOp::Not,
                        expr: Box::new(s),
                        ty: SqlType::Bool,
                    }
                } else {
                    s
                }
            }
            Expr::Subquery(q) => {
                let (mut sub, sub_scope) = self.bind_subquery(q, scope)?;
                let visible: Vec<&ScopeColumn> = sub_scope.iter().filter(|c| !c.hidden).collect();
                if visible.len() != 1 {
                    return Err(SqlError::syntax("subquery must return only one column"));
                }
                sub.kind = SubqueryKind::Scalar;
                sub.ty = visible[0].ty;
                Scalar::Subquery(Box::new(sub))
            }
            Expr::AnyOp {
                left,
                compare_op,
                right,
                ..
            }
            | Expr::AllOp {
                left,
                compare_op,
                right,
            } => {
                let all = matches!(e, Expr::AllOp { .. });
                let Expr::Subquery(q) = right.as_ref() else {
                    let l = self.bind_expr_inner(left, scope, d)?;
                    let r = self.bind_expr_inner(right, scope, d)?;
                    return self.quantified_array(binop(compare_op)?, all, l, r);
                };
                let l = self.bind_expr_inner(left, scope, d)?;
                let (mut sub, sub_scope) = self.bind_subquery(q, scope)?;
                let col_ty = first_visible_type(&sub_scope)?;
                let l = self.coerce_soft(l, col_ty)?;
                let op = binop(compare_op)?;
                ops::binary_type(op, l.ty(), col_ty)?;
                sub.kind = SubqueryKind::Quantified {
                    expr: Box::new(l),
                    op,
                    all,
                };
                sub.ty = SqlType::Bool;
                Scalar::Subquery(Box::new(sub))
            }
            Expr::Extract { field, expr, .. } => {
                let inner = self.bind_expr_inner(expr, scope, d)?;
                let field = Scalar::Literal {
                    value: Value::Text(field.to_string().to_lowercase()),
                    ty: SqlType::Text,
                };
                self.call("extract", vec![field, inner])?
            }
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![self.bind_expr_inner(expr, scope, d)?];
                match substring_from {
                    Some(f) => args.push(self.bind_expr_inner(f, scope, d)?),
                    None => args.push(Scalar::Literal {
                        value: Value::Int(1),
                        ty: SqlType::Int4,
                    }),
                }
                if let Some(f) = substring_for {
                    args.push(self.bind_expr_inner(f, scope, d)?);
                }
                self.call("substr", args)?
            }
            Expr::Trim {
                expr,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                let name = match trim_where {
                    Some(ast::TrimWhereField::Leading) => "ltrim",
                    Some(ast::TrimWhereField::Trailing) => "rtrim",
                    _ => "btrim",
                };
                let mut args = vec![self.bind_expr_inner(expr, scope, d)?];
                if let Some(w) = trim_what {
                    args.push(self.bind_expr_inner(w, scope, d)?);
                } else if let Some(chars) = trim_characters
                    && let Some(c) = chars.first()
                {
                    args.push(self.bind_expr_inner(c, scope, d)?);
                }
                self.call(name, args)?
            }
            Expr::Position { expr, r#in } => {
                let needle = self.bind_expr_inner(expr, scope, d)?;
                let hay = self.bind_expr_inner(r#in, scope, d)?;
                self.call("strpos", vec![hay, needle])?
            }
            Expr::Ceil { expr, .. } => {
                let a = self.bind_expr_inner(expr, scope, d)?;
                self.call("ceil", vec![a])?
            }
            Expr::Floor { expr, .. } => {
                let a = self.bind_expr_inner(expr, scope, d)?;
                self.call("floor", vec![a])?
            }
            Expr::Array(a) => {
                let mut items = Vec::with_capacity(a.elem.len());
                for item in &a.elem {
                    items.push(self.bind_expr_inner(item, scope, d)?);
                }
                self.array_constructor(items)?
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                let arr = self.bind_expr_inner(root, scope, d)?;
                match access_chain.as_slice() {
                    [ast::AccessExpr::Subscript(ast::Subscript::Index { index })] => {
                        let index = self.bind_expr_inner(index, scope, d)?;
                        self.subscript(arr, index)?
                    }
                    [
                        ast::AccessExpr::Subscript(ast::Subscript::Slice {
                            lower_bound,
                            upper_bound,
                            stride: None,
                        }),
                    ] => {
                        // a missing bound is the array's own
                        let mut bound = |b: &Option<Expr>, missing: i64| -> SqlResult<Scalar> {
                            match b {
                                Some(e) => {
                                    let s = self.bind_expr_inner(e, scope, d)?;
                                    self.coerce(s, SqlType::Int4, "array subscript")
                                }
                                None => Ok(Scalar::literal(Value::Int(missing), SqlType::Int8)),
                            }
                        };
                        let lo = bound(lower_bound, 1)?;
                        let hi = bound(upper_bound, i64::MAX)?;
                        if arr.ty().element().is_none() {
                            return Err(SqlError::datatype_mismatch(format!(
                                "cannot subscript type {} because it does not support subscripting",
                                arr.ty()
                            )));
                        }
                        self.call("array_slice", vec![arr, lo, hi])?
                    }
                    _ => {
                        return Err(SqlError::unsupported(
                            "multidimensional subscripts are not supported",
                        ));
                    }
                }
            }
            Expr::Tuple(_) => return Err(SqlError::unsupported("row values are not supported")),
            other => {
                return Err(SqlError::unsupported(format!(
                    "unsupported expression: {other}"
                )));
            }
        })
    }

    fn bind_value(&mut self, v: &ast::Value) -> SqlResult<Scalar> {
        Ok(match v {
            ast::Value::Number(n, _) => number_literal(n)?,
            ast::Value::SingleQuotedString(s)
            | ast::Value::EscapedStringLiteral(s)
            | ast::Value::UnicodeStringLiteral(s)
            | ast::Value::DoubleQuotedString(s) => Scalar::Literal {
                value: Value::Text(s.clone()),
                ty: SqlType::Unknown,
            },
            ast::Value::DollarQuotedString(s) => Scalar::Literal {
                value: Value::Text(s.value.clone()),
                ty: SqlType::Unknown,
            },
            ast::Value::HexStringLiteral(h) => Scalar::Literal {
                value: Value::from_text(&format!("\\x{h}"), SqlType::Bytes)?,
                ty: SqlType::Bytes,
            },
            ast::Value::Boolean(b) => Scalar::Literal {
                value: Value::Bool(*b),
                ty: SqlType::Bool,
            },
            ast::Value::Null => Scalar::null(),
            ast::Value::Placeholder(p) => {
                let n: usize = p
                    .strip_prefix('$')
                    .and_then(|d| d.parse().ok())
                    .filter(|n| *n >= 1 && *n <= 65535)
                    .ok_or_else(|| SqlError::syntax(format!("invalid parameter {p}")))?;
                if self.params.len() < n {
                    self.params.resize(n, SqlType::Unknown);
                }
                Scalar::Param {
                    index: n - 1,
                    ty: self.params[n - 1],
                }
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "unsupported literal {other}"
                )));
            }
        })
    }

    /// The OID of the relation a `'name'::regclass` literal names: a system
    /// catalog's (PostgreSQL's OIDs), else a table of the statement's
    /// database (its descriptor id, as `pg_class.oid`).
    fn regclass_oid(&self, name: &str) -> SqlResult<i64> {
        let undefined = || {
            SqlError::new(
                codes::UNDEFINED_TABLE,
                format!("relation \"{name}\" does not exist"),
            )
        };
        let parts = crate::vtable::split_relation_name(name).ok_or_else(undefined)?;
        let (schema, table) = match parts.as_slice() {
            [t] => (None, t.as_str()),
            [s, t] => (Some(s.as_str()), t.as_str()),
            _ => return Err(undefined()),
        };
        if let Some(oid) = crate::vtable::catalog_table_oid(&parts) {
            return Ok(oid);
        }
        if matches!(schema, None | Some("public"))
            && let Some(t) = self.tables.get(table)
            && t.virtual_rows.is_none()
        {
            return Ok(i64::from(t.id));
        }
        Err(undefined())
    }

    /// A set-returning function in a select list: recorded for the query
    /// block's [`Rel::ProjectSet`], a placeholder in its place.
    fn bind_srf_call(
        &mut self,
        name: &str,
        args: &[Expr],
        odd_args: bool,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        if self.srfs.is_none() {
            return Err(SqlError::unsupported(format!(
                "set-returning function {name}() is supported only in FROM and at the top of a select list"
            )));
        }
        if odd_args {
            return Err(SqlError::syntax(format!("invalid arguments to {name}()")));
        }
        // No set-returning function inside another one's arguments.
        let saved = self.srfs.take();
        let bound: SqlResult<Vec<Scalar>> = args
            .iter()
            .map(|a| self.bind_expr_inner(a, scope, d).map(fold))
            .collect();
        self.srfs = saved;
        let bound = bound?;
        let types: Vec<SqlType> = bound.iter().map(|b| b.ty()).collect();
        let undefined = || {
            let list: Vec<String> = types.iter().map(|t| t.to_string()).collect();
            SqlError::undefined_function(format!(
                "function {name}({}) does not exist",
                list.join(", ")
            ))
        };
        let (args, ty) = match (name, types.as_slice()) {
            ("generate_series", [a, b] | [a, b, _]) if a.is_integer() || b.is_integer() => {
                let mut coerced = Vec::with_capacity(bound.len());
                for b in bound {
                    coerced.push(self.coerce(b, SqlType::Int8, "generate_series")?);
                }
                (coerced, SqlType::Int8)
            }
            ("generate_series", [SqlType::Unknown, SqlType::Unknown]) => {
                let mut coerced = Vec::with_capacity(bound.len());
                for b in bound {
                    coerced.push(self.coerce(b, SqlType::Int8, "generate_series")?);
                }
                (coerced, SqlType::Int8)
            }
            ("generate_series", _) => {
                // TODO(issue 13): generate_series over timestamps and numerics.
                return Err(undefined());
            }
            ("unnest", [t]) => match t.element() {
                Some(elem) => (bound, elem),
                None => return Err(undefined()),
            },
            ("unnest", _) => {
                return Err(SqlError::unsupported(
                    "unnest of several arrays is not supported",
                ));
            }
            ("generate_subscripts", [t, _]) if t.element().is_some() => {
                let mut it = bound.into_iter();
                let (Some(arr), Some(dim)) = (it.next(), it.next()) else {
                    return Err(undefined());
                };
                let dim = self.coerce(dim, SqlType::Int8, "generate_subscripts")?;
                (vec![arr, dim], SqlType::Int8)
            }
            ("jsonb_array_elements" | "jsonb_array_elements_text" | "jsonb_object_keys", [_]) => {
                let arg = bound.into_iter().next().ok_or_else(undefined)?;
                let arg = self.coerce(arg, SqlType::Jsonb, name)?;
                let ty = if name == "jsonb_array_elements" {
                    SqlType::Jsonb
                } else {
                    SqlType::Text
                };
                (vec![arg], ty)
            }
            _ => return Err(undefined()),
        };
        let srfs = self
            .srfs
            .as_mut()
            .ok_or_else(|| SqlError::internal("set-returning function context lost"))?;
        srfs.push(super::SrfCall {
            name: name.to_string(),
            args,
            ty,
        });
        Ok(Scalar::SrfRef {
            index: srfs.len() - 1,
            ty,
        })
    }

    fn bind_function(&mut self, f: &ast::Function, scope: &Scope, d: usize) -> SqlResult<Scalar> {
        let name = table_name(&f.name);
        if f.over.is_some() {
            return self.bind_window_call(f, &name, scope, d);
        }
        if window::is_window_function(&name) {
            return Err(SqlError::new(
                codes::WRONG_OBJECT_TYPE,
                format!("window function {name} requires an OVER clause"),
            ));
        }
        let mut order_by: &[ast::OrderByExpr] = &[];
        if let FunctionArguments::List(list) = &f.args {
            for clause in &list.clauses {
                match clause {
                    ast::FunctionArgumentClause::OrderBy(keys) => order_by = keys,
                    other => {
                        return Err(SqlError::unsupported(format!(
                            "unsupported clause {other} in {name}()"
                        )));
                    }
                }
            }
        }
        let (args, distinct, star) = match &f.args {
            FunctionArguments::None => (Vec::new(), false, false),
            FunctionArguments::Subquery(q) if name == "array" => {
                return self.array_subquery(q, scope);
            }
            FunctionArguments::Subquery(_) => {
                return Err(SqlError::unsupported("function over a subquery"));
            }
            FunctionArguments::List(list) => {
                let distinct = matches!(
                    list.duplicate_treatment,
                    Some(ast::DuplicateTreatment::Distinct)
                );
                let mut args = Vec::new();
                let mut star = false;
                for a in &list.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(e.clone()),
                        FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => star = true,
                        _ => {
                            return Err(SqlError::unsupported(format!(
                                "unsupported argument in {name}()"
                            )));
                        }
                    }
                }
                (args, distinct, star)
            }
        };
        if is_set_returning(&name) {
            return self.bind_srf_call(&name, &args, distinct || star, scope, d);
        }
        if is_aggregate(&name) {
            let Some(_) = &self.aggs else {
                return Err(SqlError::new(
                    codes::GROUPING_ERROR,
                    format!("aggregate functions are not allowed here ({name})"),
                ));
            };
            let outer_aggs = self.aggs.take();
            let outer_windows = self.windows.take();
            let outer_ban = std::mem::replace(&mut self.window_ban, WindowBan::Aggregate);
            let mut bound = Vec::new();
            let mut err = None;
            for a in &args {
                match self.bind_expr_inner(a, scope, d) {
                    Ok(s) => bound.push(s),
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            // ORDER BY inside the call: the keys are passed after the arguments.
            let mut order_keys = Vec::with_capacity(order_by.len() + 1);
            for ob in order_by {
                if err.is_some() {
                    break;
                }
                match self.bind_expr_inner(&ob.expr, scope, d) {
                    Ok(s) => order_keys.push(sort_key(s, &ob.options)),
                    Err(e) => err = Some(e),
                }
            }
            let filter = match (&f.filter, &err) {
                (Some(fe), None) => match self.bind_expr_inner(fe, scope, d) {
                    Ok(s) => Some(self.coerce_bool(s, "FILTER")?),
                    Err(e) => {
                        err = Some(e);
                        None
                    }
                },
                _ => None,
            };
            self.aggs = outer_aggs;
            self.windows = outer_windows;
            self.window_ban = outer_ban;
            if let Some(e) = err {
                return Err(e);
            }
            if star && name != "count" {
                return Err(SqlError::syntax(format!("{name}(*) is not valid")));
            }
            let bound: Vec<Scalar> = bound.into_iter().map(fold).collect();
            let bound = self.unknown_args_as_text(bound)?;
            let mut arg_types: Vec<SqlType> = bound.iter().map(|b| b.ty()).collect();
            let ty = agg::aggregate_type(&name, &arg_types)?;
            // PostgreSQL sorts a DISTINCT aggregate's input: array_agg(DISTINCT x)
            // comes out in x's order (NULL last).
            if distinct
                && order_keys.is_empty()
                && matches!(name.as_str(), "array_agg" | "string_agg" | "jsonb_agg")
                && let Some(first) = bound.first()
            {
                order_keys.push(SortKey {
                    expr: first.clone(),
                    descending: false,
                    nulls_first: false,
                });
            }
            let (name, bound) = if order_keys.is_empty() {
                (name, bound)
            } else {
                // The DISTINCT set is over the arguments and keys together, which
                // is the arguments' when the keys are among them.
                if distinct {
                    for k in &order_keys {
                        let key = fold(k.expr.clone());
                        if !bound.contains(&key) {
                            return Err(SqlError::new(
                                "42P10",
                                "in an aggregate with DISTINCT, ORDER BY expressions must appear in argument list",
                            ));
                        }
                    }
                }
                let spec: Vec<(bool, bool)> = order_keys
                    .iter()
                    .map(|k| (k.descending, k.nulls_first))
                    .collect();
                let mut bound = bound;
                for k in order_keys {
                    let key = fold(k.expr);
                    let key = if key.ty() == SqlType::Unknown {
                        self.coerce_soft(key, SqlType::Text)?
                    } else {
                        key
                    };
                    arg_types.push(key.ty());
                    bound.push(key);
                }
                (agg::ordered_name(&name, &spec), bound)
            };
            let aggs = self
                .aggs
                .as_mut()
                .ok_or_else(|| SqlError::internal("aggregate context lost"))?;
            aggs.push(AggCall {
                name,
                args: bound,
                arg_types,
                distinct,
                filter,
                ty,
            });
            return Ok(Scalar::AggRef {
                index: aggs.len() - 1,
                ty,
            });
        }
        if star {
            return Err(SqlError::syntax(format!("{name}(*) is not valid")));
        }
        if !order_by.is_empty() {
            return Err(SqlError::new(
                codes::WRONG_OBJECT_TYPE,
                format!("ORDER BY specified, but {name} is not an aggregate function"),
            ));
        }
        let mut bound = Vec::with_capacity(args.len());
        for a in &args {
            bound.push(self.bind_expr_inner(a, scope, d)?);
        }
        match name.as_str() {
            "coalesce" | "greatest" | "least" => {
                if bound.is_empty() {
                    return Err(SqlError::syntax(format!("{name} needs arguments")));
                }
                let types: Vec<SqlType> = bound.iter().map(|b| b.ty()).collect();
                let ty = ops::common_type(&types).map_err(|e| {
                    SqlError::datatype_mismatch(format!("{} {}", name.to_uppercase(), e.message))
                })?;
                let args = bound
                    .into_iter()
                    .map(|b| self.coerce_soft(b, ty))
                    .collect::<SqlResult<Vec<_>>>()?;
                Ok(match name.as_str() {
                    "coalesce" => Scalar::Coalesce { args, ty },
                    n => Scalar::Extreme {
                        args,
                        greatest: n == "greatest",
                        ty,
                    },
                })
            }
            "nullif" => {
                if bound.len() != 2 {
                    return Err(SqlError::undefined_function(
                        "function nullif needs 2 arguments",
                    ));
                }
                let r = bound.pop().ok_or_else(|| SqlError::internal("nullif"))?;
                let l = bound.pop().ok_or_else(|| SqlError::internal("nullif"))?;
                let ty = ops::common_type(&[l.ty(), r.ty()])?;
                let l = self.coerce_soft(l, ty)?;
                let r = self.coerce_soft(r, ty)?;
                Ok(Scalar::NullIf {
                    left: Box::new(l),
                    right: Box::new(r),
                    ty,
                })
            }
            "nextval" => match bound.as_slice() {
                [
                    Scalar::Literal {
                        value: Value::Text(s),
                        ..
                    },
                ] => {
                    let id = self.next_subquery;
                    self.next_subquery += 1;
                    Ok(Scalar::NextVal {
                        sequence: s.to_lowercase(),
                        id,
                    })
                }
                _ => Err(SqlError::unsupported(
                    "nextval takes a sequence name literal",
                )),
            },
            "unique_rowid" => Ok(Scalar::UniqueRowId),
            "now"
            | "current_timestamp"
            | "transaction_timestamp"
            | "statement_timestamp"
            | "clock_timestamp" => Ok(Scalar::Func {
                name: "now".into(),
                args: vec![],
                ty: SqlType::TimestampTz,
            }),
            "current_date" => Ok(Scalar::Func {
                name: "current_date".into(),
                args: vec![],
                ty: SqlType::Date,
            }),
            "localtimestamp" => Ok(Scalar::Func {
                name: "localtimestamp".into(),
                args: vec![],
                ty: SqlType::Timestamp,
            }),
            "version" | "current_database" | "current_user" | "session_user" | "current_schema"
            | "user" => Ok(Scalar::Func {
                name,
                args: vec![],
                ty: SqlType::Text,
            }),
            _ => self.call(&name, bound),
        }
    }

    /// A call of a built-in scalar function; untyped literals become text.
    fn call(&mut self, name: &str, args: Vec<Scalar>) -> SqlResult<Scalar> {
        if matches!(
            name,
            "pg_get_indexdef" | "pg_get_constraintdef" | "pg_get_viewdef"
        ) && !args.is_empty()
        {
            return self.catalog_definition(args);
        }
        // `to_regclass('name')`: the relation's OID, NULL when there is none.
        // TODO(issue 13): a name known only when the statement runs.
        if name == "to_regclass"
            && let [Scalar::Literal { value, .. }] = args.as_slice()
        {
            let oid = match value {
                Value::Text(n) => self.regclass_oid(n).ok().map_or(Value::Null, Value::Int),
                _ => Value::Null,
            };
            return Ok(Scalar::literal(oid, SqlType::Oid));
        }
        let args = args
            .into_iter()
            .map(|a| {
                if a.ty() == SqlType::Unknown
                    && !matches!(
                        a,
                        Scalar::Literal {
                            value: Value::Null,
                            ..
                        }
                    )
                {
                    self.coerce_soft(a, SqlType::Text)
                } else {
                    Ok(a)
                }
            })
            .collect::<SqlResult<Vec<_>>>()?;
        let types: Vec<SqlType> = args.iter().map(|a| a.ty()).collect();
        let ty = ops::function_type(name, &types)?;
        Ok(Scalar::Func {
            name: name.to_string(),
            args,
            ty,
        })
    }

    /// `pg_get_indexdef(oid [, column, pretty])`, `pg_get_constraintdef(oid
    /// [, pretty])`, `pg_get_viewdef(oid [, pretty])`: the definition of the
    /// object with that OID, from the statement's catalog snapshot
    /// ([`crate::vtable::definitions`]), as a `CASE` over the OIDs (NULL for
    /// an unknown one, as in PostgreSQL). Only the whole index definition
    /// (column 0) is supported.
    fn catalog_definition(&mut self, mut args: Vec<Scalar>) -> SqlResult<Scalar> {
        let oid = self.coerce_soft(args.swap_remove(0), SqlType::Int8)?;
        let whens = match self.tables.get(crate::vtable::DEFINITIONS) {
            Some(defs) => defs
                .virtual_rows
                .iter()
                .flat_map(|rows| rows.iter())
                .filter_map(|r| match (r.first(), r.get(1)) {
                    (Some(o), Some(d)) => Some((
                        Scalar::Binary {
                            op: BinOp::Eq,
                            left: Box::new(oid.clone()),
                            right: Box::new(Scalar::Literal {
                                value: o.clone(),
                                ty: SqlType::Int8,
                            }),
                            ty: SqlType::Bool,
                        },
                        Scalar::Literal {
                            value: d.clone(),
                            ty: SqlType::Text,
                        },
                    )),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        };
        if whens.is_empty() {
            return Ok(Scalar::Literal {
                value: Value::Null,
                ty: SqlType::Text,
            });
        }
        Ok(Scalar::Case {
            operand: None,
            whens,
            otherwise: None,
            ty: SqlType::Text,
        })
    }

    /// `ARRAY[a, b, …]`: the elements coerced to their common type.
    fn array_constructor(&mut self, items: Vec<Scalar>) -> SqlResult<Scalar> {
        if items.is_empty() {
            return Err(
                SqlError::new("42P18", "cannot determine type of empty array").with_hint(
                    "Explicitly cast to the desired type, for example ARRAY[]::integer[].",
                ),
            );
        }
        let types: Vec<SqlType> = items.iter().map(Scalar::ty).collect();
        if types.iter().any(|t| t.element().is_some()) {
            // TODO(issue 4): multidimensional arrays.
            return Err(SqlError::unsupported(
                "multidimensional arrays are not supported",
            ));
        }
        let ty = ops::common_type_for("ARRAY", &types)?;
        let args = items
            .into_iter()
            .map(|i| self.coerce(i, ty, "ARRAY"))
            .collect::<SqlResult<Vec<_>>>()?;
        Ok(Scalar::Func {
            name: "array".into(),
            args,
            ty: SqlType::array_of(ty),
        })
    }

    /// `ARRAY(SELECT …)`: the subquery's rows, in its order, as
    /// `COALESCE((SELECT array_agg(x) FROM (…)), '{}')`.
    fn array_subquery(&mut self, q: &Query, scope: &Scope) -> SqlResult<Scalar> {
        let (mut sub, sub_scope) = self.bind_subquery(q, scope)?;
        let [column] = sub_scope.as_slice() else {
            return Err(SqlError::syntax("subquery must return only one column"));
        };
        let elem = match column.ty {
            SqlType::Unknown => SqlType::Text,
            t => t,
        };
        let ty = agg::aggregate_type("array_agg", &[elem])?;
        let input = Arc::unwrap_or_clone(sub.plan);
        sub.plan = Arc::new(Rel::Aggregate {
            input: Box::new(input),
            group: Vec::new(),
            aggs: vec![AggCall {
                name: "array_agg".into(),
                args: vec![Scalar::Column {
                    index: 0,
                    ty: column.ty,
                }],
                arg_types: vec![elem],
                distinct: false,
                filter: None,
                ty,
            }],
        });
        sub.kind = SubqueryKind::Scalar;
        sub.ty = ty;
        Ok(Scalar::Coalesce {
            args: vec![
                Scalar::Subquery(Box::new(sub)),
                Scalar::literal(Value::Array(Vec::new()), ty),
            ],
            ty,
        })
    }

    /// `arr[i]`: 1-based, NULL out of range.
    fn subscript(&mut self, arr: Scalar, index: Scalar) -> SqlResult<Scalar> {
        let Some(elem) = arr.ty().element() else {
            return Err(SqlError::datatype_mismatch(format!(
                "cannot subscript type {} because it does not support subscripting",
                arr.ty()
            )));
        };
        let index = self.coerce(index, SqlType::Int4, "array subscript")?;
        Ok(Scalar::Func {
            name: "array_subscript".into(),
            args: vec![arr, index],
            ty: elem,
        })
    }

    /// `l op ANY (array)` / `l op ALL (array)`.
    fn quantified_array(
        &mut self,
        op: BinOp,
        all: bool,
        l: Scalar,
        r: Scalar,
    ) -> SqlResult<Scalar> {
        let r = if r.ty() == SqlType::Unknown {
            let elem = match l.ty() {
                SqlType::Unknown => SqlType::Text,
                t => t,
            };
            self.coerce_soft(r, SqlType::array_of(elem))?
        } else {
            r
        };
        let Some(elem) = r.ty().element() else {
            return Err(SqlError::new(
                codes::WRONG_OBJECT_TYPE,
                "op ANY/ALL (array) requires array on right side",
            ));
        };
        let l = self.coerce_soft(l, elem)?;
        if ops::binary_type(op, l.ty(), elem)? != SqlType::Bool {
            return Err(SqlError::datatype_mismatch(
                "op ANY/ALL (array) requires operator to yield boolean",
            ));
        }
        Ok(Scalar::Func {
            name: tardigrade_sqltypes::array::quantified_name(op, all),
            args: vec![l, r],
            ty: SqlType::Bool,
        })
    }

    /// `a @> b`, `a <@ b`, `a && b` between arrays (an untyped side takes the
    /// other's type).
    fn array_containment(
        &mut self,
        name: &str,
        op: &BinaryOperator,
        l: Scalar,
        r: Scalar,
    ) -> SqlResult<Scalar> {
        let (l, r) = match (l.ty(), r.ty()) {
            (SqlType::Unknown, t @ SqlType::Array(_)) => (self.coerce_soft(l, t)?, r),
            (t @ SqlType::Array(_), SqlType::Unknown) => {
                let r = self.coerce_soft(r, t)?;
                (l, r)
            }
            _ => (l, r),
        };
        let types = [l.ty(), r.ty()];
        match ops::function_type(name, &types) {
            Ok(ty) => Ok(Scalar::Func {
                name: name.into(),
                args: vec![l, r],
                ty,
            }),
            Err(_) => Err(SqlError::undefined_function(format!(
                "operator does not exist: {} {op} {}",
                types[0], types[1]
            ))),
        }
    }

    /// `||` with an array operand: array_cat, array_append or array_prepend.
    fn array_concat(&mut self, l: Scalar, r: Scalar) -> SqlResult<Scalar> {
        let (lt, rt) = (l.ty(), r.ty());
        let (name, l, r) = match (lt.element(), rt.element()) {
            (Some(_), Some(_)) => ("array_cat", l, r),
            (Some(_), None) if rt == SqlType::Unknown => {
                let r = self.coerce_soft(r, lt)?;
                ("array_cat", l, r)
            }
            (None, Some(_)) if lt == SqlType::Unknown => {
                let l = self.coerce_soft(l, rt)?;
                ("array_cat", l, r)
            }
            (Some(e), None) => {
                let r = self.coerce(r, e, "array_append")?;
                ("array_append", l, r)
            }
            (None, Some(e)) => {
                let l = self.coerce(l, e, "array_prepend")?;
                ("array_prepend", l, r)
            }
            (None, None) => return Err(SqlError::internal("array_concat without an array")),
        };
        let ty = ops::function_type(name, &[l.ty(), r.ty()])?;
        Ok(Scalar::Func {
            name: name.into(),
            args: vec![l, r],
            ty,
        })
    }

    fn bind_subquery(&mut self, q: &Query, scope: &Scope) -> SqlResult<(Subquery, Scope)> {
        self.outer.push(scope.clone());
        self.correlated.push(false);
        let saved_aggs = self.aggs.take();
        let bound = self.bind_query(q);
        self.aggs = saved_aggs;
        let correlated = self.correlated.pop().unwrap_or(false);
        self.outer.pop();
        let bound = bound?;
        let id = self.next_subquery;
        self.next_subquery += 1;
        // Only the visible columns come out of a subquery.
        let visible: Vec<usize> = bound
            .scope
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.hidden)
            .map(|(i, _)| i)
            .collect();
        let rel = if visible.len() == bound.scope.len() {
            bound.rel
        } else {
            Rel::Project {
                input: Box::new(bound.rel),
                exprs: visible
                    .iter()
                    .map(|i| Scalar::Column {
                        index: *i,
                        ty: bound.scope[*i].ty,
                    })
                    .collect(),
            }
        };
        let scope: Scope = visible.iter().map(|i| bound.scope[*i].clone()).collect();
        Ok((
            Subquery {
                id,
                plan: Arc::new(rel),
                kind: SubqueryKind::Scalar,
                correlated,
                ty: SqlType::Unknown,
            },
            scope,
        ))
    }

    /// `(a, b) IN (SELECT x, y …)`, with PostgreSQL's NULLs: true when a
    /// row equals, else NULL when a row's comparison is NULL, else false.
    /// Bound as the scalar subquery
    /// `(SELECT CASE WHEN bool_or(c) THEN true WHEN bool_or(c IS NULL)
    /// THEN NULL ELSE false END FROM (…) AS s(x, y))` with `c` the row
    /// comparison `a = s.x AND b = s.y`.
    /// TODO(issue 13): it runs once per outer row; decorrelate it into a
    /// semi join when the columns are NOT NULL.
    fn row_in_subquery(
        &mut self,
        items: &[Expr],
        q: &Query,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let (_, sub_scope) = self.bind_subquery(q, scope)?;
        match sub_scope.len().cmp(&items.len()) {
            std::cmp::Ordering::Greater => {
                return Err(SqlError::syntax("subquery has too many columns"));
            }
            std::cmp::Ordering::Less => {
                return Err(SqlError::syntax("subquery has too few columns"));
            }
            std::cmp::Ordering::Equal => {}
        }
        let alias = "\"tardigrade:row_in\"";
        let column = |i: usize| format!("\"tardigrade:{i}\"");
        let columns: Vec<String> = (0..items.len()).map(column).collect();
        let cmp: Vec<String> = items
            .iter()
            .enumerate()
            .map(|(i, e)| format!("({e}) = {alias}.{}", column(i)))
            .collect();
        let c = format!("({})", cmp.join(" AND "));
        let text = format!(
            "(SELECT CASE WHEN bool_or({c}) THEN true WHEN bool_or({c} IS NULL) THEN NULL ELSE false END FROM ({q}) AS {alias}({}))",
            columns.join(", ")
        );
        let e = super::dml::parse_stored_expr(&text)?;
        self.bind_expr_inner(&e, scope, d)
    }

    /// The columns of a sub-SELECT that gives one row (`SET (a, b) =
    /// (SELECT x, y …)`), each a scalar subquery: NULLs when it gives no
    /// row, 21000 when more than one.
    /// TODO(issue 13): the sub-SELECT runs once per column, not once.
    pub(crate) fn bind_row_subquery(&mut self, q: &Query, scope: &Scope) -> SqlResult<Vec<Scalar>> {
        let (sub, sub_scope) = self.bind_subquery(q, scope)?;
        let mut out = Vec::with_capacity(sub_scope.len());
        for (i, c) in sub_scope.iter().enumerate() {
            let id = self.next_subquery;
            self.next_subquery += 1;
            out.push(Scalar::Subquery(Box::new(Subquery {
                id,
                plan: Arc::new(Rel::Project {
                    input: Box::new((*sub.plan).clone()),
                    exprs: vec![Scalar::Column { index: i, ty: c.ty }],
                }),
                kind: SubqueryKind::Scalar,
                correlated: sub.correlated,
                ty: c.ty,
            })));
        }
        Ok(out)
    }

    /// Resolves a (possibly qualified) column name in `scope`, then in the
    /// enclosing scopes.
    fn resolve(&mut self, parts: &[String], scope: &Scope) -> SqlResult<Scalar> {
        let (qualifier, name) = match parts {
            [name] => (None, name.as_str()),
            [.., table, name] => (Some(table.as_str()), name.as_str()),
            [] => return Err(SqlError::syntax("empty name")),
        };
        if let Some(index) = find_column(scope, qualifier, name)? {
            return Ok(Scalar::Column {
                index,
                ty: scope[index].ty,
            });
        }
        for depth in 1..=self.outer.len() {
            let outer_scope = &self.outer[self.outer.len() - depth];
            if let Some(index) = find_column(outer_scope, qualifier, name)? {
                let ty = outer_scope[index].ty;
                let n = self.correlated.len();
                for k in 0..depth.min(n) {
                    self.correlated[n - 1 - k] = true;
                }
                return Ok(Scalar::Outer { depth, index, ty });
            }
        }
        // `SELECT current_timestamp` and friends parse as identifiers.
        if qualifier.is_none() {
            match name {
                "current_timestamp" | "now" => {
                    return Ok(Scalar::Func {
                        name: "now".into(),
                        args: vec![],
                        ty: SqlType::TimestampTz,
                    });
                }
                "current_date" => {
                    return Ok(Scalar::Func {
                        name: "current_date".into(),
                        args: vec![],
                        ty: SqlType::Date,
                    });
                }
                "localtimestamp" => {
                    return Ok(Scalar::Func {
                        name: "localtimestamp".into(),
                        args: vec![],
                        ty: SqlType::Timestamp,
                    });
                }
                "current_user" | "session_user" | "user" | "current_schema" | "current_catalog" => {
                    return Ok(Scalar::Func {
                        name: name.to_string(),
                        args: vec![],
                        ty: SqlType::Text,
                    });
                }
                _ => {}
            }
        }
        match qualifier {
            Some(q)
                if !scope.iter().any(|c| c.table.as_deref() == Some(q))
                    && !self
                        .outer
                        .iter()
                        .any(|s| s.iter().any(|c| c.table.as_deref() == Some(q))) =>
            {
                Err(SqlError::new(
                    codes::UNDEFINED_TABLE,
                    format!("missing FROM-clause entry for table \"{q}\""),
                ))
            }
            Some(q) => Err(SqlError::undefined_column(&format!("{q}.{name}"))),
            None => Err(SqlError::undefined_column(name)),
        }
    }

    // ----- typing -----

    /// A binary operation, with untyped literals and parameters taking the other
    /// side's type.
    pub fn binary(&mut self, op: BinOp, l: Scalar, r: Scalar) -> SqlResult<Scalar> {
        if op == BinOp::Concat && (l.ty().element().is_some() || r.ty().element().is_some()) {
            return self.array_concat(l, r);
        }
        let (l, r) = if matches!(op, BinOp::And | BinOp::Or) {
            (
                self.coerce_bool(l, op_name(op))?,
                self.coerce_bool(r, op_name(op))?,
            )
        } else if matches!(
            op,
            BinOp::Like | BinOp::NotLike | BinOp::ILike | BinOp::NotILike | BinOp::Concat
        ) {
            let l = if l.ty() == SqlType::Unknown {
                self.coerce_soft(l, SqlType::Text)?
            } else {
                l
            };
            let r = if r.ty() == SqlType::Unknown {
                self.coerce_soft(r, SqlType::Text)?
            } else {
                r
            };
            (l, r)
        } else if matches!(op, BinOp::JsonGet | BinOp::JsonGetText) {
            // `->` with an untyped literal takes it as a key (text), as PostgreSQL
            // resolves jsonb -> unknown.
            let r = if r.ty() == SqlType::Unknown {
                self.coerce_soft(r, SqlType::Text)?
            } else {
                r
            };
            (l, r)
        } else {
            match (l.ty(), r.ty()) {
                (SqlType::Unknown, SqlType::Unknown) => (
                    self.coerce_soft(l, SqlType::Text)?,
                    self.coerce_soft(r, SqlType::Text)?,
                ),
                (SqlType::Unknown, t) => (self.coerce_operand(l, t, op)?, r),
                (t, SqlType::Unknown) => {
                    let r = self.coerce_operand(r, t, op)?;
                    (l, r)
                }
                _ => (l, r),
            }
        };
        let ty = ops::binary_type(op, l.ty(), r.ty())?;
        Ok(Scalar::Binary {
            op,
            left: Box::new(l),
            right: Box::new(r),
            ty,
        })
    }

    /// The type an untyped operand takes next to an operand of type `other`.
    fn coerce_operand(&mut self, s: Scalar, other: SqlType, op: BinOp) -> SqlResult<Scalar> {
        // date/timestamp + 'literal' means an interval; otherwise the same type.
        // (`-` keeps the other side's type: PostgreSQL reads `ts - '…'` as
        // timestamp - timestamp.)
        let target = match (op, other) {
            (BinOp::Add, SqlType::Date | SqlType::Timestamp | SqlType::TimestampTz)
                if matches!(s, Scalar::Literal { .. }) =>
            {
                SqlType::Interval
            }
            _ => other,
        };
        self.coerce_soft(s, target)
    }

    /// Aggregate arguments whose type is still unknown (string literals)
    /// taken as text, as PostgreSQL resolves them.
    pub(crate) fn unknown_args_as_text(&mut self, args: Vec<Scalar>) -> SqlResult<Vec<Scalar>> {
        args.into_iter()
            .map(|b| {
                if b.ty() == SqlType::Unknown {
                    self.coerce_soft(b, SqlType::Text)
                } else {
                    Ok(b)
                }
            })
            .collect()
    }

    /// Gives an untyped literal or parameter a type; leaves typed expressions alone.
    pub fn coerce_soft(&mut self, s: Scalar, ty: SqlType) -> SqlResult<Scalar> {
        if ty == SqlType::Unknown || s.ty() != SqlType::Unknown {
            return Ok(s);
        }
        match s {
            Scalar::Literal {
                value: Value::Null, ..
            } => Ok(Scalar::Literal {
                value: Value::Null,
                ty,
            }),
            Scalar::Literal {
                value: Value::Text(t),
                ..
            } => Ok(Scalar::Literal {
                value: Value::from_text(&t, ty)?,
                ty,
            }),
            Scalar::Param { index, .. } => {
                if let Some(p) = self.params.get_mut(index) {
                    *p = ty;
                }
                Ok(Scalar::Param { index, ty })
            }
            other => Ok(Scalar::Cast {
                expr: Box::new(other),
                to: ty,
            }),
        }
    }

    /// Coerces to `ty` as an assignment would (implicit casts between numeric
    /// types and from untyped literals); other mismatches are 42804.
    pub fn coerce(&mut self, s: Scalar, ty: SqlType, context: &str) -> SqlResult<Scalar> {
        let from = s.ty();
        if from == SqlType::Unknown {
            return self.coerce_soft(s, ty);
        }
        if from == ty {
            return Ok(s);
        }
        if !assignable(from, ty) {
            return Err(SqlError::datatype_mismatch(format!(
                "{context}: expected {ty}, found {from}"
            )));
        }
        // A string going into VARCHAR(n)/CHAR(n) (or an array of them) is not
        // cut here as an explicit cast would cut it: the assignment checks its
        // length (22001) when it stores it.
        let unbounded = |t: SqlType| match t {
            SqlType::Varchar(Some(_)) | SqlType::Char(_) => SqlType::Text,
            t => t,
        };
        let (fe, te) = (from.element().unwrap_or(from), ty.element().unwrap_or(ty));
        if fe.is_string() && unbounded(te) != te {
            let target = match ty.element() {
                Some(e) => SqlType::array_of(unbounded(e)),
                None => unbounded(ty),
            };
            return if from == target {
                Ok(s)
            } else {
                self.cast(s, target)
            };
        }
        self.cast(s, ty)
    }

    pub fn coerce_bool(&mut self, s: Scalar, context: &str) -> SqlResult<Scalar> {
        match s.ty() {
            SqlType::Bool => Ok(s),
            SqlType::Unknown => self.coerce_soft(s, SqlType::Bool),
            other => Err(SqlError::datatype_mismatch(format!(
                "argument of {context} must be type boolean, not type {other}"
            ))),
        }
    }

    /// An explicit cast.
    pub fn cast(&mut self, s: Scalar, to: SqlType) -> SqlResult<Scalar> {
        let from = s.ty();
        if from == SqlType::Unknown {
            return self.coerce_soft(s, to);
        }
        if from == to {
            return Ok(s);
        }
        if !ops::can_cast(from, to) {
            // between arrays PostgreSQL names the element types that do not cast
            let (f, t) = match (from.element(), to.element()) {
                (Some(f), Some(t)) => (f, t),
                _ => (from, to),
            };
            return Err(SqlError::new(
                codes::CANNOT_COERCE,
                format!("cannot cast type {f} to {t}"),
            ));
        }
        Ok(Scalar::Cast {
            expr: Box::new(s),
            to,
        })
    }
}

/// Whether a value of type `from` converts implicitly to `to` in an assignment
/// (arrays when their elements do).
fn assignable(from: SqlType, to: SqlType) -> bool {
    if let (Some(f), Some(t)) = (from.element(), to.element()) {
        return f == t || f == SqlType::Unknown || assignable(f, t);
    }
    (from.is_numeric() && to.is_numeric())
        || (from.is_string() && to.is_string())
        || matches!(
            (from, to),
            (SqlType::Date, SqlType::Timestamp | SqlType::TimestampTz)
                | (SqlType::Timestamp, SqlType::TimestampTz)
                | (SqlType::TimestampTz, SqlType::Timestamp)
        )
        || to.is_string()
}

enum SortTarget {
    Output(usize),
    Expr(Scalar),
}

/// Whether a FROM item may read the items before it: `LATERAL (…)` and
/// functions (implicitly lateral, as in PostgreSQL).
fn is_lateral(factor: &TableFactor) -> bool {
    match factor {
        TableFactor::Derived { lateral, .. } => *lateral,
        TableFactor::Table { args, .. } => args.is_some(),
        TableFactor::Function { .. } | TableFactor::UNNEST { .. } => true,
        _ => false,
    }
}

/// The join of a FROM item with the items before it: a [`Rel::Lateral`]
/// when the right side reads the left row (`correlated`), else a plain join.
/// TODO(issue 13): decorrelate lateral subqueries whose correlation is a
/// filter (as `semi_join` does for EXISTS) instead of running them per row.
fn lateral_join(
    kind: JoinKind,
    left: Rel,
    right: Rel,
    on: Option<Scalar>,
    correlated: bool,
) -> Rel {
    if correlated {
        return Rel::Lateral {
            kind,
            left: Box::new(left),
            right: Box::new(right),
            on,
        };
    }
    let left_width = left.width();
    let equi = on
        .as_ref()
        .map(|o| equi_pairs(o, left_width))
        .unwrap_or_default();
    Rel::Join {
        kind,
        left: Box::new(left),
        right: Box::new(right),
        on,
        equi,
    }
}

fn sort_key(expr: Scalar, options: &ast::OrderByOptions) -> SortKey {
    let descending = matches!(options.sort, Some(ast::OrderBySort::Desc));
    // PostgreSQL: NULLs sort as larger than everything by default.
    let nulls_first = options.nulls_first.unwrap_or(descending);
    SortKey {
        expr,
        descending,
        nulls_first,
    }
}

fn first_visible_type(scope: &Scope) -> SqlResult<SqlType> {
    let visible: Vec<&ScopeColumn> = scope.iter().filter(|c| !c.hidden).collect();
    if visible.len() != 1 {
        return Err(SqlError::syntax("subquery has too many columns"));
    }
    Ok(visible[0].ty)
}

/// The column `qualifier.name` (or `name`) of `scope`. Unqualified, a hidden
/// column (the implicit `rowid`, a column a USING join merged) is found only
/// when no visible one has the name.
fn find_column(scope: &Scope, qualifier: Option<&str>, name: &str) -> SqlResult<Option<usize>> {
    let visible = qualifier.is_none() && scope.iter().any(|c| c.name == name && !c.hidden);
    let mut found = None;
    for (i, c) in scope.iter().enumerate() {
        if c.name != name {
            continue;
        }
        match qualifier {
            Some(q) if c.table.as_deref() != Some(q) => continue,
            None if c.hidden && (c.table.is_none() || visible) => continue,
            _ => {}
        }
        if found.is_some() {
            return Err(SqlError::new(
                codes::AMBIGUOUS_COLUMN,
                format!("column reference \"{name}\" is ambiguous"),
            ));
        }
        found = Some(i);
    }
    Ok(found)
}

fn apply_alias(
    rel: Rel,
    mut scope: Scope,
    alias: Option<&ast::TableAlias>,
    default_name: &str,
) -> (Rel, Scope) {
    let name = alias
        .map(|a| normalize(&a.name))
        .unwrap_or_else(|| default_name.to_string());
    for c in &mut scope {
        c.table = Some(name.clone());
    }
    if let Some(a) = alias {
        let mut visible = scope.iter_mut().filter(|c| !c.hidden);
        for col in &a.columns {
            if let Some(c) = visible.next() {
                c.name = normalize(&col.name);
            }
        }
    }
    (rel, scope)
}

/// Projects the visible columns of a set-operation side, cast to the common types.
/// `inputs` (at least one, in order) combined pairwise by an associative set
/// operation: a tree of depth log2(n).
fn balanced_set_op(op: SetOpKind, all: bool, inputs: Vec<Rel>) -> Rel {
    crate::parse::nesting::combine_balanced(inputs, |left, right| Rel::SetOp {
        op,
        all,
        left: Box::new(left),
        right: Box::new(right),
    })
    .unwrap_or(Rel::Values {
        rows: Vec::new(),
        types: Vec::new(),
    })
}

fn project_visible_as(rel: Rel, scope: &Scope, types: &[SqlType]) -> Rel {
    let visible: Vec<usize> = scope
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.hidden)
        .map(|(i, _)| i)
        .collect();
    let needs =
        visible.len() != scope.len() || visible.iter().zip(types).any(|(i, t)| scope[*i].ty != *t);
    if !needs {
        return rel;
    }
    let exprs = visible
        .iter()
        .zip(types)
        .map(|(i, t)| {
            let col = Scalar::Column {
                index: *i,
                ty: scope[*i].ty,
            };
            if scope[*i].ty == *t {
                col
            } else {
                Scalar::Cast {
                    expr: Box::new(col),
                    to: *t,
                }
            }
        })
        .collect();
    Rel::Project {
        input: Box::new(rel),
        exprs,
    }
}

/// Output name of an unaliased select item, as PostgreSQL picks it.
pub fn column_name_of(e: &Expr) -> String {
    match e {
        Expr::Identifier(id) => normalize(id),
        Expr::CompoundIdentifier(ids) => ids
            .last()
            .map(normalize)
            .unwrap_or_else(|| "?column?".into()),
        Expr::Function(f) => table_name(&f.name),
        // A cast keeps its operand's name when that is a real one (a
        // column, a function, CASE, ARRAY, a subquery), as PostgreSQL's
        // FigureColname does; a constant or another cast names it after the type.
        Expr::Cast {
            expr, data_type, ..
        } => match expr.as_ref() {
            Expr::Cast { .. } | Expr::TypedString(_) | Expr::Value(_) | Expr::Interval(_) => {
                type_column_name(data_type)
            }
            inner => match column_name_of(inner) {
                n if n == "?column?" => type_column_name(data_type),
                n => n,
            },
        },
        Expr::Nested(inner) => column_name_of(inner),
        Expr::Case { .. } => "case".into(),
        Expr::Array(_) => "array".into(),
        Expr::CompoundFieldAccess { root, .. } => column_name_of(root),
        Expr::Exists { .. } => "exists".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Substring { shorthand, .. } => if *shorthand { "substr" } else { "substring" }.into(),
        Expr::Trim { trim_where, .. } => match trim_where {
            Some(ast::TrimWhereField::Leading) => "ltrim",
            Some(ast::TrimWhereField::Trailing) => "rtrim",
            _ => "btrim",
        }
        .into(),
        Expr::Interval(_) => "interval".into(),
        Expr::Position { .. } => "position".into(),
        Expr::Ceil { .. } => "ceil".into(),
        Expr::Floor { .. } => "floor".into(),
        Expr::Subquery(q) => match q.body.as_ref() {
            SetExpr::Select(s) => match s.projection.first() {
                Some(SelectItem::UnnamedExpr(e)) => column_name_of(e),
                Some(SelectItem::ExprWithAlias { alias, .. }) => normalize(alias),
                _ => "?column?".into(),
            },
            _ => "?column?".into(),
        },
        Expr::Value(v) if matches!(v.value, ast::Value::Boolean(_)) => "bool".into(),
        Expr::TypedString(ts) => type_column_name(&ts.data_type),
        _ => "?column?".into(),
    }
}

fn type_column_name(dt: &DataType) -> String {
    // PostgreSQL names an array cast after the element type (`'{1}'::int[]` is int4).
    if let DataType::Array(
        ast::ArrayElemTypeDef::SquareBracket(inner, _) | ast::ArrayElemTypeDef::Qualified(inner, _),
    ) = dt
    {
        return type_column_name(inner);
    }
    // the reg* types are oids here, but name their column after themselves
    match dt {
        DataType::Regclass => return "regclass".into(),
        DataType::Custom(n, _) if table_name(n).starts_with("reg") => return table_name(n),
        _ => {}
    }
    match sql_type_of(dt) {
        Ok(SqlType::Int2) => "int2".into(),
        Ok(SqlType::Int4) => "int4".into(),
        Ok(SqlType::Int8) => "int8".into(),
        Ok(SqlType::Float4) => "float4".into(),
        Ok(SqlType::Float8) => "float8".into(),
        Ok(SqlType::Decimal(_)) => "numeric".into(),
        Ok(SqlType::Bool) => "bool".into(),
        Ok(SqlType::Text) => "text".into(),
        Ok(SqlType::Varchar(_)) => "varchar".into(),
        Ok(SqlType::Char(_)) => "bpchar".into(),
        Ok(SqlType::Bytes) => "bytea".into(),
        Ok(SqlType::Date) => "date".into(),
        Ok(SqlType::Timestamp) => "timestamp".into(),
        Ok(SqlType::TimestampTz) => "timestamptz".into(),
        Ok(SqlType::Interval) => "interval".into(),
        Ok(SqlType::Uuid) => "uuid".into(),
        Ok(SqlType::Jsonb) => "jsonb".into(),
        Ok(SqlType::Oid) => "oid".into(),
        _ => "?column?".into(),
    }
}

/// An integer literal is int4 when it fits, else int8, else numeric; a literal
/// with a point or exponent is numeric (PostgreSQL's rules).
fn number_literal(n: &str) -> SqlResult<Scalar> {
    if !n.contains(['.', 'e', 'E'])
        && let Ok(v) = n.parse::<i64>()
    {
        {
            let ty = if i32::try_from(v).is_ok() {
                SqlType::Int4
            } else {
                SqlType::Int8
            };
            return Ok(Scalar::Literal {
                value: Value::Int(v),
                ty,
            });
        }
    }
    let ty = SqlType::Decimal(None);
    Ok(Scalar::Literal {
        value: Value::from_text(n, ty)?,
        ty,
    })
}

fn op_name(op: BinOp) -> &'static str {
    match op {
        BinOp::And => "AND",
        BinOp::Or => "OR",
        _ => "operator",
    }
}

fn binop(op: &BinaryOperator) -> SqlResult<BinOp> {
    Ok(match op {
        BinaryOperator::Plus => BinOp::Add,
        BinaryOperator::Minus => BinOp::Sub,
        BinaryOperator::Multiply => BinOp::Mul,
        BinaryOperator::Divide => BinOp::Div,
        BinaryOperator::Modulo => BinOp::Mod,
        BinaryOperator::PGExp => BinOp::Pow,
        BinaryOperator::StringConcat => BinOp::Concat,
        BinaryOperator::Gt => BinOp::Gt,
        BinaryOperator::Lt => BinOp::Lt,
        BinaryOperator::GtEq => BinOp::GtEq,
        BinaryOperator::LtEq => BinOp::LtEq,
        BinaryOperator::Eq => BinOp::Eq,
        BinaryOperator::NotEq => BinOp::NotEq,
        BinaryOperator::And => BinOp::And,
        BinaryOperator::Or => BinOp::Or,
        BinaryOperator::BitwiseOr => BinOp::BitOr,
        BinaryOperator::BitwiseAnd => BinOp::BitAnd,
        BinaryOperator::BitwiseXor | BinaryOperator::PGBitwiseXor => BinOp::BitXor,
        BinaryOperator::PGBitwiseShiftLeft => BinOp::ShiftLeft,
        BinaryOperator::PGBitwiseShiftRight => BinOp::ShiftRight,
        BinaryOperator::PGLikeMatch => BinOp::Like,
        BinaryOperator::PGNotLikeMatch => BinOp::NotLike,
        BinaryOperator::PGILikeMatch => BinOp::ILike,
        BinaryOperator::PGNotILikeMatch => BinOp::NotILike,
        BinaryOperator::Arrow => BinOp::JsonGet,
        BinaryOperator::LongArrow => BinOp::JsonGetText,
        other => {
            return Err(SqlError::undefined_function(format!(
                "operator does not exist: {other}"
            )));
        }
    })
}

/// Aggregate function names.
pub fn is_aggregate(name: &str) -> bool {
    matches!(
        name,
        "count"
            | "sum"
            | "avg"
            | "min"
            | "max"
            | "string_agg"
            | "bool_and"
            | "bool_or"
            | "every"
            | "array_agg"
            | "stddev"
            | "stddev_samp"
            | "stddev_pop"
            | "variance"
            | "var_samp"
            | "var_pop"
    )
}

fn unnest_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => unnest_parens(inner),
        other => other,
    }
}

/// A comparison of two row constructors as one over their fields, with
/// PostgreSQL's meaning: `=` all fields equal, `<>` any differs, and the
/// orderings lexicographic (`(a, b) < (c, d)` is `a < c OR (a = c AND b <
/// d)`), which gives NULL where PostgreSQL's pairwise rule does.
fn expand_row_comparison(op: &BinaryOperator, ls: &[Expr], rs: &[Expr]) -> SqlResult<Expr> {
    if ls.len() != rs.len() {
        return Err(SqlError::syntax(
            "unequal number of entries in row expressions",
        ));
    }
    if ls.is_empty() {
        return Err(SqlError::unsupported("comparison of empty rows"));
    }
    let bin = |l: &Expr, op: BinaryOperator, r: &Expr| Expr::BinaryOp {
        left: Box::new(l.clone()),
        op,
        right: Box::new(r.clone()),
    };
    // `=`: every field equal; `<>`: any field different.
    let conjunction = match op {
        BinaryOperator::Eq => Some(BinaryOperator::And),
        BinaryOperator::NotEq => Some(BinaryOperator::Or),
        _ => None,
    };
    if let Some(conj) = conjunction {
        let mut pairs = ls.iter().zip(rs).map(|(l, r)| bin(l, op.clone(), r));
        let first = pairs
            .next()
            .ok_or_else(|| SqlError::internal("row comparison"))?;
        let all = pairs.fold(first, |a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: conj.clone(),
            right: Box::new(b),
        });
        return Ok(Expr::Nested(Box::new(all)));
    }
    let strict = match op {
        BinaryOperator::Lt | BinaryOperator::LtEq => BinaryOperator::Lt,
        BinaryOperator::Gt | BinaryOperator::GtEq => BinaryOperator::Gt,
        other => {
            return Err(SqlError::unsupported(format!(
                "operator {other} on row values"
            )));
        }
    };
    // From the last field outwards: last `op` (inclusive or not), then
    // `l_i strict r_i OR (l_i = r_i AND rest)`.
    let n = ls.len();
    let mut acc = bin(&ls[n - 1], op.clone(), &rs[n - 1]);
    for i in (0..n - 1).rev() {
        let tie = Expr::Nested(Box::new(Expr::BinaryOp {
            left: Box::new(bin(&ls[i], BinaryOperator::Eq, &rs[i])),
            op: BinaryOperator::And,
            right: Box::new(acc),
        }));
        acc = Expr::Nested(Box::new(Expr::BinaryOp {
            left: Box::new(bin(&ls[i], strict.clone(), &rs[i])),
            op: BinaryOperator::Or,
            right: Box::new(tie),
        }));
    }
    Ok(acc)
}

/// The input columns `s` reads (outside its subqueries).
fn column_refs(s: &Scalar, out: &mut Vec<(usize, SqlType)>) {
    if let Scalar::Column { index, ty } = s {
        out.push((*index, *ty));
    }
    s.for_each_child(&mut |c| column_refs(c, out));
}

/// The name in a `'name'::regclass` (or `CAST('name' AS regclass)`).
fn regclass_literal(e: &Expr) -> Option<&str> {
    let Expr::Cast {
        expr, data_type, ..
    } = e
    else {
        return None;
    };
    let is_regclass = match data_type {
        DataType::Regclass => true,
        DataType::Custom(n, _) => table_name(n) == "regclass",
        _ => false,
    };
    match (is_regclass, expr.as_ref()) {
        (true, Expr::Value(v)) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(s.as_str()),
            _ => None,
        },
        _ => None,
    }
}

/// The set-returning functions a select list may call.
fn is_set_returning(name: &str) -> bool {
    matches!(
        name,
        "generate_series"
            | "unnest"
            | "generate_subscripts"
            | "jsonb_array_elements"
            | "jsonb_array_elements_text"
            | "jsonb_object_keys"
    )
}

/// `s` with each set-returning function placeholder replaced by its column
/// of the [`Rel::ProjectSet`] below (`base` is that node's input width).
fn resolve_srf_refs(s: Scalar, base: usize) -> Scalar {
    match s {
        Scalar::SrfRef { index, ty } => Scalar::Column {
            index: base + index,
            ty,
        },
        other => rebuild_children(other, &mut |c| resolve_srf_refs(c, base)),
    }
}

fn contains_agg(s: &Scalar) -> bool {
    if matches!(s, Scalar::AggRef { .. }) {
        return true;
    }
    let mut any = false;
    s.for_each_child(&mut |c| any |= contains_agg(c));
    any
}

/// After aggregation, expressions see the group keys then the aggregates: group
/// expressions become columns, aggregate placeholders their output columns, and a
/// bare input column is an error.
fn rewrite_after_agg(s: Scalar, group_keys: &[Scalar], ngroup: usize) -> SqlResult<Scalar> {
    if let Some(i) = group_keys.iter().position(|g| *g == s) {
        return Ok(Scalar::Column {
            index: i,
            ty: s.ty(),
        });
    }
    match s {
        Scalar::AggRef { index, ty } => Ok(Scalar::Column {
            index: ngroup + index,
            ty,
        }),
        srf @ Scalar::SrfRef { .. } => Ok(srf),
        Scalar::Column { .. } => Err(SqlError::new(
            codes::GROUPING_ERROR,
            "column must appear in the GROUP BY clause or be used in an aggregate function",
        )),
        Scalar::Subquery(sub) if sub.correlated => Err(SqlError::unsupported(
            "correlated subqueries in an aggregating query's select list are not supported",
        )),
        other => {
            // Rewrite children (one level at a time, so group expressions match first).
            let mut err = None;
            let rebuilt = rebuild_children(other, &mut |c| match rewrite_after_agg(
                c, group_keys, ngroup,
            ) {
                Ok(c) => c,
                Err(e) => {
                    err.get_or_insert(e);
                    Scalar::null()
                }
            });
            match err {
                Some(e) => Err(e),
                None => Ok(rebuilt),
            }
        }
    }
}

/// Rebuilds `s` with each direct child replaced by `f(child)`.
fn rebuild_children(s: Scalar, f: &mut dyn FnMut(Scalar) -> Scalar) -> Scalar {
    let mut b = |x: Box<Scalar>| Box::new(f(*x));
    match s {
        Scalar::Binary {
            op,
            left,
            right,
            ty,
        } => {
            let left = b(left);
            let right = b(right);
            Scalar::Binary {
                op,
                left,
                right,
                ty,
            }
        }
        Scalar::NullIf { left, right, ty } => {
            let left = b(left);
            let right = b(right);
            Scalar::NullIf { left, right, ty }
        }
        Scalar::Unary { op, expr, ty } => Scalar::Unary {
            op,
            expr: b(expr),
            ty,
        },
        Scalar::Cast { expr, to } => Scalar::Cast { expr: b(expr), to },
        Scalar::IsNull { expr, negated } => Scalar::IsNull {
            expr: b(expr),
            negated,
        },
        Scalar::IsBool {
            expr,
            value,
            negated,
        } => Scalar::IsBool {
            expr: b(expr),
            value,
            negated,
        },
        Scalar::Func { name, args, ty } => Scalar::Func {
            name,
            args: args.into_iter().map(&mut *f).collect(),
            ty,
        },
        Scalar::Coalesce { args, ty } => Scalar::Coalesce {
            args: args.into_iter().map(&mut *f).collect(),
            ty,
        },
        Scalar::Extreme { args, greatest, ty } => Scalar::Extreme {
            args: args.into_iter().map(&mut *f).collect(),
            greatest,
            ty,
        },
        Scalar::Case {
            operand,
            whens,
            otherwise,
            ty,
        } => Scalar::Case {
            operand: operand.map(|o| Box::new(f(*o))),
            whens: whens.into_iter().map(|(w, r)| (f(w), f(r))).collect(),
            otherwise: otherwise.map(|o| Box::new(f(*o))),
            ty,
        },
        Scalar::InList {
            expr,
            list,
            negated,
        } => {
            let expr = Box::new(f(*expr));
            Scalar::InList {
                expr,
                list: list.into_iter().map(&mut *f).collect(),
                negated,
            }
        }
        Scalar::Subquery(mut sub) => {
            sub.kind = match sub.kind {
                SubqueryKind::In { expr, cmp } => SubqueryKind::In {
                    expr: Box::new(f(*expr)),
                    cmp,
                },
                SubqueryKind::Quantified { expr, op, all } => SubqueryKind::Quantified {
                    expr: Box::new(f(*expr)),
                    op,
                    all,
                },
                k => k,
            };
            Scalar::Subquery(sub)
        }
        leaf => leaf,
    }
}

/// Folds constant subexpressions into literals. A constant that fails to
/// evaluate (1/0 in a CASE branch never taken) is left for run time.
pub fn fold(s: Scalar) -> Scalar {
    let folded = s.transform(&mut |node| {
        if matches!(node, Scalar::Literal { .. }) || !node.is_constant() {
            return Ok(node);
        }
        match super::eval::eval_constant_scalar(&node) {
            Ok(value) => {
                let ty = node.ty();
                Ok(Scalar::Literal { value, ty })
            }
            Err(_) => Ok(node),
        }
    });
    match folded {
        Ok(s) => s,
        Err(_) => Scalar::null(),
    }
}

/// Splits an AND tree into its conjuncts.
pub fn conjuncts(s: Scalar, out: &mut Vec<Scalar>) {
    match s {
        Scalar::Binary {
            op: BinOp::And,
            left,
            right,
            ..
        } => {
            conjuncts(*left, out);
            conjuncts(*right, out);
        }
        other => out.push(other),
    }
}

pub fn and_all(mut items: Vec<Scalar>) -> Option<Scalar> {
    let first = if items.is_empty() {
        return None;
    } else {
        items.remove(0)
    };
    Some(items.into_iter().fold(first, |acc, s| Scalar::Binary {
        op: BinOp::And,
        left: Box::new(acc),
        right: Box::new(s),
        ty: SqlType::Bool,
    }))
}

/// Columns a scalar reads from its own row (not from outer rows).
pub fn referenced_columns(s: &Scalar, out: &mut Vec<usize>) {
    if let Scalar::Column { index, .. } = s {
        out.push(*index);
    }
    s.for_each_child(&mut |c| referenced_columns(c, out));
}

/// Shifts column references by `-offset` (for pushing a filter into a join's right side).
pub(crate) fn shift_columns(s: Scalar, offset: usize) -> Scalar {
    s.transform(&mut |node| {
        Ok(match node {
            Scalar::Column { index, ty } => Scalar::Column {
                index: index - offset,
                ty,
            },
            other => other,
        })
    })
    .unwrap_or_else(|_| Scalar::null())
}

/// Equality conjuncts between a left column and a right column.
pub(super) fn equi_pairs(on: &Scalar, left_width: usize) -> Vec<(usize, usize)> {
    let mut parts = Vec::new();
    conjuncts(on.clone(), &mut parts);
    let mut out = Vec::new();
    for p in parts {
        if let Scalar::Binary {
            op: BinOp::Eq,
            left,
            right,
            ..
        } = &p
            && let (Scalar::Column { index: a, ty: ta }, Scalar::Column { index: b, ty: tb }) =
                (left.as_ref(), right.as_ref())
            && hash_compatible(*ta, *tb)
        {
            if *a < left_width && *b >= left_width {
                out.push((*a, *b - left_width));
            } else if *b < left_width && *a >= left_width {
                out.push((*b, *a - left_width));
            }
        }
    }
    out
}

/// Equal values of these types hash equally (the value hash treats numbers as numbers).
fn hash_compatible(a: SqlType, b: SqlType) -> bool {
    (a.is_numeric() && b.is_numeric()) || (a.is_string() && b.is_string()) || a == b
}

/// Adds a filter above `rel`, pushing conjuncts below inner joins to the side whose
/// columns they read (so scans can use them to choose spans), and turning
/// column equalities across an inner join into its hash-join keys.
pub fn push_filter(rel: Rel, predicate: Scalar) -> Rel {
    let mut parts = Vec::new();
    conjuncts(predicate, &mut parts);
    push_conjuncts(rel, parts)
}

fn push_conjuncts(rel: Rel, parts: Vec<Scalar>) -> Rel {
    if parts.is_empty() {
        return rel;
    }
    match rel {
        Rel::Join {
            kind: JoinKind::Inner,
            left,
            right,
            on,
            equi,
        } => {
            let lw = left.width();
            let mut to_left = Vec::new();
            let mut to_right = Vec::new();
            let mut to_join = Vec::new();
            for p in parts {
                if p.needs_async() {
                    to_join.push(p);
                    continue;
                }
                let mut cols = Vec::new();
                referenced_columns(&p, &mut cols);
                if cols.is_empty() {
                    to_join.push(p);
                } else if cols.iter().all(|c| *c < lw) {
                    to_left.push(p);
                } else if cols.iter().all(|c| *c >= lw) {
                    to_right.push(shift_columns(p, lw));
                } else {
                    to_join.push(p);
                }
            }
            let left = push_conjuncts(*left, to_left);
            let right = push_conjuncts(*right, to_right);
            let mut all_on = Vec::new();
            if let Some(o) = on {
                conjuncts(o, &mut all_on);
            }
            all_on.extend(to_join);
            let on = and_all(all_on);
            let mut equi = equi;
            if let Some(o) = &on {
                for pair in equi_pairs(o, lw) {
                    if !equi.contains(&pair) {
                        equi.push(pair);
                    }
                }
            }
            Rel::Join {
                kind: JoinKind::Inner,
                left: Box::new(left),
                right: Box::new(right),
                on,
                equi,
            }
        }
        Rel::Filter { input, predicate } => {
            let mut all = Vec::new();
            conjuncts(predicate, &mut all);
            all.extend(parts);
            push_conjuncts(*input, all)
        }
        other => match and_all(parts) {
            Some(p) => Rel::Filter {
                input: Box::new(other),
                predicate: p,
            },
            None => other,
        },
    }
}

/// Maps a SQL type name to a [`SqlType`].
/// A virtual system table's rows as a `VALUES` list under the table's name.
fn virtual_table(
    desc: &TableDesc,
    rows: &[Vec<Value>],
    tname: &str,
    alias: Option<&sqlparser::ast::TableAlias>,
) -> (Rel, Scope) {
    let types: Vec<SqlType> = desc.columns.iter().map(|c| c.ty).collect();
    let rows = rows
        .iter()
        .map(|r| {
            r.iter()
                .zip(&types)
                .map(|(v, ty)| Scalar::Literal {
                    value: v.clone(),
                    ty: *ty,
                })
                .collect()
        })
        .collect();
    let scope = desc
        .columns
        .iter()
        .map(|c| ScopeColumn {
            table: Some(tname.to_string()),
            name: c.name.clone(),
            ty: c.ty,
            hidden: false,
        })
        .collect();
    apply_alias(Rel::Values { rows, types }, scope, alias, tname)
}

/// The operator `OPERATOR(schema.op)` names (only `pg_catalog`'s).
fn custom_operator(parts: &[String]) -> SqlResult<BinaryOperator> {
    let (schema, symbol) = match parts {
        [symbol] => (None, symbol.as_str()),
        [schema, symbol] => (Some(schema.as_str()), symbol.as_str()),
        _ => {
            return Err(SqlError::syntax(format!(
                "bad operator name {}",
                parts.join(".")
            )));
        }
    };
    if schema.is_some_and(|s| s != "pg_catalog") {
        return Err(SqlError::new(
            codes::UNDEFINED_FUNCTION,
            format!("operator does not exist: {}", parts.join(".")),
        ));
    }
    Ok(match symbol {
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "~~" => BinaryOperator::PGLikeMatch,
        "!~~" => BinaryOperator::PGNotLikeMatch,
        "~~*" => BinaryOperator::PGILikeMatch,
        "!~~*" => BinaryOperator::PGNotILikeMatch,
        "=" => BinaryOperator::Eq,
        "<>" | "!=" => BinaryOperator::NotEq,
        "<" => BinaryOperator::Lt,
        "<=" => BinaryOperator::LtEq,
        ">" => BinaryOperator::Gt,
        ">=" => BinaryOperator::GtEq,
        "+" => BinaryOperator::Plus,
        "-" => BinaryOperator::Minus,
        "*" => BinaryOperator::Multiply,
        "/" => BinaryOperator::Divide,
        "||" => BinaryOperator::StringConcat,
        other => {
            return Err(SqlError::new(
                codes::UNDEFINED_FUNCTION,
                format!("operator does not exist: pg_catalog.{other}"),
            ));
        }
    })
}

/// `s` (of the type of `dt`) rounded to the precision `dt` gives a
/// timestamp (`timestamp(0)`, `timestamptz(3)`), as PostgreSQL's typmod
/// coercion does; other types and no precision leave it as it is.
/// TODO(issue 13): the precision of a column declared `timestamp(p)` (and
/// the TIME type): the column descriptor has nowhere to keep it yet, so
/// stored values keep their microseconds.
fn with_timestamp_precision(s: Scalar, dt: &DataType) -> Scalar {
    let precision = match dt {
        DataType::Timestamp(Some(p), _) => i64::try_from(*p).ok(),
        DataType::Custom(name, mods)
            if matches!(table_name(name).as_str(), "timestamp" | "timestamptz") =>
        {
            mods.first()
                .and_then(|m| m.to_string().trim().parse::<i64>().ok())
        }
        _ => None,
    };
    let ty = s.ty();
    let name = match ty {
        SqlType::Timestamp => "timestamp",
        SqlType::TimestampTz => "timestamptz",
        _ => return s,
    };
    match precision {
        Some(p) if p < 6 => Scalar::Func {
            name: name.into(),
            args: vec![s, Scalar::literal(Value::Int(p), SqlType::Int4)],
            ty,
        },
        _ => s,
    }
}

pub fn sql_type_of(dt: &DataType) -> SqlResult<SqlType> {
    use ast::{CharacterLength, ExactNumberInfo, TimezoneInfo};
    let len = |l: &Option<CharacterLength>| -> Option<u32> {
        match l {
            Some(CharacterLength::IntegerLength { length, .. }) => u32::try_from(*length).ok(),
            _ => None,
        }
    };
    Ok(match dt {
        DataType::Bool | DataType::Boolean => SqlType::Bool,
        DataType::SmallInt(_) | DataType::Int2(_) => SqlType::Int2,
        DataType::Int4(_) => SqlType::Int4,
        // As in DDL (and CockroachDB): INT and INTEGER are 8 bytes, so a value
        // of an INTEGER column always fits a cast to INTEGER.
        DataType::Int(_) | DataType::Integer(_) => SqlType::Int8,
        DataType::BigInt(_) | DataType::Int8(_) | DataType::Int64 => SqlType::Int8,
        DataType::Real | DataType::Float4 => SqlType::Float4,
        DataType::DoublePrecision | DataType::Float8 | DataType::Double(_) | DataType::Float64 => {
            SqlType::Float8
        }
        DataType::Float(info) => match info {
            ExactNumberInfo::Precision(p) if *p <= 24 => SqlType::Float4,
            _ => SqlType::Float8,
        },
        DataType::Numeric(info) | DataType::Decimal(info) | DataType::Dec(info) => match info {
            ExactNumberInfo::None => SqlType::Decimal(None),
            ExactNumberInfo::Precision(p) => {
                SqlType::Decimal(Some((u16::try_from(*p).unwrap_or(1000), 0)))
            }
            ExactNumberInfo::PrecisionAndScale(p, s) => SqlType::Decimal(Some((
                u16::try_from(*p).unwrap_or(1000),
                u16::try_from(*s).unwrap_or(0),
            ))),
        },
        DataType::Text | DataType::String(_) => SqlType::Text,
        DataType::Varchar(l)
        | DataType::CharacterVarying(l)
        | DataType::CharVarying(l)
        | DataType::Nvarchar(l) => SqlType::Varchar(len(l)),
        DataType::Char(l) | DataType::Character(l) => SqlType::Char(len(l).unwrap_or(1)),
        DataType::Bytea | DataType::Bytes(_) | DataType::Blob(_) => SqlType::Bytes,
        DataType::Date => SqlType::Date,
        DataType::Timestamp(_, tz) => match tz {
            TimezoneInfo::WithTimeZone | TimezoneInfo::Tz => SqlType::TimestampTz,
            _ => SqlType::Timestamp,
        },
        DataType::Interval { .. } => SqlType::Interval,
        DataType::Uuid => SqlType::Uuid,
        DataType::JSON | DataType::JSONB => SqlType::Jsonb,
        DataType::Array(
            ast::ArrayElemTypeDef::SquareBracket(inner, _)
            | ast::ArrayElemTypeDef::Qualified(inner, _)
            | ast::ArrayElemTypeDef::AngleBracket(inner)
            | ast::ArrayElemTypeDef::Parenthesis(inner),
        ) => SqlType::array_of(sql_type_of(inner)?),
        // The reg* types are OIDs here. TODO(issue 13): regclass as a name.
        DataType::Regclass => SqlType::Oid,
        DataType::Custom(name, _) => match table_name(name).as_str() {
            "int8" | "int64" | "bigserial" | "serial8" => SqlType::Int8,
            "int4" | "serial" | "serial4" => SqlType::Int4,
            "int2" | "smallserial" | "serial2" => SqlType::Int2,
            "float4" => SqlType::Float4,
            "float8" => SqlType::Float8,
            "string" => SqlType::Text,
            "bytes" => SqlType::Bytes,
            "timestamptz" => SqlType::TimestampTz,
            "bool" => SqlType::Bool,
            "jsonb" | "json" => SqlType::Jsonb,
            "uuid" => SqlType::Uuid,
            "bpchar" => SqlType::Char(1),
            // Schema-qualified standard names (`pg_catalog.text`) and the
            // catalog types: `name` and `"char"` are text here; the reg*
            // types are OIDs.
            // TODO(issue 13): regclass/regtype casts from and to names.
            "text" | "name" | "char" | "varchar" => SqlType::Text,
            "oid" | "regclass" | "regtype" | "regproc" | "regprocedure" | "regnamespace"
            | "regrole" => SqlType::Oid,
            "xid" | "cid" => SqlType::Int8,
            "int2vector" => SqlType::array_of(SqlType::Int2),
            "oidvector" => SqlType::array_of(SqlType::Oid),
            "numeric" => SqlType::Decimal(None),
            "date" => SqlType::Date,
            "timestamp" => SqlType::Timestamp,
            "interval" => SqlType::Interval,
            other => {
                return Err(SqlError::new(
                    codes::UNDEFINED_OBJECT,
                    format!("type \"{other}\" does not exist"),
                ));
            }
        },
        other => {
            return Err(SqlError::unsupported(format!(
                "type {other} is not supported"
            )));
        }
    })
}
