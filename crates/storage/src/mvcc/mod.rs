//! Multi-version concurrency control over the engine.
//!
//! Layout (see `docs/design.md`):
//! - committed versions and tombstones live in [`Space::Mvcc`] under
//!   [`key::encode_mvcc_key`]: the escaped user key, then the timestamp
//!   inverted, so a key's versions sort newest first and a plain byte-order
//!   scan visits user keys in order;
//! - intents live only in the separated lock table ([`Space::Lock`]), keyed by
//!   the user key: the writer's [`TxnMeta`], the provisional value, and the
//!   values of earlier sequence numbers (so a transaction reads its own writes
//!   as of any of its sequence numbers, and a savepoint rollback can undo).
//!   Keeping the provisional value there means pushing an intent's timestamp
//!   rewrites one record and never moves a version; committing writes the
//!   version at the commit timestamp and deletes the lock record.
//!
//! Every write function updates [`MvccStats`] incrementally; tests check the
//! increments against [`compute_stats`] (the rules are in [`stats`]).
//!
//! Modules: [`key`] (version keys), [`value`] (stored encodings), `cursor`
//! (merged iteration of intents and versions), `read`, `write`, `resolve`
//! (resolution and GC).

mod cursor;
pub mod key;
pub(crate) mod read;
mod resolve;
pub mod stats;
pub mod value;
mod write;

use tardigrade_hlc::Timestamp;

use crate::batch::Batch;
use crate::engine::{EngineError, Reader, Space};
use crate::txn::TxnMeta;

pub use stats::{MvccStats, compute_stats};

/// An intent that a request ran into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    pub key: Vec<u8>,
    pub txn: TxnMeta,
}

/// Why an MVCC operation could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum MvccError {
    /// Intents of other transactions are in the way; the caller must push or
    /// wait for their transactions, resolve them, then retry.
    #[error("conflicting intents on {}", fmt_intent_keys(.intents))]
    WriteIntent { intents: Vec<Intent> },
    /// A read found a committed value above its timestamp but within its
    /// uncertainty interval: it must restart at a timestamp above `existing`.
    #[error("read at {read} encountered a value at {existing} within the uncertainty interval")]
    ReadWithinUncertainty {
        read: Timestamp,
        existing: Timestamp,
    },
    /// A conditional put found a different value.
    #[error("unexpected value")]
    ConditionFailed { actual: Option<Vec<u8>> },
    /// The stored value is not an 8-byte integer (increment).
    #[error("key {} does not hold an integer", fmt_key(.key))]
    NotAnInteger { key: Vec<u8> },
    /// A write by a transaction from an older epoch than its existing intent.
    #[error("write from epoch {epoch} below the intent's epoch {intent_epoch}")]
    EpochRegression { epoch: u32, intent_epoch: u32 },
    /// An increment would overflow an i64.
    #[error("increment of {current} by {inc} at key {} overflows", fmt_key(.key))]
    IntegerOverflow {
        key: Vec<u8>,
        current: i64,
        inc: i64,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("corrupt MVCC data: {0}")]
    Corrupt(String),
}

fn fmt_intent_keys(intents: &[Intent]) -> String {
    let keys: Vec<String> = intents.iter().map(|i| fmt_key(&i.key)).collect();
    keys.join(", ")
}

/// A key for messages: quoted, printable ASCII as is, other bytes as `\xNN`.
pub fn fmt_key(key: &[u8]) -> String {
    let mut s = String::with_capacity(key.len() + 2);
    s.push('"');
    for &b in key {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(b as char);
            }
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}

pub type Result<T, E = MvccError> = std::result::Result<T, E>;

/// How a read sees the data.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions<'a> {
    /// The reading transaction, if any: it sees its own intents as of
    /// `txn.sequence` (same epoch only), and skips its own intents from older epochs.
    pub txn: Option<&'a TxnMeta>,
    /// Values in `(ts, uncertainty_limit]` make the read fail with
    /// `ReadWithinUncertainty` (committed values) or `WriteIntent` (others'
    /// intents). `Timestamp::ZERO` or anything `<= ts` turns the check off.
    pub uncertainty_limit: Timestamp,
    /// Inconsistent reads return the newest committed value at `ts` and report
    /// intents instead of failing on them (the intents a consistent read would
    /// have failed on: others' intents at or below `ts`, or within the
    /// uncertainty interval).
    pub inconsistent: bool,
    /// Return tombstones as `Value { bytes: None }` instead of skipping them.
    pub tombstones: bool,
    /// The reading transaction's sequence numbers rolled back by savepoints
    /// (inclusive ranges): its own writes at those are not seen.
    pub ignored_seqs: &'a [(i32, i32)],
}

