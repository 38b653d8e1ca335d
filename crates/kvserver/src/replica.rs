//! A replica: one range's data on this store, its Raft group and its lease,
//! and the machinery that lets many requests run on it at once.
//!
//! The path of a batch on the leaseholder: check the lease (acquiring it
//! through Raft if this replica is the Raft leader and the lease is free) →
//! acquire latches → forward write timestamps above the timestamp cache →
//! evaluate against a snapshot into a write batch → if it wrote anything,
//! propose the writes as a [`Command`] through Raft and wait until this
//! replica has applied it → record reads in the timestamp cache and wake
//! waiters → release latches. Reads are served from the local engine under
//! the lease, without a consensus round. A batch that meets intents drops
//! its latches, joins the key's wait queue in the lock table and pushes the
//! holder; once the push succeeds it resolves the intent and evaluates again.
//!
//! Every replica applies committed commands in log order (driven by the
//! store's scheduler, [`crate::scheduler`]); a command evaluated under a lease
//! that is no longer current when it applies is rejected as a no-op and its
//! proposer answers `NotLeaseholder`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
// Tokio's clock: real time, except under a simulation's paused runtime.
use tokio::time::Instant;

use parking_lot::{Mutex, RwLock};
use protobuf::Message as _;
use raft::eraftpb::{ConfChangeV2, Entry, EntryType, Message, MessageType};
use raft::{RawNode, StateRole};
use tardigrade_encoding::keys;
use tardigrade_hlc::{Hlc, Timestamp};
use tardigrade_kvpb::{
    AbortReason, BatchRequest, BatchResponse, BatchResult, ErrorDetail, Header, IntentInfo,
    KvError, Lease, PushType, RangeDescriptor, Request, Response, Span, Transaction,
    TransactionStatus, TxnMeta,
};
use tardigrade_storage::batch::WriteSet;
use tardigrade_storage::{Batch, Engine, EngineError, MvccStats, Space};
use tokio::sync::oneshot;

use crate::command::{AppliedState, Command, Trigger};
use crate::eval::{self, EvalContext, EvalError, EvalResult};
use crate::latch::{Access, LatchManager, LatchSpan};
use crate::lock_table::LockTable;
use crate::raft_storage::{self, LogState, RaftStorage};
use crate::store::{Store, StoreConfig};
use crate::tscache::TimestampCache;
use crate::txnrecord;
use crate::txnwait::{self, TxnWaitQueue};

/// How often a waiting pusher re-checks its own status and looks for deadlocks.
const PUSH_POLL: Duration = Duration::from_millis(50);
/// How long a waiting pusher's query of its own record may take.
const PUSHER_QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// A replica's Raft group and scheduling state. Locked by request tasks to
/// propose and by the scheduler to step, tick and collect Ready.
pub(crate) struct RaftGroup {
    pub node: RawNode<RaftStorage>,
    /// Not ticking: the leader found every follower caught up and nothing
    /// pending. Woken by any request or inbound message.
    pub quiesced: bool,
    /// Set if this replica hit an unrecoverable error (corrupt snapshot or
    /// entry storage); it is no longer scheduled.
    pub broken: bool,
}

/// The replicated state as of the last applied command.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReplicaState {
    pub desc: RangeDescriptor,
    pub lease: Lease,
    pub applied: AppliedState,
    /// Reads and writes at or below it are refused: MVCC GC may have
    /// removed the versions they would see ([`crate::gc_queue`]).
    pub gc_threshold: Timestamp,
}

struct PendingProposal {
    id: u64,
    data: Vec<u8>,
    /// A replica change: proposed as a `ConfChangeV2` entry whose context
    /// is `data` (the command carrying `Trigger::ChangeReplicas`).
    conf_change: Option<ConfChangeV2>,
    tx: oneshot::Sender<Result<(), KvError>>,
}

struct Proposal {
    /// The log index it was appended at when proposed on the leader (0 if
    /// unknown): an entry with another command at this index means it was
    /// dropped.
    index: u64,
    tx: oneshot::Sender<Result<(), KvError>>,
}

/// What applying a round of committed entries will change, installed once
/// the write batch is committed.
pub(crate) struct StagedApply {
    state: ReplicaState,
    results: Vec<(u64, Result<(), KvError>)>,
    acquired_lease_start: Option<Timestamp>,
    /// Replica changes accepted in this round, to hand to raft-rs
    /// (`apply_conf_change`) once the batch is committed.
    pub conf_changes: Vec<ConfChangeV2>,
    /// A split applied in this round: the right-hand range to create.
    pub(crate) split: Option<crate::split::SplitApply>,
    pub changed: bool,
}

pub struct Replica {
    pub range_id: u64,
    pub replica_id: u64,
    /// `[start, end)`: changed by splits (TODO(issue 3): merges).
    bounds: RwLock<(Vec<u8>, Vec<u8>)>,
    engine: Engine,
    clock: Arc<Hlc>,
    store: Weak<Store>,
    cfg: StoreConfig,
    latches: LatchManager,
    lock_table: LockTable,
    tscache: TimestampCache,
    txn_wait: TxnWaitQueue,
    pub(crate) raft: Mutex<RaftGroup>,
    pub(crate) log_state: Arc<RwLock<LogState>>,
    pub(crate) state: Mutex<ReplicaState>,
    proposals: Mutex<HashMap<u64, Proposal>>,
    /// Proposals not yet handed to Raft.
    pending: Mutex<Vec<PendingProposal>>,
    /// One lease request at a time.
    lease_mu: tokio::sync::Mutex<()>,
    extending: AtomicBool,
    /// A lease this replica is transferring away (see
    /// [`Replica::transfer_lease`]): while it is still the current lease,
    /// the replica serves nothing under it.
    transferring: Mutex<Option<(Lease, u64)>>,
    /// Uninitialized replicas: the node of each peer that sent a message
    /// (the descriptor that would say it is not known yet).
    pub(crate) peer_nodes: Mutex<HashMap<u64, u64>>,
    /// Consistency-check digests computed here, and the fence a diverged
    /// replica gets (`consistency.rs`).
    pub(crate) consistency: crate::consistency::ReplicaConsistency,
}

fn corrupt(e: impl std::fmt::Display) -> EngineError {
    EngineError::Corrupt(e.to_string())
}

impl StagedApply {
    pub fn applied_index(&self) -> u64 {
        self.state.applied.raft_applied_index
    }

    pub(crate) fn state_mut(&mut self) -> &mut ReplicaState {
        &mut self.state
    }
}

impl Replica {
    /// Loads the replica of `desc` on this store from the engine.
    pub(crate) fn load(
        desc: RangeDescriptor,
        engine: Engine,
        clock: Arc<Hlc>,
        store: Weak<Store>,
        cfg: StoreConfig,
    ) -> Result<Replica, EngineError> {
        let range_id = desc.range_id;
        let replica_id = desc
            .replica_on_store(cfg.store_id)
            .map(|r| r.replica_id)
            .ok_or_else(|| corrupt(format!("r{range_id} has no replica on s{}", cfg.store_id)))?;
        Replica::open(desc, replica_id, engine, clock, store, cfg)
    }

    /// A replica created by its Raft group (a message for a range this store
    /// does not hold yet): no bounds, no data, an empty configuration. It
    /// serves nothing until a snapshot initializes it, after which the store
    /// reloads it from the engine ([`Replica::is_initialized`]).
    pub(crate) fn uninitialized(
        range_id: u64,
        replica_id: u64,
        engine: Engine,
        clock: Arc<Hlc>,
        store: Weak<Store>,
        cfg: StoreConfig,
    ) -> Result<Replica, EngineError> {
        let desc = RangeDescriptor {
            range_id,
            ..RangeDescriptor::default()
        };
        Replica::open(desc, replica_id, engine, clock, store, cfg)
    }

    /// Whether the replica holds the range's state (it has a descriptor).
    pub fn is_initialized(&self) -> bool {
        !self.state.lock().desc.replicas.is_empty()
    }

