//! Replica changes on in-process stores (real engines, the in-process Raft
//! transport with fault injection): a new store's replica created by the
//! Raft group and fed by a snapshot, joint-consensus promotion with a
//! follower partitioned, removal and replica GC with a tombstone, and the
//! replicate queue upreplicating a range from one store to three.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tardigrade_encoding::keys;
use tardigrade_hlc::{DEFAULT_MAX_OFFSET, Hlc, SystemClock, Timestamp};
use tardigrade_kvpb::{
    BatchRequest, ErrorDetail, Header, KvError, RangeDescriptor, ReplicaType, Request, Response,
};
use tardigrade_kvserver::allocator::{ReplicationSettings, StoreDetail, StorePool};
use tardigrade_kvserver::{
    LocalRaftTransport, RaftHandler, Store, StoreConfig, range_tombstone_key, replicate_queue,
};
use tardigrade_rpc::FaultInjector;
use tardigrade_storage::{Engine, Reader, Space, StoreSpec};

const RANGE: u64 = 1;

struct Cluster {
    stores: Vec<Arc<Store>>,
    faults: FaultInjector,
}

fn config(node: u64, transport: &Arc<LocalRaftTransport>) -> StoreConfig {
    StoreConfig {
        node_id: node,
        store_id: node,
        raft_tick_interval: Duration::from_millis(20),
        raft_election_ticks: 10,
        raft_heartbeat_ticks: 2,
        lease_duration: Duration::from_millis(1500),
        proposal_timeout: Duration::from_secs(5),
        raft_log_max_entries: 50,
        transport: Some(transport.clone()),
        bootstrap_single_node: false,
        ..StoreConfig::default()
    }
}

/// `n` stores; the range's voters are on the first `voters` of them, the
/// others start empty.
fn start(n: u64, voters: u64) -> Cluster {
    let desc = RangeDescriptor::with_voters(
        RANGE,
        keys::MIN_KEY.to_vec(),
        keys::MAX_KEY.to_vec(),
        1..=voters,
    );
    let faults = FaultInjector::new(7);
    let transport = LocalRaftTransport::new(Some(faults.clone()));
    let mut stores = Vec::new();
    for i in 1..=n {
        let engine = Engine::open(&StoreSpec::Memory).expect("engine");
        if i <= voters {
            Store::bootstrap(&engine, std::slice::from_ref(&desc)).expect("bootstrap");
        }
        let clock = Arc::new(Hlc::new(Arc::new(SystemClock), DEFAULT_MAX_OFFSET));
        let store = Store::open(engine, clock, config(i, &transport)).expect("open store");
        let weak: Weak<dyn RaftHandler> = Arc::downgrade(&(store.clone() as Arc<dyn RaftHandler>));
        transport.register(i, weak);
        stores.push(store);
    }
    Cluster { stores, faults }
}

fn retryable(e: &KvError) -> bool {
    matches!(
        e.detail,
        ErrorDetail::NotLeaseholder { .. } | ErrorDetail::Unavailable(_)
    )
}

impl Cluster {
    fn store(&self, node: u64) -> &Arc<Store> {
        &self.stores[(node - 1) as usize]
    }

