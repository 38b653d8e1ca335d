//! Operators, casts and built-in scalar functions with PostgreSQL's semantics.
//!
//! Type resolution (`binary_type`, `unary_type`, `common_type`, `function_type`) is
//! separate from evaluation (`eval_binary`, `eval_unary`, `cast`, `call_function`) so
//! the planner can type-check a whole expression before running it.

use std::cmp::Ordering;

use tardigrade_encoding::decimal::Decimal;

use crate::datetime::{self, USECS_PER_DAY};
use crate::error::codes;
use crate::num::{self, Num};
use crate::{Interval, SqlError, SqlResult, SqlType, Value};

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    Concat,
    Like,
    NotLike,
    ILike,
    NotILike,
    BitAnd,
    BitOr,
    BitXor,
    ShiftLeft,
    ShiftRight,
    JsonGet,
    JsonGetText,
    IsDistinctFrom,
    IsNotDistinctFrom,
}

/// A unary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    Neg,
    Plus,
    Not,
    BitNot,
}

impl BinOp {
    /// The operator as SQL spells it (for error messages).
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Eq => "=",
            BinOp::NotEq => "<>",
            BinOp::Lt => "<",
            BinOp::LtEq => "<=",
            BinOp::Gt => ">",
            BinOp::GtEq => ">=",
            BinOp::And => "AND",
            BinOp::Or => "OR",
            BinOp::Concat => "||",
            BinOp::Like => "~~",
            BinOp::NotLike => "!~~",
            BinOp::ILike => "~~*",
            BinOp::NotILike => "!~~*",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "#",
            BinOp::ShiftLeft => "<<",
            BinOp::ShiftRight => ">>",
            BinOp::JsonGet => "->",
            BinOp::JsonGetText => "->>",
            BinOp::IsDistinctFrom => "IS DISTINCT FROM",
            BinOp::IsNotDistinctFrom => "IS NOT DISTINCT FROM",
        }
    }

    fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq
                | BinOp::NotEq
                | BinOp::Lt
                | BinOp::LtEq
                | BinOp::Gt
                | BinOp::GtEq
                | BinOp::IsDistinctFrom
                | BinOp::IsNotDistinctFrom
        )
    }
}

impl UnOp {
    pub fn symbol(self) -> &'static str {
        match self {
            UnOp::Neg => "-",
            UnOp::Plus => "+",
            UnOp::Not => "NOT",
            UnOp::BitNot => "~",
        }
    }
}

fn no_operator(op: BinOp, l: SqlType, r: SqlType) -> SqlError {
    SqlError::undefined_function(format!("operator does not exist: {l} {} {r}", op.symbol()))
        .with_hint("No operator matches the given name and argument types. You might need to add explicit type casts.")
}

/// Rank within the numeric category: int2 < int4 < int8 < numeric < float4 < float8.
fn num_rank(t: SqlType) -> Option<u8> {
    Some(match t {
        SqlType::Int2 => 0,
        SqlType::Int4 => 1,
        // an integer and an oid have the type oid in common (PostgreSQL
        // casts int4 to oid implicitly)
        SqlType::Oid | SqlType::RegClass | SqlType::RegType => 2,
        SqlType::Int8 => 3,
        SqlType::Decimal(_) => 4,
        SqlType::Float4 => 5,
        SqlType::Float8 => 6,
        _ => return None,
    })
}

fn is_float(t: SqlType) -> bool {
    matches!(t, SqlType::Float4 | SqlType::Float8)
}

fn is_stringish(t: SqlType) -> bool {
    t.is_string() || t == SqlType::Unknown
}

fn is_datetime(t: SqlType) -> bool {
    matches!(t, SqlType::Date | SqlType::Timestamp | SqlType::TimestampTz)
}

/// Result type of numeric arithmetic between two numeric types.
fn arith_numeric(l: SqlType, r: SqlType) -> SqlType {
    if is_float(l) || is_float(r) {
        if l == SqlType::Float4 && r == SqlType::Float4 {
            SqlType::Float4
        } else {
            SqlType::Float8
        }
    } else if matches!(l, SqlType::Decimal(_)) || matches!(r, SqlType::Decimal(_)) {
        SqlType::Decimal(None)
    } else if [l, r].iter().any(|t| {
        matches!(
            t,
            SqlType::Int8 | SqlType::Oid | SqlType::RegClass | SqlType::RegType
        )
    }) {
        // oid arithmetic (which PostgreSQL does not have) is done in int8
        SqlType::Int8
    } else if l == SqlType::Int4 || r == SqlType::Int4 {
        SqlType::Int4
    } else {
        SqlType::Int2
    }
}

/// Whether values of the two types can be compared with `=`, `<`, ….
fn comparable(l: SqlType, r: SqlType) -> bool {
    if let (SqlType::Array(a), SqlType::Array(b)) = (l, r) {
        return comparable(*a, *b);
    }
    l == SqlType::Unknown
        || r == SqlType::Unknown
        || (l.is_numeric() && r.is_numeric())
        || (l.is_string() && r.is_string())
        || (is_datetime(l) && is_datetime(r))
        || std::mem::discriminant(&l) == std::mem::discriminant(&r)
}

