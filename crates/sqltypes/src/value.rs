//! [`Value`]: one SQL value at run time.
//!
//! Values of one [`SqlType`] family compare as PostgreSQL compares them; `NULL`
//! handling (three-valued logic) belongs to the operators in [`crate::ops`], not to
//! `Ord`, which is total (NULL first) so values can be sorted and hashed.

use tardigrade_encoding::decimal::Decimal;

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
    /// Microseconds since 1970-01-01 00:00:00 (no time zone).
    Timestamp(i64),
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    TimestampTz(i64),
    Interval(Interval),
    Uuid(u128),
    /// JSONB in its canonical form (object keys sorted, as serde_json's map keeps them).
    Jsonb(Box<serde_json::Value>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}
