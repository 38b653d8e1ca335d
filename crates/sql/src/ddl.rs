//! Schema changes: CREATE/DROP DATABASE, TABLE, INDEX, VIEW, SEQUENCE; ALTER TABLE;
//! TRUNCATE.
//!
//! TODO(issue 4): implemented by the catalog work.

use std::sync::Arc;

use sqlparser::ast::Statement;
use tardigrade_kv::Txn;
use tardigrade_sqltypes::SqlResult;

use crate::session::{QueryOutput, SqlNode};

/// Runs a schema statement; `Ok(None)` when `statement` is not one.
pub async fn execute(
    _node: &Arc<SqlNode>,
    _txn: &mut Txn,
    _database: &str,
    _statement: &Statement,
) -> SqlResult<Option<QueryOutput>> {
    Ok(None)
}
