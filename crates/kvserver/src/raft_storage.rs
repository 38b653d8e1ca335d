//! Raft's storage for one replica, on the store's engine.
//!
//! Everything lives in `Space::Raw` under the range-id local keys of
//! `tardigrade_encoding::keys`: log entries (rust-protobuf encoded
//! `eraftpb::Entry`, keyed by fixed-width index), the hard state and the
//! truncated state (unreplicated: each replica keeps its own). The
//! configuration is derived from the range descriptor. Snapshots are built
//! from an engine snapshot of the range's replicated data ([`range_spans`]).
//!
//! Writes never go through this type: the scheduler adds them to the round's
//! write batch ([`append_entries`], [`write_hard_state`]) and, once that batch
//! is committed, updates the cached [`LogState`] with [`RaftStorage::state`].

use std::sync::Arc;

use parking_lot::RwLock;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use tardigrade_encoding::keys;
use tardigrade_kvpb::{RangeDescriptor, ReplicaType};
use tardigrade_storage::batch::WriteSet;
use tardigrade_storage::mvcc::key::mvcc_key_lower_bound;
use tardigrade_storage::{Engine, EngineError, Reader, Space};

use crate::command::{self, AppliedState, DecodeError};

/// The index and term every bootstrapped replica starts at (as in
/// CockroachDB): replicas created later start empty and need a snapshot.
pub const RAFT_INITIAL_INDEX: u64 = 10;
pub const RAFT_INITIAL_TERM: u64 = 5;

const SNAPSHOT_FORMAT: u8 = 1;

/// What the storage caches about the persisted log.
#[derive(Clone, Debug, Default)]
pub struct LogState {
    pub hard_state: HardState,
    pub conf_state: ConfState,
    pub truncated_index: u64,
    pub truncated_term: u64,
    pub last_index: u64,
    pub last_term: u64,
}

/// `raft::Storage` for one replica.
pub struct RaftStorage {
    range_id: u64,
    engine: Engine,
    state: Arc<RwLock<LogState>>,
}

fn store_err(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

pub fn decode_entry(bytes: &[u8]) -> Result<Entry, DecodeError> {
    Entry::parse_from_bytes(bytes).map_err(|e| DecodeError(format!("raft entry: {e}")))
}

pub fn encode_hard_state(hs: &HardState) -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    command::put_u64(&mut b, hs.term);
    command::put_u64(&mut b, hs.vote);
    command::put_u64(&mut b, hs.commit);
    b
}

pub fn decode_hard_state(buf: &[u8]) -> Result<HardState, DecodeError> {
    let mut r = command::Reader { buf };
    let hs = HardState {
        term: r.u64()?,
        vote: r.u64()?,
        commit: r.u64()?,
        ..Default::default()
    };
    r.done()?;
    Ok(hs)
}

/// The Raft configuration a descriptor describes. In a joint configuration
/// (some replica is `VoterIncoming` or `VoterOutgoing`) the incoming voters
/// are the voters plus the incoming ones, the outgoing voters are the
/// voters plus the outgoing ones — what raft-rs builds when it applies the
/// `ConfChangeV2` that entered the joint state ([`crate::replica_change`]).
pub fn conf_state_of(desc: &RangeDescriptor) -> ConfState {
    let mut cs = ConfState::default();
    let joint = desc.replicas.iter().any(|r| {
        matches!(
            r.kind,
            ReplicaType::VoterIncoming | ReplicaType::VoterOutgoing
        )
    });
    for r in &desc.replicas {
        match r.kind {
            ReplicaType::Voter => {
                cs.voters.push(r.replica_id);
                if joint {
                    cs.voters_outgoing.push(r.replica_id);
                }
            }
            ReplicaType::Learner => cs.learners.push(r.replica_id),
            ReplicaType::VoterIncoming => cs.voters.push(r.replica_id),
            ReplicaType::VoterOutgoing => cs.voters_outgoing.push(r.replica_id),
        }
    }
    cs
}

/// The spans of one space that hold a range's replicated data.
pub fn range_spans(range_id: u64, start: &[u8], end: &[u8]) -> Vec<(Space, Vec<u8>, Vec<u8>)> {
    let local_lower = if start.is_empty() {
        keys::LOCAL_RANGE_PREFIX.to_vec()
    } else {
        keys::range_local_prefix(start)
    };
    vec![
        (
            Space::Mvcc,
            mvcc_key_lower_bound(start),
            mvcc_key_lower_bound(end),
        ),
        (Space::Lock, start.to_vec(), end.to_vec()),
        (Space::Raw, local_lower, keys::range_local_prefix(end)),
        // Replicated range-id keys (`…r…`): abort span, applied state, lease.
        (
            Space::Raw,
            keys::range_id_local_key(range_id, b"r"),
            keys::range_id_local_key(range_id, b"s"),
        ),
    ]
}

