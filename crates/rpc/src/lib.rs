//! Node-to-node and client-to-node transport: the KV API over gRPC.
//!
//! - [`pb`]: the generated protobuf types and the `Internal` service
//!   (`proto/kvpb.proto`).
//! - [`convert`]: native ⇄ protobuf conversion; what comes off the wire is
//!   validated and malformed requests are refused with `InvalidArgument`.
//! - [`serve`]: the server, handing batches to any [`tardigrade_kvpb::Sender`].
//! - [`RpcSender`]: the client, itself a `Sender`.
//! - [`RaftHandler`] / [`RaftClient`]: batched Raft messages between nodes
//!   (the `Raft` service), served with [`serve_with_raft`].
//! - [`NodeHandler`] / [`NodeClient`]: the `Node` service (init, join, first
//!   range), served with [`serve_node`] beside the other two.
//! - [`identity`]: the sender's cluster id, node id and version on every
//!   node-to-node RPC; servers refuse other clusters and versions.
//! - [`Transport`] / [`FaultInjector`]: the seam node-to-node traffic goes
//!   through, so tests can partition, drop and delay it.
//! - [`partition_file`]: the same seam for real processes, driven by a file
//!   named in `TARDIGRADE_TESTING_PARTITION_FILE` (the nemesis suite).
//! - [`latency`]: simulated distance between regions ([`LatencyMap`],
//!   [`PeerLatency`], [`DelayedSender`]) for `demo --global` and
//!   `start --testing-latency`.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("tardigrade.kvpb");
}

/// The generated types of the `Node` service (`proto/node.proto`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod node_pb {
    tonic::include_proto!("tardigrade.node");
}

mod client;
pub mod convert;
pub mod identity;
pub mod latency;
mod node;
pub mod partition_file;
mod raft;
mod server;
mod transport;

pub use client::{CONNECT_TIMEOUT, RpcSender};
pub use identity::{NodeIdentity, PeerCheck, PeerFuture};
pub use latency::{DelayedSender, LatencyMap, PeerLatency};
pub use node::{
    JoinGrant, NodeClient, NodeError, NodeFuture, NodeHandler, PingReply, RangeConsistency,
    RangeInfo, ReplicaConsistency,
};
pub use raft::{RaftClient, RaftHandler, RaftMessage, RaftMessageBatch};
pub use server::{MAX_MESSAGE_SIZE, NodeServices, ServeError, serve, serve_node, serve_with_raft};
pub use transport::{
    FaultInjector, FaultyTransport, GrpcTransport, NodeId, Transport, normalize_addr,
};
