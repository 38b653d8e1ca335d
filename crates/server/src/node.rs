//! A cluster node: `tardigrade start`.
//!
//! The RPC listener comes up first, with late-bound handlers, because a
//! fresh node must answer `init` (and peers' first-range questions) before
//! it has a store to serve from. Then, in order of precedence:
//! - the store already has an identity: open it and serve;
//! - otherwise wait for either `tardigrade init` (this node bootstraps the
//!   cluster as node 1 and holds the first range) or a successful join
//!   through one of the `--join` addresses (a node of the cluster allocates
//!   this node's ids through KV).
//!
//! Every node is a gateway: client batches without a range id go through
//! the node's `DistSender`; node-to-node batches carry the range id and are
//! served by the local store.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tardigrade_hlc::Hlc;
use tardigrade_kv::{Db, DistSender, FirstRange, NodeDialer, NodeHealth};
use tardigrade_kvpb::{
    BatchRequest, ErrorDetail, KvError, NodeId, RangeDescriptor, SendFuture, Sender,
};
use tardigrade_kvserver::allocator::{StoreDetail, StorePool};
use tardigrade_kvserver::{GrpcRaftTransport, NodeResolver, Store, StoreConfig};
use tardigrade_rpc::{
    DelayedSender, FaultInjector, JoinGrant, LatencyMap, NodeClient, NodeError, NodeFuture,
    NodeHandler, NodeIdentity, NodeServices, PeerCheck, PeerFuture, PeerLatency, PingReply,
    RaftHandler, RaftMessageBatch, RpcSender,
};
use tardigrade_storage::{Engine, Reader, Space, StoreSpec};
use tokio::sync::{Notify, oneshot};

use crate::cluster::{self, Liveness, NodeDescriptor, StoreCapacity, StoreIdent};
use crate::heartbeat::{self, ClockOffset, ClockVerdict, PeerHealth};
use crate::{ServerError, StoreLock};

/// How often a node heartbeats its liveness record (and refreshes its view
/// of the other nodes), and for how long a heartbeat keeps it live.
const LIVENESS_HEARTBEAT: Duration = Duration::from_millis(1500);
const LIVENESS_TTL: Duration = Duration::from_millis(4500);

/// What `tardigrade start` needs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub store: StoreSpec,
    pub listen_addr: SocketAddr,
    pub http_addr: Option<SocketAddr>,
    /// Addresses of nodes of the cluster to join (may include this node's own).
    pub join: Vec<String>,
    pub locality: Vec<(String, String)>,
    /// Raft and lease tuning; ids and transport are filled in by the node.
    pub store_config: StoreConfig,
    /// Testing and demos: simulated distance to the other nodes, by region
    /// (`start --testing-latency`, `demo --global`). What this node sends to
    /// another (Raft messages, KV batches, heartbeats) is delayed by the
    /// one-way delay between their regions, which the node looks up in its
    /// directory of nodes. `None` (production): nothing is looked up.
    pub testing_latency: Option<Arc<LatencyMap>>,
}

struct Shared {
    addr: String,
    locality: Vec<(String, String)>,
    join: Vec<String>,
    engine: Engine,
    clock: Arc<Hlc>,
    store_config: StoreConfig,
    ident: OnceLock<StoreIdent>,
    store: OnceLock<Arc<Store>>,
    dist: OnceLock<Arc<DistSender>>,
    directory: Arc<Directory>,
    /// The first range as last learned from a peer (nodes without a replica of it).
    first_range: RwLock<Option<RangeDescriptor>>,
    /// Serialises bootstrap and join.
    init_mu: tokio::sync::Mutex<()>,
    ready: Notify,
    /// Background tasks, stopped on shutdown.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The allocator's view of the cluster's stores.
    pool: Arc<NodeStorePool>,
    /// Stamped on this node's RPCs and checked against incoming ones.
    identity: Arc<NodeIdentity>,
    /// Node ids refused as unknown recently (not looked up again for a while).
    unknown_peers: Mutex<HashMap<NodeId, std::time::Instant>>,
    /// What the peer heartbeats know: reachability and clock offsets.
    health: Arc<PeerHealth>,
    /// Connections the heartbeats use, by address.
    ping_clients: Mutex<HashMap<String, NodeClient>>,
    /// Addresses with a ping under way (not pinged again until it ends).
    pings_in_flight: Mutex<std::collections::HashSet<String>>,
    /// Set once the node must stop (its clock is too far from the
    /// cluster's): the reason. `tardigrade start` exits on it.
    fatal: tokio::sync::watch::Sender<Option<String>>,
    /// Testing seam: faults applied to every node-to-node message this node
    /// sends (Raft, forwarded batches, heartbeats, joins, checksums). `None`
    /// in production: nothing is checked.
    faults: Option<FaultInjector>,
    /// Testing seam: the simulated one-way delay to each peer (see
    /// [`NodeConfig::testing_latency`]). `None` in production.
    latency: Option<Arc<dyn PeerLatency>>,
}

/// The cluster's stores as the allocator sees them: node descriptors,
/// liveness records and store capacity records, re-read by the background
/// loop every heartbeat.
struct NodeStorePool {
    clock: Arc<Hlc>,
    stores: RwLock<Vec<StoreDetail>>,
}

impl StorePool for NodeStorePool {
    fn stores(&self) -> Vec<StoreDetail> {
        self.stores.read().clone()
    }

    fn now(&self) -> tardigrade_hlc::Timestamp {
        self.clock.now()
    }
}

/// A running cluster node.
pub struct ClusterNode {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    serve: tokio::task::JoinHandle<Result<(), tardigrade_rpc::ServeError>>,
    _lock: Option<StoreLock>,
}

impl ClusterNode {
    /// Starts the node; returns once it listens (it may still be waiting
    /// for `init` or for its join to succeed: see [`ClusterNode::wait_ready`]).
    pub async fn start(cfg: NodeConfig) -> Result<ClusterNode, ServerError> {
        // The system clock (offset by a file in tests of real processes).
        Self::start_with_clock(cfg, tardigrade_hlc::physical_clock_from_env()).await
    }

    /// [`ClusterNode::start`] with the node's physical clock given (tests
    /// skew and jump it). Partitions come from the environment, as for
    /// [`ClusterNode::start`].
    pub async fn start_with_clock(
        cfg: NodeConfig,
        physical: Arc<dyn tardigrade_hlc::Clock>,
    ) -> Result<ClusterNode, ServerError> {
        // Unset (production): no fault injector at all. In tests of real
        // processes, a file lists the peers this node cannot reach.
        let faults = tardigrade_rpc::partition_file::partition_injector_from_env();
        Self::start_with_faults(cfg, physical, faults).await
    }

