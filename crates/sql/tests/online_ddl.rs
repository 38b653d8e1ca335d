//! Online index builds (`sql::schemachange`): CREATE INDEX, ADD CONSTRAINT
//! UNIQUE and ADD PRIMARY KEY outside explicit transactions run as a
//! write-only index, a chunked backfill and a publishing transaction.
//!
//! Every test checks an index entry by entry against the table: the entries
//! the table's rows should have (`rowenc::encode_index_entry`) must be
//! exactly the KV pairs in the index's span — so a row indexed twice, a
//! missing entry or an entry left by a deleted row all fail. Chunks are made
//! small (`SqlNode::backfill_chunk_rows`) so that a few thousand rows take
//! dozens of chunk transactions.

mod common;

use common::{db, err, ok, run};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tardigrade_kv::Db;
use tardigrade_sql::catalog::{
    ColumnDesc, Descriptor, IndexDesc, IndexState, TableDesc, decode_descriptor, encode_descriptor,
};
use tardigrade_sql::{Session, SqlNode, SqlType, Value};

/// Two gateways over one store, with backfill chunks of `chunk` rows.
async fn two_nodes(chunk: usize) -> (Db, Arc<SqlNode>, Arc<SqlNode>) {
    let db = db();
    let a = SqlNode::start(db.clone(), 1).await.expect("node 1");
    let b = SqlNode::start(db.clone(), 2).await.expect("node 2");
    a.backfill_chunk_rows.store(chunk, Ordering::Relaxed);
    b.backfill_chunk_rows.store(chunk, Ordering::Relaxed);
    (db, a, b)
}

async fn int(s: &mut Session, sql: &str) -> i64 {
    match ok(s, sql).await.rows.first().and_then(|r| r.first()) {
        Some(Value::Int(i)) => *i,
        other => panic!("{sql}: expected an integer, got {other:?}"),
    }
}

/// The committed descriptor of a table.
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

/// The KV pairs of an index's span.
async fn span_pairs(db: &Db, table_id: u32, index_id: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let prefix = tardigrade_encoding::keys::index_prefix(table_id as u64, index_id as u64);
    let end = tardigrade_encoding::keys::prefix_end(&prefix);
    let mut txn = db.txn("test-span");
    let kvs = txn.scan(&prefix, &end, 0).await.expect("scan");
    let _ = txn.rollback().await;
    kvs.into_iter().map(|kv| (kv.key, kv.value.bytes)).collect()
}

