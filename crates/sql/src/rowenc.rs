//! Rows ↔ KV pairs, and the reads and writes of table data.
//!
//! ## Format
//!
//! - Primary index: key `/Table/<id>/1/<pk columns, each in its direction>`, value
//!   = the other columns in column-id order, NULLs omitted, each as
//!   `uvarint(column-id delta << 4 | type tag)` then the datum ([`encode_row_value`]).
//!   No column-family suffix: a row is one KV pair (one family). A value can be
//!   empty (every non-key column NULL).
//! - Non-unique secondary index: key = index columns + the primary-key columns not
//!   already in it; value = the `STORING` columns (same value format).
//! - Unique secondary index: key = index columns; value = the primary-key columns
//!   not in the index + the `STORING` columns. When an indexed column is NULL the
//!   entry cannot conflict (NULLs are distinct): the primary key is appended to the
//!   key as for a non-unique index.
//! - Decimal key columns are also written in the value (their key form loses
//!   the scale), and the value's copy wins when decoding.
//! - Dropped columns are skipped when a value is decoded (their ids are never
//!   reused), so DROP COLUMN does not rewrite rows.
//!
//! Key datums use the order-preserving encodings of `tardigrade_encoding`; dates
//! are ints (days), UUIDs 16-byte strings, intervals their total length as an
//! i128 (high i64, low u64: orders like PostgreSQL's interval comparison) followed
//! by months, days and microseconds. JSONB cannot be a key column (0A000).
//!
//! ## Writes
//!
//! Each call builds all the KV requests of its rows and sends them in one
//! `txn.send`: `ConditionalPut` (must not exist) for primary keys and unique index
//! entries, so uniqueness is checked by KV in the same round trip
//! (23505 with the key); NOT NULL is checked before (23502); foreign keys are
//! checked with one batch of point reads (23503), and deletes/updates of
//! referenced rows find referencing rows through the index on the foreign-key
//! columns (DDL creates one when none exists) and restrict, cascade or set null.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tardigrade_encoding::decimal::Decimal;
use tardigrade_encoding::{self as enc, Direction, keys};
use tardigrade_kv::Txn;
use tardigrade_kvpb::{ErrorDetail, KeyValue, KvError, Request, Response, Span};
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::value::Interval;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};

use crate::batch::Batch;
use crate::catalog::{
    Catalog, ColumnId, ForeignKeyDesc, IndexDesc, IndexId, ReferentialAction, TableDesc, kv_err,
};

// ---------------------------------------------------------------------------
// unique_rowid

static LAST_ROWID: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// A unique, time-ordered INT8 for the hidden `rowid` column (CockroachDB's
/// `unique_rowid()`): microseconds since the epoch shifted left 15 bits, with the
/// node id in the low 15 bits; strictly increasing on each node.
pub fn unique_rowid(node_id: u32) -> i64 {
    use std::sync::atomic::Ordering;
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let node = (node_id & 0x7fff) as i64;
    let mut now = micros;
    let mut last = LAST_ROWID.load(Ordering::Relaxed);
    loop {
        if now <= last {
            now = last + 1;
        }
        match LAST_ROWID.compare_exchange_weak(last, now, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break,
            Err(l) => last = l,
        }
    }
    (now << 15) | node
}

// ---------------------------------------------------------------------------
// Key datums.

fn mismatch(v: &Value, ty: SqlType) -> SqlError {
    SqlError::datatype_mismatch(format!(
        "value {} does not match column type {ty}",
        display_value(v)
    ))
}

/// Appends `v` as a key datum of a column of type `ty`.
pub fn encode_key_value(
    buf: &mut Vec<u8>,
    v: &Value,
    ty: SqlType,
    dir: Direction,
) -> SqlResult<()> {
    match (v, ty) {
        (Value::Null, _) => enc::encode_null(buf, dir),
        (Value::Bool(b), SqlType::Bool) => enc::encode_bool(buf, *b, dir),
        (Value::Int(i), t) if t.is_integer() => enc::encode_int(buf, *i, dir),
        (Value::Int(i), SqlType::Float4 | SqlType::Float8) => {
            enc::encode_float(buf, *i as f64, dir)
        }
        (Value::Int(i), SqlType::Decimal(_)) => enc::encode_decimal(buf, &Decimal::from(*i), dir),
        (Value::Float(f), SqlType::Float4 | SqlType::Float8) => enc::encode_float(buf, *f, dir),
        (Value::Float(f), t) if t.is_integer() && f.fract() == 0.0 && f.abs() < 9.2e18 => {
            enc::encode_int(buf, *f as i64, dir)
        }
        (Value::Decimal(d), SqlType::Decimal(_)) => enc::encode_decimal(buf, d, dir),
        (Value::Text(s), t) if t.is_string() => enc::encode_string(buf, s, dir),
        (Value::Bytes(b), SqlType::Bytes | SqlType::Inet) => enc::encode_bytes(buf, b, dir),
        (Value::Date(d), SqlType::Date) => enc::encode_int(buf, *d as i64, dir),
        (Value::Time(t), SqlType::Time) => enc::encode_int(buf, *t, dir),
        (Value::Timestamp(t), SqlType::Timestamp)
        | (Value::TimestampTz(t), SqlType::TimestampTz) => enc::encode_timestamp(buf, *t, dir),
        (Value::Timestamp(t), SqlType::TimestampTz)
        | (Value::TimestampTz(t), SqlType::Timestamp) => enc::encode_timestamp(buf, *t, dir),
        (Value::Interval(iv), SqlType::Interval) => {
            let total = interval_total(iv);
            enc::encode_int(buf, (total >> 64) as i64, dir);
            enc::encode_uvarint(buf, total as u64, dir);
            enc::encode_int(buf, iv.months as i64, dir);
            enc::encode_int(buf, iv.days as i64, dir);
            enc::encode_int(buf, iv.micros, dir);
        }
        (Value::Uuid(u), SqlType::Uuid) => enc::encode_bytes(buf, &u.to_be_bytes(), dir),
        (Value::Jsonb(_), _) | (_, SqlType::Jsonb) => {
            return Err(SqlError::unsupported(
                "column of type jsonb is not indexable",
            ));
        }
        // TODO(issue 4): a key encoding for arrays (CockroachDB has one for
        // forward indexes, and inverted indexes for containment).
        (Value::Array(_), _) | (_, SqlType::Array(_)) => {
            return Err(SqlError::unsupported(format!(
                "column of type {ty} is not indexable"
            )));
        }
        _ => return Err(mismatch(v, ty)),
    }
    Ok(())
}

/// An interval's length in microseconds (30-day months, 24-hour days), as
/// PostgreSQL compares intervals.
fn interval_total(iv: &Interval) -> i128 {
    const DAY: i128 = 86_400_000_000;
    iv.months as i128 * 30 * DAY + iv.days as i128 * DAY + iv.micros as i128
}

fn dec_err(e: enc::DecodeError) -> SqlError {
    SqlError::internal(format!("corrupt key: {e}"))
}

/// Decodes a key datum of a column of type `ty`.
pub fn decode_key_value(buf: &[u8], ty: SqlType, dir: Direction) -> SqlResult<(Value, &[u8])> {
    let (d, rest) = enc::decode_datum(buf, dir).map_err(dec_err)?;
    let v = match (d, ty) {
        (enc::Datum::Null, _) => Value::Null,
        (enc::Datum::Bool(b), _) => Value::Bool(b),
        (enc::Datum::Int(hi), SqlType::Interval) => {
            let (_lo, rest) = enc::decode_uvarint(rest, dir).map_err(dec_err)?;
            let (months, rest) = enc::decode_int(rest, dir).map_err(dec_err)?;
            let (days, rest) = enc::decode_int(rest, dir).map_err(dec_err)?;
            let (micros, rest) = enc::decode_int(rest, dir).map_err(dec_err)?;
            let _ = hi;
            return Ok((
                Value::Interval(Interval {
                    months: months as i32,
                    days: days as i32,
                    micros,
                }),
                rest,
            ));
        }
        (enc::Datum::Int(i), SqlType::Date) => Value::Date(i as i32),
        (enc::Datum::Int(i), SqlType::Time) => Value::Time(i),
        (enc::Datum::Int(i), _) => Value::Int(i),
        (enc::Datum::Float(f), _) => Value::Float(f),
        (enc::Datum::Decimal(d), _) => Value::Decimal(d),
        (enc::Datum::String(s), _) => Value::Text(s),
        (enc::Datum::Bytes(b), SqlType::Uuid) => {
            let a: [u8; 16] = b
                .as_slice()
                .try_into()
                .map_err(|_| SqlError::internal("corrupt key: uuid"))?;
            Value::Uuid(u128::from_be_bytes(a))
        }
        (enc::Datum::Bytes(b), _) => Value::Bytes(b),
        (enc::Datum::Timestamp(t), SqlType::TimestampTz) => Value::TimestampTz(t),
        (enc::Datum::Timestamp(t), _) => Value::Timestamp(t),
    };
    Ok((v, rest))
}

// ---------------------------------------------------------------------------
// Value encoding (non-key columns).

const TAG_FALSE: u64 = 1;
const TAG_TRUE: u64 = 2;
const TAG_INT: u64 = 3;
const TAG_FLOAT: u64 = 4;
const TAG_DECIMAL: u64 = 5;
const TAG_TEXT: u64 = 6;
const TAG_BYTES: u64 = 7;
const TAG_DATE: u64 = 8;
const TAG_TIMESTAMP: u64 = 9;
const TAG_TIMESTAMPTZ: u64 = 10;
const TAG_INTERVAL: u64 = 11;
const TAG_UUID: u64 = 12;
const TAG_JSONB: u64 = 13;
/// An array: its length, then per element a tag (0 for NULL) and the datum.
const TAG_ARRAY: u64 = 14;
const TAG_TIME: u64 = 15;

