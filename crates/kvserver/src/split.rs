//! Range splits: the split transaction, the `Split` trigger's application on
//! every replica, and the split queue that splits ranges grown past
//! `range_max_bytes`.
//!
//! `AdminSplit { split_key }` is served by the leaseholder of the range
//! containing the key. It allocates the new range id (`RANGE_ID_GENERATOR`),
//! then runs one distributed transaction ([`InternalTxn`]) anchored in the
//! left-hand range that rewrites the meta records — `range_meta_key(split
//! key)` → left, `range_meta_key(old end)` → right, and for the range holding
//! the meta span `meta1(/Max)` → left — and commits with a
//! `CommitTrigger::Split`. The commit's `EndTxn` latches the whole right-hand
//! span (data and range-local keys) and the range's descriptor key, and is
//! checked against the current descriptor under those latches, so no request
//! evaluated against the old bounds can apply after the split, and two
//! descriptor changes cannot both apply.
//!
//! Every replica applies the trigger with the commit, in one engine batch:
//! the left descriptor shrinks (generation + 1), the right range's
//! descriptor, Raft state (fresh log at the initial index and term, keeping
//! the term and vote of a replica that a message created first), lease (a
//! copy of the left's, so the same store keeps serving) and applied state
//! (statistics recomputed over its span; the left keeps the difference) are
//! written, and the right replica is registered with the store and its
//! scheduler. Its timestamp cache starts at the highest read the left side
//! recorded over its span.
//!
//! Splits are refused inside the local and meta spans: the range holding
//! meta1 and meta2 always starts at `/Min` and covers the whole meta span.

use std::sync::{Arc, Weak};
use std::time::Duration;
// Tokio's clock: real time, except under a simulation's paused runtime.
use tokio::time::Instant;

use tardigrade_encoding::{keys, pretty_key};
use tardigrade_hlc::Timestamp;
use tardigrade_kvpb::{
    BatchRequest, BatchResponse, BatchResult, CommitTrigger, ErrorDetail, Header, KvError,
    RangeDescriptor, ReplicaType, Request, Response, Span,
};
use tardigrade_storage::batch::WriteSet;
use tardigrade_storage::{MvccStats, Reader, Space, mvcc};

use crate::command::{self, AppliedState};
use crate::internal_txn::InternalTxn;
use crate::raft_storage::{self, RAFT_INITIAL_INDEX, RAFT_INITIAL_TERM};
use crate::replica::{Replica, StagedApply};
use crate::store::{Store, range_index_key};

/// Attempts of the split transaction before giving up.
const SPLIT_ATTEMPTS: usize = 4;

/// What a split staged for after its batch commits: the right-hand range.
pub(crate) struct SplitApply {
    right: RangeDescriptor,
}

/// Whether the split of `cur` into `left` and `right` is exactly the one
/// its trigger claims (a deterministic test every replica agrees on).
pub(crate) fn split_applies(
    cur: &RangeDescriptor,
    left: &RangeDescriptor,
    right: &RangeDescriptor,
) -> bool {
    left.range_id == cur.range_id
        && right.range_id != cur.range_id
        && right.range_id != 0
        && left.start_key == cur.start_key
        && right.end_key == cur.end_key
        && left.end_key == right.start_key
        && cur.start_key < left.end_key
        && left.end_key < cur.end_key
        && left.generation == cur.generation + 1
        && right.generation == left.generation
        && left.replicas == cur.replicas
        && right.replicas == cur.replicas
}

/// Refuses an `EndTxn` whose split trigger does not match the range's
/// current descriptor (checked under the trigger's latches).
pub(crate) fn check_trigger(desc: &RangeDescriptor, ba: &BatchRequest) -> Result<(), KvError> {
    for req in &ba.requests {
        if let Request::EndTxn {
            commit: true,
            trigger: Some(CommitTrigger::Split { left, right }),
            ..
        } = req
            && !split_applies(desc, left, right)
        {
            return Err(KvError::new(ErrorDetail::TransactionStatus {
                msg: format!(
                    "split of r{} at {} no longer matches its descriptor (a concurrent change)",
                    desc.range_id,
                    pretty_key(&left.end_key)
                ),
            }));
        }
    }
    Ok(())
}

