//! Simulated distance between nodes, for demos and tests of a geo-distributed
//! cluster on one machine (`tardigrade demo --global`, `tardigrade start
//! --testing-latency`).
//!
//! A [`LatencyMap`] gives the one-way delay between two regions (the
//! `region` tier of the nodes' localities). A node given one delays what it
//! sends to another node by the delay between their regions, as if the
//! message crossed that distance:
//! - a Raft message is delivered that long after it was handed to the
//!   transport (its answer is another Raft message, delayed by the other
//!   node's map);
//! - a KV batch (an RPC) waits that long before it is sent and again when
//!   its reply comes back, so a request/reply costs the round trip;
//! - a heartbeat (also an RPC) likewise.
//!
//! Each send waits on its own: nothing sleeps while holding a lock, and a
//! slow destination delays only what is sent to it. Pairs the map does not
//! name, nodes without a `region` tier, and nodes not known yet get no delay.
//! A node without a map checks nothing (the transport holds `None`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tardigrade_kvpb::{BatchRequest, SendFuture, Sender};

use crate::transport::NodeId;

/// The locality tier a [`LatencyMap`] matches.
pub const LATENCY_TIER: &str = "region";

/// One-way delays between regions. Symmetric: the delay from A to B is the
/// delay from B to A. A pair naming one region twice (`us-east1:us-east1`)
/// is the delay between two nodes of that region.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyMap {
    /// Keyed by the two region names in order (smaller first).
    pairs: BTreeMap<(String, String), Duration>,
}

impl LatencyMap {
    pub fn new() -> LatencyMap {
        LatencyMap::default()
    }

    /// Sets the one-way delay between regions `a` and `b` (both ways).
    pub fn set(&mut self, a: &str, b: &str, one_way: Duration) {
        self.pairs.insert(key(a, b), one_way);
    }

    /// The delay set between regions `a` and `b`, if any.
    pub fn get(&self, a: &str, b: &str) -> Option<Duration> {
        self.pairs.get(&key(a, b)).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Every region the map names, sorted.
    pub fn regions(&self) -> Vec<String> {
        let mut r: Vec<String> = self
            .pairs
            .keys()
            .flat_map(|(a, b)| [a.clone(), b.clone()])
            .collect();
        r.sort();
        r.dedup();
        r
    }

    /// The one-way delay from a node at locality `from` to one at `to`:
    /// the delay between their regions, zero if either has no region or
    /// the map does not name the pair.
    pub fn one_way(&self, from: &[(String, String)], to: &[(String, String)]) -> Duration {
        match (region_of(from), region_of(to)) {
            (Some(a), Some(b)) => self.get(a, b).unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }
}

/// The flag form: `a:b=33ms,…`, pairs sorted, delays in whole milliseconds
/// when they are whole milliseconds and microseconds otherwise.
impl fmt::Display for LatencyMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, ((a, b), d)) in self.pairs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if d.as_nanos() % 1_000_000 == 0 {
                write!(f, "{a}:{b}={}ms", d.as_millis())?;
            } else {
                write!(f, "{a}:{b}={}us", d.as_micros())?;
            }
        }
        Ok(())
    }
}

