//! Writes: puts, conditional puts, increments and range deletions.
//!
//! Every write first loads the key's [`KeyState`] (its intent and newest
//! committed version), checks for conflicts, picks the timestamp to write at,
//! then writes either a committed version (no transaction) or an intent record,
//! and adds the resulting statistics delta.

use tardigrade_hlc::Timestamp;

use super::cursor::MergedCursor;
use super::key::{decode_mvcc_key, encode_mvcc_key, mvcc_key_lower_bound, mvcc_key_upper_bound};
use super::stats::{KeySummary, ValueInfo, apply_summary_delta, version_stats};
use super::value::{IntentRecord, decode_version, encode_version};
use super::{Intent, MvccError, MvccStats, Result};
use crate::batch::Batch;
use crate::engine::{Reader, Slice, Space};
use crate::txn::TxnMeta;

/// A key's intent and newest committed version.
pub(super) struct KeyState {
    /// The decoded intent and its encoded length.
    pub intent: Option<(IntentRecord, usize)>,
    pub newest: Option<(Timestamp, Slice)>,
}

impl KeyState {
    pub(super) fn load(r: &dyn Reader, key: &[u8]) -> Result<KeyState> {
        let intent = match r.get(Space::Lock, key)? {
            Some(raw) => Some((IntentRecord::decode(&raw)?, raw.len())),
            None => None,
        };
        let lower = mvcc_key_lower_bound(key);
        let upper = mvcc_key_upper_bound(key);
        let newest = match r.scan(Space::Mvcc, &lower, &upper, false).next() {
            Some(entry) => {
                let (k, v) = entry?;
                Some((decode_mvcc_key(&k)?.1, v))
            }
            None => None,
        };
        Ok(KeyState { intent, newest })
    }

    pub(super) fn summary(&self) -> Result<KeySummary> {
        let newest = match &self.newest {
            Some((_, v)) => Some(ValueInfo {
                len: v.len(),
                live: decode_version(v)?.is_some(),
            }),
            None => None,
        };
        Ok(KeySummary {
            newest,
            intent: self.intent.as_ref().map(|(rec, len)| ValueInfo {
                len: *len,
                live: rec.value.is_some(),
            }),
        })
    }

    /// The newest committed value (`None` if missing or a tombstone).
    fn newest_value(&self) -> Result<Option<Vec<u8>>> {
        match &self.newest {
            Some((_, v)) => Ok(decode_version(v)?.map(<[u8]>::to_vec)),
            None => Ok(None),
        }
    }

    /// The intent, if `txn` wrote it in its current epoch at or after
    /// `txn.sequence`: the write is a replay.
    fn replayed_intent(&self, txn: Option<&TxnMeta>) -> Option<&IntentRecord> {
        let t = txn?;
        let (rec, _) = self.intent.as_ref()?;
        (rec.txn.id == t.id && rec.txn.epoch == t.epoch && t.sequence <= rec.txn.sequence)
            .then_some(rec)
    }

    /// The value a conditional write by `txn` compares against: its own
    /// intent as of its sequence number, else the newest committed value.
    fn current_value(
        &self,
        key: &[u8],
        txn: Option<&TxnMeta>,
        ignored_seqs: &[(i32, i32)],
    ) -> Result<Option<Vec<u8>>> {
        if let Some((rec, _)) = &self.intent {
            match txn {
                Some(t) if t.id == rec.txn.id => {
                    check_epoch(t, rec)?;
                    if rec.txn.epoch == t.epoch
                        && let Some(v) = rec.value_at_seq_ignoring(t.sequence, ignored_seqs)
                    {
                        return Ok(v.map(<[u8]>::to_vec));
                    }
                }
                _ => return Err(write_intent(key, rec)),
            }
        }
        self.newest_value()
    }
}

fn write_intent(key: &[u8], rec: &IntentRecord) -> MvccError {
    MvccError::WriteIntent {
        intents: vec![Intent {
            key: key.to_vec(),
            txn: rec.txn.clone(),
        }],
    }
}

fn check_epoch(txn: &TxnMeta, rec: &IntentRecord) -> Result<()> {
    if txn.epoch < rec.txn.epoch {
        return Err(MvccError::EpochRegression {
            epoch: txn.epoch,
            intent_epoch: rec.txn.epoch,
        });
    }
    Ok(())
}

