//! A replica: one range's data on this store, and the machinery that lets
//! many requests run on it at once.
//!
//! The path of a batch: acquire latches → forward write timestamps above
//! the timestamp cache → evaluate against a snapshot into a write batch →
//! apply (atomically, durably) → record reads in the timestamp cache and wake
//! waiters → release latches. A batch that meets intents drops its latches,
//! joins the key's wait queue in the lock table and pushes the holder; once
//! the push succeeds it resolves the intent and evaluates again.
//!
//! TODO(issue 3): Raft goes between evaluation and application; leases decide
//! which replica evaluates.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tardigrade_hlc::{Hlc, Timestamp};
use tardigrade_kvpb::{
    AbortReason, BatchRequest, BatchResponse, BatchResult, ErrorDetail, Header, IntentInfo,
    KvError, PushType, Request, Response, Span, Transaction, TransactionStatus,
};
use tardigrade_storage::{Batch, Engine, MvccStats};

use crate::eval::{self, EvalContext, EvalError, EvalResult};
use crate::latch::{Access, LatchManager, LatchSpan};
use crate::lock_table::LockTable;
use crate::store::Store;
use crate::tscache::TimestampCache;
use crate::txnrecord;
use crate::txnwait::{self, TxnWaitQueue};

/// How often a waiting pusher re-checks its own status and looks for deadlocks.
const PUSH_POLL: Duration = Duration::from_millis(50);

pub struct Replica {
    #[allow(dead_code)] // TODO(issue 3): addressing by range id.
    pub range_id: u64,
    pub start_key: Vec<u8>,
    pub end_key: Vec<u8>,
    engine: Engine,
    clock: Arc<Hlc>,
    store: Weak<Store>,
    latches: LatchManager,
    lock_table: LockTable,
    tscache: TimestampCache,
    txn_wait: TxnWaitQueue,
    /// Serialises application so that stats and the engine move together.
    apply_mu: Mutex<MvccStats>,
}

impl Replica {
    pub fn new(
        range_id: u64,
        start_key: Vec<u8>,
        end_key: Vec<u8>,
        engine: Engine,
        clock: Arc<Hlc>,
        store: Weak<Store>,
        stats: MvccStats,
    ) -> Replica {
        // No read served before this replica existed can be undercut: start
        // the timestamp cache at the present plus the maximum clock offset.
        let low_water = clock.now().add_duration(clock.max_offset());
        // And move our own clock there, so that reads this node timestamps
        // are never below a write it had to push above the low-water mark.
        // (Within the maximum offset by construction, so it cannot fail.)
        let _ = clock.update(low_water);
        Replica {
            range_id,
            start_key,
            end_key,
            engine,
            clock,
            store,
            latches: LatchManager::default(),
            lock_table: LockTable::default(),
            tscache: TimestampCache::new(low_water),
            txn_wait: TxnWaitQueue::default(),
            apply_mu: Mutex::new(stats),
        }
    }

    pub fn stats(&self) -> MvccStats {
        *self.apply_mu.lock()
    }

    fn store(&self) -> Result<Arc<Store>, KvError> {
        self.store
            .upgrade()
            .ok_or_else(|| KvError::new(ErrorDetail::Unavailable("store is shutting down".into())))
    }

