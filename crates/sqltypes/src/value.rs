//! [`Value`]: one SQL value at run time.
//!
//! Values of one [`SqlType`] family compare as PostgreSQL compares them; `NULL`
//! handling (three-valued logic) belongs to the operators in [`crate::ops`], not to
//! `Ord`, which is total (NULL first) so values can be sorted and hashed.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

use tardigrade_encoding::decimal::{Decimal, ParseDecimalError};

use crate::datetime;
use crate::error::codes;
use crate::num::{self, Num};
use crate::{SqlError, SqlResult, SqlType};

/// An interval as PostgreSQL keeps it: months, days and microseconds separately.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

/// One SQL value.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    /// SMALLINT, INTEGER and BIGINT (the column type bounds the range).
    Int(i64),
    /// REAL and DOUBLE PRECISION.
    Float(f64),
    Decimal(Decimal),
    /// TEXT, VARCHAR, CHAR.
    Text(String),
    Bytes(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// TIME: microseconds since midnight (`0..=86_400_000_000`, 24:00:00
    /// included, as in PostgreSQL).
    Time(i64),
    /// Microseconds since 1970-01-01 00:00:00 (no time zone).
    Timestamp(i64),
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    TimestampTz(i64),
    Interval(Interval),
    Uuid(u128),
    /// JSONB in its canonical form (object keys sorted, as serde_json's map keeps them).
    Jsonb(Box<serde_json::Value>),
    /// A one-dimensional array (lower bound 1); elements may be NULL. Its element
    /// type is the `SqlType::Array` the value is typed with.
    Array(Vec<Value>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// The class of a value, ranking variants of different families in the total order.
fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) | Value::Float(_) | Value::Decimal(_) => 2,
        Value::Text(_) => 3,
        Value::Bytes(_) => 4,
        Value::Date(_) => 5,
        Value::Timestamp(_) => 6,
        Value::TimestampTz(_) => 7,
        Value::Interval(_) => 8,
        Value::Uuid(_) => 9,
        Value::Jsonb(_) => 10,
        Value::Array(_) => 11,
        Value::Time(_) => 12,
    }
}

/// Float order as PostgreSQL's: `-0 == 0`, NaN equal to itself and above everything.
pub fn cmp_f64(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Exact comparison of an integer with a float.
fn cmp_int_f64(i: i64, f: f64) -> Ordering {
    if f.is_nan() || f >= 9.223_372_036_854_776e18 {
        return Ordering::Less;
    }
    if f < -9.223_372_036_854_776e18 {
        return Ordering::Greater;
    }
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal => cmp_f64(0.0, f - t),
        o => o,
    }
}

/// Exact decimal expansion of a finite float.
fn f64_to_num_exact(f: f64) -> Num {
    let bits = f.to_bits();
    let neg = bits >> 63 == 1;
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1u64 << 52) - 1);
    let (m, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    let mut n = Num::from_i128(i128::from(m));
    if e >= 0 {
        let two = Num::from_i128(2);
        for _ in 0..e {
            n = n.mul(&two);
        }
    } else {
        // m / 2^k = m * 5^k / 10^k
        let five = Num::from_i128(5);
        for _ in 0..(-e) {
            n = n.mul(&five);
        }
        n.scale = (-e) as u32;
    }
    if neg { n.negate() } else { n }
}

fn cmp_dec_f64(d: &Decimal, f: f64) -> Ordering {
    if f.is_nan() || d.is_nan() {
        return match (d.is_nan(), f.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            _ => Ordering::Less,
        };
    }
    let df = num::dec_to_f64(d);
    if df != f || d.is_infinite() || f.is_infinite() {
        return cmp_f64(df, f);
    }
    match Num::from_decimal(d) {
        Some(n) => n.cmp_num(&f64_to_num_exact(f)),
        None => cmp_f64(df, f),
    }
}

/// Order of JSON values as PostgreSQL's jsonb: null < string < number < boolean <
/// array < object; containers by size first.
fn cmp_json(a: &serde_json::Value, b: &serde_json::Value) -> Ordering {
    use serde_json::Value as J;
    fn jr(v: &J) -> u8 {
        match v {
            J::Null => 0,
            J::String(_) => 1,
            J::Number(_) => 2,
            J::Bool(_) => 3,
            J::Array(_) => 4,
            J::Object(_) => 5,
        }
    }
    match (a, b) {
        (J::String(x), J::String(y)) => x.cmp(y),
        (J::Number(x), J::Number(y)) => cmp_f64(
            x.as_f64().unwrap_or(f64::NAN),
            y.as_f64().unwrap_or(f64::NAN),
        ),
        (J::Bool(x), J::Bool(y)) => x.cmp(y),
        (J::Array(x), J::Array(y)) => x.len().cmp(&y.len()).then_with(|| {
            x.iter()
                .zip(y)
                .map(|(p, q)| cmp_json(p, q))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        }),
        (J::Object(x), J::Object(y)) => x.len().cmp(&y.len()).then_with(|| {
            let xs = sorted_entries(x);
            let ys = sorted_entries(y);
            xs.iter()
                .zip(&ys)
                .map(|((k1, v1), (k2, v2))| {
                    (k1.len(), k1.as_bytes())
                        .cmp(&(k2.len(), k2.as_bytes()))
                        .then_with(|| cmp_json(v1, v2))
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        }),
        _ => jr(a).cmp(&jr(b)),
    }
}

/// Object entries in jsonb's storage order: shorter keys first, then by bytes.
fn sorted_entries(
    m: &serde_json::Map<String, serde_json::Value>,
) -> Vec<(&String, &serde_json::Value)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| (a.0.len(), a.0.as_bytes()).cmp(&(b.0.len(), b.0.as_bytes())));
    v
}

