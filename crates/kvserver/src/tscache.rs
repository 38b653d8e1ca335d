//! The timestamp cache: the highest timestamp at which each key was read.
//!
//! A write below a read of the same key would change what that read saw, so
//! writes are pushed above the cache's entry for their keys. The cache is
//! bounded: when it grows too large its oldest half is dropped and the
//! low-water mark rises to the highest timestamp dropped, which is
//! conservative (it can only push writes higher, never lower). A new
//! replica, or one that just acquired its lease, starts with a low-water mark
//! at the current time so that no earlier read can be undercut.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use tardigrade_hlc::Timestamp;
use tardigrade_kvpb::{Span, TxnId};

/// The reads recorded for a key span: the highest timestamp and, if a single
/// transaction read there at that timestamp, its id (its own writes are not pushed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadMark {
    pub ts: Timestamp,
    pub txn: Option<TxnId>,
}

impl ReadMark {
    fn merge(&mut self, other: ReadMark) {
        if other.ts > self.ts {
            *self = other;
        } else if other.ts == self.ts && other.txn != self.txn {
            self.txn = None;
        }
    }
}

const MAX_POINTS: usize = 1 << 16;
const MAX_RANGES: usize = 1 << 10;

struct Inner {
    low_water: Timestamp,
    points: BTreeMap<Vec<u8>, ReadMark>,
    /// Ranged reads `[start, end)`, in insertion order.
    ranges: Vec<(Vec<u8>, Vec<u8>, ReadMark)>,
}

pub struct TimestampCache {
    inner: Mutex<Inner>,
}

impl TimestampCache {
    pub fn new(low_water: Timestamp) -> TimestampCache {
        TimestampCache {
            inner: Mutex::new(Inner {
                low_water,
                points: BTreeMap::new(),
                ranges: Vec::new(),
            }),
        }
    }

    /// Records a read of `span` at `ts` by `txn`.
    pub fn add(&self, span: &Span, ts: Timestamp, txn: Option<TxnId>) {
        let mark = ReadMark { ts, txn };
        let mut inner = self.inner.lock();
        if ts <= inner.low_water {
            return;
        }
        if span.is_point() {
            match inner.points.get_mut(&span.key) {
                Some(m) => m.merge(mark),
                None => {
                    inner.points.insert(span.key.clone(), mark);
                }
            }
            if inner.points.len() > MAX_POINTS {
                inner.evict_points();
            }
        } else {
            inner
                .ranges
                .push((span.key.clone(), span.end_key.clone(), mark));
            if inner.ranges.len() > MAX_RANGES {
                inner.evict_ranges();
            }
        }
    }

    /// The highest read recorded anywhere on `span`.
    pub fn get_max(&self, span: &Span) -> ReadMark {
        self.get_max_each(std::slice::from_ref(span))[0]
    }

    /// [`TimestampCache::get_max`] of each span, under one lock. The ranged
    /// reads are first narrowed to those that overlap the spans' bounds, so a
    /// batch of thousands of writes does not compare each write with every
    /// recorded scan (the common case, a scan elsewhere in the range, then
    /// costs nothing per write).
    pub fn get_max_each(&self, spans: &[Span]) -> Vec<ReadMark> {
        let inner = self.inner.lock();
        let floor = ReadMark {
            ts: inner.low_water,
            txn: None,
        };
        // The last key a span touches, inclusively (a point's key) or not
        // (a range's end): as a bound for narrowing, `<=` is close enough.
        fn last(s: &Span) -> &[u8] {
            if s.is_point() { &s.key } else { &s.end_key }
        }
        let (Some(lo), Some(hi)) = (
            spans.iter().map(|s| s.key.as_slice()).min(),
            spans.iter().map(last).max(),
        ) else {
            return Vec::new();
        };
        let ranges: Vec<&(Vec<u8>, Vec<u8>, ReadMark)> = inner
            .ranges
            .iter()
            .filter(|(s, e, _)| s.as_slice() <= hi && lo < e.as_slice())
            .collect();
        spans
            .iter()
            .map(|span| {
                let mut best = floor;
                let key = span.key.as_slice();
                if span.is_point() {
                    if let Some(m) = inner.points.get(key) {
                        best.merge(*m);
                    }
                    for (s, e, m) in &ranges {
                        if s.as_slice() <= key && key < e.as_slice() {
                            best.merge(*m);
                        }
                    }
                } else {
                    let end = span.end_key.as_slice();
                    let bounds = (
                        std::ops::Bound::Included(key),
                        std::ops::Bound::Excluded(end),
                    );
                    for (_, m) in inner.points.range::<[u8], _>(bounds) {
                        best.merge(*m);
                    }
                    for (s, e, m) in &ranges {
                        if s.as_slice() < end && key < e.as_slice() {
                            best.merge(*m);
                        }
                    }
                }
                best
            })
            .collect()
    }

