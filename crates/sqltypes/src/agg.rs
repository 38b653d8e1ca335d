//! Aggregate functions: result types and accumulators (count, sum, avg, min, max,
//! string_agg, array_agg, bool_and/bool_or/every, stddev/variance families).
//!
//! An aggregate with `ORDER BY` inside its call (`array_agg(x ORDER BY y DESC)`) is
//! named by [`ordered_name`]: its sort keys follow its arguments, and the
//! accumulator buffers the group's rows and sorts them before folding.
//!
//! Results follow PostgreSQL 15: `sum` of int2/int4 is bigint and of int8 numeric
//! (accumulated exactly, never overflowing), `avg` of integers and numerics is numeric
//! with PostgreSQL's division scale (`avg(1, 2)` = `1.5000000000000000`), float
//! variance uses the Youngs–Cramer recurrence as PostgreSQL does.

use tardigrade_encoding::decimal::Decimal;

use crate::num::{self, Num};
use crate::ops::{self, BinOp};
use crate::{Interval, SqlError, SqlResult, SqlType, Value};

/// Folds one group's rows into an aggregate result. NULL arguments are skipped, as in
/// PostgreSQL; `count(*)` is called with empty `args` and counts rows.
pub trait Accumulator: Send {
    fn add(&mut self, args: &[Value]) -> SqlResult<()>;
    /// The result; the accumulator may be spent by it.
    fn finish(&mut self) -> SqlResult<Value>;
    /// The result so far, leaving the accumulator to take more rows (a
    /// window's running aggregate). Every `finish` leaves its state as it
    /// was except those that override this.
    fn peek(&mut self) -> SqlResult<Value> {
        self.finish()
    }
    /// Takes back a row added before (a window frame sliding past it), when
    /// the aggregate can do that exactly; `false` when it cannot (the
    /// caller then aggregates the frame anew).
    fn remove(&mut self, _args: &[Value]) -> SqlResult<bool> {
        Ok(false)
    }
}

fn undefined(name: &str, args: &[SqlType]) -> SqlError {
    let list: Vec<String> = args.iter().map(|t| t.to_string()).collect();
    SqlError::undefined_function(format!(
        "function {name}({}) does not exist",
        list.join(", ")
    ))
    .with_hint(
        "No function matches the given name and argument types. You might need to add explicit type casts.",
    )
}

/// Whether `name` is an aggregate function (for the planner's function lookup).
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
            | "bit_and"
            | "bit_or"
            | "jsonb_agg"
            | "jsonb_object_agg"
            | "percentile_cont"
            | "percentile_disc"
            | "mode"
    )
}

/// Whether `name` is an ordered-set aggregate: called `f(direct args)
/// WITHIN GROUP (ORDER BY x)`, it sees every `x` in that order (passed as
/// its last argument, after the direct ones).
pub fn is_ordered_set(name: &str) -> bool {
    matches!(name, "percentile_cont" | "percentile_disc" | "mode")
}

/// Whether aggregate `name` ignores NULL inputs (so `DISTINCT` may drop them
/// early); `array_agg` and `jsonb_agg` keep them.
pub fn ignores_nulls(name: &str) -> bool {
    let name = name.split_once(" ORDER BY ").map_or(name, |(n, _)| n);
    !matches!(name, "array_agg" | "jsonb_agg")
}

/// The result type of aggregate `name` over arguments of types `args`.
pub fn aggregate_type(name: &str, args: &[SqlType]) -> SqlResult<SqlType> {
    use SqlType as T;
    if let Some((inner, keys)) = parse_ordered(name) {
        let n = args.len().saturating_sub(keys.len());
        return aggregate_type(inner, &args[..n]);
    }
    let one = || {
        if args.len() == 1 {
            Ok(args[0])
        } else {
            Err(undefined(name, args))
        }
    };
    match name {
        "count" if args.len() <= 1 => Ok(T::Int8),
        "sum" => match one()? {
            T::Int2 | T::Int4 => Ok(T::Int8),
            T::Int8 | T::Decimal(_) => Ok(T::Decimal(None)),
            t @ (T::Float4 | T::Float8 | T::Interval) => Ok(t),
            _ => Err(undefined(name, args)),
        },
        "avg" => match one()? {
            T::Int2 | T::Int4 | T::Int8 | T::Decimal(_) => Ok(T::Decimal(None)),
            T::Float4 | T::Float8 => Ok(T::Float8),
            T::Interval => Ok(T::Interval),
            _ => Err(undefined(name, args)),
        },
        "stddev" | "stddev_samp" | "stddev_pop" | "variance" | "var_samp" | "var_pop" => {
            match one()? {
                T::Int2 | T::Int4 | T::Int8 | T::Decimal(_) => Ok(T::Decimal(None)),
                T::Float4 | T::Float8 => Ok(T::Float8),
                _ => Err(undefined(name, args)),
            }
        }
        "min" | "max" => match one()? {
            T::Unknown => Ok(T::Text),
            T::Jsonb => Err(undefined(name, args)),
            T::Decimal(_) => Ok(T::Decimal(None)),
            t => Ok(t),
        },
        "string_agg" => match args {
            [a, b] if is_texty(*a) && is_texty(*b) => Ok(T::Text),
            [T::Bytes, T::Bytes | T::Unknown] => Ok(T::Bytes),
            _ => Err(undefined(name, args)),
        },
        "bool_and" | "bool_or" | "every" => match one()? {
            T::Bool | T::Unknown => Ok(T::Bool),
            _ => Err(undefined(name, args)),
        },
        "bit_and" | "bit_or" => match one()? {
            t if t.is_integer() => Ok(t),
            _ => Err(undefined(name, args)),
        },
        "percentile_cont" => match args {
            [f, x] if f.is_numeric() || *f == T::Unknown => match x {
                T::Interval => Ok(T::Interval),
                t if t.is_numeric() || *t == T::Unknown => Ok(T::Float8),
                _ => Err(undefined(name, args)),
            },
            _ => Err(undefined(name, args)),
        },
        "percentile_disc" => match args {
            [f, x] if f.is_numeric() || *f == T::Unknown => Ok(*x),
            _ => Err(undefined(name, args)),
        },
        "mode" => one(),
        "jsonb_agg" if args.len() == 1 => Ok(T::Jsonb),
        "jsonb_object_agg" if args.len() == 2 => Ok(T::Jsonb),
        "array_agg" => match one()? {
            T::Array(_) => Err(SqlError::unsupported(
                "array_agg of arrays (a multidimensional array) is not supported",
            )),
            T::Unknown => Ok(T::array_of(T::Text)),
            t => Ok(T::array_of(t)),
        },
        _ => Err(undefined(name, args)),
    }
}