    /// Sends `ba` to whichever of `nodes` serves it.
    async fn send(&self, nodes: &[u64], ba: BatchRequest) -> tardigrade_kvpb::BatchResponse {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut i = 0;
        loop {
            let node = nodes[i % nodes.len()];
            match self.store(node).execute(ba.clone()).await {
                Ok(r) => return r,
                Err(e)
                    if retryable(&e)
                        || matches!(e.detail, ErrorDetail::RangeKeyMismatch { .. }) =>
                {
                    assert!(Instant::now() < deadline, "n{node}: {e}");
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("n{node}: {e}"),
            }
        }
    }

    async fn put(&self, nodes: &[u64], key: &str, value: &str) {
        self.send(
            nodes,
            BatchRequest {
                header: Header::default(),
                requests: vec![Request::Put {
                    key: key.as_bytes().to_vec(),
                    value: value.as_bytes().to_vec(),
                }],
            },
        )
        .await;
    }

    async fn get(&self, nodes: &[u64], key: &str) -> Option<Vec<u8>> {
        let r = self
            .send(
                nodes,
                BatchRequest {
                    header: Header::default(),
                    requests: vec![Request::Get {
                        key: key.as_bytes().to_vec(),
                    }],
                },
            )
            .await;
        match r.responses.into_iter().next() {
            Some(Response::Get { value, .. }) => value.map(|v| v.bytes),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The replica of the range that holds the lease, once one does.
    async fn leaseholder(&self, nodes: &[u64]) -> Arc<tardigrade_kvserver::Replica> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // A read through any node makes someone acquire the lease.
            self.get(nodes, "probe").await;
            for n in nodes {
                if let Some(r) = self.store(*n).replica(RANGE) {
                    let l = r.lease();
                    if l.replica.node_id == *n
                        && self.store(*n).clock().now() < l.expiration
                        && r.is_raft_leader()
                    {
                        return r;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leaseholder that leads");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Everything in the user key space of an engine (the range's data).
fn data(engine: &Engine) -> Vec<(Vec<u8>, Vec<u8>)> {
    engine
        .scan(Space::Mvcc, b"", &[0xff; 8], false)
        .map(|kv| {
            let (k, v) = kv.expect("scan");
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

fn voters(d: &RangeDescriptor) -> Vec<u64> {
    let mut v: Vec<u64> = d
        .replicas
        .iter()
        .filter(|r| r.kind == ReplicaType::Voter)
        .map(|r| r.store_id)
        .collect();
    v.sort_unstable();
    v
}

/// (e) + replica creation: a fourth store gets a replica created by the
/// Raft group and initialized by a snapshot (the log it needs was
/// truncated), and is promoted through a joint configuration while
/// follower 3 is partitioned away: both quorums ({1,2,4} of the incoming
/// voters, {1,2} of the outgoing ones) are reachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learner_is_fed_by_snapshot_and_promoted_with_a_follower_partitioned() {
    let c = start(4, 3);
    for i in 0..120 {
        c.put(&[1, 2, 3], &format!("k{i:03}"), &format!("v{i}"))
            .await;
    }
    let lh = c.leaseholder(&[1, 2, 3]).await;
    let follower = [1u64, 2, 3]
        .into_iter()
        .find(|n| *n != lh.replica_id)
        .expect("a follower");
    // Cut off from every other store; requests go to all of those (the
    // leader, which alone takes an idle lease, may be on any of stores 1-3
    // when the first campaign lost on a loaded machine).
    let up: Vec<u64> = (1..=4).filter(|n| *n != follower).collect();
    for n in &up {
        c.faults.partition(follower, *n);
    }
    assert!(lh.first_log_index() > 1, "log truncated: snapshot needed");
    let desc = lh.add_voter(4, 4, None).await.expect("add voter 4");
    assert_eq!(voters(&desc), vec![1, 2, 3, 4]);
    assert!(desc.generation >= 3, "learner, joint, final: {desc:?}");
    let r4 = c.store(4).replica(RANGE).expect("replica created on s4");
    assert!(r4.is_initialized());
    // Writes keep working with 3 of 4 voters.
    c.put(&up, "after", "x").await;
    c.wait_for("s4 has the write", || {
        data(c.store(4).engine()) == data(c.store(lh.replica_id).engine())
    })
    .await;
    assert_eq!(c.get(&up, "k007").await, Some(b"v7".to_vec()));

    // Heal: the partitioned follower catches up with the new configuration.
    c.faults.heal();
    c.wait_for("follower 3 learns the configuration", || {
        c.store(follower)
            .replica(RANGE)
            .is_some_and(|r| voters(&r.desc()) == vec![1, 2, 3, 4])
    })
    .await;
}

/// (d) A removed replica applies its removal, is garbage-collected (its data
/// and Raft state gone, a tombstone left), and a late message for it does
/// not bring it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_replica_is_garbage_collected() {
    let c = start(3, 3);
    for i in 0..20 {
        c.put(&[1, 2, 3], &format!("k{i:02}"), "v").await;
    }
    let lh = c.leaseholder(&[1, 2, 3]).await;
    let victim = [1u64, 2, 3]
        .into_iter()
        .find(|n| *n != lh.replica_id)
        .expect("a follower");
    assert!(!data(c.store(victim).engine()).is_empty());
    let desc = lh.remove_voter(victim).await.expect("remove");
    assert!(desc.replica(victim).is_none());
    assert_eq!(voters(&desc).len(), 2);
    // The victim learns of its removal (from the joint step it applied, the
    // replicate queue's GC check covers the case where it never does).
    let pool = Arc::new(TestPool::default());
    let settings = ReplicationSettings::default();
    let queue = replicate_queue::ReplicateQueue::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.store(victim).replica(RANGE).is_some() {
        assert!(Instant::now() < deadline, "victim not GC'd");
        replicate_queue::process_store(&queue, c.store(victim), pool.as_ref(), &settings).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let engine = c.store(victim).engine();
    assert!(
        data(engine).is_empty(),
        "data of the removed replica is gone"
    );
    assert!(
        engine
            .get(Space::Raw, &keys::raft_hard_state_key(RANGE))
            .expect("get")
            .is_none()
    );
    assert!(
        engine
            .get(Space::Raw, &range_tombstone_key(RANGE))
            .expect("get")
            .is_some(),
        "tombstone kept"
    );
    // The range keeps serving on the remaining two.
    let rest: Vec<u64> = [1u64, 2, 3].into_iter().filter(|n| *n != victim).collect();
    c.put(&rest, "after", "y").await;
    // Traffic from the leader (heartbeats would be for the old replica id)
    // does not recreate it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(c.store(victim).replica(RANGE).is_none());
}

/// A store pool for in-process tests: every store live, counts from the
/// stores themselves.
#[derive(Default)]
struct TestPool {
    stores: RwLock<Vec<Arc<Store>>>,
}

impl StorePool for TestPool {
    fn stores(&self) -> Vec<StoreDetail> {
        self.stores
            .read()
            .iter()
            .map(|s| StoreDetail {
                node_id: s.node_id(),
                store_id: s.store_id(),
                locality: vec![("zone".into(), format!("z{}", s.store_id()))],
                range_count: s.replicas().len() as u64,
                lease_count: 0,
                liveness_expiration: if s.is_stopped() {
                    Timestamp::new(1, 0)
                } else {
                    s.clock().now().add_duration(Duration::from_secs(10))
                },
            })
            .collect()
    }

    fn now(&self) -> Timestamp {
        self.stores
            .read()
            .first()
            .map_or(Timestamp::ZERO, |s| s.clock().now())
    }
}

/// (a, in process) The replicate queue brings a range on one store up to
/// three voters when three stores exist, and every replica holds the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_queue_upreplicates_one_to_three() {
    let c = start(3, 1);
    for i in 0..30 {
        c.put(&[1], &format!("k{i:02}"), "v").await;
    }
    let pool = Arc::new(TestPool::default());
    *pool.stores.write() = c.stores.clone();
    let settings = ReplicationSettings::default();
    let queue = replicate_queue::ReplicateQueue::default();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(30);
    loop {
        let d = c.store(1).replica(RANGE).expect("r1").desc();
        if voters(&d) == vec![1, 2, 3] {
            break;
        }
        assert!(Instant::now() < deadline, "not upreplicated: {d:?}");
        for s in &c.stores {
            replicate_queue::process_store(&queue, s, pool.as_ref(), &settings).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("upreplicated 1 -> 3 in {:?}", start.elapsed());
    c.put(&[1, 2, 3], "last", "v").await;
    c.wait_for("identical data on all three", || {
        let d1 = data(c.store(1).engine());
        d1 == data(c.store(2).engine()) && d1 == data(c.store(3).engine())
    })
    .await;
    // Nothing more to do: a further pass is a no-op.
    let pass = replicate_queue::process_store(&queue, c.store(1), pool.as_ref(), &settings).await;
    assert_eq!(pass.actions, 0);
}

/// A lease transfer moves the lease and Raft leadership to the target; the
/// old holder stops serving at once and the new one serves reads and
/// writes (its writes land above anything the old holder served).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_transfer_moves_lease_and_leadership() {
    let c = start(3, 3);
    c.put(&[1, 2, 3], "a", "1").await;
    let lh = c.leaseholder(&[1, 2, 3]).await;
    let from = lh.replica_id;
    let to = if from == 1 { 2 } else { 1 };
    let before = lh.lease();
    let t0 = c.store(from).clock().now();
    let started = Instant::now();
    lh.transfer_lease(to).await.expect("transfer");
    let lease = lh.lease();
    assert_eq!(lease.replica.replica_id, to);
    assert_eq!(lease.sequence, before.sequence + 1);
    // Above anything the old holder could have served (everything it
    // served is at or below its clock), and not beyond physical time plus
    // the maximum offset (the HLC plus the offset would ratchet clocks
    // forward on every transfer).
    assert!(lease.start > t0);
    let physical = c.store(from).clock().physical_now();
    let offset = c.store(from).clock().max_offset().as_nanos() as i64;
    assert!(lease.start.wall <= physical + offset);
    let err = c
        .store(from)
        .execute(BatchRequest {
            header: Header::default(),
            requests: vec![Request::Get { key: b"a".to_vec() }],
        })
        .await
        .expect_err("old holder refuses");
    assert!(
        matches!(err.detail, ErrorDetail::NotLeaseholder { leaseholder_node, .. } if leaseholder_node == to)
    );
    // The new holder serves, and becomes the Raft leader. It moved its clock
    // to the lease start: its own timestamp for this read is not below the
    // write (stale reads under load before), and the write just below
    // does not wait out the proposal timeout (it waits for leadership).
    assert_eq!(c.get(&[to], "a").await, Some(b"1".to_vec()));
    c.put(&[to], "b", "2").await;
    c.wait_for("leadership follows the lease", || {
        c.store(to)
            .replica(RANGE)
            .is_some_and(|r| r.is_raft_leader())
    })
    .await;
    eprintln!("lease transferred and served in {:?}", started.elapsed());
    // A transfer to a non-voter is refused.
    let r = c.store(to).replica(RANGE).expect("r");
    assert!(r.transfer_lease(99).await.is_err());
}

/// Routes a batch to whichever store serves it (a stand-in for DistSender).
struct AnyStore(Vec<Arc<Store>>);

impl tardigrade_kvpb::Sender for AnyStore {
    fn send(&self, ba: BatchRequest) -> tardigrade_kvpb::SendFuture<'_> {
        Box::pin(async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut last = None;
            while Instant::now() < deadline {
                for s in &self.0 {
                    if s.is_stopped() {
                        continue;
                    }
                    match s.execute(ba.clone()).await {
                        Ok(r) => return Ok(r),
                        Err(e)
                            if retryable(&e)
                                || matches!(e.detail, ErrorDetail::RangeKeyMismatch { .. }) =>
                        {
                            last = Some(e)
                        }
                        Err(e) => return Err(e),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(last.unwrap_or_else(|| KvError::internal("no store")))
        })
    }
}

/// Three stores holding three voters of the range, each routing its
/// cluster requests through [`AnyStore`], after one write: the cluster,
/// the router and the leaseholder's replica.
async fn three_voters_routed_through_any_store() -> (
    Cluster,
    Arc<dyn tardigrade_kvpb::Sender>,
    Arc<tardigrade_kvserver::Replica>,
) {
    let c = start(3, 3);
    let any: Arc<dyn tardigrade_kvpb::Sender> = Arc::new(AnyStore(c.stores.clone()));
    for s in &c.stores {
        s.set_cluster_sender(any.clone());
    }
    c.put(&[1, 2, 3], "a", "1").await;
    let lh = c.leaseholder(&[1, 2, 3]).await;
    (c, any, lh)
}

/// (d') A replica removed while partitioned never learns of its removal:
/// once it finds itself absent from the range's current meta record (the
/// replicate queue's GC check), it is garbage-collected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_replica_is_found_through_meta_and_collected() {
    let (c, _router, lh) = three_voters_routed_through_any_store().await;
    let victim = [1u64, 2, 3]
        .into_iter()
        .find(|n| *n != lh.replica_id)
        .expect("a follower");
    // Quiesced when cut off, it neither ticks nor campaigns: nothing about
    // its Raft state says it lost its leader (CI once saw this orphan stay).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c
        .store(victim)
        .replica(RANGE)
        .expect("replica")
        .is_quiesced()
    {
        assert!(Instant::now() < deadline, "the range did not quiesce");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.faults.isolate(victim, [1u64, 2, 3]);
    let desc = lh
        .remove_voter(victim)
        .await
        .expect("remove while partitioned");
    assert!(desc.replica(victim).is_none());
    assert!(lh.update_meta_records(&desc).await, "meta records written");
    let orphan = c.store(victim).replica(RANGE).expect("still there");
    assert!(
        orphan.desc().replica(victim).is_some(),
        "it never heard of its removal"
    );
    c.faults.heal();
    let pool = TestPool::default();
    *pool.stores.write() = c.stores.clone();
    let queue = replicate_queue::ReplicateQueue::default();
    let settings = ReplicationSettings {
        meta_check_interval: Duration::from_secs(1),
        ..ReplicationSettings::default()
    };
    let started = Instant::now();
    while c.store(victim).replica(RANGE).is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "orphan not collected"
        );
        replicate_queue::process_store(&queue, c.store(victim), &pool, &settings).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("orphan collected {:?} after the heal", started.elapsed());
    assert!(data(c.store(victim).engine()).is_empty());
    let rest: Vec<u64> = [1u64, 2, 3].into_iter().filter(|n| *n != victim).collect();
    assert_eq!(c.get(&rest, "a").await, Some(b"1".to_vec()));
}

/// A leader whose range's meta record is missing or older than its
/// descriptor (the leader that changed the replicas died before rewriting
/// it) rewrites it on its periodic meta check, and only then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_meta_record_is_rewritten_by_the_leaders_periodic_check() {
    let (c, any, lh) = three_voters_routed_through_any_store().await;
    let leader_store = c.store(lh.replica_id).clone();
    let meta_key = keys::range_meta_key(&lh.desc().end_key);
    let read_meta = || async {
        let r = any
            .send(BatchRequest {
                header: Header::default(),
                requests: vec![Request::Get {
                    key: meta_key.clone(),
                }],
            })
            .await
            .expect("meta read");
        match r.responses.into_iter().next() {
            Some(Response::Get { value, .. }) => {
                value.map(|v| RangeDescriptor::decode(&v.bytes).expect("descriptor"))
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        read_meta().await,
        None,
        "this test cluster starts without one"
    );
    let pool = TestPool::default();
    *pool.stores.write() = c.stores.clone();
    let queue = replicate_queue::ReplicateQueue::default();
    let not_yet = ReplicationSettings::default();
    replicate_queue::process_store(&queue, &leader_store, &pool, &not_yet).await;
    assert_eq!(read_meta().await, None, "checked once per interval");
    let due = ReplicationSettings {
        meta_check_interval: Duration::ZERO,
        ..ReplicationSettings::default()
    };
    let pass = replicate_queue::process_store(&queue, &leader_store, &pool, &due).await;
    assert_eq!(pass.actions, 0, "nothing else to do");
    assert_eq!(read_meta().await, Some(lh.desc()));
}