/// The extra spans an `EndTxn` with `trigger` latches for writing.
pub(crate) fn trigger_latches(trigger: Option<&CommitTrigger>) -> Vec<Span> {
    match trigger {
        Some(CommitTrigger::Split { left, right }) => vec![
            Span::point(keys::range_descriptor_key(&left.start_key)),
            Span::new(right.start_key.clone(), right.end_key.clone()),
            Span::new(
                keys::range_local_prefix(&right.start_key),
                keys::range_local_prefix(&right.end_key),
            ),
        ],
        Some(CommitTrigger::ChangeReplicas { desc }) => {
            vec![Span::point(keys::range_descriptor_key(&desc.start_key))]
        }
        None => Vec::new(),
    }
}

/// Applies an accepted split trigger on the left-hand replica `r` into `ws`.
pub(crate) fn stage_split(
    r: &Replica,
    st: &mut StagedApply,
    left: &RangeDescriptor,
    right: &RangeDescriptor,
    ws: &mut WriteSet,
) {
    let engine = r.engine();
    // The right side's statistics, over the engine plus this round's
    // not-yet-committed writes. TODO(issue 3): derive them without a scan
    // of the right-hand span.
    let mut overlay = engine.batch();
    for ((space, key), value) in ws.iter() {
        match value {
            Some(v) => overlay.put(*space, key, v),
            None => overlay.delete(*space, key),
        }
    }
    let rhs_stats = match mvcc::compute_stats(&overlay, &right.start_key, &right.end_key) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(range_id = r.range_id, error = %e, "split: cannot compute the right side's statistics");
            MvccStats::default()
        }
    };
    let state = st.state_mut();
    state.applied.stats.subtract(&rhs_stats);
    state.desc = left.clone();
    let lease = state.lease;
    let gc_threshold = state.gc_threshold;
    ws.put(
        Space::Raw,
        &keys::range_descriptor_key(&left.start_key),
        &left.encode(),
    );
    let existing = r
        .store_handle()
        .ok()
        .and_then(|s| s.replica(right.range_id));
    if existing.as_ref().is_some_and(|x| x.is_initialized()) {
        // A snapshot got there first; its state (descriptor included) is
        // at least as new as ours.
        tracing::info!(
            range_id = right.range_id,
            "split: right-hand replica already initialized"
        );
        return;
    }
    let id = right.range_id;
    ws.put(
        Space::Raw,
        &keys::range_descriptor_key(&right.start_key),
        &right.encode(),
    );
    ws.put(Space::Raw, &range_index_key(id), &right.start_key);
    let applied = AppliedState {
        raft_applied_index: RAFT_INITIAL_INDEX,
        lease_applied_index: 0,
        stats: rhs_stats,
    };
    ws.put(
        Space::Raw,
        &keys::range_applied_state_key(id),
        &applied.encode(),
    );
    // The right side keeps the left's GC threshold: its data was GC'd with
    // the left's.
    if !gc_threshold.is_zero() {
        ws.put(
            Space::Raw,
            &keys::range_gc_threshold_key(id),
            &crate::gc_queue::encode_threshold(gc_threshold),
        );
    }
    ws.put(
        Space::Raw,
        &keys::raft_truncated_state_key(id),
        &command::encode_index_term(RAFT_INITIAL_INDEX, RAFT_INITIAL_TERM),
    );
    // A replica created by a message before the split applied may have
    // voted: keep its term and vote.
    let mut hs = raft_storage::read(
        engine,
        &keys::raft_hard_state_key(id),
        raft_storage::decode_hard_state,
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    if hs.term < RAFT_INITIAL_TERM {
        hs.term = RAFT_INITIAL_TERM;
        hs.vote = 0;
    }
    hs.commit = hs.commit.max(RAFT_INITIAL_INDEX);
    raft_storage::write_hard_state(id, &hs, ws);
    ws.put(Space::Raw, &keys::range_lease_key(id), &lease.encode());
    st.split = Some(SplitApply {
        right: right.clone(),
    });
}

