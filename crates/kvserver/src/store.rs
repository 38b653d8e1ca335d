//! A store: one engine and the replicas on it (multi-Raft). It validates
//! incoming batches, assigns timestamps, folds remote clocks into the HLC,
//! routes each batch to the replica whose range contains it, and runs the
//! Raft scheduler ([`crate::scheduler`]) that drives every replica.
//!
//! Which ranges live here is kept in a store-local index (`\x01s rng-
//! <range id>` → the range's start key, whose range-local descriptor key
//! holds the descriptor); [`Store::open`] loads every replica it lists.
//! [`Store::bootstrap`] writes the initial state of a brand-new cluster's
//! ranges.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use parking_lot::RwLock;
use tardigrade_encoding::keys;
use tardigrade_hlc::Hlc;
use tardigrade_kvpb::{
    BatchRequest, BatchResult, ErrorDetail, KvError, NodeId, RangeDescriptor, ReplicaDescriptor,
    ReplicaType, Request, SendFuture, Sender, Span, StoreId,
};
use tardigrade_storage::batch::WriteSet;
use tardigrade_storage::{Engine, EngineError, Reader, Space, mvcc};

use crate::command::{self, AppliedState};
use crate::raft_storage::{self, RAFT_INITIAL_INDEX, RAFT_INITIAL_TERM};
use crate::replica::Replica;
use crate::scheduler::{self, Event};
use crate::transport::{RaftHandler, RaftMessageBatch, RaftTransport};

/// Largest number of requests accepted in one batch.
pub const MAX_BATCH_REQUESTS: usize = 100_000;

/// Store-local keys: this store's own bookkeeping, never replicated.
pub const STORE_LOCAL_PREFIX: &[u8] = b"\x01s";
const RANGE_INDEX_PREFIX: &[u8] = b"\x01srng-";

/// The range tombstone (unreplicated range-id key): replica ids below the
/// stored value were removed from this store and are never recreated.
pub fn range_tombstone_key(range_id: u64) -> Vec<u8> {
    keys::range_id_local_key(range_id, b"urftb")
}

/// The store-local index entry of a range on this store.
pub fn range_index_key(range_id: u64) -> Vec<u8> {
    let mut k = RANGE_INDEX_PREFIX.to_vec();
    k.extend_from_slice(&range_id.to_be_bytes());
    k
}

