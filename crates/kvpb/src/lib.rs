//! The KV API shared by clients and servers: batches of requests and their
//! responses, transactions, and typed errors.
//!
//! These are the native Rust types the rest of the system works with. The
//! wire form (protobuf, `proto` module) converts to and from them at the RPC
//! boundary, where malformed messages are rejected with `InvalidArgument`.

mod api;
pub mod codec;
mod descriptor;
mod error;
pub mod zone;

pub use api::*;
pub use codec::DecodeError;
pub use descriptor::*;
pub use error::*;
pub use tardigrade_hlc::Timestamp;
pub use tardigrade_storage::txn::{TxnId, TxnMeta};
