//! The simulation's clients: each runs register operations (read, write,
//! compare-and-set on a few keys spread over the ranges) against whichever
//! node it picks, follows leaseholder hints, and records every operation
//! with its simulated call and return times for the linearizability
//! checker. A write whose outcome it cannot know (a timeout, an ambiguous
//! or unexpected error) is recorded as indeterminate and never retried.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tardigrade_kvpb::{BatchRequest, ErrorDetail, Header, Request, Response};
use tardigrade_testkit::history::{Completion, Operation, RegisterOp, RegisterRet};
use tardigrade_testkit::linearizability::RegisterOperation;
use tokio::time::Instant;

use crate::cluster::Cluster;

/// The key a register lives under. Even registers sort below the split
/// point ([`SPLIT_KEY`]) and odd ones above, so both ranges serve traffic.
pub fn register_key(k: u64) -> Vec<u8> {
    let side = if k.is_multiple_of(2) { 'a' } else { 'z' };
    format!("reg/{side}{k:04}").into_bytes()
}

/// Where the key space is split into the simulation's two ranges.
pub const SPLIT_KEY: &[u8] = b"reg/m";

/// Every operation of a run, with times in nanoseconds of simulated time.
pub struct Recorder {
    origin: Instant,
    ops: Mutex<Vec<RegisterOperation>>,
    next_id: Mutex<usize>,
}