/// A value as read, with the timestamp of the version it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// `None` for a tombstone (only returned with `ReadOptions::tombstones`).
    pub bytes: Option<Vec<u8>>,
    pub timestamp: Timestamp,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetResult {
    pub value: Option<Value>,
    /// With `inconsistent`: the intent found at the key, if any.
    pub intent: Option<Intent>,
}

/// Limits on a scan. Zero means unlimited.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanLimits {
    pub max_keys: u64,
    /// Stop once this many key+value bytes are returned (at least one key is
    /// always returned so that a scan makes progress). The key that reaches
    /// the target is included, so a result may exceed it by one key.
    pub target_bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanResult {
    pub kvs: Vec<(Vec<u8>, Value)>,
    /// The part of the span not scanned because a limit was hit:
    /// `[start, end)` for the caller to continue with. Forward: from the next
    /// user key holding any data (version or intent) to the scan's end;
    /// reverse: from the scan's start to the last key returned. `None` when
    /// no data remains past the last key returned, even if a limit was hit.
    pub resume_span: Option<(Vec<u8>, Vec<u8>)>,
    /// With `inconsistent`: the intents passed over.
    pub intents: Vec<Intent>,
}

/// Reads `key` at `ts`.
///
/// The reader's own intent (same `TxnId`) of its current epoch shows the value
/// as of `txn.sequence` (newest write with a sequence number at or below it),
/// at the intent's timestamp; if it wrote nothing yet at that sequence, or the
/// intent is from an older epoch, the committed versions are read. An own
/// intent from a newer epoch than the reader's is `EpochRegression`.
pub fn mvcc_get(
    r: &dyn Reader,
    key: &[u8],
    ts: Timestamp,
    opts: &ReadOptions<'_>,
) -> Result<GetResult> {
    read::get(r, key, ts, opts)
}

/// Reads `[start, end)` at `ts`, forwards or in reverse. Fails with
/// `WriteIntent` listing all conflicting intents met (not only the first).
/// Intents and versions are interpreted as in [`mvcc_get`]; a committed value
/// within the uncertainty interval fails the scan at once with
/// `ReadWithinUncertainty` (taking precedence over intents collected so far).
pub fn mvcc_scan(
    r: &dyn Reader,
    start: &[u8],
    end: &[u8],
    ts: Timestamp,
    opts: &ReadOptions<'_>,
    limits: ScanLimits,
    reverse: bool,
) -> Result<ScanResult> {
    read::scan(r, start, end, ts, opts, limits, reverse)
}

/// Writes `value` (or a tombstone, for `None`) at `key`.
///
/// Without a transaction the version is written at `ts`. With one, an intent
/// is written at `txn.write_timestamp` (and `ts` is ignored): a second write
/// by the same transaction and epoch replaces the provisional value and keeps
/// the old one in the intent history under its sequence number; a write from a
/// newer epoch replaces the intent outright; a write at a sequence number
/// already in the history is idempotent (it must be the same value — a replay).
///
/// If a committed version exists at or above the write timestamp, the write
/// happens anyway just above the newest one (`existing.next()`), and the
/// timestamp it was written at is returned: the caller must then treat its
/// transaction as pushed (WriteTooOld). Returns the timestamp written at.
///
/// A transactional write is also never placed below the timestamp of the
/// transaction's existing intent (which a push may have moved up). A write
/// over another transaction's intent fails with `WriteIntent` (a write
/// without a transaction over any intent too); a write from an epoch older
/// than the intent's with `EpochRegression`. A replay returns the intent's
/// timestamp and writes nothing; a replay with a different value, or at a
/// sequence number the intent does not hold, is `Corrupt`.
pub fn mvcc_put(
    b: &mut Batch,
    stats: &mut MvccStats,
    key: &[u8],
    ts: Timestamp,
    value: Option<&[u8]>,
    txn: Option<&TxnMeta>,
) -> Result<Timestamp> {
    write::put(b, stats, key, ts, value, txn)
}

