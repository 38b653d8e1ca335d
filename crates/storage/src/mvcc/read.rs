//! Reads: [`mvcc_get`](super::mvcc_get) and [`mvcc_scan`](super::mvcc_scan).
//!
//! Both run the same per-key logic over a [`MergedCursor`]: first the key's
//! intent (the reader's own, another transaction's, or none), then — unless the
//! intent decided the outcome — the committed versions, newest first.

use tardigrade_hlc::Timestamp;

use super::cursor::MergedCursor;
use super::key::{decode_mvcc_key_into, mvcc_key_lower_bound, mvcc_key_upper_bound};
use super::value::{IntentRecord, decode_version};
use super::{Intent, MvccError, ReadOptions, Result, ScanLimits, ScanResult, Value};
use crate::engine::{Reader, Slice, Space};

/// The most conflicting intents a scan collects before it fails: the caller
/// resolves them and scans again. Unbounded, a scan over the 500,000
/// intents of a large transaction committed a moment ago built one
/// resolution batch of all of them (tens of MB held at once, one huge
/// command). CockroachDB bounds the same list (5,000 by default).
pub const MAX_INTENTS_PER_ERROR: usize = 5000;

/// What the intent at a key means for a read.
enum IntentOutcome {
    /// The reader's own write, visible at its sequence number.
    Own(Value),
    /// Another transaction's intent in the way (or reported, when inconsistent).
    Conflict(Intent),
    /// Nothing to see: read the committed versions.
    Ignore,
}

fn classify_intent(
    key: &[u8],
    raw: &[u8],
    ts: Timestamp,
    limit: Option<Timestamp>,
    opts: &ReadOptions<'_>,
) -> Result<IntentOutcome> {
    let rec = IntentRecord::decode(raw)?;
    if let Some(t) = opts.txn
        && t.id == rec.txn.id
    {
        if rec.txn.epoch > t.epoch {
            return Err(MvccError::EpochRegression {
                epoch: t.epoch,
                intent_epoch: rec.txn.epoch,
            });
        }
        if rec.txn.epoch == t.epoch
            && let Some(v) = rec.value_at_seq_ignoring(t.sequence, opts.ignored_seqs)
        {
            return Ok(IntentOutcome::Own(Value {
                bytes: v.map(<[u8]>::to_vec),
                timestamp: rec.txn.write_timestamp,
            }));
        }
        // An older epoch, or nothing written yet at the reader's sequence.
        return Ok(IntentOutcome::Ignore);
    }
    let its = rec.txn.write_timestamp;
    if its <= ts || limit.is_some_and(|l| its <= l) {
        return Ok(IntentOutcome::Conflict(Intent {
            key: key.to_vec(),
            txn: rec.txn,
        }));
    }
    Ok(IntentOutcome::Ignore)
}

fn to_value(ts: Timestamp, raw: &Slice) -> Result<Value> {
    Ok(Value {
        bytes: decode_version(raw)?.map(<[u8]>::to_vec),
        timestamp: ts,
    })
}

/// The committed version of the cursor's current key visible at `ts`, after
/// checking the uncertainty window `(ts, limit]`.
fn visible_version(
    cur: &mut MergedCursor<'_>,
    ts: Timestamp,
    limit: Option<Timestamp>,
    reverse: bool,
) -> Result<Option<Value>> {
    let uncertain = |vts: Timestamp| limit.is_some_and(|l| vts <= l);
    if !reverse {
        // Newest first: the first version in the window is the newest one in it.
        while let Some((vts, v)) = cur.next_version()? {
            if vts <= ts {
                return Ok(Some(to_value(vts, &v)?));
            }
            if uncertain(vts) {
                return Err(MvccError::ReadWithinUncertainty {
                    read: ts,
                    existing: vts,
                });
            }
        }
        return Ok(None);
    }
    // Oldest first: remember the newest version at or below `ts` and the
    // newest one in the window; stop at the first one above the window.
    let mut best: Option<(Timestamp, Slice)> = None;
    let mut in_window = None;
    while let Some((vts, v)) = cur.next_version()? {
        if vts <= ts {
            best = Some((vts, v));
        } else if uncertain(vts) {
            in_window = Some(vts);
        } else {
            break;
        }
    }
    if let Some(existing) = in_window {
        return Err(MvccError::ReadWithinUncertainty { read: ts, existing });
    }
    best.map(|(vts, v)| to_value(vts, &v)).transpose()
}

