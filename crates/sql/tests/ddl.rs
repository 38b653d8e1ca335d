//! Schema changes through SQL sessions on an in-process single-node store:
//! CREATE/DROP of databases, tables, indexes (with backfill), views and
//! sequences; ALTER TABLE; TRUNCATE; the SHOW statements; constraint errors
//! with their SQLSTATEs; two nodes seeing each other's DDL.

mod common;

use common::{db, err, ok, rows, run, session};

use std::time::Instant;

use tardigrade_sql::SqlNode;

fn strs(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_indexes_and_errors() {
    let (_node, mut s) = session().await;
    ok(
        &mut s,
        "CREATE TABLE t (a INT PRIMARY KEY, b TEXT, c INT NOT NULL DEFAULT 7)",
    )
    .await;
    assert_eq!(err(&mut s, "CREATE TABLE t (x INT)").await, "42P07");
    ok(&mut s, "CREATE TABLE IF NOT EXISTS t (x INT)").await;
    assert_eq!(err(&mut s, "CREATE TABLE u (x INT, x TEXT)").await, "42701");
    assert_eq!(
        err(
            &mut s,
            "CREATE TABLE u (x INT PRIMARY KEY, y INT PRIMARY KEY)"
        )
        .await,
        "42P16"
    );
    assert_eq!(err(&mut s, "CREATE TABLE nodb.u (x INT)").await, "3D000");
    ok(
        &mut s,
        "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'x')",
    )
    .await;
    assert_eq!(
        err(&mut s, "INSERT INTO t (a, b) VALUES (1, 'z')").await,
        "23505"
    );
    assert_eq!(
        rows(&mut s, "SELECT a, b, c FROM t ORDER BY a").await,
        strs(&[&["1", "x", "7"], &["2", "y", "7"], &["3", "x", "7"]])
    );
    // A unique index over duplicates fails and leaves nothing behind.
    assert_eq!(
        err(&mut s, "CREATE UNIQUE INDEX t_b ON t (b)").await,
        "23505"
    );
    ok(&mut s, "CREATE INDEX t_b ON t (b DESC) STORING (c)").await;
    assert_eq!(err(&mut s, "CREATE INDEX t_b ON t (c)").await, "42P07");
    ok(&mut s, "CREATE INDEX IF NOT EXISTS t_b ON t (c)").await;
    assert_eq!(
        rows(&mut s, "SELECT a FROM t WHERE b = 'x' ORDER BY a").await,
        strs(&[&["1"], &["3"]])
    );
    ok(&mut s, "CREATE UNIQUE INDEX ON t (c, a)").await;
    let cols = rows(&mut s, "SHOW COLUMNS FROM t").await;
    assert_eq!(cols.len(), 3);
    assert_eq!(cols[0][0], "a");
    assert_eq!(cols[0][1], "INT8");
    let create = rows(&mut s, "SHOW CREATE TABLE t").await;
    assert!(
        create[0][1].contains("INDEX t_b (b DESC) STORING (c)"),
        "{create:?}"
    );
    let idx = rows(&mut s, "SHOW INDEXES FROM t").await;
    assert!(
        idx.iter()
            .any(|r| r[1] == "t_b" && r[4] == "b" && r[5] == "DESC"),
        "{idx:?}"
    );
    let cons = rows(&mut s, "SHOW CONSTRAINTS FROM t").await;
    assert!(
        cons.iter()
            .any(|r| r[1] == "t_pkey" && r[2] == "PRIMARY KEY"),
        "{cons:?}"
    );
    ok(&mut s, "DROP INDEX t_b").await;
    ok(&mut s, "DROP INDEX IF EXISTS t_b").await;
    ok(&mut s, "DROP INDEX t@t_c_a_idx").await;
    assert_eq!(err(&mut s, "DROP INDEX t_b").await, "42704");
    assert_eq!(
        rows(&mut s, "SELECT a FROM t WHERE b = 'x' ORDER BY a").await,
        strs(&[&["1"], &["3"]])
    );
    // CockroachDB table elements.
    ok(
        &mut s,
        "CREATE TABLE kv (k STRING PRIMARY KEY, v INT, w INT, INDEX (v) STORING (w), UNIQUE INDEX kv_w (w), FAMILY f (k, v, w))",
    )
    .await;
    ok(&mut s, "INSERT INTO kv VALUES ('a', 1, 10), ('b', 1, 20)").await;
    assert_eq!(
        err(&mut s, "INSERT INTO kv VALUES ('c', 2, 10)").await,
        "23505"
    );
    ok(&mut s, "UPSERT INTO kv VALUES ('a', 5, 30)").await;
    assert_eq!(
        rows(&mut s, "SELECT k, v, w FROM kv ORDER BY k").await,
        strs(&[&["a", "5", "30"], &["b", "1", "20"]])
    );
    // NOT NULL.
    assert_eq!(
        err(&mut s, "INSERT INTO t (a, c) VALUES (9, NULL)").await,
        "23502"
    );
    // Tables without a primary key get a hidden rowid.
    ok(&mut s, "CREATE TABLE nopk (x INT, y INT)").await;
    ok(&mut s, "INSERT INTO nopk VALUES (1, 2), (1, 2)").await;
    assert_eq!(
        rows(&mut s, "SELECT * FROM nopk").await,
        strs(&[&["1", "2"], &["1", "2"]])
    );
    // SERIAL is an INT8 with unique_rowid().
    ok(&mut s, "CREATE TABLE ser (id SERIAL PRIMARY KEY, v TEXT)").await;
    ok(&mut s, "INSERT INTO ser (v) VALUES ('a'), ('b')").await;
    assert_eq!(
        rows(&mut s, "SELECT v FROM ser ORDER BY id").await,
        strs(&[&["a"], &["b"]])
    );
    // SHOW TABLES / DROP.
    let tables: Vec<String> = rows(&mut s, "SHOW TABLES")
        .await
        .into_iter()
        .map(|r| r[1].clone())
        .collect();
    assert_eq!(tables, vec!["kv", "nopk", "ser", "t"]);
    ok(&mut s, "DROP TABLE nopk, ser").await;
    assert_eq!(err(&mut s, "DROP TABLE nopk").await, "42P01");
    ok(&mut s, "DROP TABLE IF EXISTS nopk").await;
    assert_eq!(err(&mut s, "SELECT * FROM nopk").await, "42P01");
    ok(&mut s, "TRUNCATE t").await;
    assert!(rows(&mut s, "SELECT * FROM t").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_views_and_dependencies() {
    let (_node, mut s) = session().await;
    ok(
        &mut s,
        "CREATE TABLE p (id INT PRIMARY KEY, code TEXT UNIQUE, other INT)",
    )
    .await;
    assert_eq!(
        err(&mut s, "CREATE TABLE bad (x INT REFERENCES p (other))").await,
        "42830"
    );
    ok(
        &mut s,
        "CREATE TABLE c (id INT PRIMARY KEY, pid INT REFERENCES p ON DELETE CASCADE, code TEXT, CONSTRAINT c_code FOREIGN KEY (code) REFERENCES p (code))",
    )
    .await;
    ok(&mut s, "INSERT INTO p VALUES (1, 'a', 0), (2, 'b', 0)").await;
    ok(&mut s, "INSERT INTO c VALUES (10, 1, 'b'), (11, 2, NULL)").await;
    assert_eq!(
        err(&mut s, "INSERT INTO c VALUES (12, 3, NULL)").await,
        "23503"
    );
    assert_eq!(err(&mut s, "DELETE FROM p WHERE id = 2").await, "23503");
    ok(&mut s, "DELETE FROM p WHERE id = 1").await;
    assert_eq!(rows(&mut s, "SELECT id FROM c").await, strs(&[&["11"]]));
    assert_eq!(err(&mut s, "DROP TABLE p").await, "2BP01");
    ok(
        &mut s,
        "CREATE VIEW v AS SELECT id, pid FROM c WHERE pid > 0",
    )
    .await;
    assert_eq!(rows(&mut s, "SELECT * FROM v").await, strs(&[&["11", "2"]]));
    assert_eq!(err(&mut s, "CREATE VIEW v AS SELECT 1").await, "42P07");
    ok(&mut s, "CREATE OR REPLACE VIEW v AS SELECT id, pid FROM c").await;
    assert_eq!(err(&mut s, "ALTER TABLE c RENAME TO c2").await, "2BP01");
    assert_eq!(err(&mut s, "ALTER TABLE c DROP COLUMN pid").await, "2BP01");
    ok(&mut s, "ALTER TABLE c ADD COLUMN extra INT").await;
    ok(&mut s, "ALTER TABLE c DROP COLUMN extra").await;
    assert_eq!(err(&mut s, "DROP TABLE c").await, "2BP01");
    assert_eq!(err(&mut s, "DROP VIEW c").await, "42809");
    ok(&mut s, "DROP TABLE p CASCADE").await;
    ok(&mut s, "INSERT INTO c VALUES (13, 99, NULL)").await;
    ok(&mut s, "DROP TABLE c CASCADE").await;
    assert_eq!(err(&mut s, "SELECT * FROM v").await, "42P01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table() {
    let (_node, mut s) = session().await;
    ok(&mut s, "CREATE TABLE t (a INT, b TEXT)").await;
    ok(&mut s, "INSERT INTO t VALUES (1, 'x'), (2, 'y')").await;
    ok(&mut s, "ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 5").await;
    assert_eq!(
        rows(&mut s, "SELECT a, b, c FROM t ORDER BY a").await,
        strs(&[&["1", "x", "5"], &["2", "y", "5"]])
    );
    assert_eq!(err(&mut s, "ALTER TABLE t ADD COLUMN c INT").await, "42701");
    assert_eq!(
        err(&mut s, "ALTER TABLE t ADD COLUMN d INT NOT NULL").await,
        "23502"
    );
    ok(&mut s, "ALTER TABLE t ADD COLUMN d INT").await;
    ok(&mut s, "ALTER TABLE t RENAME COLUMN b TO bb").await;
    assert_eq!(err(&mut s, "SELECT b FROM t").await, "42703");
    ok(&mut s, "ALTER TABLE t DROP COLUMN d").await;
    ok(&mut s, "CREATE INDEX t_bb ON t (bb)").await;
    ok(&mut s, "ALTER TABLE t ADD PRIMARY KEY (a)").await;
    assert_eq!(
        rows(&mut s, "SELECT a FROM t WHERE bb = 'y'").await,
        strs(&[&["2"]])
    );
    assert_eq!(
        rows(&mut s, "SELECT bb FROM t WHERE a = 1").await,
        strs(&[&["x"]])
    );
    assert_eq!(
        err(&mut s, "INSERT INTO t (a, bb) VALUES (1, 'dup')").await,
        "23505"
    );
    assert_eq!(
        err(&mut s, "ALTER TABLE t ADD PRIMARY KEY (c)").await,
        "42P16"
    );
    ok(&mut s, "ALTER TABLE t RENAME TO t2").await;
    assert_eq!(
        rows(&mut s, "SELECT * FROM t2 ORDER BY a").await,
        strs(&[&["1", "x", "5"], &["2", "y", "5"]])
    );
    ok(&mut s, "ALTER TABLE t2 ADD CONSTRAINT t2_bb UNIQUE (bb)").await;
    assert_eq!(
        err(&mut s, "INSERT INTO t2 VALUES (3, 'x', 1)").await,
        "23505"
    );
    ok(&mut s, "ALTER TABLE t2 DROP CONSTRAINT t2_bb").await;
    ok(&mut s, "INSERT INTO t2 VALUES (3, 'x', 1)").await;
    assert_eq!(
        err(&mut s, "ALTER TABLE t2 ADD CONSTRAINT pos CHECK (c > 1)").await,
        "23514"
    );
    ok(&mut s, "ALTER TABLE t2 ADD CONSTRAINT pos CHECK (c > 0)").await;
    ok(
        &mut s,
        "CREATE TABLE t3 AS SELECT a, bb AS b FROM t2 WHERE a < 3",
    )
    .await;
    assert_eq!(
        rows(&mut s, "SELECT * FROM t3 ORDER BY a").await,
        strs(&[&["1", "x"], &["2", "y"]])
    );
    // A failed backfill (duplicate values) leaves no constraint behind.
    assert_eq!(
        err(&mut s, "ALTER TABLE t2 ADD CONSTRAINT u UNIQUE (bb)").await,
        "23505"
    );
    ok(&mut s, "INSERT INTO t2 VALUES (4, 'x', 1)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_sequences_and_two_nodes() {
    let db = db();
    let n1 = SqlNode::start(db.clone(), 1).await.expect("node 1");
    let n2 = SqlNode::start(db.clone(), 2).await.expect("node 2");
    let mut s1 = n1.session("root", "defaultdb");
    let mut s2 = n2.session("root", "defaultdb");
    let dbs: Vec<String> = rows(&mut s1, "SHOW DATABASES")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(dbs, vec!["defaultdb", "postgres"]);
    ok(&mut s1, "CREATE DATABASE d").await;
    assert_eq!(err(&mut s2, "CREATE DATABASE d").await, "42P04");
    ok(&mut s2, "CREATE DATABASE IF NOT EXISTS d").await;
    ok(&mut s2, "CREATE TABLE d.t (x INT PRIMARY KEY)").await;
    ok(&mut s1, "INSERT INTO d.t VALUES (1)").await;
    assert_eq!(rows(&mut s2, "SELECT x FROM d.t").await, strs(&[&["1"]]));
    // A schema change on node 1 is seen by the next statement on node 2.
    assert!(rows(&mut s2, "SELECT * FROM d.t").await.len() == 1);
    ok(&mut s1, "ALTER TABLE d.t ADD COLUMN y INT DEFAULT 3").await;
    assert_eq!(
        rows(&mut s2, "SELECT x, y FROM d.t").await,
        strs(&[&["1", "3"]])
    );
    ok(&mut s1, "DROP TABLE d.t").await;
    assert_eq!(err(&mut s2, "SELECT * FROM d.t").await, "42P01");
    ok(&mut s2, "CREATE TABLE d.t2 (x INT)").await;
    // RESTRICT refuses a database that holds tables; without it (as in
    // PostgreSQL, and CockroachDB's default CASCADE) the tables go too.
    assert_eq!(err(&mut s1, "DROP DATABASE d RESTRICT").await, "2BP01");
    ok(&mut s1, "DROP DATABASE d").await;
    assert_eq!(err(&mut s2, "SELECT * FROM d.t2").await, "42P01");
    assert_eq!(err(&mut s1, "DROP DATABASE defaultdb").await, "55006");

    ok(&mut s1, "CREATE SEQUENCE s START 10 INCREMENT 5").await;
    assert_eq!(rows(&mut s2, "SELECT nextval('s')").await, strs(&[&["10"]]));
    assert_eq!(rows(&mut s1, "SELECT nextval('s')").await, strs(&[&["15"]]));
    assert_eq!(err(&mut s1, "SELECT nextval('nope')").await, "42P01");
    ok(&mut s1, "DROP SEQUENCE s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_is_fast() {
    let (_node, mut s) = session().await;
    // Warm up.
    ok(&mut s, "CREATE TABLE w (x INT PRIMARY KEY)").await;
    ok(&mut s, "DROP TABLE w").await;
    let start = Instant::now();
    for i in 0..20 {
        ok(
            &mut s,
            &format!("CREATE TABLE t{i} (a INT PRIMARY KEY, b TEXT, INDEX (b))"),
        )
        .await;
        ok(&mut s, &format!("INSERT INTO t{i} VALUES (1, 'x')")).await;
        ok(&mut s, &format!("DROP TABLE t{i}")).await;
    }
    let per = start.elapsed() / 20;
    eprintln!("CREATE + INSERT + DROP TABLE: {per:?}");
    assert!(per.as_millis() < 200, "DDL took {per:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_at_and_show_ranges() {
    let (_node, mut s) = session().await;
    ok(&mut s, "CREATE TABLE t (a INT PRIMARY KEY)").await;
    let r = rows(&mut s, "SHOW RANGES FROM TABLE t").await;
    assert!(!r.is_empty(), "{r:?}");
    // A single-node store without a cluster sender may refuse splits; either
    // way the statement must not panic and must answer with SQL.
    match run(&mut s, "ALTER TABLE t SPLIT AT VALUES (10), (20)").await {
        Ok(o) => {
            assert_eq!(o.rows.len(), 2);
            let r = rows(&mut s, "SHOW RANGES FROM TABLE t").await;
            assert!(r.len() >= 3, "{r:?}");
        }
        Err(e) => eprintln!("split refused: {e}"),
    }
}

/// Inserts on one node while another node adds an index: every row ends up
/// in the index (DDL and DML serialize through the catalog version).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_dml_and_create_index_on_two_nodes() {
    let db = db();
    let n1 = SqlNode::start(db.clone(), 1).await.expect("node 1");
    let n2 = SqlNode::start(db.clone(), 2).await.expect("node 2");
    let mut s1 = n1.session("root", "defaultdb");
    ok(&mut s1, "CREATE TABLE t (a INT PRIMARY KEY, b INT)").await;
    let writer = tokio::spawn(async move {
        let mut s2 = n2.session("root", "defaultdb");
        for i in 0..150 {
            ok(&mut s2, &format!("INSERT INTO t VALUES ({i}, {})", i * 2)).await;
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    ok(&mut s1, "CREATE INDEX t_b ON t (b)").await;
    ok(&mut s1, "CREATE UNIQUE INDEX t_ab ON t (a, b)").await;
    writer.await.expect("writer");
    let mut txn = db.txn("check");
    let t = n1
        .catalog
        .resolve_table(&mut txn, "defaultdb", None, "t")
        .await
        .expect("resolve")
        .expect("t");
    for index in t.all_indexes() {
        let (s, e) = tardigrade_sql::rowenc::index_span(&t, index.id);
        let n = txn.scan(&s, &e, 0).await.expect("scan").len();
        assert_eq!(n, 150, "index {}", index.name);
    }
    txn.commit().await.expect("commit");
    assert_eq!(
        rows(&mut s1, "SELECT count(*) FROM t WHERE b >= 0").await,
        strs(&[&["150"]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_inside_explicit_transactions() {
    let (node, mut s) = session().await;
    let mut other = node.session("root", "defaultdb");
    ok(&mut s, "BEGIN").await;
    ok(&mut s, "CREATE TABLE x (a INT PRIMARY KEY)").await;
    ok(&mut s, "INSERT INTO x VALUES (1)").await;
    assert_eq!(rows(&mut s, "SELECT a FROM x").await, strs(&[&["1"]]));
    ok(&mut s, "DROP TABLE x").await;
    ok(&mut s, "CREATE TABLE x (a INT PRIMARY KEY, b TEXT)").await;
    ok(&mut s, "INSERT INTO x VALUES (2, 'two')").await;
    ok(&mut s, "COMMIT").await;
    assert_eq!(
        rows(&mut other, "SELECT a, b FROM x").await,
        strs(&[&["2", "two"]])
    );
    // A rolled-back schema change leaves nothing, and the cache forgets it.
    ok(&mut s, "BEGIN").await;
    ok(&mut s, "CREATE TABLE y (a INT)").await;
    ok(&mut s, "ALTER TABLE x ADD COLUMN c INT DEFAULT 1").await;
    assert_eq!(rows(&mut s, "SELECT c FROM x").await, strs(&[&["1"]]));
    ok(&mut s, "ROLLBACK").await;
    assert_eq!(err(&mut other, "SELECT * FROM y").await, "42P01");
    assert_eq!(err(&mut other, "SELECT c FROM x").await, "42703");
    assert_eq!(err(&mut s, "SELECT c FROM x").await, "42703");
}

/// The schema statements of `pgbench -i -I dtgp`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_schema() {
    let (_node, mut s) = session().await;
    ok(
        &mut s,
        "drop table if exists pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers",
    )
    .await;
    ok(&mut s, "create table pgbench_history(tid int,bid int,aid    int,delta int,mtime timestamp,filler char(22))").await;
    ok(&mut s, "create table pgbench_tellers(tid int not null,bid int,tbalance int,filler char(84)) with (fillfactor=100)").await;
    ok(&mut s, "create table pgbench_accounts(aid    int not null,bid int,abalance int,filler char(84)) with (fillfactor=100)").await;
    ok(&mut s, "create table pgbench_branches(bid int not null,bbalance int,filler char(88)) with (fillfactor=100)").await;
    ok(
        &mut s,
        "truncate table pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers",
    )
    .await;
    ok(
        &mut s,
        "insert into pgbench_branches(bid,bbalance) values(1,0)",
    )
    .await;
    for chunk in (1..=2500).collect::<Vec<i32>>().chunks(500) {
        let values: Vec<String> = chunk.iter().map(|a| format!("({a},1,0,'')")).collect();
        ok(
            &mut s,
            &format!(
                "insert into pgbench_accounts(aid,bid,abalance,filler) values {}",
                values.join(",")
            ),
        )
        .await;
    }
    ok(&mut s, "alter table pgbench_branches add primary key (bid)").await;
    ok(&mut s, "alter table pgbench_accounts add primary key (aid)").await;
    assert_eq!(
        rows(
            &mut s,
            "select abalance from pgbench_accounts where aid = 1234"
        )
        .await,
        strs(&[&["0"]])
    );
    ok(
        &mut s,
        "update pgbench_accounts set abalance = abalance + 5 where aid = 1234",
    )
    .await;
    assert_eq!(
        rows(&mut s, "select count(*) from pgbench_accounts").await,
        strs(&[&["2500"]])
    );
    assert_eq!(
        err(&mut s, "insert into pgbench_accounts(aid) values (7)").await,
        "23505"
    );
}

/// Inside a block, statements are described through the block's own
/// transaction: a table the block created or truncated is described at once
/// (a separate transaction would wait on the block's descriptor intents
/// while the block waits for the description).
#[tokio::test]
async fn statements_prepared_inside_a_block_see_its_ddl() {
    let node = tardigrade_sql::SqlNode::start(common::db(), 1)
        .await
        .expect("start sql");
    let mut s = node.session("root", "defaultdb");
    common::ok(&mut s, "CREATE TABLE p (a INT PRIMARY KEY, b TEXT)").await;
    common::ok(&mut s, "BEGIN").await;
    common::ok(&mut s, "TRUNCATE p").await;
    common::ok(&mut s, "CREATE TABLE q (c INT)").await;
    for (sql, columns) in [("SELECT * FROM p", 2), ("SELECT c FROM q", 1)] {
        let prepared =
            tokio::time::timeout(std::time::Duration::from_secs(10), s.prepare(sql, &[]))
                .await
                .unwrap_or_else(|_| panic!("{sql}: describing waited on the block"))
                .expect("prepare");
        assert_eq!(prepared.columns.map(|c| c.len()), Some(columns), "{sql}");
    }
    common::ok(&mut s, "COMMIT").await;
}
