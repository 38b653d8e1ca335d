//! The simulated cluster: real [`Store`]s on real engines, one per node,
//! whose Raft schedulers run as rounds driven by the simulator (no threads),
//! whose clocks read simulated time, and whose messages cross the simulated
//! [`Network`]. Nodes crash (the store is dropped, its engine kept as the
//! disk), restart on the same engine, and lose their disk's writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tardigrade_hlc::{Clock, DEFAULT_MAX_OFFSET, Hlc};
use tardigrade_kvpb::{RangeDescriptor, Sender};
use tardigrade_kvserver::{RaftHandler, Store, StoreConfig};
use tardigrade_storage::{Engine, StoreSpec};
use tokio::time::Instant;

use crate::net::Network;

/// Wall time of the simulation's start: 2026-01-01T00:00:00Z.
const EPOCH_NANOS: i64 = 1_767_225_600_000_000_000;

/// A node's physical clock: the simulation's time plus the node's offset.
pub struct SimClock {
    origin: Instant,
    offset_nanos: AtomicI64,
}

impl SimClock {
    pub fn new(origin: Instant) -> SimClock {
        SimClock {
            origin,
            offset_nanos: AtomicI64::new(0),
        }
    }

    pub fn set_offset(&self, offset: Duration, ahead: bool) {
        let n = i64::try_from(offset.as_nanos()).unwrap_or(i64::MAX);
        self.offset_nanos
            .store(if ahead { n } else { -n }, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now_nanos(&self) -> i64 {
        let since = i64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(i64::MAX);
        EPOCH_NANOS + since + self.offset_nanos.load(Ordering::SeqCst)
    }
}

/// One simulated node.
pub struct Node {
    pub id: u64,
    /// The node's disk: it outlives the store across crashes.
    engine: Engine,
    pub clock: Arc<SimClock>,
    store: Option<Arc<Store>>,
    /// When the node's replicas tick next.
    next_tick: Instant,
}

/// The nodes and the network between them.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub net: Network,
    config: StoreConfig,
    /// How stores reach other ranges (pushes, intent resolution), once set.
    cluster_sender: Option<Arc<dyn Sender>>,
}

impl Cluster {
    /// Bootstraps `n` nodes holding `ranges` (each replicated on every node)
    /// and opens their stores.
    pub fn new(
        n: u64,
        ranges: &[RangeDescriptor],
        net: Network,
        origin: Instant,
        config: StoreConfig,
    ) -> Result<Cluster, String> {
        let mut nodes = Vec::new();
        for id in 1..=n {
            let engine = Engine::open(&StoreSpec::Memory).map_err(|e| e.to_string())?;
            Store::bootstrap(&engine, ranges).map_err(|e| e.to_string())?;
            nodes.push(Node {
                id,
                engine,
                clock: Arc::new(SimClock::new(origin)),
                store: None,
                next_tick: origin,
            });
        }
        let mut c = Cluster {
            nodes,
            net,
            config,
            cluster_sender: None,
        };
        for id in 1..=n {
            c.start(id)?;
        }
        Ok(c)
    }

    fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    /// The node's store, while it runs.
    pub fn store(&self, id: u64) -> Option<Arc<Store>> {
        self.node(id).store.clone()
    }

    pub fn is_up(&self, id: u64) -> bool {
        self.node(id).store.is_some()
    }

    pub fn ids(&self) -> impl Iterator<Item = u64> + use<> {
        1..=self.nodes.len() as u64
    }

    /// Starts (or restarts) node `id` on its engine, with a fresh HLC as a
    /// new process would have.
    pub fn start(&mut self, id: u64) -> Result<(), String> {
        let mut cfg = self.config.clone();
        cfg.node_id = id;
        cfg.store_id = id;
        cfg.transport = Some(Arc::new(self.net.clone()));
        let node = &mut self.nodes[(id - 1) as usize];
        let hlc = Arc::new(Hlc::new(node.clock.clone(), DEFAULT_MAX_OFFSET));
        let store = Store::open(node.engine.clone(), hlc, cfg)
            .map_err(|e| format!("n{id} cannot restart: {e}"))?;
        if let Some(sender) = &self.cluster_sender {
            store.set_cluster_sender(sender.clone());
        }
        node.store = Some(store);
        Ok(())
    }

    /// Gives every store, now and after restarts, a way to reach the other
    /// ranges (transactions need it: pushes and intent resolution).
    pub fn set_cluster_sender(&mut self, sender: Arc<dyn Sender>) {
        for n in &self.nodes {
            if let Some(s) = &n.store {
                s.set_cluster_sender(sender.clone());
            }
        }
        self.cluster_sender = Some(sender);
    }

    /// Crashes node `id`: its store stops and is dropped; what it wrote to
    /// its engine stays (the journal reaches the OS on every commit).
    pub fn crash(&mut self, id: u64) {
        if let Some(s) = self.nodes[(id - 1) as usize].store.take() {
            s.stop();
        }
    }

    /// Every replica's Raft state and lease, one line each (for a failing
    /// run's report).
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for n in &self.nodes {
            let Some(s) = &n.store else {
                lines.push(format!("n{}: down", n.id));
                continue;
            };
            for r in s.replicas() {
                let l = r.lease();
                lines.push(format!(
                    "n{} r{} replica {}: {}; lease: replica {} on n{} until {} (seq {})",
                    n.id,
                    r.range_id,
                    r.replica_id,
                    r.raft_status(),
                    l.replica.replica_id,
                    l.replica.node_id,
                    l.expiration,
                    l.sequence,
                ));
            }
        }
        lines
    }

    /// Makes node `id`'s disk fail every write (or work again).
    pub fn fail_disk(&self, id: u64, fail: bool) {
        self.node(id).engine.testing_fail_writes(fail);
    }

    /// Delivers the batches due now and runs one scheduler round on each
    /// running node, in `order`, ticking those whose tick is due; the next
    /// tick comes after the tick interval stretched by a factor drawn from
    /// `jitter` (0.5 to 1.5), so that nodes' election timeouts differ. A
    /// store that stopped by itself (its disk failed) is crashed: its
    /// process would have exited.
    pub fn step(
        &mut self,
        now: Instant,
        order: &[u64],
        mut jitter: impl FnMut() -> f64,
    ) -> Vec<u64> {
        for batch in self.net.due(now) {
            if let Some(s) = self.store(batch.to_node) {
                let _ = s.handle_raft_batch(batch);
            }
        }
        let mut died = Vec::new();
        let interval = self.config.raft_tick_interval;
        for &id in order {
            let Some(s) = self.store(id) else { continue };
            let node = &mut self.nodes[(id - 1) as usize];
            let tick = now >= node.next_tick;
            if tick {
                node.next_tick = now + interval.mul_f64(jitter());
            }
            if !s.run_simulated_round(tick) {
                died.push(id);
            }
        }
        for &id in &died {
            self.crash(id);
        }
        died
    }
}
