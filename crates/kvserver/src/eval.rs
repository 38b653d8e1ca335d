//! Request evaluation: a batch, read against a snapshot, becomes a set of
//! writes, a statistics delta, the responses, and the side effects to apply
//! once the writes are durable (proposer-evaluated KV: with replication, the
//! leaseholder evaluates and Raft carries the resulting writes).
//!
//! Evaluation never waits. When it meets intents of other transactions it
//! stops with [`EvalError::Intents`] and the replica handles the conflict
//! (lock table, push) with its latches dropped, then evaluates again.

use std::collections::HashSet;
use std::time::Duration;

use tardigrade_hlc::Timestamp;
use tardigrade_kvpb::{
    AbortReason, BatchRequest, CommitTrigger, ErrorDetail, IntentInfo, KeyValue, KvError, PushType,
    ReadConsistency, Request, Response, RetryReason, Span, Transaction, TransactionStatus, TxnId,
    TxnMeta, Value,
};
use tardigrade_storage::mvcc::{self, MvccError, ReadOptions, ScanLimits, TxnStatus};
use tardigrade_storage::{Batch, MvccStats, Reader, Space};

use crate::command::Trigger;
use crate::txnrecord;

/// A transaction record not heartbeated for this long may be aborted by anyone.
pub const TXN_LIVENESS_THRESHOLD: Duration = Duration::from_secs(5);

/// What evaluating a batch produced.
#[derive(Default)]
pub struct EvalResult {
    pub responses: Vec<Response>,
    pub txn: Option<Transaction>,
    pub stats: MvccStats,
    /// Spans read, at what timestamp and by whom: for the timestamp cache.
    pub reads: Vec<(Span, Timestamp, Option<TxnId>)>,
    /// Keys whose intents were resolved: their waiters wake.
    /// (key, holder, whether the holder finished).
    pub resolved_keys: Vec<(Vec<u8>, TxnId, bool)>,
    /// Keys a locking read returned: the transaction's unreplicated locks.
    pub locked_keys: Vec<Vec<u8>>,
    /// Transactions that finished: all their locks are released.
    pub finished_txns: Vec<TxnId>,
    /// Transaction records that changed: their pushers wake.
    pub updated_records: Vec<TxnId>,
    /// The highest timestamp a value was written at.
    pub max_write_ts: Timestamp,
    /// A finished transaction's intents outside this range, resolved
    /// asynchronously once the batch applied.
    pub remote_intents: Option<(Transaction, Vec<Span>)>,
    /// Applied by every replica atomically with the batch's writes.
    pub trigger: Option<Trigger>,
}

pub enum EvalError {
    /// Intents of other transactions are in the way.
    Intents(Vec<IntentInfo>),
    /// A push that the pusher cannot win now; it may wait and try again.
    PushFailed,
    Kv(Box<KvError>),
}

impl From<KvError> for EvalError {
    fn from(e: KvError) -> Self {
        EvalError::Kv(Box::new(e))
    }
}

impl From<ErrorDetail> for EvalError {
    fn from(e: ErrorDetail) -> Self {
        EvalError::Kv(Box::new(KvError::new(e)))
    }
}

pub fn mvcc_err(e: MvccError) -> EvalError {
    match e {
        MvccError::WriteIntent { intents } => EvalError::Intents(
            intents
                .into_iter()
                .map(|i| IntentInfo {
                    key: i.key,
                    txn: i.txn,
                })
                .collect(),
        ),
        MvccError::ReadWithinUncertainty { read, existing } => {
            ErrorDetail::ReadWithinUncertainty { read, existing }.into()
        }
        MvccError::ConditionFailed { actual } => ErrorDetail::ConditionFailed {
            actual: actual.map(|bytes| Value {
                bytes,
                timestamp: Timestamp::ZERO,
            }),
        }
        .into(),
        MvccError::IntegerOverflow { .. } => ErrorDetail::IntegerOverflow.into(),
        MvccError::NotAnInteger { .. } => {
            ErrorDetail::InvalidArgument("key does not hold an integer".into()).into()
        }
        MvccError::EpochRegression { .. } => ErrorDetail::TransactionStatus {
            msg: "write from an older epoch than the existing intent".into(),
        }
        .into(),
        other => ErrorDetail::Internal(other.to_string()).into(),
    }
}

fn status_of(s: TransactionStatus) -> TxnStatus {
    match s {
        TransactionStatus::Committed => TxnStatus::Committed,
        TransactionStatus::Aborted => TxnStatus::Aborted,
        TransactionStatus::Pending | TransactionStatus::Staging => TxnStatus::Pending,
    }
}

