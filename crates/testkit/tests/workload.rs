//! The register workload against in-memory registers: a linearizable one
//! passes the checker (also when operations time out or fail), and a broken one
//! whose reads come from a lagging copy is caught — the evidence that the
//! checker catches an injected violation. The `KvRegister` adapter is run
//! against an in-memory KV `Sender`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;
use tardigrade_hlc::Hlc;
use tardigrade_kv::Db;
use tardigrade_kvpb::{
    BatchRequest, BatchResponse, ErrorDetail, KvError, Request, Response, SendFuture, Sender,
};
use tardigrade_testkit::history::{Completion, Key, RegisterHistory, Value};
use tardigrade_testkit::linearizability::{CheckError, check_register_history};
use tardigrade_testkit::workload::{
    ClientError, KvRegister, RegisterClient, RegisterWorkload, register_workload,
};

/// Sleeps up to `max_us` microseconds, so operations overlap.
async fn jitter(max_us: u64) {
    let us = rand::rng().random_range(0..=max_us);
    tokio::time::sleep(Duration::from_micros(us)).await;
}

/// A linearizable register: one map behind one lock.
#[derive(Default)]
struct GoodRegister {
    map: Mutex<HashMap<Key, Value>>,
}

impl RegisterClient for GoodRegister {
    async fn read(&self, key: Key) -> Result<Option<Value>, ClientError> {
        jitter(300).await;
        let v = self.map.lock().get(&key).copied();
        jitter(300).await;
        Ok(v)
    }

    async fn write(&self, key: Key, value: Value) -> Result<(), ClientError> {
        jitter(300).await;
        self.map.lock().insert(key, value);
        jitter(300).await;
        Ok(())
    }

    async fn cas(
        &self,
        key: Key,
        expected: Option<Value>,
        new: Value,
    ) -> Result<bool, ClientError> {
        jitter(300).await;
        let ok = {
            let mut m = self.map.lock();
            if m.get(&key).copied() == expected {
                m.insert(key, new);
                true
            } else {
                false
            }
        };
        jitter(300).await;
        Ok(ok)
    }
}

/// A linearizable register whose writes sometimes hang (before or after
/// applying: the driver times them out as `info`), fail definitely without
/// applying, or fail ambiguously after applying.
#[derive(Default)]
struct FlakyRegister {
    inner: GoodRegister,
}

enum Fault {
    None,
    HangBefore,
    HangAfter,
    Refuse,
    Ambiguous,
}

fn fault() -> Fault {
    match rand::rng().random_range(0..20) {
        0 => Fault::HangBefore,
        1 => Fault::HangAfter,
        2 => Fault::Refuse,
        3 => Fault::Ambiguous,
        _ => Fault::None,
    }
}

const HANG: Duration = Duration::from_millis(200);

impl RegisterClient for FlakyRegister {
    async fn read(&self, key: Key) -> Result<Option<Value>, ClientError> {
        self.inner.read(key).await
    }

    async fn write(&self, key: Key, value: Value) -> Result<(), ClientError> {
        match fault() {
            Fault::None => self.inner.write(key, value).await,
            Fault::HangBefore => {
                tokio::time::sleep(HANG).await;
                self.inner.write(key, value).await
            }
            Fault::HangAfter => {
                self.inner.write(key, value).await?;
                tokio::time::sleep(HANG).await;
                Ok(())
            }
            Fault::Refuse => Err(ClientError::Definite("refused".into())),
            Fault::Ambiguous => {
                self.inner.write(key, value).await?;
                Err(ClientError::Indeterminate("connection lost".into()))
            }
        }
    }

    async fn cas(
        &self,
        key: Key,
        expected: Option<Value>,
        new: Value,
    ) -> Result<bool, ClientError> {
        match fault() {
            Fault::None | Fault::Refuse => self.inner.cas(key, expected, new).await,
            Fault::HangBefore => {
                tokio::time::sleep(HANG).await;
                self.inner.cas(key, expected, new).await
            }
            Fault::HangAfter => {
                let ok = self.inner.cas(key, expected, new).await?;
                tokio::time::sleep(HANG).await;
                Ok(ok)
            }
            Fault::Ambiguous => {
                self.inner.cas(key, expected, new).await?;
                Err(ClientError::Indeterminate("connection lost".into()))
            }
        }
    }
}

/// A broken register: writes go to the primary and reach the copy that serves
/// reads only `lag` later (a follower read without a closed timestamp).
struct LaggingRegister {
    primary: Arc<Mutex<HashMap<Key, Value>>>,
    follower: Arc<Mutex<HashMap<Key, Value>>>,
    lag: Duration,
    /// One read in this many goes to the follower; the rest to the primary.
    follower_reads_one_in: u32,
}

impl LaggingRegister {
    fn new(lag: Duration, follower_reads_one_in: u32) -> Self {
        LaggingRegister {
            primary: Arc::default(),
            follower: Arc::default(),
            lag,
            follower_reads_one_in,
        }
    }

    fn replicate(&self, key: Key, value: Value) {
        let follower = self.follower.clone();
        let lag = self.lag;
        tokio::spawn(async move {
            tokio::time::sleep(lag).await;
            follower.lock().insert(key, value);
        });
    }
}

impl RegisterClient for LaggingRegister {
    async fn read(&self, key: Key) -> Result<Option<Value>, ClientError> {
        jitter(300).await;
        let from_follower = rand::rng().random_range(0..self.follower_reads_one_in) == 0;
        let copy = if from_follower {
            &self.follower
        } else {
            &self.primary
        };
        Ok(copy.lock().get(&key).copied())
    }

