//! Helpers shared by the SQL integration tests: an in-process single-node
//! store, and running statements through a session with the result, the
//! output or the SQLSTATE of the last one.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::sync::Arc;

use tardigrade_hlc::{DEFAULT_MAX_OFFSET, Hlc, SystemClock};
use tardigrade_kv::Db;
use tardigrade_kvserver::{Store, StoreConfig};
use tardigrade_sql::{QueryOutput, Session, SqlNode, Value};
use tardigrade_sqltypes::SqlResult;
use tardigrade_storage::{Engine, StoreSpec};

/// A KV client over a fresh in-memory single-node store.
pub fn db() -> Db {
    let clock = Arc::new(Hlc::new(Arc::new(SystemClock), DEFAULT_MAX_OFFSET));
    let engine = Engine::open(&StoreSpec::Memory).expect("open engine");
    let store = Store::open(engine, clock.clone(), StoreConfig::default()).expect("open store");
    Db::new(store, clock)
}

/// A node over a fresh store ([`db`]) and a session of `root` on it.
pub async fn session() -> (Arc<SqlNode>, Session) {
    let node = SqlNode::start(db(), 1).await.expect("start");
    let s = node.session("root", "defaultdb");
    (node, s)
}

/// The rows of `sql`, which must succeed, as text ("NULL" for NULL).
pub async fn rows(s: &mut Session, sql: &str) -> Vec<Vec<String>> {
    ok(s, sql)
        .await
        .rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| match v {
                    Value::Null => "NULL".to_string(),
                    Value::Int(i) => i.to_string(),
                    Value::Text(t) => t.clone(),
                    Value::Bool(b) => b.to_string(),
                    Value::Decimal(d) => d.to_string(),
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .collect()
}

/// Runs `sql` (one or more statements); the last statement's result.
pub async fn run(s: &mut Session, sql: &str) -> SqlResult<QueryOutput> {
    let mut results = s.simple_query(sql).await;
    results.pop().unwrap_or_else(|| Ok(QueryOutput::default()))
}

/// Runs `sql`, which must succeed.
pub async fn ok(s: &mut Session, sql: &str) -> QueryOutput {
    match run(s, sql).await {
        Ok(o) => o,
        Err(e) => panic!("{sql}: {e} {:?}", e.detail),
    }
}

/// Runs `sql`, which must fail; its SQLSTATE.
pub async fn err(s: &mut Session, sql: &str) -> String {
    match run(s, sql).await {
        Ok(o) => panic!("{sql}: expected an error, got {o:?}"),
        Err(e) => e.code.to_string(),
    }
}
