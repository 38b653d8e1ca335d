//! `tardigrade`: the single binary every node runs, and its client tools.

mod cluster;
mod debug;
mod demo;
mod duration;
mod latency;
mod sql_shell;
mod start;
mod workload;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tardigrade_hlc::Hlc;
use tardigrade_kv::Db;
use tardigrade_rpc::RpcSender;

/// Where clients look for a node unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:26258";

#[derive(Parser, Debug)]
#[command(
    name = "tardigrade",
    version,
    about = "Tardigrade: a distributed SQL database",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a node of a multi-node cluster (then `init` one of them).
    Start(cluster::StartArgs),
    /// Initialize a new cluster through one of its started nodes.
    Init(cluster::HostArgs),
    /// Information about the cluster's nodes.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Start a single-node cluster (no replication).
    StartSingleNode(start::StartArgs),
    /// An in-memory cluster in this process with SQL open (and a shell on a terminal).
    Demo(demo::DemoArgs),
    /// A SQL client: an interactive shell, or -e 'SQL' for one-off statements.
    Sql(sql_shell::SqlArgs),
    /// Debugging tools.
    Debug {
        #[command(subcommand)]
        command: DebugCommand,
    },
    /// Generate load against a running node.
    Workload {
        #[command(subcommand)]
        command: WorkloadCommand,
    },
    /// Print version information.
    Version,
}

#[derive(Subcommand, Debug)]
enum DebugCommand {
    /// Read and write raw KV pairs through the KV API.
    Kv(debug::KvArgs),
    /// List the ranges, their spans and replicas.
    Ranges(cluster::HostArgs),
    /// Split the range containing KEY at KEY.
    Split(cluster::SplitArgs),
    /// Compare every range's replicas (the consistency checker); print each
    /// range ok or diverged (and which replica); exit 1 if any diverged.
    CheckConsistency(cluster::HostArgs),
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// The nodes, their addresses, localities, liveness and ranges.
    Status(cluster::HostArgs),
}

#[derive(Subcommand, Debug)]
enum WorkloadCommand {
    /// Create the workload's initial data.
    Init(WorkloadArgs),
    /// Run the workload for --duration and report throughput and latency.
    Run(WorkloadArgs),
    /// Verify the workload's invariants.
    Check(WorkloadArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WorkloadKind {
    /// Random point reads and writes of a key-value table.
    Kv,
    /// Transfers between accounts whose total must never change.
    Bank,
    /// The TPC-H decision-support queries over SQL (needs --url).
    Tpch,
}

#[derive(Args, Debug, Clone)]
pub struct WorkloadArgs {
    /// The workload.
    #[arg(value_enum)]
    pub workload: WorkloadKind,
    /// The node to connect to.
    #[arg(long, default_value = DEFAULT_ADDR)]
    pub host: String,
    /// How long `run` lasts: 30s, 2m, 500ms, 1h30m.
    #[arg(long, default_value = "30s", value_parser = duration::parse_duration)]
    pub duration: std::time::Duration,
    /// Concurrent workers (each its own task and loop).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,
    /// kv: share of operations that are reads.
    #[arg(long, default_value_t = 95, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub read_percent: u8,
    /// bank: number of accounts.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(2..=100_000_000))]
    pub accounts: u64,
    /// kv: keys are drawn from [0, max-key).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_key: u64,
    /// kv: bytes per written value.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(0..=(16 << 20)))]
    pub value_size: u32,
    /// Seed of the workers' random generators (random if not given; printed
    /// so that a run can be replayed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// SQL workloads (tpch): the node's SQL connection URL,
    /// postgres://root@HOST:PORT/defaultdb.
    #[arg(long)]
    pub url: Option<String>,
    /// tpch: the scale factor (1 is about 1 GB of data; 0.01 for a quick look).
    #[arg(long, default_value_t = 0.01)]
    pub scale_factor: f64,
    /// tpch init: write the data as CSV files (and schema.sql, load.sql for
    /// psql) into this directory instead of loading it.
    #[arg(long)]
    pub csv_dir: Option<String>,
    /// tpch run: the queries to run, e.g. 1,3,5-7 (default all 22).
    #[arg(long)]
    pub queries: Option<String>,
    /// tpch run: also run each query on this server (PostgreSQL loaded with
    /// the same data) and compare the results.
    #[arg(long)]
    pub expected_url: Option<String>,
    /// tpch run: give up on a query after this long.
    #[arg(long, default_value = "5m", value_parser = duration::parse_duration)]
    pub query_timeout: std::time::Duration,
}

/// A failed command: the message goes to stderr and the exit code is 1.
#[derive(Debug)]
pub struct CliError(pub String);

impl<T: std::fmt::Display> From<T> for CliError {
    fn from(e: T) -> Self {
        CliError(e.to_string())
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// A KV client connected to the node at `host`; fails at once (not on first
/// use) if the node cannot be reached.
pub async fn connect(host: &str) -> CliResult<Db> {
    let sender = RpcSender::connect(host)
        .await
        .map_err(|e| CliError(format!("cannot reach a node at {host}: {e}")))?;
    Ok(Db::new(Arc::new(sender), Arc::new(Hlc::system())))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        // Parsing, binding, planning and evaluation recurse on statement trees,
        // bounded in depth (`tardigrade_sql::parse::nesting`) and growing
        // their stack when it runs low (`stacker`); the larger worker stack is
        // a margin for everything else (virtual memory: untouched stack pages
        // cost nothing).
        .thread_stack_size(16 << 20)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    if demo::has_ended_stores() {
        // The demo's stopped nodes may still be closing their throw-away
        // stores on the runtime's threads: do not wait long for them, then
        // remove the stores.
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        demo::remove_ended_stores();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::StartSingleNode(args) => {
            tardigrade_server::init_logging("info");
            start::run(args).await
        }
        Command::Start(args) => {
            tardigrade_server::init_logging("info");
            cluster::start(args).await
        }
        Command::Init(args) => cluster::init(args).await,
        Command::Demo(args) => {
            tardigrade_server::init_logging("warn");
            demo::run(args).await
        }
        Command::Sql(args) => {
            tardigrade_server::init_logging("warn");
            sql_shell::run(args).await
        }
        Command::Node {
            command: NodeCommand::Status(args),
        } => {
            tardigrade_server::init_logging("warn");
            cluster::node_status(args).await
        }
        Command::Debug {
            command: DebugCommand::Kv(args),
        } => {
            tardigrade_server::init_logging("warn");
            debug::run(args).await
        }
        Command::Debug {
            command: DebugCommand::Ranges(args),
        } => {
            tardigrade_server::init_logging("warn");
            cluster::debug_ranges(args).await
        }
        Command::Debug {
            command: DebugCommand::CheckConsistency(args),
        } => {
            tardigrade_server::init_logging("warn");
            cluster::debug_check_consistency(args).await
        }
        Command::Debug {
            command: DebugCommand::Split(args),
        } => {
            tardigrade_server::init_logging("warn");
            cluster::debug_split(args).await
        }
        Command::Workload { command } => {
            tardigrade_server::init_logging("warn");
            match command {
                WorkloadCommand::Init(args) => workload::init(args).await,
                WorkloadCommand::Run(args) => workload::run(args).await,
                WorkloadCommand::Check(args) => workload::check(args).await,
            }
        }
        Command::Version => {
            println!("tardigrade {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}
