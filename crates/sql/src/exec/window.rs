//! The window operator ([`Rel::Window`]): window functions over partitions.
//!
//! Every input row is extended with the values the window needs (its
//! partition keys, order keys, each function's arguments and FILTER) and
//! sorted on the partition and order keys by the executor's external sort
//! ([`super::sort::Sorter`], which spills to disk past its budget). The
//! sorted rows are then read a partition at a time; a partition is held in
//! memory (charged to a [`HashBudget`]) while each function is computed over
//! it, and its rows leave with one more column per function.
//!
//! Per partition: ranking functions (`row_number`, `rank`, `dense_rank`,
//! `percent_rank`, `cume_dist`, `ntile`) and `lag`/`lead` take one pass.
//! Aggregates over frames that start at the partition's first row are
//! running aggregates (one pass); frames that slide use the aggregate's
//! inverse ([`agg::Accumulator::remove`]: count, integer sum and avg) when
//! it has one, and otherwise aggregate each row's frame anew, as do frames
//! with an EXCLUDE clause. A row whose frame is its predecessor's reuses its
//! value. `first_value`, `last_value` and `nth_value` look into the frame.
//!
//! TODO(issue 13): a partition larger than the hash budget fails (53200)
//! instead of spilling; a window whose input already arrives sorted is
//! sorted again.

use std::cmp::Ordering;
use std::collections::VecDeque;

use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::ops::{self, BinOp};
use tardigrade_sqltypes::{Interval, SqlError, SqlResult, SqlType, Value, agg};

use super::batch::{BATCH_ROWS, Batch};
use super::eval::{eval, eval_predicate};
use super::operator::Op;
use super::sort::{self, HashBudget, KeyOrder, SortedRows};
use super::{Executor, as_int};
use crate::plan::{
    FrameBound, FrameExclude, FrameUnits, Row, Scalar, SortKey, WindowFrame, WindowFunc,
};

/// SQLSTATE invalid_preceding_or_following_size.
const INVALID_FRAME_SIZE: &str = "22013";

/// A frame offset, evaluated when the operator starts.
#[derive(Clone, Debug)]
enum Offset {
    None,
    /// ROWS or GROUPS.
    Count(usize),
    /// RANGE: added to or subtracted from the order key.
    Value(Value),
}

pub(super) struct WindowOp<'p> {
    pub(super) input: Op<'p>,
    pub(super) partition: &'p [Scalar],
    pub(super) order: &'p [SortKey],
    pub(super) funcs: &'p [WindowFunc],
    pub(super) in_width: usize,
    sorted: Option<SortedRows>,
    /// The first row of the next partition, read ahead.
    pending: Option<Row>,
    /// Finished rows not yet returned.
    ready: VecDeque<Row>,
    /// Each function's frame offsets (start, end).
    offsets: Vec<(Offset, Offset)>,
    budget: HashBudget,
    /// The most memory its sorter held (`EXPLAIN ANALYZE`).
    pub(super) memory: usize,
}

