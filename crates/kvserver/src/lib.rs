//! The server side of KV: `Store` → `Replica`, request evaluation and the
//! concurrency machinery (latches, lock table, timestamp cache, transaction
//! records and the wait queue that detects deadlocks).
//!
//! A request's path is described in `replica.rs`; evaluation in `eval.rs`.

mod eval;
mod latch;
mod lock_table;
mod replica;
mod store;
mod tscache;
mod txnrecord;
mod txnwait;

pub use eval::TXN_LIVENESS_THRESHOLD;
pub use store::{MAX_BATCH_REQUESTS, Store, StoreConfig};
