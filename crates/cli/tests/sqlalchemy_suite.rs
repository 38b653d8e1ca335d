//! SQLAlchemy's own dialect compliance suite (`sqlalchemy.testing.suite`,
//! run through its pytest plugin with the stock PostgreSQL dialect over
//! psycopg 3) against `tardigrade demo` (issue 13).
//!
//! `tests/python/sqla_suite/run.py --subset` runs a fixed subset of the
//! suite (the full suite takes too long for a debug-build `cargo test`) and
//! fails when the outcome drifts from `expected_failures.txt` either way: a
//! test fails that is not listed, or a listed test no longer fails. See
//! docs/peer-suites.md for the full run and its last recorded counts.
//! Skipped with a note when Python, psycopg, SQLAlchemy or pytest is missing
//! (`.ci/run` installs them).

mod common;

use std::process::Command;

#[test]
fn sqlalchemy_compliance_suite_subset_matches_expected_failures() {
    if !common::have_python_modules(
        &["psycopg", "sqlalchemy", "pytest"],
        "psycopg 3, SQLAlchemy 2 and pytest",
    ) {
        return;
    }
    let (_demo, urls) = common::start_demo(&[]);
    // The demo prints postgresql://…; SQLAlchemy names the driver.
    let url = urls[0].replacen("postgresql://", "postgresql+psycopg://", 1);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/sqla_suite/run.py"
    );
    let out = Command::new("python3")
        .args([script, &url, "--subset", "--timeout", "600"])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The counts, for the test log (`cargo test -- --nocapture`).
    println!("{stdout}");
    assert!(
        out.status.success(),
        "SQLAlchemy suite drifted from expected_failures.txt\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
