//! Local storage: the LSM engine behind the [`Engine`] trait, and MVCC on top of it.
//!
//! The engine (fjall) knows only bytes in three key spaces ([`Space`]): versioned
//! MVCC values, the separated lock table (intents), and unversioned raw keys
//! (transaction records, range-local and range-id-local state, later the Raft
//! log). MVCC ([`mvcc`]) layers timestamps, tombstones, intents, conflicts and
//! statistics over it. Everything above this crate reads and writes through
//! these two modules only.

pub mod batch;
pub mod engine;
pub mod journal_check;
pub mod mvcc;
pub mod txn;

pub use batch::Batch;
pub use engine::{
    DEFAULT_BLOCK_CACHE_BYTES, Engine, EngineError, Reader, Slice, Space, StoreSpec,
    block_cache_bytes, set_block_cache_bytes,
};
pub use mvcc::{MvccError, MvccStats};
pub use txn::{TxnId, TxnMeta};
