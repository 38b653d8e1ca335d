//! One run: start the cluster, set up the workloads, run their clients while
//! the nemesis injects faults, heal, read the end state, check, report.
//!
//! Everything runs on one thread (a current-thread runtime and a
//! `LocalSet`): the harness is light next to the nodes it drives, and child
//! processes spawned from the one thread get `PR_SET_PDEATHSIG` right.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::checkers::Verdict;
use crate::client::Session;
use crate::cluster::Cluster;
use crate::nemesis::{self, Fault, Target};
use crate::stats::{Counts, FaultImpact, Outcome, Stats};
use crate::workloads::{AnyWorkload, Bug, Ctx, Kind, Workload};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub workloads: Vec<Kind>,
    pub faults: Vec<Fault>,
    /// Which node kill, pause and skew hit.
    pub target: Target,
    /// Length of the workload phase.
    pub duration: Duration,
    pub nodes: usize,
    pub seed: u64,
    /// The `tardigrade` binary.
    pub binary: PathBuf,
    /// Clients per workload.
    pub concurrency: usize,
    /// Time budget of one operation (retries on 40001 included).
    pub op_timeout: Duration,
    /// Timeout of one SQL statement.
    pub statement_timeout: Duration,
    /// How long the final reads may wait for the healed cluster.
    pub final_timeout: Duration,
    pub bug: Option<Bug>,
    /// Where the stores, logs and histories go.
    pub dir: PathBuf,
}

/// One workload's result.
pub struct WorkloadResult {
    pub kind: Kind,
    pub verdict: Verdict,
    pub counts: Counts,
}

/// The result of a run.
pub struct Report {
    pub workloads: Vec<WorkloadResult>,
    pub impacts: Vec<FaultImpact>,
    /// Node exits and healing notes.
    pub notes: Vec<String>,
    pub totals: Counts,
    /// Seconds of the workload phase.
    pub measured: Duration,
}

impl Report {
    /// Whether every checker found its history valid.
    pub fn passed(&self) -> bool {
        self.workloads.iter().all(|w| w.verdict.is_valid())
    }

