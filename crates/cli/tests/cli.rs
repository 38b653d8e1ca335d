//! Runs the built `tardigrade` binary.

mod common;

use common::{free_addr, start_node};

use std::process::{Command, Output};

fn tardigrade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tardigrade"))
        .args(args)
        .output()
        .expect("run tardigrade")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version() {
    let out = tardigrade(&["version"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("tardigrade "), "{out:?}");
}

#[test]
fn bad_flags_are_clap_errors() {
    for args in [
        &["workload", "run", "kv", "--duration", "3x"][..],
        &["workload", "run", "kv", "--duration", "soon"],
        &["workload", "run", "nosuch"],
        &["workload", "run", "kv", "--read-percent", "101"],
        &["debug", "kv", "scan", "a"],
        &["start-single-node", "--listen-addr", "nonsense"],
        &["start-single-node", "--store", "type=disk"],
    ] {
        let out = tardigrade(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(text(&out.stderr).contains("error:"), "{args:?}: {out:?}");
        assert!(!text(&out.stderr).contains("panicked"), "{args:?}: {out:?}");
    }
}

#[test]
fn unreachable_host_is_a_clear_error() {
    let addr = free_addr();
    let host = format!("--host={addr}");
    for args in [
        &["debug", "kv", "get", "k", &host][..],
        &["debug", "kv", &host, "put", "k", "v"],
        &["workload", "run", "kv", &host, "--duration", "1s"],
        &["workload", "check", "bank", &host],
    ] {
        let out = tardigrade(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(
            stderr.contains(&format!("cannot reach a node at {addr}")),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn workload_kv_init_and_check_need_no_node() {
    let out = tardigrade(&["workload", "init", "kv", "--host=127.0.0.1:1"]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stdout).contains("nothing to do"));
}

#[test]

fn single_node_put_get_scan_del() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let (_node, addr) = start_node(&store);
    let host = format!("--host={addr}");

    let out = tardigrade(&["debug", "kv", "put", "hello", "world", &host]);
    assert!(out.status.success(), "{out:?}");
    let out = tardigrade(&["debug", "kv", "put", "hello2", "wor\\ld", &host]);
    assert!(out.status.success(), "{out:?}");

    let out = tardigrade(&["debug", "kv", "get", "hello", &host]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout).trim(), "world");

    let out = tardigrade(&["debug", "kv", "scan", "a", "z", &host]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "hello -> world\nhello2 -> wor\\\\ld\n");
    let out = tardigrade(&["debug", "kv", "scan", "a", "z", "--limit", "1", &host]);
    assert_eq!(text(&out.stdout), "hello -> world\n");

    let out = tardigrade(&["debug", "kv", "del", "hello", &host]);
    assert!(out.status.success(), "{out:?}");
    let out = tardigrade(&["debug", "kv", "get", "hello", &host]);
    assert_eq!(text(&out.stdout).trim(), "(not found)");

    // A second node on the same store is refused while the first runs.
    let out = tardigrade(&[
        "start-single-node",
        &format!("--store={}", store.display()),
        &format!("--listen-addr={}", free_addr()),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("in use by another process"),
        "{out:?}"
    );
}

#[test]

fn bank_workload_keeps_its_invariant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_node, addr) = start_node(&dir.path().join("store"));
    let host = format!("--host={addr}");
    let ok = |args: &[&str]| {
        let out = tardigrade(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        text(&out.stdout)
    };
    ok(&["workload", "init", "bank", &host, "--accounts", "50"]);
    ok(&["workload", "init", "bank", &host, "--accounts", "50"]); // idempotent
    let out = tardigrade(&["workload", "init", "bank", &host, "--accounts", "60"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let run = ok(&[
        "workload",
        "run",
        "bank",
        &host,
        "--accounts",
        "50",
        "--duration",
        "2s",
        "--concurrency",
        "4",
        "--seed",
        "1",
    ]);
    let last = run.lines().last().unwrap_or_default();
    assert!(last.starts_with("summary ops/s="), "{run}");
    assert!(last.ends_with(" errors=0"), "{run}");
    let check = ok(&["workload", "check", "bank", &host, "--accounts", "50"]);
    assert_eq!(check.trim(), "bank check: OK sum=50000 accounts=50");
}

#[test]
fn a_bad_testing_latency_is_refused_at_startup() {
    for bad in [
        "us-east1:us-west1",
        "us-east1=33ms",
        "us-east1:us-west1=33",
        "us-east1:us-west1=1ms,us-west1:us-east1=2ms",
    ] {
        let flag = format!("--testing-latency={bad}");
        let out = tardigrade(&["start", "--insecure", "--store=type=mem", &flag]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        assert!(
            text(&out.stderr).contains("--testing-latency <MAP>"),
            "{bad}: {out:?}"
        );
    }
    // Well-formed, but useless to this node: refused before it listens.
    let listen = format!("--listen-addr={}", free_addr());
    let http = format!("--http-addr={}", free_addr());
    for (locality, why) in [
        (
            "region=asia-east1,zone=a",
            "no delay for this node's region \"asia-east1\"",
        ),
        (
            "zone=a",
            "needs this node's --locality to have a region tier",
        ),
    ] {
        let out = tardigrade(&[
            "start",
            "--insecure",
            "--store=type=mem",
            &listen,
            &http,
            &format!("--locality={locality}"),
            "--testing-latency=us-east1:us-west1=33ms",
        ]);
        assert_eq!(out.status.code(), Some(1), "{locality}: {out:?}");
        assert!(text(&out.stderr).contains(why), "{locality}: {out:?}");
    }
}
