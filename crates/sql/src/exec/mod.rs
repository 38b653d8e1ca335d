//! Execution: runs a bound plan inside the statement's KV transaction.
//!
//! Operators work on whole batches: each one produces the vector of its output
//! rows from its input's (scans page through the KV layer `SCAN_BATCH` rows at a
//! time and stop early under a pushed-down limit). Joins hash the right side on
//! the equality keys (nested loops otherwise), aggregation hashes on the group
//! keys, sorting is an external merge sort under the node's working-memory
//! budget ([`sort`]; a top-n heap under `ORDER BY … LIMIT n`).
//!
//! TODO(issue 4): streaming operators (the sort streams its output, which is
//! still collected), spilling hash aggregation and joins, and per-row
//! allocation-free batches; today a row is a `Vec<Value>`.

pub mod dml;
pub mod eval;
mod join;
pub mod sort;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sqlparser::ast::Statement;
use tardigrade_kv::Txn;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value, agg, ops};

use crate::plan::bind::{Binder, collect_tables, output_type};
use crate::plan::{IndexConstraint, JoinKind, Rel, Row, Scalar, Scan, SetOpKind, SubqueryKind};
use crate::rowenc;
use crate::session::{Column, QueryOutput, SqlNode};
use eval::{EvalCtx, RowValues, SubValue, eval, eval_predicate};

/// What identifies a scan's result within a statement: table, index, spans,
/// direction and limit.
type ScanKey = (u32, u32, Vec<(Vec<u8>, Vec<u8>)>, bool, Option<u64>);

/// Rows fetched from KV per page.
const SCAN_BATCH: usize = 1024;

/// A bound, optimized plan kept by a prepared statement, valid while the tables
/// it names keep the descriptor versions it was bound against.
pub struct CachedPlan {
    tables: Vec<(String, u32, u64)>,
    plan: BoundPlan,
}

enum BoundPlan {
    Query {
        rel: Box<Rel>,
        scope: Vec<crate::plan::bind::ScopeColumn>,
    },
    Dml(Box<dml::BoundDml>),
}

/// Where a prepared statement keeps its plan between executions.
pub type PlanCache = parking_lot::Mutex<Option<Arc<CachedPlan>>>;

fn table_versions(tables: &crate::plan::bind::TableMap) -> Vec<(String, u32, u64)> {
    let mut v: Vec<(String, u32, u64)> = tables
        .iter()
        .map(|(n, d)| (n.clone(), d.id, d.version))
        .collect();
    v.sort();
    v
}

