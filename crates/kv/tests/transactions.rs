//! Transactions against a real single-node store: visibility, isolation
//! anomalies that SERIALIZABLE must prevent, deadlocks and abandoned
//! transactions.

use std::sync::Arc;
use std::time::Duration;

use tardigrade_hlc::{DEFAULT_MAX_OFFSET, Hlc, ManualClock, SystemClock};
use tardigrade_kv::{Db, Txn};
use tardigrade_kvpb::KvError;
use tardigrade_kvserver::{Store, StoreConfig};
use tardigrade_storage::{Engine, StoreSpec};

fn db_with_clock(clock: Arc<Hlc>) -> Db {
    let engine = Engine::open(&StoreSpec::Memory).expect("open engine");
    let store = Store::open(engine, clock.clone(), StoreConfig::default()).expect("open store");
    Db::new(store, clock)
}

/// A database and the engine under it, to look at what it stored.
fn db_and_engine() -> (Db, Engine) {
    let clock = Arc::new(Hlc::new(Arc::new(SystemClock), DEFAULT_MAX_OFFSET));
    let engine = Engine::open(&StoreSpec::Memory).expect("open engine");
    let store = Store::open(engine.clone(), clock.clone(), StoreConfig::default()).expect("store");
    (Db::new(store, clock), engine)
}

fn db() -> Db {
    db_with_clock(Arc::new(Hlc::new(
        Arc::new(SystemClock),
        DEFAULT_MAX_OFFSET,
    )))
}

fn int(v: Option<Vec<u8>>) -> i64 {
    v.map(|b| String::from_utf8_lossy(&b).parse().expect("int value"))
        .unwrap_or(0)
}

fn bytes(i: i64) -> Vec<u8> {
    i.to_string().into_bytes()
}

/// Accounts `acct/000`… with 100 each.
async fn open_accounts(db: &Db, n: i64) {
    for i in 0..n {
        db.put(format!("acct/{i:03}").as_bytes(), b"100")
            .await
            .expect("init");
    }
}

fn total_of(rows: &[tardigrade_kvpb::KeyValue]) -> i64 {
    rows.iter()
        .map(|kv| int(Some(kv.value.bytes.clone())))
        .sum()
}

/// A read that locks the key (as SQL's UPDATE reads its rows).
async fn locking_get(t: &mut Txn, key: &[u8]) -> Result<i64, KvError> {
    t.set_lock_reads(true);
    let v = t.get(key).await;
    t.set_lock_reads(false);
    Ok(int(v?))
}

