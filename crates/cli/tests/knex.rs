//! node-postgres and knex (from npm) against `tardigrade demo`: runs
//! `tests/node/knex_smoke.js` (schema building, hasTable/hasColumn,
//! RETURNING, JSONB and NUMERIC values, a nested transaction, migrations).
//! Skipped with a note when Node.js or the packages are missing (`.ci/run`
//! installs them into `tests/node/node_modules`).

mod common;

use std::path::Path;
use std::process::Command;

fn node_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node"))
}

fn have_knex() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let packages = node_dir().join("node_modules/knex").is_dir()
        && node_dir().join("node_modules/pg").is_dir();
    if !(node && packages) {
        println!(
            "note: Node.js with knex and pg in tests/node/node_modules is not installed; skipping (.ci/run installs them)"
        );
    }
    node && packages
}

#[test]
fn knex_schema_queries_transactions_and_migrations() {
    if !have_knex() {
        return;
    }
    let (_demo, urls) = common::start_demo(&[]);
    let script = node_dir().join("knex_smoke.js");
    common::run_script("node", &script.to_string_lossy(), &[&urls[0]]);
}