fn is_texty(t: SqlType) -> bool {
    t.is_string() || t == SqlType::Unknown
}

/// A fresh accumulator for aggregate `name` over arguments of types `arg_types`.
pub fn new_accumulator(name: &str, arg_types: &[SqlType]) -> SqlResult<Box<dyn Accumulator>> {
    use SqlType as T;
    if let Some((inner, keys)) = parse_ordered(name) {
        let n = arg_types.len().saturating_sub(keys.len());
        return Ok(Box::new(Ordered {
            inner: new_accumulator(inner, &arg_types[..n])?,
            nargs: n,
            keys,
            rows: Vec::new(),
        }));
    }
    let result = aggregate_type(name, arg_types)?;
    let arg = arg_types.first().copied().unwrap_or(T::Unknown);
    Ok(match name {
        "count" => Box::new(Count(0)),
        "sum" => match arg {
            T::Int2 | T::Int4 | T::Int8 => Box::new(SumInt {
                sum: 0,
                n: 0,
                decimal: arg == T::Int8,
            }),
            T::Decimal(_) => Box::new(SumDec::default()),
            T::Float4 | T::Float8 => Box::new(SumFloat {
                sum: 0.0,
                any: false,
                real: arg == T::Float4,
            }),
            _ => Box::new(SumInterval(None)),
        },
        "avg" => match arg {
            T::Int2 | T::Int4 | T::Int8 => Box::new(AvgInt { sum: 0, n: 0 }),
            T::Decimal(_) => Box::new(AvgDec::default()),
            T::Interval => Box::new(AvgInterval {
                sum: Interval::default(),
                n: 0,
            }),
            _ => Box::new(FloatStats::new(Stat::Avg)),
        },
        "stddev" | "stddev_samp" | "stddev_pop" | "variance" | "var_samp" | "var_pop" => {
            let stat = match name {
                "stddev" | "stddev_samp" => Stat::StddevSamp,
                "stddev_pop" => Stat::StddevPop,
                "var_pop" => Stat::VarPop,
                _ => Stat::VarSamp,
            };
            if result == T::Float8 {
                Box::new(FloatStats::new(stat))
            } else {
                Box::new(DecStats::new(stat))
            }
        }
        "min" => Box::new(MinMax {
            best: Value::Null,
            max: false,
            char_type: matches!(arg, T::Char(_)),
        }),
        "max" => Box::new(MinMax {
            best: Value::Null,
            max: true,
            char_type: matches!(arg, T::Char(_)),
        }),
        "string_agg" => Box::new(StringAgg {
            text: None,
            bytes: None,
            char_type: matches!(arg, T::Char(_)),
        }),
        "bool_and" | "every" => Box::new(BoolAgg {
            acc: None,
            and: true,
        }),
        "bool_or" => Box::new(BoolAgg {
            acc: None,
            and: false,
        }),
        "bit_and" | "bit_or" => Box::new(BitAgg {
            acc: None,
            and: name == "bit_and",
        }),
        "array_agg" => Box::new(ArrayAgg(None)),
        "percentile_cont" | "percentile_disc" | "mode" => Box::new(OrderedSet {
            name: if name == "mode" {
                OrderedSetKind::Mode
            } else if name == "percentile_cont" {
                OrderedSetKind::Continuous(arg_types.get(1).copied().unwrap_or(T::Float8))
            } else {
                OrderedSetKind::Discrete
            },
            fraction: None,
            values: Vec::new(),
        }),
        "jsonb_agg" => Box::new(JsonbAgg {
            items: None,
            ty: arg,
        }),
        "jsonb_object_agg" => Box::new(JsonbObjectAgg {
            map: None,
            key_ty: arg,
            value_ty: arg_types.get(1).copied().unwrap_or(T::Unknown),
        }),
        _ => return Err(undefined(name, arg_types)),
    })
}

