//! The consistency checker in a cluster: the node's side of the `Node`
//! service's `CollectChecksum`, `FenceReplica` and `CheckConsistency` calls,
//! the [`ChecksumPeers`] that reaches other nodes through them, and the
//! consistency queue each node runs over the ranges it holds leases of
//! (the checker itself is `tardigrade_kvserver::consistency`).

use std::sync::Arc;
use std::time::Duration;

use tardigrade_kvserver::consistency::{
    self, COLLECT_TIMEOUT, ChecksumPeers, PeerFuture, RangeCheck, ReplicaDigest,
};
use tardigrade_kvserver::{NodeResolver, Store};
use tardigrade_rpc::{
    FaultInjector, NodeClient, NodeError, NodeIdentity, RangeConsistency, ReplicaConsistency,
};

/// How often the queue checks each range this node leases. CockroachDB
/// checks every range once a day; ours are small and few, so more often.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The pause between two ranges' checks, so checking stays in the background.
pub const CHECK_PACE: Duration = Duration::from_secs(1);

/// Reaches the other replicas' nodes through their `Node` service.
pub struct RpcChecksumPeers {
    pub resolver: Arc<dyn NodeResolver>,
    pub identity: Arc<NodeIdentity>,
    /// The node's injected partitions (testing only).
    pub faults: Option<FaultInjector>,
}

impl RpcChecksumPeers {
    fn client(&self, node_id: u64) -> Result<NodeClient, String> {
        let addr = self
            .resolver
            .resolve(node_id)
            .ok_or_else(|| format!("n{node_id}: address unknown"))?;
        if let Some(faults) = &self.faults
            && faults.is_cut(self.identity.node_id(), node_id, &addr)
        {
            return Err(format!("n{node_id}: injected partition"));
        }
        let client = NodeClient::connect_lazy(&addr).map_err(|e| e.to_string())?;
        Ok(client.with_identity(self.identity.clone()))
    }
}

impl ChecksumPeers for RpcChecksumPeers {
    fn collect(&self, node_id: u64, range_id: u64, id: u64) -> PeerFuture<'_, ReplicaDigest> {
        Box::pin(async move {
            let (applied_index, digest) = self
                .client(node_id)?
                .collect_checksum(range_id, id)
                .await
                .map_err(|e| format!("n{node_id}: {e}"))?;
            Ok(ReplicaDigest {
                applied_index,
                digest,
            })
        })
    }

    fn fence(&self, node_id: u64, range_id: u64, reason: String) -> PeerFuture<'_, ()> {
        Box::pin(async move {
            self.client(node_id)?
                .fence_replica(range_id, reason)
                .await
                .map_err(|e| format!("n{node_id}: {e}"))
        })
    }
}

fn replica_of(
    store: &Store,
    range_id: u64,
) -> Result<Arc<tardigrade_kvserver::Replica>, NodeError> {
    store.replica(range_id).ok_or_else(|| {
        NodeError::NotReady(format!("no replica of r{range_id} on n{}", store.node_id()))
    })
}

/// `CollectChecksum`: this node's digest of a check (waits until computed).
pub async fn collect_checksum(
    store: &Store,
    range_id: u64,
    checksum_id: u64,
) -> Result<(u64, Vec<u8>), NodeError> {
    let replica = replica_of(store, range_id)?;
    let d = consistency::wait_digest(&replica, checksum_id, COLLECT_TIMEOUT)
        .await
        .map_err(NodeError::NotReady)?;
    Ok((d.applied_index, d.digest.to_vec()))
}

/// `FenceReplica`.
pub fn fence_replica(store: &Store, range_id: u64, reason: String) -> Result<(), NodeError> {
    consistency::fence(&*replica_of(store, range_id)?, reason);
    Ok(())
}

/// `CheckConsistency`: checks the ranges this node leases.
pub async fn check_consistency(
    store: &Arc<Store>,
    peers: &dyn ChecksumPeers,
) -> Vec<RangeConsistency> {
    consistency::check_leased_ranges(store, peers)
        .await
        .iter()
        .map(to_pb)
        .collect()
}

fn to_pb(check: &RangeCheck) -> RangeConsistency {
    RangeConsistency {
        range_id: check.range_id,
        replicas: check
            .replicas
            .iter()
            .map(|v| ReplicaConsistency {
                node_id: v.node_id,
                replica_id: v.replica_id,
                diverged: v.diverged,
                applied_index: v.digest.as_ref().map_or(0, |d| d.applied_index),
                digest: v.digest.as_ref().map(|d| d.hex()).unwrap_or_default(),
                error: v.digest.as_ref().err().cloned().unwrap_or_default(),
            })
            .collect(),
    }
}
