//! `tardigrade demo`: an in-memory cluster in this process with its SQL port open.
//!
//! `--nodes 1` (the default) runs one single-node server; `--nodes N` starts N
//! cluster nodes over loopback gRPC, one after the other (so that node `nK` is
//! the K-th started), initializes the cluster through the first and waits
//! until each has joined. Each node gets a SQL listener, the first on
//! `--sql-port` (26257) or the next free port, the others after it. The
//! connection URL of every node is printed
//! (`postgresql://root@127.0.0.1:26257/defaultdb?sslmode=disable`).
//!
//! `--global` starts nine nodes in three regions of three zones each, as
//! CockroachDB's demo does: us-east1 (zones b, c, d: n1–n3), us-west1 (a, b,
//! c: n4–n6) and europe-west1 (b, c, d: n7–n9), localities
//! `region=us-east1,zone=us-east1-b` and so on, with simulated distance
//! between the regions ([`crate::latency::global_latency`]): round trips
//! us-east1↔us-west1 66 ms, us-east1↔europe-west1 64 ms,
//! us-west1↔europe-west1 146 ms, none within a region. Every node delays
//! what it sends to a node of another region (Raft messages, KV batches and
//! their replies, heartbeats) by half the round trip. It prints the node list
//! and one SQL URL per region (its first node). `--global` implies
//! `--nodes 9` and refuses any other count.
//!
//! When stdin is a terminal an interactive SQL shell runs against the first
//! node and leaving it (`\q`, end of input) stops the demo. Its `\demo`
//! commands act on the cluster (multi-node demos only):
//! - `\demo ls`: the nodes, their localities, SQL and RPC addresses, up or
//!   down (the RPC address is what `tardigrade node status --host` takes);
//! - `\demo shutdown N`: stops node `nN` (its SQL listener too), as a crash
//!   would from the other nodes' point of view; not the shell's node;
//! - `\demo restart N`: starts a stopped node again on its own store, RPC and
//!   SQL addresses: it keeps its node id and data, catches up through Raft.
//!
//! Otherwise the demo serves until SIGINT/SIGTERM: input piped into it is not
//! read (use `tardigrade sql` or `psql` against a printed URL), so
//! `tardigrade demo &` works in scripts.
//!
//! Everything is in memory: a single node runs on an in-memory store; the
//! nodes of a cluster keep their stores in one directory on tmpfs
//! (`/dev/shm` where it exists), so that a restarted node finds its own,
//! and the directory is removed when the demo stops. Nothing survives it.

use std::future::Future;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tardigrade_encoding::keys;
use tardigrade_kv::Db;
use tardigrade_rpc::{LatencyMap, NodeClient};
use tardigrade_server::node::{ClusterNode, NodeConfig};
use tardigrade_server::pgwire::{DEFAULT_SQL_PORT, SqlServer};
use tardigrade_server::{Server, ServerConfig, ServerError};
use tardigrade_storage::StoreSpec;

use crate::latency::{GLOBAL_REGIONS, global_latency};
use crate::sql_shell::ShellCommands;
use crate::{CliError, CliResult};

/// How many nodes `--global` starts.
pub const GLOBAL_NODES: u32 = 9;

/// How long a node may take to join (or rejoin) the demo cluster.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the demo waits for its nodes to stop when it ends.
const EXIT_GRACE: Duration = Duration::from_secs(3);

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// How many nodes: 1 (the default) is a single-node server, more a
    /// replicated cluster. --global implies 9.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub nodes: Option<u32>,
    /// Nine nodes in three regions of three zones (us-east1, us-west1,
    /// europe-west1) with simulated latency between the regions: round trips
    /// us-east1↔us-west1 66 ms, us-east1↔europe-west1 64 ms,
    /// us-west1↔europe-west1 146 ms. Prints one SQL URL per region.
    #[arg(long)]
    pub global: bool,
    /// The first node's SQL port; taken ports are skipped.
    #[arg(long, default_value_t = DEFAULT_SQL_PORT)]
    pub sql_port: u16,
}

