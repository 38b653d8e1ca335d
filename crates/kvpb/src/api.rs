//! Requests, responses, batches and transactions.

use tardigrade_hlc::Timestamp;
use tardigrade_storage::txn::TxnMeta;

/// `[key, end_key)`; an empty `end_key` means the single key `key`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub key: Vec<u8>,
    pub end_key: Vec<u8>,
}

impl Span {
    pub fn new(key: impl Into<Vec<u8>>, end_key: impl Into<Vec<u8>>) -> Span {
        Span {
            key: key.into(),
            end_key: end_key.into(),
        }
    }

    pub fn point(key: impl Into<Vec<u8>>) -> Span {
        Span {
            key: key.into(),
            end_key: Vec::new(),
        }
    }

    pub fn is_point(&self) -> bool {
        self.end_key.is_empty()
    }

    /// The exclusive end: `end_key`, or `key + 0x00` for a point.
    pub fn exclusive_end(&self) -> Vec<u8> {
        if self.end_key.is_empty() {
            let mut k = self.key.clone();
            k.push(0);
            k
        } else {
            self.end_key.clone()
        }
    }

    pub fn overlaps(&self, other: &Span) -> bool {
        self.key < other.exclusive_end() && other.key < self.exclusive_end()
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        if self.is_point() {
            self.key == key
        } else {
            self.key.as_slice() <= key && key < self.end_key.as_slice()
        }
    }
}

/// A value with the timestamp of the version it came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Value {
    pub bytes: Vec<u8>,
    pub timestamp: Timestamp,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Value,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    #[default]
    Pending,
    Staging,
    Committed,
    Aborted,
}

impl TransactionStatus {
    pub fn is_finalized(self) -> bool {
        matches!(
            self,
            TransactionStatus::Committed | TransactionStatus::Aborted
        )
    }
}

/// A transaction as the coordinator and the transaction record know it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transaction {
    pub meta: TxnMeta,
    pub name: String,
    pub status: TransactionStatus,
    /// Reads happen at this timestamp; `meta.write_timestamp` may be above it
    /// after a push, in which case the transaction must refresh its reads (or
    /// restart) before it can commit.
    pub read_timestamp: Timestamp,
    /// `read_timestamp` at start + max clock offset: values between the read
    /// timestamp and this limit are uncertain.
    pub global_uncertainty_limit: Timestamp,
    pub last_heartbeat: Timestamp,
    /// Spans holding this transaction's intents (for resolution).
    pub lock_spans: Vec<Span>,
    /// Sequence-number ranges rolled back by savepoints, inclusive.
    pub ignored_seqs: Vec<(i32, i32)>,
    /// Clock readings of the nodes this transaction has talked to, at most
    /// one per node (the earliest): see [`ObservedTimestamp`]. Carried on
    /// the wire with every request and response; not part of the stored
    /// transaction record (only the coordinator and its requests use them).
    pub observed_timestamps: Vec<ObservedTimestamp>,
}

/// A reading of node `node_id`'s HLC taken while this transaction was
/// running (CockroachDB's observed timestamp).
///
/// Why it bounds uncertainty: a leaseholder's clock is never below the
/// timestamp of a write it has served (the store folds every request's
/// timestamp into its clock, and a write pushed above the clock moves the
/// clock up before it is acknowledged; a transaction whose timestamp moved
/// after it wrote bumps its leaseholders' clocks before it commits). So
/// every value the node served before the reading is at or below it, and a
/// value above it was written after the transaction had already started:
/// the two are concurrent and the reader may order itself first. That only
/// holds for values written by leases on that node: a lease that started
/// after the reading may serve values that another node wrote under an
/// earlier lease, which is why the limit is raised to the lease's start
/// (see [`Transaction::uncertainty_limit_on`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObservedTimestamp {
    pub node_id: crate::NodeId,
    pub timestamp: Timestamp,
}

impl Transaction {
    pub fn id(&self) -> crate::TxnId {
        self.meta.id
    }

