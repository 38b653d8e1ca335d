//! MVCC statistics: byte and count totals kept incrementally per range.
//!
//! TODO(issue 2): define the exact accounting rules here.

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
}

/// Recomputes the statistics of `[start, end)` from the data.
pub fn compute_stats(r: &dyn Reader, start: &[u8], end: &[u8]) -> super::Result<MvccStats> {
    let _ = (r, start, end);
    todo!("issue 2")
}