impl DemoArgs {
    /// How many nodes to start, or why the flags disagree.
    pub fn node_count(&self) -> CliResult<u32> {
        match (self.global, self.nodes) {
            (true, Some(n)) if n != GLOBAL_NODES => Err(CliError(format!(
                "--global starts {GLOBAL_NODES} nodes (3 regions of 3 zones): drop --nodes {n}, or drop --global"
            ))),
            (true, _) => Ok(GLOBAL_NODES),
            (false, n) => Ok(n.unwrap_or(1)),
        }
    }
}

/// The localities of the `--global` nodes, n1 first.
pub fn global_localities() -> Vec<Vec<(String, String)>> {
    GLOBAL_REGIONS
        .iter()
        .flat_map(|(region, zones)| {
            zones.iter().map(move |z| {
                vec![
                    ("region".to_string(), region.to_string()),
                    ("zone".to_string(), format!("{region}-{z}")),
                ]
            })
        })
        .collect()
}

/// The demo's stores: a directory on tmpfs where there is one. Removed (with
/// everything in it) by [`remove_ended_stores`] once the demo has ended and
/// the runtime is gone: until then tasks of the stopped nodes may still hold
/// their stores open.
struct DemoDir(PathBuf);

/// The store directories of demos that ended, for [`remove_ended_stores`].
static ENDED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

impl DemoDir {
    fn create() -> CliResult<DemoDir> {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let path = base.join(format!(
            "tardigrade-demo-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir(&path).map_err(|e| {
            CliError(format!(
                "cannot create the demo's store directory {}: {e}",
                path.display()
            ))
        })?;
        Ok(DemoDir(path))
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        ENDED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.0.clone());
    }
}

/// Whether a demo ended whose stores [`remove_ended_stores`] should remove.
pub fn has_ended_stores() -> bool {
    !ENDED.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
}

/// Removes the store directories of the demos that ended. Call it after the
/// runtime has shut down (`main` does).
pub fn remove_ended_stores() {
    let ended = std::mem::take(&mut *ENDED.lock().unwrap_or_else(|e| e.into_inner()));
    for dir in ended {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!(
                "warning: cannot remove the demo's stores in {}: {e}",
                dir.display()
            );
        }
    }
}

/// A node of a multi-node demo and, while it is up, its processes.
struct DemoNode {
    node_id: u64,
    locality: Vec<(String, String)>,
    store: PathBuf,
    /// Kept across restarts: peers and clients find the node where it was.
    rpc_addr: SocketAddr,
    sql_addr: SocketAddr,
    running: Option<(ClusterNode, SqlServer)>,
}

impl DemoNode {
    fn locality_string(&self) -> String {
        self.locality
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn url(&self) -> String {
        tardigrade_server::pgwire::connection_url(self.sql_addr)
    }

    /// Stops its SQL listener, then the node.
    async fn stop(&mut self) {
        if let Some((node, sql)) = self.running.take() {
            sql.shutdown().await;
            node.shutdown().await;
        }
    }
}

/// A multi-node demo cluster.
pub struct DemoCluster {
    nodes: Vec<DemoNode>,
    latency: Option<Arc<LatencyMap>>,
    /// The node the interactive shell is connected to (not shut down).
    shell_node: Option<u64>,
    dir: DemoDir,
}

impl DemoCluster {
    /// Starts one node per locality, one after the other (node `nK` is the
    /// K-th), each with a SQL listener from `sql_port` on.
    pub async fn start(
        localities: Vec<Vec<(String, String)>>,
        latency: Option<LatencyMap>,
        sql_port: u16,
    ) -> CliResult<DemoCluster> {
        let mut cluster = DemoCluster {
            nodes: Vec::new(),
            latency: latency.map(Arc::new),
            shell_node: None,
            dir: DemoDir::create()?,
        };
        let mut port = sql_port;
        for (i, locality) in localities.into_iter().enumerate() {
            let store = cluster.dir.0.join(format!("node{}", i + 1));
            let any: SocketAddr = ([127, 0, 0, 1], 0).into();
            let node = ClusterNode::start(cluster.config(&store, any, locality.clone())).await?;
            if i == 0 {
                NodeClient::connect_lazy(&node.local_addr().to_string())?
                    .bootstrap()
                    .await
                    .map_err(|e| CliError(format!("cannot initialize the demo cluster: {e}")))?;
            }
            let (db, node_id) = ready(&node).await?;
            let sql = start_sql_near(port, db, node_id as u32).await?;
            sql.node().set_locality_source(node.locality_source());
            port = sql.local_addr().port().saturating_add(1);
            cluster.nodes.push(DemoNode {
                node_id,
                locality,
                store,
                rpc_addr: node.local_addr(),
                sql_addr: sql.local_addr(),
                running: Some((node, sql)),
            });
        }
        Ok(cluster)
    }

