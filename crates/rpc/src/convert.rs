//! Native ⇄ protobuf conversion of the KV API.
//!
//! Native → proto is infallible (`From`). Proto → native is `TryFrom` and
//! validates: whatever arrives from the network is rejected with
//! `KvError::invalid("…")` naming the problem instead of reaching the store
//! malformed. Required sub-messages (header, timestamps, spans, transaction
//! metadata) must be present, enums must be known and specified, transaction
//! ids must be 16 bytes, point requests need a non-empty key, ranged requests
//! need `end_key > key`, and a batch holds 1..=[`MAX_BATCH_REQUESTS`] requests.

use tardigrade_kvpb::{
    AbortReason, BatchRequest, BatchResponse, BatchResult, CommitTrigger, ErrorDetail, Header,
    IntentInfo, KeyValue, KvError, PushType, RangeDescriptor, ReadConsistency, Request, Response,
    RetryReason, Span, Timestamp, Transaction, TransactionStatus, TxnId, TxnMeta, Value,
};

use crate::pb;
use crate::pb::request_union::Request as PbReq;
use crate::pb::response_union::Response as PbResp;

/// The most requests one batch may carry.
pub const MAX_BATCH_REQUESTS: usize = 10_000;

type Result<T, E = KvError> = std::result::Result<T, E>;

fn invalid(msg: impl Into<String>) -> KvError {
    KvError::invalid(msg)
}

// ---------------------------------------------------------------- primitives

fn ts_to_pb(t: Timestamp) -> Option<pb::Timestamp> {
    Some(pb::Timestamp {
        wall: t.wall,
        logical: t.logical,
    })
}

fn ts_from_pb(t: Option<pb::Timestamp>, field: &str) -> Result<Timestamp> {
    let t = t.ok_or_else(|| invalid(format!("missing {field}")))?;
    if t.wall < 0 || t.logical < 0 {
        return Err(invalid(format!(
            "{field}: negative timestamp ({},{})",
            t.wall, t.logical
        )));
    }
    Ok(Timestamp::new(t.wall, t.logical))
}

fn txn_id_from_pb(id: &[u8], field: &str) -> Result<TxnId> {
    let bytes: [u8; 16] = id.try_into().map_err(|_| {
        invalid(format!(
            "{field}: transaction id must be 16 bytes, got {}",
            id.len()
        ))
    })?;
    Ok(TxnId(bytes))
}

fn span_to_pb(s: Span) -> pb::Span {
    pb::Span {
        key: s.key,
        end_key: s.end_key,
    }
}

fn opt_span_to_pb(s: Option<Span>) -> Option<pb::Span> {
    s.map(span_to_pb)
}

/// A span without validation (error payloads describe what went wrong and
/// may legitimately carry odd spans).
fn span_raw(s: pb::Span) -> Span {
    Span {
        key: s.key,
        end_key: s.end_key,
    }
}

/// A point or a range: a point needs a key, a range needs `end_key > key`.
fn span_any(s: pb::Span, field: &str) -> Result<Span> {
    if s.end_key.is_empty() {
        if s.key.is_empty() {
            return Err(invalid(format!("{field}: empty key")));
        }
    } else if s.end_key <= s.key {
        return Err(invalid(format!(
            "{field}: end_key must be greater than key"
        )));
    }
    Ok(span_raw(s))
}

/// A required range: `end_key` non-empty and greater than `key` (an empty
/// `key` is the start of the key space).
fn span_ranged(s: Option<pb::Span>, field: &str) -> Result<Span> {
    let s = s.ok_or_else(|| invalid(format!("missing {field}")))?;
    if s.end_key.is_empty() {
        return Err(invalid(format!(
            "{field}: missing end_key (ranged request)"
        )));
    }
    if s.end_key <= s.key {
        return Err(invalid(format!(
            "{field}: end_key must be greater than key"
        )));
    }
    Ok(span_raw(s))
}

fn opt_span_any(s: Option<pb::Span>, field: &str) -> Result<Option<Span>> {
    s.map(|s| span_any(s, field)).transpose()
}

fn key_required(key: Vec<u8>, field: &str) -> Result<Vec<u8>> {
    if key.is_empty() {
        return Err(invalid(format!("{field}: empty key")));
    }
    Ok(key)
}

fn seqs_to_pb(seqs: Vec<(i32, i32)>) -> Vec<pb::SeqRange> {
    seqs.into_iter()
        .map(|(start, end)| pb::SeqRange { start, end })
        .collect()
}

fn seqs_from_pb(seqs: Vec<pb::SeqRange>, field: &str) -> Result<Vec<(i32, i32)>> {
    seqs.into_iter()
        .map(|r| {
            if r.start > r.end {
                Err(invalid(format!(
                    "{field}: sequence range start {} > end {}",
                    r.start, r.end
                )))
            } else {
                Ok((r.start, r.end))
            }
        })
        .collect()
}

// ---------------------------------------------------------------------- enums

fn status_to_pb(s: TransactionStatus) -> i32 {
    let p = match s {
        TransactionStatus::Pending => pb::TransactionStatus::Pending,
        TransactionStatus::Staging => pb::TransactionStatus::Staging,
        TransactionStatus::Committed => pb::TransactionStatus::Committed,
        TransactionStatus::Aborted => pb::TransactionStatus::Aborted,
    };
    p as i32
}