/// The name of aggregate `name` called with `ORDER BY` keys sorted as given by
/// `keys` (descending, nulls first): `array_agg ORDER BY AL,DF`. The keys' values
/// are passed after the aggregate's own arguments.
pub fn ordered_name(name: &str, keys: &[(bool, bool)]) -> String {
    let spec: Vec<String> = keys
        .iter()
        .map(|&(desc, nulls_first)| {
            format!(
                "{}{}",
                if desc { 'D' } else { 'A' },
                if nulls_first { 'F' } else { 'L' }
            )
        })
        .collect();
    format!("{name} ORDER BY {}", spec.join(","))
}

/// The aggregate and sort keys of an [`ordered_name`].
fn parse_ordered(name: &str) -> Option<(&str, Vec<(bool, bool)>)> {
    let (inner, spec) = name.split_once(" ORDER BY ")?;
    let keys = spec
        .split(',')
        .map(|k| match k {
            "AL" => Some((false, false)),
            "AF" => Some((false, true)),
            "DL" => Some((true, false)),
            "DF" => Some((true, true)),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((inner, keys))
}

/// An aggregate over its group's rows in `ORDER BY` order: rows are kept until
/// the end, sorted (stably) on the trailing key values, then folded.
struct Ordered {
    inner: Box<dyn Accumulator>,
    nargs: usize,
    keys: Vec<(bool, bool)>,
    rows: Vec<Vec<Value>>,
}

impl Accumulator for Ordered {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        self.rows.push(args.to_vec());
        Ok(())
    }
    fn finish(&mut self) -> SqlResult<Value> {
        let (n, keys) = (self.nargs, &self.keys);
        self.rows.sort_by(|a, b| {
            for (i, &(desc, nulls_first)) in keys.iter().enumerate() {
                let (x, y) = (&a[n + i], &b[n + i]);
                let o = match (x.is_null(), y.is_null()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) if nulls_first => std::cmp::Ordering::Less,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) if nulls_first => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if desc => ops::compare(y, x).unwrap_or(std::cmp::Ordering::Equal),
                    _ => ops::compare(x, y).unwrap_or(std::cmp::Ordering::Equal),
                };
                if o.is_ne() {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
        for row in std::mem::take(&mut self.rows) {
            self.inner.add(&row[..n])?;
        }
        self.inner.finish()
    }
}

/// Which ordered-set aggregate an [`OrderedSet`] computes.
enum OrderedSetKind {
    /// `percentile_cont`: interpolated between the two nearest values (of
    /// this type: float8, or interval).
    Continuous(SqlType),
    /// `percentile_disc`: the first value at or past the fraction.
    Discrete,
    /// `mode()`: the most frequent value (the first in order on ties).
    Mode,
}

/// The ordered-set aggregates: the non-NULL values in their `WITHIN GROUP`
/// order (the rows arrive sorted, through [`Ordered`]), and the direct
/// argument (the fraction, the same for every row).
struct OrderedSet {
    name: OrderedSetKind,
    fraction: Option<Value>,
    values: Vec<Value>,
}

impl Accumulator for OrderedSet {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        let value = args.last().unwrap_or(&Value::Null);
        if args.len() > 1 && self.fraction.is_none() {
            self.fraction = Some(args[0].clone());
        }
        if !value.is_null() {
            self.values.push(value.clone());
        }
        Ok(())
    }

    fn finish(&mut self) -> SqlResult<Value> {
        let values = std::mem::take(&mut self.values);
        if values.is_empty() {
            return Ok(Value::Null);
        }
        if let OrderedSetKind::Mode = self.name {
            let mut best: Option<(usize, usize)> = None;
            let mut start = 0;
            for i in 1..=values.len() {
                let run_ends = i == values.len()
                    || ops::compare(&values[i], &values[start]) != Some(std::cmp::Ordering::Equal);
                if run_ends {
                    if best.is_none_or(|(_, n)| i - start > n) {
                        best = Some((start, i - start));
                    }
                    start = i;
                }
            }
            return Ok(best.map_or(Value::Null, |(i, _)| values[i].clone()));
        }
        let fraction = match self.fraction.as_ref().and_then(ops::to_f64) {
            Some(f) => f,
            None => return Ok(Value::Null),
        };
        if !(0.0..=1.0).contains(&fraction) {
            return Err(SqlError::out_of_range(format!(
                "percentile value {fraction} is not between 0 and 1"
            )));
        }
        let n = values.len();
        match self.name {
            OrderedSetKind::Discrete => {
                let k = ((fraction * n as f64).ceil() as usize).clamp(1, n);
                Ok(values[k - 1].clone())
            }
            OrderedSetKind::Continuous(ty) => {
                let pos = fraction * (n - 1) as f64;
                let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
                let t = pos - lo as f64;
                if ty == SqlType::Interval {
                    // lo + (hi - lo) * t, in interval arithmetic.
                    let diff = ops::eval_binary(
                        BinOp::Sub,
                        &values[hi],
                        &values[lo],
                        SqlType::Interval,
                        SqlType::Interval,
                    )?;
                    let part = ops::eval_binary(
                        BinOp::Mul,
                        &diff,
                        &Value::Float(t),
                        SqlType::Interval,
                        SqlType::Float8,
                    )?;
                    return ops::eval_binary(
                        BinOp::Add,
                        &values[lo],
                        &part,
                        SqlType::Interval,
                        SqlType::Interval,
                    );
                }
                let (a, b) = (
                    ops::to_f64(&values[lo]).unwrap_or(f64::NAN),
                    ops::to_f64(&values[hi]).unwrap_or(f64::NAN),
                );
                Ok(Value::Float(a + (b - a) * t))
            }
            OrderedSetKind::Mode => Ok(Value::Null),
        }
    }
}

/// `array_agg`: every input, NULLs included; NULL for no rows.
struct ArrayAgg(Option<Vec<Value>>);

impl Accumulator for ArrayAgg {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        self.0
            .get_or_insert_with(Vec::new)
            .push(first(args).clone());
        Ok(())
    }
    fn finish(&mut self) -> SqlResult<Value> {
        Ok(self.0.take().map_or(Value::Null, Value::Array))
    }
    fn peek(&mut self) -> SqlResult<Value> {
        Ok(self.0.clone().map_or(Value::Null, Value::Array))
    }
}

fn first(args: &[Value]) -> &Value {
    args.first().unwrap_or(&Value::Null)
}

struct Count(i64);

impl Accumulator for Count {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        if args.is_empty() || !args[0].is_null() {
            self.0 += 1;
        }
        Ok(())
    }
    fn finish(&mut self) -> SqlResult<Value> {
        Ok(Value::Int(self.0))
    }
    fn remove(&mut self, args: &[Value]) -> SqlResult<bool> {
        if args.is_empty() || !args[0].is_null() {
            self.0 -= 1;
        }
        Ok(true)
    }
}

