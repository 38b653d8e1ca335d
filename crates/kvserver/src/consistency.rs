//! The consistency checker: do a range's replicas hold the same data?
//!
//! As CockroachDB's consistency queue does, the leaseholder proposes a
//! command carrying `Trigger::ComputeChecksum` through Raft. Every replica
//! applies it at the same log position and, at that point, computes a
//! SHA-256 digest ([`range_digest`]) of the range's replicated data: MVCC
//! versions and intents (lock table) in the range's span, its range-local
//! keys (transaction records, descriptor) and its replicated range-id keys
//! (lease, abort span), plus the applied state as it stands after the
//! command (indexes and MVCC stats). The digest is computed on a snapshot
//! off the Raft loop and kept a while under the check's id; the leaseholder
//! collects each replica's digest ([`ChecksumPeers`]: the `Node` service in
//! a server, direct calls in tests) and compares ([`check_range`]).
//!
//! A replica whose digest differs from the majority (or from the
//! leaseholder's when there is no majority) is *diverged*: it is logged as
//! an error, counted in [`ranges_inconsistent`], and fenced — it refuses
//! leases and every request from then on (clients get `NotLeaseholder` and
//! go to the other replicas). The fence is written to the store
//! ([`fence_key`], unreplicated) before it takes effect, so it outlives a
//! restart; it goes with the replica when replica GC removes it.
//! CockroachDB goes further and kills the node; fencing only the replica
//! keeps the node's healthy ranges serving. TODO(issue 11): replace a
//! fenced replica (remove it from the range and let the replicate queue add
//! a fresh one).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tardigrade_encoding::keys;
use tardigrade_kvpb::{ErrorDetail, KvError, ReplicaType};
use tardigrade_storage::batch::WriteSet;
use tardigrade_storage::{Batch, EngineError, Reader, Space};

use crate::command::{Command, Trigger};
use crate::replica::{Replica, ReplicaState};
use crate::store::Store;

/// How many computed digests a replica keeps for collection.
const KEPT_RESULTS: usize = 16;
/// How long the leaseholder waits for a replica's digest.
pub const COLLECT_TIMEOUT: Duration = Duration::from_secs(30);

static RANGES_INCONSISTENT: AtomicU64 = AtomicU64::new(0);

/// Replicas found diverged by checks on this process (the metric
/// `ranges_inconsistent`).
pub fn ranges_inconsistent() -> u64 {
    RANGES_INCONSISTENT.load(Ordering::Relaxed)
}

/// A replica's digest of its replicated data at a log position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaDigest {
    pub applied_index: u64,
    pub digest: [u8; 32],
}

impl ReplicaDigest {
    pub fn hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A replica's side of the checker: digests computed here, and its fence.
#[derive(Clone, Default)]
pub(crate) struct ReplicaConsistency {
    inner: Arc<ConsistencyInner>,
}

#[derive(Default)]
struct ConsistencyInner {
    results: Mutex<VecDeque<(u64, Result<ReplicaDigest, String>)>>,
    computed: tokio::sync::Notify,
    fenced: Mutex<Option<String>>,
}

impl ReplicaConsistency {
    pub(crate) fn check_not_fenced(&self, range_id: u64) -> Result<(), KvError> {
        match &*self.inner.fenced.lock() {
            None => Ok(()),
            Some(_) => Err(KvError::new(ErrorDetail::NotLeaseholder {
                range_id,
                leaseholder_node: 0,
            })),
        }
    }

    fn record(&self, id: u64, result: Result<ReplicaDigest, String>) {
        let mut results = self.inner.results.lock();
        if results.len() >= KEPT_RESULTS {
            results.pop_front();
        }
        results.push_back((id, result));
        drop(results);
        self.inner.computed.notify_waiters();
    }

    async fn wait(&self, id: u64, timeout: Duration) -> Result<ReplicaDigest, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let computed = self.inner.computed.notified();
            if let Some((_, r)) = self.inner.results.lock().iter().find(|(i, _)| *i == id) {
                return r.clone();
            }
            if tokio::time::timeout_at(deadline, computed).await.is_err() {
                return Err(format!(
                    "no digest for check {id:016x} within {timeout:?} (the replica may have caught up by snapshot)"
                ));
            }
        }
    }
}

