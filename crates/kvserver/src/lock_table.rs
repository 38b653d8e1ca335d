//! The in-memory lock table: per-key wait queues for discovered intents, and
//! the exclusive unreplicated locks of locking reads.
//!
//! Intents are stored durably by MVCC; this table only tracks the ones that
//! requests have run into, so that the requests waiting on a key are woken
//! the moment its intent is resolved (by commit, abort or push) instead of
//! polling. A waiter also pushes the holder's transaction (through the
//! transaction wait queue), which is what makes progress when the holder is
//! slow, dead or part of a deadlock.
//!
//! A locking read (`Header::lock_reads`: SELECT … FOR UPDATE, the reads of
//! UPDATE and DELETE) leaves an unreplicated lock here on every key it
//! returned. Writes and other locking reads of another transaction wait for
//! it like for an intent; plain reads ignore it. Such locks live only in the
//! leaseholder's memory (as CockroachDB's do): a lease change or restart
//! drops them, which costs only the queueing they provide, never
//! correctness, which MVCC and serializable commits guarantee on their own.

use std::collections::{BTreeMap, HashMap, HashSet};

use std::sync::Arc;

use parking_lot::Mutex;
use tardigrade_kvpb::{IntentInfo, Span, Transaction, TxnId, TxnMeta};
use tokio::sync::Semaphore;

struct Lock {
    holder: TxnId,
    /// The holder's transaction when this is a locking read's unreplicated
    /// lock (for the waiters' pushes); `None` for a discovered intent.
    unreplicated: Option<TxnMeta>,
    /// Dropped when the lock is released, which wakes every waiter.
    released: Release,
}

/// Wakes the lock's waiters when dropped, in the order they began to wait
/// (a `watch` channel wakes them in a random order, which a deterministic
/// simulation cannot replay). A semaphore that never has permits: closing
/// it ends every wait.
struct Release(Arc<Semaphore>);

