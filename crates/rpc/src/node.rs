//! The `Node` service: node-level requests that come before (or beside) the
//! KV API — initializing a new cluster, joining one, and finding the first
//! range. The server side hands them to a [`NodeHandler`]; [`NodeClient`]
//! calls them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tardigrade_kvpb::{ErrorDetail, KvError};
use tonic::{Request, Response, Status};

use crate::identity::{NodeIdentity, PeerCheck, admit};
use crate::node_pb;
use crate::node_pb::node_client::NodeClient as PbNodeClient;
use crate::node_pb::node_server::Node;

/// A boxed future, for the object-safe handler trait.
pub type NodeFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, NodeError>> + Send + 'a>>;

/// Why a node request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// `init` on a node that is already part of a cluster.
    #[error("cluster has already been initialized")]
    AlreadyInitialized,
    /// The node cannot serve this yet (not initialized, or still joining).
    #[error("node not ready: {0}")]
    NotReady(String),
    /// Incompatible binary version, wrong cluster, bad input.
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Other(String),
}

/// What a node answers to join requests and first-range lookups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinGrant {
    pub cluster_id: Vec<u8>,
    pub node_id: u64,
    pub store_id: u64,
    pub first_range: Vec<u8>,
    /// Node descriptors (stored form) known to the granting node.
    pub nodes: Vec<Vec<u8>>,
}

/// What a node answers to a peer's heartbeat ([`NodeClient::ping`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PingReply {
    /// The answering node's id (0 before it belongs to a cluster).
    pub node_id: u64,
    /// Its physical clock when it answered (nanoseconds since the epoch).
    pub wall_nanos: i64,
    pub cluster_id: Vec<u8>,
    /// Node descriptors (stored form) it knows.
    pub nodes: Vec<Vec<u8>>,
    /// The first range's descriptor (stored form), empty if unknown.
    pub first_range: Vec<u8>,
}

/// Serves the `Node` service.
pub trait NodeHandler: Send + Sync {
    /// Initializes a new cluster with this node as node 1.
    fn bootstrap(&self) -> NodeFuture<'_, (Vec<u8>, u64)>;
    /// Admits a new node: allocates its node and store ids.
    fn join(
        &self,
        address: String,
        locality: String,
        binary_version: String,
    ) -> NodeFuture<'_, JoinGrant>;
    /// What a node that is not yet in touch with KV needs: the first range's
    /// descriptor, the cluster id and the known node descriptors (stored forms).
    fn first_range(&self) -> Option<JoinGrant>;
    /// The replicas this node holds (empty before it has a store).
    fn ranges(&self) -> (u64, Vec<RangeInfo>) {
        (0, Vec::new())
    }
    /// A peer's heartbeat carrying the node descriptors it knows; answers
    /// with this node's clock and what it knows.
    fn ping(&self, nodes: Vec<Vec<u8>>) -> PingReply {
        let _ = nodes;
        PingReply::default()
    }
    /// This node's digest of consistency check `checksum_id` on `range_id`:
    /// `(applied index, SHA-256)`.
    fn collect_checksum(&self, range_id: u64, checksum_id: u64) -> NodeFuture<'_, (u64, Vec<u8>)> {
        let _ = (range_id, checksum_id);
        Box::pin(async { Err(NodeError::NotReady("no consistency checker".into())) })
    }
    /// Fences this node's replica of `range_id`, found diverged.
    fn fence_replica(&self, range_id: u64, reason: String) -> NodeFuture<'_, ()> {
        let _ = (range_id, reason);
        Box::pin(async { Err(NodeError::NotReady("no consistency checker".into())) })
    }
    /// Checks every range whose lease this node holds.
    fn check_consistency(&self) -> NodeFuture<'_, (u64, Vec<RangeConsistency>)> {
        Box::pin(async { Err(NodeError::NotReady("no consistency checker".into())) })
    }
}

/// One range's consistency check, as `CheckConsistency` reports it.
pub type RangeConsistency = node_pb::RangeConsistency;
/// One replica's part in it.
pub type ReplicaConsistency = node_pb::ReplicaConsistency;

/// At most this many node descriptors travel in one ping (a peer sending
/// more is refused: descriptors are small and clusters are not that big).
const MAX_PING_NODES: usize = 10_000;

/// Longest reason a fence request may carry.
const MAX_FENCE_REASON: usize = 4096;

/// One replica a node holds, as the `Ranges` RPC reports it.
pub type RangeInfo = node_pb::RangeInfo;

pub(crate) struct NodeService {
    pub handler: Arc<dyn NodeHandler>,
    pub identity: Option<Arc<NodeIdentity>>,
    pub peers: Option<Arc<dyn PeerCheck>>,
}

impl NodeService {
    /// Refuses a node of another cluster or an incompatible version (a
    /// joining node has no cluster id yet and passes).
    async fn admit(&self, md: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        admit(self.identity.as_deref(), self.peers.as_deref(), md, false).await
    }
}

