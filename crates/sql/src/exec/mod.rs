//! Execution: runs a bound plan inside the statement's KV transaction.
//!
//! The plan is opened as a tree of operators ([`operator`]) that pull batches of
//! rows ([`batch::Batch`]: one vector of values per batch, rows as slices)
//! from each other: scans page through the KV layer and stop as soon as a
//! LIMIT above has its rows; filters compact batches in place; joins hash
//! the right side on the equality keys (nested loops otherwise), merge two
//! ordered inputs, or look rows up by key a batch at a time; aggregation
//! hashes on the group keys or streams groups of ordered input; sorting is an
//! external merge sort under the node's working-memory budget ([`sort`]; a
//! top-n heap under `ORDER BY … LIMIT n`). A CTE computed once
//! ([`Rel::With`]) is run at its first read and its rows kept, under the
//! statement's budget, until its `WITH` ends ([`Executor::cte_rows`]).
//!
//! A query run for the wire streams its rows to a [`RowSink`]; otherwise
//! (DML sources, subqueries, an embedded session) [`Executor::run`] collects
//! them under the statement's budget.
//!
//! TODO(issue 4): spilling hash aggregation and joins.

pub use crate::batch;
pub mod dml;
pub use crate::plan::eval;
mod join;
mod operator;
pub mod sort;
mod window;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sqlparser::ast::Statement;
use tardigrade_kv::Txn;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value, ops};

use crate::node::{Column, QueryOutput, SqlNode};
use crate::plan::bind::{Binder, collect_tables, output_type};
use crate::plan::{IndexConstraint, Rel, Row, Scalar, Scan, SubqueryKind};
use crate::rowenc;
use crate::settings::Settings;
use batch::Batch;
use eval::{EvalCtx, RowValues, SubValue, eval};

/// What identifies a scan's result within a statement: table, index, spans,
/// direction and limit.
/// What a cached scan read: table, index, spans, reverse, limit, and whether
/// it skipped the index join (its rows then lack the other columns).
type ScanKey = (
    u32,
    u32,
    Vec<(Vec<u8>, Vec<u8>)>,
    bool,
    Option<u64>,
    bool,
    Option<crate::plan::ColumnMask>,
    Option<Arc<[usize]>>,
);

/// A bound, optimized plan kept by a prepared statement, valid while the tables
/// it names keep the descriptor versions it was bound against.
pub struct CachedPlan {
    tables: Vec<(String, u32, u64, u64)>,
    plan: BoundPlan,
    /// Data-modifying CTEs, run in order before `plan`, each with the id of
    /// the work table its RETURNING rows are read as.
    modifying: Vec<(usize, crate::plan::dml::BoundDml)>,
}

enum BoundPlan {
    Query {
        rel: Box<Rel>,
        scope: Vec<crate::plan::bind::ScopeColumn>,
    },
    Dml(Box<crate::plan::dml::BoundDml>),
}

/// Where a prepared statement keeps its plan between executions.
pub type PlanCache = parking_lot::Mutex<Option<Arc<CachedPlan>>>;

/// What a cached plan depends on: each table's descriptor version and the
/// generation of the statistics it was costed with.
fn table_versions(
    tables: &crate::plan::bind::TableMap,
    stats: &crate::stats::StatsMap,
) -> Vec<(String, u32, u64, u64)> {
    let mut v: Vec<(String, u32, u64, u64)> = tables
        .iter()
        .map(|(n, d)| {
            let generation = stats.get(&d.id).map_or(0, |s| s.generation);
            (n.clone(), d.id, d.version, generation)
        })
        .collect();
    v.sort();
    v
}

/// Whether [`execute_statement`] runs `statement`: queries, DML, EXPLAIN, SET
/// and SHOW. The rest (DDL) is [`crate::ddl`]'s, which sits above the
/// executor; the session sends each statement to one or the other.
pub fn handles(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_)
            | Statement::Explain { .. }
            | Statement::Set(_)
            | Statement::Reset(_)
            | Statement::UNLISTEN { .. }
            | Statement::ShowVariable { .. }
            | Statement::Discard { .. }
    )
}

/// The error of a statement neither the executor nor DDL runs.
pub fn unsupported_statement(statement: &Statement) -> SqlError {
    SqlError::unsupported(format!(
        "unsupported statement: {}",
        statement.to_string().chars().take(60).collect::<String>()
    ))
}

