//! `tardigrade demo` and `tardigrade sql` as a user runs them: the demo prints a
//! connection URL, `tardigrade sql` connects to it and prints psql-style tables,
//! errors go to stderr with their SQLSTATE, and SIGTERM stops the demo cleanly.
//! `demo --global` runs nine nodes in three regions whose localities SQL knows.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::start_demo;

fn sql(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tardigrade"))
        .arg("sql")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tardigrade sql")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn demo_prints_a_url_that_sql_connects_to_and_stops_on_sigterm() {
    let (mut demo, urls) = start_demo(&[]);
    assert_eq!(urls.len(), 1, "{urls:?}");
    let url = &urls[0];
    assert!(
        url.starts_with("postgresql://root@127.0.0.1:")
            && url.ends_with("/defaultdb?sslmode=disable"),
        "{url}"
    );

    let out = sql(&["--url", url, "-e", "SELECT 1"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        " ?column?\n----------\n        1\n(1 row)\n\n"
    );
    let out = sql(&["--url", url, "-e", "BEGIN", "-e", "COMMIT"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "OK\nOK\n");

    let out = sql(&["--url", url, "-e", "SELEC 1", "-e", "SELECT 2"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("ERROR: syntax error"), "{err}");
    assert!(err.contains("SQLSTATE: 42601"), "{err}");
    assert!(!text(&out.stdout).contains('2'), "stops at the first error");

    // --host works as well as --url.
    let host = url
        .trim_start_matches("postgresql://root@")
        .split('/')
        .next()
        .expect("host")
        .to_string();
    let out = sql(&["--host", &host, "-e", "SELECT 1"]);
    assert!(out.status.success(), "{out:?}");

    // Statements from stdin, terminated by semicolons.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tardigrade"))
        .args(["sql", "--url", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sql");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"SELECT\n  1;\nBEGIN; COMMIT;\n")
            .expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stdout).contains("(1 row)"), "{out:?}");

    stop_with_sigterm(&mut demo);
}

/// Sends SIGTERM and waits for a clean exit (which also removes the
/// stores a multi-node demo keeps on tmpfs).
fn stop_with_sigterm(demo: &mut common::Node) {
    let pid = demo.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = demo.0.try_wait().expect("wait") {
            assert!(
                status.success(),
                "demo exits cleanly on SIGTERM: {status:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "demo did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_node_demo_serves_sql_on_every_node() {
    let (mut demo, urls) = start_demo(&["--nodes", "3"]);
    assert_eq!(urls.len(), 3, "{urls:?}");
    for url in &urls {
        let out = sql(&[
            "--url", url, "-e", "BEGIN", "-e", "SELECT 1", "-e", "COMMIT",
        ]);
        assert!(out.status.success(), "{url}: {out:?}");
    }
    stop_with_sigterm(&mut demo);
}

#[test]
fn global_demo_runs_nine_nodes_in_three_regions() {
    let started = Instant::now();
    let (mut demo, urls) = start_demo(&["--global"]);
    println!("the global demo started in {:?}", started.elapsed());
    assert_eq!(urls.len(), 3, "one URL per region: {urls:?}");
    for url in &urls {
        let out = sql(&["--url", url, "-e", "SELECT 1"]);
        assert!(out.status.success(), "{url}: {out:?}");
    }
    // The nodes' localities are known to SQL: a lease preference naming
    // one of the regions is accepted, one naming no node is refused.
    let out = sql(&[
        "--url",
        &urls[2],
        "-e",
        "CREATE TABLE t (k INT PRIMARY KEY)",
        "-e",
        "ALTER TABLE t CONFIGURE ZONE USING lease_preferences = '[[+region=europe-west1]]'",
        "-e",
        "ALTER TABLE t CONFIGURE ZONE USING constraints = '[+zone=us-west1-c]'",
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = sql(&[
        "--url",
        &urls[0],
        "-e",
        "ALTER TABLE t CONFIGURE ZONE USING constraints = '[+region=asia-east1]'",
    ]);
    assert!(
        text(&out.stderr).contains("matches no existing nodes"),
        "{out:?}"
    );
    stop_with_sigterm(&mut demo);
}

#[test]
fn global_demo_refuses_another_node_count() {
    let out = common::tardigrade(&["demo", "--global", "--nodes", "3"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("--global starts 9 nodes"),
        "{out:?}"
    );
}