/// Puts `value` only if the current value (newest committed, or the
/// transaction's own intent) equals `expected` (`None`: the key must not
/// exist, or be a tombstone). Otherwise `ConditionFailed` with the actual
/// value. The condition is checked against the newest value even if it is
/// above `ts` (the write is then pushed, as in [`mvcc_put`]).
#[allow(clippy::too_many_arguments)]
pub fn mvcc_conditional_put(
    b: &mut Batch,
    stats: &mut MvccStats,
    key: &[u8],
    ts: Timestamp,
    value: &[u8],
    expected: Option<&[u8]>,
    txn: Option<&TxnMeta>,
    ignored_seqs: &[(i32, i32)],
) -> Result<Timestamp> {
    write::conditional_put(b, stats, key, ts, value, expected, txn, ignored_seqs)
}

/// Adds `inc` to the big-endian i64 stored at `key` (missing = 0) and returns
/// the new value and the timestamp written at. Overflow is an error.
pub fn mvcc_increment(
    b: &mut Batch,
    stats: &mut MvccStats,
    key: &[u8],
    ts: Timestamp,
    inc: i64,
    txn: Option<&TxnMeta>,
    ignored_seqs: &[(i32, i32)],
) -> Result<(i64, Timestamp)> {
    write::increment(b, stats, key, ts, inc, txn, ignored_seqs)
}

/// Writes tombstones over every live key in `[start, end)`, at most `max_keys`
/// (0 = all). Returns the deleted keys, the resume span if the limit was hit,
/// and the timestamp written at (pushed as in [`mvcc_put`]).
///
/// A key is live if its newest value is not a tombstone: for the
/// transaction's own intent, its value as of `txn.sequence`; otherwise the
/// newest committed version, whatever its timestamp. All tombstones are
/// written at one timestamp, pushed above every committed version met in the
/// scanned part of the span (and the transaction's own intents there), so a
/// read at the returned timestamp sees none of the deleted keys. Intents of
/// other transactions anywhere in the scanned part fail the whole request
/// with `WriteIntent` listing them all.
#[allow(clippy::too_many_arguments)]
pub fn mvcc_delete_range(
    b: &mut Batch,
    stats: &mut MvccStats,
    start: &[u8],
    end: &[u8],
    max_keys: u64,
    ts: Timestamp,
    txn: Option<&TxnMeta>,
    ignored_seqs: &[(i32, i32)],
) -> Result<(Vec<Vec<u8>>, Option<(Vec<u8>, Vec<u8>)>, Timestamp)> {
    write::delete_range(b, stats, start, end, max_keys, ts, txn, ignored_seqs)
}

/// What became of a transaction, for intent resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnStatus {
    Pending,
    Committed,
    Aborted,
}

/// Resolves `txn`'s intent at `key`, if there is one (an intent of another
/// transaction is left alone and `false` returned):
/// - `Committed`: the provisional value becomes a version at
///   `txn.write_timestamp` (unless the intent is from an older epoch than
///   `txn.epoch`, in which case it was not part of the commit and is removed);
/// - `Aborted`: the intent is removed;
/// - `Pending`: the intent's timestamp is moved up to `txn.write_timestamp`
///   (after a push), keeping its value.
///
/// Sequence numbers in `ignored_seqs` (inclusive ranges, from savepoint
/// rollbacks) are dropped from the intent's history first; if that leaves
/// nothing the intent is removed as if aborted. They apply only to an intent
/// of `txn.epoch`. A `Committed` resolution of an intent from any other epoch
/// than `txn.epoch` removes it. A version already at the commit timestamp (a
/// replayed resolution) is overwritten, not counted twice.
/// Returns whether an intent of `txn` was found.
pub fn mvcc_resolve_intent(
    b: &mut Batch,
    stats: &mut MvccStats,
    key: &[u8],
    txn: &TxnMeta,
    status: TxnStatus,
    ignored_seqs: &[(i32, i32)],
) -> Result<bool> {
    resolve::resolve_intent(b, stats, key, txn, status, ignored_seqs)
}

/// Resolves every intent of `txn` in `[start, end)`, at most `max` (0 = all).
/// Returns how many were resolved and the resume span if the limit was hit.
#[allow(clippy::too_many_arguments)]
pub fn mvcc_resolve_intent_range(
    b: &mut Batch,
    stats: &mut MvccStats,
    start: &[u8],
    end: &[u8],
    txn: &TxnMeta,
    status: TxnStatus,
    ignored_seqs: &[(i32, i32)],
    max: u64,
) -> Result<(u64, Option<(Vec<u8>, Vec<u8>)>)> {
    resolve::resolve_intent_range(b, stats, start, end, txn, status, ignored_seqs, max)
}