fn put_varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn put_zigzag(b: &mut Vec<u8>, v: i64) {
    put_varint(b, ((v << 1) ^ (v >> 63)) as u64);
}

fn corrupt_value() -> SqlError {
    SqlError::internal("corrupt row value")
}

fn get_varint(buf: &mut &[u8]) -> SqlResult<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or_else(corrupt_value)?;
        *buf = rest;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(corrupt_value())
}

fn get_zigzag(buf: &mut &[u8]) -> SqlResult<i64> {
    let v = get_varint(buf)?;
    Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
}

fn get_bytes<'a>(buf: &mut &'a [u8]) -> SqlResult<&'a [u8]> {
    let n = get_varint(buf)? as usize;
    if buf.len() < n {
        return Err(corrupt_value());
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

/// Appends one non-NULL column of a value.
fn encode_value_column(b: &mut Vec<u8>, delta: u64, v: &Value) -> SqlResult<()> {
    let head = |b: &mut Vec<u8>, tag: u64| put_varint(b, (delta << 4) | tag);
    match v {
        Value::Null => {}
        Value::Bool(false) => head(b, TAG_FALSE),
        Value::Bool(true) => head(b, TAG_TRUE),
        Value::Int(i) => {
            head(b, TAG_INT);
            put_zigzag(b, *i);
        }
        Value::Float(f) => {
            head(b, TAG_FLOAT);
            b.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Value::Decimal(d) => {
            // Text keeps the scale (`1.50`), which the key encoding drops.
            head(b, TAG_DECIMAL);
            let t = d.to_string();
            put_varint(b, t.len() as u64);
            b.extend_from_slice(t.as_bytes());
        }
        Value::Text(s) => {
            head(b, TAG_TEXT);
            put_varint(b, s.len() as u64);
            b.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(x) => {
            head(b, TAG_BYTES);
            put_varint(b, x.len() as u64);
            b.extend_from_slice(x);
        }
        Value::Date(d) => {
            head(b, TAG_DATE);
            put_zigzag(b, *d as i64);
        }
        Value::Time(t) => {
            head(b, TAG_TIME);
            put_zigzag(b, *t);
        }
        Value::Timestamp(t) => {
            head(b, TAG_TIMESTAMP);
            put_zigzag(b, *t);
        }
        Value::TimestampTz(t) => {
            head(b, TAG_TIMESTAMPTZ);
            put_zigzag(b, *t);
        }
        Value::Interval(iv) => {
            head(b, TAG_INTERVAL);
            put_zigzag(b, iv.months as i64);
            put_zigzag(b, iv.days as i64);
            put_zigzag(b, iv.micros);
        }
        Value::Uuid(u) => {
            head(b, TAG_UUID);
            b.extend_from_slice(&u.to_be_bytes());
        }
        Value::Jsonb(j) => {
            head(b, TAG_JSONB);
            let s = j.to_string();
            put_varint(b, s.len() as u64);
            b.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            head(b, TAG_ARRAY);
            put_varint(b, items.len() as u64);
            for item in items {
                match item {
                    Value::Null => put_varint(b, 0),
                    Value::Array(_) => {
                        return Err(SqlError::unsupported(
                            "multidimensional arrays are not supported",
                        ));
                    }
                    // an element is a column with delta 0: just its tag and datum
                    v => encode_value_column(b, 0, v)?,
                }
            }
        }
        #[allow(unreachable_patterns)]
        _ => return Err(SqlError::unsupported("cannot store a value of this type")),
    }
    Ok(())
}

fn decode_value_column(buf: &mut &[u8], tag: u64) -> SqlResult<Value> {
    Ok(match tag {
        TAG_FALSE => Value::Bool(false),
        TAG_TRUE => Value::Bool(true),
        TAG_INT => Value::Int(get_zigzag(buf)?),
        TAG_FLOAT => {
            if buf.len() < 8 {
                return Err(corrupt_value());
            }
            let (h, rest) = buf.split_at(8);
            *buf = rest;
            let mut a = [0u8; 8];
            a.copy_from_slice(h);
            Value::Float(f64::from_bits(u64::from_be_bytes(a)))
        }
        TAG_DECIMAL => {
            let t = std::str::from_utf8(get_bytes(buf)?).map_err(|_| corrupt_value())?;
            Value::Decimal(t.parse::<Decimal>().map_err(|_| corrupt_value())?)
        }

        TAG_TEXT => {
            Value::Text(String::from_utf8(get_bytes(buf)?.to_vec()).map_err(|_| corrupt_value())?)
        }
        TAG_BYTES => Value::Bytes(get_bytes(buf)?.to_vec()),
        TAG_DATE => Value::Date(get_zigzag(buf)? as i32),
        TAG_TIMESTAMP => Value::Timestamp(get_zigzag(buf)?),
        TAG_TIME => Value::Time(get_zigzag(buf)?),
        TAG_TIMESTAMPTZ => Value::TimestampTz(get_zigzag(buf)?),
        TAG_INTERVAL => Value::Interval(Interval {
            months: get_zigzag(buf)? as i32,
            days: get_zigzag(buf)? as i32,
            micros: get_zigzag(buf)?,
        }),
        TAG_UUID => {
            if buf.len() < 16 {
                return Err(corrupt_value());
            }
            let (h, rest) = buf.split_at(16);
            *buf = rest;
            let mut a = [0u8; 16];
            a.copy_from_slice(h);
            Value::Uuid(u128::from_be_bytes(a))
        }
        TAG_JSONB => {
            let s = get_bytes(buf)?;
            Value::Jsonb(Box::new(
                serde_json::from_slice(s).map_err(|_| corrupt_value())?,
            ))
        }
        TAG_ARRAY => {
            let n = get_varint(buf)?;
            // every element takes at least a byte: bound the allocation
            if n > buf.len() as u64 {
                return Err(corrupt_value());
            }
            let mut items = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let tag = get_varint(buf)?;
                items.push(match tag {
                    0 => Value::Null,
                    TAG_ARRAY => return Err(corrupt_value()),
                    t => decode_value_column(buf, t)?,
                });
            }
            Value::Array(items)
        }
        _ => return Err(corrupt_value()),
    })
}

/// Advances `buf` past one value column without building its value (a
/// column the plan does not read).
fn skip_value_column(buf: &mut &[u8], tag: u64) -> SqlResult<()> {
    let fixed = |buf: &mut &[u8], n: usize| {
        if buf.len() < n {
            return Err(corrupt_value());
        }
        *buf = &buf[n..];
        Ok(())
    };
    match tag {
        TAG_FALSE | TAG_TRUE => {}
        TAG_INT | TAG_DATE | TAG_TIMESTAMP | TAG_TIMESTAMPTZ => {
            get_varint(buf)?;
        }
        TAG_INTERVAL => {
            for _ in 0..3 {
                get_varint(buf)?;
            }
        }
        TAG_FLOAT => fixed(buf, 8)?,
        TAG_UUID => fixed(buf, 16)?,
        TAG_DECIMAL | TAG_TEXT | TAG_BYTES | TAG_JSONB => {
            get_bytes(buf)?;
        }
        // Arrays (rare in wide scans) and unknown tags (an error).
        _ => {
            decode_value_column(buf, tag)?;
        }
    }
    Ok(())
}

/// Appends one datum, NULL included, in the array-element form: tag 0 for
/// NULL, otherwise the value-column tag (column-id delta 0) and the datum.
/// The executor's sort spills rows with it ([`crate::exec::sort`]).
pub fn encode_datum(b: &mut Vec<u8>, v: &Value) -> SqlResult<()> {
    match v {
        Value::Null => {
            put_varint(b, 0);
            Ok(())
        }
        v => encode_value_column(b, 0, v),
    }
}

/// Reads one datum written by [`encode_datum`], advancing `buf`.
pub fn decode_datum(buf: &mut &[u8]) -> SqlResult<Value> {
    match get_varint(buf)? {
        0 => Ok(Value::Null),
        tag => decode_value_column(buf, tag),
    }
}

/// Encodes the columns `cols` (ids, ascending) of `row` (table layout) as a value.
pub fn encode_row_value(table: &TableDesc, cols: &[ColumnId], row: &[Value]) -> SqlResult<Vec<u8>> {
    let mut b = Vec::new();
    let mut last = 0;
    for &id in cols {
        let pos = table
            .column_position(id)
            .ok_or_else(|| SqlError::internal(format!("no column with id {id}")))?;
        let v = row.get(pos).ok_or_else(|| row_width(table, row))?;
        if v.is_null() {
            continue;
        }
        encode_value_column(&mut b, (id - last) as u64, v)?;
        last = id;
    }
    Ok(b)
}

/// Decodes a value into `row` (table layout); columns not in the table any more
/// (dropped) are skipped.
pub fn decode_row_value(table: &TableDesc, buf: &[u8], row: &mut [Value]) -> SqlResult<()> {
    decode_row_value_reading(table, buf, row, None)
}

/// [`decode_row_value`], decoding only the columns (by position) that
/// `reads` marks, when given; the others are skipped and stay as they are.
pub fn decode_row_value_reading(
    table: &TableDesc,
    mut buf: &[u8],
    row: &mut [Value],
    reads: Option<&[bool]>,
) -> SqlResult<()> {
    let mut id: u64 = 0;
    while !buf.is_empty() {
        let head = get_varint(&mut buf)?;
        id += head >> 4;
        let tag = head & 0xf;
        let pos = u32::try_from(id)
            .ok()
            .and_then(|id| table.column_position(id))
            .filter(|&p| p < row.len() && reads.is_none_or(|r| r.get(p).copied().unwrap_or(true)));
        match pos {
            Some(p) => row[p] = decode_value_column(&mut buf, tag)?,
            None => skip_value_column(&mut buf, tag)?,
        }
    }
    Ok(())
}

fn row_width(table: &TableDesc, row: &[Value]) -> SqlError {
    SqlError::internal(format!(
        "row of {} values for table \"{}\" with {} columns",
        row.len(),
        table.name,
        table.columns.len()
    ))
}

// ---------------------------------------------------------------------------
// Index keys.

fn index_of(table: &TableDesc, index_id: IndexId) -> SqlResult<&IndexDesc> {
    table.index(index_id).ok_or_else(|| {
        SqlError::internal(format!(
            "table \"{}\" has no index with id {index_id}",
            table.name
        ))
    })
}

fn column_type(table: &TableDesc, id: ColumnId) -> SqlResult<SqlType> {
    table
        .column_by_id(id)
        .map(|c| c.ty)
        .ok_or_else(|| SqlError::internal(format!("no column with id {id}")))
}

/// The key prefix of an index with its first `values.len()` key columns set
/// (for spans). For a non-unique index the key columns continue with the primary
/// key columns not in the index, so values may cover those too.
pub fn index_key_prefix(
    table: &TableDesc,
    index_id: IndexId,
    values: &[Value],
) -> SqlResult<Vec<u8>> {
    let index = index_of(table, index_id)?;
    let key_cols = full_key_columns(table, index);
    if values.len() > key_cols.len() {
        return Err(SqlError::internal(format!(
            "{} values for index \"{}\" with {} key columns",
            values.len(),
            index.name,
            key_cols.len()
        )));
    }
    let mut k = keys::index_prefix(table.id as u64, index_id as u64);
    for (v, (col, dir)) in values.iter().zip(key_cols) {
        encode_key_value(&mut k, v, column_type(table, col)?, dir)?;
    }
    Ok(k)
}

/// The key columns of an index entry with their directions: the index's columns,
/// then (secondary indexes) the primary-key columns not among them.
pub fn full_key_columns(table: &TableDesc, index: &IndexDesc) -> Vec<(ColumnId, Direction)> {
    let mut out: Vec<(ColumnId, Direction)> = index
        .columns
        .iter()
        .copied()
        .zip(index.directions.iter().copied())
        .collect();
    if index.id != table.primary_index.id {
        out.extend(extra_pk_columns(table, index));
    }
    out
}

/// The primary-key columns not in `index`'s columns.
fn extra_pk_columns(table: &TableDesc, index: &IndexDesc) -> Vec<(ColumnId, Direction)> {
    let pk = &table.primary_index;
    pk.columns
        .iter()
        .copied()
        .zip(pk.directions.iter().copied())
        .filter(|(c, _)| !index.columns.contains(c))
        .collect()
}

/// `[start, end)` of every entry of an index.
pub fn index_span(table: &TableDesc, index_id: IndexId) -> (Vec<u8>, Vec<u8>) {
    let p = keys::index_prefix(table.id as u64, index_id as u64);
    let end = keys::prefix_end(&p);
    (p, end)
}

/// `[start, end)` of all of a table's data.
pub fn table_span(table: &TableDesc) -> (Vec<u8>, Vec<u8>) {
    let p = keys::table_prefix(table.id as u64);
    let end = keys::prefix_end(&p);
    (p, end)
}

/// The columns a scan of this index returns (the others come back NULL): every
/// column for the primary index; key, primary-key and STORING columns otherwise.
pub fn index_covers(table: &TableDesc, index_id: IndexId) -> Vec<ColumnId> {
    match table.index(index_id) {
        Some(index) if index.id != table.primary_index.id => {
            let mut out: Vec<ColumnId> = index.columns.clone();
            for &c in table.primary_index.columns.iter().chain(&index.storing) {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            out
        }
        _ => table.columns.iter().map(|c| c.id).collect(),
    }
}

/// Whether a scan of this index returns every column of the table (the
/// primary index, or a secondary one whose key and STORING columns hold
/// them all), so no row has to be looked up in the primary index.
pub fn index_covers_table(table: &TableDesc, index_id: IndexId) -> bool {
    index_id == table.primary_index.id || index_covers(table, index_id).len() >= table.columns.len()
}

/// Whether a key column of this type is also stored in the value: the key
/// encoding of a decimal keeps its numeric value but not its scale (`1.50`
/// and `1.5` are the same key), which PostgreSQL displays.
fn is_composite(ty: SqlType) -> bool {
    matches!(ty, SqlType::Decimal(_))
}

/// The KV pair of `row` (table layout) in an index: (key, value).
pub fn encode_index_entry(
    table: &TableDesc,
    index: &IndexDesc,
    row: &[Value],
) -> SqlResult<(Vec<u8>, Vec<u8>)> {
    let e = index_entry(table, index, row)?;
    Ok((e.key, e.value))
}

/// One index entry of a row.
struct Entry {
    key: Vec<u8>,
    value: Vec<u8>,
    /// `Some(index)` when the entry must not exist yet (primary key, unique index
    /// without NULLs).
    unique: Option<IndexId>,
}

/// The entry of `row` in `index`.
/// `row`'s entry in `index`, or `None` when a partial index does not hold
/// the row ([`IndexDesc::holds_row`]).
fn held_entry(table: &TableDesc, index: &IndexDesc, row: &[Value]) -> SqlResult<Option<Entry>> {
    if !index.holds_row(table, row) {
        return Ok(None);
    }
    index_entry(table, index, row).map(Some)
}

fn index_entry(table: &TableDesc, index: &IndexDesc, row: &[Value]) -> SqlResult<Entry> {
    if row.len() != table.columns.len() {
        return Err(row_width(table, row));
    }
    let mut key = keys::index_prefix(table.id as u64, index.id as u64);
    let mut has_null = false;
    for (&c, &dir) in index.columns.iter().zip(&index.directions) {
        let pos = table
            .column_position(c)
            .ok_or_else(|| SqlError::internal(format!("no column with id {c}")))?;
        has_null |= row[pos].is_null();
        encode_key_value(&mut key, &row[pos], table.columns[pos].ty, dir)?;
    }
    if index.id == table.primary_index.id {
        // Key columns whose key form loses information (decimals drop
        // trailing zeros) are also kept in the value ("composite" columns).
        let mut cols: Vec<ColumnId> = table
            .columns
            .iter()
            .filter(|c| !index.columns.contains(&c.id) || is_composite(c.ty))
            .map(|c| c.id)
            .collect();
        cols.sort_unstable();
        return Ok(Entry {
            key,
            value: encode_row_value(table, &cols, row)?,
            unique: Some(index.id),
        });
    }
    let extra = extra_pk_columns(table, index);
    if !index.unique || has_null {
        for (c, dir) in &extra {
            let pos = table
                .column_position(*c)
                .ok_or_else(|| SqlError::internal(format!("no column with id {c}")))?;
            encode_key_value(&mut key, &row[pos], table.columns[pos].ty, *dir)?;
        }
    }
    let mut value_cols: Vec<ColumnId> = index.storing.clone();
    if index.unique {
        value_cols.extend(extra.iter().map(|(c, _)| *c));
    }
    for &c in index.columns.iter().chain(extra.iter().map(|(c, _)| c)) {
        if table.column_by_id(c).is_some_and(|c| is_composite(c.ty)) {
            value_cols.push(c);
        }
    }
    value_cols.sort_unstable();
    value_cols.dedup();
    Ok(Entry {
        key,
        value: encode_row_value(table, &value_cols, row)?,
        unique: (index.unique && !has_null).then_some(index.id),
    })
}

/// Decodes an index entry into a row in table layout (columns the index does not
/// hold are NULL).
pub fn decode_index_entry(
    table: &TableDesc,
    index: &IndexDesc,
    kv: &KeyValue,
) -> SqlResult<Vec<Value>> {
    let mut row = vec![Value::Null; table.columns.len()];
    EntryDecoder::new(table, index)?.decode_into(kv, &mut row)?;
    Ok(row)
}

/// Decodes the entries of one index into rows, with what every entry needs
/// (the index's key prefix, its key columns' types and where each column
/// goes in the row) worked out once rather than per entry.
pub struct EntryDecoder {
    prefix: Vec<u8>,
    /// Key columns in key order: type, direction, slot in the output row
    /// (`None` for a column not output, or no longer in the table).
    key_columns: Vec<(SqlType, Direction, Option<usize>)>,
    /// How many of `key_columns` are the index's own (the rest are the
    /// primary-key suffix).
    n_index: usize,
    /// How many of `key_columns` to decode: those after the last one output
    /// are skipped (`count(*)` decodes no key column).
    key_needed: usize,
    /// The output slot of each value column, indexed by column id
    /// (`None`: skipped); empty when no value column is output.
    value_slots: Vec<Option<usize>>,
    /// Output row width.
    width: usize,
}

impl EntryDecoder {
    /// A decoder of every column in table layout.
    pub fn new(table: &TableDesc, index: &IndexDesc) -> SqlResult<EntryDecoder> {
        EntryDecoder::with_layout(table, index, None, None)
    }

    /// A decoder of the columns `reads` marks (the others stay NULL) in
    /// table layout or, with `project`, of those table positions in that
    /// order. Key columns are always read (to reach the value), but only
    /// output when asked for.
    pub fn with_layout(
        table: &TableDesc,
        index: &IndexDesc,
        reads: Option<&[bool]>,
        project: Option<&[usize]>,
    ) -> SqlResult<EntryDecoder> {
        let n = table.columns.len();
        // Table position -> output slot.
        let mut slot_of: Vec<Option<usize>> = match project {
            Some(p) => {
                let mut slots = vec![None; n];
                for (slot, &pos) in p.iter().enumerate() {
                    if let Some(s) = slots.get_mut(pos) {
                        *s = Some(slot);
                    }
                }
                slots
            }
            None => (0..n).map(Some).collect(),
        };
        if let Some(reads) = reads {
            for (pos, slot) in slot_of.iter_mut().enumerate() {
                if !reads.get(pos).copied().unwrap_or(true) {
                    *slot = None;
                }
            }
        }
        let key_columns: Vec<(SqlType, Direction, Option<usize>)> = full_key_columns(table, index)
            .into_iter()
            .map(|(c, dir)| {
                let slot = table.column_position(c).and_then(|p| slot_of[p]);
                Ok((column_type(table, c)?, dir, slot))
            })
            .collect::<SqlResult<_>>()?;
        let key_needed = key_columns
            .iter()
            .rposition(|(_, _, slot)| slot.is_some())
            .map_or(0, |i| i + 1);
        let mut value_slots: Vec<Option<usize>> = Vec::new();
        for (col, slot) in table.columns.iter().zip(&slot_of) {
            if let Some(slot) = slot {
                let id = col.id as usize;
                if value_slots.len() <= id {
                    value_slots.resize(id + 1, None);
                }
                value_slots[id] = Some(*slot);
            }
        }
        Ok(EntryDecoder {
            prefix: keys::index_prefix(table.id as u64, index.id as u64),
            key_columns,
            n_index: index.columns.len(),
            key_needed,
            value_slots,
            width: project.map_or(n, |p| p.len()),
        })
    }

    /// The width of the rows it fills.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Fills `row` (of [`EntryDecoder::width`], NULLs on entry) from one
    /// index entry.
    pub fn decode_into(&self, kv: &KeyValue, row: &mut [Value]) -> SqlResult<()> {
        let mut rest = kv
            .key
            .strip_prefix(self.prefix.as_slice())
            .ok_or_else(|| SqlError::internal("index entry outside its index"))?;
        for (i, (ty, dir, slot)) in self.key_columns[..self.key_needed].iter().enumerate() {
            if i >= self.n_index && rest.is_empty() {
                // A unique index entry without NULLs: the primary key is in the value.
                break;
            }
            let (v, r) = decode_key_value(rest, *ty, *dir)?;
            rest = r;
            if let Some(out) = slot.and_then(|s| row.get_mut(s)) {
                *out = v;
            }
        }
        self.decode_value(&kv.value.bytes, row)
    }

    /// The value's columns, in column id order, up to the last one output.
    fn decode_value(&self, mut buf: &[u8], row: &mut [Value]) -> SqlResult<()> {
        let last = self.value_slots.len() as u64;
        let mut id: u64 = 0;
        while !buf.is_empty() {
            let head = get_varint(&mut buf)?;
            id += head >> 4;
            if id >= last {
                break;
            }
            let tag = head & 0xf;
            match self.value_slots[id as usize].and_then(|s| row.get_mut(s)) {
                Some(out) => *out = decode_value_column(&mut buf, tag)?,
                None => skip_value_column(&mut buf, tag)?,
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Reads.

/// Scans an index over spans, in index order (or reverse), returning rows in table
/// layout a page at a time.
pub struct RowScanner {
    table: Arc<TableDesc>,
    index_id: IndexId,
    /// Spans still to scan, in scan order (reversed for a reverse scan).
    spans: VecDeque<(Vec<u8>, Vec<u8>)>,
    reverse: bool,
    /// Made by the first page, kept for the others.
    decoder: Option<EntryDecoder>,
    /// The columns to decode; `None`: all ([`EntryDecoder::with_layout`]).
    reads: Option<Arc<[bool]>>,
    /// The table positions to output, in order; `None`: table layout.
    project: Option<Arc<[usize]>>,
}

impl RowScanner {
    /// `spans` are `[start, end)` pairs in ascending order; an empty `end` means
    /// every key starting with `start`.
    pub fn new(
        table: Arc<TableDesc>,
        index_id: IndexId,
        spans: Vec<(Vec<u8>, Vec<u8>)>,
        reverse: bool,
    ) -> RowScanner {
        let mut spans: VecDeque<(Vec<u8>, Vec<u8>)> = spans
            .into_iter()
            .map(|(s, e)| {
                if e.is_empty() {
                    let end = keys::prefix_end(&s);
                    (s, end)
                } else {
                    (s, e)
                }
            })
            .filter(|(s, e)| s < e)
            .collect();
        if reverse {
            spans = spans.into_iter().rev().collect();
        }
        RowScanner {
            table,
            index_id,
            spans,
            reverse,
            decoder: None,
            reads: None,
            project: None,
        }
    }

    /// Decodes only the columns `reads` marks; the others stay NULL.
    pub fn reading(mut self, reads: Option<Arc<[bool]>>) -> RowScanner {
        self.reads = reads;
        self
    }

    /// Outputs only these table positions, in this order.
    pub fn projecting(mut self, project: Option<Arc<[usize]>>) -> RowScanner {
        self.project = project;
        self
    }

    /// The width of the rows it gives.
    pub fn width(&self) -> usize {
        self.project
            .as_ref()
            .map_or(self.table.columns.len(), |p| p.len())
    }

    /// Up to `max_rows` rows (at least one), or `None` when the scan is done.
    pub async fn next_batch(
        &mut self,
        txn: &mut Txn,
        max_rows: usize,
    ) -> SqlResult<Option<Vec<Vec<Value>>>> {
        let mut batch = Batch::new(self.width());
        Ok(
            match self.next_batch_into(txn, max_rows, &mut batch).await? {
                0 => None,
                _ => Some(batch.into_rows()),
            },
        )
    }

    /// Appends up to `max_rows` rows (at least one) to `out`, whose width
    /// must be [`RowScanner::width`]; returns how many (0 when the scan is
    /// done).
    pub async fn next_batch_into(
        &mut self,
        txn: &mut Txn,
        max_rows: usize,
        out: &mut Batch,
    ) -> SqlResult<usize> {
        if out.width() != self.width() {
            return Err(SqlError::internal("scan into a batch of the wrong width"));
        }
        let decoder = match self.decoder.take() {
            Some(d) => d,
            None => EntryDecoder::with_layout(
                &self.table,
                index_of(&self.table, self.index_id)?,
                self.reads.as_deref(),
                self.project.as_deref(),
            )?,
        };
        let result = self
            .fetch(txn, max_rows, |kv| {
                decoder.decode_into(kv, out.push_nulls())
            })
            .await;
        self.decoder = Some(decoder);
        result
    }

    /// Reads up to `max_rows` entries (at least one), handing each to `sink`;
    /// returns how many.
    async fn fetch(
        &mut self,
        txn: &mut Txn,
        max_rows: usize,
        mut sink: impl FnMut(&KeyValue) -> SqlResult<()>,
    ) -> SqlResult<usize> {
        let max_rows = max_rows.max(1);
        let mut n = 0;
        while n < max_rows {
            let Some((start, end)) = self.spans.pop_front() else {
                break;
            };
            let want = max_rows - n;
            if end == keys::key_next(&start) {
                // One key (a primary-key lookup): a point read, which skips
                // the scan's iterator setup over both engine spaces.
                if let Some(bytes) = txn.get(&start).await.map_err(kv_err)? {
                    let kv = KeyValue {
                        key: start,
                        value: tardigrade_kvpb::Value {
                            bytes,
                            timestamp: Default::default(),
                        },
                    };
                    sink(&kv)?;
                    n += 1;
                }
                continue;
            }
            let rows = if self.reverse {
                // A page from the end of the span; the rest of it ends
                // (exclusively) at the last key returned.
                let rows = txn
                    .reverse_scan(&start, &end, want as i64)
                    .await
                    .map_err(kv_err)?;
                if rows.len() >= want
                    && let Some(last) = rows.last()
                    && start < last.key
                {
                    self.spans.push_front((start, last.key.clone()));
                }
                rows
            } else {
                let rows = txn.scan(&start, &end, want as i64).await.map_err(kv_err)?;
                if rows.len() >= want
                    && let Some(last) = rows.last()
                {
                    let resume = keys::key_next(&last.key);
                    if resume < end {
                        self.spans.push_front((resume, end));
                    }
                }
                rows
            };
            for kv in &rows {
                sink(kv)?;
            }
            n += rows.len();
        }
        Ok(n)
    }
}

/// The primary-index key of a row given its primary-key values (in pk order).
pub fn primary_key(table: &TableDesc, pk: &[Value]) -> SqlResult<Vec<u8>> {
    if pk.len() != table.primary_index.columns.len() {
        return Err(SqlError::internal(format!(
            "{} primary key values for table \"{}\"",
            pk.len(),
            table.name
        )));
    }
    index_key_prefix(table, table.primary_index.id, pk)
}

/// The primary-key values of a row in table layout.
pub fn pk_values(table: &TableDesc, row: &[Value]) -> SqlResult<Vec<Value>> {
    table
        .primary_index
        .columns
        .iter()
        .map(|&c| {
            table
                .column_position(c)
                .and_then(|p| row.get(p).cloned())
                .ok_or_else(|| row_width(table, row))
        })
        .collect()
}

/// Full rows by primary key (one batch of point reads).
/// The most reads sent in one KV batch: a lookup join whose keys match
/// many index entries (TPC-H Q7 at scale factor 1: 150,000 customers of the
/// nations of one batch) fetches their primary rows in several batches,
/// each well under the KV layer's per-batch limits.
pub const MAX_READS_PER_BATCH: usize = 4096;

/// Sends read-only `requests` in batches of at most [`MAX_READS_PER_BATCH`];
/// the responses in the requests' order.
pub async fn send_reads(txn: &mut Txn, requests: Vec<Request>) -> SqlResult<Vec<Response>> {
    let mut out = Vec::with_capacity(requests.len());
    for batch in read_batches(requests, MAX_READS_PER_BATCH) {
        out.extend(txn.send(batch).await.map_err(kv_err)?);
    }
    Ok(out)
}

/// `requests` cut into consecutive batches of at most `max` (one batch when
/// they fit, none when there are none).
fn read_batches(mut requests: Vec<Request>, max: usize) -> Vec<Vec<Request>> {
    let mut out = Vec::with_capacity(requests.len().div_ceil(max.max(1)));
    while !requests.is_empty() {
        let rest = requests.split_off(requests.len().min(max.max(1)));
        out.push(requests);
        requests = rest;
    }
    out
}

pub async fn get_rows_by_pk(
    txn: &mut Txn,
    table: &TableDesc,
    pks: &[Vec<Value>],
) -> SqlResult<Vec<Option<Vec<Value>>>> {
    if pks.is_empty() {
        return Ok(Vec::new());
    }
    let reqs = pks
        .iter()
        .map(|pk| {
            Ok(Request::Get {
                key: primary_key(table, pk)?,
            })
        })
        .collect::<SqlResult<Vec<_>>>()?;
    let keys: Vec<Vec<u8>> = reqs
        .iter()
        .map(|r| match r {
            Request::Get { key } => key.clone(),
            _ => Vec::new(),
        })
        .collect();
    let resp = send_reads(txn, reqs).await?;
    let mut out = Vec::with_capacity(pks.len());
    for (key, r) in keys.into_iter().zip(resp) {
        match r {
            Response::Get { value: Some(v) } => {
                let kv = KeyValue { key, value: v };
                out.push(Some(decode_index_entry(table, &table.primary_index, &kv)?));
            }
            Response::Get { value: None } => out.push(None),
            _ => return Err(SqlError::internal("Get: wrong response")),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Writes.

/// A value as it appears in an error detail (`Key (a)=(1) already exists.`).
pub fn display_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => if *b { "t" } else { "f" }.into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Text(s) => s.clone(),
        Value::Bytes(b) => {
            let mut s = String::from("\\x");
            for x in b {
                let _ = write!(s, "{x:02x}");
            }
            s
        }
        Value::Uuid(u) => {
            let h = format!("{u:032x}");
            format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )
        }
        Value::Jsonb(j) => j.to_string(),
        other => format!("{other:?}"),
    }
}

fn key_detail(table: &TableDesc, cols: &[ColumnId], row: &[Value]) -> String {
    let mut names = Vec::new();
    let mut vals = Vec::new();
    for &c in cols {
        if let Some(pos) = table.column_position(c) {
            names.push(table.index_key_text(c, |n| n.to_string()));
            vals.push(row.get(pos).map(display_value).unwrap_or_default());
        }
    }
    format!("Key ({})=({})", names.join(", "), vals.join(", "))
}

fn unique_violation(table: &TableDesc, index_id: IndexId, row: &[Value]) -> SqlError {
    match table.index(index_id).or_else(|| table.mutation(index_id)) {
        Some(index) => SqlError::new(
            codes::UNIQUE_VIOLATION,
            format!(
                "duplicate key value violates unique constraint \"{}\"",
                index.name
            ),
        )
        .with_detail(format!(
            "{} already exists.",
            key_detail(table, &index.columns, row)
        )),
        None => SqlError::new(codes::UNIQUE_VIOLATION, "duplicate key value"),
    }
}

fn check_not_null(table: &TableDesc, row: &[Value]) -> SqlResult<()> {
    if row.len() != table.columns.len() {
        return Err(row_width(table, row));
    }
    for (c, v) in table.columns.iter().zip(row) {
        if !c.nullable && v.is_null() {
            return Err(SqlError::new(
                codes::NOT_NULL_VIOLATION,
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    c.name, table.name
                ),
            ));
        }
    }
    Ok(())
}

/// What a request of a write batch checks, to explain a failed condition.
enum Check {
    None,
    Unique { index: IndexId, row: usize },
}

/// A batch of writes being built.
#[derive(Default)]
struct WriteBatch {
    deletes: Vec<Vec<u8>>,
    puts: Vec<(Vec<u8>, Vec<u8>)>,
    cputs: Vec<(Vec<u8>, Vec<u8>, IndexId, usize)>,
}

impl WriteBatch {
    fn add_entry(&mut self, e: Entry, row: usize, overwrite: bool) {
        match e.unique {
            Some(index) if !overwrite => self.cputs.push((e.key, e.value, index, row)),
            _ => self.puts.push((e.key, e.value)),
        }
    }

    /// Sends deletes first (so a key freed by one row can be taken by another
    /// in the same batch), then the conditional and plain puts.
    async fn send(self, txn: &mut Txn, table: &TableDesc, rows: &[&[Value]]) -> SqlResult<()> {
        let mut reqs = Vec::with_capacity(self.deletes.len() + self.puts.len() + self.cputs.len());
        let mut checks = Vec::with_capacity(reqs.capacity());
        for key in self.deletes {
            reqs.push(Request::Delete { key });
            checks.push(Check::None);
        }
        // Duplicates inside the batch itself.
        let mut seen: HashSet<&[u8]> = HashSet::new();
        for (key, _, index, row) in &self.cputs {
            if !seen.insert(key.as_slice()) {
                return Err(unique_violation(
                    table,
                    *index,
                    rows.get(*row).copied().unwrap_or(&[]),
                ));
            }
        }
        for (key, value, index, row) in self.cputs {
            reqs.push(Request::ConditionalPut {
                key,
                value,
                expected: None,
            });
            checks.push(Check::Unique { index, row });
        }
        for (key, value) in self.puts {
            reqs.push(Request::Put { key, value });
            checks.push(Check::None);
        }
        if reqs.is_empty() {
            return Ok(());
        }
        match txn.send(reqs).await {
            Ok(_) => Ok(()),
            Err(e) => Err(explain(e, &checks, table, rows)),
        }
    }
}

fn explain(e: KvError, checks: &[Check], table: &TableDesc, rows: &[&[Value]]) -> SqlError {
    if let ErrorDetail::ConditionFailed { .. } = e.detail {
        let check = match e.index.and_then(|i| checks.get(i)) {
            Some(c) => Some(c),
            None => checks.iter().find(|c| matches!(c, Check::Unique { .. })),
        };
        if let Some(Check::Unique { index, row }) = check {
            return unique_violation(table, *index, rows.get(*row).copied().unwrap_or(&[]));
        }
        return SqlError::new(codes::UNIQUE_VIOLATION, "duplicate key value");
    }
    kv_err(e)
}

/// Every index a write of a table's rows maintains: the public ones, encoded
/// under the table itself, and the write-only ones being built
/// ([`TableDesc::mutations`]), encoded under [`TableDesc::mutation_layout`]
/// (the table after its pending primary key swap, when there is one).
struct WriteTargets<'a> {
    table: &'a TableDesc,
    layout: std::borrow::Cow<'a, TableDesc>,
}

impl<'a> WriteTargets<'a> {
    fn new(table: &'a TableDesc) -> WriteTargets<'a> {
        WriteTargets {
            table,
            layout: table.mutation_layout(),
        }
    }

    /// (layout, index) for every index to write.
    fn indexes(&self) -> impl Iterator<Item = (&TableDesc, &IndexDesc)> {
        let table = self.table;
        let layout: &TableDesc = &self.layout;
        let public = table.all_indexes().map(move |i| (table, i));
        let building = table.mutations.iter().filter_map(move |m| {
            let index = match table.new_primary {
                Some(_) => layout.index(m.id)?,
                None => m,
            };
            Some((layout, index))
        });
        public.chain(building)
    }

    /// NOT NULL of the table, and of the columns of a primary key being built.
    fn check_not_null(&self, row: &[Value]) -> SqlResult<()> {
        check_not_null(self.table, row)?;
        if self.table.new_primary.is_some() {
            check_not_null(&self.layout, row)?;
        }
        Ok(())
    }
}

/// Recursion guard for cascades.
const MAX_CASCADE_DEPTH: usize = 32;

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Inserts rows (table layout, defaults already filled). `upsert` overwrites
/// rows with the same primary key (fixing their secondary index entries).
pub async fn insert_rows(
    txn: &mut Txn,
    catalog: &Catalog,
    table: &TableDesc,
    rows: &[Vec<Value>],
    upsert: bool,
) -> SqlResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    check_writable(table)?;
    let targets = WriteTargets::new(table);
    for row in rows {
        targets.check_not_null(row)?;
    }
    let slices = || rows.iter().map(|r| r.as_slice());
    check_foreign_keys(txn, catalog, table, slices(), FkScope::OtherTables).await?;
    insert_rows_unchecked_self(txn, catalog, table, rows, upsert, &targets).await?;
    check_foreign_keys(txn, catalog, table, slices(), FkScope::SameTable).await
}

/// [`insert_rows`] after the checks that come before writing.
async fn insert_rows_unchecked_self(
    txn: &mut Txn,
    catalog: &Catalog,
    table: &TableDesc,
    rows: &[Vec<Value>],
    upsert: bool,
    targets: &WriteTargets<'_>,
) -> SqlResult<()> {
    let row_refs: Vec<&[Value]> = rows.iter().map(|r| r.as_slice()).collect();
    if upsert {
        let pks = rows
            .iter()
            .map(|r| pk_values(table, r))
            .collect::<SqlResult<Vec<_>>>()?;
        // Later rows win over earlier ones with the same key.
        let mut last_of: HashMap<Vec<u8>, usize> = HashMap::new();
        for (i, pk) in pks.iter().enumerate() {
            last_of.insert(primary_key(table, pk)?, i);
        }
        let olds = get_rows_by_pk(txn, table, &pks).await?;
        let mut pairs: Vec<(Vec<Value>, Vec<Value>)> = Vec::new();
        let mut fresh: Vec<Vec<Value>> = Vec::new();
        let mut fresh_seen = HashSet::new();
        for (i, (row, old)) in rows.iter().zip(olds).enumerate() {
            let key = primary_key(table, &pks[i])?;
            if last_of.get(&key) != Some(&i) {
                continue;
            }
            match old {
                Some(old) => pairs.push((old, row.clone())),
                None => {
                    if fresh_seen.insert(key) {
                        fresh.push(row.clone());
                    }
                }
            }
        }
        if !pairs.is_empty() {
            // The referenced-key side of an upsert is an update.
            update_rows_inner(txn, catalog, table, &pairs, 0, false).await?;
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let refs: Vec<&[Value]> = fresh.iter().map(|r| r.as_slice()).collect();
        let mut batch = WriteBatch::default();
        for (i, row) in fresh.iter().enumerate() {
            for (layout, index) in targets.indexes() {
                if let Some(e) = held_entry(layout, index, row)? {
                    batch.add_entry(e, i, false);
                }
            }
        }
        return batch.send(txn, table, &refs).await;
    }
    let mut batch = WriteBatch::default();
    for (i, row) in rows.iter().enumerate() {
        for (layout, index) in targets.indexes() {
            if let Some(e) = held_entry(layout, index, row)? {
                batch.add_entry(e, i, false);
            }
        }
    }
    batch.send(txn, table, &row_refs).await
}

fn check_writable(table: &TableDesc) -> SqlResult<()> {
    if table.is_view() {
        return Err(SqlError::new(
            codes::WRONG_OBJECT_TYPE,
            format!("cannot change view \"{}\"", table.name),
        ));
    }
    if table.is_sequence() {
        return Err(SqlError::new(
            codes::WRONG_OBJECT_TYPE,
            format!("cannot change sequence \"{}\"", table.name),
        ));
    }
    Ok(())
}

/// Which foreign keys a check covers: those referencing other tables are
/// checked before the statement writes (failing early); those referencing
/// the table itself after, since a row may reference another row of the
/// same statement (`INSERT INTO emp VALUES (2, 1), (1, NULL)`), as
/// PostgreSQL checks at the end of the statement.
#[derive(Clone, Copy, PartialEq)]
enum FkScope {
    OtherTables,
    SameTable,
}

/// Checks that each row's foreign keys (those in `scope`) reference existing
/// rows (MATCH SIMPLE: a key with a NULL is not checked). One batch of point
/// reads.
async fn check_foreign_keys<'r>(
    txn: &mut Txn,
    catalog: &Catalog,
    table: &TableDesc,
    rows: impl Iterator<Item = &'r [Value]> + Clone,
    scope: FkScope,
) -> SqlResult<()> {
    let in_scope =
        |fk: &&ForeignKeyDesc| (fk.referenced_table == table.id) == (scope == FkScope::SameTable);
    if !table.foreign_keys.iter().any(|fk| in_scope(&fk)) {
        return Ok(());
    }
    let mut reqs = Vec::new();
    let mut what: Vec<(&ForeignKeyDesc, &'r [Value], Arc<TableDesc>)> = Vec::new();
    let mut seen = HashSet::new();
    for fk in table.foreign_keys.iter().filter(in_scope) {
        let parent = if fk.referenced_table == table.id {
            Arc::new(table.clone())
        } else {
            catalog.table_by_id(txn, fk.referenced_table).await?
        };
        let (index, order) = referenced_index(&parent, fk)?;
        for row in rows.clone() {
            let mut vals = Vec::with_capacity(fk.columns.len());
            let mut null = false;
            for &i in &order {
                let pos = table
                    .column_position(fk.columns[i])
                    .ok_or_else(|| SqlError::internal("foreign key column missing"))?;
                let v = row.get(pos).cloned().unwrap_or(Value::Null);
                null |= v.is_null();
                vals.push(v);
            }
            if null {
                continue;
            }
            let key = index_key_prefix(&parent, index, &vals)?;
            if !seen.insert(key.clone()) {
                continue;
            }
            // The referenced index is unique and the values are not NULL, so
            // the entry's key is exactly this (no primary-key suffix).
            reqs.push(Request::Get { key });
            what.push((fk, row, parent.clone()));
        }
    }
    if reqs.is_empty() {
        return Ok(());
    }
    let resp = txn.send(reqs).await.map_err(kv_err)?;
    for (r, (fk, row, parent)) in resp.into_iter().zip(what) {
        let found = match r {
            Response::Get { value } => value.is_some(),
            _ => return Err(SqlError::internal("Get: wrong response")),
        };
        if !found {
            return Err(SqlError::new(
                codes::FOREIGN_KEY_VIOLATION,
                format!(
                    "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
                    table.name, fk.name
                ),
            )
            .with_detail(format!(
                "{} is not present in table \"{}\".",
                key_detail(table, &fk.columns, row),
                parent.name
            )));
        }
    }
    Ok(())
}

/// Checks the foreign keys of `table` for rows (table layout), e.g. when a
/// foreign key is added to a table with rows.
pub async fn check_rows_foreign_keys(
    txn: &mut Txn,
    catalog: &Catalog,
    table: &TableDesc,
    rows: &[Vec<Value>],
) -> SqlResult<()> {
    let slices = || rows.iter().map(|r| r.as_slice());
    check_foreign_keys(txn, catalog, table, slices(), FkScope::OtherTables).await?;
    check_foreign_keys(txn, catalog, table, slices(), FkScope::SameTable).await
}

/// The index of `parent` whose columns are exactly the foreign key's referenced
/// columns, and the order of the foreign key's columns in that index.
pub fn referenced_index(
    parent: &TableDesc,
    fk: &ForeignKeyDesc,
) -> SqlResult<(IndexId, Vec<usize>)> {
    for index in parent.all_indexes() {
        if index.unique
            && !index.is_partial()
            && index.columns.len() == fk.referenced_columns.len()
            && index
                .columns
                .iter()
                .all(|c| fk.referenced_columns.contains(c))
        {
            let order = index
                .columns
                .iter()
                .map(|c| {
                    fk.referenced_columns
                        .iter()
                        .position(|r| r == c)
                        .unwrap_or(0)
                })
                .collect();
            return Ok((index.id, order));
        }
    }
    Err(SqlError::new(
        codes::INVALID_FOREIGN_KEY,
        format!(
            "there is no unique constraint matching given keys for referenced table \"{}\"",
            parent.name
        ),
    ))
}

/// An index of `child` whose leading columns are the foreign key's columns (in
/// some order), with the positions of the fk columns in its key order.
pub fn referencing_index(child: &TableDesc, fk: &ForeignKeyDesc) -> Option<(IndexId, Vec<usize>)> {
    let n = fk.columns.len();
    child.all_indexes().find_map(|index| {
        if index.is_partial() {
            return None;
        }
        let cols = full_key_columns(child, index);
        if cols.len() < n {
            return None;
        }
        let lead: Vec<ColumnId> = cols[..n].iter().map(|(c, _)| *c).collect();
        if lead.iter().all(|c| fk.columns.contains(c)) {
            let order = lead
                .iter()
                .map(|c| fk.columns.iter().position(|f| f == c).unwrap_or(0))
                .collect();
            Some((index.id, order))
        } else {
            None
        }
    })
}

/// Deletes rows (full old rows, table layout) and all their index entries;
/// applies the foreign-key actions of tables referencing them.
pub async fn delete_rows(
    txn: &mut Txn,
    catalog: &Catalog,
    table: &TableDesc,
    rows: &[Vec<Value>],
) -> SqlResult<()> {
    delete_rows_inner(txn, catalog, table, rows, 0).await
}

fn delete_rows_inner<'a>(
    txn: &'a mut Txn,
    catalog: &'a Catalog,
    table: &'a TableDesc,
    rows: &'a [Vec<Value>],
    depth: usize,
) -> BoxFut<'a, SqlResult<()>> {
    Box::pin(async move {
        if rows.is_empty() {
            return Ok(());
        }
        check_writable(table)?;
        if depth > MAX_CASCADE_DEPTH {
            return Err(SqlError::new(
                codes::PROGRAM_LIMIT_EXCEEDED,
                "foreign key cascade is too deep",
            ));
        }
        let targets = WriteTargets::new(table);
        let mut batch = WriteBatch::default();
        for row in rows {
            for (layout, index) in targets.indexes() {
                if let Some(e) = held_entry(layout, index, row)? {
                    batch.deletes.push(e.key);
                }
            }
        }
        let refs: Vec<&[Value]> = rows.iter().map(|r| r.as_slice()).collect();
        batch.send(txn, table, &refs).await?;
        let changed: Vec<(&[Value], Option<&[Value]>)> = refs.iter().map(|r| (*r, None)).collect();
        referencing_actions(txn, catalog, table, &changed, depth).await
    })
}

/// The rows of `child` that reference, through `fk`, the old key of each of
/// `changed` whose key is non-NULL and changes: (position in `changed`, full
/// child rows), only for those referenced at all. Through the index on the
/// foreign key's columns when there is one (a point read per key), else one
/// scan of `child` for all of them (as PostgreSQL does without an index).
async fn referencing_rows(
    txn: &mut Txn,
    table: &TableDesc,
    child: &TableDesc,
    fk: &ForeignKeyDesc,
    changed: &[(&[Value], Option<&[Value]>)],
) -> SqlResult<Vec<(usize, Vec<Vec<Value>>)>> {
    // Each changed row's old key, in the foreign key's column order.
    let mut keys_of = Vec::new();
    for (i, (old, new)) in changed.iter().enumerate() {
        let mut vals = Vec::with_capacity(fk.columns.len());
        let mut null = false;
        let mut same = new.is_some();
        for &rc in &fk.referenced_columns {
            let pos = table
                .column_position(rc)
                .ok_or_else(|| SqlError::internal("referenced column missing"))?;
            let v = old.get(pos).cloned().unwrap_or(Value::Null);
            if let Some(new) = new
                && new.get(pos).map(|n| n.sort_key()) != Some(v.sort_key())
            {
                same = false;
            }
            null |= v.is_null();
            vals.push(v);
        }
        if !(null || same) {
            keys_of.push((i, vals));
        }
    }
    if keys_of.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let Some((index_id, order)) = referencing_index(child, fk) else {
        let positions = fk
            .columns
            .iter()
            .map(|&c| {
                child
                    .column_position(c)
                    .ok_or_else(|| SqlError::internal("foreign key column missing"))
            })
            .collect::<SqlResult<Vec<_>>>()?;
        let wanted: HashMap<Vec<Vec<u8>>, usize> = keys_of
            .iter()
            .enumerate()
            .map(|(k, (_, vals))| (vals.iter().map(|v| v.sort_key()).collect(), k))
            .collect();
        let mut found: Vec<Vec<Vec<Value>>> = vec![Vec::new(); keys_of.len()];
        let mut scanner = full_scan(Arc::new(child.clone()));
        while let Some(rows) = scanner.next_batch(txn, BACKFILL_CHUNK).await? {
            for row in rows {
                let key: Vec<Vec<u8>> = positions.iter().map(|&p| row[p].sort_key()).collect();
                if let Some(&k) = wanted.get(&key) {
                    found[k].push(row);
                }
            }
        }
        for ((i, _), rows) in keys_of.iter().zip(found) {
            if !rows.is_empty() {
                out.push((*i, rows));
            }
        }
        return Ok(out);
    };
    let mut reqs = Vec::with_capacity(keys_of.len());
    for (_, vals) in &keys_of {
        let in_index_order: Vec<Value> = order.iter().map(|&o| vals[o].clone()).collect();
        let start = index_key_prefix(child, index_id, &in_index_order)?;
        let end = keys::prefix_end(&start);
        reqs.push(Request::Scan {
            span: Span::new(start, end),
        });
    }
    let resp = txn.send(reqs).await.map_err(kv_err)?;
    let index = index_of(child, index_id)?.clone();
    for (r, (i, _)) in resp.into_iter().zip(&keys_of) {
        let Response::Scan { rows: kvs, .. } = r else {
            return Err(SqlError::internal("Scan: wrong response"));
        };
        if kvs.is_empty() {
            continue;
        }
        let partial = kvs
            .iter()
            .map(|kv| decode_index_entry(child, &index, kv))
            .collect::<SqlResult<Vec<_>>>()?;
        let pks = partial
            .iter()
            .map(|r| pk_values(child, r))
            .collect::<SqlResult<Vec<_>>>()?;
        let full: Vec<Vec<Value>> = get_rows_by_pk(txn, child, &pks)
            .await?
            .into_iter()
            .flatten()
            .collect();
        out.push((*i, full));
    }
    Ok(out)
}

/// For rows of `table` deleted (new = None) or updated (new = Some) whose
/// referenced key changed: restrict, cascade or set null in referencing tables.
async fn referencing_actions(
    txn: &mut Txn,
    catalog: &Catalog,
    table: &TableDesc,
    changed: &[(&[Value], Option<&[Value]>)],
    depth: usize,
) -> SqlResult<()> {
    for (child_id, fk_name) in &table.referenced_by {
        let child = if *child_id == table.id {
            Arc::new(table.clone())
        } else {
            catalog.table_by_id(txn, *child_id).await?
        };
        let Some(fk) = child
            .foreign_keys
            .iter()
            .find(|f| &f.name == fk_name)
            .cloned()
        else {
            continue;
        };
        let matches = referencing_rows(txn, table, &child, &fk, changed).await?;
        for (i, full) in matches {
            let (old, new) = changed[i];
            let action = if new.is_some() {
                fk.on_update
            } else {
                fk.on_delete
            };
            match action {
                ReferentialAction::NoAction | ReferentialAction::Restrict => {
                    return Err(SqlError::new(
                        codes::FOREIGN_KEY_VIOLATION,
                        format!(
                            "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"",
                            table.name, fk.name, child.name
                        ),
                    )
                    .with_detail(format!(
                        "{} is still referenced from table \"{}\".",
                        key_detail(table, &fk.referenced_columns, old),
                        child.name
                    )));
                }
                _ => {}
            }
            match (action, new) {
                (ReferentialAction::Cascade, None) => {
                    delete_rows_inner(txn, catalog, &child, &full, depth + 1).await?;
                }
                (ReferentialAction::Cascade, Some(new)) => {
                    let pairs = full
                        .into_iter()
                        .map(|old_child| {
                            let mut n = old_child.clone();
                            for (k, &c) in fk.columns.iter().enumerate() {
                                if let (Some(cp), Some(pp)) = (
                                    child.column_position(c),
                                    table.column_position(fk.referenced_columns[k]),
                                ) {
                                    n[cp] = new[pp].clone();
                                }
                            }
                            (old_child, n)
                        })
                        .collect::<Vec<_>>();
                    let pairs = with_generated(catalog, &child, pairs)?;
                    update_rows_inner(txn, catalog, &child, &pairs, depth + 1, true).await?;
                }
                (ReferentialAction::SetNull | ReferentialAction::SetDefault, _) => {
                    if action == ReferentialAction::SetDefault
                        && fk
                            .columns
                            .iter()
                            .any(|&c| child.column_by_id(c).is_some_and(|c| c.default.is_some()))
                    {
                        // TODO(issue 4): evaluate the defaults.
                        return Err(SqlError::unsupported(
                            "ON DELETE/UPDATE SET DEFAULT with a non-NULL default",
                        ));
                    }
                    let pairs = full
                        .into_iter()
                        .map(|old_child| {
                            let mut n = old_child.clone();
                            for &c in &fk.columns {
                                if let Some(cp) = child.column_position(c) {
                                    n[cp] = Value::Null;
                                }
                            }
                            (old_child, n)
                        })
                        .collect::<Vec<_>>();
                    let pairs = with_generated(catalog, &child, pairs)?;
                    update_rows_inner(txn, catalog, &child, &pairs, depth + 1, true).await?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// `pairs` (old row, new row) with the new rows' stored generated columns
/// (and index expressions) recomputed: a cascade changed their columns.
fn with_generated(
    catalog: &Catalog,
    table: &TableDesc,
    pairs: Vec<(Vec<Value>, Vec<Value>)>,
) -> SqlResult<Vec<(Vec<Value>, Vec<Value>)>> {
    if table.columns.iter().all(|c| c.generation_expr().is_none()) {
        return Ok(pairs);
    }
    let (olds, mut news): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
    catalog.fill_generated_columns(table, &mut news)?;
    Ok(olds.into_iter().zip(news).collect())
}

/// Updates rows: (old full row, new full row), table layout. Rewrites only the
/// index entries that change; a changed primary key moves the row.
pub async fn update_rows(
    txn: &mut Txn,
    catalog: &Catalog,
    table: &TableDesc,
    pairs: &[(Vec<Value>, Vec<Value>)],
) -> SqlResult<()> {
    update_rows_inner(txn, catalog, table, pairs, 0, true).await
}

fn update_rows_inner<'a>(
    txn: &'a mut Txn,
    catalog: &'a Catalog,
    table: &'a TableDesc,
    pairs: &'a [(Vec<Value>, Vec<Value>)],
    depth: usize,
    check_fks: bool,
) -> BoxFut<'a, SqlResult<()>> {
    Box::pin(async move {
        if pairs.is_empty() {
            return Ok(());
        }
        check_writable(table)?;
        if depth > MAX_CASCADE_DEPTH {
            return Err(SqlError::new(
                codes::PROGRAM_LIMIT_EXCEEDED,
                "foreign key cascade is too deep",
            ));
        }
        let targets = WriteTargets::new(table);
        for (_, new) in pairs {
            targets.check_not_null(new)?;
        }
        // Foreign keys of this table whose columns changed.
        let mut self_checks: Vec<&[Value]> = Vec::new();
        if check_fks || !table.foreign_keys.is_empty() {
            let changed_rows: Vec<&[Value]> = pairs
                .iter()
                .filter(|(old, new)| {
                    table.foreign_keys.iter().any(|fk| {
                        fk.columns.iter().any(|&c| {
                            table
                                .column_position(c)
                                .is_some_and(|p| old[p].sort_key() != new[p].sort_key())
                        })
                    })
                })
                .map(|(_, new)| new.as_slice())
                .collect();
            if !changed_rows.is_empty() {
                check_foreign_keys(
                    txn,
                    catalog,
                    table,
                    changed_rows.iter().copied(),
                    FkScope::OtherTables,
                )
                .await?;
                self_checks = changed_rows;
            }
        }
        let mut batch = WriteBatch::default();
        for (i, (old, new)) in pairs.iter().enumerate() {
            for (layout, index) in targets.indexes() {
                match (
                    held_entry(layout, index, old)?,
                    held_entry(layout, index, new)?,
                ) {
                    (Some(o), Some(n)) if o.key == n.key => {
                        if o.value != n.value {
                            batch.puts.push((n.key, n.value));
                        }
                    }
                    (o, n) => {
                        if let Some(o) = o {
                            batch.deletes.push(o.key);
                        }
                        if let Some(n) = n {
                            batch.add_entry(n, i, false);
                        }
                    }
                }
            }
        }
        let refs: Vec<&[Value]> = pairs.iter().map(|(_, n)| n.as_slice()).collect();
        batch.send(txn, table, &refs).await?;
        check_foreign_keys(
            txn,
            catalog,
            table,
            self_checks.into_iter(),
            FkScope::SameTable,
        )
        .await?;
        if !table.referenced_by.is_empty() {
            let changed: Vec<(&[Value], Option<&[Value]>)> = pairs
                .iter()
                .map(|(o, n)| (o.as_slice(), Some(n.as_slice())))
                .collect();
            referencing_actions(txn, catalog, table, &changed, depth).await?;
        }
        Ok(())
    })
}

/// A comparable form of a value for change detection (NULL ≠ anything).
trait SortKey {
    fn sort_key(&self) -> Vec<u8>;
}

impl SortKey for Value {
    fn sort_key(&self) -> Vec<u8> {
        let mut b = Vec::new();
        if encode_value_column(&mut b, 0, self).is_err() {
            b.push(0xff);
        }
        if self.is_null() {
            b.push(0xfe);
        }
        b
    }
}

/// Writes every index entry of rows that already exist in the primary index
/// into one secondary index (CREATE INDEX backfill). Unique conflicts are
/// 23505.
pub async fn backfill_index(txn: &mut Txn, table: &TableDesc, index_id: IndexId) -> SqlResult<()> {
    let index = index_of(table, index_id)?.clone();
    let arc = Arc::new(table.clone());
    let mut scanner = full_scan(arc);
    while let Some(rows) = scanner.next_batch(txn, BACKFILL_CHUNK).await? {
        let mut batch = WriteBatch::default();
        for (i, row) in rows.iter().enumerate() {
            if let Some(e) = held_entry(table, &index, row)? {
                batch.add_entry(e, i, false);
            }
        }
        let refs: Vec<&[Value]> = rows.iter().map(|r| r.as_slice()).collect();
        batch.send(txn, table, &refs).await?;
    }
    Ok(())
}

/// What one chunk of an online backfill did.
#[derive(Debug)]
pub struct BackfillChunk {
    /// Rows of the primary index read.
    pub rows: usize,
    /// Index entries written (entries already present are not rewritten).
    pub written: usize,
    /// Where the next chunk starts (`None`: the table is done).
    pub resume: Option<Vec<u8>>,
}

/// One chunk of an online backfill ([`crate::schemachange`]): reads up to
/// `max_rows` rows of `table`'s primary index from `resume` on and writes
/// their entries into the write-only indexes `index_ids` (mutations of
/// `table`, encoded under [`TableDesc::mutation_layout`]), all in `txn`.
///
/// The writes must be idempotent with those of concurrent DML, which
/// maintains the same write-only indexes (see the protocol in
/// `schemachange`): a non-unique entry (its key ends with the primary key)
/// is a plain `Put` of the same key and value DML would write; a unique entry
/// (and an entry of a new primary index) is read first — absent: `Put`;
/// present with the same value: it is this row's entry, written by DML after
/// the index became write-only, and is left alone; present with another
/// value: another row has the key, 23505. (Every entry present is the entry
/// of a live row as of `txn`'s snapshot — DML removes the entries of rows it
/// deletes or moves — so an entry with this key and another value belongs to
/// another row.) NOT NULL of a new primary key's columns is 23502 here.
pub async fn backfill_chunk(
    txn: &mut Txn,
    table: &TableDesc,
    index_ids: &[IndexId],
    resume: &[u8],
    max_rows: usize,
) -> SqlResult<BackfillChunk> {
    let layout = table.mutation_layout();
    let mut targets: Vec<&IndexDesc> = Vec::with_capacity(index_ids.len());
    for &id in index_ids {
        let index = match table.new_primary {
            Some(_) => table.mutation(id).and_then(|_| layout.index(id)),
            None => table.mutation(id),
        };
        targets.push(index.ok_or_else(|| {
            SqlError::internal(format!(
                "index {id} of table \"{}\" is not being built",
                table.name
            ))
        })?);
    }
    let (_, end) = index_span(table, table.primary_index.id);
    let max_rows = max_rows.max(1);
    let kvs = txn
        .scan(resume, &end, max_rows as i64)
        .await
        .map_err(kv_err)?;
    let next = match kvs.last() {
        Some(last) if kvs.len() >= max_rows => {
            let k = keys::key_next(&last.key);
            (k < end).then_some(k)
        }
        _ => None,
    };
    let rows = kvs
        .iter()
        .map(|kv| decode_index_entry(table, &table.primary_index, kv))
        .collect::<SqlResult<Vec<_>>>()?;
    let mut puts: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    // Unique entries to check first: (key, value, index, row).
    let mut unique: Vec<(Vec<u8>, Vec<u8>, IndexId, usize)> = Vec::new();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        if table.new_primary.is_some() {
            check_key_not_null(table, &layout, row)?;
        }
        for index in &targets {
            let Some(e) = held_entry(&layout, index, row)? else {
                continue;
            };
            match e.unique {
                Some(ix) => {
                    if !seen.insert(e.key.clone()) {
                        return Err(unique_violation(table, ix, row));
                    }
                    unique.push((e.key, e.value, ix, i));
                }
                None => puts.push((e.key, e.value)),
            }
        }
    }
    if !unique.is_empty() {
        let reqs = unique
            .iter()
            .map(|(k, ..)| Request::Get { key: k.clone() })
            .collect();
        let resp = txn.send(reqs).await.map_err(kv_err)?;
        for (r, (key, value, ix, row)) in resp.into_iter().zip(unique) {
            match r {
                Response::Get { value: None } => puts.push((key, value)),
                Response::Get { value: Some(v) } if v.bytes == value => {}
                Response::Get { value: Some(_) } => {
                    return Err(unique_violation(table, ix, &rows[row]));
                }
                _ => return Err(SqlError::internal("Get: wrong response")),
            }
        }
    }
    let written = puts.len();
    if !puts.is_empty() {
        let reqs = puts
            .into_iter()
            .map(|(key, value)| Request::Put { key, value })
            .collect();
        // With the commit: a chunk whose entries fall in one range then
        // commits in one phase, without intents to write and resolve.
        txn.write_at_commit(reqs);
    }
    Ok(BackfillChunk {
        rows: rows.len(),
        written,
        resume: next,
    })
}

/// 23502 when a column of `layout`'s primary key (a primary key being
/// added to `table`) is NULL in `row` (table layout), with PostgreSQL's
/// message for ALTER TABLE.
pub fn check_key_not_null(table: &TableDesc, layout: &TableDesc, row: &[Value]) -> SqlResult<()> {
    for &c in &layout.primary_index.columns {
        if let Some(p) = table.column_position(c)
            && row.get(p).is_none_or(|v| v.is_null())
        {
            return Err(SqlError::new(
                codes::NOT_NULL_VIOLATION,
                format!(
                    "column \"{}\" of relation \"{}\" contains null values",
                    table.columns[p].name, table.name
                ),
            ));
        }
    }
    Ok(())
}

/// Deletes up to `max_keys` keys of `[start, end)` in `txn`; returns where
/// the rest starts (`None`: nothing left). For clearing the span of an index
/// nothing uses any more, a page per transaction.
pub async fn clear_span_page(
    txn: &mut Txn,
    start: &[u8],
    end: &[u8],
    max_keys: usize,
) -> SqlResult<Option<Vec<u8>>> {
    let kvs = txn
        .scan(start, end, max_keys.max(1) as i64)
        .await
        .map_err(kv_err)?;
    let Some(last) = kvs.last() else {
        return Ok(None);
    };
    let stop = keys::key_next(&last.key);
    txn.delete_range(start, &stop).await.map_err(kv_err)?;
    Ok((kvs.len() >= max_keys && stop < end.to_vec()).then_some(stop))
}

/// Checks that every index of `table` (public, and write-only ones being
/// built) holds exactly the entries of the rows in its primary index — no
/// entry missing, none extra, none with another value — reading through
/// `txn`; returns the number of rows, or an internal error (XX000) naming
/// the first difference. For tests and debugging: it reads every index
/// whole.
pub async fn check_indexes(txn: &mut Txn, table: &Arc<TableDesc>) -> SqlResult<usize> {
    let mut scanner = full_scan(table.clone());
    let mut rows = Vec::new();
    while let Some(batch) = scanner.next_batch(txn, BACKFILL_CHUNK).await? {
        rows.extend(batch);
    }
    let targets = WriteTargets::new(table);
    for (layout, index) in targets.indexes() {
        let differs = |what: String| {
            SqlError::internal(format!(
                "index \"{}\" of table \"{}\" differs from its rows: {what}",
                index.name, table.name
            ))
        };
        let mut want: HashMap<Vec<u8>, Vec<u8>> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let Some(e) = held_entry(layout, index, row)? else {
                continue;
            };
            if want.insert(e.key, e.value).is_some() {
                return Err(differs("two rows share an entry".into()));
            }
        }
        let (start, end) = index_span(table, index.id);
        let have = txn.scan(&start, &end, 0).await.map_err(kv_err)?;
        if have.len() != want.len() {
            return Err(differs(format!(
                "{} entries for {} rows",
                have.len(),
                rows.len()
            )));
        }
        if let Some(kv) = have
            .iter()
            .find(|kv| want.get(&kv.key) != Some(&kv.value.bytes))
        {
            return Err(differs(format!("no row has the entry {:?}", kv.key)));
        }
    }
    Ok(rows.len())
}

/// A scan of every row of a table (its primary index).
pub fn full_scan(table: Arc<TableDesc>) -> RowScanner {
    let pk = table.primary_index.id;
    let span = index_span(&table, pk);
    RowScanner::new(table, pk, vec![span], false)
}

/// Rows per page of a backfill.
pub const BACKFILL_CHUNK: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    fn get(i: u32) -> Request {
        Request::Get {
            key: i.to_be_bytes().to_vec(),
        }
    }

    fn key(r: &Request) -> Vec<u8> {
        match r {
            Request::Get { key } => key.clone(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn reads_go_in_batches_under_the_limit_in_order() {
        let requests: Vec<Request> = (0..10_000).map(get).collect();
        let batches = read_batches(requests, MAX_READS_PER_BATCH);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![4096, 4096, 1808]
        );
        let keys: Vec<Vec<u8>> = batches.iter().flatten().map(key).collect();
        let expected: Vec<Vec<u8>> = (0..10_000).map(get).map(|r| key(&r)).collect();
        assert_eq!(keys, expected, "every request once, in order");
        assert_eq!(read_batches((0..5).map(get).collect(), 4096).len(), 1);
        assert!(read_batches(Vec::new(), 4096).is_empty());
    }
}