    /// A node's configuration: it joins through the other nodes.
    fn config(
        &self,
        store: &Path,
        listen_addr: SocketAddr,
        locality: Vec<(String, String)>,
    ) -> NodeConfig {
        let join = self
            .nodes
            .iter()
            .filter(|n| n.store != store)
            .map(|n| n.rpc_addr.to_string())
            .collect();
        let mut cfg = NodeConfig {
            store: StoreSpec::Dir(store.to_path_buf()),
            listen_addr,
            http_addr: None,
            join,
            locality,
            store_config: Default::default(),
            testing_latency: self.latency.clone(),
        };
        cfg.store_config.bootstrap_split_keys =
            vec![keys::SYSTEM_PREFIX.to_vec(), keys::TABLE_DATA_MIN.to_vec()];
        cfg
    }

    fn node_mut(&mut self, id: u64) -> Result<&mut DemoNode, String> {
        let count = self.nodes.len();
        self.nodes
            .iter_mut()
            .find(|n| n.node_id == id)
            .ok_or_else(|| format!("no node n{id}: the demo has n1 to n{count}"))
    }

    /// `\demo ls`: the nodes as a table.
    pub fn list(&self) -> String {
        let header: Vec<String> = ["id", "locality", "sql_address", "rpc_address", "status"]
            .iter()
            .map(|h| h.to_string())
            .collect();
        let rows: Vec<Vec<Option<String>>> = self
            .nodes
            .iter()
            .map(|n| {
                vec![
                    Some(n.node_id.to_string()),
                    Some(n.locality_string()),
                    Some(n.sql_addr.to_string()),
                    Some(n.rpc_addr.to_string()),
                    Some(if n.running.is_some() { "up" } else { "down" }.to_string()),
                ]
            })
            .collect();
        crate::sql_shell::format_table(&header, &rows)
    }

    /// `\demo shutdown N`.
    pub async fn shutdown_node(&mut self, id: u64) -> Result<String, String> {
        if self.shell_node == Some(id) {
            return Err(format!("n{id} serves this shell: shut down another node"));
        }
        let node = self.node_mut(id)?;
        if node.running.is_none() {
            return Err(format!("n{id} is already down"));
        }
        node.stop().await;
        Ok(format!("node n{id} is down\n"))
    }

