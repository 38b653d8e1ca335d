//! `DistSender` against a fake cluster of nodes that hold ranges: routing by
//! meta records, leaseholder hints, stale caches after a split, unreachable
//! nodes, a gateway cut off from the majority, and scans across range
//! boundaries in both directions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use tardigrade_encoding::keys;
use tardigrade_kv::{DistSender, FirstRange, NodeDialer, NodeHealth};
use tardigrade_kvpb::{
    BatchRequest, BatchResponse, ErrorDetail, Header, KeyValue, KvError, NodeId, RangeDescriptor,
    ReplicaDescriptor, Request, Response, SendFuture, Sender, Span, Value,
};

#[derive(Default)]
struct Cluster {
    /// One shared key space (the fake replicates perfectly).
    data: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    /// range id → (descriptor, leaseholder node).
    ranges: Mutex<BTreeMap<u64, (RangeDescriptor, NodeId)>>,
    down: Mutex<Vec<NodeId>>,
    sends: AtomicUsize,
    /// Sends to nodes that were down.
    sends_to_down: AtomicUsize,
    /// Nodes that die right after applying the next batch sent to them: the
    /// sender gets no answer (as `RpcSender` reports it: ambiguous for a
    /// batch with writes, unavailable for reads), the node goes down and its
    /// leases move to the next replica.
    dying: Mutex<Vec<NodeId>>,
    /// Nodes that never answer (a replica waiting for a lease or a
    /// proposal that cannot commit: it is cut off from the others).
    hanging: Mutex<Vec<NodeId>>,
}

fn desc(id: u64, start: &[u8], end: &[u8], nodes: &[NodeId]) -> RangeDescriptor {
    RangeDescriptor {
        range_id: id,
        start_key: start.to_vec(),
        end_key: end.to_vec(),
        replicas: nodes
            .iter()
            .map(|&n| ReplicaDescriptor {
                node_id: n,
                store_id: n,
                replica_id: n,
                ..Default::default()
            })
            .collect(),
        next_replica_id: 4,
        generation: 0,
    }
}

impl Cluster {
    fn set_ranges(&self, ranges: Vec<(RangeDescriptor, NodeId)>) {
        let mut data = self.data.lock();
        data.retain(|k, _| {
            !k.starts_with(keys::META1_PREFIX) && !k.starts_with(keys::META2_PREFIX)
        });
        let mut map = self.ranges.lock();
        map.clear();
        for (d, lh) in ranges {
            // The first range covers all of meta2: one meta1 record at the end.
            if d.start_key.is_empty() {
                data.insert(keys::meta1_key(keys::MAX_KEY), d.encode());
            }
            data.insert(keys::range_meta_key(&d.end_key), d.encode());
            map.insert(d.range_id, (d, lh));
        }
    }

    fn serve(&self, node: NodeId, ba: BatchRequest) -> Result<BatchResponse, KvError> {
        let writes = ba
            .requests
            .iter()
            .any(|r| r.is_write() || matches!(r, Request::EndTxn { .. }));
        let result = self.serve_inner(node, ba);
        let mut dying = self.dying.lock();
        if let Some(pos) = dying.iter().position(|n| *n == node) {
            dying.remove(pos);
            self.down.lock().push(node);
            for (d, lh) in self.ranges.lock().values_mut() {
                if *lh == node
                    && let Some(r) = d.replicas.iter().find(|r| r.node_id != node)
                {
                    *lh = r.node_id;
                }
            }
            let msg = format!("n{node} died with the batch in flight");
            return Err(KvError::new(if writes {
                ErrorDetail::AmbiguousResult(msg)
            } else {
                ErrorDetail::Unavailable(msg)
            }));
        }
        result
    }

