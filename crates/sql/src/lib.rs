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
//! - [`vtable`]: `pg_catalog` and `information_schema` tables generated per
//!   statement from the descriptors its transaction sees (psql's `\d`, ORMs'
//!   reflection).
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
//! - [`asof`]: `AS OF SYSTEM TIME`: statements and transactions reading the
//!   database as it was at a past time.
//!
//! # Layering
//!
//! The top-level modules depend one way: each one uses only modules listed
//! before it here (lowest first), so there is no import cycle among them
//! (`tests/layering.rs` reads the sources and checks it).
//!
//! 1. `stack`: growing the stack of deep recursions.
//! 2. [`error`]: KV errors as SQL errors.
//! 3. [`batch`]: rows and batches of rows.
//! 4. [`advisory`]: the node's advisory locks (`pg_advisory_lock` and
//!    friends), held by sessions and transactions.
//! 5. [`parse`]: SQL text to statements; identifier normalization.
//! 6. [`settings`]: a session's run-time parameters (SET, SHOW,
//!    `current_setting`).
//! 7. [`catalog`]: descriptors, their storage and the node's cache.
//! 8. [`vtable`]: the system catalogs (`pg_catalog`, `information_schema`)
//!    as virtual tables generated from descriptors.
//! 9. [`rowenc`]: rows ↔ KV pairs, reads and writes of table data.
//! 10. [`stats`]: table statistics.
//! 11. [`node`]: the node's shared SQL state ([`SqlNode`]) and statement
//!     output ([`QueryOutput`]).
//! 12. [`plan`]: binding (queries and DML), scalar evaluation, optimization,
//!     `EXPLAIN`.
//! 13. [`asof`]: AS OF SYSTEM TIME clauses to timestamps.
//! 14. [`exec`]: running plans (queries, DML).
//! 15. `retry`: retried transactions of their own, for background work.
//! 16. [`gc`]: clearing dropped data.
//! 17. [`ddl`]: schema changes in the statement's transaction.
//! 18. [`schemachange`]: online schema changes, driving [`ddl`]'s first step.
//! 19. [`opttest`]: plans over a test catalog with injected statistics,
//!     without a KV store (the plan golden tests).
//! 20. [`cursor`]: SQL cursors (DECLARE, FETCH, MOVE, CLOSE).
//! 21. [`session`]: sessions; sends each statement to [`exec`] or [`ddl`].

pub mod advisory;
pub mod asof;
pub mod batch;
pub mod catalog;
pub mod cursor;
pub mod ddl;
pub mod error;
pub mod exec;
pub mod gc;
pub mod node;
pub mod opttest;
pub mod parse;
pub mod plan;
mod retry;
pub mod rowenc;
pub mod schemachange;
pub mod session;
pub mod settings;
mod stack;
pub mod stats;
pub mod vtable;

pub use batch::Batch;
pub use exec::RowSink;
pub use session::{Column, Prepared, QueryOutput, Session, SqlNode, TransactionStatus};
pub use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};