struct SumInt {
    sum: i128,
    /// Values added (and not removed).
    n: i64,
    decimal: bool,
}

impl Accumulator for SumInt {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        if let Value::Int(i) = first(args) {
            self.sum += i128::from(*i);
            self.n += 1;
        }
        Ok(())
    }
    fn remove(&mut self, args: &[Value]) -> SqlResult<bool> {
        if let Value::Int(i) = first(args) {
            self.sum -= i128::from(*i);
            self.n -= 1;
        }
        Ok(true)
    }
    fn finish(&mut self) -> SqlResult<Value> {
        if self.n == 0 {
            return Ok(Value::Null);
        }
        if self.decimal {
            Ok(Value::Decimal(Num::from_i128(self.sum).to_decimal()?))
        } else {
            Ok(Value::Int(ops::check_int(self.sum, SqlType::Int8)?))
        }
    }
}

/// Exact numeric sum with PostgreSQL's NaN/±Infinity rules.
#[derive(Default)]
struct DecSum {
    /// The running sum while it fits in an i128 (no allocation per row).
    fixed: Option<num::Fixed>,
    sum: Option<Num>,
    special: Option<Decimal>,
    n: i64,
}

impl DecSum {
    fn add(&mut self, v: &Value) -> SqlResult<()> {
        let converted;
        let d = match v {
            Value::Null => return Ok(()),
            Value::Decimal(d) => d,
            other => {
                converted = ops::to_decimal(other)?;
                &converted
            }
        };
        self.n += 1;
        if self.sum.is_none()
            && let Some(x) = num::Fixed::from_decimal(d)
        {
            match self.fixed {
                None => {
                    self.fixed = Some(x);
                    return Ok(());
                }
                Some(f) => {
                    if let Some(s) = f.checked_add(x) {
                        self.fixed = Some(s);
                        return Ok(());
                    }
                }
            }
        }
        // Off the fast path for good: carry the fixed sum over.
        if let Some(f) = self.fixed.take() {
            self.sum = Some(match self.sum.take() {
                Some(s) => s.add(&f.to_num()),
                None => f.to_num(),
            });
        }
        let d = d.clone();
        match Num::from_decimal(&d) {
            Some(x) => {
                self.sum = Some(match self.sum.take() {
                    Some(s) => s.add(&x),
                    None => x,
                })
            }
            None => {
                self.special = Some(match self.special.take() {
                    None => d,
                    Some(s) if s.is_nan() || d.is_nan() || s.is_negative() != d.is_negative() => {
                        Decimal::nan()
                    }
                    Some(s) => s,
                })
            }
        }
        Ok(())
    }
    /// The sum of the finite values seen.
    fn finite_sum(&self) -> Num {
        match (&self.sum, self.fixed) {
            (Some(s), Some(f)) => s.add(&f.to_num()),
            (Some(s), None) => s.clone(),
            (None, Some(f)) => f.to_num(),
            (None, None) => Num::zero(),
        }
    }

    fn total(&self) -> SqlResult<Option<Decimal>> {
        if let Some(s) = &self.special {
            return Ok(Some(s.clone()));
        }
        match (&self.sum, self.fixed) {
            (None, Some(f)) => f.to_decimal().map(Some),
            (Some(s), Some(f)) => s.add(&f.to_num()).to_decimal().map(Some),
            (s, None) => s.as_ref().map(Num::to_decimal).transpose(),
        }
    }
}