    /// The observed timestamp of `node`, if this transaction has one.
    pub fn observed_timestamp(&self, node: crate::NodeId) -> Option<Timestamp> {
        self.observed_timestamps
            .iter()
            .find(|o| o.node_id == node)
            .map(|o| o.timestamp)
    }

    /// Records `ts` as `node`'s observed timestamp unless an earlier one is
    /// known: any reading taken after the transaction started is valid, and
    /// the earliest bounds uncertainty the most (later readings are larger).
    /// Returns whether the list changed.
    pub fn update_observed_timestamp(&mut self, node: crate::NodeId, ts: Timestamp) -> bool {
        if node == 0 || ts.is_zero() {
            return false;
        }
        match self
            .observed_timestamps
            .iter_mut()
            .find(|o| o.node_id == node)
        {
            Some(o) if o.timestamp <= ts => false,
            Some(o) => {
                o.timestamp = ts;
                true
            }
            None => {
                self.observed_timestamps.push(ObservedTimestamp {
                    node_id: node,
                    timestamp: ts,
                });
                true
            }
        }
    }

    /// Folds another copy's observed timestamps into this one (the earliest
    /// per node wins).
    pub fn merge_observed_timestamps(&mut self, other: &[ObservedTimestamp]) {
        for o in other {
            self.update_observed_timestamp(o.node_id, o.timestamp);
        }
    }

    /// The upper bound of the uncertainty window `(read_timestamp, limit]`
    /// for a read served under a lease held by `lease_node` that started
    /// at `lease_start`.
    ///
    /// Without an observed timestamp for that node it is the global limit.
    /// With one, values the node wrote above it are concurrent with this
    /// transaction and need not be uncertain; but the lease may be younger
    /// than the reading, and values written under earlier leases (by other
    /// nodes, with other clocks) are only known to lie at or below the
    /// lease's start. Hence `max(observed, lease_start)`, never above the
    /// global limit, and never below the read timestamp (no window at all).
    pub fn uncertainty_limit_on(
        &self,
        lease_node: crate::NodeId,
        lease_start: Timestamp,
    ) -> Timestamp {
        let global = self.global_uncertainty_limit;
        let limit = match self.observed_timestamp(lease_node) {
            Some(observed) => observed.max(lease_start).min(global),
            None => global,
        };
        limit.max(self.read_timestamp)
    }
}

/// How a transaction pushes another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushType {
    /// Move the pushee's timestamp above `push_to` (a reader of its intents).
    Timestamp,
    /// Abort the pushee (a writer over its intents, or a deadlock).
    Abort,
    /// Only learn the pushee's status; succeeds if it is finalized or expired.
    Touch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadConsistency {
    Consistent,
    /// Read the newest committed values, ignoring intents (debugging, GC).
    Inconsistent,
}

/// One request of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Get {
        key: Vec<u8>,
    },
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Put if the current value equals `expected` (`None`: does not exist).
    ConditionalPut {
        key: Vec<u8>,
        value: Vec<u8>,
        expected: Option<Vec<u8>>,
    },
    Increment {
        key: Vec<u8>,
        inc: i64,
    },
    Delete {
        key: Vec<u8>,
    },
    DeleteRange {
        span: Span,
    },
    Scan {
        span: Span,
    },
    ReverseScan {
        span: Span,
    },
    /// Commit or abort the batch's transaction. `lock_spans` are all the spans
    /// it wrote, so that its intents can be resolved.
    EndTxn {
        commit: bool,
        lock_spans: Vec<Span>,
        /// Commit must happen below this timestamp (zero: no deadline).
        deadline: Timestamp,
        /// Applied by every replica of the record's range atomically with
        /// the commit (splits, replica changes). Only for commits.
        trigger: Option<CommitTrigger>,
    },
    /// Keeps the transaction record alive; creates it on the first heartbeat.
    HeartbeatTxn {
        now: Timestamp,
    },
    PushTxn {
        pushee: TxnMeta,
        push_to: Timestamp,
        push_type: PushType,
    },
    ResolveIntent {
        key: Vec<u8>,
        txn: TxnMeta,
        status: TransactionStatus,
        ignored_seqs: Vec<(i32, i32)>,
    },
    ResolveIntentRange {
        span: Span,
        txn: TxnMeta,
        status: TransactionStatus,
        ignored_seqs: Vec<(i32, i32)>,
    },
    /// The status of a transaction, and who waits for it (deadlock detection).
    QueryTxn {
        txn: TxnMeta,
    },
    /// Fails if any value was written on the span in `(refresh_from, batch timestamp]`
    /// by another transaction, so a pushed transaction can move its reads up.
    Refresh {
        span: Span,
        refresh_from: Timestamp,
    },
    /// Removes versions no reader at or above `threshold` can see.
    Gc {
        keys: Vec<Vec<u8>>,
        threshold: Timestamp,
    },
    /// Splits the range containing `split_key` at `split_key` (served by its
    /// leaseholder, which runs the split transaction).
    AdminSplit {
        split_key: Vec<u8>,
    },
}

