//! The KV client: the `Db` and `Txn` API that SQL and tools program against.
//!
//! [`Db`] sends non-transactional batches; [`Txn`] is a serializable
//! transaction whose coordinator (CockroachDB's `TxnCoordSender`) assigns
//! sequence numbers, anchors the transaction record at its first written
//! key, tracks the spans it read (to refresh them) and wrote (to resolve
//! them), heartbeats its record, refreshes its reads when the server pushes
//! its timestamp, and commits or rolls back.
//!
//! Across a cluster, [`DistSender`] sits between these and the network: it
//! routes each part of a batch to the leaseholder of its range.

mod dist_sender;
mod range_cache;
mod txn;

use std::sync::Arc;

use tardigrade_hlc::{Hlc, Timestamp};
use tardigrade_kvpb::{
    BatchRequest, BatchResponse, Header, KeyValue, KvError, RangeDescriptor, Request, Response,
    Sender, Span,
};

pub use dist_sender::{DistSender, FirstRange, NodeDialer, NodeHealth};
pub use range_cache::{CachedRange, RangeCache};
pub use txn::{Savepoint, Txn};

/// A handle for sending KV requests through a [`Sender`].
#[derive(Clone)]
pub struct Db {
    sender: Arc<dyn Sender>,
    clock: Arc<Hlc>,
    /// Where transaction ids come from when they must be reproducible
    /// (a deterministic simulation); `None`: the thread's RNG.
    txn_ids: Option<Arc<parking_lot::Mutex<rand::rngs::StdRng>>>,
}

impl Db {
    pub fn new(sender: Arc<dyn Sender>, clock: Arc<Hlc>) -> Db {
        Db {
            sender,
            clock,
            txn_ids: None,
        }
    }

    /// Draws transaction ids from a generator seeded with `seed`, so that
    /// a simulation replays them (ids break ties between pushers).
    pub fn with_seeded_txn_ids(mut self, seed: u64) -> Db {
        use rand::SeedableRng;
        self.txn_ids = Some(Arc::new(parking_lot::Mutex::new(
            rand::rngs::StdRng::seed_from_u64(seed),
        )));
        self
    }

    pub fn clock(&self) -> &Arc<Hlc> {
        &self.clock
    }

    /// Sends a non-transactional batch: it is atomic, applied at one
    /// timestamp that the server chooses.
    pub async fn send(&self, requests: Vec<Request>) -> Result<BatchResponse, KvError> {
        let ba = BatchRequest {
            header: Header::default(),
            requests,
        };
        let resp = self.sender.send(ba).await?;
        let _ = self.clock.update(resp.now);
        Ok(resp)
    }

    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let resp = self.send(vec![Request::Get { key: key.to_vec() }]).await?;
        match resp.responses.into_iter().next() {
            Some(Response::Get { value }) => Ok(value.map(|v| v.bytes)),
            _ => Err(KvError::internal("Get: wrong response")),
        }
    }

    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.send(vec![Request::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        }])
        .await
        .map(drop)
    }

    pub async fn del(&self, key: &[u8]) -> Result<(), KvError> {
        self.send(vec![Request::Delete { key: key.to_vec() }])
            .await
            .map(drop)
    }

    /// Adds `inc` to the integer at `key` and returns the new value.
    pub async fn inc(&self, key: &[u8], inc: i64) -> Result<i64, KvError> {
        let resp = self
            .send(vec![Request::Increment {
                key: key.to_vec(),
                inc,
            }])
            .await?;
        match resp.responses.into_iter().next() {
            Some(Response::Increment { new_value }) => Ok(new_value),
            _ => Err(KvError::internal("Increment: wrong response")),
        }
    }

    /// Up to `max_rows` (0: all) rows of `[start, end)`, each page read at
    /// its own timestamp (use a transaction for a consistent scan).
    pub async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        max_rows: i64,
    ) -> Result<Vec<KeyValue>, KvError> {
        let mut out = Vec::new();
        let mut span = Span::new(start.to_vec(), end.to_vec());
        loop {
            let page = page_limit(max_rows, out.len());
            let ba = BatchRequest {
                header: Header {
                    max_span_request_keys: page,
                    ..Header::default()
                },
                requests: vec![Request::Scan { span }],
            };
            let resp = self.sender.send(ba).await?;
            let _ = self.clock.update(resp.now);
            let Some(Response::Scan { rows, resume_span }) = resp.responses.into_iter().next()
            else {
                return Err(KvError::internal("Scan: wrong response"));
            };
            out.extend(rows);
            match resume_span {
                Some(rest) if max_rows <= 0 || (out.len() as i64) < max_rows => span = rest,
                _ => return Ok(out),
            }
        }
    }

    /// Splits the range containing `key` at `key`; returns the descriptors
    /// of the two ranges. Refused inside the local and meta spans.
    pub async fn admin_split(
        &self,
        key: &[u8],
    ) -> Result<(RangeDescriptor, RangeDescriptor), KvError> {
        let resp = self
            .send(vec![Request::AdminSplit {
                split_key: key.to_vec(),
            }])
            .await?;
        match resp.responses.into_iter().next() {
            Some(Response::AdminSplit { left, right }) => Ok((left, right)),
            _ => Err(KvError::internal("AdminSplit: wrong response")),
        }
    }

    /// Starts a transaction.
    pub fn txn(&self, name: &str) -> Txn {
        let id = match &self.txn_ids {
            Some(rng) => rand::Rng::random(&mut *rng.lock()),
            None => rand::random(),
        };
        Txn::new(self.sender.clone(), self.clock.clone(), name, id)
    }

    /// The current time on this node's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// Scans fetch in pages so that one response stays bounded.
const SCAN_PAGE: i64 = 10_000;

fn page_limit(max_rows: i64, have: usize) -> i64 {
    if max_rows <= 0 {
        SCAN_PAGE
    } else {
        (max_rows - have as i64).clamp(1, SCAN_PAGE)
    }
}