    /// [`ClusterNode::start_with_clock`] with every node-to-node message
    /// this node sends going through `faults` (tests of several nodes in
    /// one process partition them).
    pub async fn start_with_faults(
        cfg: NodeConfig,
        physical: Arc<dyn tardigrade_hlc::Clock>,
        faults: Option<FaultInjector>,
    ) -> Result<ClusterNode, ServerError> {
        let listener = tokio::net::TcpListener::bind(cfg.listen_addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: cfg.listen_addr,
                source,
                hint: "",
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: cfg.listen_addr,
            source,
            hint: "",
        })?;
        let lock = match &cfg.store {
            StoreSpec::Dir(path) => Some(StoreLock::acquire(path)?),
            StoreSpec::Memory => None,
        };
        cfg.store_config
            .replication
            .validate()
            .map_err(ServerError::Config)?;
        let engine = Engine::open(&cfg.store)?;
        let clock = Arc::new(Hlc::new(physical, tardigrade_hlc::DEFAULT_MAX_OFFSET));
        let directory = Arc::new(Directory::default());
        let latency = cfg.testing_latency.clone().map(|map| {
            Arc::new(LatencyByLocality {
                map,
                locality: cfg.locality.clone(),
                directory: Arc::downgrade(&directory),
            }) as Arc<dyn PeerLatency>
        });
        let shared = Arc::new(Shared {
            addr: local_addr.to_string(),
            locality: cfg.locality.clone(),
            join: cfg.join.clone(),
            engine: engine.clone(),
            clock: clock.clone(),
            store_config: cfg.store_config.clone(),
            ident: OnceLock::new(),
            store: OnceLock::new(),
            dist: OnceLock::new(),
            directory,
            first_range: RwLock::new(None),
            init_mu: tokio::sync::Mutex::new(()),
            ready: Notify::new(),
            tasks: Mutex::new(Vec::new()),
            pool: Arc::new(NodeStorePool {
                clock,
                stores: RwLock::new(Vec::new()),
            }),
            identity: Arc::new(NodeIdentity::new(env!("CARGO_PKG_VERSION"))),
            unknown_peers: Mutex::new(HashMap::new()),
            health: Arc::new(PeerHealth::default()),
            ping_clients: Mutex::new(HashMap::new()),
            pings_in_flight: Mutex::new(Default::default()),
            fatal: tokio::sync::watch::Sender::new(None),
            faults,
            latency,
        });
        shared.directory.set_self(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let serve = tokio::spawn(tardigrade_rpc::serve_node(
            listener,
            NodeServices {
                sender: Arc::new(Gateway(shared.clone())),
                raft: Arc::new(LateRaft(shared.clone())),
                node: Arc::new(Handler(shared.clone())),
                identity: shared.identity.clone(),
                peers: Arc::new(Peers(shared.clone())),
            },
            async {
                let _ = rx.await;
            },
        ));
        let http_addr = match cfg.http_addr {
            Some(addr) => Some(start_http(&shared, addr).await?),
            None => None,
        };
        let node = ClusterNode {
            shared: shared.clone(),
            local_addr,
            http_addr,
            shutdown: Some(tx),
            serve,
            _lock: lock,
        };
        // Under the init lock: an `init` served as soon as the node listens
        // (the nemesis harness sends one at once) writes the identity and
        // activates the node itself; reading that identity here and
        // activating a second time opened a second store, possibly before
        // the first range was written, which then won and left the node
        // without a first range for good ("the first range is not known
        // yet", the start-up race of `docs/nemesis-runs.md`).
        let init_guard = shared.init_mu.lock().await;
        if shared.ident.get().is_some() {
            drop(init_guard);
            return Ok(node);
        }
        match cluster::load_ident(&engine)? {
            Some(ident) => {
                // The peers this node knew, so that Raft can reach them
                // before anything can be read from KV.
                let known = shared.directory.load(&engine);
                tracing::info!(
                    node = ident.node_id,
                    known_nodes = known,
                    "restarting on an initialized store"
                );
                activate(&shared, ident).await?
            }
            None if !shared.join.is_empty() => {
                let s = shared.clone();
                let h = tokio::spawn(async move { join_loop(s).await });
                shared.tasks.lock().push(h);
            }
            None => {}
        }
        Ok(node)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    pub fn node_id(&self) -> Option<NodeId> {
        self.shared.ident.get().map(|i| i.node_id)
    }

    /// What this node stamps on its RPCs (cluster id, node id, version).
    /// Lists the locality tiers of every node this one knows (for the SQL
    /// layer, which checks zone constraints against them).
    pub fn locality_source(&self) -> Arc<dyn Fn() -> Vec<Vec<(String, String)>> + Send + Sync> {
        let directory = Arc::downgrade(&self.shared.directory);
        Arc::new(move || {
            directory.upgrade().map_or_else(Vec::new, |d| {
                d.nodes
                    .read()
                    .values()
                    .map(|n| n.locality.clone())
                    .collect()
            })
        })
    }

    pub fn identity(&self) -> Arc<NodeIdentity> {
        self.shared.identity.clone()
    }

    pub fn store(&self) -> Option<Arc<Store>> {
        self.shared.store.get().cloned()
    }

    /// A KV client that routes through this node's `DistSender`.
    pub fn db(&self) -> Option<Db> {
        let dist = self.shared.dist.get()?.clone();
        Some(Db::new(dist, self.shared.clock.clone()))
    }

    /// Resolves when the node must stop (its clock is too far from the
    /// cluster's), with the reason; never otherwise.
    pub async fn fatal(&self) -> String {
        let mut rx = self.shared.fatal.subscribe();
        loop {
            if let Some(msg) = rx.borrow_and_update().clone() {
                return msg;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits until the node has joined or bootstrapped a cluster.
    pub async fn wait_ready(&self) {
        loop {
            let notified = self.shared.ready.notified();
            if self.shared.store.get().is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Stops serving and waits for in-flight RPCs.
    pub async fn shutdown(mut self) {
        for t in self.shared.tasks.lock().drain(..) {
            t.abort();
        }
        if let Some(store) = self.shared.store.get() {
            store.stop();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Connections to peers hold their servers open (a graceful stop
        // waits for them) and those hold this node's state: drop ours.
        self.shared.ping_clients.lock().clear();
        self.shared.directory.senders.lock().clear();
        if tokio::time::timeout(crate::SHUTDOWN_GRACE, &mut self.serve)
            .await
            .is_err()
        {
            // Peers keep their connections to us open: stop serving them
            // anyway, so that the store is released (and can be opened
            // again by the same process).
            self.serve.abort();
        }
        if let Err(e) = self.shared.engine.close_cleanly() {
            tracing::warn!("store not marked as closed cleanly: {e}");
        }
    }
}

/// Opens the store under `ident` and starts the node's background work.
async fn activate(shared: &Arc<Shared>, ident: StoreIdent) -> Result<(), ServerError> {
    let resolver: Arc<dyn NodeResolver> = shared.directory.clone();
    shared.identity.set(ident.cluster_id, ident.node_id);
    let transport = GrpcRaftTransport::new(
        resolver,
        shared.faults.clone(),
        Some(shared.identity.clone()),
        shared.latency.clone(),
    )
    .map_err(|e| ServerError::Engine(tardigrade_storage::EngineError::Corrupt(e.to_string())))?;
    let mut cfg = shared.store_config.clone();
    cfg.node_id = ident.node_id;
    cfg.store_id = ident.store_id;
    cfg.transport = Some(transport);
    cfg.bootstrap_single_node = false;
    let store = Store::open(shared.engine.clone(), shared.clock.clone(), cfg)?;
    let health: Arc<dyn NodeHealth> = Arc::new(HealthOf(shared.health.clone()));
    let dist = Arc::new(
        DistSender::new(
            shared.directory.clone(),
            Arc::new(FirstRangeOf(Arc::downgrade(shared))),
        )
        .with_health(health),
    );
    // Pushes, intent resolution and splits reach other ranges through the
    // node's DistSender (which routes to this store directly).
    store.set_cluster_sender(dist.clone());
    let _ = shared.ident.set(ident.clone());
    let _ = shared.dist.set(dist.clone());
    let settings = shared.store_config.replication.clone();
    let queue = tokio::spawn(tardigrade_kvserver::replicate_queue::run(
        Arc::downgrade(&store),
        shared.pool.clone(),
        settings.clone(),
        settings.queue_interval,
    ));
    shared.tasks.lock().push(queue);
    let checker = tardigrade_kvserver::consistency::spawn_queue(
        Arc::downgrade(&store),
        Arc::new(checksum_peers(shared)),
        crate::consistency::CHECK_INTERVAL,
        crate::consistency::CHECK_PACE,
    );
    shared.tasks.lock().push(checker);
    let _ = shared.store.set(store);
    shared.ready.notify_waiters();
    tracing::info!(node = ident.node_id, cluster = %ident.cluster_id_string(), "node ready");
    let db = Db::new(dist, shared.clock.clone());
    let me = NodeDescriptor {
        node_id: ident.node_id,
        address: shared.addr.clone(),
        locality: shared.locality.clone(),
        build_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    shared.directory.insert(me.clone());
    let s = shared.clone();
    let h = tokio::spawn(async move { background(s, db, me).await });
    shared.tasks.lock().push(h);
    let s = shared.clone();
    let h = tokio::spawn(async move { heartbeat_loop(s).await });
    shared.tasks.lock().push(h);
    let s = shared.clone();
    let h = tokio::spawn(async move { watch_clock(s).await });
    shared.tasks.lock().push(h);
    Ok(())
}

/// Reads the clock every 50 ms so that a backward jump beyond the maximum
/// offset is seen while it still shows (the gap closes as time goes on)
/// even on an idle node; the heartbeat loop stops the node on it.
async fn watch_clock(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        if shared.clock.backward_jump().is_some() {
            return;
        }
    }
}

/// Pings every known node and `--join` address each
/// [`heartbeat::PING_INTERVAL`]: spreads node descriptors and the first
/// range, records which peers answer and how far their clocks are, wakes
/// the ranges led by peers that stopped answering, persists the directory
/// when it changed, and stops the node if its clock is the odd one out.
async fn heartbeat_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(heartbeat::PING_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut woken_for: Vec<NodeId> = Vec::new();
    loop {
        tick.tick().await;
        let me = shared.ident.get().map(|i| i.node_id).unwrap_or_default();
        let mut targets: Vec<(Option<NodeId>, String)> = shared
            .directory
            .nodes
            .read()
            .values()
            .filter(|d| d.node_id != me && !d.address.is_empty())
            .map(|d| (Some(d.node_id), d.address.clone()))
            .collect();
        for addr in &shared.join {
            if *addr != shared.addr && !targets.iter().any(|(_, a)| a == addr) {
                targets.push((None, addr.clone()));
            }
        }
        let known = shared.directory.encoded();
        // Each peer on its own: a frozen one (its pings take the whole
        // timeout) must not delay the heartbeats of the others.
        for (id, addr) in targets {
            if !shared.pings_in_flight.lock().insert(addr.clone()) {
                continue;
            }
            let s = shared.clone();
            let known = known.clone();
            tokio::spawn(async move {
                ping_peer(&s, id, addr.clone(), known).await;
                s.pings_in_flight.lock().remove(&addr);
            });
        }
        shared.directory.persist_if_changed(&shared.engine);
        let unreachable = shared.health.unreachable_nodes();
        if let Some(store) = shared.store.get() {
            // Once per node going away, not every round it stays away.
            let newly: Vec<NodeId> = unreachable
                .iter()
                .copied()
                .filter(|n| !woken_for.contains(n))
                .collect();
            let woke = store.wake_ranges_led_by(&newly);
            if woke > 0 {
                tracing::info!(nodes = ?newly, ranges = woke, "woke ranges led by unreachable nodes");
            }
        }
        woken_for = unreachable;
        let verdict = match shared.clock.backward_jump() {
            Some(jump) => ClockVerdict::Fatal(format!(
                "clock synchronization error: this node's clock jumped back by {} ms, more than the maximum offset of {} ms; \
                 its leases could outlast the others' view of them: fix its clock (NTP) and restart it",
                jump.as_millis(),
                shared.clock.max_offset().as_millis()
            )),
            None => shared.health.clock_verdict(shared.clock.max_offset()),
        };
        match verdict {
            ClockVerdict::Healthy => {}
            ClockVerdict::Suspect(msg) => tracing::warn!("{msg}"),
            ClockVerdict::Fatal(msg) => {
                tracing::error!("{msg}");
                if let Some(store) = shared.store.get() {
                    // Serve nothing more: no lease this clock cannot honour.
                    store.stop();
                }
                shared.fatal.send_replace(Some(msg));
                return;
            }
        }
    }
}

/// One heartbeat to the node at `addr` (`id` if known).
async fn ping_peer(shared: &Arc<Shared>, id: Option<NodeId>, addr: String, known: Vec<Vec<u8>>) {
    if shared.cut_off_from(id, &addr) {
        if let Some(id) = id {
            shared.health.record_failure(id);
        }
        return;
    }
    let client = {
        let mut clients = shared.ping_clients.lock();
        match clients.get(&addr) {
            Some(c) => c.clone(),
            None => {
                let Ok(c) = NodeClient::connect_lazy(&addr) else {
                    return;
                };
                let c = c.with_identity(shared.identity.clone());
                clients.insert(addr.clone(), c.clone());
                c
            }
        }
    };
    let delay = match (&shared.latency, id) {
        (Some(l), Some(id)) => l.delay_to(id),
        _ => Duration::ZERO,
    };
    let sent = shared.clock.physical_now();
    let timer = std::time::Instant::now();
    let answer = tokio::time::timeout(heartbeat::PING_TIMEOUT, async {
        if delay.is_zero() {
            return client.ping(known).await;
        }
        // Simulated distance, both ways (symmetric: the clock offset
        // estimate from the round trip stays right).
        tokio::time::sleep(delay).await;
        let answer = client.ping(known).await;
        tokio::time::sleep(delay).await;
        answer
    })
    .await;
    let rtt = i64::try_from(timer.elapsed().as_nanos()).unwrap_or(i64::MAX);
    let failed = || {
        if let Some(id) = id {
            shared.health.record_failure(id);
        }
    };
    let reply = match answer {
        Ok(Ok(r)) => r,
        Ok(Err(NodeError::Refused(msg))) => {
            tracing::error!(peer = %addr, "peer refused this node's heartbeat: {msg}");
            return failed();
        }
        _ => return failed(),
    };
    let mine = shared.identity.cluster_id();
    if reply.node_id == 0
        || id.is_some_and(|id| id != reply.node_id)
        || mine.is_some_and(|c| c.as_slice() != reply.cluster_id.as_slice())
    {
        // Not (or no longer) the node we know at this address: nothing to
        // learn, and the node we expected did not answer.
        return failed();
    }
    // A node is the authority on its own descriptor; what it relays about
    // others only fills gaps (KV's records correct the rest).
    shared.directory.learn(&reply.nodes, Some(reply.node_id));
    if shared.local_first_range().is_none()
        && let Ok(d) = RangeDescriptor::decode(&reply.first_range)
    {
        let mut first = shared.first_range.write();
        if first.as_ref().is_none_or(|f| f.generation <= d.generation) {
            *first = Some(d);
        }
    }
    shared.health.record_ok(
        reply.node_id,
        ClockOffset::from_round_trip(sent, rtt, reply.wall_nanos),
    );
}

/// The heartbeats' view of other nodes, for `DistSender`.
struct HealthOf(Arc<PeerHealth>);

impl NodeHealth for HealthOf {
    fn is_unreachable(&self, node: NodeId) -> bool {
        self.0.is_unreachable(node)
    }
}

/// Keeps this node's descriptor and liveness record current, and the
/// directory of other nodes and the first range fresh.
async fn background(shared: Arc<Shared>, db: Db, me: NodeDescriptor) {
    let mut published = false;
    let mut epoch = 0u64;
    let mut tick = tokio::time::interval(LIVENESS_HEARTBEAT);
    loop {
        tick.tick().await;
        if !published {
            published = db
                .put(&NodeDescriptor::key(me.node_id), &me.encode())
                .await
                .is_ok();
        }
        epoch = heartbeat_liveness(&db, me.node_id, epoch)
            .await
            .unwrap_or(epoch);
        if let Ok(rows) = db
            .scan(
                cluster::NODE_DESC_PREFIX,
                &tardigrade_encoding::keys::prefix_end(cluster::NODE_DESC_PREFIX),
                0,
            )
            .await
        {
            for kv in rows {
                if let Some(d) = NodeDescriptor::decode(&kv.value.bytes) {
                    shared.directory.insert(d);
                }
            }
        }
        if let Some(store) = shared.store.get() {
            let cap = capacity_of(store, shared.clock.now());
            let _ = db
                .put(&StoreCapacity::key(cap.store_id), &cap.encode())
                .await;
        }
        refresh_store_pool(&shared, &db).await;
    }
}

/// This store's range and lease counts.
fn capacity_of(store: &Store, now: tardigrade_hlc::Timestamp) -> StoreCapacity {
    let replicas = store.replicas();
    let lease_count = replicas
        .iter()
        .filter(|r| {
            // Leases follow Raft leadership; an idle range lets its lease
            // lapse but keeps its leader.
            let l = r.lease();
            (l.replica.store_id == store.store_id() && l.covers(now, now)) || r.is_raft_leader()
        })
        .count() as u64;
    StoreCapacity {
        node_id: store.node_id(),
        store_id: store.store_id(),
        range_count: replicas.iter().filter(|r| r.is_initialized()).count() as u64,
        lease_count,
    }
}

/// Re-reads the liveness and store capacity records into the store pool.
async fn refresh_store_pool(shared: &Shared, db: &Db) {
    let end = tardigrade_encoding::keys::prefix_end;
    let (live_p, caps_p) = (
        tardigrade_encoding::keys::NODE_LIVENESS_PREFIX,
        cluster::STORE_DESC_PREFIX,
    );
    let (Ok(liveness), Ok(caps)) = (
        db.scan(live_p, &end(live_p), 0).await,
        db.scan(caps_p, &end(caps_p), 0).await,
    ) else {
        return;
    };
    let liveness: HashMap<NodeId, Liveness> = liveness
        .iter()
        .filter_map(|kv| Liveness::decode(&kv.value.bytes))
        .map(|l| (l.node_id, l))
        .collect();
    let nodes = shared.directory.nodes.read().clone();
    let stores = caps
        .iter()
        .filter_map(|kv| StoreCapacity::decode(&kv.value.bytes))
        .map(|c| StoreDetail {
            node_id: c.node_id,
            store_id: c.store_id,
            locality: nodes
                .get(&c.node_id)
                .map(|d| d.locality.clone())
                .unwrap_or_default(),
            range_count: c.range_count,
            lease_count: c.lease_count,
            liveness_expiration: liveness
                .get(&c.node_id)
                .map(|l| l.expiration)
                .unwrap_or_default(),
        })
        .collect();
    *shared.pool.stores.write() = stores;
}

/// Extends this node's liveness record (a new epoch if it had expired).
async fn heartbeat_liveness(db: &Db, node_id: NodeId, epoch: u64) -> Result<u64, KvError> {
    let key = tardigrade_encoding::keys::node_liveness_key(node_id);
    let now = db.now();
    let mut txn = db.txn("liveness");
    let current = txn.get(&key).await?.and_then(|b| Liveness::decode(&b));
    let epoch = match current {
        Some(l) if l.is_live(now) && l.epoch == epoch && epoch != 0 => epoch,
        Some(l) => l.epoch + 1,
        None => 1,
    };
    let rec = Liveness {
        node_id,
        epoch,
        expiration: now.add_duration(LIVENESS_TTL),
    };
    txn.put(&key, &rec.encode()).await?;
    txn.commit().await?;
    Ok(epoch)
}

/// Retries joining through the `--join` addresses until one admits us (or
/// `init` makes this node the first of a new cluster).
async fn join_loop(shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        if shared.ident.get().is_some() {
            return;
        }
        for addr in shared.join.clone() {
            if addr == shared.addr || shared.cut_off_from(None, &addr) {
                continue;
            }
            let Ok(client) = NodeClient::connect_lazy(&addr) else {
                continue;
            };
            let client = client.with_identity(shared.identity.clone());
            let locality = NodeDescriptor {
                locality: shared.locality.clone(),
                ..Default::default()
            }
            .locality_string();
            let grant = tokio::time::timeout(
                Duration::from_secs(5),
                client.join(&shared.addr, &locality, env!("CARGO_PKG_VERSION")),
            )
            .await;
            match grant {
                Ok(Ok(g)) => match admit(&shared, g).await {
                    Ok(()) => return,
                    Err(e) => tracing::error!(error = %e, "cannot start after joining"),
                },
                Ok(Err(NodeError::Refused(msg))) => {
                    tracing::error!(peer = %addr, "join refused: {msg}");
                }
                Ok(Err(e)) => tracing::debug!(peer = %addr, error = %e, "join not possible yet"),
                Err(_) => tracing::debug!(peer = %addr, "join timed out"),
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(3));
    }
}

async fn admit(shared: &Arc<Shared>, g: JoinGrant) -> Result<(), ServerError> {
    let _g = shared.init_mu.lock().await;
    if shared.ident.get().is_some() {
        return Ok(());
    }
    let Ok(cluster_id) = <[u8; 16]>::try_from(g.cluster_id.as_slice()) else {
        return Err(corrupt("join grant carries a malformed cluster id"));
    };
    let ident = StoreIdent {
        cluster_id,
        node_id: g.node_id,
        store_id: g.store_id,
    };
    if let Ok(d) = RangeDescriptor::decode(&g.first_range) {
        *shared.first_range.write() = Some(d);
    }
    shared.directory.insert_encoded(&g.nodes);
    let mut ws = tardigrade_storage::batch::WriteSet::default();
    ws.put(Space::Raw, cluster::STORE_IDENT_KEY, &ident.encode());
    shared.engine.commit(&ws, true)?;
    activate(shared, ident).await
}

fn corrupt(msg: &str) -> ServerError {
    ServerError::Engine(tardigrade_storage::EngineError::Corrupt(msg.to_string()))
}

impl Shared {
    fn store_or_unavailable(&self) -> Result<&Arc<Store>, KvError> {
        self.store.get().ok_or_else(|| {
            KvError::new(ErrorDetail::Unavailable(
                "node is not part of an initialized cluster yet (run `tardigrade init`)".into(),
            ))
        })
    }

    /// The first range's descriptor from this store's own replica, if any.
    fn local_first_range(&self) -> Option<RangeDescriptor> {
        self.store
            .get()?
            .replica(1)
            .filter(|r| r.is_initialized())
            .map(|r| r.desc())
    }

    /// This node's id (0 before it has one).
    fn node_id(&self) -> NodeId {
        self.ident.get().map(|i| i.node_id).unwrap_or_default()
    }

    /// Whether an injected partition cuts this node off from the peer at
    /// `addr` (node `to` when known). Always false in production.
    fn cut_off_from(&self, to: Option<NodeId>, addr: &str) -> bool {
        self.faults
            .as_ref()
            .is_some_and(|f| f.is_cut(self.node_id(), to.unwrap_or_default(), addr))
    }
}

/// Client batches (no range id) go through `DistSender`; node-to-node
/// batches (range id set by a `DistSender`) are served by the local store.
struct Gateway(Arc<Shared>);

impl Sender for Gateway {
    fn send(&self, ba: BatchRequest) -> SendFuture<'_> {
        Box::pin(async move {
            let store = self.0.store_or_unavailable()?;
            if ba.header.range_id != 0 {
                return store.execute(ba).await;
            }
            match self.0.dist.get() {
                Some(d) => d.send(ba).await,
                None => Err(KvError::new(ErrorDetail::Unavailable(
                    "node starting".into(),
                ))),
            }
        })
    }
}

struct LateRaft(Arc<Shared>);

impl RaftHandler for LateRaft {
    fn handle_raft_batch(&self, batch: RaftMessageBatch) -> Result<(), KvError> {
        self.0.store_or_unavailable()?.handle_raft_batch(batch)
    }
}

struct Handler(Arc<Shared>);

fn not_ready() -> NodeError {
    NodeError::NotReady("the node has no store yet".into())
}

fn checksum_peers(shared: &Shared) -> crate::consistency::RpcChecksumPeers {
    crate::consistency::RpcChecksumPeers {
        resolver: shared.directory.clone(),
        identity: shared.identity.clone(),
        faults: shared.faults.clone(),
    }
}

impl NodeHandler for Handler {
    fn bootstrap(&self) -> NodeFuture<'_, (Vec<u8>, u64)> {
        Box::pin(async move {
            let shared = &self.0;
            let _g = shared.init_mu.lock().await;
            if shared.ident.get().is_some()
                || cluster::load_ident(&shared.engine)
                    .map_err(|e| NodeError::Other(e.to_string()))?
                    .is_some()
            {
                return Err(NodeError::AlreadyInitialized);
            }
            // A node told to join others must not found a second cluster
            // when one of them already belongs to one: it joins that instead.
            for addr in shared
                .join
                .iter()
                .filter(|a| **a != shared.addr && !shared.cut_off_from(None, a))
            {
                let Ok(client) = NodeClient::connect_lazy(addr) else {
                    continue;
                };
                let client = client.with_identity(shared.identity.clone());
                if let Ok(Ok(Some(_))) =
                    tokio::time::timeout(Duration::from_secs(2), client.first_range()).await
                {
                    return Err(NodeError::AlreadyInitialized);
                }
            }
            let ident = StoreIdent {
                cluster_id: rand::random(),
                node_id: 1,
                store_id: 1,
            };
            let first = Store::single_node_descriptor(1, 1);
            let me = NodeDescriptor {
                node_id: 1,
                address: shared.addr.clone(),
                locality: shared.locality.clone(),
                build_version: env!("CARGO_PKG_VERSION").to_string(),
            };
            let mut b = shared.engine.batch();
            cluster::write_bootstrap_data(&mut b, &ident, &first, &me, shared.clock.now())
                .map_err(|e| NodeError::Other(e.to_string()))?;
            shared
                .engine
                .commit(b.writes(), true)
                .map_err(|e| NodeError::Other(e.to_string()))?;
            Store::bootstrap(&shared.engine, &[first])
                .map_err(|e| NodeError::Other(e.to_string()))?;
            // Still under the init lock: the node's start must not activate
            // the half-written store it may read meanwhile.
            activate(shared, ident.clone())
                .await
                .map_err(|e| NodeError::Other(e.to_string()))?;
            drop(_g);
            initial_splits(shared).await;
            Ok((ident.cluster_id.to_vec(), 1))
        })
    }

    fn join(
        &self,
        address: String,
        locality: String,
        binary_version: String,
    ) -> NodeFuture<'_, JoinGrant> {
        Box::pin(async move {
            let shared = &self.0;
            let (Some(ident), Some(dist)) = (shared.ident.get(), shared.dist.get()) else {
                return Err(NodeError::NotReady(
                    "this node has not joined a cluster yet".into(),
                ));
            };
            if major_minor(&binary_version) != major_minor(env!("CARGO_PKG_VERSION")) {
                return Err(NodeError::Refused(format!(
                    "binary version {binary_version} is incompatible with the cluster's {}",
                    env!("CARGO_PKG_VERSION")
                )));
            }
            let locality = cluster::parse_locality(&locality).map_err(NodeError::Refused)?;
            let db = Db::new(dist.clone(), shared.clock.clone());
            let kv = |e: KvError| NodeError::NotReady(e.to_string());
            let node_id = db
                .inc(tardigrade_encoding::keys::NODE_ID_GENERATOR, 1)
                .await
                .map_err(kv)?;
            let store_id = db
                .inc(tardigrade_encoding::keys::STORE_ID_GENERATOR, 1)
                .await
                .map_err(kv)?;
            let desc = NodeDescriptor {
                node_id: node_id as u64,
                address,
                locality,
                build_version: binary_version,
            };
            db.put(&NodeDescriptor::key(desc.node_id), &desc.encode())
                .await
                .map_err(kv)?;
            shared.directory.insert(desc);
            let first = shared
                .local_first_range()
                .or_else(|| shared.first_range.read().clone())
                .map(|d| d.encode())
                .unwrap_or_default();
            tracing::info!(node = node_id, "admitted a new node");
            Ok(JoinGrant {
                cluster_id: ident.cluster_id.to_vec(),
                node_id: node_id as u64,
                store_id: store_id as u64,
                first_range: first,
                nodes: shared.directory.encoded(),
            })
        })
    }

    fn collect_checksum(&self, range_id: u64, checksum_id: u64) -> NodeFuture<'_, (u64, Vec<u8>)> {
        Box::pin(async move {
            let store = self.0.store.get().ok_or_else(not_ready)?;
            crate::consistency::collect_checksum(store, range_id, checksum_id).await
        })
    }

    fn fence_replica(&self, range_id: u64, reason: String) -> NodeFuture<'_, ()> {
        Box::pin(async move {
            let store = self.0.store.get().ok_or_else(not_ready)?;
            crate::consistency::fence_replica(store, range_id, reason)
        })
    }

    fn check_consistency(&self) -> NodeFuture<'_, (u64, Vec<tardigrade_rpc::RangeConsistency>)> {
        Box::pin(async move {
            let store = self.0.store.get().ok_or_else(not_ready)?;
            let peers = checksum_peers(&self.0);
            let ranges = crate::consistency::check_consistency(store, &peers).await;
            Ok((store.node_id(), ranges))
        })
    }

    fn ranges(&self) -> (u64, Vec<tardigrade_rpc::RangeInfo>) {
        let Some(store) = self.0.store.get() else {
            return (0, Vec::new());
        };
        let now = self.0.clock.now();
        let ranges = store
            .replicas()
            .iter()
            .filter(|r| r.is_initialized())
            .map(|r| {
                let d = r.desc();
                let l = r.lease();
                let st = r.stats();
                tardigrade_rpc::RangeInfo {
                    range_id: d.range_id,
                    start_key: d.start_key,
                    end_key: d.end_key,
                    lease_node: l.replica.node_id,
                    lease_store: l.replica.store_id,
                    lease_valid: l.replica.node_id != 0 && l.covers(now, now),
                    lease_sequence: l.sequence,
                    raft_leader: r.is_raft_leader(),
                    live_bytes: st.live_bytes,
                    key_bytes: st.key_bytes,
                    val_bytes: st.val_bytes,
                    live_count: st.live_count,
                }
            })
            .collect();
        (store.node_id(), ranges)
    }

    fn ping(&self, nodes: Vec<Vec<u8>>) -> PingReply {
        let shared = &self.0;
        let Some(ident) = shared.ident.get() else {
            return PingReply::default();
        };
        shared.directory.learn(&nodes, None);
        PingReply {
            node_id: ident.node_id,
            wall_nanos: shared.clock.physical_now(),
            cluster_id: ident.cluster_id.to_vec(),
            nodes: shared.directory.encoded(),
            first_range: shared
                .local_first_range()
                .or_else(|| shared.first_range.read().clone())
                .map(|d| d.encode())
                .unwrap_or_default(),
        }
    }

    fn first_range(&self) -> Option<JoinGrant> {
        let ident = self.0.ident.get()?;
        let d = self
            .0
            .local_first_range()
            .or_else(|| self.0.first_range.read().clone())?;
        Some(JoinGrant {
            cluster_id: ident.cluster_id.to_vec(),
            first_range: d.encode(),
            nodes: self.0.directory.encoded(),
            ..JoinGrant::default()
        })
    }
}

/// Splits a new cluster's key space at the configured keys (meta, system
/// and table data as separate ranges). Best effort: a split that keeps
/// failing is logged and the cluster works with fewer ranges.
async fn initial_splits(shared: &Arc<Shared>) {
    let Some(dist) = shared.dist.get() else {
        return;
    };
    let db = Db::new(dist.clone(), shared.clock.clone());
    for key in &shared.store_config.bootstrap_split_keys {
        let mut attempt = 0;
        loop {
            match db.admin_split(key).await {
                Ok(_) => break,
                Err(e) if attempt < 20 => {
                    tracing::debug!(error = %e, "initial split failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    tracing::warn!(
                        key = %tardigrade_encoding::pretty_key(key),
                        error = %e,
                        "initial split failed"
                    );
                    break;
                }
            }
        }
    }
}

fn major_minor(v: &str) -> (String, String) {
    let mut p = v.split('.');
    (
        p.next().unwrap_or_default().to_string(),
        p.next().unwrap_or_default().to_string(),
    )
}

/// Whether a node id that a request from this cluster claims is one the
/// cluster knows: in the directory, or (looked up, then cached) a node
/// descriptor in KV. A lookup that cannot finish lets the request through
/// (only a definite "no such node" refuses).
/// TODO(issue 3): refuse decommissioned nodes too (no decommissioning yet),
/// and check that the claimed id matches the peer's address.
struct Peers(Arc<Shared>);

/// How long a node id refused as unknown is refused without a new lookup.
const UNKNOWN_PEER_MEMORY: Duration = Duration::from_secs(5);

impl PeerCheck for Peers {
    fn check_node(&self, node_id: u64) -> PeerFuture<'_> {
        Box::pin(async move {
            let shared = &self.0;
            let cluster = shared
                .ident
                .get()
                .map(StoreIdent::cluster_id_string)
                .unwrap_or_default();
            if shared.ident.get().is_some_and(|i| i.node_id == node_id) {
                return Err(format!(
                    "refusing RPC from a node claiming id n{node_id}, which is this node's id (cluster {cluster})"
                ));
            }
            if shared.directory.nodes.read().contains_key(&node_id) {
                return Ok(());
            }
            let unknown =
                || format!("refusing RPC from node n{node_id}: no such node in cluster {cluster}");
            if let Some(at) = shared.unknown_peers.lock().get(&node_id)
                && at.elapsed() < UNKNOWN_PEER_MEMORY
            {
                return Err(unknown());
            }
            let Some(dist) = shared.dist.get() else {
                return Ok(());
            };
            let db = Db::new(dist.clone(), shared.clock.clone());
            let key = NodeDescriptor::key(node_id);
            match tokio::time::timeout(Duration::from_secs(1), db.get(&key)).await {
                Ok(Ok(Some(v))) => {
                    if let Some(d) = NodeDescriptor::decode(&v) {
                        shared.directory.insert(d);
                    }
                    Ok(())
                }
                Ok(Ok(None)) => {
                    shared
                        .unknown_peers
                        .lock()
                        .insert(node_id, std::time::Instant::now());
                    Err(unknown())
                }
                Ok(Err(e)) => {
                    tracing::debug!(node_id, error = %e, "cannot look up a peer's node id");
                    Ok(())
                }
                Err(_) => Ok(()),
            }
        })
    }
}

/// Weak: the store holds the node's `DistSender`, which holds this.
struct FirstRangeOf(std::sync::Weak<Shared>);

impl FirstRange for FirstRangeOf {
    fn first_range(&self) -> Option<RangeDescriptor> {
        let shared = self.0.upgrade()?;
        shared
            .local_first_range()
            .or_else(|| shared.first_range.read().clone())
    }
}

/// Node id → address, from node descriptors; dials peers over gRPC and
/// this node's own store directly.
#[derive(Default)]
struct Directory {
    nodes: RwLock<HashMap<NodeId, NodeDescriptor>>,
    senders: Mutex<HashMap<NodeId, Arc<dyn Sender>>>,
    me: OnceLock<std::sync::Weak<Shared>>,
    /// A descriptor was added or changed since the directory was persisted.
    changed: std::sync::atomic::AtomicBool,
}

impl Directory {
    fn set_self(&self, shared: Arc<Shared>) {
        let _ = self.me.set(Arc::downgrade(&shared));
    }