impl Release {
    fn new() -> Release {
        Release(Arc::new(Semaphore::new(0)))
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[derive(Default)]
struct Inner {
    locks: BTreeMap<Vec<u8>, Lock>,
    by_txn: HashMap<TxnId, HashSet<Vec<u8>>>,
    /// Holders recently found committed or aborted (without their lock
    /// spans): their remaining intents are resolved without another push.
    /// A finalized transaction never changes, so the entries never go stale.
    finalized: HashMap<TxnId, Transaction>,
}

/// How many finalized transactions the table remembers.
const FINALIZED_CACHE: usize = 256;

#[derive(Default)]
pub struct LockTable {
    inner: Mutex<Inner>,
}

/// A place in a key's wait queue; `released()` resolves when the lock goes.
pub struct Waiter {
    released: Arc<Semaphore>,
}

impl Waiter {
    pub async fn released(&mut self) {
        // No permit is ever added: this returns once the lock is released.
        let _ = self.released.acquire().await;
    }
}

impl LockTable {
    /// Records that `holder` holds an intent on `key` and joins its wait queue.
    pub fn wait_on(&self, key: &[u8], holder: TxnId) -> Waiter {
        let mut inner = self.inner.lock();
        if let Some(lock) = inner.locks.get(key)
            && lock.holder == holder
        {
            return Waiter {
                released: lock.released.0.clone(),
            };
        }
        let release = Release::new();
        let waiter = Waiter {
            released: release.0.clone(),
        };
        if let Some(old) = inner.locks.insert(
            key.to_vec(),
            Lock {
                holder,
                unreplicated: None,
                released: release,
            },
        ) && let Some(keys) = inner.by_txn.get_mut(&old.holder)
        {
            keys.remove(key);
        }
        inner.by_txn.entry(holder).or_default().insert(key.to_vec());
        waiter
    }

    /// A locking read of `holder` returned `key`: it holds an exclusive
    /// unreplicated lock on it until it finishes. (Another transaction's lock
    /// there is left alone: the request's latches and the conflict check
    /// before evaluation make that impossible short of a lease change.)
    pub fn acquire(&self, key: &[u8], holder: &TxnMeta) {
        // Waiters push the record `holder`'s key addresses.
        debug_assert!(
            !holder.key.is_empty(),
            "a lock holder without an anchor key"
        );
        let mut inner = self.inner.lock();
        match inner.locks.get_mut(key) {
            Some(lock) if lock.holder == holder.id => lock.unreplicated = Some(holder.clone()),
            Some(_) => return,
            None => {
                inner.locks.insert(
                    key.to_vec(),
                    Lock {
                        holder: holder.id,
                        unreplicated: Some(holder.clone()),
                        released: Release::new(),
                    },
                );
            }
        }
        inner
            .by_txn
            .entry(holder.id)
            .or_default()
            .insert(key.to_vec());
    }

    /// Whether no lock (intent or unreplicated) is tracked at all.
    pub fn is_empty(&self) -> bool {
        self.inner.lock().by_txn.is_empty()
    }

    /// The unreplicated locks of other transactions than `me` in `spans`, as
    /// conflicts to wait for (the same way as for intents).
    pub fn conflicts(&self, spans: &[Span], me: Option<TxnId>) -> Vec<IntentInfo> {
        let inner = self.inner.lock();
        if inner.by_txn.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for span in spans {
            let end = span.exclusive_end();
            if span.key >= end {
                continue;
            }
            for (key, lock) in inner.locks.range(span.key.clone()..end) {
                if let Some(meta) = &lock.unreplicated
                    && Some(lock.holder) != me
                {
                    out.push(IntentInfo {
                        key: key.clone(),
                        txn: meta.clone(),
                    });
                }
            }
        }
        out
    }

    /// `holder`'s intent on `key` was resolved (`finalized`: it committed or
    /// aborted; otherwise it was pushed): wake its waiters. A pushed holder
    /// keeps its unreplicated lock, and a lock another transaction has taken
    /// since is not this resolution's to release.
    pub fn release_key(&self, key: &[u8], holder: TxnId, finalized: bool) {
        let mut inner = self.inner.lock();
        let releases = inner
            .locks
            .get(key)
            .is_some_and(|l| l.holder == holder && (finalized || l.unreplicated.is_none()));
        if !releases {
            return;
        }
        if let Some(lock) = inner.locks.remove(key)
            && let Some(keys) = inner.by_txn.get_mut(&lock.holder)
        {
            keys.remove(key);
            if keys.is_empty() {
                inner.by_txn.remove(&lock.holder);
            }
        }
    }

    /// `txn` finished: every lock it held is released.
    pub fn release_txn(&self, txn: TxnId) {
        let mut inner = self.inner.lock();
        if let Some(keys) = inner.by_txn.remove(&txn) {
            for k in keys {
                inner.locks.remove(&k);
            }
        }
    }

    /// Remembers that `txn` is committed or aborted.
    pub fn remember_finalized(&self, txn: &Transaction) {
        let mut inner = self.inner.lock();
        if inner.finalized.len() >= FINALIZED_CACHE {
            inner.finalized.clear();
        }
        let mut t = txn.clone();
        t.lock_spans = Vec::new();
        inner.finalized.insert(t.id(), t);
    }

    /// `txn`'s final state, if it is known to be committed or aborted.
    pub fn finalized(&self, txn: TxnId) -> Option<Transaction> {
        self.inner.lock().finalized.get(&txn).cloned()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.lock().locks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_wake_when_the_holder_finishes() {
        let t = LockTable::default();
        let h = TxnId([1; 16]);
        let mut w1 = t.wait_on(b"a", h);
        let mut w2 = t.wait_on(b"b", h);
        let mut other = t.wait_on(b"c", TxnId([2; 16]));
        t.release_txn(h);
        tokio::time::timeout(Duration::from_secs(1), w1.released())
            .await
            .expect("a released");
        tokio::time::timeout(Duration::from_secs(1), w2.released())
            .await
            .expect("b released");
        assert!(
            tokio::time::timeout(Duration::from_millis(20), other.released())
                .await
                .is_err(),
            "another holder's lock stays"
        );
        assert_eq!(t.len(), 1);
    }
}
