//! The store's Raft scheduler: one thread drives every replica on the store.
//!
//! Each round it takes the queued events (proposals waking a range, inbound
//! Raft batches), ticks the replicas that are not quiesced when a tick is
//! due, then processes every replica with a Ready in one batch:
//!
//! 1. the log appends, hard states and snapshots of all of them go into ONE
//!    engine write batch, committed with ONE fsync;
//! 2. their outbound messages are grouped per destination node and sent as
//!    one [`RaftMessageBatch`] per node;
//! 3. their committed entries are applied in log order into a second write
//!    batch (commands' writes plus each range's new applied state; no fsync
//!    needed: the log is durable and re-applied after a crash), after which
//!    proposers are answered and the log is truncated past a threshold.
//!
//! A leader with nothing pending whose followers are all caught up
//! quiesces: it sends quiescing heartbeats and stops ticking, and so do its
//! followers; any request or inbound message wakes the range.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Weak};
// Tokio's clock: real time, except under a simulation's paused runtime.
use tokio::time::Instant;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Message, MessageType, Snapshot};
use raft::{Ready, SnapshotStatus};
use tardigrade_encoding::keys;
use tardigrade_kvpb::{Lease, RangeDescriptor};
use tardigrade_storage::batch::WriteSet;
use tardigrade_storage::{EngineError, Reader, Space};

use crate::command::{self, AppliedState};
use crate::raft_storage::{self, LogState, decode_snapshot_data, range_spans};
use crate::replica::Replica;
use crate::store::{Store, StoreConfig, range_index_key};
use crate::transport::{RaftMessage, RaftMessageBatch};

pub(crate) enum Event {
    /// A range has work (a proposal, a woken group).
    Wake(u64),
    /// Raft messages from another node.
    Raft(RaftMessageBatch),
    /// Garbage-collect this store's replica of the range if it is no longer
    /// a member (replica GC, [`crate::replica_change`]): with the replica's
    /// id at the time the check was made.
    Gc {
        range_id: u64,
        replica_id: u64,
    },
    Stop,
}

/// Most events taken per round, so a flood cannot starve ticks.
const MAX_EVENTS_PER_ROUND: usize = 4096;

/// What the scheduler carries from one round to the next.
pub(crate) struct Rounds {
    next_tick: Instant,
    /// Ranges with work; ordered, so that a round processes them (and
    /// sends their messages) in the same order every time: a simulation
    /// replays exactly from its seed.
    dirty: BTreeSet<u64>,
}

impl Rounds {
    pub(crate) fn new(cfg: &StoreConfig) -> Rounds {
        Rounds {
            next_tick: Instant::now() + cfg.raft_tick_interval,
            dirty: BTreeSet::new(),
        }
    }
}

