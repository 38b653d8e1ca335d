//! `tardigrade-nemesis`: runs workloads against a cluster of real
//! `tardigrade` processes while injecting faults, and checks the histories.
//!
//! ```text
//! cargo run -p tardigrade-nemesis -- --workload bank,set --nemesis kill,pause,skew --duration 120s
//! ```
//!
//! Exits 0 when every checker passes, 1 when one finds an anomaly or cannot
//! decide, 2 on a harness error (the cluster did not start, bad flags).
//! Every node process is killed on exit, on error and on Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use tardigrade_nemesis::cluster::Cluster;
use tardigrade_nemesis::nemesis::{Fault, Target};
use tardigrade_nemesis::runner::{self, Options};
use tardigrade_nemesis::workloads::{Bug, Kind};

#[derive(Parser, Debug)]
#[command(
    name = "tardigrade-nemesis",
    about = "Jepsen-style fault tests of a tardigrade cluster of real processes"
)]
struct Args {
    /// Workloads to run at once, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "bank")]
    workload: Vec<Kind>,
    /// Faults to inject, comma-separated (or `none`): kill, pause, skew,
    /// restart-all, partition.
    #[arg(long, value_delimiter = ',', default_value = "kill,pause,skew")]
    nemesis: Vec<String>,
    /// Which node kill, pause, skew and partition hit: random (from the
    /// seed) or the leaseholder of the workloads' table data at the time.
    #[arg(long, default_value = "random")]
    target: Target,
    /// Length of the workload phase: 120s, 2m, or seconds.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Seed of the fault schedule and the operations (default: from the time).
    #[arg(long)]
    seed: Option<u64>,
    /// The tardigrade binary (default: next to this one, built with cargo if
    /// missing).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Clients per workload.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Time budget of one operation, retries included.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    op_timeout: Duration,
    /// Timeout of one SQL statement.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    statement_timeout: Duration,
    /// How long the final reads may wait for the healed cluster.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    final_timeout: Duration,
    /// Corrupt what a workload records, to see its checker catch it.
    #[arg(long)]
    inject_bug: Option<Bug>,
    /// Where to put stores, logs and histories (default: a new temp dir,
    /// removed after a passing run unless --keep).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the directory after a passing run.
    #[arg(long)]
    keep: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 2m or 500ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?}: unit must be ms, s or m")),
    }
}

fn parse_faults(names: &[String]) -> Result<Vec<Fault>, String> {
    use clap::ValueEnum;
    let mut faults = Vec::new();
    for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if n == "none" {
            continue;
        }
        faults.push(Fault::from_str(n, true).map_err(|_| {
            format!("unknown nemesis {n:?}: kill, pause, skew, restart-all, partition or none")
        })?);
    }
    Ok(faults)
}

/// The tardigrade binary: the one given, else the one next to this
/// executable, built with the cargo that runs us if it is missing.
fn find_binary(given: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(b) = given {
        return if b.is_file() {
            Ok(b)
        } else {
            Err(format!("--binary {}: no such file", b.display()))
        };
    }
    let me = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let dir = me.parent().unwrap_or(Path::new("."));
    let sibling = dir.join("tardigrade");
    if sibling.is_file() {
        return Ok(sibling);
    }
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Err(format!(
            "no tardigrade binary at {}: build it (cargo build -p tardigrade) or pass --binary",
            sibling.display()
        ));
    };
    let release = dir.file_name().is_some_and(|n| n == "release");
    println!(
        "building tardigrade ({})",
        if release { "release" } else { "debug" }
    );
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-p", "tardigrade"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if status.success() && sibling.is_file() {
        Ok(sibling)
    } else {
        Err(format!(
            "cargo build -p tardigrade did not produce {}",
            sibling.display()
        ))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match real_main(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Returns whether every checker passed.
fn real_main(args: Args) -> Result<bool, String> {
    let faults = parse_faults(&args.nemesis)?;
    if args.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    if args.workload.is_empty() {
        return Err("--workload: name at least one".into());
    }
    let binary = find_binary(args.binary)?;
    let (dir, temp) = match args.dir {
        Some(d) => {
            std::fs::create_dir_all(&d).map_err(|e| format!("--dir {}: {e}", d.display()))?;
            (d, None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("tardigrade-nemesis-")
                .tempdir()
                .map_err(|e| format!("cannot create a temp dir: {e}"))?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let opts = Options {
        workloads: args.workload,
        faults,
        target: args.target,
        duration: args.duration,
        nodes: args.nodes,
        seed,
        binary,
        concurrency: args.concurrency.max(1),
        op_timeout: args.op_timeout,
        statement_timeout: args.statement_timeout,
        final_timeout: args.final_timeout,
        bug: args.inject_bug,
        dir,
    };
    println!("seed {seed} (rerun the same schedule with --seed {seed})");
    let cluster = Rc::new(Cluster::new(&opts.binary, &opts.dir, opts.nodes)?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    let outcome = local.block_on(&rt, async {
        tokio::select! {
            r = runner::run(&opts, cluster.clone()) => r.map(Some),
            s = interrupted() => {
                eprintln!("{s}: stopping the cluster");
                Ok(None)
            }
        }
    });
    cluster.kill_all();
    drop(local);
    drop(rt);
    let passed = match &outcome {
        Ok(Some(report)) => {
            report.print(&opts);
            report.passed()
        }
        _ => false,
    };
    match temp {
        Some(t) if passed && !args.keep => drop(t),
        Some(t) => println!("kept {}", t.keep().display()),
        None => {}
    }
    match outcome? {
        Some(_) => Ok(passed),
        None => Err("interrupted".into()),
    }
}

/// Waits for Ctrl-C or SIGTERM; returns which.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted (Ctrl-C)",
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => "terminated (SIGTERM)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_bare_seconds() {
        assert_eq!(parse_duration("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn nemesis_names_parse() {
        let names = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            parse_faults(&names("kill,pause,skew,restart-all,partition")),
            Ok(vec![
                Fault::Kill,
                Fault::Pause,
                Fault::Skew,
                Fault::RestartAll,
                Fault::Partition
            ])
        );
        assert_eq!(parse_faults(&names("none")), Ok(vec![]));
        let unknown = parse_faults(&names("meteor")).unwrap_err();
        assert!(unknown.contains("partition"), "{unknown}");
    }
}
