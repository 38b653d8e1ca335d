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

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
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
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            node_id: 1,
            store_id: 1,
            raft_tick_interval: Duration::from_millis(200),
            raft_election_ticks: 10,
            raft_heartbeat_ticks: 2,
            lease_duration: Duration::from_secs(6),
            proposal_timeout: Duration::from_secs(10),
            raft_log_max_entries: 1000,
            transport: None,
            bootstrap_single_node: true,
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
    pub by_id: HashMap<u64, Arc<Replica>>,
    by_start: BTreeMap<Vec<u8>, u64>,
}

pub struct Store {
    cfg: StoreConfig,
    clock: Arc<Hlc>,
    engine: Engine,
    pub(crate) replicas: RwLock<Replicas>,
    events: mpsc::Sender<Event>,
    stopped: AtomicBool,
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
            stopped: AtomicBool::new(false),
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
        let weak = Arc::downgrade(&store);
        let cfg = config.clone();
        std::thread::Builder::new()
            .name(format!("raft-n{}", config.node_id))
            .spawn(move || scheduler::run(weak, rx, cfg))
            .map_err(|e| corrupt(format!("cannot start the Raft scheduler: {e}")))?;
        Ok(store)
    }

    fn add_replica(&self, r: Arc<Replica>) {
        let mut reps = self.replicas.write();
        reps.by_start.insert(r.start_key.clone(), r.range_id);
        reps.by_id.insert(r.range_id, r);
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
        (key < r.end_key.as_slice()).then(|| r.clone())
    }

    /// Statistics summed over the replicas on this store.
    pub fn stats(&self) -> tardigrade_storage::MvccStats {
        let mut s = tardigrade_storage::MvccStats::default();
        for r in self.replicas() {
            s.add(&r.stats());
        }
        s
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

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Executes a batch from a client.
    pub async fn execute(&self, ba: BatchRequest) -> BatchResult {
        validate(&ba)?;
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
        if let Some(txn) = &ba.header.txn {
            self.clock
                .update(txn.meta.write_timestamp)
                .map_err(|e| KvError::new(ErrorDetail::ClockOffset(e.to_string())))?;
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
            self.replica(ba.header.range_id)
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
            let inside = replica.start_key.as_slice() <= s.key.as_slice()
                && if s.end_key.is_empty() {
                    s.key.as_slice() < replica.end_key.as_slice()
                } else {
                    s.end_key.as_slice() <= replica.end_key.as_slice()
                };
            if !inside {
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
