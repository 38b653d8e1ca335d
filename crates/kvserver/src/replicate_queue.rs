//! The replicate queue and the replica GC check, run on every store.
//!
//! Every few seconds the queue visits the store's replicas. For a range
//! whose Raft group this replica leads, it asks the allocator
//! ([`crate::allocator::decide`]) what to do and does it through the
//! replica-change primitives ([`crate::replica_change`]), taking the lease
//! first (the leaseholder, which is also the leader, makes the changes).
//! One step per range per pass; the next pass continues.
//!
//! Replicas this store holds but does not lead are checked for removal when
//! they look orphaned (outgoing or learner in their own descriptor, or no
//! known leader), and every `meta_check_interval` anyway (a replica removed
//! while quiesced and cut off still believes in its old leader): the range's
//! current descriptor is read from its meta record; if it is newer and no
//! longer lists this replica, the replica is garbage-collected.
//!
//! A leader reads its range's meta record every `meta_check_interval` too,
//! and rewrites it if it is missing or older than its descriptor: a replica
//! change and its meta record are written separately (TODO(issue 3): in one
//! transaction), and a leader that dies in between leaves the record stale.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
// Tokio's clock: real time, except under a simulation's paused runtime.
use tokio::time::Instant;

use parking_lot::Mutex;

use tardigrade_kvpb::{
    BatchRequest, Header, KvError, RangeDescriptor, ReplicaType, Request, Response, StoreId,
};

use crate::allocator::{Action, ReplicationSettings, StoreDetail, StorePool, decide};
use crate::replica::Replica;
use crate::store::Store;

/// What one pass did, for tests and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassStats {
    pub actions: usize,
    pub errors: usize,
    pub gc_requested: usize,
}

/// After a pass that rebalanced, how long the queue waits before it
/// rebalances again: the range counts it reads are published with each
/// liveness heartbeat and lag behind its own moves; deciding on stale
/// counts would move ranges onto the same "empty" store, then away again.
/// (Within a pass it adjusts the counts itself.) Adding and replacing
/// replicas are not held back.
const REBALANCE_SETTLE: Duration = Duration::from_secs(5);

/// The queue's memory across passes.
#[derive(Default)]
pub struct ReplicateQueue {
    last_rebalance: Mutex<Option<Instant>>,
    /// Ranges changed here whose meta records could not be rewritten: a
    /// stale record sends lookups to replicas that are gone, so the next
    /// passes retry before changing the range again.
    stale_meta: Mutex<BTreeSet<u64>>,
    /// When each replica was last checked against its meta record (or
    /// first seen).
    meta_checked: Mutex<HashMap<u64, Instant>>,
}

fn adjust_leases(stores: &mut [StoreDetail], id: StoreId, delta: i64) {
    if let Some(d) = stores.iter_mut().find(|d| d.store_id == id) {
        d.lease_count = d.lease_count.saturating_add_signed(delta);
    }
}

fn adjust(stores: &mut [StoreDetail], id: StoreId, delta: i64) {
    if let Some(d) = stores.iter_mut().find(|d| d.store_id == id) {
        d.range_count = d.range_count.saturating_add_signed(delta);
    }
}

/// Runs the queue on `store` every `interval` until the store stops or is
/// dropped.
pub async fn run(
    store: std::sync::Weak<Store>,
    pool: Arc<dyn StorePool>,
    settings: ReplicationSettings,
    interval: Duration,
) {
    let queue = ReplicateQueue::default();
    loop {
        tokio::time::sleep(interval).await;
        let Some(s) = store.upgrade() else {
            return;
        };
        if s.is_stopped() {
            return;
        }
        let _ = process_store(&queue, &s, pool.as_ref(), &settings).await;
    }
}

