//! `tardigrade debug split` against a node started from the CLI: a new
//! cluster starts with meta, system and table ranges; a split at a key adds
//! a range that `debug ranges` lists; bad keys are refused with a message.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{free_addr, start_cluster_node, wait_for_line};

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
fn debug_split_adds_a_range_and_refuses_bad_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let http = free_addr();
    let (_node, rx) = start_cluster_node(&dir.path().join("n1"), &addr, &http, "");
    let host = format!("--host={addr}");
    let out = tardigrade(&["init", "--insecure", &host]);
    assert!(out.status.success(), "init: {out:?}");
    wait_for_line(&rx, "node started: node id ", Duration::from_secs(30));

    let ranges = |out: &Output| {
        text(&out.stdout)
            .lines()
            .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
            .count()
    };
    let before = tardigrade(&["debug", "ranges", &host]);
    assert!(before.status.success(), "{before:?}");
    assert_eq!(ranges(&before), 3, "meta, system, table: {before:?}");

    let out = tardigrade(&["debug", "split", &host, "\\x90abc"]);
    assert!(out.status.success(), "split: {out:?}");
    assert!(text(&out.stdout).contains("split at "), "{out:?}");
    let after = tardigrade(&["debug", "ranges", &host]);
    assert_eq!(ranges(&after), 4, "{after:?}");

    for (key, needle) in [
        ("\\x03meta", "meta span"),
        ("\\x90abc", "already the start"),
        ("\\xZZ", "bad escape"),
    ] {
        let out = tardigrade(&["debug", "split", &host, key]);
        assert_eq!(out.status.code(), Some(1), "{key}: {out:?}");
        assert!(text(&out.stderr).contains(needle), "{key}: {out:?}");
    }
}
