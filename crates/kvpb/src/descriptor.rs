//! Cluster metadata shared by client and server: range descriptors, replica
//! descriptors and leases, with the compact binary form they are stored in
//! (meta records, range-local descriptor keys, lease keys).

use tardigrade_hlc::Timestamp;

use crate::codec::{ByteReader, DecodeError, put_bytes, put_ts};

pub type NodeId = u64;
pub type StoreId = u64;
pub type RangeId = u64;
pub type ReplicaId = u64;

/// A replica's role in its Raft group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReplicaType {
    #[default]
    Voter,
    /// Receives the log but does not vote (being added, fed by a snapshot).
    Learner,
    /// Joint consensus: voter in the incoming configuration only.
    VoterIncoming,
    /// Joint consensus: voter in the outgoing configuration only.
    VoterOutgoing,
}

impl ReplicaType {
    fn code(self) -> u8 {
        match self {
            ReplicaType::Voter => 0,
            ReplicaType::Learner => 1,
            ReplicaType::VoterIncoming => 2,
            ReplicaType::VoterOutgoing => 3,
        }
    }

    fn from_code(c: u8) -> Option<ReplicaType> {
        Some(match c {
            0 => ReplicaType::Voter,
            1 => ReplicaType::Learner,
            2 => ReplicaType::VoterIncoming,
            3 => ReplicaType::VoterOutgoing,
            _ => return None,
        })
    }
}

/// Where one replica of a range lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReplicaDescriptor {
    pub node_id: NodeId,
    pub store_id: StoreId,
    /// Unique within the range; never reused (it is the Raft peer id).
    pub replica_id: ReplicaId,
    pub kind: ReplicaType,
}

/// A range: the span `[start_key, end_key)` and its replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RangeDescriptor {
    pub range_id: RangeId,
    pub start_key: Vec<u8>,
    pub end_key: Vec<u8>,
    pub replicas: Vec<ReplicaDescriptor>,
    pub next_replica_id: ReplicaId,
    /// Incremented by every split, merge and replica change.
    pub generation: u64,
}

impl RangeDescriptor {
    /// A descriptor whose voters are on the given nodes, each with one store
    /// whose id equals the node id and a replica id equal to the node id
    /// (bootstrap and test clusters are laid out this way).
    pub fn with_voters(
        range_id: RangeId,
        start_key: Vec<u8>,
        end_key: Vec<u8>,
        nodes: impl IntoIterator<Item = NodeId>,
    ) -> RangeDescriptor {
        let replicas: Vec<ReplicaDescriptor> = nodes
            .into_iter()
            .map(|n| ReplicaDescriptor {
                node_id: n,
                store_id: n,
                replica_id: n,
                kind: ReplicaType::Voter,
            })
            .collect();
        let next_replica_id = replicas.iter().map(|r| r.replica_id).max().unwrap_or(0) + 1;
        RangeDescriptor {
            range_id,
            start_key,
            end_key,
            replicas,
            next_replica_id,
            generation: 0,
        }
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.start_key.as_slice() <= key && key < self.end_key.as_slice()
    }

    /// Whether `[key, end)` (or the point `key` when `end` is empty) lies inside.
    pub fn contains_span(&self, key: &[u8], end: &[u8]) -> bool {
        if end.is_empty() {
            return self.contains_key(key);
        }
        self.start_key.as_slice() <= key && end <= self.end_key.as_slice()
    }

    pub fn replica_on_store(&self, store_id: StoreId) -> Option<&ReplicaDescriptor> {
        self.replicas.iter().find(|r| r.store_id == store_id)
    }

    pub fn replica(&self, replica_id: ReplicaId) -> Option<&ReplicaDescriptor> {
        self.replicas.iter().find(|r| r.replica_id == replica_id)
    }

    pub fn voters(&self) -> impl Iterator<Item = &ReplicaDescriptor> {
        self.replicas
            .iter()
            .filter(|r| r.kind != ReplicaType::Learner)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + self.start_key.len() + self.end_key.len());
        b.push(DESC_FORMAT);
        b.extend_from_slice(&self.range_id.to_be_bytes());
        put_bytes(&mut b, &self.start_key);
        put_bytes(&mut b, &self.end_key);
        b.extend_from_slice(&(self.replicas.len() as u32).to_be_bytes());
        for r in &self.replicas {
            r.encode_into(&mut b);
        }
        b.extend_from_slice(&self.next_replica_id.to_be_bytes());
        b.extend_from_slice(&self.generation.to_be_bytes());
        b
    }

    pub fn decode(buf: &[u8]) -> Result<RangeDescriptor, DecodeError> {
        let mut r = ByteReader::new(buf);
        if r.u8()? != DESC_FORMAT {
            return Err(DecodeError("unknown range descriptor format"));
        }
        let range_id = r.u64()?;
        let start_key = r.bytes()?;
        let end_key = r.bytes()?;
        let n = r.u32()? as usize;
        let mut replicas = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            replicas.push(ReplicaDescriptor::decode_from(&mut r)?);
        }
        let next_replica_id = r.u64()?;
        let generation = r.u64()?;
        r.done()?;
        Ok(RangeDescriptor {
            range_id,
            start_key,
            end_key,
            replicas,
            next_replica_id,
            generation,
        })
    }
}

