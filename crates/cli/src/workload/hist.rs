//! A log-bucketed latency histogram: fixed buckets, lock-free recording, no
//! allocation per operation. Buckets are exact below 16 µs; above, each power
//! of two is cut into 16 linear sub-buckets (≤ 6.25% relative error).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SUB: usize = 16;
/// Powers of two above the linear part; the last bucket starts near 2^43 µs
/// (about 100 days) and absorbs anything larger.
const GROUPS: usize = 40;
const BUCKETS: usize = SUB * (GROUPS + 1);

fn bucket_of(micros: u64) -> usize {
    if micros < SUB as u64 {
        return micros as usize;
    }
    let msb = 63 - micros.leading_zeros() as usize; // >= 4
    let group = msb - 3; // >= 1
    let sub = (micros >> (group - 1)) as usize - SUB;
    (SUB * group + sub).min(BUCKETS - 1)
}

/// `[low, high)` in microseconds.
fn bucket_bounds(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, i as u64 + 1);
    }
    let group = i / SUB;
    let sub = (i % SUB) as u64;
    let shift = group - 1;
    ((SUB as u64 + sub) << shift, (SUB as u64 + sub + 1) << shift)
}

/// Shared by all workers; recording is one relaxed atomic add.
pub struct AtomicHistogram {
    buckets: Box<[AtomicU64]>,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl AtomicHistogram {
    pub fn record(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Histogram {
        Histogram {
            counts: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// A point-in-time copy of the counts.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
        }
    }
}

impl Histogram {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What was recorded since `earlier` (a snapshot of the same histogram).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        Histogram {
            counts: self
                .counts
                .iter()
                .zip(&earlier.counts)
                .map(|(now, then)| now.saturating_sub(*then))
                .collect(),
        }
    }

    /// The `q` quantile (0..=1) in milliseconds: the middle of its bucket; 0
    /// when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bucket_bounds(i);
                return (lo as f64 + hi as f64) / 2.0 / 1000.0;
            }
        }
        let (lo, hi) = bucket_bounds(BUCKETS - 1);
        (lo as f64 + hi as f64) / 2.0 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_line() {
        let mut expected_low = 0;
        for i in 0..BUCKETS {
            let (lo, hi) = bucket_bounds(i);
            assert_eq!(lo, expected_low, "bucket {i}");
            assert!(hi > lo);
            assert_eq!(bucket_of(lo), i);
            assert_eq!(bucket_of(hi - 1), i);
            expected_low = hi;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn relative_error_is_bounded() {
        for v in [16u64, 17, 100, 999, 1000, 12_345, 1_000_000, 987_654_321] {
            let (lo, hi) = bucket_bounds(bucket_of(v));
            assert!(lo <= v && v < hi);
            assert!((hi - lo) as f64 / lo as f64 <= 1.0 / 16.0 + 1e-9, "{v}");
        }
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let h = AtomicHistogram::default();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 1000);
        let close = |got: f64, want: f64| (got - want).abs() / want < 0.04;
        assert!(close(s.quantile_ms(0.5), 500.0), "{}", s.quantile_ms(0.5));
        assert!(close(s.quantile_ms(0.95), 950.0), "{}", s.quantile_ms(0.95));
        assert!(close(s.quantile_ms(0.99), 990.0), "{}", s.quantile_ms(0.99));
        assert!(close(s.quantile_ms(1.0), 1000.0), "{}", s.quantile_ms(1.0));
        assert!(close(s.quantile_ms(0.0), 1.0), "{}", s.quantile_ms(0.0));
    }

    #[test]
    fn small_and_empty() {
        let h = AtomicHistogram::default();
        assert_eq!(h.snapshot().quantile_ms(0.5), 0.0);
        h.record(Duration::from_micros(3));
        assert_eq!(h.snapshot().quantile_ms(0.99), 0.0035);
        h.record(Duration::from_secs(1_000_000_000));
        assert_eq!(h.snapshot().count(), 2);
    }

    #[test]
    fn since_subtracts_an_earlier_snapshot() {
        let h = AtomicHistogram::default();
        for _ in 0..10 {
            h.record(Duration::from_millis(1));
        }
        let first = h.snapshot();
        for _ in 0..5 {
            h.record(Duration::from_millis(100));
        }
        let delta = h.snapshot().since(&first);
        assert_eq!(delta.count(), 5);
        assert!((delta.quantile_ms(0.5) - 100.0).abs() < 4.0);
    }
}