pub struct EvalContext {
    /// The range's bounds; requests must stay inside.
    pub start_key: Vec<u8>,
    pub end_key: Vec<u8>,
    /// The node's clock reading, for record expiry.
    pub now: Timestamp,
    /// Abort the pushee even if the pusher would lose (deadlock breaking).
    pub force_push: bool,
    /// The node holding the lease the batch is served under and the
    /// lease's start: a transaction's observed timestamp for that node
    /// narrows its uncertainty window (see
    /// `Transaction::uncertainty_limit_on`). Node 0: no lease known, the
    /// global limit applies.
    pub lease_node: tardigrade_kvpb::NodeId,
    pub lease_start: Timestamp,
}

/// Reads a transaction record (None if there is none).
pub fn read_record(r: &dyn Reader, meta: &TxnMeta) -> Result<Option<Transaction>, EvalError> {
    match mvcc::get_raw(r, &txnrecord::record_key(meta)).map_err(mvcc_err)? {
        None => Ok(None),
        Some(bytes) => txnrecord::decode(&bytes)
            .map(Some)
            .map_err(|e| ErrorDetail::Internal(e).into()),
    }
}

fn write_record(b: &mut Batch, txn: &Transaction) {
    b.put(
        tardigrade_storage::Space::Raw,
        &txnrecord::record_key(&txn.meta),
        &txnrecord::encode(txn),
    );
}