    /// The right-hand replica of a split, from the state the split wrote:
    /// its timestamp cache starts at `low_water` (the left-hand side's reads
    /// over its span), and it campaigns only as the range's only voter (the
    /// leaseholder's store campaigns once the split returns).
    pub(crate) fn load_split(
        desc: RangeDescriptor,
        replica_id: u64,
        engine: Engine,
        clock: Arc<Hlc>,
        store: Weak<Store>,
        cfg: StoreConfig,
        low_water: Timestamp,
    ) -> Result<Replica, EngineError> {
        Replica::open_with(desc, replica_id, engine, clock, store, cfg, Some(low_water))
    }

    fn open(
        desc: RangeDescriptor,
        replica_id: u64,
        engine: Engine,
        clock: Arc<Hlc>,
        store: Weak<Store>,
        cfg: StoreConfig,
    ) -> Result<Replica, EngineError> {
        Replica::open_with(desc, replica_id, engine, clock, store, cfg, None)
    }

    fn open_with(
        desc: RangeDescriptor,
        replica_id: u64,
        engine: Engine,
        clock: Arc<Hlc>,
        store: Weak<Store>,
        cfg: StoreConfig,
        split_low_water: Option<Timestamp>,
    ) -> Result<Replica, EngineError> {
        let range_id = desc.range_id;
        let consistency = match crate::consistency::recorded_fence(&engine, range_id, replica_id)? {
            Some(reason) => {
                tracing::error!(
                    range_id,
                    replica_id,
                    "this replica was fenced before the restart (it diverged from its range): it serves nothing: {reason}"
                );
                crate::consistency::ReplicaConsistency::fenced_since_before(reason)
            }
            None => Default::default(),
        };
        let applied = raft_storage::read(
            &engine,
            &keys::range_applied_state_key(range_id),
            AppliedState::decode,
        )?
        .unwrap_or_default();
        let lease = raft_storage::read(&engine, &keys::range_lease_key(range_id), |b| {
            Lease::decode(b).map_err(|e| crate::command::DecodeError(e.to_string()))
        })?
        .unwrap_or_default();
        let gc_threshold =
            raft_storage::read(&engine, &keys::range_gc_threshold_key(range_id), |b| {
                crate::gc_queue::decode_threshold(b)
                    .map_err(|e| crate::command::DecodeError(e.to_string()))
            })?
            .unwrap_or_default();
        let storage = RaftStorage::load(&engine, &desc)?;
        let log_state = storage.state().clone();
        {
            // Applied (in the engine's journal) can run ahead of a commit
            // index that was not yet persisted when the process stopped.
            let mut st = log_state.write();
            if applied.raft_applied_index > st.hard_state.commit {
                st.hard_state.commit = applied.raft_applied_index;
            }
            if applied.raft_applied_index > st.last_index {
                return Err(corrupt(format!(
                    "r{range_id}: applied index {} beyond the log ({})",
                    applied.raft_applied_index, st.last_index
                )));
            }
        }
        let config = raft::Config {
            id: replica_id,
            election_tick: cfg.raft_election_ticks,
            // Campaign no sooner than two ticks past the timeout after which
            // the others stop vouching for a silent leader (check-quorum),
            // so that ticks out of phase across nodes do not get a
            // pre-vote refused and cost a whole extra timeout.
            min_election_tick: cfg.raft_election_ticks + 2,
            max_election_tick: if cfg.testing_simulated {
                cfg.raft_election_ticks + 3
            } else {
                (2 * cfg.raft_election_ticks).max(cfg.raft_election_ticks + 3)
            },
            heartbeat_tick: cfg.raft_heartbeat_ticks,
            applied: applied.raft_applied_index,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut node = RawNode::new(&config, storage, &logger).map_err(corrupt)?;
        // Campaign at once where waiting for an election timeout buys
        // nothing: the only voter, or the first voter of a fresh group.
        let voters: Vec<u64> = desc.voters().map(|r| r.replica_id).collect();
        let fresh = {
            let st = log_state.read();
            st.hard_state.term == raft_storage::RAFT_INITIAL_TERM && st.hard_state.vote == 0
        };
        let first_voter = split_low_water.is_none() && fresh;
        if voters == [replica_id] || (first_voter && voters.iter().min() == Some(&replica_id)) {
            let _ = node.campaign();
        }
        let low_water = match split_low_water {
            Some(ts) => ts,
            None => {
                // No read served before this replica existed can be undercut:
                // start the timestamp cache at the present plus the maximum
                // clock offset.
                // (Relative to physical time: see `physical_plus_offset`.)
                let mut low_water = physical_plus_offset(&clock);
                low_water.forward(clock.now());
                // And move our own clock there, so that reads this node
                // timestamps are never below a write it had to push above
                // the low-water mark. (Within the maximum offset by
                // construction, so it cannot fail.)
                let _ = clock.update(low_water);
                low_water
            }
        };
        Ok(Replica {
            range_id,
            replica_id,
            bounds: RwLock::new((desc.start_key.clone(), desc.end_key.clone())),
            engine,
            clock,
            store,
            cfg,
            latches: LatchManager::default(),
            lock_table: LockTable::default(),
            tscache: TimestampCache::new(low_water),
            txn_wait: TxnWaitQueue::default(),
            raft: Mutex::new(RaftGroup {
                node,
                quiesced: false,
                broken: false,
            }),
            log_state,
            state: Mutex::new(ReplicaState {
                desc,
                lease,
                applied,
                gc_threshold,
            }),
            proposals: Mutex::default(),
            pending: Mutex::default(),
            lease_mu: tokio::sync::Mutex::new(()),
            extending: AtomicBool::new(false),
            transferring: Mutex::new(None),
            peer_nodes: Mutex::default(),
            consistency,
        })
    }

    pub fn stats(&self) -> MvccStats {
        self.state.lock().applied.stats
    }

    pub fn desc(&self) -> RangeDescriptor {
        self.state.lock().desc.clone()
    }

    /// The range's GC threshold (versions at or below it may be gone).
    pub fn gc_threshold(&self) -> Timestamp {
        self.state.lock().gc_threshold
    }

    pub fn lease(&self) -> Lease {
        self.state.lock().lease
    }

    pub fn applied_index(&self) -> u64 {
        self.state.lock().applied.raft_applied_index
    }

    /// Whether this replica is its group's Raft leader.
    pub fn is_raft_leader(&self) -> bool {
        self.raft.lock().node.raft.state == StateRole::Leader
    }

    pub fn is_quiesced(&self) -> bool {
        self.raft.lock().quiesced
    }

    /// The Raft group's state as this replica sees it, for debugging:
    /// role, term, leader, commit and applied indexes, quiescence.
    pub fn raft_status(&self) -> String {
        let g = self.raft.lock();
        let r = &g.node.raft;
        format!(
            "{:?} term {} leader {} commit {} applied {}{}{}",
            r.state,
            r.term,
            r.leader_id,
            r.raft_log.committed,
            r.raft_log.applied,
            if g.quiesced { " quiesced" } else { "" },
            if g.broken { " broken" } else { "" },
        )
    }

    /// The first log index still stored.
    pub fn first_log_index(&self) -> u64 {
        self.log_state.read().truncated_index + 1
    }

    pub(crate) fn clock_now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn store_handle(&self) -> Result<Arc<Store>, KvError> {
        self.store()
    }

    fn store(&self) -> Result<Arc<Store>, KvError> {
        self.store
            .upgrade()
            .ok_or_else(|| KvError::new(ErrorDetail::Unavailable("store is shutting down".into())))
    }

    /// The first key of the range.
    pub fn start_key(&self) -> Vec<u8> {
        self.bounds.read().0.clone()
    }

    /// The end (exclusive) of the range.
    pub fn end_key(&self) -> Vec<u8> {
        self.bounds.read().1.clone()
    }

    /// Whether the global key `key` lies in the range.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        let b = self.bounds.read();
        b.0.as_slice() <= key && key < b.1.as_slice()
    }

    /// Whether the global span `[key, end)` (a point if `end` is empty) lies in the range.
    pub fn contains_span(&self, key: &[u8], end: &[u8]) -> bool {
        let b = self.bounds.read();
        b.0.as_slice() <= key
            && if end.is_empty() {
                key < b.1.as_slice()
            } else {
                end <= b.1.as_slice()
            }
    }