fn status_from_pb(v: i32, field: &str) -> Result<TransactionStatus> {
    match pb::TransactionStatus::try_from(v) {
        Ok(pb::TransactionStatus::Pending) => Ok(TransactionStatus::Pending),
        Ok(pb::TransactionStatus::Staging) => Ok(TransactionStatus::Staging),
        Ok(pb::TransactionStatus::Committed) => Ok(TransactionStatus::Committed),
        Ok(pb::TransactionStatus::Aborted) => Ok(TransactionStatus::Aborted),
        Ok(pb::TransactionStatus::Unspecified) => {
            Err(invalid(format!("{field}: unspecified transaction status")))
        }
        Err(_) => Err(invalid(format!("{field}: unknown transaction status {v}"))),
    }
}

fn push_type_to_pb(p: PushType) -> i32 {
    let p = match p {
        PushType::Timestamp => pb::PushType::Timestamp,
        PushType::Abort => pb::PushType::Abort,
        PushType::Touch => pb::PushType::Touch,
    };
    p as i32
}

fn push_type_from_pb(v: i32, field: &str) -> Result<PushType> {
    match pb::PushType::try_from(v) {
        Ok(pb::PushType::Timestamp) => Ok(PushType::Timestamp),
        Ok(pb::PushType::Abort) => Ok(PushType::Abort),
        Ok(pb::PushType::Touch) => Ok(PushType::Touch),
        Ok(pb::PushType::Unspecified) => Err(invalid(format!("{field}: unspecified push type"))),
        Err(_) => Err(invalid(format!("{field}: unknown push type {v}"))),
    }
}

fn consistency_to_pb(c: ReadConsistency) -> i32 {
    let c = match c {
        ReadConsistency::Consistent => pb::ReadConsistency::Consistent,
        ReadConsistency::Inconsistent => pb::ReadConsistency::Inconsistent,
    };
    c as i32
}

fn consistency_from_pb(v: i32, field: &str) -> Result<ReadConsistency> {
    match pb::ReadConsistency::try_from(v) {
        Ok(pb::ReadConsistency::Consistent) => Ok(ReadConsistency::Consistent),
        Ok(pb::ReadConsistency::Inconsistent) => Ok(ReadConsistency::Inconsistent),
        Ok(pb::ReadConsistency::Unspecified) => {
            Err(invalid(format!("{field}: unspecified read consistency")))
        }
        Err(_) => Err(invalid(format!("{field}: unknown read consistency {v}"))),
    }
}

fn retry_reason_to_pb(r: RetryReason) -> i32 {
    let r = match r {
        RetryReason::Serializable => pb::RetryReason::Serializable,
        RetryReason::WriteTooOld => pb::RetryReason::WriteTooOld,
        RetryReason::Uncertainty => pb::RetryReason::Uncertainty,
        RetryReason::CommitDeadlineExceeded => pb::RetryReason::CommitDeadlineExceeded,
    };
    r as i32
}

fn retry_reason_from_pb(v: i32) -> Result<RetryReason> {
    match pb::RetryReason::try_from(v) {
        Ok(pb::RetryReason::Serializable) => Ok(RetryReason::Serializable),
        Ok(pb::RetryReason::WriteTooOld) => Ok(RetryReason::WriteTooOld),
        Ok(pb::RetryReason::Uncertainty) => Ok(RetryReason::Uncertainty),
        Ok(pb::RetryReason::CommitDeadlineExceeded) => Ok(RetryReason::CommitDeadlineExceeded),
        Ok(pb::RetryReason::Unspecified) => Err(invalid("unspecified retry reason")),
        Err(_) => Err(invalid(format!("unknown retry reason {v}"))),
    }
}

fn abort_reason_to_pb(r: AbortReason) -> i32 {
    let r = match r {
        AbortReason::AbortedRecord => pb::AbortReason::AbortedRecord,
        AbortReason::Expired => pb::AbortReason::Expired,
        AbortReason::Deadlock => pb::AbortReason::Deadlock,
        AbortReason::ClientRejected => pb::AbortReason::ClientRejected,
    };
    r as i32
}

fn abort_reason_from_pb(v: i32) -> Result<AbortReason> {
    match pb::AbortReason::try_from(v) {
        Ok(pb::AbortReason::AbortedRecord) => Ok(AbortReason::AbortedRecord),
        Ok(pb::AbortReason::Expired) => Ok(AbortReason::Expired),
        Ok(pb::AbortReason::Deadlock) => Ok(AbortReason::Deadlock),
        Ok(pb::AbortReason::ClientRejected) => Ok(AbortReason::ClientRejected),
        Ok(pb::AbortReason::Unspecified) => Err(invalid("unspecified abort reason")),
        Err(_) => Err(invalid(format!("unknown abort reason {v}"))),
    }
}

// ------------------------------------------------------- transactions, values

