//! `tardigrade workload init|run|check kv|bank|tpch`.

mod bank;
mod hist;
mod kv;
mod tpch;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use tardigrade_kvpb::{ErrorDetail, KvError};
use tokio::task::JoinSet;

use crate::{CliError, CliResult, WorkloadArgs, WorkloadKind, connect};
use hist::{AtomicHistogram, Histogram};

/// How many distinct errors a run prints (to stderr) before staying quiet.
const ERRORS_SHOWN: u64 = 5;
/// How long workers may take to finish their last operation after --duration.
const DRAIN: Duration = Duration::from_secs(10);

/// Counters shared by a run's workers.
#[derive(Default)]
pub struct Stats {
    pub ops: AtomicU64,
    pub errors: AtomicU64,
    pub retries: AtomicU64,
    pub latency: AtomicHistogram,
}

impl Stats {
    fn error(&self, e: &KvError) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if n < ERRORS_SHOWN {
            eprintln!("workload error: {e}");
        } else if n == ERRORS_SHOWN {
            eprintln!("workload error: (further errors are only counted)");
        }
    }
}

pub async fn init(args: WorkloadArgs) -> CliResult {
    match args.workload {
        WorkloadKind::Kv => {
            println!("kv init: nothing to do (the kv workload creates its keys as it runs)");
            Ok(())
        }
        WorkloadKind::Bank => {
            let db = connect(&args.host).await?;
            bank::init(&db, args.accounts).await
        }
        WorkloadKind::Tpch => tpch::init(&args).await,
    }
}

pub async fn check(args: WorkloadArgs) -> CliResult {
    match args.workload {
        WorkloadKind::Kv => {
            println!("kv check: nothing to check (the kv workload has no invariant)");
            Ok(())
        }
        WorkloadKind::Bank => {
            let db = connect(&args.host).await?;
            bank::check(&db, args.accounts).await
        }
        WorkloadKind::Tpch => tpch::check(&args).await,
    }
}

