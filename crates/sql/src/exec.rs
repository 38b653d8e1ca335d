//! Execution: runs a statement inside a KV transaction.
//!
//! TODO(issue 4): operators over batches of rows.

use std::sync::Arc;

use sqlparser::ast::Statement;
use tardigrade_kv::Txn;
use tardigrade_sqltypes::{SqlError, SqlResult, Value};

use crate::session::{QueryOutput, SqlNode};

/// Runs one (non transaction-control) statement in `txn`.
pub async fn execute_statement(
    _node: &Arc<SqlNode>,
    _txn: &mut Txn,
    _database: &str,
    statement: &Statement,
    _params: &[Value],
) -> SqlResult<QueryOutput> {
    Err(SqlError::unsupported(format!(
        "unsupported statement: {statement}"
    )))
}