/// The result type of `left op right`, with PostgreSQL's operator resolution; an
/// `Unknown` side (NULL literal, untyped parameter) takes the other side's type.
pub fn binary_type(op: BinOp, left: SqlType, right: SqlType) -> SqlResult<SqlType> {
    use SqlType as T;
    let (l, r) = match (left, right) {
        (T::Unknown, T::Unknown) => (T::Unknown, T::Unknown),
        (T::Unknown, r) if !matches!(op, BinOp::Concat | BinOp::JsonGet | BinOp::JsonGetText) => {
            (datetime_partner(op, r), r)
        }
        (l, T::Unknown) if !matches!(op, BinOp::Concat | BinOp::JsonGet | BinOp::JsonGetText) => {
            (l, datetime_partner(op, l))
        }
        lr => lr,
    };
    let fail = || no_operator(op, left, right);
    if op.is_comparison() {
        return if comparable(l, r) {
            Ok(T::Bool)
        } else {
            Err(fail())
        };
    }
    match op {
        BinOp::And | BinOp::Or => {
            for t in [l, r] {
                if !matches!(t, T::Bool | T::Unknown) {
                    return Err(SqlError::datatype_mismatch(format!(
                        "argument of {} must be type boolean, not type {t}",
                        op.symbol()
                    )));
                }
            }
            Ok(T::Bool)
        }
        BinOp::Like | BinOp::NotLike | BinOp::ILike | BinOp::NotILike => {
            if (is_stringish(l) && is_stringish(r)) || (l == T::Bytes && r == T::Bytes) {
                Ok(T::Bool)
            } else {
                Err(fail())
            }
        }
        BinOp::Concat => match (l, r) {
            (T::Bytes, T::Bytes | T::Unknown) | (T::Unknown, T::Bytes) => Ok(T::Bytes),
            (T::Jsonb, T::Jsonb | T::Unknown) | (T::Unknown, T::Jsonb) => Ok(T::Jsonb),
            (l, r) if is_stringish(l) || is_stringish(r) => Ok(T::Text),
            _ => Err(fail()),
        },
        BinOp::JsonGet | BinOp::JsonGetText => {
            if l == T::Jsonb && (is_stringish(r) || r.is_integer()) {
                Ok(if op == BinOp::JsonGet {
                    T::Jsonb
                } else {
                    T::Text
                })
            } else {
                Err(fail())
            }
        }
        BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor => {
            if l.is_integer() && r.is_integer() {
                Ok(arith_numeric(l, r))
            } else {
                Err(fail())
            }
        }
        BinOp::ShiftLeft | BinOp::ShiftRight => {
            if l.is_integer() && r.is_integer() {
                Ok(l)
            } else {
                Err(fail())
            }
        }
        BinOp::Pow => {
            if l.is_numeric() && r.is_numeric() {
                if is_float(l) || is_float(r) || (l.is_integer() && r.is_integer()) {
                    Ok(T::Float8)
                } else {
                    Ok(T::Decimal(None))
                }
            } else {
                Err(fail())
            }
        }
        BinOp::Mod => {
            if l.is_numeric() && r.is_numeric() && !is_float(l) && !is_float(r) {
                Ok(arith_numeric(l, r))
            } else {
                Err(fail())
            }
        }
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => {
            if l == T::Unknown {
                return Err(SqlError::undefined_function(format!(
                    "operator is not unique: unknown {} unknown",
                    op.symbol()
                )));
            }
            if l.is_numeric() && r.is_numeric() {
                return Ok(arith_numeric(l, r));
            }
            datetime_arith_type(op, l, r).ok_or_else(fail)
        }
        _ => Err(fail()),
    }
}

fn datetime_arith_type(op: BinOp, l: SqlType, r: SqlType) -> Option<SqlType> {
    use SqlType as T;
    Some(match (op, l, r) {
        (BinOp::Add, T::Date, t) | (BinOp::Add, t, T::Date) if t.is_integer() => T::Date,
        (BinOp::Sub, T::Date, t) if t.is_integer() => T::Date,
        (BinOp::Sub, T::Date, T::Date) => T::Int4,
        (BinOp::Add, T::Date, T::Interval) | (BinOp::Add, T::Interval, T::Date) => T::Timestamp,
        (BinOp::Sub, T::Date, T::Interval) => T::Timestamp,
        (BinOp::Add, T::Time, T::Interval)
        | (BinOp::Add, T::Interval, T::Time)
        | (BinOp::Sub, T::Time, T::Interval) => T::Time,
        (BinOp::Sub, T::Time, T::Time) => T::Interval,
        (BinOp::Add, T::Date, T::Time) | (BinOp::Add, T::Time, T::Date) => T::Timestamp,
        (BinOp::Add, t @ (T::Timestamp | T::TimestampTz), T::Interval)
        | (BinOp::Add, T::Interval, t @ (T::Timestamp | T::TimestampTz))
        | (BinOp::Sub, t @ (T::Timestamp | T::TimestampTz), T::Interval) => t,
        (BinOp::Sub, a, b) if is_datetime(a) && is_datetime(b) => T::Interval,
        (BinOp::Add | BinOp::Sub, T::Interval, T::Interval) => T::Interval,
        (BinOp::Mul, T::Interval, t) | (BinOp::Mul, t, T::Interval) if t.is_numeric() => {
            T::Interval
        }
        (BinOp::Div, T::Interval, t) if t.is_numeric() => T::Interval,
        _ => return None,
    })
}

fn int_range_error(ty: SqlType) -> SqlError {
    SqlError::out_of_range(match ty {
        SqlType::Int2 => "smallint out of range",
        SqlType::Int4 => "integer out of range",
        SqlType::Oid | SqlType::RegClass | SqlType::RegType => "OID out of range",
        _ => "bigint out of range",
    })
}

/// Checks an integer result against the bounds of its type.
pub fn check_int(v: i128, ty: SqlType) -> SqlResult<i64> {
    let (lo, hi) = match ty {
        SqlType::Int2 => (i128::from(i16::MIN), i128::from(i16::MAX)),
        SqlType::Int4 => (i128::from(i32::MIN), i128::from(i32::MAX)),
        SqlType::Oid | SqlType::RegClass | SqlType::RegType => (0, i128::from(u32::MAX)),
        _ => (i128::from(i64::MIN), i128::from(i64::MAX)),
    };
    if v < lo || v > hi {
        Err(int_range_error(ty))
    } else {
        Ok(v as i64)
    }
}

/// A value as f64 (ints, floats, numerics).
pub fn to_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Decimal(d) => Some(num::dec_to_f64(d)),
        _ => None,
    }
}

/// A value as a Decimal (ints, numerics; floats as `float8::numeric`).
pub fn to_decimal(v: &Value) -> SqlResult<Decimal> {
    match v {
        Value::Int(i) => Ok(Decimal::from(*i)),
        Value::Decimal(d) => Ok(d.clone()),
        Value::Float(f) => num::dec_from_f64(*f, 15),
        _ => Err(SqlError::internal(format!("not a number: {v:?}"))),
    }
}

fn float_result(v: f64, inputs_finite: bool, ty: SqlType) -> SqlResult<Value> {
    if v.is_infinite() && inputs_finite {
        return Err(SqlError::out_of_range("value out of range: overflow"));
    }
    if ty == SqlType::Float4 {
        let f = v as f32;
        if f.is_infinite() && !v.is_infinite() {
            return Err(SqlError::out_of_range("value out of range: overflow"));
        }
        if f == 0.0 && v != 0.0 {
            return Err(SqlError::out_of_range("value out of range: underflow"));
        }
        return Ok(Value::Float(f64::from(f)));
    }
    Ok(Value::Float(v))
}

fn float_arith(op: BinOp, a: f64, b: f64, ty: SqlType) -> SqlResult<Value> {
    let finite = a.is_finite() && b.is_finite();
    let r = match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => {
            let r = a * b;
            if r == 0.0 && a != 0.0 && b != 0.0 && finite {
                return Err(SqlError::out_of_range("value out of range: underflow"));
            }
            r
        }
        BinOp::Div => {
            if b == 0.0 && !a.is_nan() {
                return Err(SqlError::division_by_zero());
            }
            let r = a / b;
            if r == 0.0 && a != 0.0 && finite {
                return Err(SqlError::out_of_range("value out of range: underflow"));
            }
            r
        }
        BinOp::Pow => return float_pow(a, b),
        _ => return Err(SqlError::internal("float_arith")),
    };
    float_result(r, finite, ty)
}

