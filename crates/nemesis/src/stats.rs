//! Per-second throughput and the fault log, and from them the zero-throughput
//! seconds each fault caused.
//!
//! Every completed operation is counted, per workload, in the second (since
//! the start of the run) in which it completed, as `ok`, `fail` or
//! `unknown`. A nemesis event records when it started and when it was
//! healed; the seconds from its start until the next event (or the end of the
//! run) in which no operation of a workload succeeded are that workload's
//! zero-throughput seconds for the fault (a fault may stall one workload's
//! ranges and not another's), and those in which no operation of any workload
//! succeeded are the fault's total ones.

use std::fmt;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How an operation ended, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail,
    Unknown,
}

/// Counts of one second, or of a whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
}

impl Counts {
    pub fn merge(&mut self, other: &Counts) {
        self.ok += other.ok;
        self.fail += other.fail;
        self.unknown += other.unknown;
    }

    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Fail => self.fail += 1,
            Outcome::Unknown => self.unknown += 1,
        }
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ok {} fail {} unknown {}",
            self.ok, self.fail, self.unknown
        )
    }
}

/// One fault: what, when it began, when it was healed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultEvent {
    pub what: String,
    pub start: Duration,
    pub healed: Option<Duration>,
}

/// What one fault cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultImpact {
    pub event: FaultEvent,
    /// Seconds without a successful operation of any workload, from the
    /// fault's start until the next fault or the end of the measured run.
    pub zero_seconds: u64,
    /// The same per workload (in the order the workloads were registered).
    pub zero_seconds_by_workload: Vec<u64>,
    /// Seconds from healing until every workload had succeeded again, in a
    /// whole second after the healing (`None`: one had not before the window
    /// ended).
    pub recovered_after: Option<u64>,
    /// Whole seconds of the measured window after healing (0: healed as
    /// the window ended, so recovery could not be seen).
    pub seconds_after_heal: u64,
}

/// Per-workload per-second counts and the fault log of a run. Shared by
/// every client.
pub struct Stats {
    origin: Instant,
    /// `[workload][second]`.
    seconds: Mutex<Vec<Vec<Counts>>>,
    faults: Mutex<Vec<FaultEvent>>,
}