/// Reads a stored value, mapping decode failures to engine corruption.
pub fn read<T>(
    r: &dyn Reader,
    key: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<T, DecodeError>,
) -> Result<Option<T>, EngineError> {
    match r.get(Space::Raw, key)? {
        None => Ok(None),
        Some(v) => decode(&v)
            .map(Some)
            .map_err(|e| EngineError::corrupt_record(r, key, e)),
    }
}

impl RaftStorage {
    /// Loads the log state of `desc`'s range from the engine.
    pub fn load(engine: &Engine, desc: &RangeDescriptor) -> Result<RaftStorage, EngineError> {
        let id = desc.range_id;
        let hard_state =
            read(engine, &keys::raft_hard_state_key(id), decode_hard_state)?.unwrap_or_default();
        let (truncated_index, truncated_term) = read(
            engine,
            &keys::raft_truncated_state_key(id),
            command::decode_index_term,
        )?
        .unwrap_or((0, 0));
        let lower = keys::raft_log_key(id, 0);
        let upper = keys::raft_log_key(id, u64::MAX);
        let (mut last_index, mut last_term) = (truncated_index, truncated_term);
        if let Some(kv) = engine.scan(Space::Raw, &lower, &upper, true).next() {
            let (_, v) = kv?;
            let e = decode_entry(&v).map_err(|e| EngineError::Corrupt(e.to_string()))?;
            if e.index > last_index {
                last_index = e.index;
                last_term = e.term;
            }
        }
        Ok(RaftStorage {
            range_id: id,
            engine: engine.clone(),
            state: Arc::new(RwLock::new(LogState {
                hard_state,
                conf_state: conf_state_of(desc),
                truncated_index,
                truncated_term,
                last_index,
                last_term,
            })),
        })
    }

    pub fn state(&self) -> &Arc<RwLock<LogState>> {
        &self.state
    }

