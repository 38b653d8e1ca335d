//! Dynamically typed key values ([`Datum`]) and tuples of them.
//!
//! A datum's type is recovered from its marker byte, so keys can be decoded (and
//! pretty-printed) without a schema. [`Datum`]'s `Ord` agrees with the byte order of
//! its ascending encoding: within a type by SQL value (NULL smallest; floats with
//! `-0 == +0` and NaN largest; decimals by numeric value), across types by marker:
//! `Null < Bool < Float < Decimal < Bytes < String < Timestamp < Int`. The SQL layer
//! only compares values of one type; the cross-type order just keeps `Ord` total.
//!
//! A tuple (an index key) is the concatenation of its datums, each in its column's
//! direction; because every encoding is prefix-free, tuples compare column by column.

use std::cmp::Ordering;
use std::fmt;

use crate::decimal::{Decimal, decode_decimal, encode_decimal};
use crate::pretty::{write_escaped, write_timestamp};
use crate::value::*;
use crate::{DecodeError, Direction, Result};

/// A single SQL value as it appears in a key.
#[derive(Clone, Debug)]
pub enum Datum {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Decimal(Decimal),
    Bytes(Vec<u8>),
    String(String),
    /// Microseconds since the Unix epoch.
    Timestamp(i64),
}

impl Datum {
    /// Cross-type rank, in marker order.
    fn rank(&self) -> u8 {
        match self {
            Datum::Null => 0,
            Datum::Bool(_) => 1,
            Datum::Float(_) => 2,
            Datum::Decimal(_) => 3,
            Datum::Bytes(_) => 4,
            Datum::String(_) => 5,
            Datum::Timestamp(_) => 6,
            Datum::Int(_) => 7,
        }
    }
}

