//! The catalog: descriptors for databases, tables (with their columns, indexes and
//! constraints), sequences and views, stored in the system key space under numeric
//! ids. Names never appear in data keys — ids do.
//!
//! TODO(issue 4): storage, id allocation, name resolution and the per-node cache.

use std::sync::Arc;

use tardigrade_encoding::Direction;
use tardigrade_kv::Txn;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType};

pub type DescId = u32;
pub type ColumnId = u32;
pub type IndexId = u32;

/// A column of a table. `default` is the SQL text of the DEFAULT expression
/// (`unique_rowid()` for the hidden `rowid`, `nextval('t_c_seq')` for SERIAL).
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnDesc {
    pub id: ColumnId,
    pub name: String,
    pub ty: SqlType,
    pub nullable: bool,
    pub default: Option<String>,
    /// Not shown by `SELECT *` (the implicit `rowid`).
    pub hidden: bool,
}

/// An index. The primary index has id 1 and holds every column; a secondary index
/// holds its key columns, the primary key columns (suffix, or in the value when
/// unique) and its `STORING` columns.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexDesc {
    pub id: IndexId,
    pub name: String,
    pub unique: bool,
    pub columns: Vec<ColumnId>,
    pub directions: Vec<Direction>,
    pub storing: Vec<ColumnId>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CheckDesc {
    pub name: String,
    /// SQL text of the boolean expression over the table's columns.
    pub expr: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferentialAction {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ForeignKeyDesc {
    pub name: String,
    pub columns: Vec<ColumnId>,
    pub referenced_table: DescId,
    pub referenced_columns: Vec<ColumnId>,
    pub on_delete: ReferentialAction,
    pub on_update: ReferentialAction,
}

/// A table (or a view, when `view_query` is set).
#[derive(Clone, Debug, PartialEq)]
pub struct TableDesc {
    pub id: DescId,
    pub parent_id: DescId,
    pub name: String,
    pub columns: Vec<ColumnDesc>,
    pub primary_index: IndexDesc,
    pub indexes: Vec<IndexDesc>,
    pub checks: Vec<CheckDesc>,
    /// Foreign keys from this table.
    pub foreign_keys: Vec<ForeignKeyDesc>,
    /// Foreign keys of other tables that reference this one: (table id, fk name).
    pub referenced_by: Vec<(DescId, String)>,
    /// SQL text of a view's query; views have no indexes and no data.
    pub view_query: Option<String>,
    pub version: u64,
    pub next_column_id: ColumnId,
    pub next_index_id: IndexId,
}

/// The node's view of the catalog: reads descriptors through the caller's
/// transaction and caches them by version.
pub struct Catalog {
    db: tardigrade_kv::Db,
}

impl Catalog {
    pub fn new(db: tardigrade_kv::Db) -> Catalog {
        Catalog { db }
    }

    pub fn db(&self) -> &tardigrade_kv::Db {
        &self.db
    }

    /// Creates `defaultdb` and `postgres` if the cluster has no databases yet.
    pub async fn ensure_bootstrapped(&self) -> SqlResult<()> {
        Ok(())
    }

    pub async fn database_id(&self, _txn: &mut Txn, _name: &str) -> SqlResult<Option<DescId>> {
        Err(SqlError::unsupported("catalog: not yet"))
    }

    pub async fn resolve_table(
        &self,
        _txn: &mut Txn,
        _database: &str,
        _schema: Option<&str>,
        _name: &str,
    ) -> SqlResult<Option<Arc<TableDesc>>> {
        Err(SqlError::unsupported("catalog: not yet"))
    }

    pub async fn table_by_id(&self, _txn: &mut Txn, _id: DescId) -> SqlResult<Arc<TableDesc>> {
        Err(SqlError::unsupported("catalog: not yet"))
    }

    pub async fn list_tables(
        &self,
        _txn: &mut Txn,
        _database: &str,
    ) -> SqlResult<Vec<Arc<TableDesc>>> {
        Err(SqlError::unsupported("catalog: not yet"))
    }

    pub async fn next_sequence_value(
        &self,
        _txn: &mut Txn,
        _database: &str,
        _sequence_name: &str,
    ) -> SqlResult<i64> {
        Err(SqlError::unsupported("catalog: not yet"))
    }
}