/// The scheduler thread: blocks for events (or until the next tick is due)
/// and runs a round, until the store stops or is dropped.
pub(crate) fn run(store: Weak<Store>, rx: Receiver<Event>, cfg: StoreConfig) {
    let mut st = Rounds::new(&cfg);
    loop {
        let mut events = Vec::new();
        if st.dirty.is_empty() {
            let timeout = st.next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(timeout) {
                Ok(e) => events.push(e),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        if !take_events(&rx, &mut events) {
            return;
        }
        let Some(store) = store.upgrade() else {
            return;
        };
        let tick_due = Instant::now() >= st.next_tick;
        if tick_due {
            st.next_tick = Instant::now() + cfg.raft_tick_interval;
        }
        if !round(&store, &mut st, events, tick_due) {
            return;
        }
    }
}

/// Moves the queued events into `events`, up to a round's worth; false
/// when the store is gone.
pub(crate) fn take_events(rx: &Receiver<Event>, events: &mut Vec<Event>) -> bool {
    while events.len() < MAX_EVENTS_PER_ROUND {
        match rx.try_recv() {
            Ok(e) => events.push(e),
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Disconnected) => return false,
        }
    }
    true
}

/// One round: handles `events`, ticks the replicas when `tick_due`,
/// persists and applies every Ready, and sends the round's messages.
/// Returns false once the store has stopped.
pub(crate) fn round(
    store: &Arc<Store>,
    st: &mut Rounds,
    events: Vec<Event>,
    tick_due: bool,
) -> bool {
    if store.is_stopped() {
        return false;
    }
    let dirty = &mut st.dirty;
    let mut outbox = Outbox::default();
    for e in events {
        match e {
            Event::Stop => return false,
            Event::Wake(id) => {
                dirty.insert(id);
            }
            Event::Raft(b) => step_batch(store, b, dirty),
            Event::Gc {
                range_id,
                replica_id,
            } => {
                dirty.remove(&range_id);
                if let Err(e) = store.gc_replica(range_id, replica_id) {
                    tracing::warn!(range_id, error = %e, "replica GC failed");
                }
            }
        }
    }
    if tick_due {
        tick(store, dirty, &mut outbox);
    }
    if let Err(e) = process_ready(store, dirty, &mut outbox) {
        tracing::error!(error = %e, node = store.node_id(), "raft scheduler: storage failed; stopping the store");
        store.stop();
        return false;
    }
    outbox.flush(store);
    true
}

/// Outbound messages of one round, per destination node.
#[derive(Default)]
struct Outbox {
    by_node: BTreeMap<u64, Vec<RaftMessage>>,
    /// Snapshots handed to the transport: (range, to replica).
    snapshots: Vec<(Arc<Replica>, u64)>,
}

impl Outbox {
    fn add(&mut self, r: &Arc<Replica>, msgs: Vec<Message>, quiesce: bool) {
        if msgs.is_empty() {
            return;
        }
        let desc = r.desc();
        for m in msgs {
            let to_node = match desc.replica(m.to) {
                Some(to) => Some(to.node_id),
                None => r.peer_nodes.lock().get(&m.to).copied(),
            };
            let Some(to_node) = to_node else {
                tracing::debug!(
                    range_id = r.range_id,
                    to = m.to,
                    "message to unknown replica"
                );
                continue;
            };
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.snapshots.push((r.clone(), m.to));
            }
            let Ok(bytes) = m.write_to_bytes() else {
                continue;
            };
            self.by_node.entry(to_node).or_default().push(RaftMessage {
                range_id: r.range_id,
                from_replica: r.replica_id,
                to_replica: m.to,
                message: bytes,
                quiesce,
            });
        }
    }

    fn flush(&mut self, store: &Store) {
        let node = store.node_id();
        for (to_node, messages) in std::mem::take(&mut self.by_node) {
            let batch = RaftMessageBatch {
                from_node: node,
                to_node,
                cluster_id: 0,
                messages,
            };
            if to_node == node {
                let _ = crate::transport::RaftHandler::handle_raft_batch(store, batch);
            } else if let Some(t) = &store.config().transport {
                t.send(batch);
            }
        }
        // The transport took them; the follower's answer says how it went.
        for (r, to) in self.snapshots.drain(..) {
            r.raft
                .lock()
                .node
                .report_snapshot(to, SnapshotStatus::Finish);
        }
    }
}

fn step_batch(store: &Arc<Store>, batch: RaftMessageBatch, dirty: &mut BTreeSet<u64>) {
    for m in batch.messages {
        let r = match store.replica(m.range_id) {
            Some(r) => r,
            // A range this store was added to: its replica is created by
            // the message (and initialized by the snapshot that follows),
            // unless that replica id was already removed from this store.
            None => match store.create_replica_for_message(m.range_id, m.to_replica) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(range_id = m.range_id, error = %e, "cannot create a replica");
                    continue;
                }
            },
        };
        let msg = match Message::parse_from_bytes(&m.message) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::debug!(range_id = m.range_id, error = %e, "malformed raft message");
                continue;
            }
        };
        if msg.to != r.replica_id || msg.from != m.from_replica || m.to_replica != r.replica_id {
            if m.to_replica > r.replica_id && r.desc().replica(r.replica_id).is_none() {
                // Removed and re-added under a new id: the old one goes.
                store.request_gc(r.range_id, r.replica_id);
            }
            tracing::debug!(range_id = m.range_id, "raft message for another replica");
            continue;
        }
        if msg.get_msg_type() == MessageType::MsgSnapshot
            && let Some(other) = snapshot_overlap(store, &r, &msg)
        {
            // The leader sends it again later, when this store's replica of
            // the other range has applied its split (or was removed).
            tracing::info!(
                range_id = m.range_id,
                overlapping_range_id = other,
                "refused a snapshot that overlaps another replica of this store"
            );
            continue;
        }
        if !r.is_initialized() {
            // Its descriptor is empty: answers go back the way this came.
            r.peer_nodes.lock().insert(m.from_replica, batch.from_node);
        }
        let mut g = r.raft.lock();
        if g.broken {
            continue;
        }
        if m.quiesce && Replica::try_quiesce_follower(&mut g, &msg) {
            continue;
        }
        if g.quiesced {
            Replica::forget_quiesced_leader(&mut g, &msg);
        }
        g.quiesced = false;
        if let Err(e) = g.node.step(msg) {
            tracing::debug!(range_id = m.range_id, error = %e, "raft step failed");
        }
        dirty.insert(m.range_id);
    }
}