#[derive(Default)]
struct SumDec(DecSum);

impl Accumulator for SumDec {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        self.0.add(first(args))
    }
    fn finish(&mut self) -> SqlResult<Value> {
        Ok(self.0.total()?.map_or(Value::Null, Value::Decimal))
    }
}

struct SumFloat {
    sum: f64,
    any: bool,
    real: bool,
}

impl Accumulator for SumFloat {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        if let Some(f) = ops::to_f64(first(args)) {
            let was_finite = self.sum.is_finite() && f.is_finite();
            self.sum += f;
            if self.sum.is_infinite() && was_finite {
                return Err(SqlError::out_of_range("value out of range: overflow"));
            }
            self.any = true;
        }
        Ok(())
    }
    fn finish(&mut self) -> SqlResult<Value> {
        if !self.any {
            return Ok(Value::Null);
        }
        if self.real {
            let f = self.sum as f32;
            if f.is_infinite() && self.sum.is_finite() {
                return Err(SqlError::out_of_range("value out of range: overflow"));
            }
            return Ok(Value::Float(f64::from(f)));
        }
        Ok(Value::Float(self.sum))
    }
}

struct SumInterval(Option<Value>);

impl Accumulator for SumInterval {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        let v = first(args);
        if v.is_null() {
            return Ok(());
        }
        self.0 = Some(match self.0.take() {
            None => v.clone(),
            Some(s) => ops::eval_binary(BinOp::Add, &s, v, SqlType::Interval, SqlType::Interval)?,
        });
        Ok(())
    }
    fn finish(&mut self) -> SqlResult<Value> {
        Ok(self.0.clone().unwrap_or(Value::Null))
    }
}

struct AvgInt {
    sum: i128,
    n: i64,
}

impl Accumulator for AvgInt {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        if let Value::Int(i) = first(args) {
            self.sum += i128::from(*i);
            self.n += 1;
        }
        Ok(())
    }
    fn remove(&mut self, args: &[Value]) -> SqlResult<bool> {
        if let Value::Int(i) = first(args) {
            self.sum -= i128::from(*i);
            self.n -= 1;
        }
        Ok(true)
    }
    fn finish(&mut self) -> SqlResult<Value> {
        if self.n == 0 {
            return Ok(Value::Null);
        }
        let q = Num::from_i128(self.sum).div(&Num::from_i128(i128::from(self.n)))?;
        Ok(Value::Decimal(q.to_decimal()?))
    }
}

#[derive(Default)]
struct AvgDec(DecSum);

impl Accumulator for AvgDec {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        self.0.add(first(args))
    }
    fn finish(&mut self) -> SqlResult<Value> {
        if self.0.n == 0 {
            return Ok(Value::Null);
        }
        if let Some(s) = &self.0.special {
            return Ok(Value::Decimal(s.clone()));
        }
        let sum = self.0.finite_sum();
        let q = sum.div(&Num::from_i128(i128::from(self.0.n)))?;
        Ok(Value::Decimal(q.to_decimal()?))
    }
}

struct AvgInterval {
    sum: Interval,
    n: i64,
}

impl Accumulator for AvgInterval {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        if let Value::Interval(iv) = first(args) {
            let s = ops::eval_binary(
                BinOp::Add,
                &Value::Interval(self.sum),
                &Value::Interval(*iv),
                SqlType::Interval,
                SqlType::Interval,
            )?;
            if let Value::Interval(s) = s {
                self.sum = s;
            }
            self.n += 1;
        }
        Ok(())
    }
    fn finish(&mut self) -> SqlResult<Value> {
        if self.n == 0 {
            return Ok(Value::Null);
        }
        ops::eval_binary(
            BinOp::Div,
            &Value::Interval(self.sum),
            &Value::Int(self.n),
            SqlType::Interval,
            SqlType::Int8,
        )
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Stat {
    Avg,
    VarSamp,
    VarPop,
    StddevSamp,
    StddevPop,
}

/// float8 avg/variance/stddev with PostgreSQL's Youngs–Cramer accumulation.
struct FloatStats {
    stat: Stat,
    n: f64,
    sx: f64,
    sxx: f64,
}

impl FloatStats {
    fn new(stat: Stat) -> FloatStats {
        FloatStats {
            stat,
            n: 0.0,
            sx: 0.0,
            sxx: 0.0,
        }
    }
}

impl Accumulator for FloatStats {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        let Some(x) = ops::to_f64(first(args)) else {
            return Ok(());
        };
        let old_n = self.n;
        self.n += 1.0;
        self.sx += x;
        if old_n > 0.0 {
            let tmp = x * self.n - self.sx;
            self.sxx += tmp * tmp / (self.n * old_n);
            if self.sx.is_infinite() || self.sxx.is_infinite() {
                if !x.is_infinite() && self.sx.is_finite() {
                    return Err(SqlError::out_of_range("value out of range: overflow"));
                }
                self.sxx = f64::NAN;
            }
        } else if x.is_nan() || x.is_infinite() {
            self.sxx = f64::NAN;
        }
        Ok(())
    }
    fn finish(&mut self) -> SqlResult<Value> {
        let n = self.n;
        let v = match self.stat {
            Stat::Avg if n > 0.0 => self.sx / n,
            Stat::VarPop if n > 0.0 => self.sxx / n,
            Stat::StddevPop if n > 0.0 => (self.sxx / n).sqrt(),
            Stat::VarSamp if n > 1.0 => self.sxx / (n - 1.0),
            Stat::StddevSamp if n > 1.0 => (self.sxx / (n - 1.0)).sqrt(),
            _ => return Ok(Value::Null),
        };
        Ok(Value::Float(v))
    }
}