/// One pass over the store's replicas.
pub async fn process_store(
    queue: &ReplicateQueue,
    store: &Arc<Store>,
    pool: &dyn StorePool,
    settings: &ReplicationSettings,
) -> PassStats {
    let mut stats = PassStats::default();
    let mut stores = pool.stores();
    let may_rebalance = queue
        .last_rebalance
        .lock()
        .is_none_or(|t| t.elapsed() >= REBALANCE_SETTLE);
    let mut rebalanced = false;
    let configs = store.span_configs();
    let mut replicas = store.replicas();
    // Forget the meta checks of replicas this store no longer holds.
    let held: BTreeSet<u64> = replicas.iter().map(|r| r.range_id).collect();
    queue.meta_checked.lock().retain(|id, _| held.contains(id));
    replicas.sort_by_key(|r| r.range_id);
    for r in replicas {
        if !r.is_initialized() || store.is_stopped() {
            continue;
        }
        if r.is_raft_leader() {
            if queue.meta_check_due(&r, false, settings) && meta_is_stale(store, &r).await {
                tracing::info!(
                    node = store.node_id(),
                    range_id = r.range_id,
                    "stale meta record; rewriting it"
                );
                queue.stale_meta.lock().insert(r.range_id);
            }
            if queue.stale_meta.lock().contains(&r.range_id) {
                if !r.update_meta_records(&r.desc()).await {
                    continue;
                }
                queue.stale_meta.lock().remove(&r.range_id);
            }
            let before = r.desc();
            let conf = configs.config_for(&before);
            let action = decide(&before, r.replica_id, &stores, pool.now(), settings, &conf);
            let is_rebalance = action.is_rebalance();
            if action == Action::None || (is_rebalance && !may_rebalance) {
                continue;
            }
            rebalanced |= is_rebalance;
            stats.actions += 1;
            match act(queue, &r, &action).await {
                Ok(desc) => {
                    if let Action::TransferLease(to) = action
                        && let Some(to) = desc.replica(to)
                    {
                        adjust_leases(&mut stores, to.store_id, 1);
                        adjust_leases(&mut stores, store.store_id(), -1);
                    }
                    for rd in &desc.replicas {
                        if before.replica(rd.replica_id).is_none() {
                            adjust(&mut stores, rd.store_id, 1);
                        }
                    }
                    for rd in &before.replicas {
                        if desc.replica(rd.replica_id).is_none() {
                            adjust(&mut stores, rd.store_id, -1);
                        }
                    }
                    tracing::info!(node = store.node_id(), range_id = r.range_id, ?action, replicas = ?desc.replicas, "replica change");
                }
                Err(e) => {
                    stats.errors += 1;
                    tracing::info!(node = store.node_id(), range_id = r.range_id, ?action, error = %e, "replica change failed");
                }
            }
        } else if queue.meta_check_due(&r, looks_orphaned(&r), settings)
            && should_gc(store, &r).await
        {
            stats.gc_requested += 1;
            store.request_gc(r.range_id, r.replica_id);
        }
    }
    if rebalanced {
        *queue.last_rebalance.lock() = Some(Instant::now());
    }
    stats
}

/// Carries out one allocator decision; returns the resulting descriptor.
pub async fn act(
    queue: &ReplicateQueue,
    r: &Replica,
    action: &Action,
) -> Result<RangeDescriptor, KvError> {
    let desc = match *action {
        Action::None => return Ok(r.desc()),
        Action::LeaveJoint => r.leave_joint().await?,
        Action::RemoveLearner(id) => r.remove_learner(id).await?,
        Action::Add { node_id, store_id } => r.add_voter(node_id, store_id, None).await?,
        Action::Replace {
            node_id,
            store_id,
            remove,
            ..
        } => r.add_voter(node_id, store_id, Some(remove)).await?,
        Action::Remove(id) => r.remove_voter(id).await?,
        Action::TransferLease(id) => {
            // An idle range's lease lapses; its leader takes it back first.
            r.ensure_lease(r.clock_now()).await?;
            r.transfer_lease(id).await?;
            return Ok(r.desc());
        }
    };
    if !r.update_meta_records(&desc).await {
        queue.stale_meta.lock().insert(r.range_id);
    }
    Ok(desc)
}

impl ReplicateQueue {
    /// Whether `r` is to be checked against its meta record now: `urgent`,
    /// or its last check is `meta_check_interval` old (a replica seen for
    /// the first time waits one interval).
    fn meta_check_due(&self, r: &Replica, urgent: bool, settings: &ReplicationSettings) -> bool {
        let now = Instant::now();
        let mut checked = self.meta_checked.lock();
        let last = *checked.entry(r.range_id).or_insert(now);
        let due = urgent || now.duration_since(last) >= settings.meta_check_interval;
        if due {
            checked.insert(r.range_id, now);
        }
        due
    }
}

fn looks_orphaned(r: &Replica) -> bool {
    let desc = r.desc();
    let me = desc.replica(r.replica_id);
    let demoted = me.is_none_or(|m| matches!(m.kind, ReplicaType::VoterOutgoing));
    let leaderless = r.raft.lock().node.raft.leader_id == 0;
    demoted || leaderless
}

/// Reads the meta record of `desc`'s range: `None` if it could not be
/// read, `Some(None)` if there is none.
async fn read_meta_record(
    store: &Store,
    desc: &RangeDescriptor,
) -> Option<Option<RangeDescriptor>> {
    let key = tardigrade_encoding::keys::range_meta_key(&desc.end_key);
    if key.is_empty() {
        return None;
    }
    let ba = BatchRequest {
        header: Header::default(),
        requests: vec![Request::Get { key }],
    };
    let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(2), store.send_routed(ba)).await
    else {
        return None;
    };
    match resp.responses.into_iter().next() {
        Some(Response::Get { value: Some(v), .. }) => {
            RangeDescriptor::decode(&v.bytes).ok().map(Some)
        }
        Some(Response::Get { value: None, .. }) => Some(None),
        _ => None,
    }
}

/// Reads the range's meta record; true if it is newer than this replica's
/// descriptor and no longer lists this replica.
async fn should_gc(store: &Store, r: &Replica) -> bool {
    let desc = r.desc();
    let Some(Some(current)) = read_meta_record(store, &desc).await else {
        return false;
    };
    current.range_id == desc.range_id
        && current.generation > desc.generation
        && current.replica(r.replica_id).is_none()
}

/// For the range's leader: true if the range's meta record is missing or
/// older than the leader's descriptor.
async fn meta_is_stale(store: &Store, r: &Replica) -> bool {
    let desc = r.desc();
    match read_meta_record(store, &desc).await {
        Some(None) => true,
        Some(Some(current)) => {
            current.range_id == desc.range_id && current.generation < desc.generation
        }
        None => false,
    }
}