/// The initialized replica, other than `r`, that the snapshot in `msg`
/// would overlap. A snapshot that cannot be decoded is left to the install,
/// which reports it.
fn snapshot_overlap(store: &Store, r: &Replica, msg: &Message) -> Option<u64> {
    let desc = raft_storage::decode_snapshot_desc(&msg.get_snapshot().data).ok()?;
    store.overlapping_replica(r.range_id, &desc.start_key, &desc.end_key)
}

fn tick(store: &Store, dirty: &mut BTreeSet<u64>, outbox: &mut Outbox) {
    for r in store.replicas() {
        let mut g = r.raft.lock();
        if g.quiesced || g.broken {
            continue;
        }
        if !g.node.has_ready()
            && let Some(hbs) = r.maybe_quiesce(&mut g)
        {
            drop(g);
            outbox.add(&r, hbs, true);
            continue;
        }
        g.node.tick();
        dirty.insert(r.range_id);
    }
}

struct SnapInstall {
    index: u64,
    term: u64,
    conf_state: ConfState,
    desc: RangeDescriptor,
    lease: Lease,
    applied: AppliedState,
    gc_threshold: tardigrade_hlc::Timestamp,
}

struct Work {
    r: Arc<Replica>,
    rd: Option<Ready>,
    snap: Option<SnapInstall>,
    new_last: Option<(u64, u64)>,
    hs: Option<HardState>,
    /// Messages that may leave before this round's log writes are durable
    /// (the leader's appends and heartbeats).
    msgs: Vec<Message>,
    /// Messages that must wait for them (acknowledgements, votes).
    persisted: Vec<Message>,
    committed: Vec<Entry>,
}

