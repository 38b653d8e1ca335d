//! Latches: short-lived, in-memory span locks that serialise overlapping
//! requests on a replica while they evaluate and apply.
//!
//! A request declares the spans it reads and writes. Reads share with reads;
//! a write excludes every overlapping read and write. Requests wait only for
//! conflicting requests that acquired before them, so latching is FIFO per
//! conflict and cannot deadlock. Latches are held for evaluation and
//! application only, never while waiting on another transaction: that is
//! what the lock table and the transaction wait queue are for.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tardigrade_kvpb::Span;
use tokio::sync::Semaphore;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

#[derive(Clone, Debug)]
pub struct LatchSpan {
    pub span: Span,
    pub access: Access,
}

struct Held {
    spans: Vec<LatchSpan>,
    /// Never has permits: closing it on release wakes every waiter, in the
    /// order they began to wait (a `watch` channel wakes its waiters in a
    /// random order, which a deterministic simulation cannot replay).
    released: Arc<Semaphore>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    held: BTreeMap<u64, Held>,
}

/// The latch manager of one replica.
#[derive(Default, Clone)]
pub struct LatchManager {
    inner: Arc<Mutex<Inner>>,
}

/// Held latches; released on drop.
pub struct LatchGuard {
    id: u64,
    manager: LatchManager,
}

impl Drop for LatchGuard {
    fn drop(&mut self) {
        let held = self.manager.inner.lock().held.remove(&self.id);
        if let Some(h) = held {
            h.released.close();
        }
    }
}

fn conflicts(a: &[LatchSpan], b: &[LatchSpan]) -> bool {
    a.iter().any(|x| {
        b.iter().any(|y| {
            (x.access == Access::Write || y.access == Access::Write) && x.span.overlaps(&y.span)
        })
    })
}

impl LatchManager {
    /// Acquires latches on `spans`, waiting for earlier conflicting holders.
    pub async fn acquire(&self, spans: Vec<LatchSpan>) -> LatchGuard {
        let (id, waits) = {
            let mut inner = self.inner.lock();
            let waits: Vec<Arc<Semaphore>> = inner
                .held
                .values()
                .filter(|h| conflicts(&h.spans, &spans))
                .map(|h| h.released.clone())
                .collect();
            inner.next_id += 1;
            let id = inner.next_id;
            inner.held.insert(
                id,
                Held {
                    spans,
                    released: Arc::new(Semaphore::new(0)),
                },
            );
            (id, waits)
        };
        let guard = LatchGuard {
            id,
            manager: self.clone(),
        };
        for released in waits {
            // No permit is ever added: this returns once the holder closes it.
            let _ = released.acquire().await;
        }
        guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn w(k: &str) -> Vec<LatchSpan> {
        vec![LatchSpan {
            span: Span::point(k.as_bytes().to_vec()),
            access: Access::Write,
        }]
    }

    fn r(a: &str, b: &str) -> Vec<LatchSpan> {
        vec![LatchSpan {
            span: Span::new(a.as_bytes().to_vec(), b.as_bytes().to_vec()),
            access: Access::Read,
        }]
    }

    #[tokio::test]
    async fn writes_to_the_same_key_are_serialised() {
        let m = LatchManager::default();
        let g1 = m.acquire(w("a")).await;
        let m2 = m.clone();
        let waiter = tokio::spawn(async move { m2.acquire(w("a")).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "second writer must wait");
        drop(g1);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("released")
            .expect("join");
    }

    #[tokio::test]
    async fn reads_share_and_disjoint_writes_do_not_wait() {
        let m = LatchManager::default();
        let _r1 = m.acquire(r("a", "m")).await;
        let _r2 = tokio::time::timeout(Duration::from_millis(100), m.acquire(r("b", "z")))
            .await
            .expect("reads share");
        let _w = tokio::time::timeout(Duration::from_millis(100), m.acquire(w("zz")))
            .await
            .expect("disjoint write");
        let m2 = m.clone();
        let blocked = tokio::spawn(async move { m2.acquire(w("c")).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!blocked.is_finished(), "write under a read latch must wait");
    }
}
