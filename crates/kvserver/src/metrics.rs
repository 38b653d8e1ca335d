//! A store's counters for `/_status/vars`: Raft proposals and their commit
//! latency, KV batches and requests by method. Plain relaxed atomics, so
//! the hot path takes no lock; the server renders them in Prometheus text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the commit latency histogram's buckets; the
/// last, implicit bucket is `+Inf`.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The request methods counted separately (`Request::method` names).
pub const METHODS: [&str; 17] = [
    "Get",
    "Put",
    "ConditionalPut",
    "Increment",
    "Delete",
    "DeleteRange",
    "Scan",
    "ReverseScan",
    "EndTxn",
    "HeartbeatTxn",
    "PushTxn",
    "ResolveIntent",
    "ResolveIntentRange",
    "QueryTxn",
    "Refresh",
    "Gc",
    "AdminSplit",
];

/// A latency histogram with fixed buckets ([`LATENCY_BUCKETS`]).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// A consistent-enough copy of a [`Histogram`] (each field read once).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, cumulative count)`, ending with `+Inf`.
    pub cumulative: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let mut cumulative = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            cumulative.push((le, total));
        }
        HistogramSnapshot {
            cumulative,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            // The +Inf bucket, so that count and buckets agree.
            count: total,
        }
    }
}

/// A store's counters.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    /// Commands handed to Raft by this store's replicas (writes, leases,
    /// replica changes).
    pub raft_proposals: AtomicU64,
    /// Proposals that failed or whose outcome is unknown.
    pub raft_proposals_failed: AtomicU64,
    /// From proposal to applied on the proposing replica.
    pub raft_commit_latency: Histogram,
    /// Batches the store executed (from clients, DistSenders and itself).
    pub kv_batches: AtomicU64,
    /// Requests in those batches, by [`METHODS`] index.
    pub kv_requests: [AtomicU64; METHODS.len()],
}

impl StoreMetrics {
    /// Counts one batch with requests of the given methods.
    pub fn count_batch<'a>(&self, methods: impl Iterator<Item = &'a str>) {
        self.kv_batches.fetch_add(1, Ordering::Relaxed);
        for m in methods {
            if let Some(i) = METHODS.iter().position(|x| *x == m) {
                self.kv_requests[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// `(method, count)` for every method.
    pub fn requests_by_method(&self) -> Vec<(&'static str, u64)> {
        METHODS
            .iter()
            .zip(&self.kv_requests)
            .map(|(m, c)| (*m, c.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_agree_with_count() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(400));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.cumulative.first(), Some(&(0.000_1, 1)));
        assert_eq!(s.cumulative[2], (0.000_5, 2));
        assert_eq!(s.cumulative[5], (0.005, 3));
        assert_eq!(s.cumulative.last(), Some(&(f64::INFINITY, 4)));
        assert!(
            (s.sum_seconds - 60.003_45).abs() < 1e-9,
            "{}",
            s.sum_seconds
        );
    }

    #[test]
    fn methods_match_request_names() {
        use tardigrade_kvpb::Request;
        let m = StoreMetrics::default();
        let reqs = [
            Request::Get { key: b"a".to_vec() },
            Request::Get { key: b"b".to_vec() },
            Request::AdminSplit {
                split_key: b"c".to_vec(),
            },
        ];
        m.count_batch(reqs.iter().map(Request::method));
        let by = m.requests_by_method();
        assert!(by.contains(&("Get", 2)));
        assert!(by.contains(&("AdminSplit", 1)));
        assert_eq!(m.kv_batches.load(Ordering::Relaxed), 1);
    }
}
