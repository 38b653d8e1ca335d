//! The server side of KV: `Store` → `Replica`, multi-Raft replication,
//! leases, request evaluation and the concurrency machinery (latches, lock
//! table, timestamp cache, transaction records and the wait queue that
//! detects deadlocks).
//!
//! A request's path is described in `replica.rs`; evaluation in `eval.rs`;
//! replication in `scheduler.rs` (the Raft loop), `raft_storage.rs` (the log
//! on the engine) and `command.rs` (what goes through Raft); node-to-node
//! Raft traffic in `transport.rs`; replica changes in `replica_change.rs`,
//! the allocator in `allocator.rs` and the replicate queue (and replica GC
//! check) in `replicate_queue.rs`.

pub mod allocator;
mod command;
pub mod consistency;
mod eval;
pub mod gc_queue;
mod intent_resolver;
mod internal_txn;
mod latch;
mod lease_duration;
mod lock_table;
pub mod metrics;
mod raft_storage;
mod replica;
pub mod replica_change;
pub mod replicate_queue;
mod scheduler;
pub mod span_config;
mod split;
mod store;
mod transport;
mod tscache;
mod txnrecord;
mod txnwait;

pub use eval::TXN_LIVENESS_THRESHOLD;
pub use raft_storage::{RAFT_INITIAL_INDEX, RAFT_INITIAL_TERM};
pub use replica::Replica;
pub use store::{
    MAX_BATCH_REQUESTS, STORE_LOCAL_PREFIX, Store, StoreConfig, range_index_key,
    range_tombstone_key,
};
pub use transport::{
    GrpcRaftTransport, LocalRaftTransport, NodeResolver, RaftHandler, RaftMessage,
    RaftMessageBatch, RaftTransport,
};
