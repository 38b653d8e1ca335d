//! A register workload driver: concurrent random reads, writes and
//! compare-and-sets on a few keys, recorded as a [`RegisterHistory`].
//!
//! It runs against anything that implements [`RegisterClient`]; [`KvRegister`]
//! adapts a [`tardigrade_kv::Db`]. A client error says whether the operation
//! [definitely did not happen](ClientError::Definite) (recorded as `fail`) or
//! [may have happened](ClientError::Indeterminate) (recorded as `info`); an
//! operation that times out is `info` too. Written values are unique across the
//! run, so a stale or invented read cannot hide behind a coincidence.
//!
//! Check the result with [`crate::linearizability::check_register_history`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tardigrade_kv::Db;
use tardigrade_kvpb::{ErrorDetail, KvError, Request};

use crate::history::{Key, RegisterHistory, RegisterOp, RegisterRet, Value};

/// Why a client operation did not return a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The operation definitely did not take effect.
    Definite(String),
    /// The operation may or may not have taken effect.
    Indeterminate(String),
}

/// A per-key register client. Implementations must be cheap to share across
/// tasks (the driver holds one `Arc` for all processes).
pub trait RegisterClient: Send + Sync + 'static {
    fn read(&self, key: Key) -> impl Future<Output = Result<Option<Value>, ClientError>> + Send;

    fn write(&self, key: Key, value: Value)
    -> impl Future<Output = Result<(), ClientError>> + Send;

    /// Sets `key` to `new` if it holds `expected` (`None`: no value); returns
    /// whether it did.
    fn cas(
        &self,
        key: Key,
        expected: Option<Value>,
        new: Value,
    ) -> impl Future<Output = Result<bool, ClientError>> + Send;
}

/// What the workload does.
#[derive(Clone, Debug)]
pub struct RegisterWorkload {
    /// Concurrent client tasks.
    pub processes: usize,
    /// Keys `0..keys` are used.
    pub keys: u64,
    /// Operations each process runs at most.
    pub ops_per_process: usize,
    /// Stop starting operations after this long.
    pub duration: Option<Duration>,
    /// An operation that takes longer is abandoned and recorded as `info`.
    pub op_timeout: Duration,
    /// Relative weights of reads, writes and compare-and-sets.
    pub read_weight: u32,
    pub write_weight: u32,
    pub cas_weight: u32,
    pub seed: u64,
}

impl Default for RegisterWorkload {
    fn default() -> Self {
        RegisterWorkload {
            processes: 5,
            keys: 3,
            ops_per_process: 200,
            duration: None,
            op_timeout: Duration::from_secs(5),
            read_weight: 2,
            write_weight: 1,
            cas_weight: 1,
            seed: 0,
        }
    }
}

/// Runs the workload against `client` and returns the recorded history.
///
/// Must be called within a Tokio runtime; each process is a spawned task.
pub async fn register_workload<C: RegisterClient>(
    client: Arc<C>,
    config: &RegisterWorkload,
) -> Arc<RegisterHistory> {
    let history = Arc::new(RegisterHistory::new());
    let next_value = Arc::new(AtomicU64::new(1));
    let deadline = config.duration.map(|d| Instant::now() + d);
    let mut tasks = Vec::with_capacity(config.processes);
    for process in 0..config.processes {
        let client = client.clone();
        let history = history.clone();
        let next_value = next_value.clone();
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            run_process(process, &*client, &history, &next_value, &config, deadline).await
        }));
    }
    for t in tasks {
        t.await.expect("register workload process panicked");
    }
    history
}

