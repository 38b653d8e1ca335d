//! Raft traffic between nodes: batches of opaque Raft messages, one unary
//! RPC per destination node per scheduler round.
//!
//! The messages are bytes here (rust-protobuf encoded `eraftpb::Message`), so
//! this crate does not depend on Raft. The receiving side implements
//! [`RaftHandler`] (kvserver's `Store`); the sending side uses
//! [`RaftClient`], and node-to-node faults are injected with
//! [`crate::FaultInjector::admit`] by whoever sends.

use std::sync::Arc;

use tardigrade_kvpb::{ErrorDetail, KvError};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::client::{endpoint, status_to_error};
use crate::identity::{NodeIdentity, PeerCheck, admit};
use crate::pb;
use crate::pb::raft_client::RaftClient as PbRaftClient;
use crate::pb::raft_server::Raft;
use crate::server::MAX_MESSAGE_SIZE;
use crate::transport::NodeId;

/// One Raft message of one range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftMessage {
    pub range_id: u64,
    pub from_replica: u64,
    pub to_replica: u64,
    /// The encoded `eraftpb::Message`.
    pub message: Vec<u8>,
    /// A quiescing heartbeat: the follower stops ticking if caught up.
    pub quiesce: bool,
}

/// The Raft messages of one scheduler round from one node to another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftMessageBatch {
    pub from_node: NodeId,
    pub to_node: NodeId,
    pub cluster_id: u64,
    pub messages: Vec<RaftMessage>,
}

/// The receiving side of Raft traffic. Must not block for long: it is called
/// on the RPC server's tasks.
pub trait RaftHandler: Send + Sync {
    /// Accepts a batch addressed to this node, or refuses it (wrong node,
    /// wrong cluster, shutting down).
    fn handle_raft_batch(&self, batch: RaftMessageBatch) -> Result<(), KvError>;
}

impl From<RaftMessageBatch> for pb::RaftMessageBatch {
    fn from(b: RaftMessageBatch) -> Self {
        pb::RaftMessageBatch {
            from_node: b.from_node,
            to_node: b.to_node,
            cluster_id: b.cluster_id,
            messages: b
                .messages
                .into_iter()
                .map(|m| pb::RaftMessage {
                    range_id: m.range_id,
                    from_replica: m.from_replica,
                    to_replica: m.to_replica,
                    message: m.message,
                    quiesce: m.quiesce,
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::RaftMessageBatch> for RaftMessageBatch {
    type Error = KvError;
    fn try_from(b: pb::RaftMessageBatch) -> Result<Self, KvError> {
        if b.from_node == 0 || b.to_node == 0 {
            return Err(KvError::invalid("raft batch without from/to node"));
        }
        let mut messages = Vec::with_capacity(b.messages.len());
        for m in b.messages {
            if m.range_id == 0 || m.from_replica == 0 || m.to_replica == 0 {
                return Err(KvError::invalid(
                    "raft message without range or replica ids",
                ));
            }
            messages.push(RaftMessage {
                range_id: m.range_id,
                from_replica: m.from_replica,
                to_replica: m.to_replica,
                message: m.message,
                quiesce: m.quiesce,
            });
        }
        Ok(RaftMessageBatch {
            from_node: b.from_node,
            to_node: b.to_node,
            cluster_id: b.cluster_id,
            messages,
        })
    }
}

pub(crate) struct RaftService {
    pub(crate) handler: Arc<dyn RaftHandler>,
    pub(crate) identity: Option<Arc<NodeIdentity>>,
    pub(crate) peers: Option<Arc<dyn PeerCheck>>,
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn raft_messages(
        &self,
        request: Request<pb::RaftMessageBatch>,
    ) -> Result<Response<pb::RaftAck>, Status> {
        admit(
            self.identity.as_deref(),
            self.peers.as_deref(),
            request.metadata(),
            true,
        )
        .await?;
        let batch = RaftMessageBatch::try_from(request.into_inner())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        match self.handler.handle_raft_batch(batch) {
            Ok(()) => Ok(Response::new(pb::RaftAck {})),
            Err(e) => match e.detail {
                ErrorDetail::InvalidArgument(msg) => Err(Status::invalid_argument(msg)),
                ErrorDetail::Unavailable(msg) => Err(Status::unavailable(msg)),
                other => Err(Status::internal(other.to_string())),
            },
        }
    }
}

/// Sends Raft batches to the node at one address. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RaftClient {
    addr: String,
    client: PbRaftClient<Channel>,
    identity: Option<Arc<NodeIdentity>>,
}

impl RaftClient {
    /// Connects on first use. Must be called inside a Tokio runtime.
    pub fn connect_lazy(addr: &str) -> Result<RaftClient, KvError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(KvError::internal(
                "RaftClient::connect_lazy called outside a Tokio runtime",
            ));
        }
        let channel = endpoint(addr)?.connect_lazy();
        let client = PbRaftClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        Ok(RaftClient {
            addr: addr.to_string(),
            client,
            identity: None,
        })
    }

    /// Stamps `identity` on every batch (the receiver refuses Raft traffic
    /// without a cluster id, or from another cluster).
    pub fn with_identity(mut self, identity: Arc<NodeIdentity>) -> RaftClient {
        self.identity = Some(identity);
        self
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one batch; a transport failure is `Unavailable`.
    pub async fn send(&self, batch: RaftMessageBatch) -> Result<(), KvError> {
        let mut client = self.client.clone();
        let mut req = Request::new(pb::RaftMessageBatch::from(batch));
        if let Some(id) = &self.identity {
            id.stamp(req.metadata_mut());
        }
        client
            .raft_messages(req)
            .await
            .map_err(|s| status_to_error(&self.addr, s))?;
        Ok(())
    }
}