    fn insert(&self, d: NodeDescriptor) {
        if d.node_id == 0 {
            return;
        }
        let mut nodes = self.nodes.write();
        match nodes.get(&d.node_id) {
            Some(old) if *old == d => return,
            Some(old) if old.address != d.address => {
                self.senders.lock().remove(&d.node_id);
            }
            _ => {}
        }
        nodes.insert(d.node_id, d);
        self.changed
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Loads the descriptors persisted in the store; returns how many. A
    /// record that does not decode is ignored (it is only a cache: the
    /// `--join` addresses and the peers' answers rebuild it).
    fn load(&self, engine: &Engine) -> usize {
        let raw = match engine.get(Space::Raw, heartbeat::DIRECTORY_KEY) {
            Ok(Some(raw)) => raw,
            Ok(None) => return 0,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the persisted node directory");
                return 0;
            }
        };
        let Some(list) = decode_list(&raw) else {
            tracing::warn!("the persisted node directory is malformed; ignoring it");
            return 0;
        };
        self.insert_encoded(&list);
        list.len()
    }

    /// Writes the directory to the store if it changed since the last time.
    fn persist_if_changed(&self, engine: &Engine) {
        if !self
            .changed
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        let mut ws = tardigrade_storage::batch::WriteSet::default();
        ws.put(
            Space::Raw,
            heartbeat::DIRECTORY_KEY,
            &encode_list(&self.encoded()),
        );
        if let Err(e) = engine.commit(&ws, false) {
            tracing::warn!(error = %e, "cannot persist the node directory");
            self.changed
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Descriptors heard from a peer's heartbeat: `authority`'s own
    /// descriptor replaces what we have; the others only fill gaps (a
    /// relayed view may be stale), and never this node's own entry nor past
    /// [`MAX_DIRECTORY`] entries.
    fn learn(&self, nodes: &[Vec<u8>], authority: Option<NodeId>) {
        let me = self
            .me
            .get()
            .and_then(std::sync::Weak::upgrade)
            .and_then(|s| s.ident.get().map(|i| i.node_id));
        for d in nodes.iter().filter_map(|n| NodeDescriptor::decode(n)) {
            if Some(d.node_id) == me {
                continue;
            }
            if Some(d.node_id) == authority {
                self.insert(d);
                continue;
            }
            let absent = {
                let known = self.nodes.read();
                !known.contains_key(&d.node_id) && known.len() < MAX_DIRECTORY
            };
            if absent {
                self.insert(d);
            }
        }
    }

    fn insert_encoded(&self, nodes: &[Vec<u8>]) {
        for n in nodes {
            if let Some(d) = NodeDescriptor::decode(n) {
                self.insert(d);
            }
        }
    }

    fn encoded(&self) -> Vec<Vec<u8>> {
        self.nodes
            .read()
            .values()
            .map(NodeDescriptor::encode)
            .collect()
    }
}

/// At most this many nodes are learned from heartbeats (KV's records and
/// joins are not limited): a peer cannot make a node ping without end.
const MAX_DIRECTORY: usize = 1024;

/// Length-prefixed byte strings.
fn encode_list(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(items.len() as u32).to_be_bytes());
    for i in items {
        out.extend_from_slice(&(i.len() as u32).to_be_bytes());
        out.extend_from_slice(i);
    }
    out
}

fn decode_list(mut buf: &[u8]) -> Option<Vec<Vec<u8>>> {
    let take_u32 = |buf: &mut &[u8]| -> Option<usize> {
        let (head, rest) = buf.split_first_chunk::<4>()?;
        *buf = rest;
        Some(u32::from_be_bytes(*head) as usize)
    };
    let n = take_u32(&mut buf)?;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let len = take_u32(&mut buf)?;
        if buf.len() < len {
            return None;
        }
        let (item, rest) = buf.split_at(len);
        out.push(item.to_vec());
        buf = rest;
    }
    buf.is_empty().then_some(out)
}

/// The simulated one-way delay from this node to a peer: the map's delay
/// between this node's region and the peer's (from its descriptor).
struct LatencyByLocality {
    map: Arc<LatencyMap>,
    locality: Vec<(String, String)>,
    directory: std::sync::Weak<Directory>,
}

impl PeerLatency for LatencyByLocality {
    fn delay_to(&self, node: NodeId) -> Duration {
        let Some(directory) = self.directory.upgrade() else {
            return Duration::ZERO;
        };
        let nodes = directory.nodes.read();
        nodes
            .get(&node)
            .map(|d| self.map.one_way(&self.locality, &d.locality))
            .unwrap_or_default()
    }
}

impl NodeResolver for Directory {
    fn resolve(&self, node: NodeId) -> Option<String> {
        self.nodes.read().get(&node).map(|d| d.address.clone())
    }
}

impl NodeDialer for Directory {
    fn dial(&self, node: NodeId) -> Result<Arc<dyn Sender>, KvError> {
        if let Some(shared) = self.me.get().and_then(std::sync::Weak::upgrade)
            && shared.ident.get().is_some_and(|i| i.node_id == node)
            && let Some(store) = shared.store.get()
        {
            return Ok(store.clone());
        }
        if let Some(s) = self.senders.lock().get(&node) {
            return Ok(s.clone());
        }
        let addr = self.resolve(node).ok_or_else(|| {
            KvError::new(ErrorDetail::Unavailable(format!(
                "address of node {node} unknown"
            )))
        })?;
        let mut sender = RpcSender::connect_lazy(&addr)?;
        let shared = self.me.get().and_then(std::sync::Weak::upgrade);
        if let Some(shared) = &shared {
            sender = sender.with_identity(shared.identity.clone());
        }
        let mut s: Arc<dyn Sender> = Arc::new(sender);
        if let Some(shared) = &shared
            && let Some(faults) = &shared.faults
        {
            s = faults.wrap_sender(s, shared.node_id(), node, &addr);
        }
        if let Some(shared) = &shared
            && let Some(latency) = &shared.latency
        {
            s = Arc::new(DelayedSender::new(s, node, latency.clone()));
        }
        self.senders.lock().insert(node, s.clone());
        Ok(s)
    }
}

async fn start_http(shared: &Arc<Shared>, addr: SocketAddr) -> Result<SocketAddr, ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr,
            source,
            hint: "",
        })?;
    let bound = listener.local_addr().map_err(|source| ServerError::Bind {
        addr,
        source,
        hint: "",
    })?;
    let s = shared.clone();
    let handler: crate::http::Handler = Arc::new(move |path| match path {
        "/health" => crate::http::Reply::text(200, "ok\n"),
        "/_status/vars" => crate::http::Reply {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: render_metrics(&s),
        },
        _ => crate::http::Reply::text(404, "not found\n"),
    });
    let h = tokio::spawn(crate::http::serve(
        listener,
        handler,
        std::future::pending(),
    ));
    shared.tasks.lock().push(h);
    Ok(bound)
}

