//! Table statistics through SQL: `CREATE STATISTICS`, `ANALYZE`, `SHOW
//! STATISTICS FOR TABLE`, automatic collection after enough changes, and the
//! planner using them (join order and estimates follow the collected counts).

mod common;

use common::{db, err, ok};

use std::sync::Arc;

use tardigrade_sql::{Session, SqlNode, Value};

async fn session() -> (Arc<SqlNode>, Session) {
    let node = SqlNode::start(db(), 1).await.expect("start");
    // Tests that want automatic statistics turn them back on.
    node.stats.set_automatic(false);
    let s = node.session("root", "defaultdb");
    (node, s)
}

/// `SHOW STATISTICS` rows as (column, row_count, distinct, nulls, buckets).
async fn stats(s: &mut Session, table: &str) -> Vec<(String, i64, i64, i64, i64)> {
    let out = ok(s, &format!("SHOW STATISTICS FOR TABLE {table}")).await;
    out.rows
        .iter()
        .map(|r| {
            let int = |v: &Value| match v {
                Value::Int(i) => *i,
                other => panic!("not an int: {other:?}"),
            };
            let name = match &r[1] {
                Value::Text(t) => t.clone(),
                other => panic!("not text: {other:?}"),
            };
            (name, int(&r[3]), int(&r[4]), int(&r[5]), int(&r[6]))
        })
        .collect()
}

