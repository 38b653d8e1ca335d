//! SQL under concurrency: serializable transfers between accounts from several
//! sessions on two gateways (the bank invariant), and schema changes on one
//! gateway while the other writes (indexes stay consistent with their tables).

use std::sync::Arc;

use tardigrade_hlc::{DEFAULT_MAX_OFFSET, Hlc, SystemClock};
use tardigrade_kv::Db;
use tardigrade_kvserver::{Store, StoreConfig};
use tardigrade_sql::{QueryOutput, Session, SqlError, SqlNode, Value};
use tardigrade_storage::{Engine, StoreSpec};

/// Two SQL nodes (gateways with their own catalog caches) over one store.
async fn two_gateways() -> (Arc<SqlNode>, Arc<SqlNode>) {
    let clock = Arc::new(Hlc::new(Arc::new(SystemClock), DEFAULT_MAX_OFFSET));
    let engine = Engine::open(&StoreSpec::Memory).expect("open engine");
    let store = Store::open(engine, clock.clone(), StoreConfig::default()).expect("open store");
    let db = Db::new(store, clock);
    let a = SqlNode::start(db.clone(), 1).await.expect("node a");
    let b = SqlNode::start(db, 2).await.expect("node b");
    (a, b)
}

async fn exec(s: &mut Session, sql: &str) -> Result<QueryOutput, SqlError> {
    let mut last = Err(SqlError::internal("no statement"));
    for r in s.simple_query(sql).await {
        last = r;
        if last.is_err() {
            break;
        }
    }
    last
}

async fn must(s: &mut Session, sql: &str) -> QueryOutput {
    match exec(s, sql).await {
        Ok(o) => o,
        Err(e) => panic!("{sql}: {e}"),
    }
}

fn int(o: &QueryOutput) -> i64 {
    match o.rows.first().and_then(|r| r.first()) {
        Some(Value::Int(i)) => *i,
        // sum(bigint) is numeric, as in PostgreSQL.
        Some(Value::Decimal(d)) => d.to_string().parse().expect("integral decimal"),
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// One transfer in an explicit transaction with CockroachDB's client-side retry
/// protocol: on 40001, ROLLBACK TO SAVEPOINT cockroach_restart and try again.
async fn transfer(s: &mut Session, from: i64, to: i64, amount: i64) -> usize {
    let mut retries = 0;
    must(s, "BEGIN; SAVEPOINT cockroach_restart").await;
    loop {
        let body = format!(
            "UPDATE accounts SET balance = balance - {amount} WHERE id = {from}; \
             UPDATE accounts SET balance = balance + {amount} WHERE id = {to}; \
             RELEASE SAVEPOINT cockroach_restart"
        );
        match exec(s, &body).await {
            Ok(_) => {
                must(s, "COMMIT").await;
                return retries;
            }
            Err(e) if e.code == "40001" => {
                assert!(
                    e.message.starts_with("restart transaction:"),
                    "{}",
                    e.message
                );
                retries += 1;
                must(s, "ROLLBACK TO SAVEPOINT cockroach_restart").await;
            }
            Err(e) => panic!("transfer failed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_transfers_keep_the_total() {
    let (a, b) = two_gateways().await;
    let mut setup = a.session("root", "defaultdb");
    must(
        &mut setup,
        "CREATE TABLE accounts (id INT PRIMARY KEY, balance INT NOT NULL)",
    )
    .await;
    must(
        &mut setup,
        "INSERT INTO accounts SELECT g, 100 FROM generate_series(0, 9) AS g",
    )
    .await;
    let mut clients = Vec::new();
    for c in 0..6i64 {
        let node = if c % 2 == 0 { a.clone() } else { b.clone() };
        clients.push(tokio::spawn(async move {
            let mut s = node.session("root", "defaultdb");
            let mut retries = 0;
            for i in 0..25i64 {
                let from = (c * 7 + i * 3) % 10;
                let to = (from + 1 + i % 9) % 10;
                retries += transfer(&mut s, from, to, 1 + i % 5).await;
                // Readers see a consistent total at every point.
                let total = int(&must(&mut s, "SELECT sum(balance) FROM accounts").await);
                assert_eq!(total, 1000, "total seen by client {c} after transfer {i}");
            }
            retries
        }));
    }
    let mut retries = 0;
    for c in clients {
        retries += c.await.expect("client");
    }
    let mut check = b.session("root", "defaultdb");
    assert_eq!(
        int(&must(&mut check, "SELECT sum(balance) FROM accounts").await),
        1000
    );
    assert_eq!(
        int(&must(&mut check, "SELECT count(*) FROM accounts").await),
        10
    );
    eprintln!("150 transfers, {retries} client-side retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_changes_on_one_gateway_while_another_writes() {
    let (a, b) = two_gateways().await;
    let mut ddl = a.session("root", "defaultdb");
    must(&mut ddl, "CREATE TABLE t (k INT PRIMARY KEY, v INT)").await;
    let writer = tokio::spawn(async move {
        let mut s = b.session("root", "defaultdb");
        for k in 0..200i64 {
            must(
                &mut s,
                &format!("INSERT INTO t (k, v) VALUES ({k}, {})", k % 7),
            )
            .await;
        }
        s
    });
    must(&mut ddl, "CREATE INDEX t_v_idx ON t (v)").await;
    must(&mut ddl, "ALTER TABLE t ADD COLUMN w INT DEFAULT 5").await;
    let mut s = writer.await.expect("writer");
    // The writer's gateway sees the new column and the index without restarting.
    must(&mut s, "INSERT INTO t (k, v, w) VALUES (1000, 3, 9)").await;
    let total = int(&must(&mut s, "SELECT count(*) FROM t").await);
    assert_eq!(total, 201);
    // Every row is reachable through the index (the backfill and the concurrent
    // inserts together cover all rows exactly once).
    let mut through_index = 0;
    for v in 0..7 {
        let plan = must(&mut s, &format!("EXPLAIN SELECT k FROM t WHERE v = {v}")).await;
        let text: Vec<String> = plan
            .rows
            .iter()
            .map(|r| r[0].to_text(tardigrade_sql::SqlType::Text))
            .collect();
        assert!(
            text.iter().any(|l| l.contains("t_v_idx")),
            "index not used: {text:?}"
        );
        through_index += int(&must(&mut s, &format!("SELECT count(*) FROM t WHERE v = {v}")).await);
    }
    assert_eq!(through_index, 201);
    assert_eq!(
        int(&must(&mut s, "SELECT count(*) FROM t WHERE w IS NULL").await),
        0
    );
}