impl<'p> WindowOp<'p> {
    pub(super) fn new(
        exec: &Executor<'_>,
        input: Op<'p>,
        partition: &'p [Scalar],
        order: &'p [SortKey],
        funcs: &'p [WindowFunc],
        in_width: usize,
        outer: &[Row],
    ) -> SqlResult<WindowOp<'p>> {
        let ctx = exec.ctx(outer, None);
        let mut offsets = Vec::with_capacity(funcs.len());
        for f in funcs {
            let one = |b: &FrameBound, start: bool| -> SqlResult<Offset> {
                let e = match b {
                    FrameBound::Preceding(e) | FrameBound::Following(e) => e,
                    _ => return Ok(Offset::None),
                };
                let which = if start { "starting" } else { "ending" };
                let v = eval(e, &[], &ctx)?;
                if v.is_null() {
                    return Err(SqlError::new(
                        codes::NULL_VALUE_NOT_ALLOWED,
                        format!("frame {which} offset must not be null"),
                    ));
                }
                if f.frame.units == FrameUnits::Range {
                    return Ok(Offset::Value(v));
                }
                match as_int(&v) {
                    Some(n) if n >= 0 => {
                        Ok(Offset::Count(usize::try_from(n).unwrap_or(usize::MAX)))
                    }
                    _ => Err(SqlError::new(
                        INVALID_FRAME_SIZE,
                        format!("frame {which} offset must not be negative"),
                    )),
                }
            };
            offsets.push((one(&f.frame.start, true)?, one(&f.frame.end, false)?));
        }
        Ok(WindowOp {
            input,
            partition,
            order,
            funcs,
            in_width,
            sorted: None,
            pending: None,
            ready: VecDeque::new(),
            offsets,
            budget: HashBudget::new(&exec.node.temp_storage, "window partition"),
            memory: 0,
        })
    }

    /// The budget's peak (`EXPLAIN ANALYZE`).
    pub(super) fn peak(&self) -> usize {
        self.memory.max(self.budget.peak())
    }

    /// Where each function's arguments (then its FILTER value) start in an
    /// extended row.
    fn arg_bases(&self) -> Vec<usize> {
        let mut at = self.in_width + self.partition.len() + self.order.len();
        self.funcs
            .iter()
            .map(|f| {
                let base = at;
                at += f.args.len() + usize::from(f.filter.is_some());
                base
            })
            .collect()
    }

    /// Reads the whole input into the sorter.
    async fn sort_input(&mut self, exec: &mut Executor<'_>, outer: &[Row]) -> SqlResult<()> {
        let node = exec.node;
        let mut order: Vec<KeyOrder> = self
            .partition
            .iter()
            .map(|_| KeyOrder {
                descending: false,
                nulls_first: false,
            })
            .collect();
        order.extend(self.order.iter().map(|k| KeyOrder {
            descending: k.descending,
            nulls_first: k.nulls_first,
        }));
        let mut sorter = sort::Sorter::new(order, None, &node.temp_storage);
        let mut extra: Vec<&Scalar> = Vec::new();
        extra.extend(self.partition.iter());
        extra.extend(self.order.iter().map(|k| &k.expr));
        for f in self.funcs {
            extra.extend(f.args.iter());
            extra.extend(f.filter.iter());
        }
        let needs_async = extra.iter().any(|e| e.needs_async());
        let nkeys = self.partition.len() + self.order.len();
        let mut key: Vec<Value> = Vec::with_capacity(nkeys);
        while let Some(batch) = self.input.next(exec, outer).await? {
            for row in batch.rows() {
                let values = if needs_async {
                    Some(exec.eval_row(&extra, row, outer).await?)
                } else {
                    None
                };
                let ctx = exec.ctx(outer, values.as_ref());
                let mut wide: Row = Vec::with_capacity(row.len() + extra.len());
                wide.extend_from_slice(row);
                for (i, e) in extra.iter().enumerate() {
                    // FILTER values are kept as booleans (NULL is false).
                    wide.push(if self.is_filter_slot(i) {
                        Value::Bool(eval_predicate(e, row, &ctx)?)
                    } else {
                        eval(e, row, &ctx)?
                    });
                }
                key.clear();
                key.extend_from_slice(&wide[self.in_width..self.in_width + nkeys]);
                sorter.push(&mut key, &mut wide).await?;
            }
            exec.tick(batch.len()).await;
        }
        self.memory = sorter.peak_memory();
        self.sorted = Some(sorter.finish().await?);
        Ok(())
    }

    /// Whether the `i`-th extra value is a FILTER's.
    fn is_filter_slot(&self, i: usize) -> bool {
        let mut at = self.partition.len() + self.order.len();
        for f in self.funcs {
            at += f.args.len();
            if f.filter.is_some() {
                if i == at {
                    return true;
                }
                at += 1;
            }
        }
        false
    }

    /// The next partition's rows (extended), or `None` at the end.
    fn next_partition(&mut self) -> SqlResult<Option<Vec<Row>>> {
        let Some(sorted) = self.sorted.as_mut() else {
            return Ok(None);
        };
        let first = match self.pending.take() {
            Some(r) => r,
            None => match sorted.next_row()? {
                Some(r) => r,
                None => return Ok(None),
            },
        };
        let keys = self.in_width..self.in_width + self.partition.len();
        self.budget.reset();
        self.budget.charge(sort::row_bytes(&first))?;
        let mut rows = vec![first];
        while let Some(r) = sorted.next_row()? {
            if !same(&r[keys.clone()], &rows[0][keys.clone()]) {
                self.pending = Some(r);
                break;
            }
            self.budget.charge(sort::row_bytes(&r))?;
            rows.push(r);
        }
        Ok(Some(rows))
    }

    pub(super) async fn next(
        &mut self,
        exec: &mut Executor<'_>,
        outer: &[Row],
    ) -> SqlResult<Option<Batch>> {
        if self.sorted.is_none() {
            self.sort_input(exec, outer).await?;
        }
        let width = self.in_width + self.funcs.len();
        while self.ready.len() < BATCH_ROWS {
            let Some(rows) = self.next_partition()? else {
                break;
            };
            let n = rows.len();
            let results = self.compute(&rows)?;
            for (i, mut r) in rows.into_iter().enumerate() {
                r.truncate(self.in_width);
                for col in &results {
                    r.push(col[i].clone());
                }
                self.ready.push_back(r);
            }
            exec.tick(n).await;
        }
        if self.ready.is_empty() {
            return Ok(None);
        }
        let take = self.ready.len().min(BATCH_ROWS);
        let mut out = Batch::with_capacity(width, take);
        for r in self.ready.drain(..take) {
            out.push_owned(r)?;
        }
        Ok(Some(out))
    }

    /// Each function's value for each row of one partition.
    fn compute(&self, rows: &[Row]) -> SqlResult<Vec<Vec<Value>>> {
        let part = Partition::new(rows, self.in_width + self.partition.len(), self.order.len());
        let bases = self.arg_bases();
        self.funcs
            .iter()
            .zip(&bases)
            .zip(&self.offsets)
            .map(|((f, &base), offsets)| {
                let args = ArgCols {
                    base,
                    n: f.args.len(),
                    filter: f.filter.is_some(),
                };
                if f.is_agg {
                    let frames = part.frames(&f.frame, offsets, self.order.first())?;
                    aggregate(f, &part, &frames, &args)
                } else {
                    window_function(f, &part, offsets, self.order.first(), &args)
                }
            })
            .collect()
    }
}

