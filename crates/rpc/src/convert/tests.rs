use std::collections::BTreeSet;

use super::*;
use tardigrade_kvpb::{ReplicaDescriptor, ReplicaType};

fn ts(wall: i64, logical: i32) -> Timestamp {
    Timestamp::new(wall, logical)
}

fn meta(n: u8) -> TxnMeta {
    TxnMeta {
        id: TxnId([n; 16]),
        key: format!("anchor-{n}").into_bytes(),
        epoch: 3,
        write_timestamp: ts(200, 1),
        min_timestamp: ts(100, 0),
        priority: -7,
        sequence: 12,
    }
}

fn txn(n: u8) -> Transaction {
    Transaction {
        meta: meta(n),
        name: format!("txn-{n}"),
        status: TransactionStatus::Staging,
        read_timestamp: ts(150, 2),
        global_uncertainty_limit: ts(650, 0),
        last_heartbeat: ts(160, 0),
        lock_spans: vec![
            Span::point(b"a".to_vec()),
            Span::new(b"b".to_vec(), b"c".to_vec()),
        ],
        ignored_seqs: vec![(1, 2), (5, 5)],
        observed_timestamps: vec![
            tardigrade_kvpb::ObservedTimestamp {
                node_id: 2,
                timestamp: ts(170, 3),
            },
            tardigrade_kvpb::ObservedTimestamp {
                node_id: 5,
                timestamp: ts(180, 0),
            },
        ],
    }
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.as_bytes().to_vec(),
        value: Value {
            bytes: v.as_bytes().to_vec(),
            timestamp: ts(42, 1),
        },
    }
}

fn sample_requests() -> Vec<Request> {
    vec![
        Request::Get { key: b"k".to_vec() },
        Request::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
        Request::Put {
            key: b"k".to_vec(),
            value: Vec::new(),
        },
        Request::ConditionalPut {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            expected: Some(b"old".to_vec()),
        },
        Request::ConditionalPut {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            expected: None,
        },
        Request::ConditionalPut {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            expected: Some(Vec::new()),
        },
        Request::Increment {
            key: b"n".to_vec(),
            inc: -5,
        },
        Request::Delete { key: b"k".to_vec() },
        Request::DeleteRange {
            span: Span::new(b"a".to_vec(), b"z".to_vec()),
        },
        Request::Scan {
            span: Span::new(Vec::new(), vec![0xff]),
        },
        Request::ReverseScan {
            span: Span::new(b"a".to_vec(), b"b".to_vec()),
        },
        Request::EndTxn {
            commit: true,
            lock_spans: vec![Span::point(b"x".to_vec())],
            deadline: ts(900, 0),
            trigger: None,
        },
        Request::EndTxn {
            commit: true,
            lock_spans: vec![Span::point(b"x".to_vec())],
            deadline: Timestamp::ZERO,
            trigger: Some(CommitTrigger::Split {
                left: sample_desc(1, b"a", b"m"),
                right: sample_desc(9, b"m", b"z"),
            }),
        },
        Request::EndTxn {
            commit: true,
            lock_spans: Vec::new(),
            deadline: Timestamp::ZERO,
            trigger: Some(CommitTrigger::ChangeReplicas {
                desc: sample_desc(4, b"", b"\xff\xff"),
            }),
        },
        Request::EndTxn {
            commit: false,
            lock_spans: Vec::new(),
            deadline: Timestamp::ZERO,
            trigger: None,
        },
        Request::HeartbeatTxn { now: ts(300, 4) },
        Request::PushTxn {
            pushee: meta(2),
            push_to: ts(400, 0),
            push_type: PushType::Timestamp,
        },
        Request::PushTxn {
            pushee: meta(3),
            push_to: ts(400, 0),
            push_type: PushType::Abort,
        },
        Request::PushTxn {
            pushee: meta(4),
            push_to: Timestamp::MAX,
            push_type: PushType::Touch,
        },
        Request::ResolveIntent {
            key: b"k".to_vec(),
            txn: meta(5),
            status: TransactionStatus::Committed,
            ignored_seqs: vec![(3, 4)],
        },
        Request::ResolveIntentRange {
            span: Span::new(b"a".to_vec(), b"m".to_vec()),
            txn: meta(6),
            status: TransactionStatus::Aborted,
            ignored_seqs: Vec::new(),
        },
        Request::ResolveIntentRange {
            span: Span::new(b"a".to_vec(), b"m".to_vec()),
            txn: meta(6),
            status: TransactionStatus::Pending,
            ignored_seqs: Vec::new(),
        },
        Request::QueryTxn { txn: meta(7) },
        Request::Refresh {
            span: Span::new(b"a".to_vec(), b"b".to_vec()),
            refresh_from: ts(10, 0),
        },
        Request::Refresh {
            span: Span::point(b"a".to_vec()),
            refresh_from: ts(10, 0),
        },
        Request::Gc {
            keys: vec![b"a".to_vec(), b"b".to_vec()],
            threshold: ts(5, 0),
        },
        Request::AdminSplit {
            split_key: b"m".to_vec(),
        },
    ]
}

