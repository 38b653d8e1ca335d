//! The transaction coordinator.
//!
//! Sequence numbers: the header's `txn.meta.sequence` is the last sequence
//! number used before the batch; the server numbers the batch's writes
//! after it, in order, and returns the last one. Reads see every earlier
//! write of the transaction.
//!
//! Retries: when the server pushes the transaction's timestamp (a newer
//! write, the timestamp cache, an uncertain value, or a push from a reader),
//! the coordinator *refreshes*: it asks whether anything it read changed
//! between its old and new timestamp. If not, it moves its read timestamp up
//! and carries on, invisibly to the application. Only when a refresh fails
//! does the application see a retryable error (`is_retryable()`, SQLSTATE
//! 40001) and must run the transaction again.
//!
//! Uncertainty: the coordinator keeps the observed timestamps (one clock
//! reading per node) that come back in responses and errors, and sends them
//! with every request; the leaseholders use them to narrow the read's
//! uncertainty window (`Transaction::uncertainty_limit_on`). They stay valid
//! across refreshes, but a retry after a retryable error is a new `Txn` and
//! starts without any. A transaction whose write timestamp moved after its
//! first write moves its intents' leaseholders' clocks up to its commit
//! timestamp before committing (`Txn::bump_clocks`), which those readings
//! rely on.
//!
//! Fixed timestamps: a transaction given one before its first request
//! ([`Txn::set_fixed_timestamp`], SQL's `AS OF SYSTEM TIME`) reads at that
//! timestamp and nowhere else. Its uncertainty limit is the timestamp itself
//! (a historical read has no uncertainty: whatever was written after it is
//! simply later), so no read is ever uncertain; a refresh, which would move
//! the read timestamp, fails with a retryable error instead; and it refuses
//! writes, which would rewrite history below values already read by others.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tardigrade_hlc::{Hlc, Timestamp};
use tardigrade_kvpb::{
    BatchRequest, ErrorDetail, Header, KeyValue, KvError, Request, Response, RetryReason, Sender,
    Span, Transaction, TransactionStatus, TxnId, TxnMeta,
};

/// How often the coordinator heartbeats the transaction record.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// How many times one request is retried after successful refreshes.
const MAX_REFRESH_RETRIES: usize = 16;

/// Past this many refresh spans the coordinator condenses them into at most
/// `CONDENSED_REFRESH_SPANS` covering spans, so that a transaction that wrote a
/// million rows with conditional puts refreshes in a few range scans instead of
/// a million-request batch (CockroachDB bounds them by bytes the same way). A
/// covering span is a superset of what was read, so a refresh over it is
/// conservative: it can fail spuriously, never succeed wrongly.
const MAX_REFRESH_SPANS: usize = 4096;
const CONDENSED_REFRESH_SPANS: usize = 256;
/// Keys per command of [`Txn::delete_range`].
const DELETE_RANGE_PAGE: i64 = 4096;

/// A serializable transaction. Dropping it without committing rolls it back.
pub struct Txn {
    sender: Arc<dyn Sender>,
    clock: Arc<Hlc>,
    proto: Transaction,
    /// Keys and spans written, for resolution at commit.
    lock_spans: BTreeSet<Span>,
    /// Spans read, for refreshing.
    refresh_spans: Vec<Span>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    done: bool,
    /// Reads take exclusive unreplicated locks (`Header::lock_reads`).
    lock_reads: bool,
    /// The write timestamp when the first write was sent: intents are at or
    /// above it, and their leaseholders' clocks are at least at it.
    first_write_ts: Option<Timestamp>,
    /// The timestamp the lock spans' leaseholders' clocks were last moved
    /// up to before a commit (see [`Txn::bump_clocks`]).
    clocks_bumped_to: Timestamp,
    /// The highest sequence number a batch may have used: a batch that
    /// failed may have laid down some of its writes without the server's
    /// answer saying how far it numbered them (see
    /// [`Txn::rollback_to_savepoint`]).
    seq_high_water: i32,
    /// Reads happen at this timestamp and nowhere else, and nothing is
    /// written ([`Txn::set_fixed_timestamp`]).
    fixed_timestamp: Option<Timestamp>,
    /// Writes held back to go with the commit ([`Txn::write_at_commit`]).
    at_commit: Vec<Request>,
}