    fn serve_inner(&self, node: NodeId, ba: BatchRequest) -> Result<BatchResponse, KvError> {
        self.sends.fetch_add(1, Ordering::SeqCst);
        if self.down.lock().contains(&node) {
            self.sends_to_down.fetch_add(1, Ordering::SeqCst);
            return Err(KvError::new(ErrorDetail::Unavailable("node down".into())));
        }
        let ranges = self.ranges.lock();
        let Some((d, lh)) = ranges.get(&ba.header.range_id) else {
            return Err(KvError::new(ErrorDetail::RangeKeyMismatch {
                span: Span::default(),
                range_id: ba.header.range_id,
            }));
        };
        if d.replica_on_store(node).is_none() {
            // As a store answers for a range it does not hold (any more).
            return Err(KvError::new(ErrorDetail::RangeNotFound {
                range_id: d.range_id,
                node_id: node,
            }));
        }
        if *lh != node {
            return Err(KvError::new(ErrorDetail::NotLeaseholder {
                range_id: d.range_id,
                leaseholder_node: *lh,
            }));
        }
        let mut data = self.data.lock();
        let mut left = ba.header.max_span_request_keys;
        let mut out = Vec::new();
        for req in &ba.requests {
            let span = req.span(&ba.header);
            if !d.contains_span(&span.key, &span.end_key) {
                return Err(KvError::new(ErrorDetail::RangeKeyMismatch {
                    span,
                    range_id: d.range_id,
                }));
            }
            let kv = |(k, v): (&Vec<u8>, &Vec<u8>)| KeyValue {
                key: k.clone(),
                value: Value {
                    bytes: v.clone(),
                    timestamp: Default::default(),
                },
            };
            out.push(match req {
                Request::Get { key } => Response::Get {
                    value: data.get(key).map(|v| Value {
                        bytes: v.clone(),
                        timestamp: Default::default(),
                    }),
                },
                Request::Put { key, value } => {
                    data.insert(key.clone(), value.clone());
                    Response::Put
                }
                Request::Scan { span } | Request::ReverseScan { span } => {
                    let reverse = matches!(req, Request::ReverseScan { .. });
                    let iter = data.range(span.key.clone()..span.end_key.clone());
                    let all: Vec<KeyValue> = if reverse {
                        iter.rev().map(kv).collect()
                    } else {
                        iter.map(kv).collect()
                    };
                    let take = if ba.header.max_span_request_keys > 0 {
                        (left.max(0) as usize).min(all.len())
                    } else {
                        all.len()
                    };
                    left -= take as i64;
                    let resume_span = (take < all.len()).then(|| {
                        let next = &all[take].key;
                        if reverse {
                            Span::new(span.key.clone(), keys::key_next(next))
                        } else {
                            Span::new(next.clone(), span.end_key.clone())
                        }
                    });
                    let rows = all.into_iter().take(take).collect();
                    if reverse {
                        Response::ReverseScan { rows, resume_span }
                    } else {
                        Response::Scan { rows, resume_span }
                    }
                }
                Request::EndTxn { .. } => Response::EndTxn,
                other => return Err(KvError::invalid(format!("fake: {}", other.method()))),
            });
        }
        Ok(BatchResponse {
            responses: out,
            ..Default::default()
        })
    }
}

struct NodeSender(Arc<Cluster>, NodeId);

impl Sender for NodeSender {
    fn send(&self, ba: BatchRequest) -> SendFuture<'_> {
        if self.0.hanging.lock().contains(&self.1) {
            return Box::pin(std::future::pending());
        }
        let r = self.0.serve(self.1, ba);
        Box::pin(async move { r })
    }
}

struct Dialer(Arc<Cluster>);

impl NodeDialer for Dialer {
    fn dial(&self, node: NodeId) -> Result<Arc<dyn Sender>, KvError> {
        Ok(Arc::new(NodeSender(self.0.clone(), node)))
    }
}

struct First(Arc<Cluster>);

impl FirstRange for First {
    fn first_range(&self) -> Option<RangeDescriptor> {
        self.0.ranges.lock().get(&1).map(|(d, _)| d.clone())
    }
}

/// The heartbeats' view: nodes that are down do not answer them.
struct Health(Arc<Cluster>);

