//! [`Value`]: one SQL value at run time.
//!
//! Values of one [`SqlType`] family compare as PostgreSQL compares them; `NULL`
//! handling (three-valued logic) belongs to the operators in [`crate::ops`], not to
//! `Ord`, which is total (NULL first) so values can be sorted and hashed.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use tardigrade_encoding::decimal::Decimal;

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

impl Value {
    /// Appends PostgreSQL's text output for `self` as a value of `ty`.
    pub fn write_text(&self, ty: SqlType, out: &mut String) {
        let _ = (ty, out);
    }

    /// PostgreSQL's text output for `self` as a value of `ty`.
    pub fn to_text(&self, ty: SqlType) -> String {
        let mut s = String::new();
        self.write_text(ty, &mut s);
        s
    }

    /// Parses PostgreSQL text input for `ty`.
    pub fn from_text(s: &str, ty: SqlType) -> SqlResult<Value> {
        let _ = ty;
        Ok(Value::Text(s.to_owned()))
    }

    /// Appends PostgreSQL's binary wire format for `self` as a value of `ty`.
    pub fn write_binary(&self, ty: SqlType, out: &mut Vec<u8>) -> SqlResult<()> {
        let _ = (ty, out);
        Err(SqlError::unsupported("binary format"))
    }

    /// Parses PostgreSQL's binary wire format for `ty`.
    pub fn from_binary(b: &[u8], ty: SqlType) -> SqlResult<Value> {
        let _ = (b, ty);
        Err(SqlError::unsupported("binary format"))
    }
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
    fn cmp(&self, other: &Self) -> Ordering {
        let _ = other;
        Ordering::Equal
    }
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let _ = state;
    }
}
