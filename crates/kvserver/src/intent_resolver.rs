//! Asynchronous resolution of a finished transaction's intents on other
//! ranges.
//!
//! `EndTxn` resolves the intents inside its own range in the same atomic
//! write as the finalized record; the lock spans (or parts of them) outside
//! the range come back from evaluation and are handed to
//! [`resolve_async`] once the commit or abort has applied. A task sends
//! non-transactional `ResolveIntent` / `ResolveIntentRange` batches through
//! the store's cluster sender (or the local store), in chunks, retrying with
//! backoff. Nothing depends on it for correctness: an intent it misses is
//! found by the next reader or writer, who pushes the finalized record and
//! resolves it. The finalized record keeps the remote spans meanwhile.
//! TODO(issue 3): GC the record once its remote intents are resolved.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tardigrade_kvpb::{BatchRequest, Header, Request, Response, Span, Transaction};

use crate::eval::MAX_INTENTS_RESOLVED_AT_COMMIT;
use crate::store::Store;

/// Requests per resolution batch.
const CHUNK: usize = 128;
/// Attempts per batch before the task gives up (leaving the intents to be
/// resolved by whoever meets them).
const ATTEMPTS: usize = 8;

/// The requests that resolve `spans` of the finished `txn`.
pub(crate) fn resolve_requests(txn: &Transaction, spans: &[Span]) -> Vec<Request> {
    spans
        .iter()
        .map(|s| {
            if s.is_point() {
                Request::ResolveIntent {
                    key: s.key.clone(),
                    txn: txn.meta.clone(),
                    status: txn.status,
                    ignored_seqs: txn.ignored_seqs.clone(),
                }
            } else {
                Request::ResolveIntentRange {
                    span: s.clone(),
                    txn: txn.meta.clone(),
                    status: txn.status,
                    ignored_seqs: txn.ignored_seqs.clone(),
                }
            }
        })
        .collect()
}

/// Resolves `spans` of the finished `txn` in the background. Batches of
/// [`CHUNK`] requests go out with a key limit of
/// [`MAX_INTENTS_RESOLVED_AT_COMMIT`], so that each command stays small; a
/// range request cut short by it goes back on the queue with its resume span.
pub(crate) fn resolve_async(store: &Arc<Store>, txn: Transaction, spans: Vec<Span>) {
    if spans.is_empty() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let weak = Arc::downgrade(store);
    tokio::spawn(async move {
        let mut queue: VecDeque<Request> = resolve_requests(&txn, &spans).into();
        while !queue.is_empty() {
            let n = queue.len().min(CHUNK);
            let chunk: Vec<Request> = queue.drain(..n).collect();
            let mut backoff = Duration::from_millis(20);
            for attempt in 1..=ATTEMPTS {
                let Some(store) = weak.upgrade() else { return };
                if store.is_stopped() {
                    return;
                }
                let ba = BatchRequest {
                    header: Header {
                        max_span_request_keys: MAX_INTENTS_RESOLVED_AT_COMMIT as i64,
                        ..Header::default()
                    },
                    requests: chunk.clone(),
                };
                match store.send_routed(ba).await {
                    Ok(resp) => {
                        for (req, r) in chunk.iter().zip(resp.responses) {
                            if let Response::ResolveIntentRange {
                                resume_span: Some(rest),
                            } = r
                            {
                                queue.push_back(with_span(req, rest));
                            }
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(txn = ?txn.id(), attempt, error = %e, "intent resolution failed");
                        drop(store);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
        }
    });
}

/// `req` (a `ResolveIntentRange`) narrowed to `span`.
fn with_span(req: &Request, span: Span) -> Request {
    match req {
        Request::ResolveIntentRange {
            txn,
            status,
            ignored_seqs,
            ..
        } => Request::ResolveIntentRange {
            span,
            txn: txn.clone(),
            status: *status,
            ignored_seqs: ignored_seqs.clone(),
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use tardigrade_kvpb::TransactionStatus;

    use super::*;
    use crate::eval::clip_span;

    #[test]
    fn lock_spans_are_clipped_to_the_range() {
        let (a, m) = (b"a".as_slice(), b"m".as_slice());
        // A point inside, a point outside.
        assert_eq!(
            clip_span(&Span::point(b"c".to_vec()), a, m),
            (Some(Span::point(b"c".to_vec())), vec![])
        );
        assert_eq!(
            clip_span(&Span::point(b"x".to_vec()), a, m),
            (None, vec![Span::point(b"x".to_vec())])
        );
        // A span across both ends keeps the middle and hands out both sides.
        assert_eq!(
            clip_span(&Span::new(b"0".to_vec(), b"z".to_vec()), a, m),
            (
                Some(Span::new(b"a".to_vec(), b"m".to_vec())),
                vec![
                    Span::new(b"0".to_vec(), b"a".to_vec()),
                    Span::new(b"m".to_vec(), b"z".to_vec())
                ]
            )
        );
        // A span wholly outside.
        assert_eq!(
            clip_span(&Span::new(b"n".to_vec(), b"p".to_vec()), a, m),
            (None, vec![Span::new(b"n".to_vec(), b"p".to_vec())])
        );
    }

    #[test]
    fn resolution_requests_follow_the_spans() {
        let txn = Transaction {
            status: TransactionStatus::Committed,
            ignored_seqs: vec![(2, 3)],
            ..Default::default()
        };
        let reqs = resolve_requests(
            &txn,
            &[
                Span::point(b"k".to_vec()),
                Span::new(b"a".to_vec(), b"b".to_vec()),
            ],
        );
        assert!(matches!(
            &reqs[0],
            Request::ResolveIntent { key, status: TransactionStatus::Committed, ignored_seqs, .. }
                if key == b"k" && ignored_seqs == &vec![(2, 3)]
        ));
        assert!(matches!(
            &reqs[1],
            Request::ResolveIntentRange { span, .. } if span.end_key == b"b"
        ));
    }
}