/// The store-local record of a fence on this store's replica of
/// `range_id`: the replica id (8 bytes, big-endian) and the reason.
pub fn fence_key(range_id: u64) -> Vec<u8> {
    keys::range_id_local_key(range_id, b"ufnce")
}

/// The fence recorded for replica `replica_id` of `range_id` on this
/// engine, if any (a record for an earlier replica of the range does not
/// count: GC removed that one).
pub(crate) fn recorded_fence(
    engine: &tardigrade_storage::Engine,
    range_id: u64,
    replica_id: u64,
) -> Result<Option<String>, EngineError> {
    let Some(v) = engine.get(Space::Raw, &fence_key(range_id))? else {
        return Ok(None);
    };
    let (id, reason) = v.split_at(v.len().min(8));
    let Ok(id) = <[u8; 8]>::try_from(id) else {
        return Err(EngineError::corrupt_record(
            engine,
            &fence_key(range_id),
            "a fence record shorter than its replica id",
        ));
    };
    Ok(
        (u64::from_be_bytes(id) == replica_id)
            .then(|| String::from_utf8_lossy(reason).into_owned()),
    )
}

impl ReplicaConsistency {
    /// A replica loaded with the fence its store recorded.
    pub(crate) fn fenced_since_before(reason: String) -> ReplicaConsistency {
        let c = ReplicaConsistency::default();
        *c.inner.fenced.lock() = Some(reason);
        c
    }
}

/// Why a replica is fenced, if it is.
pub fn fenced_reason(replica: &Replica) -> Option<String> {
    replica.consistency.inner.fenced.lock().clone()
}

/// Fences `replica`: from now on it refuses leases and requests. Raft
/// leadership goes to another voter, since only the leader takes leases.
/// TODO(issue 11): a fenced replica may still win a later election; it
/// should hand leadership on again (or be removed from the range).
pub fn fence(replica: &Replica, reason: String) {
    tracing::error!(
        range_id = replica.range_id,
        replica_id = replica.replica_id,
        "FENCING a replica that diverged from its range: it no longer serves or takes leases (recorded: it stays fenced across restarts): {reason}"
    );
    // Recorded first: a diverged replica must not serve after a restart.
    let mut value = replica.replica_id.to_be_bytes().to_vec();
    value.extend_from_slice(reason.as_bytes());
    let mut ws = WriteSet::default();
    ws.put(Space::Raw, &fence_key(replica.range_id), &value);
    if let Err(e) = replica.engine().commit(&ws, true) {
        tracing::error!(
            range_id = replica.range_id,
            error = %e,
            "cannot record the fence: it holds only until this node restarts"
        );
    }
    *replica.consistency.inner.fenced.lock() = Some(reason);
    if replica.is_raft_leader()
        && let Some(other) = other_voter(replica)
    {
        replica.raft.lock().node.transfer_leader(other);
    }
}

fn other_voter(replica: &Replica) -> Option<u64> {
    replica
        .desc()
        .replicas
        .iter()
        .find(|r| r.replica_id != replica.replica_id && r.kind == ReplicaType::Voter)
        .map(|r| r.replica_id)
}

/// Waits (up to `timeout`) for this replica's digest of check `id`.
pub async fn wait_digest(
    replica: &Replica,
    id: u64,
    timeout: Duration,
) -> Result<ReplicaDigest, String> {
    replica.consistency.wait(id, timeout).await
}