fn sample_desc(id: u64, start: &[u8], end: &[u8]) -> RangeDescriptor {
    RangeDescriptor {
        range_id: id,
        start_key: start.to_vec(),
        end_key: end.to_vec(),
        replicas: vec![ReplicaDescriptor {
            node_id: 2,
            store_id: 3,
            replica_id: 4,
            kind: ReplicaType::Learner,
        }],
        next_replica_id: 5,
        generation: 6,
    }
}

/// Exhaustive: adding a `Request` variant breaks the build until it is sampled.
fn request_tag(r: &Request) -> usize {
    match r {
        Request::Get { .. } => 0,
        Request::Put { .. } => 1,
        Request::ConditionalPut { .. } => 2,
        Request::Increment { .. } => 3,
        Request::Delete { .. } => 4,
        Request::DeleteRange { .. } => 5,
        Request::Scan { .. } => 6,
        Request::ReverseScan { .. } => 7,
        Request::EndTxn { .. } => 8,
        Request::HeartbeatTxn { .. } => 9,
        Request::PushTxn { .. } => 10,
        Request::ResolveIntent { .. } => 11,
        Request::ResolveIntentRange { .. } => 12,
        Request::QueryTxn { .. } => 13,
        Request::Refresh { .. } => 14,
        Request::Gc { .. } => 15,
        Request::AdminSplit { .. } => 16,
    }
}
const REQUEST_VARIANTS: usize = 17;

fn sample_responses() -> Vec<Response> {
    vec![
        Response::Get { value: None },
        Response::Get {
            value: Some(kv("k", "v").value),
        },
        Response::Get {
            value: Some(Value {
                bytes: Vec::new(),
                timestamp: ts(1, 0),
            }),
        },
        Response::Put,
        Response::ConditionalPut,
        Response::Increment { new_value: -3 },
        Response::Delete,
        Response::DeleteRange {
            keys: vec![b"a".to_vec(), b"b".to_vec()],
            resume_span: Some(Span::new(b"c".to_vec(), b"z".to_vec())),
        },
        Response::DeleteRange {
            keys: Vec::new(),
            resume_span: None,
        },
        Response::Scan {
            rows: vec![kv("a", "1"), kv("b", "")],
            resume_span: None,
        },
        Response::Scan {
            rows: Vec::new(),
            resume_span: Some(Span::new(b"c".to_vec(), b"z".to_vec())),
        },
        Response::ReverseScan {
            rows: vec![kv("b", "2"), kv("a", "1")],
            resume_span: Some(Span::new(Vec::new(), b"a".to_vec())),
        },
        Response::EndTxn,
        Response::HeartbeatTxn { txn: txn(1) },
        Response::PushTxn { pushee: txn(2) },
        Response::ResolveIntent,
        Response::ResolveIntentRange {
            resume_span: Some(Span::new(b"q".to_vec(), b"r".to_vec())),
        },
        Response::QueryTxn {
            txn: Some(txn(3)),
            waiting_txns: vec![TxnId([9; 16]), TxnId([8; 16])],
        },
        Response::QueryTxn {
            txn: None,
            waiting_txns: Vec::new(),
        },
        Response::Refresh,
        Response::Gc,
        Response::AdminSplit {
            left: sample_desc(1, b"a", b"m"),
            right: sample_desc(9, b"m", b"z"),
        },
    ]
}