/// Total order on floats used by keys: `-0.0 == +0.0`, NaN equals itself and sorts
/// after `+inf` (PostgreSQL semantics).
pub fn cmp_float(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

impl Ord for Datum {
    fn cmp(&self, other: &Self) -> Ordering {
        use Datum::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) | (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Float(a), Float(b)) => cmp_float(*a, *b),
            (Decimal(a), Decimal(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (String(a), String(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Datum {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Datum {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Datum {}

impl fmt::Display for Datum {
    /// The form used by [`pretty_key`](crate::pretty_key): `NULL`, `true`, `7`, `1.5`,
    /// `NaN`, `-Infinity`, `12.30`, `b"\x00"`, `"bob"`, `2024-01-02T03:04:05.5Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Datum::Null => f.write_str("NULL"),
            Datum::Bool(b) => write!(f, "{b}"),
            Datum::Int(i) => write!(f, "{i}"),
            Datum::Float(x) if x.is_nan() => f.write_str("NaN"),
            Datum::Float(x) if x.is_infinite() => {
                f.write_str(if *x < 0.0 { "-Infinity" } else { "Infinity" })
            }
            Datum::Float(x) => write!(f, "{x:?}"),
            Datum::Decimal(d) => write!(f, "{d}"),
            Datum::Bytes(b) => {
                f.write_str("b")?;
                write_escaped(f, b)
            }
            Datum::String(s) => write!(f, "{s:?}"),
            Datum::Timestamp(t) => write_timestamp(f, *t),
        }
    }
}

/// Encodes one datum.
pub fn encode_datum(buf: &mut Vec<u8>, d: &Datum, dir: Direction) {
    match d {
        Datum::Null => encode_null(buf, dir),
        Datum::Bool(v) => encode_bool(buf, *v, dir),
        Datum::Int(v) => encode_int(buf, *v, dir),
        Datum::Float(v) => encode_float(buf, *v, dir),
        Datum::Decimal(v) => encode_decimal(buf, v, dir),
        Datum::Bytes(v) => encode_bytes(buf, v, dir),
        Datum::String(v) => encode_string(buf, v, dir),
        Datum::Timestamp(v) => encode_timestamp(buf, *v, dir),
    }
}

fn wrap<T>(r: Result<(T, &[u8])>, f: impl FnOnce(T) -> Datum) -> Result<(Datum, &[u8])> {
    r.map(|(v, rest)| (f(v), rest))
}

/// Decodes one datum, its type given by the marker byte.
pub fn decode_datum(buf: &[u8], dir: Direction) -> Result<(Datum, &[u8])> {
    match first(buf, dir.mask(), "datum")?.0 {
        NULL => wrap(decode_null(buf, dir), |()| Datum::Null),
        FALSE | TRUE => wrap(decode_bool(buf, dir), Datum::Bool),
        FLOAT_NEG..=FLOAT_NAN => wrap(decode_float(buf, dir), Datum::Float),
        DECIMAL_NEG_INF..=DECIMAL_NAN => wrap(decode_decimal(buf, dir), Datum::Decimal),
        BYTES => wrap(decode_bytes(buf, dir), Datum::Bytes),
        STRING => wrap(decode_string(buf, dir), Datum::String),
        TIMESTAMP => wrap(decode_timestamp(buf, dir), Datum::Timestamp),
        INT_MIN..=INT_MAX => wrap(decode_int(buf, dir), Datum::Int),
        _ => Err(DecodeError::marker("datum", buf)),
    }
}

/// Encodes a tuple, datum `i` in direction `dirs[i]`.
///
/// # Panics
/// If `datums` and `dirs` differ in length (a caller bug, not bad input).
pub fn encode_tuple(buf: &mut Vec<u8>, datums: &[Datum], dirs: &[Direction]) {
    assert_eq!(
        datums.len(),
        dirs.len(),
        "encode_tuple: need one direction per datum"
    );
    for (d, &dir) in datums.iter().zip(dirs) {
        encode_datum(buf, d, dir);
    }
}

/// Decodes `dirs.len()` datums, returning them and the remaining bytes.
pub fn decode_tuple<'a>(buf: &'a [u8], dirs: &[Direction]) -> Result<(Vec<Datum>, &'a [u8])> {
    let mut out = Vec::with_capacity(dirs.len());
    let mut rest = buf;
    for &dir in dirs {
        let (d, r) = decode_datum(rest, dir)?;
        out.push(d);
        rest = r;
    }
    Ok((out, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;

    #[test]
    fn tuple_roundtrip_and_order() {
        let a = [Datum::String("a".into()), Datum::Int(-1), Datum::Null];
        let b = [Datum::String("a\0".into()), Datum::Int(5), Datum::Null];
        let dirs = [Ascending, Descending, Descending];
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        encode_tuple(&mut ea, &a, &dirs);
        encode_tuple(&mut eb, &b, &dirs);
        assert!(ea < eb);
        ea.extend_from_slice(b"rest");
        let (back, rest) = decode_tuple(&ea, &dirs).unwrap();
        assert_eq!((back.as_slice(), rest), (&a[..], &b"rest"[..]));
        assert!(decode_tuple(&ea[..3], &dirs).is_err());
    }

    #[test]
    fn display() {
        let cases = [
            (Datum::Null, "NULL"),
            (Datum::Float(-0.5), "-0.5"),
            (Datum::Float(f64::NEG_INFINITY), "-Infinity"),
            (Datum::Bytes(b"a\0\"".to_vec()), r#"b"a\x00\"""#),
            (Datum::String("é\"".into()), r#""é\"""#),
            (Datum::Timestamp(0), "1970-01-01T00:00:00Z"),
            (Datum::Timestamp(-1), "1969-12-31T23:59:59.999999Z"),
            (
                Datum::Timestamp(951_782_400_000_000 + 1_500_000),
                "2000-02-29T00:00:01.5Z",
            ),
        ];
        for (d, want) in cases {
            assert_eq!(d.to_string(), want);
        }
        // Extreme timestamps format without overflow.
        assert!(Datum::Timestamp(i64::MIN).to_string().starts_with("-"));
        assert!(Datum::Timestamp(i64::MAX).to_string().ends_with('Z'));
    }
}
