//! MVCC statistics: byte and count totals kept incrementally per range.
//!
//! # Accounting rules
//!
//! For every user key `k` that has at least one committed version (value or
//! tombstone) in [`Space::Mvcc`](crate::Space::Mvcc) or an intent in [`Space::Lock`](crate::Space::Lock):
//!
//! - `key_count += 1`, `key_bytes += len(k)` (the user key, counted once);
//! - each committed version: `key_bytes += 12` (its timestamp), `val_count += 1`,
//!   `val_bytes +=` the stored value length (1 header byte + the value bytes,
//!   so a tombstone is 1 byte);
//! - an intent: `key_bytes += 12`, `val_count += 1`, `val_bytes +=` the encoded
//!   intent record length (which includes the transaction, the provisional
//!   value and its history), `intent_count += 1`, `intent_bytes +=` that same
//!   record length;
//! - the key is *live* if its newest value — the intent if there is one
//!   (whatever its epoch or sequence history), else the newest committed
//!   version — is not a tombstone: then `live_count += 1` and
//!   `live_bytes += len(k) + 12 +` that newest value's bytes as counted in
//!   `val_bytes`.
//!
//! Every write computes its delta with the same two functions
//! (`key_summary_stats` for the per-key part, `version_stats` for each
//! version added or removed) that [`compute_stats`] sums from scratch, so the
//! incremental totals equal a recomputation exactly.

use super::cursor::MergedCursor;
use super::key::TIMESTAMP_LEN;
use super::value::{IntentRecord, decode_version};
use crate::engine::Reader;

/// Totals over a span of the key space. Every MVCC write updates them by the
/// delta it causes; [`compute_stats`] recomputes them from scratch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MvccStats {
    /// Keys whose newest value (committed or intent) is not a tombstone.
    pub live_count: i64,
    /// Key and value bytes of those newest values.
    pub live_bytes: i64,
    /// Distinct user keys with any version or intent.
    pub key_count: i64,
    pub key_bytes: i64,
    /// Versions, tombstones and intents (an intent counts as one value).
    pub val_count: i64,
    pub val_bytes: i64,
    pub intent_count: i64,
    pub intent_bytes: i64,
}

impl MvccStats {
    pub fn add(&mut self, o: &MvccStats) {
        self.live_count += o.live_count;
        self.live_bytes += o.live_bytes;
        self.key_count += o.key_count;
        self.key_bytes += o.key_bytes;
        self.val_count += o.val_count;
        self.val_bytes += o.val_bytes;
        self.intent_count += o.intent_count;
        self.intent_bytes += o.intent_bytes;
    }

    pub fn subtract(&mut self, o: &MvccStats) {
        self.live_count -= o.live_count;
        self.live_bytes -= o.live_bytes;
        self.key_count -= o.key_count;
        self.key_bytes -= o.key_bytes;
        self.val_count -= o.val_count;
        self.val_bytes -= o.val_bytes;
        self.intent_count -= o.intent_count;
        self.intent_bytes -= o.intent_bytes;
    }
}

/// The stored size and liveness of one value (a version or an intent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ValueInfo {
    /// Stored bytes: the version value with its header, or the intent record.
    pub len: usize,
    /// Not a tombstone / provisional delete.
    pub live: bool,
}

/// What the per-key part of the statistics depends on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeySummary {
    /// The newest committed version, if the key has any.
    pub newest: Option<ValueInfo>,
    pub intent: Option<ValueInfo>,
}

/// The contribution of one committed version, apart from the per-key part.
pub(crate) fn version_stats(stored_len: usize) -> MvccStats {
    MvccStats {
        key_bytes: TIMESTAMP_LEN as i64,
        val_count: 1,
        val_bytes: stored_len as i64,
        ..MvccStats::default()
    }
}

/// The per-key part of a key's contribution: its key count and bytes, its
/// intent, and its liveness. Add [`version_stats`] for each committed version.
pub(crate) fn key_summary_stats(key_len: usize, s: &KeySummary) -> MvccStats {
    let mut out = MvccStats::default();
    if s.newest.is_none() && s.intent.is_none() {
        return out;
    }
    out.key_count = 1;
    out.key_bytes = key_len as i64;
    if let Some(i) = s.intent {
        out.key_bytes += TIMESTAMP_LEN as i64;
        out.val_count += 1;
        out.val_bytes += i.len as i64;
        out.intent_count = 1;
        out.intent_bytes = i.len as i64;
    }
    if let Some(top) = s.intent.or(s.newest)
        && top.live
    {
        out.live_count = 1;
        out.live_bytes = (key_len + TIMESTAMP_LEN + top.len) as i64;
    }
    out
}

/// Adds to `stats` the change of a key's per-key part from `before` to `after`.
pub(crate) fn apply_summary_delta(
    stats: &mut MvccStats,
    key_len: usize,
    before: &KeySummary,
    after: &KeySummary,
) {
    stats.subtract(&key_summary_stats(key_len, before));
    stats.add(&key_summary_stats(key_len, after));
}

/// Recomputes the statistics of `[start, end)` from the data.
pub fn compute_stats(r: &dyn Reader, start: &[u8], end: &[u8]) -> super::Result<MvccStats> {
    let mut total = MvccStats::default();
    let mut cur = MergedCursor::new(r, start, end, false)?;
    let mut key = Vec::new();
    while let Some(has_intent) = cur.next_user_key(&mut key)? {
        let mut summary = KeySummary::default();
        if has_intent {
            let raw = cur.lock_value().expect("intent present");
            let rec = IntentRecord::decode(raw)?;
            summary.intent = Some(ValueInfo {
                len: raw.len(),
                live: rec.value.is_some(),
            });
        }
        while let Some((_ts, v)) = cur.next_version()? {
            let live = decode_version(&v)?.is_some();
            if summary.newest.is_none() {
                summary.newest = Some(ValueInfo { len: v.len(), live });
            }
            total.add(&version_stats(v.len()));
        }
        total.add(&key_summary_stats(key.len(), &summary));
    }
    Ok(total)
}