/// Creates the right-hand replica once the split's batch is committed.
pub(crate) fn finish_split(lhs: &Replica, sp: SplitApply) {
    let Ok(store) = lhs.store_handle() else {
        return;
    };
    let right = sp.right;
    let Some(me) = right.replica_on_store(store.store_id()).copied() else {
        return;
    };
    let low_water = lhs
        .tscache()
        .get_max(&Span::new(right.start_key.clone(), right.end_key.clone()))
        .ts;
    let id = right.range_id;
    match Replica::load_split(
        right,
        me.replica_id,
        store.engine().clone(),
        store.clock().clone(),
        Arc::downgrade(&store),
        lhs.store_config().clone(),
        low_water,
    ) {
        Ok(rhs) => {
            if let Some(old) = store.replica(id) {
                old.raft.lock().broken = true;
            }
            store.add_replica(Arc::new(rhs));
            store.wake(id);
            tracing::info!(
                node = store.node_id(),
                range_id = lhs.range_id,
                new_range_id = id,
                "split applied"
            );
        }
        Err(e) => {
            tracing::error!(range_id = id, error = %e, "split: cannot load the right-hand replica");
        }
    }
}

/// Why `split_key` cannot split anything, if it cannot.
fn refuse_key(split_key: &[u8]) -> Option<String> {
    let k = pretty_key(split_key);
    if split_key < keys::LOCAL_MAX {
        Some(format!("cannot split at {k}: it is in the local key space"))
    } else if split_key < keys::META_MAX {
        Some(format!(
            "cannot split at {k}: it is inside the meta span [/Meta1, /System); the meta range does not split"
        ))
    } else if split_key >= keys::MAX_KEY {
        Some(format!("cannot split at {k}: at or above /Max"))
    } else {
        None
    }
}

/// Serves `AdminSplit` on `r` (which must hold the lease).
pub(crate) async fn admin_split(r: &Replica, split_key: Vec<u8>, ts: Timestamp) -> BatchResult {
    let store = r.store_handle()?;
    if let Some(msg) = refuse_key(&split_key) {
        return Err(KvError::invalid(msg));
    }
    if !store.has_cluster_sender() {
        return Err(KvError::invalid(
            "splits need a cluster node (`tardigrade start` + `init`); a single-node store keeps one range",
        ));
    }
    let ts = if ts.is_zero() {
        store.clock().now()
    } else {
        ts
    };
    r.ensure_lease(ts).await?;
    let desc = r.desc();
    if !desc.contains_key(&split_key) {
        return Err(KvError::new(ErrorDetail::RangeKeyMismatch {
            span: Span::point(split_key),
            range_id: r.range_id,
        }));
    }
    if split_key == desc.start_key {
        return Err(KvError::invalid(format!(
            "cannot split at {}: it is already the start of r{}",
            pretty_key(&split_key),
            desc.range_id
        )));
    }
    if desc.replicas.iter().any(|x| {
        matches!(
            x.kind,
            ReplicaType::VoterIncoming | ReplicaType::VoterOutgoing
        )
    }) {
        // The right-hand group would start in a joint configuration that
        // nobody is driving out of: wait for the change to finish.
        return Err(KvError::new(ErrorDetail::Unavailable(format!(
            "r{} is in a joint configuration (a replica change is under way); retry the split",
            desc.range_id
        ))));
    }
    let new_id = allocate_range_id(&store).await?;
    let mut last = None;
    for attempt in 0..SPLIT_ATTEMPTS {
        let desc = r.desc();
        if !desc.contains_key(&split_key) || split_key == desc.start_key {
            return Err(KvError::new(ErrorDetail::RangeKeyMismatch {
                span: Span::point(split_key),
                range_id: r.range_id,
            }));
        }
        let left = RangeDescriptor {
            end_key: split_key.clone(),
            generation: desc.generation + 1,
            ..desc.clone()
        };
        let right = RangeDescriptor {
            range_id: new_id,
            start_key: split_key.clone(),
            end_key: desc.end_key.clone(),
            replicas: desc.replicas.clone(),
            next_replica_id: desc.next_replica_id,
            generation: desc.generation + 1,
        };
        match run_split_txn(&store, &desc, &left, &right).await {
            Ok(()) => {
                await_leader(&store, new_id).await;
                return Ok(BatchResponse {
                    now: store.clock().now(),
                    txn: None,
                    responses: vec![Response::AdminSplit { left, right }],
                });
            }
            Err(e) => {
                tracing::debug!(range_id = r.range_id, attempt, error = %e, "split attempt failed");
                let again = e.detail.is_retryable()
                    || matches!(e.detail, ErrorDetail::TransactionStatus { .. });
                if !again {
                    return Err(e);
                }
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
            }
        }
    }
    Err(last.unwrap_or_else(|| KvError::internal("split failed")))
}