/// Runs one (non transaction-control, non-DDL: see [`handles`]) statement in
/// `txn`. `param_types` are the types the parameters were decoded as; `cache`
/// lets a prepared statement reuse its plan.
#[allow(clippy::too_many_arguments)]
pub async fn execute_statement(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    (database, user, settings): (&str, &str, &Settings),
    statement: &Statement,
    params: &[Value],
    param_types: &[SqlType],
    cache: Option<&PlanCache>,
    sink: Option<&mut dyn RowSink>,
) -> SqlResult<QueryOutput> {
    match statement {
        Statement::Query(_)
        | Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Explain { .. } => {}
        Statement::Set(set) => return run_set(set, settings),
        // No session can LISTEN (0A000), so there is never a channel to
        // stop listening to; connection pools send UNLISTEN * on release.
        Statement::UNLISTEN { .. } => return Ok(QueryOutput::command("UNLISTEN")),
        Statement::Reset(reset) => return run_reset(reset, settings),
        Statement::ShowVariable { variable } => {
            return show_variable(variable, database, settings);
        }
        // The session runs DISCARD ALL (it closes cursors, forgets prepared
        // statements, resets settings); the rest have nothing to discard
        // (plans are cached per prepared statement, there are no temporary
        // tables or cached sequence values).
        Statement::Discard { object_type } => {
            return Ok(QueryOutput::command(format!(
                "DISCARD {}",
                object_type.to_string().to_uppercase()
            )));
        }
        // DDL: the session runs it through `crate::ddl` (see `handles`).
        _ => return Err(unsupported_statement(statement)),
    }
    // Name resolution always goes through the transaction (it is what makes DDL
    // and DML serializable); binding is skipped when the cached plan still fits.
    let tables = collect_tables(node, txn, database, statement).await?;
    let stats = node
        .stats
        .for_tables(&node.db, tables.values().map(|d| d.id))
        .await;
    if let Statement::Explain {
        statement: inner,
        analyze,
        verbose,
        options,
        ..
    } = statement
    {
        let mut types = param_types.to_vec();
        if types.len() < params.len() {
            types.resize(params.len(), SqlType::Unknown);
        }
        let flags = ExplainFlags::parse(*analyze, *verbose, options.as_deref())?;
        let binder = Binder::new(&tables, &types).with_stats(stats);
        let lines = explain(
            node,
            txn,
            (database, user, settings),
            binder,
            inner,
            params,
            flags,
        )
        .await?;
        let n = lines.len();
        return Ok(QueryOutput {
            tag: format!("EXPLAIN {n}"),
            columns: Some(vec![Column {
                name: "info".into(),
                ty: SqlType::Text,
            }]),
            rows: lines.into_iter().map(|l| vec![Value::Text(l)]).collect(),
            streamed: false,
        });
    }
    let versions = table_versions(&tables, &stats);
    // A plan over a system catalog holds the catalog's rows as of its
    // binding (and those rows follow more than descriptor versions:
    // sessions, settings, statistics): such a statement is bound again
    // every time.
    let reads_catalogs = tables.values().any(|d| d.virtual_rows.is_some());
    let cache = cache.filter(|_| !reads_catalogs);
    let cached = cache
        .and_then(|c| c.lock().clone())
        .filter(|c| c.tables == versions);
    let plan = match cached {
        Some(p) => p,
        None => {
            let mut types = param_types.to_vec();
            if types.len() < params.len() {
                types.resize(params.len(), SqlType::Unknown);
            }
            let mut binder = Binder::new(&tables, &types).with_stats(stats);
            let plan = match statement {
                Statement::Query(q) => match binder.bind_query_dml(q)? {
                    Some(dml) => BoundPlan::Dml(Box::new(dml)),
                    None => {
                        let bound = binder.bind_query(q)?;
                        let bound = binder.regclass_output(bound);
                        BoundPlan::Query {
                            rel: Box::new(crate::plan::index::optimize(bound.rel)),
                            scope: bound.scope,
                        }
                    }
                },
                other => BoundPlan::Dml(Box::new(crate::plan::dml::bind_dml(&mut binder, other)?)),
            };
            let plan = Arc::new(CachedPlan {
                tables: versions,
                plan,
                modifying: binder.take_modifying_ctes(),
            });
            if let Some(c) = cache {
                *c.lock() = Some(plan.clone());
            }
            plan
        }
    };
    let mut exec = Executor::new(node, txn, database, params).in_session(user, settings);
    for (id, dml) in &plan.modifying {
        let out = dml.execute(&mut exec).await?;
        exec.work_tables.insert(*id, Arc::new(out.rows));
    }
    match &plan.plan {
        BoundPlan::Query { rel, scope } => match sink {
            Some(sink) => exec.stream(rel, scope, sink).await,
            None => {
                let rows = exec.run(rel, &[]).await?;
                Ok(rows_output(scope, rows, |n| format!("SELECT {n}")))
            }
        },
        BoundPlan::Dml(dml) => dml.execute(&mut exec).await,
    }
}

/// The options of one `EXPLAIN`.
#[derive(Clone, Copy, Debug, Default)]
struct ExplainFlags {
    analyze: bool,
    /// `(OPT)`: the optimized logical plan, before join and aggregation
    /// algorithms are chosen.
    opt: bool,
    /// `(OPT, MEMO)`: also the memo of each join tree (implies `OPT`).
    memo: bool,
    render: crate::plan::explain::Options,
}

impl ExplainFlags {
    fn parse(
        analyze: bool,
        verbose: bool,
        options: Option<&[sqlparser::ast::UtilityOption]>,
    ) -> SqlResult<ExplainFlags> {
        let mut f = ExplainFlags {
            analyze,
            ..Default::default()
        };
        f.render.verbose = verbose;
        for o in options.unwrap_or_default() {
            let on = match &o.arg {
                None => true,
                Some(sqlparser::ast::Expr::Value(v)) => !matches!(
                    v.to_string().to_ascii_lowercase().as_str(),
                    "false" | "off" | "0"
                ),
                Some(sqlparser::ast::Expr::Identifier(i)) => {
                    !matches!(i.value.to_ascii_lowercase().as_str(), "false" | "off")
                }
                Some(_) => true,
            };
            match o.name.value.to_ascii_lowercase().as_str() {
                "analyze" => f.analyze = on,
                "verbose" => f.render.verbose = on,
                "costs" => f.render.no_estimates = !on,
                "opt" => f.opt = on,
                "memo" => f.memo = on,
                // Accepted for PostgreSQL clients; they change nothing here.
                "buffers" | "timing" | "summary" | "settings" | "wal" | "format" => {}
                other => {
                    return Err(SqlError::new(
                        codes::SYNTAX_ERROR,
                        format!("unrecognized EXPLAIN option \"{other}\""),
                    ));
                }
            }
        }
        Ok(f)
    }
}

/// `EXPLAIN [ANALYZE] [(options)] statement`: the plan's lines; with ANALYZE
/// the statement runs (a DML statement's writes happen, as in PostgreSQL)
/// and each operator shows what it produced.
async fn explain(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    (database, user, settings): (&str, &str, &Settings),
    mut binder: Binder<'_>,
    inner: &Statement,
    params: &[Value],
    flags: ExplainFlags,
) -> SqlResult<Vec<String>> {
    use crate::plan::explain::render_with;
    let planning = std::time::Instant::now();
    match inner {
        Statement::Query(q) => {
            let bound = binder.bind_query(q)?;
            if !binder.take_modifying_ctes().is_empty() {
                // TODO(issue 13): EXPLAIN of data-modifying CTEs.
                return Err(SqlError::unsupported(
                    "EXPLAIN of a statement with a data-modifying WITH is not supported",
                ));
            }
            if flags.opt || flags.memo {
                let mut memos = Vec::new();
                let rel = crate::plan::index::optimize_logical_recording(
                    bound.rel,
                    crate::plan::rules::Rules::all(),
                    &mut memos,
                );
                let mut lines = render_with(&rel, flags.render, None);
                if flags.memo {
                    lines.extend(crate::plan::memo::Memo::render_all(&memos));
                }
                return Ok(lines);
            }
            let rel = crate::plan::index::optimize(bound.rel);
            if !flags.analyze {
                return Ok(render_with(&rel, flags.render, None));
            }
            let planning = planning.elapsed();
            let mut exec = Executor::new(node, txn, database, params).in_session(user, settings);
            exec.measure();
            let started = std::time::Instant::now();
            let rows = exec.run(&rel, &[]).await?;
            let execution = started.elapsed();
            let mut lines = vec![
                format!("planning time: {:.3} ms", planning.as_secs_f64() * 1e3),
                format!("execution time: {:.3} ms", execution.as_secs_f64() * 1e3),
                format!("rows returned: {}", rows.len()),
            ];
            lines.extend(render_with(&rel, flags.render, exec.measurements()));
            Ok(lines)
        }
        Statement::Explain { .. } => Err(SqlError::syntax("EXPLAIN of an EXPLAIN")),
        other => {
            let dml = crate::plan::dml::bind_dml(&mut binder, other)?;
            if !binder.take_modifying_ctes().is_empty() {
                return Err(SqlError::unsupported(
                    "EXPLAIN of a statement with a data-modifying WITH is not supported",
                ));
            }
            if !flags.analyze {
                return Ok(dml.explain(flags.render, None));
            }
            let planning = planning.elapsed();
            let mut exec = Executor::new(node, txn, database, params).in_session(user, settings);
            exec.measure();
            let started = std::time::Instant::now();
            let out = dml.execute(&mut exec).await?;
            let execution = started.elapsed();
            let mut lines = vec![
                format!("planning time: {:.3} ms", planning.as_secs_f64() * 1e3),
                format!("execution time: {:.3} ms", execution.as_secs_f64() * 1e3),
                format!("result: {}", out.tag),
            ];
            lines.extend(dml.explain(flags.render, exec.measurements()));
            Ok(lines)
        }
    }
}

