//! The SQL layer: sessions, parsing, catalog, row encoding, planning and execution.
//!
//! SQL talks only to the transactional KV client ([`tardigrade_kv::Txn`]), so it works
//! the same on one node and on a cluster, with any node as the gateway.
//!
//! - [`session`]: a client session — transaction state machine, prepared statements,
//!   automatic retries of implicit transactions. The pgwire front end drives it.
//! - [`parse`]: `sqlparser` (PostgreSQL dialect) plus the CockroachDB statements we
//!   support, rewritten before parsing.
//! - [`catalog`]: databases, tables, indexes, sequences and views as descriptors stored
//!   in the system key space under numeric ids, cached per node and versioned so a
//!   change made on one node is seen by the next statement on every node.
//! - [`rowenc`]: rows ↔ KV pairs (primary key in the key, other columns in the value;
//!   secondary index entries) and the reads/writes of table data.
//! - [`ddl`]: schema changes (CREATE/DROP/ALTER/TRUNCATE), with index backfills.
//! - [`gc`]: clearing the data of dropped tables and indexes in the background
//!   once the drop committed.
//! - [`schemachange`]: online index builds (write-only indexes, chunked
//!   backfills) for CREATE INDEX and ADD PRIMARY KEY outside explicit
//!   transactions.
//! - [`plan`]: name resolution and type checking from the AST into a relational
//!   expression tree, index selection, `EXPLAIN`.
//! - [`stats`]: table statistics (row, distinct and null counts, histograms):
//!   collection, storage and the node's cache; the optimizer's cost model
//!   reads them.
//! - [`exec`]: operators over batches of rows.

pub mod batch;
pub mod catalog;
pub mod ddl;
pub mod error;
pub mod exec;
pub mod gc;
pub mod node;
pub mod parse;
pub mod plan;
mod retry;
pub mod rowenc;
pub mod schemachange;
pub mod session;
mod stack;
pub mod stats;

pub use exec::RowSink;
pub use batch::Batch;
pub use session::{Column, Prepared, QueryOutput, Session, SqlNode, TransactionStatus};
pub use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};