impl From<TxnMeta> for pb::TxnMeta {
    fn from(m: TxnMeta) -> Self {
        pb::TxnMeta {
            id: m.id.0.to_vec(),
            key: m.key,
            epoch: m.epoch,
            write_timestamp: ts_to_pb(m.write_timestamp),
            min_timestamp: ts_to_pb(m.min_timestamp),
            priority: m.priority,
            sequence: m.sequence,
        }
    }
}

fn meta_from_pb(m: Option<pb::TxnMeta>, field: &str) -> Result<TxnMeta> {
    let m = m.ok_or_else(|| invalid(format!("missing {field}")))?;
    Ok(TxnMeta {
        id: txn_id_from_pb(&m.id, field)?,
        key: m.key,
        epoch: m.epoch,
        write_timestamp: ts_from_pb(m.write_timestamp, &format!("{field}.write_timestamp"))?,
        min_timestamp: ts_from_pb(m.min_timestamp, &format!("{field}.min_timestamp"))?,
        priority: m.priority,
        sequence: m.sequence,
    })
}

impl TryFrom<pb::TxnMeta> for TxnMeta {
    type Error = KvError;
    fn try_from(m: pb::TxnMeta) -> Result<Self> {
        meta_from_pb(Some(m), "txn meta")
    }
}

impl From<Transaction> for pb::Transaction {
    fn from(t: Transaction) -> Self {
        pb::Transaction {
            meta: Some(t.meta.into()),
            name: t.name,
            status: status_to_pb(t.status),
            read_timestamp: ts_to_pb(t.read_timestamp),
            global_uncertainty_limit: ts_to_pb(t.global_uncertainty_limit),
            last_heartbeat: ts_to_pb(t.last_heartbeat),
            lock_spans: t.lock_spans.into_iter().map(span_to_pb).collect(),
            ignored_seqs: seqs_to_pb(t.ignored_seqs),
            observed_timestamps: t
                .observed_timestamps
                .into_iter()
                .map(|o| pb::ObservedTimestamp {
                    node_id: o.node_id,
                    timestamp: ts_to_pb(o.timestamp),
                })
                .collect(),
        }
    }
}

fn txn_from_pb(t: pb::Transaction, field: &str) -> Result<Transaction> {
    Ok(Transaction {
        meta: meta_from_pb(t.meta, &format!("{field}.meta"))?,
        name: t.name,
        status: status_from_pb(t.status, &format!("{field}.status"))?,
        read_timestamp: ts_from_pb(t.read_timestamp, &format!("{field}.read_timestamp"))?,
        global_uncertainty_limit: ts_from_pb(
            t.global_uncertainty_limit,
            &format!("{field}.global_uncertainty_limit"),
        )?,
        last_heartbeat: ts_from_pb(t.last_heartbeat, &format!("{field}.last_heartbeat"))?,
        lock_spans: t
            .lock_spans
            .into_iter()
            .map(|s| span_any(s, &format!("{field}.lock_spans")))
            .collect::<Result<_>>()?,
        ignored_seqs: seqs_from_pb(t.ignored_seqs, &format!("{field}.ignored_seqs"))?,
        observed_timestamps: observed_from_pb(
            t.observed_timestamps,
            &format!("{field}.observed_timestamps"),
        )?,
    })
}

/// Observed timestamps off the wire: each names a node and carries a
/// timestamp. Duplicates are folded (the earliest wins), so a sender cannot
/// make a server pick between two readings of one node.
fn observed_from_pb(
    list: Vec<pb::ObservedTimestamp>,
    field: &str,
) -> Result<Vec<tardigrade_kvpb::ObservedTimestamp>> {
    let mut txn = Transaction::default();
    for o in list {
        if o.node_id == 0 {
            return Err(invalid(format!("{field}: node id 0")));
        }
        let ts = ts_from_pb(o.timestamp, &format!("{field}.timestamp"))?;
        txn.update_observed_timestamp(o.node_id, ts);
    }
    Ok(txn.observed_timestamps)
}

fn opt_txn_from_pb(t: Option<pb::Transaction>, field: &str) -> Result<Option<Transaction>> {
    t.map(|t| txn_from_pb(t, field)).transpose()
}

fn req_txn_from_pb(t: Option<pb::Transaction>, field: &str) -> Result<Transaction> {
    let t = t.ok_or_else(|| invalid(format!("missing {field}")))?;
    txn_from_pb(t, field)
}

impl TryFrom<pb::Transaction> for Transaction {
    type Error = KvError;
    fn try_from(t: pb::Transaction) -> Result<Self> {
        txn_from_pb(t, "txn")
    }
}

impl From<Value> for pb::Value {
    fn from(v: Value) -> Self {
        pb::Value {
            bytes: v.bytes,
            timestamp: ts_to_pb(v.timestamp),
        }
    }
}

fn value_from_pb(v: pb::Value, field: &str) -> Result<Value> {
    Ok(Value {
        bytes: v.bytes,
        timestamp: ts_from_pb(v.timestamp, &format!("{field}.timestamp"))?,
    })
}

fn rows_to_pb(rows: Vec<KeyValue>) -> Vec<pb::KeyValue> {
    rows.into_iter()
        .map(|kv| pb::KeyValue {
            key: kv.key,
            value: Some(kv.value.into()),
        })
        .collect()
}

