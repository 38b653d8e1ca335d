//! Typed KV errors. Each maps to a PostgreSQL SQLSTATE at the SQL layer.

use tardigrade_hlc::Timestamp;
use tardigrade_storage::txn::TxnMeta;

use crate::api::{Span, Transaction, Value};

/// Why a transaction must retry (SQLSTATE 40001).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryReason {
    /// Pushed above its read timestamp and the reads could not be refreshed.
    Serializable,
    /// A write met a newer committed value and the refresh failed.
    WriteTooOld,
    /// A read met an uncertain value and the refresh failed.
    Uncertainty,
    /// The commit deadline passed.
    CommitDeadlineExceeded,
}

impl RetryReason {
    pub fn name(self) -> &'static str {
        match self {
            RetryReason::Serializable => "RETRY_SERIALIZABLE",
            RetryReason::WriteTooOld => "RETRY_WRITE_TOO_OLD",
            RetryReason::Uncertainty => "RETRY_UNCERTAINTY",
            RetryReason::CommitDeadlineExceeded => "RETRY_COMMIT_DEADLINE_EXCEEDED",
        }
    }
}

/// Why a transaction was aborted (also SQLSTATE 40001: the client retries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortReason {
    /// Another transaction pushed it (priority, expiry or deadlock).
    AbortedRecord,
    /// Its record was not heartbeated in time.
    Expired,
    /// It was chosen to break a deadlock.
    Deadlock,
    /// The client rolled back or went away.
    ClientRejected,
}

impl AbortReason {
    pub fn name(self) -> &'static str {
        match self {
            AbortReason::AbortedRecord => "ABORT_REASON_ABORTED_RECORD_FOUND",
            AbortReason::Expired => "ABORT_REASON_TIMESTAMP_CACHE_REJECTED",
            AbortReason::Deadlock => "ABORT_REASON_PUSHER_ABORTED_DEADLOCK",
            AbortReason::ClientRejected => "ABORT_REASON_CLIENT_REJECT",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntentInfo {
    pub key: Vec<u8>,
    pub txn: TxnMeta,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ErrorDetail {
    #[error("conflicting intents on {} key(s)", intents.len())]
    WriteIntent { intents: Vec<IntentInfo> },
    #[error("TransactionRetryError: retry txn ({})", reason.name())]
    TransactionRetry { reason: RetryReason },
    #[error("TransactionAbortedError({})", reason.name())]
    TransactionAborted { reason: AbortReason },
    #[error(
        "ReadWithinUncertaintyIntervalError: read at time {read} encountered previous write with future timestamp {existing}"
    )]
    ReadWithinUncertainty {
        read: Timestamp,
        existing: Timestamp,
    },
    #[error(
        "WriteTooOldError: write at timestamp {timestamp} too old; must write at or above {actual}"
    )]
    WriteTooOld {
        timestamp: Timestamp,
        actual: Timestamp,
    },
    #[error("unexpected value: {actual:?}")]
    ConditionFailed { actual: Option<Value> },
    #[error("failed to push transaction {}", pushee.meta.id)]
    TransactionPush { pushee: Box<Transaction> },
    #[error("TransactionStatusError: {msg}")]
    TransactionStatus { msg: String },
    #[error("key range {span:?} is outside the bounds of range {range_id}")]
    RangeKeyMismatch { span: Span, range_id: u64 },
    #[error("not leaseholder for range {range_id}")]
    NotLeaseholder {
        range_id: u64,
        leaseholder_node: u64,
    },
    /// The node holds no initialized replica of the range the batch named
    /// (`Header::range_id`): it was removed from this node, or has not
    /// received its snapshot yet. The sender's descriptor is stale, but
    /// another replica it lists may still serve, so it tries them before
    /// looking the range up again (as for `RangeNotFoundError` in
    /// CockroachDB; `RangeKeyMismatch` would send it to the meta records,
    /// which may still list this node).
    #[error("range {range_id} not found on node {node_id}")]
    RangeNotFound { range_id: u64, node_id: u64 },
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("clock offset: {0}")]
    ClockOffset(String),
    #[error("integer value overflow")]
    IntegerOverflow,
    #[error("internal error: {0}")]
    Internal(String),
    /// A write (or commit) was sent and no answer came back (the node died
    /// or the connection broke), or its proposal's fate is unknown: it may
    /// or may not have been applied. Not retryable as such: the client must
    /// find out (SQLSTATE 40003, statement completion unknown).
    #[error("result is ambiguous: {0}")]
    AmbiguousResult(String),
}

impl ErrorDetail {
    /// Errors that a transaction survives by restarting (SQLSTATE 40001).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ErrorDetail::TransactionRetry { .. }
                | ErrorDetail::TransactionAborted { .. }
                | ErrorDetail::ReadWithinUncertainty { .. }
                | ErrorDetail::WriteTooOld { .. }
        )
    }
}

/// A failed batch: what went wrong, at which request, and the transaction as
/// the server last saw it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct KvError {
    pub detail: ErrorDetail,
    pub index: Option<usize>,
    pub txn: Option<Transaction>,
}

impl KvError {
    pub fn new(detail: ErrorDetail) -> KvError {
        KvError {
            detail,
            index: None,
            txn: None,
        }
    }

    pub fn invalid(msg: impl Into<String>) -> KvError {
        KvError::new(ErrorDetail::InvalidArgument(msg.into()))
    }

    pub fn internal(msg: impl Into<String>) -> KvError {
        KvError::new(ErrorDetail::Internal(msg.into()))
    }

    pub fn with_txn(mut self, txn: Option<Transaction>) -> KvError {
        self.txn = txn;
        self
    }

    pub fn with_index(mut self, index: usize) -> KvError {
        self.index = Some(index);
        self
    }
}

impl From<ErrorDetail> for KvError {
    fn from(detail: ErrorDetail) -> Self {
        KvError::new(detail)
    }
}