#[derive(Clone)]
pub struct StoreConfig {
    pub node_id: NodeId,
    pub store_id: StoreId,
    /// One Raft tick.
    pub raft_tick_interval: Duration,
    /// Ticks without a leader's word before a follower campaigns (randomized
    /// up to twice this).
    pub raft_election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub raft_heartbeat_ticks: usize,
    /// How long a lease lasts; extended by a busy holder in its second half.
    pub lease_duration: Duration,
    /// How long a write waits for its command to apply before answering
    /// that its outcome is unknown.
    pub proposal_timeout: Duration,
    /// The log is truncated (keeping half of this many entries) once more
    /// than this many applied entries are kept.
    pub raft_log_max_entries: u64,
    /// Where Raft messages to other nodes go. `None`: single-node only.
    pub transport: Option<Arc<dyn RaftTransport>>,
    /// On an engine with no ranges, bootstrap one range over the whole key
    /// space with this store as its only voter (`start-single-node`).
    pub bootstrap_single_node: bool,
    /// Fault injection for checker tests only: serve requests on an expired
    /// lease. Never set outside tests that prove the checkers catch it.
    pub testing_unsafe_reads_past_lease: bool,
    /// Fault injection for tests only: the scheduler sleeps this long before
    /// applying the committed entries of a round, as a starved machine
    /// would take (leases must still be acquired when applying a command
    /// takes longer than a lease lasts). Zero outside tests.
    pub testing_apply_delay: Duration,
    /// A range whose data (key and value bytes) grows beyond this is split
    /// in the middle by the split queue (which runs only on stores with a
    /// cluster sender, see [`Store::set_cluster_sender`]).
    pub range_max_bytes: u64,
    /// How often the split queue looks at this store's leaseholders.
    pub split_queue_interval: Duration,
    /// How often the MVCC GC queue looks at this store's leaseholders
    /// ([`crate::gc_queue`]).
    pub gc_queue_interval: Duration,
    /// Keys the first node splits the key space at right after `init`
    /// bootstraps a cluster (`tardigrade start` uses `/System` and
    /// `/Table`, so that meta, system and table data start out as separate
    /// ranges). Empty: one range.
    pub bootstrap_split_keys: Vec<Vec<u8>>,
    /// Replication factor, `server.time_until_store_dead` and the replicate
    /// queue's pace ([`crate::allocator`]).
    pub replication: crate::allocator::ReplicationSettings,
    /// Deterministic simulation only (`tardigrade-sim`): no scheduler
    /// thread (the simulator runs each round, and says when to tick, with
    /// [`Store::run_simulated_round`]) and a fixed election timeout in ticks
    /// (raft-rs draws randomized timeouts from the thread's RNG, which no
    /// seed reaches; the simulator's jittered ticks break ties instead).
    pub testing_simulated: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            node_id: 1,
            store_id: 1,
            // Failover after a node dies takes about the longer of the
            // lease (a new one starts only when the old one expires) and an
            // election (1.2-2 s: 12 to 20 ticks without the leader): < 3 s.
            raft_tick_interval: Duration::from_millis(100),
            raft_election_ticks: 10,
            raft_heartbeat_ticks: 2,
            lease_duration: Duration::from_secs(2),
            proposal_timeout: Duration::from_secs(10),
            raft_log_max_entries: 1000,
            transport: None,
            bootstrap_single_node: true,
            testing_unsafe_reads_past_lease: false,
            testing_apply_delay: Duration::ZERO,
            range_max_bytes: 512 << 20,
            split_queue_interval: Duration::from_secs(1),
            gc_queue_interval: Duration::from_secs(60),
            bootstrap_split_keys: Vec::new(),
            replication: crate::allocator::ReplicationSettings::default(),
            testing_simulated: false,
        }
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("node_id", &self.node_id)
            .field("store_id", &self.store_id)
            .field("raft_tick_interval", &self.raft_tick_interval)
            .field("raft_election_ticks", &self.raft_election_ticks)
            .field("raft_heartbeat_ticks", &self.raft_heartbeat_ticks)
            .field("lease_duration", &self.lease_duration)
            .field("proposal_timeout", &self.proposal_timeout)
            .field("raft_log_max_entries", &self.raft_log_max_entries)
            .field("transport", &self.transport.is_some())
            .field("bootstrap_single_node", &self.bootstrap_single_node)
            .finish()
    }
}

#[derive(Default)]
pub(crate) struct Replicas {
    /// Ordered, so that walks over the replicas are the same in every run.
    pub by_id: BTreeMap<u64, Arc<Replica>>,
    by_start: BTreeMap<Vec<u8>, u64>,
}

pub struct Store {
    cfg: StoreConfig,
    clock: Arc<Hlc>,
    engine: Engine,
    pub(crate) replicas: RwLock<Replicas>,
    events: mpsc::Sender<Event>,
    /// Under simulation, the scheduler's queue and state, which
    /// [`Store::run_simulated_round`] drives instead of a thread.
    simulated: parking_lot::Mutex<Option<(mpsc::Receiver<Event>, scheduler::Rounds)>>,
    stopped: AtomicBool,
    /// Routes batches to any range of the cluster (the node's
    /// `DistSender`); unset on a single-node store, where every range is local.
    cluster: OnceLock<Arc<dyn Sender>>,
    /// Counters for the status endpoint.
    metrics: crate::metrics::StoreMetrics,
    /// How long the leases proposed here last (longer while proposals are
    /// slow to apply).
    lease_durations: crate::lease_duration::LeaseDurations,
    /// Above every timestamp the store's previous run could have used: a
    /// lease that starts below it was taken before this run and is not
    /// used ([`Store::opened_at`]).
    opened_at: tardigrade_hlc::Timestamp,
    /// The span configs as last read by its watch task
    /// ([`crate::span_config`]).
    span_configs: RwLock<Arc<crate::span_config::SpanConfigSet>>,
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.events.send(Event::Stop);
    }
}

