//! Peer heartbeats: how a node finds the other nodes, knows which of them
//! answer, and measures its clock against theirs — all without reading KV.
//!
//! Node descriptors and liveness records live in KV (`cluster.rs`), but KV
//! needs Raft, and Raft needs the peers' addresses: a node that restarts
//! while the ranges holding those records have no quorum (every node of a
//! cluster restarting at once) could never learn them. CockroachDB breaks
//! the cycle with gossip and RPC heartbeats; we use one small RPC for both:
//!
//! - **Discovery.** Every node pings, every [`PING_INTERVAL`], each node in
//!   its directory and each `--join` address. A ping carries the node
//!   descriptors the sender knows and the answer those the receiver knows,
//!   so an address learned by one node reaches all of them in a couple of
//!   rounds. The directory is also persisted in the store (store-local key
//!   [`DIRECTORY_KEY`]) whenever it changes, so a restarted node can reach
//!   its peers before it hears from any of them.
//! - **Reachability.** A peer that failed its last pings and has not
//!   answered for [`UNREACHABLE_AFTER`] is unreachable: `DistSender` stops waiting for it
//!   (a frozen process accepts TCP connections and never answers) and the
//!   store wakes the quiesced ranges it leads, so their followers elect a
//!   new leader and take the lease.
//! - **Clock offsets.** Each answer carries the peer's physical clock; with
//!   the round trip it bounds the offset between the clocks (Cristian's
//!   algorithm, as CockroachDB's `RemoteClockMonitor`). A node whose clock
//!   is off by more than [`OFFSET_FATAL_FRACTION`] of the maximum offset
//!   from a majority of the cluster (itself counted as agreeing) must not
//!   serve leases the others cannot use: it stops (see [`PeerHealth::clock_verdict`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tardigrade_kvpb::NodeId;

/// How often a node pings each peer.
pub const PING_INTERVAL: Duration = Duration::from_millis(500);
/// How long one ping may take before it counts as failed.
pub const PING_TIMEOUT: Duration = Duration::from_millis(1000);
/// A peer that failed [`FAILURES_BEFORE_UNREACHABLE`] pings in a row and
/// has not answered one for this long is unreachable (more than one
/// interval plus a timeout: a single slow answer, or a pause of this
/// process, never makes a peer unreachable).
pub const UNREACHABLE_AFTER: Duration = Duration::from_millis(2000);
/// Failed pings in a row before a peer may count as unreachable.
pub const FAILURES_BEFORE_UNREACHABLE: u32 = 2;
/// Offset measurements older than this are not used.
const OFFSET_STALE_AFTER: Duration = Duration::from_secs(10);
/// The share of the maximum clock offset beyond which a peer's clock is
/// too far from ours (CockroachDB: 80 %).
pub const OFFSET_FATAL_FRACTION: f64 = 0.8;
/// Consecutive bad verdicts before the node gives up (one slow round trip
/// must not stop a node; its uncertainty already widens the bound).
const BAD_VERDICTS_BEFORE_FATAL: u32 = 3;
/// Store-local key holding the node directory.
pub const DIRECTORY_KEY: &[u8] = b"\x01snodes";

/// One measurement of a peer's clock against ours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockOffset {
    /// Peer's clock minus ours, in nanoseconds (estimate).
    pub offset_nanos: i64,
    /// Half the round trip: the true offset is within this of the estimate.
    pub uncertainty_nanos: i64,
}

impl ClockOffset {
    /// Cristian's estimate from a round trip that started at `sent` and
    /// ended at `received` (our physical clock) and the peer's reading.
    pub fn estimate(sent: i64, received: i64, remote: i64) -> ClockOffset {
        Self::from_round_trip(sent, received.saturating_sub(sent), remote)
    }

    /// The same, with the round trip `rtt_nanos` timed by a monotonic
    /// clock (a step of the wall clock during the ping cannot shrink it).
    pub fn from_round_trip(sent: i64, rtt_nanos: i64, remote: i64) -> ClockOffset {
        let rtt = rtt_nanos.max(0);
        let midpoint = sent.saturating_add(rtt / 2);
        ClockOffset {
            offset_nanos: remote.saturating_sub(midpoint),
            uncertainty_nanos: rtt / 2,
        }
    }

    /// Whether the offset is certainly beyond `limit_nanos` either way.
    fn certainly_beyond(&self, limit_nanos: i64) -> bool {
        self.offset_nanos
            .saturating_abs()
            .saturating_sub(self.uncertainty_nanos)
            > limit_nanos
    }
}

