//! Plans without a database: a catalog of tables made from `CREATE TABLE`
//! text, with statistics injected by the test instead of collected, and the
//! plans the optimizer chooses over them, printed as `EXPLAIN` prints them.
//!
//! The plan golden files under `testdata/opt/` run through it
//! (`tests/opt.rs`): no KV store, no data, no session, so a file states the
//! tables, their statistics and the expected plans, and nothing else
//! decides them. Its `disable=` option plans with a rule turned off, which
//! is how the files show what each rule does. Like CockroachDB's
//! `opttester`.
//!
//! Takes SQL text; gives plan lines. Uses the binder and optimizer of
//! [`crate::plan`] and [`crate::ddl`]'s descriptor building; writes nothing.

use std::sync::Arc;

use sqlparser::ast::Statement;
use tardigrade_sqltypes::{SqlError, SqlResult, Value};

use crate::catalog::{DescId, TableDesc};
use crate::parse::{Stmt, parse};
use crate::plan::Binder;
use crate::plan::bind::TableMap;
use crate::plan::explain::{Options, render_with};
use crate::plan::rules::Rules;
use crate::stats::{Bucket, ColumnStats, StatsMap, TableStats};

/// The database every test table belongs to.
const TEST_DATABASE_ID: DescId = 50;

/// Tables and their statistics.
#[derive(Default)]
pub struct TestCatalog {
    tables: TableMap,
    stats: StatsMap,
    next_id: DescId,
}

/// How to plan and print.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlanOptions {
    /// The logical plan before the physical choices (`EXPLAIN (OPT)`).
    pub logical: bool,
    pub render: Options,
    pub rules: Rules,
}

impl TestCatalog {
    pub fn new() -> TestCatalog {
        TestCatalog {
            next_id: 100,
            ..TestCatalog::default()
        }
    }

    /// Runs `CREATE TABLE` statements: columns, keys, indexes and checks
    /// (foreign keys are left out: plans do not use them).
    pub fn exec_ddl(&mut self, sql: &str) -> SqlResult<()> {
        for stmt in parse(sql)? {
            let Stmt::Sql(statement) = stmt else {
                return Err(SqlError::unsupported("only CREATE TABLE in a test catalog"));
            };
            let Statement::CreateTable(ct) = *statement else {
                return Err(SqlError::unsupported("only CREATE TABLE in a test catalog"));
            };
            let name = crate::plan::bind::table_name(&ct.name);
            if self.tables.contains_key(&name) {
                return Err(SqlError::new(
                    "42P07",
                    format!("relation \"{name}\" already exists"),
                ));
            }
            let (t, _fks, _identities) =
                crate::ddl::table_from_create(self.next_id, TEST_DATABASE_ID, &name, &ct)?;
            self.next_id += 1;
            self.tables.insert(name, Arc::new(t));
        }
        Ok(())
    }

