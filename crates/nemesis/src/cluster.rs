//! A cluster of real `tardigrade start` processes on loopback, with on-disk
//! stores in one directory, and the levers the nemeses pull: kill -9 and
//! restart, SIGSTOP/SIGCONT, SIGTERM, a per-node clock offset file, and a
//! per-node partition file naming the peers the node cannot reach.
//!
//! Each node runs in its own process group (so that a Ctrl-C at the terminal
//! reaches only the harness, which then kills every group) and is sent
//! SIGKILL by the kernel if the harness dies first (`PR_SET_PDEATHSIG`; the
//! harness spawns from its one runtime thread, whose exit is the process's).
//! Its output is appended to `nN.log` in the cluster directory.

use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::client::Session;

/// The environment variable the node's clock reads its offset file from
/// (the testing seam in `tardigrade-hlc`).
pub const CLOCK_OFFSET_FILE_ENV: &str = "TARDIGRADE_TESTING_CLOCK_OFFSET_FILE";

/// The environment variable the node reads the peer addresses it cannot
/// reach from (the testing seam in `tardigrade-rpc`'s `partition_file`).
pub const PARTITION_FILE_ENV: &str = "TARDIGRADE_TESTING_PARTITION_FILE";

/// One node's addresses and files.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// 1-based, as in the logs (`n1`).
    pub id: usize,
    pub store: PathBuf,
    pub listen_addr: String,
    pub http_addr: String,
    pub sql_addr: String,
    pub clock_file: PathBuf,
    pub partition_file: PathBuf,
    pub log: PathBuf,
}

/// The node processes of one cluster.
pub struct Cluster {
    binary: PathBuf,
    nodes: Vec<NodeSpec>,
    /// The running process of each node, if any.
    procs: Mutex<Vec<Option<Child>>>,
}

/// Ports the nodes listen on are drawn from here: below Linux's ephemeral
/// range (32768–60999 by default), so that no outgoing connection of a node
/// or of a client grabs one between the check and the node's bind.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A loopback address nothing listens on (bound, then released), from
/// [`PORTS`], not one of `taken`.
fn free_addr(taken: &[String]) -> Result<String, String> {
    // Spread the first guess by process id, so that runs side by side
    // rarely probe the same ports.
    let span = u32::from(PORTS.end - PORTS.start);
    let mut guess = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..200 {
        let port = PORTS.start + (guess % span) as u16;
        guess = guess.wrapping_add(101);
        let addr = format!("127.0.0.1:{port}");
        if taken.contains(&addr) {
            continue;
        }
        if std::net::TcpListener::bind(&addr).is_ok() {
            return Ok(addr);
        }
    }
    Err(format!(
        "no free loopback port in {}..{}",
        PORTS.start, PORTS.end
    ))
}

