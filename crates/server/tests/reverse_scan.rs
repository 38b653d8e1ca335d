//! Reverse scans over a table split into several ranges: `ORDER BY … DESC`
//! reads the primary index backwards a page at a time (`Txn::reverse_scan`,
//! resumed at the last key returned), so a LIMIT reads only what it needs
//! and a full reverse scan returns every row once, in order, across range
//! boundaries.

use std::time::Duration;

use tardigrade_kvserver::StoreConfig;
use tardigrade_rpc::NodeClient;
use tardigrade_server::node::{ClusterNode, NodeConfig};
use tardigrade_sql::{Session, SqlNode, Value};
use tardigrade_storage::StoreSpec;

fn config() -> NodeConfig {
    NodeConfig {
        testing_latency: None,
        store: StoreSpec::Memory,
        listen_addr: "127.0.0.1:0".parse().expect("addr"),
        http_addr: None,
        join: vec![],
        locality: vec![("region".into(), "test".into())],
        store_config: StoreConfig {
            raft_tick_interval: Duration::from_millis(50),
            ..StoreConfig::default()
        },
    }
}

/// The first column of every row of `sql`, as integers.
async fn ints(s: &mut Session, sql: &str) -> Vec<i64> {
    let mut results = s.simple_query(sql).await;
    let out = match results.pop() {
        Some(Ok(o)) => o,
        other => panic!("{sql}: {other:?}"),
    };
    out.rows
        .iter()
        .map(|r| match r.first() {
            Some(Value::Int(i)) => *i,
            other => panic!("{sql}: expected an integer, got {other:?}"),
        })
        .collect()
}

async fn text(s: &mut Session, sql: &str) -> String {
    let mut results = s.simple_query(sql).await;
    match results.pop() {
        Some(Ok(o)) => format!("{:?}", o.rows),
        other => panic!("{sql}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_scans_page_across_ranges() {
    let n1 = ClusterNode::start(config()).await.expect("start");
    let client = NodeClient::connect_lazy(&n1.local_addr().to_string()).expect("client");
    client.bootstrap().await.expect("init");
    tokio::time::timeout(Duration::from_secs(20), n1.wait_ready())
        .await
        .expect("node becomes ready");
    let sql = SqlNode::start(n1.db().expect("db"), 1)
        .await
        .expect("sql node");
    // The plans asserted here are the ones made without statistics.
    sql.stats.set_automatic(false);
    let mut s = sql.session("root", "defaultdb");
    for stmt in [
        "CREATE TABLE t (k INT PRIMARY KEY, v INT)",
        "INSERT INTO t SELECT i, i * 2 FROM generate_series(1, 5000) AS g(i)",
        "ALTER TABLE t SPLIT AT VALUES (1000), (2500), (4995)",
    ] {
        let r = s.simple_query(stmt).await;
        assert!(r.iter().all(|r| r.is_ok()), "{stmt}: {r:?}");
    }
    let plan = text(&mut s, "EXPLAIN SELECT k FROM t ORDER BY k DESC LIMIT 10").await;
    assert!(plan.contains("reverse"), "{plan}");

    // The last range holds 4995..5000: the limit spans two ranges.
    assert_eq!(
        ints(&mut s, "SELECT k FROM t ORDER BY k DESC LIMIT 10").await,
        (4991..=5000).rev().collect::<Vec<_>>()
    );
    // A bounded span ending inside a range, crossing the split at 2500.
    assert_eq!(
        ints(
            &mut s,
            "SELECT k FROM t WHERE k < 2600 ORDER BY k DESC LIMIT 300"
        )
        .await,
        (2300..=2599).rev().collect::<Vec<_>>()
    );
    assert_eq!(
        ints(
            &mut s,
            "SELECT v FROM t WHERE k >= 990 AND k <= 1010 ORDER BY k DESC"
        )
        .await,
        (990..=1010).rev().map(|k| k * 2).collect::<Vec<_>>()
    );
    // The whole table backwards: several pages, every range, each row once.
    let got = ints(&mut s, "SELECT k FROM t ORDER BY k DESC").await;
    let want: Vec<i64> = (1..=5000).rev().collect();
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!("row {i}: got {} where {} was due", got[i], want[i]);
    }
    assert_eq!(got.len(), want.len());
}
