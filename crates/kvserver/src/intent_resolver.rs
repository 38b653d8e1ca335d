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

use std::sync::Arc;
use std::time::Duration;

use tardigrade_kvpb::{BatchRequest, Header, Request, Span, Transaction};

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

/// Resolves `spans` of the finished `txn` in the background.
pub(crate) fn resolve_async(store: &Arc<Store>, txn: Transaction, spans: Vec<Span>) {
    if spans.is_empty() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let weak = Arc::downgrade(store);
    tokio::spawn(async move {
        let requests = resolve_requests(&txn, &spans);
        for chunk in requests.chunks(CHUNK) {
            let mut backoff = Duration::from_millis(20);
            for attempt in 1..=ATTEMPTS {
                let Some(store) = weak.upgrade() else { return };
                if store.is_stopped() {
                    return;
                }
                let ba = BatchRequest {
                    header: Header::default(),
                    requests: chunk.to_vec(),
                };
                match store.send_routed(ba).await {
                    Ok(_) => break,
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
