//! The consistency checker on a range replicated on three in-process stores:
//! identical replicas pass; a value written straight into one store's engine,
//! underneath Raft, makes exactly that replica diverged, and it is fenced.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tardigrade_encoding::keys;
use tardigrade_hlc::{DEFAULT_MAX_OFFSET, Hlc, SystemClock, Timestamp};
use tardigrade_kvpb::{BatchRequest, ErrorDetail, Header, RangeDescriptor, Request};
use tardigrade_kvserver::consistency::{
    self, ChecksumPeers, PeerFuture, RangeCheck, ReplicaDigest,
};
use tardigrade_kvserver::{LocalRaftTransport, RaftHandler, Store, StoreConfig};
use tardigrade_storage::mvcc::key::encode_mvcc_key;
use tardigrade_storage::{Engine, Space, StoreSpec};

const RANGE: u64 = 1;

fn start_three() -> Vec<Arc<Store>> {
    let desc =
        RangeDescriptor::with_voters(RANGE, keys::MIN_KEY.to_vec(), keys::MAX_KEY.to_vec(), 1..=3);
    let transport = LocalRaftTransport::new(None);
    (1..=3)
        .map(|i| {
            let engine = Engine::open(&StoreSpec::Memory).expect("engine");
            Store::bootstrap(&engine, std::slice::from_ref(&desc)).expect("bootstrap");
            let clock = Arc::new(Hlc::new(Arc::new(SystemClock), DEFAULT_MAX_OFFSET));
            let cfg = StoreConfig {
                node_id: i,
                store_id: i,
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
            let weak: Weak<dyn RaftHandler> =
                Arc::downgrade(&(store.clone() as Arc<dyn RaftHandler>));
            transport.register(i, weak);
            store
        })
        .collect()
}

/// The other replicas, reached by direct calls instead of the Node service.
struct InProcessPeers(Vec<Arc<Store>>);

impl InProcessPeers {
    fn replica(
        &self,
        node_id: u64,
        range_id: u64,
    ) -> Result<Arc<tardigrade_kvserver::Replica>, String> {
        self.0
            .iter()
            .find(|s| s.node_id() == node_id)
            .and_then(|s| s.replica(range_id))
            .ok_or_else(|| format!("no replica of r{range_id} on n{node_id}"))
    }
}

impl ChecksumPeers for InProcessPeers {
    fn collect(&self, node_id: u64, range_id: u64, id: u64) -> PeerFuture<'_, ReplicaDigest> {
        Box::pin(async move {
            let r = self.replica(node_id, range_id)?;
            consistency::wait_digest(&r, id, Duration::from_secs(10)).await
        })
    }

    fn fence(&self, node_id: u64, range_id: u64, reason: String) -> PeerFuture<'_, ()> {
        Box::pin(async move {
            consistency::fence(&*self.replica(node_id, range_id)?, reason);
            Ok(())
        })
    }
}

fn ba(requests: Vec<Request>) -> BatchRequest {
    BatchRequest {
        header: Header::default(),
        requests,
    }
}