/// Asserts that the table has no build left over and that every index of
/// it holds exactly its rows' entries; returns the number of rows.
async fn check_indexes(node: &SqlNode, name: &str) -> usize {
    tardigrade_sql::schemachange::check_settled_table(node, "defaultdb", name)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits until `name` has a write-only index (the build's first transaction
/// committed, the backfill runs).
async fn wait_for_mutation(db: &Db, node: &SqlNode, name: &str) -> Arc<TableDesc> {
    for _ in 0..2000 {
        let t = table(db, node, name).await;
        if !t.mutations.is_empty() {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("no write-only index appeared on {name}");
}

async fn fill(s: &mut Session, table: &str, n: i64, row: impl Fn(i64) -> String) {
    let mut i = 0;
    while i < n {
        let values: Vec<String> = (i..(i + 500).min(n)).map(&row).collect();
        ok(
            s,
            &format!("INSERT INTO {table} VALUES {}", values.join(",")),
        )
        .await;
        i += 500;
    }
}

/// The explain text of a query.
async fn explain(s: &mut Session, sql: &str) -> String {
    ok(s, &format!("EXPLAIN {sql}"))
        .await
        .rows
        .iter()
        .map(|r| r[0].to_text(SqlType::Text))
        .collect::<Vec<_>>()
        .join("\n")
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A format-1 descriptor (written before index states existed) still
/// decodes, all its indexes public; so does a format-2 one (written before
/// comments), without comments; format 3 round-trips a build in progress
/// and comments.
#[test]
fn descriptor_formats() {
    // Table t (a INT8 PRIMARY KEY, b TEXT) with index t_b_idx (b DESC), as
    // the format-1 encoder wrote it.
    let hex = "0154000000680000003200000001740000000200000001000000016104000000000000020000000162090100000000000100000006745f706b6579010000000100000001000000010000000000000000010000000200000007745f625f6964780000000001000000020000000101000000000000000000000000000000000000000000000000010000000300000003000000000000000000";
    let Descriptor::Table(t) = decode_descriptor(&unhex(hex)).expect("format 1 decodes") else {
        panic!("not a table");
    };
    // The same table as the format-2 encoder wrote it.
    let hex2 = "0254000000680000003200000001740000000200000001000000016104000000000000020000000162090100000000000100000006745f706b657901000000010000000100000001000000000000000000010000000200000007745f625f6964780000000001000000020000000101000000000000000000000000000000000000000000000000000100000003000000030000000000000000000000000000000000";
    let Descriptor::Table(t2) = decode_descriptor(&unhex(hex2)).expect("format 2 decodes") else {
        panic!("not a table");
    };
    assert_eq!(t2, t);
    assert!(t2.comment.is_none() && t2.columns.iter().all(|c| c.comment.is_none()));
    // Database defaultdb (id 50) in format 2: its public schema has
    // PostgreSQL's default comment.
    let Descriptor::Database(db) =
        decode_descriptor(&unhex("0244000000320000000964656661756c746462")).expect("database")
    else {
        panic!("not a database");
    };
    assert_eq!(
        db,
        tardigrade_sql::catalog::DatabaseDesc::new(50, "defaultdb")
    );
    assert_eq!(t.name, "t");
    assert_eq!(t.indexes.len(), 1);
    assert_eq!(t.indexes[0].name, "t_b_idx");
    assert_eq!(t.indexes[0].state, IndexState::Public);
    assert_eq!(t.primary_index.state, IndexState::Public);
    assert!(t.mutations.is_empty());
    assert_eq!(t.new_primary, None);

    let mut t2 = t.clone();
    t2.columns.push(ColumnDesc {
        id: 3,
        name: "c".into(),
        ty: SqlType::Int8,
        nullable: true,
        default: None,
        hidden: false,
        comment: Some("a column's".into()),
        generated: Some(tardigrade_sql::catalog::Generated::Stored("a * 2".into())),
    });
    t2.columns.push(ColumnDesc {
        id: 4,
        name: "d".into(),
        ty: SqlType::Time,
        nullable: false,
        default: Some("nextval('t_d_seq')".into()),
        hidden: false,
        comment: None,
        generated: Some(tardigrade_sql::catalog::Generated::IdentityAlways),
    });
    t2.columns.push(ColumnDesc {
        id: 5,
        name: "crdb_internal_idx_pred".into(),
        ty: SqlType::Bool,
        nullable: true,
        default: None,
        hidden: true,
        comment: None,
        generated: Some(tardigrade_sql::catalog::Generated::IndexExpression(
            "a > 0".into(),
        )),
    });
    t2.comment = Some("a table's".into());
    t2.primary_index.constraint_comment = Some("the key's".into());
    t2.mutations.push(IndexDesc {
        id: 3,
        name: "t_c_new".into(),
        unique: true,
        columns: vec![3],
        directions: vec![tardigrade_encoding::Direction::Ascending],
        storing: vec![],
        state: IndexState::WriteOnly,
        comment: Some("an index's".into()),
        constraint_comment: None,
        predicate: Some(5),
    });
    t2.new_primary = Some(3);
    let d = Descriptor::Table(t2.clone());
    let enc = encode_descriptor(&d);
    assert_eq!(enc[0], 6, "format byte");
    assert_eq!(decode_descriptor(&enc).expect("decode"), d);
    // A public index among the mutations is refused, not misread.
    let mut bad = t2;
    bad.mutations[0].state = IndexState::Public;
    assert!(decode_descriptor(&encode_descriptor(&Descriptor::Table(bad))).is_err());
    // Format 5: a sequence's owner (OWNED BY table.column).
    for owned_by in [None, Some((104, 4))] {
        let mut s = TableDesc::new(105, 50, "t_d_seq");
        s.sequence = Some(tardigrade_sql::catalog::SequenceDesc {
            increment: 1,
            start: 1,
            min_value: 1,
            max_value: i64::MAX,
            cycle: false,
            owned_by,
        });
        let d = Descriptor::Table(s);
        assert_eq!(
            decode_descriptor(&encode_descriptor(&d)).expect("decode"),
            d
        );
    }
    let mut db = tardigrade_sql::catalog::DatabaseDesc::new(60, "d");
    db.comment = Some("a database's".into());
    db.public_schema_comment = None;
    let d = Descriptor::Database(db);
    assert_eq!(
        decode_descriptor(&encode_descriptor(&d)).expect("decode"),
        d
    );
}

/// A table of many chunks (several ranges: `crates/server/tests/online_index.rs`,
/// which needs a cluster node to split); while the build runs, the index is
/// write-only: maintained by writes, invisible to SHOW INDEXES and
/// never chosen by the planner.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_index_is_write_only_while_it_backfills() {
    let (db, a, b) = two_nodes(40).await;
    let mut s = a.session("root", "defaultdb");
    ok(&mut s, "CREATE TABLE t (k INT PRIMARY KEY, v INT, w TEXT)").await;
    fill(&mut s, "t", 4000, |i| format!("({i}, {}, 'w{i}')", i % 97)).await;
    let builder = tokio::spawn(async move {
        let mut s = a.session("root", "defaultdb");
        ok(&mut s, "CREATE INDEX t_v_idx ON t (v) STORING (w)").await;
        a
    });
    let t = wait_for_mutation(&db, &b, "t").await;
    assert_eq!(t.mutations[0].name, "t_v_idx");
    assert_eq!(t.mutations[0].state, IndexState::WriteOnly);
    let mut other = b.session("root", "defaultdb");
    // Invisible while write-only…
    let shown = ok(&mut other, "SHOW INDEXES FROM t").await;
    assert!(
        !format!("{:?}", shown.rows).contains("t_v_idx"),
        "write-only index shown: {:?}",
        shown.rows
    );
    let plan = explain(&mut other, "SELECT k FROM t WHERE v = 5").await;
    assert!(
        !plan.contains("t_v_idx"),
        "write-only index planned: {plan}"
    );
    // …and a second index of that name cannot be created meanwhile.
    assert_eq!(
        err(&mut other, "CREATE INDEX t_v_idx ON t (w)").await,
        "42P07"
    );
    // Writes during the build maintain it.
    ok(&mut other, "INSERT INTO t VALUES (5000, 5, 'new')").await;
    ok(&mut other, "UPDATE t SET v = 6 WHERE k = 7").await;
    ok(&mut other, "DELETE FROM t WHERE k = 8").await;
    let a = builder.await.expect("builder");
    assert_eq!(check_indexes(&a, "t").await, 4000);
    let plan = explain(&mut other, "SELECT k FROM t WHERE v = 5").await;
    assert!(plan.contains("t_v_idx"), "public index not planned: {plan}");
    assert_eq!(
        int(&mut other, "SELECT count(*) FROM t WHERE v = 5").await,
        43
    );
}

/// Writers on another gateway insert, update (moving index keys) and delete
/// rows throughout a build; afterwards the index matches the table exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_dml_during_create_index() {
    let (db, a, b) = two_nodes(25).await;
    let mut s = a.session("root", "defaultdb");
    ok(&mut s, "CREATE TABLE t (k INT PRIMARY KEY, v INT, u INT)").await;
    // u is unique: k * 10.
    fill(&mut s, "t", 3000, |i| {
        format!("({i}, {}, {})", i % 13, i * 10)
    })
    .await;
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3i64 {
        let (b, done) = (b.clone(), done.clone());
        writers.push(tokio::spawn(async move {
            let mut s = b.session("root", "defaultdb");
            let mut n = 0i64;
            let mut ops = 0;
            while !done.load(Ordering::SeqCst) || ops < 30 {
                n += 1;
                let k = (n * 37 + w * 1001) % 3000;
                let sql = match n % 4 {
                    0 => format!(
                        "INSERT INTO t VALUES ({}, {}, {}) ON CONFLICT (k) DO NOTHING",
                        10_000 + w * 100_000 + n,
                        n % 13,
                        (10_000 + w * 100_000 + n) * 10
                    ),
                    1 => format!("UPDATE t SET v = v + 1, u = u + 1 WHERE k = {k}"),
                    2 => format!("DELETE FROM t WHERE k = {k}"),
                    _ => format!("UPSERT INTO t VALUES ({k}, 99, {})", k * 10 + 5),
                };
                // Serialization failures the session could not retry, or a
                // unique conflict of the upsert with an update, are fine.
                if let Err(e) = run(&mut s, &sql).await {
                    assert!(e.code == "40001" || e.code == "23505", "{sql}: {e}");
                }
                ops += 1;
            }
            ops
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    ok(&mut s, "CREATE INDEX t_v_idx ON t (v)").await;
    ok(&mut s, "CREATE UNIQUE INDEX t_u_key ON t (u)").await;
    done.store(true, Ordering::SeqCst);
    let mut ops = 0;
    for w in writers {
        ops += w.await.expect("writer");
    }
    let n = check_indexes(&a, "t").await;
    eprintln!("{ops} concurrent writes; {n} rows");
    let mut s2 = b.session("root", "defaultdb");
    let t = table(&db, &b, "t").await;
    assert_eq!(t.indexes.len(), 2);
    assert_eq!(
        err(&mut s2, "INSERT INTO t VALUES (-1, 0, 50)").await,
        "23505"
    );
}

/// A duplicate found in a late chunk fails the build with 23505 and removes
/// the index again, entries and all; the table is as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_violation_rolls_back() {
    let (db, a, _b) = two_nodes(30).await;
    let mut s = a.session("root", "defaultdb");
    ok(&mut s, "CREATE TABLE t (k INT PRIMARY KEY, v INT)").await;
    fill(&mut s, "t", 1000, |i| {
        format!("({i}, {})", if i == 900 { 3 } else { i })
    })
    .await;
    let before = table(&db, &a, "t").await;
    assert_eq!(
        err(&mut s, "CREATE UNIQUE INDEX t_v_key ON t (v)").await,
        "23505"
    );
    let after = table(&db, &a, "t").await;
    assert!(after.mutations.is_empty());
    assert_eq!(after.indexes, before.indexes);
    let attempted = before.next_index_id;
    assert!(span_pairs(&db, after.id, attempted).await.is_empty());
    assert_eq!(
        err(&mut s, "ALTER TABLE t ADD CONSTRAINT t_v_uniq UNIQUE (v)").await,
        "23505"
    );
    assert!(table(&db, &a, "t").await.mutations.is_empty());
    assert!(
        span_pairs(&db, after.id, attempted + 1).await.is_empty(),
        "entries left by the failed ALTER"
    );
    // The table works, and the name is free again.
    ok(&mut s, "INSERT INTO t VALUES (5000, 3)").await;
    ok(&mut s, "CREATE INDEX t_v_key ON t (v)").await;
    assert_eq!(check_indexes(&a, "t").await, 1001);
    // Without the duplicates, the unique constraint builds.
    ok(&mut s, "DELETE FROM t WHERE k IN (900, 5000)").await;
    ok(&mut s, "ALTER TABLE t ADD CONSTRAINT t_v_uniq UNIQUE (v)").await;
    assert_eq!(check_indexes(&a, "t").await, 999);
    assert_eq!(err(&mut s, "INSERT INTO t VALUES (6000, 4)").await, "23505");
}

/// ADD PRIMARY KEY: a NULL or a duplicate in the new key fails (23502,
/// 23505) and leaves the table as it was; without them the new key and the
/// re-keyed secondary index replace the old ones, whose spans are cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_primary_key_online() {
    let (db, a, _b) = two_nodes(35).await;
    let mut s = a.session("root", "defaultdb");
    ok(&mut s, "CREATE TABLE p (id INT, v INT, w TEXT)").await;
    ok(&mut s, "CREATE INDEX p_v_idx ON p (v)").await;
    fill(&mut s, "p", 1200, |i| {
        let id = if i == 1100 {
            "NULL".to_string()
        } else {
            i.to_string()
        };
        format!("({id}, {}, 'x{i}')", i % 7)
    })
    .await;
    let before = table(&db, &a, "p").await;
    assert!(before.has_implicit_pk());
    assert_eq!(
        err(&mut s, "ALTER TABLE p ADD PRIMARY KEY (id)").await,
        "23502"
    );
    let t = table(&db, &a, "p").await;
    assert_eq!(t.primary_index, before.primary_index);
    assert_eq!(t.indexes, before.indexes);
    assert_eq!(t.columns, before.columns);
    assert!(t.mutations.is_empty() && t.new_primary.is_none());
    for id in before.next_index_id..t.next_index_id {
        assert!(
            span_pairs(&db, t.id, id).await.is_empty(),
            "index {id} left"
        );
    }
    assert_eq!(check_indexes(&a, "p").await, 1200);
    // A duplicate in a late chunk.
    ok(&mut s, "UPDATE p SET id = 5 WHERE id IS NULL").await;
    assert_eq!(
        err(&mut s, "ALTER TABLE p ADD PRIMARY KEY (id)").await,
        "23505"
    );
    let t = table(&db, &a, "p").await;
    assert!(t.has_implicit_pk() && t.mutations.is_empty());
    for id in before.next_index_id..t.next_index_id {
        assert!(
            span_pairs(&db, t.id, id).await.is_empty(),
            "index {id} left"
        );
    }
    ok(&mut s, "INSERT INTO p VALUES (5, 1, 'dup')").await;
    assert_eq!(int(&mut s, "SELECT count(*) FROM p WHERE id = 5").await, 3);
    // Without them.
    ok(&mut s, "DELETE FROM p WHERE id = 5 AND w <> 'x5'").await;
    ok(&mut s, "ALTER TABLE p ADD PRIMARY KEY (id)").await;
    let t = table(&db, &a, "p").await;
    assert!(!t.has_implicit_pk());
    assert_ne!(t.primary_index.id, before.primary_index.id);
    assert!(
        !t.column_by_name("id").expect("id").nullable,
        "the key column is NOT NULL"
    );
    assert_eq!(check_indexes(&a, "p").await, 1199);
    // The old indexes are cleared in the background.
    for index in before.all_indexes() {
        let mut cleared = false;
        for _ in 0..2000 {
            if span_pairs(&db, t.id, index.id).await.is_empty() {
                cleared = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(cleared, "old index {} not cleared", index.name);
    }
    assert_eq!(
        err(&mut s, "INSERT INTO p VALUES (7, 0, 'again')").await,
        "23505"
    );
    assert_eq!(err(&mut s, "INSERT INTO p (v) VALUES (0)").await, "23502");
    let plan = explain(&mut s, "SELECT w FROM p WHERE id = 77").await;
    assert!(plan.contains("p_pkey"), "{plan}");
    assert_eq!(int(&mut s, "SELECT count(*) FROM p WHERE v = 3").await, 171);
    assert_eq!(
        err(&mut s, "ALTER TABLE p ADD PRIMARY KEY (v)").await,
        "42P16"
    );
}

/// Writes during an ADD PRIMARY KEY maintain both the old and the new
/// indexes. The writer keeps a model of the table (one writer: every
/// statement that succeeded applied, every one that failed did not), and the
/// table read through its new primary key must equal it — the new indexes
/// are checked against each other by `check_indexes`, the new primary index
/// against the model.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_dml_during_add_primary_key() {
    let (db, a, b) = two_nodes(25).await;
    let mut s = a.session("root", "defaultdb");
    ok(&mut s, "CREATE TABLE p (id INT NOT NULL, v INT)").await;
    ok(&mut s, "CREATE INDEX p_v_idx ON p (v)").await;
    fill(&mut s, "p", 2500, |i| format!("({i}, {})", i % 11)).await;
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (b, done) = (b.clone(), done.clone());
        tokio::spawn(async move {
            let mut model: BTreeMap<i64, i64> = (0..2500).map(|i| (i, i % 11)).collect();
            let mut s = b.session("root", "defaultdb");
            let mut n = 0i64;
            while !done.load(Ordering::SeqCst) || n < 40 {
                n += 1;
                let k = (n * 53) % 2500;
                let sql = match n % 3 {
                    0 => format!("INSERT INTO p VALUES ({}, {})", 100_000 + n, n % 11),
                    1 => format!("UPDATE p SET v = v + 100 WHERE id = {k}"),
                    _ => format!("DELETE FROM p WHERE id = {k}"),
                };
                match run(&mut s, &sql).await {
                    Ok(_) => match n % 3 {
                        0 => {
                            model.insert(100_000 + n, n % 11);
                        }
                        1 => {
                            if let Some(v) = model.get_mut(&k) {
                                *v += 100;
                            }
                        }
                        _ => {
                            model.remove(&k);
                        }
                    },
                    Err(e) => assert_eq!(e.code, "40001", "{sql}: {e}"),
                }
            }
            (n, model)
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    ok(&mut s, "ALTER TABLE p ADD PRIMARY KEY (id)").await;
    done.store(true, Ordering::SeqCst);
    let (n, model) = writer.await.expect("writer");
    let rows = check_indexes(&a, "p").await;
    eprintln!("{n} concurrent writes; {rows} rows");
    assert!(!table(&db, &a, "p").await.has_implicit_pk());
    let have: BTreeMap<i64, i64> = ok(&mut s, "SELECT id, v FROM p")
        .await
        .rows
        .iter()
        .map(|r| match (&r[0], &r[1]) {
            (Value::Int(k), Value::Int(v)) => (*k, *v),
            other => panic!("unexpected row {other:?}"),
        })
        .collect();
    assert_eq!(have.len(), model.len());
    assert!(have == model, "the table differs from the writer's model");
}

/// A build whose statement is dropped (a cancel request, a vanished client)
/// stops between chunks and is rolled back; a concurrent DROP INDEX of the
/// write-only index stops the build with an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_and_concurrent_drop_stop_the_build() {
    let (db, a, b) = two_nodes(10).await;
    let mut s = a.session("root", "defaultdb");
    ok(&mut s, "CREATE TABLE t (k INT PRIMARY KEY, v INT)").await;
    fill(&mut s, "t", 3000, |i| format!("({i}, {})", i % 5)).await;
    let before = table(&db, &a, "t").await;

    let a2 = a.clone();
    let build = tokio::spawn(async move {
        let mut s = a2.session("root", "defaultdb");
        run(&mut s, "CREATE INDEX t_v_idx ON t (v)").await
    });
    let t = wait_for_mutation(&db, &b, "t").await;
    let building = t.mutations[0].id;
    build.abort();
    let _ = build.await;
    let mut rolled_back = false;
    for _ in 0..2000 {
        if table(&db, &b, "t").await.mutations.is_empty() {
            rolled_back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(rolled_back, "the cancelled build was not rolled back");
    // The rollback clears the span after removing the mutation.
    let mut cleared = false;
    for _ in 0..2000 {
        if span_pairs(&db, t.id, building).await.is_empty() {
            cleared = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(cleared, "entries of the cancelled build left behind");
    assert_eq!(table(&db, &a, "t").await.indexes, before.indexes);

    // DROP INDEX of the write-only index while it is being built.
    let a2 = a.clone();
    let build = tokio::spawn(async move {
        let mut s = a2.session("root", "defaultdb");
        run(&mut s, "CREATE INDEX t_v_idx ON t (v)").await
    });
    let t = wait_for_mutation(&db, &b, "t").await;
    let mut other = b.session("root", "defaultdb");
    ok(&mut other, "DROP INDEX t@t_v_idx").await;
    let e = build
        .await
        .expect("build task")
        .expect_err("the build must fail");
    assert_eq!(e.code, "42704", "{e}");
    let after = table(&db, &a, "t").await;
    assert!(after.mutations.is_empty());
    assert!(span_pairs(&db, t.id, t.mutations[0].id).await.is_empty());
    assert_eq!(check_indexes(&a, "t").await, 3000);
}

/// Inside BEGIN … COMMIT the build stays in the user's transaction: the
/// index is public at once, and a rollback leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_transactions_build_in_place() {
    let (db, a, _b) = two_nodes(10).await;
    let mut s = a.session("root", "defaultdb");
    ok(&mut s, "CREATE TABLE t (k INT PRIMARY KEY, v INT)").await;
    fill(&mut s, "t", 200, |i| format!("({i}, {})", i % 5)).await;
    ok(&mut s, "BEGIN").await;
    ok(&mut s, "CREATE INDEX t_v_idx ON t (v)").await;
    let plan = explain(&mut s, "SELECT k FROM t WHERE v = 1").await;
    assert!(plan.contains("t_v_idx"), "{plan}");
    ok(&mut s, "ROLLBACK").await;
    let t = table(&db, &a, "t").await;
    assert!(t.indexes.is_empty() && t.mutations.is_empty());
    assert!(span_pairs(&db, t.id, t.next_index_id).await.is_empty());
    ok(&mut s, "BEGIN").await;
    ok(&mut s, "CREATE TABLE u (a INT, b INT)").await;
    ok(&mut s, "INSERT INTO u VALUES (1, 2), (3, 4)").await;
    ok(&mut s, "CREATE UNIQUE INDEX u_b_key ON u (b)").await;
    ok(&mut s, "ALTER TABLE u ADD PRIMARY KEY (a)").await;
    ok(&mut s, "COMMIT").await;
    assert_eq!(check_indexes(&a, "u").await, 2);
    assert_eq!(check_indexes(&a, "t").await, 200);
}
