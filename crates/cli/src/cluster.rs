//! Cluster commands: `start`, `init`, `node status`, `debug ranges`,
//! `debug split`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use tardigrade_encoding::{keys, pretty_key};
use tardigrade_kvpb::RangeDescriptor;
use tardigrade_rpc::{LatencyMap, NodeClient, NodeError, RangeInfo};
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
    /// The SQL (PostgreSQL wire protocol) address; default 127.0.0.1:26257.
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
    /// The store's block cache: a size (128MiB, 1GiB) or a fraction of the
    /// machine's memory (.25, 25%).
    #[arg(long, default_value = "128MiB", value_parser = crate::start::parse_cache_size)]
    pub cache: u64,
    /// Testing only: simulate distance between regions. One-way delays
    /// REGION:REGION=DELAY[,…] (e.g. us-east1:us-west1=33ms,us-east1:europe-west1=32ms),
    /// the same both ways; this node delays what it sends to a node by the
    /// delay between their --locality regions. Give every node the same map.
    #[arg(long, value_parser = crate::latency::parse_latency_map, value_name = "MAP")]
    pub testing_latency: Option<LatencyMap>,
}

pub async fn start(args: StartArgs) -> CliResult {
    if !args.insecure {
        return Err(CliError(
            "secure mode is not implemented yet: pass --insecure".into(),
        ));
    }
    tardigrade_storage::set_block_cache_bytes(args.cache);
    let locality =
        parse_locality(&args.locality).map_err(|e| CliError(format!("--locality: {e}")))?;
    let join: Vec<String> = args
        .join
        .iter()
        .filter(|j| !j.trim().is_empty())
        .cloned()
        .collect();
    let testing_latency = match &args.testing_latency {
        Some(map) => {
            crate::latency::check_node_region(map, &locality).map_err(CliError)?;
            eprintln!(
                "warning: --testing-latency is set: this node delays its messages to other regions ({map}); testing only"
            );
            Some(std::sync::Arc::new(map.clone()))
        }
        None => None,
    };
    let mut cfg = NodeConfig {
        store: args.store.clone(),
        listen_addr: args.listen_addr,
        http_addr: Some(args.http_addr),
        join: join.clone(),
        locality,
        store_config: Default::default(),
        testing_latency,
    };
    // Meta, system and table data start out as separate ranges.
    cfg.store_config.bootstrap_split_keys =
        vec![keys::SYSTEM_PREFIX.to_vec(), keys::TABLE_DATA_MIN.to_vec()];
    let node = ClusterNode::start(cfg).await?;
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
    // Start-up waits as long as it must (peers restarting, ranges without
    // quorum) and obeys SIGTERM/SIGINT at any moment.
    let sql_addr = crate::start::parse_listen_addr(
        args.sql_addr
            .as_deref()
            .unwrap_or(crate::sql_shell::DEFAULT_SQL_ADDR),
    )
    .map_err(|e| CliError(format!("--sql-addr: {e}")))?;
    let starting = async {
        node.wait_ready().await;
        println!(
            "node started: node id {}",
            node.node_id().unwrap_or_default()
        );
        // SQL opens once the node's KV is ready (it needs the gateway's KV client).
        match node.db() {
            Some(db) => {
                let node_id = node.node_id().unwrap_or_default() as u32;
                let sql = tardigrade_server::pgwire::SqlServer::start_when_available(
                    sql_addr, db, node_id,
                )
                .await?;
                crate::start::use_store_temp_dir(&sql, &args.store);
                sql.node().set_locality_source(node.locality_source());
                println!("SQL: {}", sql.url());
                Ok::<_, CliError>(Some(sql))
            }
            None => Ok(None),
        }
    };
    let sql = tokio::select! {
        sql = starting => sql?,
        s = crate::start::wait_for_signal() => {
            tracing::info!("received {s} before the node was ready");
            node.shutdown().await;
            return Ok(());
        }
        msg = node.fatal() => {
            node.shutdown().await;
            return Err(CliError(format!("node stopped: {msg}")));
        }
    };
    let stopped = tokio::select! {
        s = crate::start::wait_for_signal() => {
            tracing::info!("received {s}, shutting down");
            None
        }
        msg = node.fatal() => Some(msg),
    };
    if let Some(sql) = sql {
        sql.shutdown().await;
    }
    node.shutdown().await;
    match stopped {
        Some(msg) => Err(CliError(format!("node stopped: {msg}"))),
        None => Ok(()),
    }
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

/// What the nodes say about one range: who holds its lease and how big it
/// is. Gathered from every node's `Ranges` RPC (a node that does not answer
/// within a couple of seconds is left out).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct RangeView {
    /// The node holding the lease, and whether the lease is valid now: an
    /// idle range lets its lease lapse, and its Raft leader (shown instead,
    /// as not valid) takes it again on the next request.
    leaseholder: Option<(u64, bool)>,
    /// Key and value bytes of all versions (MVCC statistics), as the
    /// leaseholder's replica (or, without one, the largest replica) has them.
    size: Option<i64>,
}