/// numeric variance/stddev, computed exactly as PostgreSQL's
/// `numeric_stddev_internal`.
struct DecStats {
    stat: Stat,
    n: i64,
    sx: Num,
    sxx: Num,
    nan: bool,
}

impl DecStats {
    fn new(stat: Stat) -> DecStats {
        DecStats {
            stat,
            n: 0,
            sx: Num::zero(),
            sxx: Num::zero(),
            nan: false,
        }
    }
}

impl Accumulator for DecStats {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        let v = first(args);
        if v.is_null() {
            return Ok(());
        }
        self.n += 1;
        match Num::from_decimal(&ops::to_decimal(v)?) {
            Some(x) => {
                self.sxx = self.sxx.add(&x.mul(&x));
                self.sx = self.sx.add(&x);
            }
            None => self.nan = true,
        }
        Ok(())
    }
    fn finish(&mut self) -> SqlResult<Value> {
        let sample = matches!(self.stat, Stat::VarSamp | Stat::StddevSamp);
        if self.n == 0 || (sample && self.n == 1) {
            return Ok(Value::Null);
        }
        if self.nan {
            return Ok(Value::Decimal(Decimal::nan()));
        }
        let n = Num::from_i128(i128::from(self.n));
        let numer = n.mul(&self.sxx).sub(&self.sx.mul(&self.sx));
        let numer = if numer.neg { Num::zero() } else { numer };
        let denom = if sample {
            n.mul(&Num::from_i128(i128::from(self.n - 1)))
        } else {
            n.mul(&n)
        };
        let rscale = numer.div_scale(&denom);
        let var = numer.div_to_scale(&denom, rscale)?;
        let r = match self.stat {
            Stat::StddevSamp | Stat::StddevPop => var.sqrt(rscale),
            _ => var,
        };
        Ok(Value::Decimal(r.to_decimal()?))
    }
}

struct MinMax {
    best: Value,
    max: bool,
    char_type: bool,
}

impl Accumulator for MinMax {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        let v = first(args);
        if v.is_null() {
            return Ok(());
        }
        let better = match ops::compare(v, &self.best) {
            None => true,
            Some(o) => {
                let o = if self.char_type {
                    match (v, &self.best) {
                        (Value::Text(a), Value::Text(b)) => {
                            a.trim_end_matches(' ').cmp(b.trim_end_matches(' '))
                        }
                        _ => o,
                    }
                } else {
                    o
                };
                if self.max { o.is_gt() } else { o.is_lt() }
            }
        };
        if better {
            self.best = v.clone();
        }
        Ok(())
    }
    fn finish(&mut self) -> SqlResult<Value> {
        Ok(self.best.clone())
    }
}

struct StringAgg {
    text: Option<String>,
    bytes: Option<Vec<u8>>,
    char_type: bool,
}

impl Accumulator for StringAgg {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        let delim = args.get(1).unwrap_or(&Value::Null);
        match first(args) {
            Value::Null => {}
            Value::Bytes(b) => {
                let acc = match self.bytes.take() {
                    None => b.clone(),
                    Some(mut acc) => {
                        if let Value::Bytes(d) = delim {
                            acc.extend_from_slice(d);
                        }
                        acc.extend_from_slice(b);
                        acc
                    }
                };
                self.bytes = Some(acc);
            }
            v => {
                let s = match v {
                    Value::Text(s) if self.char_type => s.trim_end_matches(' '),
                    Value::Text(s) => s.as_str(),
                    _ => return Err(SqlError::internal("string_agg of a non-string")),
                };
                let acc = match self.text.take() {
                    None => s.to_owned(),
                    Some(mut acc) => {
                        if let Value::Text(d) = delim {
                            acc.push_str(d);
                        }
                        acc.push_str(s);
                        acc
                    }
                };
                self.text = Some(acc);
            }
        }
        Ok(())
    }
    fn finish(&mut self) -> SqlResult<Value> {
        Ok(match (&self.text, &self.bytes) {
            (Some(t), _) => Value::Text(t.clone()),
            (_, Some(b)) => Value::Bytes(b.clone()),
            _ => Value::Null,
        })
    }
}

struct BoolAgg {
    acc: Option<bool>,
    and: bool,
}

impl Accumulator for BoolAgg {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        if let Value::Bool(b) = first(args) {
            self.acc = Some(match self.acc {
                None => *b,
                Some(a) if self.and => a && *b,
                Some(a) => a || *b,
            });
        }
        Ok(())
    }
    fn finish(&mut self) -> SqlResult<Value> {
        Ok(self.acc.map_or(Value::Null, Value::Bool))
    }
}

struct BitAgg {
    acc: Option<i64>,
    and: bool,
}

