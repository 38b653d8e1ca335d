//! Operators: a plan opened as a tree of streams of [`Batch`]es.
//!
//! [`Executor::open`] turns a [`Rel`] into an [`Op`]; each [`Op::next`] pulls
//! from its inputs and returns its next batch of rows (never an empty one), or
//! `None` at the end. Rows flow through scans, filters, projections, limits,
//! lookup and merge joins and streaming aggregation a batch at a time, so a
//! statement holds only the batches in flight plus what an operator must keep
//! by nature: a hash table (aggregation groups, a hash join's build side,
//! DISTINCT and set operations), a merge join's right input, or a sort's
//! buffer. Sorts, hash aggregations and hash joins spill to temp files past
//! their budgets ([`super::sort`], `AggOp`, `HashJoinOp`). A LIMIT stops
//! pulling once it has its rows, so the scans below it stop reading.
//!
//! Filters compact their input batch in place, joins append into an output
//! batch and the sort keeps rows in flat vectors, so a row costs no
//! allocation of its own on these paths. A query's rows go to the client a
//! batch at a time ([`super::RowSink`]: the wire layer encodes them and
//! flushes past a few kilobytes); only callers that want the rows themselves
//! (DML, an embedded [`crate::Session`]) collect them, under the statement's
//! budget.
//!
//! What still allocates per row: a new hash group's key, rows fetched by
//! primary key (index joins), a top-n sort's entries and rows read back
//! from temp files.
//! TODO(issue 4): DISTINCT and set operations that spill; a merge join that
//! streams its right input.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, Value, agg};

use super::batch::{BATCH_ROWS, Batch};
use super::eval::{eval, eval_predicate};
use super::sort::{self, HashBudget, SortedRows};
use super::{BoxFuture, Executor, as_int};
use crate::plan::{
    AggCall, JoinKind, LookupJoin, MergeKey, Rel, Row, Scalar, Scan, SetOpKind, SortKey, SrfCall,
};
use crate::rowenc;

/// Most rows `generate_series` produces.
const MAX_SERIES_ROWS: u64 = 10_000_000;

/// A running `WITH RECURSIVE` ([`Rel::RecursiveUnion`]): each call gives
/// the rows of the next iteration.
pub(super) struct RecursiveOp<'p> {
    id: usize,
    all: bool,
    /// The non-recursive term, until it has been read.
    base: Option<Op<'p>>,
    step: &'p Rel,
    /// Rows produced so far (UNION without ALL drops repeats).
    seen: HashSet<Row>,
    /// The previous iteration's rows: what the work table holds next.
    working: Vec<Row>,
    produced: u64,
}

impl<'p> RecursiveOp<'p> {
    async fn next(&mut self, exec: &mut Executor<'_>, outer: &[Row]) -> SqlResult<Option<Batch>> {
        // The base's rows first, then each step's over the previous rows.
        let mut op = match self.base.take() {
            Some(base) => base,
            None if self.working.is_empty() => return Ok(None),
            None => {
                exec.work_tables
                    .insert(self.id, Arc::new(std::mem::take(&mut self.working)));
                exec.open(self.step, outer, None)?
            }
        };
        let mut fresh: Vec<Row> = Vec::new();
        while let Some(b) = op.next(exec, outer).await? {
            fresh.extend(b.into_rows());
        }
        if !self.all {
            fresh.retain(|r| self.seen.insert(r.clone()));
        }
        self.produced += fresh.len() as u64;
        if self.produced > MAX_SERIES_ROWS {
            return Err(SqlError::new(
                codes::PROGRAM_LIMIT_EXCEEDED,
                format!("recursive query produced more than {MAX_SERIES_ROWS} rows"),
            ));
        }
        exec.tick(fresh.len()).await;
        if fresh.is_empty() {
            exec.work_tables.remove(&self.id);
            return Ok(None);
        }
        let mut out = Batch::with_capacity(self.step.width(), fresh.len());
        for r in &fresh {
            out.push_row(r);
        }
        self.working = fresh;
        Ok(Some(out))
    }
}

/// `generate_series` over timestamps (an interval step) or numerics (a
/// numeric step, 1 when not given): start, start + step, … while not past
/// stop in the step's direction.
fn stepped_series(args: &[Value]) -> SqlResult<Vec<Value>> {
    use tardigrade_sqltypes::SqlType;
    use tardigrade_sqltypes::ops::{BinOp, compare, eval_binary};
    let (Some(start), Some(stop)) = (args.first(), args.get(1)) else {
        return Err(SqlError::internal("generate_series: two bounds expected"));
    };
    let (bound_ty, step, step_ty) = match (start, args.get(2)) {
        (Value::Timestamp(_), Some(iv)) => (SqlType::Timestamp, iv.clone(), SqlType::Interval),
        (Value::TimestampTz(_), Some(iv)) => (SqlType::TimestampTz, iv.clone(), SqlType::Interval),
        (_, Some(n)) => (SqlType::Decimal(None), n.clone(), SqlType::Decimal(None)),
        (_, None) => (SqlType::Decimal(None), Value::Int(1), SqlType::Int8),
    };
    let zero_step = match &step {
        Value::Interval(iv) => iv.months == 0 && iv.days == 0 && iv.micros == 0,
        v => compare(v, &Value::Int(0)) == Some(std::cmp::Ordering::Equal),
    };
    if zero_step {
        return Err(SqlError::new(
            codes::INVALID_PARAMETER_VALUE,
            "step size cannot equal zero",
        ));
    }
    let next = |v: &Value| eval_binary(BinOp::Add, v, &step, bound_ty, step_ty);
    // The direction: whether a step moves forward from the start.
    let forward = compare(&next(start)?, start) == Some(std::cmp::Ordering::Greater);
    let mut out = Vec::new();
    let mut current = start.clone();
    loop {
        let past = match compare(&current, stop) {
            Some(std::cmp::Ordering::Greater) => forward,
            Some(std::cmp::Ordering::Less) => !forward,
            _ => false,
        };
        if past {
            break;
        }
        if out.len() as u64 >= MAX_SERIES_ROWS {
            return Err(SqlError::new(
                codes::PROGRAM_LIMIT_EXCEEDED,
                format!("generate_series would return more than {MAX_SERIES_ROWS} rows"),
            ));
        }
        let following = next(&current)?;
        out.push(std::mem::replace(&mut current, following));
    }
    Ok(out)
}

/// The rows of one call of a select list's set-returning function
/// ([`Rel::ProjectSet`]); a NULL argument gives no rows (the functions are
/// strict).
fn srf_rows(name: &str, args: &[Value]) -> SqlResult<Vec<Value>> {
    if args.iter().any(Value::is_null) {
        return Ok(Vec::new());
    }
    let int = |i: usize| -> SqlResult<i64> {
        args.get(i)
            .and_then(as_int)
            .ok_or_else(|| SqlError::internal(format!("{name}: integer argument expected")))
    };
    Ok(match name {
        "generate_series" if !matches!(args.first(), Some(Value::Int(_))) => stepped_series(args)?,
        "generate_series" => {
            let (start, stop) = (int(0)?, int(1)?);
            let step = if args.len() > 2 { int(2)? } else { 1 };
            if step == 0 {
                return Err(SqlError::new(
                    codes::INVALID_PARAMETER_VALUE,
                    "step size cannot equal zero",
                ));
            }
            let count = if (step > 0 && start > stop) || (step < 0 && start < stop) {
                0
            } else {
                ((i128::from(stop) - i128::from(start)) / i128::from(step) + 1) as u128
            };
            if count > u128::from(MAX_SERIES_ROWS) {
                return Err(SqlError::new(
                    codes::PROGRAM_LIMIT_EXCEEDED,
                    format!("generate_series would return more than {MAX_SERIES_ROWS} rows"),
                ));
            }
            (0..count as i64)
                .map(|k| Value::Int(start + k * step))
                .collect()
        }
        "unnest" | "regexp_split_to_table" | "string_to_table" => match args.first() {
            Some(Value::Array(items)) => items.clone(),
            _ => return Err(SqlError::internal("unnest: array argument expected")),
        },
        "generate_subscripts" => match (args.first(), int(1)?) {
            // One-dimensional arrays, with lower bound 1 (0 for an
            // int2vector: the binder passes the bound).
            (Some(Value::Array(items)), 1) => {
                let lower = args.get(2).and_then(as_int).unwrap_or(1);
                (lower..lower + items.len() as i64)
                    .map(Value::Int)
                    .collect()
            }
            (Some(Value::Array(_)), _) => Vec::new(),
            _ => return Err(SqlError::internal("generate_subscripts: array expected")),
        },
        "jsonb_array_elements" | "jsonb_array_elements_text" => {
            let Some(Value::Jsonb(j)) = args.first() else {
                return Err(SqlError::internal(format!("{name}: jsonb expected")));
            };
            let serde_json::Value::Array(items) = j.as_ref() else {
                return Err(SqlError::new(
                    codes::INVALID_PARAMETER_VALUE,
                    if j.is_object() {
                        "cannot extract elements from an object"
                    } else {
                        "cannot extract elements from a scalar"
                    },
                ));
            };
            items
                .iter()
                .map(|item| match (name, item) {
                    ("jsonb_array_elements", v) => Value::Jsonb(Box::new(v.clone())),
                    (_, serde_json::Value::Null) => Value::Null,
                    (_, serde_json::Value::String(t)) => Value::Text(t.clone()),
                    (_, v) => {
                        // PostgreSQL's jsonb text: `{"k": 3}`, not `{"k":3}`.
                        let mut text = String::new();
                        tardigrade_sqltypes::value::write_json(&mut text, v);
                        Value::Text(text)
                    }
                })
                .collect()
        }
        // `jsonb_each(j)` in FROM is these two, zipped: its keys, and the
        // values in the same order.
        "jsonb_object_keys" | "jsonb_each_values" | "jsonb_each_text_values" => {
            let Some(Value::Jsonb(j)) = args.first() else {
                return Err(SqlError::internal(format!("{name}: jsonb expected")));
            };
            let shown = match name {
                "jsonb_object_keys" => name,
                "jsonb_each_values" => "jsonb_each",
                _ => "jsonb_each_text",
            };
            let serde_json::Value::Object(map) = j.as_ref() else {
                return Err(SqlError::new(
                    codes::INVALID_PARAMETER_VALUE,
                    if j.is_array() {
                        format!("cannot call {shown} on an array")
                    } else {
                        format!("cannot call {shown} on a scalar")
                    },
                ));
            };
            // jsonb's own key order: shorter keys first, then bytewise.
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|a, b| (a.0.len(), a.0).cmp(&(b.0.len(), b.0)));
            entries
                .into_iter()
                .map(|(k, v)| match name {
                    "jsonb_object_keys" => Value::Text(k.clone()),
                    "jsonb_each_values" => Value::Jsonb(Box::new(v.clone())),
                    _ => tardigrade_sqltypes::ops::json_as_text(v),
                })
                .collect()
        }
        other => {
            return Err(SqlError::internal(format!(
                "not a set-returning function: {other}"
            )));
        }
    })
}