/// Garbage-collects the versions of `key` that no read at or above
/// `threshold` can see: every version older than the newest version at or
/// below `threshold`, and that version too if it is a tombstone. Intents are
/// never collected. Returns the number of versions removed.
pub fn mvcc_gc(
    b: &mut Batch,
    stats: &mut MvccStats,
    key: &[u8],
    threshold: Timestamp,
) -> Result<u64> {
    resolve::gc(b, stats, key, threshold)
}

/// The intents in `[start, end)` (any transaction), up to `max` (0 = all).
pub fn scan_intents(r: &dyn Reader, start: &[u8], end: &[u8], max: u64) -> Result<Vec<Intent>> {
    resolve::scan_intents(r, start, end, max)
}

/// Raw (unversioned) get, for transaction records and range state.
pub fn get_raw(r: &dyn Reader, key: &[u8]) -> Result<Option<Vec<u8>>> {
    Ok(r.get(Space::Raw, key)?.map(|s| s.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, StoreSpec};
    use crate::txn::TxnId;

    fn ts(w: i64) -> Timestamp {
        Timestamp::new(w, 0)
    }

    fn txn(w: i64) -> TxnMeta {
        TxnMeta {
            id: TxnId([7; 16]),
            key: b"a".to_vec(),
            write_timestamp: ts(w),
            min_timestamp: ts(w),
            ..TxnMeta::default()
        }
    }

    fn check_stats(eng: &Engine, stats: &MvccStats) {
        assert_eq!(&compute_stats(eng, b"", b"\xff").unwrap(), stats);
    }

    #[test]
    fn a_replayed_commit_overwrites_the_version_and_counts_it_once() {
        let eng = Engine::open(&StoreSpec::Memory).unwrap();
        let mut stats = MvccStats::default();
        let t = txn(10);
        let mut b = eng.batch();
        mvcc_put(&mut b, &mut stats, b"k", ts(0), Some(b"v"), Some(&t)).unwrap();
        eng.commit(b.writes(), false).unwrap();
        let record = eng.get(Space::Lock, b"k").unwrap().unwrap().to_vec();

        let mut b = eng.batch();
        assert!(
            mvcc_resolve_intent(&mut b, &mut stats, b"k", &t, TxnStatus::Committed, &[]).unwrap()
        );
        eng.commit(b.writes(), false).unwrap();
        check_stats(&eng, &stats);

        // The intent reappears (a replayed command): put it back with its stats.
        let mut b = eng.batch();
        b.put(Space::Lock, b"k", &record);
        let before = compute_stats(&eng, b"", b"\xff").unwrap();
        eng.commit(b.writes(), false).unwrap();
        let after = compute_stats(&eng, b"", b"\xff").unwrap();
        stats.subtract(&before);
        stats.add(&after);

        let mut b = eng.batch();
        assert!(
            mvcc_resolve_intent(&mut b, &mut stats, b"k", &t, TxnStatus::Committed, &[]).unwrap()
        );
        eng.commit(b.writes(), false).unwrap();
        check_stats(&eng, &stats);
        assert_eq!(stats.val_count, 1);
        let got = mvcc_get(&eng, b"k", ts(20), &ReadOptions::default()).unwrap();
        assert_eq!(got.value.unwrap().bytes.as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn a_scan_over_many_intents_reports_a_bounded_number() {
        let eng = Engine::open(&StoreSpec::Memory).unwrap();
        let mut stats = MvccStats::default();
        let t = txn(10);
        let mut b = eng.batch();
        let n = read::MAX_INTENTS_PER_ERROR + 100;
        for i in 0..n {
            let key = format!("k{i:06}");
            mvcc_put(
                &mut b,
                &mut stats,
                key.as_bytes(),
                ts(0),
                Some(b"v"),
                Some(&t),
            )
            .unwrap();
        }
        eng.commit(b.writes(), false).unwrap();
        let err = mvcc_scan(
            &eng,
            b"k",
            b"l",
            ts(20),
            &ReadOptions::default(),
            ScanLimits::default(),
            false,
        )
        .unwrap_err();
        let MvccError::WriteIntent { intents } = err else {
            panic!("expected WriteIntent, got {err}");
        };
        assert_eq!(intents.len(), read::MAX_INTENTS_PER_ERROR);
        assert_eq!(intents[0].key, b"k000000");
    }

    #[test]
    fn garbage_in_either_space_is_corrupt_not_a_panic() {
        let eng = Engine::open(&StoreSpec::Memory).unwrap();
        let mut b = eng.batch();
        b.put(Space::Lock, b"x", b"\x01garbage");
        b.put(Space::Mvcc, b"not an mvcc key", b"\x01v");
        b.put(
            Space::Mvcc,
            &key::encode_mvcc_key(b"y", ts(1)),
            b"\x07bad header",
        );
        eng.commit(b.writes(), false).unwrap();
        let opts = ReadOptions::default();
        let corrupt =
            |r: Result<GetResult>| assert!(matches!(r, Err(MvccError::Corrupt(_))), "{r:?}");
        corrupt(mvcc_get(&eng, b"x", ts(5), &opts));
        corrupt(mvcc_get(&eng, b"y", ts(5), &opts));
        assert!(matches!(
            mvcc_scan(&eng, b"a", b"z", ts(5), &opts, ScanLimits::default(), false),
            Err(MvccError::Corrupt(_))
        ));
        assert!(matches!(
            compute_stats(&eng, b"", b"\xff"),
            Err(MvccError::Corrupt(_))
        ));
        let mut b = eng.batch();
        let mut stats = MvccStats::default();
        assert!(matches!(
            mvcc_put(&mut b, &mut stats, b"x", ts(5), Some(b"v"), None),
            Err(MvccError::Corrupt(_))
        ));
        assert_eq!(stats, MvccStats::default());
    }

    #[test]
    fn reads_see_the_batch_s_own_pending_writes() {
        let eng = Engine::open(&StoreSpec::Memory).unwrap();
        let mut stats = MvccStats::default();
        let mut b = eng.batch();
        let t = txn(10);
        mvcc_put(&mut b, &mut stats, b"a", ts(5), Some(b"committed"), None).unwrap();
        mvcc_put(&mut b, &mut stats, b"b", ts(0), Some(b"mine"), Some(&t)).unwrap();
        let opts = ReadOptions {
            txn: Some(&t),
            ..ReadOptions::default()
        };
        let res = mvcc_scan(&b, b"a", b"z", ts(10), &opts, ScanLimits::default(), false).unwrap();
        let keys: Vec<&[u8]> = res.kvs.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, vec![&b"a"[..], &b"b"[..]]);
        assert_eq!(compute_stats(&b, b"", b"\xff").unwrap(), stats);
    }

    #[test]
    fn engine_reads_skip_many_versions_and_accept_empty_spans() {
        let eng = Engine::open(&StoreSpec::Memory).unwrap();
        let mut stats = MvccStats::default();
        let mut b = eng.batch();
        for k in [&b"a"[..], b"b", b"c"] {
            for w in 1..=30 {
                let v = format!("{}{w}", k[0] as char);
                mvcc_put(&mut b, &mut stats, k, ts(w), Some(v.as_bytes()), None).unwrap();
            }
        }
        eng.commit(b.writes(), false).unwrap();
        let opts = ReadOptions::default();
        for reverse in [false, true] {
            for (start, end) in [(&b"a"[..], &b"d"[..]), (b"a", b"c"), (b"b", b"b\x00")] {
                for at in [1, 7, 30] {
                    let res = mvcc_scan(
                        &eng,
                        start,
                        end,
                        ts(at),
                        &opts,
                        ScanLimits::default(),
                        reverse,
                    )
                    .unwrap();
                    let mut want: Vec<(Vec<u8>, Vec<u8>)> = [&b"a"[..], b"b", b"c"]
                        .iter()
                        .filter(|k| **k >= start && **k < end)
                        .map(|k| (k.to_vec(), format!("{}{at}", k[0] as char).into_bytes()))
                        .collect();
                    if reverse {
                        want.reverse();
                    }
                    let got: Vec<(Vec<u8>, Vec<u8>)> = res
                        .kvs
                        .into_iter()
                        .map(|(k, v)| (k, v.bytes.unwrap()))
                        .collect();
                    assert_eq!(got, want, "{start:?}..{end:?} at {at} reverse={reverse}");
                }
            }
            let empty = mvcc_scan(
                &eng,
                b"c",
                b"a",
                ts(30),
                &opts,
                ScanLimits::default(),
                reverse,
            )
            .unwrap();
            assert!(empty.kvs.is_empty());
        }
        assert_eq!(
            compute_stats(&eng, b"z", b"a").unwrap(),
            MvccStats::default()
        );
        assert_eq!(compute_stats(&eng, b"", b"\xff").unwrap(), stats);
        assert!(scan_intents(&eng, b"z", b"a", 0).unwrap().is_empty());
    }
}
