//! Django's own test suite, for the apps issue 13 names (basic, queries,
//! expressions, aggregation, annotations, lookup, model_fields,
//! transactions, migrations, schema, backends), run against `tardigrade
//! demo` with the stock PostgreSQL backend over psycopg 3.
//!
//! `tests/python/django_suite/run.py` runs each app with Django's
//! `runtests.py` from the `tests/` directory of the installed Django's
//! source distribution, found through `DJANGO_TESTS_DIR` (`.ci/run` fetches
//! it from PyPI into `target/django-tests/`), and fails when the outcome
//! drifts from `expected_failures.txt` either way: a test fails that is not
//! listed, or a listed test no longer fails. See docs/peer-suites.md.
//! Skipped with a note when Python, psycopg, Django or the test directory
//! is missing.

mod common;

use std::process::Command;

#[test]
fn django_test_suite_matches_expected_failures() {
    if !common::have_python_modules(&["psycopg", "django"], "psycopg 3 and Django") {
        return;
    }
    let tests_dir = std::env::var("DJANGO_TESTS_DIR").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/django-tests/tests"
        )
        .to_string()
    });
    if !std::path::Path::new(&tests_dir)
        .join("runtests.py")
        .exists()
    {
        eprintln!(
            "skipping: Django's test suite is not at {tests_dir} (set DJANGO_TESTS_DIR; .ci/run fetches it)"
        );
        return;
    }
    let (_demo, urls) = common::start_demo(&[]);
    // postgresql://root@127.0.0.1:PORT/defaultdb?sslmode=disable → host:port
    let addr = urls[0]
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("demo URL has host:port")
        .to_string();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/django_suite/run.py"
    );
    let out = Command::new("python3")
        .args([script, &addr, "--tests-dir", &tests_dir, "--timeout", "600"])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "Django's test suite drifted from expected_failures.txt\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