fn corrupt(e: impl std::fmt::Display) -> EngineError {
    EngineError::Corrupt(e.to_string())
}

impl Store {
    /// Writes the initial state of a brand-new cluster's ranges: their
    /// descriptors, this store's index of them, and Raft state at
    /// [`RAFT_INITIAL_INDEX`] with the descriptor's voters as configuration.
    /// Data already in a range's span (a store from before replication) is
    /// kept and counted in its statistics.
    pub fn bootstrap(engine: &Engine, initial: &[RangeDescriptor]) -> Result<(), EngineError> {
        if !list_ranges(engine)?.is_empty() {
            return Err(corrupt("store is already bootstrapped"));
        }
        let mut ws = WriteSet::default();
        for d in initial {
            let id = d.range_id;
            let stats =
                mvcc::compute_stats(engine, &d.start_key, &d.end_key).map_err(|e| match e {
                    mvcc::MvccError::Engine(e) => e,
                    other => corrupt(other),
                })?;
            ws.put(Space::Raw, &range_index_key(id), &d.start_key);
            ws.put(
                Space::Raw,
                &keys::range_descriptor_key(&d.start_key),
                &d.encode(),
            );
            let applied = AppliedState {
                raft_applied_index: RAFT_INITIAL_INDEX,
                lease_applied_index: 0,
                stats,
            };
            ws.put(
                Space::Raw,
                &keys::range_applied_state_key(id),
                &applied.encode(),
            );
            ws.put(
                Space::Raw,
                &keys::raft_truncated_state_key(id),
                &command::encode_index_term(RAFT_INITIAL_INDEX, RAFT_INITIAL_TERM),
            );
            let hs = raft::eraftpb::HardState {
                term: RAFT_INITIAL_TERM,
                commit: RAFT_INITIAL_INDEX,
                ..Default::default()
            };
            raft_storage::write_hard_state(id, &hs, &mut ws);
        }
        engine.commit(&ws, true)
    }

    /// The descriptor of a single-node cluster: one range over the whole key
    /// space, one voter.
    pub fn single_node_descriptor(node_id: NodeId, store_id: StoreId) -> RangeDescriptor {
        RangeDescriptor {
            range_id: 1,
            start_key: keys::MIN_KEY.to_vec(),
            end_key: keys::MAX_KEY.to_vec(),
            replicas: vec![ReplicaDescriptor {
                node_id,
                store_id,
                replica_id: 1,
                kind: ReplicaType::Voter,
            }],
            next_replica_id: 2,
            generation: 0,
        }
    }

    /// Opens the store on `engine`, loading every replica it holds (after
    /// bootstrapping a single-node cluster on an empty engine when
    /// `config.bootstrap_single_node`), and starts its Raft scheduler.
    pub fn open(
        engine: Engine,
        clock: Arc<Hlc>,
        config: StoreConfig,
    ) -> Result<Arc<Store>, EngineError> {
        let mut ranges = list_ranges(&engine)?;
        if ranges.is_empty() && config.bootstrap_single_node {
            Store::bootstrap(
                &engine,
                &[Store::single_node_descriptor(
                    config.node_id,
                    config.store_id,
                )],
            )?;
            ranges = list_ranges(&engine)?;
        }
        let (tx, rx) = mpsc::channel();
        let store = Arc::new(Store {
            cfg: config.clone(),
            clock: clock.clone(),
            engine: engine.clone(),
            replicas: RwLock::default(),
            events: tx,
            simulated: parking_lot::Mutex::new(None),
            stopped: AtomicBool::new(false),
            cluster: OnceLock::new(),
            metrics: crate::metrics::StoreMetrics::default(),
            lease_durations: crate::lease_duration::LeaseDurations::new(config.lease_duration),
            // The previous run's HLC was at most the maximum offset ahead
            // of physical time, which has moved on since.
            opened_at: clock.now().add_duration(clock.max_offset()),
            span_configs: RwLock::new(Arc::new(crate::span_config::SpanConfigSet::builtin(
                &config.replication,
                config.range_max_bytes,
            ))),
        });
        for desc in ranges {
            if desc.replica_on_store(config.store_id).is_none() {
                continue;
            }
            let r = Replica::load(
                desc,
                engine.clone(),
                clock.clone(),
                Arc::downgrade(&store),
                config.clone(),
            )?;
            store.add_replica(Arc::new(r));
        }
        if config.testing_simulated {
            *store.simulated.lock() = Some((rx, scheduler::Rounds::new(&config)));
            return Ok(store);
        }
        let weak = Arc::downgrade(&store);
        let cfg = config.clone();
        std::thread::Builder::new()
            .name(format!("raft-n{}", config.node_id))
            .spawn(move || scheduler::run(weak, rx, cfg))
            .map_err(|e| corrupt(format!("cannot start the Raft scheduler: {e}")))?;
        Ok(store)
    }