/// Side effects of a commit on the range holding the transaction record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitTrigger {
    /// The range shrinks to `left`; `right` is created from its upper part.
    Split {
        left: crate::RangeDescriptor,
        right: crate::RangeDescriptor,
    },
    /// The range's replicas change to those of `desc`.
    ChangeReplicas { desc: crate::RangeDescriptor },
}

impl Request {
    pub fn method(&self) -> &'static str {
        match self {
            Request::Get { .. } => "Get",
            Request::Put { .. } => "Put",
            Request::ConditionalPut { .. } => "ConditionalPut",
            Request::Increment { .. } => "Increment",
            Request::Delete { .. } => "Delete",
            Request::DeleteRange { .. } => "DeleteRange",
            Request::Scan { .. } => "Scan",
            Request::ReverseScan { .. } => "ReverseScan",
            Request::EndTxn { .. } => "EndTxn",
            Request::HeartbeatTxn { .. } => "HeartbeatTxn",
            Request::PushTxn { .. } => "PushTxn",
            Request::ResolveIntent { .. } => "ResolveIntent",
            Request::ResolveIntentRange { .. } => "ResolveIntentRange",
            Request::QueryTxn { .. } => "QueryTxn",
            Request::Refresh { .. } => "Refresh",
            Request::Gc { .. } => "Gc",
            Request::AdminSplit { .. } => "AdminSplit",
        }
    }

    /// The span the request addresses. Transaction-record requests address
    /// the record's anchor key.
    pub fn span(&self, header: &Header) -> Span {
        match self {
            Request::Get { key }
            | Request::Put { key, .. }
            | Request::ConditionalPut { key, .. }
            | Request::Increment { key, .. }
            | Request::Delete { key }
            | Request::ResolveIntent { key, .. }
            | Request::AdminSplit { split_key: key } => Span::point(key.clone()),
            Request::DeleteRange { span }
            | Request::Scan { span }
            | Request::ReverseScan { span }
            | Request::ResolveIntentRange { span, .. }
            | Request::Refresh { span, .. } => span.clone(),
            Request::EndTxn { .. } | Request::HeartbeatTxn { .. } => Span::point(
                header
                    .txn
                    .as_ref()
                    .map(|t| t.meta.key.clone())
                    .unwrap_or_default(),
            ),
            Request::PushTxn { pushee, .. } | Request::QueryTxn { txn: pushee } => {
                Span::point(pushee.key.clone())
            }
            Request::Gc { keys, .. } => match (keys.iter().min(), keys.iter().max()) {
                (Some(lo), Some(hi)) => {
                    let mut end = hi.clone();
                    end.push(0);
                    Span::new(lo.clone(), end)
                }
                _ => Span::default(),
            },
        }
    }

    /// Whether a lost answer leaves this request's effect unknown: writes,
    /// commits and splits. Pushes, heartbeats, resolution and GC are safe
    /// to repeat.
    pub fn writes_or_commits(&self) -> bool {
        self.is_write() || matches!(self, Request::EndTxn { .. } | Request::AdminSplit { .. })
    }

    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Put { .. }
                | Request::ConditionalPut { .. }
                | Request::Increment { .. }
                | Request::Delete { .. }
                | Request::DeleteRange { .. }
        )
    }

    /// Reads whose spans the coordinator must refresh when its transaction is pushed.
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Request::Get { .. } | Request::Scan { .. } | Request::ReverseScan { .. }
        )
    }
}