#[derive(Clone, Debug, Default)]
struct PeerState {
    last_ok: Option<Instant>,
    /// Pings failed in a row since the last answer.
    failures: u32,
    offset: Option<(ClockOffset, Instant)>,
}

impl PeerState {
    /// Several pings in a row failed and none succeeded for
    /// [`UNREACHABLE_AFTER`].
    fn unreachable(&self) -> bool {
        self.failures >= FAILURES_BEFORE_UNREACHABLE
            && self
                .last_ok
                .is_none_or(|at| at.elapsed() >= UNREACHABLE_AFTER)
    }
}

/// What the heartbeats know about each peer.
#[derive(Default)]
pub struct PeerHealth {
    peers: RwLock<HashMap<NodeId, PeerState>>,
    /// Measurements recorded so far (a verdict counts only on new ones).
    measurements: std::sync::atomic::AtomicU64,
    verdicts: parking_lot::Mutex<VerdictState>,
}

#[derive(Default)]
struct VerdictState {
    /// Bad verdicts in a row, each on fresh measurements.
    bad: u32,
    /// `measurements` when the last verdict was counted.
    seen: u64,
}

/// The result of a clock check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClockVerdict {
    Healthy,
    /// Too far from a majority, but not yet for long enough.
    Suspect(String),
    /// Too far from a majority for several checks in a row: stop.
    Fatal(String),
}