/// The replicas every node reports, by range id.
/// TODO(issue 3): one request per node and every replica in one answer;
/// page it (and ask only live nodes) for clusters with many ranges.
async fn range_views(nodes: &[NodeDescriptor]) -> std::collections::HashMap<u64, RangeView> {
    use std::collections::HashMap;
    let mut infos: HashMap<u64, Vec<(u64, RangeInfo)>> = HashMap::new();
    let asks = nodes.iter().map(|d| {
        let address = d.address.clone();
        async move {
            let client = NodeClient::connect_lazy(&address).ok()?;
            let answer = tokio::time::timeout(Duration::from_secs(2), client.ranges()).await;
            match answer {
                Ok(Ok((node, ranges))) if node != 0 => Some((node, ranges)),
                _ => None,
            }
        }
    });
    for (node, ranges) in futures_join_all(asks).await.into_iter().flatten() {
        for r in ranges {
            infos.entry(r.range_id).or_default().push((node, r));
        }
    }
    infos
        .into_iter()
        .map(|(id, replicas)| (id, view_of(&replicas)))
        .collect()
}

fn view_of(replicas: &[(u64, RangeInfo)]) -> RangeView {
    let size = |r: &RangeInfo| r.key_bytes + r.val_bytes;
    let valid = replicas
        .iter()
        .filter(|(_, r)| r.lease_valid)
        .max_by_key(|(_, r)| r.lease_sequence);
    let leader = replicas.iter().find(|(_, r)| r.raft_leader);
    let holder = match (valid, leader) {
        (Some((_, r)), _) => Some((r.lease_node, true)),
        (None, Some((node, _))) => Some((*node, false)),
        (None, None) => None,
    };
    let size = holder
        .and_then(|(n, _)| replicas.iter().find(|(node, _)| *node == n))
        .map(|(_, r)| size(r))
        .or_else(|| replicas.iter().map(|(_, r)| size(r)).max());
    RangeView {
        leaseholder: holder,
        size,
    }
}

/// Awaits all the futures (few: one per node) concurrently.
async fn futures_join_all<F>(fs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

async fn node_descriptors(db: &tardigrade_kv::Db) -> CliResult<Vec<NodeDescriptor>> {
    let rows = db
        .scan(NODE_DESC_PREFIX, &keys::prefix_end(NODE_DESC_PREFIX), 0)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|kv| NodeDescriptor::decode(&kv.value.bytes))
        .collect())
}

pub async fn node_status(args: HostArgs) -> CliResult {
    let db = connect(&args.host).await?;
    let nodes = node_descriptors(&db).await?;
    let ranges = all_ranges(&db).await?;
    let views = range_views(&nodes).await;
    let now = db.now();
    println!(
        "{:>4}  {:<22}  {:<24}  {:<5}  {:>7}  {:>7}",
        "id", "address", "locality", "live", "ranges", "leases"
    );
    for d in nodes {
        let live = db
            .get(&keys::node_liveness_key(d.node_id))
            .await?
            .and_then(|b| Liveness::decode(&b))
            .is_some_and(|l| l.is_live(now));
        let n_ranges = ranges
            .iter()
            .filter(|r| r.replicas.iter().any(|x| x.node_id == d.node_id))
            .count();
        // Ranges whose lease this node holds (or, for an idle range whose
        // lease lapsed, whose Raft leader it is: it takes the lease on the
        // next request).
        let n_leases = ranges
            .iter()
            .filter(|r| {
                views
                    .get(&r.range_id)
                    .and_then(|v| v.leaseholder)
                    .is_some_and(|(n, _)| n == d.node_id)
            })
            .count();
        println!(
            "{:>4}  {:<22}  {:<24}  {:<5}  {:>7}  {:>7}",
            d.node_id,
            d.address,
            d.locality_string(),
            live,
            n_ranges,
            n_leases
        );
    }
    Ok(())
}

pub async fn debug_ranges(args: HostArgs) -> CliResult {
    let db = connect(&args.host).await?;
    let ranges = all_ranges(&db).await?;
    let views = range_views(&node_descriptors(&db).await?).await;
    println!(
        "{:>6}  {:<28}  {:<28}  {:<11}  {:>12}  replicas",
        "range", "start", "end", "leaseholder", "size"
    );
    for r in &ranges {
        let replicas: Vec<String> = r
            .replicas
            .iter()
            .map(|x| format!("n{}/s{}", x.node_id, x.store_id))
            .collect();
        let view = views.get(&r.range_id).cloned().unwrap_or_default();
        // `n2`: a valid lease; `n2(idle)`: lapsed, n2 leads the Raft group.
        let holder = match view.leaseholder {
            Some((n, true)) => format!("n{n}"),
            Some((n, false)) => format!("n{n}(idle)"),
            None => "?".to_string(),
        };
        let size = view
            .size
            .map(|b| b.to_string())
            .unwrap_or_else(|| "?".into());
        println!(
            "{:>6}  {:<28}  {:<28}  {:<11}  {:>12}  {}",
            r.range_id,
            pretty_key(&r.start_key),
            pretty_key(&r.end_key),
            holder,
            size,
            replicas.join(",")
        );
    }
    println!("({} ranges)", ranges.len());
    Ok(())
}