/// The SHA-256 digest of a range's replicated data as `reader` sees it,
/// with `applied_state` (the encoded applied state at the digest's log
/// position) mixed in. The stored applied-state key is skipped: where a
/// digest is computed mid-batch, its stored copy lags behind.
pub fn range_digest(
    reader: &dyn Reader,
    range_id: u64,
    start: &[u8],
    end: &[u8],
    applied_state: &[u8],
) -> Result<[u8; 32], EngineError> {
    let skip = keys::range_applied_state_key(range_id);
    let mut h = Sha256::new();
    for (space, lower, upper) in crate::raft_storage::range_spans(range_id, start, end) {
        for kv in reader.scan(space, &lower, &upper, false) {
            let (k, v) = kv?;
            if space == Space::Raw && *k == *skip {
                continue;
            }
            h.update([space as u8]);
            h.update((k.len() as u64).to_le_bytes());
            h.update(&k);
            h.update((v.len() as u64).to_le_bytes());
            h.update(&v);
        }
    }
    h.update(b"applied-state");
    h.update(applied_state);
    Ok(h.finalize().into())
}

/// Called where a `ComputeChecksum` command applies: digests the state
/// as of that command (the engine plus the round's writes staged so far)
/// on another thread, and keeps the result under `id`.
pub(crate) fn compute_at(replica: &Replica, id: u64, state: &ReplicaState, staged: &WriteSet) {
    let mut view = Batch::new(replica.engine().snapshot());
    for ((space, key), value) in staged.iter() {
        match value {
            Some(v) => view.put(*space, key, v),
            None => view.delete(*space, key),
        }
    }
    let consistency = replica.consistency.clone();
    let range_id = replica.range_id;
    let desc = state.desc.clone();
    let applied = state.applied;
    let spawned = std::thread::Builder::new()
        .name(format!("checksum-r{range_id}"))
        .spawn(move || {
            let result = range_digest(
                &view,
                range_id,
                &desc.start_key,
                &desc.end_key,
                &applied.encode(),
            )
            .map(|digest| ReplicaDigest {
                applied_index: applied.raft_applied_index,
                digest,
            })
            .map_err(|e| e.to_string());
            consistency.record(id, result);
        });
    if let Err(e) = spawned {
        replica
            .consistency
            .record(id, Err(format!("cannot start the checksum thread: {e}")));
    }
}

/// Reaches the other replicas of a range: their digests, and fencing them.
pub trait ChecksumPeers: Send + Sync {
    /// The digest of check `id` computed by the replica of `range_id` on `node_id`.
    fn collect(&self, node_id: u64, range_id: u64, id: u64) -> PeerFuture<'_, ReplicaDigest>;
    /// Fences the replica of `range_id` on `node_id`.
    fn fence(&self, node_id: u64, range_id: u64, reason: String) -> PeerFuture<'_, ()>;
}

/// A boxed future, for the object-safe [`ChecksumPeers`].
pub type PeerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// One replica's part in a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaVerdict {
    pub node_id: u64,
    pub replica_id: u64,
    pub digest: Result<ReplicaDigest, String>,
    pub diverged: bool,
}

/// The outcome of one range's check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeCheck {
    pub range_id: u64,
    pub replicas: Vec<ReplicaVerdict>,
}

impl RangeCheck {
    pub fn consistent(&self) -> bool {
        !self.replicas.iter().any(|r| r.diverged)
    }

    /// Every replica answered and none diverged.
    pub fn complete(&self) -> bool {
        self.replicas.iter().all(|r| r.digest.is_ok()) && self.consistent()
    }
}