    pub(crate) fn add_replica(&self, r: Arc<Replica>) {
        let mut reps = self.replicas.write();
        if r.is_initialized() {
            reps.by_start.insert(r.start_key(), r.range_id);
        }
        reps.by_id.insert(r.range_id, r);
    }

    /// Sets how this store reaches ranges on other stores (the node's
    /// `DistSender`, which also routes to this store): pushes, queries and
    /// intent resolution for other ranges, and the split transaction, go
    /// through it. Also starts the split queue. Call once, inside a Tokio
    /// runtime.
    pub fn set_cluster_sender(self: &Arc<Self>, sender: Arc<dyn Sender>) {
        if self.cluster.set(sender).is_ok() && tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(crate::span_config::watch(Arc::downgrade(self)));
            tokio::spawn(crate::split::split_queue(Arc::downgrade(self)));
            self.start_gc_queue();
        }
    }

    /// Starts the MVCC GC queue ([`crate::gc_queue`]); a cluster node's
    /// store starts it with its cluster sender. Call once, inside a Tokio
    /// runtime.
    pub fn start_gc_queue(self: &Arc<Self>) {
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(crate::gc_queue::gc_queue(Arc::downgrade(self)));
        }
    }

    /// Whether a cluster sender is set (splits need one).
    pub fn has_cluster_sender(&self) -> bool {
        self.cluster.get().is_some()
    }

    /// Sends a batch from inside the server to whichever range holds it:
    /// through the cluster sender when set, else to a local replica,
    /// re-routing a few times when a split moved the keys meanwhile.
    pub(crate) async fn send_routed(&self, ba: BatchRequest) -> BatchResult {
        if let Some(c) = self.cluster.get() {
            return c.send(ba).await;
        }
        let mut attempt = 0;
        loop {
            match self.send_internal(ba.clone()).await {
                Err(e)
                    if matches!(e.detail, ErrorDetail::RangeKeyMismatch { .. }) && attempt < 5 =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                }
                r => return r,
            }
        }
    }

    /// A Raft message arrived for a range this store does not hold: creates
    /// the (uninitialized) replica `replica_id`, unless the range's
    /// tombstone says that replica was removed from this store.
    pub(crate) fn create_replica_for_message(
        self: &Arc<Self>,
        range_id: u64,
        replica_id: u64,
    ) -> Result<Option<Arc<Replica>>, EngineError> {
        if replica_id == 0 {
            return Ok(None);
        }
        if let Some(next) = raft_storage::read(
            &self.engine,
            &range_tombstone_key(range_id),
            command::decode_u64,
        )? && replica_id < next
        {
            tracing::debug!(range_id, replica_id, "message for a removed replica");
            return Ok(None);
        }
        let r = Arc::new(Replica::uninitialized(
            range_id,
            replica_id,
            self.engine.clone(),
            self.clock.clone(),
            Arc::downgrade(self),
            self.cfg.clone(),
        )?);
        self.add_replica(r.clone());
        tracing::info!(
            node = self.cfg.node_id,
            range_id,
            replica_id,
            "created a replica for an incoming raft message"
        );
        Ok(Some(r))
    }

    /// Reloads a replica from the engine (after a snapshot initialized it).
    pub(crate) fn reload_replica(self: &Arc<Self>, range_id: u64) -> Result<(), EngineError> {
        let start = self
            .engine
            .get(Space::Raw, &range_index_key(range_id))?
            .ok_or_else(|| corrupt(format!("r{range_id} missing from the range index")))?;
        let desc = raft_storage::read(&self.engine, &keys::range_descriptor_key(&start), |b| {
            RangeDescriptor::decode(b).map_err(|e| command::DecodeError(e.to_string()))
        })?
        .ok_or_else(|| corrupt(format!("r{range_id} has no descriptor")))?;
        let r = Replica::load(
            desc,
            self.engine.clone(),
            self.clock.clone(),
            Arc::downgrade(self),
            self.cfg.clone(),
        )?;
        if let Some(old) = self.replica(range_id) {
            old.raft.lock().broken = true;
        }
        self.add_replica(Arc::new(r));
        Ok(())
    }

    /// Asks the scheduler to garbage-collect replica `replica_id` of
    /// `range_id` (it found itself absent from the range's descriptor).
    pub fn request_gc(&self, range_id: u64, replica_id: u64) {
        let _ = self.events.send(Event::Gc {
            range_id,
            replica_id,
        });
    }

    /// Replica GC (scheduler thread): removes the replica from the store,
    /// deletes its data (the range's span and its range-id keys) and leaves
    /// a tombstone so that late messages cannot resurrect it.
    pub(crate) fn gc_replica(&self, range_id: u64, replica_id: u64) -> Result<(), EngineError> {
        let Some(r) = self.replica(range_id) else {
            return Ok(());
        };
        if r.replica_id != replica_id {
            return Ok(());
        }
        // Stop the replica first, so that nothing it applies from here on
        // escapes the deletion; drop it from the map only once its data is
        // gone, so that "no replica" always means "no data" too.
        r.raft.lock().broken = true;
        let desc = r.desc();
        let mut ws = WriteSet::default();
        if !desc.replicas.is_empty() {
            for (space, lo, hi) in
                raft_storage::range_spans(range_id, &desc.start_key, &desc.end_key)
            {
                for kv in self.engine.scan(space, &lo, &hi, false) {
                    let (k, _) = kv?;
                    ws.delete(space, &k);
                }
            }
        }
        let lower = keys::raft_log_key(range_id, 0);
        let upper = keys::raft_log_key(range_id, u64::MAX);
        for kv in self.engine.scan(Space::Raw, &lower, &upper, false) {
            let (k, _) = kv?;
            ws.delete(Space::Raw, &k);
        }
        ws.delete(Space::Raw, &keys::raft_hard_state_key(range_id));
        ws.delete(Space::Raw, &keys::raft_truncated_state_key(range_id));
        ws.delete(Space::Raw, &range_index_key(range_id));
        ws.delete(Space::Raw, &crate::consistency::fence_key(range_id));
        let next = desc.next_replica_id.max(replica_id + 1);
        ws.put(
            Space::Raw,
            &range_tombstone_key(range_id),
            &next.to_be_bytes(),
        );
        self.engine.commit(&ws, true)?;
        {
            let mut reps = self.replicas.write();
            if reps
                .by_id
                .get(&range_id)
                .is_some_and(|x| Arc::ptr_eq(x, &r))
            {
                reps.by_id.remove(&range_id);
                let start = r.start_key();
                if reps.by_start.get(&start) == Some(&range_id) {
                    reps.by_start.remove(&start);
                }
            }
        }
        tracing::info!(
            node = self.cfg.node_id,
            range_id,
            replica_id,
            "garbage-collected a removed replica"
        );
        Ok(())
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    pub fn node_id(&self) -> NodeId {
        self.cfg.node_id
    }

    pub fn store_id(&self) -> StoreId {
        self.cfg.store_id
    }

    pub fn clock(&self) -> &Arc<Hlc> {
        &self.clock
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The replica of `range_id` on this store.
    pub fn replica(&self, range_id: u64) -> Option<Arc<Replica>> {
        self.replicas.read().by_id.get(&range_id).cloned()
    }

    /// Every replica on this store.
    pub fn replicas(&self) -> Vec<Arc<Replica>> {
        self.replicas.read().by_id.values().cloned().collect()
    }

    /// The replica whose range contains `key` (a global key).
    pub fn replica_for_key(&self, key: &[u8]) -> Option<Arc<Replica>> {
        let reps = self.replicas.read();
        let (_, id) = reps.by_start.range(..=key.to_vec()).next_back()?;
        let r = reps.by_id.get(id)?;
        r.contains_key(key).then(|| r.clone())
    }

    /// Another initialized replica of this store whose span meets
    /// `[start, end)`, if one does. Initialized replicas never overlap: a
    /// snapshot of range A that overlaps replica B is refused until B has
    /// split or gone (installing it would clear B's data with A's old span,
    /// or give two replicas the same keys).
    pub(crate) fn overlapping_replica(
        &self,
        range_id: u64,
        start: &[u8],
        end: &[u8],
    ) -> Option<u64> {
        let reps = self.replicas.read();
        for (_, id) in reps.by_start.range(..end.to_vec()).rev() {
            if *id == range_id {
                continue;
            }
            let r = reps.by_id.get(id)?;
            if r.end_key().as_slice() > start {
                return Some(*id);
            }
            // Every replica before this one ends before it starts.
            return None;
        }
        None
    }

    /// Statistics summed over the replicas on this store.
    pub fn stats(&self) -> tardigrade_storage::MvccStats {
        let mut s = tardigrade_storage::MvccStats::default();
        for r in self.replicas() {
            s.add(&r.stats());
        }
        s
    }

    /// Wakes the quiesced replicas whose Raft leader is on one of `nodes`
    /// (the node's heartbeats say they stopped answering): a quiesced
    /// follower does not tick, so without this it would never notice its
    /// leader is gone. Each forgets that leader, ticks again and campaigns
    /// after an election timeout. Returns how many it woke.
    pub fn wake_ranges_led_by(&self, nodes: &[u64]) -> usize {
        if nodes.is_empty() {
            return 0;
        }
        let mut woke = 0;
        for r in self.replicas() {
            if r.wake_if_leader_on(nodes) {
                self.wake(r.range_id);
                woke += 1;
            }
        }
        woke
    }

    /// Asks the scheduler to process `range_id` (a proposal is waiting).
    pub(crate) fn wake(&self, range_id: u64) {
        let _ = self.events.send(Event::Wake(range_id));
    }

    /// Stops the store as if its node died: the scheduler exits, inbound
    /// Raft traffic is refused and requests fail with `Unavailable`.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let _ = self.events.send(Event::Stop);
    }

    /// Leases of this store's replicas that start below this were taken by
    /// the store's previous run (before a restart). They are not used: that
    /// run may have proposed commands under them that this run has not yet
    /// applied (and would evaluate against state missing them), and its
    /// timestamp cache is gone. The replica takes a new lease first, with a
    /// new sequence (which also makes the old run's commands fail when they
    /// apply), starting at or above this. CockroachDB does the same with
    /// its `minLeaseProposedTS`.
    /// The span configs this store knows (built-in ones until the split
    /// queue first reads the cluster's).
    pub fn span_configs(&self) -> Arc<crate::span_config::SpanConfigSet> {
        self.span_configs.read().clone()
    }

    /// Installs span configs (the split queue does after each read; tests
    /// set their own).
    pub fn set_span_configs(&self, set: crate::span_config::SpanConfigSet) {
        *self.span_configs.write() = Arc::new(set);
    }

    pub fn opened_at(&self) -> tardigrade_hlc::Timestamp {
        self.opened_at
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Simulation only ([`StoreConfig::testing_simulated`]): runs one round
    /// of the Raft scheduler on the caller's thread, with the events queued
    /// so far, ticking the replicas if `tick` (the simulator jitters ticks
    /// from its seed: with the fixed election timeout of a simulation,
    /// ticks in phase on every node would split every vote). Returns false
    /// once the store has stopped (or when it is not simulated).
    pub fn run_simulated_round(self: &Arc<Self>, tick: bool) -> bool {
        let mut sim = self.simulated.lock();
        let Some((rx, rounds)) = sim.as_mut() else {
            return false;
        };
        let mut events = Vec::new();
        if !scheduler::take_events(rx, &mut events) {
            return false;
        }
        scheduler::round(self, rounds, events, tick)
    }

    /// Executes a batch from a client.
    /// The store's counters (Raft proposals and latency, KV requests).
    pub fn metrics(&self) -> &crate::metrics::StoreMetrics {
        &self.metrics
    }

    /// How long the leases proposed here last (longer while proposals are
    /// slow to apply).
    pub(crate) fn lease_durations(&self) -> &crate::lease_duration::LeaseDurations {
        &self.lease_durations
    }

    /// How long a lease proposed here now would last (for `/_status/vars`).
    pub fn proposed_lease_duration(&self) -> Duration {
        self.lease_durations.current()
    }

    pub async fn execute(&self, ba: BatchRequest) -> BatchResult {
        validate(&ba)?;
        self.metrics
            .count_batch(ba.requests.iter().map(Request::method));
        self.send_internal(ba).await
    }

    /// Executes a batch from inside the server (pushes, resolution), which
    /// may address transaction-record keys.
    pub(crate) async fn send_internal(&self, mut ba: BatchRequest) -> BatchResult {
        if self.is_stopped() {
            return Err(KvError::new(ErrorDetail::Unavailable(format!(
                "node {} is stopped",
                self.cfg.node_id
            ))));
        }
        if let Some(txn) = &mut ba.header.txn {
            self.clock
                .update(txn.meta.write_timestamp)
                .map_err(|e| KvError::new(ErrorDetail::ClockOffset(e.to_string())))?;
            // The transaction's first visit here: this reading bounds the
            // uncertainty of what leases on this node serve it from now on
            // (including this batch), and goes back to the coordinator in
            // the response's (or the error's) transaction.
            if txn.observed_timestamp(self.cfg.node_id).is_none() {
                txn.update_observed_timestamp(self.cfg.node_id, self.clock.now());
            }
        } else if ba.header.timestamp.is_zero() {
            ba.header.timestamp = self.clock.now();
        } else {
            self.clock
                .update(ba.header.timestamp)
                .map_err(|e| KvError::new(ErrorDetail::ClockOffset(e.to_string())))?;
        }
        let replica = self.route(&ba)?;
        // Boxed: conflict handling sends batches (push, resolve) recursively.
        Box::pin(replica.send(ba)).await
    }

    /// The replica that must serve `ba`: the one named by the header, or the
    /// one containing its first key; every request must lie inside it.
    fn route(&self, ba: &BatchRequest) -> Result<Arc<Replica>, KvError> {
        let spans: Vec<Span> = ba
            .requests
            .iter()
            .map(|r| {
                let s = r.span(&ba.header);
                let key = keys::addr(&s.key).unwrap_or(s.key);
                let end_key = if s.end_key.is_empty() {
                    s.end_key
                } else {
                    keys::addr(&s.end_key).unwrap_or(s.end_key)
                };
                Span { key, end_key }
            })
            .collect();
        let first = spans.first().cloned().unwrap_or_default();
        let replica = if ba.header.range_id != 0 {
            // Not a key mismatch: the sender's descriptor lists a replica
            // that is gone from here (or not yet initialized). Another one
            // may serve; the meta records may still list this one, so a
            // mismatch (evict, look up again) could send the sender back
            // here until its deadline.
            match self.replica(ba.header.range_id) {
                Some(r) if r.is_initialized() => Some(r),
                _ => {
                    return Err(KvError::new(ErrorDetail::RangeNotFound {
                        range_id: ba.header.range_id,
                        node_id: self.cfg.node_id,
                    }));
                }
            }
        } else {
            self.replica_for_key(&first.key)
        };
        let Some(replica) = replica else {
            return Err(KvError::new(ErrorDetail::RangeKeyMismatch {
                span: first,
                range_id: ba.header.range_id,
            }));
        };
        for s in spans {
            if !replica.contains_span(&s.key, &s.end_key) {
                return Err(KvError::new(ErrorDetail::RangeKeyMismatch {
                    span: s,
                    range_id: replica.range_id,
                }));
            }
        }
        Ok(replica)
    }
}

/// The descriptors of the ranges in this store's index.
fn list_ranges(engine: &Engine) -> Result<Vec<RangeDescriptor>, EngineError> {
    let mut out = Vec::new();
    let upper = keys::prefix_end(RANGE_INDEX_PREFIX);
    for kv in engine.scan(Space::Raw, RANGE_INDEX_PREFIX, &upper, false) {
        let (k, start) = kv?;
        let desc = raft_storage::read(engine, &keys::range_descriptor_key(&start), |b| {
            RangeDescriptor::decode(b).map_err(|e| command::DecodeError(e.to_string()))
        })?
        .ok_or_else(|| corrupt(format!("range index entry {k:02x?} without a descriptor")))?;
        out.push(desc);
    }
    Ok(out)
}

impl Sender for Store {
    fn send(&self, ba: BatchRequest) -> SendFuture<'_> {
        Box::pin(self.execute(ba))
    }
}