/// Sends `ba` to whichever store serves it (the leaseholder); returns its node.
async fn send_anywhere(stores: &[Arc<Store>], ba: BatchRequest) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for s in stores {
            if s.execute(ba.clone()).await.is_ok() {
                return s.node_id();
            }
        }
        assert!(Instant::now() < deadline, "no store served the batch");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn check_from_leaseholder(stores: &[Arc<Store>], peers: &InProcessPeers) -> RangeCheck {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for s in stores {
            let Some(r) = s.replica(RANGE) else { continue };
            if r.lease().replica.replica_id == r.replica_id
                && let Ok(check) = consistency::check_range(&r, peers).await
            {
                return check;
            }
        }
        assert!(Instant::now() < deadline, "no leaseholder ran the check");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three stores replicating one range holding 20 keys.
async fn cluster_with_data() -> (Vec<Arc<Store>>, InProcessPeers) {
    let stores = start_three();
    let peers = InProcessPeers(stores.clone());
    for i in 0..20 {
        let key = format!("key-{i:02}").into_bytes();
        send_anywhere(
            &stores,
            ba(vec![Request::Put {
                key,
                value: b"value".to_vec(),
            }]),
        )
        .await;
    }
    (stores, peers)
}

fn leaseholder(stores: &[Arc<Store>]) -> u64 {
    stores
        .iter()
        .find(|s| {
            let r = s.replica(RANGE).expect("replica");
            r.lease().replica.replica_id == r.replica_id
        })
        .expect("a leaseholder")
        .node_id()
}

/// A version Raft never carried, written straight into `store`'s engine.
fn write_underneath(store: &Store) {
    let mut b = store.engine().batch();
    b.put(
        Space::Mvcc,
        &encode_mvcc_key(b"key-05", Timestamp::new(1, 0)),
        b"bit rot",
    );
    store
        .engine()
        .commit(b.writes(), true)
        .expect("write underneath");
}

fn diverged_nodes(check: &RangeCheck) -> Vec<u64> {
    check
        .replicas
        .iter()
        .filter(|v| v.diverged)
        .map(|v| v.node_id)
        .collect()
}

fn get_ba() -> BatchRequest {
    ba(vec![Request::Get {
        key: b"key-05".to_vec(),
    }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_changed_underneath_raft_is_reported_diverged_and_fenced() {
    let (stores, peers) = cluster_with_data().await;

    let check = check_from_leaseholder(&stores, &peers).await;
    assert!(check.complete(), "identical replicas pass: {check:?}");
    assert_eq!(check.replicas.len(), 3);
    let digests: Vec<_> = check
        .replicas
        .iter()
        .map(|v| v.digest.clone().expect("digest"))
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");

    let holder = leaseholder(&stores);
    let victim = stores
        .iter()
        .find(|s| s.node_id() != holder)
        .expect("a follower");
    write_underneath(victim);
    let before = consistency::ranges_inconsistent();

    let check = check_from_leaseholder(&stores, &peers).await;
    assert_eq!(diverged_nodes(&check), vec![victim.node_id()], "{check:?}");
    assert!(consistency::ranges_inconsistent() > before);

    // The diverged replica is fenced: it serves nothing and takes no lease.
    let fenced = victim.replica(RANGE).expect("replica");
    let reason = consistency::fenced_reason(&fenced).expect("fenced");
    assert!(reason.contains("diverged"), "{reason}");
    let err = fenced
        .send(get_ba())
        .await
        .expect_err("a fenced replica refuses requests");
    assert!(
        matches!(err.detail, ErrorDetail::NotLeaseholder { .. }),
        "{err}"
    );
    for s in stores.iter().filter(|s| s.node_id() != victim.node_id()) {
        let r = s.replica(RANGE).expect("replica");
        assert_eq!(consistency::fenced_reason(&r), None, "n{}", s.node_id());
    }
    // The healthy replicas keep serving.
    send_anywhere(&stores, get_ba()).await;
    // The fence is recorded in the store: the replica is fenced again when
    // its node restarts.
    victim.stop();
    let cfg = StoreConfig {
        transport: None,
        ..victim.config().clone()
    };
    let clock = Arc::new(Hlc::new(Arc::new(SystemClock), DEFAULT_MAX_OFFSET));
    let reopened = Store::open(victim.engine().clone(), clock, cfg).expect("reopen");
    let r = reopened.replica(RANGE).expect("replica");
    assert_eq!(consistency::fenced_reason(&r), Some(reason));
    reopened.stop();
    for s in &stores {
        s.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_diverged_leaseholder_hands_over_its_lease_and_is_fenced() {
    let (stores, peers) = cluster_with_data().await;
    let holder = leaseholder(&stores);
    let victim = stores
        .iter()
        .find(|s| s.node_id() == holder)
        .expect("the leaseholder");
    write_underneath(victim);

    let check = check_from_leaseholder(&stores, &peers).await;
    assert_eq!(diverged_nodes(&check), vec![holder], "{check:?}");
    let fenced = victim.replica(RANGE).expect("replica");
    assert!(consistency::fenced_reason(&fenced).is_some());
    // Another replica serves the range.
    let served_by = send_anywhere(&stores, get_ba()).await;
    assert_ne!(served_by, holder);
    for s in &stores {
        s.stop();
    }
}