/// Evaluates `ba` (whose header timestamp is set) into `b`.
pub fn evaluate(
    ctx: &EvalContext,
    b: &mut Batch,
    ba: &BatchRequest,
) -> Result<EvalResult, EvalError> {
    let mut res = EvalResult {
        txn: ba.header.txn.clone(),
        ..Default::default()
    };
    if ba.header.lock_reads
        && let Some(t) = &ba.header.txn
        && t.meta.key.is_empty()
    {
        // The lock would carry a meta whose (empty) key addresses no record
        // of this transaction: pushers would abort a record its commit
        // never reads.
        return Err(KvError::invalid("locking read of a transaction without an anchor key").into());
    }
    let one_phase = is_one_phase_commit(ba, b)?;
    let mut seq = res.txn.as_ref().map_or(0, |t| t.meta.sequence);
    let mut keys_left = ba.header.max_span_request_keys.max(0) as u64;
    let mut bytes_left = ba.header.target_bytes.max(0) as u64;
    let limited = ba.header.max_span_request_keys > 0;
    let byte_limited = ba.header.target_bytes > 0;
    let mut exhausted = false;
    let mut written: Vec<Vec<u8>> = Vec::new();

    for (i, req) in ba.requests.iter().enumerate() {
        let with_index = |e: EvalError| match e {
            EvalError::Kv(k) => EvalError::Kv(Box::new(k.with_index(i))),
            other => other,
        };
        if req.is_write() {
            seq += 1;
        }
        // The transaction as this request sees it: current sequence and write timestamp.
        let txn_meta = res.txn.as_ref().map(|t| {
            let mut m = t.meta.clone();
            m.sequence = seq;
            m
        });
        // One-phase commits write committed values directly, without intents.
        let write_txn = if one_phase { None } else { txn_meta.as_ref() };
        let write_ts = match &res.txn {
            Some(t) => t.meta.write_timestamp,
            None => ba.header.timestamp,
        };
        let locking = ba.header.lock_reads;
        let (read_ts, uncertainty) = match &res.txn {
            // A locking read must not lock a value that is already stale:
            // anything newer is "uncertain" (a committed value moves the
            // read above it, an intent is waited for).
            Some(t) if locking => (t.read_timestamp, Timestamp::MAX),
            Some(t) => (
                t.read_timestamp,
                t.uncertainty_limit_on(ctx.lease_node, ctx.lease_start),
            ),
            None => (ba.header.timestamp, Timestamp::ZERO),
        };
        // Sequence numbers rolled back by savepoints: neither reads nor
        // conditional writes see the transaction's own writes at them.
        // (Cloning an empty list allocates nothing.)
        let ignored_seqs = res
            .txn
            .as_ref()
            .map(|t| t.ignored_seqs.clone())
            .unwrap_or_default();
        let read_opts = ReadOptions {
            txn: txn_meta.as_ref(),
            uncertainty_limit: uncertainty,
            inconsistent: ba.header.read_consistency == ReadConsistency::Inconsistent,
            tombstones: false,
            ignored_seqs: &ignored_seqs,
        };
        let reader_id = res.txn.as_ref().map(|t| t.id());
        let mut pushed_to = None;
        let resp = match req {
            Request::Get { key } => {
                let g = mvcc::mvcc_get(b, key, read_ts, &read_opts).map_err(mvcc_err)?;
                res.reads
                    .push((Span::point(key.clone()), read_ts, reader_id));
                if locking
                    && res.txn.is_some()
                    && g.value.as_ref().is_some_and(|v| v.bytes.is_some())
                {
                    res.locked_keys.push(key.clone());
                }
                Response::Get {
                    value: g.value.and_then(|v| {
                        v.bytes.map(|bytes| Value {
                            bytes,
                            timestamp: v.timestamp,
                        })
                    }),
                }
            }
            Request::Scan { span } | Request::ReverseScan { span } => {
                let reverse = matches!(req, Request::ReverseScan { .. });
                if exhausted {
                    let rows = Vec::new();
                    let resume_span = Some(span.clone());
                    if reverse {
                        Response::ReverseScan { rows, resume_span }
                    } else {
                        Response::Scan { rows, resume_span }
                    }
                } else {
                    let limits = ScanLimits {
                        max_keys: if limited { keys_left } else { 0 },
                        target_bytes: if byte_limited { bytes_left } else { 0 },
                    };
                    let s = mvcc::mvcc_scan(
                        b,
                        &span.key,
                        &span.end_key,
                        read_ts,
                        &read_opts,
                        limits,
                        reverse,
                    )
                    .map_err(mvcc_err)?;
                    let mut rows = Vec::with_capacity(s.kvs.len());
                    for (key, v) in s.kvs {
                        if let Some(bytes) = v.bytes {
                            let n = (key.len() + bytes.len()) as u64;
                            bytes_left = bytes_left.saturating_sub(n);
                            rows.push(KeyValue {
                                key,
                                value: Value {
                                    bytes,
                                    timestamp: v.timestamp,
                                },
                            });
                        }
                    }
                    if limited {
                        keys_left = keys_left.saturating_sub(rows.len() as u64);
                    }
                    if locking && res.txn.is_some() {
                        res.locked_keys.extend(rows.iter().map(|r| r.key.clone()));
                    }
                    if (limited && keys_left == 0) || (byte_limited && bytes_left == 0) {
                        exhausted = true;
                    }
                    // The timestamp cache covers what was actually scanned.
                    let read_span = match &s.resume_span {
                        None => span.clone(),
                        Some((rs, re)) if reverse => Span::new(re.clone(), span.end_key.clone())
                            .with_start_if(rs.as_slice() >= span.key.as_slice()),
                        Some((rs, _)) => Span::new(span.key.clone(), rs.clone()),
                    };
                    res.reads.push((read_span, read_ts, reader_id));
                    let resume_span = s.resume_span.map(|(k, e)| Span::new(k, e));
                    if reverse {
                        Response::ReverseScan { rows, resume_span }
                    } else {
                        Response::Scan { rows, resume_span }
                    }
                }
            }
            Request::Put { key, value } => {
                let ts = mvcc::mvcc_put(b, &mut res.stats, key, write_ts, Some(value), write_txn)
                    .map_err(mvcc_err)?;
                pushed_to = Some(ts);
                written.push(key.clone());
                Response::Put
            }
            Request::Delete { key } => {
                let ts = mvcc::mvcc_put(b, &mut res.stats, key, write_ts, None, write_txn)
                    .map_err(mvcc_err)?;
                pushed_to = Some(ts);
                written.push(key.clone());
                Response::Delete
            }
            Request::ConditionalPut {
                key,
                value,
                expected,
            } => {
                let ts = mvcc::mvcc_conditional_put(
                    b,
                    &mut res.stats,
                    key,
                    write_ts,
                    value,
                    expected.as_deref(),
                    write_txn,
                    &ignored_seqs,
                )
                .map_err(mvcc_err)
                .map_err(with_index)?;
                res.reads
                    .push((Span::point(key.clone()), write_ts, reader_id));
                pushed_to = Some(ts);
                written.push(key.clone());
                Response::ConditionalPut
            }
            Request::Increment { key, inc } => {
                let (new_value, ts) = mvcc::mvcc_increment(
                    b,
                    &mut res.stats,
                    key,
                    write_ts,
                    *inc,
                    write_txn,
                    &ignored_seqs,
                )
                .map_err(|e| match e {
                    MvccError::Corrupt(m) if m.contains("overflow") => {
                        ErrorDetail::IntegerOverflow.into()
                    }
                    e => mvcc_err(e),
                })
                .map_err(with_index)?;
                res.reads
                    .push((Span::point(key.clone()), write_ts, reader_id));
                pushed_to = Some(ts);
                written.push(key.clone());
                Response::Increment { new_value }
            }
            Request::DeleteRange { span } if exhausted => Response::DeleteRange {
                keys: Vec::new(),
                resume_span: Some(span.clone()),
            },
            Request::DeleteRange { span } => {
                // Paged like a scan (`max_span_request_keys`), so that
                // clearing a large table is many bounded commands rather
                // than one that holds the range for seconds.
                let (keys, resume, ts) = mvcc::mvcc_delete_range(
                    b,
                    &mut res.stats,
                    &span.key,
                    &span.end_key,
                    if limited { keys_left } else { 0 },
                    write_ts,
                    write_txn,
                    &ignored_seqs,
                )
                .map_err(mvcc_err)?;
                if limited {
                    keys_left = keys_left.saturating_sub(keys.len() as u64);
                    exhausted |= keys_left == 0;
                }
                let deleted_span = match &resume {
                    Some((rs, _)) => Span::new(span.key.clone(), rs.clone()),
                    None => span.clone(),
                };
                res.reads.push((deleted_span, write_ts, reader_id));
                pushed_to = Some(ts);
                written.extend(keys.iter().cloned());
                Response::DeleteRange {
                    keys,
                    resume_span: resume.map(|(k, e)| Span::new(k, e)),
                }
            }
            Request::EndTxn {
                commit,
                lock_spans,
                deadline,
                trigger,
            } => {
                let txn = res
                    .txn
                    .as_mut()
                    .ok_or_else(|| KvError::invalid("EndTxn outside a transaction"))?;
                let remote = eval_end_txn(
                    ctx,
                    b,
                    txn,
                    *commit,
                    lock_spans,
                    *deadline,
                    one_phase,
                    &mut res.stats,
                )
                .map_err(with_index)?;
                if !remote.is_empty() {
                    res.remote_intents = Some((txn.clone(), remote));
                }
                if *commit {
                    res.trigger = trigger.clone().map(|t| match t {
                        CommitTrigger::Split { left, right } => Trigger::Split { left, right },
                        CommitTrigger::ChangeReplicas { desc } => Trigger::ChangeReplicas { desc },
                    });
                }
                res.updated_records.push(txn.id());
                res.finished_txns.push(txn.id());
                Response::EndTxn
            }
            Request::HeartbeatTxn { now } => {
                let txn = res
                    .txn
                    .as_mut()
                    .ok_or_else(|| KvError::invalid("HeartbeatTxn outside a transaction"))?;
                let rec = match read_record(b, &txn.meta)? {
                    Some(rec) => rec,
                    None => {
                        let mut rec = txn.clone();
                        rec.status = TransactionStatus::Pending;
                        rec.lock_spans.clear();
                        rec
                    }
                };
                let mut rec = rec;
                if !rec.status.is_finalized() {
                    rec.last_heartbeat.forward(*now);
                    write_record(b, &rec);
                }
                // The coordinator learns of pushes and aborts from here.
                txn.status = rec.status;
                txn.meta.write_timestamp.forward(rec.meta.write_timestamp);
                Response::HeartbeatTxn { txn: rec }
            }
            Request::PushTxn {
                pushee,
                push_to,
                push_type,
            } => {
                let pusher = ba.header.txn.as_ref();
                let rec = eval_push(ctx, b, pusher, pushee, *push_to, *push_type)?;
                res.updated_records.push(pushee.id);
                if rec.status.is_finalized() {
                    res.finished_txns.push(pushee.id);
                }
                Response::PushTxn { pushee: rec }
            }
            Request::QueryTxn { txn } => {
                let rec = read_record(b, txn)?;
                Response::QueryTxn {
                    txn: rec,
                    waiting_txns: Vec::new(), // filled in by the replica
                }
            }
            Request::ResolveIntent {
                key,
                txn,
                status,
                ignored_seqs,
            } => {
                mvcc::mvcc_resolve_intent(
                    b,
                    &mut res.stats,
                    key,
                    txn,
                    status_of(*status),
                    ignored_seqs,
                )
                .map_err(mvcc_err)?;
                res.resolved_keys
                    .push((key.clone(), txn.id, status.is_finalized()));
                Response::ResolveIntent
            }
            Request::ResolveIntentRange { span, .. } if exhausted => Response::ResolveIntentRange {
                resume_span: Some(span.clone()),
            },
            Request::ResolveIntentRange {
                span,
                txn,
                status,
                ignored_seqs,
            } => {
                let (resolved, resume) = mvcc::mvcc_resolve_intent_range(
                    b,
                    &mut res.stats,
                    &span.key,
                    &span.end_key,
                    txn,
                    status_of(*status),
                    ignored_seqs,
                    if limited { keys_left } else { 0 },
                )
                .map_err(mvcc_err)?;
                if limited {
                    keys_left = keys_left.saturating_sub(resolved);
                    exhausted |= keys_left == 0;
                }
                if status.is_finalized() {
                    res.finished_txns.push(txn.id);
                }
                Response::ResolveIntentRange {
                    resume_span: resume.map(|(k, e)| Span::new(k, e)),
                }
            }
            Request::Refresh { span, refresh_from } => {
                let txn = res
                    .txn
                    .as_ref()
                    .ok_or_else(|| KvError::invalid("Refresh outside a transaction"))?;
                let to = txn.read_timestamp;
                eval_refresh(b, span, *refresh_from, to, &txn.meta)?;
                res.reads.push((span.clone(), to, Some(txn.id())));
                Response::Refresh
            }
            Request::Gc { keys, threshold } => {
                for key in keys {
                    mvcc::mvcc_gc(b, &mut res.stats, key, *threshold).map_err(mvcc_err)?;
                }
                // Every replica moves its GC threshold with the removal.
                if res.trigger.is_none() {
                    res.trigger = Some(crate::command::Trigger::GcThreshold {
                        threshold: *threshold,
                    });
                }
                Response::Gc
            }
            Request::AdminSplit { .. } => {
                return Err(
                    KvError::invalid("AdminSplit must be the only request of its batch").into(),
                );
            }
        };
        // A write that met a newer committed value went in above it: the
        // transaction (or the non-transactional batch) now writes higher.
        if let Some(ts) = pushed_to {
            res.max_write_ts.forward(ts);
        }
        if let (Some(ts), Some(txn)) = (pushed_to, res.txn.as_mut())
            && ts > txn.meta.write_timestamp
        {
            txn.meta.write_timestamp = ts;
        }
        res.responses.push(resp);
    }
    if let Some(txn) = res.txn.as_mut() {
        txn.meta.sequence = seq;
    }
    let _ = written;
    Ok(res)
}