    fn ctx(&self, force_push: bool) -> EvalContext<'_> {
        EvalContext {
            start_key: &self.start_key,
            end_key: &self.end_key,
            now: self.clock.now(),
            force_push,
        }
    }

    /// Executes a batch whose header timestamp is set.
    pub async fn send(&self, mut ba: BatchRequest) -> BatchResult {
        if let [Request::PushTxn { .. }] = ba.requests.as_slice() {
            return self.send_push(ba).await;
        }
        loop {
            let guard = self.latches.acquire(latch_spans(&ba)).await;
            self.apply_timestamp_cache(&mut ba);
            let mut b = self.engine.batch();
            let evaluated = eval::evaluate(&self.ctx(false), &mut b, &ba);
            match evaluated {
                Ok(mut res) => {
                    self.apply(b, &res).await?;
                    drop(guard);
                    // A write may have gone in above the clock (pushed by the
                    // timestamp cache or a newer value); later reads that this
                    // node timestamps must see it.
                    if !res.max_write_ts.is_zero() {
                        let _ = self.clock.update(res.max_write_ts);
                    }
                    self.fill_query_responses(&ba, &mut res);
                    return Ok(BatchResponse {
                        now: self.clock.now(),
                        txn: res.txn,
                        responses: res.responses,
                    });
                }
                Err(EvalError::Intents(intents)) => {
                    drop(guard);
                    self.handle_conflicts(&ba, intents).await?;
                }
                Err(EvalError::PushFailed) => {
                    return Err(KvError::internal("push outside the push path"));
                }
                Err(EvalError::Kv(e)) => {
                    let mut e = *e;
                    if e.txn.is_none() {
                        e.txn = ba.header.txn.clone();
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Writes the evaluated batch durably, then applies its in-memory effects.
    async fn apply(&self, b: Batch, res: &EvalResult) -> Result<(), KvError> {
        let writes = b.into_writes();
        if !writes.is_empty() {
            {
                let mut stats = self.apply_mu.lock();
                self.engine
                    .commit(&writes, false)
                    .map_err(|e| KvError::internal(e.to_string()))?;
                stats.add(&res.stats);
            }
            let engine = self.engine.clone();
            tokio::task::spawn_blocking(move || engine.sync())
                .await
                .map_err(|e| KvError::internal(e.to_string()))?
                .map_err(|e| KvError::internal(e.to_string()))?;
        }
        for (span, ts, txn) in &res.reads {
            self.tscache.add(span, *ts, *txn);
        }
        for key in &res.resolved_keys {
            self.lock_table.release_key(key);
        }
        for txn in &res.finished_txns {
            self.lock_table.release_txn(*txn);
        }
        for txn in &res.updated_records {
            self.txn_wait.notify(*txn);
        }
        Ok(())
    }

    /// Writes must not land below reads already served on their keys.
    fn apply_timestamp_cache(&self, ba: &mut BatchRequest) {
        let txn_id = ba.header.txn.as_ref().map(Transaction::id);
        let mut min_write = match &ba.header.txn {
            Some(t) => t.meta.write_timestamp,
            None => ba.header.timestamp,
        };
        for req in &ba.requests {
            if !req.is_write() {
                continue;
            }
            let mark = self.tscache.get_max(&req.span(&ba.header));
            if mark.txn.is_some() && mark.txn == txn_id {
                continue;
            }
            if mark.ts >= min_write {
                min_write = mark.ts.next();
            }
        }
        match &mut ba.header.txn {
            Some(t) => {
                t.meta.write_timestamp.forward(min_write);
            }
            None => {
                ba.header.timestamp.forward(min_write);
            }
        }
    }

    fn fill_query_responses(&self, ba: &BatchRequest, res: &mut EvalResult) {
        for (req, resp) in ba.requests.iter().zip(res.responses.iter_mut()) {
            if let (Request::QueryTxn { txn }, Response::QueryTxn { waiting_txns, .. }) =
                (req, resp)
            {
                *waiting_txns = self.txn_wait.dependents(txn.id).into_iter().collect();
            }
        }
    }

    /// Waits for, pushes and resolves the intents a batch ran into.
    async fn handle_conflicts(
        &self,
        ba: &BatchRequest,
        intents: Vec<IntentInfo>,
    ) -> Result<(), KvError> {
        let store = self.store()?;
        let writes = ba.has_writes();
        for intent in intents {
            let mut waiter = self.lock_table.wait_on(&intent.key, intent.txn.id);
            let (push_type, push_to) = match &ba.header.txn {
                _ if writes => (PushType::Abort, Timestamp::ZERO),
                Some(t) => (
                    PushType::Timestamp,
                    t.global_uncertainty_limit.max(t.read_timestamp),
                ),
                None => (PushType::Timestamp, ba.header.timestamp),
            };
            let push = BatchRequest {
                header: Header {
                    timestamp: self.clock.now(),
                    txn: ba.header.txn.clone(),
                    ..Header::default()
                },
                requests: vec![Request::PushTxn {
                    pushee: intent.txn.clone(),
                    push_to,
                    push_type,
                }],
            };
            let pushed = tokio::select! {
                _ = waiter.released() => None,
                r = store.send_internal(push) => Some(r?),
            };
            let Some(resp) = pushed else { continue };
            let Some(Response::PushTxn { pushee }) = resp.responses.into_iter().next() else {
                return Err(KvError::internal("push returned no pushee"));
            };
            let resolve = BatchRequest {
                header: Header {
                    timestamp: self.clock.now(),
                    ..Header::default()
                },
                requests: vec![Request::ResolveIntent {
                    key: intent.key.clone(),
                    txn: pushee.meta.clone(),
                    status: pushee.status,
                    ignored_seqs: pushee.ignored_seqs.clone(),
                }],
            };
            store.send_internal(resolve).await?;
        }
        Ok(())
    }

    /// A push: evaluate; if the pusher cannot win yet, wait in the pushee's
    /// queue until its record changes, looking for deadlocks meanwhile.
    async fn send_push(&self, ba: BatchRequest) -> BatchResult {
        let Some(Request::PushTxn { pushee, .. }) = ba.requests.first() else {
            return Err(KvError::internal("not a push"));
        };
        let pushee = pushee.clone();
        let pusher = ba.header.txn.clone();
        let pusher_id = pusher.as_ref().map(Transaction::id);
        let record_span = vec![LatchSpan {
            span: Span::point(txnrecord::record_key(&pushee)),
            access: Access::Write,
        }];
        let mut force = false;
        let mut queued: Option<tokio::sync::watch::Receiver<u64>> = None;
        let result = loop {
            let guard = self.latches.acquire(record_span.clone()).await;
            let mut b = self.engine.batch();
            match eval::evaluate(&self.ctx(force), &mut b, &ba) {
                Ok(res) => {
                    let applied = self.apply(b, &res).await;
                    drop(guard);
                    break applied.map(|()| BatchResponse {
                        now: self.clock.now(),
                        txn: res.txn,
                        responses: res.responses,
                    });
                }
                Err(EvalError::PushFailed) => drop(guard),
                Err(EvalError::Kv(e)) => break Err(*e),
                Err(EvalError::Intents(_)) => {
                    break Err(KvError::internal("push met intents"));
                }
            }
            let rx = queued.get_or_insert_with(|| self.txn_wait.enqueue(pushee.id, pusher_id));
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep(PUSH_POLL) => {}
            }
            if let Some(p) = &pusher {
                match self.check_pusher(p, &pushee).await {
                    Ok(deadlocked) => force |= deadlocked,
                    Err(e) => break Err(e),
                }
            }
        };
        if queued.is_some() {
            self.txn_wait.dequeue(pushee.id, pusher_id);
        }
        result
    }

    /// Returns an error if the waiting pusher was itself aborted, and whether
    /// it should break a deadlock by aborting the pushee.
    async fn check_pusher(
        &self,
        pusher: &Transaction,
        pushee: &tardigrade_kvpb::TxnMeta,
    ) -> Result<bool, KvError> {
        let store = self.store()?;
        let query = BatchRequest {
            header: Header {
                timestamp: self.clock.now(),
                ..Header::default()
            },
            requests: vec![Request::QueryTxn {
                txn: pusher.meta.clone(),
            }],
        };
        let resp = store.send_internal(query).await?;
        let Some(Response::QueryTxn { txn, waiting_txns }) = resp.responses.into_iter().next()
        else {
            return Err(KvError::internal("query returned nothing"));
        };
        if txn.is_some_and(|t| t.status == TransactionStatus::Aborted) {
            return Err(KvError::new(ErrorDetail::TransactionAborted {
                reason: AbortReason::AbortedRecord,
            })
            .with_txn(Some(pusher.clone())));
        }
        let deps: HashSet<_> = waiting_txns.into_iter().collect();
        let cycle = deps.contains(&pushee.id);
        self.txn_wait.set_dependents(pushee.id, pusher.id(), deps);
        Ok(cycle && txnwait::breaks_deadlock(&pusher.meta, pushee))
    }
}

/// The spans a batch latches, and how.
fn latch_spans(ba: &BatchRequest) -> Vec<LatchSpan> {
    let mut out = Vec::with_capacity(ba.requests.len());
    let mut add = |span: Span, access| out.push(LatchSpan { span, access });
    for req in &ba.requests {
        match req {
            Request::Get { .. }
            | Request::Scan { .. }
            | Request::ReverseScan { .. }
            | Request::Refresh { .. } => add(req.span(&ba.header), Access::Read),
            Request::EndTxn { lock_spans, .. } => {
                if let Some(t) = &ba.header.txn {
                    add(Span::point(txnrecord::record_key(&t.meta)), Access::Write);
                }
                for s in lock_spans {
                    add(s.clone(), Access::Write);
                }
            }
            Request::HeartbeatTxn { .. } => {
                if let Some(t) = &ba.header.txn {
                    add(Span::point(txnrecord::record_key(&t.meta)), Access::Write);
                }
            }
            Request::PushTxn { pushee, .. } => {
                add(Span::point(txnrecord::record_key(pushee)), Access::Write)
            }
            Request::QueryTxn { txn } => add(Span::point(txnrecord::record_key(txn)), Access::Read),
            _ => add(req.span(&ba.header), Access::Write),
        }
    }
    out
}