/// Runs a check of `replica`'s range from its leaseholder (acquiring the
/// lease if needed): compares every replica's digest at one log position,
/// reports and fences the diverged ones.
pub async fn check_range(
    replica: &Arc<Replica>,
    peers: &dyn ChecksumPeers,
) -> Result<RangeCheck, KvError> {
    let lease = replica.ensure_lease(replica.clock_now()).await?;
    let id: u64 = rand::random();
    let cmd = Command {
        id: rand::random(),
        proposer: replica.replica_id,
        lease_sequence: lease.sequence,
        trigger: Some(Trigger::ComputeChecksum { id }),
        ..Command::default()
    };
    replica.propose_and_wait(cmd, false).await?;
    let desc = replica.desc();
    let mut replicas = Vec::new();
    for r in &desc.replicas {
        let digest = if r.replica_id == replica.replica_id {
            wait_digest(replica, id, COLLECT_TIMEOUT).await
        } else {
            match tokio::time::timeout(COLLECT_TIMEOUT, peers.collect(r.node_id, desc.range_id, id))
                .await
            {
                Ok(d) => d,
                Err(_) => Err(format!("n{} did not answer", r.node_id)),
            }
        };
        replicas.push(ReplicaVerdict {
            node_id: r.node_id,
            replica_id: r.replica_id,
            digest,
            diverged: false,
        });
    }
    let reference = reference_digest(&replicas, replica.replica_id);
    for v in &mut replicas {
        v.diverged = matches!((&v.digest, reference), (Ok(d), Some(r)) if d.digest != r);
    }
    for v in replicas.iter().filter(|v| v.diverged) {
        RANGES_INCONSISTENT.fetch_add(1, Ordering::Relaxed);
        let reason = format!(
            "r{} replica {} on n{} diverged: its digest at index {} differs from the {} other replicas agree on",
            desc.range_id,
            v.replica_id,
            v.node_id,
            v.digest.as_ref().map(|d| d.applied_index).unwrap_or(0),
            replicas.len() - 1,
        );
        tracing::error!("consistency check: {reason}");
        if v.replica_id == replica.replica_id {
            // Hand the lease to a replica that agrees with the majority first.
            if let Some(to) = replicas.iter().find(|o| !o.diverged && o.digest.is_ok())
                && let Err(e) = replica.transfer_lease(to.replica_id).await
            {
                tracing::warn!(
                    range_id = desc.range_id,
                    "moving the lease off a diverged replica: {e}"
                );
            }
            fence(replica, reason);
        } else if let Err(e) = peers.fence(v.node_id, desc.range_id, reason).await {
            tracing::error!(
                range_id = desc.range_id,
                node_id = v.node_id,
                "cannot fence the diverged replica: {e}"
            );
        }
    }
    Ok(RangeCheck {
        range_id: desc.range_id,
        replicas,
    })
}

/// The digest a strict majority of the replicas agree on; else the
/// leaseholder's own.
fn reference_digest(replicas: &[ReplicaVerdict], leaseholder: u64) -> Option<[u8; 32]> {
    let digests: Vec<[u8; 32]> = replicas
        .iter()
        .filter_map(|v| v.digest.as_ref().ok().map(|d| d.digest))
        .collect();
    digests
        .iter()
        .find(|d| digests.iter().filter(|o| o == d).count() * 2 > replicas.len())
        .copied()
        .or_else(|| {
            replicas
                .iter()
                .find(|v| v.replica_id == leaseholder)
                .and_then(|v| v.digest.as_ref().ok().map(|d| d.digest))
        })
}

/// Whether this store checks the replica's range: it holds the lease, or
/// leads the Raft group of an idle range whose lease lapsed (and so takes
/// the lease for the check): normally one store per range.
fn should_check(replica: &Replica) -> bool {
    if !replica.is_initialized() || fenced_reason(replica).is_some() {
        return false;
    }
    let lease = replica.lease();
    let now = replica.clock_now();
    if lease.covers(now, now) {
        lease.replica.replica_id == replica.replica_id
    } else {
        replica.is_raft_leader()
    }
}

/// Checks, one at a time, every range whose lease this store holds (or
/// whose idle Raft group it leads).
pub async fn check_leased_ranges(store: &Arc<Store>, peers: &dyn ChecksumPeers) -> Vec<RangeCheck> {
    let mut out = Vec::new();
    for replica in store.replicas() {
        if !should_check(&replica) {
            continue;
        }
        match check_range(&replica, peers).await {
            Ok(check) => out.push(check),
            Err(e) => tracing::warn!(
                range_id = replica.range_id,
                "consistency check not run: {e}"
            ),
        }
    }
    out
}

