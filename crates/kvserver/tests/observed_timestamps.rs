//! Observed timestamps across a lease transfer, with skewed clocks: a
//! reader's clock reading of a node bounds its uncertainty only for values
//! written under leases that node held at the time; a lease the node got
//! later raises the bound to the lease's start.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tardigrade_encoding::keys;
use tardigrade_hlc::{DEFAULT_MAX_OFFSET, Hlc, SkewedClock, SystemClock, Timestamp};
use tardigrade_kvpb::{
    BatchRequest, BatchResponse, ErrorDetail, Header, KvError, ObservedTimestamp, RangeDescriptor,
    Request, Response, Transaction, TxnId, TxnMeta,
};
use tardigrade_kvserver::{LocalRaftTransport, RaftHandler, Replica, Store, StoreConfig};
use tardigrade_storage::{Engine, StoreSpec};

const RANGE: u64 = 1;
/// How far node 1's clock runs ahead of the others (within the 500 ms
/// maximum offset).
const AHEAD: Duration = Duration::from_millis(300);

fn start() -> Vec<Arc<Store>> {
    let desc =
        RangeDescriptor::with_voters(RANGE, keys::MIN_KEY.to_vec(), keys::MAX_KEY.to_vec(), 1..=3);
    let transport = LocalRaftTransport::new(None);
    let mut stores = Vec::new();
    for node in 1..=3u64 {
        let engine = Engine::open(&StoreSpec::Memory).expect("engine");
        Store::bootstrap(&engine, std::slice::from_ref(&desc)).expect("bootstrap");
        let ahead = if node == 1 {
            AHEAD.as_nanos() as i64
        } else {
            0
        };
        let physical = Arc::new(SkewedClock {
            inner: SystemClock,
            offset_nanos: AtomicI64::new(ahead),
        });
        let clock = Arc::new(Hlc::new(physical, DEFAULT_MAX_OFFSET));
        let cfg = StoreConfig {
            node_id: node,
            store_id: node,
            raft_tick_interval: Duration::from_millis(20),
            raft_election_ticks: 10,
            raft_heartbeat_ticks: 2,
            lease_duration: Duration::from_millis(1500),
            proposal_timeout: Duration::from_secs(5),
            transport: Some(transport.clone()),
            bootstrap_single_node: false,
            ..StoreConfig::default()
        };
        let store = Store::open(engine, clock, cfg).expect("open store");
        let weak: Weak<dyn RaftHandler> = Arc::downgrade(&(store.clone() as Arc<dyn RaftHandler>));
        transport.register(node, weak);
        stores.push(store);
    }
    stores
}