impl Accumulator for BitAgg {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        if let Value::Int(i) = first(args) {
            self.acc = Some(match self.acc {
                None => *i,
                Some(a) if self.and => a & i,
                Some(a) => a | i,
            });
        }
        Ok(())
    }
    fn finish(&mut self) -> SqlResult<Value> {
        Ok(self.acc.map_or(Value::Null, Value::Int))
    }
}

/// `jsonb_agg`: every row's value (NULL included, as JSON null), in input order.
struct JsonbAgg {
    items: Option<Vec<serde_json::Value>>,
    ty: SqlType,
}

impl Accumulator for JsonbAgg {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        let item = crate::functions::to_json(first(args), self.ty);
        self.items.get_or_insert_with(Vec::new).push(item);
        Ok(())
    }
    fn finish(&mut self) -> SqlResult<Value> {
        Ok(match &self.items {
            None => Value::Null,
            Some(items) => Value::Jsonb(Box::new(serde_json::Value::Array(items.clone()))),
        })
    }
}

/// `jsonb_object_agg(key, value)`: later keys replace earlier ones; NULL keys fail.
struct JsonbObjectAgg {
    map: Option<serde_json::Map<String, serde_json::Value>>,
    key_ty: SqlType,
    value_ty: SqlType,
}

impl Accumulator for JsonbObjectAgg {
    fn add(&mut self, args: &[Value]) -> SqlResult<()> {
        let key = first(args);
        if key.is_null() {
            return Err(SqlError::new(
                crate::error::codes::INVALID_PARAMETER_VALUE,
                "field name must not be null",
            ));
        }
        let value = args.get(1).unwrap_or(&Value::Null);
        self.map.get_or_insert_with(serde_json::Map::new).insert(
            ops::text_of(key, self.key_ty),
            crate::functions::to_json(value, self.value_ty),
        );
        Ok(())
    }
    fn finish(&mut self) -> SqlResult<Value> {
        Ok(match &self.map {
            None => Value::Null,
            Some(m) => Value::Jsonb(Box::new(serde_json::Value::Object(m.clone()))),
        })
    }
}