/// A [`Rel::Lateral`] join: the right side opened again for each left row,
/// with that row as the innermost outer row.
pub(super) struct LateralOp<'p> {
    kind: JoinKind,
    left: Box<Op<'p>>,
    right: &'p Rel,
    right_width: usize,
    on: Option<&'p Scalar>,
}

impl LateralOp<'_> {
    async fn next(&mut self, exec: &mut Executor<'_>, outer: &[Row]) -> SqlResult<Option<Batch>> {
        loop {
            let Some(batch) = self.left.next(exec, outer).await? else {
                return Ok(None);
            };
            let width = batch.width() + self.right_width;
            let mut out = Batch::new(width);
            let mut stack: Vec<Row> = outer.to_vec();
            let last = stack.len();
            stack.push(Vec::new());
            for row in batch.into_rows() {
                stack[last] = row;
                let mut right = exec.open(self.right, &stack, None)?;
                let mut matched = false;
                while let Some(rows) = right.next(exec, &stack).await? {
                    for r in rows.rows() {
                        let mut combined = stack[last].clone();
                        combined.extend_from_slice(r);
                        if let Some(on) = self.on {
                            let keep = if on.needs_async() {
                                let values = exec.eval_row(&[on], &combined, outer).await?;
                                eval_predicate(on, &combined, &exec.ctx(outer, Some(&values)))?
                            } else {
                                eval_predicate(on, &combined, &exec.ctx(outer, None))?
                            };
                            if !keep {
                                continue;
                            }
                        }
                        matched = true;
                        out.push_owned(combined)?;
                    }
                }
                if !matched && self.kind == JoinKind::Left {
                    let mut padded = stack[last].clone();
                    padded.resize(width, Value::Null);
                    out.push_owned(padded)?;
                }
                exec.tick(1).await;
            }
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
    }
}

/// No next row in a hash join's chain of rows with one key.
const END: u32 = u32::MAX;

