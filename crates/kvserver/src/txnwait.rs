//! The transaction wait queue: pushers that lost a push wait here, on the
//! replica holding the pushee's transaction record, until the pushee
//! finishes, is pushed, expires, or a deadlock is found.
//!
//! Deadlock detection follows CockroachDB: each waiting pusher periodically
//! asks for its *own* dependents (the transactions waiting on it, directly or
//! through others) and records them with its entry here, so dependents
//! propagate along wait-for edges. If a pusher finds the pushee among its own
//! dependents there is a cycle. Both ends of every edge of the cycle see it;
//! the tie-break ([`breaks_deadlock`]) is antisymmetric, so at least one
//! pusher in every cycle aborts its pushee and the cycle is broken.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tardigrade_kvpb::{TxnId, TxnMeta};
use tokio::sync::Notify;

/// A pushee's record changes, as seen by one waiter.
pub struct Updates {
    shared: Arc<Changes>,
    seen: u64,
}

/// How many times a pushee's record changed, and its waiters. (Not a
/// `watch` channel: that wakes its waiters in a random order, which a
/// deterministic simulation cannot replay; `Notify` wakes them in order.)
#[derive(Default)]
struct Changes {
    version: AtomicU64,
    notify: Notify,
}

impl Updates {
    /// Returns once the record changed since this waiter last looked.
    pub async fn changed(&mut self) {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let version = self.shared.version.load(Ordering::Acquire);
            if version > self.seen {
                self.seen = version;
                return;
            }
            notified.await;
        }
    }
}

#[derive(Default)]
struct Pushee {
    /// Bumped whenever the pushee's record changes.
    updated: Option<Arc<Changes>>,
    /// pusher → the pusher's own dependents.
    pushers: HashMap<TxnId, HashSet<TxnId>>,
}

#[derive(Default)]
pub struct TxnWaitQueue {
    inner: Mutex<HashMap<TxnId, Pushee>>,
}

/// Whether the pusher, on finding a cycle, should abort the pushee: higher
/// priority wins; on a tie, the larger id does.
pub fn breaks_deadlock(pusher: &TxnMeta, pushee: &TxnMeta) -> bool {
    (pusher.priority, pusher.id) > (pushee.priority, pushee.id)
}

impl TxnWaitQueue {
    /// Registers `pusher` (None for a non-transactional request) as waiting
    /// on `pushee`; the receiver changes whenever the pushee's record does.
    pub fn enqueue(&self, pushee: TxnId, pusher: Option<TxnId>) -> Updates {
        let mut inner = self.inner.lock();
        let entry = inner.entry(pushee).or_default();
        if let Some(p) = pusher {
            entry.pushers.entry(p).or_default();
        }
        let shared = entry.updated.get_or_insert_with(Arc::default).clone();
        let seen = shared.version.load(Ordering::Acquire);
        Updates { shared, seen }
    }

    pub fn dequeue(&self, pushee: TxnId, pusher: Option<TxnId>) {
        let mut inner = self.inner.lock();
        if let Some(entry) = inner.get_mut(&pushee) {
            if let Some(p) = pusher {
                entry.pushers.remove(&p);
            }
            if entry.pushers.is_empty()
                // Held by the entry and, at most, the dequeuing waiter.
                && entry
                    .updated
                    .as_ref()
                    .is_none_or(|c| Arc::strong_count(c) <= 2)
            {
                inner.remove(&pushee);
            }
        }
    }

    pub fn set_dependents(&self, pushee: TxnId, pusher: TxnId, deps: HashSet<TxnId>) {
        if let Some(entry) = self.inner.lock().get_mut(&pushee)
            && let Some(d) = entry.pushers.get_mut(&pusher)
        {
            *d = deps;
        }
    }

    /// Everyone waiting on `txn`, directly or transitively (as far as the
    /// waiters have reported).
    pub fn dependents(&self, txn: TxnId) -> HashSet<TxnId> {
        let inner = self.inner.lock();
        let mut out = HashSet::new();
        if let Some(entry) = inner.get(&txn) {
            for (p, deps) in &entry.pushers {
                out.insert(*p);
                out.extend(deps.iter().copied());
            }
        }
        out
    }

    /// The record of `txn` changed: wake its pushers.
    pub fn notify(&self, txn: TxnId) {
        if let Some(entry) = self.inner.lock().get(&txn)
            && let Some(tx) = &entry.updated
        {
            tx.version.fetch_add(1, Ordering::AcqRel);
            tx.notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: u8, priority: i32) -> TxnMeta {
        TxnMeta {
            id: TxnId([id; 16]),
            priority,
            ..Default::default()
        }
    }

    #[test]
    fn exactly_one_side_of_a_two_cycle_breaks_it() {
        let a = meta(1, 0);
        let b = meta(2, 0);
        assert_ne!(breaks_deadlock(&a, &b), breaks_deadlock(&b, &a));
        let hi = meta(1, 10);
        assert!(breaks_deadlock(&hi, &b));
        assert!(!breaks_deadlock(&b, &hi));
    }

    #[test]
    fn dependents_propagate_through_reports() {
        let q = TxnWaitQueue::default();
        let (a, b, c) = (TxnId([1; 16]), TxnId([2; 16]), TxnId([3; 16]));
        let _rx = q.enqueue(b, Some(a)); // a waits on b
        let _rx2 = q.enqueue(c, Some(b)); // b waits on c
        q.set_dependents(c, b, q.dependents(b)); // b reports its dependents
        assert_eq!(q.dependents(c), HashSet::from([a, b]));
        q.dequeue(b, Some(a));
        assert_eq!(q.dependents(b), HashSet::new());
    }
}
