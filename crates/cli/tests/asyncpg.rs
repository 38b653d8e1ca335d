//! asyncpg (from PyPI) against `tardigrade demo`: runs
//! `tests/python/asyncpg_smoke.py` (extended protocol with binary formats,
//! type introspection through pg_catalog, the pool's reset query, binary
//! COPY). Skipped with a note when Python or asyncpg is missing (`.ci/run`
//! installs it).

mod common;

#[test]
fn asyncpg_smoke() {
    if !common::have_python_modules(&["asyncpg"], "asyncpg") {
        return;
    }
    let (_demo, urls) = common::start_demo(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/asyncpg_smoke.py");
    common::run_python(script, &[&urls[0]]);
}