impl NodeHealth for Health {
    fn is_unreachable(&self, node: NodeId) -> bool {
        self.0.down.lock().contains(&node)
    }
}

fn setup() -> (Arc<Cluster>, DistSender) {
    let c = Arc::new(Cluster::default());
    c.set_ranges(vec![
        (desc(1, b"", b"c", &[1, 2, 3]), 1),
        (desc(2, b"c", b"m", &[1, 2, 3]), 2),
        (desc(3, b"m", keys::MAX_KEY, &[1, 2, 3]), 3),
    ]);
    let ds = DistSender::new(Arc::new(Dialer(c.clone())), Arc::new(First(c.clone())));
    (c, ds)
}

fn batch(requests: Vec<Request>, limit: i64) -> BatchRequest {
    BatchRequest {
        header: Header {
            max_span_request_keys: limit,
            ..Header::default()
        },
        requests,
    }
}

async fn put_all(ds: &DistSender, keys: &[&str]) {
    let reqs = keys
        .iter()
        .map(|k| Request::Put {
            key: k.as_bytes().to_vec(),
            value: k.as_bytes().to_vec(),
        })
        .collect();
    ds.send(batch(reqs, 0)).await.expect("puts");
}

fn row_keys(resp: &Response) -> (Vec<String>, Option<Span>) {
    match resp {
        Response::Scan { rows, resume_span } | Response::ReverseScan { rows, resume_span } => (
            rows.iter()
                .map(|r| String::from_utf8_lossy(&r.key).into_owned())
                .collect(),
            resume_span.clone(),
        ),
        other => panic!("not a scan: {other:?}"),
    }
}

#[tokio::test]
async fn scans_cross_ranges_in_both_directions_with_limits() {
    let (_c, ds) = setup();
    put_all(&ds, &["a", "b", "d", "k", "n", "z"]).await;
    let resp = ds
        .send(batch(
            vec![Request::Scan {
                span: Span::new(b"a".to_vec(), b"zz".to_vec()),
            }],
            0,
        ))
        .await
        .expect("scan");
    assert_eq!(
        row_keys(&resp.responses[0]).0,
        ["a", "b", "d", "k", "n", "z"]
    );

    let resp = ds
        .send(batch(
            vec![Request::ReverseScan {
                span: Span::new(b"a".to_vec(), b"zz".to_vec()),
            }],
            0,
        ))
        .await
        .expect("reverse scan");
    assert_eq!(
        row_keys(&resp.responses[0]).0,
        ["z", "n", "k", "d", "b", "a"]
    );

    let resp = ds
        .send(batch(
            vec![Request::Scan {
                span: Span::new(b"a".to_vec(), b"zz".to_vec()),
            }],
            3,
        ))
        .await
        .expect("limited scan");
    let (rows, resume) = row_keys(&resp.responses[0]);
    assert_eq!(rows, ["a", "b", "d"]);
    let resume = resume.expect("resume span");
    assert_eq!(resume.end_key, b"zz".to_vec());
    assert!(resume.key.as_slice() > b"d".as_slice() && resume.key.as_slice() <= b"k".as_slice());

    let resp = ds
        .send(batch(
            vec![Request::ReverseScan {
                span: Span::new(b"a".to_vec(), b"zz".to_vec()),
            }],
            2,
        ))
        .await
        .expect("limited reverse scan");
    let (rows, resume) = row_keys(&resp.responses[0]);
    assert_eq!(rows, ["z", "n"]);
    let resume = resume.expect("resume span");
    assert_eq!(resume.key, b"a".to_vec());
    assert!(resume.end_key.as_slice() <= b"n".as_slice());
}

#[tokio::test]
async fn follows_leaseholder_hints_and_caches_them() {
    let (c, ds) = setup();
    put_all(&ds, &["e"]).await;
    c.sends.store(0, Ordering::SeqCst);
    let get = || batch(vec![Request::Get { key: b"e".to_vec() }], 0);
    ds.send(get()).await.expect("get");
    let first = c.sends.swap(0, Ordering::SeqCst);
    ds.send(get()).await.expect("get");
    assert_eq!(
        c.sends.load(Ordering::SeqCst),
        1,
        "the leaseholder is cached (first took {first})"
    );
}