fn same(a: &[Value], b: &[Value]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.cmp(y) == Ordering::Equal)
}

/// Where a function's values are in an extended row.
struct ArgCols {
    base: usize,
    n: usize,
    filter: bool,
}

impl ArgCols {
    fn args<'r>(&self, row: &'r [Value]) -> &'r [Value] {
        &row[self.base..self.base + self.n]
    }
    fn arg<'r>(&self, row: &'r [Value], i: usize) -> &'r Value {
        &row[self.base + i]
    }
    fn passes(&self, row: &[Value]) -> bool {
        !self.filter || matches!(row[self.base + self.n], Value::Bool(true))
    }
}

/// One partition's rows and their peer groups (rows with equal order keys).
struct Partition<'r> {
    rows: &'r [Row],
    /// Where the order keys start in a row.
    order_at: usize,
    /// Each row's peer group.
    group_of: Vec<usize>,
    /// Each peer group's rows `[start, end)`.
    groups: Vec<(usize, usize)>,
}

impl<'r> Partition<'r> {
    fn new(rows: &'r [Row], order_at: usize, norder: usize) -> Self {
        let mut group_of = Vec::with_capacity(rows.len());
        let mut groups: Vec<(usize, usize)> = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let peer = i > 0
                && same(
                    &r[order_at..order_at + norder],
                    &rows[i - 1][order_at..order_at + norder],
                );
            if peer {
                if let Some(g) = groups.last_mut() {
                    g.1 = i + 1;
                }
            } else {
                groups.push((i, i + 1));
            }
            group_of.push(groups.len() - 1);
        }
        Partition {
            rows,
            order_at,
            group_of,
            groups,
        }
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn peers(&self, i: usize) -> (usize, usize) {
        self.groups[self.group_of[i]]
    }

    /// Each row's frame `[start, end)` (empty when `end <= start`), head
    /// and tail never moving backwards from one row to the next.
    fn frames(
        &self,
        frame: &WindowFrame,
        offsets: &(Offset, Offset),
        first_key: Option<&SortKey>,
    ) -> SqlResult<Vec<(usize, usize)>> {
        let n = self.len();
        let mut out = Vec::with_capacity(n);
        let range = match frame.units {
            FrameUnits::Range if has_offset(frame) => {
                let key = first_key.ok_or_else(|| SqlError::internal("RANGE without ORDER BY"))?;
                Some(RangeKeys::new(self, key, offsets)?)
            }
            _ => None,
        };
        let mut last = (0, 0);
        for i in 0..n {
            let start = self.bound(
                i,
                &frame.start,
                &offsets.0,
                frame.units,
                true,
                range.as_ref(),
            )?;
            let end = self.bound(
                i,
                &frame.end,
                &offsets.1,
                frame.units,
                false,
                range.as_ref(),
            )?;
            // Monotone (a defensive clamp; the bounds are by construction).
            let start = start.max(last.0);
            let end = end.max(start).max(last.1);
            last = (start, end);
            out.push((start, end));
        }
        Ok(out)
    }

