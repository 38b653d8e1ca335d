//! `tardigrade workload init|run|check tpch`: the TPC-H decision-support
//! benchmark over SQL (the PostgreSQL wire protocol), unlike the KV workloads.
//!
//! `init` drops and creates the eight tables and loads the generated data
//! ([`datagen`]) with `COPY … FROM STDIN` in chunks (or, with `--csv-dir`, writes
//! the same data as CSV files plus `schema.sql` and `load.sql` for `psql`, so
//! that PostgreSQL can be loaded with identical rows). `run` runs the 22
//! queries ([`queries`]) and, with `--expected-url`, runs each on a second
//! server too (PostgreSQL loaded with the same data) and compares the results.

pub mod datagen;
pub mod queries;

use std::io::Write as _;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use futures::SinkExt;
use tokio_postgres::{Client, Config, SimpleQueryMessage};

use crate::sql_shell::{connect, describe_error};
use crate::{CliError, CliResult, WorkloadArgs};
use datagen::{Scale, TABLES, Table};
use queries::{QUERIES, Query};

/// Units (see [`datagen`]) per COPY statement: each COPY is its own transaction.
const UNITS_PER_COPY: i64 = 2_000;
/// Bytes of CSV sent per CopyData message.
const COPY_BUFFER: usize = 64 << 10;

/// The schema: CockroachDB's TPC-H shape (primary keys on the key columns),
/// types PostgreSQL 15 accepts as they are.
pub fn create_table(t: Table) -> &'static str {
    match t {
        Table::Region => {
            "CREATE TABLE region (
    r_regionkey INT8 NOT NULL PRIMARY KEY,
    r_name CHAR(25) NOT NULL,
    r_comment VARCHAR(152))"
        }
        Table::Nation => {
            "CREATE TABLE nation (
    n_nationkey INT8 NOT NULL PRIMARY KEY,
    n_name CHAR(25) NOT NULL,
    n_regionkey INT8 NOT NULL,
    n_comment VARCHAR(152))"
        }
        Table::Supplier => {
            "CREATE TABLE supplier (
    s_suppkey INT8 NOT NULL PRIMARY KEY,
    s_name CHAR(25) NOT NULL,
    s_address VARCHAR(40) NOT NULL,
    s_nationkey INT8 NOT NULL,
    s_phone CHAR(15) NOT NULL,
    s_acctbal DECIMAL(15,2) NOT NULL,
    s_comment VARCHAR(101) NOT NULL)"
        }
        Table::Part => {
            "CREATE TABLE part (
    p_partkey INT8 NOT NULL PRIMARY KEY,
    p_name VARCHAR(55) NOT NULL,
    p_mfgr CHAR(25) NOT NULL,
    p_brand CHAR(10) NOT NULL,
    p_type VARCHAR(25) NOT NULL,
    p_size INT8 NOT NULL,
    p_container CHAR(10) NOT NULL,
    p_retailprice DECIMAL(15,2) NOT NULL,
    p_comment VARCHAR(23) NOT NULL)"
        }
        Table::PartSupp => {
            "CREATE TABLE partsupp (
    ps_partkey INT8 NOT NULL,
    ps_suppkey INT8 NOT NULL,
    ps_availqty INT8 NOT NULL,
    ps_supplycost DECIMAL(15,2) NOT NULL,
    ps_comment VARCHAR(199) NOT NULL,
    PRIMARY KEY (ps_partkey, ps_suppkey))"
        }
        Table::Customer => {
            "CREATE TABLE customer (
    c_custkey INT8 NOT NULL PRIMARY KEY,
    c_name VARCHAR(25) NOT NULL,
    c_address VARCHAR(40) NOT NULL,
    c_nationkey INT8 NOT NULL,
    c_phone CHAR(15) NOT NULL,
    c_acctbal DECIMAL(15,2) NOT NULL,
    c_mktsegment CHAR(10) NOT NULL,
    c_comment VARCHAR(117) NOT NULL)"
        }
        Table::Orders => {
            "CREATE TABLE orders (
    o_orderkey INT8 NOT NULL PRIMARY KEY,
    o_custkey INT8 NOT NULL,
    o_orderstatus CHAR(1) NOT NULL,
    o_totalprice DECIMAL(15,2) NOT NULL,
    o_orderdate DATE NOT NULL,
    o_orderpriority CHAR(15) NOT NULL,
    o_clerk CHAR(15) NOT NULL,
    o_shippriority INT8 NOT NULL,
    o_comment VARCHAR(79) NOT NULL)"
        }
        Table::LineItem => {
            "CREATE TABLE lineitem (
    l_orderkey INT8 NOT NULL,
    l_partkey INT8 NOT NULL,
    l_suppkey INT8 NOT NULL,
    l_linenumber INT8 NOT NULL,
    l_quantity DECIMAL(15,2) NOT NULL,
    l_extendedprice DECIMAL(15,2) NOT NULL,
    l_discount DECIMAL(15,2) NOT NULL,
    l_tax DECIMAL(15,2) NOT NULL,
    l_returnflag CHAR(1) NOT NULL,
    l_linestatus CHAR(1) NOT NULL,
    l_shipdate DATE NOT NULL,
    l_commitdate DATE NOT NULL,
    l_receiptdate DATE NOT NULL,
    l_shipinstruct CHAR(25) NOT NULL,
    l_shipmode CHAR(10) NOT NULL,
    l_comment VARCHAR(44) NOT NULL,
    PRIMARY KEY (l_orderkey, l_linenumber))"
        }
    }
}