trait WithStartIf {
    fn with_start_if(self, cond: bool) -> Span;
}

impl WithStartIf for Span {
    fn with_start_if(self, _cond: bool) -> Span {
        self
    }
}

/// A batch can commit in one phase, writing committed values and no intents
/// or record, when it holds all of its transaction's writes, ends with a
/// commit, and no record exists yet (nobody else has seen the transaction).
fn is_one_phase_commit(ba: &BatchRequest, r: &dyn Reader) -> Result<bool, EvalError> {
    let Some(txn) = &ba.header.txn else {
        return Ok(false);
    };
    let Some(Request::EndTxn {
        commit: true,
        lock_spans,
        ..
    }) = ba.requests.last()
    else {
        return Ok(false);
    };
    if txn.meta.epoch != 0 || txn.meta.write_timestamp != txn.read_timestamp {
        return Ok(false);
    }
    let mut written = HashSet::new();
    for req in &ba.requests {
        match req {
            Request::Put { key, .. }
            | Request::Delete { key }
            | Request::ConditionalPut { key, .. }
            | Request::Increment { key, .. } => {
                written.insert(key.as_slice());
            }
            Request::EndTxn { .. }
            | Request::Get { .. }
            | Request::Scan { .. }
            | Request::ReverseScan { .. } => {}
            _ => return Ok(false),
        }
    }
    if !lock_spans
        .iter()
        .all(|s| s.is_point() && written.contains(s.key.as_slice()))
    {
        return Ok(false);
    }
    Ok(read_record(r, &txn.meta)?.is_none())
}