/// The consistency queue: every `interval`, checks the ranges this store
/// holds the lease of, pausing `pace` between ranges so that checking never
/// competes much with foreground traffic. Ends when the store stops.
pub fn spawn_queue(
    store: std::sync::Weak<Store>,
    peers: Arc<dyn ChecksumPeers>,
    interval: Duration,
    pace: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(s) = store.upgrade() else { return };
            for replica in s.replicas() {
                if !should_check(&replica) {
                    continue;
                }
                if let Err(e) = check_range(&replica, peers.as_ref()).await {
                    tracing::debug!(
                        range_id = replica.range_id,
                        "consistency check skipped: {e}"
                    );
                }
                tokio::time::sleep(pace).await;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tardigrade_storage::{Engine, StoreSpec};

    fn digest_of(eng: &Engine) -> [u8; 32] {
        range_digest(eng, 7, b"a", b"z", b"state").expect("digest")
    }

    fn engine_with(writes: &[(Space, Vec<u8>, &[u8])]) -> Engine {
        let eng = Engine::open(&StoreSpec::Memory).expect("engine");
        let mut b = eng.batch();
        for (space, k, v) in writes {
            b.put(*space, k, v);
        }
        eng.commit(b.writes(), false).expect("commit");
        eng
    }

    fn sample() -> Vec<(Space, Vec<u8>, &'static [u8])> {
        vec![
            (Space::Mvcc, b"apple\x00\x00".to_vec(), b"v1"),
            (Space::Mvcc, b"melon\x00\x00".to_vec(), b"v2"),
            (Space::Lock, b"melon".to_vec(), b"intent"),
            (Space::Raw, keys::range_lease_key(7), b"lease"),
        ]
    }

    #[test]
    fn the_same_data_gives_the_same_digest() {
        assert_eq!(
            digest_of(&engine_with(&sample())),
            digest_of(&engine_with(&sample()))
        );
    }

    #[test]
    fn one_flipped_bit_in_a_value_an_intent_or_the_lease_changes_the_digest() {
        let base = digest_of(&engine_with(&sample()));
        for i in 0..sample().len() {
            let mut data = sample();
            let mut v = data[i].2.to_vec();
            v[0] ^= 1;
            let eng = Engine::open(&StoreSpec::Memory).expect("engine");
            let mut b = eng.batch();
            for (j, (space, k, val)) in data.drain(..).enumerate() {
                b.put(space, &k, if j == i { &v } else { val });
            }
            eng.commit(b.writes(), false).expect("commit");
            assert_ne!(digest_of(&eng), base, "a flip in write {i} went unseen");
        }
    }

    #[test]
    fn an_extra_intent_changes_the_digest_but_data_outside_the_range_does_not() {
        let base = digest_of(&engine_with(&sample()));
        let mut with_intent = sample();
        with_intent.push((Space::Lock, b"apple".to_vec(), b"intent"));
        assert_ne!(digest_of(&engine_with(&with_intent)), base);
        let mut outside = sample();
        outside.push((Space::Mvcc, b"zebra\x00\x00".to_vec(), b"elsewhere"));
        outside.push((Space::Raw, keys::range_lease_key(8), b"other range"));
        outside.push((
            Space::Raw,
            keys::range_applied_state_key(7),
            b"lagging copy",
        ));
        assert_eq!(digest_of(&engine_with(&outside)), base);
    }

    #[test]
    fn a_different_applied_state_changes_the_digest() {
        let eng = engine_with(&sample());
        assert_ne!(
            range_digest(&eng, 7, b"a", b"z", b"state 1").expect("digest"),
            range_digest(&eng, 7, b"a", b"z", b"state 2").expect("digest")
        );
    }

    fn verdict(replica_id: u64, digest: u8) -> ReplicaVerdict {
        ReplicaVerdict {
            node_id: replica_id,
            replica_id,
            digest: Ok(ReplicaDigest {
                applied_index: 10,
                digest: [digest; 32],
            }),
            diverged: false,
        }
    }

    #[test]
    fn the_majority_digest_is_the_reference_even_against_the_leaseholder() {
        let replicas = [verdict(1, 9), verdict(2, 4), verdict(3, 4)];
        assert_eq!(reference_digest(&replicas, 1), Some([4; 32]));
        let split = [verdict(1, 9), verdict(2, 4)];
        assert_eq!(reference_digest(&split, 1), Some([9; 32]));
    }
}
