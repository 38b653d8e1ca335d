//! Helpers shared by the tests that run the built binary.
#![allow(dead_code)]

pub mod postgres;

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

/// Ports handed to nodes come from here: below Linux's ephemeral range
/// (32768–60999 by default). A port from `bind(":0")` is released before the
/// node binds it, and in between any outgoing connection (a node pinging its
/// peers, a client) may take it as its local port; that made cluster tests
/// fail now and then with a node that could not bind.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// The next port of [`PORTS`] to probe: each is handed out at most once per
/// test process, so tests running side by side never get the same one.
static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);

/// A loopback port nothing listens on (bound, then released), from [`PORTS`].
pub fn free_port() -> u16 {
    use std::sync::atomic::Ordering;
    let span = u32::from(PORTS.end - PORTS.start);
    // Spread the first probe by process id, so that test binaries run
    // side by side rarely probe the same ports.
    let start = std::process::id().wrapping_mul(7_919) % span;
    let _ = NEXT_PORT.compare_exchange(u32::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..span {
        let n = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        let port = PORTS.start + (n % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {}..{}", PORTS.start, PORTS.end);
}

/// A loopback address nothing listens on, from [`free_port`].
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
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
        .stderr(stderr_file(store))
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
        let Ok(line) = rx.recv_timeout(left) else {
            panic!(
                "node at {addr} printed no listening line; its log ends:\n{}",
                log_tail(store)
            );
        };
        if line.starts_with("node listening: RPC at ") {
            return (node, rx);
        }
    }
}

/// Where a cluster node started by these tests writes its log: next to
/// its store, appended to across restarts.
fn stderr_file(store: &std::path::Path) -> Stdio {
    let path = store.with_extension("log");
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(f) => Stdio::from(f),
        Err(_) => Stdio::null(),
    }
}

/// The last lines of a node's log, for a failure message.
pub fn log_tail(store: &std::path::Path) -> String {
    let log = std::fs::read_to_string(store.with_extension("log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
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

/// Whether `psql` is installed; prints a note when it is not (CI installs
/// postgresql-client), so the caller can skip.
pub fn have_psql() -> bool {
    let found = Command::new("psql")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("note: psql is not installed; skipping (CI installs postgresql-client)");
    }
    found
}

/// Whether python3 can import every one of `modules`; prints a note naming
/// `what` when it cannot (CI installs them), so the caller can skip.
pub fn have_python_modules(modules: &[&str], what: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {}", modules.join(", "))])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("note: python3 with {what} is not installed; skipping (CI installs it)");
    }
    ok
}

/// Runs `python3 script args…` and fails the test with its output unless it
/// succeeds (the client tests in `tests/python`).
pub fn run_python(script: &str, args: &[&str]) {
    run_script("python3", script, args);
}

/// Runs `interpreter script args…` (python3, node) and fails the test with
/// its output unless it succeeds.
pub fn run_script(interpreter: &str, script: &str, args: &[&str]) {
    let out = Command::new(interpreter)
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {interpreter}: {e}"));
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