#[tokio::test]
async fn a_stale_cache_is_corrected_after_a_split() {
    let (c, ds) = setup();
    put_all(&ds, &["d", "k"]).await;
    // Range 2 splits at "h" into 2 and 4; the cache still has the old 2.
    c.set_ranges(vec![
        (desc(1, b"", b"c", &[1, 2, 3]), 1),
        (desc(2, b"c", b"h", &[1, 2, 3]), 2),
        (desc(4, b"h", b"m", &[1, 2, 3]), 3),
        (desc(3, b"m", keys::MAX_KEY, &[1, 2, 3]), 3),
    ]);
    let resp = ds
        .send(batch(
            vec![Request::Scan {
                span: Span::new(b"c".to_vec(), b"m".to_vec()),
            }],
            0,
        ))
        .await
        .expect("scan after split");
    assert_eq!(row_keys(&resp.responses[0]).0, ["d", "k"]);
    assert_eq!(
        ds.range_cache().lookup(b"k").map(|r| r.desc.range_id),
        Some(4)
    );
}

#[tokio::test]
async fn unreachable_replicas_are_skipped() {
    let (c, ds) = setup();
    put_all(&ds, &["q"]).await;
    // The leaseholder of range 3 moves to node 1 and node 3 goes down.
    c.set_ranges(vec![
        (desc(1, b"", b"c", &[1, 2, 3]), 1),
        (desc(2, b"c", b"m", &[1, 2, 3]), 2),
        (desc(3, b"m", keys::MAX_KEY, &[1, 2, 3]), 1),
    ]);
    c.down.lock().push(3);
    assert!(found(&ds, "q").await, "get with a node down");
}

/// Whether a `Get` of `key` through `ds` finds a value.
async fn found(ds: &DistSender, key: &str) -> bool {
    let resp = ds
        .send(batch(
            vec![Request::Get {
                key: key.as_bytes().to_vec(),
            }],
            0,
        ))
        .await
        .expect("get");
    matches!(&resp.responses[0], Response::Get { value: Some(_) })
}

/// The allocator moved range 3 off node 1 (which had its lease) onto node 4
/// and the lease to node 2; the meta record is rewritten only after the
/// change, so a fresh lookup still lists node 1 first. Node 1 answers
/// `RangeNotFound`: the other replicas must be tried, not the meta record
/// again and again until the deadline; and a hint naming node 4 is
/// followed although the record does not list it.
#[tokio::test]
async fn a_replica_removed_before_its_meta_record_changed_is_skipped() {
    let (c, ds) = setup();
    c.set_ranges(vec![
        (desc(1, b"", b"c", &[1, 2, 3]), 1),
        (desc(2, b"c", b"m", &[1, 2, 3]), 2),
        (desc(3, b"m", keys::MAX_KEY, &[1, 2, 3]), 1),
    ]);
    put_all(&ds, &["q"]).await;
    c.ranges
        .lock()
        .insert(3, (desc(3, b"m", keys::MAX_KEY, &[4, 2, 3]), 2));
    let ds = ds.with_deadline(std::time::Duration::from_secs(2));
    let started = std::time::Instant::now();
    assert!(found(&ds, "q").await, "served by the new leaseholder");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // A fresh lookup (the cached descriptor evicted) lists node 1 first too.
    ds.range_cache().evict(b"m");
    assert!(found(&ds, "q").await, "served after a fresh lookup");
    // The lease moves to node 4, which the stale record does not list: the
    // others' hints name it, and it is tried.
    c.ranges
        .lock()
        .insert(3, (desc(3, b"m", keys::MAX_KEY, &[4, 2, 3]), 4));
    ds.range_cache().evict(b"m");
    assert!(
        found(&ds, "q").await,
        "served by a leaseholder the record lacks"
    );
}