fn rows_from_pb(rows: Vec<pb::KeyValue>, field: &str) -> Result<Vec<KeyValue>> {
    rows.into_iter()
        .map(|kv| {
            let value = kv
                .value
                .ok_or_else(|| invalid(format!("{field}: row without value")))?;
            Ok(KeyValue {
                key: key_required(kv.key, field)?,
                value: value_from_pb(value, field)?,
            })
        })
        .collect()
}

// -------------------------------------------------------------------- header

impl From<Header> for pb::Header {
    fn from(h: Header) -> Self {
        pb::Header {
            timestamp: ts_to_pb(h.timestamp),
            txn: h.txn.map(Into::into),
            max_span_request_keys: h.max_span_request_keys,
            target_bytes: h.target_bytes,
            read_consistency: consistency_to_pb(h.read_consistency),
            range_id: h.range_id,
            lock_reads: h.lock_reads,
        }
    }
}

impl TryFrom<pb::Header> for Header {
    type Error = KvError;
    fn try_from(h: pb::Header) -> Result<Self> {
        if h.max_span_request_keys < 0 {
            return Err(invalid("header.max_span_request_keys is negative"));
        }
        if h.target_bytes < 0 {
            return Err(invalid("header.target_bytes is negative"));
        }
        Ok(Header {
            timestamp: ts_from_pb(h.timestamp, "header.timestamp")?,
            txn: opt_txn_from_pb(h.txn, "header.txn")?,
            max_span_request_keys: h.max_span_request_keys,
            target_bytes: h.target_bytes,
            read_consistency: consistency_from_pb(h.read_consistency, "header.read_consistency")?,
            range_id: h.range_id,
            lock_reads: h.lock_reads,
        })
    }
}

// ------------------------------------------------------------------ requests

impl From<Request> for pb::RequestUnion {
    fn from(r: Request) -> Self {
        let req = match r {
            Request::Get { key } => PbReq::Get(pb::GetRequest { key }),
            Request::Put { key, value } => PbReq::Put(pb::PutRequest { key, value }),
            Request::ConditionalPut {
                key,
                value,
                expected,
            } => PbReq::ConditionalPut(pb::ConditionalPutRequest {
                key,
                value,
                expected,
            }),
            Request::Increment { key, inc } => PbReq::Increment(pb::IncrementRequest { key, inc }),
            Request::Delete { key } => PbReq::Delete(pb::DeleteRequest { key }),
            Request::DeleteRange { span } => PbReq::DeleteRange(pb::DeleteRangeRequest {
                span: Some(span_to_pb(span)),
            }),
            Request::Scan { span } => PbReq::Scan(pb::ScanRequest {
                span: Some(span_to_pb(span)),
            }),
            Request::ReverseScan { span } => PbReq::ReverseScan(pb::ReverseScanRequest {
                span: Some(span_to_pb(span)),
            }),
            Request::EndTxn {
                commit,
                lock_spans,
                deadline,
                trigger,
            } => PbReq::EndTxn(pb::EndTxnRequest {
                commit,
                lock_spans: lock_spans.into_iter().map(span_to_pb).collect(),
                deadline: ts_to_pb(deadline),
                trigger: trigger.map(trigger_to_pb),
            }),
            Request::HeartbeatTxn { now } => {
                PbReq::HeartbeatTxn(pb::HeartbeatTxnRequest { now: ts_to_pb(now) })
            }
            Request::PushTxn {
                pushee,
                push_to,
                push_type,
            } => PbReq::PushTxn(pb::PushTxnRequest {
                pushee: Some(pushee.into()),
                push_to: ts_to_pb(push_to),
                push_type: push_type_to_pb(push_type),
            }),
            Request::ResolveIntent {
                key,
                txn,
                status,
                ignored_seqs,
            } => PbReq::ResolveIntent(pb::ResolveIntentRequest {
                key,
                txn: Some(txn.into()),
                status: status_to_pb(status),
                ignored_seqs: seqs_to_pb(ignored_seqs),
            }),
            Request::ResolveIntentRange {
                span,
                txn,
                status,
                ignored_seqs,
            } => PbReq::ResolveIntentRange(pb::ResolveIntentRangeRequest {
                span: Some(span_to_pb(span)),
                txn: Some(txn.into()),
                status: status_to_pb(status),
                ignored_seqs: seqs_to_pb(ignored_seqs),
            }),
            Request::QueryTxn { txn } => PbReq::QueryTxn(pb::QueryTxnRequest {
                txn: Some(txn.into()),
            }),
            Request::Refresh { span, refresh_from } => PbReq::Refresh(pb::RefreshRequest {
                span: Some(span_to_pb(span)),
                refresh_from: ts_to_pb(refresh_from),
            }),
            Request::Gc { keys, threshold } => PbReq::Gc(pb::GcRequest {
                keys,
                threshold: ts_to_pb(threshold),
            }),
            Request::AdminSplit { split_key } => {
                PbReq::AdminSplit(pb::AdminSplitRequest { split_key })
            }
        };
        pb::RequestUnion { request: Some(req) }
    }
}