/// An opened plan node.
pub(super) enum Op<'p> {
    Scan(ScanOp<'p>),
    Values {
        rows: &'p [Vec<Scalar>],
        width: usize,
        done: bool,
    },
    Series {
        next: i64,
        stop: i64,
        step: i64,
        produced: u64,
        done: bool,
    },
    Filter {
        input: Box<Op<'p>>,
        predicate: &'p Scalar,
        keep: Vec<bool>,
    },
    Project {
        input: Box<Op<'p>>,
        exprs: &'p [Scalar],
        needs_async: bool,
    },
    ProjectSet {
        input: Box<Op<'p>>,
        srfs: &'p [SrfCall],
    },
    Aggregate(Box<AggOp<'p>>),
    Window(Box<super::window::WindowOp<'p>>),
    Join(Box<HashJoinOp<'p>>),
    Lateral(Box<LateralOp<'p>>),
    MergeJoin(Box<MergeJoinOp<'p>>),
    LookupJoin(Box<LookupJoinOp<'p>>),
    Sort(Box<SortOp<'p>>),
    Limit {
        input: Box<Op<'p>>,
        offset: usize,
        remaining: Option<usize>,
    },
    Distinct {
        input: Box<Op<'p>>,
        key_len: usize,
        seen: HashSet<Row>,
        budget: HashBudget,
        keep: Vec<bool>,
    },
    Set(Box<SetOperation<'p>>),
    Recursive(Box<RecursiveOp<'p>>),
    WorkTable {
        rows: Arc<Vec<Row>>,
        width: usize,
        done: bool,
    },
    /// A [`Rel::With`]: starts its CTEs at the first call, then passes its
    /// body's rows on; drops the CTEs' rows when the body ends.
    With {
        input: Box<Op<'p>>,
        ctes: &'p [crate::plan::Cte],
        started: bool,
        finished: bool,
        /// The bytes of the CTEs' rows held (EXPLAIN ANALYZE).
        memory: usize,
    },
    /// A [`Rel::CteScan`]: the CTE's rows (computed at the first read of
    /// any of its scans), a batch at a time.
    CteScan {
        id: usize,
        rows: Option<Arc<Batch>>,
        pos: usize,
    },
    /// Counts rows and time of the operator inside (`EXPLAIN ANALYZE`).
    Measured {
        input: Box<Op<'p>>,
        key: usize,
    },
}

impl<'a> Executor<'a> {
    /// Opens `rel` for reading. `limit` is how many rows a LIMIT directly
    /// above (through projections) wants at most: a sort keeps only those.
    pub(super) fn open<'p>(
        &self,
        rel: &'p Rel,
        outer: &[Row],
        limit: Option<usize>,
    ) -> SqlResult<Op<'p>> {
        let op = crate::stack::grow(|| self.open_node(rel, outer, limit))?;
        Ok(if self.measurements.is_some() {
            Op::Measured {
                input: Box::new(op),
                key: crate::plan::explain::node_key(rel),
            }
        } else {
            op
        })
    }

    fn open_node<'p>(
        &self,
        rel: &'p Rel,
        outer: &[Row],
        limit: Option<usize>,
    ) -> SqlResult<Op<'p>> {
        let boxed = |op: Op<'p>| Box::new(op);
        Ok(match rel {
            Rel::Scan(scan) => Op::Scan(ScanOp {
                scan,
                state: ScanState::Start,
            }),
            Rel::Values { rows, types } => Op::Values {
                rows,
                width: types.len(),
                done: false,
            },
            Rel::Series { start, stop, step } => {
                let ctx = self.ctx(outer, None);
                let start = as_int(&eval(start, &[], &ctx)?);
                let stop = as_int(&eval(stop, &[], &ctx)?);
                let step = match step {
                    Some(s) => as_int(&eval(s, &[], &ctx)?),
                    None => Some(1),
                };
                match (start, stop, step) {
                    (Some(start), Some(stop), Some(step)) => {
                        if step == 0 {
                            return Err(SqlError::new(
                                codes::INVALID_PARAMETER_VALUE,
                                "step size cannot equal zero",
                            ));
                        }
                        Op::Series {
                            next: start,
                            stop,
                            step,
                            produced: 0,
                            done: false,
                        }
                    }
                    _ => Op::Series {
                        next: 0,
                        stop: 0,
                        step: 1,
                        produced: 0,
                        done: true,
                    },
                }
            }
            Rel::Filter { input, predicate } => Op::Filter {
                input: boxed(self.open(input, outer, None)?),
                predicate,
                keep: Vec::new(),
            },
            Rel::Project { input, exprs } => {
                let needs_async = exprs.iter().any(|e| e.needs_async());
                // One row out per row in: a LIMIT above applies below.
                let below = if needs_async { None } else { limit };
                Op::Project {
                    input: boxed(self.open(input, outer, below)?),
                    exprs,
                    needs_async,
                }
            }
            Rel::ProjectSet { input, srfs } => Op::ProjectSet {
                input: boxed(self.open(input, outer, None)?),
                srfs,
            },
            Rel::Aggregate { input, group, aggs } => Op::Aggregate(Box::new(
                self.open_aggregate(input, group, aggs, outer, false)?,
            )),
            Rel::Window {
                input,
                partition,
                order,
                funcs,
            } => Op::Window(Box::new(super::window::WindowOp::new(
                self,
                self.open(input, outer, None)?,
                partition,
                order,
                funcs,
                input.width(),
                outer,
            )?)),
            Rel::StreamAggregate { input, group, aggs } => Op::Aggregate(Box::new(
                self.open_aggregate(input, group, aggs, outer, true)?,
            )),
            Rel::Join {
                kind,
                left,
                right,
                on,
                equi,
            } => Op::Join(Box::new(HashJoinOp {
                kind: *kind,
                left: self.open(left, outer, None)?,
                right: Some(self.open(right, outer, None)?),
                left_width: left.width(),
                right_width: right.width(),
                on: on.as_ref(),
                equi,
                build: Batch::new(right.width()),
                table: None,
                chain: Vec::new(),
                right_matched: Vec::new(),
                probe: None,
                li: 0,
                cursor: None,
                matched: false,
                left_done: false,
                unmatched_pos: 0,
                left_run: None,
                pending: Vec::new(),
                depth: 0,
                key: Vec::new(),
                combined: Vec::new(),
                memory: 0,
            })),
            Rel::Lateral {
                kind,
                left,
                right,
                on,
            } => Op::Lateral(Box::new(LateralOp {
                kind: *kind,
                left: boxed(self.open(left, outer, None)?),
                right,
                right_width: right.width(),
                on: on.as_ref(),
            })),
            Rel::MergeJoin {
                kind,
                left,
                right,
                keys,
                on,
            } => {
                if !matches!(
                    kind,
                    JoinKind::Inner | JoinKind::Left | JoinKind::Semi | JoinKind::Anti
                ) {
                    return Err(super::join::unsupported_kind(*kind));
                }
                Op::MergeJoin(Box::new(MergeJoinOp {
                    kind: *kind,
                    left: self.open(left, outer, None)?,
                    right: Some(self.open(right, outer, None)?),
                    right_rows: Batch::new(right.width()),
                    out_width: rel.width(),
                    keys,
                    on: on.as_ref(),
                    group: (0, 0),
                    next: 0,
                    probe: None,
                    li: 0,
                    cursor: None,
                    matched: false,
                    combined: Vec::new(),
                }))
            }
            Rel::LookupJoin(j) => Op::LookupJoin(Box::new(LookupJoinOp {
                join: j,
                left: self.open(&j.left, outer, None)?,
                out_width: rel.width(),
                plan: None,
            })),
            Rel::Sort { input, keys } => Op::Sort(Box::new(SortOp {
                input: self.open(input, outer, None)?,
                keys,
                limit,
                width: input.width(),
                sorted: None,
                memory: 0,
            })),
            Rel::Limit {
                input,
                limit,
                offset,
            } => {
                let ctx = self.ctx(outer, None);
                let limit =
                    match limit {
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
                        v => as_int(&v)
                            .filter(|n| *n >= 0)
                            .ok_or_else(|| SqlError::new("2201X", "OFFSET must not be negative"))?,
                    },
                    None => 0,
                };
                let offset = usize::try_from(offset).unwrap_or(usize::MAX);
                let limit = limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
                let below = limit.map(|l| l.saturating_add(offset));
                Op::Limit {
                    input: boxed(self.open(input, outer, below)?),
                    offset,
                    remaining: limit,
                }
            }
            Rel::RecursiveUnion {
                id,
                all,
                base,
                step,
            } => Op::Recursive(Box::new(RecursiveOp {
                id: *id,
                all: *all,
                base: Some(self.open(base, outer, None)?),
                step,
                seen: HashSet::new(),
                working: Vec::new(),
                produced: 0,
            })),
            Rel::WorkTable { id, types } => Op::WorkTable {
                rows: self.work_tables.get(id).cloned().unwrap_or_default(),
                width: types.len(),
                done: false,
            },
            // One row out per body row: a LIMIT above applies to the body.
            Rel::With { ctes, body } => Op::With {
                input: boxed(self.open(body, outer, limit)?),
                ctes,
                started: false,
                finished: false,
                memory: 0,
            },
            Rel::CteScan(s) => Op::CteScan {
                id: s.id,
                rows: None,
                pos: 0,
            },
            Rel::Distinct { input, key_len } => Op::Distinct {
                input: boxed(self.open(input, outer, None)?),
                key_len: *key_len,
                seen: HashSet::new(),
                budget: HashBudget::new(&self.node.temp_storage, "DISTINCT"),
                keep: Vec::new(),
            },
            Rel::SetOp {
                op,
                all,
                left,
                right,
            } => Op::Set(Box::new(SetOperation {
                op: *op,
                all: *all,
                left: self.open(left, outer, None)?,
                right: Some(self.open(right, outer, None)?),
                on_right: false,
                seen: HashSet::new(),
                counts: HashMap::new(),
                budget: HashBudget::new(&self.node.temp_storage, "set operation"),
                keep: Vec::new(),
            })),
        })
    }

    fn open_aggregate<'p>(
        &self,
        input: &'p Rel,
        group: &'p [Scalar],
        aggs: &'p [AggCall],
        outer: &[Row],
        streaming: bool,
    ) -> SqlResult<AggOp<'p>> {
        let all_exprs: Vec<&'p Scalar> = group
            .iter()
            .chain(
                aggs.iter()
                    .flat_map(|a| a.args.iter().chain(a.filter.iter())),
            )
            .collect();
        let mut op = AggOp {
            input: self.open(input, outer, None)?,
            group,
            aggs,
            streaming,
            needs_async: all_exprs.iter().any(|e| e.needs_async()),
            all_exprs,
            index: HashMap::new(),
            groups: Vec::new(),
            budget: HashBudget::new(&self.node.temp_storage, "hash aggregation"),
            finished: Batch::new(group.len() + aggs.len()),
            input_done: false,
            emit: None,
            spill: None,
            pending: Vec::new(),
            depth: 0,
            key: Vec::new(),
            args: Vec::new(),
        };
        if group.is_empty() {
            // One group even without input rows: `SELECT count(*) FROM empty`.
            op.groups.push(new_group(aggs, Vec::new())?);
            op.index.insert(Vec::new(), 0);
        }
        Ok(op)
    }
}

impl<'p> Op<'p> {
    /// The most memory the operator held so far: its hash table (hash
    /// aggregation, hash join, DISTINCT, set operations) or its sort buffer
    /// (0 for the others).
    fn memory(&self) -> usize {
        match self {
            Op::Aggregate(a) => a.budget.peak(),
            Op::Join(j) => j.memory,
            Op::Distinct { budget, .. } => budget.peak(),
            Op::Set(s) => s.budget.peak(),
            Op::Sort(s) => s.memory,
            Op::Window(w) => w.peak(),
            Op::With { memory, .. } => *memory,
            Op::Measured { input, .. } => input.memory(),
            _ => 0,
        }
    }

    /// The next batch of rows (never empty), or `None` at the end.
    pub(super) fn next<'s, 'a: 's>(
        &'s mut self,
        exec: &'s mut Executor<'a>,
        outer: &'s [Row],
    ) -> BoxFuture<'s, SqlResult<Option<Batch>>>
    where
        'p: 's,
    {
        Box::pin(crate::stack::Grow(Box::pin(async move {
            match self {
                Op::Measured { input, key } => {
                    let started = std::time::Instant::now();
                    let batch = input.next(exec, outer).await?;
                    let nanos = started.elapsed().as_nanos() as u64;
                    let rows = batch.as_ref().map_or(0, Batch::len);
                    exec.record(*key, rows, nanos, input.memory());
                    Ok(batch)
                }
                Op::Scan(scan) => scan.next(exec, outer).await,
                Op::Values { rows, width, done } => {
                    if *done {
                        return Ok(None);
                    }
                    *done = true;
                    let mut out = Batch::with_capacity(*width, rows.len());
                    for r in rows.iter() {
                        let exprs: Vec<&Scalar> = r.iter().collect();
                        let values = exec.eval_row(&exprs, &[], outer).await?;
                        let ctx = exec.ctx(outer, Some(&values));
                        out.push_owned(
                            r.iter()
                                .map(|e| eval(e, &[], &ctx))
                                .collect::<SqlResult<Row>>()?,
                        )?;
                    }
                    Ok((!out.is_empty()).then_some(out))
                }
                Op::Series {
                    next,
                    stop,
                    step,
                    produced,
                    done,
                } => {
                    let mut out = Batch::new(1);
                    while !*done && out.len() < BATCH_ROWS {
                        if (*step > 0 && *next > *stop) || (*step < 0 && *next < *stop) {
                            *done = true;
                            break;
                        }
                        *produced += 1;
                        if *produced > MAX_SERIES_ROWS {
                            return Err(SqlError::new(
                                codes::PROGRAM_LIMIT_EXCEEDED,
                                "generate_series: too many rows",
                            ));
                        }
                        out.push_value(Value::Int(*next));
                        out.finish_row();
                        match next.checked_add(*step) {
                            Some(n) => *next = n,
                            None => *done = true,
                        }
                    }
                    exec.tick(out.len()).await;
                    Ok((!out.is_empty()).then_some(out))
                }
                Op::Filter {
                    input,
                    predicate,
                    keep,
                } => loop {
                    let Some(mut batch) = input.next(exec, outer).await? else {
                        return Ok(None);
                    };
                    keep.clear();
                    if predicate.needs_async() {
                        for row in batch.rows() {
                            let values = exec.eval_row(&[*predicate], row, outer).await?;
                            let ctx = exec.ctx(outer, Some(&values));
                            keep.push(eval_predicate(predicate, row, &ctx)?);
                        }
                    } else {
                        let ctx = exec.ctx(outer, None);
                        for row in batch.rows() {
                            keep.push(eval_predicate(predicate, row, &ctx)?);
                        }
                    }
                    exec.tick(batch.len()).await;
                    batch.retain_flags(keep);
                    if !batch.is_empty() {
                        return Ok(Some(batch));
                    }
                },
                Op::Project {
                    input,
                    exprs,
                    needs_async,
                } => {
                    let Some(batch) = input.next(exec, outer).await? else {
                        return Ok(None);
                    };
                    let mut out = Batch::with_capacity(exprs.len(), batch.len());
                    if *needs_async {
                        let refs: Vec<&Scalar> = exprs.iter().collect();
                        for row in batch.rows() {
                            let values = exec.eval_row(&refs, row, outer).await?;
                            let ctx = exec.ctx(outer, Some(&values));
                            for e in exprs.iter() {
                                out.push_value(eval(e, row, &ctx)?);
                            }
                            out.finish_row();
                        }
                    } else {
                        let ctx = exec.ctx(outer, None);
                        for row in batch.rows() {
                            for e in exprs.iter() {
                                out.push_value(eval(e, row, &ctx)?);
                            }
                            out.finish_row();
                        }
                    }
                    exec.tick(batch.len()).await;
                    Ok(Some(out))
                }
                Op::ProjectSet { input, srfs } => loop {
                    let Some(batch) = input.next(exec, outer).await? else {
                        return Ok(None);
                    };
                    let width = batch.width() + srfs.len();
                    let mut out = Batch::with_capacity(width, batch.len());
                    let mut produced = 0;
                    let args: Vec<&Scalar> = srfs.iter().flat_map(|c| &c.args).collect();
                    let needs_async = args.iter().any(|a| a.needs_async());
                    for row in batch.rows() {
                        let async_values = if needs_async {
                            Some(exec.eval_row(&args, row, outer).await?)
                        } else {
                            None
                        };
                        let ctx = exec.ctx(outer, async_values.as_ref());
                        let mut columns = Vec::with_capacity(srfs.len());
                        for c in srfs.iter() {
                            let mut args = Vec::with_capacity(c.args.len());
                            for a in &c.args {
                                args.push(eval(a, row, &ctx)?);
                            }
                            columns.push(srf_rows(&c.name, &args)?);
                        }
                        let n = columns.iter().map(Vec::len).max().unwrap_or(0);
                        for i in 0..n {
                            for v in row {
                                out.push_value(v.clone());
                            }
                            for col in &mut columns {
                                out.push_value(match col.get_mut(i) {
                                    Some(v) => std::mem::replace(v, Value::Null),
                                    None => Value::Null,
                                });
                            }
                            out.finish_row();
                        }
                        produced += n;
                    }
                    exec.tick(batch.len() + produced).await;
                    if !out.is_empty() {
                        return Ok(Some(out));
                    }
                },
                Op::Recursive(r) => r.next(exec, outer).await,
                Op::WorkTable { rows, width, done } => {
                    if *done || rows.is_empty() {
                        return Ok(None);
                    }
                    *done = true;
                    let mut out = Batch::with_capacity(*width, rows.len());
                    for r in rows.iter() {
                        out.push_row(r);
                    }
                    Ok(Some(out))
                }
                Op::With {
                    input,
                    ctes,
                    started,
                    finished,
                    memory,
                } => {
                    if *finished {
                        return Ok(None);
                    }
                    if !*started {
                        exec.start_ctes(ctes, outer);
                        *started = true;
                    }
                    let batch = input.next(exec, outer).await?;
                    *memory = (*memory).max(exec.cte_bytes(ctes));
                    if batch.is_none() {
                        exec.release_ctes(ctes);
                        *finished = true;
                    }
                    Ok(batch)
                }
                Op::CteScan { id, rows, pos } => {
                    let rows = match rows {
                        Some(rows) => rows,
                        None => rows.insert(exec.cte_rows(*id).await?),
                    };
                    if *pos >= rows.len() {
                        return Ok(None);
                    }
                    let end = (*pos + BATCH_ROWS).min(rows.len());
                    let mut batch = Batch::with_capacity(rows.width(), end - *pos);
                    for i in *pos..end {
                        batch.push_row(rows.row(i));
                    }
                    exec.tick(end - *pos).await;
                    *pos = end;
                    Ok(Some(batch))
                }
                Op::Aggregate(agg) => agg.next(exec, outer).await,
                Op::Window(w) => w.next(exec, outer).await,
                Op::Join(join) => join.next(exec, outer).await,
                Op::MergeJoin(join) => join.next(exec, outer).await,
                Op::LookupJoin(join) => join.next(exec, outer).await,
                Op::Sort(sort) => sort.next(exec, outer).await,
                Op::Limit {
                    input,
                    offset,
                    remaining,
                } => loop {
                    if *remaining == Some(0) {
                        // Stop pulling: the scans below read no further.
                        return Ok(None);
                    }
                    let Some(mut batch) = input.next(exec, outer).await? else {
                        return Ok(None);
                    };
                    if *offset > 0 {
                        let skip = (*offset).min(batch.len());
                        batch.skip(skip);
                        *offset -= skip;
                    }
                    if let Some(r) = remaining {
                        batch.truncate(*r);
                        *r -= batch.len();
                    }
                    if !batch.is_empty() {
                        return Ok(Some(batch));
                    }
                },
                Op::Distinct {
                    input,
                    key_len,
                    seen,
                    budget,
                    keep,
                } => loop {
                    let Some(mut batch) = input.next(exec, outer).await? else {
                        return Ok(None);
                    };
                    keep.clear();
                    for row in batch.rows() {
                        let key = &row[..(*key_len).min(row.len())];
                        let new = !seen.contains(key);
                        if new {
                            budget.charge(sort::row_bytes(key))?;
                            seen.insert(key.to_vec());
                        }
                        keep.push(new);
                    }
                    exec.tick(batch.len()).await;
                    batch.retain_flags(keep);
                    if !batch.is_empty() {
                        return Ok(Some(batch));
                    }
                },
                Op::Set(set) => set.next(exec, outer).await,
                Op::Lateral(lateral) => lateral.next(exec, outer).await,
            }
        })))
    }
}

// ---------------------------------------------------------------------------
// Scans.

pub(super) struct ScanOp<'p> {
    scan: &'p Scan,
    state: ScanState,
}

