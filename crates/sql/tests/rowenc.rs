//! Catalog and row encoding against a real single-node store: descriptors,
//! names, the per-node cache across two catalogs, index entries, scans,
//! uniqueness, NOT NULL and foreign keys.

mod common;

use common::db;

use std::sync::Arc;

use tardigrade_encoding::{Direction, keys};
use tardigrade_kv::Txn;
use tardigrade_sql::catalog::{
    Catalog, ColumnDesc, DEFAULTDB_ID, ForeignKeyDesc, IndexDesc, IndexState, ReferentialAction,
    TableDesc,
};
use tardigrade_sql::rowenc::{self, RowScanner};
use tardigrade_sqltypes::{SqlResult, SqlType, Value};

fn col(id: u32, name: &str, ty: SqlType, nullable: bool) -> ColumnDesc {
    ColumnDesc {
        id,
        name: name.into(),
        ty,
        nullable,
        default: None,
        hidden: false,
        comment: None,
        generated: None,
    }
}

/// t(a INT PRIMARY KEY, b TEXT, c INT NOT NULL, UNIQUE INDEX t_b_key (b), INDEX t_c_idx (c DESC) STORING (b))
async fn create_t(cat: &Catalog, txn: &mut Txn) -> SqlResult<TableDesc> {
    let id = cat.allocate_id().await?;
    let mut t = TableDesc::new(id, DEFAULTDB_ID, "t");
    t.columns = vec![
        col(1, "a", SqlType::Int8, false),
        col(2, "b", SqlType::Text, true),
        col(3, "c", SqlType::Int8, false),
    ];
    t.next_column_id = 4;
    t.primary_index.columns = vec![1];
    t.primary_index.directions = vec![Direction::Ascending];
    t.indexes = vec![
        IndexDesc {
            id: 2,
            name: "t_b_key".into(),
            unique: true,
            columns: vec![2],
            directions: vec![Direction::Ascending],
            storing: vec![],
            state: IndexState::Public,
            comment: None,
            constraint_comment: None,
            predicate: None,
        },
        IndexDesc {
            id: 3,
            name: "t_c_idx".into(),
            unique: false,
            columns: vec![3],
            directions: vec![Direction::Descending],
            storing: vec![2],
            state: IndexState::Public,
            comment: None,
            constraint_comment: None,
            predicate: None,
        },
    ];
    t.next_index_id = 4;
    cat.create_table(txn, &t).await?;
    Ok(t)
}

fn row(a: i64, b: Option<&str>, c: i64) -> Vec<Value> {
    vec![
        Value::Int(a),
        b.map_or(Value::Null, |s| Value::Text(s.into())),
        Value::Int(c),
    ]
}

fn ints(rows: &[Vec<Value>], i: usize) -> Vec<i64> {
    rows.iter()
        .map(|r| match r[i] {
            Value::Int(v) => v,
            _ => -1,
        })
        .collect()
}

