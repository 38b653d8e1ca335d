//! Zone configurations on five real nodes in three regions (eu, us, ap)
//! over loopback gRPC: each table gets its own range, `CONFIGURE ZONE`
//! moves its replicas to satisfy per-region replica counts, puts the lease
//! where `lease_preferences` asks and grows the range to `num_replicas`;
//! constraints naming a region no node has are refused with nothing
//! written; `DISCARD` gives the range back to the defaults. And with five
//! replicas everywhere, losing both nodes of a region keeps a bank table
//! readable and writable, and the region's nodes come back from their
//! disks with the bank's total intact.

use std::time::{Duration, Instant};

use tardigrade_encoding::keys;
use tardigrade_kvpb::RangeDescriptor;
use tardigrade_kvserver::StoreConfig;
use tardigrade_kvserver::allocator::ReplicationSettings;
use tardigrade_rpc::NodeClient;
use tardigrade_server::node::{ClusterNode, NodeConfig};
use tardigrade_sql::{Session, SqlNode, SqlType, Value};
use tardigrade_storage::StoreSpec;

const REGIONS: [&str; 5] = ["eu", "us", "ap", "eu", "us"];

fn config(join: Vec<String>, region: &str, zone: usize) -> NodeConfig {
    config_at(StoreSpec::Memory, "127.0.0.1:0", join, region, zone)
}

fn config_at(
    store: StoreSpec,
    addr: &str,
    join: Vec<String>,
    region: &str,
    zone: usize,
) -> NodeConfig {
    NodeConfig {
        testing_latency: None,
        store,
        listen_addr: addr.parse().expect("addr"),
        http_addr: None,
        join,
        locality: vec![
            ("region".into(), region.into()),
            ("zone".into(), format!("{region}-{zone}")),
        ],
        store_config: StoreConfig {
            raft_tick_interval: Duration::from_millis(50),
            split_queue_interval: Duration::from_millis(200),
            bootstrap_split_keys: vec![keys::SYSTEM_PREFIX.to_vec(), keys::TABLE_DATA_MIN.to_vec()],
            replication: ReplicationSettings {
                queue_interval: Duration::from_millis(200),
                ..ReplicationSettings::default()
            },
            ..StoreConfig::default()
        },
    }
}

/// The rows of the last statement, as text (`Err` with the SQLSTATE and
/// message of the first failure).
async fn run(s: &mut Session, sql: &str) -> Result<Vec<String>, String> {
    let mut last = Vec::new();
    for r in s.simple_query(sql).await {
        let o = r.map_err(|e| format!("{}: {}", e.code, e.message))?;
        let types: Vec<SqlType> = o
            .columns
            .as_ref()
            .map(|c| c.iter().map(|c| c.ty).collect())
            .unwrap_or_default();
        last = o
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&types)
                    .map(|(v, t)| match v {
                        Value::Null => "NULL".to_string(),
                        v => v.to_text(*t),
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
    }
    Ok(last)
}

/// The newest descriptor of the range starting at `start`, with the node
/// holding its lease.
fn range_at(nodes: &[ClusterNode], start: &[u8]) -> Option<(RangeDescriptor, u64)> {
    let mut best: Option<(RangeDescriptor, u64)> = None;
    for n in nodes {
        let Some(store) = n.store() else { continue };
        for r in store.replicas() {
            let d = r.desc();
            if d.start_key != start || !r.is_initialized() {
                continue;
            }
            let lease = r.lease();
            let holder = d.replica(lease.replica.replica_id).map_or(0, |x| x.node_id);
            if best
                .as_ref()
                .is_none_or(|(b, _)| d.generation > b.generation)
            {
                best = Some((d, holder));
            }
        }
    }
    best
}

/// The region of a node, by its id (ids follow the order nodes joined,
/// not the order they started).
fn region_of(nodes: &[ClusterNode], node_id: u64) -> &'static str {
    nodes
        .iter()
        .position(|n| n.node_id() == Some(node_id))
        .map_or("?", |i| REGIONS[i])
}