fn float_pow(a: f64, b: f64) -> SqlResult<Value> {
    if a == 0.0 && b < 0.0 {
        return Err(SqlError::new(
            "2201F",
            "zero raised to a negative power is undefined",
        ));
    }
    if a < 0.0 && b.is_finite() && b.fract() != 0.0 {
        return Err(SqlError::new(
            "2201F",
            "a negative number raised to a non-integer power yields a complex result",
        ));
    }
    let r = a.powf(b);
    if r.is_infinite() && a.is_finite() && b.is_finite() {
        return Err(SqlError::out_of_range("value out of range: overflow"));
    }
    if r == 0.0 && a != 0.0 && a.is_finite() && b.is_finite() {
        return Err(SqlError::out_of_range("value out of range: underflow"));
    }
    Ok(Value::Float(r))
}

fn int_arith(op: BinOp, a: i64, b: i64, ty: SqlType) -> SqlResult<Value> {
    let (a, b) = (i128::from(a), i128::from(b));
    let r = match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => {
            if b == 0 {
                return Err(SqlError::division_by_zero());
            }
            a / b
        }
        BinOp::Mod => {
            if b == 0 {
                return Err(SqlError::division_by_zero());
            }
            a % b
        }
        BinOp::BitAnd => a & b,
        BinOp::BitOr => a | b,
        BinOp::BitXor => a ^ b,
        _ => return Err(SqlError::internal("int_arith")),
    };
    Ok(Value::Int(check_int(r, ty)?))
}

fn shift(op: BinOp, a: i64, b: i64, ty: SqlType) -> Value {
    let bits = match ty {
        SqlType::Int2 => 16,
        SqlType::Int4 => 32,
        _ => 64,
    };
    let amount = (b.rem_euclid(bits)) as u32;
    let v = match op {
        BinOp::ShiftLeft => a.wrapping_shl(amount),
        _ => a.wrapping_shr(amount),
    };
    Value::Int(match bits {
        16 => i64::from(v as i16),
        32 => i64::from(v as i32),
        _ => v,
    })
}

/// Numeric arithmetic including NaN and ±Infinity.
fn decimal_arith(op: BinOp, a: &Decimal, b: &Decimal) -> SqlResult<Decimal> {
    // Most values fit in an i128: no digit vectors to build.
    if matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul)
        && let (Some(x), Some(y)) = (num::Fixed::from_decimal(a), num::Fixed::from_decimal(b))
        && let Some(r) = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            _ => x.checked_mul(y),
        }
    {
        return r.to_decimal();
    }
    let (Some(x), Some(y)) = (Num::from_decimal(a), Num::from_decimal(b)) else {
        return decimal_special(op, a, b);
    };
    let r = match op {
        BinOp::Add => x.add(&y),
        BinOp::Sub => x.sub(&y),
        BinOp::Mul => {
            let m = x.mul(&y);
            if i64::from(m.scale) > num::MAX_DISPLAY_SCALE * 2 {
                m.round(num::MAX_DISPLAY_SCALE * 2)
            } else {
                m
            }
        }
        BinOp::Div => x.div(&y)?,
        BinOp::Mod => x.rem(&y)?,
        BinOp::Pow => return decimal_pow(&x, &y),
        _ => return Err(SqlError::internal("decimal_arith")),
    };
    r.to_decimal()
}

fn decimal_special(op: BinOp, a: &Decimal, b: &Decimal) -> SqlResult<Decimal> {
    if a.is_nan() || b.is_nan() {
        return Ok(Decimal::nan());
    }
    let (fa, fb) = (num::dec_to_f64(a), num::dec_to_f64(b));
    let r = match op {
        BinOp::Add => fa + fb,
        BinOp::Sub => fa - fb,
        BinOp::Mul => fa * fb,
        BinOp::Div | BinOp::Mod if b.is_zero() => return Err(SqlError::division_by_zero()),
        BinOp::Div => fa / fb,
        BinOp::Mod => {
            if a.is_infinite() {
                f64::NAN
            } else {
                return Ok(a.clone());
            }
        }
        BinOp::Pow => fa.powf(fb),
        _ => return Err(SqlError::internal("decimal_special")),
    };
    if r.is_nan() {
        Ok(Decimal::nan())
    } else if r.is_infinite() {
        Ok(Decimal::infinity(r < 0.0))
    } else {
        num::dec_from_f64(r, 15)
    }
}

fn decimal_pow(x: &Num, y: &Num) -> SqlResult<Decimal> {
    if x.is_zero() && y.neg && !y.is_zero() {
        return Err(SqlError::new(
            "2201F",
            "zero raised to a negative power is undefined",
        ));
    }
    if y.is_integral()
        && let Some(e) = y
            .to_i128_round()
            .filter(|e| e.abs() <= i128::from(i32::MAX))
    {
        return x.pow_int(e as i64)?.to_decimal();
    }
    if x.neg {
        return Err(SqlError::new(
            "2201F",
            "a negative number raised to a non-integer power yields a complex result",
        ));
    }
    let approx = x.to_f64().powf(y.to_f64());
    let scale = x.pow_scale(y, approx);
    x.pow_frac(y, scale)?.to_decimal()
}

/// Interval × factor (or ÷ when `div`), spilling fractional months into days and
/// fractional days into time with PostgreSQL's rounding (`interval_mul`/`interval_div`).
fn interval_scale(iv: Interval, f: f64, div: bool) -> SqlResult<Interval> {
    let op = |x: f64| if div { x / f } else { x * f };
    let tsround = |x: f64| (x * 1e6).round_ties_even() / 1e6;
    let months_d = op(f64::from(iv.months));
    let days_d = op(f64::from(iv.days));
    if !months_d.is_finite()
        || months_d.abs() > f64::from(i32::MAX)
        || days_d.abs() > f64::from(i32::MAX)
    {
        return Err(datetime::interval_out_of_range());
    }
    let months = months_d as i32;
    let mut days = days_d as i32;
    let month_rem_days = tsround((months_d - f64::from(months)) * 30.0);
    let mut sec_rem =
        tsround((days_d - f64::from(days) + month_rem_days - month_rem_days.trunc()) * 86_400.0);
    if sec_rem.abs() >= 86_400.0 {
        let extra = (sec_rem / 86_400.0) as i32;
        days += extra;
        sec_rem -= f64::from(extra) * 86_400.0;
    }
    days = days
        .checked_add(month_rem_days as i32)
        .ok_or_else(datetime::interval_out_of_range)?;
    let micros = (op(iv.micros as f64) + sec_rem * 1e6).round_ties_even();
    if !micros.is_finite() || micros.abs() > 9.2e18 {
        return Err(datetime::interval_out_of_range());
    }
    Ok(Interval {
        months,
        days,
        micros: micros as i64,
    })
}

