//! Advisory locks between sessions of one node: session-level locks held
//! until unlocked or the session ends, transaction-level ones until the
//! transaction ends, `pg_advisory_lock` waiting for a holder and its wait
//! ending when the statement is dropped (a cancel), `DISCARD ALL` and
//! `pg_advisory_unlock_all` releasing the session's locks.

mod common;

use std::time::Duration;

use common::ok;
use tardigrade_sql::{Session, SqlNode, Value};

/// The single value `sql` returns.
async fn value(s: &mut Session, sql: &str) -> Value {
    let out = ok(s, sql).await;
    out.rows
        .first()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or_else(|| panic!("{sql}: no value"))
}

async fn try_lock(s: &mut Session, key: &str) -> bool {
    let sql = format!("SELECT pg_try_advisory_lock({key})");
    match value(s, &sql).await {
        Value::Bool(b) => b,
        other => panic!("{sql}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advisory_locks_between_sessions() {
    let node = SqlNode::start(common::db(), 1).await.expect("start");
    let mut a = node.session("root", "defaultdb");
    let mut b = node.session("root", "defaultdb");

    // Session level: exclusive, nested, released by unlock.
    ok(&mut a, "SELECT pg_advisory_lock(1)").await;
    assert!(try_lock(&mut a, "1").await, "the holder takes it again");
    assert!(!try_lock(&mut b, "1").await);
    assert!(try_lock(&mut b, "0, 1").await, "two keys are another lock");
    assert_eq!(
        value(&mut b, "SELECT pg_advisory_unlock(1)").await,
        Value::Bool(false)
    );
    assert_eq!(
        value(&mut a, "SELECT pg_advisory_unlock(1)").await,
        Value::Bool(true)
    );
    assert!(!try_lock(&mut b, "1").await, "still held once");
    assert_eq!(
        value(&mut a, "SELECT pg_advisory_unlock(1)").await,
        Value::Bool(true)
    );
    assert!(try_lock(&mut b, "1").await);

    // pg_advisory_lock waits for the holder; dropping the statement (what a
    // cancel does) ends the wait without taking the lock.
    let waiting = tokio::time::timeout(
        Duration::from_millis(200),
        a.simple_query("SELECT pg_advisory_lock(1)"),
    )
    .await;
    assert!(waiting.is_err(), "pg_advisory_lock waited");
    let b_done = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ok(&mut b, "SELECT pg_advisory_unlock_all()").await;
        b
    });
    tokio::time::timeout(
        Duration::from_secs(10),
        ok(&mut a, "SELECT pg_advisory_lock(1)"),
    )
    .await
    .expect("the lock is taken once released");
    let mut b = b_done.await.expect("join");
    assert!(!try_lock(&mut b, "1").await);

    // Transaction level: until the block ends, and not by unlock.
    ok(&mut a, "SELECT pg_advisory_unlock_all()").await;
    ok(&mut a, "BEGIN").await;
    assert_eq!(
        value(&mut a, "SELECT pg_try_advisory_xact_lock(7)").await,
        Value::Bool(true)
    );
    assert_eq!(
        value(&mut a, "SELECT pg_advisory_unlock(7)").await,
        Value::Bool(false)
    );
    assert!(!try_lock(&mut b, "7").await);
    ok(&mut a, "COMMIT").await;
    assert!(try_lock(&mut b, "7").await);
    // outside a block, the statement's own transaction
    ok(&mut a, "SELECT pg_advisory_xact_lock(8)").await;
    assert!(try_lock(&mut b, "8").await);

    // DISCARD ALL and the end of the session release session-level locks.
    ok(&mut b, "DISCARD ALL").await;
    assert!(try_lock(&mut a, "7").await);
    drop(a);
    assert!(try_lock(&mut b, "7").await);
    ok(&mut b, "SELECT pg_advisory_unlock_all()").await;
    assert!(
        node.advisory.is_empty(),
        "{} keys held",
        node.advisory.len()
    );
}
