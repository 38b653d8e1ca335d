//! Who is calling: node-to-node RPCs carry the sender's cluster id, node id
//! and binary version in gRPC metadata, and the receiving server refuses
//! calls from another cluster, from an incompatible version, or (with a
//! [`PeerCheck`]) from a node id the cluster does not know.
//!
//! A node owns one [`NodeIdentity`]; it hands it to every client it dials
//! ([`crate::RpcSender::with_identity`], [`crate::RaftClient::with_identity`],
//! [`crate::NodeClient::with_identity`]), which stamp it on each request, and
//! to its server ([`crate::serve_node`]), which checks what arrives against
//! it once the node has a cluster id. Clients that are not nodes (the CLI,
//! workloads) send no identity and are served; a Raft batch without a
//! cluster id is refused by a node that has one.
//!
//! TODO(issue 3): this guards against misconfiguration, not attackers: the
//! metadata is not authenticated (node certificates come with the security
//! work), and `RaftMessageBatch::cluster_id` is still sent as 0 (the
//! metadata carries it; drop the field or fill it in).

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tonic::Status;
use tonic::metadata::{MetadataMap, MetadataValue};

/// Metadata key: the sender's cluster id (UUID form).
pub const CLUSTER_ID_HEADER: &str = "tardigrade-cluster-id";
/// Metadata key: the sender's node id (decimal).
pub const NODE_ID_HEADER: &str = "tardigrade-node-id";
/// Metadata key: the sender's binary version (`major.minor.patch`).
pub const VERSION_HEADER: &str = "tardigrade-version";

/// This node's identity as far as it is known: the version from the start,
/// the cluster and node ids once it has joined or bootstrapped a cluster.
#[derive(Debug)]
pub struct NodeIdentity {
    cluster_id: OnceLock<[u8; 16]>,
    node_id: AtomicU64,
    version: String,
}

/// What a request says about its sender.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerInfo {
    pub cluster_id: Option<[u8; 16]>,
    pub node_id: Option<u64>,
    pub version: Option<String>,
}

/// A boxed future for [`PeerCheck`].
pub type PeerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Decides whether a node id that passed the cluster and version checks is
/// one the cluster knows (the server's node directory, or its KV records).
/// `Err` carries the refusal's message.
pub trait PeerCheck: Send + Sync {
    fn check_node(&self, node_id: u64) -> PeerFuture<'_>;
}

/// The cluster id as logs and messages show it.
pub fn cluster_id_string(id: &[u8; 16]) -> String {
    tardigrade_kvpb::TxnId(*id).to_string()
}

fn parse_cluster_id(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// `(major, minor)` of a version string; versions that differ in these
/// cannot talk to each other.
pub fn major_minor(v: &str) -> (&str, &str) {
    let mut p = v.split('.');
    (p.next().unwrap_or_default(), p.next().unwrap_or_default())
}

impl NodeIdentity {
    /// A node running binary `version` that has no cluster yet.
    pub fn new(version: &str) -> NodeIdentity {
        NodeIdentity {
            cluster_id: OnceLock::new(),
            node_id: AtomicU64::new(0),
            version: version.to_string(),
        }
    }

    /// The node has joined (or founded) `cluster_id` as `node_id`. The
    /// cluster id is set once; a later call with another one is ignored.
    pub fn set(&self, cluster_id: [u8; 16], node_id: u64) {
        let _ = self.cluster_id.set(cluster_id);
        self.node_id.store(node_id, Ordering::Release);
    }

    pub fn cluster_id(&self) -> Option<[u8; 16]> {
        self.cluster_id.get().copied()
    }

    /// 0 until the node has an id.
    pub fn node_id(&self) -> u64 {
        self.node_id.load(Ordering::Acquire)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Writes what is known of this node into a request's metadata.
    pub fn stamp(&self, md: &mut MetadataMap) {
        if let Ok(v) = MetadataValue::try_from(self.version.as_str()) {
            md.insert(VERSION_HEADER, v);
        }
        if let Some(id) = self.cluster_id()
            && let Ok(v) = MetadataValue::try_from(cluster_id_string(&id).as_str())
        {
            md.insert(CLUSTER_ID_HEADER, v);
        }
        let node = self.node_id();
        if node != 0
            && let Ok(v) = MetadataValue::try_from(node.to_string().as_str())
        {
            md.insert(NODE_ID_HEADER, v);
        }
    }

    /// Checks a request's sender against this node: refuses (with
    /// `FailedPrecondition`) another cluster and an incompatible version,
    /// and (`InvalidArgument`) malformed identity metadata. With
    /// `require_cluster`, a sender without a cluster id is refused too once
    /// this node has one (node-only services such as Raft).
    pub fn check(&self, md: &MetadataMap, require_cluster: bool) -> Result<PeerInfo, Status> {
        let peer = peer_info(md)?;
        let who = match peer.node_id {
            Some(n) => format!("node n{n}"),
            None => "a node".to_string(),
        };
        if let Some(v) = &peer.version
            && major_minor(v) != major_minor(&self.version)
        {
            return Err(Status::failed_precondition(format!(
                "refusing RPC from {who} running version {v}: incompatible with this node's version {}",
                self.version
            )));
        }
        if let Some(mine) = self.cluster_id() {
            match peer.cluster_id {
                Some(theirs) if theirs != mine => {
                    return Err(Status::failed_precondition(format!(
                        "refusing RPC from cluster {} ({who}): this node belongs to cluster {}",
                        cluster_id_string(&theirs),
                        cluster_id_string(&mine)
                    )));
                }
                None if require_cluster => {
                    return Err(Status::failed_precondition(format!(
                        "refusing RPC without a cluster id: this node belongs to cluster {}",
                        cluster_id_string(&mine)
                    )));
                }
                _ => {}
            }
        }
        Ok(peer)
    }
}

/// Reads the identity metadata of a request.
pub fn peer_info(md: &MetadataMap) -> Result<PeerInfo, Status> {
    let text = |key: &str| -> Result<Option<&str>, Status> {
        match md.get(key) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(Some)
                .map_err(|_| Status::invalid_argument(format!("malformed {key} metadata"))),
        }
    };
    let cluster_id = match text(CLUSTER_ID_HEADER)? {
        None => None,
        Some(s) => Some(parse_cluster_id(s).ok_or_else(|| {
            Status::invalid_argument(format!("malformed {CLUSTER_ID_HEADER} metadata {s:?}"))
        })?),
    };
    let node_id = match text(NODE_ID_HEADER)? {
        None => None,
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n != 0 => Some(n),
            _ => {
                return Err(Status::invalid_argument(format!(
                    "malformed {NODE_ID_HEADER} metadata {s:?}"
                )));
            }
        },
    };
    Ok(PeerInfo {
        cluster_id,
        node_id,
        version: text(VERSION_HEADER)?.map(str::to_string),
    })
}

