//! Replica changes: adding and removing replicas of a range with joint
//! consensus, the descriptor changing together with the Raft configuration.
//!
//! Every step is one `ConfChangeV2` entry proposed by the leaseholder (which
//! must also be the Raft leader) whose context is a [`Command`] carrying
//! `Trigger::ChangeReplicas { desc }`: when the entry commits, every replica
//! applies both or neither (the descriptor must be the successor, one
//! generation on, of the one it holds), writing the descriptor to its range-local key
//! in the same batch as the applied index and then calling raft-rs's
//! `apply_conf_change` ([`crate::scheduler`]).
//!
//! - Adding a voter: (1) add it as a LEARNER (a simple change); the new
//!   store creates the replica when the first message arrives and raft-rs
//!   sends it a snapshot because its log is empty and the leader's starts
//!   past the bootstrap index; (2) wait until it has caught up; (3) enter a
//!   joint configuration with it as an incoming voter (`Explicit`
//!   transition), optionally removing another voter in the same step (a
//!   replacement); (4) leave the joint configuration (an empty
//!   `ConfChangeV2`).
//! - Removing a voter: enter a joint configuration where it is an outgoing
//!   voter only, then leave it. A replica that applies its own removal is
//!   garbage-collected (data deleted, tombstone kept); one that never learns
//!   is found by the replica GC check of the replicate queue.
//!
//! After each step the meta records (meta2, and meta1 for the range holding
//! the meta span) are rewritten by one internal transaction. TODO(issue 3): once the internal transaction
//! runner with commit triggers lands, run the change as a transaction that
//! CPuts the descriptor and puts the meta record, committing with
//! `CommitTrigger::ChangeReplicas`, so the meta record changes atomically
//! with the configuration.

use std::time::Duration;
// Tokio's clock: real time, except under a simulation's paused runtime.
use tokio::time::Instant;

use raft::eraftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};
use tardigrade_encoding::keys;
use tardigrade_kvpb::{
    ErrorDetail, KvError, NodeId, RangeDescriptor, ReplicaDescriptor, ReplicaId, ReplicaType,
    StoreId,
};
use tardigrade_storage::MvccStats;
use tardigrade_storage::batch::WriteSet;

use crate::command::{Command, Trigger};
use crate::internal_txn::InternalTxn;
use crate::replica::Replica;

/// How long a new learner may take to catch up before the change is
/// abandoned (the learner is removed again by the replicate queue).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);

fn single(t: ConfChangeType, id: u64) -> ConfChangeSingle {
    let mut c = ConfChangeSingle::default();
    c.set_change_type(t);
    c.node_id = id;
    c
}

fn unavailable(msg: String) -> KvError {
    KvError::new(ErrorDetail::Unavailable(msg))
}

/// Whether `desc` is in a joint configuration.
pub fn is_joint(desc: &RangeDescriptor) -> bool {
    desc.replicas.iter().any(|r| {
        matches!(
            r.kind,
            ReplicaType::VoterIncoming | ReplicaType::VoterOutgoing
        )
    })
}

impl Replica {
    /// Checks that this replica may change the range: it holds the lease
    /// and leads the Raft group. Returns the current descriptor.
    async fn change_precondition(&self) -> Result<RangeDescriptor, KvError> {
        let now = self.clock_now();
        self.ensure_lease(now).await?;
        if !self.is_raft_leader() {
            return Err(unavailable(format!(
                "r{}: the leaseholder is not the Raft leader; not changing replicas",
                self.range_id
            )));
        }
        Ok(self.desc())
    }

    /// Proposes one configuration step to `next` (a successor of `cur`).
    async fn change_step(
        &self,
        cur: &RangeDescriptor,
        mut next: RangeDescriptor,
        cc: ConfChangeV2,
    ) -> Result<RangeDescriptor, KvError> {
        next.generation = cur.generation + 1;
        let cmd = Command {
            id: rand::random(),
            proposer: self.replica_id,
            lease_sequence: self.lease().sequence,
            writes: WriteSet::default(),
            stats: MvccStats::default(),
            trigger: Some(Trigger::ChangeReplicas { desc: next.clone() }),
        };
        self.propose_conf_change(cmd, cc).await?;
        let now = self.desc();
        if now.generation != next.generation || now.replicas != next.replicas {
            return Err(unavailable(format!(
                "r{}: replica change was not applied",
                self.range_id
            )));
        }
        Ok(now)
    }

