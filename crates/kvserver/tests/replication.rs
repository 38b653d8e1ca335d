//! A range replicated on three in-process stores (real engines, an
//! in-process Raft transport with fault injection): replication, leader
//! loss, partitions, catch-up from the log and by snapshot, quiescence.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tardigrade_encoding::keys;
use tardigrade_hlc::{DEFAULT_MAX_OFFSET, Hlc, SystemClock};
use tardigrade_kvpb::{
    BatchRequest, ErrorDetail, Header, KvError, RangeDescriptor, Request, Response,
};
use tardigrade_kvserver::{LocalRaftTransport, RaftHandler, Store, StoreConfig};
use tardigrade_rpc::FaultInjector;
use tardigrade_storage::{Engine, Reader, Space, StoreSpec};

const RANGE: u64 = 1;

struct Cluster {
    stores: Vec<Option<Arc<Store>>>,
    transport: Arc<LocalRaftTransport>,
    faults: FaultInjector,
}

fn config(node: u64, transport: &Arc<LocalRaftTransport>, max_entries: u64) -> StoreConfig {
    StoreConfig {
        node_id: node,
        store_id: node,
        raft_tick_interval: Duration::from_millis(20),
        raft_election_ticks: 10,
        raft_heartbeat_ticks: 2,
        lease_duration: Duration::from_millis(1500),
        proposal_timeout: Duration::from_secs(5),
        raft_log_max_entries: max_entries,
        transport: Some(transport.clone()),
        bootstrap_single_node: false,
        ..StoreConfig::default()
    }
}

fn start(n: u64, max_entries: u64) -> Cluster {
    start_configured(n, |_| {}, max_entries)
}

fn start_configured(n: u64, adjust: impl Fn(&mut StoreConfig), max_entries: u64) -> Cluster {
    let desc =
        RangeDescriptor::with_voters(RANGE, keys::MIN_KEY.to_vec(), keys::MAX_KEY.to_vec(), 1..=n);
    let faults = FaultInjector::new(42);
    let transport = LocalRaftTransport::new(Some(faults.clone()));
    let mut stores = Vec::new();
    for i in 1..=n {
        let engine = Engine::open(&StoreSpec::Memory).expect("engine");
        Store::bootstrap(&engine, std::slice::from_ref(&desc)).expect("bootstrap");
        let clock = Arc::new(Hlc::new(Arc::new(SystemClock), DEFAULT_MAX_OFFSET));
        let mut cfg = config(i, &transport, max_entries);
        adjust(&mut cfg);
        let store = Store::open(engine, clock, cfg).expect("open store");
        let weak: Weak<dyn RaftHandler> = Arc::downgrade(&(store.clone() as Arc<dyn RaftHandler>));
        transport.register(i, weak);
        stores.push(Some(store));
    }
    Cluster {
        stores,
        transport,
        faults,
    }
}

fn put_ba(key: &[u8], value: &[u8]) -> BatchRequest {
    BatchRequest {
        header: Header::default(),
        requests: vec![Request::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        }],
    }
}

fn get_ba(key: &[u8]) -> BatchRequest {
    BatchRequest {
        header: Header::default(),
        requests: vec![Request::Get { key: key.to_vec() }],
    }
}

fn retryable(e: &KvError) -> bool {
    matches!(
        e.detail,
        ErrorDetail::NotLeaseholder { .. } | ErrorDetail::Unavailable(_)
    )
}

impl Cluster {
    fn store(&self, node: u64) -> &Arc<Store> {
        self.stores[(node - 1) as usize]
            .as_ref()
            .expect("store is running")
    }

    fn live(&self) -> Vec<u64> {
        (1..=self.stores.len() as u64)
            .filter(|n| self.stores[(*n - 1) as usize].is_some())
            .collect()
    }