fn response_tag(r: &Response) -> usize {
    match r {
        Response::Get { .. } => 0,
        Response::Put => 1,
        Response::ConditionalPut => 2,
        Response::Increment { .. } => 3,
        Response::Delete => 4,
        Response::DeleteRange { .. } => 5,
        Response::Scan { .. } => 6,
        Response::ReverseScan { .. } => 7,
        Response::EndTxn => 8,
        Response::HeartbeatTxn { .. } => 9,
        Response::PushTxn { .. } => 10,
        Response::ResolveIntent => 11,
        Response::ResolveIntentRange { .. } => 12,
        Response::QueryTxn { .. } => 13,
        Response::Refresh => 14,
        Response::Gc => 15,
        Response::AdminSplit { .. } => 16,
    }
}
const RESPONSE_VARIANTS: usize = 17;

fn sample_errors() -> Vec<ErrorDetail> {
    vec![
        ErrorDetail::WriteIntent {
            intents: vec![
                IntentInfo {
                    key: b"a".to_vec(),
                    txn: meta(1),
                },
                IntentInfo {
                    key: b"b".to_vec(),
                    txn: meta(2),
                },
            ],
        },
        ErrorDetail::TransactionRetry {
            reason: RetryReason::Serializable,
        },
        ErrorDetail::TransactionRetry {
            reason: RetryReason::WriteTooOld,
        },
        ErrorDetail::TransactionRetry {
            reason: RetryReason::Uncertainty,
        },
        ErrorDetail::TransactionRetry {
            reason: RetryReason::CommitDeadlineExceeded,
        },
        ErrorDetail::TransactionAborted {
            reason: AbortReason::AbortedRecord,
        },
        ErrorDetail::TransactionAborted {
            reason: AbortReason::Expired,
        },
        ErrorDetail::TransactionAborted {
            reason: AbortReason::Deadlock,
        },
        ErrorDetail::TransactionAborted {
            reason: AbortReason::ClientRejected,
        },
        ErrorDetail::ReadWithinUncertainty {
            read: ts(1, 0),
            existing: ts(2, 0),
        },
        ErrorDetail::WriteTooOld {
            timestamp: ts(1, 0),
            actual: ts(2, 1),
        },
        ErrorDetail::ConditionFailed { actual: None },
        ErrorDetail::ConditionFailed {
            actual: Some(kv("k", "v").value),
        },
        ErrorDetail::TransactionPush {
            pushee: Box::new(txn(4)),
        },
        ErrorDetail::TransactionStatus {
            msg: "already committed".into(),
        },
        ErrorDetail::RangeKeyMismatch {
            span: Span::new(b"a".to_vec(), b"b".to_vec()),
            range_id: 7,
        },
        ErrorDetail::NotLeaseholder {
            range_id: 7,
            leaseholder_node: 3,
        },
        ErrorDetail::InvalidArgument("bad".into()),
        ErrorDetail::Unavailable("down".into()),
        ErrorDetail::ClockOffset("too far".into()),
        ErrorDetail::IntegerOverflow,
        ErrorDetail::Internal("oops".into()),
        ErrorDetail::AmbiguousResult("maybe".into()),
        ErrorDetail::RangeNotFound {
            range_id: 7,
            node_id: 2,
        },
    ]
}