    /// `RangeKeyMismatch` unless every request of `ba` lies in the range
    /// (checked again under latches: a split may have shrunk it).
    fn check_bounds(&self, ba: &BatchRequest) -> Result<(), KvError> {
        for req in &ba.requests {
            let s = req.span(&ba.header);
            let key = keys::addr(&s.key).unwrap_or(s.key);
            let end_key = if s.end_key.is_empty() {
                s.end_key
            } else {
                keys::addr(&s.end_key).unwrap_or(s.end_key)
            };
            if !self.contains_span(&key, &end_key) {
                return Err(KvError::new(ErrorDetail::RangeKeyMismatch {
                    span: Span { key, end_key },
                    range_id: self.range_id,
                }));
            }
        }
        Ok(())
    }

    pub(crate) fn tscache(&self) -> &TimestampCache {
        &self.tscache
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn store_config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Whether the replica knows its group's leader.
    pub(crate) fn has_leader(&self) -> bool {
        self.raft.lock().node.raft.leader_id != 0
    }

    /// Campaigns if the group has no leader (a range created by a split).
    pub(crate) fn campaign_if_leaderless(&self) {
        let woke = {
            let mut g = self.raft.lock();
            if g.broken || g.node.raft.leader_id != 0 {
                return;
            }
            let _ = g.node.campaign();
            g.quiesced = false;
            true
        };
        if woke && let Ok(s) = self.store() {
            s.wake(self.range_id);
        }
    }

    fn ctx(&self, force_push: bool) -> EvalContext {
        let (start_key, end_key) = self.bounds.read().clone();
        EvalContext {
            start_key,
            end_key,
            now: self.clock.now(),
            force_push,
            lease_node: 0,
            lease_start: Timestamp::ZERO,
        }
    }

    /// Whether `lease` (this replica's) was taken by the store's previous
    /// run ([`Store::opened_at`]).
    fn taken_before_restart(&self, lease: &Lease) -> bool {
        self.store
            .upgrade()
            .is_some_and(|s| lease.start < s.opened_at())
    }

    fn not_leaseholder(&self, node: u64) -> KvError {
        KvError::new(ErrorDetail::NotLeaseholder {
            range_id: self.range_id,
            leaseholder_node: node,
        })
    }

    fn node_of(&self, replica_id: u64) -> u64 {
        self.state
            .lock()
            .desc
            .replica(replica_id)
            .map_or(0, |r| r.node_id)
    }

    /// If this replica is a quiesced follower whose leader is on one of
    /// `nodes`, wakes it and forgets that leader (so that it votes for
    /// whichever survivor campaigns first). Returns whether it woke.
    pub(crate) fn wake_if_leader_on(&self, nodes: &[u64]) -> bool {
        let quiesced_leader = |g: &RaftGroup| {
            let raft = &g.node.raft;
            (g.quiesced
                && !g.broken
                && raft.state == StateRole::Follower
                && raft.leader_id != raft::INVALID_ID)
                .then_some(raft.leader_id)
        };
        // The descriptor is read without the Raft lock held.
        let Some(leader) = quiesced_leader(&self.raft.lock()) else {
            return false;
        };
        if !nodes.contains(&self.node_of(leader)) {
            return false;
        }
        let mut g = self.raft.lock();
        if quiesced_leader(&g) != Some(leader) {
            return false;
        }
        g.quiesced = false;
        g.node.raft.leader_id = raft::INVALID_ID;
        true
    }

    /// Wakes a quiesced group and returns (is leader, leader's replica id).
    /// A follower woken this way wakes the leader too (a quiesced leader
    /// sends no heartbeats; without them this follower would campaign),
    /// and stops vouching for it until it hears from it again: if the
    /// leader is dead, the first follower to campaign gets this one's vote
    /// at once (check-quorum would otherwise refuse it for a full election
    /// timeout after the wake-up).
    fn wake_and_leader(&self) -> (bool, u64) {
        let (leader, id, woke) = {
            let mut g = self.raft.lock();
            let woke = std::mem::replace(&mut g.quiesced, false);
            let raft = &mut g.node.raft;
            if woke && raft.state == StateRole::Follower && raft.leader_id != raft::INVALID_ID {
                // Any message wakes a quiesced replica; a heartbeat response
                // changes nothing else on the leader.
                let mut m = Message::default();
                m.set_msg_type(MessageType::MsgHeartbeatResponse);
                m.to = raft.leader_id;
                m.from = self.replica_id;
                m.term = raft.term;
                raft.msgs.push(m);
                (
                    false,
                    std::mem::replace(&mut raft.leader_id, raft::INVALID_ID),
                    true,
                )
            } else {
                (raft.state == StateRole::Leader, raft.leader_id, woke)
            }
        };
        if woke && let Ok(s) = self.store() {
            s.wake(self.range_id);
        }
        (leader, id)
    }

    /// Returns the lease this replica holds and that covers `ts`, acquiring
    /// or extending it through Raft if this replica is the leader; otherwise
    /// `NotLeaseholder` naming the holder (or the leader, or 0).
    pub(crate) async fn ensure_lease(&self, ts: Timestamp) -> Result<Lease, KvError> {
        let give_up = Instant::now()
            + self.cfg.raft_tick_interval * (self.cfg.raft_election_ticks as u32) * 2;
        let lease_give_up = Instant::now() + self.cfg.proposal_timeout;
        // A replica found diverged serves nothing and takes no lease.
        self.consistency.check_not_fenced(self.range_id)?;
        loop {
            let now = self.clock.now();
            let lease = self.state.lock().lease;
            let mine = lease.replica.replica_id == self.replica_id;
            let from_before_restart = mine && self.taken_before_restart(&lease);
            if mine
                && let Some((l, target_node)) = *self.transferring.lock()
                && l == lease
            {
                return Err(self.not_leaseholder(target_node));
            }
            if mine && let Some(jump) = self.clock.backward_jump() {
                // This node's clock jumped back beyond the maximum offset:
                // its lease's end, read on that clock, may be past for the
                // others. Serve nothing; clients go to the other replicas
                // (the node stops itself: see `server::heartbeat`).
                tracing::error!(
                    range_id = self.range_id,
                    "refusing to serve: this node's clock jumped back by {} ms, more than the maximum offset",
                    jump.as_millis()
                );
                return Err(self.not_leaseholder(0));
            }
            if mine && !from_before_restart && lease.usable(now, ts, self.clock.max_offset()) {
                self.maybe_extend(&lease, now);
                return Ok(lease);
            }
            if mine && self.cfg.testing_unsafe_reads_past_lease {
                // Deliberately broken (tests only): keep serving on a lease
                // that has run out, as a node cut off from its peers would
                // if leases were not checked. The checkers must notice.
                return Ok(lease);
            }
            if !mine && lease.replica.replica_id != 0 && now < lease.expiration {
                // Clients come to a follower when the holder did not answer:
                // a quiesced follower must tick again to notice if the
                // leader is gone and campaign once the lease runs out.
                self.wake_and_leader();
                return Err(self.not_leaseholder(lease.replica.node_id));
            }
            let (leader, leader_id) = self.wake_and_leader();
            if !leader {
                if leader_id != 0 || Instant::now() >= give_up {
                    return Err(self.not_leaseholder(self.node_of(leader_id)));
                }
                // An election is under way: wait for its outcome.
                tokio::time::sleep(self.cfg.raft_tick_interval / 2).await;
                continue;
            }
            // A lease that applied already expired (a starved machine took
            // longer to apply it than it lasted) is proposed again, lasting
            // longer: the store measured how slow that proposal was.
            if Instant::now() >= lease_give_up {
                return Err(self.not_leaseholder(0));
            }
            self.request_lease(Some(ts)).await?;
        }
    }

    /// How long a lease proposed now should last: the configured duration,
    /// or longer while this store's proposals are slow to apply
    /// ([`crate::lease_duration`]).
    fn lease_duration(&self) -> Duration {
        self.store
            .upgrade()
            .map_or(self.cfg.lease_duration, |s| s.lease_durations().current())
    }

    /// Extends our lease in the background once it is in its second half.
    fn maybe_extend(&self, lease: &Lease, now: Timestamp) {
        let half = (self.lease_duration() / 2).as_nanos() as i64;
        if lease.expiration.wall - now.wall > half || self.extending.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(me) = self.store.upgrade().and_then(|s| s.replica(self.range_id)) else {
            self.extending.store(false, Ordering::Release);
            return;
        };
        tokio::spawn(async move {
            if me.is_raft_leader() {
                let _ = me.request_lease(None).await;
            }
            me.extending.store(false, Ordering::Release);
        });
    }

    /// Transfers this replica's lease to voter `target` and then Raft
    /// leadership (leases follow the leader). The new lease starts at this
    /// node's clock once it has stopped serving under the old lease: every
    /// timestamp it served was folded into its clock before the lease
    /// check, so the start is above all of them; the new holder moves its
    /// clock and timestamp cache there when the lease applies. From the
    /// proposal on, this replica serves nothing under the old lease; if the
    /// transfer fails it stays that way until that lease expires or is
    /// replaced (the proposal may still apply).
    pub async fn transfer_lease(&self, target: u64) -> Result<(), KvError> {
        let _one = self.lease_mu.lock().await;
        let now = self.clock.now();
        let (prev, to) = {
            let st = self.state.lock();
            (st.lease, st.desc.replica(target).copied())
        };
        let Some(to) = to.filter(|r| r.kind == tardigrade_kvpb::ReplicaType::Voter) else {
            return Err(KvError::invalid(format!(
                "r{}: replica {target} is not a voter",
                self.range_id
            )));
        };
        if prev.replica.replica_id != self.replica_id || !prev.covers(now, now) {
            return Err(self.not_leaseholder(prev.replica.node_id));
        }
        if target == self.replica_id {
            return Ok(());
        }
        *self.transferring.lock() = Some((prev, to.node_id));
        // Read after the flag is set: a request that passed the lease check
        // before it had its timestamp in the clock already. Not the clock
        // plus the maximum offset: the new holder moves its clock to the
        // start, and repeated transfers would ratchet clocks beyond what
        // peers accept (`ClockOffset`).
        let mut start = self.clock.now();
        start.forward(prev.start);
        let new = Lease {
            replica: to,
            start,
            expiration: start.add_duration(self.lease_duration()),
            sequence: prev.sequence + 1,
        };
        let cmd = Command {
            id: rand::random(),
            proposer: self.replica_id,
            lease_sequence: prev.sequence,
            writes: WriteSet::default(),
            stats: MvccStats::default(),
            trigger: Some(Trigger::Lease { prev, new }),
        };
        self.propose_and_wait(cmd, true).await?;
        if self.state.lock().lease != new {
            return Err(self.not_leaseholder(0));
        }
        self.raft.lock().node.transfer_leader(target);
        if let Ok(s) = self.store() {
            s.wake(self.range_id);
        }
        Ok(())
    }

    /// Proposes a new lease for this replica (or an extension of ours) and
    /// waits for it to apply. With `ts`, returns early if the lease already
    /// covers it; without, if it is not in its second half.
    async fn request_lease(&self, ts: Option<Timestamp>) -> Result<(), KvError> {
        let _one = self.lease_mu.lock().await;
        let now = self.clock.now();
        let (prev, me) = {
            let st = self.state.lock();
            (st.lease, st.desc.replica(self.replica_id).copied())
        };
        let Some(me) = me else {
            return Err(self.not_leaseholder(0));
        };
        let mine = prev.replica.replica_id == self.replica_id;
        let from_before_restart = mine && self.taken_before_restart(&prev);
        let duration = self.lease_duration();
        let half = (duration / 2).as_nanos() as i64;
        match ts {
            Some(ts)
                if mine
                    && !from_before_restart
                    && prev.usable(now, ts, self.clock.max_offset()) =>
            {
                return Ok(());
            }
            // A background extension: never of a lease from before a
            // restart (a request takes a new one).
            None if !mine || from_before_restart || prev.expiration.wall - now.wall > half => {
                return Ok(());
            }
            _ => {}
        }
        if !mine && prev.replica.replica_id != 0 && now < prev.expiration {
            return Err(self.not_leaseholder(prev.replica.node_id));
        }
        let new = if from_before_restart {
            // Our own lease, from before the restart: a new one (new
            // sequence) from this run's start on; nobody else can hold the
            // range meanwhile.
            let mut start = now;
            start.forward(self.store()?.opened_at());
            Lease {
                replica: me,
                start,
                expiration: start.add_duration(duration),
                sequence: prev.sequence + 1,
            }
        } else if mine && now < prev.expiration {
            Lease {
                replica: me,
                start: prev.start,
                expiration: now.add_duration(duration),
                sequence: prev.sequence,
            }
        } else {
            // Never below a timestamp the previous lease could have served.
            let mut start = now;
            start.forward(prev.expiration);
            Lease {
                replica: me,
                start,
                expiration: start.add_duration(duration),
                sequence: prev.sequence + 1,
            }
        };
        let cmd = Command {
            id: rand::random(),
            proposer: self.replica_id,
            lease_sequence: prev.sequence,
            writes: WriteSet::default(),
            stats: MvccStats::default(),
            trigger: Some(Trigger::Lease { prev, new }),
        };
        self.propose_and_wait(cmd, true).await
    }

    /// Proposes `cmd` and waits until this replica applied it (or rejected
    /// it). A lease request gives up as soon as this replica is no longer the
    /// leader; a write waits up to the proposal timeout, after which its
    /// outcome is unknown.
    pub(crate) async fn propose_and_wait(
        &self,
        cmd: Command,
        is_lease: bool,
    ) -> Result<(), KvError> {
        self.propose_inner(cmd, is_lease, None).await
    }

    /// Proposes a replica change: `cc` as a `ConfChangeV2` entry carrying
    /// `cmd` (with its `Trigger::ChangeReplicas`) as context; waits until it
    /// applied here, or was rejected (`NotLeaseholder`).
    pub(crate) async fn propose_conf_change(
        &self,
        cmd: Command,
        cc: ConfChangeV2,
    ) -> Result<(), KvError> {
        self.propose_inner(cmd, true, Some(cc)).await
    }

    async fn propose_inner(
        &self,
        cmd: Command,
        is_lease: bool,
        conf_change: Option<ConfChangeV2>,
    ) -> Result<(), KvError> {
        let store = self.store()?;
        if !is_lease {
            self.await_transferred_leadership().await;
        }
        let (tx, mut rx) = oneshot::channel();
        let id = cmd.id;
        // The scheduler proposes it at the start of its next round: Raft's
        // log must not change between a Ready and its advance.
        self.raft.lock().quiesced = false;
        self.pending.lock().push(PendingProposal {
            id,
            data: cmd.encode(),
            conf_change,
            tx,
        });
        store.wake(self.range_id);
        let proposed_at = Instant::now();
        let metrics = store.metrics();
        metrics.raft_proposals.fetch_add(1, Ordering::Relaxed);
        let result = self.wait_proposal(id, is_lease, &mut rx).await;
        let elapsed = proposed_at.elapsed();
        match &result {
            Ok(()) => {
                metrics.raft_commit_latency.observe(elapsed);
                store.lease_durations().observe(elapsed);
            }
            Err(_) => {
                metrics
                    .raft_proposals_failed
                    .fetch_add(1, Ordering::Relaxed);
                // A proposal that timed out says proposals take at least
                // that long (one that failed fast says nothing).
                if elapsed >= self.cfg.lease_duration {
                    store.lease_durations().observe(elapsed);
                }
            }
        }
        result
    }

    /// A lease just transferred to this replica arrives before Raft
    /// leadership does. Meanwhile a proposal would be forwarded to the old
    /// leader, which drops proposals while it transfers leadership
    /// (raft-rs), and nothing would tell this replica: the write would wait
    /// out the proposal timeout and answer `AmbiguousResult`. So while this
    /// replica holds a lease that started less than two election timeouts
    /// ago (a transfer: other leases are acquired by the leader) and does
    /// not lead, it waits for leadership, for two election timeouts at
    /// most: raft-rs aborts a transfer after one, and the leader then
    /// accepts forwarded proposals again.
    async fn await_transferred_leadership(&self) {
        let window = self.cfg.raft_tick_interval * (self.cfg.raft_election_ticks as u32) * 2;
        let window_ns = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX);
        let give_up = Instant::now() + window;
        loop {
            let lease = self.state.lock().lease;
            let fresh_transfer = lease.replica.replica_id == self.replica_id
                && self.clock.physical_now() < lease.start.wall.saturating_add(window_ns);
            let leader = self.raft.lock().node.raft.state == StateRole::Leader;
            if leader || !fresh_transfer || Instant::now() >= give_up {
                return;
            }
            if let Ok(s) = self.store() {
                s.wake(self.range_id);
            }
            tokio::time::sleep(self.cfg.raft_tick_interval / 2).await;
        }
    }

