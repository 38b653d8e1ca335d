//! `EXPLAIN` and its options through SQL: readable plans with estimates,
//! `EXPLAIN ANALYZE` with what each operator produced, `(VERBOSE)`, `(OPT)`,
//! and join ordering as EXPLAIN shows it.

mod common;

use common::{db, err, ok};

use std::sync::Arc;

use tardigrade_sql::{Session, SqlNode, Value};

async fn session() -> (Arc<SqlNode>, Session) {
    let node = SqlNode::start(db(), 1).await.expect("start");
    node.stats.set_automatic(false);
    let s = node.session("root", "defaultdb");
    (node, s)
}

async fn lines(s: &mut Session, sql: &str) -> Vec<String> {
    ok(s, sql)
        .await
        .rows
        .iter()
        .map(|r| match &r[0] {
            Value::Text(t) => t.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

async fn setup(s: &mut Session) {
    ok(
        s,
        "CREATE TABLE orders (id INT PRIMARY KEY, customer INT, total INT)",
    )
    .await;
    ok(s, "CREATE TABLE customers (id INT PRIMARY KEY, name TEXT)").await;
    ok(
        s,
        "INSERT INTO customers SELECT i, 'c' || i::TEXT FROM generate_series(1, 50) AS i",
    )
    .await;
    ok(
        s,
        "INSERT INTO orders SELECT i, i % 50 + 1, i % 100 FROM generate_series(1, 500) AS i",
    )
    .await;
}

#[tokio::test]
async fn explain_prints_sql_expressions_and_estimates() {
    let (_node, mut s) = session().await;
    setup(&mut s).await;
    let plan = lines(&mut s, "EXPLAIN SELECT id FROM orders WHERE total > 5").await;
    assert_eq!(plan[0], "• project: id", "{plan:#?}");
    assert!(
        plan.contains(&"  • filter: total > 5".to_string()),
        "{plan:#?}"
    );
    assert!(
        plan.iter().any(|l| l.contains("estimated row count: 333")),
        "{plan:#?}"
    );
    // Columns of two tables with one name are qualified.
    let plan = lines(
        &mut s,
        "EXPLAIN SELECT * FROM orders JOIN customers ON orders.customer = customers.id \
         WHERE customers.name = 'c7'",
    )
    .await
    .join("\n");
    assert!(plan.contains("name = 'c7'"), "{plan}");
    assert!(plan.contains("customers.id"), "{plan}");
    // Estimates follow statistics once there are some.
    ok(&mut s, "ANALYZE orders").await;
    let plan = lines(&mut s, "EXPLAIN SELECT * FROM orders").await;
    assert!(
        plan.contains(&"  estimated row count: 500".to_string()),
        "{plan:#?}"
    );
    assert_eq!(err(&mut s, "EXPLAIN (BOGUS) SELECT 1").await, "42601");
    let plan = lines(&mut s, "EXPLAIN (COSTS OFF) SELECT * FROM orders").await;
    assert!(!plan.iter().any(|l| l.contains("estimated")), "{plan:#?}");
}

#[tokio::test]
async fn explain_analyze_runs_the_statement_and_counts_rows_per_operator() {
    let (_node, mut s) = session().await;
    setup(&mut s).await;
    let plan = lines(
        &mut s,
        "EXPLAIN ANALYZE SELECT c.name, count(*) FROM orders o JOIN customers c \
         ON o.customer = c.id WHERE o.total < 10 GROUP BY c.name",
    )
    .await;
    let text = plan.join("\n");
    assert!(plan[0].starts_with("planning time: "), "{text}");
    assert!(plan[1].starts_with("execution time: "), "{text}");
    // total < 10: 50 orders (i % 100 < 10), of 10 customers → 10 groups.
    let i = plan
        .iter()
        .position(|l| l.starts_with("rows returned"))
        .expect("rows");
    let returned = &plan[i];
    let groups: usize = returned["rows returned: ".len()..].parse().expect("count");
    assert_eq!(groups, 10, "{text}");
    assert!(
        text.contains("actual row count: 500"),
        "the scan of orders: {text}"
    );
    assert!(text.contains("actual row count: 50,"), "the filter: {text}");
    assert!(
        text.contains("actual row count: 10,"),
        "the aggregation: {text}"
    );
    // The hash aggregation and the hash join report the memory they held.
    let agg = plan
        .iter()
        .position(|l| l.contains("hash group-by"))
        .expect("a hash group-by");
    assert!(plan[agg + 2].contains(", memory: "), "{text}");
    // So does a sort.
    let plan = lines(
        &mut s,
        "EXPLAIN ANALYZE SELECT id FROM orders ORDER BY total DESC, id",
    )
    .await;
    let text = plan.join("\n");
    let sort = plan
        .iter()
        .position(|l| l.contains("• sort"))
        .expect("a sort");
    assert!(plan[sort + 2].contains(", memory: "), "{text}");
    // A DML statement runs too.
    let plan = lines(&mut s, "EXPLAIN ANALYZE DELETE FROM orders WHERE total = 3").await;
    assert!(plan.iter().any(|l| l == "result: DELETE 5"), "{plan:#?}");
    let left = ok(&mut s, "SELECT count(*) FROM orders").await;
    assert_eq!(left.rows[0][0], Value::Int(495));
}

#[tokio::test]
async fn explain_analyze_shows_a_materialized_cte_computed_once() {
    let (_node, mut s) = session().await;
    setup(&mut s).await;
    // Read twice, in the join and in a correlated subquery run per row.
    let plan = lines(
        &mut s,
        "EXPLAIN ANALYZE WITH t AS (SELECT customer, sum(total) AS s FROM orders GROUP BY customer) \
         SELECT count(*) FROM t a WHERE a.s >= (SELECT b.s FROM t b WHERE b.customer = a.customer)",
    )
    .await;
    let text = plan.join("\n");
    assert!(plan.iter().any(|l| l == "rows returned: 1"), "{text}");
    // The CTE's plan once, run once: the orders scan read 500 rows.
    let scans: Vec<usize> = (0..plan.len())
        .filter(|&i| plan[i].contains("• scan orders"))
        .collect();
    assert_eq!(scans.len(), 1, "{text}");
    let actual = |i: usize| {
        plan[i..]
            .iter()
            .find(|l| l.contains("actual row count"))
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        actual(scans[0]).contains("actual row count: 500,"),
        "{text}"
    );
    let with = plan
        .iter()
        .position(|l| l.contains("• with t"))
        .expect("a with node");
    assert!(actual(with).contains(", memory: "), "{text}");
    // Each reference reads the 50 groups: the join's once, the
    // subquery's once per outer row.
    let reads: Vec<String> = (0..plan.len())
        .filter(|&i| plan[i].contains("• scan cte t"))
        .map(actual)
        .collect();
    assert_eq!(reads.len(), 2, "{text}");
    assert!(
        reads.iter().any(|l| l.contains("actual row count: 50,")),
        "{text}"
    );
    assert!(
        reads.iter().any(|l| l.contains("actual row count: 2500,")),
        "{text}"
    );
}

#[tokio::test]
async fn verbose_shows_columns_and_orderings_and_opt_the_logical_plan() {
    let (_node, mut s) = session().await;
    setup(&mut s).await;
    let plan = lines(
        &mut s,
        "EXPLAIN (VERBOSE) SELECT id, total FROM orders ORDER BY id",
    )
    .await
    .join("\n");
    assert!(plan.contains("columns: (id, total)"), "{plan}");
    assert!(plan.contains("ordering: +id"), "{plan}");
    let plan = lines(
        &mut s,
        "EXPLAIN (OPT) SELECT * FROM orders JOIN customers ON orders.customer = customers.id",
    )
    .await
    .join("\n");
    // Before the physical choice every join is still a hash join shape.
    assert!(plan.contains("hash join (inner)"), "{plan}");
}

#[tokio::test]
async fn opt_memo_shows_the_costed_alternatives_behind_the_join_order() {
    let (_node, mut s) = session().await;
    setup(&mut s).await;
    let plan = lines(
        &mut s,
        "EXPLAIN (OPT, MEMO) SELECT * FROM orders JOIN customers ON orders.customer = customers.id",
    )
    .await;
    let text = plan.join("\n");
    assert!(
        text.contains("memo 1 (join of 2 relations, 3 groups):"),
        "{text}"
    );
    assert!(text.contains("G1: orders"), "{text}");
    assert!(text.contains("G3: {orders customers}"), "{text}");
    // customers has a primary key on the join column: a lookup join from
    // orders is an alternative, and both hash join orders are.
    for alternative in ["hash-join G1 G2", "hash-join G2 G1", "lookup-join G1 G2"] {
        assert!(text.contains(alternative), "{alternative}: {text}");
    }
    assert_eq!(
        plan.iter()
            .filter(|l| l.trim_start().starts_with('*'))
            .count(),
        1,
        "one best expression in the one join group: {text}"
    );
    let none = lines(&mut s, "EXPLAIN (OPT, MEMO) SELECT 1").await;
    assert_eq!(none.last().map(String::as_str), Some("no join to order"));
}

#[tokio::test]
async fn joins_listed_in_a_bad_order_are_reordered_without_cross_joins() {
    let (_node, mut s) = session().await;
    for t in 1..=7 {
        ok(
            &mut s,
            &format!("CREATE TABLE t{t} (id INT PRIMARY KEY, p INT)"),
        )
        .await;
        ok(
            &mut s,
            &format!("INSERT INTO t{t} SELECT i, i % 20 FROM generate_series(0, 199) AS i"),
        )
        .await;
    }
    // A chain t1 - t2 - … - t7, listed so that neighbours in the FROM list
    // never share a predicate.
    let q = "SELECT count(*) FROM t1, t3, t5, t7, t2, t4, t6 \
             WHERE t2.p = t1.id AND t3.p = t2.id AND t4.p = t3.id AND t5.p = t4.id \
             AND t6.p = t5.id AND t7.p = t6.id AND t1.id < 5";
    let plan = lines(&mut s, &format!("EXPLAIN {q}")).await.join("\n");
    assert!(!plan.contains("cross"), "{plan}");
    let out = ok(&mut s, q).await;
    let Value::Int(n) = out.rows[0][0] else {
        panic!("{:?}", out.rows)
    };
    assert!(n > 0, "{n}");
    // The same count with the joins written in chain order.
    let chain = "SELECT count(*) FROM t1 JOIN t2 ON t2.p = t1.id JOIN t3 ON t3.p = t2.id \
                 JOIN t4 ON t4.p = t3.id JOIN t5 ON t5.p = t4.id JOIN t6 ON t6.p = t5.id \
                 JOIN t7 ON t7.p = t6.id WHERE t1.id < 5";
    assert_eq!(ok(&mut s, chain).await.rows[0][0], Value::Int(n));
}
