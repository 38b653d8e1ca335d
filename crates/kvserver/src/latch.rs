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

/// A holder's spans, sorted by start key, with running maxima of their ends
/// so that "does anything here overlap `[start, end)`" is a binary search:
/// a batch of thousands of keys checks against another in `n log m`, not
/// `n * m` (which made large transactions' batches quadratic).
struct SpanIndex {
    /// `(start, exclusive end, is a write)`, sorted by start.
    spans: Vec<(Vec<u8>, Vec<u8>, bool)>,
    /// `max_end[i]`: the index of the largest end among `spans[..=i]`.
    max_end: Vec<usize>,
    /// The same over the writes only (`None` while there is none yet).
    max_write_end: Vec<Option<usize>>,
}

impl SpanIndex {
    fn new(spans: Vec<LatchSpan>) -> SpanIndex {
        let mut sorted: Vec<(Vec<u8>, Vec<u8>, bool)> = spans
            .into_iter()
            .map(|s| {
                let write = s.access == Access::Write;
                let end = s.span.exclusive_end();
                (s.span.key, end, write)
            })
            .collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut max_end = Vec::with_capacity(sorted.len());
        let mut max_write_end = Vec::with_capacity(sorted.len());
        let (mut best, mut best_write): (usize, Option<usize>) = (0, None);
        for (i, (_, end, write)) in sorted.iter().enumerate() {
            if *end > sorted[best].1 {
                best = i;
            }
            if *write && best_write.is_none_or(|w| *end > sorted[w].1) {
                best_write = Some(i);
            }
            max_end.push(best);
            max_write_end.push(best_write);
        }
        SpanIndex {
            spans: sorted,
            max_end,
            max_write_end,
        }
    }

    /// Whether a span here (a write span only, with `writes_only`)
    /// overlaps `[start, end)`.
    fn overlaps(&self, start: &[u8], end: &[u8], writes_only: bool) -> bool {
        // The spans that start before `end`; one of them overlaps if the
        // largest end among them is past `start`.
        let k = self.spans.partition_point(|(s, _, _)| s.as_slice() < end);
        if k == 0 {
            return false;
        }
        let best = if writes_only {
            match self.max_write_end[k - 1] {
                Some(i) => i,
                None => return false,
            }
        } else {
            self.max_end[k - 1]
        };
        self.spans[best].1.as_slice() > start
    }

    /// Whether these latches and `other`'s conflict: a write overlapping
    /// anything (reads share with reads).
    fn conflicts(&self, other: &SpanIndex) -> bool {
        other
            .spans
            .iter()
            .any(|(start, end, write)| self.overlaps(start, end, !*write))
    }
}

struct Held {
    spans: SpanIndex,
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

impl LatchManager {
    /// Acquires latches on `spans`, waiting for earlier conflicting holders.
    pub async fn acquire(&self, spans: Vec<LatchSpan>) -> LatchGuard {
        let spans = SpanIndex::new(spans);
        let (id, waits) = {
            let mut inner = self.inner.lock();
            let waits: Vec<Arc<Semaphore>> = inner
                .held
                .values()
                .filter(|h| h.spans.conflicts(&spans))
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

    /// The index answers exactly what comparing every pair would.
    #[test]
    fn the_span_index_agrees_with_pairwise_comparison() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let random_spans = |rng: &mut rand::rngs::StdRng| -> Vec<LatchSpan> {
            (0..rng.random_range(1..6))
                .map(|_| {
                    let a = vec![rng.random_range(b'a'..b'k')];
                    let span = if rng.random_bool(0.5) {
                        Span::point(a)
                    } else {
                        let mut b = vec![rng.random_range(b'a'..b'l')];
                        if b <= a {
                            b = a.clone();
                            b.push(b'0');
                        }
                        Span::new(a, b)
                    };
                    let access = if rng.random_bool(0.5) {
                        Access::Write
                    } else {
                        Access::Read
                    };
                    LatchSpan { span, access }
                })
                .collect()
        };
        let mut seen = [0; 2];
        for _ in 0..5000 {
            let (a, b) = (random_spans(&mut rng), random_spans(&mut rng));
            let pairwise = a.iter().any(|x| {
                b.iter().any(|y| {
                    (x.access == Access::Write || y.access == Access::Write)
                        && x.span.overlaps(&y.span)
                })
            });
            let indexed = SpanIndex::new(a.clone()).conflicts(&SpanIndex::new(b.clone()));
            assert_eq!(indexed, pairwise, "{a:?} vs {b:?}");
            seen[usize::from(pairwise)] += 1;
        }
        assert!(
            seen[0] > 100 && seen[1] > 100,
            "both outcomes exercised: {seen:?}"
        );
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
