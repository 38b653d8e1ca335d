//! Sorts past the working-memory budget: the same queries with the default
//! budget (sorted in memory) and with a tiny one (spilled to many runs on
//! disk) return the same rows in the same order, the spill really happened,
//! temp files go away when a statement is cancelled mid-sort, and a temp
//! directory that cannot be written is a SQL error.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tardigrade_hlc::{DEFAULT_MAX_OFFSET, Hlc, SystemClock};
use tardigrade_kv::Db;
use tardigrade_kvserver::{Store, StoreConfig};
use tardigrade_sql::{Session, SqlNode};
use tardigrade_sqltypes::Value;
use tardigrade_storage::{Engine, StoreSpec};

const ROWS: i64 = 50_000;

async fn node() -> Arc<SqlNode> {
    let clock = Arc::new(Hlc::new(Arc::new(SystemClock), DEFAULT_MAX_OFFSET));
    let engine = Engine::open(&StoreSpec::Memory).expect("open engine");
    let store = Store::open(engine, clock.clone(), StoreConfig::default()).expect("open store");
    SqlNode::start(Db::new(store, clock), 1)
        .await
        .expect("start sql")
}

async fn exec(s: &mut Session, sql: &str) -> Vec<Vec<Value>> {
    let mut results = s.simple_query(sql).await;
    let out = results
        .pop()
        .expect("a result")
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    out.rows
}

/// A table of every sortable kind of column, with many ties and NULLs.
async fn load(s: &mut Session) {
    exec(
        s,
        "CREATE TABLE t (k INT PRIMARY KEY, a INT, b TEXT, c DECIMAL, d FLOAT, \
         iv INTERVAL, j JSONB, arr INT[], ts TIMESTAMP)",
    )
    .await;
    exec(
        s,
        &format!(
            "INSERT INTO t SELECT k, NULLIF(k * 7919 % 13, 0), \
             CASE WHEN k % 17 = 0 THEN NULL ELSE 'b' || (k % 29)::TEXT END, \
             (k % 101)::DECIMAL / 8, (k % 53)::FLOAT / 3, \
             ((k % 11)::TEXT || ' days')::INTERVAL, \
             ('{{\"k\": ' || (k % 7)::TEXT || ', \"x\": [1, null]}}')::JSONB, \
             ARRAY[k % 5, NULL, k], '2020-01-01'::TIMESTAMP + ((k % 31)::TEXT || ' hours')::INTERVAL \
             FROM generate_series(1, {ROWS}) AS g(k)"
        ),
    )
    .await;
}

/// A node with its temp files in a directory of its own, and a session on
/// it with the table loaded.
async fn loaded() -> (tempfile::TempDir, Arc<SqlNode>, Session) {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node().await;
    node.temp_storage.set_dir(dir.path().join("tmp"));
    let mut s = node.session("root", "defaultdb");
    load(&mut s).await;
    (dir, node, s)
}