/// A modest set of secondary indexes on foreign keys, created after the load.
pub const INDEXES: [&str; 5] = [
    "CREATE INDEX orders_o_custkey ON orders (o_custkey)",
    "CREATE INDEX lineitem_l_partkey_l_suppkey ON lineitem (l_partkey, l_suppkey)",
    "CREATE INDEX partsupp_ps_suppkey ON partsupp (ps_suppkey)",
    "CREATE INDEX customer_c_nationkey ON customer (c_nationkey)",
    "CREATE INDEX supplier_s_nationkey ON supplier (s_nationkey)",
];

fn sql_config(url: &str) -> CliResult<Config> {
    let mut c = Config::from_str(url).map_err(|e| CliError(format!("bad URL {url:?}: {e}")))?;
    if c.get_user().is_none() {
        c.user("root");
    }
    if c.get_dbname().is_none() {
        c.dbname("defaultdb");
    }
    c.connect_timeout(Duration::from_secs(10));
    Ok(c)
}

async fn sql_connect(url: &str) -> CliResult<Client> {
    connect(&sql_config(url)?).await
}

async fn exec(client: &Client, sql: &str) -> CliResult {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| CliError(format!("{sql}: {}", describe_error(&e))))
}

fn scale_of(args: &WorkloadArgs) -> CliResult<Scale> {
    let sf = args.scale_factor;
    if !(sf.is_finite() && sf > 0.0 && sf <= 1000.0) {
        return Err(CliError(format!(
            "--scale-factor {sf}: must be in (0, 1000]"
        )));
    }
    Ok(Scale::new(sf))
}

pub async fn init(args: &WorkloadArgs) -> CliResult {
    let scale = scale_of(args)?;
    if let Some(dir) = &args.csv_dir {
        return write_csv(Path::new(dir), &scale, args.scale_factor);
    }
    let url = args.url.as_deref().ok_or_else(|| {
        CliError("tpch init needs --url postgres://root@HOST:PORT/defaultdb (or --csv-dir)".into())
    })?;
    let client = sql_connect(url).await?;
    println!(
        "tpch init: scale factor {} at {url} ({} orders)",
        args.scale_factor, scale.orders
    );
    for t in TABLES.iter().rev() {
        exec(&client, &format!("DROP TABLE IF EXISTS {}", t.name())).await?;
    }
    for t in TABLES {
        exec(&client, create_table(t)).await?;
    }
    let all = Instant::now();
    let mut total = 0;
    for t in TABLES {
        total += load_table(&client, t, &scale).await?;
    }
    let secs = all.elapsed().as_secs_f64();
    println!(
        "tpch init: {total} rows loaded in {secs:.1}s ({:.0} rows/s); creating indexes",
        total as f64 / secs.max(1e-9)
    );
    for ddl in INDEXES {
        let start = Instant::now();
        exec(&client, ddl).await?;
        println!("  {ddl}: {:.1}s", start.elapsed().as_secs_f64());
    }
    // Statistics of the loaded tables, as the PostgreSQL load script takes
    // them (automatic statistics may date from part-way through the load).
    for t in TABLES {
        let start = Instant::now();
        let analyze = format!("ANALYZE {}", t.name());
        exec(&client, &analyze).await?;
        println!("  {analyze}: {:.1}s", start.elapsed().as_secs_f64());
    }
    println!("tpch init: done in {:.1}s", all.elapsed().as_secs_f64());
    Ok(())
}

