//! The differential test harness (issue 13): runs the SQL corpus in
//! `tests/differential/corpus` against a throwaway PostgreSQL 15 and
//! `tardigrade demo` with `tests/python/differential.py`, which compares
//! every statement's result and fails on a difference not listed in
//! `tests/differential/intentional.txt` or `known-failures.txt`, and on a
//! listed one that now matches. Skipped with a note when PostgreSQL 15,
//! Python or psycopg is missing (`.ci/run` installs them). See
//! `docs/differential.md`.

mod common;

use std::process::Command;

use common::postgres::start_postgres;
use common::{have_python_modules, start_demo, text};

#[test]
fn differential_corpus_against_postgres() {
    if !have_python_modules(&["psycopg"], "psycopg 3") {
        return;
    }
    let Some(pg) = start_postgres() else {
        return;
    };
    let (_demo, urls) = start_demo(&[]);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");
    let out = Command::new("python3")
        .arg(format!("{dir}/python/differential.py"))
        .arg(&pg.url)
        .arg(&urls[0])
        .args(["--corpus", &format!("{dir}/differential/corpus")])
        .args([
            "--intentional",
            &format!("{dir}/differential/intentional.txt"),
        ])
        .args(["--known", &format!("{dir}/differential/known-failures.txt")])
        .output()
        .expect("run python3");
    let stdout = text(&out.stdout);
    // The per-file and total counts, visible with --nocapture.
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the differential run failed:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("TOTAL: "), "no summary:\n{stdout}");
}