/// Runs the body in fresh transactions until one commits; evaluates to the
/// number of attempts.
macro_rules! retry {
    ($db:expr, |$t:ident| $body:block) => {{
        let mut attempts = 0usize;
        loop {
            attempts += 1;
            assert!(attempts <= 200, "no commit after 200 attempts");
            let mut $t: Txn = $db.txn("retry");
            let res: Result<(), KvError> = async { $body }.await;
            let res = match res {
                Ok(()) => $t.commit().await,
                Err(e) => {
                    let _ = $t.rollback().await;
                    Err(e)
                }
            };
            match res {
                Ok(()) => break attempts,
                Err(e) if e.detail.is_retryable() => continue,
                Err(e) => panic!("non-retryable error: {e}"),
            }
        }
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_writes_are_visible_and_rolled_back_ones_are_not() {
    let db = db();
    let mut t = db.txn("a");
    t.put(b"a", b"1").await.expect("put");
    t.put(b"b", b"2").await.expect("put");
    assert_eq!(t.get(b"a").await.expect("own write"), Some(b"1".to_vec()));
    t.commit().await.expect("commit");
    assert_eq!(db.get(b"a").await.expect("get"), Some(b"1".to_vec()));

    let mut t = db.txn("b");
    t.put(b"a", b"changed").await.expect("put");
    t.del(b"b").await.expect("del");
    t.rollback().await.expect("rollback");
    assert_eq!(db.get(b"a").await.expect("get"), Some(b"1".to_vec()));
    assert_eq!(db.get(b"b").await.expect("get"), Some(b"2".to_vec()));
    let rows = db.scan(b"a", b"c", 0).await.expect("scan");
    assert_eq!(rows.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_waits_for_a_writer_and_sees_its_commit() {
    let db = db();
    db.put(b"k", b"old").await.expect("put");
    let mut w = db.txn("writer");
    w.put(b"k", b"new").await.expect("put");
    let reader_db = db.clone();
    let reader = tokio::spawn(async move {
        let mut r = reader_db.txn("reader");
        // Started after the writer: it cannot read below its intent.
        let v = r.get(b"k").await;
        let _ = r.commit().await;
        v
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!reader.is_finished(), "the reader must wait for the writer");
    w.commit().await.expect("commit");
    let v = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("reader finishes")
        .expect("join")
        .expect("read");
    assert_eq!(v, Some(b"new".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_updates_are_prevented() {
    let db = db();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                retry!(db, |t| {
                    let v = int(t.get(b"counter").await?);
                    t.put(b"counter", &bytes(v + 1)).await
                });
            }
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    assert_eq!(int(db.get(b"counter").await.expect("get")), 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_skew_is_prevented() {
    // Invariant: x + y >= 1. Each transaction checks it, then zeroes one key.
    let db = db();
    db.put(b"x", b"1").await.expect("put");
    db.put(b"y", b"1").await.expect("put");
    let mut t1 = db.txn("t1");
    let mut t2 = db.txn("t2");
    let s1 = int(t1.get(b"x").await.expect("get")) + int(t1.get(b"y").await.expect("get"));
    let s2 = int(t2.get(b"x").await.expect("get")) + int(t2.get(b"y").await.expect("get"));
    assert_eq!((s1, s2), (2, 2));
    let w1 = t1.put(b"x", b"0").await;
    let w2 = t2.put(b"y", b"0").await;
    let c1 = match w1 {
        Ok(()) => t1.commit().await,
        Err(e) => Err(e),
    };
    let c2 = match w2 {
        Ok(()) => t2.commit().await,
        Err(e) => Err(e),
    };
    assert!(
        !(c1.is_ok() && c2.is_ok()),
        "both committed: write skew (x={:?}, y={:?})",
        db.get(b"x").await,
        db.get(b"y").await
    );
    for e in [c1.err(), c2.err()].into_iter().flatten() {
        assert!(e.detail.is_retryable(), "{e}");
    }
    let sum = int(db.get(b"x").await.expect("get")) + int(db.get(b"y").await.expect("get"));
    assert!(sum >= 1, "invariant broken: sum {sum}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_skew_is_prevented() {
    // x + y == 100 always. A reader must never see half of a transfer.
    let db = db();
    db.put(b"x", b"50").await.expect("put");
    db.put(b"y", b"50").await.expect("put");
    let mut reader = db.txn("reader");
    let x = int(reader.get(b"x").await.expect("get"));
    retry!(db, |t| {
        t.put(b"x", b"10").await?;
        t.put(b"y", b"90").await
    });
    // The transfer committed after the reader started but within its
    // uncertainty window: the reader must either see the old y or restart;
    // it must never combine the old x with the new y.
    match reader.get(b"y").await {
        Ok(y) => {
            let y = int(y);
            assert_eq!(x + y, 100, "read skew: x={x} y={y}");
            reader.commit().await.expect("read-only commit");
        }
        Err(e) => assert!(e.detail.is_retryable(), "{e}"),
    }
    let mut fresh = db.txn("fresh");
    let x = int(fresh.get(b"x").await.expect("get"));
    let y = int(fresh.get(b"y").await.expect("get"));
    assert_eq!((x, y), (10, 90));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_anti_dependency_cycles_are_prevented() {
    // Each transaction inserts into the set only if the set is empty
    // (a predicate read); both must not succeed.
    let db = db();
    let mut t1 = db.txn("t1");
    let mut t2 = db.txn("t2");
    assert!(t1.scan(b"set/", b"set0", 0).await.expect("scan").is_empty());
    assert!(t2.scan(b"set/", b"set0", 0).await.expect("scan").is_empty());
    let c1 = match t1.put(b"set/a", b"1").await {
        Ok(()) => t1.commit().await,
        Err(e) => Err(e),
    };
    let c2 = match t2.put(b"set/b", b"1").await {
        Ok(()) => t2.commit().await,
        Err(e) => Err(e),
    };
    assert!(
        !(c1.is_ok() && c2.is_ok()),
        "G2: both predicate writers committed"
    );
    assert_eq!(db.scan(b"set/", b"set0", 0).await.expect("scan").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlocks_are_broken_within_a_second() {
    let db = db();
    let mut t1 = db.txn("t1");
    let mut t2 = db.txn("t2");
    t1.put(b"a", b"t1").await.expect("put");
    t2.put(b"b", b"t2").await.expect("put");
    let start = std::time::Instant::now();
    let h1 = tokio::spawn(async move {
        let r = t1.put(b"b", b"t1").await;
        match r {
            Ok(()) => t1.commit().await,
            Err(e) => Err(e),
        }
    });
    let h2 = tokio::spawn(async move {
        let r = t2.put(b"a", b"t2").await;
        match r {
            Ok(()) => t2.commit().await,
            Err(e) => Err(e),
        }
    });
    let (r1, r2) = tokio::time::timeout(Duration::from_secs(5), async {
        (h1.await.expect("join"), h2.await.expect("join"))
    })
    .await
    .expect("deadlock must be broken, not hang");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        r1.is_ok() != r2.is_ok(),
        "exactly one must abort: {r1:?} {r2:?}"
    );
    let winner = if r1.is_ok() { b"t1" } else { b"t2" };
    assert_eq!(db.get(b"a").await.expect("get"), Some(winner.to_vec()));
    assert_eq!(db.get(b"b").await.expect("get"), Some(winner.to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_transaction_is_aborted_once_its_record_expires() {
    let manual = ManualClock::new(1_000_000_000_000);
    let clock = Arc::new(Hlc::new(manual.clone(), DEFAULT_MAX_OFFSET));
    let db = db_with_clock(clock);
    let mut t = db.txn("abandoned");
    t.put(b"k", b"zombie").await.expect("put");
    // The coordinator vanishes without rolling back (no drop handler runs).
    std::mem::forget(t);
    let reader_db = db.clone();
    let reader = tokio::spawn(async move { reader_db.put(b"k", b"alive").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !reader.is_finished(),
        "a live-looking intent blocks the writer"
    );
    manual.advance(Duration::from_secs(6));
    tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the expired transaction is pushed aside")
        .expect("join")
        .expect("put");
    assert_eq!(db.get(b"k").await.expect("get"), Some(b"alive".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_transfers_keep_the_total_with_32_clients() {
    const ACCOUNTS: i64 = 10;
    let db = db();
    open_accounts(&db, ACCOUNTS).await;
    let mut tasks = Vec::new();
    for c in 0..32i64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..5i64 {
                let from = (c + n) % ACCOUNTS;
                let to = (c * 7 + n * 3 + 1) % ACCOUNTS;
                if from == to {
                    continue;
                }
                retry!(db, |t| {
                    let fk = format!("acct/{from:03}");
                    let tk = format!("acct/{to:03}");
                    let a = int(t.get(fk.as_bytes()).await?);
                    let b = int(t.get(tk.as_bytes()).await?);
                    let amount = (c % 7) + 1;
                    if a < amount {
                        return Ok(());
                    }
                    t.put(fk.as_bytes(), &bytes(a - amount)).await?;
                    t.put(tk.as_bytes(), &bytes(b + amount)).await
                });
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("bank clients finish")
            .expect("join");
    }
    let rows = db.scan(b"acct/", b"acct0", 0).await.expect("scan");
    let total = total_of(&rows);
    assert_eq!(rows.len() as i64, ACCOUNTS);
    assert_eq!(total, ACCOUNTS * 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_outside_the_user_key_space_are_refused_and_change_nothing() {
    use tardigrade_kvpb::ErrorDetail;
    let db = db();
    for key in [&b"\x01local"[..], b"", b"\xff\xff", b"\xff\xff\x00"] {
        let err = db.put(key, b"v").await.expect_err("must be refused");
        assert!(
            matches!(err.detail, ErrorDetail::InvalidArgument(_)),
            "{key:?}: {err}"
        );
    }
    let err = db.scan(b"b", b"a", 0).await.expect_err("inverted span");
    assert!(
        matches!(err.detail, ErrorDetail::InvalidArgument(_)),
        "{err}"
    );
    // The node goes on serving.
    db.put(b"ok", b"1").await.expect("put");
    assert_eq!(db.get(b"ok").await.expect("get"), Some(b"1".to_vec()));
}

/// A transaction that writes and range-deletes tens of thousands of keys
/// commits with a bounded `EndTxn` (its lock spans condensed, its intents
/// resolved a few thousand per command, the rest asynchronously) and every
/// intent is gone soon after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_transaction_commits_and_its_intents_are_all_resolved() {
    let (db, engine) = db_and_engine();
    let key = |i: u32| format!("k{i:06}").into_bytes();
    let mut t = db.txn("large");
    for chunk in (0..30_000u32).collect::<Vec<_>>().chunks(1000) {
        let reqs = chunk
            .iter()
            .map(|i| tardigrade_kvpb::Request::Put {
                key: key(*i),
                value: bytes(*i as i64),
            })
            .collect();
        t.send(reqs).await.expect("puts");
    }
    // Keys 10,000..20,000 go again, in pages.
    t.delete_range(&key(10_000), &key(20_000))
        .await
        .expect("delete range");
    t.commit().await.expect("commit");

    let mut left = usize::MAX;
    for _ in 0..100 {
        left = tardigrade_storage::mvcc::scan_intents(&engine, b"k", b"l", 0)
            .expect("scan intents")
            .len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "intents left unresolved after the commit");
    let rows = db.scan(b"k", b"l", 0).await.expect("scan");
    assert_eq!(rows.len(), 20_000);
    assert_eq!(rows[9_999].key, key(9_999));
    assert_eq!(rows[10_000].key, key(20_000));
}

/// Writes held for the commit go in the commit's batch: in one range the
/// transaction commits in one phase, and its writes never pass through the
/// lock table (no intent is written, so none is left to resolve).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_held_for_the_commit_commit_in_one_phase() {
    let (db, engine) = db_and_engine();
    let lock_entries = || engine.approximate_entries(tardigrade_storage::Space::Lock);
    let before = lock_entries();
    let mut t = db.txn("one phase");
    assert_eq!(t.get(b"held/000").await.expect("read"), None);
    t.write_at_commit(
        (0..100)
            .map(|i| tardigrade_kvpb::Request::Put {
                key: format!("held/{i:03}").into_bytes(),
                value: bytes(i),
            })
            .collect(),
    );
    t.commit().await.expect("commit");
    let rows = db.scan(b"held/", b"held0", 0).await.expect("scan");
    assert_eq!(rows.len(), 100);
    assert_eq!(int(Some(rows[42].value.bytes.clone())), 42);
    assert_eq!(lock_entries(), before, "the one-phase commit wrote intents");

    // Read after being held: the writes go ahead of the read, as intents,
    // and the transaction reads them and commits as usual.
    let mut t = db.txn("held then read");
    t.write_at_commit(vec![tardigrade_kvpb::Request::Put {
        key: b"held/000".to_vec(),
        value: bytes(7),
    }]);
    assert_eq!(int(t.get(b"held/000").await.expect("read")), 7);
    t.commit().await.expect("commit");
    assert_eq!(int(db.get(b"held/000").await.expect("get")), 7);
    assert!(
        lock_entries() > before,
        "a read before the commit sends the held writes"
    );

    // A rolled-back transaction's held writes never happen.
    let mut t = db.txn("rolled back");
    t.write_at_commit(vec![tardigrade_kvpb::Request::Put {
        key: b"held/001".to_vec(),
        value: bytes(9),
    }]);
    t.rollback().await.expect("rollback");
    assert_eq!(int(db.get(b"held/001").await.expect("get")), 1);
}

/// A held write that a later read made stale is pushed by the timestamp
/// cache: the one-phase commit fails with a retry, refreshes (it read
/// nothing) and commits at the pushed timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_write_below_a_later_read_commits_above_it() {
    let db = db();
    db.put(b"x", b"1").await.expect("init");
    let mut writer = db.txn("writer");
    writer.write_at_commit(vec![tardigrade_kvpb::Request::Put {
        key: b"x".to_vec(),
        value: bytes(2),
    }]);
    let mut reader = db.txn("reader");
    assert_eq!(int(reader.get(b"x").await.expect("read")), 1);
    reader.commit().await.expect("reader commits");
    writer.commit().await.expect("writer commits");
    let mut after = db.txn("after");
    assert_eq!(int(after.get(b"x").await.expect("read")), 2);
    after.commit().await.expect("commit");
}

/// Read-modify-writes of one hot key with locking reads queue behind each
/// other: nearly every one commits at its first attempt (without the lock,
/// most of them read a value about to change and fail their commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn locking_reads_queue_read_modify_writes_instead_of_failing_them() {
    let db = Arc::new(db());
    // (A locking read locks only keys that exist.)
    db.put(b"hot", &bytes(0)).await.expect("put");
    const CLIENTS: usize = 8;
    const EACH: usize = 10;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut attempts = 0;
            for _ in 0..EACH {
                attempts += retry!(db, |t| {
                    let v = locking_get(&mut t, b"hot").await?;
                    // Think time, so that the transactions overlap.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    t.put(b"hot", &bytes(v + 1)).await
                });
            }
            attempts
        }));
    }
    let mut attempts = 0;
    for t in tasks {
        attempts += t.await.expect("client");
    }
    assert_eq!(
        int(db.get(b"hot").await.expect("get")),
        (CLIENTS * EACH) as i64
    );
    // A few retries remain possible on a loaded machine (a waiter that finds
    // the holder's record expired aborts it); without the locks, most
    // increments retry.
    assert!(
        attempts <= CLIENTS * EACH * 11 / 10,
        "{attempts} attempts for {} increments",
        CLIENTS * EACH
    );
}

/// A transaction whose first request is a locking read holds a lock that
/// others push it through: a pusher that aborts it there must abort the
/// record its commit checks, or it commits without the writes the pusher
/// removed as aborted (half a transfer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_holder_aborted_through_its_lock_cannot_commit() {
    let manual = ManualClock::new(1_000_000_000_000);
    let clock = Arc::new(Hlc::new(manual.clone(), DEFAULT_MAX_OFFSET));
    // A lease that outlives the clock jump, so that no new lease pushes the
    // stalled transaction's writes (and makes it refresh and fail anyway).
    let engine = Engine::open(&StoreSpec::Memory).expect("open engine");
    let cfg = StoreConfig {
        lease_duration: Duration::from_secs(60),
        ..StoreConfig::default()
    };
    let store = Store::open(engine, clock.clone(), cfg).expect("open store");
    let db = Db::new(store, clock);
    db.put(b"a", &bytes(100)).await.expect("put");
    db.put(b"b", &bytes(100)).await.expect("put");
    // A transfer of 10 from a to b that stalls after its debit.
    let mut t = db.txn("stalled");
    let a = locking_get(&mut t, b"a").await.expect("locking get");
    t.put(b"a", &bytes(a - 10)).await.expect("debit");
    // Its record looks expired: a locking read-modify-write of `a` aborts it.
    manual.advance(Duration::from_secs(6));
    tokio::time::timeout(Duration::from_secs(10), async {
        retry!(db, |u| {
            let v = locking_get(&mut u, b"a").await?;
            u.put(b"a", &bytes(v + 1)).await
        })
    })
    .await
    .expect("the expired lock holder is pushed aside");
    // The stalled transfer goes on; having been aborted, it must not commit.
    let finished = match t.put(b"b", &bytes(100 + 10)).await {
        Ok(()) => t.commit().await,
        Err(e) => {
            let _ = t.rollback().await;
            Err(e)
        }
    };
    assert!(finished.is_err(), "an aborted transaction committed");
    let total = int(db.get(b"a").await.expect("get")) + int(db.get(b"b").await.expect("get"));
    assert_eq!(total, 201);
}

/// The bank invariant with locking read-modify-writes (as SQL's UPDATE does
/// them) and readers that check the total while transfers run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_transfers_with_locking_reads_keep_the_total() {
    const ACCOUNTS: i64 = 10;
    let db = db();
    open_accounts(&db, ACCOUNTS).await;
    let mut tasks = Vec::new();
    for c in 0..8i64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..25i64 {
                let from = (c * 7 + n * 3) % ACCOUNTS;
                let to = (from + 1 + n % 9) % ACCOUNTS;
                let amount = 1 + n % 5;
                retry!(db, |t| {
                    let fk = format!("acct/{from:03}");
                    let tk = format!("acct/{to:03}");
                    let a = locking_get(&mut t, fk.as_bytes()).await?;
                    t.put(fk.as_bytes(), &bytes(a - amount)).await?;
                    let b = locking_get(&mut t, tk.as_bytes()).await?;
                    t.put(tk.as_bytes(), &bytes(b + amount)).await
                });
                let mut t = db.txn("audit");
                let rows = t.scan(b"acct/", b"acct0", 0).await;
                let read_ts = t.read_timestamp();
                let _ = t.rollback().await;
                if let Ok(rows) = rows {
                    let total = total_of(&rows);
                    let balances: Vec<String> = rows
                        .iter()
                        .map(|kv| {
                            format!(
                                "{}={}@{}",
                                String::from_utf8_lossy(&kv.key),
                                String::from_utf8_lossy(&kv.value.bytes),
                                kv.value.timestamp
                            )
                        })
                        .collect();
                    assert_eq!(
                        total,
                        ACCOUNTS * 100,
                        "client {c}'s audit after transfer {n} read at {read_ts}: {balances:?}"
                    );
                }
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("bank clients finish")
            .expect("join");
    }
    let rows = db.scan(b"acct/", b"acct0", 0).await.expect("scan");
    let total = total_of(&rows);
    assert_eq!(total, ACCOUNTS * 100);
}

/// A read-only transaction that reads keys one at a time while writers keep
/// updating them. Every write lands within the reader's uncertainty window
/// (the 500 ms maximum clock offset): without observed timestamps each one
/// forces a refresh that fails (the keys read so far changed too), and the
/// reader starves. With them, the node's clock reading on the reader's
/// first request bounds the window, so writes that came later are simply
/// not seen and the reader commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_of_keys_that_writers_keep_updating_makes_progress() {
    const KEYS: usize = 8;
    let db = db();
    let key = |i: usize| format!("hot/{i:02}").into_bytes();
    for i in 0..KEYS {
        db.put(&key(i), &bytes(0)).await.expect("seed");
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3usize {
        let db = db.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let _ = db.put(&key((w + n as usize) % KEYS), &bytes(n)).await;
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            n
        }));
    }
    let (mut ok, mut failed) = (0u32, 0u32);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        let mut t = db.txn("reader");
        let mut result = Ok(());
        for i in 0..KEYS {
            if let Err(e) = t.get(&key(i)).await {
                result = Err(e);
                break;
            }
            // Give the writers time to write inside the window.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        match result {
            Ok(()) => {
                t.commit().await.expect("read-only commit");
                ok += 1;
            }
            Err(e) => {
                assert!(e.detail.is_retryable(), "unexpected error {e}");
                failed += 1;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut writes = 0;
    for w in writers {
        writes += w.await.expect("writer");
    }
    println!("reader: {ok} committed, {failed} restarted; {writes} writes");
    assert!(writes > 200, "the writers kept writing ({writes})");
    assert!(
        ok >= 4 * failed.max(1),
        "the reader mostly commits: {ok} committed, {failed} restarted"
    );
}

/// `Txn::reverse_scan` is `Txn::scan` read from the end: descending keys,
/// at most `max_rows`, and it sees the transaction's own writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_scans_return_the_last_rows_first_up_to_a_limit() {
    let db = db();
    for i in 0..50 {
        db.put(format!("r/{i:02}").as_bytes(), &bytes(i))
            .await
            .expect("put");
    }
    db.put(b"s", b"outside").await.expect("put");
    let mut t = db.txn("reader");
    t.del(b"r/49").await.expect("del");
    let keys = |rows: &[tardigrade_kvpb::KeyValue]| -> Vec<String> {
        rows.iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect()
    };
    let last3 = t.reverse_scan(b"r/", b"r0", 3).await.expect("reverse scan");
    assert_eq!(keys(&last3), vec!["r/48", "r/47", "r/46"]);
    // Resuming with the last key returned as the (exclusive) end.
    let next = t
        .reverse_scan(b"r/", &last3[2].key, 2)
        .await
        .expect("reverse scan");
    assert_eq!(keys(&next), vec!["r/45", "r/44"]);
    let all = t.reverse_scan(b"r/", b"r0", 0).await.expect("reverse scan");
    let want: Vec<String> = (0..49).rev().map(|i| format!("r/{i:02}")).collect();
    assert_eq!(keys(&all), want);
    assert_eq!(
        t.reverse_scan(b"r/", b"r0", 100)
            .await
            .expect("reverse scan")
            .len(),
        49
    );
    t.rollback().await.expect("rollback");
}

/// A transaction with a fixed timestamp (SQL's AS OF SYSTEM TIME) reads
/// the values as of that timestamp, is never uncertain about a value
/// written just after it (which would restart a transaction that started
/// then), never moves its timestamp, refuses writes, and cannot be fixed
/// once it has read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_timestamp_reads_history_and_never_moves() {
    let db = db();
    db.put(b"k", b"1").await.expect("put 1");
    let then = db.now();
    // Well inside the max clock offset after `then`.
    tokio::time::sleep(Duration::from_millis(5)).await;
    db.put(b"k", b"2").await.expect("put 2");

    let mut t = db.txn("historical");
    t.set_fixed_timestamp(then).expect("fix before any read");
    assert_eq!(int(t.get(b"k").await.expect("historical get")), 1);
    let rows = t.scan(b"k", b"l", 0).await.expect("historical scan");
    assert_eq!(total_of(&rows), 1);
    assert_eq!(t.read_timestamp(), then);
    assert_eq!(t.fixed_timestamp(), Some(then));
    let e = t.put(b"k", b"3").await.expect_err("writes are refused");
    assert!(e.to_string().contains("fixed"), "{e}");
    t.commit().await.expect("a read-only commit");
    assert_eq!(int(db.get(b"k").await.expect("get")), 2);

    // Once a transaction has read, its timestamp stays where it is.
    let mut u = db.txn("later");
    assert_eq!(int(u.get(b"k").await.expect("get")), 2);
    let e = u
        .set_fixed_timestamp(then)
        .expect_err("too late: it already read");
    assert!(e.to_string().contains("already performed reads"), "{e}");
}