impl PeerHealth {
    pub fn record_ok(&self, node: NodeId, offset: ClockOffset) {
        let now = Instant::now();
        let mut peers = self.peers.write();
        let p = peers.entry(node).or_default();
        p.last_ok = Some(now);
        p.failures = 0;
        p.offset = Some((offset, now));
        self.measurements
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn record_failure(&self, node: NodeId) {
        let mut peers = self.peers.write();
        let p = peers.entry(node).or_default();
        p.failures = p.failures.saturating_add(1);
    }

    /// Whether `node`'s latest ping failed and none succeeded for
    /// [`UNREACHABLE_AFTER`]. A node never pinged is not unreachable
    /// (nothing is known yet).
    pub fn is_unreachable(&self, node: NodeId) -> bool {
        self.peers
            .read()
            .get(&node)
            .is_some_and(PeerState::unreachable)
    }

    /// Nodes currently unreachable.
    pub fn unreachable_nodes(&self) -> Vec<NodeId> {
        self.peers
            .read()
            .iter()
            .filter(|(_, p)| p.unreachable())
            .map(|(n, _)| *n)
            .collect()
    }

    /// The latest fresh offset measured to each peer.
    pub fn offsets(&self) -> Vec<(NodeId, ClockOffset)> {
        self.peers
            .read()
            .iter()
            .filter_map(|(n, p)| {
                let (o, at) = p.offset?;
                (at.elapsed() < OFFSET_STALE_AFTER).then_some((*n, o))
            })
            .collect()
    }

    /// Whether this node's clock is too far from the cluster's. Counts the
    /// peers with a fresh measurement plus this node itself; if more than
    /// half of them are certainly further than the fraction of `max_offset`
    /// from this node's clock, this node is the odd one out (a single
    /// skewed peer never makes the others stop: they are the majority).
    pub fn clock_verdict(&self, max_offset: Duration) -> ClockVerdict {
        let limit = (max_offset.as_nanos() as f64 * OFFSET_FATAL_FRACTION) as i64;
        let offsets = self.offsets();
        let far: Vec<String> = offsets
            .iter()
            .filter(|(_, o)| o.certainly_beyond(limit))
            .map(|(n, o)| format!("n{n}: {} ms", o.offset_nanos / 1_000_000))
            .collect();
        let total = offsets.len() + 1;
        let mut verdicts = self.verdicts.lock();
        if far.len() * 2 <= total {
            verdicts.bad = 0;
            return ClockVerdict::Healthy;
        }
        // Only fresh measurements make a new bad verdict: one reading,
        // kept while pings stop, must not add up to a fatal one.
        let measured = self.measurements.load(std::sync::atomic::Ordering::Relaxed);
        if measured != verdicts.seen {
            verdicts.seen = measured;
            verdicts.bad += 1;
        }
        let bad = verdicts.bad;
        let msg = format!(
            "clock synchronization error: this node's clock is more than {} ms (80 % of the maximum offset of {} ms) away from {} of {} nodes ({}); \
             a node must not serve leases the others cannot honour: fix its clock (NTP) and restart it",
            limit / 1_000_000,
            max_offset.as_millis(),
            far.len(),
            total,
            far.join(", ")
        );
        if bad >= BAD_VERDICTS_BEFORE_FATAL {
            ClockVerdict::Fatal(msg)
        } else {
            ClockVerdict::Suspect(msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn the_estimate_takes_the_round_trips_midpoint() {
        // Sent at 100 ms, answered at 110 ms (our clock); the peer read 305 ms.
        let o = ClockOffset::estimate(100 * MS, 110 * MS, 305 * MS);
        assert_eq!(o.offset_nanos, 200 * MS);
        assert_eq!(o.uncertainty_nanos, 5 * MS);
        // A long round trip widens the uncertainty: 450 ms ± 300 ms is not
        // certainly beyond 400 ms.
        let slow = ClockOffset::estimate(0, 600 * MS, 750 * MS);
        assert!(!slow.certainly_beyond(400 * MS));
        assert!(ClockOffset::estimate(0, 2 * MS, 2000 * MS).certainly_beyond(400 * MS));
    }

    #[test]
    fn the_odd_one_out_is_fatal_and_the_majority_is_not() {
        let max = Duration::from_millis(500);
        let skewed = PeerHealth::default();
        // This node is 2 s behind both of its peers, heartbeat after heartbeat.
        let round = || {
            for n in [2, 3] {
                skewed.record_ok(n, ClockOffset::estimate(0, MS, 2000 * MS));
            }
        };
        let suspect = |v: ClockVerdict| matches!(v, ClockVerdict::Suspect(_));
        round();
        assert!(suspect(skewed.clock_verdict(max)));
        // No new measurement: the same reading does not count again.
        assert!(suspect(skewed.clock_verdict(max)));
        assert!(suspect(skewed.clock_verdict(max)));
        round();
        assert!(suspect(skewed.clock_verdict(max)));
        round();
        match skewed.clock_verdict(max) {
            ClockVerdict::Fatal(msg) => assert!(msg.contains("2 of 3 nodes"), "{msg}"),
            v => panic!("expected fatal, got {v:?}"),
        }
        // A healthy node sees one peer 2 s away and one in step.
        let healthy = PeerHealth::default();
        for _ in 0..5 {
            healthy.record_ok(1, ClockOffset::estimate(0, MS, -2000 * MS));
            healthy.record_ok(3, ClockOffset::estimate(0, MS, MS));
            assert_eq!(healthy.clock_verdict(max), ClockVerdict::Healthy);
        }
        // Two nodes that disagree: neither is a majority, neither stops.
        let pair = PeerHealth::default();
        for _ in 0..5 {
            pair.record_ok(2, ClockOffset::estimate(0, MS, 2000 * MS));
            assert_eq!(pair.clock_verdict(max), ClockVerdict::Healthy);
        }
    }

    #[test]
    fn a_recovered_clock_resets_the_count() {
        let max = Duration::from_millis(500);
        let h = PeerHealth::default();
        let measure = |ms: i64| {
            h.record_ok(2, ClockOffset::estimate(0, MS, ms * MS));
            h.record_ok(3, ClockOffset::estimate(0, MS, ms * MS));
        };
        for _ in 0..2 {
            measure(900);
            assert!(matches!(h.clock_verdict(max), ClockVerdict::Suspect(_)));
        }
        measure(10);
        assert_eq!(h.clock_verdict(max), ClockVerdict::Healthy);
        for _ in 0..2 {
            measure(900);
            assert!(matches!(h.clock_verdict(max), ClockVerdict::Suspect(_)));
        }
        measure(900);
        assert!(matches!(h.clock_verdict(max), ClockVerdict::Fatal(_)));
    }

    #[test]
    fn unreachable_needs_a_run_of_failures_and_a_silence() {
        let h = PeerHealth::default();
        let silent_since_long = |n: NodeId| {
            let mut peers = h.peers.write();
            let p = peers.get_mut(&n).expect("recorded");
            p.last_ok = Instant::now().checked_sub(UNREACHABLE_AFTER);
        };
        assert!(!h.is_unreachable(2), "unknown peers are not unreachable");
        h.record_ok(2, ClockOffset::estimate(0, 0, 0));
        h.record_failure(2);
        h.record_failure(2);
        assert!(!h.is_unreachable(2), "it answered a moment ago");
        silent_since_long(2);
        assert!(h.is_unreachable(2));
        assert_eq!(h.unreachable_nodes(), vec![2]);
        h.record_ok(2, ClockOffset::estimate(0, 0, 0));
        assert!(!h.is_unreachable(2));
        // One failed ping after a long silence (one slow answer, or this
        // process paused) is not enough.
        h.record_ok(3, ClockOffset::estimate(0, 0, 0));
        silent_since_long(3);
        h.record_failure(3);
        assert!(!h.is_unreachable(3));
        h.record_failure(3);
        assert!(h.is_unreachable(3));
    }
}