/// Decimal helper for callers that need `numeric` division with PostgreSQL's scale.
pub fn numeric_div(a: &Decimal, b: &Decimal) -> SqlResult<Decimal> {
    match (Num::from_decimal(a), Num::from_decimal(b)) {
        (Some(x), Some(y)) => x.div(&y)?.to_decimal(),
        _ => ops::eval_binary(
            BinOp::Div,
            &Value::Decimal(a.clone()),
            &Value::Decimal(b.clone()),
            SqlType::Decimal(None),
            SqlType::Decimal(None),
        )
        .and_then(|v| match v {
            Value::Decimal(d) => Ok(d),
            _ => Err(num::overflow()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, ty: SqlType, vals: &[Value]) -> Value {
        let mut acc = new_accumulator(name, &[ty]).expect("accumulator");
        for v in vals {
            acc.add(std::slice::from_ref(v)).expect("add");
        }
        acc.finish().expect("finish")
    }

    fn text(name: &str, ty: SqlType, vals: &[Value]) -> String {
        let rt = aggregate_type(name, &[ty]).expect("type");
        match run(name, ty, vals) {
            Value::Null => "NULL".to_owned(),
            v => v.to_text(rt),
        }
    }

    fn ints(v: &[i64]) -> Vec<Value> {
        v.iter().map(|i| Value::Int(*i)).collect()
    }

    #[test]
    fn avg_of_integers_prints_like_postgres() {
        let cases: [(&[i64], &str); 5] = [
            (&[1, 2], "1.5000000000000000"),
            (&[1, 2, 2], "1.6666666666666667"),
            (&[10, 20], "15.0000000000000000"),
            (&[1, 1, 1], "1.00000000000000000000"),
            (&[-1, -2], "-1.5000000000000000"),
        ];
        for (vals, want) in cases {
            assert_eq!(text("avg", SqlType::Int4, &ints(vals)), want, "{vals:?}");
        }
    }

    #[test]
    fn sums_do_not_overflow_and_have_postgres_types() {
        let big = ints(&[i64::MAX, i64::MAX]);
        assert_eq!(text("sum", SqlType::Int8, &big), "18446744073709551614");
        assert_eq!(
            aggregate_type("sum", &[SqlType::Int4]).expect("t"),
            SqlType::Int8
        );
        assert_eq!(
            text("sum", SqlType::Int4, &ints(&[i64::from(i32::MAX), 1])),
            "2147483648"
        );
        assert_eq!(text("sum", SqlType::Int4, &[]), "NULL");
        assert_eq!(text("sum", SqlType::Int4, &[Value::Null]), "NULL");
    }

    #[test]
    fn peek_leaves_the_state_and_remove_takes_rows_back() {
        let mut arr = new_accumulator("array_agg", &[SqlType::Int8]).expect("array_agg");
        arr.add(&[Value::Int(1)]).expect("add");
        assert_eq!(arr.peek().expect("peek"), Value::Array(ints(&[1])));
        arr.add(&[Value::Int(2)]).expect("add");
        assert_eq!(arr.peek().expect("peek"), Value::Array(ints(&[1, 2])));
        assert!(!arr.remove(&[Value::Int(1)]).expect("remove"), "no inverse");

        let mut sum = new_accumulator("sum", &[SqlType::Int8]).expect("sum");
        for v in [Value::Int(5), Value::Null, Value::Int(7)] {
            sum.add(&[v]).expect("add");
        }
        assert!(sum.remove(&[Value::Int(5)]).expect("remove"));
        assert!(sum.remove(&[Value::Null]).expect("remove"));
        assert_eq!(text("sum", SqlType::Int8, &ints(&[7])), "7");
        assert_eq!(
            sum.peek().expect("peek").to_text(SqlType::Decimal(None)),
            "7"
        );
        assert!(sum.remove(&[Value::Int(7)]).expect("remove"));
        assert_eq!(sum.peek().expect("peek"), Value::Null, "no values left");

        let mut avg = new_accumulator("avg", &[SqlType::Int8]).expect("avg");
        let mut count = new_accumulator("count", &[]).expect("count(*)");
        for i in 1..=3 {
            avg.add(&[Value::Int(i)]).expect("add");
            count.add(&[]).expect("add");
        }
        assert!(avg.remove(&[Value::Int(1)]).expect("remove"));
        assert!(count.remove(&[]).expect("remove"));
        assert_eq!(
            avg.peek().expect("peek").to_text(SqlType::Decimal(None)),
            "2.5000000000000000"
        );
        assert_eq!(count.peek().expect("peek"), Value::Int(2));
    }

    #[test]
    fn count_skips_nulls_but_count_star_counts_rows() {
        let mut star = new_accumulator("count", &[]).expect("count(*)");
        let mut col = new_accumulator("count", &[SqlType::Int4]).expect("count(x)");
        for v in [Value::Int(1), Value::Null, Value::Int(3)] {
            star.add(&[]).expect("add");
            col.add(&[v]).expect("add");
        }
        assert_eq!(star.finish().expect("f"), Value::Int(3));
        assert_eq!(col.finish().expect("f"), Value::Int(2));
    }

    #[test]
    fn min_max_string_agg_and_bool_aggregates() {
        let vals = ints(&[3, 1, 2]);
        assert_eq!(run("min", SqlType::Int4, &vals), Value::Int(1));
        assert_eq!(run("max", SqlType::Int4, &vals), Value::Int(3));
        let mut sa = new_accumulator("string_agg", &[SqlType::Text, SqlType::Text]).expect("sa");
        for s in ["a", "b", "c"] {
            sa.add(&[Value::Text(s.into()), Value::Text(",".into())])
                .expect("add");
        }
        sa.add(&[Value::Null, Value::Text(",".into())])
            .expect("add");
        assert_eq!(sa.finish().expect("f"), Value::Text("a,b,c".into()));
        let bools = [Value::Bool(true), Value::Null, Value::Bool(false)];
        assert_eq!(run("bool_and", SqlType::Bool, &bools), Value::Bool(false));
        assert_eq!(run("bool_or", SqlType::Bool, &bools), Value::Bool(true));
    }

    #[test]
    fn variance_and_stddev_match_postgres() {
        let vals = ints(&[1, 2, 3, 4]);
        assert_eq!(text("variance", SqlType::Int4, &vals), "1.6666666666666667");
        assert_eq!(text("stddev", SqlType::Int4, &vals), "1.2909944487358056");
        assert_eq!(text("var_pop", SqlType::Int4, &vals), "1.2500000000000000");
        assert_eq!(text("stddev", SqlType::Int4, &ints(&[5])), "NULL");
        let floats: Vec<Value> = [1.0, 2.0, 3.0, 4.0]
            .iter()
            .map(|f| Value::Float(*f))
            .collect();
        assert_eq!(
            text("stddev", SqlType::Float8, &floats),
            "1.2909944487358056"
        );
        assert_eq!(text("avg", SqlType::Float8, &floats), "2.5");
    }

    #[test]
    fn bit_and_jsonb_aggregates() {
        assert_eq!(run("bit_and", SqlType::Int4, &ints(&[7, 3])), Value::Int(3));
        assert_eq!(run("bit_or", SqlType::Int4, &ints(&[4, 1])), Value::Int(5));
        assert_eq!(
            text("jsonb_agg", SqlType::Int4, &[Value::Int(1), Value::Null]),
            "[1, null]"
        );
        let mut acc =
            new_accumulator("jsonb_object_agg", &[SqlType::Text, SqlType::Int4]).expect("agg");
        acc.add(&[Value::Text("b".into()), Value::Int(2)])
            .expect("add");
        acc.add(&[Value::Text("a".into()), Value::Int(1)])
            .expect("add");
        assert_eq!(
            acc.finish().expect("finish").to_text(SqlType::Jsonb),
            r#"{"a": 1, "b": 2}"#
        );
    }

    #[test]
    fn avg_of_numerics_keeps_input_scale() {
        let vals: Vec<Value> = ["1.50", "2.25"]
            .iter()
            .map(|s| Value::Decimal(s.parse().expect("dec")))
            .collect();
        assert_eq!(
            text("avg", SqlType::Decimal(None), &vals),
            "1.8750000000000000"
        );
        assert_eq!(text("sum", SqlType::Decimal(None), &vals), "3.75");
    }
}
