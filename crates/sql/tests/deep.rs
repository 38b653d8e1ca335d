//! No statement can exhaust the stack of the thread running it: long chains of
//! one set operation (thousands of `UNION ALL` or `INTERSECT` branches) are
//! answered, and shapes nested deeper than the limits (parentheses,
//! operator chains, CASE, subqueries, array literals, set operations mixed so
//! that they cannot be flattened) are refused with 54001, after which the
//! session goes on. The tests run on the test thread (2 MiB of stack, as a
//! runtime worker) in a debug build, the worst case for stack use.

mod common;

use common::{db, err, ok};
use tardigrade_sql::{Session, SqlNode};
use tardigrade_sqltypes::Value;

async fn session() -> Session {
    let node = SqlNode::start(db(), 1).await.expect("start sql");
    node.session("root", "defaultdb")
}

/// `first <op> rest <op> rest …` with `n` branches.
fn chain(first: &str, op: &str, rest: &str, n: usize) -> String {
    let mut sql = first.to_string();
    for _ in 1..n {
        sql.push(' ');
        sql.push_str(op);
        sql.push(' ');
        sql.push_str(rest);
    }
    sql
}

/// `open^n middle close^n`.
fn nested(open: &str, middle: &str, close: &str, n: usize) -> String {
    format!("{}{middle}{}", open.repeat(n), close.repeat(n))
}

async fn count(s: &mut Session, sql: &str) -> i64 {
    let out = ok(s, &format!("SELECT count(*) FROM ({sql}) AS q")).await;
    match out.rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => *n,
        other => panic!("count: {other:?}"),
    }
}

/// The session still answers after a refused statement.
async fn still_works(s: &mut Session) {
    let out = ok(s, "SELECT 1").await;
    assert_eq!(out.rows, vec![vec![Value::Int(1)]]);
}

#[tokio::test]
async fn a_union_all_of_5000_branches_is_answered() {
    let mut s = session().await;
    let sql = chain("SELECT 1", "UNION ALL", "SELECT 1", 5000);
    assert_eq!(count(&mut s, &sql).await, 5000);
    // As a statement of its own, and with distinct rows.
    let out = ok(
        &mut s,
        &chain("SELECT 1 AS x", "UNION ALL", "SELECT 2", 5000),
    )
    .await;
    assert_eq!(out.rows.len(), 5000);
    assert_eq!(out.rows[0], vec![Value::Int(1)]);
    assert_eq!(out.rows[4999], vec![Value::Int(2)]);
    let union = chain("SELECT 1", "UNION", "SELECT 2", 5000);
    assert_eq!(count(&mut s, &union).await, 2);
}

#[tokio::test]
async fn an_intersect_chain_of_3500_branches_is_answered() {
    let mut s = session().await;
    let sql = chain(
        "SELECT * FROM (VALUES (1), (2), (3)) AS v(x)",
        "INTERSECT",
        "SELECT * FROM (VALUES (2), (3), (4)) AS v(x)",
        3500,
    );
    assert_eq!(count(&mut s, &sql).await, 2);
    let except = chain(
        "SELECT * FROM generate_series(1, 3000) AS g(x)",
        "EXCEPT",
        "SELECT 1",
        3000,
    );
    assert_eq!(count(&mut s, &except).await, 2999);
}

#[tokio::test]
async fn a_long_chain_types_its_columns_left_to_right() {
    let mut s = session().await;
    // '2' and '3' are untyped literals: they take the type of the integer
    // before them, as in PostgreSQL, however long the chain.
    let sql = format!(
        "SELECT 1 UNION ALL {}",
        chain("SELECT '2'", "UNION ALL", "SELECT '3'", 200)
    );
    assert_eq!(count(&mut s, &sql).await, 201);
    let out = ok(&mut s, &format!("{sql} ORDER BY 1 DESC LIMIT 1")).await;
    assert_eq!(out.rows, vec![vec![Value::Int(3)]]);
    assert_eq!(
        err(
            &mut s,
            "SELECT 1 UNION ALL (SELECT 'a'::text UNION ALL SELECT 'b')"
        )
        .await,
        "42804"
    );
}

