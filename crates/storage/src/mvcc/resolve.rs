//! Intent resolution and garbage collection of old versions.

use tardigrade_hlc::Timestamp;

use super::cursor::scan_span;
use super::key::{decode_mvcc_key, encode_mvcc_key, mvcc_key_lower_bound, mvcc_key_upper_bound};
use super::stats::{KeySummary, ValueInfo, apply_summary_delta, version_stats};
use super::value::{IntentRecord, decode_version, encode_version};
use super::write::KeyState;
use super::{Intent, MvccStats, Result, TxnStatus};
use crate::batch::Batch;
use crate::engine::{Reader, Space};
use crate::txn::TxnMeta;

fn is_ignored(ignored: &[(i32, i32)], seq: i32) -> bool {
    ignored.iter().any(|&(lo, hi)| lo <= seq && seq <= hi)
}

pub(super) fn resolve_intent(
    b: &mut Batch,
    stats: &mut MvccStats,
    key: &[u8],
    txn: &TxnMeta,
    status: TxnStatus,
    ignored_seqs: &[(i32, i32)],
) -> Result<bool> {
    let st = KeyState::load(b, key)?;
    let Some((rec, _)) = &st.intent else {
        return Ok(false);
    };
    if rec.txn.id != txn.id {
        return Ok(false);
    }
    let before = st.summary()?;
    let mut rec = rec.clone();
    let epochs_match = rec.txn.epoch == txn.epoch;
    // Savepoint rollbacks only concern the epoch they happened in.
    let mut keep = true;
    if epochs_match && !ignored_seqs.is_empty() {
        rec.history.retain(|(s, _)| !is_ignored(ignored_seqs, *s));
        if is_ignored(ignored_seqs, rec.txn.sequence) {
            match rec.history.pop() {
                Some((seq, value)) => {
                    rec.txn.sequence = seq;
                    rec.value = value;
                }
                None => keep = false,
            }
        }
    }
    let mut after = KeySummary {
        newest: before.newest,
        intent: None,
    };
    match status {
        TxnStatus::Committed if keep && epochs_match => {
            let commit_ts = txn.write_timestamp;
            let enc = encode_version(rec.value.as_deref());
            let vkey = encode_mvcc_key(key, commit_ts);
            // A version already at the commit timestamp means this commit is
            // being replayed: replace it rather than count it twice.
            if let Some(old) = b.get(Space::Mvcc, &vkey)? {
                stats.subtract(&version_stats(old.len()));
            }
            b.put(Space::Mvcc, &vkey, &enc);
            stats.add(&version_stats(enc.len()));
            if st.newest.as_ref().is_none_or(|(ts, _)| *ts <= commit_ts) {
                after.newest = Some(ValueInfo {
                    len: enc.len(),
                    live: rec.value.is_some(),
                });
            }
            b.delete(Space::Lock, key);
        }
        TxnStatus::Pending if keep => {
            rec.txn.write_timestamp.forward(txn.write_timestamp);
            let enc = rec.encode();
            b.put(Space::Lock, key, &enc);
            after.intent = Some(ValueInfo {
                len: enc.len(),
                live: rec.value.is_some(),
            });
        }
        // Aborted, committed without this intent (another epoch), or
        // nothing left after the ignored sequence numbers.
        _ => b.delete(Space::Lock, key),
    }
    apply_summary_delta(stats, key.len(), &before, &after);
    Ok(true)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn resolve_intent_range(
    b: &mut Batch,
    stats: &mut MvccStats,
    start: &[u8],
    end: &[u8],
    txn: &TxnMeta,
    status: TxnStatus,
    ignored_seqs: &[(i32, i32)],
    max: u64,
) -> Result<(u64, Option<(Vec<u8>, Vec<u8>)>)> {
    let mut keys = Vec::new();
    let mut resume = None;
    for entry in scan_span(b, Space::Lock, start, end, false) {
        let (k, v) = entry?;
        if IntentRecord::decode(&v)?.txn.id != txn.id {
            continue;
        }
        if max > 0 && keys.len() as u64 >= max {
            resume = Some((k.to_vec(), end.to_vec()));
            break;
        }
        keys.push(k.to_vec());
    }
    // Accumulate locally so that a failure leaves `stats` untouched.
    let mut delta = MvccStats::default();
    let mut n = 0;
    for k in &keys {
        if resolve_intent(b, &mut delta, k, txn, status, ignored_seqs)? {
            n += 1;
        }
    }
    stats.add(&delta);
    Ok((n, resume))
}

pub(super) fn gc(
    b: &mut Batch,
    stats: &mut MvccStats,
    key: &[u8],
    threshold: Timestamp,
) -> Result<u64> {
    // (timestamp, stored length, is a tombstone), newest first.
    let mut versions = Vec::new();
    let lower = mvcc_key_lower_bound(key);
    let upper = mvcc_key_upper_bound(key);
    for entry in b.scan(Space::Mvcc, &lower, &upper, false) {
        let (k, v) = entry?;
        let (_, ts) = decode_mvcc_key(&k)?;
        versions.push((ts, v.len(), decode_version(&v)?.is_none()));
    }
    let Some(first) = versions.iter().position(|(ts, _, _)| *ts <= threshold) else {
        return Ok(0);
    };
    let from = if versions[first].2 { first } else { first + 1 };
    if from >= versions.len() {
        return Ok(0);
    }
    let intent = match b.get(Space::Lock, key)? {
        Some(raw) => Some(ValueInfo {
            len: raw.len(),
            live: IntentRecord::decode(&raw)?.value.is_some(),
        }),
        None => None,
    };
    let (_, newest_len, newest_tombstone) = versions[0];
    let before = KeySummary {
        newest: Some(ValueInfo {
            len: newest_len,
            live: !newest_tombstone,
        }),
        intent,
    };
    let after = KeySummary {
        newest: if from == 0 { None } else { before.newest },
        intent,
    };
    for &(ts, len, _) in &versions[from..] {
        b.delete(Space::Mvcc, &encode_mvcc_key(key, ts));
        stats.subtract(&version_stats(len));
    }
    apply_summary_delta(stats, key.len(), &before, &after);
    Ok((versions.len() - from) as u64)
}

pub(super) fn scan_intents(
    r: &dyn Reader,
    start: &[u8],
    end: &[u8],
    max: u64,
) -> Result<Vec<Intent>> {
    let mut out = Vec::new();
    for entry in scan_span(r, Space::Lock, start, end, false) {
        if max > 0 && out.len() as u64 >= max {
            break;
        }
        let (k, v) = entry?;
        out.push(Intent {
            key: k.to_vec(),
            txn: IntentRecord::decode(&v)?.txn,
        });
    }
    Ok(out)
}
