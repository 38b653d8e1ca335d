//! The simulated network: every Raft batch a store sends goes into one
//! queue, ordered by its delivery time, which the simulator drains as
//! simulated time passes. Delay (and with it reordering), loss,
//! duplication and partitions are drawn from the simulation's seeded RNG.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tardigrade_kvserver::{RaftMessageBatch, RaftTransport};
use tokio::time::Instant;

/// What the network does to a batch right now.
#[derive(Clone, Debug, PartialEq)]
pub struct Conditions {
    /// Each batch is delayed uniformly up to this (at least 50 µs).
    pub max_delay: Duration,
    /// Probability that a batch is lost.
    pub drop_rate: f64,
    /// Probability that a batch is delivered twice.
    pub dup_rate: f64,
}

impl Default for Conditions {
    fn default() -> Self {
        Conditions {
            max_delay: Duration::from_millis(2),
            drop_rate: 0.0,
            dup_rate: 0.0,
        }
    }
}

/// Counts of what happened to batches, part of a run's fingerprint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NetStats {
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

struct State {
    rng: StdRng,
    origin: Instant,
    /// In flight, by (delivery time in µs since the origin, send order).
    queue: BTreeMap<(u64, u64), RaftMessageBatch>,
    seq: u64,
    /// Directed pairs (from, to) whose traffic is cut.
    cut: BTreeSet<(u64, u64)>,
    conditions: Conditions,
    stats: NetStats,
}

/// The network every simulated store sends through. Cheap to clone.
#[derive(Clone)]
pub struct Network {
    state: Arc<Mutex<State>>,
}

impl Network {
    pub fn new(seed: u64, origin: Instant) -> Network {
        Network {
            state: Arc::new(Mutex::new(State {
                rng: StdRng::seed_from_u64(seed),
                origin,
                queue: BTreeMap::new(),
                seq: 0,
                cut: BTreeSet::new(),
                conditions: Conditions::default(),
                stats: NetStats::default(),
            })),
        }
    }

    pub fn set_conditions(&self, c: Conditions) {
        self.state.lock().conditions = c;
    }

    /// Cuts `node` off from `others`, both ways.
    pub fn isolate(&self, node: u64, others: impl IntoIterator<Item = u64>) {
        let mut st = self.state.lock();
        for o in others {
            if o != node {
                st.cut.insert((node, o));
                st.cut.insert((o, node));
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&self) {
        self.state.lock().cut.clear();
    }

    /// Takes the batches due by `now`, in delivery order; batches whose
    /// link was cut while they were in flight are lost.
    pub fn due(&self, now: Instant) -> Vec<RaftMessageBatch> {
        let mut st = self.state.lock();
        let now_us = micros(now.duration_since(st.origin));
        let mut out = Vec::new();
        while let Some(entry) = st.queue.first_entry() {
            if entry.key().0 > now_us {
                break;
            }
            let batch = entry.remove();
            if st.cut.contains(&(batch.from_node, batch.to_node)) {
                st.stats.dropped += 1;
                continue;
            }
            st.stats.delivered += 1;
            out.push(batch);
        }
        out
    }

    pub fn stats(&self) -> NetStats {
        self.state.lock().stats
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl RaftTransport for Network {
    fn send(&self, batch: RaftMessageBatch) {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        st.stats.sent += 1;
        if st.cut.contains(&(batch.from_node, batch.to_node))
            || st.rng.random_bool(st.conditions.drop_rate)
        {
            st.stats.dropped += 1;
            return;
        }
        let copies = if st.rng.random_bool(st.conditions.dup_rate) {
            st.stats.duplicated += 1;
            2
        } else {
            1
        };
        let now_us = micros(Instant::now().duration_since(st.origin));
        let max_us = micros(st.conditions.max_delay).max(51);
        for _ in 0..copies {
            let at = now_us + st.rng.random_range(50..max_us);
            st.seq += 1;
            st.queue.insert((at, st.seq), batch.clone());
        }
    }
}