fn hash_json<H: Hasher>(v: &serde_json::Value, state: &mut H) {
    use serde_json::Value as J;
    match v {
        J::Null => 0u8.hash(state),
        J::String(s) => {
            1u8.hash(state);
            s.hash(state);
        }
        J::Number(n) => {
            2u8.hash(state);
            let f = n.as_f64().unwrap_or(f64::NAN);
            (if f == 0.0 { 0.0f64 } else { f }).to_bits().hash(state);
        }
        J::Bool(b) => {
            3u8.hash(state);
            b.hash(state);
        }
        J::Array(a) => {
            4u8.hash(state);
            a.len().hash(state);
            a.iter().for_each(|x| hash_json(x, state));
        }
        J::Object(o) => {
            5u8.hash(state);
            o.len().hash(state);
            for (k, x) in o {
                k.hash(state);
                hash_json(x, state);
            }
        }
    }
}

/// Hash key of a numeric value, equal for numerically equal Int/Float/Decimal.
#[derive(Hash)]
enum NumKey {
    Int(i64),
    Bits(u64),
    NaN,
}

fn float_key(f: f64) -> NumKey {
    if f.is_nan() {
        NumKey::NaN
    } else if f == f.trunc() && f.abs() < 9.2e18 {
        NumKey::Int(f as i64)
    } else {
        NumKey::Bits(f.to_bits())
    }
}

fn decimal_key(d: &Decimal) -> NumKey {
    if d.is_nan() {
        return NumKey::NaN;
    }
    if let Some(n) = Num::from_decimal(d)
        && n.is_integral()
        && n.int_digits() <= 18
        && let Some(i) = n.to_i128_round()
    {
        return NumKey::Int(i as i64);
    }
    float_key(num::dec_to_f64(d))
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    /// Total order: NULL first, numbers numerically across Int/Float/Decimal, text by
    /// bytes, intervals by their 30-day-month span; different families by family.
    fn cmp(&self, other: &Self) -> Ordering {
        use Value::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Float(a), Float(b)) => cmp_f64(*a, *b),
            (Decimal(a), Decimal(b)) => a.cmp(b),
            (Int(a), Float(b)) => cmp_int_f64(*a, *b),
            (Float(a), Int(b)) => cmp_int_f64(*b, *a).reverse(),
            (Int(a), Decimal(b)) => tardigrade_encoding::decimal::Decimal::from(*a).cmp(b),
            (Decimal(a), Int(b)) => a.cmp(&tardigrade_encoding::decimal::Decimal::from(*b)),
            (Decimal(a), Float(b)) => cmp_dec_f64(a, *b),
            (Float(a), Decimal(b)) => cmp_dec_f64(b, *a).reverse(),
            (Text(a), Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Time(a), Time(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) | (TimestampTz(a), TimestampTz(b)) => a.cmp(b),
            (Interval(a), Interval(b)) => {
                datetime::interval_span(*a).cmp(&datetime::interval_span(*b))
            }
            (Uuid(a), Uuid(b)) => a.cmp(b),
            (Jsonb(a), Jsonb(b)) => cmp_json(a, b),
            (Array(a), Array(b)) => crate::array::cmp_elements(a, b),
            _ => rank(self).cmp(&rank(other)),
        }
    }
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        rank(self).hash(state);
        match self {
            Value::Null => {}
            Value::Bool(b) => b.hash(state),
            Value::Int(i) => NumKey::Int(*i).hash(state),
            Value::Float(f) => float_key(*f).hash(state),
            Value::Decimal(d) => decimal_key(d).hash(state),
            Value::Text(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::Date(d) => d.hash(state),
            Value::Timestamp(t) | Value::TimestampTz(t) | Value::Time(t) => t.hash(state),
            Value::Interval(iv) => datetime::interval_span(*iv).hash(state),
            Value::Uuid(u) => u.hash(state),
            Value::Jsonb(j) => hash_json(j, state),
            Value::Array(a) => {
                a.len().hash(state);
                a.iter().for_each(|x| x.hash(state));
            }
        }
    }
}

/// PostgreSQL's shortest-round-trip float output (`extra_float_digits = 1`, the PG 12+
/// default): fixed notation for decimal exponents in `-4..15` (`-4..6` for REAL),
/// otherwise `1.5e+20`; `NaN`, `Infinity`, `-Infinity`, `-0`.
pub fn write_float(out: &mut String, v: f64, real: bool) {
    if v.is_nan() {
        return out.push_str("NaN");
    }
    if v.is_infinite() {
        return out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    }
    if v == 0.0 {
        return out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
    }
    let sci = if real {
        format!("{:e}", v as f32)
    } else {
        format!("{v:e}")
    };
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    if neg {
        out.push('-');
    }
    let hi = if real { 6 } else { 15 };
    if (-4..hi).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(mant);
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exp.abs());
    }
}