impl TryFrom<pb::RequestUnion> for Request {
    type Error = KvError;
    fn try_from(r: pb::RequestUnion) -> Result<Self> {
        let r = r.request.ok_or_else(|| invalid("empty request union"))?;
        Ok(match r {
            PbReq::Get(r) => Request::Get {
                key: key_required(r.key, "Get.key")?,
            },
            PbReq::Put(r) => Request::Put {
                key: key_required(r.key, "Put.key")?,
                value: r.value,
            },
            PbReq::ConditionalPut(r) => Request::ConditionalPut {
                key: key_required(r.key, "ConditionalPut.key")?,
                value: r.value,
                expected: r.expected,
            },
            PbReq::Increment(r) => Request::Increment {
                key: key_required(r.key, "Increment.key")?,
                inc: r.inc,
            },
            PbReq::Delete(r) => Request::Delete {
                key: key_required(r.key, "Delete.key")?,
            },
            PbReq::DeleteRange(r) => Request::DeleteRange {
                span: span_ranged(r.span, "DeleteRange.span")?,
            },
            PbReq::Scan(r) => Request::Scan {
                span: span_ranged(r.span, "Scan.span")?,
            },
            PbReq::ReverseScan(r) => Request::ReverseScan {
                span: span_ranged(r.span, "ReverseScan.span")?,
            },
            PbReq::EndTxn(r) => Request::EndTxn {
                commit: r.commit,
                lock_spans: r
                    .lock_spans
                    .into_iter()
                    .map(|s| span_any(s, "EndTxn.lock_spans"))
                    .collect::<Result<_>>()?,
                deadline: ts_from_pb(r.deadline, "EndTxn.deadline")?,
                trigger: r.trigger.map(trigger_from_pb).transpose()?,
            },
            PbReq::HeartbeatTxn(r) => Request::HeartbeatTxn {
                now: ts_from_pb(r.now, "HeartbeatTxn.now")?,
            },
            PbReq::PushTxn(r) => Request::PushTxn {
                pushee: meta_from_pb(r.pushee, "PushTxn.pushee")?,
                push_to: ts_from_pb(r.push_to, "PushTxn.push_to")?,
                push_type: push_type_from_pb(r.push_type, "PushTxn.push_type")?,
            },
            PbReq::ResolveIntent(r) => Request::ResolveIntent {
                key: key_required(r.key, "ResolveIntent.key")?,
                txn: meta_from_pb(r.txn, "ResolveIntent.txn")?,
                status: status_from_pb(r.status, "ResolveIntent.status")?,
                ignored_seqs: seqs_from_pb(r.ignored_seqs, "ResolveIntent.ignored_seqs")?,
            },
            PbReq::ResolveIntentRange(r) => Request::ResolveIntentRange {
                span: span_ranged(r.span, "ResolveIntentRange.span")?,
                txn: meta_from_pb(r.txn, "ResolveIntentRange.txn")?,
                status: status_from_pb(r.status, "ResolveIntentRange.status")?,
                ignored_seqs: seqs_from_pb(r.ignored_seqs, "ResolveIntentRange.ignored_seqs")?,
            },
            PbReq::QueryTxn(r) => Request::QueryTxn {
                txn: meta_from_pb(r.txn, "QueryTxn.txn")?,
            },
            PbReq::Refresh(r) => Request::Refresh {
                span: span_any(
                    r.span.ok_or_else(|| invalid("missing Refresh.span"))?,
                    "Refresh.span",
                )?,
                refresh_from: ts_from_pb(r.refresh_from, "Refresh.refresh_from")?,
            },
            PbReq::Gc(r) => Request::Gc {
                keys: r
                    .keys
                    .into_iter()
                    .map(|k| key_required(k, "Gc.keys"))
                    .collect::<Result<_>>()?,
                threshold: ts_from_pb(r.threshold, "Gc.threshold")?,
            },
            PbReq::AdminSplit(r) => Request::AdminSplit {
                split_key: key_required(r.split_key, "AdminSplit.split_key")?,
            },
        })
    }
}