/// Loads one table with one COPY per [`UNITS_PER_COPY`] units; returns the rows.
async fn load_table(client: &Client, t: Table, scale: &Scale) -> CliResult<u64> {
    let start = Instant::now();
    let units = t.units(scale);
    let copy = format!("COPY {} FROM STDIN WITH (FORMAT csv)", t.name());
    let mut rows = 0u64;
    let mut buf = String::with_capacity(COPY_BUFFER + 4096);
    let mut last_print = Instant::now();
    let mut first = 0;
    while first < units {
        let end = (first + UNITS_PER_COPY).min(units);
        let sink = client
            .copy_in::<_, std::io::Cursor<Vec<u8>>>(copy.as_str())
            .await
            .map_err(|e| CliError(format!("{copy}: {}", describe_error(&e))))?;
        let mut sink = std::pin::pin!(sink);
        for i in first..end {
            rows += t.write_unit(scale, i, &mut buf) as u64;
            if buf.len() >= COPY_BUFFER {
                let chunk = std::mem::take(&mut buf).into_bytes();
                sink.send(std::io::Cursor::new(chunk))
                    .await
                    .map_err(|e| CliError(format!("{copy}: {}", describe_error(&e))))?;
            }
        }
        if !buf.is_empty() {
            let chunk = std::mem::take(&mut buf).into_bytes();
            sink.send(std::io::Cursor::new(chunk))
                .await
                .map_err(|e| CliError(format!("{copy}: {}", describe_error(&e))))?;
        }
        sink.as_mut()
            .finish()
            .await
            .map_err(|e| CliError(format!("{copy}: {}", describe_error(&e))))?;
        first = end;
        if last_print.elapsed() >= Duration::from_secs(5) && first < units {
            let secs = start.elapsed().as_secs_f64();
            println!(
                "  {:<9} {rows:>10} rows so far ({:.0}%), {:.0} rows/s",
                t.name(),
                100.0 * first as f64 / units as f64,
                rows as f64 / secs.max(1e-9)
            );
            last_print = Instant::now();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "  {:<9} {rows:>10} rows in {secs:>7.1}s, {:>8.0} rows/s",
        t.name(),
        rows as f64 / secs.max(1e-9)
    );
    Ok(rows)
}

/// Writes `TABLE.csv` for each table, `schema.sql` (the DDL) and `load.sql`
/// (schema, `\copy` of each file, indexes, ANALYZE) for `psql -f`.
fn write_csv(dir: &Path, scale: &Scale, sf: f64) -> CliResult {
    std::fs::create_dir_all(dir).map_err(|e| CliError(format!("{}: {e}", dir.display())))?;
    let mut schema = String::new();
    for t in TABLES.iter().rev() {
        schema.push_str(&format!("DROP TABLE IF EXISTS {};\n", t.name()));
    }
    for t in TABLES {
        schema.push_str(create_table(t));
        schema.push_str(";\n");
    }
    let mut load =
        String::from("\\set ON_ERROR_STOP 1\nSET client_min_messages = warning;\n\\i schema.sql\n");
    let write = |name: &str, text: &str| -> CliResult {
        std::fs::write(dir.join(name), text)
            .map_err(|e| CliError(format!("{}: {e}", dir.join(name).display())))
    };
    write("schema.sql", &schema)?;
    println!(
        "tpch: writing scale factor {sf} as CSV to {}",
        dir.display()
    );
    for t in TABLES {
        let start = Instant::now();
        let path = dir.join(format!("{}.csv", t.name()));
        let file = std::fs::File::create(&path)
            .map_err(|e| CliError(format!("{}: {e}", path.display())))?;
        let mut w = std::io::BufWriter::new(file);
        let mut buf = String::new();
        let mut rows = 0u64;
        for i in 0..t.units(scale) {
            rows += t.write_unit(scale, i, &mut buf) as u64;
            if buf.len() >= COPY_BUFFER {
                w.write_all(buf.as_bytes())
                    .map_err(|e| CliError(format!("{}: {e}", path.display())))?;
                buf.clear();
            }
        }
        w.write_all(buf.as_bytes())
            .and_then(|()| w.flush())
            .map_err(|e| CliError(format!("{}: {e}", path.display())))?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "  {:<9} {rows:>10} rows in {secs:>7.1}s, {:>8.0} rows/s",
            t.name(),
            rows as f64 / secs.max(1e-9)
        );
        load.push_str(&format!(
            "\\copy {} FROM '{}.csv' WITH (FORMAT csv)\n",
            t.name(),
            t.name()
        ));
    }
    for ddl in INDEXES {
        load.push_str(ddl);
        load.push_str(";\n");
    }
    load.push_str("ANALYZE;\n");
    write("load.sql", &load)?;
    println!(
        "tpch: load into PostgreSQL with: cd {} && psql -X -d URL -f load.sql",
        dir.display()
    );
    Ok(())
}