/// A point in a transaction to roll back to ([`Txn::savepoint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Savepoint {
    seq: i32,
    epoch: u32,
}

impl Txn {
    pub(crate) fn new(sender: Arc<dyn Sender>, clock: Arc<Hlc>, name: &str, id: [u8; 16]) -> Txn {
        let now = clock.now();
        let proto = Transaction {
            meta: TxnMeta {
                id: TxnId(id),
                key: Vec::new(),
                epoch: 0,
                write_timestamp: now,
                min_timestamp: now,
                priority: 0,
                sequence: 0,
            },
            name: name.to_string(),
            status: TransactionStatus::Pending,
            read_timestamp: now,
            global_uncertainty_limit: now.add_duration(clock.max_offset()),
            last_heartbeat: now,
            lock_spans: Vec::new(),
            ignored_seqs: Vec::new(),
            observed_timestamps: Vec::new(),
        };
        Txn {
            sender,
            clock,
            proto,
            lock_spans: BTreeSet::new(),
            refresh_spans: Vec::new(),
            heartbeat: None,
            done: false,
            lock_reads: false,
            first_write_ts: None,
            clocks_bumped_to: Timestamp::ZERO,
            seq_high_water: 0,
            fixed_timestamp: None,
            at_commit: Vec::new(),
        }
    }

    /// Makes the transaction read at `ts` and only there, as CockroachDB's
    /// `SetFixedTimestamp` (SQL's `AS OF SYSTEM TIME`): the read and write
    /// timestamps become `ts`, the uncertainty limit too (no read is
    /// uncertain), a refresh that would move the timestamp fails with a
    /// retryable error instead, and writes are refused. Only before the
    /// transaction read or wrote anything (it may be set again until then);
    /// `ts` must not be in the future (the caller checks it against the
    /// clock: a read above the clock could miss writes still to come).
    pub fn set_fixed_timestamp(&mut self, ts: Timestamp) -> Result<(), KvError> {
        let used = if !self.lock_spans.is_empty() || self.proto.meta.sequence != 0 {
            Some("writes")
        } else if !self.refresh_spans.is_empty() {
            Some("reads")
        } else {
            None
        };
        if let Some(what) = used {
            return Err(KvError::new(ErrorDetail::TransactionStatus {
                msg: format!(
                    "cannot set fixed timestamp, txn \"{}\" already performed {what}",
                    self.proto.name
                ),
            }));
        }
        self.proto.read_timestamp = ts;
        self.proto.meta.write_timestamp = ts;
        self.proto.meta.min_timestamp = self.proto.meta.min_timestamp.min(ts);
        self.proto.global_uncertainty_limit = ts;
        self.fixed_timestamp = Some(ts);
        Ok(())
    }

    /// The timestamp set by [`Txn::set_fixed_timestamp`], if any.
    pub fn fixed_timestamp(&self) -> Option<Timestamp> {
        self.fixed_timestamp
    }

    /// The transaction as of now: [`Txn::rollback_to_savepoint`] undoes
    /// every write made after it.
    pub fn savepoint(&self) -> Savepoint {
        Savepoint {
            seq: self.proto.meta.sequence.max(self.seq_high_water),
            epoch: self.proto.meta.epoch,
        }
    }

    /// Undoes the writes made since `savepoint`: their sequence numbers are
    /// ignored from now on by this transaction's reads and conditional
    /// writes, and by the resolution of its intents (which drops them), as
    /// CockroachDB's savepoints do. The locks those writes took stay until
    /// the transaction ends. Fails if the transaction restarted (a new
    /// epoch) since the savepoint.
    pub fn rollback_to_savepoint(&mut self, savepoint: Savepoint) -> Result<(), KvError> {
        if !self.at_commit.is_empty() {
            // Not numbered yet: nothing would tell them apart from later writes.
            return Err(KvError::internal(
                "rollback to a savepoint with writes held for the commit",
            ));
        }
        if savepoint.epoch != self.proto.meta.epoch {
            return Err(self.retry_error(RetryReason::Serializable));
        }
        let high = self.proto.meta.sequence.max(self.seq_high_water);
        if high > savepoint.seq {
            self.proto.ignored_seqs.push((savepoint.seq + 1, high));
            // Later writes are numbered above every rolled-back one.
            self.proto.meta.sequence = high;
            self.seq_high_water = high;
        }
        Ok(())
    }