async fn allocate_range_id(store: &Store) -> Result<u64, KvError> {
    let ba = BatchRequest {
        header: Header::default(),
        requests: vec![Request::Increment {
            key: keys::RANGE_ID_GENERATOR.to_vec(),
            inc: 1,
        }],
    };
    let resp = store.send_routed(ba).await?;
    match resp.responses.first() {
        Some(Response::Increment { new_value }) if *new_value > 0 => Ok(*new_value as u64),
        _ => Err(KvError::internal("range id allocation returned nothing")),
    }
}

/// The split transaction: meta records, then the commit with the trigger.
async fn run_split_txn(
    store: &Store,
    desc: &RangeDescriptor,
    left: &RangeDescriptor,
    right: &RangeDescriptor,
) -> Result<(), KvError> {
    // The record must live on the left-hand range: a global key in it.
    let anchor = if desc.start_key.as_slice() < keys::LOCAL_MAX {
        keys::LOCAL_MAX.to_vec()
    } else {
        desc.start_key.clone()
    };
    let mut txn = InternalTxn::new(store, anchor, "split");
    let result = async {
        txn.put(&keys::range_meta_key(&left.end_key), &left.encode())
            .await?;
        txn.put(&keys::range_meta_key(&right.end_key), &right.encode())
            .await?;
        if desc.start_key.is_empty() {
            // The range holding the meta span: meta2 lookups find it here.
            txn.put(&keys::meta1_key(keys::MAX_KEY), &left.encode())
                .await?;
        }
        txn.commit(Some(CommitTrigger::Split {
            left: left.clone(),
            right: right.clone(),
        }))
        .await
    }
    .await;
    if result.is_err() {
        txn.rollback().await;
    }
    result
}

/// Makes sure the new range elects a leader soon, preferably on this store
/// (which holds its lease): followers may not have applied the split yet
/// when it first campaigns, so campaign again while it has none.
async fn await_leader(store: &Arc<Store>, range_id: u64) {
    let tick = store.config().raft_tick_interval;
    let deadline = Instant::now() + tick * (store.config().raft_election_ticks as u32) * 2;
    tokio::time::sleep(tick).await;
    while Instant::now() < deadline {
        let Some(rhs) = store.replica(range_id) else {
            return;
        };
        if rhs.has_leader() {
            return;
        }
        rhs.campaign_if_leaderless();
        tokio::time::sleep(tick * 2).await;
    }
}

/// The key at about half of the range's data, if there is one to split at.
/// Whole user keys only (all versions of a key stay together).
/// TODO(issue 4): move it to a SQL row boundary (strip the column family)
/// once table keys carry families; TODO(issue 3): load-based split keys.
fn find_split_key(r: &Replica) -> Option<Vec<u8>> {
    let (start, end) = (r.start_key(), r.end_key());
    let s = r.stats();
    let half = ((s.key_bytes + s.val_bytes).max(0) as u64) / 2;
    let lower = mvcc::key::mvcc_key_lower_bound(&start);
    let upper = mvcc::key::mvcc_key_lower_bound(&end);
    let mut seen = 0u64;
    let mut user_key = Vec::new();
    let mut candidate: Option<Vec<u8>> = None;
    for kv in r.engine().scan(Space::Mvcc, &lower, &upper, false) {
        let (k, v) = kv.ok()?;
        mvcc::key::decode_mvcc_key_into(&k, &mut user_key).ok()?;
        seen += (k.len() + v.len()) as u64;
        if seen < half || user_key.as_slice() <= start.as_slice() {
            continue;
        }
        let mut key = user_key.clone();
        if key.as_slice() < keys::META_MAX {
            // Never inside the meta span: split at its end instead.
            key = keys::META_MAX.to_vec();
        }
        if key.as_slice() > start.as_slice() && key.as_slice() < end.as_slice() {
            candidate = Some(key);
        }
        break;
    }
    candidate.filter(|k| refuse_key(k).is_none())
}

