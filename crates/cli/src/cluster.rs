//! Cluster commands: `start`, `init`, `node status`, `debug ranges`.

use std::net::SocketAddr;

use clap::Args;
use tardigrade_encoding::{keys, pretty_key};
use tardigrade_kvpb::RangeDescriptor;
use tardigrade_rpc::{NodeClient, NodeError};
use tardigrade_server::cluster::{Liveness, NODE_DESC_PREFIX, NodeDescriptor, parse_locality};
use tardigrade_server::node::{ClusterNode, NodeConfig};
use tardigrade_storage::StoreSpec;

use crate::{CliError, CliResult, DEFAULT_ADDR, connect};

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Where the store lives: a directory (DIR or path=DIR), or type=mem.
    #[arg(long, default_value = "tardigrade-data")]
    pub store: StoreSpec,
    /// The address node-to-node and KV RPCs listen on.
    #[arg(long, default_value = DEFAULT_ADDR, value_parser = crate::start::parse_listen_addr)]
    pub listen_addr: SocketAddr,
    /// The address the HTTP status endpoint (/_status/vars) listens on.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = crate::start::parse_listen_addr)]
    pub http_addr: SocketAddr,
    /// The SQL address (accepted now; the SQL layer comes with issue 4).
    #[arg(long)]
    pub sql_addr: Option<String>,
    /// Comma-separated addresses of nodes of the cluster to join.
    #[arg(long, value_delimiter = ',')]
    pub join: Vec<String>,
    /// Where this node is: region=…,zone=…
    #[arg(long, default_value = "")]
    pub locality: String,
    /// No TLS and no passwords: the only mode until the security issue.
    #[arg(long)]
    pub insecure: bool,
}

pub async fn start(args: StartArgs) -> CliResult {
    if !args.insecure {
        return Err(CliError(
            "secure mode is not implemented yet: pass --insecure".into(),
        ));
    }
    let locality =
        parse_locality(&args.locality).map_err(|e| CliError(format!("--locality: {e}")))?;
    let join: Vec<String> = args
        .join
        .iter()
        .filter(|j| !j.trim().is_empty())
        .cloned()
        .collect();
    let node = ClusterNode::start(NodeConfig {
        store: args.store.clone(),
        listen_addr: args.listen_addr,
        http_addr: Some(args.http_addr),
        join: join.clone(),
        locality,
        store_config: Default::default(),
    })
    .await?;
    println!(
        "node listening: RPC at {}, HTTP at {}",
        node.local_addr(),
        node.http_addr().map(|a| a.to_string()).unwrap_or_default()
    );
    if node.node_id().is_none() {
        if join.is_empty() {
            println!("waiting for `tardigrade init --host={}`", node.local_addr());
        } else {
            println!("joining through {}", join.join(","));
        }
    }
    tokio::select! {
        _ = node.wait_ready() => {
            println!("node started: node id {}", node.node_id().unwrap_or_default());
        }
        s = crate::start::wait_for_signal() => {
            tracing::info!("received {s} before the node was ready");
            node.shutdown().await;
            return Ok(());
        }
    }
    let signal = crate::start::wait_for_signal().await;
    tracing::info!("received {signal}, shutting down");
    node.shutdown().await;
    Ok(())
}

#[derive(Args, Debug)]
pub struct HostArgs {
    /// A node of the cluster.
    #[arg(long, default_value = DEFAULT_ADDR)]
    pub host: String,
    /// Accepted for CockroachDB compatibility.
    #[arg(long)]
    pub insecure: bool,
}

pub async fn init(args: HostArgs) -> CliResult {
    let client = NodeClient::connect_lazy(&args.host)?;
    match client.bootstrap().await {
        Ok((cluster_id, _)) => {
            let id = <[u8; 16]>::try_from(cluster_id.as_slice())
                .map(|b| tardigrade_kvpb::TxnId(b).to_string())
                .unwrap_or_else(|_| "?".into());
            println!("Cluster successfully initialized: {id}");
            Ok(())
        }
        Err(NodeError::AlreadyInitialized) => {
            Err(CliError("cluster has already been initialized".into()))
        }
        Err(e) => Err(CliError(format!(
            "cannot initialize through {}: {e}",
            args.host
        ))),
    }
}

async fn all_ranges(db: &tardigrade_kv::Db) -> CliResult<Vec<RangeDescriptor>> {
    let rows = db.scan(keys::META2_PREFIX, keys::META_MAX, 0).await?;
    rows.iter()
        .map(|kv| RangeDescriptor::decode(&kv.value.bytes).map_err(CliError::from))
        .collect()
}

pub async fn node_status(args: HostArgs) -> CliResult {
    let db = connect(&args.host).await?;
    let rows = db
        .scan(NODE_DESC_PREFIX, &keys::prefix_end(NODE_DESC_PREFIX), 0)
        .await?;
    let ranges = all_ranges(&db).await?;
    let now = db.now();
    println!(
        "{:>4}  {:<22}  {:<24}  {:<5}  {:>7}",
        "id", "address", "locality", "live", "ranges"
    );
    for kv in rows {
        let Some(d) = NodeDescriptor::decode(&kv.value.bytes) else {
            continue;
        };
        let live = db
            .get(&keys::node_liveness_key(d.node_id))
            .await?
            .and_then(|b| Liveness::decode(&b))
            .is_some_and(|l| l.is_live(now));
        let n_ranges = ranges
            .iter()
            .filter(|r| r.replicas.iter().any(|x| x.node_id == d.node_id))
            .count();
        println!(
            "{:>4}  {:<22}  {:<24}  {:<5}  {:>7}",
            d.node_id,
            d.address,
            d.locality_string(),
            live,
            n_ranges
        );
    }
    // TODO(issue 3): lease counts per node (needs a lease-info request).
    Ok(())
}

pub async fn debug_ranges(args: HostArgs) -> CliResult {
    let db = connect(&args.host).await?;
    let ranges = all_ranges(&db).await?;
    println!("{:>6}  {:<28}  {:<28}  replicas", "range", "start", "end");
    for r in &ranges {
        let replicas: Vec<String> = r
            .replicas
            .iter()
            .map(|x| format!("n{}/s{}", x.node_id, x.store_id))
            .collect();
        println!(
            "{:>6}  {:<28}  {:<28}  {}",
            r.range_id,
            pretty_key(&r.start_key),
            pretty_key(&r.end_key),
            replicas.join(",")
        );
    }
    println!("({} ranges)", ranges.len());
    // TODO(issue 3): leaseholder and size columns.
    Ok(())
}
