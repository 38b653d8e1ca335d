//! The MVCC GC queue: removes the versions no read can need any more.
//!
//! Every `gc_queue_interval` the queue visits the ranges this store holds
//! the lease of. For a range whose statistics show more versions than live
//! keys (old versions or tombstones exist), it takes the zone's
//! `gc.ttlseconds` ([`crate::span_config`]), sets the threshold to now
//! minus that, scans the range and sends `Gc` requests for the keys with a
//! version at or below the threshold that a newer one at or below it
//! shadows (or that is itself a tombstone), [`GC_BATCH_KEYS`] keys per
//! batch. Each batch goes through Raft like any write, with a
//! `GcThreshold` trigger: every replica removes the same versions and moves
//! its GC threshold up, and from then on refuses reads and writes at or
//! below it ([`crate::replica`]), since the versions they would see may be
//! gone. Splits copy the threshold to the new range; snapshots carry it.
//!
//! TODO(issue 14): transaction records and abort span entries are not
//! collected, and a range is scanned whole even when little is garbage
//! (CockroachDB scores ranges by their estimated garbage age first).

use std::sync::{Arc, Weak};
use std::time::Duration;

use tardigrade_hlc::Timestamp;
use tardigrade_kvpb::codec::{ByteReader, DecodeError, put_ts};
use tardigrade_kvpb::{BatchRequest, Header, KvError, Request};
use tardigrade_storage::{Reader, Space, mvcc};

use crate::replica::Replica;
use crate::store::Store;

/// Keys per `Gc` request.
pub const GC_BATCH_KEYS: usize = 256;

pub(crate) fn encode_threshold(ts: Timestamp) -> Vec<u8> {
    let mut b = Vec::with_capacity(12);
    put_ts(&mut b, ts);
    b
}

pub(crate) fn decode_threshold(bytes: &[u8]) -> Result<Timestamp, DecodeError> {
    let mut r = ByteReader::new(bytes);
    let ts = r.ts()?;
    r.done()?;
    Ok(ts)
}

/// Runs the queue on `store` until it stops.
pub(crate) async fn gc_queue(store: Weak<Store>) {
    let interval = match store.upgrade() {
        Some(s) => s.config().gc_queue_interval,
        None => return,
    };
    loop {
        tokio::time::sleep(interval).await;
        let Some(store) = store.upgrade() else { return };
        if store.is_stopped() {
            return;
        }
        for r in store.replicas() {
            if store.is_stopped() {
                return;
            }
            match process(&store, &r).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    range_id = r.range_id,
                    keys = n,
                    "gc queue: removed versions older than the zone's gc.ttlseconds"
                ),
                Err(e) => tracing::debug!(range_id = r.range_id, error = %e, "gc queue: failed"),
            }
        }
    }
}

/// Collects the garbage of `r` if this store holds its lease (or leads an
/// idle range); returns how many keys had versions removed.
pub async fn process(store: &Arc<Store>, r: &Arc<Replica>) -> Result<usize, KvError> {
    if !r.is_initialized() {
        return Ok(0);
    }
    let now = store.clock().now();
    let lease = r.lease();
    // The leaseholder collects; an idle range's lease lapses, and then its
    // Raft leader does (sending the first batch takes the lease back).
    let holds = lease.replica.replica_id == r.replica_id && lease.covers(now, now);
    if !holds && !r.is_raft_leader() {
        return Ok(0);
    }
    let s = r.stats();
    if s.val_count - s.intent_count <= s.live_count {
        return Ok(0); // one version per live key: nothing to collect
    }
    let desc = r.desc();
    let ttl = store.span_configs().gc_ttl_for(&desc);
    let threshold = Timestamp::new(
        now.wall
            .saturating_sub(Duration::from_secs(u64::from(ttl)).as_nanos() as i64),
        0,
    );
    if threshold <= r.gc_threshold() {
        return Ok(0);
    }
    let keys = collectable_keys(r, threshold).map_err(|e| KvError::internal(e.to_string()))?;
    let mut done = 0;
    for chunk in keys.chunks(GC_BATCH_KEYS) {
        let ba = BatchRequest {
            header: Header {
                timestamp: store.clock().now(),
                range_id: r.range_id,
                ..Header::default()
            },
            requests: vec![Request::Gc {
                keys: chunk.to_vec(),
                threshold,
            }],
        };
        r.send(ba).await?;
        done += chunk.len();
    }
    Ok(done)
}

/// The user keys of `r` with versions that a GC at `threshold` removes:
/// below the newest version at or below the threshold, or that version
/// itself when it is a tombstone.
fn collectable_keys(
    r: &Replica,
    threshold: Timestamp,
) -> Result<Vec<Vec<u8>>, tardigrade_storage::EngineError> {
    let (start, end) = (r.start_key(), r.end_key());
    let lower = mvcc::key::mvcc_key_lower_bound(&start);
    let upper = mvcc::key::mvcc_key_lower_bound(&end);
    let mut out = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut user_key = Vec::new();
    // For the current key: whether a version at or below the threshold
    // was seen, and whether this key is already collected.
    let (mut seen_below, mut collect) = (false, false);
    let mut first = true;
    for kv in r.engine().scan(Space::Mvcc, &lower, &upper, false) {
        let (k, v) = kv?;
        let ts = mvcc::key::decode_mvcc_key_into(&k, &mut user_key)
            .map_err(|e| tardigrade_storage::EngineError::Corrupt(e.to_string()))?;
        if first || user_key != current {
            if collect {
                out.push(std::mem::take(&mut current));
            }
            current.clone_from(&user_key);
            (seen_below, collect, first) = (false, false, false);
        }
        if collect || ts > threshold {
            continue;
        }
        if seen_below {
            collect = true; // an older version under a visible one
        } else {
            seen_below = true;
            let tombstone = mvcc::value::decode_version(&v)
                .map_err(|e| tardigrade_storage::EngineError::Corrupt(e.to_string()))?
                .is_none();
            collect = tombstone;
        }
    }
    if collect {
        out.push(current);
    }
    Ok(out)
}