fn render_metrics(shared: &Shared) -> String {
    let mut p = crate::http::PromText::default();
    let Some(store) = shared.store.get() else {
        p.metric(
            "node_ready",
            "gauge",
            "Whether the node has joined a cluster.",
            0.0,
        );
        return p.finish();
    };
    p.metric(
        "node_ready",
        "gauge",
        "Whether the node has joined a cluster.",
        1.0,
    );
    p.metric(
        "peers_unreachable",
        "gauge",
        "Peers whose heartbeats have failed for 1.5 s or more.",
        shared.health.unreachable_nodes().len() as f64,
    );
    let mut offsets: Vec<(String, f64)> = shared
        .health
        .offsets()
        .into_iter()
        .map(|(n, o)| (format!("peer=\"n{n}\""), o.offset_nanos as f64 / 1e9))
        .collect();
    offsets.sort_by(|a, b| a.0.cmp(&b.0));
    p.labeled(
        "clock_offset_seconds",
        "gauge",
        "Each peer's clock minus this node's, estimated from the heartbeats.",
        &offsets,
    );
    let replicas = store.replicas();
    let now = shared.clock.now();
    let leaseholders = replicas
        .iter()
        .filter(|r| {
            let l = r.lease();
            l.replica.store_id == store.store_id() && l.covers(now, now)
        })
        .count();
    let store_count = shared.pool.stores.read().len().max(1);
    let configs = store.span_configs();
    let under = replicas
        .iter()
        .filter(|r| r.is_initialized() && r.is_raft_leader())
        .filter(|r| {
            let d = r.desc();
            d.voters().count()
                < tardigrade_kvserver::allocator::needed_voters(
                    &configs.config_for(&d),
                    store_count,
                )
        })
        .count();
    let stats = store.stats();
    p.metric(
        "ranges",
        "gauge",
        "Replicas on this store.",
        replicas.len() as f64,
    );
    p.metric(
        "replicas_leaseholders",
        "gauge",
        "Replicas holding a valid lease.",
        leaseholders as f64,
    );
    p.metric(
        "ranges_underreplicated",
        "gauge",
        "Ranges led here with fewer voters than the allocator wants.",
        under as f64,
    );
    p.metric(
        "ranges_inconsistent",
        "counter",
        "Replicas this node's consistency checks found diverged (and fenced).",
        tardigrade_kvserver::consistency::ranges_inconsistent() as f64,
    );
    p.metric(
        "livebytes",
        "gauge",
        "Live key and value bytes.",
        stats.live_bytes as f64,
    );
    p.metric("livecount", "gauge", "Live keys.", stats.live_count as f64);
    p.metric(
        "leases_duration_seconds",
        "gauge",
        "How long the leases this store proposes last (longer while its proposals are slow to apply).",
        store.proposed_lease_duration().as_secs_f64(),
    );
    let leaders = replicas.iter().filter(|r| r.is_raft_leader()).count();
    p.metric(
        "replicas_raftleaders",
        "gauge",
        "Replicas leading their Raft group.",
        leaders as f64,
    );
    // TODO(issue 3): gateway (DistSender) counters — retries, redirects,
    // ambiguous results — and per-range Raft metrics (log size, pending
    // proposals, snapshots sent).
    let m = store.metrics();
    let load =
        |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed) as f64;
    p.metric(
        "raft_proposals",
        "counter",
        "Commands proposed to Raft by this store's replicas.",
        load(&m.raft_proposals),
    );
    p.metric(
        "raft_proposals_failed",
        "counter",
        "Proposals that failed or whose outcome is unknown.",
        load(&m.raft_proposals_failed),
    );
    let h = m.raft_commit_latency.snapshot();
    p.histogram(
        "raft_commit_latency_seconds",
        "From proposal to applied on the proposing replica.",
        &h.cumulative,
        h.sum_seconds,
        h.count,
    );
    p.metric(
        "kv_batches",
        "counter",
        "KV batches executed by this store.",
        load(&m.kv_batches),
    );
    let by_method: Vec<(String, f64)> = m
        .requests_by_method()
        .into_iter()
        .map(|(method, n)| (format!("method=\"{method}\""), n as f64))
        .collect();
    p.labeled(
        "kv_requests",
        "counter",
        "KV requests executed by this store, by method.",
        &by_method,
    );
    p.metric(
        "intentcount",
        "gauge",
        "Intents.",
        stats.intent_count as f64,
    );
    p.finish()
}