/// JSON text as PostgreSQL's jsonb output prints it: `{"a": 1, "b": [1, 2]}`.
pub fn write_json(out: &mut String, v: &serde_json::Value) {
    use serde_json::Value as J;
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => {
            let _ = write!(out, "{n}");
        }
        J::String(s) => write_json_string(out, s),
        J::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(out, x);
            }
            out.push(']');
        }
        J::Object(o) => {
            out.push('{');
            for (i, (k, x)) in sorted_entries(o).into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json_string(out, k);
                out.push_str(": ");
                write_json(out, x);
            }
            out.push('}');
        }
    }
}

fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_uuid(out: &mut String, u: u128) {
    let h = format!("{u:032x}");
    out.push_str(&h[0..8]);
    out.push('-');
    out.push_str(&h[8..12]);
    out.push('-');
    out.push_str(&h[12..16]);
    out.push('-');
    out.push_str(&h[16..20]);
    out.push('-');
    out.push_str(&h[20..32]);
}

/// `regtype` input: a type's name (`int4`, `character varying`,
/// `pg_catalog.text`, `int[]`) or digits (that OID, unchecked); 42704 for
/// a type that does not exist.
fn regtype_in(s: &str) -> SqlResult<i64> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return parse_int(t, SqlType::Oid);
    }
    crate::catalog_fns::type_oid_by_name(t).ok_or_else(|| {
        SqlError::new(
            crate::error::codes::UNDEFINED_OBJECT,
            format!("type \"{t}\" does not exist"),
        )
    })
}

/// `regtype` output: the type's name as `format_type` prints it, the
/// number for an OID that names no type here.
fn regtype_out(oid: i64) -> String {
    match oid {
        19 => "name".into(),
        114 => "json".into(),
        705 => "unknown".into(),
        _ => match u32::try_from(oid).ok().and_then(SqlType::from_oid) {
            Some(_) => crate::catalog_fns::format_type(oid, -1),
            None => oid.to_string(),
        },
    }
}

/// Type name used in integer input errors.
fn int_bounds(ty: SqlType) -> (i64, i64, &'static str) {
    match ty {
        SqlType::Int2 => (i64::from(i16::MIN), i64::from(i16::MAX), "smallint"),
        SqlType::Int4 => (i64::from(i32::MIN), i64::from(i32::MAX), "integer"),
        // oidin reads negative numbers down to -2^31 as their unsigned
        // 32-bit pattern
        SqlType::Oid => (i64::from(i32::MIN), i64::from(u32::MAX), "oid"),
        _ => (i64::MIN, i64::MAX, "bigint"),
    }
}

/// Parses an integer as PostgreSQL's int2in/int4in/int8in.
pub fn parse_int(s: &str, ty: SqlType) -> SqlResult<i64> {
    let (lo, hi, name) = int_bounds(ty);
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SqlError::invalid_text(name, s));
    }
    let range = || SqlError::out_of_range(format!("value \"{s}\" is out of range for type {name}"));
    let mut v: i128 = 0;
    for b in digits.bytes() {
        v = v * 10 + i128::from(b - b'0');
        if v > i128::from(u64::MAX) {
            return Err(range());
        }
    }
    let v = if neg { -v } else { v };
    if v < i128::from(lo) || v > i128::from(hi) {
        return Err(range());
    }
    if ty == SqlType::Oid && v < 0 {
        return Ok((v + (1 << 32)) as i64);
    }
    Ok(v as i64)
}