/// Open files of this process under `dir` (unnamed temp files show as
/// `dir/#… (deleted)` links in /proc).
fn open_files_under(dir: &Path) -> usize {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// A checksum of a result's order: position-weighted hash of its rows.
fn order_checksum(rows: &[Vec<Value>]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (i, r) in rows.iter().enumerate() {
        i.hash(&mut h);
        format!("{r:?}").hash(&mut h);
    }
    h.finish()
}

#[tokio::test]
async fn a_spilled_sort_returns_what_the_in_memory_sort_does() {
    let (dir, node, mut s) = loaded().await;

    // (query, whether it spills with a 256 KiB budget)
    let queries = [
        // Ties on (a, b) everywhere: their order is the input's (k ascending).
        ("SELECT a, b, k FROM t ORDER BY a DESC NULLS FIRST, b", true),
        // Every column type goes through the run files.
        (
            "SELECT * FROM t ORDER BY b NULLS FIRST, c DESC, j, arr DESC, iv DESC",
            true,
        ),
        // A top-n heap holds its 120 rows, whatever the input's size.
        (
            "SELECT k, a, c FROM t ORDER BY c DESC, a NULLS LAST LIMIT 100 OFFSET 20",
            false,
        ),
        // A top-n too big for the budget spills as a sort does.
        ("SELECT k, a FROM t ORDER BY a, k % 3 LIMIT 30000", true),
    ];
    let mut first_spilled = Vec::new();
    for (q, spills) in queries {
        node.temp_storage
            .set_workmem(tardigrade_sql::exec::sort::DEFAULT_WORKMEM);
        let runs_before = node.temp_storage.spilled_runs();
        let in_memory = exec(&mut s, q).await;
        assert_eq!(node.temp_storage.spilled_runs(), runs_before, "{q} spilled");

        node.temp_storage.set_workmem(256 << 10);
        let spilled = exec(&mut s, q).await;
        let runs = node.temp_storage.spilled_runs() - runs_before;
        if spills {
            assert!(runs >= 10, "{q}: only {runs} runs with a 256 KiB budget");
        } else {
            assert_eq!(runs, 0, "{q}");
        }

        assert_eq!(in_memory.len(), spilled.len(), "{q}");
        assert_eq!(order_checksum(&in_memory), order_checksum(&spilled), "{q}");
        assert!(in_memory == spilled, "{q}: same rows, other order");
        if first_spilled.is_empty() {
            first_spilled = spilled;
        }
    }

    // Independently of the two runs agreeing: the first query's order is
    // right, ties included.
    let rows = first_spilled;
    assert_eq!(rows.len() as i64, ROWS);
    let key = |r: &Vec<Value>| {
        // a DESC NULLS FIRST: NULL as +infinity; b ASC with NULLs last.
        let a = match &r[0] {
            Value::Null => i64::MAX,
            Value::Int(a) => *a,
            other => panic!("a = {other:?}"),
        };
        (std::cmp::Reverse(a), r[1].is_null(), r[1].clone())
    };
    for w in rows.windows(2) {
        let (x, y) = (key(&w[0]), key(&w[1]));
        assert!(x <= y, "{:?} before {:?}", w[0], w[1]);
        if x == y {
            assert!(w[0][2] < w[1][2], "ties out of input order: {w:?}");
        }
    }
    assert_eq!(open_files_under(dir.path()), 0);
    assert!(node.temp_storage.spilled_sorts() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_over_a_spilled_sort_computes_what_in_memory_does() {
    let (dir, node, mut s) = loaded().await;
    let q = "SELECT k, row_number() OVER (PARTITION BY a ORDER BY c DESC, k), \
             rank() OVER (PARTITION BY a ORDER BY c DESC), \
             sum(k) OVER (PARTITION BY a ORDER BY k ROWS BETWEEN 2 PRECEDING AND CURRENT ROW), \
             count(*) OVER (PARTITION BY b) \
             FROM t ORDER BY k";
    node.temp_storage
        .set_workmem(tardigrade_sql::exec::sort::DEFAULT_WORKMEM);
    let runs_before = node.temp_storage.spilled_runs();
    let in_memory = exec(&mut s, q).await;
    assert_eq!(node.temp_storage.spilled_runs(), runs_before, "spilled");
    node.temp_storage.set_workmem(256 << 10);
    let spilled = exec(&mut s, q).await;
    let runs = node.temp_storage.spilled_runs() - runs_before;
    assert!(runs >= 10, "only {runs} runs with a 256 KiB budget");
    assert_eq!(in_memory.len() as i64, ROWS);
    assert!(in_memory == spilled, "the spilled window's values differ");
    // row_number restarts at 1 in each of the 13 partitions of a (and NULL).
    let ones = in_memory.iter().filter(|r| r[1] == Value::Int(1)).count();
    assert_eq!(ones, 13);
    assert_eq!(open_files_under(dir.path()), 0);
}

#[tokio::test]
async fn a_cancelled_sort_leaves_no_temp_files() {
    let (dir, node, mut s) = loaded().await;
    node.temp_storage.set_workmem(64 << 10);
    let fan_in = node.temp_storage.merge_fan_in();
    let before = node.temp_storage.spilled_runs();
    let mut query = Box::pin(s.simple_query("SELECT * FROM t ORDER BY b, a DESC"));
    // Let the sort write a few runs, then drop the statement as a cancel
    // request does.
    let open = loop {
        tokio::select! {
            _ = &mut query => panic!("the sort finished before it could be cancelled"),
            _ = tokio::time::sleep(Duration::from_millis(1)) => {
                if node.temp_storage.spilled_runs() >= before + 5 {
                    break open_files_under(dir.path());
                }
            }
        }
    };
    drop(query);
    // Some runs are open: at most twice the merge fan-in, plus the run a
    // merge is writing.
    assert!(
        open >= 1 && open <= 2 * fan_in + 1,
        "{open} run files open mid-sort"
    );
    assert_eq!(open_files_under(dir.path()), 0);
}

/// `h (k, v)`: `rows` rows of 50-odd-byte texts.
async fn text_table(s: &mut Session, rows: usize) {
    exec(s, "CREATE TABLE h (k INT PRIMARY KEY, v TEXT)").await;
    let insert = format!(
        "INSERT INTO h SELECT k, repeat('x', 50) || k::TEXT FROM generate_series(1, {rows}) AS g(k)"
    );
    exec(s, &insert).await;
}

/// The error `sql` fails with.
async fn error(s: &mut Session, sql: &str) -> tardigrade_sql::SqlError {
    let mut results = s.simple_query(sql).await;
    match results.pop() {
        Some(Err(e)) => e,
        other => panic!("{sql} did not fail: {other:?}"),
    }
}

#[tokio::test]
async fn an_unwritable_temp_dir_is_a_sql_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory").expect("write");
    let node = node().await;
    node.temp_storage.set_dir(file.join("tmp"));
    node.temp_storage.set_workmem(1 << 10);
    let mut s = node.session("root", "defaultdb");
    text_table(&mut s, 100).await;
    let err = error(&mut s, "SELECT * FROM h ORDER BY v").await;
    assert_eq!(err.code, "58030", "{err:?}");
    assert!(err.message.contains("temp"), "{err:?}");
}

#[tokio::test]
async fn hash_tables_that_cannot_spill_fail_with_out_of_memory() {
    let node = node().await;
    let mut s = node.session("root", "defaultdb");
    text_table(&mut s, 2000).await;
    // (GROUP BYs with too many groups and hash joins spill instead: see
    // streaming.rs. One group's DISTINCT set, a DISTINCT and set operations
    // cannot be partitioned yet.)
    let queries = [
        ("SELECT count(DISTINCT v) FROM h", "hash aggregation"),
        ("SELECT v FROM h UNION SELECT v FROM h", "set operation"),
    ];
    for (q, what) in queries {
        node.temp_storage
            .set_workmem(tardigrade_sql::exec::sort::DEFAULT_WORKMEM);
        let rows = exec(&mut s, q).await;
        assert!(!rows.is_empty(), "{q}");
        // 16 x 2 KiB for the hash table.
        node.temp_storage.set_workmem(2 << 10);
        let err = error(&mut s, q).await;
        assert_eq!(err.code, "53200", "{q}: {err:?}");
        assert!(
            err.message
                .starts_with(&format!("{what} needs more than its memory budget")),
            "{q}: {err:?}"
        );
    }
}