enum ScanState {
    Start,
    Streaming {
        scanner: rowenc::RowScanner,
        /// Rows still wanted under a pushed-down limit.
        remaining: Option<usize>,
        /// A page was read already (the next ones are reserved whole).
        paged: bool,
    },
    /// A correlated subquery's scan, read whole and cached for the next
    /// outer row that reads the same spans.
    Cached {
        rows: Arc<Batch>,
        pos: usize,
    },
    Done,
}

/// The projection a scan's decoder applies itself: a covering scan decodes
/// straight into its output columns; one through an index join fetches
/// whole primary rows and narrows them afterwards.
pub(super) fn decoded_projection(scan: &Scan) -> Option<std::sync::Arc<[usize]>> {
    if scan.covering {
        scan.project.clone()
    } else {
        None
    }
}

impl ScanOp<'_> {
    async fn next(&mut self, exec: &mut Executor<'_>, outer: &[Row]) -> SqlResult<Option<Batch>> {
        let scan = self.scan;
        let width = scan.width();
        loop {
            match &mut self.state {
                ScanState::Start => {
                    let spans = exec.scan_spans(scan, outer)?;
                    self.state = if outer.is_empty() {
                        ScanState::Streaming {
                            scanner: rowenc::RowScanner::new(
                                scan.table.clone(),
                                scan.index,
                                spans,
                                scan.reverse,
                            )
                            .reading(scan.reads.clone())
                            .projecting(decoded_projection(scan)),
                            remaining: scan.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
                            paged: false,
                        }
                    } else {
                        ScanState::Cached {
                            rows: exec.scan_cached(scan, spans).await?,
                            pos: 0,
                        }
                    };
                }
                ScanState::Streaming {
                    scanner,
                    remaining,
                    paged,
                } => {
                    let want = remaining.map_or(BATCH_ROWS, |r| r.min(BATCH_ROWS));
                    if want == 0 {
                        self.state = ScanState::Done;
                        continue;
                    }
                    // Point lookups are common: the first page starts small.
                    let capacity = if *paged { want } else { want.min(16) };
                    *paged = true;
                    let mut batch = Batch::with_capacity(scanner.width(), capacity);
                    let n = scanner.next_batch_into(exec.txn, want, &mut batch).await?;
                    if n == 0 {
                        self.state = ScanState::Done;
                        continue;
                    }
                    if let Some(r) = remaining {
                        *r -= n.min(*r);
                    }
                    exec.tick(n).await;
                    if !scan.covering {
                        batch = exec.index_join(&scan.table, batch).await?;
                        if let Some(p) = &scan.project {
                            batch = batch.select_columns(p)?;
                        }
                    }
                    if !batch.is_empty() {
                        return Ok(Some(batch));
                    }
                }
                ScanState::Cached { rows, pos } => {
                    if *pos >= rows.len() {
                        self.state = ScanState::Done;
                        continue;
                    }
                    let end = (*pos + BATCH_ROWS).min(rows.len());
                    let mut batch = Batch::with_capacity(width, end - *pos);
                    for i in *pos..end {
                        batch.push_row(rows.row(i));
                    }
                    *pos = end;
                    return Ok(Some(batch));
                }
                ScanState::Done => return Ok(None),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Aggregation.

struct GroupState {
    key: Row,
    accs: Vec<Box<dyn agg::Accumulator>>,
    /// Argument tuples already seen, per DISTINCT aggregate.
    seen: Vec<Option<HashSet<Row>>>,
}

fn new_group(aggs: &[AggCall], key: Row) -> SqlResult<GroupState> {
    let mut accs = Vec::with_capacity(aggs.len());
    let mut seen = Vec::with_capacity(aggs.len());
    for a in aggs {
        accs.push(agg::new_accumulator(&a.name, &a.arg_types)?);
        seen.push(a.distinct.then(HashSet::new));
    }
    Ok(GroupState { key, accs, seen })
}

/// Appends a finished group's row: its key, then each aggregate's result.
fn finish_group(g: GroupState, out: &mut Batch) -> SqlResult<()> {
    let GroupState { key, mut accs, .. } = g;
    for v in key {
        out.push_value(v);
    }
    for acc in &mut accs {
        out.push_value(acc.finish()?);
    }
    out.finish_row();
    Ok(())
}

/// Partitions a spilled hash aggregation writes (and each of those, when it
/// spills again).
const SPILL_PARTITIONS: usize = 16;

/// How many times a hash aggregation may partition its rows again before it
/// gives up (16^8 partitions: only keys that cannot be told apart get there).
const MAX_SPILL_DEPTH: u32 = 8;

/// One temp file per partition.
fn partition_writers(storage: &sort::TempStorage) -> SqlResult<Vec<sort::RunWriter>> {
    let dir = storage.dir();
    (0..SPILL_PARTITIONS)
        .map(|_| sort::RunWriter::create(&dir))
        .collect()
}

/// The partition of `key` when rows are partitioned for the `depth`-th time
/// (each depth hashes differently, so a partition splits when partitioned
/// again).
fn partition_of(depth: u32, key: &[Value]) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&depth, &mut h);
    std::hash::Hash::hash(key, &mut h);
    (std::hash::Hasher::finish(&h) % SPILL_PARTITIONS as u64) as usize
}

/// Hash aggregation, or with `streaming` (input ordered on the group keys,
/// so each group's rows are adjacent) one group at a time, each emitted as
/// soon as the next begins.
///
/// A hash aggregation whose groups outgrow its budget spills: the groups it
/// holds keep aggregating, and the rows of any group it does not hold yet go
/// to one of [`SPILL_PARTITIONS`] temp files by the hash of their key. A
/// group is created by its first row, so each group is either wholly in
/// memory or wholly in one partition. Once the input ends, the groups in
/// memory are returned, then each partition is aggregated in turn (and
/// partitioned again, with another hash, if it is still too big).
/// New groups are admitted up to half the budget; the other half is for the
/// groups held to grow (DISTINCT sets), past which the statement fails with
/// 53200. Aggregations with subqueries or `nextval` in their arguments do
/// not spill (their rows would be evaluated twice) and fail with 53200.
pub(super) struct AggOp<'p> {
    input: Op<'p>,
    group: &'p [Scalar],
    aggs: &'p [AggCall],
    streaming: bool,
    all_exprs: Vec<&'p Scalar>,
    needs_async: bool,
    /// Hash aggregation: group key → position in `groups`.
    index: HashMap<Row, usize>,
    /// Hash aggregation: every group; streaming: the current one.
    groups: Vec<GroupState>,
    budget: HashBudget,
    /// Streaming: groups finished and not yet returned.
    finished: Batch,
    input_done: bool,
    /// Hash aggregation, once the input is done: groups left to return.
    emit: Option<std::vec::IntoIter<GroupState>>,
    /// Rows of groups that did not fit, by partition (created on the first).
    spill: Option<Vec<sort::RunWriter>>,
    /// Partitions still to aggregate, with their depth.
    pending: Vec<(sort::Run, u32)>,
    /// How many times the rows being aggregated were partitioned.
    depth: u32,
    key: Row,
    args: Row,
}

