//! Helpers shared by the tests that run the built binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the built binary with `args` and waits for it.
pub fn tardigrade(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tardigrade"))
        .args(args)
        .output()
        .expect("run tardigrade")
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A loopback address nothing listens on (bound, then released).
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

/// A node process, killed (SIGKILL) when dropped.
pub struct Node(pub Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a node on a free port with a fresh store; returns it once it has
/// printed its "node started" line.
pub fn start_node(store: &std::path::Path) -> (Node, String) {
    let addr = free_addr();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tardigrade"))
        .args([
            "start-single-node",
            "--insecure",
            &format!("--store={}", store.display()),
            &format!("--listen-addr={addr}"),
            // Tests run in parallel: no fixed SQL port.
            "--sql-addr=127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn node");
    let stdout = child.stdout.take().expect("piped stdout");
    let node = Node(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("node prints its start line");
        if line.starts_with("node started: KV API at ") {
            assert!(line.contains(&addr), "{line}");
            return (node, addr);
        }
    }
}

/// Starts `tardigrade start` (a cluster node) with the given store and
/// `--join`; returns once it listens. Its stdout lines are forwarded to the
/// returned receiver.
pub fn start_cluster_node(
    store: &std::path::Path,
    addr: &str,
    http: &str,
    join: &str,
) -> (Node, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tardigrade"))
        .args([
            "start",
            "--insecure",
            &format!("--store={}", store.display()),
            &format!("--listen-addr={addr}"),
            &format!("--http-addr={http}"),
            &format!("--join={join}"),
            "--sql-addr=127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node");
    let stdout = child.stdout.take().expect("piped stdout");
    let node = Node(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("node prints its listening line");
        if line.starts_with("node listening: RPC at ") {
            return (node, rx);
        }
    }
}

/// Waits for a line starting with `prefix` on a node's stdout.
pub fn wait_for_line(
    rx: &std::sync::mpsc::Receiver<String>,
    prefix: &str,
    within: Duration,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no line starting with {prefix:?} within {within:?}"));
        if line.starts_with(prefix) {
            return line;
        }
    }
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Starts `tardigrade demo` (stdin not a terminal: it serves until a signal) and
/// returns the URLs it prints.
pub fn start_demo(args: &[&str]) -> (Node, Vec<String>) {
    let port = free_port().to_string();
    let mut all = vec!["demo", "--sql-port", &port];
    all.extend_from_slice(args);
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_tardigrade"))
        .args(&all)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().expect("stdout");
    let node = Node(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut urls = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("demo prints its URLs");
        if line.starts_with("postgresql://") {
            urls.push(line);
        } else if line.starts_with("# Serving until interrupted") {
            return (node, urls);
        }
    }
}