fn process_ready(
    store: &Arc<Store>,
    dirty: &mut BTreeSet<u64>,
    outbox: &mut Outbox,
) -> Result<(), EngineError> {
    let engine = store.engine();
    let mut ws = WriteSet::default();
    let mut sync = false;
    let mut works = Vec::new();
    for id in std::mem::take(dirty) {
        let Some(r) = store.replica(id) else {
            continue;
        };
        let mut rd = {
            let mut g = r.raft.lock();
            if g.broken {
                continue;
            }
            r.flush_proposals(&mut g);
            if !g.node.has_ready() {
                continue;
            }
            g.node.ready()
        };
        let mut w = Work {
            r: r.clone(),
            rd: None,
            snap: None,
            new_last: None,
            hs: None,
            msgs: rd.take_messages(),
            persisted: Vec::new(),
            committed: Vec::new(),
        };
        let mut base: LogState = r.log_state.read().clone();
        if !rd.snapshot().is_empty() {
            match prepare_snapshot(store, &r, rd.snapshot(), &base, &mut ws) {
                Ok(si) => {
                    base.truncated_index = si.index;
                    base.truncated_term = si.term;
                    base.last_index = si.index;
                    base.last_term = si.term;
                    w.snap = Some(si);
                    sync = true;
                }
                Err(e) => {
                    tracing::error!(range_id = id, error = %e, "cannot apply snapshot; replica disabled");
                    r.raft.lock().broken = true;
                    continue;
                }
            }
        }
        sync |= rd.must_sync();
        let entries = rd.take_entries();
        if !entries.is_empty() {
            w.new_last = Some(raft_storage::append_entries(id, &base, &entries, &mut ws));
        }
        if let Some(hs) = rd.hs() {
            raft_storage::write_hard_state(id, hs, &mut ws);
            w.hs = Some(hs.clone());
        }
        w.persisted = rd.take_persisted_messages();
        w.committed = rd.take_committed_entries();
        w.rd = Some(rd);
        works.push(w);
    }
    if works.is_empty() {
        return Ok(());
    }
    // TODO(issue 3): the replicated-write median (2.6 ms on 3 local nodes,
    // bench/README.md) is ~5x the fsync + RTT floor: pipeline the apply
    // batch with the next round's appends, start the leader's round as soon
    // as a follower's acknowledgement arrives, and measure on separate
    // machines.
    // The leader's appends go out before its own fsync (Raft allows it:
    // the leader counts itself only once its log is durable), so the
    // followers' fsyncs overlap the leader's instead of following it.
    for w in &mut works {
        outbox.add(&w.r, std::mem::take(&mut w.msgs), false);
    }
    outbox.flush(store);
    engine.commit(&ws, sync)?;
    for w in &works {
        let mut ls = w.r.log_state.write();
        if let Some(si) = &w.snap {
            ls.truncated_index = si.index;
            ls.truncated_term = si.term;
            ls.last_index = si.index;
            ls.last_term = si.term;
            ls.conf_state = si.conf_state.clone();
        }
        if let Some((li, lt)) = w.new_last {
            ls.last_index = li;
            ls.last_term = lt;
        }
        if let Some(hs) = &w.hs {
            ls.hard_state = hs.clone();
        }
    }
    let mut apply_ws = WriteSet::default();
    for w in &mut works {
        let Some(rd) = w.rd.take() else {
            continue;
        };
        let mut light = w.r.raft.lock().node.advance_append(rd);
        if let Some(c) = light.commit_index() {
            let mut ls = w.r.log_state.write();
            ls.hard_state.commit = c;
            raft_storage::write_hard_state(w.r.range_id, &ls.hard_state, &mut apply_ws);
        }
        let mut msgs = std::mem::take(&mut w.persisted);
        msgs.extend(light.take_messages());
        w.committed.extend(light.take_committed_entries());
        outbox.add(&w.r, msgs, false);
    }
    // Appends reach the followers while we apply.
    outbox.flush(store);
    let max_entries = store.config().raft_log_max_entries.max(2);
    let delay = store.config().testing_apply_delay;
    if !delay.is_zero() && works.iter().any(|w| !w.committed.is_empty()) {
        std::thread::sleep(delay);
    }
    let mut staged = Vec::with_capacity(works.len());
    for w in &mut works {
        let mut st = w.r.begin_apply();
        if let Some(si) = w.snap.take() {
            w.r.stage_snapshot(&mut st, si.desc, si.lease, si.applied, si.gc_threshold);
        }
        w.r.stage_entries(&w.committed, &mut st, &mut apply_ws);
        let applied = st.applied_index();
        let truncated = w.r.log_state.read().truncated_index;
        let mut trunc = None;
        if applied > truncated + max_entries {
            let to = applied - max_entries / 2;
            match entry_term(engine, w.r.range_id, to) {
                Ok(term) => {
                    raft_storage::truncate_log(w.r.range_id, truncated, to, term, &mut apply_ws);
                    trunc = Some((to, term));
                }
                Err(e) => {
                    tracing::warn!(range_id = w.r.range_id, error = %e, "log truncation skipped")
                }
            }
        }
        staged.push((w.r.clone(), st, trunc));
    }
    engine.commit(&apply_ws, false)?;
    let mut reload = Vec::new();
    let mut removed = Vec::new();
    for (r, mut st, trunc) in staged {
        if let Some((to, term)) = trunc {
            let mut ls = r.log_state.write();
            ls.truncated_index = to;
            ls.truncated_term = term;
        }
        let applied = st.applied_index();
        let was_initialized = r.is_initialized();
        let conf_changes = std::mem::take(&mut st.conf_changes);
        r.finish_apply(st);
        let mut g = r.raft.lock();
        for cc in conf_changes {
            match g.node.apply_conf_change(&cc) {
                Ok(cs) => r.log_state.write().conf_state = cs,
                Err(e) => {
                    // The descriptor and the tracker disagree: never expected.
                    tracing::error!(range_id = r.range_id, error = %e, "configuration change failed; replica disabled");
                    g.broken = true;
                }
            }
        }
        let desc = r.desc();
        if !was_initialized && !desc.replicas.is_empty() {
            reload.push(r.range_id);
        } else if !desc.replicas.is_empty() && desc.replica(r.replica_id).is_none() {
            removed.push((r.range_id, r.replica_id));
        }
        if applied > g.node.raft.raft_log.applied && applied <= g.node.raft.raft_log.committed {
            g.node.advance_apply_to(applied);
        }
        if g.node.has_ready() {
            dirty.insert(r.range_id);
        }
    }
    for id in reload {
        // Initialized by a snapshot: reload from the engine, now that it
        // holds the range's bounds, descriptor and Raft state.
        store.reload_replica(id)?;
        dirty.insert(id);
    }
    for (id, replica_id) in removed {
        // This replica applied its own removal.
        dirty.remove(&id);
        store.gc_replica(id, replica_id)?;
    }
    Ok(())
}

