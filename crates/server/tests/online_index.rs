//! Online index builds over a table split into several ranges, on a cluster
//! node (a plain store cannot split): CREATE INDEX and ADD PRIMARY KEY run
//! as many small chunk transactions while another session inserts, updates
//! and deletes rows, and every index ends up holding exactly the entries of
//! the table's rows (compared key by key and value by value).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tardigrade_kv::Db;
use tardigrade_kvserver::StoreConfig;
use tardigrade_rpc::NodeClient;
use tardigrade_server::node::{ClusterNode, NodeConfig};
use tardigrade_sql::catalog::TableDesc;
use tardigrade_sql::{QueryOutput, Session, SqlError, SqlNode, Value, rowenc};
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

async fn run(s: &mut Session, sql: &str) -> Result<QueryOutput, SqlError> {
    let mut last = Ok(QueryOutput::default());
    for r in s.simple_query(sql).await {
        last = r;
    }
    last
}

async fn ok(s: &mut Session, sql: &str) -> QueryOutput {
    run(s, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn table(db: &Db, node: &SqlNode, name: &str) -> Arc<TableDesc> {
    let mut txn = db.txn("test-read");
    let t = node
        .catalog
        .resolve_table(&mut txn, "defaultdb", None, name)
        .await
        .expect("resolve")
        .expect("table exists");
    let _ = txn.rollback().await;
    t
}

/// Asserts that the table has no build left over and that every index of
/// it holds exactly its rows' entries; returns the number of rows.
async fn check_indexes(node: &SqlNode, name: &str) -> usize {
    tardigrade_sql::schemachange::check_settled_table(node, "defaultdb", name)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Inserts, updates (moving index keys) and deletes rows of `t (k, v, w)`
/// until `done`, keeping a model of `k → v` (the only writer: a statement
/// that succeeded applied, one that failed did not); returns the number of
/// statements and the model.
async fn churn(
    node: Arc<SqlNode>,
    done: Arc<AtomicBool>,
    base: i64,
    mut model: BTreeMap<i64, i64>,
) -> (usize, BTreeMap<i64, i64>) {
    let mut s = node.session("root", "defaultdb");
    let mut n = 0i64;
    while !done.load(Ordering::SeqCst) || n < 20 {
        n += 1;
        let k = (n * 131 + base) % 6000;
        let sql = match n % 3 {
            0 => format!("INSERT INTO t VALUES ({}, {}, 'n')", base + n, n % 17),
            1 => format!("UPDATE t SET v = v + 1000 WHERE k = {k}"),
            _ => format!("DELETE FROM t WHERE k = {k}"),
        };
        match run(&mut s, &sql).await {
            Ok(_) => match n % 3 {
                0 => {
                    model.insert(base + n, n % 17);
                }
                1 => {
                    if let Some(v) = model.get_mut(&k) {
                        *v += 1000;
                    }
                }
                _ => {
                    model.remove(&k);
                }
            },
            Err(e) => assert_eq!(e.code, "40001", "{sql}: {e}"),
        }
    }
    (n as usize, model)
}

/// `k → v` of every row of `t`.
async fn contents(s: &mut Session) -> BTreeMap<i64, i64> {
    ok(s, "SELECT k, v FROM t")
        .await
        .rows
        .iter()
        .map(|r| match (&r[0], &r[1]) {
            (Value::Int(k), Value::Int(v)) => (*k, *v),
            other => panic!("unexpected row {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn online_index_builds_across_ranges_with_concurrent_writes() {
    let n1 = ClusterNode::start(config()).await.expect("start");
    let client = NodeClient::connect_lazy(&n1.local_addr().to_string()).expect("client");
    client.bootstrap().await.expect("init");
    tokio::time::timeout(Duration::from_secs(20), n1.wait_ready())
        .await
        .expect("node becomes ready");
    let db = n1.db().expect("db");
    let sql = SqlNode::start(db.clone(), 1).await.expect("sql node");
    sql.backfill_chunk_rows.store(50, Ordering::Relaxed);
    let mut s = sql.session("root", "defaultdb");
    ok(&mut s, "CREATE TABLE t (k INT NOT NULL, v INT, w TEXT)").await;
    ok(&mut s, "CREATE INDEX t_w_idx ON t (w)").await;
    ok(
        &mut s,
        "INSERT INTO t SELECT i, i % 17, 'w' || (i % 101) FROM generate_series(0, 5999) AS g(i)",
    )
    .await;
    // rowid is the key: split on rowids spread over the table.
    let t = table(&db, &sql, "t").await;
    let mut rowids: Vec<i64> = Vec::new();
    {
        let mut txn = db.txn("rowids");
        let mut scanner = rowenc::full_scan(t.clone());
        let pos = t
            .column_position(t.primary_index.columns[0])
            .expect("rowid");
        while let Some(b) = scanner.next_batch(&mut txn, 1000).await.expect("scan") {
            for r in b {
                if let Value::Int(i) = r[pos] {
                    rowids.push(i);
                }
            }
        }
        let _ = txn.rollback().await;
    }
    let at: Vec<String> = [1500, 3000, 4500]
        .iter()
        .map(|i| format!("({})", rowids[*i]))
        .collect();
    ok(
        &mut s,
        &format!("ALTER TABLE t SPLIT AT VALUES {}", at.join(", ")),
    )
    .await;
    let ranges = ok(&mut s, "SHOW RANGES FROM TABLE t").await.rows.len();
    assert!(ranges >= 4, "{ranges} ranges");

    // CREATE INDEX with writers.
    let done = Arc::new(AtomicBool::new(false));
    let model: BTreeMap<i64, i64> = (0..6000).map(|i| (i, i % 17)).collect();
    let writer = tokio::spawn(churn(sql.clone(), done.clone(), 100_000, model));
    tokio::time::sleep(Duration::from_millis(30)).await;
    ok(&mut s, "CREATE INDEX t_v_idx ON t (v) STORING (w)").await;
    done.store(true, Ordering::SeqCst);
    let (ops, model) = writer.await.expect("writer");
    let rows = check_indexes(&sql, "t").await;
    assert!(contents(&mut s).await == model, "t differs from the model");
    eprintln!("CREATE INDEX: {ops} concurrent writes, {rows} rows");

    // ADD PRIMARY KEY with writers: the primary index and both secondary
    // indexes are rebuilt under the new key.
    let done = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(churn(sql.clone(), done.clone(), 200_000, model));
    tokio::time::sleep(Duration::from_millis(30)).await;
    ok(&mut s, "ALTER TABLE t ADD PRIMARY KEY (k)").await;
    done.store(true, Ordering::SeqCst);
    let (ops, model) = writer.await.expect("writer");
    let rows2 = check_indexes(&sql, "t").await;
    // Read through the new primary key: every write made during the build
    // reached it.
    assert!(contents(&mut s).await == model, "t differs from the model");
    eprintln!("ADD PRIMARY KEY: {ops} concurrent writes, {rows2} rows");
    let t2 = table(&db, &sql, "t").await;
    assert!(!t2.has_implicit_pk());
    assert_eq!(t2.indexes.len(), 2);
    // The old indexes' spans are cleared (in the background).
    for index in t.all_indexes() {
        let (s, e) = rowenc::index_span(&t, index.id);
        let mut cleared = false;
        for _ in 0..1000 {
            let mut txn = db.txn("old-spans");
            let left = txn.scan(&s, &e, 1).await.expect("scan");
            let _ = txn.rollback().await;
            if left.is_empty() {
                cleared = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(cleared, "old index {} not cleared", index.name);
    }
    let count = ok(&mut s, "SELECT count(*) FROM t").await;
    assert_eq!(count.rows[0][0], Value::Int(rows2 as i64));
}