fn explain_text(out: &tardigrade_sql::QueryOutput) -> String {
    out.rows
        .iter()
        .map(|r| match &r[0] {
            Value::Text(t) => t.clone(),
            other => format!("{other:?}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn create_statistics_counts_rows_distinct_values_and_nulls() {
    let (_node, mut s) = session().await;
    ok(
        &mut s,
        "CREATE TABLE t (id INT PRIMARY KEY, g INT, n TEXT, INDEX (g))",
    )
    .await;
    ok(
        &mut s,
        "INSERT INTO t SELECT i, i % 7, CASE WHEN i % 4 = 0 THEN NULL ELSE 'x' || (i % 3)::TEXT END \
         FROM generate_series(1, 2000) AS i",
    )
    .await;
    assert!(stats(&mut s, "t").await.is_empty(), "no statistics yet");
    ok(&mut s, "CREATE STATISTICS s1 FROM t").await;
    let got = stats(&mut s, "t").await;
    assert_eq!(got.len(), 3, "{got:?}");
    let id = &got[0];
    assert_eq!(id.0, "{id}");
    assert_eq!(id.1, 2000);
    assert!((1950..=2050).contains(&id.2), "distinct ids ≈ 2000: {id:?}");
    assert_eq!(id.3, 0);
    assert!(id.4 > 0, "the primary key column has a histogram");
    let g = &got[1];
    assert_eq!((g.2, g.3), (7, 0), "{g:?}");
    assert!(
        g.4 > 0 && g.4 <= 7,
        "indexed column: one bucket per value at most"
    );
    let n = &got[2];
    assert_eq!((n.2, n.3), (3, 500), "{n:?}");
    assert!(
        n.4 > 0 && n.4 <= 3,
        "{n:?}: an unindexed column has a histogram too, one bucket per value at most"
    );

    // ON a column replaces only that column's statistics.
    ok(&mut s, "INSERT INTO t VALUES (5000, 100, NULL)").await;
    ok(&mut s, "CREATE STATISTICS s2 ON g FROM t").await;
    let got = stats(&mut s, "t").await;
    assert_eq!(got[1].2, 8);
    assert_eq!(got[0].1, 2000, "id keeps the earlier collection");
    let names = ok(&mut s, "SHOW STATISTICS FOR TABLE t").await;
    assert_eq!(names.rows[1][0], Value::Text("s2".into()));
    assert_eq!(names.rows[0][0], Value::Text("s1".into()));

    // Bare ANALYZE: every table of the database.
    ok(&mut s, "CREATE TABLE other (k INT PRIMARY KEY)").await;
    ok(&mut s, "INSERT INTO other VALUES (1), (2)").await;
    ok(&mut s, "CREATE VIEW vv AS SELECT k FROM other").await;
    ok(&mut s, "ANALYZE").await;
    assert_eq!(stats(&mut s, "other").await[0].1, 2);

    // ANALYZE collects every column under the automatic name.
    ok(&mut s, "ANALYZE t").await;
    let got = stats(&mut s, "t").await;
    assert_eq!(got[0].1, 2001);
    let names = ok(&mut s, "SHOW STATISTICS FOR TABLE t").await;
    assert!(
        names
            .rows
            .iter()
            .all(|r| r[0] == Value::Text("__auto__".into()))
    );
}

#[tokio::test]
async fn bad_statistics_statements_get_clear_errors() {
    let (_node, mut s) = session().await;
    ok(&mut s, "CREATE TABLE t (a INT)").await;
    ok(&mut s, "CREATE VIEW v AS SELECT a FROM t").await;
    assert_eq!(
        err(&mut s, "CREATE STATISTICS s FROM nosuch").await,
        "42P01"
    );
    assert_eq!(err(&mut s, "ANALYZE nosuch").await, "42P01");
    assert_eq!(
        err(&mut s, "CREATE STATISTICS s ON zz FROM t").await,
        "42703"
    );
    assert_eq!(err(&mut s, "CREATE STATISTICS FROM t").await, "42601");
    assert_eq!(err(&mut s, "CREATE STATISTICS s ON FROM").await, "42601");
    assert_eq!(err(&mut s, "SHOW STATISTICS t").await, "42601");
    assert_eq!(err(&mut s, "ANALYZE v").await, "42809");
    // The session goes on.
    ok(&mut s, "ANALYZE t").await;
    assert_eq!(ok(&mut s, "SELECT count(*) FROM t").await.rows.len(), 1);
}

#[tokio::test]
async fn statistics_steer_the_join_order() {
    let (_node, mut s) = session().await;
    ok(&mut s, "CREATE TABLE small (id INT PRIMARY KEY, v INT)").await;
    ok(&mut s, "CREATE TABLE large (id INT PRIMARY KEY, s INT)").await;
    ok(
        &mut s,
        "INSERT INTO small SELECT i, i FROM generate_series(1, 5) AS i",
    )
    .await;
    ok(
        &mut s,
        "INSERT INTO large SELECT i, i % 5 + 1 FROM generate_series(1, 3000) AS i",
    )
    .await;
    // Without statistics both tables are assumed to have 1000 rows and the
    // written order stands: small probes, large builds.
    let q = "SELECT count(*) FROM small, large WHERE large.s = small.id";
    let before = explain_text(&ok(&mut s, &format!("EXPLAIN {q}")).await);
    ok(&mut s, "ANALYZE small").await;
    ok(&mut s, "ANALYZE large").await;
    let after = explain_text(&ok(&mut s, &format!("EXPLAIN {q}")).await);
    assert_ne!(before, after, "statistics changed nothing:\n{after}");
    // Now the 5-row table is the build (right) side: it is scanned last.
    let small_at = after.find("scan small").expect("scans small");
    let large_at = after.find("scan large").expect("scans large");
    assert!(large_at < small_at, "large should probe:\n{after}");
    let out = ok(&mut s, q).await;
    assert_eq!(out.rows[0][0], Value::Int(3000));
}

#[tokio::test]
async fn enough_changes_refresh_statistics_automatically() {
    let (node, mut s) = session().await;
    node.stats.set_automatic(true);
    ok(&mut s, "CREATE TABLE a (id INT PRIMARY KEY, v INT)").await;
    // The first change of a table without statistics collects them, however
    // small it is.
    ok(
        &mut s,
        "INSERT INTO a SELECT i, i % 3 FROM generate_series(1, 100) AS i",
    )
    .await;
    wait_for_rows(&mut s, "a", 100).await;
    // 100 more rows is below the 500-row floor (plus 20%): no refresh.
    ok(
        &mut s,
        "INSERT INTO a SELECT i, i % 3 FROM generate_series(101, 200) AS i",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(stats(&mut s, "a").await[0].1, 100);
    // 600 more (700 since the last collection) is above it.
    ok(
        &mut s,
        "INSERT INTO a SELECT i, i % 3 FROM generate_series(201, 800) AS i",
    )
    .await;
    wait_for_rows(&mut s, "a", 800).await;
    assert_eq!(stats(&mut s, "a").await[1].2, 3);
    let names = ok(&mut s, "SHOW STATISTICS FOR TABLE a").await;
    assert_eq!(names.rows[0][0], Value::Text("__auto__".into()));
}

/// Waits (at most 20 s) until the table's statistics count `rows` rows.
async fn wait_for_rows(s: &mut Session, table: &str, rows: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let got = stats(s, table).await;
        if got.first().is_some_and(|c| c.1 == rows) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no automatic statistics of {rows} rows for {table}: {got:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