fn key(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

/// The value of the [`LATENCY_TIER`] tier of a locality.
pub fn region_of(locality: &[(String, String)]) -> Option<&str> {
    locality
        .iter()
        .find(|(k, _)| k == LATENCY_TIER)
        .map(|(_, v)| v.as_str())
}

/// How long what this node sends to `node` travels (one way). Called on
/// every send: must be cheap and must not block.
pub trait PeerLatency: Send + Sync {
    fn delay_to(&self, node: NodeId) -> Duration;
}

/// A [`Sender`] to node `to` whose batches cross the simulated distance
/// both ways: the request waits the one-way delay before it is sent, the
/// reply (or error) the same delay before it is returned.
pub struct DelayedSender {
    inner: Arc<dyn Sender>,
    to: NodeId,
    latency: Arc<dyn PeerLatency>,
}

impl DelayedSender {
    pub fn new(inner: Arc<dyn Sender>, to: NodeId, latency: Arc<dyn PeerLatency>) -> DelayedSender {
        DelayedSender { inner, to, latency }
    }
}

impl Sender for DelayedSender {
    fn send(&self, ba: BatchRequest) -> SendFuture<'_> {
        Box::pin(async move {
            let delay = self.latency.delay_to(self.to);
            if delay.is_zero() {
                return self.inner.send(ba).await;
            }
            tokio::time::sleep(delay).await;
            let result = self.inner.send(ba).await;
            tokio::time::sleep(delay).await;
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use parking_lot::Mutex;

    use super::*;
    use crate::transport::tests::{Echo, ba};

    fn loc(region: &str) -> Vec<(String, String)> {
        vec![
            ("region".to_string(), region.to_string()),
            ("zone".to_string(), format!("{region}-b")),
        ]
    }

    #[test]
    fn delays_are_symmetric_and_zero_when_unnamed() {
        let mut m = LatencyMap::new();
        m.set("us-west1", "us-east1", Duration::from_millis(33));
        m.set("us-east1", "us-east1", Duration::from_micros(500));
        assert_eq!(
            m.get("us-east1", "us-west1"),
            Some(Duration::from_millis(33))
        );
        let d = m.one_way(&loc("us-east1"), &loc("us-west1"));
        assert_eq!(d, Duration::from_millis(33));
        assert_eq!(d, m.one_way(&loc("us-west1"), &loc("us-east1")));
        assert_eq!(
            m.one_way(&loc("us-east1"), &loc("us-east1")),
            Duration::from_micros(500)
        );
        assert_eq!(
            m.one_way(&loc("us-west1"), &loc("us-west1")),
            Duration::ZERO
        );
        assert_eq!(m.one_way(&loc("us-east1"), &loc("eu")), Duration::ZERO);
        assert_eq!(m.one_way(&[], &loc("us-west1")), Duration::ZERO);
        assert_eq!(m.regions(), ["us-east1", "us-west1"]);
        assert_eq!(
            m.to_string(),
            "us-east1:us-east1=500us,us-east1:us-west1=33ms"
        );
    }

    struct Fixed(Duration);

    impl PeerLatency for Fixed {
        fn delay_to(&self, node: NodeId) -> Duration {
            if node == 2 { self.0 } else { Duration::ZERO }
        }
    }

    /// On Tokio's paused clock (virtual time, so the bounds are exact and
    /// cannot be flaky).
    #[tokio::test(start_paused = true)]
    async fn a_delayed_batch_takes_the_round_trip_and_sends_do_not_queue() {
        use tokio::time::Instant;
        let latency: Arc<dyn PeerLatency> = Arc::new(Fixed(Duration::from_millis(40)));
        let echo = Arc::new(Echo {
            served: Mutex::new(0),
        });
        let to2 = Arc::new(DelayedSender::new(echo.clone(), 2, latency.clone()));
        let start = Instant::now();
        to2.send(ba()).await.expect("send");
        assert_eq!(start.elapsed(), Duration::from_millis(80));

        // Ten concurrent sends each wait their own delay, not one after the other.
        let start = Instant::now();
        let sends: Vec<_> = (0..10)
            .map(|_| {
                let s = to2.clone();
                tokio::spawn(async move { s.send(ba()).await.map(|_| ()) })
            })
            .collect();
        for s in sends {
            s.await.expect("join").expect("send");
        }
        assert_eq!(start.elapsed(), Duration::from_millis(80), "not serialised");

        assert_eq!(*echo.served.lock(), 11);
        let to3 = DelayedSender::new(echo, 3, latency);
        let start = Instant::now();
        to3.send(ba()).await.expect("send");
        assert_eq!(start.elapsed(), Duration::ZERO, "no delay to n3");
    }
}
