//! `psql` against `tardigrade demo`: scripts run unchanged through the real
//! PostgreSQL client (simple protocol, COPY FROM STDIN with inline data, psql's
//! own catalog-free commands). Skipped with a note when `psql` is not installed
//! (`.ci/run` installs it).

mod common;

use std::process::{Command, Output, Stdio};

use common::have_psql;

fn psql(url: &str, script: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("script.sql");
    std::fs::write(&path, script).expect("write script");
    Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f"])
        .arg(&path)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .expect("run psql")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn psql_connects_runs_queries_and_reports_errors() {
    if !have_psql() {
        return;
    }
    let (_demo, urls) = common::start_demo(&[]);
    let url = urls[0].clone();
    let out = psql(&url, "SELECT 1 AS one;\nBEGIN;\nCOMMIT;\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), " one \n-----\n   1\n(1 row)\n\n");

    let out = psql(&url, "SELEC 1;\nSELECT 2;\n");
    assert_eq!(out.status.code(), Some(3), "ON_ERROR_STOP exits 3: {out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("ERROR:  syntax error"), "{err}");
    assert!(!text(&out.stdout).contains('2'), "stopped at the error");

    // The session's user and database are what the session functions say.
    let alice = url.replacen("root@", "alice@", 1);
    let out = psql(
        &alice,
        "\\pset format unaligned\nSELECT current_user, session_user, current_database();\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stdout).contains("alice|alice|defaultdb"),
        "{}",
        text(&out.stdout)
    );

    // A wrong database is refused at connect.
    let other = url.replace("/defaultdb?", "/nosuchdb?");
    let out = psql(&other, "SELECT 1;\n");
    assert!(!out.status.success(), "{out:?}");
    assert!(text(&out.stderr).contains("does not exist"), "{out:?}");
}

#[test]
fn psql_script_with_ddl_dml_and_copy() {
    if !have_psql() {
        return;
    }
    let (_demo, urls) = common::start_demo(&[]);
    let url = urls[0].clone();
    let script = r#"
CREATE TABLE accounts (id INT PRIMARY KEY, owner TEXT NOT NULL, balance DECIMAL(10,2) DEFAULT 0);
INSERT INTO accounts VALUES (1, 'ada', 100.50), (2, 'bob', 20);
COPY accounts (id, owner, balance) FROM STDIN;
3	carol	7.25
4	dave	\N
\.
COPY accounts FROM STDIN WITH (FORMAT csv);
5,"eve, the second",1
\.
UPDATE accounts SET balance = balance + 1 WHERE id = 2;
DELETE FROM accounts WHERE id = 1;
SELECT id, owner, balance FROM accounts ORDER BY id;
BEGIN;
INSERT INTO accounts VALUES (9, 'zed', 0);
ROLLBACK;
SELECT count(*) FROM accounts;
"#;
    let out = psql(&url, script);
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            " id |      owner      | balance \n----+-----------------+---------\n  2 | bob             |   21.00\n  3 | carol           |    7.25\n  4 | dave            |        \n  5 | eve, the second |    1.00\n(4 rows)\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(" count \n-------\n     4\n(1 row)\n"),
        "{stdout}"
    );
    let out = psql(&url, "INSERT INTO accounts VALUES (2, 'dup', 0);\n");
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("duplicate key"), "{out:?}");
}