/// Parses a float as PostgreSQL's float8in/float4in.
pub fn parse_float(s: &str, real: bool) -> SqlResult<f64> {
    let name = if real { "real" } else { "double precision" };
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let lower = t.to_ascii_lowercase();
    let special = match lower.as_str() {
        "nan" | "+nan" | "-nan" => Some(f64::NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    };
    if let Some(v) = special {
        return Ok(v);
    }
    let ok_chars = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    let v: f64 = if ok_chars { t.parse().ok() } else { None }
        .ok_or_else(|| SqlError::invalid_text(name, s))?;
    let range = || SqlError::out_of_range(format!("\"{s}\" is out of range for type {name}"));
    if real {
        let f = v as f32;
        if f.is_infinite() || (f == 0.0 && v != 0.0) {
            return Err(range());
        }
        return Ok(f64::from(f));
    }
    if v.is_infinite()
        || (v == 0.0 && t.bytes().any(|b| (b'1'..=b'9').contains(&b)) && !mantissa_zero(t))
    {
        return Err(range());
    }
    Ok(v)
}

fn mantissa_zero(t: &str) -> bool {
    let m = t.split(['e', 'E']).next().unwrap_or("");
    !m.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

/// Parses NUMERIC text and applies the `(precision, scale)` of `ty`.
pub fn parse_decimal(s: &str, ty: SqlType) -> SqlResult<Decimal> {
    let d: Decimal = s.parse().map_err(|e| match e {
        ParseDecimalError::Syntax(_) => SqlError::invalid_text("numeric", s),
        ParseDecimalError::Overflow => num::overflow(),
    })?;
    match ty {
        SqlType::Decimal(Some((p, sc))) => num::apply_typmod(&d, p, sc),
        _ => Ok(d),
    }
}

fn parse_bool(s: &str) -> SqlResult<bool> {
    let t = s.trim().to_ascii_lowercase();
    let prefix = |word: &str, min: usize| t.len() >= min && word.starts_with(t.as_str());
    if prefix("true", 1) || prefix("yes", 1) || prefix("on", 2) || t == "1" {
        Ok(true)
    } else if prefix("false", 1) || prefix("no", 1) || prefix("off", 2) || t == "0" {
        Ok(false)
    } else {
        Err(SqlError::invalid_text("boolean", s))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn parse_bytea(s: &str) -> SqlResult<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("\\x").or_else(|| s.strip_prefix("\\X")) {
        let mut out = Vec::with_capacity(hex.len() / 2);
        let b = hex.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_whitespace() {
                i += 1;
                continue;
            }
            let hi = hex_val(b[i]).ok_or_else(|| bad_hex_digit(&hex[i..]))?;
            let lo = match b.get(i + 1) {
                None => {
                    return Err(SqlError::new(
                        codes::INVALID_TEXT_REPRESENTATION,
                        "invalid hexadecimal data: odd number of digits",
                    ));
                }
                Some(&c) => hex_val(c).ok_or_else(|| bad_hex_digit(&hex[i + 1..]))?,
            };
            out.push(hi << 4 | lo);
            i += 2;
        }
        return Ok(out);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if i + 3 < b.len()
            && (b'0'..=b'3').contains(&b[i + 1])
            && (b'0'..=b'7').contains(&b[i + 2])
            && (b'0'..=b'7').contains(&b[i + 3])
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            return Err(SqlError::invalid_text("bytea", s));
        }
    }
    Ok(out)
}

fn bad_hex_digit(rest: &str) -> SqlError {
    let c: String = rest.chars().take(1).collect();
    SqlError::new(
        codes::INVALID_TEXT_REPRESENTATION,
        format!("invalid hexadecimal digit: \"{c}\""),
    )
}

fn parse_uuid(s: &str) -> SqlResult<u128> {
    let err = || SqlError::invalid_text("uuid", s);
    let t = s.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(t);
    let mut v: u128 = 0;
    let mut n = 0;
    let b = t.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'-' {
            // hyphens only after a group of four digits, never doubled or trailing
            if n == 0 || n % 4 != 0 || i + 1 == b.len() || b[i + 1] == b'-' {
                return Err(err());
            }
            continue;
        }
        let h = hex_val(c).ok_or_else(err)?;
        v = v << 4 | u128::from(h);
        n += 1;
        if n > 32 {
            return Err(err());
        }
    }
    if n != 32 {
        return Err(err());
    }
    Ok(v)
}

/// Rewrites the numbers of `v` as PostgreSQL's jsonb holds them: numerics,
/// in numeric's text form (`2.50` stays `2.50`, `1e2` is `100`). (The
/// workspace's serde_json keeps a number's text: `arbitrary_precision`.)
/// Nesting is bounded by serde_json's parser (128 levels).
pub fn json_numbers_as_numeric(v: &mut serde_json::Value) {
    use serde_json::Value as J;
    match v {
        J::Number(n) => {
            let text = n.to_string();
            if let Ok(d) = text.parse::<Decimal>() {
                let canonical = d.to_string();
                if canonical != text
                    && let Ok(m) = canonical.parse::<serde_json::Number>()
                {
                    *n = m;
                }
            }
        }
        J::Array(a) => a.iter_mut().for_each(json_numbers_as_numeric),
        J::Object(o) => o.values_mut().for_each(json_numbers_as_numeric),
        _ => {}
    }
}

/// Parses JSON text (PostgreSQL `jsonb` input).
pub fn parse_json(s: &str) -> SqlResult<serde_json::Value> {
    parse_json_text(s).map(|mut v| {
        json_numbers_as_numeric(&mut v);
        v
    })
}

fn parse_json_text(s: &str) -> SqlResult<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| {
        // serde_json stops at 128 levels of nesting; PostgreSQL's parser at its
        // stack depth limit.
        if e.to_string().starts_with("recursion limit exceeded") {
            return SqlError::new(
                codes::STATEMENT_TOO_COMPLEX,
                "stack depth limit exceeded: JSON value is too deeply nested",
            );
        }
        SqlError::new(
            codes::INVALID_TEXT_REPRESENTATION,
            "invalid input syntax for type json",
        )
        .with_detail(e.to_string())
    })
}

/// Checks a string against VARCHAR(n)/CHAR(n): longer values fail (22001) unless the
/// excess is spaces, which are cut; CHAR(n) pads with spaces.
fn fit_string(s: &str, ty: SqlType) -> SqlResult<String> {
    match ty {
        SqlType::Varchar(Some(n)) | SqlType::Char(n) => {
            let n = n as usize;
            let len = s.chars().count();
            let mut out = if len > n {
                let cut = s.char_indices().nth(n).map_or(s.len(), |(i, _)| i);
                if !s[cut..].bytes().all(|b| b == b' ') {
                    return Err(SqlError::new(
                        codes::STRING_DATA_RIGHT_TRUNCATION,
                        format!("value too long for type {ty}"),
                    ));
                }
                s[..cut].to_owned()
            } else {
                s.to_owned()
            };
            if matches!(ty, SqlType::Char(_)) && len < n {
                out.extend(std::iter::repeat_n(' ', n - len));
            }
            Ok(out)
        }
        _ => Ok(s.to_owned()),
    }
}

