//! Deterministic simulation of a replicated cluster.
//!
//! Several nodes — real [`tardigrade_kvserver::Store`]s with their Raft
//! groups, leases and engines — run in one process on one thread, driven by
//! one seeded scheduler on simulated time (Tokio's paused clock, which jumps
//! to the next timer whenever every task waits). Nothing else runs: the
//! stores' schedulers are rounds the simulator calls
//! ([`tardigrade_kvserver::StoreConfig::testing_simulated`]), their clocks
//! read simulated time plus a per-node offset, and their messages cross a
//! simulated network ([`net`]). From the seed the simulator draws message
//! delays (hence reordering), loss and duplication, partitions, crashes and
//! restarts, disk write failures and clock offsets, while clients run a
//! register workload and record a history ([`workload`]). At the end the
//! faults heal, every register must be readable again, and the history must
//! be linearizable. The same seed replays the same run: [`Report::digest`]
//! fingerprints it.
//!
//! What it does not cover yet: the DistSender, transactions and SQL above
//! the stores (the clients address stores directly), replica movement and
//! splits, and power loss (a crash keeps every write the engine took).

pub mod bank;
pub mod cluster;
pub mod net;
pub mod workload;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tardigrade_encoding::keys;
use tardigrade_kvpb::RangeDescriptor;
use tardigrade_kvserver::StoreConfig;
use tardigrade_testkit::linearizability::check_operations;
use tokio::time::Instant;

use crate::bank::{Bank, Router};
use crate::cluster::Cluster;
use crate::net::{Conditions, NetStats, Network};
use crate::workload::{Clients, Recorder, SPLIT_KEY, client, final_reads};

/// A bug the simulation can switch on, to show its checker catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Bug {
    /// Leaseholders serve reads on an expired lease.
    StaleReads,
    /// Bank transfers take the debit and the credit in two transactions.
    SplitTransfers,
}

/// One simulation run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: u64,
    /// Simulated time the clients run for (faults happen during it).
    pub duration: Duration,
    pub clients: usize,
    /// Registers (split over two ranges).
    pub keys: u64,
    /// Clients moving money between accounts on both ranges in
    /// transactions ([`bank`]); 0: no transactions (and no cluster sender
    /// on the stores).
    pub bank_clients: usize,
    /// Inject faults (crashes, partitions, loss, delay, duplication, disk
    /// failures, clock offsets).
    pub faults: bool,
    pub bug: Option<Bug>,
    /// Print to stderr every replica's state each simulated second and
    /// every error a client gets (to debug a failing seed).
    pub trace: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            nodes: 3,
            duration: Duration::from_secs(20),
            clients: 4,
            keys: 4,
            bank_clients: 2,
            faults: true,
            bug: None,
            trace: false,
        }
    }
}

/// What a run did and whether its history checked out.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub ops: usize,
    pub ok: usize,
    pub indeterminate: usize,
    pub failed: usize,
    /// The faults, with their simulated times.
    pub faults: Vec<String>,
    pub net: NetStats,
    /// Simulated time the run took, faults healed and final reads included.
    pub simulated: Duration,
    /// A fingerprint of the run (history, faults, network counts): equal
    /// for two runs of one seed.
    pub digest: u64,
    /// Each replica's state at the end, when the run failed.
    pub state: Vec<String>,
    /// Bank transfers committed, and bank reads that added up.
    pub bank: (u64, u64),
    /// Every operation, in invocation order.
    pub history: Vec<tardigrade_testkit::linearizability::RegisterOperation>,
    /// `Err` names what went wrong: a history that is not linearizable, a
    /// register unreadable after healing, a node that could not restart.
    pub verdict: Result<(), String>,
}

/// How long a client waits for one operation.
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long after the end a client may still be in an operation.
const STUCK: Duration = Duration::from_secs(60);
/// How long after healing every register must be readable again.
const RECOVERY: Duration = Duration::from_secs(30);
/// Most clock offset given to a node, either way: below half the maximum
/// offset (500 ms), so that any two nodes stay within it, which is what
/// the transaction protocol assumes.
const MAX_SKEW_MS: u64 = 240;