fn interval_add(a: Interval, b: Interval, sub: bool) -> SqlResult<Interval> {
    let b = if sub { datetime::neg_interval(b)? } else { b };
    Ok(Interval {
        months: a
            .months
            .checked_add(b.months)
            .ok_or_else(datetime::interval_out_of_range)?,
        days: a
            .days
            .checked_add(b.days)
            .ok_or_else(datetime::interval_out_of_range)?,
        micros: a
            .micros
            .checked_add(b.micros)
            .ok_or_else(datetime::interval_out_of_range)?,
    })
}

/// Timestamp micros of a date/timestamp value.
fn as_micros(v: &Value) -> Option<i64> {
    match v {
        Value::Date(d) => Some(match *d {
            datetime::DATE_POS_INF => datetime::TS_POS_INF,
            datetime::DATE_NEG_INF => datetime::TS_NEG_INF,
            d => i64::from(d) * USECS_PER_DAY,
        }),
        Value::Timestamp(t) | Value::TimestampTz(t) => Some(*t),
        _ => None,
    }
}

fn datetime_arith(op: BinOp, l: &Value, r: &Value, res: SqlType) -> SqlResult<Value> {
    use Value as V;
    let date_range = || SqlError::new(codes::DATETIME_FIELD_OVERFLOW, "date out of range");
    let wrap_ts = |t: i64| match res {
        SqlType::TimestampTz => V::TimestampTz(t),
        _ => V::Timestamp(t),
    };
    Ok(match (op, l, r) {
        (BinOp::Add, V::Date(d), V::Int(n)) | (BinOp::Add, V::Int(n), V::Date(d)) => {
            V::Date(i32::try_from(i128::from(*d) + i128::from(*n)).map_err(|_| date_range())?)
        }
        (BinOp::Sub, V::Date(d), V::Int(n)) => {
            V::Date(i32::try_from(i128::from(*d) - i128::from(*n)).map_err(|_| date_range())?)
        }
        (BinOp::Sub, V::Date(a), V::Date(b)) => {
            V::Int(check_int(i128::from(*a) - i128::from(*b), SqlType::Int4)?)
        }
        // A time of day moved by an interval wraps around midnight; only
        // the interval's time part counts (PostgreSQL's time_pl_interval).
        (BinOp::Add, V::Time(t), V::Interval(iv)) | (BinOp::Add, V::Interval(iv), V::Time(t)) => {
            V::Time((t + iv.micros.rem_euclid(USECS_PER_DAY)).rem_euclid(USECS_PER_DAY))
        }
        (BinOp::Sub, V::Time(t), V::Interval(iv)) => {
            V::Time((t - iv.micros.rem_euclid(USECS_PER_DAY)).rem_euclid(USECS_PER_DAY))
        }
        (BinOp::Sub, V::Time(a), V::Time(b)) => V::Interval(crate::Interval {
            months: 0,
            days: 0,
            micros: a - b,
        }),
        (BinOp::Add, V::Date(_), V::Time(t)) | (BinOp::Add, V::Time(t), V::Date(_)) => {
            let day = as_micros(if matches!(l, V::Date(_)) { l } else { r }).unwrap_or(0);
            match day {
                datetime::TS_POS_INF | datetime::TS_NEG_INF => V::Timestamp(day),
                d => V::Timestamp(
                    d.checked_add(*t)
                        .ok_or_else(datetime::timestamp_out_of_range)?,
                ),
            }
        }
        (BinOp::Add, V::Interval(iv), t) | (BinOp::Add, t, V::Interval(iv))
            if as_micros(t).is_some() =>
        {
            wrap_ts(datetime::add_interval(as_micros(t).unwrap_or(0), *iv)?)
        }
        (BinOp::Sub, t, V::Interval(iv)) if as_micros(t).is_some() => wrap_ts(
            datetime::add_interval(as_micros(t).unwrap_or(0), datetime::neg_interval(*iv)?)?,
        ),
        (BinOp::Sub, a, b) if as_micros(a).is_some() && as_micros(b).is_some() => V::Interval(
            datetime::timestamp_diff(as_micros(a).unwrap_or(0), as_micros(b).unwrap_or(0))?,
        ),
        (BinOp::Add, V::Interval(a), V::Interval(b)) => V::Interval(interval_add(*a, *b, false)?),
        (BinOp::Sub, V::Interval(a), V::Interval(b)) => V::Interval(interval_add(*a, *b, true)?),
        (BinOp::Mul, V::Interval(iv), n) | (BinOp::Mul, n, V::Interval(iv)) => {
            V::Interval(interval_scale(*iv, to_f64(n).unwrap_or(f64::NAN), false)?)
        }
        (BinOp::Div, V::Interval(iv), n) => {
            let f = to_f64(n).unwrap_or(f64::NAN);
            if f == 0.0 {
                return Err(SqlError::division_by_zero());
            }
            V::Interval(interval_scale(*iv, f, true)?)
        }
        _ => {
            return Err(SqlError::internal(format!(
                "bad datetime operands {l:?} {} {r:?}",
                op.symbol()
            )));
        }
    })
}

/// The type an untyped operand takes next to `other`: the same type, except that
/// `timestamp ± 'literal'` reads the literal as an interval (the only such operator).
fn datetime_partner(op: BinOp, other: SqlType) -> SqlType {
    match (op, other) {
        (
            BinOp::Add | BinOp::Sub,
            SqlType::Timestamp | SqlType::TimestampTz | SqlType::Interval | SqlType::Time,
        ) => SqlType::Interval,
        _ => other,
    }
}

/// Converts an untyped literal (`Unknown` text) to the type of the other operand.
fn resolve_unknown(v: &Value, ty: SqlType, other: SqlType) -> SqlResult<Option<Value>> {
    if ty == SqlType::Unknown
        && !is_stringish(other)
        && let Value::Text(s) = v
    {
        return Value::from_text(s, other).map(Some);
    }
    Ok(None)
}

/// SQL comparison of two non-NULL values of comparable types (dates against
/// timestamps, numbers across int/float/numeric, CHAR(n) ignoring trailing blanks).
fn compare_typed(l: &Value, r: &Value, lt: SqlType, rt: SqlType) -> Ordering {
    if (matches!(lt, SqlType::Char(_)) || matches!(rt, SqlType::Char(_)))
        && let (Value::Text(a), Value::Text(b)) = (l, r)
    {
        return a.trim_end_matches(' ').cmp(b.trim_end_matches(' '));
    }
    // PostgreSQL compares a float with an integer or numeric by casting to float8.
    if (is_float(lt) || is_float(rt))
        && l.is_number()
        && r.is_number()
        && let (Some(a), Some(b)) = (to_f64(l), to_f64(r))
    {
        return crate::value::cmp_f64(a, b);
    }
    compare(l, r).unwrap_or(Ordering::Equal)
}