pub(super) fn scan(
    r: &dyn Reader,
    start: &[u8],
    end: &[u8],
    ts: Timestamp,
    opts: &ReadOptions<'_>,
    limits: ScanLimits,
    reverse: bool,
) -> Result<ScanResult> {
    let limit = (opts.uncertainty_limit > ts).then_some(opts.uncertainty_limit);
    let mut res = ScanResult::default();
    let mut conflicts = Vec::new();
    let mut bytes = 0u64;
    let mut cur = MergedCursor::new(r, start, end, reverse)?;
    let mut key = Vec::new();
    while let Some(has_intent) = cur.next_user_key(&mut key)? {
        let mut found = None;
        let mut decided = false;
        if has_intent {
            let raw = cur.lock_value().expect("has intent");
            match classify_intent(&key, raw, ts, limit, opts)? {
                IntentOutcome::Own(v) => {
                    found = Some(v);
                    decided = true;
                }
                IntentOutcome::Conflict(intent) if opts.inconsistent => res.intents.push(intent),
                IntentOutcome::Conflict(intent) => {
                    conflicts.push(intent);
                    if conflicts.len() >= MAX_INTENTS_PER_ERROR {
                        break;
                    }
                    decided = true;
                }
                IntentOutcome::Ignore => {}
            }
        }
        if !decided {
            found = visible_version(&mut cur, ts, limit, reverse)?;
        }
        let Some(value) = found else { continue };
        if value.bytes.is_none() && !opts.tombstones {
            continue;
        }
        bytes += (key.len() + value.bytes.as_ref().map_or(0, Vec::len)) as u64;
        res.kvs.push((key.clone(), value));
        let full = (limits.max_keys > 0 && res.kvs.len() as u64 >= limits.max_keys)
            || (limits.target_bytes > 0 && bytes >= limits.target_bytes);
        if full {
            if let Some(next) = cur.peek_next_key()? {
                res.resume_span = Some(if reverse {
                    (start.to_vec(), key.clone())
                } else {
                    (next, end.to_vec())
                });
            }
            break;
        }
    }
    if !conflicts.is_empty() {
        return Err(MvccError::WriteIntent { intents: conflicts });
    }
    Ok(res)
}

/// A point read: one lookup in the lock table (a point get, which bloom
/// filters make cheap when there is no intent) and one short iteration over
/// the key's versions, instead of a merged scan over both spaces.
pub(super) fn get(
    r: &dyn Reader,
    key: &[u8],
    ts: Timestamp,
    opts: &ReadOptions<'_>,
) -> Result<super::GetResult> {
    let limit = (opts.uncertainty_limit > ts).then_some(opts.uncertainty_limit);
    let mut reported = None;
    if let Some(raw) = r.get(Space::Lock, key)? {
        match classify_intent(key, &raw, ts, limit, opts)? {
            IntentOutcome::Own(v) => {
                let value = (v.bytes.is_some() || opts.tombstones).then_some(v);
                return Ok(super::GetResult {
                    value,
                    intent: None,
                });
            }
            IntentOutcome::Conflict(intent) if opts.inconsistent => reported = Some(intent),
            IntentOutcome::Conflict(intent) => {
                return Err(MvccError::WriteIntent {
                    intents: vec![intent],
                });
            }
            IntentOutcome::Ignore => {}
        }
    }
    let lower = mvcc_key_lower_bound(key);
    let upper = mvcc_key_upper_bound(key);
    let mut user_key = Vec::with_capacity(key.len());
    let mut value = None;
    for item in r.scan(Space::Mvcc, &lower, &upper, false) {
        let (k, v) = item?;
        let vts = decode_mvcc_key_into(&k, &mut user_key)?;
        if vts <= ts {
            value = Some(to_value(vts, &v)?);
            break;
        }
        if limit.is_some_and(|l| vts <= l) {
            return Err(MvccError::ReadWithinUncertainty {
                read: ts,
                existing: vts,
            });
        }
    }
    let value = value.filter(|v| v.bytes.is_some() || opts.tombstones);
    Ok(super::GetResult {
        value,
        intent: reported,
    })
}