impl Cluster {
    /// Lays out `n` nodes under `dir` on free loopback ports; starts nothing.
    pub fn new(binary: &Path, dir: &Path, n: usize) -> Result<Self, String> {
        let mut nodes = Vec::with_capacity(n);
        let mut taken = Vec::new();
        let mut pick = || -> Result<String, String> {
            let addr = free_addr(&taken)?;
            taken.push(addr.clone());
            Ok(addr)
        };
        for id in 1..=n {
            let spec = NodeSpec {
                id,
                store: dir.join(format!("n{id}")),
                listen_addr: pick()?,
                http_addr: pick()?,
                sql_addr: pick()?,
                clock_file: dir.join(format!("n{id}.clock-offset-ms")),
                partition_file: dir.join(format!("n{id}.unreachable-peers")),
                log: dir.join(format!("n{id}.log")),
            };
            write_atomically(&spec.clock_file, "0\n")?;
            write_atomically(&spec.partition_file, "")?;
            nodes.push(spec);
        }
        Ok(Cluster {
            binary: binary.to_path_buf(),
            nodes,
            procs: Mutex::new((0..n).map(|_| None).collect()),
        })
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn nodes(&self) -> &[NodeSpec] {
        &self.nodes
    }

    pub fn sql_addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.sql_addr.clone()).collect()
    }

    /// Starts node `i` (0-based) with the same flags every time; every node
    /// joins through the first.
    pub fn spawn(&self, i: usize) -> Result<(), String> {
        let spec = &self.nodes[i];
        let log = open_log(&spec.log)?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot reopen {}: {e}", spec.log.display()))?;
        let mut cmd = Command::new(&self.binary);
        cmd.args([
            "start".to_string(),
            "--insecure".to_string(),
            format!("--store={}", spec.store.display()),
            format!("--listen-addr={}", spec.listen_addr),
            format!("--http-addr={}", spec.http_addr),
            format!("--sql-addr={}", spec.sql_addr),
            format!("--join={}", self.nodes[0].listen_addr),
        ])
        .env(CLOCK_OFFSET_FILE_ENV, &spec.clock_file)
        .env(PARTITION_FILE_ENV, &spec.partition_file)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the
        // parent; this runs in the forked child before exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let mut procs = self.procs.lock();
        if let Some(mut old) = procs[i].replace(child) {
            kill_group(&mut old);
        }
        Ok(())
    }

    /// The pid of node `i`, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.procs.lock()[i].as_ref().map(Child::id)
    }

    /// Sends `signal` to node `i`'s process group; false if it does not run.
    pub fn signal(&self, i: usize, signal: libc::c_int) -> bool {
        match self.pid(i) {
            Some(pid) => send_group(pid, signal),
            None => false,
        }
    }

    /// kill -9 of node `i` (its whole process group), reaped at once.
    pub fn kill(&self, i: usize) {
        if let Some(mut child) = self.procs.lock()[i].take() {
            kill_group(&mut child);
        }
    }

    /// Waits up to `grace` for node `i` to exit, then kills it. Returns
    /// whether it exited on its own (or was not running).
    pub async fn wait_exit(&self, i: usize, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        loop {
            {
                let mut procs = self.procs.lock();
                match procs[i].as_mut().map(Child::try_wait) {
                    Some(Ok(Some(_))) | None => {
                        procs[i] = None;
                        return true;
                    }
                    _ => {}
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.kill(i);
        false
    }

    /// Whether node `i`'s process has exited by itself (crashed, or gave up).
    pub fn exited(&self, i: usize) -> Option<std::process::ExitStatus> {
        let mut procs = self.procs.lock();
        let status = procs[i].as_mut().and_then(|c| c.try_wait().ok().flatten());
        if status.is_some() {
            procs[i] = None;
        }
        status
    }

    /// Sets node `i`'s clock offset (signed milliseconds); the node re-reads
    /// it within 100 ms. Written to a temporary file and renamed, so that the
    /// node never reads half a number.
    pub fn set_clock_offset(&self, i: usize, millis: i64) -> Result<(), String> {
        write_atomically(&self.nodes[i].clock_file, &format!("{millis}\n"))
    }

    /// Cuts node `i`'s node-to-node traffic to the nodes `unreachable`
    /// (0-based; empty heals it); the node re-reads its partition file
    /// within 100 ms. One side only: a partition in both directions sets
    /// both sides (see [`Cluster::partition`]).
    pub fn set_unreachable(&self, i: usize, unreachable: &[usize]) -> Result<(), String> {
        let text: String = unreachable
            .iter()
            .map(|&j| format!("{}  # n{}\n", self.nodes[j].listen_addr, j + 1))
            .collect();
        write_atomically(&self.nodes[i].partition_file, &text)
    }

    /// Splits the cluster into the groups `sides` (0-based node indexes):
    /// no node-to-node traffic crosses from one group to another, either
    /// way. Nodes in no group keep talking to everyone. Clients (SQL) are
    /// not affected.
    pub fn partition(&self, sides: &[Vec<usize>]) -> Result<(), String> {
        for (s, side) in sides.iter().enumerate() {
            let others: Vec<usize> = sides
                .iter()
                .enumerate()
                .filter(|(o, _)| *o != s)
                .flat_map(|(_, nodes)| nodes.iter().copied())
                .collect();
            for &i in side {
                self.set_unreachable(i, &others)?;
            }
        }
        Ok(())
    }

    /// Removes every partition.
    pub fn heal_partitions(&self) -> Result<(), String> {
        (0..self.len()).try_for_each(|i| self.set_unreachable(i, &[]))
    }

    /// `tardigrade init` against the first node, retried until it answers
    /// (at most `timeout`).
    pub async fn init(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let host = format!("--host={}", self.nodes[0].listen_addr);
        loop {
            let out = run_bounded(&self.binary, &["init", "--insecure", &host], 10).await;
            match out {
                Ok((true, _)) => return Ok(()),
                Ok((false, text)) if text.contains("already been initialized") => return Ok(()),
                Ok((_, text)) if Instant::now() >= deadline => {
                    return Err(format!("init failed: {text}"));
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Waits until `SELECT 1` works on node `i` (at most `timeout`).
    pub async fn wait_sql(&self, i: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut session = Session::new(vec![self.nodes[i].sql_addr.clone()], 0, timeout);
        loop {
            if let Some(status) = self.exited(i) {
                return Err(format!(
                    "n{} exited ({status}) before serving SQL; the end of {}:\n{}",
                    i + 1,
                    self.nodes[i].log.display(),
                    self.log_tail(i, 20)
                ));
            }
            match session.query("SELECT 1").await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("n{}: SQL not ready: {e}", i + 1));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }

    /// The last `lines` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until `debug ranges` shows every range with a replica on every
    /// node (so that one node down leaves a quorum). Returns the last output
    /// when that does not happen within `timeout`.
    pub async fn wait_replicated(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let host = format!("--host={}", self.nodes[0].listen_addr);
        let want = self.nodes.len().min(3);
        loop {
            let last = match run_bounded(&self.binary, &["debug", "ranges", &host], 10).await {
                Ok((true, text)) => {
                    let ranges: Vec<&str> =
                        text.lines().skip(1).filter(|l| l.contains("/s")).collect();
                    if !ranges.is_empty() && ranges.iter().all(|l| l.matches("/s").count() >= want)
                    {
                        return Ok(());
                    }
                    text
                }
                Ok((false, text)) => text,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(last);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The node (0-based index) holding the lease of the first range of
    /// table data (`/Table/…`), where the workloads' tables live, as
    /// `debug ranges` and `node status` say through the first node that
    /// answers. `None` when no node answers or the output does not parse.
    pub async fn table_leaseholder(&self) -> Option<usize> {
        for spec in &self.nodes {
            let host = format!("--host={}", spec.listen_addr);
            let Ok((true, ranges)) =
                run_bounded(&self.binary, &["debug", "ranges", &host], 5).await
            else {
                continue;
            };
            let node_id = leaseholder_of_table_data(&ranges)?;
            let Ok((true, status)) = run_bounded(&self.binary, &["node", "status", &host], 5).await
            else {
                continue;
            };
            let address = address_of_node(&status, node_id)?;
            return self.nodes.iter().position(|n| n.listen_addr == address);
        }
        None
    }

    /// kill -9 of every node. Idempotent; also run on drop.
    pub fn kill_all(&self) {
        let mut procs = self.procs.lock();
        for child in procs.iter_mut().filter_map(Option::take) {
            let mut child = child;
            kill_group(&mut child);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The leaseholder's node id of the first range starting at `/Table` in
/// `debug ranges` output (`range start end leaseholder size replicas`; an
/// idle range's holder is printed as `n1(idle)`).
fn leaseholder_of_table_data(ranges: &str) -> Option<u64> {
    ranges.lines().find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 4 || !cols[1].starts_with("/Table") {
            return None;
        }
        let holder = cols[3].strip_prefix('n')?;
        let digits: String = holder.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// The address of node `id` in `node status` output (`id address …`).
fn address_of_node(status: &str, id: u64) -> Option<String> {
    status.lines().find_map(|line| {
        let mut cols = line.split_whitespace();
        let this: u64 = cols.next()?.parse().ok()?;
        (this == id).then(|| cols.next().map(str::to_string))?
    })
}

/// Writes `text` to a temporary file renamed over `file`, so that the node
/// never reads half of it.
fn write_atomically(file: &Path, text: &str) -> Result<(), String> {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, file))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))
}

fn open_log(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// Sends `signal` to the process group led by `pid`.
fn send_group(pid: u32, signal: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with a negative pid signals that process group; no
    // memory is shared.
    unsafe { libc::kill(-pid, signal) == 0 }
}

/// SIGKILL to the child's process group (a stopped process dies too), then
/// reaps it.
fn kill_group(child: &mut Child) {
    send_group(child.id(), libc::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs the tardigrade binary with `args` for at most `secs` seconds;
/// returns whether it succeeded and its stdout and stderr.
async fn run_bounded(binary: &Path, args: &[&str], secs: u64) -> Result<(bool, String), String> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match tokio::time::timeout(Duration::from_secs(secs), cmd.output()).await {
        Ok(Ok(out)) => Ok((
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )),
        Ok(Err(e)) => Err(format!("cannot run {}: {e}", binary.display())),
        Err(_) => Err(format!(
            "`tardigrade {}` did not finish in {secs} s",
            args.join(" ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_addresses_are_loopback_below_the_ephemeral_range_and_distinct() {
        let a = free_addr(&[]).expect("a free port");
        let b = free_addr(std::slice::from_ref(&a)).expect("another free port");
        assert_ne!(a, b);
        for addr in [a, b] {
            let port: u16 = addr
                .strip_prefix("127.0.0.1:")
                .and_then(|p| p.parse().ok())
                .expect("loopback address");
            assert!(PORTS.contains(&port), "{addr}");
        }
    }

    #[test]
    fn a_partition_writes_each_side_the_addresses_of_the_other_sides() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = Cluster::new(Path::new("tardigrade"), dir.path(), 3).expect("layout");
        let unreachable = |i: usize| {
            let text = std::fs::read_to_string(&cluster.nodes()[i].partition_file).expect("read");
            tardigrade_rpc::partition_file::parse_partition_file(&text).expect("parses")
        };
        let addr = |i: usize| cluster.nodes()[i].listen_addr.clone();
        assert!(
            (0..3).all(|i| unreachable(i).is_empty()),
            "no cuts at first"
        );

        cluster
            .partition(&[vec![1], vec![0, 2]])
            .expect("partition");
        assert_eq!(unreachable(1), {
            let mut both = vec![addr(0), addr(2)];
            both.sort();
            both
        });
        assert_eq!(unreachable(0), [addr(1)]);
        assert_eq!(unreachable(2), [addr(1)]);

        cluster.heal_partitions().expect("heal");
        assert!((0..3).all(|i| unreachable(i).is_empty()), "healed");
        assert_eq!(
            PARTITION_FILE_ENV,
            tardigrade_rpc::partition_file::PARTITION_FILE_ENV
        );
    }

    #[test]
    fn the_table_data_leaseholder_is_read_from_debug_ranges_and_node_status() {
        let ranges = " range  start     end       leaseholder   size  replicas
     1  /Min      /System   n2            1549  n1/s1,n2/s2,n3/s3
     2  /System   /Table/0  n3            4275  n1/s1,n3/s3,n2/s2
     3  /Table/0  /Max      n1(idle)     26143  n1/s1,n2/s2,n3/s3
(3 ranges)";
        assert_eq!(leaseholder_of_table_data(ranges), Some(1));
        let status = "  id  address          locality  live  ranges  leases
   1  127.0.0.1:33749            true       3       1
   2  127.0.0.1:45577            true       3       1";
        assert_eq!(
            address_of_node(status, 2).as_deref(),
            Some("127.0.0.1:45577")
        );
        assert_eq!(address_of_node(status, 9), None);
        assert_eq!(leaseholder_of_table_data("garbage"), None);
    }
}