/// A query's result as text, one `Vec` per row (`None` for NULL).
type Rows = Vec<Vec<Option<String>>>;

/// Runs one query over the simple protocol, within `timeout`.
async fn run_query(client: &Client, sql: &str, timeout: Duration) -> Result<Rows, String> {
    let res = tokio::time::timeout(timeout, client.simple_query(sql)).await;
    let messages = match res {
        Err(_) => return Err(format!("timed out after {timeout:?}")),
        Ok(Err(e)) => return Err(describe_error(&e).replace('\n', " | ")),
        Ok(Ok(m)) => m,
    };
    let mut rows = Vec::new();
    for m in messages {
        if let SimpleQueryMessage::Row(r) = m {
            rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
        }
    }
    Ok(rows)
}

/// Whether two values agree: equal text (trailing blanks aside, as CHAR(n)
/// pads), or numbers within 1e-6 relative or 0.01 absolute.
pub fn values_match(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let (a, b) = (a.trim_end(), b.trim_end());
            if a == b {
                return true;
            }
            match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => {
                    let d = (x - y).abs();
                    d <= 0.01 || d <= 1e-6 * x.abs().max(y.abs())
                }
                _ => false,
            }
        }
        _ => false,
    }
}

fn rows_match(a: &Rows, b: &Rows) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("{} rows, expected {}", a.len(), b.len()));
    }
    for (i, (ra, rb)) in a.iter().zip(b).enumerate() {
        if ra.len() != rb.len() {
            return Some(format!(
                "row {i}: {} columns, expected {}",
                ra.len(),
                rb.len()
            ));
        }
        for (j, (va, vb)) in ra.iter().zip(rb).enumerate() {
            if !values_match(va.as_deref(), vb.as_deref()) {
                return Some(format!("row {i} column {j}: {va:?}, expected {vb:?}"));
            }
        }
    }
    None
}

/// A sort key for comparing results whose order is not fixed: numbers are
/// rounded to the cent so that small differences do not reorder rows.
fn sort_key(row: &[Option<String>]) -> Vec<String> {
    row.iter()
        .map(|v| match v {
            None => "\u{0}NULL".to_string(),
            Some(s) => match s.trim().parse::<f64>() {
                Ok(x) => format!("{:+020.2}", x),
                Err(_) => s.trim_end().to_string(),
            },
        })
        .collect()
}

/// Compares a result with the expected one: in order, or if the query's order
/// is not total (or the in-order comparison fails on ties), as sorted rows.
pub fn compare(q: &Query, got: &Rows, want: &Rows) -> Option<String> {
    let in_order = rows_match(got, want);
    if in_order.is_none() || (q.total_order && got.len() != want.len()) {
        return in_order;
    }
    let mut g = got.clone();
    let mut w = want.clone();
    g.sort_by_cached_key(|r| sort_key(r));
    w.sort_by_cached_key(|r| sort_key(r));
    match rows_match(&g, &w) {
        None if q.total_order => Some(format!(
            "same rows in another order ({})",
            in_order.unwrap_or_default()
        )),
        other => other,
    }
}

/// Parses `--queries 1,3,5-7`.
pub fn parse_queries(s: &str) -> CliResult<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |x: &str| -> CliResult<u32> {
            let n: u32 = x
                .trim()
                .trim_start_matches(['q', 'Q'])
                .parse()
                .map_err(|_| CliError(format!("--queries: {x:?} is not a query number")))?;
            if !(1..=22).contains(&n) {
                return Err(CliError(format!("--queries: {n} is not in 1..22")));
            }
            Ok(n)
        };
        match part.split_once('-') {
            Some((a, b)) => out.extend(num(a)?..=num(b)?),
            None => out.push(num(part)?),
        }
    }
    Ok(out)
}