/// Evaluates a constant SQL expression (a column DEFAULT) as a value of `ty`.
pub async fn eval_constant(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    sql_text: &str,
    ty: SqlType,
) -> SqlResult<Value> {
    let tables = HashMap::new();
    let mut binder = Binder::new(&tables, &[]);
    let expr = crate::plan::dml::parse_stored_expr(sql_text)?;
    let bound = binder.bind_expr(&expr, &Vec::new())?;
    let bound = binder.coerce(bound, ty, "DEFAULT")?;
    let mut exec = Executor::new(node, txn, database, &[]);
    let values = exec.eval_row(&[&bound], &[], &[]).await?;
    let ctx = exec.ctx(&[], Some(&values));
    eval(&bound, &[], &ctx)
}

/// The value of `sql_text`, an expression over `table`'s columns (a stored
/// generated column's), for each of `rows` (in table layout), assigned to
/// type `ty`: what ALTER TABLE … ADD COLUMN … GENERATED writes into the
/// rows already there.
pub async fn eval_over_rows(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    table: &crate::catalog::TableDesc,
    column: &crate::catalog::ColumnDesc,
    sql_text: &str,
    rows: &[Row],
) -> SqlResult<Vec<Value>> {
    let tables = HashMap::new();
    let mut binder = Binder::new(&tables, &[]);
    let scope = crate::plan::dml::table_scope(table, &table.name);
    let expr = crate::plan::dml::parse_stored_expr(sql_text)?;
    let bound = binder.bind_expr(&expr, &scope)?;
    let bound = binder.coerce(bound, column.ty, "generated column")?;
    let exec = Executor::new(node, txn, "", &[]);
    let ctx = exec.ctx(&[], None);
    rows.iter()
        .map(|r| {
            let v = eval(&bound, r, &ctx)?;
            dml::assign(v, bound.ty(), column.ty, &column.name)
        })
        .collect()
}

/// Computes stored generated columns for the row layer's own writes
/// (foreign-key cascades): their expressions are immutable, so they are
/// evaluated without a statement's context.
struct GeneratedColumnEvaluator;

impl crate::catalog::GeneratedColumns for GeneratedColumnEvaluator {
    fn fill(&self, table: &crate::catalog::TableDesc, rows: &mut [Vec<Value>]) -> SqlResult<()> {
        let tables = HashMap::new();
        let mut binder = Binder::new(&tables, &[]);
        let scope = crate::plan::dml::table_scope(table, &table.name);
        let generated = crate::plan::dml::bind_generated(&mut binder, table, &scope)?;
        let ctx = EvalCtx::detached();
        for row in rows.iter_mut() {
            for (pos, e) in &generated {
                let col = &table.columns[*pos];
                let v = eval(e, row, &ctx)?;
                row[*pos] = dml::assign(v, e.ty(), col.ty, &col.name)?;
            }
        }
        Ok(())
    }
}

/// Where a query's rows go as they are produced, instead of into its
/// [`QueryOutput`]: the wire layer's buffer, which flushes to the client past
/// a few kilobytes, so a statement's result set is never held whole.
pub trait RowSink: Send {
    /// Takes the next rows (the statement's visible `columns` only).
    fn send<'s>(
        &'s mut self,
        columns: &'s [Column],
        rows: &'s Batch,
    ) -> BoxFuture<'s, SqlResult<()>>;
    /// Whether rows already reached the client, so that running the
    /// statement again would repeat them.
    fn flushed(&self) -> bool;
    /// Drops the rows buffered and not flushed (the statement is retried).
    fn discard(&mut self);
}

/// The client-visible columns of a query's output and their positions.
fn visible_columns(scope: &[crate::plan::bind::ScopeColumn]) -> (Vec<Column>, Vec<usize>) {
    let visible: Vec<usize> = scope
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.hidden)
        .map(|(i, _)| i)
        .collect();
    let columns = visible
        .iter()
        .map(|i| Column {
            name: scope[*i].name.clone(),
            ty: output_type(scope[*i].ty),
        })
        .collect();
    (columns, visible)
}

/// Packages rows for the client, dropping hidden columns.
pub fn rows_output(
    scope: &[crate::plan::bind::ScopeColumn],
    rows: Vec<Row>,
    tag: impl Fn(usize) -> String,
) -> QueryOutput {
    let (columns, visible) = visible_columns(scope);
    let n = rows.len();
    let rows = if visible.len() == scope.len() {
        rows
    } else {
        rows.into_iter()
            .map(|r| visible.iter().map(|i| r[*i].clone()).collect())
            .collect()
    };
    QueryOutput {
        tag: tag(n),
        columns: Some(columns),
        rows,
        streamed: false,
    }
}

/// The columns `SHOW variable` returns (all text), for Describe.
pub fn show_columns(variable: &[sqlparser::ast::Ident], database: &str) -> Vec<Column> {
    crate::settings::show_column_names(variable, database)
        .into_iter()
        .map(|name| Column {
            name,
            ty: SqlType::Text,
        })
        .collect()
}

