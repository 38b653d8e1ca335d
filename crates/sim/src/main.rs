//! `tardigrade-sim`: runs deterministic simulations of a replicated cluster
//! (see the library's documentation), one per seed, and prints each
//! failure with what it needs to replay: its seed.
//!
//! ```text
//! cargo run -p tardigrade-sim -- --seeds 1..200
//! cargo run -p tardigrade-sim -- --seeds 42 --verbose     # replay one
//! cargo run -p tardigrade-sim -- --seeds 42 --trace       # and debug it
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use tardigrade_sim::{Bug, SimConfig, run};

#[derive(Parser, Debug)]
#[command(
    name = "tardigrade-sim",
    about = "Deterministic simulation of a replicated cluster"
)]
struct Args {
    /// A seed (`42`) or a half-open range of seeds (`1..200`).
    #[arg(long, default_value = "1..21", value_parser = parse_seeds)]
    seeds: std::ops::Range<u64>,
    /// Simulated seconds of client traffic and faults per seed.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Clients running bank transactions (0: none).
    #[arg(long, default_value_t = 2)]
    bank_clients: usize,
    /// Run without faults.
    #[arg(long)]
    no_faults: bool,
    /// Switch on a known bug, to see the checker catch it.
    #[arg(long, value_enum)]
    bug: Option<Bug>,
    /// Print every run's faults, not only the failing ones'.
    #[arg(long)]
    verbose: bool,
    /// Print every operation of the history (to compare two runs).
    #[arg(long)]
    history: bool,
    /// Print every replica's state each simulated second and every error a
    /// client gets, to stderr (to debug one seed).
    #[arg(long)]
    trace: bool,
}

fn parse_seeds(s: &str) -> Result<std::ops::Range<u64>, String> {
    let num = |t: &str| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| format!("not a seed: {t:?}"))
    };
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if a >= b {
                return Err(format!("empty seed range {s}"));
            }
            Ok(a..b)
        }
        None => {
            let a = num(s)?;
            Ok(a..a.saturating_add(1))
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let started = Instant::now();
    let mut failures = 0;
    for seed in args.seeds.clone() {
        let cfg = SimConfig {
            seed,
            nodes: args.nodes,
            duration: Duration::from_secs(args.seconds),
            clients: args.clients,
            bank_clients: args.bank_clients,
            faults: !args.no_faults,
            bug: args.bug,
            trace: args.trace,
            ..SimConfig::default()
        };
        let r = run(&cfg);
        let status = match &r.verdict {
            Ok(()) => "ok".to_string(),
            Err(e) => {
                failures += 1;
                format!("FAILED: {e}")
            }
        };
        println!(
            "seed {seed}: {} ops ({} ok, {} indeterminate, {} failed), {} transfers, {} bank reads, {} faults, {:.1}s simulated, {} batches sent / {} dropped, digest {:016x}: {status}",
            r.ops,
            r.ok,
            r.indeterminate,
            r.failed,
            r.bank.0,
            r.bank.1,
            r.faults.len(),
            r.simulated.as_secs_f64(),
            r.net.sent,
            r.net.dropped,
            r.digest,
        );
        if args.history {
            for o in &r.history {
                println!("    {o:?}");
            }
        }
        if args.verbose || r.verdict.is_err() {
            for f in r.faults.iter().chain(&r.state) {
                println!("    {f}");
            }
        }
    }
    let n = args.seeds.end - args.seeds.start;
    println!(
        "{n} seeds, {failures} failed, in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