/// Evaluates `left op right` for operands of types `left_ty` and `right_ty`.
pub fn eval_binary(
    op: BinOp,
    left: &Value,
    right: &Value,
    left_ty: SqlType,
    right_ty: SqlType,
) -> SqlResult<Value> {
    match op {
        BinOp::And => {
            return Ok(match (as_bool(left)?, as_bool(right)?) {
                (Some(false), _) | (_, Some(false)) => Value::Bool(false),
                (Some(true), Some(true)) => Value::Bool(true),
                _ => Value::Null,
            });
        }
        BinOp::Or => {
            return Ok(match (as_bool(left)?, as_bool(right)?) {
                (Some(true), _) | (_, Some(true)) => Value::Bool(true),
                (Some(false), Some(false)) => Value::Bool(false),
                _ => Value::Null,
            });
        }
        _ => {}
    }
    // An untyped literal takes the other operand's type, except where the operator
    // itself fixes the operand types (`||`, LIKE, `->`).
    let typed_ops = !matches!(
        op,
        BinOp::Concat
            | BinOp::Like
            | BinOp::NotLike
            | BinOp::ILike
            | BinOp::NotILike
            | BinOp::JsonGet
            | BinOp::JsonGetText
    );
    let (lconv, rconv) = if typed_ops {
        let other = |t: SqlType| datetime_partner(op, t);
        (
            resolve_unknown(left, left_ty, other(right_ty))?,
            resolve_unknown(right, right_ty, other(left_ty))?,
        )
    } else {
        (None, None)
    };
    let (l, lt) = match &lconv {
        Some(v) => (v, datetime_partner(op, right_ty)),
        None => (left, left_ty),
    };
    let (r, rt) = match &rconv {
        Some(v) => (v, datetime_partner(op, left_ty)),
        None => (right, right_ty),
    };
    if matches!(op, BinOp::IsDistinctFrom | BinOp::IsNotDistinctFrom) {
        let same = match (l.is_null(), r.is_null()) {
            (true, true) => true,
            (false, false) => compare_typed(l, r, lt, rt) == Ordering::Equal,
            _ => false,
        };
        return Ok(Value::Bool(same == (op == BinOp::IsNotDistinctFrom)));
    }
    if l.is_null() || r.is_null() {
        return Ok(Value::Null);
    }
    if op.is_comparison() {
        let ord = compare_typed(l, r, lt, rt);
        return Ok(Value::Bool(match op {
            BinOp::Eq => ord == Ordering::Equal,
            BinOp::NotEq => ord != Ordering::Equal,
            BinOp::Lt => ord == Ordering::Less,
            BinOp::LtEq => ord != Ordering::Greater,
            BinOp::Gt => ord == Ordering::Greater,
            _ => ord != Ordering::Less,
        }));
    }
    match op {
        BinOp::Concat => return concat(l, r, lt, rt),
        BinOp::Like | BinOp::NotLike | BinOp::ILike | BinOp::NotILike => {
            // CHAR(n) matches with its padding, as PostgreSQL's bpcharlike
            let raw = |v: &Value, t: SqlType| match v {
                Value::Text(s) => s.clone(),
                _ => text_of(v, t),
            };
            let (s, p) = (raw(l, lt), raw(r, rt));
            let ci = matches!(op, BinOp::ILike | BinOp::NotILike);
            let m = like(&s, &p, ci)?;
            return Ok(Value::Bool(m == matches!(op, BinOp::Like | BinOp::ILike)));
        }
        BinOp::JsonGet | BinOp::JsonGetText => return json_get(op, l, r),
        _ => {}
    }
    let res = binary_type(op, lt, rt)?;
    match (l, r) {
        (Value::Int(a), Value::Int(b)) if res.is_integer() => match op {
            BinOp::ShiftLeft | BinOp::ShiftRight => Ok(shift(op, *a, *b, res)),
            _ => int_arith(op, *a, *b, res),
        },
        _ if matches!(res, SqlType::Float4 | SqlType::Float8) && l.is_number() && r.is_number() => {
            let (a, b) = (to_f64(l).unwrap_or(f64::NAN), to_f64(r).unwrap_or(f64::NAN));
            float_arith(op, a, b, res)
        }
        _ if matches!(res, SqlType::Decimal(_)) && l.is_number() && r.is_number() => {
            // Borrow decimal operands rather than cloning them.
            let (lo, ro);
            let a = match l {
                Value::Decimal(d) => d,
                other => {
                    lo = to_decimal(other)?;
                    &lo
                }
            };
            let b = match r {
                Value::Decimal(d) => d,
                other => {
                    ro = to_decimal(other)?;
                    &ro
                }
            };
            Ok(Value::Decimal(decimal_arith(op, a, b)?))
        }
        _ => datetime_arith(op, l, r, res),
    }
}

fn as_bool(v: &Value) -> SqlResult<Option<bool>> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Text(s) => Value::from_text(s, SqlType::Bool).map(|v| match v {
            Value::Bool(b) => Some(b),
            _ => None,
        }),
        other => Err(SqlError::datatype_mismatch(format!(
            "argument must be type boolean, not {other:?}"
        ))),
    }
}

/// Text of a value as `||` and the string functions see it (CHAR(n) without its
/// trailing blanks, as PostgreSQL's `bpchar::text` cast).
pub fn text_of(v: &Value, ty: SqlType) -> String {
    match (v, ty) {
        (Value::Text(s), SqlType::Char(_)) => s.trim_end_matches(' ').to_owned(),
        (Value::Text(s), _) => s.clone(),
        (Value::Bool(b), _) => if *b { "true" } else { "false" }.to_owned(),
        _ => v.to_text(ty),
    }
}

fn concat(l: &Value, r: &Value, lt: SqlType, rt: SqlType) -> SqlResult<Value> {
    match (l, r) {
        (Value::Bytes(a), Value::Bytes(b)) => {
            let mut v = a.clone();
            v.extend_from_slice(b);
            Ok(Value::Bytes(v))
        }
        (Value::Jsonb(a), Value::Jsonb(b)) if lt == SqlType::Jsonb && rt == SqlType::Jsonb => {
            Ok(Value::Jsonb(Box::new(json_concat(a, b))))
        }
        (Value::Jsonb(a), Value::Text(t)) if rt == SqlType::Unknown => Ok(Value::Jsonb(Box::new(
            json_concat(a, &crate::value::parse_json(t)?),
        ))),
        (Value::Text(t), Value::Jsonb(b)) if lt == SqlType::Unknown => Ok(Value::Jsonb(Box::new(
            json_concat(&crate::value::parse_json(t)?, b),
        ))),
        _ => {
            let mut s = text_of(l, lt);
            s.push_str(&text_of(r, rt));
            Ok(Value::Text(s))
        }
    }
}