/// Finalizes the record and resolves the intents inside this range; returns
/// the lock spans (or their parts) outside it, to be resolved asynchronously.
#[allow(clippy::too_many_arguments)]
fn eval_end_txn(
    ctx: &EvalContext,
    b: &mut Batch,
    txn: &mut Transaction,
    commit: bool,
    lock_spans: &[Span],
    deadline: Timestamp,
    one_phase: bool,
    stats: &mut MvccStats,
) -> Result<Vec<Span>, EvalError> {
    let existing = read_record(b, &txn.meta)?;
    if let Some(rec) = &existing {
        match rec.status {
            TransactionStatus::Aborted => {
                txn.status = TransactionStatus::Aborted;
                if commit {
                    return Err(KvError::new(ErrorDetail::TransactionAborted {
                        reason: AbortReason::AbortedRecord,
                    })
                    .with_txn(Some(txn.clone()))
                    .into());
                }
            }
            TransactionStatus::Committed => {
                return Err(KvError::new(ErrorDetail::TransactionStatus {
                    msg: "already committed".into(),
                })
                .into());
            }
            _ => {
                // Pushes recorded on the record raise the commit timestamp.
                txn.meta.write_timestamp.forward(rec.meta.write_timestamp);
                if rec.meta.epoch > txn.meta.epoch {
                    return Err(KvError::new(ErrorDetail::TransactionStatus {
                        msg: "record from a newer epoch".into(),
                    })
                    .into());
                }
            }
        }
    }
    if commit {
        if !deadline.is_zero() && txn.meta.write_timestamp >= deadline {
            return Err(KvError::new(ErrorDetail::TransactionRetry {
                reason: RetryReason::CommitDeadlineExceeded,
            })
            .with_txn(Some(txn.clone()))
            .into());
        }
        if txn.meta.write_timestamp != txn.read_timestamp {
            // Pushed: the coordinator must refresh its reads to the new
            // timestamp (or restart) before it can commit.
            return Err(KvError::new(ErrorDetail::TransactionRetry {
                reason: RetryReason::Serializable,
            })
            .with_txn(Some(txn.clone()))
            .into());
        }
        txn.status = TransactionStatus::Committed;
    } else {
        txn.status = TransactionStatus::Aborted;
    }
    if one_phase {
        return Ok(Vec::new());
    }
    // Resolve the intents inside this range now, in the same atomic write, up
    // to a budget; those on other ranges, and those past the budget, are
    // resolved asynchronously after this applies (`intent_resolver`), and the
    // record keeps their spans meanwhile. The budget keeps the commit of a
    // transaction that wrote a million rows one small command instead of one
    // that holds the range (and its lease extensions) for seconds.
    let status = status_of(txn.status);
    let mut remote = Vec::new();
    let mut budget = MAX_INTENTS_RESOLVED_AT_COMMIT;
    for span in lock_spans {
        let (local, outside) = clip_span(span, &ctx.start_key, &ctx.end_key);
        remote.extend(outside);
        let Some(span) = local else { continue };
        if budget == 0 {
            remote.push(span);
        } else if span.is_point() {
            mvcc::mvcc_resolve_intent(b, stats, &span.key, &txn.meta, status, &txn.ignored_seqs)
                .map_err(mvcc_err)?;
            budget -= 1;
        } else {
            let (resolved, resume) = mvcc::mvcc_resolve_intent_range(
                b,
                stats,
                &span.key,
                &span.end_key,
                &txn.meta,
                status,
                &txn.ignored_seqs,
                budget,
            )
            .map_err(mvcc_err)?;
            budget = budget.saturating_sub(resolved.max(1));
            if let Some((k, e)) = resume {
                remote.push(Span::new(k, e));
            }
        }
    }
    // Keep the finalized record (with only the lock spans not resolved
    // here) so that late heartbeats and pushes learn the outcome.
    // TODO(issue 3): GC finalized records once their remote intents are
    // resolved and the liveness threshold has passed.
    let mut rec = txn.clone();
    rec.lock_spans = remote.clone();
    rec.last_heartbeat.forward(ctx.now);
    write_record(b, &rec);
    Ok(remote)
}