impl From<BatchRequest> for pb::BatchRequest {
    fn from(ba: BatchRequest) -> Self {
        pb::BatchRequest {
            header: Some(ba.header.into()),
            requests: ba.requests.into_iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<pb::BatchRequest> for BatchRequest {
    type Error = KvError;
    fn try_from(ba: pb::BatchRequest) -> Result<Self> {
        let header: Header = ba
            .header
            .ok_or_else(|| invalid("missing batch header"))?
            .try_into()?;
        if ba.requests.is_empty() {
            return Err(invalid("empty batch"));
        }
        if ba.requests.len() > MAX_BATCH_REQUESTS {
            return Err(invalid(format!(
                "too many requests in batch: {} (at most {MAX_BATCH_REQUESTS})",
                ba.requests.len()
            )));
        }
        let mut requests = Vec::with_capacity(ba.requests.len());
        for (i, r) in ba.requests.into_iter().enumerate() {
            let req = Request::try_from(r).map_err(|e| prefix_index(e, i))?;
            if matches!(req, Request::EndTxn { .. } | Request::HeartbeatTxn { .. })
                && header.txn.is_none()
            {
                return Err(invalid(format!(
                    "request {i}: {} without a transaction in the header",
                    req.method()
                ))
                .with_index(i));
            }
            requests.push(req);
        }
        Ok(BatchRequest { header, requests })
    }
}

/// Puts "request i: " in front of an InvalidArgument message and records the index.
fn prefix_index(e: KvError, i: usize) -> KvError {
    match e.detail {
        ErrorDetail::InvalidArgument(msg) => invalid(format!("request {i}: {msg}")).with_index(i),
        detail => KvError::new(detail).with_index(i),
    }
}

// ----------------------------------------------------------------- responses

impl From<Response> for pb::ResponseUnion {
    fn from(r: Response) -> Self {
        let resp = match r {
            Response::Get { value } => PbResp::Get(pb::GetResponse {
                value: value.map(Into::into),
            }),
            Response::Put => PbResp::Put(pb::PutResponse {}),
            Response::ConditionalPut => PbResp::ConditionalPut(pb::ConditionalPutResponse {}),
            Response::Increment { new_value } => {
                PbResp::Increment(pb::IncrementResponse { new_value })
            }
            Response::Delete => PbResp::Delete(pb::DeleteResponse {}),
            Response::DeleteRange { keys, resume_span } => {
                PbResp::DeleteRange(pb::DeleteRangeResponse {
                    keys,
                    resume_span: opt_span_to_pb(resume_span),
                })
            }
            Response::Scan { rows, resume_span } => PbResp::Scan(pb::ScanResponse {
                rows: rows_to_pb(rows),
                resume_span: opt_span_to_pb(resume_span),
            }),
            Response::ReverseScan { rows, resume_span } => {
                PbResp::ReverseScan(pb::ReverseScanResponse {
                    rows: rows_to_pb(rows),
                    resume_span: opt_span_to_pb(resume_span),
                })
            }
            Response::EndTxn => PbResp::EndTxn(pb::EndTxnResponse {}),
            Response::HeartbeatTxn { txn } => PbResp::HeartbeatTxn(pb::HeartbeatTxnResponse {
                txn: Some(txn.into()),
            }),
            Response::PushTxn { pushee } => PbResp::PushTxn(pb::PushTxnResponse {
                pushee: Some(pushee.into()),
            }),
            Response::ResolveIntent => PbResp::ResolveIntent(pb::ResolveIntentResponse {}),
            Response::ResolveIntentRange { resume_span } => {
                PbResp::ResolveIntentRange(pb::ResolveIntentRangeResponse {
                    resume_span: opt_span_to_pb(resume_span),
                })
            }
            Response::QueryTxn { txn, waiting_txns } => PbResp::QueryTxn(pb::QueryTxnResponse {
                txn: txn.map(Into::into),
                waiting_txns: waiting_txns.into_iter().map(|id| id.0.to_vec()).collect(),
            }),
            Response::Refresh => PbResp::Refresh(pb::RefreshResponse {}),
            Response::Gc => PbResp::Gc(pb::GcResponse {}),
            Response::AdminSplit { left, right } => PbResp::AdminSplit(pb::AdminSplitResponse {
                left: left.encode(),
                right: right.encode(),
            }),
        };
        pb::ResponseUnion {
            response: Some(resp),
        }
    }
}

impl TryFrom<pb::ResponseUnion> for Response {
    type Error = KvError;
    fn try_from(r: pb::ResponseUnion) -> Result<Self> {
        let r = r.response.ok_or_else(|| invalid("empty response union"))?;
        Ok(match r {
            PbResp::Get(r) => Response::Get {
                value: r.value.map(|v| value_from_pb(v, "Get.value")).transpose()?,
            },
            PbResp::Put(_) => Response::Put,
            PbResp::ConditionalPut(_) => Response::ConditionalPut,
            PbResp::Increment(r) => Response::Increment {
                new_value: r.new_value,
            },
            PbResp::Delete(_) => Response::Delete,
            PbResp::DeleteRange(r) => Response::DeleteRange {
                keys: r
                    .keys
                    .into_iter()
                    .map(|k| key_required(k, "DeleteRange.keys"))
                    .collect::<Result<_>>()?,
                resume_span: opt_span_any(r.resume_span, "DeleteRange.resume_span")?,
            },
            PbResp::Scan(r) => Response::Scan {
                rows: rows_from_pb(r.rows, "Scan.rows")?,
                resume_span: opt_span_any(r.resume_span, "Scan.resume_span")?,
            },
            PbResp::ReverseScan(r) => Response::ReverseScan {
                rows: rows_from_pb(r.rows, "ReverseScan.rows")?,
                resume_span: opt_span_any(r.resume_span, "ReverseScan.resume_span")?,
            },
            PbResp::EndTxn(_) => Response::EndTxn,
            PbResp::HeartbeatTxn(r) => Response::HeartbeatTxn {
                txn: req_txn_from_pb(r.txn, "HeartbeatTxn.txn")?,
            },
            PbResp::PushTxn(r) => Response::PushTxn {
                pushee: req_txn_from_pb(r.pushee, "PushTxn.pushee")?,
            },
            PbResp::ResolveIntent(_) => Response::ResolveIntent,
            PbResp::ResolveIntentRange(r) => Response::ResolveIntentRange {
                resume_span: opt_span_any(r.resume_span, "ResolveIntentRange.resume_span")?,
            },
            PbResp::QueryTxn(r) => Response::QueryTxn {
                txn: opt_txn_from_pb(r.txn, "QueryTxn.txn")?,
                waiting_txns: r
                    .waiting_txns
                    .iter()
                    .map(|id| txn_id_from_pb(id, "QueryTxn.waiting_txns"))
                    .collect::<Result<_>>()?,
            },
            PbResp::Refresh(_) => Response::Refresh,
            PbResp::Gc(_) => Response::Gc,
            PbResp::AdminSplit(r) => Response::AdminSplit {
                left: desc_from_pb(&r.left, "AdminSplit.left")?,
                right: desc_from_pb(&r.right, "AdminSplit.right")?,
            },
        })
    }
}

// ------------------------------------------------------------------ triggers

fn trigger_to_pb(t: CommitTrigger) -> pb::CommitTrigger {
    use pb::commit_trigger::Trigger as T;
    let trigger = match t {
        CommitTrigger::Split { left, right } => T::Split(pb::SplitTrigger {
            left: left.encode(),
            right: right.encode(),
        }),
        CommitTrigger::ChangeReplicas { desc } => T::ChangeReplicas(pb::ChangeReplicasTrigger {
            desc: desc.encode(),
        }),
    };
    pb::CommitTrigger {
        trigger: Some(trigger),
    }
}

fn trigger_from_pb(t: pb::CommitTrigger) -> Result<CommitTrigger> {
    use pb::commit_trigger::Trigger as T;
    Ok(
        match t
            .trigger
            .ok_or_else(|| invalid("EndTxn.trigger: empty trigger"))?
        {
            T::Split(s) => CommitTrigger::Split {
                left: desc_from_pb(&s.left, "EndTxn.trigger.split.left")?,
                right: desc_from_pb(&s.right, "EndTxn.trigger.split.right")?,
            },
            T::ChangeReplicas(c) => CommitTrigger::ChangeReplicas {
                desc: desc_from_pb(&c.desc, "EndTxn.trigger.change_replicas.desc")?,
            },
        },
    )
}

fn desc_from_pb(b: &[u8], what: &str) -> Result<RangeDescriptor> {
    RangeDescriptor::decode(b).map_err(|e| invalid(format!("{what}: {e}")))
}

// -------------------------------------------------------------------- errors

impl From<KvError> for pb::Error {
    fn from(e: KvError) -> Self {
        use pb::error::Detail as D;
        let detail = match e.detail {
            ErrorDetail::WriteIntent { intents } => D::WriteIntent(pb::WriteIntentError {
                intents: intents
                    .into_iter()
                    .map(|i| pb::IntentInfo {
                        key: i.key,
                        txn: Some(i.txn.into()),
                    })
                    .collect(),
            }),
            ErrorDetail::TransactionRetry { reason } => {
                D::TransactionRetry(pb::TransactionRetryError {
                    reason: retry_reason_to_pb(reason),
                })
            }
            ErrorDetail::TransactionAborted { reason } => {
                D::TransactionAborted(pb::TransactionAbortedError {
                    reason: abort_reason_to_pb(reason),
                })
            }
            ErrorDetail::ReadWithinUncertainty { read, existing } => {
                D::ReadWithinUncertainty(pb::ReadWithinUncertaintyError {
                    read: ts_to_pb(read),
                    existing: ts_to_pb(existing),
                })
            }
            ErrorDetail::WriteTooOld { timestamp, actual } => {
                D::WriteTooOld(pb::WriteTooOldError {
                    timestamp: ts_to_pb(timestamp),
                    actual: ts_to_pb(actual),
                })
            }
            ErrorDetail::ConditionFailed { actual } => {
                D::ConditionFailed(pb::ConditionFailedError {
                    actual: actual.map(Into::into),
                })
            }
            ErrorDetail::TransactionPush { pushee } => {
                D::TransactionPush(pb::TransactionPushError {
                    pushee: Some((*pushee).into()),
                })
            }
            ErrorDetail::TransactionStatus { msg } => {
                D::TransactionStatus(pb::TransactionStatusError { msg })
            }
            ErrorDetail::RangeKeyMismatch { span, range_id } => {
                D::RangeKeyMismatch(pb::RangeKeyMismatchError {
                    span: Some(span_to_pb(span)),
                    range_id,
                })
            }
            ErrorDetail::NotLeaseholder {
                range_id,
                leaseholder_node,
            } => D::NotLeaseholder(pb::NotLeaseholderError {
                range_id,
                leaseholder_node,
            }),
            ErrorDetail::RangeNotFound { range_id, node_id } => {
                D::RangeNotFound(pb::RangeNotFoundError { range_id, node_id })
            }
            ErrorDetail::InvalidArgument(msg) => {
                D::InvalidArgument(pb::InvalidArgumentError { msg })
            }
            ErrorDetail::Unavailable(msg) => D::Unavailable(pb::UnavailableError { msg }),
            ErrorDetail::ClockOffset(msg) => D::ClockOffset(pb::ClockOffsetError { msg }),
            ErrorDetail::IntegerOverflow => D::IntegerOverflow(pb::IntegerOverflowError {}),
            ErrorDetail::Internal(msg) => D::Internal(pb::InternalError { msg }),
            ErrorDetail::AmbiguousResult(msg) => {
                D::AmbiguousResult(pb::AmbiguousResultError { msg })
            }
        };
        pb::Error {
            detail: Some(detail),
            index: e.index.map(|i| i as u64),
            txn: e.txn.map(Into::into),
        }
    }
}

impl TryFrom<pb::Error> for KvError {
    type Error = KvError;
    fn try_from(e: pb::Error) -> Result<Self> {
        use pb::error::Detail as D;
        let detail = match e.detail.ok_or_else(|| invalid("error without detail"))? {
            D::WriteIntent(w) => ErrorDetail::WriteIntent {
                intents: w
                    .intents
                    .into_iter()
                    .map(|i| {
                        Ok(IntentInfo {
                            key: i.key,
                            txn: meta_from_pb(i.txn, "WriteIntent.intents.txn")?,
                        })
                    })
                    .collect::<Result<_>>()?,
            },
            D::TransactionRetry(r) => ErrorDetail::TransactionRetry {
                reason: retry_reason_from_pb(r.reason)?,
            },
            D::TransactionAborted(a) => ErrorDetail::TransactionAborted {
                reason: abort_reason_from_pb(a.reason)?,
            },
            D::ReadWithinUncertainty(u) => ErrorDetail::ReadWithinUncertainty {
                read: ts_from_pb(u.read, "ReadWithinUncertainty.read")?,
                existing: ts_from_pb(u.existing, "ReadWithinUncertainty.existing")?,
            },
            D::WriteTooOld(w) => ErrorDetail::WriteTooOld {
                timestamp: ts_from_pb(w.timestamp, "WriteTooOld.timestamp")?,
                actual: ts_from_pb(w.actual, "WriteTooOld.actual")?,
            },
            D::ConditionFailed(c) => ErrorDetail::ConditionFailed {
                actual: c
                    .actual
                    .map(|v| value_from_pb(v, "ConditionFailed.actual"))
                    .transpose()?,
            },
            D::TransactionPush(p) => ErrorDetail::TransactionPush {
                pushee: Box::new(req_txn_from_pb(p.pushee, "TransactionPush.pushee")?),
            },
            D::TransactionStatus(s) => ErrorDetail::TransactionStatus { msg: s.msg },
            D::RangeKeyMismatch(m) => ErrorDetail::RangeKeyMismatch {
                span: span_raw(
                    m.span
                        .ok_or_else(|| invalid("missing RangeKeyMismatch.span"))?,
                ),
                range_id: m.range_id,
            },
            D::NotLeaseholder(n) => ErrorDetail::NotLeaseholder {
                range_id: n.range_id,
                leaseholder_node: n.leaseholder_node,
            },
            D::RangeNotFound(n) => ErrorDetail::RangeNotFound {
                range_id: n.range_id,
                node_id: n.node_id,
            },
            D::InvalidArgument(m) => ErrorDetail::InvalidArgument(m.msg),
            D::Unavailable(m) => ErrorDetail::Unavailable(m.msg),
            D::ClockOffset(m) => ErrorDetail::ClockOffset(m.msg),
            D::IntegerOverflow(_) => ErrorDetail::IntegerOverflow,
            D::Internal(m) => ErrorDetail::Internal(m.msg),
            D::AmbiguousResult(m) => ErrorDetail::AmbiguousResult(m.msg),
        };
        let index = e
            .index
            .map(|i| usize::try_from(i).map_err(|_| invalid(format!("error index {i} too large"))))
            .transpose()?;
        Ok(KvError {
            detail,
            index,
            txn: opt_txn_from_pb(e.txn, "error.txn")?,
        })
    }
}

// -------------------------------------------------------------- batch result

/// The wire form of a batch's outcome: responses, or the error.
pub fn batch_result_to_pb(result: BatchResult) -> pb::BatchResponse {
    match result {
        Ok(br) => pb::BatchResponse {
            now: ts_to_pb(br.now),
            txn: br.txn.map(Into::into),
            responses: br.responses.into_iter().map(Into::into).collect(),
            error: None,
        },
        Err(e) => pb::BatchResponse {
            now: None,
            txn: None,
            responses: Vec::new(),
            error: Some(e.into()),
        },
    }
}

/// Reads a batch's outcome off the wire. The outer `Result` fails when the
/// message itself is malformed; the inner one is the batch's own outcome.
pub fn batch_result_from_pb(br: pb::BatchResponse) -> Result<BatchResult> {
    if let Some(e) = br.error {
        return Ok(Err(KvError::try_from(e)?));
    }
    let responses = br
        .responses
        .into_iter()
        .enumerate()
        .map(|(i, r)| Response::try_from(r).map_err(|e| prefix_index(e, i)))
        .collect::<Result<_>>()?;
    Ok(Ok(BatchResponse {
        now: ts_from_pb(br.now, "BatchResponse.now")?,
        txn: opt_txn_from_pb(br.txn, "BatchResponse.txn")?,
        responses,
    }))
}

#[cfg(test)]
mod tests;
