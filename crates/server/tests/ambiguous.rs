//! Ambiguous results end to end: three in-process stores replicate one
//! range; a client's `DistSender` reaches them through the transport seam
//! with a `FaultInjector` that delivers batches to the leaseholder but loses
//! its replies (as when it dies after serving). A write then fails with
//! `AmbiguousResult` — and was applied — instead of being retried or
//! reported as a transport error; a read fails over or ends as a routing
//! failure, never as ambiguity.

use std::sync::Arc;
use std::time::Duration;

use tardigrade_encoding::keys;
use tardigrade_hlc::{DEFAULT_MAX_OFFSET, Hlc, SystemClock};
use tardigrade_kv::{Db, DistSender, FirstRange, NodeDialer};
use tardigrade_kvpb::{ErrorDetail, KvError, NodeId, RangeDescriptor, Sender};
use tardigrade_kvserver::{LocalRaftTransport, RaftHandler, Store, StoreConfig};
use tardigrade_rpc::{FaultInjector, Transport};
use tardigrade_storage::{Engine, MvccStats, StoreSpec, mvcc};

const NODES: u64 = 3;

fn descriptor() -> RangeDescriptor {
    RangeDescriptor::with_voters(1, keys::MIN_KEY.to_vec(), keys::MAX_KEY.to_vec(), 1..=NODES)
}

fn start_stores(clock: &Arc<Hlc>) -> Vec<Arc<Store>> {
    let transport = LocalRaftTransport::new(None);
    let desc = descriptor();
    let mut stores = Vec::new();
    for i in 1..=NODES {
        let engine = Engine::open(&StoreSpec::Memory).expect("engine");
        let mut b = engine.batch();
        let mut stats = MvccStats::default();
        for k in [
            keys::meta1_key(keys::MAX_KEY),
            keys::meta2_key(keys::MAX_KEY),
        ] {
            mvcc::mvcc_put(
                &mut b,
                &mut stats,
                &k,
                tardigrade_hlc::Timestamp::new(1, 0),
                Some(&desc.encode()),
                None,
            )
            .expect("meta");
        }
        engine.commit(b.writes(), true).expect("commit");
        Store::bootstrap(&engine, std::slice::from_ref(&desc)).expect("bootstrap");
        let cfg = StoreConfig {
            node_id: i,
            store_id: i,
            raft_tick_interval: Duration::from_millis(20),
            raft_election_ticks: 10,
            raft_heartbeat_ticks: 2,
            transport: Some(transport.clone()),
            bootstrap_single_node: false,
            ..StoreConfig::default()
        };
        let store = Store::open(engine, clock.clone(), cfg).expect("open");
        let handler: Arc<dyn RaftHandler> = store.clone();
        transport.register(i, Arc::downgrade(&handler));
        stores.push(store);
    }
    stores
}

/// The stores, dialed in process.
struct InProcess(Vec<Arc<Store>>);

impl Transport for InProcess {
    fn dial(&self, _from: NodeId, to: NodeId, _addr: &str) -> Result<Arc<dyn Sender>, KvError> {
        let store = self
            .0
            .get((to as usize).wrapping_sub(1))
            .ok_or_else(|| KvError::new(ErrorDetail::Unavailable("no such node".into())))?;
        Ok(store.clone())
    }
}

/// Dials through the faulty transport, as seen from `gateway`.
struct Dialer {
    gateway: NodeId,
    transport: Box<dyn Transport>,
}

impl NodeDialer for Dialer {
    fn dial(&self, node: NodeId) -> Result<Arc<dyn Sender>, KvError> {
        self.transport.dial(self.gateway, node, "")
    }
}

struct Static;

impl FirstRange for Static {
    fn first_range(&self) -> Option<RangeDescriptor> {
        Some(descriptor())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_reply_is_lost_is_ambiguous_and_was_applied() {
    let clock = Arc::new(Hlc::new(Arc::new(SystemClock), DEFAULT_MAX_OFFSET));
    let stores = start_stores(&clock);
    let faults = FaultInjector::new(3);
    // The client's gateway is a fourth node (no store), so every replica
    // is reached through the faulty transport.
    let gateway = NODES + 1;
    let ds = DistSender::new(
        Arc::new(Dialer {
            gateway,
            transport: Box::new(faults.wrap(Arc::new(InProcess(stores.clone())))),
        }),
        Arc::new(Static),
    )
    .with_deadline(Duration::from_secs(2));
    let db = Db::new(Arc::new(ds), clock.clone());
    db.put(b"a", b"1")
        .await
        .expect("first write elects a leaseholder");
    let holder = stores[0]
        .replica(1)
        .map(|r| r.lease().replica.node_id)
        .expect("replica");
    assert!((1..=NODES).contains(&holder));

    faults.lose_replies(gateway, holder);
    let e = db.put(b"b", b"2").await.expect_err("reply lost");
    assert!(
        matches!(e.detail, ErrorDetail::AmbiguousResult(_)),
        "non-transactional write: {e}"
    );
    // A transaction's write is replayed on the other replicas, which
    // answer that the holder holds the lease; nobody else serves it, so it
    // ends ambiguous too (after the deadline), not as `Unavailable`.
    let mut txn = db.txn("t");
    let e = txn.put(b"c", b"3").await.expect_err("reply lost");
    assert!(
        matches!(e.detail, ErrorDetail::AmbiguousResult(_)),
        "transactional write: {e}"
    );
    drop(txn);
    // Reads are never ambiguous: they end as a routing failure (the
    // holder unreachable, the others naming it) after the deadline.
    let e = db.get(b"a").await.expect_err("reply lost");
    assert!(
        matches!(
            e.detail,
            ErrorDetail::Unavailable(_) | ErrorDetail::NotLeaseholder { .. }
        ),
        "read: {e}"
    );

    faults.heal();
    // The ambiguous write had been applied.
    assert_eq!(db.get(b"b").await.expect("get"), Some(b"2".to_vec()));
    db.put(b"d", b"4").await.expect("serving again");
    for s in &stores {
        s.stop();
    }
}