async fn scan_all(
    txn: &mut Txn,
    t: &Arc<TableDesc>,
    index: u32,
    reverse: bool,
    page: usize,
) -> Vec<Vec<Value>> {
    let span = rowenc::index_span(t, index);
    let mut s = RowScanner::new(t.clone(), index, vec![span], reverse);
    let mut out = Vec::new();
    while let Some(batch) = s.next_batch(txn, page).await.expect("scan") {
        assert!(batch.len() <= page);
        out.extend(batch);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_indexes_and_constraints() {
    let db = db();
    let cat = Catalog::new(db.clone());
    cat.ensure_bootstrapped().await.expect("bootstrap");
    cat.ensure_bootstrapped()
        .await
        .expect("bootstrap is idempotent");

    let mut txn = db.txn("ddl");
    let _t = create_t(&cat, &mut txn).await.expect("create");
    txn.commit().await.expect("commit");

    let mut txn = db.txn("dml");
    let t = cat
        .resolve_table(&mut txn, "defaultdb", None, "t")
        .await
        .expect("resolve")
        .expect("t exists");
    assert_eq!(t.columns.len(), 3);
    let rows: Vec<Vec<Value>> = (1..=25)
        .map(|i| {
            row(
                i,
                if i % 5 == 0 {
                    None
                } else {
                    Some(&*Box::leak(format!("b{i:02}").into_boxed_str()))
                },
                100 - i,
            )
        })
        .collect();
    rowenc::insert_rows(&mut txn, &cat, &t, &rows, false)
        .await
        .expect("insert");
    // Primary index, paged forward and reverse.
    let all = scan_all(&mut txn, &t, 1, false, 7).await;
    assert_eq!(ints(&all, 0), (1..=25).collect::<Vec<_>>());
    assert_eq!(all[4][1], Value::Null);
    let rev = scan_all(&mut txn, &t, 1, true, 4).await;
    assert_eq!(ints(&rev, 0), (1..=25).rev().collect::<Vec<_>>());
    // c DESC index: ascending key order is descending c; covers a, b, c.
    let by_c = scan_all(&mut txn, &t, 3, false, 10).await;
    assert_eq!(ints(&by_c, 2), (75..=99).rev().collect::<Vec<_>>());
    assert_eq!(ints(&by_c, 0), (1..=25).collect::<Vec<_>>());
    assert!(matches!(&by_c[0][1], Value::Text(s) if s == "b01"));
    // Unique index on b: NULLs sort first and do not conflict; a is recovered.
    let by_b = scan_all(&mut txn, &t, 2, false, 100).await;
    assert_eq!(by_b.len(), 25);
    assert_eq!(by_b[0][1], Value::Null);
    assert_eq!(by_b[0][2], Value::Null, "c is not covered by t_b_key");
    assert_eq!(rowenc::index_covers(&t, 2), vec![2, 1]);
    // Point span through index_key_prefix.
    let k = rowenc::index_key_prefix(&t, 2, &[Value::Text("b07".into())]).expect("prefix");
    let mut s = RowScanner::new(t.clone(), 2, vec![(k, Vec::new())], false);
    let got = s
        .next_batch(&mut txn, 10)
        .await
        .expect("scan")
        .expect("a row");
    assert_eq!(ints(&got, 0), vec![7]);
    // A type mismatch is 42804, not a panic.
    let e = rowenc::index_key_prefix(&t, 2, &[Value::Bool(true)]).unwrap_err();
    assert_eq!(e.code, "42804");

    txn.commit().await.expect("commit");

    // Duplicate primary key.
    let mut txn = db.txn("dup");
    let e = rowenc::insert_rows(&mut txn, &cat, &t, &[row(3, Some("zz"), 1)], false)
        .await
        .unwrap_err();
    assert_eq!(e.code, "23505", "{e:?}");
    assert_eq!(
        e.message,
        "duplicate key value violates unique constraint \"t_pkey\""
    );
    assert_eq!(e.detail.as_deref(), Some("Key (a)=(3) already exists."));
    txn.rollback().await.expect("rollback");

    let mut txn = db.txn("dml2");
    // Duplicate unique value (in the store, then inside one batch).
    let e = rowenc::insert_rows(&mut txn, &cat, &t, &[row(1000, Some("b02"), 1)], false)
        .await
        .unwrap_err();
    assert_eq!(e.code, "23505");
    assert_eq!(e.detail.as_deref(), Some("Key (b)=(b02) already exists."));
    txn.rollback().await.expect("rollback");
    let mut txn = db.txn("dml3");
    let e = rowenc::insert_rows(
        &mut txn,
        &cat,
        &t,
        &[row(1001, Some("x"), 1), row(1002, Some("x"), 1)],
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "23505");
    // NOT NULL.
    let e = rowenc::insert_rows(
        &mut txn,
        &cat,
        &t,
        &[vec![Value::Int(5000), Value::Null, Value::Null]],
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "23502");
    assert_eq!(
        e.message,
        "null value in column \"c\" of relation \"t\" violates not-null constraint"
    );
    txn.rollback().await.expect("rollback");

    // Update: change b and c of row 1; move row 2 to pk 200; swap unique values.
    let mut txn = db.txn("upd");
    let old = rowenc::get_rows_by_pk(
        &mut txn,
        &t,
        &[
            vec![Value::Int(1)],
            vec![Value::Int(2)],
            vec![Value::Int(999)],
        ],
    )
    .await
    .expect("get");
    assert!(old[2].is_none());
    let o1 = old[0].clone().expect("row 1");
    let o2 = old[1].clone().expect("row 2");
    rowenc::update_rows(
        &mut txn,
        &cat,
        &t,
        &[
            (o1.clone(), row(1, Some("b02"), 5)),
            (o2.clone(), row(200, Some("b01"), 99)),
        ],
    )
    .await
    .expect("update swapping unique values");
    let all = scan_all(&mut txn, &t, 1, false, 100).await;
    assert_eq!(all.len(), 25);
    assert_eq!(ints(&all, 0).last(), Some(&200));
    let by_c = scan_all(&mut txn, &t, 3, false, 100).await;
    assert_eq!(by_c.len(), 25, "old index entries removed");
    assert_eq!(ints(&by_c, 2).last(), Some(&5));
    // Upsert: overwrite row 3 (changing b), insert row 300.
    rowenc::insert_rows(
        &mut txn,
        &cat,
        &t,
        &[row(3, Some("new3"), 3), row(300, None, 300)],
        true,
    )
    .await
    .expect("upsert");
    let by_b = scan_all(&mut txn, &t, 2, false, 100).await;
    assert_eq!(by_b.len(), 26);
    assert!(by_b.iter().all(|r| r[1] != Value::Text("b03".into())));
    // Delete removes every entry.
    let victims =
        rowenc::get_rows_by_pk(&mut txn, &t, &[vec![Value::Int(3)], vec![Value::Int(300)]])
            .await
            .expect("get");
    let victims: Vec<_> = victims.into_iter().flatten().collect();
    rowenc::delete_rows(&mut txn, &cat, &t, &victims)
        .await
        .expect("delete");
    txn.commit().await.expect("commit");
    let (s, e) = rowenc::table_span(&t);
    let kvs = db.scan(&s, &e, 0).await.expect("scan");
    assert_eq!(kvs.len(), 24 * 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_restrict_cascade_set_null() {
    let db = db();
    let cat = Catalog::new(db.clone());
    cat.ensure_bootstrapped().await.expect("bootstrap");
    let mut txn = db.txn("ddl");
    let pid = cat.allocate_id().await.expect("id");
    let cid = cat.allocate_id().await.expect("id");
    let mut p = TableDesc::new(pid, DEFAULTDB_ID, "p");
    p.columns = vec![col(1, "id", SqlType::Int8, false)];
    p.primary_index.columns = vec![1];
    p.primary_index.directions = vec![Direction::Ascending];
    p.next_column_id = 2;
    p.referenced_by = vec![(cid, "c_pid_fkey".into()), (cid, "c_qid_fkey".into())];
    let mut c = TableDesc::new(cid, DEFAULTDB_ID, "c");
    c.columns = vec![
        col(1, "id", SqlType::Int8, false),
        col(2, "pid", SqlType::Int8, true),
        col(3, "qid", SqlType::Int8, true),
    ];
    c.primary_index.columns = vec![1];
    c.primary_index.directions = vec![Direction::Ascending];
    for (i, (name, colid)) in [("c_pid_idx", 2), ("c_qid_idx", 3)].into_iter().enumerate() {
        c.indexes.push(IndexDesc {
            id: 2 + i as u32,
            name: name.into(),
            unique: false,
            columns: vec![colid],
            directions: vec![Direction::Ascending],
            storing: vec![],
            state: IndexState::Public,
            comment: None,
            constraint_comment: None,
            predicate: None,
        });
    }
    c.foreign_keys = vec![
        ForeignKeyDesc {
            name: "c_pid_fkey".into(),
            columns: vec![2],
            referenced_table: pid,
            referenced_columns: vec![1],
            on_delete: ReferentialAction::Cascade,
            on_update: ReferentialAction::Cascade,
            comment: None,
        },
        ForeignKeyDesc {
            name: "c_qid_fkey".into(),
            columns: vec![3],
            referenced_table: pid,
            referenced_columns: vec![1],
            on_delete: ReferentialAction::SetNull,
            on_update: ReferentialAction::Restrict,
            comment: None,
        },
    ];
    cat.create_table(&mut txn, &p).await.expect("p");
    cat.create_table(&mut txn, &c).await.expect("c");
    txn.commit().await.expect("commit");

    let mut txn = db.txn("dml");
    let p = cat.table_by_id(&mut txn, pid).await.expect("p");
    let c = cat.table_by_id(&mut txn, cid).await.expect("c");
    let ps: Vec<Vec<Value>> = (1..=3).map(|i| vec![Value::Int(i)]).collect();
    rowenc::insert_rows(&mut txn, &cat, &p, &ps, false)
        .await
        .expect("parents");
    let cs = vec![
        vec![Value::Int(10), Value::Int(1), Value::Int(2)],
        vec![Value::Int(11), Value::Int(1), Value::Null],
        vec![Value::Int(12), Value::Int(3), Value::Int(3)],
    ];
    rowenc::insert_rows(&mut txn, &cat, &c, &cs, false)
        .await
        .expect("children");
    txn.commit().await.expect("commit");
    let mut txn = db.txn("bad child");
    let e = rowenc::insert_rows(
        &mut txn,
        &cat,
        &c,
        &[vec![Value::Int(13), Value::Int(9), Value::Null]],
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "23503");
    assert_eq!(
        e.message,
        "insert or update on table \"c\" violates foreign key constraint \"c_pid_fkey\""
    );
    assert_eq!(
        e.detail.as_deref(),
        Some("Key (pid)=(9) is not present in table \"p\".")
    );
    txn.rollback().await.expect("rollback");

    let mut txn = db.txn("dml2");
    // Updating p.id = 2 is restricted by c_qid_fkey (row 10 references it).
    let e = rowenc::update_rows(
        &mut txn,
        &cat,
        &p,
        &[(vec![Value::Int(2)], vec![Value::Int(20)])],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "23503");
    assert_eq!(
        e.message,
        "update or delete on table \"p\" violates foreign key constraint \"c_qid_fkey\" on table \"c\""
    );
    txn.rollback().await.expect("rollback");

    let mut txn = db.txn("dml3");
    // Deleting p 1 cascades to rows 10 and 11; deleting p 3 cascades to 12;
    // deleting p 2 sets row 10's qid to NULL (row 10 is gone by then anyway).
    rowenc::delete_rows(&mut txn, &cat, &p, &[vec![Value::Int(1)]])
        .await
        .expect("cascade");
    let left = scan_all(&mut txn, &c, 1, false, 100).await;
    assert_eq!(ints(&left, 0), vec![12]);
    // Update p 3 → 30 cascades into c.pid but qid (Restrict) blocks it.
    let e = rowenc::update_rows(
        &mut txn,
        &cat,
        &p,
        &[(vec![Value::Int(3)], vec![Value::Int(30)])],
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "23503");
    txn.rollback().await.expect("rollback");

    let mut txn = db.txn("dml4");
    rowenc::delete_rows(&mut txn, &cat, &p, &[vec![Value::Int(2)]])
        .await
        .expect("set null");
    let got = rowenc::get_rows_by_pk(&mut txn, &c, &[vec![Value::Int(10)]])
        .await
        .expect("get");
    assert_eq!(got[0].as_ref().map(|r| r[2].clone()), Some(Value::Null));
    txn.commit().await.expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_see_each_others_ddl() {
    let db = db();
    let a = Catalog::new(db.clone());
    let b = Catalog::new(db.clone());
    a.ensure_bootstrapped().await.expect("bootstrap a");
    b.ensure_bootstrapped().await.expect("bootstrap b");
    // b caches the miss.
    let mut txn = db.txn("b1");
    assert!(
        b.resolve_table(&mut txn, "defaultdb", None, "t")
            .await
            .expect("resolve")
            .is_none()
    );
    txn.commit().await.expect("commit");
    let mut txn = db.txn("a");
    create_t(&a, &mut txn).await.expect("create");
    txn.commit().await.expect("commit");
    let mut txn = db.txn("b2");
    let t = b
        .resolve_table(&mut txn, "defaultdb", Some("public"), "t")
        .await
        .expect("resolve")
        .expect("b sees the new table");
    assert_eq!(t.indexes.len(), 2);
    let e = b
        .resolve_table(&mut txn, "nodb", None, "t")
        .await
        .unwrap_err();
    assert_eq!(e.code, "3D000");
    assert!(
        b.resolve_table(&mut txn, "defaultdb", Some("pg_catalog"), "t")
            .await
            .expect("ok")
            .is_none()
    );
    let names: Vec<String> = b
        .list_tables(&mut txn, "defaultdb")
        .await
        .expect("list")
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert_eq!(names, vec!["t"]);
    txn.commit().await.expect("commit");
    // Drop on a; b stops seeing it. The data stays: the catalog removes only
    // the name and the descriptor (clearing the data after the commit is
    // `sql::gc`'s job, tested in tests/gc.rs).
    let mut txn = db.txn("a2");
    let t = a
        .resolve_table(&mut txn, "defaultdb", None, "t")
        .await
        .expect("r")
        .expect("t");
    rowenc::insert_rows(&mut txn, &a, &t, &[row(1, None, 1)], false)
        .await
        .expect("insert");
    a.delete_table(&mut txn, &t).await.expect("drop");
    txn.commit().await.expect("commit");
    let mut txn = db.txn("b3");
    assert!(
        b.resolve_table(&mut txn, "defaultdb", None, "t")
            .await
            .expect("resolve")
            .is_none()
    );
    txn.commit().await.expect("commit");
    let p = keys::table_prefix(t.id as u64);
    assert!(
        !db.scan(&p, &keys::prefix_end(&p), 0)
            .await
            .expect("scan")
            .is_empty()
    );
}

#[test]
fn unique_rowid_increases() {
    let mut last = 0;
    for _ in 0..1000 {
        let v = rowenc::unique_rowid(3);
        assert!(v > last);
        assert_eq!(v & 0x7fff, 3);
        last = v;
    }
}

/// Every type round-trips as a key column (both directions) and as a value.
#[test]
fn every_type_round_trips() {
    use tardigrade_sql::catalog::TableDesc;
    use tardigrade_sqltypes::value::Interval;
    let values: Vec<(SqlType, Value)> = vec![
        (SqlType::Bool, Value::Bool(true)),
        (SqlType::Int2, Value::Int(-7)),
        (SqlType::Int8, Value::Int(i64::MIN)),
        (SqlType::Float8, Value::Float(-0.25)),
        (
            SqlType::Decimal(None),
            Value::Decimal("12.340".parse().expect("decimal")),
        ),
        (SqlType::Text, Value::Text("a\0b".into())),
        (SqlType::Bytes, Value::Bytes(vec![0, 255, 1])),
        (SqlType::Date, Value::Date(-3)),
        (SqlType::Timestamp, Value::Timestamp(1_700_000_000_000_000)),
        (SqlType::TimestampTz, Value::TimestampTz(-5)),
        (
            SqlType::Interval,
            Value::Interval(Interval {
                months: 2,
                days: -3,
                micros: 99,
            }),
        ),
        (
            SqlType::Uuid,
            Value::Uuid(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        ),
    ];
    for dir in [Direction::Ascending, Direction::Descending] {
        for (ty, v) in &values {
            let mut t = TableDesc::new(200, DEFAULTDB_ID, "types");
            t.columns = vec![col(1, "k", *ty, false), col(2, "v", *ty, true)];
            t.primary_index.columns = vec![1];
            t.primary_index.directions = vec![dir];
            let (key, value) =
                rowenc::encode_index_entry(&t, &t.primary_index, &[v.clone(), v.clone()])
                    .expect("entry");
            let kv = tardigrade_kvpb::KeyValue {
                key,
                value: tardigrade_kvpb::Value {
                    bytes: value,
                    timestamp: Default::default(),
                },
            };
            let row = rowenc::decode_index_entry(&t, &t.primary_index, &kv).expect("decode");
            assert_eq!(
                format!("{:?}", row[0]),
                format!("{v:?}"),
                "{ty} key {dir:?}"
            );
            assert_eq!(format!("{:?}", row[1]), format!("{v:?}"), "{ty} value");
        }
    }
    // JSONB and arrays are storable but not indexable; a truncated value is an
    // error, not a panic.
    let storable_only = |id: u32, ty: SqlType, v: &Value| {
        let mut t = TableDesc::new(id, DEFAULTDB_ID, "s");
        t.columns = vec![col(1, "k", ty, false)];
        t.primary_index.columns = vec![1];
        t.primary_index.directions = vec![Direction::Ascending];
        let err = rowenc::primary_key(&t, std::slice::from_ref(v)).unwrap_err();
        assert_eq!(err.code, "0A000", "{ty}");
        let bytes = rowenc::encode_row_value(&t, &[1], std::slice::from_ref(v)).expect("value");
        let mut row = vec![Value::Null];
        rowenc::decode_row_value(&t, &bytes, &mut row).expect("decode");
        assert_eq!(format!("{:?}", row[0]), format!("{v:?}"), "{ty}");
        for n in 0..bytes.len() {
            let _ = rowenc::decode_row_value(&t, &bytes[..n], &mut row);
        }
        t
    };
    let j = Value::Jsonb(Box::new(serde_json::json!({"a": [1, 2]})));
    storable_only(201, SqlType::Jsonb, &j);
    // A row of every type: decoding only some columns skips the others
    // (left NULL) and still finds every column after them.
    let mut every: Vec<(SqlType, Value)> = values.clone();
    every.push((SqlType::Jsonb, j.clone()));
    every.push((
        SqlType::array_of(SqlType::Int8),
        Value::Array(vec![Value::Int(1), Value::Null]),
    ));
    let mut t = TableDesc::new(204, DEFAULTDB_ID, "wide");
    t.columns = every
        .iter()
        .enumerate()
        .map(|(i, (ty, _))| col(i as u32 + 1, &format!("c{i}"), *ty, true))
        .collect();
    let ids: Vec<u32> = (1..=every.len() as u32).collect();
    let row: Vec<Value> = every.iter().map(|(_, v)| v.clone()).collect();
    let bytes = rowenc::encode_row_value(&t, &ids, &row).expect("value");
    for stride in 1..=3 {
        let reads: Vec<bool> = (0..every.len()).map(|i| i % stride == 0).collect();
        let mut got = vec![Value::Null; every.len()];
        rowenc::decode_row_value_reading(&t, &bytes, &mut got, Some(&reads)).expect("decode");
        for (i, v) in got.iter().enumerate() {
            let want = if reads[i] {
                row[i].clone()
            } else {
                Value::Null
            };
            assert_eq!(
                format!("{v:?}"),
                format!("{want:?}"),
                "column {i}, stride {stride}"
            );
        }
        for n in 0..bytes.len() {
            let _ = rowenc::decode_row_value_reading(&t, &bytes[..n], &mut got, Some(&reads));
        }
    }
    // Arrays of every element type, with NULL elements; the empty array.
    let at = SqlType::array_of(SqlType::Text);
    let mut elems: Vec<Value> = values.iter().map(|(_, v)| v.clone()).collect();
    elems.push(Value::Null);
    storable_only(203, at, &Value::Array(Vec::new()));
    let t = storable_only(203, at, &Value::Array(elems));
    let nested = Value::Array(vec![Value::Array(vec![])]);
    assert!(rowenc::encode_row_value(&t, &[1], std::slice::from_ref(&nested)).is_err());
    // Descending keys sort in reverse.
    let mut t = TableDesc::new(202, DEFAULTDB_ID, "d");
    t.columns = vec![col(1, "k", SqlType::Int8, false)];
    t.primary_index.columns = vec![1];
    t.primary_index.directions = vec![Direction::Descending];
    let k1 = rowenc::primary_key(&t, &[Value::Int(1)]).expect("k1");
    let k2 = rowenc::primary_key(&t, &[Value::Int(2)]).expect("k2");
    assert!(k2 < k1);
}