impl AggOp<'_> {
    async fn next(&mut self, exec: &mut Executor<'_>, outer: &[Row]) -> SqlResult<Option<Batch>> {
        let node = exec.node;
        let storage = &node.temp_storage;
        while !self.input_done {
            let Some(batch) = self.input.next(exec, outer).await? else {
                self.input_done = true;
                break;
            };
            for row in batch.rows() {
                let values = if self.needs_async {
                    Some(exec.eval_row(&self.all_exprs, row, outer).await?)
                } else {
                    None
                };
                let ctx = exec.ctx(outer, values.as_ref());
                self.add_row(row, &ctx, storage)?;
            }
            exec.tick(batch.len()).await;
            if self.streaming && self.finished.len() >= BATCH_ROWS {
                return Ok(Some(self.take_finished()));
            }
        }
        if self.streaming {
            if let Some(g) = self.groups.pop() {
                finish_group(g, &mut self.finished)?;
            }
            return Ok((!self.finished.is_empty()).then(|| self.take_finished()));
        }
        loop {
            let emit = self.emit.get_or_insert_with(|| {
                self.index = HashMap::new();
                std::mem::take(&mut self.groups).into_iter()
            });
            if emit.len() > 0 {
                let mut out = Batch::with_capacity(
                    self.group.len() + self.aggs.len(),
                    emit.len().min(BATCH_ROWS),
                );
                for g in emit.by_ref().take(BATCH_ROWS) {
                    finish_group(g, &mut out)?;
                }
                return Ok(Some(out));
            }
            // The groups in memory are out: on to the spilled partitions.
            if let Some(writers) = self.spill.take() {
                for w in writers {
                    let run = w.finish()?;
                    if run.rows() > 0 {
                        self.pending.push((run, self.depth + 1));
                    }
                }
            }
            let Some((run, depth)) = self.pending.pop() else {
                return Ok(None);
            };
            self.depth = depth;
            self.budget.reset();
            self.emit = None;
            let mut reader = run.reader();
            let mut n = 0;
            while let Some(entry) = reader.next_entry()? {
                let ctx = exec.ctx(outer, None);
                self.add_row(&entry.row, &ctx, storage)?;
                n += 1;
                if n % 4096 == 0 {
                    exec.tick(4096).await;
                }
            }
        }
    }

    /// Adds one input row to its group (or to a spill partition).
    fn add_row(
        &mut self,
        row: &[Value],
        ctx: &super::eval::EvalCtx<'_>,
        storage: &sort::TempStorage,
    ) -> SqlResult<()> {
        // The key buffer is reused row to row: a text key is copied into the
        // previous row's string (no allocation when it fits).
        self.key.truncate(self.group.len());
        for (i, g) in self.group.iter().enumerate() {
            let value = match g {
                Scalar::Column { index, .. } => {
                    let v = row.get(*index).ok_or_else(|| {
                        SqlError::internal(format!("column @{} out of range", index + 1))
                    })?;
                    if let (Some(Value::Text(dst)), Value::Text(src)) = (self.key.get_mut(i), v) {
                        dst.clone_from(src);
                        continue;
                    }
                    v.clone()
                }
                other => eval(other, row, ctx)?,
            };
            match self.key.get_mut(i) {
                Some(slot) => *slot = value,
                None => self.key.push(value),
            }
        }
        let gi = if self.streaming {
            let same = self.groups.last().is_some_and(|g| g.key == self.key);
            if !same {
                if let Some(g) = self.groups.pop() {
                    finish_group(g, &mut self.finished)?;
                }
                self.budget.reset();
                self.groups.push(new_group(self.aggs, self.key.clone())?);
            }
            self.groups.len() - 1
        } else {
            match self.index.get(self.key.as_slice()) {
                Some(i) => *i,
                None => {
                    // The key twice (index and state), the accumulators.
                    let bytes = 2 * sort::row_bytes(&self.key) + 64 * self.aggs.len();
                    let can_spill = !self.needs_async && !self.group.is_empty();
                    if can_spill && (self.spill.is_some() || !self.budget.fits_half(bytes)) {
                        return self.spill_row(row, storage);
                    }
                    self.budget.charge(bytes)?;
                    self.groups.push(new_group(self.aggs, self.key.clone())?);
                    self.index.insert(self.key.clone(), self.groups.len() - 1);
                    self.groups.len() - 1
                }
            }
        };
        let state = &mut self.groups[gi];
        for (ai, a) in self.aggs.iter().enumerate() {
            if let Some(f) = &a.filter
                && !eval_predicate(f, row, ctx)?
            {
                continue;
            }
            // A plain column argument is read in place (no copy per row).
            if let ([Scalar::Column { index, .. }], None) = (a.args.as_slice(), &state.seen[ai])
                && let Some(v) = row.get(*index)
            {
                state.accs[ai].add(std::slice::from_ref(v))?;
                continue;
            }
            self.args.clear();
            for e in &a.args {
                self.args.push(eval(e, row, ctx)?);
            }
            if let Some(seen) = &mut state.seen[ai] {
                if self.args.iter().any(|v| v.is_null()) && agg::ignores_nulls(&a.name) {
                    continue;
                }
                if seen.contains(self.args.as_slice()) {
                    continue;
                }
                self.budget.charge(sort::row_bytes(&self.args))?;
                seen.insert(self.args.clone());
            }
            state.accs[ai].add(&self.args)?;
        }
        Ok(())
    }

    /// Writes a row of a group not in memory to its partition.
    fn spill_row(&mut self, row: &[Value], storage: &sort::TempStorage) -> SqlResult<()> {
        if self.depth >= MAX_SPILL_DEPTH {
            // Charging again reports the budget that was exceeded.
            return self.budget.charge(usize::MAX / 2);
        }
        let writers = match &mut self.spill {
            Some(w) => w,
            None => {
                storage.note_spilled_aggregation();
                self.spill.insert(partition_writers(storage)?)
            }
        };
        writers[partition_of(self.depth, &self.key)].write_parts(&[], 0, row)
    }

    fn take_finished(&mut self) -> Batch {
        let width = self.finished.width();
        std::mem::replace(&mut self.finished, Batch::new(width))
    }
}

