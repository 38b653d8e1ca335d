//! The client's cache of range descriptors and leaseholders.
//!
//! Keyed by range end key, so that the range containing `k` is the first
//! entry whose end key is greater than `k` — the same rule meta records use.
//! Entries are evicted when a node answers `RangeKeyMismatch` (the range
//! split or merged) and the leaseholder hint is updated from
//! `NotLeaseholder` answers.

use std::collections::BTreeMap;
use std::ops::Bound;

use parking_lot::RwLock;
use tardigrade_kvpb::{NodeId, RangeDescriptor};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedRange {
    pub desc: RangeDescriptor,
    /// The node believed to hold the lease (0: unknown).
    pub leaseholder: NodeId,
}

#[derive(Default)]
pub struct RangeCache {
    by_end: RwLock<BTreeMap<Vec<u8>, CachedRange>>,
}

impl RangeCache {
    /// The cached range containing `key`, if any.
    pub fn lookup(&self, key: &[u8]) -> Option<CachedRange> {
        let map = self.by_end.read();
        let (_, r) = map
            .range::<[u8], _>((Bound::Excluded(key), Bound::Unbounded))
            .next()?;
        r.desc.contains_key(key).then(|| r.clone())
    }

    /// Caches `desc`, replacing every entry it overlaps.
    pub fn insert(&self, desc: RangeDescriptor) {
        let mut map = self.by_end.write();
        let overlapping: Vec<Vec<u8>> = map
            .range::<[u8], _>((Bound::Excluded(desc.start_key.as_slice()), Bound::Unbounded))
            .take_while(|(_, r)| r.desc.start_key < desc.end_key)
            .map(|(k, _)| k.clone())
            .collect();
        let mut leaseholder = 0;
        for k in overlapping {
            if let Some(old) = map.remove(&k)
                && old.desc.range_id == desc.range_id
            {
                leaseholder = old.leaseholder;
            }
        }
        map.insert(desc.end_key.clone(), CachedRange { desc, leaseholder });
    }

    /// Forgets the range containing `key`.
    pub fn evict(&self, key: &[u8]) {
        let mut map = self.by_end.write();
        let hit = map
            .range::<[u8], _>((Bound::Excluded(key), Bound::Unbounded))
            .next()
            .filter(|(_, r)| r.desc.contains_key(key))
            .map(|(k, _)| k.clone());
        if let Some(k) = hit {
            map.remove(&k);
        }
    }

    pub fn set_leaseholder(&self, range_id: u64, end_key: &[u8], node: NodeId) {
        let mut map = self.by_end.write();
        if let Some(r) = map.get_mut(end_key)
            && r.desc.range_id == range_id
        {
            r.leaseholder = node;
        }
    }

    pub fn len(&self) -> usize {
        self.by_end.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(id: u64, s: &str, e: &str) -> RangeDescriptor {
        RangeDescriptor {
            range_id: id,
            start_key: s.as_bytes().to_vec(),
            end_key: e.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn finds_the_range_containing_a_key_and_replaces_overlaps() {
        let c = RangeCache::default();
        c.insert(desc(1, "a", "m"));
        c.insert(desc(2, "m", "z"));
        assert_eq!(c.lookup(b"a").map(|r| r.desc.range_id), Some(1));
        assert_eq!(c.lookup(b"l").map(|r| r.desc.range_id), Some(1));
        assert_eq!(c.lookup(b"m").map(|r| r.desc.range_id), Some(2));
        assert_eq!(c.lookup(b"z"), None);
        assert_eq!(c.lookup(b"0"), None);
        // Range 1 split at "f": the new left side replaces the stale entry.
        c.insert(desc(1, "a", "f"));
        assert_eq!(c.lookup(b"g"), None);
        c.insert(desc(3, "f", "m"));
        assert_eq!(c.lookup(b"g").map(|r| r.desc.range_id), Some(3));
        c.evict(b"g");
        assert_eq!(c.lookup(b"g"), None);
        assert_eq!(c.len(), 2);
    }
}