/// Runs one (non transaction-control) statement in `txn`. `param_types` are the
/// types the parameters were decoded as; `cache` lets a prepared statement reuse
/// its plan.
pub async fn execute_statement(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    statement: &Statement,
    params: &[Value],
    param_types: &[SqlType],
    cache: Option<&PlanCache>,
) -> SqlResult<QueryOutput> {
    match statement {
        Statement::Query(_)
        | Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Explain { .. } => {}
        Statement::Set(_) => return Ok(QueryOutput::command("SET")),
        Statement::ShowVariable { variable } => return Ok(show_variable(variable, database)),
        _ => {
            // Boxed: DDL such as CREATE TABLE AS runs statements in turn.
            return match Box::pin(crate::ddl::execute(node, txn, database, statement)).await? {
                Some(out) => Ok(out),
                None => Err(SqlError::unsupported(format!(
                    "unsupported statement: {}",
                    statement.to_string().chars().take(60).collect::<String>()
                ))),
            };
        }
    }
    // Name resolution always goes through the transaction (it is what makes DDL
    // and DML serializable); binding is skipped when the cached plan still fits.
    let tables = collect_tables(node, txn, database, statement).await?;
    let versions = table_versions(&tables);
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
            let mut binder = Binder::new(&tables, &types);
            let plan = match statement {
                Statement::Query(q) => {
                    let bound = binder.bind_query(q)?;
                    BoundPlan::Query {
                        rel: Box::new(crate::plan::index::optimize(bound.rel)),
                        scope: bound.scope,
                    }
                }
                Statement::Explain {
                    statement: inner, ..
                } => {
                    let lines = match inner.as_ref() {
                        Statement::Query(q) => {
                            let bound = binder.bind_query(q)?;
                            crate::plan::explain::render(&crate::plan::index::optimize(bound.rel))
                        }
                        other => dml::bind_dml(&mut binder, other)?.explain(),
                    };
                    let n = lines.len();
                    return Ok(QueryOutput {
                        tag: format!("EXPLAIN {n}"),
                        columns: Some(vec![Column {
                            name: "info".into(),
                            ty: SqlType::Text,
                        }]),
                        rows: lines.into_iter().map(|l| vec![Value::Text(l)]).collect(),
                    });
                }
                other => BoundPlan::Dml(Box::new(dml::bind_dml(&mut binder, other)?)),
            };
            let plan = Arc::new(CachedPlan {
                tables: versions,
                plan,
            });
            if let Some(c) = cache {
                *c.lock() = Some(plan.clone());
            }
            plan
        }
    };
    let mut exec = Executor::new(node, txn, database, params);
    match &plan.plan {
        BoundPlan::Query { rel, scope } => {
            let rows = exec.run(rel, &[]).await?;
            Ok(rows_output(scope, rows, |n| format!("SELECT {n}")))
        }
        BoundPlan::Dml(dml) => dml.execute(&mut exec).await,
    }
}

/// Evaluates a constant SQL expression (a column DEFAULT) as a value of `ty`.
pub async fn eval_constant(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    sql_text: &str,
    ty: SqlType,
) -> SqlResult<Value> {
    let tables = HashMap::new();
    let mut binder = Binder::new(&tables, &[]);
    let expr = dml::parse_stored_expr(sql_text)?;
    let bound = binder.bind_expr(&expr, &Vec::new())?;
    let bound = binder.coerce(bound, ty, "DEFAULT")?;
    let mut exec = Executor::new(node, txn, "", &[]);
    let values = exec.eval_row(&[&bound], &[], &[]).await?;
    let ctx = exec.ctx(&[], Some(&values));
    eval(&bound, &[], &ctx)
}

/// Packages rows for the client, dropping hidden columns.
pub fn rows_output(
    scope: &[crate::plan::bind::ScopeColumn],
    rows: Vec<Row>,
    tag: impl Fn(usize) -> String,
) -> QueryOutput {
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
    }
}