fn json_concat(a: &serde_json::Value, b: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match (a, b) {
        (J::Object(x), J::Object(y)) => {
            let mut m = x.clone();
            for (k, v) in y {
                m.insert(k.clone(), v.clone());
            }
            J::Object(m)
        }
        (J::Array(x), J::Array(y)) => J::Array(x.iter().chain(y).cloned().collect()),
        (J::Array(x), y) => J::Array(x.iter().cloned().chain([y.clone()]).collect()),
        (x, J::Array(y)) => J::Array([x.clone()].into_iter().chain(y.iter().cloned()).collect()),
        (x, y) => J::Array(vec![x.clone(), y.clone()]),
    }
}

fn json_get(op: BinOp, l: &Value, r: &Value) -> SqlResult<Value> {
    use serde_json::Value as J;
    let Value::Jsonb(j) = l else {
        return Err(SqlError::internal("-> on non-jsonb"));
    };
    let found = match (j.as_ref(), r) {
        (J::Object(m), Value::Text(k)) => m.get(k),
        (J::Array(a), Value::Int(i)) => {
            let idx = if *i < 0 { a.len() as i64 + i } else { *i };
            usize::try_from(idx).ok().and_then(|i| a.get(i))
        }
        _ => None,
    };
    Ok(match found {
        None => Value::Null,
        Some(v) if op == BinOp::JsonGet => Value::Jsonb(Box::new(v.clone())),
        Some(v) => json_as_text(v),
    })
}

/// SQL `LIKE` (`%`, `_`, backslash escapes); `ci` lower-cases both sides (ILIKE).
pub fn like(s: &str, pattern: &str, ci: bool) -> SqlResult<bool> {
    let (s, p): (Vec<char>, Vec<char>) = if ci {
        (
            s.to_lowercase().chars().collect(),
            pattern.to_lowercase().chars().collect(),
        )
    } else {
        (s.chars().collect(), pattern.chars().collect())
    };
    // tokens: Some(c) literal, None '_' ; '%' as a separate marker
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Lit(char),
        One,
        Any,
    }
    let mut toks = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                let c = p.get(i + 1).copied().ok_or_else(|| {
                    SqlError::new("22025", "LIKE pattern must not end with escape character")
                })?;
                toks.push(Tok::Lit(c));
                i += 2;
                continue;
            }
            '%' => {
                if toks.last() != Some(&Tok::Any) {
                    toks.push(Tok::Any);
                }
            }
            '_' => toks.push(Tok::One),
            c => toks.push(Tok::Lit(c)),
        }
        i += 1;
    }
    // iterative matcher with backtracking to the last '%'
    let (mut si, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match toks.get(ti) {
            Some(Tok::Any) => {
                star = Some((ti, si));
                ti += 1;
            }
            Some(Tok::One) => {
                si += 1;
                ti += 1;
            }
            Some(Tok::Lit(c)) if *c == s[si] => {
                si += 1;
                ti += 1;
            }
            _ => match star {
                Some((st, ss)) => {
                    ti = st + 1;
                    si = ss + 1;
                    star = Some((st, ss + 1));
                }
                None => return Ok(false),
            },
        }
    }
    while toks.get(ti) == Some(&Tok::Any) {
        ti += 1;
    }
    Ok(ti == toks.len())
}

/// The result type of a unary operator.
pub fn unary_type(op: UnOp, ty: SqlType) -> SqlResult<SqlType> {
    let fail =
        || SqlError::undefined_function(format!("operator does not exist: {} {ty}", op.symbol()));
    match op {
        UnOp::Not => match ty {
            SqlType::Bool | SqlType::Unknown => Ok(SqlType::Bool),
            _ => Err(SqlError::datatype_mismatch(format!(
                "argument of NOT must be type boolean, not type {ty}"
            ))),
        },
        UnOp::Neg | UnOp::Plus => {
            if ty.is_numeric() || ty == SqlType::Interval {
                Ok(if let SqlType::Decimal(_) = ty {
                    SqlType::Decimal(None)
                } else {
                    ty
                })
            } else if ty == SqlType::Unknown {
                Err(SqlError::undefined_function(format!(
                    "operator is not unique: {} unknown",
                    op.symbol()
                )))
            } else {
                Err(fail())
            }
        }
        UnOp::BitNot => {
            if ty.is_integer() {
                Ok(ty)
            } else {
                Err(fail())
            }
        }
    }
}

/// Evaluates a unary operator (`-INT_MIN` overflows).
pub fn eval_unary(op: UnOp, v: &Value, ty: SqlType) -> SqlResult<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    match (op, v) {
        (UnOp::Not, _) => Ok(match as_bool(v)? {
            Some(b) => Value::Bool(!b),
            None => Value::Null,
        }),
        (UnOp::Plus, _) => Ok(v.clone()),
        (UnOp::Neg, Value::Int(i)) => Ok(Value::Int(check_int(-i128::from(*i), ty)?)),
        (UnOp::Neg, Value::Float(f)) => Ok(Value::Float(-f)),
        (UnOp::Neg, Value::Decimal(d)) => Ok(Value::Decimal(match Num::from_decimal(d) {
            Some(n) => n.negate().to_decimal()?,
            None if d.is_nan() => d.clone(),
            None => Decimal::infinity(!d.is_negative()),
        })),
        (UnOp::Neg, Value::Interval(iv)) => Ok(Value::Interval(datetime::neg_interval(*iv)?)),
        (UnOp::BitNot, Value::Int(i)) => Ok(Value::Int(!i)),
        _ => Err(SqlError::undefined_function(format!(
            "operator does not exist: {} {ty}",
            op.symbol()
        ))),
    }
}

/// SQL comparison of two values: `None` when either is NULL. Numbers compare across
/// int/float/numeric, dates against timestamps.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    if a.is_null() || b.is_null() {
        return None;
    }
    match (a, b) {
        (Value::Date(_), Value::Timestamp(_) | Value::TimestampTz(_))
        | (Value::Timestamp(_) | Value::TimestampTz(_), Value::Date(_))
        | (Value::Timestamp(_), Value::TimestampTz(_))
        | (Value::TimestampTz(_), Value::Timestamp(_)) => Some(as_micros(a).cmp(&as_micros(b))),
        _ => Some(a.cmp(b)),
    }
}

