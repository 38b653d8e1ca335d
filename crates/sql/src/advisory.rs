//! Advisory locks (`pg_advisory_lock` and friends): application-defined
//! exclusive locks on 64-bit keys (or pairs of 32-bit keys, a separate key
//! space, as in PostgreSQL), held by a session until it unlocks them or ends
//! (session level), or until its transaction ends (`_xact_` variants).
//! Both levels nest: a session that takes a lock twice unlocks it twice.
//!
//! TODO(issue 13): cluster-wide advisory locks. This table is node-local:
//! sessions on different nodes do not exclude each other.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// An advisory lock's key: `pg_advisory_lock(bigint)` and
/// `pg_advisory_lock(int, int)` lock different things.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockKey {
    One(i64),
    Two(i32, i32),
}

/// Who holds a lock, and how many times at each level.
#[derive(Debug)]
struct Holder {
    session: u64,
    session_level: u32,
    xact_level: u32,
}

/// The node's advisory locks.
#[derive(Default)]
pub struct AdvisoryLocks {
    held: Mutex<HashMap<LockKey, Holder>>,
    /// Woken whenever a lock is released.
    released: Notify,
}

/// A fresh session identity for [`AdvisoryLocks`] (never 0).
pub fn new_session_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl AdvisoryLocks {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<LockKey, Holder>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `key` for `session` unless another session holds it; true
    /// when taken (again, if the session already held it).
    pub fn try_lock(&self, session: u64, key: LockKey, xact: bool) -> bool {
        let mut held = self.table();
        let holder = held.entry(key).or_insert(Holder {
            session,
            session_level: 0,
            xact_level: 0,
        });
        if holder.session != session {
            return false;
        }
        if xact {
            holder.xact_level += 1;
        } else {
            holder.session_level += 1;
        }
        true
    }

    /// Takes `key`, waiting while another session holds it. Dropping the
    /// future (a cancel request, statement_timeout) stops the wait.
    pub async fn lock(&self, session: u64, key: LockKey, xact: bool) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before the attempt: a release in between wakes us.
            released.as_mut().enable();
            if self.try_lock(session, key, xact) {
                return;
            }
            released.await;
        }
    }

    /// Releases one session-level hold of `key`; false when the session
    /// held none.
    pub fn unlock(&self, session: u64, key: LockKey) -> bool {
        let mut held = self.table();
        let Some(holder) = held.get_mut(&key) else {
            return false;
        };
        if holder.session != session || holder.session_level == 0 {
            return false;
        }
        holder.session_level -= 1;
        if holder.session_level == 0 && holder.xact_level == 0 {
            held.remove(&key);
            drop(held);
            self.released.notify_waiters();
        }
        true
    }

    /// Releases the session's session-level locks (`pg_advisory_unlock_all`),
    /// or its transaction-level ones (its transaction ended), or both (it
    /// ended).
    pub fn release(&self, session: u64, session_level: bool, xact_level: bool) {
        let mut held = self.table();
        let before = held.len();
        held.retain(|_, h| {
            if h.session != session {
                return true;
            }
            if session_level {
                h.session_level = 0;
            }
            if xact_level {
                h.xact_level = 0;
            }
            h.session_level > 0 || h.xact_level > 0
        });
        let freed = held.len() < before;
        drop(held);
        if freed {
            self.released.notify_waiters();
        }
    }

    /// How many keys are locked (tests).
    pub fn len(&self) -> usize {
        self.table().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_exclude_each_other_and_nest() {
        let locks = AdvisoryLocks::default();
        let (a, b) = (new_session_id(), new_session_id());
        let k = LockKey::One(7);
        assert!(locks.try_lock(a, k, false));
        assert!(locks.try_lock(a, k, false));
        assert!(!locks.try_lock(b, k, false));
        // the two-key space is separate
        assert!(locks.try_lock(b, LockKey::Two(0, 7), false));
        assert!(!locks.unlock(b, k));
        assert!(locks.unlock(a, k));
        assert!(!locks.try_lock(b, k, false));
        assert!(locks.unlock(a, k));
        assert!(!locks.unlock(a, k));
        assert!(locks.try_lock(b, k, true));
        // a transaction-level hold is not unlocked by pg_advisory_unlock
        assert!(!locks.unlock(b, k));
        locks.release(b, false, true);
        assert!(locks.try_lock(a, k, false));
        locks.release(a, true, false);
        locks.release(b, true, true);
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn a_waiter_gets_the_lock_when_it_is_released() {
        let locks = std::sync::Arc::new(AdvisoryLocks::default());
        let (a, b) = (new_session_id(), new_session_id());
        let k = LockKey::One(1);
        locks.lock(a, k, false).await;
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.lock(b, k, false).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        locks.release(a, true, true);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the waiter gets the lock")
            .expect("join");
        assert!(!locks.try_lock(a, k, false));
    }
}