/// Checks a replayed write against the value the intent recorded for its sequence number.
fn check_replay(rec: &IntentRecord, seq: i32, value: Option<&[u8]>) -> Result<Timestamp> {
    match rec.value_written_at(seq) {
        Some(v) if v == value => Ok(rec.txn.write_timestamp),
        Some(_) => Err(MvccError::Corrupt(format!(
            "replayed write at sequence {seq} with a different value"
        ))),
        None => Err(MvccError::Corrupt(format!(
            "replayed write at sequence {seq} missing from the intent (at sequence {})",
            rec.txn.sequence
        ))),
    }
}

/// Writes `value` at `key` given its loaded state: see [`super::mvcc_put`].
pub(super) fn put_with_state(
    b: &mut Batch,
    stats: &mut MvccStats,
    key: &[u8],
    ts: Timestamp,
    value: Option<&[u8]>,
    txn: Option<&TxnMeta>,
    st: &KeyState,
) -> Result<Timestamp> {
    let before = st.summary()?;
    let Some(txn) = txn else {
        if let Some((rec, _)) = &st.intent {
            return Err(write_intent(key, rec));
        }
        let mut w = ts;
        if let Some((existing, _)) = &st.newest
            && *existing >= w
        {
            w = existing.next();
        }
        let enc = encode_version(value);
        b.put(Space::Mvcc, &encode_mvcc_key(key, w), &enc);
        let after = KeySummary {
            newest: Some(ValueInfo {
                len: enc.len(),
                live: value.is_some(),
            }),
            intent: None,
        };
        apply_summary_delta(stats, key.len(), &before, &after);
        stats.add(&version_stats(enc.len()));
        return Ok(w);
    };

    let mut w = txn.write_timestamp;
    let mut history = Vec::new();
    if let Some((rec, _)) = &st.intent {
        if rec.txn.id != txn.id {
            return Err(write_intent(key, rec));
        }
        check_epoch(txn, rec)?;
        if rec.txn.epoch == txn.epoch {
            if txn.sequence <= rec.txn.sequence {
                return check_replay(rec, txn.sequence, value);
            }
            history.clone_from(&rec.history);
            history.push((rec.txn.sequence, rec.value.clone()));
        }
        // The intent may have been pushed: never move it back down.
        w.forward(rec.txn.write_timestamp);
    }
    if let Some((existing, _)) = &st.newest
        && *existing >= w
    {
        w = existing.next();
    }
    let rec = IntentRecord {
        txn: TxnMeta {
            write_timestamp: w,
            ..txn.clone()
        },
        value: value.map(<[u8]>::to_vec),
        history,
    };
    let enc = rec.encode();
    b.put(Space::Lock, key, &enc);
    let after = KeySummary {
        newest: before.newest,
        intent: Some(ValueInfo {
            len: enc.len(),
            live: value.is_some(),
        }),
    };
    apply_summary_delta(stats, key.len(), &before, &after);
    Ok(w)
}

