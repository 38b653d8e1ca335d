//! A small transaction runner for the server's own metadata transactions
//! (splits; replica changes), which cannot use `kv::Txn` (kvserver sits below
//! the kv crate).
//!
//! It sends one request per batch through the store's cluster sender (each
//! request addresses one range), numbers nothing itself (the server assigns
//! sequence numbers after the header's), absorbs pushes, and commits with an
//! optional [`CommitTrigger`]. A transaction that only wrote blindly has no
//! reads to refresh, so a commit refused because it was pushed is retried at
//! the pushed timestamp; one that read (`get`) returns the retry error
//! instead (no refresh here). Anything else (an abort by a deadlock or a
//! conflicting change) is returned; the caller starts over with a new
//! transaction. No heartbeat: these transactions last milliseconds, and one
//! that stalls past the liveness threshold is aborted by others and retried.

use tardigrade_hlc::Timestamp;
use tardigrade_kvpb::{
    BatchRequest, CommitTrigger, ErrorDetail, Header, KvError, Request, Response, RetryReason,
    Span, Transaction, TransactionStatus, TxnId, TxnMeta,
};

use crate::store::Store;

/// Commit attempts after pushes.
const COMMIT_ATTEMPTS: usize = 8;

pub struct InternalTxn<'a> {
    store: &'a Store,
    proto: Transaction,
    lock_spans: Vec<Span>,
    /// Whether it read anything (then a push cannot be absorbed without a
    /// refresh, which this runner does not do).
    has_reads: bool,
    done: bool,
    /// The write timestamp the first write went out at (see `commit`).
    first_write_ts: Option<Timestamp>,
}

impl<'a> InternalTxn<'a> {
    /// A transaction whose record lives on the range holding `anchor` (a
    /// global key): commit triggers apply to that range.
    pub fn new(store: &'a Store, anchor: Vec<u8>, name: &str) -> InternalTxn<'a> {
        let now = store.clock().now();
        InternalTxn {
            store,
            proto: Transaction {
                meta: TxnMeta {
                    id: TxnId(rand::random()),
                    key: anchor,
                    epoch: 0,
                    write_timestamp: now,
                    min_timestamp: now,
                    priority: 0,
                    sequence: 0,
                },
                name: name.to_string(),
                status: TransactionStatus::Pending,
                read_timestamp: now,
                global_uncertainty_limit: now.add_duration(store.clock().max_offset()),
                last_heartbeat: now,
                lock_spans: Vec::new(),
                ignored_seqs: Vec::new(),
                observed_timestamps: Vec::new(),
            },
            lock_spans: Vec::new(),
            has_reads: false,
            done: false,
            first_write_ts: None,
        }
    }

    pub fn id(&self) -> TxnId {
        self.proto.id()
    }

    async fn send(&mut self, req: Request) -> Result<Response, KvError> {
        if req.is_write() {
            self.lock_spans.push(req.span(&Header::default()));
            self.first_write_ts
                .get_or_insert(self.proto.meta.write_timestamp);
        }
        let ba = BatchRequest {
            header: Header {
                txn: Some(self.proto.clone()),
                ..Header::default()
            },
            requests: vec![req],
        };
        let resp = self.store.send_routed(ba).await.inspect_err(|e| {
            if let Some(t) = &e.txn {
                self.absorb(t);
            }
        })?;
        let _ = self.store.clock().update(resp.now);
        if let Some(t) = &resp.txn {
            self.absorb(t);
            self.proto.meta.sequence = self.proto.meta.sequence.max(t.meta.sequence);
        }
        resp.responses
            .into_iter()
            .next()
            .ok_or_else(|| KvError::internal("no response"))
    }

    fn absorb(&mut self, t: &Transaction) {
        if t.id() != self.id() {
            return;
        }
        self.proto
            .meta
            .write_timestamp
            .forward(t.meta.write_timestamp);
        if t.status == TransactionStatus::Aborted {
            self.proto.status = TransactionStatus::Aborted;
        }
    }

    /// Reads `key` at the transaction's read timestamp.
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.has_reads = true;
        match self.send(Request::Get { key: key.to_vec() }).await? {
            Response::Get { value } => Ok(value.map(|v| v.bytes)),
            _ => Err(KvError::internal("Get: wrong response")),
        }
    }

    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.send(Request::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        })
        .await
        .map(drop)
    }

    /// Commits, applying `trigger` on the record's range with the commit.
    pub async fn commit(&mut self, trigger: Option<CommitTrigger>) -> Result<(), KvError> {
        for _ in 0..COMMIT_ATTEMPTS {
            // Blind writes only: nothing to refresh, so a pushed
            // transaction commits at its pushed timestamp.
            if !self.has_reads {
                self.proto.read_timestamp = self.proto.meta.write_timestamp;
            }
            self.bump_clocks().await?;
            let ba = BatchRequest {
                header: Header {
                    txn: Some(self.proto.clone()),
                    ..Header::default()
                },
                requests: vec![Request::EndTxn {
                    commit: true,
                    lock_spans: self.lock_spans.clone(),
                    deadline: Timestamp::ZERO,
                    trigger: trigger.clone(),
                }],
            };
            match self.store.send_routed(ba).await {
                Ok(resp) => {
                    let _ = self.store.clock().update(resp.now);
                    self.done = true;
                    return Ok(());
                }
                Err(e) => {
                    if let Some(t) = &e.txn {
                        self.absorb(t);
                    }
                    let pushed = !self.has_reads
                        && matches!(
                            e.detail,
                            ErrorDetail::TransactionRetry {
                                reason: RetryReason::Serializable
                            }
                        )
                        && self.proto.meta.write_timestamp > self.proto.read_timestamp;
                    if !pushed {
                        return Err(e);
                    }
                }
            }
        }
        Err(KvError::new(ErrorDetail::TransactionRetry {
            reason: RetryReason::Serializable,
        }))
    }

    /// Pushed after writing: moves the clocks of the lock spans'
    /// leaseholders up to the commit timestamp before committing (an empty
    /// `Refresh` carrying the transaction), so that no leaseholder serves
    /// this commit's values above its clock, which observed timestamps rely
    /// on (the same step as `kv::Txn`'s, which explains why).
    async fn bump_clocks(&mut self) -> Result<(), KvError> {
        let commit_ts = self.proto.meta.write_timestamp;
        if self.first_write_ts.is_none_or(|first| commit_ts <= first) {
            return Ok(());
        }
        let mut txn = self.proto.clone();
        txn.read_timestamp = commit_ts;
        for span in &self.lock_spans {
            let ba = BatchRequest {
                header: Header {
                    txn: Some(txn.clone()),
                    ..Header::default()
                },
                requests: vec![Request::Refresh {
                    span: span.clone(),
                    refresh_from: commit_ts,
                }],
            };
            self.store.send_routed(ba).await?;
        }
        self.first_write_ts = Some(commit_ts);
        Ok(())
    }

    /// Aborts, releasing the intents (best effort: an abandoned record
    /// expires and its intents are cleaned up by whoever meets them).
    pub async fn rollback(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if self.lock_spans.is_empty() {
            return;
        }
        let ba = BatchRequest {
            header: Header {
                txn: Some(self.proto.clone()),
                ..Header::default()
            },
            requests: vec![Request::EndTxn {
                commit: false,
                lock_spans: self.lock_spans.clone(),
                deadline: Timestamp::ZERO,
                trigger: None,
            }],
        };
        if let Err(e) = self.store.send_routed(ba).await {
            tracing::debug!(txn = ?self.id(), error = %e, "internal rollback failed");
        }
    }
}