impl Stats {
    /// Stats for `workloads` workloads, numbered from 0.
    pub fn new(origin: Instant, workloads: usize) -> Self {
        Stats {
            origin,
            seconds: Mutex::new(vec![Vec::new(); workloads.max(1)]),
            faults: Mutex::new(Vec::new()),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Counts one completed operation of `workload` in the current second.
    pub fn record(&self, workload: usize, outcome: Outcome) {
        let second = self.elapsed().as_secs() as usize;
        let mut seconds = self.seconds.lock();
        let Some(w) = seconds.get_mut(workload) else {
            return;
        };
        if w.len() <= second {
            w.resize(second + 1, Counts::default());
        }
        w[second].add(outcome);
    }

    /// The counts of second `s` of each workload.
    pub fn second(&self, s: usize) -> Vec<Counts> {
        self.seconds
            .lock()
            .iter()
            .map(|w| w.get(s).copied().unwrap_or_default())
            .collect()
    }

    pub fn totals(&self) -> Counts {
        let mut t = Counts::default();
        for c in self.seconds.lock().iter().flatten() {
            t.merge(c);
        }
        t
    }

    /// Logs the start of a fault; returns its index for [`Stats::healed`].
    pub fn fault_started(&self, what: impl Into<String>) -> usize {
        let mut faults = self.faults.lock();
        faults.push(FaultEvent {
            what: what.into(),
            start: self.elapsed(),
            healed: None,
        });
        faults.len() - 1
    }

    pub fn healed(&self, fault: usize) {
        let now = self.elapsed();
        if let Some(f) = self.faults.lock().get_mut(fault) {
            f.healed = Some(now);
        }
    }

    pub fn faults(&self) -> Vec<FaultEvent> {
        self.faults.lock().clone()
    }

    /// The cost of every fault, counting seconds up to `end` (the end of the
    /// workload phase).
    pub fn impacts(&self, end: Duration) -> Vec<FaultImpact> {
        let seconds = self.seconds.lock().clone();
        fault_impacts(&self.faults(), &seconds, end)
    }
}

/// The first whole second at or after `t`.
fn whole_second_after(t: Duration) -> u64 {
    t.as_secs() + u64::from(t.subsec_nanos() > 0)
}

/// The zero-throughput seconds and recovery time of each fault, given the
/// per-workload per-second counts (`seconds[workload][second]`).
pub fn fault_impacts(
    faults: &[FaultEvent],
    seconds: &[Vec<Counts>],
    end: Duration,
) -> Vec<FaultImpact> {
    let ok_in = |w: &Vec<Counts>, s: u64| w.get(s as usize).is_some_and(|c| c.ok > 0);
    let any_ok = |s: u64| seconds.iter().any(|w| ok_in(w, s));
    let end_s = end.as_secs();
    faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let from = f.start.as_secs();
            let until = faults
                .get(i + 1)
                .map_or(end_s, |next| next.start.as_secs())
                .max(from);
            let zero_seconds = (from..until).filter(|s| !any_ok(*s)).count() as u64;
            let zero_seconds_by_workload = seconds
                .iter()
                .map(|w| (from..until).filter(|s| !ok_in(w, *s)).count() as u64)
                .collect();
            // Successes count from the first whole second after healing,
            // not from earlier in the second the fault was healed in.
            let recovered_after = f.healed.and_then(|h| {
                let first = whole_second_after(h);
                seconds
                    .iter()
                    .map(|w| {
                        (first..end_s.max(first))
                            .find(|s| ok_in(w, *s))
                            .map(|s| s - h.as_secs())
                    })
                    .try_fold(0, |most, r| r.map(|r| r.max(most)))
            });
            let seconds_after_heal = f
                .healed
                .map_or(0, |h| end_s.saturating_sub(whole_second_after(h)));
            FaultImpact {
                event: f.clone(),
                zero_seconds,
                zero_seconds_by_workload,
                recovered_after,
                seconds_after_heal,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(ok: &[u64]) -> Vec<Counts> {
        ok.iter()
            .map(|&ok| Counts {
                ok,
                ..Counts::default()
            })
            .collect()
    }

    #[test]
    fn zero_seconds_are_counted_from_a_fault_until_the_next_one() {
        let seconds = vec![counts(&[5, 5, 0, 0, 0, 4, 5, 0, 5, 5])];
        let faults = vec![
            FaultEvent {
                what: "pause n1".into(),
                start: Duration::from_millis(2_100),
                healed: Some(Duration::from_millis(4_500)),
            },
            FaultEvent {
                what: "kill n2".into(),
                start: Duration::from_millis(7_000),
                healed: None,
            },
        ];
        let impacts = fault_impacts(&faults, &seconds, Duration::from_secs(10));
        assert_eq!(impacts[0].zero_seconds, 3);
        assert_eq!(impacts[0].recovered_after, Some(1));
        assert_eq!(impacts[1].zero_seconds, 1);
        assert_eq!(impacts[1].recovered_after, None);
        assert_eq!(impacts[0].seconds_after_heal, 5);
        assert_eq!(impacts[1].seconds_after_heal, 0, "never healed");
    }

    #[test]
    fn a_fault_that_stalls_one_workload_counts_for_that_workload_only() {
        let seconds = vec![counts(&[5, 0, 0, 0, 5]), counts(&[5, 5, 5, 5, 5])];
        let faults = vec![FaultEvent {
            what: "skew n1".into(),
            start: Duration::from_secs(1),
            healed: Some(Duration::from_secs(2)),
        }];
        let impacts = fault_impacts(&faults, &seconds, Duration::from_secs(5));
        assert_eq!(impacts[0].zero_seconds, 0);
        assert_eq!(impacts[0].zero_seconds_by_workload, vec![3, 0]);
        // The stalled workload succeeded again 2 s after healing.
        assert_eq!(impacts[0].recovered_after, Some(2));
    }

    #[test]
    fn a_fault_never_recovered_from_has_no_recovery_time() {
        let seconds = vec![counts(&[5, 0, 0])];
        let faults = vec![FaultEvent {
            what: "restart-all".into(),
            start: Duration::from_secs(1),
            healed: Some(Duration::from_secs(2)),
        }];
        let impacts = fault_impacts(&faults, &seconds, Duration::from_secs(3));
        assert_eq!(impacts[0].zero_seconds, 2);
        assert_eq!(impacts[0].recovered_after, None);
    }

    #[test]
    fn stats_count_outcomes_per_workload_and_second() {
        let stats = Stats::new(Instant::now(), 2);
        stats.record(0, Outcome::Ok);
        stats.record(1, Outcome::Unknown);
        stats.record(1, Outcome::Fail);
        stats.record(7, Outcome::Ok);
        assert_eq!(
            stats.totals(),
            Counts {
                ok: 1,
                fail: 1,
                unknown: 1
            }
        );
        assert_eq!(stats.second(0)[0].ok, 1);
        assert_eq!(stats.second(0)[1].fail, 1);
        assert_eq!(stats.second(5), vec![Counts::default(); 2]);
    }
}