#[tokio::test]
async fn gives_up_with_unavailable_after_the_deadline() {
    let (c, ds) = setup();
    let ds = ds.with_deadline(std::time::Duration::from_millis(200));
    c.down.lock().extend([1, 2, 3]);
    let err = ds
        .send(batch(vec![Request::Get { key: b"q".to_vec() }], 0))
        .await
        .expect_err("all down");
    assert!(matches!(err.detail, ErrorDetail::Unavailable(_)), "{err}");
}

#[tokio::test]
async fn a_cached_descriptor_listing_only_dead_replicas_is_looked_up_again() {
    // A node that joined learned the first range when it had one replica.
    let c = Arc::new(Cluster::default());
    c.set_ranges(vec![(desc(1, b"", keys::MAX_KEY, &[1]), 1)]);
    let ds = DistSender::new(Arc::new(Dialer(c.clone())), Arc::new(First(c.clone())));
    put_all(&ds, &["e"]).await;
    // Up-replicated since; then node 1 dies and node 2 takes the lease.
    c.set_ranges(vec![(desc(1, b"", keys::MAX_KEY, &[1, 2, 3]), 2)]);
    c.down.lock().push(1);
    let started = std::time::Instant::now();
    ds.send(batch(vec![Request::Get { key: b"e".to_vec() }], 0))
        .await
        .expect("served by the new leaseholder");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[tokio::test]
async fn hints_naming_a_dead_node_are_not_chased() {
    let (c, ds) = setup();
    put_all(&ds, &["q"]).await;
    // Node 3 (range 3's holder) dies; until its lease runs out the
    // survivors still name it.
    c.down.lock().push(3);
    c.sends_to_down.store(0, Ordering::SeqCst);
    let c2 = c.clone();
    let moved = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        c2.set_ranges(vec![
            (desc(1, b"", b"c", &[1, 2, 3]), 1),
            (desc(2, b"c", b"m", &[1, 2, 3]), 2),
            (desc(3, b"m", keys::MAX_KEY, &[1, 2, 3]), 1),
        ]);
    });
    let started = std::time::Instant::now();
    ds.send(batch(vec![Request::Get { key: b"q".to_vec() }], 0))
        .await
        .expect("served once the lease moved");
    moved.await.expect("mover");
    // Served within a short pause of the move (no long backoff) ...
    assert!(started.elapsed() < std::time::Duration::from_millis(800));
    // ... and the dead node was not tried after every hint (one try per
    // few rounds).
    let tries = c.sends_to_down.load(Ordering::SeqCst);
    assert!(tries <= 3, "{tries} sends to the dead node");
}

fn txn_batch(requests: Vec<Request>) -> BatchRequest {
    let mut txn = tardigrade_kvpb::Transaction::default();
    // Anchored in range 3 (`m`–`/Max`), led by node 3.
    txn.meta.key = b"r".to_vec();
    BatchRequest {
        header: Header {
            txn: Some(txn),
            ..Header::default()
        },
        requests,
    }
}

