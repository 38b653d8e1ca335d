//! Faults, injected one at a time on a schedule drawn from the run's seed.
//!
//! After a quiet spell (5–10 s) the nemesis picks one of the enabled faults
//! and a node, injects it, waits, heals it, and logs both moments in
//! [`Stats`]:
//!
//! - `kill`: kill -9 of the node's process group, restart on the same store
//!   with the same flags 2–5 s later;
//! - `pause`: SIGSTOP, SIGCONT 10–30 s later;
//! - `skew`: the node's clock jumps by ±0.25–2.5 s (through the clock offset
//!   file), back to 0 after 10–20 s;
//! - `restart-all`: SIGTERM to every node (SIGKILL after 10 s), then all start
//!   again;
//! - `partition`: the node is cut off from every other node, both ways, for
//!   10–30 s (through each node's partition file: Raft, forwarded batches
//!   and heartbeats; SQL clients still reach it, as in Jepsen).
//!
//! A fault is only started if it can heal before the end of the workload
//! phase.

use std::fmt;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::StdRng;

use crate::cluster::Cluster;
use crate::stats::Stats;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    Kill,
    Pause,
    Skew,
    RestartAll,
    Partition,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Skew => "skew",
            Fault::RestartAll => "restart-all",
            Fault::Partition => "partition",
        })
    }
}

/// A fault with its target and timing, drawn from the seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub fault: Fault,
    /// 0-based node index (ignored by `restart-all`).
    pub node: usize,
    /// How long the fault lasts before it is healed.
    pub hold: Duration,
    /// The clock offset of a `skew`, in milliseconds.
    pub skew_ms: i64,
    /// Whether `node` was chosen as the table data's leaseholder.
    pub leaseholder: bool,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = format!(
            "{}{}",
            self.node + 1,
            if self.leaseholder {
                " (leaseholder)"
            } else {
                ""
            }
        );
        match self.fault {
            Fault::Kill => write!(f, "kill -9 n{n}"),
            Fault::Pause => write!(f, "SIGSTOP n{n} for {} s", self.hold.as_secs()),
            Fault::Skew => write!(
                f,
                "clock of n{n} {:+} ms for {} s",
                self.skew_ms,
                self.hold.as_secs()
            ),
            Fault::RestartAll => f.write_str("SIGTERM and restart of all nodes"),
            Fault::Partition => write!(
                f,
                "partition n{n} from the other nodes for {} s",
                self.hold.as_secs()
            ),
        }
    }
}

/// Draws the next fault.
pub fn plan(rng: &mut StdRng, faults: &[Fault], nodes: usize) -> Option<Plan> {
    if faults.is_empty() || nodes == 0 {
        return None;
    }
    let fault = faults[rng.random_range(0..faults.len())];
    let node = rng.random_range(0..nodes);
    let hold = Duration::from_secs(match fault {
        Fault::Kill => rng.random_range(2..=5),
        Fault::Pause | Fault::Partition => rng.random_range(10..=30),
        Fault::Skew => rng.random_range(10..=20),
        Fault::RestartAll => 1,
    });
    let magnitude = rng.random_range(250..=2_500);
    let skew_ms = if rng.random_bool(0.5) {
        magnitude
    } else {
        -magnitude
    };
    Some(Plan {
        fault,
        node,
        hold,
        skew_ms,
        leaseholder: false,
    })
}

/// How long healing `fault` may take at most (restarts wait for the old
/// processes to exit).
fn heal_allowance(fault: Fault) -> Duration {
    match fault {
        Fault::RestartAll => Duration::from_secs(12),
        _ => Duration::from_secs(1),
    }
}

/// Which node a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// A node drawn from the seed.
    Random,
    /// The leaseholder of the table data's range at the time of the fault
    /// (the drawn node when it cannot be found).
    Leaseholder,
}

/// Injects faults until `until`; every fault it starts it heals before
/// returning.
pub async fn run(
    cluster: &Cluster,
    stats: &Stats,
    faults: &[Fault],
    target: Target,
    rng: &mut StdRng,
    until: Instant,
) {
    loop {
        let quiet = Duration::from_secs(rng.random_range(5..=10));
        let Some(mut p) = plan(rng, faults, cluster.len()) else {
            return;
        };
        let start = Instant::now() + quiet;
        // Shorten a long fault to fit; drop one that cannot fit at all.
        let left = until.saturating_duration_since(start + heal_allowance(p.fault));
        if left < Duration::from_secs(2) {
            return;
        }
        p.hold = p.hold.min(left);
        tokio::time::sleep_until(start.into()).await;
        if target == Target::Leaseholder
            && p.fault != Fault::RestartAll
            && let Some(node) = cluster.table_leaseholder().await
        {
            p.node = node;
            p.leaseholder = true;
        }
        inject(cluster, stats, &p).await;
    }
}