fn show_variable(variable: &[sqlparser::ast::Ident], database: &str) -> QueryOutput {
    let name = variable
        .iter()
        .map(|i| i.value.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    let value = match name.as_str() {
        "server_version" => "15.0.0".to_string(),
        "server_version_num" => "150000".to_string(),
        "transaction isolation level"
        | "transaction_isolation"
        | "default_transaction_isolation" => "serializable".to_string(),
        "timezone" | "time zone" => "UTC".to_string(),
        "search_path" => "\"$user\", public".to_string(),
        "database" => database.to_string(),
        "client_encoding" | "server_encoding" => "UTF8".to_string(),
        "datestyle" => "ISO, MDY".to_string(),
        "standard_conforming_strings" | "integer_datetimes" => "on".to_string(),
        "max_identifier_length" => "128".to_string(),
        other => format!("unrecognized configuration parameter \"{other}\""),
    };
    QueryOutput {
        tag: "SHOW".into(),
        columns: Some(vec![Column {
            name: name.replace(' ', "_"),
            ty: SqlType::Text,
        }]),
        rows: vec![vec![Value::Text(value)]],
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs plans for one statement: holds the transaction, parameters, the results
/// of uncorrelated subqueries and a cache of scans (correlated subqueries re-read
/// the same spans for every outer row).
pub struct Executor<'a> {
    pub node: &'a Arc<SqlNode>,
    pub txn: &'a mut Txn,
    pub database: &'a str,
    pub params: &'a [Value],
    subqueries: HashMap<usize, SubValue>,
    scan_cache: HashMap<ScanKey, Arc<Vec<Row>>>,
    now_micros: i64,
    /// Bytes of rows this statement has materialized (approximately).
    memory_used: usize,
    /// Rows handled since the executor last yielded to the runtime.
    work: usize,
    /// Rows a LIMIT directly above wants at most (limit + offset): a sort
    /// below it keeps only those (a top-n heap). Taken by every `run`, so
    /// it reaches only the LIMIT's child (through projections).
    limit_hint: Option<usize>,
}

/// Rows the CPU-bound loops handle between yields to the runtime. A cancel
/// request drops the statement's future at its next await point, so loops
/// that never wait on KV (cross joins, aggregation, generate_series) must
/// offer one regularly.
const YIELD_EVERY: usize = 4096;

/// Most memory one statement's materialized rows may use before it fails with
/// 53200 instead of taking the node down (sorts spill past their own, smaller
/// budget, [`sort::TempStorage::workmem`]).
/// TODO(issue 4): spill hash joins and aggregations to disk instead.
pub const STATEMENT_MEMORY_BUDGET: usize = 1 << 30;

impl<'a> Executor<'a> {
    pub fn new(
        node: &'a Arc<SqlNode>,
        txn: &'a mut Txn,
        database: &'a str,
        params: &'a [Value],
    ) -> Executor<'a> {
        let now_micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
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
            limit_hint: None,
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

    /// Charges rows to the statement's memory budget.
    fn account(&mut self, rows: &[Row]) -> SqlResult<()> {
        self.memory_used += rows.iter().map(|r| sort::row_bytes(r)).sum::<usize>();
        if self.memory_used > STATEMENT_MEMORY_BUDGET {
            return Err(SqlError::new(
                codes::OUT_OF_MEMORY,
                format!(
                    "memory budget exceeded: the statement holds more than {} MiB of rows",
                    STATEMENT_MEMORY_BUDGET >> 20
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
            node_id: self.node.node_id,
            database: self.database,
            user: "root",
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

    /// Runs `rel` with `outer` as the rows of the enclosing queries.
    pub fn run<'b>(
        &'b mut self,
        rel: &'b Rel,
        outer: &'b [Row],
    ) -> BoxFuture<'b, SqlResult<Vec<Row>>>
    where
        'a: 'b,
    {
        Box::pin(async move {
            let limit_hint = self.limit_hint.take();
            match rel {
                Rel::Scan(scan) => {
                    let rows = self.scan(scan, outer).await?;
                    Ok(Arc::try_unwrap(rows).unwrap_or_else(|a| (*a).clone()))
                }
                Rel::Values { rows, .. } => {
                    let mut out = Vec::with_capacity(rows.len());
                    for r in rows {
                        let exprs: Vec<&Scalar> = r.iter().collect();
                        let values = self.eval_row(&exprs, &[], outer).await?;
                        let ctx = self.ctx(outer, Some(&values));
                        out.push(
                            r.iter()
                                .map(|e| eval(e, &[], &ctx))
                                .collect::<SqlResult<Row>>()?,
                        );
                    }
                    Ok(out)
                }
                Rel::Series { start, stop, step } => {
                    let ctx = self.ctx(outer, None);
                    let start = as_int(&eval(start, &[], &ctx)?);
                    let stop = as_int(&eval(stop, &[], &ctx)?);
                    let step = match step {
                        Some(s) => as_int(&eval(s, &[], &ctx)?),
                        None => Some(1),
                    };
                    let (Some(start), Some(stop), Some(step)) = (start, stop, step) else {
                        return Ok(Vec::new());
                    };
                    if step == 0 {
                        return Err(SqlError::new(
                            codes::INVALID_PARAMETER_VALUE,
                            "step size cannot equal zero",
                        ));
                    }
                    let mut out = Vec::new();
                    let mut v = start;
                    while (step > 0 && v <= stop) || (step < 0 && v >= stop) {
                        self.tick(1).await;
                        out.push(vec![Value::Int(v)]);
                        if out.len() > 10_000_000 {
                            return Err(SqlError::new(
                                codes::PROGRAM_LIMIT_EXCEEDED,
                                "generate_series: too many rows",
                            ));
                        }
                        v = match v.checked_add(step) {
                            Some(n) => n,
                            None => break,
                        };
                    }
                    Ok(out)
                }
                Rel::Filter { input, predicate } => {
                    let rows = self.run(input, outer).await?;
                    let mut out = Vec::with_capacity(rows.len());
                    let needs_async = predicate.needs_async();
                    for row in rows {
                        self.tick(1).await;
                        let keep = if needs_async {
                            let values = self.eval_row(&[predicate], &row, outer).await?;
                            eval_predicate(predicate, &row, &self.ctx(outer, Some(&values)))?
                        } else {
                            eval_predicate(predicate, &row, &self.ctx(outer, None))?
                        };
                        if keep {
                            out.push(row);
                        }
                    }
                    Ok(out)
                }
                Rel::Project { input, exprs } => {
                    let needs_async = exprs.iter().any(|e| e.needs_async());
                    if !needs_async {
                        // One row out per row in: a LIMIT above applies below.
                        self.limit_hint = limit_hint;
                    }
                    let rows = self.run(input, outer).await?;
                    let refs: Vec<&Scalar> = exprs.iter().collect();
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        self.tick(1).await;
                        let values = if needs_async {
                            Some(self.eval_row(&refs, &row, outer).await?)
                        } else {
                            None
                        };
                        let ctx = self.ctx(outer, values.as_ref());
                        let mut projected = Vec::with_capacity(exprs.len());
                        for e in exprs {
                            projected.push(eval(e, &row, &ctx)?);
                        }
                        out.push(projected);
                    }
                    Ok(out)
                }
                Rel::Aggregate { input, group, aggs } => {
                    let rows = self.run(input, outer).await?;
                    self.aggregate(rows, group, aggs, outer, false).await
                }
                Rel::StreamAggregate { input, group, aggs } => {
                    let rows = self.run(input, outer).await?;
                    self.aggregate(rows, group, aggs, outer, true).await
                }
                Rel::LookupJoin(j) => {
                    let l = self.run(&j.left, outer).await?;
                    self.lookup_join(j, l, outer).await
                }
                Rel::MergeJoin {
                    kind,
                    left,
                    right,
                    keys,
                    on,
                } => {
                    let l = self.run(left, outer).await?;
                    let r = self.run(right, outer).await?;
                    self.merge_join(*kind, l, r, right.width(), keys, on.as_ref(), outer)
                        .await
                }
                Rel::Join {
                    kind,
                    left,
                    right,
                    on,
                    equi,
                } => {
                    let l = self.run(left, outer).await?;
                    let r = self.run(right, outer).await?;
                    self.join(
                        *kind,
                        l,
                        r,
                        left.width(),
                        right.width(),
                        on.as_ref(),
                        equi,
                        outer,
                    )
                    .await
                }
                Rel::Sort { input, keys } => {
                    let rows = self.run(input, outer).await?;
                    self.sort(rows, keys, outer, limit_hint).await
                }
                Rel::Limit {
                    input,
                    limit,
                    offset,
                } => {
                    let ctx = self.ctx(outer, None);
                    let limit = match limit {
                        Some(l) => match eval(l, &[], &ctx)? {
                            Value::Null => None,
                            v => Some(as_int(&v).filter(|n| *n >= 0).ok_or_else(|| {
                                SqlError::new("2201W", "LIMIT must not be negative")
                            })?),
                        },
                        None => None,
                    };
                    let offset = match offset {
                        Some(o) => match eval(o, &[], &ctx)? {
                            Value::Null => 0,
                            v => as_int(&v).filter(|n| *n >= 0).ok_or_else(|| {
                                SqlError::new("2201X", "OFFSET must not be negative")
                            })?,
                        },
                        None => 0,
                    };
                    self.limit_hint = limit.map(|l| l.saturating_add(offset) as usize);
                    let rows = self.run(input, outer).await?;
                    let it = rows.into_iter().skip(offset as usize);
                    Ok(match limit {
                        Some(l) => it.take(l as usize).collect(),
                        None => it.collect(),
                    })
                }
                Rel::Distinct { input, key_len } => {
                    let rows = self.run(input, outer).await?;
                    let mut seen: HashSet<Vec<Value>> = HashSet::with_capacity(rows.len());
                    let mut out = Vec::new();
                    for row in rows {
                        let key: Vec<Value> = row[..(*key_len).min(row.len())].to_vec();
                        if seen.insert(key) {
                            out.push(row);
                        }
                    }
                    Ok(out)
                }
                Rel::SetOp {
                    op,
                    all,
                    left,
                    right,
                } => {
                    let l = self.run(left, outer).await?;
                    let r = self.run(right, outer).await?;
                    Ok(set_op(*op, *all, l, r))
                }
            }
        })
    }

    /// Sorts `rows` on `keys` (keeping the first `limit` when given) under
    /// the node's working-memory budget, spilling sorted runs to temp files
    /// past it.
    async fn sort(
        &mut self,
        rows: Vec<Row>,
        keys: &[crate::plan::SortKey],
        outer: &[Row],
        limit: Option<usize>,
    ) -> SqlResult<Vec<Row>> {
        let node = self.node;
        let order = keys
            .iter()
            .map(|k| sort::KeyOrder {
                descending: k.descending,
                nulls_first: k.nulls_first,
            })
            .collect();
        let mut sorter = sort::Sorter::new(order, limit, &node.temp_storage);
        for row in rows {
            let key = {
                let ctx = self.ctx(outer, None);
                keys.iter()
                    .map(|k| eval(&k.expr, &row, &ctx))
                    .collect::<SqlResult<Vec<_>>>()?
            };
            sorter.push(key, row).await?;
            self.tick(1).await;
        }
        let mut sorted = sorter.finish().await?;
        let mut out = Vec::new();
        while let Some(row) = sorted.next_row()? {
            out.push(row);
            self.tick(1).await;
        }
        Ok(out)
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
                Scalar::NextVal { sequence } => {
                    let v = self
                        .node
                        .catalog
                        .next_sequence_value(self.txn, self.database, sequence)
                        .await?;
                    values.nextvals.insert(sequence.clone(), v);
                }
                _ => {}
            }
        }
        Ok(values)
    }

    async fn compute_subquery(
        &mut self,
        plan: &Rel,
        kind: &SubqueryKind,
        outer: &[Row],
    ) -> SqlResult<SubValue> {
        let rows = self.run(plan, outer).await?;
        Ok(match kind {
            SubqueryKind::Scalar => match rows.len() {
                0 => SubValue::Scalar(Value::Null),
                1 => SubValue::Scalar(
                    rows.into_iter()
                        .next()
                        .and_then(|r| r.into_iter().next())
                        .unwrap_or(Value::Null),
                ),
                _ => {
                    return Err(SqlError::new(
                        codes::CARDINALITY_VIOLATION,
                        "more than one row returned by a subquery used as an expression",
                    ));
                }
            },
            SubqueryKind::Exists => SubValue::Exists(!rows.is_empty()),
            SubqueryKind::In { .. } | SubqueryKind::Quantified { .. } => SubValue::Column(
                rows.into_iter()
                    .filter_map(|r| r.into_iter().next())
                    .collect(),
            ),
        })
    }

    async fn scan(&mut self, scan: &Scan, outer: &[Row]) -> SqlResult<Arc<Vec<Row>>> {
        let spans = match &scan.constraint {
            Some(c) => self.spans(scan, c, outer)?,
            None => vec![rowenc::index_span(&scan.table, scan.index)],
        };
        let key = (scan.table.id, scan.index, spans, scan.reverse, scan.limit);
        if let Some(rows) = self.scan_cache.get(&key) {
            return Ok(rows.clone());
        }
        let spans = key.2.clone();
        let mut scanner =
            rowenc::RowScanner::new(scan.table.clone(), scan.index, spans, scan.reverse);
        let mut rows = Vec::new();
        let limit = scan.limit.map(|l| l as usize);
        loop {
            let want = match limit {
                Some(l) => (l - rows.len()).min(SCAN_BATCH),
                None => SCAN_BATCH,
            };
            if want == 0 {
                break;
            }
            match scanner.next_batch(self.txn, want).await? {
                Some(batch) => {
                    self.account(&batch)?;
                    rows.extend(batch)
                }
                None => break,
            }
        }
        if !scan.covering {
            rows = self.index_join(&scan.table, rows).await?;
        }
        let rows = Arc::new(rows);
        self.scan_cache.insert(key, rows.clone());
        Ok(rows)
    }

    /// Fetches the full rows for rows read from a secondary index.
    async fn index_join(
        &mut self,
        table: &Arc<crate::catalog::TableDesc>,
        rows: Vec<Row>,
    ) -> SqlResult<Vec<Row>> {
        let pk_positions: Vec<usize> = table
            .primary_index
            .columns
            .iter()
            .filter_map(|id| table.columns.iter().position(|c| c.id == *id))
            .collect();
        let pks: Vec<Vec<Value>> = rows
            .iter()
            .map(|r| pk_positions.iter().map(|p| r[*p].clone()).collect())
            .collect();
        let full = rowenc::get_rows_by_pk(self.txn, table, &pks).await?;
        Ok(full.into_iter().flatten().collect())
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

    /// Hash aggregation, or with `streaming` (input ordered on the group
    /// keys, so each group's rows are adjacent) one group at a time.
    async fn aggregate(
        &mut self,
        rows: Vec<Row>,
        group: &[Scalar],
        aggs: &[crate::plan::AggCall],
        outer: &[Row],
        streaming: bool,
    ) -> SqlResult<Vec<Row>> {
        struct GroupState {
            key: Vec<Value>,
            accs: Vec<Box<dyn agg::Accumulator>>,
            seen: Vec<Option<HashSet<Vec<Value>>>>,
        }
        let new_state = |key: Vec<Value>| -> SqlResult<GroupState> {
            let mut accs = Vec::with_capacity(aggs.len());
            let mut seen = Vec::with_capacity(aggs.len());
            for a in aggs {
                accs.push(agg::new_accumulator(&a.name, &a.arg_types)?);
                seen.push(if a.distinct {
                    Some(HashSet::new())
                } else {
                    None
                });
            }
            Ok(GroupState { key, accs, seen })
        };
        let mut index: HashMap<Vec<Value>, usize> = HashMap::new();
        let mut budget = sort::HashBudget::new(&self.node.temp_storage, "hash aggregation");
        let mut groups: Vec<GroupState> = Vec::new();
        if group.is_empty() {
            groups.push(new_state(Vec::new())?);
            index.insert(Vec::new(), 0);
        }
        let all_exprs: Vec<&Scalar> = group
            .iter()
            .chain(
                aggs.iter()
                    .flat_map(|a| a.args.iter().chain(a.filter.iter())),
            )
            .collect();
        let needs_async = all_exprs.iter().any(|e| e.needs_async());
        let mut args = Vec::new();
        let mut out: Vec<Row> = Vec::new();
        for row in rows {
            self.tick(1).await;
            let values = if needs_async {
                Some(self.eval_row(&all_exprs, &row, outer).await?)
            } else {
                None
            };
            let ctx = self.ctx(outer, values.as_ref());
            let gi = if streaming {
                let mut same = false;
                if let Some(g) = groups.last() {
                    same = true;
                    for (e, k) in group.iter().zip(&g.key) {
                        let equal = match e {
                            Scalar::Column { index, .. } => row.get(*index) == Some(k),
                            other => eval(other, &row, &ctx)? == *k,
                        };
                        if !equal {
                            same = false;
                            break;
                        }
                    }
                }
                if !same {
                    if let Some(g) = groups.pop() {
                        out.push(finish_group(g.key, g.accs)?);
                    }
                    budget.reset();
                    let key = group
                        .iter()
                        .map(|g| eval(g, &row, &ctx))
                        .collect::<SqlResult<Vec<_>>>()?;
                    groups.push(new_state(key)?);
                }
                groups.len() - 1
            } else {
                let key = group
                    .iter()
                    .map(|g| eval(g, &row, &ctx))
                    .collect::<SqlResult<Vec<_>>>()?;
                match index.get(&key) {
                    Some(i) => *i,
                    None => {
                        // The key twice (index and state), the accumulators.
                        budget.charge(2 * sort::row_bytes(&key) + 64 * aggs.len())?;
                        groups.push(new_state(key.clone())?);
                        index.insert(key, groups.len() - 1);
                        groups.len() - 1
                    }
                }
            };
            let state = &mut groups[gi];
            for (ai, a) in aggs.iter().enumerate() {
                if let Some(f) = &a.filter
                    && !eval_predicate(f, &row, &ctx)?
                {
                    continue;
                }
                args.clear();
                for e in &a.args {
                    args.push(eval(e, &row, &ctx)?);
                }
                if let Some(seen) = &mut state.seen[ai]
                    && ((args.iter().any(|v| v.is_null()) && agg::ignores_nulls(&a.name))
                        || !seen.insert(args.clone()))
                {
                    continue;
                }
                if state.seen[ai].is_some() {
                    budget.charge(sort::row_bytes(&args))?;
                }
                state.accs[ai].add(&args)?;
            }
        }
        for g in groups {
            out.push(finish_group(g.key, g.accs)?);
        }
        self.account(&out)?;
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    async fn join(
        &mut self,
        kind: JoinKind,
        left: Vec<Row>,
        right: Vec<Row>,
        left_width: usize,
        right_width: usize,
        on: Option<&Scalar>,
        equi: &[(usize, usize)],
        outer: &[Row],
    ) -> SqlResult<Vec<Row>> {
        let needs_async = on.is_some_and(|o| o.needs_async());
        let mut out = Vec::new();
        let mut right_matched = vec![false; right.len()];
        // Hash the right side on the equality keys; NULL keys never match.
        let table: Option<HashMap<Vec<Value>, Vec<usize>>> = if equi.is_empty() {
            None
        } else {
            let mut t: HashMap<Vec<Value>, Vec<usize>> = HashMap::with_capacity(right.len());
            let mut budget = sort::HashBudget::new(&self.node.temp_storage, "hash join");
            for (i, r) in right.iter().enumerate() {
                let key: Vec<Value> = equi.iter().map(|(_, rc)| r[*rc].clone()).collect();
                if key.iter().any(|v| v.is_null()) {
                    continue;
                }
                // The build side's rows live as long as the table.
                budget.charge(sort::row_bytes(&key) + sort::row_bytes(r))?;
                t.entry(key).or_default().push(i);
            }
            Some(t)
        };
        let all: Vec<usize> = (0..right.len()).collect();
        let mut combined: Row = Vec::with_capacity(left_width + right_width);
        let mut accounted = 0;
        for l in &left {
            self.tick(1 + if table.is_some() { 0 } else { right.len() })
                .await;
            if out.len() - accounted >= 1024 {
                self.account(&out[accounted..])?;
                accounted = out.len();
            }
            let candidates: &[usize] = match &table {
                Some(t) => {
                    let key: Vec<Value> = equi.iter().map(|(lc, _)| l[*lc].clone()).collect();
                    if key.iter().any(|v| v.is_null()) {
                        &[]
                    } else {
                        t.get(&key).map(|v| v.as_slice()).unwrap_or(&[])
                    }
                }
                None => &all,
            };
            let mut matched = false;
            for &ri in candidates {
                combined.clear();
                combined.extend_from_slice(l);
                combined.extend_from_slice(&right[ri]);
                let ok = match on {
                    None => true,
                    Some(p) if needs_async => {
                        let values = self.eval_row(&[p], &combined, outer).await?;
                        eval_predicate(p, &combined, &self.ctx(outer, Some(&values)))?
                    }
                    Some(p) => eval_predicate(p, &combined, &self.ctx(outer, None))?,
                };
                if ok {
                    matched = true;
                    right_matched[ri] = true;
                    match kind {
                        JoinKind::Semi => break,
                        JoinKind::Anti => break,
                        _ => out.push(combined.clone()),
                    }
                }
            }
            match kind {
                JoinKind::Left | JoinKind::Full if !matched => {
                    let mut row = l.clone();
                    row.extend(std::iter::repeat_n(Value::Null, right_width));
                    out.push(row);
                }
                JoinKind::Semi if matched => out.push(l.clone()),
                JoinKind::Anti if !matched => out.push(l.clone()),
                _ => {}
            }
        }
        self.account(&out[accounted..])?;
        if matches!(kind, JoinKind::Right | JoinKind::Full) {
            for (ri, r) in right.into_iter().enumerate() {
                if !right_matched[ri] {
                    let mut row: Row = std::iter::repeat_n(Value::Null, left_width).collect();
                    row.extend(r);
                    out.push(row);
                }
            }
        }
        Ok(out)
    }
}

/// An aggregate's output row: the group key, then each aggregate's result.
fn finish_group(mut key: Row, mut accs: Vec<Box<dyn agg::Accumulator>>) -> SqlResult<Row> {
    for acc in &mut accs {
        key.push(acc.finish()?);
    }
    Ok(key)
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

fn collect_async<'s>(s: &'s Scalar, out: &mut Vec<&'s Scalar>) {
    if matches!(s, Scalar::Subquery(_) | Scalar::NextVal { .. }) {
        out.push(s);
    }
    // The IN / ANY left operand of a subquery may hold more.
    for c in s.children() {
        collect_async(c, out);
    }
}

fn set_op(op: SetOpKind, all: bool, left: Vec<Row>, right: Vec<Row>) -> Vec<Row> {
    match (op, all) {
        (SetOpKind::Union, true) => {
            let mut l = left;
            l.extend(right);
            l
        }
        (SetOpKind::Union, false) => {
            let mut seen = HashSet::new();
            left.into_iter()
                .chain(right)
                .filter(|r| seen.insert(r.clone()))
                .collect()
        }
        (SetOpKind::Intersect, _) | (SetOpKind::Except, _) => {
            let mut counts: HashMap<Row, usize> = HashMap::new();
            for r in right {
                *counts.entry(r).or_default() += 1;
            }
            let mut out = Vec::new();
            let mut emitted = HashSet::new();
            for r in left {
                let c = counts.get(&r).copied().unwrap_or(0);
                let keep = match op {
                    SetOpKind::Intersect => {
                        if all {
                            if c > 0 {
                                counts.insert(r.clone(), c - 1);
                                true
                            } else {
                                false
                            }
                        } else {
                            c > 0 && emitted.insert(r.clone())
                        }
                    }
                    _ => {
                        if all {
                            if c > 0 {
                                counts.insert(r.clone(), c - 1);
                                false
                            } else {
                                true
                            }
                        } else {
                            c == 0 && emitted.insert(r.clone())
                        }
                    }
                };
                if keep {
                    out.push(r);
                }
            }
            out
        }
    }
}