    /// `\demo restart N`: the node comes back on its own store and addresses.
    pub async fn restart_node(&mut self, id: u64) -> Result<String, String> {
        let node = self.node_mut(id)?;
        if node.running.is_some() {
            return Err(format!("n{id} is up (\\demo shutdown {id} first)"));
        }
        let (store, rpc_addr, sql_addr, locality) = (
            node.store.clone(),
            node.rpc_addr,
            node.sql_addr,
            node.locality.clone(),
        );
        // The stopped node's last connections may hold its store (or its
        // port) a moment longer.
        let mut attempts = 0;
        let started = loop {
            match ClusterNode::start(self.config(&store, rpc_addr, locality.clone())).await {
                Ok(n) => break n,
                Err(e) if attempts < 40 => {
                    tracing::debug!("restarting n{id}: {e}");
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(format!("cannot restart n{id}: {e}")),
            }
        };
        let (db, node_id) = ready(&started)
            .await
            .map_err(|e| format!("cannot restart n{id}: {}", e.0))?;
        let sql = tokio::time::timeout(
            READY_TIMEOUT,
            SqlServer::start_when_available(sql_addr, db, node_id as u32),
        )
        .await
        .map_err(|_| format!("n{id} restarted but its SQL layer did not start within 60 s"))?
        .map_err(|e| format!("n{id} restarted but its SQL layer did not start: {e}"))?;
        sql.node().set_locality_source(started.locality_source());
        let node = self.node_mut(id)?;
        node.running = Some((started, sql));
        Ok(format!(
            "node n{id} restarted on its own store (same node id and data; it catches up through Raft); SQL at {}\n",
            node.url()
        ))
    }

    /// Runs one `\demo` command (what follows `\demo`); its output or error.
    pub async fn command(&mut self, args: &str) -> Result<String, String> {
        let words: Vec<&str> = args.split_whitespace().collect();
        let node_arg = |w: &[&str]| -> Result<u64, String> {
            match w {
                [n] => n
                    .trim_start_matches('n')
                    .parse::<u64>()
                    .map_err(|_| format!("{n:?} is not a node id")),
                _ => Err("give one node id, e.g. \\demo shutdown 3".to_string()),
            }
        };
        match words.as_slice() {
            ["ls"] => Ok(self.list()),
            ["shutdown", rest @ ..] => {
                let id = node_arg(rest)?;
                self.shutdown_node(id).await
            }
            ["restart", rest @ ..] => {
                let id = node_arg(rest)?;
                self.restart_node(id).await
            }
            _ => Err(format!("unknown \\demo command {args:?}\n{DEMO_HELP}")),
        }
    }

    /// Stops every node that is up, each on its own task, waiting at most
    /// [`EXIT_GRACE`] (nothing of an in-memory demo needs saving, and a
    /// node's shutdown can take a while: it waits for its peers'
    /// connections to end and marks its store closed cleanly).
    pub async fn shutdown(mut self) {
        let stops: Vec<_> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.running.take())
            .map(|(node, sql)| {
                tokio::spawn(async move {
                    sql.shutdown().await;
                    node.shutdown().await;
                })
            })
            .collect();
        let all = futures::future::join_all(stops);
        if tokio::time::timeout(EXIT_GRACE, all).await.is_err() {
            tracing::debug!("demo nodes still stopping after {EXIT_GRACE:?}; exiting");
        }
    }
}

const DEMO_HELP: &str = "\\demo ls             the nodes, their localities, up or down\n\
                         \\demo shutdown N     stop node nN\n\
                         \\demo restart N      start node nN again (same store and addresses)";

/// Waits for a started node to join; its KV client and node id.
async fn ready(node: &ClusterNode) -> CliResult<(Db, u64)> {
    tokio::time::timeout(READY_TIMEOUT, node.wait_ready())
        .await
        .map_err(|_| CliError("a demo node did not join within 60 s".into()))?;
    let db = node
        .db()
        .ok_or_else(|| CliError("a ready node has no KV client".into()))?;
    Ok((db, node.node_id().unwrap_or_default()))
}

/// The running demo.
enum Demo {
    Single { server: Server, sql: SqlServer },
    Cluster(DemoCluster),
}

impl Demo {
    /// The URL the shell connects to: the first node's.
    fn first_url(&self) -> String {
        match self {
            Demo::Single { sql, .. } => sql.url(),
            Demo::Cluster(c) => c.nodes.first().map(DemoNode::url).unwrap_or_default(),
        }
    }

    async fn shutdown(self) {
        match self {
            Demo::Single { server, sql } => {
                sql.shutdown().await;
                let _ = server.shutdown().await;
            }
            Demo::Cluster(c) => c.shutdown().await,
        }
    }
}

impl ShellCommands for Demo {
    fn help(&self) -> &'static str {
        DEMO_HELP
    }

    fn run<'a>(&'a mut self, line: &'a str) -> Option<Pin<Box<dyn Future<Output = ()> + 'a>>> {
        let rest = line.strip_prefix("\\demo")?;
        if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
            return None;
        }
        Some(Box::pin(async move {
            let out = match self {
                Demo::Single { .. } => Err(
                    "\\demo commands need a multi-node demo (--nodes N or --global)".to_string(),
                ),
                Demo::Cluster(c) => c.command(rest).await,
            };
            match out {
                Ok(text) => print!("{text}"),
                Err(e) => eprintln!("ERROR: {e}"),
            }
        }))
    }
}