/// Waits (at most `within`) until the range starting at `start` satisfies
/// `ok(voter regions, leaseholder region)`.
async fn wait_for(
    nodes: &[ClusterNode],
    start: &[u8],
    within: Duration,
    what: &str,
    ok: impl Fn(&[&str], &str) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        let seen = range_at(nodes, start);
        if let Some((d, holder)) = &seen {
            let mut regions: Vec<&str> = d.voters().map(|r| region_of(nodes, r.node_id)).collect();
            regions.sort();
            let holder_region = if *holder == 0 {
                ""
            } else {
                region_of(nodes, *holder)
            };
            if d.replicas.len() == regions.len() && ok(&regions, holder_region) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{what}: range is {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until table `name` has a range of its own; gives the table's id.
async fn own_range(s: &mut Session, name: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = run(s, &format!("SHOW RANGES FROM TABLE {name}"))
            .await
            .expect("ranges");
        let bounds: Vec<&str> = rows[0].split('|').take(2).collect();
        let id = |b: &str| {
            b.strip_prefix("/Table/")
                .and_then(|n| n.parse::<u64>().ok())
        };
        if let [start, end] = bounds[..]
            && rows.len() == 1
            && let (Some(a), Some(b)) = (id(start), id(end))
            && a >= 100
            && b == a + 1
        {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never got its own range: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Five nodes in eu, us, ap, eu, us (in start order), initialized and
/// ready.
async fn five_regions_cluster() -> Vec<ClusterNode> {
    let first = ClusterNode::start(config(vec![], REGIONS[0], 1))
        .await
        .expect("start");
    let seed = first.local_addr().to_string();
    let mut nodes = vec![first];
    for (i, region) in REGIONS.iter().enumerate().skip(1) {
        nodes.push(
            ClusterNode::start(config(vec![seed.clone()], region, i + 1))
                .await
                .expect("start"),
        );
    }
    NodeClient::connect_lazy(&seed)
        .expect("client")
        .bootstrap()
        .await
        .expect("init");
    for n in &nodes {
        tokio::time::timeout(Duration::from_secs(30), n.wait_ready())
            .await
            .expect("node becomes ready");
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_region_databases_place_voters_in_the_home_region() {
    let nodes = five_regions_cluster().await;
    let sql = SqlNode::start(nodes[0].db().expect("db"), 1)
        .await
        .expect("sql node");
    sql.set_locality_source(nodes[0].locality_source());
    let mut s = sql.session("root", "defaultdb");
    for (bad, code) in [
        ("ALTER DATABASE defaultdb ADD REGION \"eu\"", "55000"),
        ("ALTER DATABASE defaultdb PRIMARY REGION \"mars\"", "42704"),
        ("ALTER DATABASE defaultdb SURVIVE REGION FAILURE", "55000"),
    ] {
        let err = run(&mut s, bad).await.expect_err(bad);
        assert!(err.starts_with(code), "{bad}: {err}");
    }
    for stmt in [
        "ALTER DATABASE defaultdb PRIMARY REGION \"us\"",
        "ALTER DATABASE defaultdb ADD REGION \"eu\"",
        "ALTER DATABASE defaultdb ADD REGION \"ap\"",
        "CREATE TABLE home (id INT PRIMARY KEY)",
        "CREATE TABLE away (id INT PRIMARY KEY)",
        "ALTER TABLE away SET LOCALITY REGIONAL BY TABLE IN \"eu\"",
    ] {
        run(&mut s, stmt).await.expect(stmt);
    }
    let err = run(&mut s, "ALTER DATABASE defaultdb ADD REGION \"eu\"")
        .await
        .expect_err("twice");
    assert!(err.starts_with("42710"), "{err}");
    let err = run(&mut s, "ALTER TABLE home SET LOCALITY REGIONAL BY ROW")
        .await
        .expect_err("by row");
    assert!(err.starts_with("0A000"), "{err}");
    let regions = run(&mut s, "SHOW REGIONS FROM DATABASE")
        .await
        .expect("show");
    assert_eq!(regions.len(), 3, "{regions:?}");
    assert!(
        regions[0].starts_with("defaultdb|us|t|"),
        "primary first: {regions:?}"
    );
    assert_eq!(
        run(&mut s, "SHOW SURVIVAL GOAL FROM DATABASE")
            .await
            .expect("goal"),
        vec!["defaultdb|zone"]
    );
    let home = own_range(&mut s, "home").await;
    let away = own_range(&mut s, "away").await;
    // Zone survival: the voters in the home region — both of its nodes;
    // it has no third, so one voter stays where it was — and the lease.
    wait_for(
        &nodes,
        &keys::table_prefix(home),
        Duration::from_secs(60),
        "home: voters in us",
        |regions, holder| regions.iter().filter(|r| **r == "us").count() == 2 && holder == "us",
    )
    .await;
    wait_for(
        &nodes,
        &keys::table_prefix(away),
        Duration::from_secs(60),
        "away: voters in eu",
        |regions, holder| regions.iter().filter(|r| **r == "eu").count() == 2 && holder == "eu",
    )
    .await;
    // Region survival: five voters, two in the home region, the lease there.
    run(&mut s, "ALTER DATABASE defaultdb SURVIVE REGION FAILURE")
        .await
        .expect("survive region");
    wait_for(
        &nodes,
        &keys::table_prefix(home),
        Duration::from_secs(60),
        "home: 5 voters, 2 in us",
        |regions, holder| {
            regions.len() == 5
                && regions.iter().filter(|r| **r == "us").count() == 2
                && holder == "us"
        },
    )
    .await;
    let err = run(&mut s, "ALTER DATABASE defaultdb DROP REGION \"ap\"")
        .await
        .expect_err("below 3 regions");
    assert!(err.starts_with("55000"), "{err}");
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_configs_place_replicas_and_leases() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let nodes = five_regions_cluster().await;
    let sql = SqlNode::start(nodes[0].db().expect("db"), 1)
        .await
        .expect("sql node");
    sql.set_locality_source(nodes[0].locality_source());
    let mut s = sql.session("root", "defaultdb");
    run(&mut s, "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
        .await
        .expect("create");
    run(&mut s, "CREATE TABLE u (id INT PRIMARY KEY)")
        .await
        .expect("create");
    run(&mut s, "INSERT INTO t VALUES (1, 'one'), (2, 'two')")
        .await
        .expect("insert");

    // Each table starts in its own range: [/Table/<id>, /Table/<id + 1>).
    let t_id = own_range(&mut s, "t").await;
    let t_key = keys::table_prefix(t_id);

    // Bad input changes nothing.
    let err = run(
        &mut s,
        "ALTER TABLE t CONFIGURE ZONE USING constraints = '[+region=mars]'",
    )
    .await
    .expect_err("unknown region");
    assert!(
        err.starts_with("23514") && err.contains("region=mars"),
        "{err}"
    );
    for (bad, code) in [
        (
            "ALTER TABLE t CONFIGURE ZONE USING num_replicas = 0",
            "23514",
        ),
        ("ALTER TABLE t CONFIGURE ZONE USING bogus = 1", "22023"),
        (
            "ALTER TABLE t CONFIGURE ZONE USING constraints = '{\"+region=eu\": 4}'",
            "23514",
        ),
        (
            "ALTER TABLE t CONFIGURE ZONE USING constraints = 'region=eu'",
            "22023",
        ),
        ("ALTER RANGE default CONFIGURE ZONE DISCARD", "22023"),
        (
            "ALTER TABLE nope CONFIGURE ZONE USING num_replicas = 3",
            "42P01",
        ),
    ] {
        let err = run(&mut s, bad).await.expect_err(bad);
        assert!(err.starts_with(code), "{bad}: {err}");
    }
    let shown = run(&mut s, "SHOW ZONE CONFIGURATION FROM TABLE t")
        .await
        .expect("show");
    assert!(shown[0].starts_with("RANGE default|"), "{shown:?}");

    // Two replicas in eu, one in us, the lease in us.
    run(
        &mut s,
        "ALTER TABLE t CONFIGURE ZONE USING num_replicas = 3, \
         constraints = '{\"+region=eu\": 2, \"+region=us\": 1}', \
         lease_preferences = '[[+region=us]]'",
    )
    .await
    .expect("configure");
    wait_for(
        &nodes,
        &t_key,
        Duration::from_secs(60),
        "2 eu + 1 us, lease in us",
        |regions, holder| regions == ["eu", "eu", "us"] && holder == "us",
    )
    .await;
    let shown = run(&mut s, "SHOW ZONE CONFIGURATION FROM TABLE t")
        .await
        .expect("show");
    assert!(
        shown[0].starts_with("TABLE t|ALTER TABLE t CONFIGURE ZONE USING"),
        "{shown:?}"
    );
    assert!(
        shown[0].contains("constraints = '{\"+region=eu\": 2, \"+region=us\": 1}'"),
        "{shown:?}"
    );
    assert!(
        shown[0].contains("gc.ttlseconds = 14400"),
        "inherited: {shown:?}"
    );
    // The data moved with its replicas.
    assert_eq!(
        run(&mut s, "SELECT v FROM t ORDER BY id")
            .await
            .expect("read"),
        vec!["one", "two"]
    );

    // A database's zone reaches its tables that have none of their own.
    run(
        &mut s,
        "ALTER DATABASE defaultdb CONFIGURE ZONE USING num_replicas = 5",
    )
    .await
    .expect("configure database");
    let u_id = own_range(&mut s, "u").await;
    wait_for(
        &nodes,
        &keys::table_prefix(u_id),
        Duration::from_secs(60),
        "5 replicas from the database's zone",
        |regions, _| regions.len() == 5,
    )
    .await;
    let shown = run(&mut s, "SHOW ZONE CONFIGURATION FROM TABLE u")
        .await
        .expect("show");
    assert!(shown[0].starts_with("DATABASE defaultdb|"), "{shown:?}");
    let all = run(&mut s, "SHOW ZONE CONFIGURATIONS")
        .await
        .expect("show all");
    let targets: Vec<&str> = all.iter().filter_map(|r| r.split('|').next()).collect();
    for want in [
        "RANGE default",
        "RANGE meta",
        "RANGE system",
        "DATABASE defaultdb",
        "TABLE defaultdb.public.t",
    ] {
        assert!(targets.contains(&want), "{want} in {targets:?}");
    }

    // DISCARD: t inherits again (5 replicas from the database), anywhere.
    run(&mut s, "ALTER TABLE t CONFIGURE ZONE DISCARD")
        .await
        .expect("discard");
    wait_for(
        &nodes,
        &t_key,
        Duration::from_secs(60),
        "5 replicas after DISCARD",
        |regions, _| regions.len() == 5,
    )
    .await;
    for n in nodes {
        n.shutdown().await;
    }
}

/// A free loopback port (for a node that must come back at its address).
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

async fn total(s: &mut Session) -> Result<i64, String> {
    let rows = run(s, "SELECT sum(balance) FROM bank").await?;
    rows.first()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| format!("sum: {rows:?}"))
}

/// One transfer between two accounts; `Err` if it did not commit.
async fn transfer(s: &mut Session, from: i64, to: i64) -> Result<(), String> {
    let sql = format!(
        "BEGIN; UPDATE bank SET balance = balance - 1 WHERE id = {from}; \
         UPDATE bank SET balance = balance + 1 WHERE id = {to}; COMMIT"
    );
    match run(s, &sql).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let _ = run(s, "ROLLBACK").await;
            Err(e)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_region_keeps_five_replica_ranges_serving() {
    let addrs: Vec<String> = (0..5).map(|_| free_addr()).collect();
    let node_config = |i: usize| {
        let join = if i == 0 {
            vec![]
        } else {
            vec![addrs[0].clone()]
        };
        config_at(StoreSpec::Memory, &addrs[i], join, REGIONS[i], i + 1)
    };
    let mut nodes = Vec::new();
    for i in 0..5 {
        nodes.push(Some(
            ClusterNode::start(node_config(i)).await.expect("start"),
        ));
    }
    NodeClient::connect_lazy(&addrs[0])
        .expect("client")
        .bootstrap()
        .await
        .expect("init");
    for n in nodes.iter().flatten() {
        tokio::time::timeout(Duration::from_secs(30), n.wait_ready())
            .await
            .expect("node becomes ready");
    }
    // The gateway is node 2 (us), which stays up.
    let gateway = nodes[1].as_ref().expect("node 2");
    let sql = SqlNode::start(gateway.db().expect("db"), 2)
        .await
        .expect("sql node");
    sql.set_locality_source(gateway.locality_source());
    let mut s = sql.session("root", "defaultdb");
    for stmt in [
        "ALTER RANGE default CONFIGURE ZONE USING num_replicas = 5",
        "CREATE TABLE bank (id INT PRIMARY KEY, balance INT NOT NULL)",
        "INSERT INTO bank SELECT i, 100 FROM generate_series(1, 10) AS g(i)",
    ] {
        run(&mut s, stmt).await.expect(stmt);
    }
    // Every range of the cluster reaches five voters.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ranges = gateway.store().map(|st| st.replicas()).unwrap_or_default();
        let short: Vec<_> = ranges
            .iter()
            .map(|r| r.desc())
            .filter(|d| d.voters().count() < 5)
            .map(|d| d.range_id)
            .collect();
        if !ranges.is_empty() && short.is_empty() && own_range_now(&mut s).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ranges short of 5 voters: {short:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(total(&mut s).await, Ok(1000));

    // eu goes away: nodes 1 and 4.
    for i in [3, 0] {
        if let Some(n) = nodes[i].take() {
            n.shutdown().await;
        }
    }
    let lost = Instant::now();
    let mut transfers = 0;
    let mut first_ok = None;
    while transfers < 20 {
        match transfer(&mut s, 1 + transfers % 10, 1 + (transfers + 3) % 10).await {
            Ok(()) => {
                transfers += 1;
                first_ok.get_or_insert(lost.elapsed());
            }
            Err(e) => {
                assert!(
                    lost.elapsed() < Duration::from_secs(60),
                    "no transfer 60 s after losing eu: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    eprintln!(
        "first transfer {:?} after losing eu; 20 transfers in {:?}",
        first_ok,
        lost.elapsed()
    );
    assert_eq!(
        total(&mut s).await,
        Ok(1000),
        "the bank invariant after the loss"
    );

    // eu comes back from its disks, and the bank is whole from there too.
    for i in [0, 3] {
        // Joining through a node that stayed up, as an operator's --join
        // list of every node would.
        let mut cfg = node_config(i);
        cfg.join = vec![addrs[1].clone()];
        let node = ClusterNode::start(cfg).await.expect("restart");
        nodes[i] = Some(node);
    }
    for n in nodes.iter().flatten() {
        tokio::time::timeout(Duration::from_secs(60), n.wait_ready())
            .await
            .expect("node becomes ready again");
    }
    let back = nodes[0].as_ref().expect("node 1");
    let sql1 = SqlNode::start(back.db().expect("db"), 1)
        .await
        .expect("sql 1");
    let mut s1 = sql1.session("root", "defaultdb");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match total(&mut s1).await {
            Ok(t) => {
                assert_eq!(t, 1000, "the bank invariant read through a restarted node");
                break;
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "restarted node 1 cannot read: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = transfer(&mut s1, 2, 9).await {
        assert!(Instant::now() < deadline, "no transfer through node 1: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(total(&mut s).await, Ok(1000));
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}

/// Whether table `bank` has a range of its own yet.
async fn own_range_now(s: &mut Session) -> bool {
    let Ok(rows) = run(s, "SHOW RANGES FROM TABLE bank").await else {
        return false;
    };
    rows.len() == 1 && rows[0].starts_with("/Table/1") && !rows[0].contains("/Max")
}