/// The response to one request, in the same position as the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Get {
        value: Option<Value>,
    },
    Put,
    ConditionalPut,
    Increment {
        new_value: i64,
    },
    Delete,
    DeleteRange {
        keys: Vec<Vec<u8>>,
        resume_span: Option<Span>,
    },
    Scan {
        rows: Vec<KeyValue>,
        resume_span: Option<Span>,
    },
    ReverseScan {
        rows: Vec<KeyValue>,
        resume_span: Option<Span>,
    },
    EndTxn,
    HeartbeatTxn {
        txn: Transaction,
    },
    PushTxn {
        pushee: Transaction,
    },
    ResolveIntent,
    ResolveIntentRange {
        resume_span: Option<Span>,
    },
    QueryTxn {
        txn: Option<Transaction>,
        /// Transactions waiting on this one, directly or through others.
        waiting_txns: Vec<crate::TxnId>,
    },
    Refresh,
    Gc,
    AdminSplit {
        /// The descriptors after the split.
        left: crate::RangeDescriptor,
        right: crate::RangeDescriptor,
    },
}

/// Settings that apply to every request of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The timestamp of a non-transactional batch; ignored with a transaction
    /// (its read and write timestamps are used instead).
    pub timestamp: Timestamp,
    pub txn: Option<Transaction>,
    /// Upper bound on keys returned by all scans of the batch together (0: none).
    pub max_span_request_keys: i64,
    /// Upper bound on bytes returned (0: none).
    pub target_bytes: i64,
    pub read_consistency: ReadConsistency,
    /// The range the sender believes it addresses (0: any); a mismatch is
    /// answered with `RangeKeyMismatch`.
    pub range_id: u64,
    /// Transactional only: the batch's `Get`, `Scan` and `ReverseScan` take an
    /// exclusive, unreplicated lock on every key they return (SELECT … FOR
    /// UPDATE, and the reads of UPDATE and DELETE), and read as if every newer
    /// value were uncertain: a newer committed value moves the read above it
    /// (`ReadWithinUncertainty`), a newer intent is waited for. A transaction
    /// that read-modify-writes a hot row thus queues behind the previous
    /// writer instead of reading a value that is about to change and failing
    /// its commit with a retry error.
    pub lock_reads: bool,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            timestamp: Timestamp::ZERO,
            txn: None,
            max_span_request_keys: 0,
            target_bytes: 0,
            read_consistency: ReadConsistency::Consistent,
            range_id: 0,
            lock_reads: false,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchRequest {
    pub header: Header,
    pub requests: Vec<Request>,
}

impl BatchRequest {
    pub fn has_writes(&self) -> bool {
        self.requests.iter().any(Request::is_write)
    }

    pub fn is_transactional(&self) -> bool {
        self.header.txn.is_some()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchResponse {
    /// The server's clock when it answered, for the client's HLC.
    pub now: Timestamp,
    /// The transaction as updated by the server (pushed timestamps, status).
    pub txn: Option<Transaction>,
    pub responses: Vec<Response>,
}

/// The result of sending a batch.
pub type BatchResult = Result<BatchResponse, crate::KvError>;

/// A future returned by [`Sender::send`].
pub type SendFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = BatchResult> + Send + 'a>>;

/// Anything that executes batches: a local store, an RPC connection to a
/// node, or (later) the `DistSender` that routes by range.
pub trait Sender: Send + Sync {
    fn send(&self, ba: BatchRequest) -> SendFuture<'_>;
}
