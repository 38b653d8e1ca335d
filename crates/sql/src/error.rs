//! KV errors as SQL sees them: the bottom of the crate's layering.
//!
//! Takes a [`KvError`] from the KV client; gives the [`SqlError`] a client
//! sees ([`kv_error`]) and the SQLSTATE of an unavailable range
//! ([`RANGE_UNAVAILABLE`]). Every module that talks to KV maps its errors
//! through here ([`crate::catalog::kv_err`] is the usual way).

use tardigrade_kvpb::{ErrorDetail, KvError};
use tardigrade_sqltypes::SqlError;
use tardigrade_sqltypes::error::codes;

/// SQLSTATE of a KV request that no replica could serve in time (a range
/// without quorum): `cannot_connect_now`, which clients treat as "the
/// server cannot serve this yet, try again later".
pub const RANGE_UNAVAILABLE: &str = "57P03";

/// Maps a KV error to the SQL error a client sees.
pub fn kv_error(e: KvError) -> SqlError {
    if e.detail.is_retryable() {
        return SqlError::restart(&e.detail);
    }
    match &e.detail {
        // The KV layer could not find the range's leaseholder before its
        // deadline (an election, a lease changing hands on an overloaded
        // node). The request was not applied, so the whole transaction can
        // run again: a restart (retried by the server for an implicit
        // transaction), not an internal error.
        ErrorDetail::NotLeaseholder { .. }
        | ErrorDetail::RangeNotFound { .. }
        | ErrorDetail::RangeKeyMismatch { .. } => SqlError::restart(&e.detail),
        // A range without quorum (or a node that cannot be reached): the
        // request was not applied; the cluster cannot serve it now.
        ErrorDetail::Unavailable(_) => SqlError::new(RANGE_UNAVAILABLE, e.detail.to_string()),
        // The write may or may not have happened: the client must check.
        ErrorDetail::AmbiguousResult(_) => {
            SqlError::new(codes::STATEMENT_COMPLETION_UNKNOWN, e.detail.to_string())
        }
        ErrorDetail::IntegerOverflow => SqlError::out_of_range("integer out of range"),
        _ => SqlError::internal(e.detail.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_routing_failures_are_restarts_and_ambiguity_is_not() {
        let not_leaseholder = KvError::new(ErrorDetail::NotLeaseholder {
            range_id: 1,
            leaseholder_node: 0,
        });
        let e = kv_error(not_leaseholder);
        assert_eq!(e.code, codes::SERIALIZATION_FAILURE);
        assert!(e.message.starts_with("restart transaction: "), "{e:?}");
        let ambiguous = KvError::new(ErrorDetail::AmbiguousResult("timed out".into()));
        assert_eq!(
            kv_error(ambiguous).code,
            codes::STATEMENT_COMPLETION_UNKNOWN
        );
    }
}