    /// Adds a learner on `(node, store)`; returns the new descriptor and
    /// the learner's replica id.
    pub async fn add_learner(
        &self,
        node_id: NodeId,
        store_id: StoreId,
    ) -> Result<(RangeDescriptor, ReplicaId), KvError> {
        let cur = self.change_precondition().await?;
        if is_joint(&cur) {
            return Err(unavailable(format!(
                "r{} is in a joint state",
                self.range_id
            )));
        }
        if cur.replicas.iter().any(|r| r.store_id == store_id) {
            return Err(KvError::invalid(format!(
                "r{} already has a replica on s{store_id}",
                self.range_id
            )));
        }
        let id = cur.next_replica_id.max(1);
        let mut next = cur.clone();
        next.replicas.push(ReplicaDescriptor {
            node_id,
            store_id,
            replica_id: id,
            kind: ReplicaType::Learner,
        });
        next.next_replica_id = id + 1;
        let mut cc = ConfChangeV2::default();
        cc.set_changes(vec![single(ConfChangeType::AddLearnerNode, id)].into());
        let d = self.change_step(&cur, next, cc).await?;
        Ok((d, id))
    }

    /// Waits until learner `id` has the log up to the current commit index
    /// (raft-rs sends it a snapshot first when it needs one).
    pub async fn wait_caught_up(&self, id: ReplicaId, timeout: Duration) -> Result<(), KvError> {
        let target = self.applied_index();
        let deadline = Instant::now() + timeout;
        loop {
            let (leader, matched) = {
                let g = self.raft.lock();
                (
                    g.node.raft.state == raft::StateRole::Leader,
                    g.node.raft.prs().get(id).map_or(0, |p| p.matched),
                )
            };
            if !leader {
                return Err(unavailable(format!(
                    "r{}: lost leadership while a learner caught up",
                    self.range_id
                )));
            }
            if matched >= target {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(unavailable(format!(
                    "r{}: learner {id} did not catch up within {timeout:?}",
                    self.range_id
                )));
            }
            if let Ok(s) = self.store_handle() {
                s.wake(self.range_id);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Enters a joint configuration promoting the learners `promote` and
    /// removing the voters `remove`, then leaves it.
    pub async fn promote_and_remove(
        &self,
        promote: &[ReplicaId],
        remove: &[ReplicaId],
    ) -> Result<RangeDescriptor, KvError> {
        let cur = self.change_precondition().await?;
        if is_joint(&cur) {
            return self.leave_joint().await;
        }
        let lease_holder = self.lease().replica.replica_id;
        let mut next = cur.clone();
        let mut changes = Vec::new();
        for id in promote {
            let Some(r) = next.replicas.iter_mut().find(|r| r.replica_id == *id) else {
                return Err(KvError::invalid(format!(
                    "r{}: no replica {id}",
                    self.range_id
                )));
            };
            if r.kind != ReplicaType::Learner {
                return Err(KvError::invalid(format!(
                    "r{}: replica {id} is not a learner",
                    self.range_id
                )));
            }
            r.kind = ReplicaType::VoterIncoming;
            changes.push(single(ConfChangeType::AddNode, *id));
        }
        for id in remove {
            if *id == lease_holder || *id == self.replica_id {
                return Err(KvError::invalid(format!(
                    "r{}: refusing to remove the leaseholder's replica {id}",
                    self.range_id
                )));
            }
            let Some(r) = next.replicas.iter_mut().find(|r| r.replica_id == *id) else {
                return Err(KvError::invalid(format!(
                    "r{}: no replica {id}",
                    self.range_id
                )));
            };
            if r.kind == ReplicaType::Learner {
                // A learner leaves without an outgoing role: drop it here.
                next.replicas.retain(|x| x.replica_id != *id);
            } else {
                r.kind = ReplicaType::VoterOutgoing;
            }
            changes.push(single(ConfChangeType::RemoveNode, *id));
        }
        if changes.is_empty() {
            return Ok(cur);
        }
        let mut cc = ConfChangeV2::default();
        cc.set_transition(ConfChangeTransition::Explicit);
        cc.set_changes(changes.into());
        let joint = self.change_step(&cur, next, cc).await?;
        if !is_joint(&joint) {
            return Ok(joint);
        }
        self.leave_joint().await
    }

    /// Leaves a joint configuration: incoming voters become voters, outgoing
    /// ones are removed.
    pub async fn leave_joint(&self) -> Result<RangeDescriptor, KvError> {
        let cur = self.change_precondition().await?;
        if !is_joint(&cur) {
            return Ok(cur);
        }
        let mut next = cur.clone();
        next.replicas
            .retain(|r| r.kind != ReplicaType::VoterOutgoing);
        for r in &mut next.replicas {
            if r.kind == ReplicaType::VoterIncoming {
                r.kind = ReplicaType::Voter;
            }
        }
        self.change_step(&cur, next, ConfChangeV2::default()).await
    }

    /// Removes a learner (a simple change).
    pub async fn remove_learner(&self, id: ReplicaId) -> Result<RangeDescriptor, KvError> {
        let cur = self.change_precondition().await?;
        if !cur
            .replicas
            .iter()
            .any(|r| r.replica_id == id && r.kind == ReplicaType::Learner)
        {
            return Ok(cur);
        }
        let mut next = cur.clone();
        next.replicas.retain(|r| r.replica_id != id);
        let mut cc = ConfChangeV2::default();
        cc.set_changes(vec![single(ConfChangeType::RemoveNode, id)].into());
        self.change_step(&cur, next, cc).await
    }

    /// Adds a voter on `(node, store)` — learner, snapshot, catch-up, joint
    /// promotion — removing `replace` (a voter) in the same joint step if
    /// given. A learner that fails to catch up is removed again.
    pub async fn add_voter(
        &self,
        node_id: NodeId,
        store_id: StoreId,
        replace: Option<ReplicaId>,
    ) -> Result<RangeDescriptor, KvError> {
        let (_, id) = self.add_learner(node_id, store_id).await?;
        if let Err(e) = self.wait_caught_up(id, CATCH_UP_TIMEOUT).await {
            let _ = self.remove_learner(id).await;
            return Err(e);
        }
        let remove: Vec<ReplicaId> = replace.into_iter().collect();
        self.promote_and_remove(&[id], &remove).await
    }

    /// Removes voter `id` through a joint configuration.
    pub async fn remove_voter(&self, id: ReplicaId) -> Result<RangeDescriptor, KvError> {
        self.promote_and_remove(&[], &[id]).await
    }

    /// Rewrites the meta records (meta2, and meta1 for the range holding the
    /// meta span) in one internal transaction anchored on the range, through
    /// the store's cluster sender. Retried a few times; false if it did not
    /// succeed (the replicate queue tries again on its next passes).
    /// Meanwhile DistSender copes with a stale record: removed replicas
    /// answer `RangeNotFound`, and hints name the leaseholder even where the
    /// record does not list it.
    ///
    /// TODO(issue 3): make this the change itself — a transaction that
    /// CPuts the descriptor and puts the meta records, committing with
    /// `CommitTrigger::ChangeReplicas` whose application proposes the
    /// `ConfChangeV2` — so meta changes atomically with the configuration.
    pub async fn update_meta_records(&self, desc: &RangeDescriptor) -> bool {
        let Ok(store) = self.store_handle() else {
            return false;
        };
        let mut keys_to_write = Vec::new();
        let meta2 = keys::range_meta_key(&desc.end_key);
        if !meta2.is_empty() {
            keys_to_write.push(meta2);
        }
        if desc.start_key.is_empty() {
            // The range holding the meta span (it always starts at /Min,
            // see `split.rs`): its meta1 record.
            keys_to_write.push(keys::meta1_key(keys::MAX_KEY));
        }
        let value = desc.encode();
        for attempt in 0..3 {
            // Anchored on a global key of the range (`/Min` is not one).
            let anchor = if desc.start_key.is_empty() {
                keys::META1_PREFIX.to_vec()
            } else {
                desc.start_key.clone()
            };
            let mut txn = InternalTxn::new(&store, anchor, "change-replicas-meta");
            // Bounded: the replicate queue waits for this, for all of the
            // store's ranges (the queue retries a failed rewrite later).
            let write = write_meta(&mut txn, &keys_to_write, &value, desc.generation);
            let res = match tokio::time::timeout(META_ATTEMPT_TIMEOUT, write).await {
                Ok(r) => r,
                Err(_) => Err(unavailable(format!(
                    "r{}: meta records not written within {META_ATTEMPT_TIMEOUT:?}",
                    desc.range_id
                ))),
            };
            if res.is_err() {
                // Leave no intents on the meta records behind.
                let _ = tokio::time::timeout(META_ATTEMPT_TIMEOUT, txn.rollback()).await;
            }
            match res {
                Ok(()) => return true,
                Err(e) => {
                    tracing::debug!(range_id = desc.range_id, attempt, error = %e, "meta records not updated");
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
            }
        }
        false
    }
}

/// How long one attempt at rewriting a range's meta records may take.
const META_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes `value` (a descriptor of generation `generation`) to the meta
/// records `keys` in `txn` and commits.
async fn write_meta(
    txn: &mut InternalTxn<'_>,
    keys: &[Vec<u8>],
    value: &[u8],
    generation: u64,
) -> Result<(), KvError> {
    for k in keys {
        // Never over a newer descriptor: a split (or another change) may
        // have rewritten the record since this change applied; a stale
        // record would misroute its keys for good.
        let cur = txn.get(k).await?;
        if cur.is_some_and(|c| RangeDescriptor::decode(&c).is_ok_and(|c| c.generation > generation))
        {
            continue;
        }
        txn.put(k, value).await?;
    }
    txn.commit(None).await
}