/// Whether an explicit cast `from::to` exists (PostgreSQL's cast catalog, restricted
/// to Tardigrade's types; every type casts to and from the string types).
pub fn can_cast(from: SqlType, to: SqlType) -> bool {
    use SqlType as T;
    if from == T::Unknown || is_stringish(from) || is_stringish(to) {
        return true;
    }
    if let (T::Array(a), T::Array(b)) = (from, to) {
        return can_cast(*a, *b);
    }
    if std::mem::discriminant(&from) == std::mem::discriminant(&to) {
        return true;
    }
    match (from, to) {
        (f, t) if f.is_numeric() && t.is_numeric() => true,
        // boolean -> int8 too, since INT is 8 bytes here (`true::int`);
        // int8 -> boolean stays unsupported, as in PostgreSQL.
        (T::Int4 | T::Int2, T::Bool) | (T::Bool, T::Int8 | T::Int4 | T::Int2) => true,
        (f, t) if is_datetime(f) && is_datetime(t) => true,
        (T::Timestamp | T::TimestampTz | T::Interval, T::Time) | (T::Time, T::Interval) => true,
        (T::Int2Vector, T::Array(_)) | (T::Array(_), T::Int2Vector) => true,
        (T::Jsonb, t) => t.is_numeric() || t == T::Bool,
        _ => false,
    }
}

fn cannot_cast(from: SqlType, to: SqlType) -> SqlError {
    SqlError::new(
        codes::CANNOT_COERCE,
        format!("cannot cast type {from} to {to}"),
    )
}

/// Truncates (explicit cast) or pads a string to VARCHAR(n)/CHAR(n).
fn cast_string(s: String, to: SqlType) -> String {
    match to {
        SqlType::Varchar(Some(n)) | SqlType::Char(n) => {
            let n = n as usize;
            let mut out = match s.char_indices().nth(n) {
                Some((i, _)) => s[..i].to_owned(),
                None => s,
            };
            if let SqlType::Char(_) = to {
                let len = out.chars().count();
                out.extend(std::iter::repeat_n(' ', n - len.min(n)));
            }
            out
        }
        _ => s,
    }
}

/// Rounds a float half to even into an integer type (PostgreSQL's `float8::int4`).
fn float_to_int(f: f64, to: SqlType) -> SqlResult<i64> {
    let r = f.round_ties_even();
    if !r.is_finite() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r) {
        return Err(int_range_error(to));
    }
    check_int(r as i128, to)
}

fn decimal_to_int(d: &Decimal, to: SqlType) -> SqlResult<i64> {
    let name = match to {
        SqlType::Int2 => "smallint",
        SqlType::Int4 => "integer",
        _ => "bigint",
    };
    if d.is_nan() {
        return Err(SqlError::unsupported(format!(
            "cannot convert NaN to {name}"
        )));
    }
    if d.is_infinite() {
        return Err(SqlError::unsupported(format!(
            "cannot convert infinity to {name}"
        )));
    }
    let n = Num::from_decimal(d).ok_or_else(|| int_range_error(to))?;
    if n.int_digits() > 20 {
        return Err(int_range_error(to));
    }
    let v = n.to_i128_round().ok_or_else(|| int_range_error(to))?;
    check_int(v, to)
}

fn with_typmod(d: Decimal, to: SqlType) -> SqlResult<Decimal> {
    match to {
        SqlType::Decimal(Some((p, s))) => num::apply_typmod(&d, p, s),
        _ => Ok(d),
    }
}

fn json_cast_error(j: &serde_json::Value, to: SqlType) -> SqlError {
    use serde_json::Value as J;
    let kind = match j {
        J::Null => "null",
        J::Bool(_) => "boolean",
        J::Number(_) => "numeric",
        J::String(_) => "string",
        J::Array(_) => "array",
        J::Object(_) => "object",
    };
    SqlError::new(
        codes::INVALID_PARAMETER_VALUE,
        format!("cannot cast jsonb {kind} to type {to}"),
    )
}

