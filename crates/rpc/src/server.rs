//! The server side of the `Internal` service: decodes batches, hands them to
//! a [`Sender`] (the node's store), and encodes the outcome.

use std::future::Future;
use std::sync::Arc;

use tardigrade_kvpb::{BatchRequest, KvError, Sender};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::convert::batch_result_to_pb;
use crate::identity::{NodeIdentity, PeerCheck, admit};
use crate::pb;
use crate::pb::internal_server::{Internal, InternalServer};
use crate::pb::raft_server::RaftServer;
use crate::raft::{RaftHandler, RaftService};

/// Why [`serve`] stopped with an error.
pub type ServeError = tonic::transport::Error;

/// The largest message either side accepts or sends.
pub const MAX_MESSAGE_SIZE: usize = 256 << 20;

struct InternalService {
    sender: Arc<dyn Sender>,
    identity: Option<Arc<NodeIdentity>>,
    peers: Option<Arc<dyn PeerCheck>>,
}

#[tonic::async_trait]
impl Internal for InternalService {
    async fn batch(
        &self,
        request: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        // A node of another cluster (or version, or a node id the cluster
        // does not know) is refused before anything is decoded; clients
        // without an identity (CLI, workloads) are served.
        admit(
            self.identity.as_deref(),
            self.peers.as_deref(),
            request.metadata(),
            false,
        )
        .await?;
        let ba = match BatchRequest::try_from(request.into_inner()) {
            Ok(ba) => ba,
            Err(e) => {
                tracing::debug!(error = %e, "rejected malformed batch");
                return Ok(Response::new(batch_result_to_pb(Err(e))));
            }
        };
        // Evaluate on its own task: a panic while serving one batch becomes an
        // Internal error for that batch instead of killing the connection, and
        // a client that goes away does not cancel an evaluation half way.
        let sender = Arc::clone(&self.sender);
        let result = match tokio::spawn(async move { sender.send(ba).await }).await {
            Ok(result) => result,
            Err(join) => {
                tracing::error!(error = %join, "batch evaluation panicked");
                Err(KvError::internal(format!(
                    "batch evaluation failed: {join}"
                )))
            }
        };
        Ok(Response::new(batch_result_to_pb(result)))
    }
}

/// Serves the `Internal` service on `listener`, executing batches with
/// `sender`, until `shutdown` completes; then stops accepting connections and
/// returns once the in-flight requests are answered.
///
/// KV errors travel inside the response's `error` field, never as a gRPC
/// status; a request that decodes but fails validation is answered with an
/// `InvalidArgument` error. (Bytes that are not protobuf at all are refused by
/// the gRPC layer itself, with a gRPC status.)
pub async fn serve(
    listener: tokio::net::TcpListener,
    sender: Arc<dyn Sender>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_with_raft(listener, sender, None, shutdown).await
}

/// [`serve`], plus the `Raft` service handing Raft batches to `raft` when
/// one is given.
pub async fn serve_with_raft(
    listener: tokio::net::TcpListener,
    sender: Arc<dyn Sender>,
    raft: Option<Arc<dyn RaftHandler>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let service = InternalServer::new(InternalService {
        sender,
        identity: None,
        peers: None,
    })
    .max_decoding_message_size(MAX_MESSAGE_SIZE)
    .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let raft = raft.map(|handler| {
        RaftServer::new(RaftService {
            handler,
            identity: None,
            peers: None,
        })
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE)
    });
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(service)
        .add_optional_service(raft)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// What a cluster node serves: `Internal` (batches to `sender`), `Raft`
/// and `Node`, checking callers against `identity` and `peers`.
pub struct NodeServices {
    pub sender: Arc<dyn Sender>,
    pub raft: Arc<dyn RaftHandler>,
    pub node: Arc<dyn crate::node::NodeHandler>,
    /// This node's identity: requests from another cluster or an
    /// incompatible version are refused once it has a cluster id.
    pub identity: Arc<NodeIdentity>,
    /// Whether a node id that claims to be of this cluster is known.
    pub peers: Arc<dyn PeerCheck>,
}

/// Every service a cluster node serves on its one listener, until
/// `shutdown` completes.
pub async fn serve_node(
    listener: tokio::net::TcpListener,
    services: NodeServices,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let NodeServices {
        sender,
        raft,
        node,
        identity,
        peers,
    } = services;
    let service = InternalServer::new(InternalService {
        sender,
        identity: Some(identity.clone()),
        peers: Some(peers.clone()),
    })
    .max_decoding_message_size(MAX_MESSAGE_SIZE)
    .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let raft = RaftServer::new(RaftService {
        handler: raft,
        identity: Some(identity.clone()),
        peers: Some(peers.clone()),
    })
    .max_decoding_message_size(MAX_MESSAGE_SIZE)
    .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let node = crate::node_pb::node_server::NodeServer::new(crate::node::NodeService {
        handler: node,
        identity: Some(identity),
        peers: Some(peers),
    });
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(service)
        .add_service(raft)
        .add_service(node)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