fn error_tag(e: &ErrorDetail) -> usize {
    match e {
        ErrorDetail::WriteIntent { .. } => 0,
        ErrorDetail::TransactionRetry { .. } => 1,
        ErrorDetail::TransactionAborted { .. } => 2,
        ErrorDetail::ReadWithinUncertainty { .. } => 3,
        ErrorDetail::WriteTooOld { .. } => 4,
        ErrorDetail::ConditionFailed { .. } => 5,
        ErrorDetail::TransactionPush { .. } => 6,
        ErrorDetail::TransactionStatus { .. } => 7,
        ErrorDetail::RangeKeyMismatch { .. } => 8,
        ErrorDetail::NotLeaseholder { .. } => 9,
        ErrorDetail::InvalidArgument(_) => 10,
        ErrorDetail::Unavailable(_) => 11,
        ErrorDetail::ClockOffset(_) => 12,
        ErrorDetail::IntegerOverflow => 13,
        ErrorDetail::Internal(_) => 14,
        ErrorDetail::AmbiguousResult(_) => 15,
        ErrorDetail::RangeNotFound { .. } => 16,
    }
}
const ERROR_VARIANTS: usize = 17;

fn txn_header() -> Header {
    Header {
        timestamp: ts(123, 4),
        txn: Some(txn(1)),
        max_span_request_keys: 100,
        target_bytes: 1 << 20,
        read_consistency: ReadConsistency::Consistent,
        range_id: 9,
        lock_reads: true,
    }
}

/// native → proto → bytes → proto → native.
fn wire<P: prost::Message + Default>(p: P) -> P {
    let bytes = p.encode_to_vec();
    P::decode(bytes.as_slice()).expect("decoding what was just encoded")
}

#[test]
fn samples_cover_every_variant() {
    let reqs: BTreeSet<_> = sample_requests().iter().map(request_tag).collect();
    assert_eq!(reqs.len(), REQUEST_VARIANTS);
    let resps: BTreeSet<_> = sample_responses().iter().map(response_tag).collect();
    assert_eq!(resps.len(), RESPONSE_VARIANTS);
    let errs: BTreeSet<_> = sample_errors().iter().map(error_tag).collect();
    assert_eq!(errs.len(), ERROR_VARIANTS);
}

#[test]
fn every_request_round_trips() {
    for req in sample_requests() {
        let ba = BatchRequest {
            header: txn_header(),
            requests: vec![req.clone()],
        };
        let back = BatchRequest::try_from(wire(pb::BatchRequest::from(ba.clone())))
            .unwrap_or_else(|e| panic!("{req:?}: {e}"));
        assert_eq!(back, ba);
    }
}

#[test]
fn whole_batch_round_trips_with_every_header_shape() {
    let headers = [
        txn_header(),
        Header::default(),
        Header {
            timestamp: Timestamp::MAX,
            txn: None,
            max_span_request_keys: 0,
            target_bytes: 0,
            read_consistency: ReadConsistency::Inconsistent,
            range_id: u64::MAX,
            lock_reads: false,
        },
    ];
    for header in headers {
        let needs_txn = header.txn.is_none();
        let requests = sample_requests()
            .into_iter()
            .filter(|r| {
                !(needs_txn && matches!(r, Request::EndTxn { .. } | Request::HeartbeatTxn { .. }))
            })
            .collect();
        let ba = BatchRequest { header, requests };
        let back =
            BatchRequest::try_from(wire(pb::BatchRequest::from(ba.clone()))).expect("valid batch");
        assert_eq!(back, ba);
    }
}

#[test]
fn every_transaction_status_round_trips() {
    for status in [
        TransactionStatus::Pending,
        TransactionStatus::Staging,
        TransactionStatus::Committed,
        TransactionStatus::Aborted,
    ] {
        let t = Transaction { status, ..txn(1) };
        let back = Transaction::try_from(wire(pb::Transaction::from(t.clone()))).expect("valid");
        assert_eq!(back, t);
    }
    let d = Transaction::default();
    assert_eq!(
        Transaction::try_from(wire(pb::Transaction::from(d.clone()))).expect("valid"),
        d
    );
}