    /// Raises the low-water mark (a new lease, or a whole-range operation).
    pub fn set_low_water(&self, ts: Timestamp) {
        let mut inner = self.inner.lock();
        inner.low_water.forward(ts);
    }
}

impl Inner {
    fn evict_points(&mut self) {
        // Drop the older half by timestamp; the low-water mark covers them.
        let mut ts: Vec<Timestamp> = self.points.values().map(|m| m.ts).collect();
        ts.sort_unstable();
        let cut = ts[ts.len() / 2];
        self.low_water.forward(cut);
        self.points.retain(|_, m| m.ts > cut);
    }

    fn evict_ranges(&mut self) {
        let half = self.ranges.len() / 2;
        for (_, _, m) in self.ranges.drain(..half) {
            self.low_water.forward(m.ts);
        }
        let lw = self.low_water;
        self.ranges.retain(|(_, _, m)| m.ts > lw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(w: i64) -> Timestamp {
        Timestamp::new(w, 0)
    }

    #[test]
    fn point_and_range_reads_are_found_by_overlapping_spans() {
        let c = TimestampCache::new(ts(1));
        c.add(&Span::point(b"b".to_vec()), ts(5), None);
        c.add(&Span::new(b"m".to_vec(), b"p".to_vec()), ts(7), None);
        assert_eq!(c.get_max(&Span::point(b"b".to_vec())).ts, ts(5));
        assert_eq!(c.get_max(&Span::point(b"a".to_vec())).ts, ts(1));
        assert_eq!(c.get_max(&Span::point(b"n".to_vec())).ts, ts(7));
        assert_eq!(c.get_max(&Span::point(b"p".to_vec())).ts, ts(1));
        assert_eq!(
            c.get_max(&Span::new(b"a".to_vec(), b"z".to_vec())).ts,
            ts(7)
        );
    }

    #[test]
    fn reads_by_one_transaction_are_attributed_to_it() {
        let c = TimestampCache::new(ts(1));
        let a = TxnId([1; 16]);
        let b = TxnId([2; 16]);
        c.add(&Span::point(b"k".to_vec()), ts(5), Some(a));
        assert_eq!(c.get_max(&Span::point(b"k".to_vec())).txn, Some(a));
        c.add(&Span::point(b"k".to_vec()), ts(5), Some(b));
        assert_eq!(c.get_max(&Span::point(b"k".to_vec())).txn, None);
    }

    #[test]
    fn eviction_only_raises_what_writes_see() {
        let c = TimestampCache::new(ts(0));
        for i in 0..(MAX_POINTS as i64 + 10) {
            c.add(&Span::point(i.to_be_bytes().to_vec()), ts(i + 1), None);
        }
        // Every key ever read still reports at least the time it was read.
        for i in [0i64, 1, 1000, MAX_POINTS as i64 + 9] {
            assert!(c.get_max(&Span::point(i.to_be_bytes().to_vec())).ts >= ts(i + 1));
        }
    }

    /// A batch lookup answers what a scan of every recorded read would.
    #[test]
    fn batch_lookups_agree_with_every_read_recorded() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let span = |rng: &mut rand::rngs::StdRng| {
            let a = vec![rng.random_range(b'a'..b'y')];
            if rng.random_bool(0.5) {
                Span::point(a)
            } else {
                Span::new(a.clone(), vec![a[0] + rng.random_range(1..4)])
            }
        };
        for _ in 0..200 {
            let c = TimestampCache::new(ts(1));
            let mut reads = Vec::new();
            for _ in 0..rng.random_range(0..12) {
                let (s, t) = (span(&mut rng), ts(rng.random_range(2..50)));
                c.add(&s, t, None);
                reads.push((s, t));
            }
            let queries: Vec<Span> = (0..rng.random_range(1..8))
                .map(|_| span(&mut rng))
                .collect();
            let got = c.get_max_each(&queries);
            for (q, mark) in queries.iter().zip(got) {
                let want = reads
                    .iter()
                    .filter(|(s, _)| s.overlaps(q))
                    .map(|(_, t)| *t)
                    .fold(ts(1), Timestamp::max);
                assert_eq!(mark.ts, want, "{q:?} after {reads:?}");
            }
        }
    }
}
