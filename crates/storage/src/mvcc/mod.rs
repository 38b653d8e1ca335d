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
//! increments against [`compute_stats`].
//!
//! TODO(issue 2): contract below; bodies are being filled in.

pub mod key;
pub mod stats;

use tardigrade_hlc::Timestamp;

use crate::engine::{EngineError, Reader, Space};
use crate::batch::Batch;
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
    #[error("key {key:?} does not hold an integer")]
    NotAnInteger { key: Vec<u8> },
    /// A write by a transaction from an older epoch than its existing intent.
    #[error("write from epoch {epoch} below the intent's epoch {intent_epoch}")]
    EpochRegression { epoch: u32, intent_epoch: u32 },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("corrupt MVCC data: {0}")]
    Corrupt(String),
}

fn fmt_intent_keys(intents: &[Intent]) -> String {
    let keys: Vec<String> = intents.iter().map(|i| format!("{:?}", i.key)).collect();
    keys.join(", ")
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
    /// intents instead of failing on them.
    pub inconsistent: bool,
    /// Return tombstones as `Value { bytes: None }` instead of skipping them.
    pub tombstones: bool,
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
    /// always returned so that a scan makes progress).
    pub target_bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanResult {
    pub kvs: Vec<(Vec<u8>, Value)>,
    /// The part of the span not scanned because a limit was hit:
    /// `[start, end)` for the caller to continue with.
    pub resume_span: Option<(Vec<u8>, Vec<u8>)>,
    /// With `inconsistent`: the intents passed over.
    pub intents: Vec<Intent>,
}

/// Reads `key` at `ts`.
pub fn mvcc_get(r: &dyn Reader, key: &[u8], ts: Timestamp, opts: &ReadOptions<'_>) -> Result<GetResult> {
    let _ = (r, key, ts, opts);
    todo!("issue 2")
}

/// Reads `[start, end)` at `ts`, forwards or in reverse. Fails with
/// `WriteIntent` listing all conflicting intents met (not only the first).
pub fn mvcc_scan(
    r: &dyn Reader,
    start: &[u8],
    end: &[u8],
    ts: Timestamp,
    opts: &ReadOptions<'_>,
    limits: ScanLimits,
    reverse: bool,
) -> Result<ScanResult> {
    let _ = (r, start, end, ts, opts, limits, reverse);
    todo!("issue 2")
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
pub fn mvcc_put(
    b: &mut Batch,
    stats: &mut MvccStats,
    key: &[u8],
    ts: Timestamp,
    value: Option<&[u8]>,
    txn: Option<&TxnMeta>,
) -> Result<Timestamp> {
    let _ = (b, stats, key, ts, value, txn);
    todo!("issue 2")
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
) -> Result<Timestamp> {
    let _ = (b, stats, key, ts, value, expected, txn);
    todo!("issue 2")
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
) -> Result<(i64, Timestamp)> {
    let _ = (b, stats, key, ts, inc, txn);
    todo!("issue 2")
}

/// Writes tombstones over every live key in `[start, end)`, at most `max_keys`
/// (0 = all). Returns the deleted keys, the resume span if the limit was hit,
/// and the timestamp written at (pushed as in [`mvcc_put`]).
#[allow(clippy::too_many_arguments)]
pub fn mvcc_delete_range(
    b: &mut Batch,
    stats: &mut MvccStats,
    start: &[u8],
    end: &[u8],
    max_keys: u64,
    ts: Timestamp,
    txn: Option<&TxnMeta>,
) -> Result<(Vec<Vec<u8>>, Option<(Vec<u8>, Vec<u8>)>, Timestamp)> {
    let _ = (b, stats, start, end, max_keys, ts, txn);
    todo!("issue 2")
}

/// What became of a transaction, for intent resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnStatus {
    Pending,
    Committed,
    Aborted,
}

/// Resolves `txn`'s intent at `key`, if there is one:
/// - `Committed`: the provisional value becomes a version at
///   `txn.write_timestamp` (unless the intent is from an older epoch than
///   `txn.epoch`, in which case it was not part of the commit and is removed);
/// - `Aborted`: the intent is removed;
/// - `Pending`: the intent's timestamp is moved up to `txn.write_timestamp`
///   (after a push), keeping its value.
///
/// Sequence numbers in `ignored_seqs` (inclusive ranges, from savepoint
/// rollbacks) are dropped from the intent's history first; if that leaves
/// nothing the intent is removed as if aborted.
/// Returns whether an intent of `txn` was found.
pub fn mvcc_resolve_intent(
    b: &mut Batch,
    stats: &mut MvccStats,
    key: &[u8],
    txn: &TxnMeta,
    status: TxnStatus,
    ignored_seqs: &[(i32, i32)],
) -> Result<bool> {
    let _ = (b, stats, key, txn, status, ignored_seqs);
    todo!("issue 2")
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
    let _ = (b, stats, start, end, txn, status, ignored_seqs, max);
    todo!("issue 2")
}

/// Garbage-collects the versions of `key` that no read at or above
/// `threshold` can see: every version older than the newest version at or
/// below `threshold`, and that version too if it is a tombstone. Intents are
/// never collected. Returns the number of versions removed.
pub fn mvcc_gc(b: &mut Batch, stats: &mut MvccStats, key: &[u8], threshold: Timestamp) -> Result<u64> {
    let _ = (b, stats, key, threshold);
    todo!("issue 2")
}

/// The intents in `[start, end)` (any transaction), up to `max` (0 = all).
pub fn scan_intents(r: &dyn Reader, start: &[u8], end: &[u8], max: u64) -> Result<Vec<Intent>> {
    let _ = (r, start, end, max);
    todo!("issue 2")
}

/// Raw (unversioned) get, for transaction records and range state.
pub fn get_raw(r: &dyn Reader, key: &[u8]) -> Result<Option<Vec<u8>>> {
    Ok(r.get(Space::Raw, key)?.map(|s| s.to_vec()))
}