pub(super) fn put(
    b: &mut Batch,
    stats: &mut MvccStats,
    key: &[u8],
    ts: Timestamp,
    value: Option<&[u8]>,
    txn: Option<&TxnMeta>,
) -> Result<Timestamp> {
    let st = KeyState::load(b, key)?;
    put_with_state(b, stats, key, ts, value, txn, &st)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn conditional_put(
    b: &mut Batch,
    stats: &mut MvccStats,
    key: &[u8],
    ts: Timestamp,
    value: &[u8],
    expected: Option<&[u8]>,
    txn: Option<&TxnMeta>,
    ignored_seqs: &[(i32, i32)],
) -> Result<Timestamp> {
    let st = KeyState::load(b, key)?;
    if st.replayed_intent(txn).is_none() {
        let actual = st.current_value(key, txn, ignored_seqs)?;
        if actual.as_deref() != expected {
            return Err(MvccError::ConditionFailed { actual });
        }
    }
    put_with_state(b, stats, key, ts, Some(value), txn, &st)
}

fn decode_int(key: &[u8], v: &[u8]) -> Result<i64> {
    let arr: [u8; 8] = v
        .try_into()
        .map_err(|_| MvccError::NotAnInteger { key: key.to_vec() })?;
    Ok(i64::from_be_bytes(arr))
}

pub(super) fn increment(
    b: &mut Batch,
    stats: &mut MvccStats,
    key: &[u8],
    ts: Timestamp,
    inc: i64,
    txn: Option<&TxnMeta>,
    ignored_seqs: &[(i32, i32)],
) -> Result<(i64, Timestamp)> {
    let st = KeyState::load(b, key)?;
    if let (Some(rec), Some(t)) = (st.replayed_intent(txn), txn) {
        // A replay returns what the original increment wrote.
        return match rec.value_written_at(t.sequence) {
            Some(Some(v)) => Ok((decode_int(key, v)?, rec.txn.write_timestamp)),
            _ => Err(MvccError::Corrupt(format!(
                "replayed increment at sequence {} does not match the intent",
                t.sequence
            ))),
        };
    }
    let current = match st.current_value(key, txn, ignored_seqs)? {
        Some(v) => decode_int(key, &v)?,
        None => 0,
    };
    let new = current
        .checked_add(inc)
        .ok_or_else(|| MvccError::IntegerOverflow {
            key: key.to_vec(),
            current,
            inc,
        })?;
    let w = put_with_state(b, stats, key, ts, Some(&new.to_be_bytes()), txn, &st)?;
    Ok((new, w))
}

#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub(super) fn delete_range(
    b: &mut Batch,
    stats: &mut MvccStats,
    start: &[u8],
    end: &[u8],
    max_keys: u64,
    ts: Timestamp,
    txn: Option<&TxnMeta>,
    ignored_seqs: &[(i32, i32)],
) -> Result<(Vec<Vec<u8>>, Option<(Vec<u8>, Vec<u8>)>, Timestamp)> {
    let mut w = txn.map_or(ts, |t| t.write_timestamp);
    let mut keys = Vec::new();
    let mut conflicts = Vec::new();
    let mut resume = None;
    let mut newest_seen: Option<Timestamp> = None;
    {
        let mut cur = MergedCursor::new(b, start, end, false)?;
        let mut key = Vec::new();
        while let Some(has_intent) = cur.next_user_key(&mut key)? {
            let mut live = None;
            if has_intent {
                let rec = IntentRecord::decode(cur.lock_value().expect("has intent"))?;
                match txn {
                    Some(t) if t.id == rec.txn.id => {
                        check_epoch(t, &rec)?;
                        if rec.txn.epoch == t.epoch
                            && let Some(v) = rec.value_at_seq_ignoring(t.sequence, ignored_seqs)
                        {
                            live = Some(v.is_some());
                        }
                        w.forward(rec.txn.write_timestamp);
                    }
                    _ => {
                        conflicts.push(Intent {
                            key: key.clone(),
                            txn: rec.txn,
                        });
                        continue;
                    }
                }
            }
            if let Some((vts, v)) = cur.next_version()? {
                newest_seen = newest_seen.max(Some(vts));
                if live.is_none() {
                    live = Some(decode_version(&v)?.is_some());
                }
            }
            if live == Some(true) {
                keys.push(key.clone());
                if max_keys > 0 && keys.len() as u64 >= max_keys {
                    if let Some(next) = cur.peek_next_key()? {
                        resume = Some((next, end.to_vec()));
                    }
                    break;
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(MvccError::WriteIntent { intents: conflicts });
    }
    // One timestamp for the whole request, above every version it passed over,
    // so that a read at that timestamp sees the whole span deleted.
    if let Some(existing) = newest_seen
        && existing >= w
    {
        w = existing.next();
    }
    let txn_at_w = txn.map(|t| TxnMeta {
        write_timestamp: w,
        ..t.clone()
    });
    // Accumulate locally so that a failure leaves `stats` untouched.
    let mut delta = MvccStats::default();
    for key in &keys {
        let st = KeyState::load(b, key)?;
        let written = put_with_state(b, &mut delta, key, w, None, txn_at_w.as_ref(), &st)?;
        debug_assert_eq!(written, w);
    }
    stats.add(&delta);
    Ok((keys, resume, w))
}