    pub fn id(&self) -> TxnId {
        self.proto.id()
    }

    /// The transaction's current read timestamp.
    pub fn read_timestamp(&self) -> Timestamp {
        self.proto.read_timestamp
    }

    /// The transaction's current write (and commit) timestamp.
    pub fn write_timestamp(&self) -> Timestamp {
        self.proto.meta.write_timestamp
    }

    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let mut resp = self.send(vec![Request::Get { key: key.to_vec() }]).await?;
        match resp.pop() {
            Some(Response::Get { value }) => Ok(value.map(|v| v.bytes)),
            _ => Err(KvError::internal("Get: wrong response")),
        }
    }

    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        self.send(vec![Request::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        }])
        .await
        .map(drop)
    }

    pub async fn del(&mut self, key: &[u8]) -> Result<(), KvError> {
        self.send(vec![Request::Delete { key: key.to_vec() }])
            .await
            .map(drop)
    }

    /// Up to `max_rows` (0: all) rows of `[start, end)`, all at the
    /// transaction's read timestamp.
    pub async fn scan(
        &mut self,
        start: &[u8],
        end: &[u8],
        max_rows: i64,
    ) -> Result<Vec<KeyValue>, KvError> {
        self.scan_pages(start, end, max_rows, false).await
    }

    /// Up to `max_rows` (0: all) rows of `[start, end)` in descending key
    /// order, all at the transaction's read timestamp: [`Txn::scan`] read from
    /// the end. Each page is one `ReverseScan` with a key limit, which
    /// `DistSender` spreads over the ranges from the last one down; its resume
    /// span `[start, last key returned)` is where the next page continues.
    pub async fn reverse_scan(
        &mut self,
        start: &[u8],
        end: &[u8],
        max_rows: i64,
    ) -> Result<Vec<KeyValue>, KvError> {
        self.scan_pages(start, end, max_rows, true).await
    }

    /// Pages of a (reverse) scan, each continuing at the resume span of the
    /// last, until `max_rows` rows or the end of the span.
    async fn scan_pages(
        &mut self,
        start: &[u8],
        end: &[u8],
        max_rows: i64,
        reverse: bool,
    ) -> Result<Vec<KeyValue>, KvError> {
        let mut out = Vec::new();
        let mut span = Span::new(start.to_vec(), end.to_vec());
        loop {
            let limit = super::page_limit(max_rows, out.len());
            let request = if reverse {
                Request::ReverseScan { span: span.clone() }
            } else {
                Request::Scan { span: span.clone() }
            };
            let mut resp = self.send_with_limit(vec![request], limit).await?;
            let (rows, resume_span) = match resp.pop() {
                Some(Response::Scan { rows, resume_span }) if !reverse => (rows, resume_span),
                Some(Response::ReverseScan { rows, resume_span }) if reverse => (rows, resume_span),
                _ => return Err(KvError::internal("Scan: wrong response")),
            };
            out.extend(rows);
            match resume_span {
                Some(rest) if max_rows <= 0 || (out.len() as i64) < max_rows => span = rest,
                _ => return Ok(out),
            }
        }
    }

    /// Deletes every key in `[start, end)` (writing a tombstone per key), in
    /// pages of [`DELETE_RANGE_PAGE`] keys, each its own command, so that
    /// clearing a large table does not hold its range in one long command.
    pub async fn delete_range(&mut self, start: &[u8], end: &[u8]) -> Result<(), KvError> {
        let mut span = Span::new(start.to_vec(), end.to_vec());
        loop {
            let mut resp = self
                .send_with_limit(
                    vec![Request::DeleteRange { span: span.clone() }],
                    DELETE_RANGE_PAGE,
                )
                .await?;
            match resp.pop() {
                Some(Response::DeleteRange {
                    resume_span: Some(rest),
                    ..
                }) => span = rest,
                Some(Response::DeleteRange { .. }) => return Ok(()),
                _ => return Err(KvError::internal("DeleteRange: wrong response")),
            }
        }
    }

    /// From now on (until turned off), reads lock what they return, as
    /// SELECT … FOR UPDATE does: writers and locking readers of other
    /// transactions wait for this one to finish (see `Header::lock_reads`).
    /// The locked keys count as written, so that they are released with the
    /// transaction's intents, and the first one anchors the transaction
    /// record if nothing was written yet.
    pub fn set_lock_reads(&mut self, on: bool) {
        self.lock_reads = on;
    }

    /// Holds `requests` (writes) back to send them with the commit, in the
    /// same batch as the `EndTxn`: a transaction whose writes all go this
    /// way and fall in one range then commits in one phase (one consensus
    /// round, committed values, no intents to write and resolve later: the
    /// server's `is_one_phase_commit`). If the transaction sends anything
    /// else first, the held writes go ahead of it in that batch, so reads
    /// still see them. For writes whose failure the caller need not tell
    /// apart from a failure of its commit, such as an index backfill's
    /// blind puts.
    pub fn write_at_commit(&mut self, requests: Vec<Request>) {
        self.at_commit.extend(requests);
    }

    /// Sends requests as one batch of this transaction.
    pub async fn send(&mut self, requests: Vec<Request>) -> Result<Vec<Response>, KvError> {
        self.send_with_limit(requests, 0).await
    }

    async fn send_with_limit(
        &mut self,
        mut requests: Vec<Request>,
        max_keys: i64,
    ) -> Result<Vec<Response>, KvError> {
        let held = self.at_commit.len();
        if held > 0 {
            requests.splice(0..0, std::mem::take(&mut self.at_commit));
        }
        let mut responses = self.send_batch(requests, max_keys).await?;
        responses.drain(..held.min(responses.len()));
        Ok(responses)
    }

    async fn send_batch(
        &mut self,
        requests: Vec<Request>,
        max_keys: i64,
    ) -> Result<Vec<Response>, KvError> {
        if self.done {
            return Err(KvError::new(ErrorDetail::TransactionStatus {
                msg: "transaction already finished".into(),
            }));
        }
        if self.fixed_timestamp.is_some() && requests.iter().any(Request::is_write) {
            return Err(KvError::new(ErrorDetail::TransactionStatus {
                msg: "cannot write in a transaction with a fixed (historical) timestamp".into(),
            }));
        }
        // The transaction record's anchor: the first key the transaction
        // locks, by writing it or by a locking read. Every intent and
        // unreplicated lock carries the transaction's meta, and a pusher
        // aborts or pushes the record that meta's key addresses, so it must
        // be set before the first lock and never change: a lock taken
        // before it was set would send pushers to another record than the
        // one the commit checks, and an abort there would go unheeded.
        if self.proto.meta.key.is_empty()
            && let Some(first) = requests
                .iter()
                .find(|r| r.is_write() || (self.lock_reads && r.is_read()))
        {
            self.proto.meta.key = first.span(&Header::default()).key;
        }
        if self.first_write_ts.is_none() && requests.iter().any(Request::is_write) {
            self.first_write_ts = Some(self.proto.meta.write_timestamp);
        }
        for _ in 0..MAX_REFRESH_RETRIES {
            let ba = BatchRequest {
                header: Header {
                    txn: Some(self.proto.clone()),
                    max_span_request_keys: max_keys,
                    lock_reads: self.lock_reads,
                    ..Header::default()
                },
                requests: requests.clone(),
            };
            match self.sender.send(ba).await {
                Ok(resp) => {
                    let _ = self.clock.update(resp.now);
                    if let Some(t) = resp.txn {
                        self.absorb(&t);
                        self.proto.meta.sequence = t.meta.sequence;
                    }
                    self.record_spans(&requests, &resp.responses);
                    let commits = matches!(requests.last(), Some(Request::EndTxn { .. }));
                    if self.heartbeat.is_none() && !self.lock_spans.is_empty() && !commits {
                        self.start_heartbeat();
                    }
                    return Ok(resp.responses);
                }
                Err(e) => {
                    // The writes may have been laid down even so (the
                    // connection broke after the leaseholder proposed
                    // them): a rollback must resolve their spans too, or
                    // their intents block others until they expire.
                    let mut writes = 0;
                    for req in requests.iter().filter(|r| r.is_write()) {
                        self.lock_spans.insert(req.span(&Header::default()));
                        writes += 1;
                    }
                    // The server numbers a batch's writes after the
                    // header's sequence, one each.
                    self.seq_high_water = self
                        .seq_high_water
                        .max(self.proto.meta.sequence.saturating_add(writes));
                    self.condense_lock_spans();
                    self.handle_error(e).await?
                }
            }
        }
        Err(self.retry_error(RetryReason::Serializable))
    }

    /// Moves the read timestamp up to the write timestamp now, if a write was
    /// pushed, rather than at commit. A transaction that locks a hot key
    /// before reading much (a schema change taking the catalog version key)
    /// calls this so that its later reads happen above every reader it was
    /// pushed by: the refresh is of the few keys read so far, where the
    /// commit-time refresh would also cover everything read afterwards.
    pub async fn refresh_if_pushed(&mut self) -> Result<(), KvError> {
        if self.done {
            return Err(KvError::new(ErrorDetail::TransactionStatus {
                msg: "transaction already finished".into(),
            }));
        }
        if self.proto.meta.write_timestamp > self.proto.read_timestamp {
            let to = self.proto.meta.write_timestamp;
            self.refresh(to, RetryReason::Serializable).await?;
        }
        Ok(())
    }

    /// Commits. A read-only transaction has nothing to commit.
    pub async fn commit(mut self) -> Result<(), KvError> {
        if self.done {
            return Err(KvError::new(ErrorDetail::TransactionStatus {
                msg: "transaction already finished".into(),
            }));
        }
        if !self.at_commit.is_empty() {
            if !self.lock_spans.is_empty() {
                // Intents exist already: no one-phase commit is possible.
                self.send_with_limit(Vec::new(), 0).await?;
            } else {
                return self.commit_in_one_batch().await;
            }
        }
        if self.lock_spans.is_empty() {
            self.done = true;
            return Ok(());
        }
        for _ in 0..MAX_REFRESH_RETRIES {
            if self.proto.meta.write_timestamp > self.proto.read_timestamp {
                let to = self.proto.meta.write_timestamp;
                self.refresh(to, RetryReason::Serializable).await?;
            }
            if let Err(e) = self.bump_clocks().await {
                self.handle_error(e).await?;
                continue;
            }
            let ba = BatchRequest {
                header: Header {
                    txn: Some(self.proto.clone()),
                    ..Header::default()
                },
                requests: vec![Request::EndTxn {
                    commit: true,
                    lock_spans: self.lock_spans.iter().cloned().collect(),
                    deadline: Timestamp::ZERO,
                    trigger: None,
                }],
            };
            match self.sender.send(ba).await {
                Ok(resp) => {
                    let _ = self.clock.update(resp.now);
                    self.finish();
                    return Ok(());
                }
                Err(e) => self.handle_error(e).await?,
            }
        }
        Err(self.retry_error(RetryReason::Serializable))
    }

    /// Commits by sending the held writes and the `EndTxn` in one batch
    /// (nothing was written before). In one range the server commits it in
    /// one phase; across ranges `DistSender` sends the `EndTxn` last, after
    /// the other ranges' writes succeeded, and it commits as usual. The
    /// writes go at the commit timestamp, so no clock needs moving up
    /// afterwards (see [`Txn::bump_clocks`]).
    async fn commit_in_one_batch(&mut self) -> Result<(), KvError> {
        if self.proto.meta.write_timestamp > self.proto.read_timestamp {
            let to = self.proto.meta.write_timestamp;
            self.refresh(to, RetryReason::Serializable).await?;
        }
        let mut requests = std::mem::take(&mut self.at_commit);
        let header = Header::default();
        let lock_spans = requests
            .iter()
            .filter(|r| r.is_write())
            .map(|r| r.span(&header))
            .collect();
        requests.push(Request::EndTxn {
            commit: true,
            lock_spans,
            deadline: Timestamp::ZERO,
            trigger: None,
        });
        // Retries on a push (refreshing) as any batch does.
        self.send_batch(requests, 0).await?;
        self.finish();
        Ok(())
    }

    /// Rolls back, releasing every intent.
    pub async fn rollback(mut self) -> Result<(), KvError> {
        self.rollback_inner().await
    }

    async fn rollback_inner(&mut self) -> Result<(), KvError> {
        if self.done {
            return Ok(());
        }
        self.finish();
        if self.lock_spans.is_empty() {
            return Ok(());
        }
        let ba = self.rollback_batch();
        self.sender.send(ba).await.map(drop)
    }

    fn rollback_batch(&self) -> BatchRequest {
        BatchRequest {
            header: Header {
                txn: Some(self.proto.clone()),
                ..Header::default()
            },
            requests: vec![Request::EndTxn {
                commit: false,
                lock_spans: self.lock_spans.iter().cloned().collect(),
                deadline: Timestamp::ZERO,
                trigger: None,
            }],
        }
    }

    fn finish(&mut self) {
        self.done = true;
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }

    /// Folds the server's view of the transaction into ours.
    fn absorb(&mut self, t: &Transaction) {
        self.proto
            .meta
            .write_timestamp
            .forward(t.meta.write_timestamp);
        if t.status == TransactionStatus::Aborted {
            self.proto.status = TransactionStatus::Aborted;
        }
        // Observed timestamps (the earliest per node wins) are kept for the
        // life of this transaction, across refreshes: they bound what a
        // node wrote before the transaction *started*, which a refresh
        // (a higher read timestamp, same start and global limit) does not
        // change. Only readings taken for this transaction count: another
        // one's may predate our start.
        if t.id() == self.id() {
            self.proto.merge_observed_timestamps(&t.observed_timestamps);
        }
    }

    /// Before a commit at a timestamp above the one the first write went
    /// out at, moves the clock of every leaseholder of the lock spans up to
    /// the commit timestamp (an empty `Refresh` of each span, carrying the
    /// transaction at that timestamp, which every store folds into its
    /// clock on receipt).
    ///
    /// Why: observed timestamps rely on a leaseholder's clock being at or
    /// above every value it serves. An intent written at `t` (the clock is
    /// then ≥ `t`) of a transaction pushed elsewhere afterwards commits at
    /// `c > t`, and asynchronous resolution turns it into a value at `c` on
    /// a node whose clock may still be below `c`. A reader that starts
    /// after the commit and reads the node before the resolution would
    /// observe a timestamp below `c` and then skip the resolved value: a
    /// stale read (CockroachDB's issue 36431; it now keeps a local
    /// timestamp per value instead). After the bump, every such node's
    /// clock is past `c` before the commit can be acknowledged.
    async fn bump_clocks(&mut self) -> Result<(), KvError> {
        let commit_ts = self.proto.meta.write_timestamp;
        let Some(first) = self.first_write_ts else {
            return Ok(());
        };
        if commit_ts <= first || commit_ts <= self.clocks_bumped_to || self.lock_spans.is_empty() {
            return Ok(());
        }
        // An empty window (from the read timestamp, which the commit's
        // refresh moved up to the commit timestamp): nothing to check.
        let ba = refresh_batch(
            self.proto.clone(),
            &self.lock_spans,
            self.proto.read_timestamp,
        );
        let resp = self.sender.send(ba).await?;
        let _ = self.clock.update(resp.now);
        self.clocks_bumped_to = commit_ts;
        Ok(())
    }

    fn record_spans(&mut self, requests: &[Request], responses: &[Response]) {
        let header = Header::default();
        for (req, resp) in requests.iter().zip(responses) {
            if req.is_write() {
                self.lock_spans.insert(req.span(&header));
            }
            if req.is_read() {
                let mut span = req.span(&header);
                // A scan that stopped early only read up to its resume span.
                match resp {
                    Response::Scan {
                        resume_span: Some(r),
                        ..
                    } => span.end_key = r.key.clone(),
                    Response::ReverseScan {
                        resume_span: Some(r),
                        ..
                    } => span.key = r.end_key.clone(),
                    _ => {}
                }
                if span.is_point() || span.key < span.end_key {
                    if self.lock_reads {
                        self.lock_spans.insert(span.clone());
                    }
                    self.refresh_spans.push(span);
                }
            }
            if matches!(
                req,
                Request::ConditionalPut { .. }
                    | Request::Increment { .. }
                    | Request::DeleteRange { .. }
            ) {
                self.refresh_spans.push(req.span(&header));
            }
        }
        if self.refresh_spans.len() > MAX_REFRESH_SPANS {
            condense_spans(&mut self.refresh_spans, CONDENSED_REFRESH_SPANS);
        }
        self.condense_lock_spans();
    }

    /// Past [`MAX_REFRESH_SPANS`] lock spans, replaces them by at most
    /// [`CONDENSED_REFRESH_SPANS`] covering spans (as CockroachDB does past
    /// `kv.transaction.max_intents_bytes`): the `EndTxn` of a transaction
    /// that wrote a million keys then carries a few hundred spans, not a
    /// million keys. Resolving a covering span only touches this
    /// transaction's own intents, so the only cost is scanning the gaps.
    fn condense_lock_spans(&mut self) {
        if self.lock_spans.len() <= MAX_REFRESH_SPANS {
            return;
        }
        let mut spans: Vec<Span> = std::mem::take(&mut self.lock_spans).into_iter().collect();
        condense_spans(&mut spans, CONDENSED_REFRESH_SPANS);
        self.lock_spans = spans.into_iter().collect();
    }

    /// Decides what an error means: refresh and retry (Ok), or give up (Err).
    async fn handle_error(&mut self, e: KvError) -> Result<(), KvError> {
        if let Some(t) = &e.txn {
            self.absorb(t);
        }
        match &e.detail {
            ErrorDetail::ReadWithinUncertainty { existing, .. } => {
                let to = existing.next().max(self.proto.meta.write_timestamp);
                self.refresh(to, RetryReason::Uncertainty).await
            }
            ErrorDetail::WriteTooOld { actual, .. } => {
                let to = (*actual).max(self.proto.meta.write_timestamp);
                self.refresh(to, RetryReason::WriteTooOld).await
            }
            ErrorDetail::TransactionRetry {
                reason: RetryReason::Serializable,
            } => {
                let to = self.proto.meta.write_timestamp;
                if to > self.proto.read_timestamp {
                    self.refresh(to, RetryReason::Serializable).await
                } else {
                    self.abandon().await;
                    Err(e)
                }
            }
            ErrorDetail::TransactionAborted { .. } => {
                self.finish();
                Err(e)
            }
            d if d.is_retryable() => {
                self.abandon().await;
                Err(e)
            }
            _ => Err(e),
        }
    }

    /// Moves the read timestamp up to `to` if nothing read changed since.
    async fn refresh(&mut self, to: Timestamp, reason: RetryReason) -> Result<(), KvError> {
        let from = self.proto.read_timestamp;
        if to <= from {
            return Ok(());
        }
        if self.fixed_timestamp.is_some() {
            tracing::debug!(txn = ?self.id(), %to, "refresh of a fixed-timestamp transaction refused");
            self.abandon().await;
            return Err(self.retry_error(reason));
        }
        if !self.refresh_spans.is_empty() {
            let mut txn = self.proto.clone();
            txn.read_timestamp = to;
            txn.meta.write_timestamp.forward(to);
            let ba = refresh_batch(txn, &self.refresh_spans, from);
            if let Err(e) = self.sender.send(ba).await {
                tracing::debug!(txn = ?self.id(), error = %e, "refresh failed");
                self.abandon().await;
                return Err(self.retry_error(reason));
            }
        }
        self.proto.read_timestamp = to;
        self.proto.meta.write_timestamp.forward(to);
        Ok(())
    }

    /// The transaction cannot go on: release its intents now rather than
    /// leaving them for others to push.
    async fn abandon(&mut self) {
        if let Err(e) = self.rollback_inner().await {
            tracing::debug!(txn = ?self.id(), error = %e, "rollback after retryable error failed");
        }
    }

    fn retry_error(&self, reason: RetryReason) -> KvError {
        KvError::new(ErrorDetail::TransactionRetry { reason }).with_txn(Some(self.proto.clone()))
    }

    fn start_heartbeat(&mut self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let sender = self.sender.clone();
        let clock = self.clock.clone();
        let mut txn = self.proto.clone();
        self.heartbeat = Some(handle.spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = clock.now();
                txn.meta
                    .write_timestamp
                    .forward(now.min(txn.meta.write_timestamp));
                let ba = BatchRequest {
                    header: Header {
                        txn: Some(txn.clone()),
                        ..Header::default()
                    },
                    requests: vec![Request::HeartbeatTxn { now }],
                };
                match sender.send(ba).await {
                    Ok(resp) => {
                        if resp.txn.is_some_and(|t| t.status.is_finalized()) {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "heartbeat failed");
                        if matches!(e.detail, ErrorDetail::TransactionAborted { .. }) {
                            return;
                        }
                    }
                }
            }
        }));
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if self.lock_spans.is_empty() {
            return;
        }
        // Best effort: abandoned transactions are also cleaned up by pushers
        // once their record expires.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let sender = self.sender.clone();
            let ba = self.rollback_batch();
            handle.spawn(async move {
                let _ = sender.send(ba).await;
            });
        }
    }
}

