//! `workload init tpch` and `workload run tpch` against `tardigrade demo` at
//! scale factor 0.01: the load succeeds, and queries Tardigrade runs today
//! succeed with the row counts PostgreSQL 15 returns on the same data (counted
//! once and written down here). To stay near a minute in a debug build the
//! test runs a quick subset ([`QUICK`]); `TPCH_TEST_ALL=1` runs every query in
//! [`WORKING`] (Q17, Q21 and Q22 also work but take 10-60 s each; Q4, Q19 and
//! Q20 do not finish in minutes, see bench/tpch.md). When
//! PostgreSQL is installed, the test also loads it from `init --csv-dir` and
//! runs with `--expected-url`, comparing every value; without it, that
//! comparison is skipped with a note.

mod common;

use std::path::Path;
use std::process::Command;

use common::postgres::{Postgres, start_postgres};
use common::{start_demo, tardigrade, text};

/// Queries that run on Tardigrade in seconds, with PostgreSQL's row counts at SF 0.01.
const WORKING: &[(u32, usize)] = &[
    (1, 4),
    (2, 5),
    (3, 10),
    (5, 5),
    (6, 1),
    (7, 4),
    (8, 2),
    (9, 175),
    (10, 20),
    (11, 155),
    (12, 2),
    (13, 26),
    (14, 1),
    (15, 1),
    (16, 311),
    (18, 0),
];

/// The queries the test runs unless `TPCH_TEST_ALL` is set.
const QUICK: &[u32] = &[1, 2, 3, 6, 9, 11, 13, 16];

/// Loads the same data into PostgreSQL (from `init --csv-dir`); its URL, or
/// `None` with a note when PostgreSQL cannot be had here.
fn postgres_with_the_data(sf: &str, csv: &Path) -> Option<Postgres> {
    let pg = start_postgres()?;
    let out = tardigrade(&[
        "workload",
        "init",
        "tpch",
        "--scale-factor",
        sf,
        "--csv-dir",
        &csv.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let load = Command::new("psql")
        .args(["-X", "-q", "-d", &pg.url, "-f", "load.sql"])
        .current_dir(csv)
        .output();
    match load {
        Ok(o) if o.status.success() => Some(pg),
        Ok(o) => panic!("psql load failed: {}", text(&o.stderr)),
        Err(e) => {
            println!("note: psql cannot run ({e}); skipping the comparison");
            None
        }
    }
}

/// Loads scale factor `sf` into a fresh `tardigrade demo`, runs `queries`
/// (compared with PostgreSQL when it can be had) and checks each one's row
/// count and verdict.
fn load_and_run(sf: &str, orders: usize, queries: &[(u32, usize)]) {
    let (_demo, urls) = start_demo(&[]);
    let url = urls[0].clone();

    let out = tardigrade(&[
        "workload",
        "init",
        "tpch",
        "--scale-factor",
        sf,
        "--url",
        &url,
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for (table, rows) in [("region", 5), ("nation", 25), ("orders", orders)] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{table} ")))
            .unwrap_or_else(|| panic!("no progress line for {table}: {stdout}"));
        assert!(line.contains(&format!(" {rows} rows")), "{line}");
    }

    let csv = tempfile::tempdir().expect("tempdir");
    let pg = postgres_with_the_data(sf, csv.path());
    let list: Vec<String> = queries.iter().map(|(q, _)| q.to_string()).collect();
    let list = list.join(",");
    let mut args = vec!["workload", "run", "tpch", "--url", &url, "--queries", &list];
    if let Some(pg) = &pg {
        args.extend(["--expected-url", &pg.url]);
    }
    let out = tardigrade(&args);
    let stdout = text(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for (q, rows) in queries {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("Q{q} ")))
            .unwrap_or_else(|| panic!("no line for Q{q}: {stdout}"));
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f[1], rows.to_string(), "Q{q} row count: {line}");
        assert_eq!(f.last().copied(), Some("OK"), "{line}");
    }
}

#[test]
fn tpch_loads_and_runs_the_working_queries() {
    let all = std::env::var_os("TPCH_TEST_ALL").is_some();
    let chosen: Vec<(u32, usize)> = WORKING
        .iter()
        .copied()
        .filter(|(q, _)| all || QUICK.contains(q))
        .collect();
    load_and_run("0.01", 15_000, &chosen);
}

/// PostgreSQL's row counts of all 22 queries at SF 0.001.
const ALL_AT_SF_0_001: &[(u32, usize)] = &[
    (1, 4),
    (2, 0),
    (3, 10),
    (4, 5),
    (5, 1),
    (6, 1),
    (7, 0),
    (8, 1),
    (9, 49),
    (10, 20),
    (11, 0),
    (12, 2),
    (13, 20),
    (14, 1),
    (15, 1),
    (16, 34),
    (17, 1),
    (18, 0),
    (19, 1),
    (20, 0),
    (21, 0),
    (22, 4),
];

/// Every query, Q4, Q19 and Q20 included, gives PostgreSQL's answer on a
/// tiny data set (those three are quadratic on Tardigrade today: Q4 alone
/// takes ~25 s here in a debug build).
#[test]
#[ignore = "about a minute in a debug build; run with --ignored"]
fn tpch_all_22_queries_at_a_tiny_scale() {
    load_and_run("0.001", 1_500, ALL_AT_SF_0_001);
}