fn status(e: NodeError) -> Status {
    match e {
        NodeError::AlreadyInitialized => Status::already_exists(e.to_string()),
        NodeError::NotReady(_) => Status::unavailable(e.to_string()),
        NodeError::Refused(_) => Status::failed_precondition(e.to_string()),
        NodeError::Other(_) => Status::internal(e.to_string()),
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn bootstrap(
        &self,
        request: Request<node_pb::BootstrapRequest>,
    ) -> Result<Response<node_pb::BootstrapResponse>, Status> {
        self.admit(request.metadata()).await?;
        let (cluster_id, node_id) = self.handler.bootstrap().await.map_err(status)?;
        Ok(Response::new(node_pb::BootstrapResponse {
            cluster_id,
            node_id,
        }))
    }

    async fn join(
        &self,
        request: Request<node_pb::JoinRequest>,
    ) -> Result<Response<node_pb::JoinResponse>, Status> {
        self.admit(request.metadata()).await?;
        let r = request.into_inner();
        if r.address.is_empty() || r.address.len() > 1024 {
            return Err(Status::invalid_argument("join: bad address"));
        }
        let g = self
            .handler
            .join(r.address, r.locality, r.binary_version)
            .await
            .map_err(status)?;
        Ok(Response::new(node_pb::JoinResponse {
            cluster_id: g.cluster_id,
            node_id: g.node_id,
            store_id: g.store_id,
            first_range: g.first_range,
            nodes: g.nodes,
        }))
    }

    async fn first_range(
        &self,
        request: Request<node_pb::FirstRangeRequest>,
    ) -> Result<Response<node_pb::FirstRangeResponse>, Status> {
        self.admit(request.metadata()).await?;
        let g = self.handler.first_range().unwrap_or_default();
        Ok(Response::new(node_pb::FirstRangeResponse {
            descriptor: g.first_range,
            cluster_id: g.cluster_id,
            nodes: g.nodes,
        }))
    }

    async fn ranges(
        &self,
        request: Request<node_pb::RangesRequest>,
    ) -> Result<Response<node_pb::RangesResponse>, Status> {
        self.admit(request.metadata()).await?;
        let (node_id, ranges) = self.handler.ranges();
        Ok(Response::new(node_pb::RangesResponse { node_id, ranges }))
    }

    async fn ping(
        &self,
        request: Request<node_pb::PingRequest>,
    ) -> Result<Response<node_pb::PingResponse>, Status> {
        self.admit(request.metadata()).await?;
        // Only a node of this cluster (admitted above with its cluster id)
        // may teach us addresses; anyone else just gets the answer.
        let from_member = request
            .metadata()
            .contains_key(crate::identity::CLUSTER_ID_HEADER);
        let r = request.into_inner();
        if r.nodes.len() > MAX_PING_NODES {
            return Err(Status::invalid_argument("ping: too many node descriptors"));
        }
        let g = self
            .handler
            .ping(if from_member { r.nodes } else { Vec::new() });
        Ok(Response::new(node_pb::PingResponse {
            node_id: g.node_id,
            wall_nanos: g.wall_nanos,
            cluster_id: g.cluster_id,
            nodes: g.nodes,
            first_range: g.first_range,
        }))
    }

    async fn collect_checksum(
        &self,
        request: Request<node_pb::CollectChecksumRequest>,
    ) -> Result<Response<node_pb::CollectChecksumResponse>, Status> {
        self.admit(request.metadata()).await?;
        let r = request.into_inner();
        let (applied_index, digest) = self
            .handler
            .collect_checksum(r.range_id, r.checksum_id)
            .await
            .map_err(status)?;
        Ok(Response::new(node_pb::CollectChecksumResponse {
            applied_index,
            digest,
        }))
    }

    async fn fence_replica(
        &self,
        request: Request<node_pb::FenceReplicaRequest>,
    ) -> Result<Response<node_pb::FenceReplicaResponse>, Status> {
        self.admit(request.metadata()).await?;
        let r = request.into_inner();
        if r.reason.len() > MAX_FENCE_REASON {
            return Err(Status::invalid_argument("fence: reason too long"));
        }
        self.handler
            .fence_replica(r.range_id, r.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(node_pb::FenceReplicaResponse {}))
    }

    async fn check_consistency(
        &self,
        request: Request<node_pb::CheckConsistencyRequest>,
    ) -> Result<Response<node_pb::CheckConsistencyResponse>, Status> {
        self.admit(request.metadata()).await?;
        let (node_id, ranges) = self.handler.check_consistency().await.map_err(status)?;
        Ok(Response::new(node_pb::CheckConsistencyResponse {
            node_id,
            ranges,
        }))
    }
}

/// A client for another node's `Node` service.
#[derive(Clone)]
pub struct NodeClient {
    inner: PbNodeClient<tonic::transport::Channel>,
    identity: Option<Arc<NodeIdentity>>,
}

fn from_status(s: Status) -> NodeError {
    match s.code() {
        tonic::Code::AlreadyExists => NodeError::AlreadyInitialized,
        tonic::Code::Unavailable => NodeError::NotReady(s.message().to_string()),
        tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument => {
            NodeError::Refused(s.message().to_string())
        }
        _ => NodeError::Other(s.message().to_string()),
    }
}

impl NodeClient {
    /// Connects lazily (on first use); must be called inside a Tokio runtime.
    pub fn connect_lazy(addr: &str) -> Result<NodeClient, KvError> {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| {
                KvError::new(ErrorDetail::InvalidArgument(format!(
                    "bad address {addr:?}: {e}"
                )))
            })?
            .connect_timeout(crate::CONNECT_TIMEOUT);
        Ok(NodeClient {
            inner: PbNodeClient::new(endpoint.connect_lazy()),
            identity: None,
        })
    }

    /// Stamps `identity` on every request: the receiving node refuses a
    /// node of another cluster or an incompatible version.
    pub fn with_identity(mut self, identity: Arc<NodeIdentity>) -> NodeClient {
        self.identity = Some(identity);
        self
    }

    fn request<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        if let Some(id) = &self.identity {
            id.stamp(req.metadata_mut());
        }
        req
    }

    pub async fn bootstrap(&self) -> Result<(Vec<u8>, u64), NodeError> {
        let r = self
            .inner
            .clone()
            .bootstrap(self.request(node_pb::BootstrapRequest {}))
            .await
            .map_err(from_status)?
            .into_inner();
        Ok((r.cluster_id, r.node_id))
    }

    pub async fn join(
        &self,
        address: &str,
        locality: &str,
        binary_version: &str,
    ) -> Result<JoinGrant, NodeError> {
        let r = self
            .inner
            .clone()
            .join(self.request(node_pb::JoinRequest {
                address: address.to_string(),
                locality: locality.to_string(),
                binary_version: binary_version.to_string(),
            }))
            .await
            .map_err(from_status)?
            .into_inner();
        Ok(JoinGrant {
            cluster_id: r.cluster_id,
            node_id: r.node_id,
            store_id: r.store_id,
            first_range: r.first_range,
            nodes: r.nodes,
        })
    }

    /// The node's id and the replicas it holds.
    pub async fn ranges(&self) -> Result<(u64, Vec<RangeInfo>), NodeError> {
        let r = self
            .inner
            .clone()
            .ranges(self.request(node_pb::RangesRequest {}))
            .await
            .map_err(from_status)?
            .into_inner();
        Ok((r.node_id, r.ranges))
    }

    /// A heartbeat: sends the node descriptors this node knows, returns the
    /// peer's id, clock reading and what it knows.
    pub async fn ping(&self, nodes: Vec<Vec<u8>>) -> Result<PingReply, NodeError> {
        let r = self
            .inner
            .clone()
            .ping(self.request(node_pb::PingRequest { nodes }))
            .await
            .map_err(from_status)?
            .into_inner();
        Ok(PingReply {
            node_id: r.node_id,
            wall_nanos: r.wall_nanos,
            cluster_id: r.cluster_id,
            nodes: r.nodes,
            first_range: r.first_range,
        })
    }

    /// The node's digest of consistency check `checksum_id` on `range_id`.
    pub async fn collect_checksum(
        &self,
        range_id: u64,
        checksum_id: u64,
    ) -> Result<(u64, [u8; 32]), NodeError> {
        let r = self
            .inner
            .clone()
            .collect_checksum(self.request(node_pb::CollectChecksumRequest {
                range_id,
                checksum_id,
            }))
            .await
            .map_err(from_status)?
            .into_inner();
        let digest = <[u8; 32]>::try_from(r.digest.as_slice())
            .map_err(|_| NodeError::Other("a checksum digest is not 32 bytes".into()))?;
        Ok((r.applied_index, digest))
    }

    /// Fences the node's replica of `range_id`.
    pub async fn fence_replica(&self, range_id: u64, reason: String) -> Result<(), NodeError> {
        self.inner
            .clone()
            .fence_replica(self.request(node_pb::FenceReplicaRequest { range_id, reason }))
            .await
            .map_err(from_status)?;
        Ok(())
    }

    /// Runs the consistency check of every range the node holds the lease of.
    pub async fn check_consistency(&self) -> Result<(u64, Vec<RangeConsistency>), NodeError> {
        let r = self
            .inner
            .clone()
            .check_consistency(self.request(node_pb::CheckConsistencyRequest {}))
            .await
            .map_err(from_status)?
            .into_inner();
        Ok((r.node_id, r.ranges))
    }

    /// The first range's descriptor, cluster id and known nodes, if the node knows them.
    pub async fn first_range(&self) -> Result<Option<JoinGrant>, NodeError> {
        let r = self
            .inner
            .clone()
            .first_range(self.request(node_pb::FirstRangeRequest {}))
            .await
            .map_err(from_status)?
            .into_inner();
        Ok((!r.descriptor.is_empty()).then_some(JoinGrant {
            cluster_id: r.cluster_id,
            first_range: r.descriptor,
            nodes: r.nodes,
            ..JoinGrant::default()
        }))
    }
}