fn entry_term(
    engine: &tardigrade_storage::Engine,
    range_id: u64,
    index: u64,
) -> Result<u64, EngineError> {
    let v = engine
        .get(Space::Raw, &keys::raft_log_key(range_id, index))?
        .ok_or_else(|| EngineError::Corrupt(format!("r{range_id}: log entry {index} missing")))?;
    raft_storage::decode_entry(&v)
        .map(|e| e.term)
        .map_err(|e| EngineError::Corrupt(e.to_string()))
}

/// Adds a snapshot's data to `ws`: the range's spans are cleared and
/// rewritten, the log is discarded and truncated at the snapshot's index.
fn prepare_snapshot(
    store: &Store,
    r: &Replica,
    snap: &Snapshot,
    log: &LogState,
    ws: &mut WriteSet,
) -> Result<SnapInstall, EngineError> {
    let engine = store.engine();
    let id = r.range_id;
    let data = decode_snapshot_data(&snap.data).map_err(|e| EngineError::Corrupt(e.to_string()))?;
    if data.desc.range_id != id {
        return Err(EngineError::Corrupt(format!(
            "snapshot of r{} sent to r{id}",
            data.desc.range_id
        )));
    }
    let meta = snap.get_metadata();
    let old = r.desc();
    let old_spans = if old.replicas.is_empty() {
        Vec::new() // Uninitialized: nothing of its own yet.
    } else {
        range_spans(id, &old.start_key, &old.end_key)
    };
    for (space, lo, hi) in
        old_spans
            .into_iter()
            .chain(range_spans(id, &data.desc.start_key, &data.desc.end_key))
    {
        for kv in engine.scan(space, &lo, &hi, false) {
            let (k, _) = kv?;
            ws.delete(space, &k);
        }
    }
    let applied_key = keys::range_applied_state_key(id);
    let lease_key = keys::range_lease_key(id);
    let gc_key = keys::range_gc_threshold_key(id);
    let mut applied = None;
    let mut lease = Lease::default();
    let mut gc_threshold = tardigrade_hlc::Timestamp::ZERO;
    for (space, k, v) in &data.kvs {
        if *space == Space::Raw && *k == gc_key {
            gc_threshold = crate::gc_queue::decode_threshold(v)
                .map_err(|e| EngineError::Corrupt(e.to_string()))?;
        } else if *space == Space::Raw && *k == applied_key {
            applied =
                Some(AppliedState::decode(v).map_err(|e| EngineError::Corrupt(e.to_string()))?);
        } else if *space == Space::Raw && *k == lease_key {
            lease = Lease::decode(v).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        }
        ws.put(*space, k, v);
    }
    let applied = applied
        .ok_or_else(|| EngineError::Corrupt(format!("snapshot of r{id} without applied state")))?;
    if applied.raft_applied_index != meta.index {
        return Err(EngineError::Corrupt(format!(
            "snapshot of r{id} at index {} holds applied index {}",
            meta.index, applied.raft_applied_index
        )));
    }
    let lower = keys::raft_log_key(id, 0);
    let upper = keys::raft_log_key(id, u64::MAX);
    for kv in engine.scan(Space::Raw, &lower, &upper, false) {
        let (k, _) = kv?;
        ws.delete(Space::Raw, &k);
    }
    let _ = log;
    ws.put(
        Space::Raw,
        &keys::raft_truncated_state_key(id),
        &command::encode_index_term(meta.index, meta.term),
    );
    ws.put(Space::Raw, &range_index_key(id), &data.desc.start_key);
    Ok(SnapInstall {
        index: meta.index,
        term: meta.term,
        conf_state: meta.get_conf_state().clone(),
        desc: data.desc,
        lease,
        applied,
        gc_threshold,
    })
}
