//! Django (PostgreSQL backend over psycopg 3, from PyPI) against
//! `tardigrade demo`: runs `tests/python/django_smoke/django_smoke.py`
//! (migrate of contenttypes, auth and an app; bulk_create, annotate, JSON
//! lookups, nested atomic blocks, iterator). Skipped with a note when Python,
//! psycopg or Django is missing (`.ci/run` installs them).

mod common;

use std::process::Command;

fn have_django() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import psycopg, django"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("note: python3 with psycopg 3 and Django 5 is not installed; skipping");
    }
    ok
}

#[test]
fn django_migrate_orm_queries_transactions_and_iterator() {
    if !have_django() {
        return;
    }
    let (_demo, urls) = common::start_demo(&[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/django_smoke/django_smoke.py"
    );
    common::run_python(script, &[&urls[0]]);
}