/// How long one node may take to check the ranges it leases.
const CHECK_TIMEOUT: Duration = Duration::from_secs(600);

/// `debug check-consistency`: every node checks the ranges it holds the
/// lease of (or leads); the answers are printed range by range.
pub async fn debug_check_consistency(args: HostArgs) -> CliResult {
    let db = connect(&args.host).await?;
    let ranges = all_ranges(&db).await?;
    let nodes = node_descriptors(&db).await?;
    let asks = nodes.iter().map(|d| {
        let address = d.address.clone();
        async move {
            let client = NodeClient::connect_lazy(&address).ok()?;
            match tokio::time::timeout(CHECK_TIMEOUT, client.check_consistency()).await {
                Ok(Ok((node, checks))) if node != 0 => Some(checks),
                _ => None,
            }
        }
    });
    let mut checks = std::collections::HashMap::new();
    for c in futures_join_all(asks).await.into_iter().flatten().flatten() {
        checks.insert(c.range_id, c);
    }
    println!("{:>6}  {:<10}  details", "range", "status");
    let (mut diverged, mut unchecked) = (0, 0);
    for r in &ranges {
        let (status, details) = match checks.get(&r.range_id) {
            None => {
                unchecked += 1;
                ("unchecked", "no leaseholder ran the check".to_string())
            }
            Some(c) => {
                let bad: Vec<String> = c
                    .replicas
                    .iter()
                    .filter(|x| x.diverged)
                    .map(|x| format!("n{} (replica {})", x.node_id, x.replica_id))
                    .collect();
                let silent: Vec<String> = c
                    .replicas
                    .iter()
                    .filter(|x| !x.error.is_empty())
                    .map(|x| format!("n{}: {}", x.node_id, x.error))
                    .collect();
                let index = c
                    .replicas
                    .iter()
                    .map(|x| x.applied_index)
                    .max()
                    .unwrap_or(0);
                if !bad.is_empty() {
                    diverged += 1;
                    (
                        "DIVERGED",
                        format!("{} differ(s) from the others; fenced", bad.join(", ")),
                    )
                } else if !silent.is_empty() {
                    ("incomplete", silent.join("; "))
                } else {
                    let n = c.replicas.len();
                    let who = if n == 1 {
                        "the only replica"
                    } else {
                        "all replicas"
                    };
                    ("ok", format!("{who} ({n}) agree at index {index}"))
                }
            }
        };
        println!("{:>6}  {:<10}  {details}", r.range_id, status);
    }
    println!(
        "({} ranges, {diverged} diverged, {unchecked} unchecked)",
        ranges.len()
    );
    if diverged > 0 {
        return Err(CliError(format!(
            "{diverged} range(s) have a diverged replica"
        )));
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct SplitArgs {
    #[command(flatten)]
    pub host: HostArgs,
    /// The split key: text, with `\xNN` for any byte (`\\` for a backslash).
    pub key: String,
}

/// `\xNN` escapes to bytes; everything else as UTF-8.
pub fn unescape_key(s: &str) -> CliResult<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            match b.get(i + 1) {
                Some(b'\\') => {
                    out.push(b'\\');
                    i += 2;
                }
                Some(b'x') => {
                    let hex = s
                        .get(i + 2..i + 4)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| CliError(format!("bad escape in key {s:?}: use \\xNN")))?;
                    out.push(hex);
                    i += 4;
                }
                _ => {
                    return Err(CliError(format!(
                        "bad escape in key {s:?}: use \\xNN or \\\\"
                    )));
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.is_empty() {
        return Err(CliError("the split key must not be empty".into()));
    }
    Ok(out)
}

pub async fn debug_split(args: SplitArgs) -> CliResult {
    let key = unescape_key(&args.key)?;
    let db = connect(&args.host.host).await?;
    let (left, right) = db.admin_split(&key).await?;
    println!(
        "split at {}: r{} [{}, {}) and r{} [{}, {})",
        pretty_key(&key),
        left.range_id,
        pretty_key(&left.start_key),
        pretty_key(&left.end_key),
        right.range_id,
        pretty_key(&right.start_key),
        pretty_key(&right.end_key)
    );
    Ok(())
}

#[cfg(test)]
mod split_key_tests {
    use super::unescape_key;

    #[test]
    fn split_keys_unescape() {
        assert_eq!(unescape_key("abc").expect("plain"), b"abc");
        assert_eq!(unescape_key("\\x88\\x89k").expect("hex"), b"\x88\x89k");
        assert_eq!(unescape_key("a\\\\b").expect("backslash"), b"a\\b");
        assert!(unescape_key("\\xZZ").is_err());
        assert!(unescape_key("\\q").is_err());
        assert!(unescape_key("").is_err());
    }
}