/// A leaseholder that dies with a batch in flight: a write or commit whose
/// outcome is unknown comes back as `AmbiguousResult` without being sent
/// again (it may have been applied); a transaction's write without its
/// commit (replayed idempotently by sequence number) and a read are sent
/// to the next replica.
#[tokio::test]
async fn writes_lost_in_flight_are_ambiguous_and_reads_fail_over() {
    let put = |k: &str| Request::Put {
        key: k.as_bytes().to_vec(),
        value: b"v".to_vec(),
    };

    // A non-transactional write: applied, then the node died.
    let (c, ds) = setup();
    put_all(&ds, &["q"]).await;
    c.dying.lock().push(3);
    let sends = c.sends.load(Ordering::SeqCst);
    let err = ds
        .send(batch(vec![put("r")], 0))
        .await
        .expect_err("ambiguous");
    assert!(
        matches!(err.detail, ErrorDetail::AmbiguousResult(_)),
        "{err}"
    );
    assert!(err.to_string().contains("result is ambiguous"), "{err}");
    assert_eq!(c.sends.load(Ordering::SeqCst) - sends, 1, "not sent again");
    assert!(
        c.data.lock().contains_key(b"r".as_slice()),
        "it was applied"
    );

    // A commit: the same.
    let (c, ds) = setup();
    put_all(&ds, &["q"]).await;
    c.dying.lock().push(3);
    let commit = Request::EndTxn {
        commit: true,
        lock_spans: vec![],
        deadline: Default::default(),
        trigger: None,
    };
    let err = ds
        .send(txn_batch(vec![commit]))
        .await
        .expect_err("ambiguous commit");
    assert!(
        matches!(err.detail, ErrorDetail::AmbiguousResult(_)),
        "{err}"
    );

    // A transaction's write goes to the new leaseholder.
    let (c, ds) = setup();
    put_all(&ds, &["q"]).await;
    c.dying.lock().push(3);
    ds.send(txn_batch(vec![put("s")]))
        .await
        .expect("replayed on another replica");

    // A read fails over.
    let (c, ds) = setup();
    put_all(&ds, &["q"]).await;
    c.dying.lock().push(3);
    let resp = ds
        .send(batch(vec![Request::Get { key: b"q".to_vec() }], 0))
        .await
        .expect("read retried elsewhere");
    assert!(matches!(
        &resp.responses[0],
        Response::Get { value: Some(_) }
    ));
    assert!(c.down.lock().contains(&3));
}

#[tokio::test]
async fn a_gateway_cut_off_from_the_majority_fails_within_seconds_not_at_the_deadline() {
    // Node 1 holds range 1's lease and is partitioned from nodes 2 and 3:
    // its heartbeats say they do not answer, and its own replica waits
    // for a lease extension that cannot commit (it never answers here).
    let (c, ds) = setup();
    let ds = ds.with_health(Arc::new(Health(c.clone())));
    put_all(&ds, &["a"]).await;
    c.down.lock().extend([2, 3]);
    c.hanging.lock().push(1);
    let read = batch(vec![Request::Get { key: b"a".to_vec() }], 0);
    let write = batch(
        vec![Request::Put {
            key: b"a".to_vec(),
            value: b"v".to_vec(),
        }],
        0,
    );
    for (ba, writes) in [(read, false), (write, true)] {
        let started = std::time::Instant::now();
        let err = tokio::time::timeout(std::time::Duration::from_secs(20), ds.send(ba))
            .await
            .expect("fails long before the 30 s deadline")
            .expect_err("range 1 has no quorum");
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(6), "took {took:?}");
        assert!(err.to_string().contains("has no quorum"), "{err}");
        assert!(err.to_string().contains("n2, n3"), "{err}");
        if writes {
            // It may still commit if the partition heals.
            assert!(
                matches!(err.detail, ErrorDetail::AmbiguousResult(_)),
                "{err}"
            );
        } else {
            assert!(matches!(err.detail, ErrorDetail::Unavailable(_)), "{err}");
        }
    }
}

#[tokio::test]
async fn a_range_lookup_in_a_meta_range_without_quorum_is_not_retried_until_the_deadline() {
    // A gateway that knows nothing yet but the first range, which holds
    // the meta records; nodes 2 and 3 (one of them its leaseholder) are cut
    // off, so no lookup can succeed until they are back.
    let (c, ds) = setup();
    c.set_ranges(vec![
        (desc(1, b"", b"c", &[1, 2, 3]), 2),
        (desc(2, b"c", keys::MAX_KEY, &[1, 2, 3]), 1),
    ]);
    let ds = ds.with_health(Arc::new(Health(c.clone())));
    c.down.lock().extend([2, 3]);
    let started = std::time::Instant::now();
    let err = ds
        .send(batch(vec![Request::Get { key: b"q".to_vec() }], 0))
        .await
        .expect_err("the meta records cannot be read");
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(6), "took {took:?}");
    assert!(err.to_string().contains("range r1"), "{err}");
    assert!(err.to_string().contains("has no quorum"), "{err}");
}