/// The server side of the checks: the identity checks, then (for a sender
/// that names its node and belongs to this cluster) `peers`' verdict on the
/// node id. `None` identity: nothing is checked (single-node servers).
pub(crate) async fn admit(
    identity: Option<&NodeIdentity>,
    peers: Option<&dyn PeerCheck>,
    md: &MetadataMap,
    require_cluster: bool,
) -> Result<(), Status> {
    let Some(identity) = identity else {
        return Ok(());
    };
    let peer = identity.check(md, require_cluster)?;
    if let (Some(peers), Some(node), Some(_), Some(_)) =
        (peers, peer.node_id, peer.cluster_id, identity.cluster_id())
    {
        peers
            .check_node(node)
            .await
            .map_err(Status::failed_precondition)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped(id: &NodeIdentity) -> MetadataMap {
        let mut md = MetadataMap::new();
        id.stamp(&mut md);
        md
    }

    #[test]
    fn same_cluster_passes_and_round_trips() {
        let a = NodeIdentity::new("0.1.0");
        a.set([7; 16], 3);
        let peer = a.check(&stamped(&a), true).expect("same cluster");
        assert_eq!(peer.cluster_id, Some([7; 16]));
        assert_eq!(peer.node_id, Some(3));
        assert_eq!(peer.version.as_deref(), Some("0.1.0"));
    }

    #[test]
    fn other_cluster_is_refused_with_both_ids() {
        let a = NodeIdentity::new("0.1.0");
        a.set([1; 16], 1);
        let b = NodeIdentity::new("0.1.0");
        b.set([2; 16], 1);
        let e = b.check(&stamped(&a), false).expect_err("refused");
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert!(
            e.message().contains(&format!(
                "refusing RPC from cluster {} (node n1): this node belongs to cluster {}",
                cluster_id_string(&[1; 16]),
                cluster_id_string(&[2; 16])
            )),
            "{}",
            e.message()
        );
    }

    #[test]
    fn versions_and_missing_cluster() {
        let old = NodeIdentity::new("0.0.9");
        let me = NodeIdentity::new("0.1.3");
        let e = me.check(&stamped(&old), false).expect_err("version");
        assert!(e.message().contains("version 0.0.9"), "{}", e.message());
        // Patch versions talk to each other.
        assert!(
            me.check(&stamped(&NodeIdentity::new("0.1.0")), false)
                .is_ok()
        );
        // A client without identity is fine until a node-only service asks.
        me.set([3; 16], 2);
        assert!(me.check(&MetadataMap::new(), false).is_ok());
        let e = me.check(&MetadataMap::new(), true).expect_err("raft");
        assert!(e.message().contains("without a cluster id"));
        // A fresh node (no cluster yet) accepts anyone's cluster id.
        let fresh = NodeIdentity::new("0.1.0");
        assert!(fresh.check(&stamped(&me), true).is_ok());
    }

    #[test]
    fn malformed_metadata_is_invalid() {
        let me = NodeIdentity::new("0.1.0");
        for (k, v) in [(CLUSTER_ID_HEADER, "xyz"), (NODE_ID_HEADER, "0")] {
            let mut md = MetadataMap::new();
            md.insert(k, MetadataValue::try_from(v).expect("ascii"));
            let e = me.check(&md, false).expect_err("malformed");
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
        }
    }
}
