//! AS OF SYSTEM TIME through SQL sessions on an in-process single-node
//! store: queries and transactions reading the past (values, and the schema
//! of that time), their read-only mode, the forms of the expression and
//! CockroachDB's errors.

mod common;

use common::{err, ok, rows, run, session};

use std::time::Duration;

use tardigrade_sql::{Session, Value};

/// The single value of a query.
async fn one(s: &mut Session, sql: &str) -> String {
    let r = rows(s, sql).await;
    assert_eq!(r.len(), 1, "{sql}: {r:?}");
    r[0][0].clone()
}

/// `cluster_logical_timestamp()` now, in its decimal form.
async fn now(s: &mut Session) -> String {
    one(s, "SELECT cluster_logical_timestamp()").await
}

/// The error of a statement that must fail: its SQLSTATE and message.
async fn failure(s: &mut Session, sql: &str) -> (String, String) {
    match run(s, sql).await {
        Ok(o) => panic!("{sql}: expected an error, got {o:?}"),
        Err(e) => (e.code.to_string(), e.message),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_read_the_values_of_their_time() {
    let (_node, mut s) = session().await;
    ok(&mut s, "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)").await;
    ok(&mut s, "INSERT INTO t VALUES (1, 'old'), (2, 'gone')").await;
    let then = now(&mut s).await;
    assert!(then.contains('.'), "decimal HLC form: {then}");
    ok(&mut s, "UPDATE t SET v = 'new' WHERE k = 1").await;
    ok(&mut s, "DELETE FROM t WHERE k = 2").await;
    ok(&mut s, "INSERT INTO t VALUES (3, 'later')").await;

    let at = |form: &str| format!("SELECT k, v FROM t AS OF SYSTEM TIME {form} ORDER BY k");
    let past = vec![
        vec!["1".to_string(), "old".to_string()],
        vec!["2".to_string(), "gone".to_string()],
    ];
    // The decimal, as a number and as a string.
    assert_eq!(rows(&mut s, &at(&then)).await, past);
    assert_eq!(rows(&mut s, &at(&format!("'{then}'"))).await, past);
    // Filters, joins and aggregates read the same past.
    assert_eq!(
        one(
            &mut s,
            &format!("SELECT count(*) FROM t AS OF SYSTEM TIME {then} WHERE v <> 'old'")
        )
        .await,
        "1"
    );
    assert_eq!(
        one(
            &mut s,
            &format!(
                "SELECT a.v || '/' || b.v FROM t AS a JOIN t AS b ON a.k + 1 = b.k \
                 AS OF SYSTEM TIME {then}"
            )
        )
        .await,
        "old/gone"
    );
    // The present is untouched.
    assert_eq!(
        rows(&mut s, "SELECT k, v FROM t ORDER BY k").await,
        vec![
            vec!["1".to_string(), "new".to_string()],
            vec!["3".to_string(), "later".to_string()],
        ]
    );
    // Under EXPLAIN ANALYZE too (a read).
    ok(
        &mut s,
        &format!("EXPLAIN ANALYZE SELECT * FROM t AS OF SYSTEM TIME {then}"),
    )
    .await;
    // now() is the time read at.
    assert_eq!(
        one(
            &mut s,
            "SELECT now()::TEXT FROM (SELECT 1) AS x AS OF SYSTEM TIME '2020-01-01 00:00:00'"
        )
        .await,
        "2020-01-01 00:00:00+00"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intervals_count_back_from_now() {
    let (_node, mut s) = session().await;
    ok(&mut s, "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)").await;
    ok(&mut s, "INSERT INTO t VALUES (1, 'old')").await;
    // (Past the first half second of a store, when the clock leads
    // physical time by the maximum offset and the logical counter counts.)
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let then = now(&mut s).await;
    ok(&mut s, "UPDATE t SET v = 'new'").await;
    // Nanoseconds as an integer.
    let (wall, _) = then.split_once('.').expect("decimal");
    for form in [wall.to_string(), format!("'{wall}'")] {
        assert_eq!(
            one(&mut s, &format!("SELECT v FROM t AS OF SYSTEM TIME {form}")).await,
            "old",
            "{form}"
        );
    }
    // One second ago: after the insert, before the update.
    for form in ["'-1s'", "INTERVAL '-1 second'", "'-1000ms'::INTERVAL"] {
        assert_eq!(
            one(&mut s, &format!("SELECT v FROM t AS OF SYSTEM TIME {form}")).await,
            "old",
            "{form}"
        );
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        one(&mut s, "SELECT v FROM t AS OF SYSTEM TIME '-100ms'").await,
        "new"
    );
    // About 4.8 s ago the table did not exist yet (nor, most likely, the
    // database: the store is younger than that).
    let code = err(
        &mut s,
        "SELECT * FROM t AS OF SYSTEM TIME follower_read_timestamp()",
    )
    .await;
    assert!(code == "42P01" || code == "3D000", "{code}");
    // follower_read_timestamp() is an ordinary function too.
    assert_eq!(
        one(
            &mut s,
            "SELECT (now() - follower_read_timestamp() BETWEEN INTERVAL '4.7s' AND INTERVAL '5s')::TEXT"
        )
        .await,
        "true"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_is_the_one_of_that_time() {
    let (_node, mut s) = session().await;
    let before_any = now(&mut s).await;
    ok(&mut s, "CREATE TABLE u (a INT PRIMARY KEY)").await;
    ok(&mut s, "INSERT INTO u VALUES (1)").await;
    let one_column = now(&mut s).await;
    ok(&mut s, "ALTER TABLE u ADD COLUMN b INT DEFAULT 7").await;
    ok(&mut s, "CREATE TABLE later (x INT)").await;
    // The node's catalog cache now holds the new schema.
    assert_eq!(rows(&mut s, "SELECT * FROM u").await, vec![vec!["1", "7"]]);
    ok(&mut s, "SELECT * FROM later").await;

    let out = ok(
        &mut s,
        &format!("SELECT * FROM u AS OF SYSTEM TIME {one_column}"),
    )
    .await;
    let names: Vec<&str> = out
        .columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["a"]);
    assert_eq!(
        err(
            &mut s,
            &format!("SELECT b FROM u AS OF SYSTEM TIME {one_column}")
        )
        .await,
        "42703"
    );
    assert_eq!(
        err(
            &mut s,
            &format!("SELECT * FROM later AS OF SYSTEM TIME {one_column}")
        )
        .await,
        "42P01"
    );
    assert_eq!(
        err(
            &mut s,
            &format!("SELECT * FROM u AS OF SYSTEM TIME {before_any}")
        )
        .await,
        "42P01"
    );
    // The system catalogs too.
    assert_eq!(
        one(
            &mut s,
            &format!(
                "SELECT count(*) FROM information_schema.columns AS OF SYSTEM TIME {one_column} \
                 WHERE table_name = 'u'"
            )
        )
        .await,
        "1"
    );
    // A dropped table is still there in the past.
    ok(&mut s, "DROP TABLE u").await;
    assert_eq!(err(&mut s, "SELECT * FROM u").await, "42P01");
    assert_eq!(
        rows(
            &mut s,
            &format!("SELECT * FROM u AS OF SYSTEM TIME {one_column}")
        )
        .await,
        vec![vec!["1"]]
    );
    // The extended protocol describes it with the columns of that time.
    ok(&mut s, "CREATE TABLE v (a INT PRIMARY KEY, b INT)").await;
    ok(&mut s, "INSERT INTO v VALUES (1, 2)").await;
    let two_columns = now(&mut s).await;
    ok(&mut s, "ALTER TABLE v DROP COLUMN b").await;
    let p = s
        .prepare(
            &format!("SELECT * FROM v AS OF SYSTEM TIME {two_columns}"),
            &[],
        )
        .await
        .expect("prepare");
    assert_eq!(p.columns.as_ref().map(Vec::len), Some(2));
    let out = s.execute(&p, &[]).await.expect("execute");
    assert_eq!(out.rows, vec![vec![Value::Int(1), Value::Int(2)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn historical_transactions_read_one_time_and_write_nothing() {
    let (_node, mut s) = session().await;
    ok(&mut s, "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)").await;
    ok(&mut s, "CREATE SEQUENCE seq").await;
    ok(&mut s, "INSERT INTO t VALUES (1, 'old')").await;
    let then = now(&mut s).await;
    ok(&mut s, "UPDATE t SET v = 'new'").await;

    // BEGIN AS OF SYSTEM TIME: every statement reads then.
    ok(&mut s, &format!("BEGIN AS OF SYSTEM TIME {then}")).await;
    assert_eq!(one(&mut s, "SELECT v FROM t").await, "old");
    assert_eq!(one(&mut s, "SHOW transaction_read_only").await, "on");
    assert_eq!(
        one(&mut s, "SELECT cluster_logical_timestamp()").await,
        then
    );
    // The same time again is fine; another one is not.
    assert_eq!(
        one(&mut s, &format!("SELECT v FROM t AS OF SYSTEM TIME {then}")).await,
        "old"
    );
    assert_eq!(one(&mut s, "SELECT v FROM t").await, "old");
    // A client-directed restart reads at the same time.
    ok(&mut s, "SAVEPOINT cockroach_restart").await;
    ok(&mut s, "ROLLBACK TO SAVEPOINT cockroach_restart").await;
    assert_eq!(one(&mut s, "SELECT v FROM t").await, "old");
    ok(&mut s, "RELEASE SAVEPOINT cockroach_restart").await;
    ok(&mut s, "COMMIT").await;
    assert_eq!(one(&mut s, "SHOW transaction_read_only").await, "off");
    assert_eq!(one(&mut s, "SELECT v FROM t").await, "new");

    // Writes, DDL, nextval and locking reads fail with 25006.
    for write in [
        "INSERT INTO t VALUES (2, 'x')",
        "UPDATE t SET v = 'x'",
        "DELETE FROM t",
        "UPSERT INTO t VALUES (1, 'x')",
        "CREATE TABLE w (x INT)",
        "DROP TABLE t",
        "ALTER TABLE t ADD COLUMN c INT",
        "CREATE INDEX ON t (v)",
        "TRUNCATE t",
        "SELECT nextval('seq')",
        "SELECT * FROM t FOR UPDATE",
    ] {
        ok(
            &mut s,
            &format!("BEGIN TRANSACTION AS OF SYSTEM TIME {then}"),
        )
        .await;
        let (code, message) = failure(&mut s, write).await;
        assert_eq!(code, "25006", "{write}: {message}");
        assert!(message.ends_with("in a read-only transaction"), "{message}");
        ok(&mut s, "ROLLBACK").await;
    }
    assert_eq!(
        err(
            &mut s,
            &format!("SELECT * FROM t AS OF SYSTEM TIME {then} FOR UPDATE")
        )
        .await,
        "25006"
    );
    assert_eq!(one(&mut s, "SELECT v FROM t").await, "new");

    // It cannot be made read-write.
    ok(
        &mut s,
        &format!("START TRANSACTION AS OF SYSTEM TIME {then}"),
    )
    .await;
    let (code, message) = failure(&mut s, "SET TRANSACTION READ WRITE").await;
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("42601", "AS OF SYSTEM TIME specified with READ WRITE mode")
    );
    ok(&mut s, "ROLLBACK").await;
    assert_eq!(
        err(&mut s, "BEGIN AS OF SYSTEM TIME '-1s', READ WRITE").await,
        "42601"
    );
    assert_eq!(
        s.transaction_status(),
        tardigrade_sql::TransactionStatus::Idle
    );
    // With other modes, separated by commas or not.
    ok(
        &mut s,
        &format!("BEGIN READ ONLY, AS OF SYSTEM TIME {then}, ISOLATION LEVEL SERIALIZABLE"),
    )
    .await;
    assert_eq!(one(&mut s, "SELECT v FROM t").await, "old");
    ok(&mut s, "ROLLBACK").await;

    // SET TRANSACTION AS OF SYSTEM TIME as the first statement.
    ok(&mut s, "BEGIN").await;
    ok(&mut s, "SELECT 1").await;
    ok(&mut s, &format!("SET TRANSACTION AS OF SYSTEM TIME {then}")).await;
    assert_eq!(one(&mut s, "SELECT v FROM t").await, "old");
    assert_eq!(err(&mut s, "INSERT INTO t VALUES (5, 'x')").await, "25006");
    ok(&mut s, "ROLLBACK").await;
    // Not after the transaction read.
    ok(&mut s, "BEGIN").await;
    assert_eq!(one(&mut s, "SELECT v FROM t").await, "new");
    let (code, message) =
        failure(&mut s, &format!("SET TRANSACTION AS OF SYSTEM TIME {then}")).await;
    assert_eq!(code, "25000");
    assert!(
        message.starts_with("cannot set fixed timestamp")
            && message.ends_with("already performed reads"),
        "{message}"
    );
    ok(&mut s, "ROLLBACK").await;

    // A query's own time inside an ordinary block.
    ok(&mut s, "BEGIN").await;
    let (code, message) =
        failure(&mut s, &format!("SELECT * FROM t AS OF SYSTEM TIME {then}")).await;
    assert_eq!(code, "0A000");
    assert!(
        message.starts_with("inconsistent AS OF SYSTEM TIME timestamp; expected: "),
        "{message}"
    );
    assert_eq!(
        s.transaction_status(),
        tardigrade_sql::TransactionStatus::Failed
    );
    ok(&mut s, "ROLLBACK").await;
    ok(&mut s, &format!("BEGIN AS OF SYSTEM TIME {then}")).await;
    assert_eq!(
        err(&mut s, "SELECT * FROM t AS OF SYSTEM TIME '-1us'").await,
        "0A000"
    );
    ok(&mut s, "ROLLBACK").await;
    // BEGIN AS OF SYSTEM TIME inside a block.
    ok(&mut s, "BEGIN").await;
    assert_eq!(
        err(&mut s, &format!("BEGIN AS OF SYSTEM TIME {then}")).await,
        "25001"
    );
    ok(&mut s, "ROLLBACK").await;
    // The session is back to normal.
    ok(&mut s, "INSERT INTO t VALUES (9, 'fine')").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_follow_cockroachdb() {
    let (_node, mut s) = session().await;
    ok(&mut s, "CREATE TABLE t (k INT PRIMARY KEY)").await;
    let (code, message) = failure(&mut s, "SELECT * FROM t AS OF SYSTEM TIME '2200-01-01'").await;
    assert_eq!(code, "XXUUU");
    assert!(
        message.starts_with("AS OF SYSTEM TIME: cannot specify timestamp in the future ("),
        "{message}"
    );
    let cases = [
        (
            "SELECT * FROM t AS OF SYSTEM TIME '10s'",
            "XXUUU",
            "AS OF SYSTEM TIME: interval value '10s' too large, AS OF interval must be <= -1µs",
        ),
        (
            "SELECT * FROM t AS OF SYSTEM TIME INTERVAL '1 hour'",
            "XXUUU",
            "AS OF SYSTEM TIME: interval value '01:00:00' too large, AS OF interval must be <= -1µs",
        ),
        (
            "SELECT * FROM t AS OF SYSTEM TIME true",
            "XXUUU",
            "AS OF SYSTEM TIME: expected timestamp, decimal, or interval, got boolean",
        ),
        (
            "SELECT * FROM t AS OF SYSTEM TIME 'yesterday-ish'",
            "XXUUU",
            "AS OF SYSTEM TIME: value is neither timestamp, decimal, nor interval",
        ),
        (
            "SELECT * FROM t AS OF SYSTEM TIME now()",
            "XXUUU",
            "AS OF SYSTEM TIME: only constant expressions or follower_read_timestamp are allowed",
        ),
        (
            "SELECT * FROM t AS OF SYSTEM TIME (SELECT '-1h'::INTERVAL)",
            "0A000",
            "subqueries are not allowed in AS OF SYSTEM TIME",
        ),
        (
            "SELECT * FROM t AS OF SYSTEM TIME '0'",
            "XXUUU",
            "AS OF SYSTEM TIME: zero timestamp is invalid",
        ),
        (
            "SELECT * FROM (SELECT * FROM t AS OF SYSTEM TIME '-1s') AS x",
            "42601",
            "AS OF SYSTEM TIME must be provided on a top-level statement",
        ),
        (
            "SELECT * FROM t UNION SELECT * FROM t AS OF SYSTEM TIME '-1s'",
            "42601",
            "AS OF SYSTEM TIME must be provided on a top-level statement",
        ),
        (
            "INSERT INTO t SELECT * FROM t AS OF SYSTEM TIME '-1s'",
            "42601",
            "AS OF SYSTEM TIME must be provided on a top-level statement",
        ),
        (
            "SELECT * FROM (SELECT * FROM t AS OF SYSTEM TIME '-1s') AS x \
             AS OF SYSTEM TIME '-2s'",
            "0A000",
            "cannot specify AS OF SYSTEM TIME with different timestamps",
        ),
        (
            "SELECT 1 AS OF SYSTEM TIME '-1s'",
            "42601",
            "syntax error at or near \"of\"",
        ),
        (
            "SELECT * FROM t WHERE k = 1 AS OF SYSTEM TIME '-1s'",
            "42601",
            "syntax error at or near \"of\"",
        ),
        (
            "SELECT follower_read_timestamp('boom')",
            "42883",
            "unknown signature: follower_read_timestamp(unknown)",
        ),
    ];
    for (sql, code, message) in cases {
        assert_eq!(
            failure(&mut s, sql).await,
            (code.into(), message.into()),
            "{sql}"
        );
    }
    // The same time in a nested query is fine.
    let then = now(&mut s).await;
    ok(
        &mut s,
        &format!(
            "SELECT * FROM (SELECT * FROM t AS OF SYSTEM TIME '{then}') AS x \
             AS OF SYSTEM TIME {then}"
        ),
    )
    .await;
    // An error position points at the clause.
    let e = run(&mut s, "SELECT 1 AS OF SYSTEM TIME '-1s'")
        .await
        .expect_err("syntax error");
    assert_eq!(e.position, Some(13));
}
