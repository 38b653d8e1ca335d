//! SQLAlchemy 2 (PostgreSQL dialect over psycopg 3, from PyPI) against
//! `tardigrade demo`: runs `tests/python/sqlalchemy_smoke.py` (ORM models,
//! create_all, CRUD, a nested transaction, table and column reflection).
//! Skipped with a note when Python, psycopg or SQLAlchemy is missing
//! (`.ci/run` installs them).

mod common;

#[test]
fn sqlalchemy_orm_create_all_crud_savepoint_and_reflection() {
    if !common::have_python_modules(&["psycopg", "sqlalchemy"], "psycopg 3 and SQLAlchemy 2") {
        return;
    }
    let (_demo, urls) = common::start_demo(&[]);
    // The demo prints postgresql://…; SQLAlchemy names the driver.
    let url = urls[0].replacen("postgresql://", "postgresql+psycopg://", 1);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/sqlalchemy_smoke.py"
    );
    common::run_python(script, &[&url]);
}