/// Reads every balance once the faults healed: the bank must answer, and
/// add up.
async fn final_bank_read(bank: Arc<Bank>) -> Result<(), String> {
    let deadline = Instant::now() + RECOVERY;
    loop {
        match bank.read_all().await {
            Ok(balances) => {
                bank.check(&balances, "the final read");
                return Ok(());
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "the bank is still unreadable {RECOVERY:?} after every fault healed: {e}"
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Runs one simulation on a fresh single-threaded runtime.
pub fn run(cfg: &SimConfig) -> Report {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return failed_to_start(cfg, format!("cannot build a runtime: {e}")),
    };
    rt.block_on(simulate(cfg))
}

fn failed_to_start(cfg: &SimConfig, why: String) -> Report {
    Report {
        seed: cfg.seed,
        ops: 0,
        ok: 0,
        indeterminate: 0,
        failed: 0,
        faults: Vec::new(),
        net: NetStats::default(),
        simulated: Duration::ZERO,
        digest: 0,
        bank: (0, 0),
        state: Vec::new(),
        history: Vec::new(),
        verdict: Err(why),
    }
}

/// A fault that ends at a set time.
enum Pending {
    Restart(u64),
    Heal,
    CalmNetwork,
}

/// The faults: which are in force and what ends them.
struct Nemesis {
    rng: StdRng,
    origin: Instant,
    next: Instant,
    pending: Vec<(Instant, Pending)>,
    log: Vec<String>,
    trace: bool,
}

impl Nemesis {
    fn note(&mut self, what: String) {
        let t = self.origin.elapsed().as_secs_f64();
        self.log.push(format!("[{t:>8.3}s] {what}"));
    }

    fn down(&self, c: &Cluster) -> usize {
        c.ids().filter(|&id| !c.is_up(id)).count()
    }

    fn partitioned(&self) -> bool {
        self.pending.iter().any(|(_, p)| matches!(p, Pending::Heal))
    }

    fn calm_pending(&self) -> bool {
        self.pending
            .iter()
            .any(|(_, p)| matches!(p, Pending::CalmNetwork))
    }

    /// Ends the faults that are due, then maybe starts a new one.
    fn act(&mut self, c: &mut Cluster, now: Instant, inject: bool) -> Result<(), String> {
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.pending = rest;
        for (_, p) in due {
            self.end(c, p)?;
        }
        if !inject || now < self.next {
            return Ok(());
        }
        self.next = now + Duration::from_millis(self.rng.random_range(300..2500));
        let n = c.nodes.len() as u64;
        let victim = self.rng.random_range(1..=n);
        let hold = Duration::from_millis(self.rng.random_range(200..5000));
        match self.rng.random_range(0..5) {
            // At most a minority down at once most of the time; sometimes
            // a majority, which only stalls the clients until restarts.
            0 if c.is_up(victim) && (self.down(c) == 0 || self.rng.random_bool(0.2)) => {
                c.crash(victim);
                self.note(format!("crash n{victim}, restart in {hold:?}"));
                self.pending.push((now + hold, Pending::Restart(victim)));
            }
            1 if !self.partitioned() => {
                c.net.isolate(victim, 1..=n);
                self.note(format!("isolate n{victim} for {hold:?}"));
                self.pending.push((now + hold, Pending::Heal));
            }
            2 if !self.calm_pending() => {
                let cond = Conditions {
                    max_delay: Duration::from_millis(self.rng.random_range(1..150)),
                    drop_rate: self.rng.random_range(0.0..0.3),
                    dup_rate: self.rng.random_range(0.0..0.1),
                };
                self.note(format!(
                    "network: delay up to {:?}, {:.0}% lost, {:.0}% duplicated, for {hold:?}",
                    cond.max_delay,
                    cond.drop_rate * 100.0,
                    cond.dup_rate * 100.0
                ));
                c.net.set_conditions(cond);
                self.pending.push((now + hold, Pending::CalmNetwork));
            }
            3 => {
                let ms = self.rng.random_range(0..=MAX_SKEW_MS);
                let ahead = self.rng.random_bool(0.5);
                c.nodes[(victim - 1) as usize]
                    .clock
                    .set_offset(Duration::from_millis(ms), ahead);
                let sign = if ahead { '+' } else { '-' };
                self.note(format!("clock of n{victim} set to {sign}{ms} ms"));
            }
            4 if c.is_up(victim) && self.down(c) == 0 => {
                c.fail_disk(victim, true);
                self.note(format!("disk of n{victim} fails its writes"));
                self.pending.push((now + hold, Pending::Restart(victim)));
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, c: &mut Cluster, p: Pending) -> Result<(), String> {
        match p {
            Pending::Restart(id) => {
                c.fail_disk(id, false);
                if !c.is_up(id) {
                    c.start(id)?;
                    self.note(format!("restart n{id}"));
                }
            }
            Pending::Heal => {
                c.net.heal();
                self.note("heal partitions".into());
            }
            Pending::CalmNetwork => {
                c.net.set_conditions(Conditions::default());
                self.note("network calm".into());
            }
        }
        Ok(())
    }

    /// Ends every fault now.
    fn heal_all(&mut self, c: &mut Cluster) -> Result<(), String> {
        for (_, p) in std::mem::take(&mut self.pending) {
            self.end(c, p)?;
        }
        for id in c.ids() {
            c.fail_disk(id, false);
            if !c.is_up(id) {
                c.start(id)?;
                self.note(format!("restart n{id}"));
            }
        }
        Ok(())
    }
}

/// Runs the cluster's rounds until `done` says so (checked every step).
async fn drive(
    cluster: &Mutex<Cluster>,
    nemesis: &mut Nemesis,
    rng: &mut StdRng,
    inject: bool,
    mut done: impl FnMut() -> bool,
) -> Result<(), String> {
    let n = cluster.lock().nodes.len() as u64;
    let mut order: Vec<u64> = (1..=n).collect();
    let debug = nemesis.trace;
    let mut last_dump = Instant::now();
    while !done() {
        let now = Instant::now();
        {
            let mut c = cluster.lock();
            if debug && now.duration_since(last_dump) >= Duration::from_secs(1) {
                last_dump = now;
                eprintln!(
                    "-- {:.3}s",
                    now.duration_since(nemesis.origin).as_secs_f64()
                );
                for l in c.describe() {
                    eprintln!("   {l}");
                }
            }
            nemesis.act(&mut c, now, inject)?;
            order.shuffle(rng);
            let jitter = &mut *rng;
            for id in c.step(now, &order, || jitter.random_range(0.5..1.5)) {
                nemesis.note(format!("n{id} stopped itself (its store failed)"));
            }
        }
        tokio::time::sleep(Duration::from_micros(rng.random_range(500..3000))).await;
    }
    Ok(())
}

async fn simulate(cfg: &SimConfig) -> Report {
    let origin = Instant::now();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let net = Network::new(rng.random(), origin);
    let ranges = [
        RangeDescriptor::with_voters(1, keys::MIN_KEY.to_vec(), SPLIT_KEY.to_vec(), 1..=cfg.nodes),
        RangeDescriptor::with_voters(2, SPLIT_KEY.to_vec(), keys::MAX_KEY.to_vec(), 1..=cfg.nodes),
    ];
    let store_cfg = StoreConfig {
        bootstrap_single_node: false,
        testing_simulated: true,
        testing_unsafe_reads_past_lease: cfg.bug == Some(Bug::StaleReads),
        proposal_timeout: Duration::from_secs(2),
        ..StoreConfig::default()
    };
    let cluster = match Cluster::new(cfg.nodes, &ranges, net.clone(), origin, store_cfg) {
        Ok(c) => Arc::new(Mutex::new(c)),
        Err(e) => return failed_to_start(cfg, e),
    };
    let recorder = Arc::new(Recorder::new(origin));
    let end = origin + cfg.duration;
    let bank = if cfg.bank_clients > 0 {
        let mut router = Router::new(Arc::downgrade(&cluster), cfg.nodes, rng.random());
        router.trace = cfg.trace;
        let router = Arc::new(router);
        cluster.lock().set_cluster_sender(router.clone());
        let mut bank = Bank::new(router, origin, 6, end, rng.random());
        bank.split_transfers = cfg.bug == Some(Bug::SplitTransfers);
        bank.trace = cfg.trace;
        Some(Arc::new(bank))
    } else {
        None
    };
    let shared = Arc::new(Clients {
        cluster: cluster.clone(),
        recorder: recorder.clone(),
        count: cfg.clients,
        keys: cfg.keys,
        end,
        op_timeout: OP_TIMEOUT,
        trace: cfg.trace,
    });
    let mut clients: Vec<_> = (0..cfg.clients)
        .map(|i| tokio::spawn(client(shared.clone(), i, rng.random())))
        .collect();
    if let Some(bank) = &bank {
        let opener = {
            let bank = bank.clone();
            tokio::spawn(async move { bank.open_accounts().await })
        };
        let mut quiet = Nemesis {
            rng: StdRng::seed_from_u64(0),
            origin,
            next: end,
            pending: Vec::new(),
            log: Vec::new(),
            trace: cfg.trace,
        };
        if let Err(e) = drive(&cluster, &mut quiet, &mut rng, false, || {
            opener.is_finished()
        })
        .await
        {
            return failed_to_start(cfg, e);
        }
        match opener.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return failed_to_start(cfg, e),
            Err(e) => return failed_to_start(cfg, format!("the bank opener failed: {e}")),
        }
        for _ in 0..cfg.bank_clients {
            clients.push(tokio::spawn(bank.clone().client(rng.random())));
        }
    }
    let mut nemesis = Nemesis {
        rng: StdRng::seed_from_u64(rng.random()),
        origin,
        next: origin + Duration::from_secs(1),
        pending: Vec::new(),
        log: Vec::new(),
        trace: cfg.trace,
    };
    // Every operation is bounded (clients stop starting new ones at the
    // end); one still running a minute later is stuck.
    let stuck_after = end + STUCK;
    let mut verdict = drive(&cluster, &mut nemesis, &mut rng, cfg.faults, || {
        clients.iter().all(|c| c.is_finished()) || Instant::now() >= stuck_after
    })
    .await;
    if verdict.is_ok() && !clients.iter().all(|c| c.is_finished()) {
        let stuck = clients.iter().filter(|c| !c.is_finished()).count();
        verdict = Err(format!(
            "{stuck} clients still in an operation {STUCK:?} after the end (a stuck request)"
        ));
        for c in &clients {
            c.abort();
        }
    }
    if verdict.is_ok() {
        nemesis.note("clients done; healing every fault".into());
        verdict = nemesis.heal_all(&mut cluster.lock());
    }
    if verdict.is_ok() {
        let reader = tokio::spawn(final_reads(
            cluster.clone(),
            recorder.clone(),
            cfg.keys,
            usize::MAX / 2,
            RECOVERY,
            cfg.trace,
        ));
        let bank_reader = bank.clone().map(|b| tokio::spawn(final_bank_read(b)));
        let bank_done = || bank_reader.as_ref().is_none_or(|r| r.is_finished());
        let give_up = Instant::now() + RECOVERY + STUCK;
        verdict = drive(&cluster, &mut nemesis, &mut rng, false, || {
            (reader.is_finished() && bank_done()) || Instant::now() >= give_up
        })
        .await;
        if verdict.is_ok() && !(reader.is_finished() && bank_done()) {
            verdict = Err(format!(
                "the final reads are still running {:?} after every fault healed (a stuck request)",
                RECOVERY + STUCK
            ));
            reader.abort();
            if let Some(r) = &bank_reader {
                r.abort();
            }
        }
        if verdict.is_ok() {
            verdict = match reader.await {
                Ok(unread) if unread.is_empty() => Ok(()),
                Ok(unread) => Err(format!(
                    "registers {unread:?} still unreadable {RECOVERY:?} after every fault healed"
                )),
                Err(e) => Err(format!("the final reader failed: {e}")),
            };
        }
        if verdict.is_ok()
            && let Some(r) = bank_reader
        {
            verdict = r
                .await
                .map_err(|e| format!("the final bank reader failed: {e}"))
                .and_then(|r| r);
        }
    }
    if verdict.is_ok()
        && let Some(b) = &bank
    {
        let v = b.violations.lock();
        if let Some(first) = v.first() {
            verdict = Err(format!(
                "bank: {} reads did not add up; the first: {first}",
                v.len()
            ));
        }
    }
    let ops = recorder.operations();
    if verdict.is_ok() {
        verdict = check_operations(&ops).map_err(|e| e.to_string());
    }
    // Stop the stores before the runtime goes away.
    let state = {
        let mut c = cluster.lock();
        let state = if verdict.is_err() {
            c.describe()
        } else {
            Vec::new()
        };
        for id in c.ids() {
            c.crash(id);
        }
        state
    };
    let mut h = DefaultHasher::new();
    for o in &ops {
        format!("{o:?}").hash(&mut h);
    }
    nemesis.log.hash(&mut h);
    let bank_counts = bank.as_ref().map_or((0, 0), |b| *b.counts.lock());
    bank_counts.hash(&mut h);
    let net_stats = net.stats();
    net_stats.hash(&mut h);
    Report {
        seed: cfg.seed,
        ops: ops.len(),
        ok: ops.iter().filter(|o| o.result().is_some()).count(),
        indeterminate: ops.iter().filter(|o| o.is_info()).count(),
        failed: ops.iter().filter(|o| o.is_fail()).count(),
        faults: nemesis.log,
        net: net_stats,
        simulated: origin.elapsed(),
        digest: h.finish(),
        bank: bank_counts,
        state,
        history: ops,
        verdict,
    }
}