impl ReplicaDescriptor {
    fn encode_into(&self, b: &mut Vec<u8>) {
        b.extend_from_slice(&self.node_id.to_be_bytes());
        b.extend_from_slice(&self.store_id.to_be_bytes());
        b.extend_from_slice(&self.replica_id.to_be_bytes());
        b.push(self.kind.code());
    }

    fn decode_from(r: &mut ByteReader<'_>) -> Result<ReplicaDescriptor, DecodeError> {
        Ok(ReplicaDescriptor {
            node_id: r.u64()?,
            store_id: r.u64()?,
            replica_id: r.u64()?,
            kind: ReplicaType::from_code(r.u8()?).ok_or(DecodeError("bad replica type"))?,
        })
    }
}

/// The right to serve reads without consensus and to evaluate writes, held
/// by one replica for `[start, expiration)`. A new lease starts no earlier
/// than the previous one's expiration, so no read served under the old lease
/// can be undercut by a write under the new one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Lease {
    pub replica: ReplicaDescriptor,
    pub start: Timestamp,
    pub expiration: Timestamp,
    /// Incremented when the holder changes.
    pub sequence: u64,
}

impl Lease {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.push(LEASE_FORMAT);
        self.replica.encode_into(&mut b);
        put_ts(&mut b, self.start);
        put_ts(&mut b, self.expiration);
        b.extend_from_slice(&self.sequence.to_be_bytes());
        b
    }

    pub fn decode(buf: &[u8]) -> Result<Lease, DecodeError> {
        let mut r = ByteReader::new(buf);
        if r.u8()? != LEASE_FORMAT {
            return Err(DecodeError("unknown lease format"));
        }
        let replica = ReplicaDescriptor::decode_from(&mut r)?;
        let start = r.ts()?;
        let expiration = r.ts()?;
        let sequence = r.u64()?;
        r.done()?;
        Ok(Lease {
            replica,
            start,
            expiration,
            sequence,
        })
    }

    /// Whether the lease is in force (not yet expired) when the holder's
    /// clock reads `now`, and `ts` is below its expiration. Serving needs
    /// more: [`Lease::usable`].
    pub fn covers(&self, now: Timestamp, ts: Timestamp) -> bool {
        now < self.expiration && ts < self.expiration
    }

    /// Whether the holder may serve a request at `ts` when its clock reads
    /// `now`: the lease is in force and `ts` is below its stasis period,
    /// the last `max_offset` of the lease (as in CockroachDB). The next
    /// holder starts once the lease expired on *its* clock, which may run up
    /// to `max_offset` ahead of this one; serving into the stasis period
    /// would let this holder answer reads, from a lagging clock, after the
    /// next one has acknowledged writes (a stale read, which the
    /// deterministic simulation found with a 72 ms lag). The holder extends
    /// its lease before then while it can reach a quorum.
    pub fn usable(&self, now: Timestamp, ts: Timestamp, max_offset: std::time::Duration) -> bool {
        let offset = i64::try_from(max_offset.as_nanos()).unwrap_or(i64::MAX);
        let stasis = Timestamp::new(
            self.expiration.wall.saturating_sub(offset),
            self.expiration.logical,
        );
        now < self.expiration && ts < stasis
    }
}

const DESC_FORMAT: u8 = 1;
const LEASE_FORMAT: u8 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_unusable_in_its_stasis_period_though_still_in_force() {
        let lease = Lease {
            expiration: Timestamp::new(10_000, 0),
            ..Lease::default()
        };
        let off = std::time::Duration::from_nanos(500);
        let at = |n| Timestamp::new(n, 0);
        assert!(lease.usable(at(9_000), at(9_000), off));
        assert!(lease.usable(at(9_499), at(9_499), off));
        // The last 500 ns: in force (nobody else may take it), not usable.
        assert!(!lease.usable(at(9_500), at(9_500), off));
        assert!(lease.covers(at(9_500), at(9_500)));
        // A request timestamp in the stasis period, on a clock before it.
        assert!(!lease.usable(at(9_000), at(9_600), off));
        // An old timestamp is fine while the lease is in force.
        assert!(lease.usable(at(9_900), at(9_000), off));
        assert!(!lease.usable(at(10_000), at(9_000), off));
    }

    #[test]
    fn descriptors_and_leases_round_trip_and_reject_garbage() {
        let r = ReplicaDescriptor {
            node_id: 1,
            store_id: 2,
            replica_id: 3,
            kind: ReplicaType::Learner,
        };
        let d = RangeDescriptor {
            range_id: 7,
            start_key: b"a".to_vec(),
            end_key: b"m".to_vec(),
            replicas: vec![r, ReplicaDescriptor::default()],
            next_replica_id: 4,
            generation: 9,
        };
        let enc = d.encode();
        assert_eq!(RangeDescriptor::decode(&enc), Ok(d));
        for cut in 0..enc.len() {
            assert!(RangeDescriptor::decode(&enc[..cut]).is_err());
        }
        let l = Lease {
            replica: r,
            start: Timestamp::new(5, 1),
            expiration: Timestamp::new(9, 0),
            sequence: 3,
        };
        assert_eq!(Lease::decode(&l.encode()), Ok(l));
        assert!(Lease::decode(&[1, 2, 3]).is_err());
    }
}