#[tokio::test]
async fn too_deep_shapes_get_54001_and_the_session_goes_on() {
    let mut s = session().await;
    let too_deep = [
        format!("SELECT {}", nested("(", "1", ")", 100_000)),
        format!("SELECT {}", chain("1", "+", "1", 100_000)),
        format!("SELECT {}", chain("true", "AND", "true", 100_000)),
        format!(
            "SELECT {}",
            chain("1", "::", "INT", 100_000).replace(":: ", "::")
        ),
        format!("SELECT 1 WHERE {}", chain("1 = 1", "OR", "1 = 1", 50_000)),
        format!(
            "SELECT {}",
            nested("CASE WHEN true THEN ", "1", " END", 10_000)
        ),
        nested("SELECT (", "SELECT 1", ")", 10_000),
        nested("SELECT * FROM (", "SELECT 1", ") AS q", 10_000),
        format!("SELECT {}", nested("ARRAY[", "1", "]", 10_000)),
        format!("SELECT '{}'::JSONB", nested("[", "1", "]", 100_000)),
        format!("SELECT {}", nested("- ", "1", "", 100_000)),
        format!("SELECT {}", nested("NOT ", "true", "", 100_000)),
        // UNION and INTERSECT alternating cannot be flattened.
        chain("SELECT 1", "UNION SELECT 1 INTERSECT", "SELECT 1", 20_000),
        chain("SELECT 1", "UNION SELECT 1 EXCEPT", "SELECT 1", 3_000),
        // More branches than a chain may have.
        chain("SELECT 1", "UNION ALL", "SELECT 1", 12_000),
        // Nested parenthesised set operations.
        nested("SELECT 1 UNION ALL (", "SELECT 1", ")", 10_000),
    ];
    for sql in &too_deep {
        let code = err(&mut s, sql).await;
        assert_eq!(code, "54001", "{}…", &sql[..80.min(sql.len())]);
        still_works(&mut s).await;
    }
}

#[tokio::test]
async fn moderately_deep_queries_still_work() {
    let mut s = session().await;
    let out = ok(&mut s, &format!("SELECT {}", nested("(", "1", ")", 50))).await;
    assert_eq!(out.rows, vec![vec![Value::Int(1)]]);
    let out = ok(&mut s, &format!("SELECT {}", chain("1", "+", "1", 100))).await;
    assert_eq!(out.rows, vec![vec![Value::Int(100)]]);
    let out = ok(
        &mut s,
        &format!("SELECT {}", nested("CASE WHEN true THEN ", "7", " END", 30)),
    )
    .await;
    assert_eq!(out.rows, vec![vec![Value::Int(7)]]);
    let out = ok(&mut s, &nested("SELECT (", "SELECT 3", ")", 20)).await;
    assert_eq!(out.rows, vec![vec![Value::Int(3)]]);
}

/// Just inside the limits, every stage (binding, planning, EXPLAIN,
/// execution) fits on the test thread's stack.
#[tokio::test]
async fn the_deepest_accepted_statements_run() {
    let mut s = session().await;
    let out = ok(&mut s, &format!("SELECT {}", nested("(", "1", ")", 120))).await;
    assert_eq!(out.rows, vec![vec![Value::Int(1)]]);
    let out = ok(&mut s, &format!("SELECT {}", chain("1", "+", "1", 120))).await;
    assert_eq!(out.rows, vec![vec![Value::Int(120)]]);
    let joins: Vec<String> = (0..190).map(|i| format!("(VALUES (1)) AS t{i}")).collect();
    let joins = format!("SELECT count(*) FROM {}", joins.join(", "));
    let out = ok(&mut s, &joins).await;
    assert_eq!(out.rows, vec![vec![Value::Int(1)]]);
    ok(&mut s, &format!("EXPLAIN {joins}")).await;
    let sets = nested("SELECT 1 UNION ALL (", "SELECT 1", ")", 190);
    assert_eq!(count(&mut s, &sets).await, 191);
    ok(&mut s, &format!("EXPLAIN {sets}")).await;
    let alternating = chain("SELECT 1", "UNION SELECT 2 EXCEPT", "SELECT 1", 90);
    // ({1} ∪ {2}) − {1} ∪ {2} − {1} …
    assert_eq!(count(&mut s, &alternating).await, 1);
}

#[tokio::test]
async fn a_deep_statement_is_refused_when_prepared_too() {
    let mut s = session().await;
    let sql = format!("SELECT {}", chain("1", "+", "1", 100_000));
    let Err(e) = s.prepare(&sql, &[]).await else {
        panic!("a 100,000-term sum is refused");
    };
    assert_eq!(e.code.to_string(), "54001");
    let sql = chain("SELECT 1", "UNION ALL", "SELECT 1", 5000);
    let prepared = s.prepare(&sql, &[]).await.expect("prepares");
    let out = s.execute(&prepared, &[]).await.expect("runs");
    assert_eq!(out.rows.len(), 5000);
}