/// Applies a string type's length to a value being stored (assignment): errors when
/// too long, pads CHAR(n).
pub fn coerce_string(s: &str, ty: SqlType) -> SqlResult<String> {
    fit_string(s, ty)
}

fn write_decimal(out: &mut String, d: &Decimal, ty: SqlType) {
    if let SqlType::Decimal(Some((_, s))) = ty
        && let Some(n) = Num::from_decimal(d)
        && n.scale != u32::from(s)
    {
        let _ = write!(out, "{}", n.round(i64::from(s)));
        return;
    }
    let _ = write!(out, "{d}");
}

/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = datetime::PG_EPOCH_DAYS * datetime::USECS_PER_DAY;

fn binary_err(ty: SqlType) -> SqlError {
    SqlError::new(
        codes::INVALID_BINARY_REPRESENTATION,
        format!("incorrect binary data format for type {ty}"),
    )
}

fn be<const N: usize>(b: &[u8], ty: SqlType) -> SqlResult<[u8; N]> {
    b.try_into().map_err(|_| binary_err(ty))
}

/// PostgreSQL's binary NUMERIC: ndigits, weight, sign, dscale, base-10000 digits.
fn write_numeric_binary(d: &Decimal, out: &mut Vec<u8>) {
    let header = |out: &mut Vec<u8>, nd: i16, w: i16, sign: u16, ds: u16| {
        out.extend_from_slice(&nd.to_be_bytes());
        out.extend_from_slice(&w.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&ds.to_be_bytes());
    };
    let Some(n) = Num::from_decimal(d) else {
        let sign = if d.is_nan() {
            0xC000
        } else if d.is_negative() {
            0xF000
        } else {
            0xD000
        };
        return header(out, 0, 0, sign, 0);
    };
    let scale = n.scale as usize;
    let int_len = n.mag.len().saturating_sub(scale);
    // Pad so the integer part is a multiple of 4 digits on the left and the fraction
    // a multiple of 4 on the right.
    let lead = (4 - int_len % 4) % 4;
    let frac_len = scale;
    let trail = (4 - frac_len % 4) % 4;
    let mut digits = vec![0u8; lead];
    if n.mag.len() < scale {
        digits.extend(std::iter::repeat_n(0, scale - n.mag.len()));
    }
    digits.extend_from_slice(&n.mag);
    digits.extend(std::iter::repeat_n(0, trail));
    let mut groups: Vec<i16> = digits
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |a, &d| a * 10 + i16::from(d)))
        .collect();
    let mut weight = ((int_len + lead) / 4) as i64 - 1;
    let leading_zero = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..leading_zero);
    weight -= leading_zero as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    header(
        out,
        groups.len() as i16,
        weight as i16,
        if n.neg { 0x4000 } else { 0 },
        n.scale as u16,
    );
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

fn read_numeric_binary(b: &[u8], ty: SqlType) -> SqlResult<Decimal> {
    let err = || binary_err(ty);
    if b.len() < 8 {
        return Err(err());
    }
    let nd = i16::from_be_bytes([b[0], b[1]]);
    let weight = i16::from_be_bytes([b[2], b[3]]);
    let sign = u16::from_be_bytes([b[4], b[5]]);
    let dscale = u16::from_be_bytes([b[6], b[7]]);
    match sign {
        0xC000 => return Ok(Decimal::nan()),
        0xD000 => return Ok(Decimal::infinity(false)),
        0xF000 => return Ok(Decimal::infinity(true)),
        0 | 0x4000 => {}
        _ => return Err(err()),
    }
    if nd < 0 || b.len() != 8 + 2 * nd as usize || dscale > 0x3FFF {
        return Err(err());
    }
    let mut digits = Vec::with_capacity(nd as usize * 4);
    for c in b[8..].chunks(2) {
        let g = i16::from_be_bytes([c[0], c[1]]);
        if !(0..10_000).contains(&g) {
            return Err(err());
        }
        let g = g as u16;
        digits.extend_from_slice(&[
            (g / 1000) as u8,
            (g / 100 % 10) as u8,
            (g / 10 % 10) as u8,
            (g % 10) as u8,
        ]);
    }
    let exp = (i32::from(weight) - i32::from(nd) + 1) * 4;
    let d = Decimal::from_parts(sign == 0x4000, digits, exp).ok_or_else(err)?;
    let n = Num::from_decimal(&d).ok_or_else(err)?;
    let mut r = n.round(i64::from(dscale));
    if r.is_zero() {
        r.neg = false;
    }
    let d = r.to_decimal()?;
    match ty {
        SqlType::Decimal(Some((p, s))) => num::apply_typmod(&d, p, s),
        _ => Ok(d),
    }
}

