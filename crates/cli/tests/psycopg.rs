//! psycopg 3 (from PyPI) against `tardigrade demo`: runs
//! `tests/python/psycopg_smoke.py`. Skipped with a note when Python or psycopg
//! is missing (`.ci/run` installs `psycopg[binary]`).

mod common;

fn run(mode: &str) {
    if !common::have_python_modules(&["psycopg"], "psycopg 3") {
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