/// A batch of `txn` refreshing each of `spans` from `from` up to the
/// transaction's read timestamp.
fn refresh_batch<'a>(
    txn: Transaction,
    spans: impl IntoIterator<Item = &'a Span>,
    from: Timestamp,
) -> BatchRequest {
    BatchRequest {
        header: Header {
            txn: Some(txn),
            ..Header::default()
        },
        requests: spans
            .into_iter()
            .map(|s| Request::Refresh {
                span: s.clone(),
                refresh_from: from,
            })
            .collect(),
    }
}

/// Replaces `spans` by at most `target` spans covering them: sorted, overlapping
/// ones merged, then runs of neighbours joined into one span each.
fn condense_spans(spans: &mut Vec<Span>, target: usize) {
    spans.sort_by(|a, b| a.key.cmp(&b.key));
    let mut merged: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(spans.len());
    for s in spans.drain(..) {
        let end = s.exclusive_end();
        match merged.last_mut() {
            Some((_, last_end)) if s.key <= *last_end => {
                if end > *last_end {
                    *last_end = end;
                }
            }
            _ => merged.push((s.key, end)),
        }
    }
    let target = target.max(1);
    let per = merged.len().div_ceil(target).max(1);
    for chunk in merged.chunks(per) {
        let start = chunk[0].0.clone();
        let end = chunk
            .iter()
            .map(|(_, e)| e)
            .max()
            .cloned()
            .unwrap_or_default();
        spans.push(Span::new(start, end));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(k: u32) -> Span {
        Span::new(k.to_be_bytes().to_vec(), Vec::new())
    }

    fn covered(spans: &[Span], key: &[u8]) -> bool {
        spans
            .iter()
            .any(|s| s.key.as_slice() <= key && key < s.exclusive_end().as_slice())
    }

    #[test]
    fn condensed_spans_cover_every_original_key_in_few_spans() {
        let keys: Vec<u32> = (0..10_000).map(|i| i * 7 % 10_007).collect();
        let mut spans: Vec<Span> = keys.iter().map(|k| point(*k)).collect();
        spans.push(Span::new(
            5u32.to_be_bytes().to_vec(),
            900u32.to_be_bytes().to_vec(),
        ));
        condense_spans(&mut spans, 256);
        assert!(spans.len() <= 256, "{} spans", spans.len());
        for k in &keys {
            assert!(covered(&spans, &k.to_be_bytes()), "key {k} lost");
        }
        assert!(covered(&spans, &899u32.to_be_bytes()));
        // Sorted and disjoint.
        for w in spans.windows(2) {
            assert!(w[0].exclusive_end() <= w[1].key);
        }
    }

    #[test]
    fn overlapping_spans_merge_before_chunking() {
        let mut spans = vec![
            Span::new(b"a".to_vec(), b"c".to_vec()),
            Span::new(b"b".to_vec(), b"d".to_vec()),
            Span::new(b"x".to_vec(), Vec::new()),
        ];
        condense_spans(&mut spans, 10);
        assert_eq!(
            spans,
            vec![
                Span::new(b"a".to_vec(), b"d".to_vec()),
                Span::new(b"x".to_vec(), b"x\0".to_vec())
            ]
        );
    }
}