    pub fn print(&self, opts: &Options) {
        println!();
        println!(
            "== results: seed {}, {} nodes, workloads {}, nemesis {}, {} s",
            opts.seed,
            opts.nodes,
            join(&opts.workloads),
            if opts.faults.is_empty() {
                "none".to_string()
            } else {
                join(&opts.faults)
            },
            self.measured.as_secs()
        );
        for w in &self.workloads {
            println!("{:<16} {}", w.kind.to_string(), w.verdict);
            println!("{:<16} operations: {}", "", w.counts);
        }
        println!(
            "faults (zero-throughput seconds: seconds without one successful operation of any workload, and of each, from the fault until the next one):"
        );
        if self.impacts.is_empty() {
            println!("  none");
        }
        for f in &self.impacts {
            let healed = f.event.healed.map_or("never healed".to_string(), |h| {
                format!("healed at {} s", h.as_secs())
            });
            let recovered = match f.recovered_after {
                Some(s) => format!("every workload succeeded again {s} s after healing"),
                None if f.seconds_after_heal == 0 => {
                    "healed as the run ended (recovery not seen)".to_string()
                }
                None => "a workload never succeeded again".to_string(),
            };
            let by_workload: Vec<String> = opts
                .workloads
                .iter()
                .zip(&f.zero_seconds_by_workload)
                .map(|(k, z)| format!("{k} {z}"))
                .collect();
            println!(
                "  at {:>4} s  {:<40} {healed}: zero-throughput s: {} ({}), {recovered}",
                f.event.start.as_secs(),
                f.event.what,
                f.zero_seconds,
                by_workload.join(", ")
            );
        }
        for n in &self.notes {
            println!("note: {n}");
        }
        println!(
            "total: {} in {} s; cluster directory (stores, node logs, histories): {}",
            self.totals,
            self.measured.as_secs(),
            opts.dir.display()
        );
        if let Some(bug) = opts.bug {
            println!("injected bug: {bug:?}");
        }
        println!(
            "{}",
            if self.passed() {
                "PASS: every checker found its history valid"
            } else {
                "FAIL: a checker found an anomaly or could not decide"
            }
        );
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Times a node that exits during start-up is started again.
const START_ATTEMPTS: usize = 3;

/// Starts the cluster: every node, `init`, SQL on every node, and ranges
/// replicated on every node (waited for, but only warned about). A node that
/// exits before it serves SQL is started again (a start-up bug, noted in
/// `notes`), up to [`START_ATTEMPTS`] times.
async fn start_cluster(cluster: &Cluster, notes: &mut Vec<String>) -> Result<(), String> {
    for i in 0..cluster.len() {
        cluster.spawn(i)?;
    }
    cluster.init(Duration::from_secs(60)).await?;
    for i in 0..cluster.len() {
        let mut attempt = 1;
        loop {
            match cluster.wait_sql(i, Duration::from_secs(90)).await {
                Ok(()) => break,
                Err(e) if attempt < START_ATTEMPTS && cluster.pid(i).is_none() => {
                    println!("start-up: {e}\n(starting n{} again)", i + 1);
                    let last = cluster.log_tail(i, 1);
                    notes.push(format!(
                        "start-up: n{} exited before serving SQL and was started again; its last words: {last}",
                        i + 1
                    ));
                    cluster.spawn(i)?;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
    if let Err(last) = cluster.wait_replicated(Duration::from_secs(60)).await {
        println!("warning: ranges not replicated on every node after 60 s; going on:\n{last}");
    }
    Ok(())
}

/// Runs everything; the cluster's processes are killed when `cluster` is
/// dropped (the caller keeps a handle to kill them on Ctrl-C too).
pub async fn run(opts: &Options, cluster: Rc<Cluster>) -> Result<Report, String> {
    println!(
        "starting {} nodes of {} in {}",
        cluster.len(),
        opts.binary.display(),
        opts.dir.display()
    );
    let mut start_notes = Vec::new();
    start_cluster(&cluster, &mut start_notes).await?;
    let addrs = cluster.sql_addrs();
    println!("cluster up; SQL at {}", addrs.join(", "));

    let origin = Instant::now();
    let stats = Arc::new(Stats::new(origin, opts.workloads.len()));
    let workloads: Vec<Rc<AnyWorkload>> = opts
        .workloads
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let mut w = AnyWorkload::new(*k, stats.clone(), origin);
            w.set_index(i);
            Rc::new(w)
        })
        .collect();
    let setup_timeout = Duration::from_secs(60);
    for w in &workloads {
        let mut session = Session::new(addrs.clone(), 0, opts.statement_timeout);
        w.setup(&mut session, setup_timeout).await?;
    }
    let start = stats.elapsed();
    let deadline = Instant::now() + opts.duration;
    let ctx = Rc::new(Ctx {
        stats: stats.clone(),
        deadline,
        op_timeout: opts.op_timeout,
        bug: opts.bug,
        bug_injected: AtomicBool::new(false),
    });
    println!(
        "workloads set up in {} s; running for {} s",
        start.as_secs(),
        opts.duration.as_secs()
    );

    let mut clients = Vec::new();
    for (wi, w) in workloads.iter().enumerate() {
        for c in 0..opts.concurrency {
            let (w, ctx, addrs) = (w.clone(), ctx.clone(), addrs.clone());
            let seed =
                opts.seed ^ ((wi as u64) << 32 | c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let timeout = opts.statement_timeout;
            clients.push(tokio::task::spawn_local(async move {
                let mut session = Session::new(addrs, wi + c, timeout);
                let mut rng = StdRng::seed_from_u64(seed);
                while Instant::now() < ctx.deadline {
                    if w.step(&ctx, c, &mut session, &mut rng).await != Outcome::Ok {
                        // Do not spin on a cluster that refuses everything.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }));
        }
    }

    let notes = Rc::new(RefCell::new(start_notes));
    let reporter = tokio::task::spawn_local(report_every_second(
        cluster.clone(),
        opts.workloads.clone(),
        stats.clone(),
        notes.clone(),
        deadline,
    ));
    let nemesis = {
        let (cluster, stats, faults) = (cluster.clone(), stats.clone(), opts.faults.clone());
        let (seed, target) = (opts.seed, opts.target);
        tokio::task::spawn_local(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            nemesis::run(&cluster, &stats, &faults, target, &mut rng, deadline).await;
        })
    };

    tokio::time::sleep_until(deadline.into()).await;
    let measured = stats.elapsed();
    // Operations in flight end within their budget; give them that long.
    let grace = opts.op_timeout + opts.statement_timeout * 2;
    for c in clients {
        let _ = tokio::time::timeout(grace, c).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), nemesis).await;
    reporter.abort();

    for note in nemesis::heal_all(&cluster) {
        println!("heal: {note}");
        notes.borrow_mut().push(note);
    }
    println!("final reads (up to {} s)", opts.final_timeout.as_secs());
    let final_deadline = Instant::now() + opts.final_timeout;
    for w in &workloads {
        let mut session = Session::new(addrs.clone(), 0, opts.statement_timeout);
        let left = final_deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(5));
        w.final_read(&ctx, &mut session, left).await;
    }

    let mut results = Vec::new();
    for w in &workloads {
        let verdict = w.check();
        let file = opts.dir.join(format!("{}.history.txt", w.kind()));
        if let Err(e) = std::fs::write(&file, w.dump()) {
            println!("warning: cannot write {}: {e}", file.display());
        }
        results.push(WorkloadResult {
            kind: w.kind(),
            verdict,
            counts: w.counts(),
        });
    }
    let impacts = stats.impacts(measured);
    let notes = notes.borrow().clone();
    Ok(Report {
        workloads: results,
        impacts,
        notes,
        totals: stats.totals(),
        measured: measured.saturating_sub(start),
    })
}

/// Prints one line per second: the operations of the second just ended,
/// and any node that exited by itself.
async fn report_every_second(
    cluster: Rc<Cluster>,
    kinds: Vec<Kind>,
    stats: Arc<Stats>,
    notes: Rc<RefCell<Vec<String>>>,
    deadline: Instant,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while Instant::now() < deadline + Duration::from_secs(1) {
        tick.tick().await;
        let now = stats.elapsed().as_secs();
        let Some(second) = now.checked_sub(1) else {
            continue;
        };
        let by_workload = stats.second(second as usize);
        let mut c = Counts::default();
        by_workload.iter().for_each(|w| c.merge(w));
        let mut line = format!("[{second:>4}s] {c} |");
        for (kind, w) in kinds.iter().zip(&by_workload) {
            line.push_str(&format!(" {kind} {}", w.ok));
        }
        if by_workload.iter().any(|w| w.ok == 0) {
            line.push_str("  <- zero throughput");
        }
        println!("{line}");
        for i in 0..cluster.len() {
            if let Some(status) = cluster.exited(i) {
                let note = format!("n{} exited by itself at {now} s ({status})", i + 1);
                println!("[{now:>4}s] {note}");
                notes.borrow_mut().push(note);
            }
        }
    }
}