impl RaftHandler for Store {
    fn handle_raft_batch(&self, batch: RaftMessageBatch) -> Result<(), KvError> {
        if batch.to_node != self.cfg.node_id {
            return Err(KvError::invalid(format!(
                "raft batch for node {} sent to node {}",
                batch.to_node, self.cfg.node_id
            )));
        }
        if self.is_stopped() {
            return Err(KvError::new(ErrorDetail::Unavailable(
                "store stopped".into(),
            )));
        }
        self.events
            .send(Event::Raft(batch))
            .map_err(|_| KvError::new(ErrorDetail::Unavailable("store stopped".into())))
    }
}

/// Rejects batches no correct client sends.
fn validate(ba: &BatchRequest) -> Result<(), KvError> {
    if ba.requests.is_empty() {
        return Err(KvError::invalid("empty batch"));
    }
    if ba.requests.len() > MAX_BATCH_REQUESTS {
        return Err(KvError::invalid(format!(
            "batch of {} requests exceeds the limit of {MAX_BATCH_REQUESTS}",
            ba.requests.len()
        )));
    }
    let check_key = |k: &[u8]| -> Result<(), KvError> {
        if k < keys::LOCAL_MAX {
            return Err(KvError::invalid(format!(
                "key {} is in the local key space, which clients cannot address",
                tardigrade_encoding::pretty_key(k)
            )));
        }
        if k >= keys::MAX_KEY {
            return Err(KvError::invalid(format!(
                "key {} is at or above /Max",
                tardigrade_encoding::pretty_key(k)
            )));
        }
        Ok(())
    };
    for (i, req) in ba.requests.iter().enumerate() {
        let span = req.span(&ba.header);
        let res = (|| {
            match req {
                Request::EndTxn { .. } | Request::HeartbeatTxn { .. }
                    if ba.header.txn.is_none() =>
                {
                    return Err(KvError::invalid(format!(
                        "{} requires a transaction",
                        req.method()
                    )));
                }
                Request::Refresh { .. } if ba.header.txn.is_none() => {
                    return Err(KvError::invalid("Refresh requires a transaction"));
                }
                _ => {}
            }
            check_key(&span.key)?;
            if !span.is_point() {
                if span.end_key <= span.key {
                    return Err(KvError::invalid(format!(
                        "{}: end key {} is not after start key {}",
                        req.method(),
                        tardigrade_encoding::pretty_key(&span.end_key),
                        tardigrade_encoding::pretty_key(&span.key)
                    )));
                }
                if span.end_key.as_slice() > keys::MAX_KEY {
                    return Err(KvError::invalid("end key above /Max"));
                }
            }
            if let Request::EndTxn { lock_spans, .. } = req {
                for s in lock_spans {
                    check_key(&s.key)?;
                }
            }
            Ok(())
        })();
        res.map_err(|e| e.with_index(i))?;
    }
    if let Some(txn) = &ba.header.txn {
        // Read-only transactions have no anchor key yet.
        if !txn.meta.key.is_empty() {
            check_key(&txn.meta.key)?;
        }
        if txn.meta.write_timestamp < txn.read_timestamp {
            return Err(KvError::invalid(
                "transaction writes below its read timestamp",
            ));
        }
    }
    Ok(())
}