/// Explicit cast `v::to` of a value of type `from`, as PostgreSQL does it: string
/// types through text I/O, floats to ints rounding half to even, numerics to ints
/// half away from zero, `(p,s)` rounding with 22003 overflow, VARCHAR(n) truncation.
pub fn cast(v: &Value, from: SqlType, to: SqlType) -> SqlResult<Value> {
    use SqlType as T;
    if v.is_null() {
        return Ok(Value::Null);
    }
    if is_stringish(to) {
        if to == T::Unknown {
            return Ok(v.clone());
        }
        let s = match v {
            Value::Text(s) if matches!(from, T::Char(_)) => s.trim_end_matches(' ').to_owned(),
            Value::Text(s) => s.clone(),
            Value::Bool(b) => if *b { "true" } else { "false" }.to_owned(),
            _ => v.to_text(from),
        };
        return Ok(Value::Text(cast_string(s, to)));
    }
    if let Value::Text(s) = v {
        let s = if matches!(from, T::Char(_)) {
            s.trim_end_matches(' ')
        } else {
            s.as_str()
        };
        return Value::from_text(s, to);
    }
    Ok(match (v, to) {
        // int2/int4 and oid convert bit for bit, as in PostgreSQL: -1::oid is
        // 4294967295 and back
        (Value::Int(i), T::Oid | T::RegClass | T::RegType)
            if matches!(from, T::Int2 | T::Int4) && *i < 0 =>
        {
            Value::Int(check_int(i128::from(*i) + (1 << 32), to)?)
        }
        (Value::Int(i), T::Int4)
            if matches!(from, T::Oid | T::RegClass | T::RegType) && *i > i64::from(i32::MAX) =>
        {
            Value::Int(check_int(i128::from(*i) - (1 << 32), to)?)
        }
        (Value::Int(i), T::Int2 | T::Int4 | T::Int8 | T::Oid | T::RegClass | T::RegType) => {
            Value::Int(check_int(i128::from(*i), to)?)
        }
        (Value::Int(i), T::Float8) => Value::Float(*i as f64),
        (Value::Int(i), T::Float4) => Value::Float(f64::from(*i as f32)),
        (Value::Int(i), T::Decimal(_)) => Value::Decimal(with_typmod(Decimal::from(*i), to)?),
        (Value::Int(i), T::Bool) => Value::Bool(*i != 0),
        (Value::Bool(b), T::Int2 | T::Int4 | T::Int8) => Value::Int(i64::from(*b)),
        (Value::Bool(b), T::Bool) => Value::Bool(*b),
        (Value::Float(f), T::Int2 | T::Int4 | T::Int8) => Value::Int(float_to_int(*f, to)?),
        (Value::Float(f), T::Float8) => Value::Float(*f),
        (Value::Float(f), T::Float4) => float_result(*f, f.is_finite(), T::Float4)?,
        (Value::Float(f), T::Decimal(_)) => {
            let digits = if from == T::Float4 { 6 } else { 15 };
            Value::Decimal(with_typmod(num::dec_from_f64(*f, digits)?, to)?)
        }
        (Value::Decimal(d), T::Int2 | T::Int4 | T::Int8) => Value::Int(decimal_to_int(d, to)?),
        (Value::Decimal(d), T::Float8) => Value::Float(num::dec_to_f64(d)),
        (Value::Decimal(d), T::Float4) => {
            let f = num::dec_to_f64(d);
            float_result(f, f.is_finite(), T::Float4)?
        }
        (Value::Decimal(d), T::Decimal(_)) => Value::Decimal(with_typmod(d.clone(), to)?),
        (Value::Date(d), T::Date) => Value::Date(*d),
        (Value::Date(_), T::Timestamp) => Value::Timestamp(as_micros(v).unwrap_or(0)),
        (Value::Date(_), T::TimestampTz) => Value::TimestampTz(as_micros(v).unwrap_or(0)),
        (Value::Timestamp(t) | Value::TimestampTz(t), T::Date) => Value::Date(match *t {
            datetime::TS_POS_INF => datetime::DATE_POS_INF,
            datetime::TS_NEG_INF => datetime::DATE_NEG_INF,
            t => i32::try_from(t.div_euclid(USECS_PER_DAY))
                .map_err(|_| SqlError::new(codes::DATETIME_FIELD_OVERFLOW, "date out of range"))?,
        }),
        (Value::Time(t), T::Time) => Value::Time(*t),
        // The time of day (of a TIMESTAMPTZ in UTC, the only session time
        // zone), or of an interval's time part.
        (Value::Timestamp(t) | Value::TimestampTz(t), T::Time) => match *t {
            datetime::TS_POS_INF | datetime::TS_NEG_INF => return Err(cannot_cast(from, to)),
            t => Value::Time(t.rem_euclid(USECS_PER_DAY)),
        },
        (Value::Interval(iv), T::Time) => Value::Time(iv.micros.rem_euclid(USECS_PER_DAY)),
        (Value::Time(t), T::Interval) => Value::Interval(crate::Interval {
            months: 0,
            days: 0,
            micros: *t,
        }),
        (Value::Timestamp(t) | Value::TimestampTz(t), T::Timestamp) => Value::Timestamp(*t),
        (Value::Timestamp(t) | Value::TimestampTz(t), T::TimestampTz) => Value::TimestampTz(*t),
        (Value::Interval(iv), T::Interval) => Value::Interval(*iv),
        (Value::Bytes(b), T::Bytes) if from == T::Bytes => Value::Bytes(b.clone()),
        (Value::Bytes(b), T::Inet) if from == T::Inet => Value::Bytes(b.clone()),
        (Value::Uuid(u), T::Uuid) => Value::Uuid(*u),
        (Value::Jsonb(j), T::Jsonb) => Value::Jsonb(j.clone()),
        (Value::Array(a), T::Array(e)) => {
            crate::array::cast_elements(a, from.element().unwrap_or(T::Unknown), *e)?
        }
        (Value::Array(a), T::Int2Vector) => {
            crate::array::cast_elements(a, from.element().unwrap_or(T::Unknown), T::Int2)?
        }
        (Value::Jsonb(j), T::Bool) => match j.as_ref() {
            serde_json::Value::Bool(b) => Value::Bool(*b),
            other => return Err(json_cast_error(other, to)),
        },
        (Value::Jsonb(j), t) if t.is_numeric() => match j.as_ref() {
            serde_json::Value::Number(n) => {
                let d = Value::Decimal(
                    n.to_string()
                        .parse::<Decimal>()
                        .map_err(|_| json_cast_error(j, to))?,
                );
                return cast(&d, T::Decimal(None), to);
            }
            other => return Err(json_cast_error(other, to)),
        },
        _ => return Err(cannot_cast(from, to)),
    })
}

fn category(t: SqlType) -> u8 {
    match t {
        SqlType::Unknown => 0,
        SqlType::Bool => 1,
        t if t.is_numeric() => 2,
        t if t.is_string() => 3,
        SqlType::Bytes => 4,
        t if is_datetime(t) => 5,
        SqlType::Interval => 6,
        SqlType::Uuid => 7,
        SqlType::Array(_) | SqlType::Int2Vector => 9,
        SqlType::Time => 10,
        SqlType::Inet => 11,
        _ => 8,
    }
}

/// The common type of UNION/CASE/COALESCE/VALUES branches (PostgreSQL's
/// `select_common_type`); errors say `UNION types … cannot be matched`.
pub fn common_type(types: &[SqlType]) -> SqlResult<SqlType> {
    common_type_for("UNION", types)
}

/// [`common_type`] with the construct named in the error (`CASE`, `COALESCE`, …).
pub fn common_type_for(context: &str, types: &[SqlType]) -> SqlResult<SqlType> {
    use SqlType as T;
    let known: Vec<SqlType> = types.iter().copied().filter(|t| *t != T::Unknown).collect();
    let Some(&first) = known.first() else {
        return Ok(T::Text);
    };
    let mut acc = first;
    for &t in &known[1..] {
        if category(t) != category(acc) {
            return Err(SqlError::datatype_mismatch(format!(
                "{context} types {acc} and {t} cannot be matched"
            )));
        }
        acc = match (acc, t) {
            (a, b) if a == b => a,
            (T::Decimal(_), T::Decimal(_)) => T::Decimal(None),
            (a, b) if a.is_numeric() => {
                let (ra, rb) = (num_rank(a).unwrap_or(0), num_rank(b).unwrap_or(0));
                let w = if ra >= rb { a } else { b };
                if let T::Decimal(_) = w {
                    T::Decimal(None)
                } else {
                    w
                }
            }
            (T::Varchar(_), T::Varchar(_)) => T::Varchar(None),
            (a, _) if a.is_string() => T::Text,
            (T::TimestampTz, _) | (_, T::TimestampTz) => T::TimestampTz,
            (T::Timestamp, _) | (_, T::Timestamp) => T::Timestamp,
            (T::Array(a), T::Array(b)) => T::array_of(common_type_for(context, &[*a, *b])?),
            (a, b) => {
                return Err(SqlError::datatype_mismatch(format!(
                    "{context} types {a} and {b} cannot be matched"
                )));
            }
        };
    }
    // An untyped literal has no length limit, so neither has the result
    // (PostgreSQL's `select_common_typmod`): `coalesce(varchar30, 'a
    // longer text')` is an unbounded varchar, not an error.
    if known.len() < types.len() {
        acc = match acc {
            T::Varchar(_) => T::Varchar(None),
            T::Decimal(_) => T::Decimal(None),
            t => t,
        };
    }
    Ok(acc)
}
pub use crate::functions::{call_function, function_type};

/// A JSON value as `->>` gives it: a string unquoted, null as NULL, anything
/// else in its JSON text.
pub fn json_as_text(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::String(s) => Value::Text(s.clone()),
        v => {
            let mut s = String::new();
            crate::value::write_json(&mut s, v);
            Value::Text(s)
        }
    }
}