/// The split queue: splits this store's leaseholders that straddle a span config bound (so each table starts in
/// its own range) or whose data exceeds their zone's `range_max_bytes` (at
/// their middle key). Stops with the store.
pub(crate) async fn split_queue(store: Weak<Store>) {
    let interval = match store.upgrade() {
        Some(s) => s.config().split_queue_interval,
        None => return,
    };
    loop {
        tokio::time::sleep(interval).await;
        let Some(store) = store.upgrade() else { return };
        if store.is_stopped() {
            return;
        }
        let configs = store.span_configs();
        let now = store.clock().now();
        for r in store.replicas() {
            if !r.is_initialized() {
                continue;
            }
            // The leaseholder splits; an idle range's lease lapses, and then
            // its Raft leader does.
            let lease = r.lease();
            let holds = lease.replica.replica_id == r.replica_id && lease.covers(now, now);
            if !holds && !r.is_raft_leader() {
                continue;
            }
            let desc = r.desc();
            let bound = configs
                .split_key_within(&desc.start_key, &desc.end_key, |k| refuse_key(k).is_none());
            let (key, why) = match bound {
                Some(k) => (k, "at a span config bound"),
                None => {
                    let max = configs
                        .config_for(&desc)
                        .range_max_bytes
                        .unwrap_or(store.config().range_max_bytes);
                    let s = r.stats();
                    if ((s.key_bytes + s.val_bytes).max(0) as u64) <= max {
                        continue;
                    }
                    match find_split_key(&r) {
                        Some(k) => (k, "over the size limit"),
                        None => continue,
                    }
                }
            };
            match admin_split(&r, key.clone(), Timestamp::ZERO).await {
                Ok(_) => tracing::info!(
                    range_id = r.range_id,
                    key = %pretty_key(&key),
                    "split queue: split a range {why}"
                ),
                Err(e) => {
                    tracing::debug!(range_id = r.range_id, error = %e, "split queue: split failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keys_in_local_and_meta_spans_are_refused() {
        assert!(refuse_key(b"\x01k").is_some());
        assert!(refuse_key(b"\x02abc").is_some());
        assert!(refuse_key(b"\x03\x88").is_some());
        assert!(refuse_key(keys::MAX_KEY).is_some());
        assert!(refuse_key(keys::META_MAX).is_none());
        assert!(refuse_key(b"\x88\x89").is_none());
    }

    #[test]
    fn a_split_trigger_must_match_the_descriptor() {
        let cur = RangeDescriptor {
            range_id: 3,
            start_key: b"a".to_vec(),
            end_key: b"z".to_vec(),
            generation: 4,
            ..Default::default()
        };
        let left = RangeDescriptor {
            end_key: b"m".to_vec(),
            generation: 5,
            ..cur.clone()
        };
        let right = RangeDescriptor {
            range_id: 9,
            start_key: b"m".to_vec(),
            end_key: b"z".to_vec(),
            generation: 5,
            ..Default::default()
        };
        assert!(split_applies(&cur, &left, &right));
        let stale = RangeDescriptor {
            generation: 5,
            ..cur.clone()
        };
        assert!(!split_applies(&stale, &left, &right));
        let gap = RangeDescriptor {
            start_key: b"n".to_vec(),
            ..right.clone()
        };
        assert!(!split_applies(&cur, &left, &gap));
    }
}
