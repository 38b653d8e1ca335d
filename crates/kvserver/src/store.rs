//! A store: one engine and the replicas on it. It validates incoming
//! batches, assigns timestamps, folds remote clocks into the HLC, and routes
//! each batch to the replica whose range contains it.
//!
//! TODO(issue 3): many ranges per store, range descriptors in meta ranges,
//! splits; today one replica spans the whole key space.

use std::sync::Arc;

use tardigrade_encoding::keys;
use tardigrade_hlc::Hlc;
use tardigrade_kvpb::{
    BatchRequest, BatchResult, ErrorDetail, KvError, Request, SendFuture, Sender,
};
use tardigrade_storage::{Engine, EngineError, mvcc};

use crate::replica::Replica;

/// Largest number of requests accepted in one batch.
pub const MAX_BATCH_REQUESTS: usize = 100_000;

#[derive(Clone, Debug, Default)]
pub struct StoreConfig {}

pub struct Store {
    clock: Arc<Hlc>,
    engine: Engine,
    replica: Replica,
}

impl Store {
    /// Opens the store on `engine`: one range spanning the whole key space,
    /// its statistics recomputed from the data.
    pub fn open(
        engine: Engine,
        clock: Arc<Hlc>,
        config: StoreConfig,
    ) -> Result<Arc<Store>, EngineError> {
        let _ = config;
        let stats =
            mvcc::compute_stats(&engine, keys::MIN_KEY, keys::MAX_KEY).map_err(|e| match e {
                mvcc::MvccError::Engine(e) => e,
                other => EngineError::Corrupt(other.to_string()),
            })?;
        Ok(Arc::new_cyclic(|weak| Store {
            clock: clock.clone(),
            engine: engine.clone(),
            replica: Replica::new(
                1,
                keys::MIN_KEY.to_vec(),
                keys::MAX_KEY.to_vec(),
                engine,
                clock,
                weak.clone(),
                stats,
            ),
        }))
    }

    pub fn clock(&self) -> &Arc<Hlc> {
        &self.clock
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn stats(&self) -> tardigrade_storage::MvccStats {
        self.replica.stats()
    }

    /// Executes a batch from a client.
    pub async fn execute(&self, ba: BatchRequest) -> BatchResult {
        validate(&ba)?;
        self.send_internal(ba).await
    }

    /// Executes a batch from inside the server (pushes, resolution), which
    /// may address transaction-record keys.
    pub(crate) async fn send_internal(&self, mut ba: BatchRequest) -> BatchResult {
        if let Some(txn) = &ba.header.txn {
            self.clock
                .update(txn.meta.write_timestamp)
                .map_err(|e| KvError::new(ErrorDetail::ClockOffset(e.to_string())))?;
        } else if ba.header.timestamp.is_zero() {
            ba.header.timestamp = self.clock.now();
        } else {
            self.clock
                .update(ba.header.timestamp)
                .map_err(|e| KvError::new(ErrorDetail::ClockOffset(e.to_string())))?;
        }
        // Boxed: conflict handling sends batches (push, resolve) recursively.
        Box::pin(self.replica.send(ba)).await
    }
}

impl Sender for Store {
    fn send(&self, ba: BatchRequest) -> SendFuture<'_> {
        Box::pin(self.execute(ba))
    }
}

/// Rejects batches no correct client sends.
fn validate(ba: &BatchRequest) -> Result<(), KvError> {
    if ba.requests.is_empty() {
        return Err(KvError::invalid("empty batch"));
    }
    if ba.requests.len() > MAX_BATCH_REQUESTS {
        return Err(KvError::invalid(format!(
            "batch of {} requests exceeds the limit of {MAX_BATCH_REQUESTS}",
            ba.requests.len()
        )));
    }
    let check_key = |k: &[u8]| -> Result<(), KvError> {
        if k < keys::LOCAL_MAX {
            return Err(KvError::invalid(format!(
                "key {} is in the local key space, which clients cannot address",
                tardigrade_encoding::pretty_key(k)
            )));
        }
        if k >= keys::MAX_KEY {
            return Err(KvError::invalid(format!(
                "key {} is at or above /Max",
                tardigrade_encoding::pretty_key(k)
            )));
        }
        Ok(())
    };
    for (i, req) in ba.requests.iter().enumerate() {
        let span = req.span(&ba.header);
        let res = (|| {
            match req {
                Request::EndTxn { .. } | Request::HeartbeatTxn { .. }
                    if ba.header.txn.is_none() =>
                {
                    return Err(KvError::invalid(format!(
                        "{} requires a transaction",
                        req.method()
                    )));
                }
                Request::Refresh { .. } if ba.header.txn.is_none() => {
                    return Err(KvError::invalid("Refresh requires a transaction"));
                }
                _ => {}
            }
            check_key(&span.key)?;
            if !span.is_point() {
                if span.end_key <= span.key {
                    return Err(KvError::invalid(format!(
                        "{}: end key {} is not after start key {}",
                        req.method(),
                        tardigrade_encoding::pretty_key(&span.end_key),
                        tardigrade_encoding::pretty_key(&span.key)
                    )));
                }
                if span.end_key.as_slice() > keys::MAX_KEY {
                    return Err(KvError::invalid("end key above /Max"));
                }
            }
            if let Request::EndTxn { lock_spans, .. } = req {
                for s in lock_spans {
                    check_key(&s.key)?;
                }
            }
            Ok(())
        })();
        res.map_err(|e| e.with_index(i))?;
    }
    if let Some(txn) = &ba.header.txn {
        // Read-only transactions have no anchor key yet.
        if !txn.meta.key.is_empty() {
            check_key(&txn.meta.key)?;
        }
        if txn.meta.write_timestamp < txn.read_timestamp {
            return Err(KvError::invalid(
                "transaction writes below its read timestamp",
            ));
        }
    }
    Ok(())
}