    /// Waits for the outcome of proposal `id` (see [`Replica::propose_inner`]).
    async fn wait_proposal(
        &self,
        id: u64,
        is_lease: bool,
        rx: &mut oneshot::Receiver<Result<(), KvError>>,
    ) -> Result<(), KvError> {
        let deadline = Instant::now() + self.cfg.proposal_timeout;
        loop {
            let step = if is_lease {
                self.cfg.raft_tick_interval
            } else {
                self.cfg.proposal_timeout
            };
            match tokio::time::timeout(step, &mut *rx).await {
                Ok(Ok(r)) => return r,
                Ok(Err(_)) => {
                    return Err(KvError::new(ErrorDetail::Unavailable(
                        "replica dropped the proposal".into(),
                    )));
                }
                Err(_) => {
                    let (leader, leader_id) = {
                        let g = self.raft.lock();
                        (
                            g.node.raft.state == StateRole::Leader,
                            g.node.raft.leader_id,
                        )
                    };
                    if (is_lease && !leader) || Instant::now() >= deadline {
                        self.proposals.lock().remove(&id);
                        self.pending.lock().retain(|p| p.id != id);
                        if is_lease {
                            return Err(self.not_leaseholder(self.node_of(leader_id)));
                        }
                        // It may still commit and apply: ambiguous.
                        return Err(KvError::new(ErrorDetail::AmbiguousResult(format!(
                            "proposal on r{} timed out after {:?}; it may or may not be applied",
                            self.range_id, self.cfg.proposal_timeout
                        ))));
                    }
                }
            }
        }
    }

