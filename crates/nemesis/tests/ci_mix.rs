//! The short fixed CI mix of the nemesis suite: bank, set and register on a
//! three-node cluster of real processes, with faults, checked end to end;
//! and one injected bug, to show the run fails when a checker does.
//!
//! The `tardigrade` binary is the one next to `tardigrade-nemesis` in the
//! target directory (`cargo test --workspace` builds it for the CLI's own
//! tests); when it is missing the test builds it with the same cargo and
//! profile.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The tardigrade binary of this target directory and profile, built if
/// missing.
fn tardigrade_binary() -> PathBuf {
    let nemesis = PathBuf::from(env!("CARGO_BIN_EXE_tardigrade-nemesis"));
    let binary = nemesis.with_file_name("tardigrade");
    if !binary.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let release = nemesis
            .parent()
            .and_then(|d| d.file_name())
            .is_some_and(|n| n == "release");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "tardigrade"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build -p tardigrade");
        assert!(status.success(), "cargo build -p tardigrade failed");
    }
    assert!(
        binary.is_file(),
        "no tardigrade binary at {}",
        binary.display()
    );
    binary
}

/// Runs the suite with `args`; returns its output (printed for the log).
fn nemesis(args: &[&str]) -> Output {
    let binary = tardigrade_binary();
    let out = Command::new(env!("CARGO_BIN_EXE_tardigrade-nemesis"))
        .args(args)
        .arg(format!("--binary={}", binary.display()))
        .output()
        .expect("run tardigrade-nemesis");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bank_set_and_register_stay_correct_through_kills_pauses_partitions_skew_and_a_full_restart() {
    // Seed 160 draws, within 110 s (the same length as before partitions
    // joined the mix), every fault, all aimed at the leaseholder: its
    // isolation by a partition for 18 s, a clock jump back by 450 ms (more
    // than 80 % of the maximum offset: the node stops itself and is
    // started again), kill -9 and restart, SIGSTOPs of 11 and 10 s, and
    // SIGTERM and restart of every node.
    let out = nemesis(&[
        "--workload=bank,set,register",
        "--nemesis=kill,pause,skew,restart-all,partition",
        "--target=leaseholder",
        "--duration=110s",
        "--nodes=3",
        "--seed=160",
        "--concurrency=3",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "the run failed:\n{text}");
    assert!(text.contains("kill -9 n"), "a kill was injected:\n{text}");
    assert!(text.contains("SIGSTOP n"), "a pause was injected:\n{text}");
    assert!(
        text.contains("partition n") && text.contains("partition of n"),
        "a partition was injected and healed:\n{text}"
    );
    assert!(
        text.contains("SIGTERM and restart of all nodes"),
        "a full restart was injected:\n{text}"
    );
}

#[test]
fn an_injected_lost_insert_fails_the_run() {
    let out = nemesis(&[
        "--workload=set",
        "--nemesis=none",
        "--duration=5s",
        "--nodes=1",
        "--seed=13",
        "--inject-bug=set-lose-insert",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "the run should fail:\n{text}");
    assert!(text.contains("acknowledged inserts lost"), "{text}");
}