    /// Sets `table`'s statistics from `text`, one line each:
    ///
    /// ```text
    /// rows=10000
    /// <column> distinct=N [nulls=N] [histogram=<upper>:<eq>:<range>:<distinct range> …]
    /// ```
    ///
    /// Columns without a line have no statistics (the defaults apply).
    pub fn inject_stats(&mut self, table: &str, text: &str) -> SqlResult<()> {
        let desc = self.table(table)?;
        let mut stats = TableStats {
            row_count: 0,
            created_micros: 0,
            generation: 1,
            columns: Vec::new(),
        };
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(n) = line.strip_prefix("rows=") {
                stats.row_count = number(n)?;
                continue;
            }
            stats.columns.push(column_stats(&desc, line)?);
        }
        for c in &mut stats.columns {
            c.row_count = stats.row_count;
        }
        self.stats.insert(desc.id, Arc::new(stats));
        Ok(())
    }

    /// The memos join ordering filled for the query `sql`, as
    /// `EXPLAIN (OPT, MEMO)` prints them after the plan.
    pub fn memo(&self, sql: &str, rules: Rules) -> SqlResult<Vec<String>> {
        let mut stmts = parse(sql)?;
        let Some(Stmt::Sql(statement)) = stmts.pop() else {
            return Err(SqlError::unsupported("only queries have a memo"));
        };
        let Statement::Query(q) = &*statement else {
            return Err(SqlError::unsupported("only queries have a memo"));
        };
        let mut binder = Binder::new(&self.tables, &[]).with_stats(self.stats.clone());
        let bound = binder.bind_query(q)?;
        let mut memos = Vec::new();
        crate::plan::index::optimize_logical_recording(bound.rel, rules, &mut memos);
        Ok(crate::plan::memo::Memo::render_all(&memos))
    }

    fn table(&self, name: &str) -> SqlResult<Arc<TableDesc>> {
        self.tables
            .get(name)
            .cloned()
            .ok_or_else(|| SqlError::undefined_table(name))
    }

    /// The plan of the query or DML statement `sql`, as `EXPLAIN` (or
    /// `EXPLAIN (OPT)` with `logical`) prints it.
    pub fn explain(&self, sql: &str, options: PlanOptions) -> SqlResult<Vec<String>> {
        let mut stmts = parse(sql)?;
        if stmts.len() != 1 {
            return Err(SqlError::syntax("one statement at a time"));
        }
        let Some(Stmt::Sql(statement)) = stmts.pop() else {
            return Err(SqlError::unsupported("only queries and DML are planned"));
        };
        let mut binder = Binder::new(&self.tables, &[]).with_stats(self.stats.clone());
        match &*statement {
            Statement::Query(q) => {
                let bound = binder.bind_query(q)?;
                let rel = if options.logical {
                    crate::plan::index::optimize_logical_with(bound.rel, options.rules)
                } else {
                    crate::plan::index::optimize_with(bound.rel, options.rules)
                };
                Ok(render_with(&rel, options.render, None))
            }
            // DML's source plans take the rules through the binder.
            // TODO(issue 12): DML as a plan operator, so that one tree holds
            // the whole statement.
            other => {
                let mut binder = binder.with_rules(options.rules);
                let dml = crate::plan::dml::bind_dml(&mut binder, other)?;
                Ok(dml.explain(options.render, None))
            }
        }
    }
}

fn number(s: &str) -> SqlResult<u64> {
    s.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| SqlError::syntax(format!("not a count: {s}")))
}

fn float(s: &str) -> SqlResult<f64> {
    s.trim()
        .parse()
        .map_err(|_| SqlError::syntax(format!("not a number: {s}")))
}

/// One `<column> distinct=N …` line.
fn column_stats(desc: &TableDesc, line: &str) -> SqlResult<ColumnStats> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    let column = desc
        .column_by_name(name)
        .ok_or_else(|| SqlError::new("42703", format!("column \"{name}\" does not exist")))?;
    let mut c = ColumnStats {
        column: column.id,
        name: "injected".into(),
        created_micros: 0,
        row_count: 0,
        distinct_count: 0,
        null_count: 0,
        histogram: Vec::new(),
    };
    let mut in_histogram = false;
    for w in words {
        if let Some(n) = w.strip_prefix("distinct=") {
            c.distinct_count = number(n)?;
        } else if let Some(n) = w.strip_prefix("nulls=") {
            c.null_count = number(n)?;
        } else if let Some(b) = w.strip_prefix("histogram=") {
            in_histogram = true;
            c.histogram.push(bucket(b, column.ty)?);
        } else if in_histogram && !w.contains('=') {
            c.histogram.push(bucket(w, column.ty)?);
        } else {
            return Err(SqlError::syntax(format!("unknown statistic: {w}")));
        }
    }
    Ok(c)
}

/// `<upper>:<num_eq>:<num_range>:<distinct_range>`.
fn bucket(s: &str, ty: tardigrade_sqltypes::SqlType) -> SqlResult<Bucket> {
    let parts: Vec<&str> = s.rsplitn(4, ':').collect();
    let [distinct_range, num_range, num_eq, upper] = parts[..] else {
        return Err(SqlError::syntax(format!(
            "a bucket is upper:eq:range:distinct_range, not {s}"
        )));
    };
    Ok(Bucket {
        upper: Value::from_text(upper, ty)?,
        num_eq: float(num_eq)?,
        num_range: float(num_range)?,
        distinct_range: float(distinct_range)?,
    })
}