    fn entry_at(&self, r: &dyn Reader, index: u64) -> raft::Result<Entry> {
        match r
            .get(Space::Raw, &keys::raft_log_key(self.range_id, index))
            .map_err(store_err)?
        {
            Some(v) => decode_entry(&v).map_err(store_err),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    /// The term of `index` as seen by `r` (which may be an engine snapshot).
    fn term_in(&self, r: &dyn Reader, index: u64) -> raft::Result<u64> {
        let (ti, tt) = read(
            r,
            &keys::raft_truncated_state_key(self.range_id),
            command::decode_index_term,
        )
        .map_err(store_err)?
        .unwrap_or((0, 0));
        if index == ti {
            return Ok(tt);
        }
        Ok(self.entry_at(r, index)?.term)
    }
}

impl raft::Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let st = self.state.read();
        Ok(RaftState {
            hard_state: st.hard_state.clone(),
            conf_state: st.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let (first, last) = {
            let st = self.state.read();
            (st.truncated_index + 1, st.last_index)
        };
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > last + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut out = Vec::with_capacity((high - low).min(1024) as usize);
        let mut size = 0u64;
        let lower = keys::raft_log_key(self.range_id, low);
        let upper = keys::raft_log_key(self.range_id, high);
        for kv in self.engine.scan(Space::Raw, &lower, &upper, false) {
            let (_, v) = kv.map_err(store_err)?;
            let e = decode_entry(&v).map_err(store_err)?;
            if e.index != low + out.len() as u64 {
                // A gap: truncated concurrently, or corrupt.
                return Err(raft::Error::Store(StorageError::Compacted));
            }
            size += e.compute_size() as u64;
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(e);
        }
        if out.is_empty() && low < high {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let st = self.state.read().clone();
        if idx == st.truncated_index {
            return Ok(st.truncated_term);
        }
        if idx < st.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > st.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if idx == st.last_index {
            return Ok(st.last_term);
        }
        Ok(self.entry_at(&self.engine, idx)?.term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.state.read().truncated_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.state.read().last_index)
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let snap = self.engine.snapshot();
        let id = self.range_id;
        let applied = read(
            &snap,
            &keys::range_applied_state_key(id),
            AppliedState::decode,
        )
        .map_err(store_err)?
        .ok_or_else(|| store_err("no applied state"))?;
        let index = applied.raft_applied_index;
        let term = self.term_in(&snap, index)?;
        let desc = find_descriptor(&snap, id)?;
        let mut data = vec![SNAPSHOT_FORMAT];
        command::put_bytes(&mut data, &desc.encode());
        for (space, lo, hi) in range_spans(id, &desc.start_key, &desc.end_key) {
            for kv in snap.scan(space, &lo, &hi, false) {
                let (k, v) = kv.map_err(store_err)?;
                data.push(command::space_code(space));
                command::put_bytes(&mut data, &k);
                command::put_bytes(&mut data, &v);
            }
        }
        let mut meta = SnapshotMetadata {
            index,
            term,
            ..Default::default()
        };
        meta.set_conf_state(conf_state_of(&desc));
        let mut s = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        s.set_metadata(meta);
        Ok(s)
    }
}

/// The descriptor of range `id` in `r`, found through the store-local index.
fn find_descriptor(r: &dyn Reader, id: u64) -> raft::Result<RangeDescriptor> {
    let start = r
        .get(Space::Raw, &crate::store::range_index_key(id))
        .map_err(store_err)?
        .ok_or_else(|| store_err(format!("range r{id} is not on this store")))?;
    read(r, &keys::range_descriptor_key(&start), |b| {
        RangeDescriptor::decode(b).map_err(|e| DecodeError(e.to_string()))
    })
    .map_err(store_err)?
    .ok_or_else(|| store_err(format!("range r{id} has no descriptor")))
}

/// A decoded snapshot: the descriptor and the key-value pairs of its spans.
pub struct SnapshotData {
    pub desc: RangeDescriptor,
    pub kvs: Vec<(Space, Vec<u8>, Vec<u8>)>,
}

/// Only the descriptor a snapshot carries (its header), without copying its
/// data: enough to decide whether this store can take it.
pub fn decode_snapshot_desc(buf: &[u8]) -> Result<RangeDescriptor, DecodeError> {
    let mut r = command::Reader { buf };
    if r.u8()? != SNAPSHOT_FORMAT {
        return Err(DecodeError("unknown snapshot format".into()));
    }
    RangeDescriptor::decode(r.bytes()?).map_err(|e| DecodeError(e.to_string()))
}

pub fn decode_snapshot_data(buf: &[u8]) -> Result<SnapshotData, DecodeError> {
    let mut r = command::Reader { buf };
    if r.u8()? != SNAPSHOT_FORMAT {
        return Err(DecodeError("unknown snapshot format".into()));
    }
    let desc = RangeDescriptor::decode(r.bytes()?).map_err(|e| DecodeError(e.to_string()))?;
    let mut kvs = Vec::new();
    while !r.buf.is_empty() {
        let space = command::space_from(r.u8()?)?;
        let k = r.bytes()?.to_vec();
        let v = r.bytes()?.to_vec();
        kvs.push((space, k, v));
    }
    Ok(SnapshotData { desc, kvs })
}

/// Adds `entries` to `ws`, deleting any old entries past the new last one.
/// Returns the new `(last_index, last_term)`.
pub fn append_entries(
    range_id: u64,
    st: &LogState,
    entries: &[Entry],
    ws: &mut WriteSet,
) -> (u64, u64) {
    let Some(last) = entries.last() else {
        return (st.last_index, st.last_term);
    };
    for e in entries {
        ws.put(
            Space::Raw,
            &keys::raft_log_key(range_id, e.index),
            &e.write_to_bytes().unwrap_or_default(),
        );
    }
    for i in last.index + 1..=st.last_index {
        ws.delete(Space::Raw, &keys::raft_log_key(range_id, i));
    }
    (last.index, last.term)
}

pub fn write_hard_state(range_id: u64, hs: &HardState, ws: &mut WriteSet) {
    ws.put(
        Space::Raw,
        &keys::raft_hard_state_key(range_id),
        &encode_hard_state(hs),
    );
}

/// Deletes the log entries in `(from, to]` and records `to` as truncated.
pub fn truncate_log(range_id: u64, from: u64, to: u64, to_term: u64, ws: &mut WriteSet) {
    for i in from + 1..=to {
        ws.delete(Space::Raw, &keys::raft_log_key(range_id, i));
    }
    ws.put(
        Space::Raw,
        &keys::raft_truncated_state_key(range_id),
        &command::encode_index_term(to, to_term),
    );
}

#[cfg(test)]
mod tests {
    use raft::Storage;
    use tardigrade_kvpb::ReplicaDescriptor;
    use tardigrade_storage::StoreSpec;

    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; 10].into(),
            ..Default::default()
        }
    }