/// The seed of worker `i`: distinct per worker, fixed by the run's seed.
pub fn worker_seed(seed: u64, i: u32) -> u64 {
    seed ^ (u64::from(i) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

enum Worker {
    Kv(kv::KvWorker),
    Bank(bank::BankWorker),
}

impl Worker {
    async fn op(&mut self, rng: &mut StdRng, stats: &Stats) -> Result<(), KvError> {
        match self {
            Worker::Kv(w) => w.op(rng).await,
            Worker::Bank(w) => w.op(rng, stats).await,
        }
    }
}

async fn worker_loop(mut w: Worker, mut rng: StdRng, stats: Arc<Stats>, deadline: Instant) {
    while Instant::now() < deadline {
        let start = Instant::now();
        match w.op(&mut rng, &stats).await {
            Ok(()) => {
                stats.latency.record(start.elapsed());
                stats.ops.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.error(&e);
                if matches!(e.detail, ErrorDetail::Unavailable(_)) {
                    // Do not spin while the node is unreachable.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

pub fn progress_header() -> &'static str {
    "_elapsed     ops/s   p50(ms)   p95(ms)   p99(ms)    errors"
}

pub fn progress_line(elapsed: Duration, ops_per_sec: f64, h: &Histogram, errors: u64) -> String {
    format!(
        "{:>7.1}s {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9}",
        elapsed.as_secs_f64(),
        ops_per_sec,
        h.quantile_ms(0.50),
        h.quantile_ms(0.95),
        h.quantile_ms(0.99),
        errors
    )
}

pub fn summary_line(ops_per_sec: f64, h: &Histogram, errors: u64) -> String {
    format!(
        "summary ops/s={:.0} p50_ms={:.2} p95_ms={:.2} p99_ms={:.2} errors={errors}",
        ops_per_sec,
        h.quantile_ms(0.50),
        h.quantile_ms(0.95),
        h.quantile_ms(0.99),
    )
}

pub async fn run(args: WorkloadArgs) -> CliResult {
    if args.workload == WorkloadKind::Tpch {
        return tpch::run(&args).await;
    }
    let db = connect(&args.host).await?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let kind = match args.workload {
        WorkloadKind::Kv => "kv",
        WorkloadKind::Bank => "bank",
        WorkloadKind::Tpch => "tpch",
    };
    println!(
        "workload {kind}: host={} concurrency={} duration={:?} seed={seed}",
        args.host, args.concurrency, args.duration
    );
    println!("{}", progress_header());

    let stats = Arc::new(Stats::default());
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut workers = JoinSet::new();
    for i in 0..args.concurrency {
        let w = match args.workload {
            WorkloadKind::Kv => Worker::Kv(kv::KvWorker::new(
                db.clone(),
                args.read_percent,
                args.max_key,
                args.value_size as usize,
            )),
            WorkloadKind::Bank => Worker::Bank(bank::BankWorker::new(db.clone(), args.accounts)),
            WorkloadKind::Tpch => return Err(CliError("tpch is not a KV workload".into())),
        };
        let rng = StdRng::seed_from_u64(worker_seed(seed, i));
        workers.spawn(worker_loop(w, rng, stats.clone(), deadline));
    }

    // One progress line per second until the deadline.
    let mut prev = stats.latency.snapshot();
    let mut prev_ops = 0;
    let mut prev_at = start;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(start + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while Instant::now() + Duration::from_millis(1) < deadline {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => break,
        }
        let now = Instant::now();
        let snap = stats.latency.snapshot();
        let ops = stats.ops.load(Ordering::Relaxed);
        let secs = now.duration_since(prev_at).as_secs_f64().max(1e-9);
        println!(
            "{}",
            progress_line(
                now.duration_since(start),
                (ops - prev_ops) as f64 / secs,
                &snap.since(&prev),
                stats.errors.load(Ordering::Relaxed),
            )
        );
        (prev, prev_ops, prev_at) = (snap, ops, now);
    }

    // Let the workers finish their last operation.
    let mut failure = None;
    let drained = tokio::time::timeout(DRAIN, async {
        while let Some(joined) = workers.join_next().await {
            if let Err(e) = joined {
                failure.get_or_insert_with(|| format!("a worker failed: {e}"));
            }
        }
    })
    .await;
    if drained.is_err() {
        workers.abort_all();
        eprintln!(
            "workload: {} worker(s) still busy {DRAIN:?} after --duration; abandoned",
            workers.len()
        );
    }

    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let total = stats.latency.snapshot();
    let ops = stats.ops.load(Ordering::Relaxed);
    let errors = stats.errors.load(Ordering::Relaxed);
    if args.workload == WorkloadKind::Bank {
        println!(
            "bank: {} transfer retries (retryable errors, not counted as errors)",
            stats.retries.load(Ordering::Relaxed)
        );
    }
    println!("{}", summary_line(ops as f64 / elapsed, &total, errors));
    match failure {
        Some(msg) => Err(CliError(msg)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_seeds_differ_and_replay() {
        let a: Vec<_> = (0..16).map(|i| worker_seed(1, i)).collect();
        let b: Vec<_> = (0..16).map(|i| worker_seed(1, i)).collect();
        assert_eq!(a, b);
        let mut dedup = a.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(dedup.len(), a.len());
        assert_ne!(worker_seed(1, 0), worker_seed(2, 0));
    }

    #[test]
    fn summary_has_the_promised_shape() {
        let h = AtomicHistogram::default();
        h.record(Duration::from_millis(2));
        let line = summary_line(1234.4, &h.snapshot(), 3);
        assert!(line.starts_with("summary ops/s=1234 p50_ms="), "{line}");
        assert!(line.ends_with(" errors=3"), "{line}");
        let fields: Vec<_> = line.split(' ').collect();
        assert_eq!(fields.len(), 6, "{line}");
        for (f, name) in fields[1..]
            .iter()
            .zip(["ops/s", "p50_ms", "p95_ms", "p99_ms", "errors"])
        {
            assert!(f.starts_with(&format!("{name}=")), "{f}");
        }
    }

    #[test]
    fn progress_line_lines_up_with_the_header() {
        let h = Histogram::default();
        let line = progress_line(Duration::from_secs(3), 10.0, &h, 0);
        assert_eq!(line.len(), progress_header().len(), "{line:?}");
    }
}