    /// A frame bound of row `i`: the first row in (`start`) or the first row
    /// past (`!start`) the frame.
    fn bound(
        &self,
        i: usize,
        b: &FrameBound,
        offset: &Offset,
        units: FrameUnits,
        start: bool,
        range: Option<&RangeKeys>,
    ) -> SqlResult<usize> {
        let n = self.len();
        let count = || match offset {
            Offset::Count(k) => *k,
            _ => 0,
        };
        Ok(match (b, units) {
            (FrameBound::UnboundedPreceding, _) => 0,
            (FrameBound::UnboundedFollowing, _) => n,
            (FrameBound::CurrentRow, FrameUnits::Rows) => {
                if start {
                    i
                } else {
                    i + 1
                }
            }
            (FrameBound::CurrentRow, _) => {
                let (s, e) = self.peers(i);
                if start { s } else { e }
            }
            (FrameBound::Preceding(_), FrameUnits::Rows) => {
                let k = count();
                if start {
                    i.saturating_sub(k)
                } else {
                    (i + 1).saturating_sub(k)
                }
            }
            (FrameBound::Following(_), FrameUnits::Rows) => {
                let k = count();
                if start {
                    i.saturating_add(k).min(n)
                } else {
                    i.saturating_add(k).saturating_add(1).min(n)
                }
            }
            (FrameBound::Preceding(_), FrameUnits::Groups) => {
                let g = self.group_of[i];
                let k = count();
                if start {
                    self.groups[g.saturating_sub(k)].0
                } else if g >= k {
                    self.groups[g - k].1
                } else {
                    0
                }
            }
            (FrameBound::Following(_), FrameUnits::Groups) => {
                let g = self.group_of[i];
                let k = count();
                let last = self.groups.len() - 1;
                if start {
                    match g.checked_add(k) {
                        Some(t) if t <= last => self.groups[t].0,
                        _ => n,
                    }
                } else {
                    self.groups[g.saturating_add(k).min(last)].1
                }
            }
            (FrameBound::Preceding(_) | FrameBound::Following(_), FrameUnits::Range) => {
                let preceding = matches!(b, FrameBound::Preceding(_));
                match range {
                    Some(r) => r.bound(self, i, preceding, start)?,
                    None => return Err(SqlError::internal("RANGE offset without keys")),
                }
            }
        })
    }
}

fn has_offset(frame: &WindowFrame) -> bool {
    [&frame.start, &frame.end]
        .iter()
        .any(|b| matches!(b, FrameBound::Preceding(_) | FrameBound::Following(_)))
}

/// The single order key of a RANGE frame with offsets, made comparable
/// with the offset added (dates as timestamps), and the non-NULL rows.
struct RangeKeys {
    keys: Vec<Value>,
    key_ty: SqlType,
    descending: bool,
    /// The rows with a non-NULL key: `[from, to)`.
    from: usize,
    to: usize,
    start: Value,
    end: Value,
}

impl RangeKeys {
    fn new(part: &Partition<'_>, key: &SortKey, offsets: &(Offset, Offset)) -> SqlResult<Self> {
        let mut key_ty = key.expr.ty();
        if key_ty == SqlType::Date {
            key_ty = SqlType::Timestamp;
        }
        let keys: Vec<Value> = part
            .rows
            .iter()
            .map(|r| match &r[part.order_at] {
                Value::Date(d) => Value::Timestamp(i64::from(*d) * 86_400_000_000),
                v => v.clone(),
            })
            .collect();
        let from = keys.iter().position(|k| !k.is_null()).unwrap_or(keys.len());
        let to = keys
            .iter()
            .rposition(|k| !k.is_null())
            .map_or(from, |p| p + 1);
        let check = |o: &Offset| -> SqlResult<Value> {
            match o {
                Offset::Value(v) => {
                    let negative = match v {
                        Value::Interval(iv) => {
                            Value::Interval(*iv).cmp(&Value::Interval(Interval::default()))
                                == Ordering::Less
                        }
                        Value::Float(f) => f.is_nan() || *f < 0.0,
                        other => other.cmp(&Value::Int(0)) == Ordering::Less,
                    };
                    if negative {
                        return Err(SqlError::new(
                            INVALID_FRAME_SIZE,
                            "invalid preceding or following size in window function",
                        ));
                    }
                    Ok(v.clone())
                }
                _ => Ok(Value::Null),
            }
        };
        Ok(RangeKeys {
            keys,
            key_ty,
            descending: key.descending,
            from,
            to,
            start: check(&offsets.0)?,
            end: check(&offsets.1)?,
        })
    }