async fn run_process<C: RegisterClient>(
    process: usize,
    client: &C,
    history: &RegisterHistory,
    next_value: &AtomicU64,
    config: &RegisterWorkload,
    deadline: Option<Instant>,
) {
    let mut rng =
        StdRng::seed_from_u64(config.seed ^ (process as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    // The last value this process saw per key: the likely CAS expectation.
    let mut seen: Vec<Option<Value>> = vec![None; config.keys.max(1) as usize];
    let total = (config.read_weight + config.write_weight + config.cas_weight).max(1);
    for _ in 0..config.ops_per_process {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let key = rng.random_range(0..config.keys.max(1));
        let k = key as usize;
        let pick = rng.random_range(0..total);
        let op = if pick < config.read_weight {
            RegisterOp::read(key)
        } else if pick < config.read_weight + config.write_weight {
            RegisterOp::write(key, next_value.fetch_add(1, Ordering::Relaxed))
        } else {
            let expected = if rng.random_bool(0.8) { seen[k] } else { None };
            RegisterOp::cas(key, expected, next_value.fetch_add(1, Ordering::Relaxed))
        };
        let id = history.invoke(process, op.clone());
        let fut = async {
            match op {
                RegisterOp::Read { key } => client.read(key).await.map(RegisterRet::Read),
                RegisterOp::Write { key, value } => {
                    client.write(key, value).await.map(|()| RegisterRet::Write)
                }
                RegisterOp::Cas { key, expected, new } => {
                    client.cas(key, expected, new).await.map(RegisterRet::Cas)
                }
            }
        };
        match tokio::time::timeout(config.op_timeout, fut).await {
            Ok(Ok(ret)) => {
                match (&op, &ret) {
                    (_, RegisterRet::Read(v)) => seen[k] = *v,
                    (RegisterOp::Write { value, .. }, _) => seen[k] = Some(*value),
                    (RegisterOp::Cas { new, .. }, RegisterRet::Cas(true)) => seen[k] = Some(*new),
                    _ => {}
                }
                history.ok(id, ret);
            }
            Ok(Err(ClientError::Definite(why))) => history.fail(id, why),
            Ok(Err(ClientError::Indeterminate(why))) => history.info(id, why),
            Err(_) => history.info(id, "timeout"),
        }
    }
}

/// Whether a KV error means the request definitely did not take effect.
///
/// Definite: refusals before evaluation or evaluation errors of a
/// non-transactional single-request batch (a server that returned one of
/// these after applying the write would be buggy). Everything else —
/// `Unavailable`, `Internal`, transaction status errors — is indeterminate.
pub fn classify_kv_error(e: &KvError) -> ClientError {
    let definite = matches!(
        e.detail,
        ErrorDetail::InvalidArgument(_)
            | ErrorDetail::NotLeaseholder { .. }
            | ErrorDetail::RangeKeyMismatch { .. }
            | ErrorDetail::ConditionFailed { .. }
            | ErrorDetail::WriteIntent { .. }
            | ErrorDetail::TransactionPush { .. }
            | ErrorDetail::WriteTooOld { .. }
            | ErrorDetail::ReadWithinUncertainty { .. }
            | ErrorDetail::TransactionRetry { .. }
            | ErrorDetail::TransactionAborted { .. }
            | ErrorDetail::IntegerOverflow
            | ErrorDetail::ClockOffset(_)
    );
    if definite {
        ClientError::Definite(e.to_string())
    } else {
        ClientError::Indeterminate(e.to_string())
    }
}

/// A [`RegisterClient`] over a [`Db`]: register `k` is the KV key
/// `prefix` + `k` (8 bytes, big-endian), its value the decimal digits.
#[derive(Clone)]
pub struct KvRegister {
    db: Db,
    prefix: Vec<u8>,
}

impl KvRegister {
    pub fn new(db: Db, prefix: impl Into<Vec<u8>>) -> Self {
        KvRegister {
            db,
            prefix: prefix.into(),
        }
    }

    /// The KV key of register `key`.
    pub fn kv_key(&self, key: Key) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(&key.to_be_bytes());
        k
    }

    fn encode(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }
}

impl RegisterClient for KvRegister {
    async fn read(&self, key: Key) -> Result<Option<Value>, ClientError> {
        match self.db.get(&self.kv_key(key)).await {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(|| ClientError::Definite(format!("corrupt register value {bytes:?}"))),
            // A read changes nothing: whatever went wrong, it did not happen.
            Err(e) => Err(ClientError::Definite(e.to_string())),
        }
    }

    async fn write(&self, key: Key, value: Value) -> Result<(), ClientError> {
        self.db
            .put(&self.kv_key(key), &Self::encode(value))
            .await
            .map_err(|e| classify_kv_error(&e))
    }

    async fn cas(
        &self,
        key: Key,
        expected: Option<Value>,
        new: Value,
    ) -> Result<bool, ClientError> {
        let req = Request::ConditionalPut {
            key: self.kv_key(key),
            value: Self::encode(new),
            expected: expected.map(Self::encode),
        };
        match self.db.send(vec![req]).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.detail, ErrorDetail::ConditionFailed { .. }) => Ok(false),
            Err(e) => Err(classify_kv_error(&e)),
        }
    }
}
