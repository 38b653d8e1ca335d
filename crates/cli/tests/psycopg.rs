//! psycopg 3 (from PyPI) against `tardigrade demo`: runs
//! `tests/python/psycopg_smoke.py`. Skipped with a note when Python or psycopg
//! is missing (`.ci/run` installs `psycopg[binary]`).

mod common;

use std::process::Command;

fn have_psycopg() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import psycopg"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!(
            "note: python3 with psycopg 3 is not installed; skipping (CI installs psycopg[binary])"
        );
    }
    ok
}

fn run(mode: &str) {
    if !have_psycopg() {
        return;
    }
    let (_demo, urls) = common::start_demo(&[]);
    let url = urls[0].clone();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/psycopg_smoke.py");
    common::run_python(script, &[&url, mode]);
}

#[test]
fn psycopg_basic() {
    run("basic");
}

#[test]
fn psycopg_full() {
    run("full");
}
