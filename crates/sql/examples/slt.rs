//! Runs sqllogictest files against an in-process SQL node, record by record, and
//! prints per-file pass counts and the first failures: a fast loop for working
//! on the engine (the test suite runs the corpus through the wire protocol).
//!
//! `cargo run -p tardigrade-sql --example slt -- FILE… [--show N]`

use std::sync::Arc;

use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Record, Runner};
use tardigrade_hlc::{DEFAULT_MAX_OFFSET, Hlc, SystemClock};
use tardigrade_kv::Db;
use tardigrade_kvserver::{Store, StoreConfig};
use tardigrade_sql::{Session, SqlError, SqlNode, SqlType, Value};
use tardigrade_storage::{Engine, StoreSpec};

struct Conn(Session);

#[derive(Debug)]
struct Error(SqlError);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.0.message, self.0.code)
    }
}

impl std::error::Error for Error {}

fn cell(v: &Value, ty: SqlType) -> String {
    match v {
        Value::Null => "NULL".into(),
        v => {
            let t = v.to_text(ty);
            if t.is_empty() { "(empty)".into() } else { t }
        }
    }
}

#[async_trait::async_trait]
impl AsyncDB for Conn {
    type Error = Error;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Error> {
        let mut last = None;
        for r in self.0.simple_query(sql).await {
            last = Some(r.map_err(Error)?);
        }
        let Some(out) = last else {
            return Ok(DBOutput::StatementComplete(0));
        };
        match out.columns {
            Some(cols) => Ok(DBOutput::Rows {
                types: cols.iter().map(|_| DefaultColumnType::Any).collect(),
                rows: out
                    .rows
                    .iter()
                    .map(|r| r.iter().zip(&cols).map(|(v, c)| cell(v, c.ty)).collect())
                    .collect(),
            }),
            None => Ok(DBOutput::StatementComplete(
                out.tag
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            )),
        }
    }

    async fn shutdown(&mut self) {}

    fn error_sql_state(err: &Error) -> Option<String> {
        Some(err.0.code.to_string())
    }
}

async fn node() -> Arc<SqlNode> {
    let clock = Arc::new(Hlc::new(Arc::new(SystemClock), DEFAULT_MAX_OFFSET));
    let engine = Engine::open(&StoreSpec::Memory).expect("open engine");
    let store = Store::open(engine, clock.clone(), StoreConfig::default()).expect("open store");
    SqlNode::start(Db::new(store, clock), 1)
        .await
        .expect("sql node")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut show = 5usize;
    if let Some(i) = args.iter().position(|a| a == "--show") {
        show = args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(5);
        args.drain(i..(i + 2).min(args.len()));
    }
    for file in args {
        let node = node().await;
        let records = match sqllogictest::parse_file::<DefaultColumnType>(&file) {
            Ok(r) => r,
            Err(e) => {
                println!("{file}: parse error {e}");
                continue;
            }
        };
        let n = node.clone();
        let mut runner = Runner::new(move || {
            let n = n.clone();
            async move { Ok(Conn(n.session("root", "defaultdb"))) }
        });
        runner.add_label("postgresql");
        let (mut passed, mut failed, mut shown) = (0, 0, 0);
        let started = std::time::Instant::now();
        for record in records {
            let counts = matches!(record, Record::Statement { .. } | Record::Query { .. });
            match runner.run_async(record).await {
                Ok(_) => passed += counts as usize,
                Err(e) => {
                    failed += 1;
                    if shown < show {
                        shown += 1;
                        println!("--- {e}");
                    }
                }
            }
        }
        println!(
            "{file}: {passed} passed, {failed} failed ({:.1}s)",
            started.elapsed().as_secs_f64()
        );
    }
}
