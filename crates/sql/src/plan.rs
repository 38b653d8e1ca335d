//! Planning: from the AST to a relational expression tree.
//!
//! TODO(issue 4): binder, type checking, index selection, EXPLAIN.

use std::sync::Arc;

use sqlparser::ast::Statement;
use tardigrade_kv::Txn;
use tardigrade_sqltypes::{SqlResult, SqlType};

use crate::session::{Column, SqlNode};

/// The parameter types and result columns of a statement, for Describe.
pub async fn describe(
    _node: &Arc<SqlNode>,
    _txn: &mut Txn,
    _database: &str,
    _statement: &Statement,
    param_types: &[SqlType],
) -> SqlResult<(Vec<SqlType>, Option<Vec<Column>>)> {
    Ok((param_types.to_vec(), None))
}