/// How many of its own range's intents a committing (or aborting) transaction
/// resolves in the `EndTxn` command itself; the rest go to the asynchronous
/// resolver, in pages of the same size.
pub const MAX_INTENTS_RESOLVED_AT_COMMIT: u64 = 4096;

/// Cuts `span` into its part inside `[start, end)` and the parts outside.
pub fn clip_span(span: &Span, start: &[u8], end: &[u8]) -> (Option<Span>, Vec<Span>) {
    if span.is_point() {
        let inside = span.key.as_slice() >= start && span.key.as_slice() < end;
        return if inside {
            (Some(span.clone()), Vec::new())
        } else {
            (None, vec![span.clone()])
        };
    }
    let mut outside = Vec::new();
    if span.key.as_slice() < start {
        let e = span.end_key.as_slice().min(start);
        outside.push(Span::new(span.key.clone(), e.to_vec()));
    }
    if span.end_key.as_slice() > end {
        let s = span.key.as_slice().max(end);
        outside.push(Span::new(s.to_vec(), span.end_key.clone()));
    }
    let lo = span.key.as_slice().max(start);
    let hi = span.end_key.as_slice().min(end);
    let local = (lo < hi).then(|| Span::new(lo.to_vec(), hi.to_vec()));
    (local, outside)
}