// ---------------------------------------------------------------------------
// Hash and nested-loop joins.

/// Joins the left input, streamed, with the right input, read whole first:
/// hashed on the equality columns (`equi`), or every right row for every
/// left row (nested loops) without them. Output is bounded per batch even
/// when one left row matches many right rows.
///
/// A hash join whose right input outgrows half its budget spills (a grace
/// hash join): both inputs are written to [`SPILL_PARTITIONS`] temp-file
/// partitions by the hash of their key (rows with a NULL key, which match
/// nothing, to the first), then each pair of partitions is joined in turn,
/// a right partition still too big being partitioned again with another
/// hash. Matching rows share a partition, so every kind of join keeps its
/// meaning; rows come out partition by partition. Nested loops and
/// conditions with subqueries do not spill.
pub(super) struct HashJoinOp<'p> {
    /// The most memory its build side held (`EXPLAIN ANALYZE`).
    memory: usize,
    kind: JoinKind,
    left: Op<'p>,
    /// Taken when the build side is read.
    right: Option<Op<'p>>,
    left_width: usize,
    right_width: usize,
    on: Option<&'p Scalar>,
    equi: &'p [(usize, usize)],
    build: Batch,
    /// Key → (first, last) build row with it; `None` for nested loops.
    table: Option<HashMap<Row, (u32, u32)>>,
    /// Next build row with the same key, or END.
    chain: Vec<u32>,
    right_matched: Vec<bool>,
    /// The left batch being joined, and the position in it.
    probe: Option<Batch>,
    li: usize,
    /// The next candidate right row of left row `li`; `None` before it starts.
    cursor: Option<u32>,
    matched: bool,
    left_done: bool,
    /// Right and full joins: the next build row to check for no match.
    unmatched_pos: usize,
    /// Spilled: the left rows of the partition being joined.
    left_run: Option<sort::RunReader>,
    /// Spilled: pairs of (right, left) partitions still to join, with their
    /// depth (how many times their rows were partitioned).
    pending: Vec<(sort::Run, sort::Run, u32)>,
    depth: u32,
    key: Row,
    combined: Row,
}