pub async fn run(args: &WorkloadArgs) -> CliResult {
    let url = args.url.as_deref().ok_or_else(|| {
        CliError("tpch run needs --url postgres://root@HOST:PORT/defaultdb".into())
    })?;
    let selected = match &args.queries {
        Some(s) => parse_queries(s)?,
        None => (1..=22).collect(),
    };
    let timeout = args.query_timeout;
    let mut client = sql_connect(url).await?;
    let mut expected = match &args.expected_url {
        Some(u) => Some(sql_connect(u).await?),
        None => None,
    };
    println!(
        "tpch run: {url}{}",
        args.expected_url
            .as_deref()
            .map(|u| format!(", expected results from {u}"))
            .unwrap_or_default()
    );
    println!(
        "{:<4} {:>7} {:>11} {:>11}  result",
        "q", "rows", "time(ms)", "expect(ms)"
    );
    let (mut ok, mut failed, mut errors) = (0, 0, 0);
    for wanted in selected {
        let q = &QUERIES[wanted as usize - 1];
        let n = q.number;
        let start = Instant::now();
        let got = run_query(&client, q.sql, timeout).await;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let mut want_ms = None;
        let want = match &expected {
            Some(c) => {
                let start = Instant::now();
                let w = run_query(c, q.sql, timeout).await;
                want_ms = Some(start.elapsed().as_secs_f64() * 1e3);
                Some(w)
            }
            None => None,
        };
        let want_col = want_ms
            .map(|m| format!("{m:.1}"))
            .unwrap_or_else(|| "-".into());
        match got {
            Err(e) => {
                errors += 1;
                println!("Q{n:<3} {:>7} {ms:>11.1} {want_col:>11}  ERROR {e}", "-");
                if e.starts_with("timed out") {
                    // The statement may still run there: start afresh.
                    let _ = client
                        .cancel_token()
                        .cancel_query(tokio_postgres::NoTls)
                        .await;
                    client = sql_connect(url).await?;
                }
            }
            Ok(rows) => {
                let verdict = match &want {
                    None => Ok(()),
                    Some(Err(e)) => Err(format!("the expected server failed: {e}")),
                    Some(Ok(w)) => match compare(q, &rows, w) {
                        None => Ok(()),
                        Some(diff) => Err(diff),
                    },
                };
                match verdict {
                    Ok(()) => {
                        ok += 1;
                        println!("Q{n:<3} {:>7} {ms:>11.1} {want_col:>11}  OK", rows.len());
                    }
                    Err(diff) => {
                        failed += 1;
                        println!(
                            "Q{n:<3} {:>7} {ms:>11.1} {want_col:>11}  FAIL {diff}",
                            rows.len()
                        );
                    }
                }
            }
        }
        if let (Some(Err(e)), Some(u)) = (&want, &args.expected_url)
            && e.starts_with("timed out")
        {
            expected = Some(sql_connect(u).await?);
        }
    }
    println!("tpch run: {ok} OK, {failed} FAIL, {errors} ERROR");
    if failed + errors > 0 {
        return Err(CliError(format!(
            "{} of the queries failed or errored",
            failed + errors
        )));
    }
    Ok(())
}

pub async fn check(_args: &WorkloadArgs) -> CliResult {
    println!(
        "tpch check: results are checked by `workload run tpch --expected-url URL` \
         (a PostgreSQL loaded from `workload init tpch --csv-dir DIR`)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[&[&str]]) -> Rows {
        v.iter()
            .map(|r| r.iter().map(|s| Some(s.to_string())).collect())
            .collect()
    }

    #[test]
    fn values_compare_with_tolerance() {
        assert!(values_match(Some("BUILDING  "), Some("BUILDING")));
        assert!(values_match(Some("25.5"), Some("25.5000000000000000")));
        assert!(values_match(Some("1000000.004"), Some("1000000.00")));
        assert!(!values_match(Some("1.5"), Some("1.7")));
        assert!(!values_match(Some("a"), None));
    }

    #[test]
    fn unordered_results_compare_sorted() {
        let q = &QUERIES[2];
        assert!(!q.total_order);
        let a = rows(&[&["1", "x"], &["2", "y"]]);
        let b = rows(&[&["2", "y"], &["1", "x"]]);
        assert_eq!(compare(q, &a, &b), None);
        let q1 = &QUERIES[0];
        assert!(compare(q1, &a, &b).is_some_and(|d| d.contains("another order")));
        assert!(compare(q, &a, &rows(&[&["1", "x"]])).is_some());
    }

    #[test]
    fn query_lists_parse() {
        assert_eq!(
            parse_queries("1,3, 5-7,Q22").ok(),
            Some(vec![1, 3, 5, 6, 7, 22])
        );
        assert!(parse_queries("23").is_err());
        assert!(parse_queries("x").is_err());
    }
}