impl Value {
    /// Appends PostgreSQL's text output for `self` as a value of `ty` (NULL writes
    /// nothing: the caller sends NULL its own way).
    pub fn write_text(&self, ty: SqlType, out: &mut String) {
        // A regclass whose name the binder looked up: `[oid, name]`.
        if ty == SqlType::RegClass
            && let Value::Array(pair) = self
        {
            match pair.as_slice() {
                [_, Value::Text(name)] => out.push_str(name),
                [oid, ..] => oid.write_text(SqlType::Oid, out),
                [] => {}
            }
            return;
        }
        // A value in another representation than `ty`'s (an Int for a numeric(10,2)
        // column, say) prints as the column's type would.
        if !self.fits_type(ty)
            && !matches!(self, Value::Text(_))
            && let Ok(v) = crate::ops::cast(self, self.natural_type(), ty)
            && v.fits_type(ty)
        {
            return v.write_text(ty, out);
        }
        match self {
            Value::Null => {}
            Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
            Value::Int(i) if ty == SqlType::RegType => out.push_str(&regtype_out(*i)),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => write_float(out, *f, ty == SqlType::Float4),
            Value::Decimal(d) => write_decimal(out, d, ty),
            Value::Text(s) => match ty {
                SqlType::Char(n) => {
                    out.push_str(s);
                    let len = s.chars().count();
                    out.extend(std::iter::repeat_n(' ', (n as usize).saturating_sub(len)));
                }
                _ => out.push_str(s),
            },
            Value::Bytes(b) if ty == SqlType::Inet => crate::inet::write_text(out, b),
            Value::Bytes(b) => {
                out.push_str("\\x");
                for byte in b {
                    let _ = write!(out, "{byte:02x}");
                }
            }
            Value::Date(d) => datetime::write_date(out, *d),
            Value::Time(t) => datetime::write_time(out, *t),
            Value::Timestamp(t) => datetime::write_timestamp(out, *t, false),
            Value::TimestampTz(t) => datetime::write_timestamp(out, *t, true),
            Value::Interval(iv) => datetime::write_interval(out, *iv),
            Value::Uuid(u) => write_uuid(out, *u),
            Value::Jsonb(j) => write_json(out, j),
            Value::Array(a) if ty == SqlType::Int2Vector => {
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_text(SqlType::Int2, out);
                }
            }
            Value::Array(a) => crate::array::write_text(out, a, ty.element().unwrap_or(ty)),
        }
    }

    /// PostgreSQL's text output for `self` as a value of `ty`.
    pub fn to_text(&self, ty: SqlType) -> String {
        let mut s = String::new();
        self.write_text(ty, &mut s);
        s
    }

    /// Parses PostgreSQL text input for `ty` (`Unknown` and the string types give
    /// `Text`, checked against VARCHAR(n)/CHAR(n)).
    pub fn from_text(s: &str, ty: SqlType) -> SqlResult<Value> {
        Ok(match ty {
            SqlType::Unknown | SqlType::Text => Value::Text(s.to_owned()),
            SqlType::Varchar(_) | SqlType::Char(_) => Value::Text(fit_string(s, ty)?),
            SqlType::Bool => Value::Bool(parse_bool(s)?),
            SqlType::Int2 | SqlType::Int4 | SqlType::Int8 | SqlType::Oid => {
                Value::Int(parse_int(s, ty)?)
            }
            // A regclass given as text (a parameter) reads as its OID.
            // TODO(issue 13): a relation name in a regclass parameter.
            SqlType::RegClass => Value::Int(parse_int(s, SqlType::Oid)?),
            // A type's name or its OID (digits, unchecked).
            SqlType::RegType => Value::Int(regtype_in(s)?),
            SqlType::Float4 => Value::Float(parse_float(s, true)?),
            SqlType::Float8 => Value::Float(parse_float(s, false)?),
            SqlType::Decimal(_) => Value::Decimal(parse_decimal(s, ty)?),
            SqlType::Bytes => Value::Bytes(parse_bytea(s)?),
            SqlType::Date => Value::Date(datetime::parse_date(s)?),
            SqlType::Time => Value::Time(datetime::parse_time(s)?),
            SqlType::Timestamp => Value::Timestamp(datetime::parse_timestamp(s, false)?),
            SqlType::TimestampTz => Value::TimestampTz(datetime::parse_timestamp(s, true)?),
            SqlType::Interval => Value::Interval(datetime::parse_interval(s)?),
            SqlType::Uuid => Value::Uuid(parse_uuid(s)?),
            SqlType::Jsonb => Value::Jsonb(Box::new(parse_json(s)?)),
            SqlType::Array(e) => crate::array::parse_text(s, *e)?,
            SqlType::Inet => Value::Bytes(crate::inet::parse(s)?),
            SqlType::Int2Vector => Value::Array(
                s.split_whitespace()
                    .map(|p| parse_int(p, SqlType::Int2).map(Value::Int))
                    .collect::<SqlResult<Vec<_>>>()?,
            ),
        })
    }

    /// The type this variant naturally represents (the widest of its family).
    pub fn natural_type(&self) -> SqlType {
        match self {
            Value::Null => SqlType::Unknown,
            Value::Bool(_) => SqlType::Bool,
            Value::Int(_) => SqlType::Int8,
            Value::Float(_) => SqlType::Float8,
            Value::Decimal(_) => SqlType::Decimal(None),
            Value::Text(_) => SqlType::Text,
            Value::Bytes(_) => SqlType::Bytes,
            Value::Date(_) => SqlType::Date,
            Value::Time(_) => SqlType::Time,
            Value::Timestamp(_) => SqlType::Timestamp,
            Value::TimestampTz(_) => SqlType::TimestampTz,
            Value::Interval(_) => SqlType::Interval,
            Value::Uuid(_) => SqlType::Uuid,
            Value::Jsonb(_) => SqlType::Jsonb,
            Value::Array(a) => SqlType::array_of(
                a.iter()
                    .find(|v| !v.is_null())
                    .map_or(SqlType::Text, Value::natural_type),
            ),
        }
    }

    /// Whether this variant is how values of `ty` are represented.
    pub fn fits_type(&self, ty: SqlType) -> bool {
        match self {
            Value::Null => true,
            Value::Bool(_) => ty == SqlType::Bool,
            Value::Int(_) => ty.is_integer(),
            Value::Float(_) => matches!(ty, SqlType::Float4 | SqlType::Float8),
            Value::Decimal(_) => matches!(ty, SqlType::Decimal(_)),
            Value::Text(_) => ty.is_string() || ty == SqlType::Unknown,
            Value::Bytes(_) => matches!(ty, SqlType::Bytes | SqlType::Inet),
            Value::Date(_) => ty == SqlType::Date,
            Value::Time(_) => ty == SqlType::Time,
            Value::Timestamp(_) => ty == SqlType::Timestamp,
            Value::TimestampTz(_) => ty == SqlType::TimestampTz,
            Value::Interval(_) => ty == SqlType::Interval,
            Value::Uuid(_) => ty == SqlType::Uuid,
            Value::Jsonb(_) => ty == SqlType::Jsonb,
            // elements are checked (and converted) one by one when written
            Value::Array(_) => matches!(ty, SqlType::Array(_) | SqlType::Int2Vector),
        }
    }

    /// Appends PostgreSQL's binary wire format for `self` as a value of `ty` (a value
    /// of another representation, e.g. an Int for a float8 column, is cast first).
    pub fn write_binary(&self, ty: SqlType, out: &mut Vec<u8>) -> SqlResult<()> {
        // A regclass whose name the binder looked up (`[oid, name]`) is
        // sent as its OID.
        if ty == SqlType::RegClass {
            return match self {
                Value::Array(pair) => match pair.first() {
                    Some(oid) => oid.write_binary(SqlType::Oid, out),
                    None => Err(SqlError::internal("empty regclass value")),
                },
                v => v.write_binary(SqlType::Oid, out),
            };
        }
        if !self.fits_type(ty) {
            let v = crate::ops::cast(self, self.natural_type(), ty)?;
            if v.fits_type(ty) {
                return v.write_binary(ty, out);
            }
            return Err(SqlError::internal(format!("cannot send {self:?} as {ty}")));
        }
        let range = |name: &str| SqlError::out_of_range(format!("{name} out of range"));
        match (self, ty) {
            (Value::Null, _) => {}
            (Value::Bool(b), _) => out.push(u8::from(*b)),
            (Value::Int(i), SqlType::Int2) => out.extend_from_slice(
                &i16::try_from(*i)
                    .map_err(|_| range("smallint"))?
                    .to_be_bytes(),
            ),
            (Value::Int(i), SqlType::Int4) => out.extend_from_slice(
                &i32::try_from(*i)
                    .map_err(|_| range("integer"))?
                    .to_be_bytes(),
            ),
            (Value::Int(i), SqlType::Oid | SqlType::RegType) => {
                out.extend_from_slice(&u32::try_from(*i).map_err(|_| range("OID"))?.to_be_bytes())
            }
            (Value::Int(i), _) => out.extend_from_slice(&i.to_be_bytes()),
            (Value::Float(f), SqlType::Float4) => out.extend_from_slice(&(*f as f32).to_be_bytes()),
            (Value::Float(f), _) => out.extend_from_slice(&f.to_be_bytes()),
            (Value::Decimal(d), _) => {
                let d = match ty {
                    SqlType::Decimal(Some((p, s))) => num::apply_typmod(d, p, s)?,
                    _ => d.clone(),
                };
                write_numeric_binary(&d, out)
            }
            (Value::Text(_), _) => out.extend_from_slice(self.to_text(ty).as_bytes()),
            (Value::Bytes(b), SqlType::Inet) => crate::inet::write_binary(out, b)?,
            (Value::Bytes(b), _) => out.extend_from_slice(b),
            (Value::Date(d), _) => {
                let v = match *d {
                    datetime::DATE_POS_INF | datetime::DATE_NEG_INF => *d,
                    d => d - datetime::PG_EPOCH_DAYS as i32,
                };
                out.extend_from_slice(&v.to_be_bytes())
            }
            (Value::Time(t), _) => out.extend_from_slice(&t.to_be_bytes()),
            (Value::Timestamp(t) | Value::TimestampTz(t), _) => {
                let v = match *t {
                    datetime::TS_POS_INF | datetime::TS_NEG_INF => *t,
                    t => t - PG_EPOCH_MICROS,
                };
                out.extend_from_slice(&v.to_be_bytes())
            }
            (Value::Interval(iv), _) => {
                out.extend_from_slice(&iv.micros.to_be_bytes());
                out.extend_from_slice(&iv.days.to_be_bytes());
                out.extend_from_slice(&iv.months.to_be_bytes());
            }
            (Value::Uuid(u), _) => out.extend_from_slice(&u.to_be_bytes()),
            (Value::Jsonb(j), _) => {
                out.push(1);
                let mut s = String::new();
                write_json(&mut s, j);
                out.extend_from_slice(s.as_bytes());
            }
            (Value::Array(a), _) => crate::array::write_binary(out, a, ty.element().unwrap_or(ty))?,
        }
        Ok(())
    }

    /// Parses PostgreSQL's binary wire format for `ty`; malformed input is 22P03.
    pub fn from_binary(b: &[u8], ty: SqlType) -> SqlResult<Value> {
        let utf8 = |b: &[u8]| {
            std::str::from_utf8(b).map(str::to_owned).map_err(|_| {
                SqlError::new(
                    codes::CHARACTER_NOT_IN_REPERTOIRE,
                    "invalid byte sequence for encoding \"UTF8\"",
                )
            })
        };
        Ok(match ty {
            SqlType::Bool => match b {
                [0] => Value::Bool(false),
                [1] => Value::Bool(true),
                _ => return Err(binary_err(ty)),
            },
            SqlType::Int2 => Value::Int(i64::from(i16::from_be_bytes(be(b, ty)?))),
            SqlType::Int4 => Value::Int(i64::from(i32::from_be_bytes(be(b, ty)?))),
            SqlType::Int8 => Value::Int(i64::from_be_bytes(be(b, ty)?)),
            SqlType::Oid | SqlType::RegClass | SqlType::RegType => {
                Value::Int(i64::from(u32::from_be_bytes(be(b, ty)?)))
            }
            SqlType::Float4 => Value::Float(f64::from(f32::from_be_bytes(be(b, ty)?))),
            SqlType::Float8 => Value::Float(f64::from_be_bytes(be(b, ty)?)),
            SqlType::Decimal(_) => Value::Decimal(read_numeric_binary(b, ty)?),
            SqlType::Unknown | SqlType::Text => Value::Text(utf8(b)?),
            SqlType::Varchar(_) | SqlType::Char(_) => Value::Text(fit_string(&utf8(b)?, ty)?),
            SqlType::Bytes => Value::Bytes(b.to_vec()),
            SqlType::Date => {
                let v = i32::from_be_bytes(be(b, ty)?);
                Value::Date(match v {
                    datetime::DATE_POS_INF | datetime::DATE_NEG_INF => v,
                    v => v
                        .checked_add(datetime::PG_EPOCH_DAYS as i32)
                        .ok_or_else(|| binary_err(ty))?,
                })
            }
            SqlType::Time => {
                let v = i64::from_be_bytes(be(b, ty)?);
                if !(0..=datetime::USECS_PER_DAY).contains(&v) {
                    return Err(SqlError::new(
                        codes::INVALID_BINARY_REPRESENTATION,
                        "time out of range",
                    ));
                }
                Value::Time(v)
            }
            SqlType::Timestamp | SqlType::TimestampTz => {
                let v = i64::from_be_bytes(be(b, ty)?);
                let t = match v {
                    datetime::TS_POS_INF | datetime::TS_NEG_INF => v,
                    v => v
                        .checked_add(PG_EPOCH_MICROS)
                        .ok_or_else(datetime::timestamp_out_of_range)?,
                };
                if ty == SqlType::Timestamp {
                    Value::Timestamp(t)
                } else {
                    Value::TimestampTz(t)
                }
            }
            SqlType::Interval => {
                let a: [u8; 16] = be(b, ty)?;
                let mut m = [0u8; 8];
                m.copy_from_slice(&a[..8]);
                Value::Interval(Interval {
                    micros: i64::from_be_bytes(m),
                    days: i32::from_be_bytes([a[8], a[9], a[10], a[11]]),
                    months: i32::from_be_bytes([a[12], a[13], a[14], a[15]]),
                })
            }
            SqlType::Uuid => Value::Uuid(u128::from_be_bytes(be(b, ty)?)),
            SqlType::Jsonb => match b.split_first() {
                Some((1, rest)) => Value::Jsonb(Box::new(parse_json(&utf8(rest)?)?)),
                _ => {
                    return Err(SqlError::new(
                        codes::INVALID_BINARY_REPRESENTATION,
                        "unsupported jsonb version number",
                    ));
                }
            },
            SqlType::Array(e) => crate::array::parse_binary(b, *e)?,
            SqlType::Int2Vector => crate::array::parse_binary(b, SqlType::Int2)?,
            SqlType::Inet => Value::Bytes(crate::inet::read_binary(b)?),
        })
    }
}

impl Value {
    /// Int, Float or Decimal.
    pub fn is_number(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Float(_) | Value::Decimal(_))
    }
}