/// Applies one planned fault and heals it.
pub async fn inject(cluster: &Cluster, stats: &Stats, p: &Plan) {
    let i = p.node;
    let event = stats.fault_started(p.to_string());
    println!("[{:>4}s] nemesis: {p}", stats.elapsed().as_secs());
    let outcome = match p.fault {
        Fault::Kill => {
            cluster.kill(i);
            tokio::time::sleep(p.hold).await;
            cluster.spawn(i).map(|_| format!("restarted n{}", i + 1))
        }
        Fault::Pause => {
            cluster.signal(i, libc::SIGSTOP);
            tokio::time::sleep(p.hold).await;
            cluster.signal(i, libc::SIGCONT);
            Ok(format!("SIGCONT n{}", i + 1))
        }
        Fault::Skew => match cluster.set_clock_offset(i, p.skew_ms) {
            Ok(()) => {
                tokio::time::sleep(p.hold).await;
                match cluster.set_clock_offset(i, 0) {
                    // A node whose clock is too far off stops itself (as it
                    // must); once its clock is fixed, its supervisor starts
                    // it again, as an operator's would.
                    Ok(()) if cluster.exited(i).is_some() || cluster.pid(i).is_none() => {
                        cluster.spawn(i).map(|_| {
                            format!(
                                "clock of n{} back to 0; it had stopped itself: started again",
                                i + 1
                            )
                        })
                    }
                    Ok(()) => Ok(format!("clock of n{} back to 0", i + 1)),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        },
        Fault::RestartAll => restart_all(cluster).await,
        Fault::Partition => {
            let others: Vec<usize> = (0..cluster.len()).filter(|&j| j != i).collect();
            match cluster.partition(&[vec![i], others]) {
                Ok(()) => {
                    tokio::time::sleep(p.hold).await;
                    cluster
                        .heal_partitions()
                        .map(|()| format!("partition of n{} healed", i + 1))
                }
                Err(e) => Err(cluster.heal_partitions().err().unwrap_or(e)),
            }
        }
    };
    stats.healed(event);
    match outcome {
        Ok(what) => println!("[{:>4}s] nemesis: {what}", stats.elapsed().as_secs()),
        Err(e) => println!(
            "[{:>4}s] nemesis: healing failed: {e}",
            stats.elapsed().as_secs()
        ),
    }
}

/// SIGTERM to every node at once, then every node starts again.
async fn restart_all(cluster: &Cluster) -> Result<String, String> {
    let mut clean = 0;
    // Signal all first, so that they go down together; all get the same
    // 10 s to exit.
    for i in 0..cluster.len() {
        cluster.signal(i, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..cluster.len() {
        let grace = deadline.saturating_duration_since(Instant::now());
        if cluster.wait_exit(i, grace).await {
            clean += 1;
        }
    }
    for i in 0..cluster.len() {
        cluster.spawn(i)?;
    }
    Ok(format!(
        "restarted all {} nodes ({clean} had exited on SIGTERM, the rest were killed)",
        cluster.len()
    ))
}

/// Undoes every fault that may linger: partitions healed, SIGCONT to all,
/// clocks back to 0, and nodes that are not running (killed, or exited by
/// themselves) started again.
pub fn heal_all(cluster: &Cluster) -> Vec<String> {
    let mut notes = Vec::new();
    if let Err(e) = cluster.heal_partitions() {
        notes.push(e);
    }
    for i in 0..cluster.len() {
        cluster.signal(i, libc::SIGCONT);
        if let Err(e) = cluster.set_clock_offset(i, 0) {
            notes.push(e);
        }
        if let Some(status) = cluster.exited(i) {
            notes.push(format!("n{} had exited by itself ({status})", i + 1));
        }
        if cluster.pid(i).is_none() {
            match cluster.spawn(i) {
                Ok(()) => notes.push(format!("started n{} again", i + 1)),
                Err(e) => notes.push(e),
            }
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_schedule_is_a_function_of_the_seed() {
        let faults = [
            Fault::Kill,
            Fault::Pause,
            Fault::Skew,
            Fault::RestartAll,
            Fault::Partition,
        ];
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..20)
                .map(|_| plan(&mut rng, &faults, 3))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        for p in draw(7).into_iter().flatten() {
            assert!(p.node < 3);
            assert!((250..=2_500).contains(&p.skew_ms.abs()));
            if matches!(p.fault, Fault::Pause | Fault::Partition) {
                assert!((10..=30).contains(&p.hold.as_secs()));
            }
        }
    }

    #[test]
    fn no_faults_enabled_means_no_plan() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(plan(&mut rng, &[], 3), None);
    }
}
