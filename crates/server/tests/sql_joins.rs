//! Lookup and merge joins over tables split into several ranges (the golden
//! tests run on a single-range store): a lookup join's batch of spans crosses
//! range boundaries, and its results equal a hash join's.

use std::time::Duration;

use tardigrade_kvserver::StoreConfig;
use tardigrade_rpc::NodeClient;
use tardigrade_server::node::{ClusterNode, NodeConfig};
use tardigrade_sql::{Session, SqlNode, SqlType, Value};
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

/// The rows of the last statement, as text.
async fn query(s: &mut Session, sql: &str) -> Vec<String> {
    let mut last = Vec::new();
    for r in s.simple_query(sql).await {
        let o = r.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
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
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_and_merge_joins_across_ranges() {
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
        "CREATE TABLE big (g INT, id INT, PRIMARY KEY (g, id))",
        "INSERT INTO big SELECT i % 3, i FROM generate_series(1, 3000) AS s(i)",
        "CREATE TABLE sq (id INT PRIMARY KEY, sq INT, tag TEXT)",
        "CREATE INDEX sq_tag ON sq (tag)",
        "INSERT INTO sq SELECT i, i * i, CASE WHEN i % 7 = 0 THEN NULL ELSE 't' || (i % 10) END \
         FROM generate_series(1, 3000, 2) AS s(i)",
        "ALTER TABLE sq SPLIT AT VALUES (101), (1001), (1002), (2001)",
        "ALTER TABLE big SPLIT AT VALUES (1, 500), (2), (2, 2999)",
    ] {
        query(&mut s, stmt).await;
    }
    let ranges = query(&mut s, "SHOW RANGES FROM TABLE sq").await;
    assert!(ranges.len() >= 5, "{ranges:?}");

    // Each pair: a query the planner runs as a lookup or merge join, and the
    // same query forced to a hash join (the right side behind a LIMIT).
    let cases = [
        (
            "SELECT big.id, sq.sq FROM big JOIN sq ON big.id = sq.id WHERE big.g = 1",
            "SELECT big.id, s.sq FROM big JOIN (SELECT * FROM sq LIMIT 100000) AS s \
             ON big.id = s.id WHERE big.g = 1",
            "lookup join (inner) sq@sq_pkey",
        ),
        (
            "SELECT big.id, sq.sq FROM big LEFT JOIN sq ON big.id = sq.id WHERE big.g = 2",
            "SELECT big.id, s.sq FROM big LEFT JOIN (SELECT * FROM sq LIMIT 100000) AS s \
             ON big.id = s.id WHERE big.g = 2",
            "lookup join (left outer) sq@sq_pkey",
        ),
        (
            "SELECT v.t, sq.id FROM (VALUES ('t1'), ('t3'), (NULL), ('t9')) AS v(t) \
             JOIN sq ON v.t = sq.tag",
            "SELECT v.t, s.id FROM (VALUES ('t1'), ('t3'), (NULL), ('t9')) AS v(t) \
             JOIN (SELECT * FROM sq LIMIT 100000) AS s ON v.t = s.tag",
            "lookup join (inner) sq@sq_tag",
        ),
        (
            "SELECT big.g, big.id, sq.sq FROM big JOIN sq ON big.id = sq.id",
            "SELECT big.g, big.id, s.sq FROM big JOIN (SELECT * FROM sq LIMIT 100000) AS s \
             ON big.id = s.id",
            "hash join",
        ),
        (
            "SELECT a.id, b.id FROM sq AS a JOIN sq AS b ON a.id = b.id",
            "SELECT a.id, b.id FROM sq AS a JOIN (SELECT * FROM sq LIMIT 100000) AS b \
             ON a.id = b.id",
            "merge join (inner)",
        ),
    ];
    for (fast, reference, algorithm) in cases {
        let plan = query(&mut s, &format!("EXPLAIN {fast}")).await.join("\n");
        assert!(plan.contains(algorithm), "{fast}:\n{plan}");
        let mut got = query(&mut s, fast).await;
        let mut want = query(&mut s, reference).await;
        assert!(!want.is_empty(), "{reference}");
        got.sort();
        want.sort();
        assert_eq!(got, want, "{fast}");
    }
    n1.shutdown().await;
}