fn eval_push(
    ctx: &EvalContext,
    b: &mut Batch,
    pusher: Option<&Transaction>,
    pushee: &TxnMeta,
    push_to: Timestamp,
    push_type: PushType,
) -> Result<Transaction, EvalError> {
    let existing = read_record(b, pushee)?;
    let mut rec = match existing {
        Some(rec) => rec,
        None => {
            // No record yet: the transaction is as alive as its intent says,
            // and could have been heartbeating since it started.
            let mut meta = pushee.clone();
            meta.sequence = 0;
            Transaction {
                meta: meta.clone(),
                status: TransactionStatus::Pending,
                read_timestamp: meta.min_timestamp,
                last_heartbeat: meta.min_timestamp,
                ..Default::default()
            }
        }
    };
    if rec.status.is_finalized() {
        return Ok(rec);
    }
    // The record may lag the intent's view (the txn wrote more after the
    // record was written): push from the highest known state.
    rec.meta.write_timestamp.forward(pushee.write_timestamp);
    if rec.meta.epoch < pushee.epoch {
        rec.meta.epoch = pushee.epoch;
    }
    if push_type == PushType::Timestamp && rec.meta.write_timestamp > push_to {
        return Ok(rec);
    }
    let expired = ctx.now.wall - rec.last_heartbeat.wall > TXN_LIVENESS_THRESHOLD.as_nanos() as i64;
    let pusher_wins = match pusher {
        Some(p) => p.meta.priority > rec.meta.priority,
        None => false,
    };
    if !(expired || pusher_wins || ctx.force_push) {
        return Err(EvalError::PushFailed);
    }
    match push_type {
        PushType::Touch => return Ok(rec),
        PushType::Abort => {
            rec.status = TransactionStatus::Aborted;
        }
        PushType::Timestamp => {
            rec.meta.write_timestamp.forward(push_to.next());
        }
    }
    write_record(b, &rec);
    Ok(rec)
}