fn show_variable(
    variable: &[sqlparser::ast::Ident],
    database: &str,
    settings: &Settings,
) -> SqlResult<QueryOutput> {
    let name = crate::settings::shown_name(variable, database, settings);
    if name == "all" {
        let text = |s: String| Value::Text(s);
        return Ok(QueryOutput {
            tag: "SHOW".into(),
            columns: Some(show_columns(variable, database)),
            rows: settings
                .all(database)
                .into_iter()
                .map(|(n, v, d)| vec![text(n), text(v), text(d)])
                .collect(),
            streamed: false,
        });
    }
    let value = settings.show(&name, database)?;
    Ok(QueryOutput {
        tag: "SHOW".into(),
        columns: Some(vec![Column {
            name: crate::settings::display_name(&name),
            ty: SqlType::Text,
        }]),
        rows: vec![vec![Value::Text(value)]],
        streamed: false,
    })
}

/// `SET [SESSION | LOCAL] name { TO | = } { value [, …] | DEFAULT }` and
/// `SET TIME ZONE`.
fn run_set(set: &sqlparser::ast::Set, settings: &Settings) -> SqlResult<QueryOutput> {
    use sqlparser::ast::{ContextModifier, Set};
    match set {
        Set::SingleAssignment {
            scope,
            variable,
            values,
            ..
        } => {
            let name = variable.to_string().to_lowercase();
            let value = set_value(values, name == "search_path")?;
            settings.set(
                &name,
                value.as_deref(),
                matches!(scope, Some(ContextModifier::Local)),
            )?;
        }
        Set::SetTimeZone { local, value } => {
            let value = set_value(std::slice::from_ref(value), false)?;
            settings.set("timezone", value.as_deref(), *local)?;
        }
        Set::SetNames { charset_name, .. } => {
            settings.set("client_encoding", Some(&charset_name.value), false)?;
        }
        Set::SetNamesDefault {} => {
            settings.set("client_encoding", None, false)?;
        }
        Set::MultipleAssignments { assignments } => {
            for a in assignments {
                let name = a.name.to_string().to_lowercase();
                let value = set_value(std::slice::from_ref(&a.value), name == "search_path")?;
                settings.set(
                    &name,
                    value.as_deref(),
                    matches!(a.scope, Some(ContextModifier::Local)),
                )?;
            }
        }
        // Every isolation level runs as SERIALIZABLE (as in CockroachDB);
        // DEFERRABLE changes nothing then. SET SESSION CHARACTERISTICS sets
        // the default of the following transactions.
        Set::SetTransaction { modes, session, .. } => {
            let name = if *session {
                "default_transaction_read_only"
            } else {
                "transaction_read_only"
            };
            for m in modes {
                if let sqlparser::ast::TransactionMode::AccessMode(mode) = m {
                    let on = matches!(mode, sqlparser::ast::TransactionAccessMode::ReadOnly);
                    settings.set(name, Some(if on { "on" } else { "off" }), false)?;
                }
            }
        }
        other => {
            return Err(SqlError::unsupported(format!(
                "unsupported statement: {other}"
            )));
        }
    }
    Ok(QueryOutput::command("SET"))
}

/// The text of a SET's value list; `None` for DEFAULT. `list_quote`: a
/// list of names (search_path), whose quoted identifiers keep their quotes
/// when they need them, as PostgreSQL shows them (`"$user", public`).
fn set_value(values: &[sqlparser::ast::Expr], list_quote: bool) -> SqlResult<Option<String>> {
    use sqlparser::ast::{Expr, UnaryOperator, Value as V};
    let mut parts = Vec::with_capacity(values.len());
    for v in values {
        let text = match v {
            Expr::Value(v) => match &v.value {
                V::SingleQuotedString(s) | V::DoubleQuotedString(s) => s.clone(),
                V::Number(n, _) => n.to_string(),
                V::Boolean(b) => if *b { "on" } else { "off" }.to_string(),
                other => other.to_string(),
            },
            Expr::Identifier(i) if i.value.eq_ignore_ascii_case("default") && values.len() == 1 => {
                return Ok(None);
            }
            Expr::Identifier(i) if list_quote && i.quote_style.is_some() => {
                let plain = i.value.chars().enumerate().all(|(n, c)| {
                    c.is_ascii_lowercase()
                        || c == '_'
                        || (n > 0 && (c.is_ascii_digit() || c == '$'))
                });
                if plain && !i.value.is_empty() {
                    i.value.clone()
                } else {
                    format!("\"{}\"", i.value.replace('"', "\"\""))
                }
            }
            Expr::Identifier(i) => i.value.clone(),
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match expr.as_ref() {
                Expr::Value(v) => format!("-{}", v.value),
                _ => return Err(SqlError::syntax(format!("invalid SET value: {v}"))),
            },
            other => other.to_string(),
        };
        parts.push(text);
    }
    Ok(Some(parts.join(", ")))
}

fn run_reset(
    reset: &sqlparser::ast::ResetStatement,
    settings: &Settings,
) -> SqlResult<QueryOutput> {
    match &reset.reset {
        sqlparser::ast::Reset::ALL => settings.reset_all(),
        sqlparser::ast::Reset::ConfigurationParameter(name) => {
            settings.set(&name.to_string().to_lowercase(), None, false)?;
        }
        sqlparser::ast::Reset::SessionAuthorization => {}
    }
    Ok(QueryOutput::command("RESET"))
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs plans for one statement: holds the transaction, parameters, the results
/// of uncorrelated subqueries and a cache of scans (correlated subqueries re-read
/// the same spans for every outer row).
pub struct Executor<'a> {
    pub node: &'a Arc<SqlNode>,
    pub txn: &'a mut Txn,
    pub database: &'a str,
    /// The session's user (`current_user`).
    user: &'a str,
    /// The session's parameters (none in background work).
    settings: Option<&'a Settings>,
    pub params: &'a [Value],
    subqueries: HashMap<usize, SubValue>,
    scan_cache: HashMap<ScanKey, Arc<Batch>>,
    now_micros: i64,
    /// Bytes of rows this statement has collected (approximately): result
    /// sets, cached scans, IN lists.
    memory_used: usize,
    /// Rows handled since the executor last yielded to the runtime.
    work: usize,
    /// Per-operator rows and times, collected for `EXPLAIN ANALYZE`.
    measurements: Option<crate::plan::explain::Measurements>,
    /// The current rows of each running `WITH RECURSIVE` (by work table id).
    work_tables: HashMap<usize, Arc<Vec<Row>>>,
    /// The materialized CTEs of the running [`Rel::With`]s, by CTE id.
    ctes: HashMap<usize, CteState>,
}

