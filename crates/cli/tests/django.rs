//! Django (PostgreSQL backend over psycopg 3, from PyPI) against
//! `tardigrade demo`: runs `tests/python/django_smoke/django_smoke.py`
//! (migrate of contenttypes, auth and an app; bulk_create, annotate, JSON
//! lookups, nested atomic blocks, iterator). Skipped with a note when Python,
//! psycopg or Django is missing (`.ci/run` installs them).

mod common;

#[test]
fn django_migrate_orm_queries_transactions_and_iterator() {
    if !common::have_python_modules(&["psycopg", "django"], "psycopg 3 and Django 5") {
        return;
    }
    let (_demo, urls) = common::start_demo(&[]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/django_smoke/django_smoke.py"
    );
    common::run_python(script, &[&urls[0]]);
}