/// Fails unless no other transaction wrote on `span` in `(from, to]`: no
/// committed version in that window, and no other transaction's intent at or
/// below `to`. The refreshing transaction's own intents do not count, and
/// (unlike a read) they do not hide the committed versions beneath them.
fn eval_refresh(
    b: &Batch,
    span: &Span,
    from: Timestamp,
    to: Timestamp,
    txn: &TxnMeta,
) -> Result<(), EvalError> {
    if to <= from {
        return Ok(());
    }
    let end = span.exclusive_end();
    let fail = || -> EvalError {
        ErrorDetail::TransactionRetry {
            reason: RetryReason::Serializable,
        }
        .into()
    };
    let lower = mvcc::key::mvcc_key_lower_bound(&span.key);
    let upper = mvcc::key::mvcc_key_lower_bound(&end);
    let mut user_key = Vec::new();
    for item in b.scan(Space::Mvcc, &lower, &upper, false) {
        let (k, _) = item.map_err(|e| mvcc_err(e.into()))?;
        let ts = mvcc::key::decode_mvcc_key_into(&k, &mut user_key).map_err(mvcc_err)?;
        if ts > from && ts <= to {
            return Err(fail());
        }
    }
    for intent in mvcc::scan_intents(b, &span.key, &end, 0).map_err(mvcc_err)? {
        if intent.txn.id != txn.id && intent.txn.write_timestamp <= to {
            return Err(fail());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The uncertainty window of a transactional read, with observed
    //! timestamps and lease starts.

    use super::*;
    use tardigrade_kvpb::{Header, ObservedTimestamp};
    use tardigrade_storage::{Engine, StoreSpec};

    fn ts(wall: i64) -> Timestamp {
        Timestamp::new(wall, 0)
    }

    /// An engine holding committed values `key` → `key` at the given
    /// timestamps.
    fn engine_with(values: &[(&str, i64)]) -> Engine {
        let engine = Engine::open(&StoreSpec::Memory).expect("engine");
        let mut b = engine.batch();
        let mut stats = MvccStats::default();
        for (k, at) in values {
            mvcc::mvcc_put(
                &mut b,
                &mut stats,
                k.as_bytes(),
                ts(*at),
                Some(k.as_bytes()),
                None,
            )
            .expect("put");
        }
        engine.commit(b.writes(), true).expect("commit");
        engine
    }

    /// A reader at 10 with a global limit of 20 and, optionally, an
    /// observed timestamp of 15 on node 1.
    fn reader(observed: bool) -> Transaction {
        Transaction {
            meta: TxnMeta {
                id: TxnId([9; 16]),
                write_timestamp: ts(10),
                min_timestamp: ts(10),
                ..Default::default()
            },
            read_timestamp: ts(10),
            global_uncertainty_limit: ts(20),
            observed_timestamps: if observed {
                vec![ObservedTimestamp {
                    node_id: 1,
                    timestamp: ts(15),
                }]
            } else {
                Vec::new()
            },
            ..Default::default()
        }
    }

    /// Gets `key` as `txn` under a lease of `lease_node` starting at
    /// `lease_start`: the value's timestamp (None: nothing visible), or the
    /// uncertain value's timestamp as the error.
    fn get(
        engine: &Engine,
        txn: &Transaction,
        key: &str,
        lease_node: u64,
        lease_start: i64,
    ) -> Result<Option<Timestamp>, Timestamp> {
        let ctx = EvalContext {
            start_key: Vec::new(),
            end_key: vec![0xff],
            now: ts(16),
            force_push: false,
            lease_node,
            lease_start: ts(lease_start),
        };
        let ba = BatchRequest {
            header: Header {
                txn: Some(txn.clone()),
                ..Header::default()
            },
            requests: vec![Request::Get {
                key: key.as_bytes().to_vec(),
            }],
        };
        let mut b = engine.batch();
        match evaluate(&ctx, &mut b, &ba) {
            Ok(res) => match res.responses.as_slice() {
                [Response::Get { value }] => Ok(value.as_ref().map(|v| v.timestamp)),
                other => panic!("unexpected responses {other:?}"),
            },
            Err(EvalError::Kv(e)) => match e.detail {
                ErrorDetail::ReadWithinUncertainty { existing, .. } => Err(existing),
                other => panic!("unexpected error {other:?}"),
            },
            Err(_) => panic!("unexpected conflict"),
        }
    }

    #[test]
    fn values_above_the_observed_timestamp_are_not_uncertain() {
        // "old" is visible; "above" was written after the node's clock read
        // 15; "below" before it; "past" beyond the global limit.
        let e = engine_with(&[("old", 5), ("above", 17), ("below", 12), ("past", 25)]);
        let r = reader(true);
        assert_eq!(get(&e, &r, "old", 1, 1), Ok(Some(ts(5))));
        assert_eq!(get(&e, &r, "above", 1, 1), Ok(None));
        assert_eq!(get(&e, &r, "below", 1, 1), Err(ts(12)));
        assert_eq!(get(&e, &r, "past", 1, 1), Ok(None));
        // The observation is of node 1: under a lease on node 2 the global
        // limit applies.
        assert_eq!(get(&e, &r, "above", 2, 1), Err(ts(17)));
        // Without an observation, the global limit applies.
        assert_eq!(get(&e, &reader(false), "above", 1, 1), Err(ts(17)));
    }

    #[test]
    fn a_lease_younger_than_the_observation_raises_the_limit_to_its_start() {
        // The lease on node 1 started at 18, after the reading of 15: the
        // value at 17 may have been written by the previous holder on
        // another node, before the reader started.
        let e = engine_with(&[("above", 17), ("later", 19)]);
        let r = reader(true);
        assert_eq!(get(&e, &r, "above", 1, 18), Err(ts(17)));
        assert_eq!(get(&e, &r, "later", 1, 18), Ok(None));
        // Never above the global limit, however late the lease started.
        let e = engine_with(&[("far", 21)]);
        assert_eq!(get(&e, &r, "far", 1, 30), Ok(None));
    }

    #[test]
    fn an_observation_below_the_read_timestamp_leaves_no_window() {
        // After a refresh to 16 the observation (15) is below the read
        // timestamp: nothing above 16 is uncertain on node 1, and the
        // limit never falls below the read timestamp.
        let e = engine_with(&[("k", 16), ("n", 17)]);
        let mut r = reader(true);
        r.read_timestamp = ts(16);
        r.meta.write_timestamp = ts(16);
        assert_eq!(get(&e, &r, "k", 1, 1), Ok(Some(ts(16))));
        assert_eq!(get(&e, &r, "n", 1, 1), Ok(None));
        assert_eq!(r.uncertainty_limit_on(1, ts(1)), ts(16));
    }
}