#[test]
fn every_response_round_trips() {
    let br = BatchResponse {
        now: ts(77, 0),
        txn: Some(txn(9)),
        responses: sample_responses(),
    };
    let back = batch_result_from_pb(wire(batch_result_to_pb(Ok(br.clone()))))
        .expect("well-formed")
        .expect("success");
    assert_eq!(back, br);

    let bare = BatchResponse {
        now: Timestamp::ZERO,
        txn: None,
        responses: vec![Response::Put],
    };
    let back = batch_result_from_pb(wire(batch_result_to_pb(Ok(bare.clone()))))
        .expect("well-formed")
        .expect("success");
    assert_eq!(back, bare);
}

#[test]
fn every_error_round_trips() {
    for detail in sample_errors() {
        for (index, t) in [(None, None), (Some(3), Some(txn(5)))] {
            let err = KvError {
                detail: detail.clone(),
                index,
                txn: t,
            };
            let back = batch_result_from_pb(wire(batch_result_to_pb(Err(err.clone()))))
                .expect("well-formed");
            assert_eq!(back, Err(err));
        }
    }
}

fn reject(p: pb::BatchRequest, needle: &str) {
    match BatchRequest::try_from(p) {
        Ok(ba) => panic!("accepted {ba:?}, wanted rejection mentioning {needle:?}"),
        Err(e) => {
            let ErrorDetail::InvalidArgument(msg) = &e.detail else {
                panic!("wanted InvalidArgument, got {e:?}");
            };
            assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
        }
    }
}

fn one(req: Request) -> pb::BatchRequest {
    pb::BatchRequest::from(BatchRequest {
        header: Header::default(),
        requests: vec![req],
    })
}

fn with_req(r: PbReq) -> pb::BatchRequest {
    let mut p = one(Request::Get { key: b"k".to_vec() });
    p.requests[0].request = Some(r);
    p
}

#[test]
fn rejects_missing_header() {
    let mut p = one(Request::Get { key: b"k".to_vec() });
    p.header = None;
    reject(p, "missing batch header");
}

#[test]
fn rejects_bad_batch_sizes() {
    let mut p = one(Request::Get { key: b"k".to_vec() });
    p.requests.clear();
    reject(p, "empty batch");

    let get = pb::RequestUnion::from(Request::Get { key: b"k".to_vec() });
    let mut p = one(Request::Get { key: b"k".to_vec() });
    p.requests = vec![get; MAX_BATCH_REQUESTS + 1];
    reject(p, "too many requests");

    let get = pb::RequestUnion::from(Request::Get { key: b"k".to_vec() });
    let mut p = one(Request::Get { key: b"k".to_vec() });
    p.requests = vec![get; MAX_BATCH_REQUESTS];
    assert!(BatchRequest::try_from(p).is_ok());
}

#[test]
fn rejects_empty_request_union() {
    let mut p = one(Request::Get { key: b"k".to_vec() });
    p.requests[0].request = None;
    reject(p, "empty request union");
}

#[test]
fn rejects_bad_txn_ids() {
    for len in [0, 15, 17] {
        let mut p = pb::BatchRequest::from(BatchRequest {
            header: txn_header(),
            requests: vec![Request::Get { key: b"k".to_vec() }],
        });
        if let Some(m) = p
            .header
            .as_mut()
            .and_then(|h| h.txn.as_mut())
            .and_then(|t| t.meta.as_mut())
        {
            m.id = vec![1; len];
        }
        reject(p, "transaction id must be 16 bytes");
    }
    reject(
        with_req(PbReq::QueryTxn(pb::QueryTxnRequest {
            txn: Some(pb::TxnMeta {
                id: vec![1, 2, 3],
                ..pb::TxnMeta::from(meta(1))
            }),
        })),
        "QueryTxn.txn: transaction id must be 16 bytes, got 3",
    );
}

