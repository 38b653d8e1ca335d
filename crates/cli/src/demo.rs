//! `tardigrade demo`: an in-memory cluster in this process with its SQL port open.
//!
//! `--nodes 1` (the default) runs one single-node server; `--nodes N` starts N
//! cluster nodes over loopback gRPC (in-memory stores, like `--store=type=mem`),
//! initializes the cluster through the first and waits until every node has
//! joined. Each node gets a SQL listener, the first on `--sql-port` (26257) or
//! the next free port, the others after it. The connection URL of the first node
//! is printed (`postgresql://root@127.0.0.1:26257/defaultdb?sslmode=disable`).
//!
//! When stdin is a terminal an interactive SQL shell runs against the first node
//! and leaving it (`\q`, end of input) stops the demo. Otherwise the demo serves
//! until SIGINT/SIGTERM: input piped into it is not read (use `tardigrade sql`
//! or `psql` against the printed URL), so `tardigrade demo &` works in scripts.
//! Everything is in memory: nothing survives the process.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use tardigrade_encoding::keys;
use tardigrade_kv::Db;
use tardigrade_rpc::NodeClient;
use tardigrade_server::node::{ClusterNode, NodeConfig};
use tardigrade_server::pgwire::{DEFAULT_SQL_PORT, SqlServer};
use tardigrade_server::{Server, ServerConfig, ServerError};
use tardigrade_storage::StoreSpec;

use crate::{CliError, CliResult};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// How many nodes (1 = a single-node server; more = a replicated cluster).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub nodes: u32,
    /// The first node's SQL port; taken ports are skipped.
    #[arg(long, default_value_t = DEFAULT_SQL_PORT)]
    pub sql_port: u16,
}

/// The running KV side of the demo.
enum Cluster {
    Single(Server),
    Nodes(Vec<ClusterNode>),
}

impl Cluster {
    async fn shutdown(self) {
        match self {
            Cluster::Single(s) => {
                let _ = s.shutdown().await;
            }
            Cluster::Nodes(nodes) => {
                for n in nodes.into_iter().rev() {
                    n.shutdown().await;
                }
            }
        }
    }
}

async fn start_cluster(nodes: u32) -> CliResult<(Cluster, Vec<(Db, u32)>)> {
    let any: SocketAddr = "127.0.0.1:0".parse().map_err(CliError::from)?;
    if nodes == 1 {
        let server = Server::start(ServerConfig {
            store: StoreSpec::Memory,
            listen_addr: any,
        })
        .await?;
        let db = Db::new(server.store(), server.clock());
        return Ok((Cluster::Single(server), vec![(db, 1)]));
    }
    let mut started: Vec<ClusterNode> = Vec::new();
    for _ in 0..nodes {
        let join = started
            .first()
            .map(|n| vec![n.local_addr().to_string()])
            .unwrap_or_default();
        let mut cfg = NodeConfig {
            store: StoreSpec::Memory,
            listen_addr: any,
            http_addr: None,
            join,
            locality: Vec::new(),
            store_config: Default::default(),
        };
        cfg.store_config.bootstrap_split_keys =
            vec![keys::SYSTEM_PREFIX.to_vec(), keys::TABLE_DATA_MIN.to_vec()];
        started.push(ClusterNode::start(cfg).await?);
    }
    let first = started[0].local_addr().to_string();
    NodeClient::connect_lazy(&first)?
        .bootstrap()
        .await
        .map_err(|e| CliError(format!("cannot initialize the demo cluster: {e}")))?;
    for n in &started {
        tokio::time::timeout(Duration::from_secs(60), n.wait_ready())
            .await
            .map_err(|_| CliError("a demo node did not join within 60 s".into()))?;
    }
    let mut dbs = Vec::new();
    for n in &started {
        let db = n
            .db()
            .ok_or_else(|| CliError("a ready node has no KV client".into()))?;
        dbs.push((db, n.node_id().unwrap_or_default() as u32));
    }
    Ok((Cluster::Nodes(started), dbs))
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

pub async fn run(args: DemoArgs) -> CliResult {
    let (cluster, dbs) = start_cluster(args.nodes).await?;
    let mut sql = Vec::new();
    let mut port = args.sql_port;
    for (db, node_id) in dbs {
        let server = start_sql_near(port, db, node_id).await?;
        port = server.local_addr().port().saturating_add(1);
        sql.push(server);
    }
    println!(
        "# Welcome to the Tardigrade demo ({} node{}, in memory).",
        args.nodes,
        if args.nodes == 1 { "" } else { "s" }
    );
    println!("# Connect with:");
    for s in &sql {
        println!("{}", s.url());
    }
    println!("# e.g. psql '{}'", sql[0].url());
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        let config = <tokio_postgres::Config as std::str::FromStr>::from_str(&sql[0].url())
            .map_err(|e| CliError(format!("bad URL: {e}")))?;
        let client = crate::sql_shell::connect(&config).await?;
        let prompt = format!("root@{}/defaultdb> ", sql[0].local_addr());
        tokio::select! {
            _ = crate::sql_shell::shell(&client, &prompt) => {}
            s = crate::start::wait_for_signal() => eprintln!("received {s}"),
        }
    } else {
        println!("# Serving until interrupted (Ctrl-C / SIGTERM).");
        let s = crate::start::wait_for_signal().await;
        tracing::info!("received {s}, stopping the demo");
    }
    for s in sql {
        s.shutdown().await;
    }
    cluster.shutdown().await;
    Ok(())
}