    /// The bound of row `i` for `key ± offset` (PRECEDING subtracts in the
    /// order's direction). A NULL key's bound is its peer group's edge.
    fn bound(
        &self,
        part: &Partition<'_>,
        i: usize,
        preceding: bool,
        start: bool,
    ) -> SqlResult<usize> {
        let cur = &self.keys[i];
        if cur.is_null() {
            let (s, e) = part.peers(i);
            return Ok(if start { s } else { e });
        }
        let offset = if start { &self.start } else { &self.end };
        // Subtract when going backwards in key order.
        let subtract = preceding != self.descending;
        let target = add_offset(cur, offset, subtract, self.key_ty)?;
        let region = &self.keys[self.from..self.to];
        // Rows before the frame start: ordered before the target; rows in
        // the frame up to its end: ordered before or equal to it.
        let before = |k: &Value| {
            let o = k.cmp(&target);
            let o = if self.descending { o.reverse() } else { o };
            if start {
                o == Ordering::Less
            } else {
                o != Ordering::Greater
            }
        };
        Ok(self.from + region.partition_point(before))
    }
}

/// `key + offset` or `key - offset`; integers saturate (a bound past the
/// type's range holds every row on that side).
fn add_offset(key: &Value, offset: &Value, subtract: bool, ty: SqlType) -> SqlResult<Value> {
    Ok(match (key, offset) {
        (Value::Int(k), Value::Int(o)) => {
            let v = if subtract {
                i128::from(*k) - i128::from(*o)
            } else {
                i128::from(*k) + i128::from(*o)
            };
            Value::Int(v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
        }
        (Value::Float(k), Value::Float(o)) => Value::Float(if subtract { k - o } else { k + o }),
        _ => {
            let op = if subtract { BinOp::Sub } else { BinOp::Add };
            let offset_ty = match offset {
                Value::Interval(_) => SqlType::Interval,
                Value::Decimal(_) => SqlType::Decimal(None),
                Value::Float(_) => SqlType::Float8,
                _ => SqlType::Int8,
            };
            ops::eval_binary(op, key, offset, ty, offset_ty)?
        }
    })
}

/// An aggregate over each row's frame.
fn aggregate(
    f: &WindowFunc,
    part: &Partition<'_>,
    frames: &[(usize, usize)],
    args: &ArgCols,
) -> SqlResult<Vec<Value>> {
    let n = part.len();
    let rows = part.rows;
    let mut out: Vec<Value> = Vec::with_capacity(n);
    let new_acc = || agg::new_accumulator(&f.name, &f.arg_types);
    let exclude = f.frame.exclude;
    if exclude == FrameExclude::NoOthers {
        // Sliding: add rows entering the frame, take back those leaving it.
        let mut acc = new_acc()?;
        let (mut head, mut tail) = (0usize, 0usize);
        let mut last: Option<((usize, usize), Value)> = None;
        for &(start, end) in frames {
            if let Some((frame, v)) = &last
                && *frame == (start, end)
            {
                out.push(v.clone());
                continue;
            }
            let end = end.max(start);
            if start >= tail {
                // Disjoint from the frame held: start over.
                acc = new_acc()?;
                head = start;
                tail = start;
            }
            let mut inverted = true;
            while head < start {
                if args.passes(&rows[head]) && !acc.remove(args.args(&rows[head]))? {
                    inverted = false;
                    break;
                }
                head += 1;
            }
            if !inverted {
                // No inverse: aggregate the frame anew.
                acc = new_acc()?;
                head = start;
                tail = start;
            }
            while tail < end {
                if args.passes(&rows[tail]) {
                    acc.add(args.args(&rows[tail]))?;
                }
                tail += 1;
            }
            let v = acc.peek()?;
            last = Some(((start, end), v.clone()));
            out.push(v);
        }
        return Ok(out);
    }
    for (i, &(start, end)) in frames.iter().enumerate() {
        let mut acc = new_acc()?;
        let end = end.max(start);
        for (j, row) in rows.iter().enumerate().take(end).skip(start) {
            if excluded(part, exclude, i, j) || !args.passes(row) {
                continue;
            }
            acc.add(args.args(row))?;
        }
        out.push(acc.finish()?);
    }
    Ok(out)
}

/// Whether row `j` is left out of row `i`'s frame by its EXCLUDE clause.
fn excluded(part: &Partition<'_>, exclude: FrameExclude, i: usize, j: usize) -> bool {
    match exclude {
        FrameExclude::NoOthers => false,
        FrameExclude::CurrentRow => i == j,
        FrameExclude::Group => part.group_of[i] == part.group_of[j],
        FrameExclude::Ties => i != j && part.group_of[i] == part.group_of[j],
    }
}

/// A ranking or value window function over one partition.
fn window_function(
    f: &WindowFunc,
    part: &Partition<'_>,
    offsets: &(Offset, Offset),
    first_key: Option<&SortKey>,
    args: &ArgCols,
) -> SqlResult<Vec<Value>> {
    let n = part.len();
    let rows = part.rows;
    Ok(match f.name.as_str() {
        "row_number" => (1..=n as i64).map(Value::Int).collect(),
        "rank" => (0..n)
            .map(|i| Value::Int(part.peers(i).0 as i64 + 1))
            .collect(),
        "dense_rank" => (0..n)
            .map(|i| Value::Int(part.group_of[i] as i64 + 1))
            .collect(),
        "percent_rank" => (0..n)
            .map(|i| {
                Value::Float(if n > 1 {
                    part.peers(i).0 as f64 / (n - 1) as f64
                } else {
                    0.0
                })
            })
            .collect(),
        "cume_dist" => (0..n)
            .map(|i| Value::Float(part.peers(i).1 as f64 / n as f64))
            .collect(),
        "ntile" => {
            // The bucket count is the first row's.
            let buckets = match rows.first().map(|r| args.arg(r, 0)) {
                None | Some(Value::Null) => return Ok(vec![Value::Null; n]),
                Some(v) => as_int(v).unwrap_or(0),
            };
            if buckets <= 0 {
                return Err(SqlError::new(
                    "22014",
                    "argument of ntile must be greater than zero",
                ));
            }
            let buckets = buckets as usize;
            let (size, extra) = (n / buckets, n % buckets);
            let mut out = Vec::with_capacity(n);
            let mut bucket = 1usize;
            let mut left = size + usize::from(extra > 0);
            for _ in 0..n {
                while left == 0 {
                    bucket += 1;
                    left = size + usize::from(bucket <= extra);
                }
                out.push(Value::Int(bucket as i64));
                left -= 1;
            }
            out
        }
        "lag" | "lead" => (0..n)
            .map(|i| {
                let row = &rows[i];
                let Some(k) = as_int(args.arg(row, 1)) else {
                    return Value::Null;
                };
                let target = if f.name == "lag" {
                    i as i128 - i128::from(k)
                } else {
                    i as i128 + i128::from(k)
                };
                if target >= 0 && target < n as i128 {
                    args.arg(&rows[target as usize], 0).clone()
                } else if args.n > 2 {
                    args.arg(row, 2).clone()
                } else {
                    Value::Null
                }
            })
            .collect(),
        "first_value" | "last_value" | "nth_value" => {
            let frames = part.frames(&f.frame, offsets, first_key)?;
            let mut out = Vec::with_capacity(n);
            for (i, &(start, end)) in frames.iter().enumerate() {
                let mut members =
                    (start..end.max(start)).filter(|&j| !excluded(part, f.frame.exclude, i, j));
                let pick = match f.name.as_str() {
                    "first_value" => members.next(),
                    "last_value" => members.next_back(),
                    _ => {
                        let Some(k) = as_int(args.arg(&rows[i], 1)) else {
                            out.push(Value::Null);
                            continue;
                        };
                        if k <= 0 {
                            return Err(SqlError::new(
                                "22016",
                                "argument of nth_value must be greater than zero",
                            ));
                        }
                        members.nth(usize::try_from(k - 1).unwrap_or(usize::MAX))
                    }
                };
                out.push(pick.map_or(Value::Null, |j| args.arg(&rows[j], 0).clone()));
            }
            out
        }
        other => {
            return Err(SqlError::internal(format!(
                "not a window function: {other}"
            )));
        }
    })
}