impl HashJoinOp<'_> {
    fn out_width(&self) -> usize {
        match self.kind {
            JoinKind::Semi | JoinKind::Anti => self.left_width,
            _ => self.left_width + self.right_width,
        }
    }

    /// Whether the join may spill (partition on its equality keys).
    fn can_spill(&self) -> bool {
        !self.equi.is_empty()
            && !self.on.is_some_and(|p| p.needs_async())
            && self.depth < MAX_SPILL_DEPTH
    }

    async fn build(&mut self, exec: &mut Executor<'_>, outer: &[Row]) -> SqlResult<()> {
        let Some(mut right) = self.right.take() else {
            return Ok(());
        };
        let node = exec.node;
        let storage = &node.temp_storage;
        let mut budget = HashBudget::new(storage, "hash join");
        while let Some(mut batch) = right.next(exec, outer).await? {
            if self.can_spill() && !budget.fits_half(batch.bytes()) {
                // Half the budget is left for the table of keys.
                storage.note_spilled_join();
                let depth = self.depth + 1;
                let mut rights = partition_writers(storage)?;
                let built = std::mem::replace(&mut self.build, Batch::new(self.right_width));
                self.write_partitioned(&mut rights, &built, false, depth)?;
                self.write_partitioned(&mut rights, &batch, false, depth)?;
                while let Some(batch) = right.next(exec, outer).await? {
                    self.write_partitioned(&mut rights, &batch, false, depth)?;
                    exec.tick(batch.len()).await;
                }
                let mut lefts = partition_writers(storage)?;
                while let Some(batch) = self.left.next(exec, outer).await? {
                    self.write_partitioned(&mut lefts, &batch, true, depth)?;
                    exec.tick(batch.len()).await;
                }
                self.push_pairs(rights, lefts, depth)?;
                self.load_partition(storage)?;
                return Ok(());
            }
            // The build side's rows live as long as the join.
            budget.charge(batch.bytes())?;
            self.build.append(&mut batch);
        }
        let built = self.index_build(&mut budget);
        self.memory = self.memory.max(budget.peak());
        built
    }

    /// Writes rows to the partition of their key (left or right columns of
    /// the equalities) under the hash of `depth`.
    fn write_partitioned(
        &mut self,
        writers: &mut [sort::RunWriter],
        rows: &Batch,
        left_side: bool,
        depth: u32,
    ) -> SqlResult<()> {
        for row in rows.rows() {
            self.key.clear();
            self.key.extend(
                self.equi
                    .iter()
                    .map(|(lc, rc)| row[if left_side { *lc } else { *rc }].clone()),
            );
            let p = if self.key.iter().any(|v| v.is_null()) {
                0
            } else {
                partition_of(depth, &self.key)
            };
            writers[p].write_parts(&[], 0, row)?;
        }
        Ok(())
    }

    fn push_pairs(
        &mut self,
        rights: Vec<sort::RunWriter>,
        lefts: Vec<sort::RunWriter>,
        depth: u32,
    ) -> SqlResult<()> {
        for (r, l) in rights.into_iter().zip(lefts) {
            let (r, l) = (r.finish()?, l.finish()?);
            if r.rows() > 0 || l.rows() > 0 {
                self.pending.push((r, l, depth));
            }
        }
        Ok(())
    }

    /// Makes the next pending pair of partitions the one being joined
    /// (partitioning it again if its right side is still too big); false
    /// when none is left.
    fn load_partition(&mut self, storage: &sort::TempStorage) -> SqlResult<bool> {
        while let Some((right, left, depth)) = self.pending.pop() {
            self.depth = depth;
            self.build.clear();
            self.table = None;
            self.probe = None;
            self.li = 0;
            self.cursor = None;
            self.left_done = false;
            self.unmatched_pos = 0;
            let mut budget = HashBudget::new(storage, "hash join");
            let mut reader = right.reader();
            let mut overflow = false;
            while let Some(e) = reader.next_entry()? {
                let bytes = sort::row_bytes(&e.row);
                self.build.push_owned(e.row)?;
                if self.can_spill() && !budget.fits_half(bytes) {
                    overflow = true;
                    break;
                }
                budget.charge(bytes)?;
            }
            if !overflow {
                self.index_build(&mut budget)?;
                self.memory = self.memory.max(budget.peak());
                self.left_run = Some(left.reader());
                return Ok(true);
            }
            // Still too big: partition this pair again with another hash.
            storage.note_spilled_join();
            let depth = depth + 1;
            let mut rights = partition_writers(storage)?;
            let built = std::mem::replace(&mut self.build, Batch::new(self.right_width));
            self.write_partitioned(&mut rights, &built, false, depth)?;
            self.repartition(reader, &mut rights, false, depth)?;
            let mut lefts = partition_writers(storage)?;
            self.repartition(left.reader(), &mut lefts, true, depth)?;
            self.push_pairs(rights, lefts, depth)?;
        }
        Ok(false)
    }

    /// Writes the rest of a partition's rows to `writers`, partitioned anew.
    fn repartition(
        &mut self,
        mut reader: sort::RunReader,
        writers: &mut [sort::RunWriter],
        left_side: bool,
        depth: u32,
    ) -> SqlResult<()> {
        let width = if left_side {
            self.left_width
        } else {
            self.right_width
        };
        let mut page = Batch::new(width);
        while let Some(e) = reader.next_entry()? {
            page.push_owned(e.row)?;
            if page.len() >= BATCH_ROWS {
                self.write_partitioned(writers, &page, left_side, depth)?;
                page.clear();
            }
        }
        self.write_partitioned(writers, &page, left_side, depth)
    }

    /// Hashes the build rows on their keys (nothing to do for nested loops).
    fn index_build(&mut self, budget: &mut HashBudget) -> SqlResult<()> {
        let n = self.build.len();
        if n >= END as usize {
            return Err(SqlError::new(
                codes::PROGRAM_LIMIT_EXCEEDED,
                "hash join: too many rows on the build side",
            ));
        }
        self.right_matched = vec![false; n];
        if self.equi.is_empty() {
            return Ok(());
        }
        // NULL keys never match: those rows stay out of the table.
        let mut table: HashMap<Row, (u32, u32)> = HashMap::with_capacity(n);
        self.chain = vec![END; n];
        for (i, row) in self.build.rows().enumerate() {
            self.key.clear();
            self.key
                .extend(self.equi.iter().map(|(_, rc)| row[*rc].clone()));
            if self.key.iter().any(|v| v.is_null()) {
                continue;
            }
            let i = i as u32;
            match table.get_mut(self.key.as_slice()) {
                Some((_, last)) => {
                    self.chain[*last as usize] = i;
                    *last = i;
                }
                None => {
                    budget.charge(sort::row_bytes(&self.key))?;
                    table.insert(self.key.clone(), (i, i));
                }
            }
        }
        self.table = Some(table);
        Ok(())
    }

    /// The next batch of left rows: from the input, or from the partition
    /// being joined.
    async fn next_left(
        &mut self,
        exec: &mut Executor<'_>,
        outer: &[Row],
    ) -> SqlResult<Option<Batch>> {
        let Some(reader) = &mut self.left_run else {
            return self.left.next(exec, outer).await;
        };
        let mut batch = Batch::new(self.left_width);
        while batch.len() < BATCH_ROWS {
            match reader.next_entry()? {
                Some(e) => batch.push_owned(e.row)?,
                None => break,
            }
        }
        Ok((!batch.is_empty()).then_some(batch))
    }

    /// The first candidate right row for left row `l`.
    fn first_candidate(&mut self, l: &[Value]) -> u32 {
        match &self.table {
            None => {
                if self.build.is_empty() {
                    END
                } else {
                    0
                }
            }
            Some(table) => {
                self.key.clear();
                self.key
                    .extend(self.equi.iter().map(|(lc, _)| l[*lc].clone()));
                if self.key.iter().any(|v| v.is_null()) {
                    return END;
                }
                table
                    .get(self.key.as_slice())
                    .map_or(END, |(first, _)| *first)
            }
        }
    }

    fn next_candidate(&self, ri: u32) -> u32 {
        match &self.table {
            None if (ri as usize) + 1 < self.build.len() => ri + 1,
            None => END,
            Some(_) => self.chain[ri as usize],
        }
    }

    async fn next(&mut self, exec: &mut Executor<'_>, outer: &[Row]) -> SqlResult<Option<Batch>> {
        if self.right.is_some() {
            self.build(exec, outer).await?;
        }
        let node = exec.node;
        let mut out = Batch::new(self.out_width());
        loop {
            self.join_into(&mut out, exec, outer).await?;
            if out.len() >= BATCH_ROWS {
                break;
            }
            // This (partition's) left side is done and so are its unmatched
            // right rows: on to the next pair of partitions, if spilled.
            if !self.load_partition(&node.temp_storage)? {
                break;
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }

    /// Joins left rows into `out` until it is full or the left side ends
    /// (then adds the unmatched right rows of right and full joins).
    async fn join_into(
        &mut self,
        out: &mut Batch,
        exec: &mut Executor<'_>,
        outer: &[Row],
    ) -> SqlResult<()> {
        let needs_async = self.on.is_some_and(|p| p.needs_async());
        // Candidates looked at since the last yield to the runtime.
        let mut visited = 0;
        while out.len() < BATCH_ROWS {
            if self.probe.as_ref().is_none_or(|b| self.li >= b.len()) {
                if self.left_done {
                    break;
                }
                self.probe = self.next_left(exec, outer).await?;
                self.li = 0;
                self.cursor = None;
                match &self.probe {
                    Some(b) => exec.tick(b.len()).await,
                    None => {
                        self.left_done = true;
                        break;
                    }
                }
                continue;
            }
            let Some(probe) = self.probe.take() else {
                break;
            };
            let l = probe.row(self.li);
            let mut ri = match self.cursor {
                Some(c) => c,
                None => {
                    self.matched = false;
                    self.first_candidate(l)
                }
            };
            let mut row_done = true;
            while ri != END {
                let r = self.build.row(ri as usize);
                let ok = match self.on {
                    None => true,
                    Some(p) => {
                        self.combined.clear();
                        self.combined.extend_from_slice(l);
                        self.combined.extend_from_slice(r);
                        if needs_async {
                            let values = exec.eval_row(&[p], &self.combined, outer).await?;
                            eval_predicate(p, &self.combined, &exec.ctx(outer, Some(&values)))?
                        } else {
                            eval_predicate(p, &self.combined, &exec.ctx(outer, None))?
                        }
                    }
                };
                let next = self.next_candidate(ri);
                if ok {
                    self.matched = true;
                    self.right_matched[ri as usize] = true;
                    if matches!(self.kind, JoinKind::Semi | JoinKind::Anti) {
                        ri = END;
                        break;
                    }
                    out.push_concat(l, self.build.row(ri as usize));
                }
                ri = next;
                visited += 1;
                if visited >= 4096 {
                    exec.tick(visited).await;
                    visited = 0;
                }
                if out.len() >= BATCH_ROWS && ri != END {
                    // Resume this left row's candidates on the next call.
                    row_done = false;
                    break;
                }
            }
            if row_done {
                super::join::finish_left_row(self.kind, self.matched, l, out);
                self.li += 1;
                self.cursor = None;
            } else {
                self.cursor = Some(ri);
            }
            self.probe = Some(probe);
        }
        if self.left_done && matches!(self.kind, JoinKind::Right | JoinKind::Full) {
            while out.len() < BATCH_ROWS && self.unmatched_pos < self.build.len() {
                let ri = self.unmatched_pos;
                self.unmatched_pos += 1;
                if !self.right_matched[ri] {
                    out.push_padded_left(self.build.row(ri));
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Merge and lookup joins.

/// Joins two inputs ordered on `keys` (same directions) by advancing through
/// both: each left row meets the run of right rows with its key, which is
/// kept for the following left rows with the same key. The left input
/// streams; the right one is read whole first. Like the hash join, it
/// resumes inside one left row's run when an output batch fills.
/// TODO(issue 4): stream the right input too, keeping only the current run.
pub(super) struct MergeJoinOp<'p> {
    kind: JoinKind,
    left: Op<'p>,
    right: Option<Op<'p>>,
    right_rows: Batch,
    out_width: usize,
    keys: &'p [MergeKey],
    on: Option<&'p Scalar>,
    /// Right rows [group.0, group.1) have the previous left row's key; no
    /// right row before `next` can match a later left row.
    group: (usize, usize),
    next: usize,
    /// The left batch being joined, and the position in it.
    probe: Option<Batch>,
    li: usize,
    /// Left row `li`'s next candidate and the end of its run; `None` before
    /// the row starts.
    cursor: Option<(usize, usize)>,
    matched: bool,
    combined: Row,
}

impl MergeJoinOp<'_> {
    fn null_key(&self, row: &[Value], left_side: bool) -> bool {
        self.keys.iter().any(|k| {
            row.get(if left_side { k.left } else { k.right })
                .is_none_or(|v| v.is_null())
        })
    }

    fn cmp(&self, l: &[Value], r: &[Value]) -> std::cmp::Ordering {
        for k in self.keys {
            let o = match (l.get(k.left), r.get(k.right)) {
                (Some(a), Some(b)) => a.cmp(b),
                (a, b) => a.is_some().cmp(&b.is_some()),
            };
            let o = if k.descending { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    }

    /// The run of right rows with left row `l`'s key.
    fn run_of(&mut self, l: &[Value]) -> (usize, usize) {
        if self.null_key(l, true) {
            return (0, 0);
        }
        let right = &self.right_rows;
        let (g0, g1) = self.group;
        if g0 < g1 && self.cmp(l, right.row(g0)) == std::cmp::Ordering::Equal {
            return self.group;
        }
        let mut next = self.next.max(g1);
        while next < right.len()
            && (self.null_key(right.row(next), false)
                || self.cmp(l, right.row(next)) == std::cmp::Ordering::Greater)
        {
            next += 1;
        }
        let mut end = next;
        while end < right.len()
            && !self.null_key(right.row(end), false)
            && self.cmp(l, right.row(end)) == std::cmp::Ordering::Equal
        {
            end += 1;
        }
        self.next = next;
        self.group = (next, end);
        self.group
    }

    async fn next(&mut self, exec: &mut Executor<'_>, outer: &[Row]) -> SqlResult<Option<Batch>> {
        if let Some(mut right) = self.right.take() {
            let mut budget = HashBudget::new(&exec.node.temp_storage, "merge join");
            while let Some(mut batch) = right.next(exec, outer).await? {
                budget.charge(batch.bytes())?;
                self.right_rows.append(&mut batch);
            }
        }
        let semi_or_anti = matches!(self.kind, JoinKind::Semi | JoinKind::Anti);
        let mut out = Batch::new(self.out_width);
        while out.len() < BATCH_ROWS {
            if self.probe.as_ref().is_none_or(|b| self.li >= b.len()) {
                self.probe = self.left.next(exec, outer).await?;
                self.li = 0;
                self.cursor = None;
                match &self.probe {
                    Some(b) => exec.tick(b.len()).await,
                    None => break,
                }
                continue;
            }
            let Some(probe) = self.probe.take() else {
                break;
            };
            let l = probe.row(self.li);
            let (mut ri, end) = match self.cursor {
                Some(c) => c,
                None => {
                    self.matched = false;
                    self.run_of(l)
                }
            };
            let mut row_done = true;
            while ri < end {
                let r = self.right_rows.row(ri);
                let ok = match self.on {
                    None => true,
                    Some(p) => {
                        self.combined.clear();
                        self.combined.extend_from_slice(l);
                        self.combined.extend_from_slice(r);
                        eval_predicate(p, &self.combined, &exec.ctx(outer, None))?
                    }
                };
                ri += 1;
                if ok {
                    self.matched = true;
                    if semi_or_anti {
                        break;
                    }
                    out.push_concat(l, r);
                    if out.len() >= BATCH_ROWS && ri < end {
                        // Resume this left row's run on the next call.
                        row_done = false;
                        break;
                    }
                }
            }
            if row_done {
                super::join::finish_left_row(self.kind, self.matched, l, &mut out);
                self.li += 1;
                self.cursor = None;
            } else {
                self.cursor = Some((ri, end));
            }
            self.probe = Some(probe);
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

/// Reads the right table by key for each batch of left rows (see
/// [`Executor::lookup_batch`]).
pub(super) struct LookupJoinOp<'p> {
    join: &'p LookupJoin,
    left: Op<'p>,
    out_width: usize,
    plan: Option<super::join::LookupPlan>,
}

impl LookupJoinOp<'_> {
    async fn next(&mut self, exec: &mut Executor<'_>, outer: &[Row]) -> SqlResult<Option<Batch>> {
        let plan = match self.plan.take() {
            Some(p) => p,
            None => super::join::LookupPlan::new(self.join)?,
        };
        let result = async {
            loop {
                let Some(left) = self.left.next(exec, outer).await? else {
                    return Ok(None);
                };
                let mut out = Batch::with_capacity(self.out_width, left.len());
                exec.lookup_batch(self.join, &plan, &left, outer, &mut out)
                    .await?;
                exec.tick(left.len()).await;
                if !out.is_empty() {
                    return Ok(Some(out));
                }
            }
        }
        .await;
        self.plan = Some(plan);
        result
    }
}

// ---------------------------------------------------------------------------
// Sort.

/// Reads its whole input into a [`sort::Sorter`] (a top-n heap under a
/// LIMIT; sorted runs on disk past the working-memory budget), then returns
/// the rows in order a batch at a time.
pub(super) struct SortOp<'p> {
    input: Op<'p>,
    keys: &'p [SortKey],
    limit: Option<usize>,
    width: usize,
    sorted: Option<SortedRows>,
    /// The most memory its sorter held (`EXPLAIN ANALYZE`).
    memory: usize,
}

impl SortOp<'_> {
    async fn next(&mut self, exec: &mut Executor<'_>, outer: &[Row]) -> SqlResult<Option<Batch>> {
        if self.sorted.is_none() {
            let node = exec.node;
            let order = self
                .keys
                .iter()
                .map(|k| sort::KeyOrder {
                    descending: k.descending,
                    nulls_first: k.nulls_first,
                })
                .collect();
            let mut sorter = sort::Sorter::new(order, self.limit, &node.temp_storage);
            let nkeys = self.keys.len();
            let mut keys: Vec<Value> = Vec::new();
            let mut key: Vec<Value> = Vec::with_capacity(nkeys);
            while let Some(mut batch) = self.input.next(exec, outer).await? {
                // The keys of the whole batch first (evaluation borrows the
                // executor), then the rows move into the sorter.
                keys.clear();
                {
                    let ctx = exec.ctx(outer, None);
                    for row in batch.rows() {
                        for k in self.keys {
                            keys.push(eval(&k.expr, row, &ctx)?);
                        }
                    }
                }
                let mut keys = keys.drain(..);
                for i in 0..batch.len() {
                    key.clear();
                    key.extend(keys.by_ref().take(nkeys));
                    sorter.push(&mut key, batch.row_mut(i)).await?;
                }
                drop(keys);
                exec.tick(batch.len()).await;
            }
            self.memory = sorter.peak_memory();
            self.sorted = Some(sorter.finish().await?);
        }
        let Some(sorted) = self.sorted.as_mut() else {
            return Ok(None);
        };
        let mut out = Batch::new(self.width);
        while out.len() < BATCH_ROWS && sorted.next_into(&mut out)? {}
        exec.tick(out.len()).await;
        Ok((!out.is_empty()).then_some(out))
    }
}

// ---------------------------------------------------------------------------
// Set operations.

/// UNION streams both inputs (DISTINCT through a set of rows seen);
/// INTERSECT and EXCEPT count the right input's rows first, then stream the
/// left one against the counts.
pub(super) struct SetOperation<'p> {
    op: SetOpKind,
    all: bool,
    left: Op<'p>,
    right: Option<Op<'p>>,
    /// UNION: the left input is done, reading the right one.
    on_right: bool,
    seen: HashSet<Row>,
    counts: HashMap<Row, usize>,
    budget: HashBudget,
    keep: Vec<bool>,
}

impl SetOperation<'_> {
    async fn next(&mut self, exec: &mut Executor<'_>, outer: &[Row]) -> SqlResult<Option<Batch>> {
        if self.op == SetOpKind::Union {
            loop {
                let batch = if self.on_right {
                    match self.right.as_mut() {
                        Some(r) => r.next(exec, outer).await?,
                        None => None,
                    }
                } else {
                    self.left.next(exec, outer).await?
                };
                let Some(mut batch) = batch else {
                    if self.on_right {
                        return Ok(None);
                    }
                    self.on_right = true;
                    continue;
                };
                if !self.all {
                    self.keep.clear();
                    for row in batch.rows() {
                        let new = !self.seen.contains(row);
                        if new {
                            self.budget.charge(sort::row_bytes(row))?;
                            self.seen.insert(row.to_vec());
                        }
                        self.keep.push(new);
                    }
                    batch.retain_flags(&self.keep);
                }
                exec.tick(batch.len()).await;
                if !batch.is_empty() {
                    return Ok(Some(batch));
                }
            }
        }
        if let Some(mut right) = self.right.take() {
            while let Some(batch) = right.next(exec, outer).await? {
                for row in batch.rows() {
                    match self.counts.get_mut(row) {
                        Some(c) => *c += 1,
                        None => {
                            self.budget.charge(sort::row_bytes(row))?;
                            self.counts.insert(row.to_vec(), 1);
                        }
                    }
                }
                exec.tick(batch.len()).await;
            }
        }
        let intersect = self.op == SetOpKind::Intersect;
        loop {
            let Some(mut batch) = self.left.next(exec, outer).await? else {
                return Ok(None);
            };
            self.keep.clear();
            for row in batch.rows() {
                let count = self.counts.get_mut(row);
                let keep = match (intersect, self.all, count) {
                    // INTERSECT ALL / EXCEPT ALL: each right row cancels one.
                    (true, true, Some(c)) if *c > 0 => {
                        *c -= 1;
                        true
                    }
                    (false, true, Some(c)) if *c > 0 => {
                        *c -= 1;
                        false
                    }
                    (true, true, _) => false,
                    (false, true, _) => true,
                    // INTERSECT / EXCEPT: each distinct row once.
                    (true, false, Some(c)) if *c > 0 => {
                        let new = !self.seen.contains(row);
                        if new {
                            self.budget.charge(sort::row_bytes(row))?;
                            self.seen.insert(row.to_vec());
                        }
                        new
                    }
                    (true, false, Some(_)) => false,
                    (true, false, None) => false,
                    (false, false, Some(c)) if *c > 0 => false,
                    (false, false, _) => {
                        let new = !self.seen.contains(row);
                        if new {
                            self.budget.charge(sort::row_bytes(row))?;
                            self.seen.insert(row.to_vec());
                        }
                        new
                    }
                };
                self.keep.push(keep);
            }
            exec.tick(batch.len()).await;
            batch.retain_flags(&self.keep);
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
        }
    }
}
