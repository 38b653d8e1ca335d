//! Data-driven SQL tests: each file under `testdata/queries` is a list of blocks
//!
//! ```text
//! <SQL statement(s)>
//! ----
//! <expected output>
//! ```
//!
//! separated by blank lines. The output is the result rows, one per line with
//! values separated by ` | ` (NULL printed as `NULL`), then the command tag, or
//! `ERROR <SQLSTATE>: <message>`. Run with `REWRITE=1` to regenerate the expected
//! output after a deliberate change, and review the diff; `GOLDEN=<file stem>`
//! limits either to one file.

use std::path::Path;
use std::sync::Arc;

use tardigrade_hlc::{DEFAULT_MAX_OFFSET, Hlc, SystemClock};
use tardigrade_kv::Db;
use tardigrade_kvserver::{Store, StoreConfig};
use tardigrade_sql::{Session, SqlNode};
use tardigrade_storage::{Engine, StoreSpec};

async fn session() -> Session {
    let clock = Arc::new(Hlc::new(Arc::new(SystemClock), DEFAULT_MAX_OFFSET));
    let engine = Engine::open(&StoreSpec::Memory).expect("open engine");
    let store = Store::open(engine, clock.clone(), StoreConfig::default()).expect("open store");
    let db = Db::new(store, clock);
    let node = SqlNode::start(db, 1).await.expect("start sql");
    // Plans are part of the expected output: no automatic statistics.
    node.stats.set_automatic(false);
    node.session("root", "defaultdb")
}

async fn render(session: &mut Session, sql: &str) -> String {
    let mut out = String::new();
    for result in session.simple_query(sql).await {
        match result {
            Ok(o) => {
                if let Some(columns) = &o.columns {
                    for row in &o.rows {
                        let cells: Vec<String> = row
                            .iter()
                            .zip(columns)
                            .map(|(v, c)| {
                                if v.is_null() {
                                    "NULL".to_string()
                                } else {
                                    v.to_text(c.ty)
                                }
                            })
                            .collect();
                        out.push_str(&cells.join(" | "));
                        out.push('\n');
                    }
                }
                out.push_str(&o.tag);
                out.push('\n');
            }
            Err(e) => {
                out.push_str(&format!("ERROR {}: {}\n", e.code, e.message));
            }
        }
    }
    out
}

async fn run_file(path: &Path) {
    let text = std::fs::read_to_string(path).expect("read test file");
    let rewrite = std::env::var("REWRITE").is_ok();
    let mut session = session().await;
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let (sql, expected) = match block.split_once("\n----\n") {
            Some((s, e)) => (s.trim(), e.trim_end()),
            None => (block.trim().trim_end_matches("----").trim(), ""),
        };
        let actual = render(&mut session, sql).await;
        let actual = actual.trim_end();
        if actual != expected {
            failures.push(format!(
                "{sql}\n--- expected:\n{expected}\n--- actual:\n{actual}\n"
            ));
        }
        rewritten.push_str(&format!("{sql}\n----\n{actual}\n\n"));
    }
    if rewrite {
        std::fs::write(path, rewritten.trim_end().to_string() + "\n").expect("rewrite test file");
        return;
    }
    assert!(
        failures.is_empty(),
        "{}: {} block(s) differ:\n{}",
        path.display(),
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_queries() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/queries");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    // GOLDEN=name runs (or with REWRITE=1 rewrites) only testdata/queries/name.txt.
    if let Ok(only) = std::env::var("GOLDEN") {
        files.retain(|f| f.file_stem().is_some_and(|s| s == only.as_str()));
    }
    for f in files {
        run_file(&f).await;
    }
}
