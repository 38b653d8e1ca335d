//! The in-memory lock table: per-key wait queues for discovered intents.
//!
//! Intents are stored durably by MVCC; this table only tracks the ones that
//! requests have run into, so that the requests waiting on a key are woken
//! the moment its intent is resolved (by commit, abort or push) instead of
//! polling. A waiter also pushes the holder's transaction (through the
//! transaction wait queue), which is what makes progress when the holder is
//! slow, dead or part of a deadlock.

use std::collections::{HashMap, HashSet};

use parking_lot::Mutex;
use tardigrade_kvpb::{Transaction, TxnId};
use tokio::sync::watch;

struct Lock {
    holder: TxnId,
    /// Dropped when the lock is released, which wakes every waiter.
    released: watch::Sender<()>,
}

#[derive(Default)]
struct Inner {
    locks: HashMap<Vec<u8>, Lock>,
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
    rx: watch::Receiver<()>,
}

impl Waiter {
    pub async fn released(&mut self) {
        while self.rx.changed().await.is_ok() {}
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
                rx: lock.released.subscribe(),
            };
        }
        let (tx, rx) = watch::channel(());
        if let Some(old) = inner.locks.insert(
            key.to_vec(),
            Lock {
                holder,
                released: tx,
            },
        ) && let Some(keys) = inner.by_txn.get_mut(&old.holder)
        {
            keys.remove(key);
        }
        inner.by_txn.entry(holder).or_default().insert(key.to_vec());
        Waiter { rx }
    }

    /// The intent on `key` was resolved: wake its waiters.
    pub fn release_key(&self, key: &[u8]) {
        let mut inner = self.inner.lock();
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