#[test]
fn rejects_empty_keys() {
    reject(one(Request::Get { key: Vec::new() }), "Get.key: empty key");
    reject(
        one(Request::Put {
            key: Vec::new(),
            value: b"v".to_vec(),
        }),
        "Put.key: empty key",
    );
    reject(
        one(Request::ConditionalPut {
            key: Vec::new(),
            value: b"v".to_vec(),
            expected: None,
        }),
        "ConditionalPut.key",
    );
    reject(
        one(Request::Increment {
            key: Vec::new(),
            inc: 1,
        }),
        "Increment.key",
    );
    reject(one(Request::Delete { key: Vec::new() }), "Delete.key");
    reject(
        one(Request::Gc {
            keys: vec![b"a".to_vec(), Vec::new()],
            threshold: ts(1, 0),
        }),
        "Gc.keys: empty key",
    );
    reject(
        one(Request::Refresh {
            span: Span::point(Vec::new()),
            refresh_from: ts(1, 0),
        }),
        "Refresh.span: empty key",
    );
}

#[test]
fn rejects_bad_ranges() {
    let spans = [
        (
            Span::new(b"b".to_vec(), b"a".to_vec()),
            "end_key must be greater",
        ),
        (
            Span::new(b"b".to_vec(), b"b".to_vec()),
            "end_key must be greater",
        ),
        (Span::point(b"b".to_vec()), "missing end_key"),
    ];
    for (span, needle) in spans {
        reject(one(Request::Scan { span: span.clone() }), needle);
        reject(one(Request::ReverseScan { span: span.clone() }), needle);
        reject(one(Request::DeleteRange { span: span.clone() }), needle);
        reject(
            one(Request::ResolveIntentRange {
                span,
                txn: meta(1),
                status: TransactionStatus::Committed,
                ignored_seqs: Vec::new(),
            }),
            needle,
        );
    }
    reject(
        with_req(PbReq::Scan(pb::ScanRequest { span: None })),
        "missing Scan.span",
    );
    reject(
        with_req(PbReq::EndTxn(pb::EndTxnRequest {
            commit: true,
            lock_spans: vec![pb::Span {
                key: b"z".to_vec(),
                end_key: b"a".to_vec(),
            }],
            deadline: ts_to_pb(Timestamp::ZERO),
            trigger: None,
        })),
        "EndTxn.lock_spans: end_key must be greater",
    );
    for (trigger, needle) in [
        (pb::CommitTrigger { trigger: None }, "empty trigger"),
        (
            pb::CommitTrigger {
                trigger: Some(pb::commit_trigger::Trigger::Split(pb::SplitTrigger {
                    left: vec![1, 2, 3],
                    right: Vec::new(),
                })),
            },
            "EndTxn.trigger.split.left",
        ),
        (
            pb::CommitTrigger {
                trigger: Some(pb::commit_trigger::Trigger::ChangeReplicas(
                    pb::ChangeReplicasTrigger { desc: vec![9] },
                )),
            },
            "EndTxn.trigger.change_replicas.desc",
        ),
    ] {
        reject(
            with_req(PbReq::EndTxn(pb::EndTxnRequest {
                commit: true,
                lock_spans: Vec::new(),
                deadline: ts_to_pb(Timestamp::ZERO),
                trigger: Some(trigger),
            })),
            needle,
        );
    }
    reject(
        with_req(PbReq::AdminSplit(pb::AdminSplitRequest {
            split_key: Vec::new(),
        })),
        "AdminSplit.split_key",
    );
}

#[test]
fn rejects_missing_required_fields() {
    let mut p = one(Request::Get { key: b"k".to_vec() });
    if let Some(h) = p.header.as_mut() {
        h.timestamp = None;
    }
    reject(p, "missing header.timestamp");

    reject(
        with_req(PbReq::PushTxn(pb::PushTxnRequest {
            pushee: None,
            push_to: ts_to_pb(ts(1, 0)),
            push_type: pb::PushType::Abort as i32,
        })),
        "missing PushTxn.pushee",
    );
    reject(
        with_req(PbReq::PushTxn(pb::PushTxnRequest {
            pushee: Some(meta(1).into()),
            push_to: None,
            push_type: pb::PushType::Abort as i32,
        })),
        "missing PushTxn.push_to",
    );
    reject(
        with_req(PbReq::ResolveIntent(pb::ResolveIntentRequest {
            key: b"k".to_vec(),
            txn: Some(pb::TxnMeta {
                write_timestamp: None,
                ..meta(1).into()
            }),
            status: pb::TransactionStatus::Committed as i32,
            ignored_seqs: Vec::new(),
        })),
        "missing ResolveIntent.txn.write_timestamp",
    );
    reject(
        with_req(PbReq::HeartbeatTxn(pb::HeartbeatTxnRequest { now: None })),
        "missing HeartbeatTxn.now",
    );
}

