//! The binder: resolves names, checks types and builds the [`Rel`] tree.
//!
//! Binding is synchronous: the tables a statement names are looked up first
//! ([`collect_tables`], through the statement's transaction so the catalog read is
//! serializable with DDL), then the binder walks the AST with that map. Scopes are
//! lists of visible columns; a subquery sees the scopes of the queries around it
//! and references to them become [`Scalar::Outer`], which marks the subquery
//! correlated.
//!
//! This file holds the [`Binder`] and its state, the scopes and name
//! resolution (`Binder::resolve`), and the entry points ([`collect_tables`],
//! [`describe`], [`Binder::bind_query`]). The stages of binding a statement
//! are one file each, in the order a query is bound:
//!
//! - `query.rs`: a query: WITH (plain, recursive and data-modifying CTEs), set
//!   operations, ORDER BY / LIMIT / OFFSET / FETCH (WITH TIES), VALUES;
//! - `cte.rs`: references to CTEs, and which are inlined and which computed
//!   once ([`Rel::With`]);
//! - `select.rs`: a SELECT block: WHERE, the select list, GROUP BY and its
//!   functional dependencies, HAVING, aggregation, `DISTINCT [ON]`, and the
//!   projection and sort above them;
//! - `from.rs`: the FROM clause: tables, views, CTE references, joins (ON,
//!   USING, NATURAL), derived tables, LATERAL, table functions, `unnest`,
//!   virtual system tables;
//! - `expr.rs`: expressions, one helper per kind of [`ast::Expr`], dispatched by
//!   `bind_expr_node`;
//! - `functions.rs`: function calls: scalar functions, aggregates, the
//!   set-returning functions of a select list, and the SQL-syntax forms
//!   (`EXTRACT`, `SUBSTRING`, `TRIM`, …);
//! - `subquery.rs`: subqueries in expressions: scalar, EXISTS, IN, ANY/ALL,
//!   `ARRAY(SELECT …)`, row-valued IN;
//! - `window.rs`: window functions and `WINDOW` clauses;
//! - `types.rs`: operator typing, coercion and casts, SQL type names;
//!
//! and two sets of helpers over bound trees that later planning stages use
//! too: `predicate.rs` (conjuncts, filter pushdown, equi-join keys) and
//! `rewrite.rs` (constant folding, rebuilding a node's children).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use sqlparser::ast::{self as ast, ObjectName, ObjectNamePart, Statement};
use tardigrade_kv::Txn;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType};

use super::{AggCall, Rel, Scalar};
use crate::catalog::TableDesc;
use crate::node::{Column, SqlNode};

mod cte;
mod expr;
mod from;
mod functions;
mod predicate;
mod query;
mod rewrite;
mod select;
mod subquery;
mod types;
mod window;

pub use functions::is_aggregate;
pub(super) use predicate::equi_pairs;
pub(crate) use predicate::shift_columns;
pub use predicate::{and_all, conjuncts, push_filter, referenced_columns};
pub use rewrite::fold;
pub use select::column_name_of;
pub use types::sql_type_of;
use types::{is_regclass_type, regclass_literal};
pub(crate) use types::{regclass_digits, undefined_relation};
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
    /// Common table expressions in scope, one frame per WITH clause,
    /// innermost last.
    ctes: Vec<cte::CteFrame>,
    /// The plain CTEs of the frames in `ctes`, by id, while they are bound
    /// (see `cte.rs`).
    cte_defs: HashMap<usize, cte::CteDef>,
    /// How many DML statements are being bound, one inside the other.
    dml_depth: usize,
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
    // `'t'::regclass` names a table too; any regclass needs the names of
    // the database's relations.
    let mut regclass = mentions_regclass(statement);
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
                let s = snapshot_of(node, txn, database, &mut snapshot).await?;
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
                    regclass |= mentions_regclass(&statement);
                }
            }
            tables.insert(table.clone(), desc);
        }
    }
    if regclass {
        let s = snapshot_of(node, txn, database, &mut snapshot).await?;
        tables.insert(
            crate::vtable::RELATION_NAMES.to_string(),
            Arc::new(crate::vtable::relation_names(s)),
        );
    }
    if !tables.contains_key(crate::vtable::DEFINITIONS) && mentions_definitions(statement) {
        let s = snapshot_of(node, txn, database, &mut snapshot).await?;
        tables.insert(
            crate::vtable::DEFINITIONS.to_string(),
            Arc::new(crate::vtable::definitions(s)),
        );
    }
    Ok(tables)
}

/// The snapshot of the database's descriptors the statement's system
/// catalogs and regclass names come from, taken at the first need.
async fn snapshot_of<'s>(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    snapshot: &'s mut Option<crate::vtable::Snapshot>,
) -> SqlResult<&'s crate::vtable::Snapshot> {
    if snapshot.is_none() {
        *snapshot = Some(crate::vtable::Snapshot {
            database: database.to_string(),
            databases: node.catalog.list_databases(txn).await?,
            tables: node.catalog.list_tables(txn, database).await?,
        });
    }
    snapshot
        .as_ref()
        .ok_or_else(|| SqlError::internal("no catalog snapshot"))
}

/// Whether `statement` casts to regclass or calls `to_regclass` (its
/// binding needs the names of the database's relations).
fn mentions_regclass(statement: &Statement) -> bool {
    let found = sqlparser::ast::visit_expressions(statement, |e| match e {
        ast::Expr::Cast { data_type, .. } if is_regclass_type(data_type) => ControlFlow::Break(()),
        ast::Expr::Function(f) if table_name(&f.name) == "to_regclass" => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    found.is_break()
}

/// Whether `statement` calls `pg_get_indexdef`, `pg_get_constraintdef` or
/// `pg_get_viewdef`, which read [`crate::vtable::definitions`].
fn mentions_definitions(statement: &Statement) -> bool {
    let found = sqlparser::ast::visit_expressions(statement, |e| match e {
        ast::Expr::Function(f)
            if matches!(
                table_name(&f.name).as_str(),
                "pg_get_indexdef" | "pg_get_constraintdef" | "pg_get_viewdef"
            ) =>
        {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    });
    found.is_break()
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
            cte_defs: HashMap::new(),
            dml_depth: 0,
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
                "localtime" => {
                    return Ok(Scalar::Func {
                        name: "localtime".into(),
                        args: vec![],
                        ty: SqlType::Time,
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
