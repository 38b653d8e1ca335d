//! Rows ↔ KV pairs, and the reads and writes of table data.
//!
//! TODO(issue 4): implemented by the catalog work.

use std::sync::Arc;

use tardigrade_kv::Txn;
use tardigrade_sqltypes::{SqlError, SqlResult, Value};

use crate::catalog::{Catalog, ColumnId, IndexId, TableDesc};

/// A unique, roughly time-ordered INT8 for the hidden `rowid` column.
pub fn unique_rowid(node_id: u32) -> i64 {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    (micros << 15) | (node_id as i64 & 0x7fff)
}

pub fn index_key_prefix(
    _table: &TableDesc,
    _index_id: IndexId,
    _values: &[Value],
) -> SqlResult<Vec<u8>> {
    Err(SqlError::unsupported("rowenc: not yet"))
}

pub fn index_span(table: &TableDesc, index_id: IndexId) -> (Vec<u8>, Vec<u8>) {
    let p = tardigrade_encoding::keys::index_prefix(table.id as u64, index_id as u64);
    let end = tardigrade_encoding::keys::prefix_end(&p);
    (p, end)
}

pub fn index_covers(table: &TableDesc, _index_id: IndexId) -> Vec<ColumnId> {
    table.columns.iter().map(|c| c.id).collect()
}

pub struct RowScanner {
    _table: Arc<TableDesc>,
}

impl RowScanner {
    pub fn new(
        table: Arc<TableDesc>,
        _index_id: IndexId,
        _spans: Vec<(Vec<u8>, Vec<u8>)>,
        _reverse: bool,
    ) -> RowScanner {
        RowScanner { _table: table }
    }

    pub async fn next_batch(
        &mut self,
        _txn: &mut Txn,
        _max_rows: usize,
    ) -> SqlResult<Option<Vec<Vec<Value>>>> {
        Err(SqlError::unsupported("rowenc: not yet"))
    }
}

pub async fn get_rows_by_pk(
    _txn: &mut Txn,
    _table: &TableDesc,
    _pks: &[Vec<Value>],
) -> SqlResult<Vec<Option<Vec<Value>>>> {
    Err(SqlError::unsupported("rowenc: not yet"))
}

pub async fn insert_rows(
    _txn: &mut Txn,
    _catalog: &Catalog,
    _table: &TableDesc,
    _rows: &[Vec<Value>],
    _upsert: bool,
) -> SqlResult<()> {
    Err(SqlError::unsupported("rowenc: not yet"))
}

pub async fn delete_rows(
    _txn: &mut Txn,
    _catalog: &Catalog,
    _table: &TableDesc,
    _rows: &[Vec<Value>],
) -> SqlResult<()> {
    Err(SqlError::unsupported("rowenc: not yet"))
}

pub async fn update_rows(
    _txn: &mut Txn,
    _catalog: &Catalog,
    _table: &TableDesc,
    _pairs: &[(Vec<Value>, Vec<Value>)],
) -> SqlResult<()> {
    Err(SqlError::unsupported("rowenc: not yet"))
}