#[test]
fn rejects_unknown_and_unspecified_enums() {
    let push = |push_type| {
        with_req(PbReq::PushTxn(pb::PushTxnRequest {
            pushee: Some(meta(1).into()),
            push_to: ts_to_pb(ts(1, 0)),
            push_type,
        }))
    };
    reject(push(0), "unspecified push type");
    reject(push(99), "unknown push type 99");

    let resolve = |status| {
        with_req(PbReq::ResolveIntent(pb::ResolveIntentRequest {
            key: b"k".to_vec(),
            txn: Some(meta(1).into()),
            status,
            ignored_seqs: Vec::new(),
        }))
    };
    reject(resolve(0), "unspecified transaction status");
    reject(resolve(-1), "unknown transaction status -1");

    let mut p = one(Request::Get { key: b"k".to_vec() });
    if let Some(h) = p.header.as_mut() {
        h.read_consistency = 7;
    }
    reject(p, "unknown read consistency 7");
}

#[test]
fn rejects_other_malformations() {
    let mut p = one(Request::Get { key: b"k".to_vec() });
    if let Some(h) = p.header.as_mut() {
        h.timestamp = Some(pb::Timestamp {
            wall: -1,
            logical: 0,
        });
    }
    reject(p, "negative timestamp");

    let mut p = one(Request::Get { key: b"k".to_vec() });
    if let Some(h) = p.header.as_mut() {
        h.max_span_request_keys = -1;
    }
    reject(p, "max_span_request_keys is negative");

    reject(
        one(Request::EndTxn {
            commit: true,
            lock_spans: Vec::new(),
            deadline: Timestamp::ZERO,
            trigger: None,
        }),
        "EndTxn without a transaction",
    );
    reject(
        one(Request::ResolveIntent {
            key: b"k".to_vec(),
            txn: meta(1),
            status: TransactionStatus::Committed,
            ignored_seqs: vec![(5, 4)],
        }),
        "sequence range start 5 > end 4",
    );
}

#[test]
fn rejection_names_the_request_index() {
    let p = pb::BatchRequest::from(BatchRequest {
        header: Header::default(),
        requests: vec![
            Request::Get { key: b"a".to_vec() },
            Request::Get { key: b"b".to_vec() },
            Request::Get { key: Vec::new() },
        ],
    });
    let err = BatchRequest::try_from(p).expect_err("invalid");
    assert_eq!(err.index, Some(2));
    assert_eq!(
        err.detail,
        ErrorDetail::InvalidArgument("request 2: Get.key: empty key".into())
    );
}

#[test]
fn malformed_responses_are_rejected() {
    let mut p = batch_result_to_pb(Ok(BatchResponse {
        now: ts(1, 0),
        txn: None,
        responses: vec![Response::Put],
    }));
    p.responses[0].response = None;
    assert!(batch_result_from_pb(p).is_err());

    let p = pb::BatchResponse {
        error: Some(pb::Error {
            detail: None,
            index: None,
            txn: None,
        }),
        ..Default::default()
    };
    assert!(batch_result_from_pb(p).is_err());

    let p = pb::BatchResponse {
        error: Some(pb::Error {
            detail: Some(pb::error::Detail::TransactionRetry(
                pb::TransactionRetryError { reason: 42 },
            )),
            index: None,
            txn: None,
        }),
        ..Default::default()
    };
    assert!(batch_result_from_pb(p).is_err());

    let mut p = batch_result_to_pb(Ok(BatchResponse {
        now: ts(1, 0),
        txn: None,
        responses: vec![Response::Put],
    }));
    p.now = None;
    assert!(batch_result_from_pb(p).is_err());
}