impl Recorder {
    pub fn new(origin: Instant) -> Recorder {
        Recorder {
            origin,
            ops: Mutex::new(Vec::new()),
            next_id: Mutex::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn invoke(&self) -> (usize, u64) {
        let mut n = self.next_id.lock();
        *n += 1;
        (*n - 1, self.now())
    }

    fn record(
        &self,
        id: usize,
        process: usize,
        op: RegisterOp,
        call: u64,
        c: Completion<RegisterRet>,
    ) {
        let ret = self.now();
        let o = match c {
            Completion::Ok(r) => Operation::ok(id, process, op, call, ret, r),
            Completion::Fail(_) => Operation::fail(id, process, op, call, ret),
            Completion::Info(_) => Operation::info(id, process, op, call),
        };
        self.ops.lock().push(o);
    }

    /// The history, in invocation order.
    pub fn operations(&self) -> Vec<RegisterOperation> {
        let mut ops = self.ops.lock().clone();
        ops.sort_by_key(|o| o.id);
        ops
    }
}

/// How clients reach the cluster.
pub struct Driver<'a> {
    pub cluster: &'a Mutex<Cluster>,
    pub nodes: u64,
    /// The simulation's start, for traces.
    pub origin: Instant,
    /// Print every error a client gets to stderr.
    pub trace: bool,
}

impl<'a> Driver<'a> {
    pub fn new(cluster: &'a Mutex<Cluster>, recorder: &Recorder, trace: bool) -> Self {
        let nodes = cluster.lock().nodes.len() as u64;
        Driver {
            cluster,
            nodes,
            origin: recorder.origin,
            trace,
        }
    }
}

/// Runs one operation: tries nodes until one serves it or `deadline`.
pub async fn perform(
    d: &Driver<'_>,
    rng: &mut StdRng,
    op: &RegisterOp,
    deadline: Instant,
) -> Completion<RegisterRet> {
    let (cluster, nodes, start, trace) = (d.cluster, d.nodes, d.origin, d.trace);
    let request = match op {
        RegisterOp::Read { key } => Request::Get {
            key: register_key(*key),
        },
        RegisterOp::Write { key, value } => Request::Put {
            key: register_key(*key),
            value: value.to_be_bytes().to_vec(),
        },
        RegisterOp::Cas { key, expected, new } => Request::ConditionalPut {
            key: register_key(*key),
            value: new.to_be_bytes().to_vec(),
            expected: expected.map(|v| v.to_be_bytes().to_vec()),
        },
    };
    let is_read = matches!(op, RegisterOp::Read { .. });
    let ba = BatchRequest {
        header: Header::default(),
        requests: vec![request],
    };
    let mut node = rng.random_range(1..=nodes);
    let next = |n: u64| n % nodes + 1;
    loop {
        let now = Instant::now();
        if now >= deadline {
            // Every attempt so far was refused before it was proposed.
            return Completion::Fail("no node served it in time".into());
        }
        let Some(store) = cluster.lock().store(node) else {
            node = next(node);
            tokio::time::sleep(Duration::from_millis(rng.random_range(5..20))).await;
            continue;
        };
        let attempt = tokio::time::timeout(deadline - now, store.execute(ba.clone())).await;
        drop(store);
        let err = match attempt {
            Err(_) if is_read => return Completion::Fail("timed out".into()),
            Err(_) => return Completion::Info("timed out".into()),
            Ok(Ok(resp)) => return completion(op, resp.responses.first()),
            Ok(Err(e)) => e,
        };
        if trace {
            eprintln!(
                "{:.3}s {op} at n{node}: {err}",
                start.elapsed().as_secs_f64()
            );
        }
        match err.detail {
            ErrorDetail::ConditionFailed { .. } if !is_read => {
                return Completion::Ok(RegisterRet::Cas(false));
            }
            ErrorDetail::NotLeaseholder {
                leaseholder_node, ..
            } if leaseholder_node != 0 && leaseholder_node != node && leaseholder_node <= nodes => {
                node = leaseholder_node;
            }
            // Refused before it was proposed: safe to try elsewhere.
            ErrorDetail::NotLeaseholder { .. }
            | ErrorDetail::RangeNotFound { .. }
            | ErrorDetail::RangeKeyMismatch { .. } => node = next(node),
            _ if is_read => node = next(node),
            _ => return Completion::Info(err.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(2..15))).await;
    }
}

fn completion(op: &RegisterOp, resp: Option<&Response>) -> Completion<RegisterRet> {
    match (op, resp) {
        (RegisterOp::Read { .. }, Some(Response::Get { value })) => {
            let Some(v) = value else {
                return Completion::Ok(RegisterRet::Read(None));
            };
            match <[u8; 8]>::try_from(v.bytes.as_slice()) {
                Ok(b) => Completion::Ok(RegisterRet::Read(Some(u64::from_be_bytes(b)))),
                Err(_) => Completion::Fail(format!("a register holds {} bytes", v.bytes.len())),
            }
        }
        (RegisterOp::Write { .. }, Some(Response::Put)) => Completion::Ok(RegisterRet::Write),
        (RegisterOp::Cas { .. }, Some(Response::ConditionalPut)) => {
            Completion::Ok(RegisterRet::Cas(true))
        }
        (_, other) => Completion::Info(format!("unexpected response {other:?}")),
    }
}

/// What the clients of a run share.
pub struct Clients {
    pub cluster: Arc<Mutex<Cluster>>,
    pub recorder: Arc<Recorder>,
    /// How many clients run (process ids advance by this after an
    /// indeterminate operation).
    pub count: usize,
    pub keys: u64,
    /// When clients stop starting operations.
    pub end: Instant,
    pub op_timeout: Duration,
    pub trace: bool,
}

/// Client `index`: operations until the end, each bounded by the timeout.
pub async fn client(shared: Arc<Clients>, index: usize, seed: u64) {
    let Clients {
        cluster,
        recorder,
        count: clients,
        keys,
        end,
        op_timeout,
        trace,
    } = &*shared;
    let (clients, keys, end, op_timeout) = (*clients, *keys, *end, *op_timeout);
    let mut rng = StdRng::seed_from_u64(seed);
    let driver = Driver::new(cluster, recorder, *trace);
    let mut process = index;
    let mut seen: BTreeMap<u64, Option<u64>> = BTreeMap::new();
    let mut written = 0u64;
    while Instant::now() < end {
        let key = rng.random_range(0..keys);
        let op = match rng.random_range(0..10) {
            0..=3 => RegisterOp::read(key),
            4..=6 => {
                written += 1;
                RegisterOp::write(key, (index as u64 + 1) * 1_000_000 + written)
            }
            _ => {
                written += 1;
                let expected = seen.get(&key).copied().flatten();
                RegisterOp::cas(key, expected, (index as u64 + 1) * 1_000_000 + written)
            }
        };
        let (id, call) = recorder.invoke();
        let c = perform(&driver, &mut rng, &op, Instant::now() + op_timeout).await;
        if let Completion::Ok(RegisterRet::Read(v)) = &c {
            seen.insert(key, *v);
        }
        let info = matches!(c, Completion::Info(_));
        recorder.record(id, process, op, call, c);
        if info {
            // Its operation may still take effect: a new process goes on.
            process += clients;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..20))).await;
    }
}

/// Reads every register once more after the faults have healed; the
/// cluster must serve them (it resumes by itself). Returns the keys it could
/// not read.
pub async fn final_reads(
    cluster: Arc<Mutex<Cluster>>,
    recorder: Arc<Recorder>,
    keys: u64,
    process: usize,
    within: Duration,
    trace: bool,
) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(process as u64);
    let driver = Driver::new(&cluster, &recorder, trace);
    let mut unread = Vec::new();
    for key in 0..keys {
        let op = RegisterOp::read(key);
        let (id, call) = recorder.invoke();
        let c = perform(&driver, &mut rng, &op, Instant::now() + within).await;
        if !matches!(c, Completion::Ok(_)) {
            unread.push(key);
        }
        recorder.record(id, process, op, call, c);
    }
    unread
}
