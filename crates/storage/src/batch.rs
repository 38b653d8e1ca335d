//! A write batch that can be read: pending writes layered over a snapshot.
//!
//! Request evaluation writes into a [`Batch`] and later requests of the same
//! batch must see those writes (a transaction that puts and then reads a key
//! in one round trip). The pending writes are an ordered map, so reads merge
//! them with the snapshot below in key order. Evaluation produces the
//! [`WriteSet`], which the replica applies to the engine atomically (after
//! replication, once Raft sits in between).

use std::collections::BTreeMap;
use std::iter::Peekable;

use crate::engine::{Reader, Result, Slice, Snapshot, Space};

/// Pending writes, ordered by space then key. `None` deletes the key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSet {
    map: BTreeMap<(Space, Vec<u8>), Option<Vec<u8>>>,
}

impl WriteSet {
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&(Space, Vec<u8>), &Option<Vec<u8>>)> {
        self.map.iter()
    }

    pub fn put(&mut self, space: Space, key: &[u8], value: &[u8]) {
        self.map.insert((space, key.to_vec()), Some(value.to_vec()));
    }

    pub fn delete(&mut self, space: Space, key: &[u8]) {
        self.map.insert((space, key.to_vec()), None);
    }

    /// Adds every write of `other`, later writes winning.
    pub fn extend(&mut self, other: WriteSet) {
        self.map.extend(other.map);
    }

    /// Approximate size in bytes, for limiting command sizes.
    pub fn byte_size(&self) -> usize {
        self.map
            .iter()
            .map(|((_, k), v)| k.len() + v.as_ref().map_or(0, Vec::len) + 8)
            .sum()
    }

    fn get(&self, space: Space, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        self.map.get(&(space, key.to_vec()))
    }

    fn range<'a>(
        &'a self,
        space: Space,
        lower: &[u8],
        upper: &[u8],
    ) -> std::collections::btree_map::Range<'a, (Space, Vec<u8>), Option<Vec<u8>>> {
        self.map
            .range((space, lower.to_vec())..(space, upper.to_vec()))
    }
}

/// A snapshot plus the writes made on top of it so far.
pub struct Batch {
    snapshot: Snapshot,
    writes: WriteSet,
}

impl Batch {
    pub fn new(snapshot: Snapshot) -> Batch {
        Batch {
            snapshot,
            writes: WriteSet::default(),
        }
    }

    pub fn put(&mut self, space: Space, key: &[u8], value: &[u8]) {
        self.writes.put(space, key, value);
    }

    pub fn delete(&mut self, space: Space, key: &[u8]) {
        self.writes.delete(space, key);
    }

    pub fn writes(&self) -> &WriteSet {
        &self.writes
    }

    pub fn into_writes(self) -> WriteSet {
        self.writes
    }

    /// The snapshot under the pending writes.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
}

impl Reader for Batch {
    fn store_path(&self) -> &std::path::Path {
        self.snapshot.store_path()
    }

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Slice>> {
        match self.writes.get(space, key) {
            Some(Some(v)) => Ok(Some(Slice::from(v.as_slice()))),
            Some(None) => Ok(None),
            None => self.snapshot.get(space, key),
        }
    }

    fn scan<'a>(
        &'a self,
        space: Space,
        lower: &[u8],
        upper: &[u8],
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<(Slice, Slice)>> + 'a> {
        let base = self.snapshot.scan(space, lower, upper, reverse);
        if lower >= upper {
            return base;
        }
        let pending = self.writes.range(space, lower, upper);
        let pending: Box<dyn Iterator<Item = (&'a [u8], &'a Option<Vec<u8>>)> + 'a> = if reverse {
            Box::new(pending.rev().map(|((_, k), v)| (k.as_slice(), v)))
        } else {
            Box::new(pending.map(|((_, k), v)| (k.as_slice(), v)))
        };
        Box::new(MergeIter {
            base: base.peekable(),
            pending: pending.peekable(),
            reverse,
        })
    }
}

/// Merges pending writes over the snapshot's keys; a pending write hides the
/// snapshot's value for the same key, a pending delete hides the key.
struct MergeIter<'a> {
    base: Peekable<Box<dyn Iterator<Item = Result<(Slice, Slice)>> + 'a>>,
    pending: Peekable<Box<dyn Iterator<Item = (&'a [u8], &'a Option<Vec<u8>>)> + 'a>>,
    reverse: bool,
}

impl Iterator for MergeIter<'_> {
    type Item = Result<(Slice, Slice)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_pending = match (self.base.peek(), self.pending.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => return self.base.next(),
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(Ok((bk, _))), Some((pk, _))) => {
                    let ord = pk.cmp(&bk.as_ref());
                    let ord = if self.reverse { ord.reverse() } else { ord };
                    match ord {
                        std::cmp::Ordering::Less => true,
                        std::cmp::Ordering::Equal => {
                            // The pending write replaces the snapshot's value.
                            self.base.next();
                            true
                        }
                        std::cmp::Ordering::Greater => false,
                    }
                }
            };
            if !take_pending {
                return self.base.next();
            }
            let (k, v) = self.pending.next()?;
            if let Some(v) = v {
                return Some(Ok((Slice::from(k), Slice::from(v.as_slice()))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, StoreSpec};

    fn collect(b: &Batch, reverse: bool) -> Vec<(String, String)> {
        b.scan(Space::Mvcc, b"a", b"z", reverse)
            .map(|r| {
                let (k, v) = r.expect("scan");
                (
                    String::from_utf8_lossy(&k).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn reads_merge_pending_writes_over_the_snapshot() {
        let eng = Engine::open(&StoreSpec::Memory).expect("open");
        let mut b = eng.batch();
        for k in ["b", "d", "f"] {
            b.put(Space::Mvcc, k.as_bytes(), b"old");
        }
        eng.commit(b.writes(), false).expect("commit");

        let mut b = eng.batch();
        b.put(Space::Mvcc, b"c", b"new");
        b.put(Space::Mvcc, b"d", b"new");
        b.delete(Space::Mvcc, b"f");
        b.put(Space::Raw, b"e", b"other space");
        let fwd = collect(&b, false);
        let want = vec![
            ("b".to_string(), "old".to_string()),
            ("c".to_string(), "new".to_string()),
            ("d".to_string(), "new".to_string()),
        ];
        assert_eq!(fwd, want);
        let mut rev = collect(&b, true);
        rev.reverse();
        assert_eq!(rev, want);
        assert_eq!(b.get(Space::Mvcc, b"f").expect("get"), None);
        assert_eq!(
            b.get(Space::Mvcc, b"d").expect("get").as_deref(),
            Some(&b"new"[..])
        );
        // Nothing reached the engine yet.
        assert_eq!(eng.get(Space::Mvcc, b"c").expect("get"), None);
    }
}