    async fn write(&self, key: Key, value: Value) -> Result<(), ClientError> {
        jitter(300).await;
        self.primary.lock().insert(key, value);
        self.replicate(key, value);
        Ok(())
    }

    async fn cas(
        &self,
        key: Key,
        expected: Option<Value>,
        new: Value,
    ) -> Result<bool, ClientError> {
        jitter(300).await;
        let ok = {
            let mut m = self.primary.lock();
            if m.get(&key).copied() == expected {
                m.insert(key, new);
                true
            } else {
                false
            }
        };
        if ok {
            self.replicate(key, new);
        }
        Ok(ok)
    }
}

fn config(seed: u64) -> RegisterWorkload {
    RegisterWorkload {
        processes: 8,
        keys: 3,
        ops_per_process: 150,
        duration: Some(Duration::from_secs(20)),
        op_timeout: Duration::from_millis(50),
        seed,
        ..RegisterWorkload::default()
    }
}

fn count(
    h: &RegisterHistory,
    f: impl Fn(&Completion<tardigrade_testkit::RegisterRet>) -> bool,
) -> usize {
    h.operations().iter().filter(|o| f(&o.completion)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workload_on_a_linearizable_register_passes() {
    let h = register_workload(Arc::new(GoodRegister::default()), &config(1)).await;
    assert_eq!(h.operations().len(), 8 * 150);
    if let Err(e) = check_register_history(&h) {
        panic!("linearizable register rejected: {e}\n{}", h.dump());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workload_on_a_flaky_but_linearizable_register_passes() {
    let h = register_workload(Arc::new(FlakyRegister::default()), &config(2)).await;
    let infos = count(&h, |c| matches!(c, Completion::Info(_)));
    let fails = count(&h, |c| matches!(c, Completion::Fail(_)));
    assert!(infos > 10 && fails > 5, "infos {infos}, fails {fails}");
    if let Err(e) = check_register_history(&h) {
        panic!("linearizable register rejected: {e}\n{}", h.dump());
    }
}

async fn assert_caught(register: LaggingRegister, seed: u64) {
    let h = register_workload(Arc::new(register), &config(seed)).await;
    match check_register_history(&h) {
        Err(CheckError::Violation(v)) => {
            let msg = v.to_string();
            assert!(msg.contains("is not linearizable"), "{msg}");
            assert!(msg.contains("but the register holds"), "{msg}");
            eprintln!("seed {seed}: caught as expected:\n{msg}");
        }
        other => panic!("lagging register not caught (seed {seed}): {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workload_on_a_lagging_register_is_caught() {
    // Injected violation: every read served from a copy 20 ms behind.
    for seed in 0..3 {
        assert_caught(LaggingRegister::new(Duration::from_millis(20), 1), seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workload_with_occasional_stale_reads_is_caught() {
    // Subtler: one read in ten goes to the lagging copy.
    for seed in 0..3 {
        assert_caught(LaggingRegister::new(Duration::from_millis(20), 10), seed).await;
    }
}

/// An in-memory, linearizable KV store speaking the `Sender` protocol for
/// `Get`, `Put` and `ConditionalPut`.
struct MemSender {
    map: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    clock: Arc<Hlc>,
}

impl Sender for MemSender {
    fn send(&self, ba: BatchRequest) -> SendFuture<'_> {
        Box::pin(async move {
            let mut map = self.map.lock();
            let mut responses = Vec::new();
            for req in ba.requests {
                responses.push(match req {
                    Request::Get { key } => Response::Get {
                        value: map.get(&key).map(|b| tardigrade_kvpb::Value {
                            bytes: b.clone(),
                            timestamp: self.clock.now(),
                        }),
                    },
                    Request::Put { key, value } => {
                        map.insert(key, value);
                        Response::Put
                    }
                    Request::ConditionalPut {
                        key,
                        value,
                        expected,
                    } => {
                        if map.get(&key) != expected.as_ref() {
                            return Err(KvError::new(ErrorDetail::ConditionFailed {
                                actual: None,
                            }));
                        }
                        map.insert(key, value);
                        Response::ConditionalPut
                    }
                    other => return Err(KvError::invalid(format!("{other:?}"))),
                });
            }
            Ok(BatchResponse {
                now: self.clock.now(),
                txn: None,
                responses,
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workload_through_kv_register_adapter_passes() {
    let sender = Arc::new(MemSender {
        map: Mutex::default(),
        clock: Arc::new(Hlc::system()),
    });
    let db = Db::new(sender.clone(), Arc::new(Hlc::system()));
    let probe = KvRegister::new(db.clone(), b"probe/".to_vec());
    assert_eq!(probe.cas(1, None, 5).await, Ok(true));
    assert_eq!(probe.cas(1, None, 6).await, Ok(false));
    assert_eq!(probe.cas(1, Some(5), 6).await, Ok(true));
    assert_eq!(probe.read(1).await, Ok(Some(6)));
    assert_eq!(probe.read(2).await, Ok(None));
    probe.write(2, 7).await.unwrap();
    assert_eq!(probe.read(2).await, Ok(Some(7)));
    assert_eq!(
        sender.map.lock().get(&probe.kv_key(1)),
        Some(&b"6".to_vec())
    );

    // The workload's registers start empty (under another prefix).
    let client = KvRegister::new(db, b"reg/".to_vec());
    let h = register_workload(Arc::new(client), &config(3)).await;
    let oks = count(&h, |c| matches!(c, Completion::Ok(_)));
    assert_eq!(oks, 8 * 150);
    check_register_history(&h).unwrap();
}
