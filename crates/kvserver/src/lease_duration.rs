//! How long the leases this store proposes last.
//!
//! A lease's expiration is fixed when its leader proposes it: `now +
//! duration`. It is only of use if it applies before it runs out, and on a
//! starved machine (a build hogging both cores, a disk stalling its fsyncs)
//! a proposal can take longer to apply than the configured duration (2 s):
//! every lease then arrives expired, and the range serves nothing although
//! its leader is alive and alone. So the store remembers how long its recent
//! proposals took to apply and proposes leases that last at least twice
//! that: the configured duration while the machine keeps up, longer while it
//! does not, never longer than [`MAX_LEASE_DURATION`].
//!
//! Longer leases are as safe as short ones (the expiration is in the log, and
//! a new lease never starts before the previous one's expiration); the price
//! is failover: a node that dies while its store is overloaded holds its
//! ranges until their longer leases run out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The longest lease a store proposes, however slow its proposals.
pub const MAX_LEASE_DURATION: Duration = Duration::from_secs(20);

/// The store's recent proposal-to-apply latency and the lease duration it
/// implies. Lock-free: every proposal reports to it.
pub(crate) struct LeaseDurations {
    configured: Duration,
    /// A decaying maximum of recent proposal latencies, in nanoseconds: a
    /// slow proposal raises it at once, and each faster one takes a quarter
    /// of the excess off, so a brief stall is forgotten after a few dozen
    /// proposals.
    recent_latency_ns: AtomicU64,
}

impl LeaseDurations {
    pub(crate) fn new(configured: Duration) -> LeaseDurations {
        LeaseDurations {
            configured,
            recent_latency_ns: AtomicU64::new(0),
        }
    }

    /// Records how long a proposal took from proposal to apply.
    pub(crate) fn observe(&self, latency: Duration) {
        let sample = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .recent_latency_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(sample.max(old - old / 4))
            });
    }

    /// The duration of the next lease this store proposes.
    pub(crate) fn current(&self) -> Duration {
        let recent = Duration::from_nanos(self.recent_latency_ns.load(Ordering::Relaxed));
        let max = MAX_LEASE_DURATION.max(self.configured);
        self.configured.max(recent.saturating_mul(2)).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_outlast_slow_proposals_and_shrink_back_when_they_are_fast() {
        let d = LeaseDurations::new(Duration::from_secs(2));
        assert_eq!(d.current(), Duration::from_secs(2));
        d.observe(Duration::from_millis(5));
        assert_eq!(d.current(), Duration::from_secs(2), "fast proposals");
        d.observe(Duration::from_secs(3));
        assert_eq!(d.current(), Duration::from_secs(6), "twice the stall");
        d.observe(Duration::from_secs(100));
        assert_eq!(d.current(), MAX_LEASE_DURATION, "capped");
        for _ in 0..40 {
            d.observe(Duration::from_millis(5));
        }
        assert_eq!(
            d.current(),
            Duration::from_secs(2),
            "the stall is forgotten"
        );
    }
}