    fn desc() -> RangeDescriptor {
        RangeDescriptor {
            range_id: 3,
            start_key: b"a".to_vec(),
            end_key: b"z".to_vec(),
            replicas: vec![
                ReplicaDescriptor {
                    node_id: 1,
                    store_id: 1,
                    replica_id: 1,
                    kind: ReplicaType::Voter,
                },
                ReplicaDescriptor {
                    node_id: 2,
                    store_id: 2,
                    replica_id: 2,
                    kind: ReplicaType::Learner,
                },
            ],
            next_replica_id: 3,
            generation: 0,
        }
    }

    #[test]
    fn log_and_hard_state_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = StoreSpec::Dir(dir.path().join("s"));
        let d = desc();
        {
            let engine = Engine::open(&spec).expect("open");
            let s = RaftStorage::load(&engine, &d).expect("load");
            assert_eq!(s.first_index().expect("first"), 1);
            assert_eq!(s.last_index().expect("last"), 0);
            let mut ws = WriteSet::default();
            let st = s.state().read().clone();
            let entries: Vec<_> = (1..=5).map(|i| entry(i, 1 + i / 3)).collect();
            let (li, lt) = append_entries(3, &st, &entries, &mut ws);
            assert_eq!((li, lt), (5, 2));
            let hs = HardState {
                term: 2,
                vote: 1,
                commit: 4,
                ..Default::default()
            };
            write_hard_state(3, &hs, &mut ws);
            engine.commit(&ws, true).expect("commit");
            // Overwrite the tail: 4 and 5 replaced by a shorter, newer log.
            let mut st = s.state().write();
            st.last_index = li;
            st.last_term = lt;
            let mut ws = WriteSet::default();
            let (li, lt) = append_entries(3, &st, &[entry(4, 3)], &mut ws);
            engine.commit(&ws, true).expect("commit");
            st.last_index = li;
            st.last_term = lt;
        }
        let engine = Engine::open(&spec).expect("reopen");
        let s = RaftStorage::load(&engine, &d).expect("load");
        let rs = s.initial_state().expect("state");
        assert_eq!(
            (rs.hard_state.term, rs.hard_state.vote, rs.hard_state.commit),
            (2, 1, 4)
        );
        assert_eq!(rs.conf_state.voters, vec![1]);
        assert_eq!(rs.conf_state.learners, vec![2]);
        assert_eq!(s.first_index().expect("first"), 1);
        assert_eq!(s.last_index().expect("last"), 4);
        assert_eq!(s.term(4).expect("term"), 3);
        assert_eq!(s.term(2).expect("term"), 1);
        let es = s
            .entries(1, 5, None, GetEntriesContext::empty(false))
            .expect("entries");
        assert_eq!(
            es.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
            vec![(1, 1), (2, 1), (3, 2), (4, 3)]
        );
        // A size limit still returns at least one entry.
        let es = s
            .entries(2, 5, Some(1), GetEntriesContext::empty(false))
            .expect("entries");
        assert_eq!(es.len(), 1);

        // Truncation: entries up to 2 go, term(2) is kept.
        let mut ws = WriteSet::default();
        truncate_log(3, 0, 2, 1, &mut ws);
        engine.commit(&ws, true).expect("commit");
        {
            let mut st = s.state().write();
            st.truncated_index = 2;
            st.truncated_term = 1;
        }
        assert_eq!(s.first_index().expect("first"), 3);
        assert_eq!(s.term(2).expect("term"), 1);
        assert!(matches!(
            s.term(1),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert!(matches!(
            s.entries(2, 4, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        drop(s);
        let s = RaftStorage::load(&engine, &d).expect("load");
        assert_eq!(s.first_index().expect("first"), 3);
        assert_eq!(s.last_index().expect("last"), 4);
    }

    #[test]
    fn garbage_in_the_log_is_an_error_not_a_panic() {
        let engine = Engine::open(&StoreSpec::Memory).expect("open");
        let mut ws = WriteSet::default();
        ws.put(Space::Raw, &keys::raft_log_key(3, 1), b"\xff\xff\xff");
        ws.put(Space::Raw, &keys::raft_hard_state_key(3), b"\x01");
        engine.commit(&ws, false).expect("commit");
        assert!(RaftStorage::load(&engine, &desc()).is_err());
        assert!(decode_snapshot_data(b"\x01\x00").is_err());
    }
}