/// Sends `ba` to whichever store serves it.
async fn send(stores: &[Arc<Store>], ba: BatchRequest) -> Result<BatchResponse, KvError> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut i = 0;
    loop {
        match stores[i % stores.len()].execute(ba.clone()).await {
            Err(e)
                if matches!(
                    e.detail,
                    ErrorDetail::NotLeaseholder { .. } | ErrorDetail::Unavailable(_)
                ) && Instant::now() < deadline =>
            {
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}

async fn holder(stores: &[Arc<Store>]) -> Arc<Replica> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = BatchRequest {
            header: Header::default(),
            requests: vec![Request::Get {
                key: b"probe".to_vec(),
            }],
        };
        send(stores, probe).await.expect("probe");
        for s in stores {
            if let Some(r) = s.replica(RANGE) {
                let l = r.lease();
                if l.replica.node_id == s.node_id() && s.clock().now() < l.expiration {
                    return r;
                }
            }
        }
        assert!(Instant::now() < deadline, "no leaseholder");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Moves the lease to n1 and writes `k` there; returns n1's clock after the
/// write (at or above the value's timestamp).
async fn write_on_n1(stores: &[Arc<Store>]) -> Timestamp {
    let lh = holder(stores).await;
    if lh.lease().replica.node_id != 1 {
        lh.transfer_lease(1).await.expect("transfer to n1");
    }
    assert_eq!(holder(stores).await.lease().replica.node_id, 1);
    let put = BatchRequest {
        header: Header::default(),
        requests: vec![Request::Put {
            key: b"k".to_vec(),
            value: b"v1".to_vec(),
        }],
    };
    stores[0].execute(put).await.expect("put on n1");
    stores[0].clock().last()
}

/// A reading transaction (id byte `id`) starting at `start`, with the
/// default uncertainty window and no observed timestamps.
fn reader_at(id: u8, start: Timestamp) -> Transaction {
    Transaction {
        meta: TxnMeta {
            id: TxnId([id; 16]),
            write_timestamp: start,
            min_timestamp: start,
            ..Default::default()
        },
        read_timestamp: start,
        global_uncertainty_limit: start.add_duration(DEFAULT_MAX_OFFSET),
        ..Default::default()
    }
}

/// CockroachDB's hazard, as its `uncertainty` package tells it: a value
/// written on n1 (clock ahead) before a reader starts; the reader observes
/// n2's clock (behind), then the lease moves to n2. Read on n2, the value
/// lies above the observation but below the new lease's start: it must be
/// uncertain, or the reader misses a write that finished before it began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_acquired_after_the_observation_keeps_older_values_uncertain() {
    let stores = start();
    // The write, served by n1: its timestamp comes from n1's clock.
    let written = write_on_n1(&stores).await;
    let n1 = stores[0].replica(RANGE).expect("r1 on n1");

    // The reader starts afterwards on n2's clock, and observes n2.
    let n2_clock = stores[1].clock();
    let start = n2_clock.now();
    let observed = n2_clock.now();
    assert!(
        observed < written,
        "n2's clock ({observed}) is behind the write ({written})"
    );
    let reader = Transaction {
        observed_timestamps: vec![ObservedTimestamp {
            node_id: 2,
            timestamp: observed,
        }],
        ..reader_at(3, start)
    };

    n1.transfer_lease(2).await.expect("transfer to n2");
    // The transfer returns once n1 applied it; n2 applies it shortly after.
    let n2 = stores[1].replica(RANGE).expect("r1 on n2");
    let deadline = Instant::now() + Duration::from_secs(10);
    while n2.lease().replica.node_id != 2 {
        assert!(Instant::now() < deadline, "n2 never applied its lease");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let lease = n2.lease();
    assert!(lease.start >= written, "the lease starts above n1's writes");

    let get = BatchRequest {
        header: Header {
            txn: Some(reader),
            ..Header::default()
        },
        requests: vec![Request::Get { key: b"k".to_vec() }],
    };
    match stores[1].execute(get).await {
        Err(e) => match e.detail {
            ErrorDetail::ReadWithinUncertainty { existing, .. } => {
                assert!(existing > start && existing <= written)
            }
            other => panic!("unexpected error {other:?}"),
        },
        Ok(resp) => match resp.responses.as_slice() {
            [Response::Get { value }] => panic!(
                "stale read: the value written on n1 before the reader started was skipped ({value:?})"
            ),
            other => panic!("unexpected {other:?}"),
        },
    }
}

/// The store's own reading: a reader whose clock is behind reads, on the
/// leaseholder whose clock is ahead, a value that leaseholder wrote before
/// the reader started, on its first visit there. The store records its
/// clock for the reader before evaluating, which is at or above everything
/// it served, so the value is uncertain (the coordinator would refresh
/// above it and see it). A reading recorded too low would let the value
/// slip above the limit: a stale read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_visit_observation_covers_what_the_node_served_before() {
    let stores = start();
    let written = write_on_n1(&stores).await;
    // The reader's coordinator runs on n2's clock (300 ms behind n1's).
    let start = stores[1].clock().now();
    assert!(start < written);
    let reader = reader_at(4, start);
    let get = BatchRequest {
        header: Header {
            txn: Some(reader),
            ..Header::default()
        },
        requests: vec![Request::Get { key: b"k".to_vec() }],
    };
    match stores[0].execute(get).await {
        Err(e) => match (&e.detail, &e.txn) {
            (ErrorDetail::ReadWithinUncertainty { existing, .. }, Some(t)) => {
                assert!(*existing > start && *existing <= written);
                // The reading goes back to the coordinator with the error.
                assert!(t.observed_timestamp(1).is_some_and(|o| o >= written));
            }
            other => panic!("unexpected error {other:?}"),
        },
        Ok(resp) => panic!(
            "stale read: a write n1 served before the reader began was skipped ({:?})",
            resp.responses
        ),
    }
}