/// A materialized CTE ([`Rel::With`]) while its `WITH` runs.
enum CteState {
    /// Not read yet: its plan and the outer rows the `WITH` runs with.
    Pending { plan: Arc<Rel>, outer: Vec<Row> },
    /// Being computed.
    Computing,
    /// Its rows, and the bytes of them charged to the statement.
    Done { rows: Arc<Batch>, bytes: usize },
}

/// Rows the CPU-bound loops handle between yields to the runtime. A cancel
/// request drops the statement's future at its next await point, so loops
/// that never wait on KV (cross joins, aggregation, generate_series) must
/// offer one regularly.
const YIELD_EVERY: usize = 4096;

impl<'a> Executor<'a> {
    pub fn new(
        node: &'a Arc<SqlNode>,
        txn: &'a mut Txn,
        database: &'a str,
        params: &'a [Value],
    ) -> Executor<'a> {
        node.catalog
            .install_generated_columns(|| Arc::new(GeneratedColumnEvaluator));
        // Reading AS OF SYSTEM TIME, `now()` is that time, as in CockroachDB.
        let now_micros = match txn.fixed_timestamp() {
            Some(ts) => ts.wall.div_euclid(1000),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as i64)
                .unwrap_or(0),
        };
        Executor {
            node,
            txn,
            database,
            params,
            subqueries: HashMap::new(),
            scan_cache: HashMap::new(),
            now_micros,
            memory_used: 0,
            work: 0,
            measurements: None,
            work_tables: HashMap::new(),
            ctes: HashMap::new(),
            user: tardigrade_sqltypes::catalog_fns::BOOTSTRAP_ROLE.1,
            settings: None,
        }
    }

    /// Runs as the session's `user` (what `current_user` returns; the
    /// bootstrap role otherwise) with its run-time parameters
    /// (`current_setting`, `set_config`).
    pub fn in_session(mut self, user: &'a str, settings: &'a Settings) -> Executor<'a> {
        self.user = user;
        self.settings = Some(settings);
        self
    }

    /// Measures every operator opened from now on (`EXPLAIN ANALYZE`).
    pub fn measure(&mut self) {
        self.measurements = Some(Default::default());
    }

    /// What the measured operators did.
    pub fn measurements(&self) -> Option<&crate::plan::explain::Measurements> {
        self.measurements.as_ref()
    }

    /// Adds one `next` call of a measured operator.
    fn record(&mut self, key: usize, rows: usize, nanos: u64, memory: usize) {
        if let Some(m) = &mut self.measurements {
            let e = m.entry(key).or_default();
            e.rows += rows as u64;
            e.batches += u64::from(rows > 0);
            e.nanos += nanos;
            e.memory = e.memory.max(memory as u64);
        }
    }

    /// Counts `rows` of work, yielding to the runtime every `YIELD_EVERY`
    /// rows (where a cancelled statement stops).
    async fn tick(&mut self, rows: usize) {
        self.work += rows;
        if self.work >= YIELD_EVERY {
            self.work = 0;
            tokio::task::yield_now().await;
        }
    }

    /// Charges `bytes` of collected rows (the result set, cached scans, IN
    /// lists) to the statement's budget, [`sort::TempStorage::statement_budget`]:
    /// past it the statement fails with 53200 instead of taking the node down.
    /// Rows streaming between operators are not charged; sorts and hash
    /// tables have budgets of their own.
    fn account(&mut self, bytes: usize) -> SqlResult<()> {
        self.memory_used += bytes;
        self.check_collected(self.memory_used)
    }

    /// Fails with 53200 when `bytes` of collected rows exceed the statement
    /// budget.
    fn check_collected(&self, bytes: usize) -> SqlResult<()> {
        let budget = self.node.temp_storage.statement_budget();
        if bytes > budget {
            return Err(SqlError::new(
                codes::OUT_OF_MEMORY,
                format!(
                    "memory budget exceeded: the statement collects more than {} of rows",
                    sort::human_bytes(budget)
                ),
            ));
        }
        Ok(())
    }

    pub fn ctx<'b>(&'b self, outer: &'b [Row], row_values: Option<&'b RowValues>) -> EvalCtx<'b> {
        EvalCtx {
            params: self.params,
            outer,
            subqueries: Some(&self.subqueries),
            row_values,
            now_micros: self.now_micros,
            txn_timestamp: self.txn.read_timestamp(),
            node_id: self.node.node_id,
            database: self.database,
            user: self.user,
            settings: self.settings,
        }
    }

    /// Invalidates cached scans (after the statement wrote).
    pub fn forget_scans(&mut self) {
        self.scan_cache.clear();
    }

    /// Runs `rel` (the rows an UPDATE or DELETE changes) with its reads
    /// locking what they return, as CockroachDB's implicit SELECT FOR UPDATE
    /// does: concurrent read-modify-writes of a row queue behind each other
    /// instead of all reading the old value and all but one failing with a
    /// retry error at commit.
    pub async fn run_locking(&mut self, rel: &Rel) -> SqlResult<Vec<Row>> {
        self.forget_scans();
        self.txn.set_lock_reads(true);
        let rows = self.run(rel, &[]).await;
        self.txn.set_lock_reads(false);
        rows
    }

    /// Runs `rel` with `outer` as the rows of the enclosing queries and
    /// returns all its rows (for DML and the client's result set; operators
    /// pass batches to each other, see [`operator`]).
    pub fn run<'b>(
        &'b mut self,
        rel: &'b Rel,
        outer: &'b [Row],
    ) -> BoxFuture<'b, SqlResult<Vec<Row>>>
    where
        'a: 'b,
    {
        Box::pin(crate::stack::Grow(Box::pin(async move {
            let mut op = self.open(rel, outer, None)?;
            let mut rows = Vec::new();
            while let Some(batch) = op.next(self, outer).await? {
                self.account(batch.bytes())?;
                rows.extend(batch.into_rows());
            }
            Ok(rows)
        })))
    }

    /// Runs a query, handing its rows to `sink` a batch at a time.
    async fn stream(
        &mut self,
        rel: &Rel,
        scope: &[crate::plan::bind::ScopeColumn],
        sink: &mut dyn RowSink,
    ) -> SqlResult<QueryOutput> {
        let (columns, visible) = visible_columns(scope);
        let mut op = self.open(rel, &[], None)?;
        let mut n = 0;
        let mut shown = Batch::new(visible.len());
        while let Some(batch) = op.next(self, &[]).await? {
            n += batch.len();
            if visible.len() == batch.width() {
                sink.send(&columns, &batch).await?;
                continue;
            }
            shown.clear();
            for row in batch.rows() {
                for i in &visible {
                    shown.push_value(row[*i].clone());
                }
                shown.finish_row();
            }
            sink.send(&columns, &shown).await?;
        }
        Ok(QueryOutput {
            tag: format!("SELECT {n}"),
            columns: Some(columns),
            rows: Vec::new(),
            streamed: true,
        })
    }

    /// Computes the subqueries and `nextval`s that `exprs` need for `row`.
    pub async fn eval_row(
        &mut self,
        exprs: &[&Scalar],
        row: &[Value],
        outer: &[Row],
    ) -> SqlResult<RowValues> {
        let mut found = Vec::new();
        for e in exprs {
            collect_async(e, &mut found);
        }
        let mut values = RowValues::default();
        for s in found {
            match s {
                Scalar::Subquery(sub) => {
                    if !sub.correlated {
                        if self.subqueries.contains_key(&sub.id) {
                            continue;
                        }
                        let v = self.compute_subquery(&sub.plan, &sub.kind, &[]).await?;
                        self.subqueries.insert(sub.id, v);
                    } else {
                        let mut stack: Vec<Row> = outer.to_vec();
                        stack.push(row.to_vec());
                        let v = self.compute_subquery(&sub.plan, &sub.kind, &stack).await?;
                        values.subqueries.insert(sub.id, v);
                    }
                }
                Scalar::NextVal { sequence, id } => {
                    if self.settings.is_some_and(|s| s.read_only()) {
                        return Err(crate::settings::read_only_error("nextval()"));
                    }
                    let (seq_id, v) = self
                        .node
                        .catalog
                        .next_sequence_value(self.txn, self.database, sequence)
                        .await?;
                    if let Some(settings) = self.settings {
                        settings.record_sequence_value(seq_id, v, true);
                    }
                    values.nextvals.insert(*id, v);
                }
                Scalar::Func { name, args, .. } if crate::plan::is_sequence_fn(name) => {
                    let v = self.sequence_fn(name, args, row, outer, &values).await?;
                    values.advisory.insert(s as *const Scalar as usize, v);
                }
                Scalar::Func { name, args, .. } if crate::plan::is_advisory(name) => {
                    let v = self.advisory(name, args, row, outer).await?;
                    values.advisory.insert(s as *const Scalar as usize, v);
                }
                Scalar::Func { args, .. } if crate::plan::is_sleep(s) => {
                    let seconds = match args.first() {
                        Some(a) => crate::plan::eval::eval(a, row, &self.ctx(outer, None))?,
                        None => Value::Null,
                    };
                    let seconds = match seconds {
                        Value::Int(i) => i as f64,
                        Value::Float(f) => f,
                        Value::Decimal(d) => tardigrade_sqltypes::num::dec_to_f64(&d),
                        _ => 0.0,
                    };
                    if seconds > 0.0 {
                        // A cancel or statement_timeout drops this future.
                        let d = std::time::Duration::try_from_secs_f64(seconds.min(1e9))
                            .unwrap_or(std::time::Duration::ZERO);
                        tokio::time::sleep(d).await;
                    }
                }
                _ => {}
            }
        }
        Ok(values)
    }

    /// Runs `currval`, `setval`, `lastval` or `pg_get_serial_sequence`
    /// ([`crate::plan::is_sequence_fn`]) for the session. Strict: a NULL
    /// argument gives NULL.
    async fn sequence_fn(
        &mut self,
        name: &str,
        args: &[Scalar],
        row: &[Value],
        outer: &[Row],
        values: &RowValues,
    ) -> SqlResult<Value> {
        let mut vals = Vec::with_capacity(args.len());
        for a in args {
            vals.push(crate::plan::eval::eval(
                a,
                row,
                &self.ctx(outer, Some(values)),
            )?);
        }
        if vals.iter().any(|v| matches!(v, Value::Null)) {
            return Ok(Value::Null);
        }
        let text = |i: usize| match vals.get(i) {
            Some(Value::Text(t)) => Ok(t.clone()),
            _ => Err(SqlError::datatype_mismatch(format!(
                "{name} takes a relation name"
            ))),
        };
        if name == "pg_get_serial_sequence" {
            let table = crate::catalog::relation_name(&text(0)?);
            let column = text(1)?;
            let seq = self
                .node
                .catalog
                .owned_sequence(self.txn, self.database, &table, &column)
                .await?;
            return Ok(seq.map_or(Value::Null, Value::Text));
        }
        let Some(settings) = self.settings else {
            return Err(SqlError::unsupported(format!("{name} needs a session")));
        };
        match name {
            "lastval" => Ok(Value::Int(settings.lastval()?)),
            "currval" => {
                let seq = crate::catalog::relation_name(&text(0)?);
                let id = self
                    .node
                    .catalog
                    .sequence_id(self.txn, self.database, &seq)
                    .await?;
                Ok(Value::Int(settings.currval(id, &seq)?))
            }
            _ => {
                if settings.read_only() {
                    return Err(crate::settings::read_only_error("setval()"));
                }
                let seq = crate::catalog::relation_name(&text(0)?);
                let value = match vals.get(1) {
                    Some(v) => as_int(v).ok_or_else(|| {
                        SqlError::datatype_mismatch("setval takes a bigint value")
                    })?,
                    None => return Err(SqlError::internal("setval without a value")),
                };
                let is_called = !matches!(vals.get(2), Some(Value::Bool(false)));
                let id = self
                    .node
                    .catalog
                    .set_sequence_value(self.txn, self.database, &seq, value, is_called)
                    .await?;
                if is_called {
                    settings.record_sequence_value(id, value, false);
                }
                Ok(Value::Int(value))
            }
        }
    }

    /// Runs an advisory lock function for the session
    /// ([`crate::advisory`]); `pg_advisory_lock` waits while another
    /// session holds the lock (a cancel or statement_timeout drops the wait).
    async fn advisory(
        &self,
        name: &str,
        args: &[Scalar],
        row: &[Value],
        outer: &[Row],
    ) -> SqlResult<Value> {
        use crate::advisory::LockKey;
        let Some(session) = self.settings.map(Settings::session_id) else {
            return Err(SqlError::unsupported(format!("{name} needs a session")));
        };
        let locks = &self.node.advisory;
        if name == "pg_advisory_unlock_all" {
            locks.release(session, true, false);
            return Ok(Value::Null);
        }
        let mut keys = Vec::with_capacity(args.len());
        for a in args {
            match crate::plan::eval::eval(a, row, &self.ctx(outer, None))? {
                // a NULL key: NULL result, nothing locked (strict, as in
                // PostgreSQL)
                Value::Null => return Ok(Value::Null),
                v => keys.push(as_int(&v).ok_or_else(|| {
                    SqlError::datatype_mismatch(format!("{name} takes integer keys"))
                })?),
            }
        }
        let key = match keys[..] {
            [k] => LockKey::One(k),
            [a, b] => {
                let int4 = |v: i64| {
                    i32::try_from(v).map_err(|_| SqlError::out_of_range("integer out of range"))
                };
                LockKey::Two(int4(a)?, int4(b)?)
            }
            _ => return Err(SqlError::internal(format!("{name}: wrong argument count"))),
        };
        Ok(match name {
            "pg_advisory_lock" | "pg_advisory_xact_lock" => {
                locks
                    .lock(session, key, name == "pg_advisory_xact_lock")
                    .await;
                Value::Null
            }
            "pg_try_advisory_lock" => Value::Bool(locks.try_lock(session, key, false)),
            "pg_try_advisory_xact_lock" => Value::Bool(locks.try_lock(session, key, true)),
            // PostgreSQL also warns ("you don't own a lock of type
            // ExclusiveLock") when false.
            _ => Value::Bool(locks.unlock(session, key)),
        })
    }

    async fn compute_subquery(
        &mut self,
        plan: &Rel,
        kind: &SubqueryKind,
        outer: &[Row],
    ) -> SqlResult<SubValue> {
        // Only as many rows as the answer needs are read.
        let wanted = match kind {
            SubqueryKind::Exists => Some(1),
            SubqueryKind::Scalar => Some(2),
            _ => None,
        };
        let mut op = self.open(plan, outer, wanted)?;
        Ok(match kind {
            SubqueryKind::Exists => SubValue::Exists(op.next(self, outer).await?.is_some()),
            SubqueryKind::Scalar => {
                let mut value = None;
                while let Some(mut batch) = op.next(self, outer).await? {
                    if value.is_some() || batch.len() > 1 {
                        return Err(SqlError::new(
                            codes::CARDINALITY_VIOLATION,
                            "more than one row returned by a subquery used as an expression",
                        ));
                    }
                    value = Some(batch.take_row(0).into_iter().next().unwrap_or(Value::Null));
                }
                SubValue::Scalar(value.unwrap_or(Value::Null))
            }
            SubqueryKind::In { .. } | SubqueryKind::Quantified { .. } => {
                // Held for one outer row at a time (a correlated subquery):
                // charged on its own, not added to the statement's total.
                let mut column = Vec::new();
                let mut bytes = 0;
                while let Some(batch) = op.next(self, outer).await? {
                    bytes += batch.bytes();
                    self.check_collected(bytes)?;
                    column.extend(batch.rows().filter_map(|r| r.first().cloned()));
                }
                SubValue::Column(column)
            }
        })
    }

    /// Starts the CTEs of a [`Rel::With`] run with `outer` as the rows of
    /// the enclosing queries: each is computed when first read
    /// ([`Executor::cte_rows`]). Rows an earlier run of the node left are
    /// dropped.
    fn start_ctes(&mut self, ctes: &[crate::plan::Cte], outer: &[Row]) {
        self.release_ctes(ctes);
        for c in ctes {
            self.ctes.insert(
                c.id,
                CteState::Pending {
                    plan: c.plan.clone(),
                    outer: outer.to_vec(),
                },
            );
        }
    }

    /// Drops the rows of `ctes` (their `WITH` is done) and their charge.
    fn release_ctes(&mut self, ctes: &[crate::plan::Cte]) {
        for c in ctes {
            if let Some(CteState::Done { bytes, .. }) = self.ctes.remove(&c.id) {
                self.memory_used = self.memory_used.saturating_sub(bytes);
            }
        }
    }

    /// The bytes of `ctes`' rows held now.
    fn cte_bytes(&self, ctes: &[crate::plan::Cte]) -> usize {
        ctes.iter()
            .map(|c| match self.ctes.get(&c.id) {
                Some(CteState::Done { bytes, .. }) => *bytes,
                _ => 0,
            })
            .sum()
    }

    /// The rows of the materialized CTE `id`, computed at the first read
    /// (once per run of its `WITH`, however many scans read them and
    /// however often a correlated subquery reads them). They count against
    /// the statement's budget like a collected result.
    // TODO(issue 12): spill a large CTE to a temp file as sorts do, and
    // compute it incrementally as its readers need rows (PostgreSQL's
    // shared tuplestore), so that a LIMIT above a scan stops it early.
    async fn cte_rows(&mut self, id: usize) -> SqlResult<Arc<Batch>> {
        if let Some(CteState::Done { rows, .. }) = self.ctes.get(&id) {
            return Ok(rows.clone());
        }
        match self.ctes.remove(&id) {
            Some(CteState::Pending { plan, outer }) => {
                self.ctes.insert(id, CteState::Computing);
                match self.compute_cte(&plan, &outer).await {
                    Ok((rows, bytes)) => {
                        let rows = Arc::new(rows);
                        self.ctes.insert(
                            id,
                            CteState::Done {
                                rows: rows.clone(),
                                bytes,
                            },
                        );
                        Ok(rows)
                    }
                    Err(e) => {
                        self.ctes.insert(id, CteState::Pending { plan, outer });
                        Err(e)
                    }
                }
            }
            Some(state) => {
                self.ctes.insert(id, state);
                Err(SqlError::internal(format!("CTE {id} reads itself")))
            }
            None => Err(SqlError::internal(format!(
                "CTE {id} read outside its WITH"
            ))),
        }
    }

    /// Runs a CTE's plan to the end: its rows and their size, charged to
    /// the statement.
    async fn compute_cte(&mut self, plan: &Rel, outer: &[Row]) -> SqlResult<(Batch, usize)> {
        let mut op = self.open(plan, outer, None)?;
        let mut rows = Batch::new(plan.width());
        let mut bytes = 0;
        while let Some(mut batch) = op.next(self, outer).await? {
            let n = batch.bytes();
            self.account(n)?;
            bytes += n;
            rows.append(&mut batch);
        }
        Ok((rows, bytes))
    }

    /// The key spans a scan reads.
    fn scan_spans(&self, scan: &Scan, outer: &[Row]) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        match &scan.constraint {
            Some(c) => self.spans(scan, c, outer),
            None => Ok(vec![rowenc::index_span(&scan.table, scan.index)]),
        }
    }

    /// All the rows of a scan over `spans`, cached for the statement: a
    /// correlated subquery reads the same spans again for many outer rows.
    async fn scan_cached(
        &mut self,
        scan: &Scan,
        spans: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> SqlResult<Arc<Batch>> {
        let key = (
            scan.table.id,
            scan.index,
            spans,
            scan.reverse,
            scan.limit,
            scan.covering,
            scan.reads.clone(),
            scan.project.clone(),
        );
        if let Some(rows) = self.scan_cache.get(&key) {
            return Ok(rows.clone());
        }
        let mut scanner =
            rowenc::RowScanner::new(scan.table.clone(), scan.index, key.2.clone(), scan.reverse)
                .reading(scan.reads.clone())
                .projecting(operator::decoded_projection(scan));
        let mut rows = Batch::new(scan.width());
        let limit = scan.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
        loop {
            let want = match limit {
                Some(l) => (l - rows.len()).min(batch::BATCH_ROWS),
                None => batch::BATCH_ROWS,
            };
            if want == 0 {
                break;
            }
            let mut page = Batch::new(scanner.width());
            if scanner.next_batch_into(self.txn, want, &mut page).await? == 0 {
                break;
            }
            if !scan.covering {
                page = self.index_join(&scan.table, page).await?;
                if let Some(p) = &scan.project {
                    page = page.select_columns(p)?;
                }
            }
            self.account(page.bytes())?;
            rows.append(&mut page);
        }
        let rows = Arc::new(rows);
        self.scan_cache.insert(key, rows.clone());
        Ok(rows)
    }

    /// Fetches the full rows for rows read from a secondary index.
    async fn index_join(
        &mut self,
        table: &Arc<crate::catalog::TableDesc>,
        rows: Batch,
    ) -> SqlResult<Batch> {
        let pk_positions: Vec<usize> = table
            .primary_index
            .columns
            .iter()
            .filter_map(|id| table.columns.iter().position(|c| c.id == *id))
            .collect();
        let pks: Vec<Vec<Value>> = rows
            .rows()
            .map(|r| pk_positions.iter().map(|p| r[*p].clone()).collect())
            .collect();
        let full = rowenc::get_rows_by_pk(self.txn, table, &pks).await?;
        let mut out = Batch::with_capacity(table.columns.len(), full.len());
        for row in full.into_iter().flatten() {
            out.push_owned(row)?;
        }
        Ok(out)
    }

    fn spans(
        &self,
        scan: &Scan,
        c: &IndexConstraint,
        outer: &[Row],
    ) -> SqlResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let ctx = self.ctx(outer, None);
        let mut spans = Vec::with_capacity(c.prefixes.len());
        for prefix in &c.prefixes {
            let mut values = Vec::with_capacity(prefix.len() + 1);
            let mut null = false;
            for p in prefix {
                let v = eval(p, &[], &ctx)?;
                null |= v.is_null();
                values.push(v);
            }
            if null {
                // `col = NULL` matches nothing.
                continue;
            }
            let base = rowenc::index_key_prefix(&scan.table, scan.index, &values)?;
            if scan.index == scan.table.primary_index.id
                && values.len() == scan.table.primary_index.columns.len()
                && c.lower.is_none()
                && c.upper.is_none()
            {
                // The whole primary key: one row at exactly this key, which
                // the scanner reads with a point get.
                let end = tardigrade_encoding::keys::key_next(&base);
                spans.push((base, end));
                continue;
            }
            let base_end = tardigrade_encoding::keys::prefix_end(&base);
            let start = match &c.lower {
                Some((bound, inclusive)) => {
                    let b = eval(bound, &[], &ctx)?;
                    if b.is_null() {
                        continue;
                    }
                    let mut with = values.clone();
                    with.push(b);
                    let key = rowenc::index_key_prefix(&scan.table, scan.index, &with)?;
                    if *inclusive {
                        key
                    } else {
                        tardigrade_encoding::keys::prefix_end(&key)
                    }
                }
                None if c.upper.is_some() => {
                    // Skip NULLs, which sort first.
                    let mut with = values.clone();
                    with.push(Value::Null);
                    tardigrade_encoding::keys::prefix_end(&rowenc::index_key_prefix(
                        &scan.table,
                        scan.index,
                        &with,
                    )?)
                }
                None => base.clone(),
            };
            let end = match &c.upper {
                Some((bound, inclusive)) => {
                    let b = eval(bound, &[], &ctx)?;
                    if b.is_null() {
                        continue;
                    }
                    let mut with = values.clone();
                    with.push(b);
                    let key = rowenc::index_key_prefix(&scan.table, scan.index, &with)?;
                    if *inclusive {
                        tardigrade_encoding::keys::prefix_end(&key)
                    } else {
                        key
                    }
                }
                None => base_end,
            };
            if start < end {
                spans.push((start, end));
            }
        }
        spans.sort();
        spans.dedup();
        Ok(spans)
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => match ops::cast(other, SqlType::Unknown, SqlType::Int8) {
            Ok(Value::Int(i)) => Some(i),
            _ => None,
        },
    }
}

/// Children first: a function the executor runs (`setval('s', (SELECT
/// …))`) finds its arguments' subqueries computed.
fn collect_async<'s>(s: &'s Scalar, out: &mut Vec<&'s Scalar>) {
    // The IN / ANY left operand of a subquery may hold more.
    for c in s.children() {
        collect_async(c, out);
    }
    if matches!(s, Scalar::Subquery(_) | Scalar::NextVal { .. }) || crate::plan::is_sleep(s) {
        out.push(s);
    }
}