/// Starts a SQL listener on `port` or the next free port after it.
pub async fn start_sql_near(port: u16, db: Db, node_id: u32) -> CliResult<SqlServer> {
    let mut last = None;
    for p in port..port.saturating_add(100) {
        let addr = SocketAddr::from(([127, 0, 0, 1], p));
        match SqlServer::start(addr, db.clone(), node_id).await {
            Ok(s) => return Ok(s),
            Err(e @ ServerError::Bind { .. }) => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(CliError(format!(
        "no free SQL port from {port}: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

async fn start_single(sql_port: u16) -> CliResult<Demo> {
    let server = Server::start(ServerConfig {
        store: StoreSpec::Memory,
        listen_addr: ([127, 0, 0, 1], 0).into(),
    })
    .await?;
    let db = Db::new(server.store(), server.clock());
    let sql = start_sql_near(sql_port, db, 1).await?;
    Ok(Demo::Single { server, sql })
}

/// What the demo prints before it serves: a welcome, the nodes, the URLs.
fn banner(demo: &Demo, global: bool) -> String {
    let mut out = String::new();
    let cluster = match demo {
        Demo::Single { sql, .. } => {
            out.push_str("# Welcome to the Tardigrade demo (1 node, in memory).\n");
            out.push_str("# Connect with:\n");
            out.push_str(&format!("{}\n# e.g. psql '{}'\n", sql.url(), sql.url()));
            return out;
        }
        Demo::Cluster(c) => c,
    };
    let n = cluster.nodes.len();
    if !global {
        out.push_str(&format!(
            "# Welcome to the Tardigrade demo ({n} nodes, in memory).\n# Connect with:\n"
        ));
        for node in &cluster.nodes {
            out.push_str(&format!("{}\n", node.url()));
        }
        out.push_str(&format!("# e.g. psql '{}'\n", demo.first_url()));
        return out;
    }
    out.push_str(&format!(
        "# Welcome to the Tardigrade demo ({n} nodes in {} regions, in memory, with simulated latency).\n",
        GLOBAL_REGIONS.len()
    ));
    let map = &global_latency();
    let trips: Vec<String> = GLOBAL_REGIONS
        .iter()
        .enumerate()
        .flat_map(|(i, (a, _))| {
            GLOBAL_REGIONS[i + 1..].iter().filter_map(move |(b, _)| {
                map.get(a, b)
                    .map(|d| format!("{a}<->{b} {} ms", (2 * d).as_millis()))
            })
        })
        .collect();
    out.push_str(&format!("# Round trips: {}.\n# Nodes:\n", trips.join(", ")));
    for node in &cluster.nodes {
        out.push_str(&format!(
            "#   n{}  {:<40} SQL {}  RPC {}\n",
            node.node_id,
            node.locality_string(),
            node.sql_addr,
            node.rpc_addr
        ));
    }
    out.push_str("# Connect with (one node per region):\n");
    for (region, _) in GLOBAL_REGIONS {
        let first = cluster
            .nodes
            .iter()
            .find(|n| tardigrade_rpc::latency::region_of(&n.locality) == Some(region));
        if let Some(node) = first {
            out.push_str(&format!(
                "# {region} (n{}):\n{}\n",
                node.node_id,
                node.url()
            ));
        }
    }
    out.push_str(&format!("# e.g. psql '{}'\n", demo.first_url()));
    out
}

pub async fn run(args: DemoArgs) -> CliResult {
    let count = args.node_count()?;
    let mut demo = if count == 1 {
        start_single(args.sql_port).await?
    } else if args.global {
        Demo::Cluster(
            DemoCluster::start(global_localities(), Some(global_latency()), args.sql_port).await?,
        )
    } else {
        let localities = vec![Vec::new(); count as usize];
        Demo::Cluster(DemoCluster::start(localities, None, args.sql_port).await?)
    };
    print!("{}", banner(&demo, args.global));
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        let url = demo.first_url();
        let config = <tokio_postgres::Config as std::str::FromStr>::from_str(&url)
            .map_err(|e| CliError(format!("bad URL: {e}")))?;
        let client = crate::sql_shell::connect(&config).await?;
        let addr = url
            .trim_start_matches("postgresql://root@")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let prompt = format!("root@{addr}/defaultdb> ");
        if let Demo::Cluster(c) = &mut demo {
            c.shell_node = c.nodes.first().map(|n| n.node_id);
            println!("# \\demo ls lists the nodes; \\? for help.");
        }
        tokio::select! {
            _ = crate::sql_shell::shell(&client, &prompt, &mut demo) => {}
            s = crate::start::wait_for_signal() => eprintln!("received {s}"),
        }
    } else {
        println!("# Serving until interrupted (Ctrl-C / SIGTERM).");
        let s = crate::start::wait_for_signal().await;
        tracing::info!("received {s}, stopping the demo");
    }
    demo.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: Option<u32>, global: bool) -> DemoArgs {
        DemoArgs {
            nodes,
            global,
            sql_port: 0,
        }
    }

    #[test]
    fn global_means_nine_nodes_in_three_regions() {
        assert_eq!(args(None, false).node_count().expect("default"), 1);
        assert_eq!(args(Some(3), false).node_count().expect("3"), 3);
        assert_eq!(args(None, true).node_count().expect("global"), 9);
        assert_eq!(args(Some(9), true).node_count().expect("9 and global"), 9);
        let e = args(Some(3), true)
            .node_count()
            .expect_err("3 and global")
            .0;
        assert!(e.contains("--global starts 9 nodes"), "{e}");

        let l = global_localities();
        assert_eq!(l.len(), 9);
        let names: Vec<String> = l
            .iter()
            .map(|l| {
                l.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        assert_eq!(names[0], "region=us-east1,zone=us-east1-b");
        assert_eq!(names[3], "region=us-west1,zone=us-west1-a");
        assert_eq!(names[8], "region=europe-west1,zone=europe-west1-d");
    }

    async fn select_one(url: &str) -> Result<(), String> {
        let config = <tokio_postgres::Config as std::str::FromStr>::from_str(url)
            .map_err(|e| e.to_string())?;
        let client = crate::sql_shell::connect(&config).await.map_err(|e| e.0)?;
        client
            .simple_query("SELECT 1")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// `\demo ls`, `shutdown` and `restart` on three nodes in this process.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn demo_commands_list_stop_and_restart_nodes() {
        let mut c = DemoCluster::start(vec![Vec::new(); 3], None, 0)
            .await
            .expect("start");
        c.shell_node = Some(1);
        let ids: Vec<u64> = c.nodes.iter().map(|n| n.node_id).collect();
        assert_eq!(ids, [1, 2, 3], "nodes start one after the other");
        let ls = c.command("ls").await.expect("ls");
        assert_eq!(ls.matches("| up").count(), 3, "{ls}");
        assert!(ls.starts_with(" id | locality |"), "{ls}");
        assert!(ls.contains("sql_address"), "{ls}");

        let n2_url = c.nodes[1].url();
        select_one(&n2_url).await.expect("n2 serves SQL");
        let n2_store = c.nodes[1].store.clone();
        assert_eq!(
            c.command(" shutdown  2 ").await.expect("shutdown"),
            "node n2 is down\n"
        );
        let ls = c.command("ls").await.expect("ls");
        assert_eq!(ls.matches("| up").count(), 2, "{ls}");
        assert_eq!(ls.matches("| down").count(), 1, "{ls}");
        assert!(select_one(&n2_url).await.is_err(), "n2's SQL is closed");

        let err = |r: Result<String, String>| r.expect_err("refused");
        assert!(err(c.command("shutdown 2").await).contains("already down"));
        assert!(err(c.command("shutdown 1").await).contains("serves this shell"));
        assert!(err(c.command("shutdown 7").await).contains("no node n7"));
        assert!(err(c.command("shutdown x").await).contains("not a node id"));
        assert!(err(c.command("shutdown").await).contains("give one node id"));
        assert!(err(c.command("restart 3").await).contains("n3 is up"));
        assert!(err(c.command("frobnicate").await).contains("unknown \\demo command"));

        let out = c.command("restart n2").await.expect("restart");
        assert!(out.contains("same node id and data"), "{out}");
        assert_eq!(c.nodes[1].node_id, 2);
        assert_eq!(c.nodes[1].store, n2_store);
        assert_eq!(
            c.nodes[1].running.as_ref().and_then(|(n, _)| n.node_id()),
            Some(2),
            "the restarted node kept its id"
        );
        select_one(&n2_url)
            .await
            .expect("n2 serves SQL again at its URL");
        let ls = c.command("ls").await.expect("ls");
        assert_eq!(ls.matches("| up").count(), 3, "{ls}");

        let dir = c.dir.0.clone();
        assert!(dir.is_dir());
        c.shutdown().await;
        assert!(dir.is_dir(), "kept until the runtime is gone");
        remove_ended_stores();
        assert!(!dir.exists(), "the demo's stores are removed");
    }
}