    /// Executes a batch whose header timestamp is set.
    pub async fn send(&self, mut ba: BatchRequest) -> BatchResult {
        if let [Request::PushTxn { .. }] = ba.requests.as_slice() {
            return self.send_push(ba).await;
        }
        if let [Request::AdminSplit { split_key }] = ba.requests.as_slice() {
            let split_key = split_key.clone();
            return crate::split::admin_split(self, split_key, ba.header.timestamp).await;
        }
        let mut rejections = 0;
        loop {
            let lease = self.ensure_lease(batch_ts(&ba)).await?;
            let guard = self.latches.acquire(latch_spans(&ba)).await;
            // The wait may have been long (a hot key): the lease may have
            // moved, or reached its stasis period, meanwhile (reads are
            // served right after this, without consensus); keep it alive
            // for the command about to be proposed under it.
            let now = self.clock.now();
            // One lock for both: the lease to serve under, and the GC
            // threshold the batch must be above.
            let (current, gc_threshold) = {
                let st = self.state.lock();
                (st.lease, st.gc_threshold)
            };
            let usable = current.usable(now, batch_ts(&ba), self.clock.max_offset())
                || self.cfg.testing_unsafe_reads_past_lease;
            if current.replica != lease.replica || current.sequence != lease.sequence || !usable {
                drop(guard);
                continue;
            }
            let lease = current;
            self.maybe_extend(&lease, now);
            self.check_bounds(&ba)?;
            check_gc_threshold(&ba, gc_threshold)?;
            crate::split::check_trigger(&self.desc(), &ba)?;
            self.apply_timestamp_cache(&mut ba);
            if let Some(conflicts) = self.unreplicated_lock_conflicts(&ba) {
                drop(guard);
                self.handle_conflicts(&ba, conflicts).await?;
                continue;
            }
            let mut b = self.engine.batch();
            // Reads of a transaction use its observed timestamp for the
            // node holding this lease, raised to the lease's start.
            let ctx = EvalContext {
                lease_node: lease.replica.node_id,
                lease_start: lease.start,
                ..self.ctx(false)
            };
            let evaluated = eval::evaluate(&ctx, &mut b, &ba);
            match evaluated {
                Ok(mut res) => {
                    match self.apply(b, &res, lease.sequence).await {
                        Ok(()) => {}
                        // Rejected when it applied (so not applied): the
                        // lease changed while the command was in flight,
                        // typically one that lapsed on a slow machine and
                        // was taken again by this replica. Evaluate afresh
                        // under the current lease rather than fail a
                        // client that may have no one else to ask.
                        Err(e)
                            if matches!(e.detail, ErrorDetail::NotLeaseholder { .. })
                                && rejections < MAX_REEVALUATIONS =>
                        {
                            rejections += 1;
                            drop(guard);
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                    if let Some(t) = &ba.header.txn {
                        for key in &res.locked_keys {
                            self.lock_table.acquire(key, &t.meta);
                        }
                    }
                    drop(guard);
                    if let Some((txn, spans)) = res.remote_intents.take()
                        && let Ok(store) = self.store()
                    {
                        crate::intent_resolver::resolve_async(&store, txn, spans);
                    }
                    // A write may have gone in above the clock (pushed by the
                    // timestamp cache or a newer value); later reads that this
                    // node timestamps must see it.
                    if !res.max_write_ts.is_zero() {
                        let _ = self.clock.update(res.max_write_ts);
                    }
                    self.fill_query_responses(&ba, &mut res);
                    return Ok(BatchResponse {
                        now: self.clock.now(),
                        txn: res.txn,
                        responses: res.responses,
                    });
                }
                Err(EvalError::Intents(intents)) => {
                    drop(guard);
                    self.handle_conflicts(&ba, intents).await?;
                }
                Err(EvalError::PushFailed) => {
                    return Err(KvError::internal("push outside the push path"));
                }
                Err(EvalError::Kv(e)) => {
                    let mut e = *e;
                    if e.txn.is_none() {
                        e.txn = ba.header.txn.clone();
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Replicates the evaluated writes (if any) and waits until they are
    /// applied here, then applies the in-memory side effects.
    async fn apply(&self, b: Batch, res: &EvalResult, lease_sequence: u64) -> Result<(), KvError> {
        let writes = b.into_writes();
        if !writes.is_empty() || res.trigger.is_some() {
            let cmd = Command {
                id: rand::random(),
                proposer: self.replica_id,
                lease_sequence,
                writes,
                stats: res.stats,
                trigger: res.trigger.clone(),
            };
            self.propose_and_wait(cmd, false).await?;
        }
        for (span, ts, txn) in &res.reads {
            self.tscache.add(span, *ts, *txn);
        }
        for (key, holder, finalized) in &res.resolved_keys {
            self.lock_table.release_key(key, *holder, *finalized);
        }
        for txn in &res.finished_txns {
            self.lock_table.release_txn(*txn);
        }
        for txn in &res.updated_records {
            self.txn_wait.notify(*txn);
        }
        Ok(())
    }

    // ------------------------------------------------------------ application

    pub(crate) fn begin_apply(&self) -> StagedApply {
        StagedApply {
            state: self.state.lock().clone(),
            results: Vec::new(),
            acquired_lease_start: None,
            conf_changes: Vec::new(),
            split: None,
            changed: false,
        }
    }

    /// Applies committed `entries` (in log order) into `ws`.
    pub(crate) fn stage_entries(&self, entries: &[Entry], st: &mut StagedApply, ws: &mut WriteSet) {
        if entries.is_empty() {
            return;
        }
        let mine: HashSet<u64> = self.proposals.lock().keys().copied().collect();
        for e in entries {
            if e.index <= st.state.applied.raft_applied_index {
                continue;
            }
            st.changed = true;
            st.state.applied.raft_applied_index = e.index;
            if e.entry_type == EntryType::EntryConfChangeV2 {
                self.stage_conf_change(e, &mine, st, ws);
                continue;
            }
            if e.entry_type != EntryType::EntryNormal {
                tracing::warn!(
                    range_id = self.range_id,
                    "ignoring a version 1 configuration change entry"
                );
                continue;
            }
            if e.data.is_empty() {
                continue; // A new leader's empty entry.
            }
            let cmd = match Command::decode(&e.data) {
                Ok(c) => c,
                Err(err) => {
                    // Every replica decodes the same bytes: all skip it.
                    tracing::error!(range_id = self.range_id, index = e.index, error = %err, "skipping a malformed command");
                    continue;
                }
            };
            let lease = st.state.lease;
            let accepted = match &cmd.trigger {
                Some(Trigger::Lease { prev, new }) => {
                    let ok = *prev == lease;
                    if ok {
                        st.state.lease = *new;
                        ws.put(
                            Space::Raw,
                            &keys::range_lease_key(self.range_id),
                            &new.encode(),
                        );
                        if new.replica.replica_id == self.replica_id
                            && new.sequence != prev.sequence
                        {
                            st.acquired_lease_start = Some(new.start);
                        }
                    }
                    ok
                }
                Some(Trigger::Split { left, right }) => {
                    cmd.lease_sequence == lease.sequence
                        && lease.replica.replica_id == cmd.proposer
                        && crate::split::split_applies(&st.state.desc, left, right)
                }
                Some(Trigger::ComputeChecksum { .. }) | Some(Trigger::GcThreshold { .. }) => {
                    cmd.lease_sequence == lease.sequence && lease.replica.replica_id == cmd.proposer
                }
                Some(_) => {
                    // Replica changes travel as ConfChangeV2 entries
                    // (`stage_conf_change`). TODO(issue 3): merges.
                    false
                }
                None => {
                    cmd.lease_sequence == lease.sequence && lease.replica.replica_id == cmd.proposer
                }
            };
            if accepted {
                st.state.applied.lease_applied_index += 1;
                st.state.applied.stats.add(&cmd.stats);
                ws.extend(cmd.writes);
                if let Some(Trigger::Split { left, right }) = &cmd.trigger {
                    crate::split::stage_split(self, st, left, right, ws);
                }
                if let Some(Trigger::ComputeChecksum { id }) = &cmd.trigger {
                    crate::consistency::compute_at(self, *id, &st.state, ws);
                }
                if let Some(Trigger::GcThreshold { threshold }) = &cmd.trigger
                    && *threshold > st.state.gc_threshold
                {
                    st.state.gc_threshold = *threshold;
                    ws.put(
                        Space::Raw,
                        &keys::range_gc_threshold_key(self.range_id),
                        &crate::gc_queue::encode_threshold(*threshold),
                    );
                }
            }
            if mine.contains(&cmd.id) {
                let r = if accepted {
                    Ok(())
                } else {
                    let holder = st.state.lease.replica.node_id;
                    Err(self.not_leaseholder(holder))
                };
                st.results.push((cmd.id, r));
            }
        }
        if st.changed {
            ws.put(
                Space::Raw,
                &keys::range_applied_state_key(self.range_id),
                &st.state.applied.encode(),
            );
        }
    }

    /// A committed replica change: applies iff its descriptor is the
    /// successor (generation + 1) of the current one — a deterministic test,
    /// so every replica applies or skips the descriptor update and the Raft
    /// configuration change together.
    fn stage_conf_change(
        &self,
        e: &Entry,
        mine: &HashSet<u64>,
        st: &mut StagedApply,
        ws: &mut WriteSet,
    ) {
        let cc = ConfChangeV2::parse_from_bytes(&e.data);
        let cmd = Command::decode(&e.context);
        let (cc, cmd) = match (cc, cmd) {
            (Ok(cc), Ok(cmd)) => (cc, cmd),
            _ => {
                tracing::error!(
                    range_id = self.range_id,
                    index = e.index,
                    "skipping a malformed configuration change"
                );
                return;
            }
        };
        let accepted = match &cmd.trigger {
            Some(Trigger::ChangeReplicas { desc }) => {
                let ok = desc.range_id == self.range_id
                    && desc.generation == st.state.desc.generation + 1
                    && desc.start_key == st.state.desc.start_key
                    && desc.end_key == st.state.desc.end_key;
                if ok {
                    ws.put(
                        Space::Raw,
                        &keys::range_descriptor_key(&desc.start_key),
                        &desc.encode(),
                    );
                    ws.extend(cmd.writes.clone());
                    st.state.applied.stats.add(&cmd.stats);
                    st.state.desc = desc.clone();
                    st.conf_changes.push(cc);
                }
                ok
            }
            _ => false,
        };
        if mine.contains(&cmd.id) {
            let r = if accepted {
                Ok(())
            } else {
                Err(KvError::new(ErrorDetail::Unavailable(format!(
                    "r{}: replica change lost a race with another change",
                    self.range_id
                ))))
            };
            st.results.push((cmd.id, r));
        }
    }

    /// Installs a snapshot's replicated state (its data is in the batch).
    pub(crate) fn stage_snapshot(
        &self,
        st: &mut StagedApply,
        desc: RangeDescriptor,
        lease: Lease,
        applied: AppliedState,
        gc_threshold: Timestamp,
    ) {
        st.state = ReplicaState {
            desc,
            lease,
            applied,
            gc_threshold,
        };
        st.changed = true;
    }

    /// Installs what a committed batch applied and answers the proposers.
    pub(crate) fn finish_apply(&self, mut st: StagedApply) {
        let split = st.split.take();
        if !st.state.desc.replicas.is_empty() {
            let d = &st.state.desc;
            let mut b = self.bounds.write();
            if b.0 != d.start_key || b.1 != d.end_key {
                *b = (d.start_key.clone(), d.end_key.clone());
            }
        }
        if let Some(start) = st.acquired_lease_start {
            // Writes under the new lease land above every read the previous
            // leaseholder could have served.
            self.tscache.set_low_water(start);
            // And our clock moves to the start (as in CockroachDB), which is
            // above every write the previous holder served: a batch this
            // node timestamps (non-transactional reads) must not fall below
            // one written by a holder whose clock was ahead of ours, or it
            // would miss it (a stale read, seen after lease transfers).
            if let Err(e) = self.clock.update(start) {
                tracing::warn!(range_id = self.range_id, error = %e, "clock not moved to the new lease's start");
            }
        }
        let applied = st.state.applied.raft_applied_index;
        *self.state.lock() = st.state;
        if let Some(split) = split {
            // Before the proposer hears back: the right-hand range exists
            // once the split's commit returns.
            crate::split::finish_split(self, split);
        }
        let mut proposals = self.proposals.lock();
        for (id, r) in st.results {
            if let Some(p) = proposals.remove(&id) {
                let _ = p.tx.send(r);
            }
        }
        // A proposal whose index was filled by another command was dropped
        // (a leader change overwrote it).
        let mut dropped: Vec<(u64, u64)> = proposals
            .iter()
            .filter(|(_, p)| p.index != 0 && p.index <= applied)
            .map(|(id, p)| (p.index, *id))
            .collect();
        // In log order: the proposers wake in the same order in every run.
        dropped.sort_unstable();
        for (_, id) in dropped {
            if let Some(p) = proposals.remove(&id) {
                let _ = p.tx.send(Err(self.not_leaseholder(0)));
            }
        }
    }

    pub(crate) fn has_pending_proposals(&self) -> bool {
        !self.proposals.lock().is_empty() || !self.pending.lock().is_empty()
    }

    /// Hands the queued proposals to Raft (scheduler thread, between rounds).
    pub(crate) fn flush_proposals(&self, g: &mut RaftGroup) {
        let pending = std::mem::take(&mut *self.pending.lock());
        for p in pending {
            let proposed = match p.conf_change {
                Some(cc) => g.node.propose_conf_change(p.data, cc),
                None => g.node.propose(vec![], p.data),
            };
            if let Err(e) = proposed {
                tracing::debug!(range_id = self.range_id, error = %e, "proposal dropped");
                let leader = g.node.raft.leader_id;
                let _ = p.tx.send(Err(self.not_leaseholder(self.node_of(leader))));
                continue;
            }
            let index = if g.node.raft.state == StateRole::Leader {
                g.node.raft.raft_log.last_index()
            } else {
                0
            };
            self.proposals
                .lock()
                .insert(p.id, Proposal { index, tx: p.tx });
        }
    }

    /// If this leader can quiesce (nothing pending, every follower caught
    /// up), marks it quiesced and returns the quiescing heartbeats.
    pub(crate) fn maybe_quiesce(&self, g: &mut RaftGroup) -> Option<Vec<Message>> {
        let raft = &g.node.raft;
        if raft.state != StateRole::Leader || self.has_pending_proposals() {
            return None;
        }
        let last = raft.raft_log.last_index();
        let committed = raft.raft_log.committed;
        if committed != last
            || raft.raft_log.applied != committed
            || raft.raft_log.persisted != last
        {
            return None;
        }
        if raft.prs().iter().any(|(_, pr)| pr.matched != last) {
            return None;
        }
        let mut out = Vec::new();
        for (id, _) in raft.prs().iter() {
            if *id == self.replica_id {
                continue;
            }
            let mut m = Message::default();
            m.set_msg_type(MessageType::MsgHeartbeat);
            m.to = *id;
            m.from = self.replica_id;
            m.term = raft.term;
            m.commit = committed;
            out.push(m);
        }
        g.quiesced = true;
        Some(out)
    }

    /// A follower receiving a quiescing heartbeat: quiesces if it agrees it
    /// is caught up with that leader; otherwise the caller steps it.
    pub(crate) fn try_quiesce_follower(g: &mut RaftGroup, m: &Message) -> bool {
        let raft = &g.node.raft;
        let ok = raft.state == StateRole::Follower
            && raft.term == m.term
            && raft.leader_id == m.from
            && raft.raft_log.committed == m.commit
            && raft.raft_log.last_index() == m.commit;
        if ok {
            g.quiesced = true;
        }
        ok
    }

    /// A quiesced follower asked for its vote: its belief in the leader
    /// dates from before it stopped ticking, while the campaigner has gone
    /// a whole election timeout without hearing from that leader (a live
    /// leader is woken by any follower that wakes). Forgetting the leader
    /// lets check-quorum's "leader is alive" rule pass, so a dead leader's
    /// quiesced range elects a new one in one round instead of waiting
    /// for this follower to tick through a timeout of its own. Votes still
    /// follow Raft's term and log rules.
    pub(crate) fn forget_quiesced_leader(g: &mut RaftGroup, m: &Message) {
        let raft = &mut g.node.raft;
        if raft.state == StateRole::Follower
            && m.term > raft.term
            && matches!(
                m.get_msg_type(),
                MessageType::MsgRequestPreVote | MessageType::MsgRequestVote
            )
        {
            raft.leader_id = raft::INVALID_ID;
        }
    }

    /// Writes must not land below reads already served on their keys.
    fn apply_timestamp_cache(&self, ba: &mut BatchRequest) {
        let txn_id = ba.header.txn.as_ref().map(Transaction::id);
        let mut min_write = match &ba.header.txn {
            Some(t) => t.meta.write_timestamp,
            None => ba.header.timestamp,
        };
        let spans: Vec<Span> = ba
            .requests
            .iter()
            .filter(|r| r.is_write())
            .map(|r| r.span(&ba.header))
            .collect();
        for mark in self.tscache.get_max_each(&spans) {
            if mark.txn.is_some() && mark.txn == txn_id {
                continue;
            }
            if mark.ts >= min_write {
                min_write = mark.ts.next();
            }
        }
        match &mut ba.header.txn {
            Some(t) => {
                t.meta.write_timestamp.forward(min_write);
            }
            None => {
                ba.header.timestamp.forward(min_write);
            }
        }
    }

    fn fill_query_responses(&self, ba: &BatchRequest, res: &mut EvalResult) {
        for (req, resp) in ba.requests.iter().zip(res.responses.iter_mut()) {
            if let (Request::QueryTxn { txn }, Response::QueryTxn { waiting_txns, .. }) =
                (req, resp)
            {
                *waiting_txns = self.txn_wait.dependents(txn.id).into_iter().collect();
            }
        }
    }

    /// Other transactions' unreplicated locks that a batch's writes or
    /// locking reads must wait for; `None` if there are none.
    fn unreplicated_lock_conflicts(&self, ba: &BatchRequest) -> Option<Vec<IntentInfo>> {
        // The common case, checked before copying any span.
        if self.lock_table.is_empty() {
            return None;
        }
        let locking = ba.header.lock_reads && ba.header.txn.is_some();
        let spans: Vec<Span> = ba
            .requests
            .iter()
            .filter(|r| match r {
                Request::Put { .. }
                | Request::ConditionalPut { .. }
                | Request::Increment { .. }
                | Request::Delete { .. }
                | Request::DeleteRange { .. } => true,
                Request::Get { .. } | Request::Scan { .. } | Request::ReverseScan { .. } => locking,
                _ => false,
            })
            .map(|r| r.span(&ba.header))
            .collect();
        if spans.is_empty() {
            return None;
        }
        let me = ba.header.txn.as_ref().map(Transaction::id);
        let conflicts = self.lock_table.conflicts(&spans, me);
        (!conflicts.is_empty()).then_some(conflicts)
    }

    /// Waits for, pushes and resolves the intents a batch ran into: one push
    /// per holding transaction (none if it is already known to be finalized),
    /// then one batch resolving all of that holder's intents that were met.
    /// A scan that meets the thousand unresolved intents of a committed bulk
    /// write thus costs one command, not a thousand pushes and resolutions.
    async fn handle_conflicts(
        &self,
        ba: &BatchRequest,
        intents: Vec<IntentInfo>,
    ) -> Result<(), KvError> {
        let store = self.store()?;
        // A locking read waits for the holder to finish, as a write does.
        let writes = ba.has_writes() || (ba.header.lock_reads && ba.header.txn.is_some());
        let mut by_holder: Vec<(TxnMeta, Vec<Vec<u8>>)> = Vec::new();
        for intent in intents {
            match by_holder.iter_mut().find(|(m, _)| m.id == intent.txn.id) {
                Some((meta, keys)) => {
                    if intent.txn.epoch > meta.epoch
                        || (intent.txn.epoch == meta.epoch
                            && intent.txn.write_timestamp > meta.write_timestamp)
                    {
                        *meta = intent.txn;
                    }
                    keys.push(intent.key);
                }
                None => by_holder.push((intent.txn, vec![intent.key])),
            }
        }
        for (holder, keys) in by_holder {
            let pushee = match self.lock_table.finalized(holder.id) {
                Some(done) => done,
                None => {
                    let mut waiter = self.lock_table.wait_on(&keys[0], holder.id);
                    let (push_type, push_to) = match &ba.header.txn {
                        _ if writes => (PushType::Abort, Timestamp::ZERO),
                        // Above the reader's uncertainty window on this
                        // lease (narrowed by its observed timestamp), not
                        // the global one: the holder is pushed no further
                        // into the future than this reader needs.
                        Some(t) => (PushType::Timestamp, {
                            let lease = self.lease();
                            t.uncertainty_limit_on(lease.replica.node_id, lease.start)
                        }),
                        None => (PushType::Timestamp, ba.header.timestamp),
                    };
                    let push = BatchRequest {
                        header: Header {
                            timestamp: self.clock.now(),
                            txn: ba.header.txn.clone(),
                            ..Header::default()
                        },
                        requests: vec![Request::PushTxn {
                            pushee: holder.clone(),
                            push_to,
                            push_type,
                        }],
                    };
                    let pushed = tokio::select! {
                        // In order: both may be ready in one poll, and a
                        // simulation must replay the same choice.
                        biased;
                        _ = waiter.released() => None,
                        r = store.send_routed(push) => Some(r?),
                    };
                    let Some(resp) = pushed else { continue };
                    let Some(Response::PushTxn { pushee }) = resp.responses.into_iter().next()
                    else {
                        return Err(KvError::internal("push returned no pushee"));
                    };
                    if pushee.status.is_finalized() {
                        self.lock_table.remember_finalized(&pushee);
                    }
                    pushee
                }
            };
            let resolve = BatchRequest {
                header: Header {
                    timestamp: self.clock.now(),
                    ..Header::default()
                },
                requests: keys
                    .into_iter()
                    .map(|key| Request::ResolveIntent {
                        key,
                        txn: pushee.meta.clone(),
                        status: pushee.status,
                        ignored_seqs: pushee.ignored_seqs.clone(),
                    })
                    .collect(),
            };
            store.send_routed(resolve).await?;
        }
        Ok(())
    }

    /// A push: evaluate; if the pusher cannot win yet, wait in the pushee's
    /// queue until its record changes, looking for deadlocks meanwhile.
    async fn send_push(&self, ba: BatchRequest) -> BatchResult {
        let Some(Request::PushTxn { pushee, .. }) = ba.requests.first() else {
            return Err(KvError::internal("not a push"));
        };
        let pushee = pushee.clone();
        let pusher = ba.header.txn.clone();
        let pusher_id = pusher.as_ref().map(Transaction::id);
        let record_span = vec![LatchSpan {
            span: Span::point(txnrecord::record_key(&pushee)),
            access: Access::Write,
        }];
        let mut force = false;
        let mut queued: Option<crate::txnwait::Updates> = None;
        let result = loop {
            let lease = match self.ensure_lease(ba.header.timestamp).await {
                Ok(l) => l,
                Err(e) => break Err(e),
            };
            let guard = self.latches.acquire(record_span.clone()).await;
            if let Err(e) = self.check_bounds(&ba) {
                break Err(e);
            }
            let mut b = self.engine.batch();
            match eval::evaluate(&self.ctx(force), &mut b, &ba) {
                Ok(res) => {
                    let applied = self.apply(b, &res, lease.sequence).await;
                    drop(guard);
                    break applied.map(|()| BatchResponse {
                        now: self.clock.now(),
                        txn: res.txn,
                        responses: res.responses,
                    });
                }
                Err(EvalError::PushFailed) => drop(guard),
                Err(EvalError::Kv(e)) => break Err(*e),
                Err(EvalError::Intents(_)) => {
                    break Err(KvError::internal("push met intents"));
                }
            }
            let rx = queued.get_or_insert_with(|| self.txn_wait.enqueue(pushee.id, pusher_id));
            tokio::select! {
                biased;
                _ = rx.changed() => {}
                _ = tokio::time::sleep(PUSH_POLL) => {}
            }
            if let Some(p) = &pusher {
                match self.check_pusher(p, &pushee).await {
                    Ok(deadlocked) => force |= deadlocked,
                    Err(e) => break Err(e),
                }
            }
        };
        if queued.is_some() {
            self.txn_wait.dequeue(pushee.id, pusher_id);
        }
        result
    }

    /// Returns an error if the waiting pusher was itself aborted, and whether
    /// it should break a deadlock by aborting the pushee.
    async fn check_pusher(
        &self,
        pusher: &Transaction,
        pushee: &tardigrade_kvpb::TxnMeta,
    ) -> Result<bool, KvError> {
        if pusher.meta.key.is_empty() {
            // A transaction that has neither written nor taken a lock (its
            // anchor key is set by the first of those) has no record
            // (nobody can abort it through one) and holds no locks (nobody
            // waits on it): nothing to check, and no cycle runs through it.
            return Ok(false);
        }
        let store = self.store()?;
        let query = BatchRequest {
            header: Header {
                timestamp: self.clock.now(),
                ..Header::default()
            },
            requests: vec![Request::QueryTxn {
                txn: pusher.meta.clone(),
            }],
        };
        // Bounded: the pusher's record range may be between leaseholders
        // (DistSender would keep retrying for its whole deadline, and the
        // push would not re-evaluate meanwhile). No answer: no news, try
        // again at the next poll.
        let resp = match tokio::time::timeout(PUSHER_QUERY_TIMEOUT, store.send_routed(query)).await
        {
            Ok(r) => r?,
            Err(_) => return Ok(false),
        };
        let Some(Response::QueryTxn { txn, waiting_txns }) = resp.responses.into_iter().next()
        else {
            return Err(KvError::internal("query returned nothing"));
        };
        if txn.is_some_and(|t| t.status == TransactionStatus::Aborted) {
            return Err(KvError::new(ErrorDetail::TransactionAborted {
                reason: AbortReason::AbortedRecord,
            })
            .with_txn(Some(pusher.clone())));
        }
        let deps: HashSet<_> = waiting_txns.into_iter().collect();
        let cycle = deps.contains(&pushee.id);
        self.txn_wait.set_dependents(pushee.id, pusher.id(), deps);
        Ok(cycle && txnwait::breaks_deadlock(&pusher.meta, pushee))
    }
}

/// How often a batch whose command was rejected at apply (its lease changed
/// meanwhile) is evaluated again before `NotLeaseholder` goes back.
const MAX_REEVALUATIONS: u32 = 3;

/// Physical time plus the maximum clock offset: above every timestamp this
/// node can have served (every timestamp it folds into its clock is within
/// the offset of physical time). Not the HLC plus the offset: repeated, that
/// would ratchet the clock ever further ahead, until peers refuse it.
fn physical_plus_offset(clock: &Hlc) -> Timestamp {
    let offset = i64::try_from(clock.max_offset().as_nanos()).unwrap_or(i64::MAX);
    Timestamp::new(clock.physical_now().saturating_add(offset), 0)
}

/// The spans a batch latches, and how.
fn latch_spans(ba: &BatchRequest) -> Vec<LatchSpan> {
    let mut out = Vec::with_capacity(ba.requests.len());
    let mut add = |span: Span, access| out.push(LatchSpan { span, access });
    for req in &ba.requests {
        match req {
            // Locking reads exclude each other like writes, so that two of
            // them cannot both pass the lock check and both take the lock.
            Request::Get { .. } | Request::Scan { .. } | Request::ReverseScan { .. }
                if ba.header.lock_reads && ba.header.txn.is_some() =>
            {
                add(req.span(&ba.header), Access::Write)
            }
            Request::Get { .. }
            | Request::Scan { .. }
            | Request::ReverseScan { .. }
            | Request::Refresh { .. } => add(req.span(&ba.header), Access::Read),
            Request::EndTxn {
                lock_spans,
                trigger,
                ..
            } => {
                if let Some(t) = &ba.header.txn {
                    add(Span::point(txnrecord::record_key(&t.meta)), Access::Write);
                }
                for s in lock_spans {
                    add(s.clone(), Access::Write);
                }
                for s in crate::split::trigger_latches(trigger.as_ref()) {
                    add(s, Access::Write);
                }
            }
            Request::HeartbeatTxn { .. } => {
                if let Some(t) = &ba.header.txn {
                    add(Span::point(txnrecord::record_key(&t.meta)), Access::Write);
                }
            }
            Request::PushTxn { pushee, .. } => {
                add(Span::point(txnrecord::record_key(pushee)), Access::Write)
            }
            Request::QueryTxn { txn } => add(Span::point(txnrecord::record_key(txn)), Access::Read),
            _ => add(req.span(&ba.header), Access::Write),
        }
    }
    out
}

/// The timestamp a batch reads and writes at, for the lease check.
fn batch_ts(ba: &BatchRequest) -> Timestamp {
    match &ba.header.txn {
        Some(t) => t.meta.write_timestamp.max(t.read_timestamp),
        None => ba.header.timestamp,
    }
}

/// Refuses a batch that reads or writes data at or below the GC
/// threshold, whose versions MVCC GC may have removed.
fn check_gc_threshold(ba: &BatchRequest, threshold: Timestamp) -> Result<(), KvError> {
    if threshold.is_zero() {
        return Ok(());
    }
    let ts = batch_ts(ba);
    let touches_data = ba.requests.iter().any(|r| {
        matches!(
            r,
            Request::Get { .. }
                | Request::Scan { .. }
                | Request::ReverseScan { .. }
                | Request::Put { .. }
                | Request::ConditionalPut { .. }
                | Request::Delete { .. }
                | Request::DeleteRange { .. }
                | Request::Refresh { .. }
        )
    });
    if touches_data && ts <= threshold {
        return Err(KvError::invalid(format!(
            "batch timestamp {ts} must be after replica GC threshold {threshold}"
        )));
    }
    Ok(())
}