    /// Sends `ba` to the live nodes in `nodes`, following leaseholder hints
    /// and retrying, until one serves it. Returns the node and response.
    async fn send_to(
        &self,
        nodes: &[u64],
        ba: BatchRequest,
        within: Duration,
    ) -> (u64, tardigrade_kvpb::BatchResponse) {
        let deadline = Instant::now() + within;
        let mut i = 0;
        loop {
            let node = nodes[i % nodes.len()];
            match self.store(node).execute(ba.clone()).await {
                Ok(r) => return (node, r),
                Err(e) if retryable(&e) && Instant::now() < deadline => {
                    if let ErrorDetail::NotLeaseholder {
                        leaseholder_node, ..
                    } = e.detail
                        && let Some(p) = nodes.iter().position(|n| *n == leaseholder_node)
                        && p != i % nodes.len()
                    {
                        i = p;
                        continue;
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("n{node}: {e}"),
            }
        }
    }

    async fn put(&self, key: &str, value: &str) -> u64 {
        let nodes = self.live();
        self.send_to(
            &nodes,
            put_ba(key.as_bytes(), value.as_bytes()),
            Duration::from_secs(10),
        )
        .await
        .0
    }

    fn leaseholder(&self) -> Option<u64> {
        self.live().into_iter().find(|n| {
            let r = self.store(*n).replica(RANGE).expect("replica");
            let lease = r.lease();
            lease.replica.node_id == *n && self.store(*n).clock().now() < lease.expiration
        })
    }

    /// Waits until every node in `nodes` applied as far as the first one.
    async fn wait_converged(&self, nodes: &[u64], within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let applied: Vec<u64> = nodes
                .iter()
                .map(|n| {
                    self.store(*n)
                        .replica(RANGE)
                        .expect("replica")
                        .applied_index()
                })
                .collect();
            if applied.windows(2).all(|w| w[0] == w[1]) {
                return;
            }
            assert!(Instant::now() < deadline, "not converged: {applied:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill(&mut self, node: u64) {
        if let Some(s) = self.stores[(node - 1) as usize].take() {
            s.stop();
        }
        self.transport.unregister(node);
    }
}

/// The range's replicated contents on one engine.
fn dump(engine: &Engine) -> Vec<(Space, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let spans: [(Space, &[u8], Vec<u8>); 4] = [
        (Space::Mvcc, b"", vec![0xff; 8]),
        (Space::Lock, b"", vec![0xff; 8]),
        (
            Space::Raw,
            keys::LOCAL_RANGE_PREFIX,
            keys::prefix_end(keys::LOCAL_RANGE_PREFIX),
        ),
        (Space::Raw, &[], keys::range_id_local_key(RANGE, b"s")),
    ];
    for (space, lo, hi) in spans {
        let lo = if space == Space::Raw && lo.is_empty() {
            keys::range_id_local_key(RANGE, b"r")
        } else {
            lo.to_vec()
        };
        for kv in engine.scan(space, &lo, &hi, false) {
            let (k, v) = kv.expect("scan");
            out.push((space, k.to_vec(), v.to_vec()));
        }
    }
    out
}

fn assert_same_data(c: &Cluster, nodes: &[u64]) {
    let first = dump(c.store(nodes[0]).engine());
    assert!(!first.is_empty());
    for n in &nodes[1..] {
        let other = dump(c.store(*n).engine());
        assert!(
            first == other,
            "n{} and n{n} differ ({} vs {} keys)",
            nodes[0],
            first.len(),
            other.len()
        );
    }
}

fn get_value(resp: &tardigrade_kvpb::BatchResponse) -> Option<Vec<u8>> {
    match resp.responses.first() {
        Some(Response::Get { value }) => value.as_ref().map(|v| v.bytes.clone()),
        other => panic!("unexpected response {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_the_leaseholder_apply_on_all_three() {
    let c = start(3, 1000);
    let t0 = Instant::now();
    c.put("warmup", "x").await;
    let first = t0.elapsed();
    let lh = c.leaseholder().expect("a leaseholder");
    let n = 200;
    let t0 = Instant::now();
    for i in 0..n {
        let (node, _) = c
            .send_to(
                &[lh],
                put_ba(format!("k{i:04}").as_bytes(), format!("v{i}").as_bytes()),
                Duration::from_secs(5),
            )
            .await;
        assert_eq!(node, lh);
    }
    let per_write = t0.elapsed() / n;
    eprintln!(
        "3 in-process stores: first write (election + lease) {first:?}, replicated write latency {per_write:?} (mean of {n} sequential puts)"
    );
    c.wait_converged(&[1, 2, 3], Duration::from_secs(5)).await;
    assert_same_data(&c, &[1, 2, 3]);
    // Reads on the leaseholder see the writes; followers refuse and point at it.
    let (_, r) = c
        .send_to(&[lh], get_ba(b"k0007"), Duration::from_secs(5))
        .await;
    assert_eq!(get_value(&r), Some(b"v7".to_vec()));
    let follower = (1..=3).find(|n| *n != lh).expect("follower");
    match c.store(follower).execute(get_ba(b"k0007")).await {
        Err(KvError {
            detail:
                ErrorDetail::NotLeaseholder {
                    range_id,
                    leaseholder_node,
                },
            ..
        }) => {
            assert_eq!(range_id, RANGE);
            assert_eq!(leaseholder_node, lh);
        }
        other => panic!("follower served: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_elects_a_new_leaseholder_that_serves() {
    let mut c = start(3, 1000);
    c.put("a", "1").await;
    let lh = c.leaseholder().expect("leaseholder");
    assert!(
        c.store(lh)
            .replica(RANGE)
            .expect("replica")
            .is_raft_leader()
    );
    c.kill(lh);
    let t0 = Instant::now();
    let node = c.put("a", "2").await;
    let pause = t0.elapsed();
    eprintln!("leader n{lh} killed: n{node} served a write after {pause:?}");
    assert_ne!(node, lh);
    assert!(pause < Duration::from_secs(5), "took {pause:?}");
    let (_, r) = c
        .send_to(&c.live(), get_ba(b"a"), Duration::from_secs(5))
        .await;
    assert_eq!(get_value(&r), Some(b"2".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_leaseholder_never_serves_a_stale_read() {
    let c = start(3, 1000);
    c.put("k", "old").await;
    let lh = c.leaseholder().expect("leaseholder");
    let others: Vec<u64> = (1..=3).filter(|n| *n != lh).collect();
    c.faults.isolate(lh, others.clone());
    let lease = c.store(lh).replica(RANGE).expect("replica").lease();

    // The majority elects a new leader, which acquires the lease once the
    // old one has expired, and serves.
    let (node, _) = c
        .send_to(&others, put_ba(b"k", b"new"), Duration::from_secs(10))
        .await;
    assert_ne!(node, lh);
    let new_lease = c.store(node).replica(RANGE).expect("replica").lease();
    assert!(
        new_lease.start >= lease.expiration,
        "{new_lease:?} vs {lease:?}"
    );

    // The old leaseholder's lease has expired: it refuses to serve.
    for _ in 0..5 {
        match c.store(lh).execute(get_ba(b"k")).await {
            Ok(r) => panic!("stale leaseholder served {:?}", get_value(&r)),
            Err(e) => assert!(
                matches!(e.detail, ErrorDetail::NotLeaseholder { .. }),
                "{e}"
            ),
        }
    }
    // Healed, it catches up and follows the new leaseholder.
    c.faults.heal();
    c.wait_converged(&[node, lh], Duration::from_secs(10)).await;
    let (_, r) = c
        .send_to(&[lh, node], get_ba(b"k"), Duration::from_secs(5))
        .await;
    assert_eq!(get_value(&r), Some(b"new".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lagging_follower_catches_up_from_the_log() {
    let c = start(3, 1000);
    c.put("x", "0").await;
    let lh = c.leaseholder().expect("leaseholder");
    let lagger = (1..=3).find(|n| *n != lh).expect("follower");
    c.faults.isolate(lagger, (1..=3).filter(|n| *n != lagger));
    let majority: Vec<u64> = (1..=3).filter(|n| *n != lagger).collect();
    for i in 0..30 {
        c.send_to(
            &majority,
            put_ba(format!("lag{i}").as_bytes(), b"v"),
            Duration::from_secs(5),
        )
        .await;
    }
    let leader_first = c
        .store(lh)
        .replica(RANGE)
        .expect("replica")
        .first_log_index();
    let lag_applied = c
        .store(lagger)
        .replica(RANGE)
        .expect("replica")
        .applied_index();
    assert!(
        leader_first <= lag_applied + 1,
        "log must still hold what it needs"
    );
    c.faults.heal();
    c.wait_converged(&[lh, lagger], Duration::from_secs(10))
        .await;
    c.wait_converged(&[1, 2, 3], Duration::from_secs(10)).await;
    assert_same_data(&c, &[1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_behind_the_truncated_log_catches_up_by_snapshot() {
    let c = start(3, 20);
    c.put("x", "0").await;
    let lh = c.leaseholder().expect("leaseholder");
    let lagger = (1..=3).find(|n| *n != lh).expect("follower");
    c.faults.isolate(lagger, (1..=3).filter(|n| *n != lagger));
    let majority: Vec<u64> = (1..=3).filter(|n| *n != lagger).collect();
    for i in 0..100 {
        c.send_to(
            &majority,
            put_ba(format!("snap{i:03}").as_bytes(), b"v"),
            Duration::from_secs(5),
        )
        .await;
    }
    let leader_first = c
        .store(lh)
        .replica(RANGE)
        .expect("replica")
        .first_log_index();
    let lag_applied = c
        .store(lagger)
        .replica(RANGE)
        .expect("replica")
        .applied_index();
    assert!(
        leader_first > lag_applied + 1,
        "the leader's log (from {leader_first}) must have dropped what n{lagger} (at {lag_applied}) needs"
    );
    c.faults.heal();
    c.wait_converged(&[1, 2, 3], Duration::from_secs(10)).await;
    assert_same_data(&c, &[1, 2, 3]);
    // The snapshot carried the lease and stats too: the follower agrees.
    let a = c.store(lh).replica(RANGE).expect("replica");
    let b = c.store(lagger).replica(RANGE).expect("replica");
    assert_eq!(a.lease(), b.lease());
    assert_eq!(a.stats(), b.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_range_quiesces_and_wakes_on_the_next_request() {
    let c = start(3, 1000);
    c.put("q", "1").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let q: Vec<bool> = (1..=3)
            .map(|n| c.store(n).replica(RANGE).expect("replica").is_quiesced())
            .collect();
        if q.iter().all(|x| *x) {
            break;
        }
        assert!(Instant::now() < deadline, "not quiesced: {q:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Quiesced for a while (longer than an election timeout): no election.
    let lh = c.leaseholder().expect("leaseholder");
    let term_leader = c
        .store(lh)
        .replica(RANGE)
        .expect("replica")
        .is_raft_leader();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        term_leader
            && c.store(lh)
                .replica(RANGE)
                .expect("replica")
                .is_raft_leader()
    );
    c.put("q", "2").await;
    c.wait_converged(&[1, 2, 3], Duration::from_secs(5)).await;
    assert_same_data(&c, &[1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_replica_store_bootstraps_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = StoreSpec::Dir(dir.path().join("s"));
    let clock = || Arc::new(Hlc::new(Arc::new(SystemClock), DEFAULT_MAX_OFFSET));
    let n = 100u32;
    {
        let engine = Engine::open(&spec).expect("engine");
        let store = Store::open(engine, clock(), StoreConfig::default()).expect("open");
        let t0 = Instant::now();
        for i in 0..n {
            store
                .execute(put_ba(format!("k{i}").as_bytes(), b"v"))
                .await
                .expect("put");
        }
        eprintln!(
            "single replica on disk: write latency {:?} (mean of {n} sequential puts, one log fsync each)",
            t0.elapsed() / n
        );
        store.stop();
    }
    // Reopened: the range is loaded from the engine, not bootstrapped again,
    // and everything acknowledged is there.
    let engine = Engine::open(&spec).expect("engine");
    let store = Store::open(engine, clock(), StoreConfig::default()).expect("reopen");
    assert_eq!(store.replicas().len(), 1);
    let r = store.execute(get_ba(b"k99")).await.expect("get");
    assert_eq!(get_value(&r), Some(b"v".to_vec()));
    assert_eq!(store.stats().live_count, i64::from(n));
}

/// A starved machine can take longer to apply a command than a lease lasts:
/// the lease its leader proposes has then run out by the time it applies.
/// The leader must still get a lease that it can serve under (here every
/// round's apply waits 500 ms; a lease is configured to last 300 ms), on one
/// replica as on three.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_is_acquired_when_applying_takes_longer_than_a_lease_lasts() {
    for n in [1, 3] {
        let c = start_configured(
            n,
            |cfg| {
                cfg.lease_duration = Duration::from_millis(300);
                cfg.testing_apply_delay = Duration::from_millis(500);
            },
            1000,
        );
        let t0 = Instant::now();
        for i in 0..3 {
            c.send_to(
                &c.live(),
                put_ba(format!("k{i}").as_bytes(), b"v"),
                Duration::from_secs(20),
            )
            .await;
        }
        let (_, r) = c
            .send_to(&c.live(), get_ba(b"k2"), Duration::from_secs(20))
            .await;
        assert_eq!(get_value(&r), Some(b"v".to_vec()));
        eprintln!(
            "{n} replica(s), 500 ms per apply: 3 writes and a read took {:?}",
            t0.elapsed()
        );
    }
}

/// A single-node server sends SQL's batches straight to its store, with no
/// one to retry a `NotLeaseholder`. Writes to a hot key check the lease,
/// then queue for the key's latch; on a machine so slow that the lease
/// lapses meanwhile and this replica takes a new one, the queued writes'
/// commands (proposed under the old lease) are rejected when they apply.
/// They are evaluated again under the new lease instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_in_flight_when_the_lease_lapses_are_evaluated_again() {
    let c = start_configured(
        1,
        |cfg| {
            cfg.lease_duration = Duration::from_millis(200);
            cfg.testing_apply_delay = Duration::from_millis(150);
        },
        1000,
    );
    let store = c.store(1).clone();
    let until = Instant::now() + Duration::from_secs(4);
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            let mut i = 0;
            while Instant::now() < until {
                let value = format!("w{w}-{i}");
                match store.execute(put_ba(b"hot", value.as_bytes())).await {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e.to_string()),
                }
                i += 1;
            }
            (ok, failed)
        }));
    }
    let (mut ok, mut failed) = (0, Vec::new());
    for w in writers {
        let (o, f) = w.await.expect("writer");
        ok += o;
        failed.extend(f);
    }
    eprintln!("{ok} writes, {} failed: {:?}", failed.len(), failed.first());
    assert!(ok > 0);
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        failed.first()
    );
}
