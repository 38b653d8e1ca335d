//! psycopg 3 (from PyPI) against `tardigrade demo`: runs
//! `tests/python/psycopg_smoke.py`. Skipped with a note when Python or psycopg
//! is missing (`.ci/run` installs `psycopg[binary]`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_demo() -> (Demo, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
        .to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tardigrade"))
        .args(["demo", "--sql-port", &port])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().expect("stdout");
    let demo = Demo(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("demo prints its URL");
        if line.starts_with("postgresql://") {
            return (demo, line);
        }
    }
}

fn have_psycopg() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import psycopg"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!(
            "note: python3 with psycopg 3 is not installed; skipping (CI installs psycopg[binary])"
        );
    }
    ok
}

fn run(mode: &str) {
    if !have_psycopg() {
        return;
    }
    let (_demo, url) = start_demo();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/psycopg_smoke.py");
    let out = Command::new("python3")
        .args([script, &url, mode])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn psycopg_basic() {
    run("basic");
}

#[test]
fn psycopg_full() {
    run("full");
}
