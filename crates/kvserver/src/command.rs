//! What travels through Raft: a replicated command (the proposer's evaluated
//! writes, stats delta and triggers) and the per-range applied state, with
//! their stored binary forms.
//!
//! Decoding never panics: a malformed command or state is an error.

use tardigrade_kvpb::{Lease, RangeDescriptor};
use tardigrade_storage::batch::WriteSet;
use tardigrade_storage::{MvccStats, Space};

const COMMAND_FORMAT: u8 = 1;
const APPLIED_STATE_FORMAT: u8 = 1;

/// A proposal: evaluated on the leaseholder, applied on every replica.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Command {
    /// Unique per proposal; the proposer recognises its command by it.
    pub id: u64,
    /// The replica that proposed it.
    pub proposer: u64,
    /// The sequence of the lease it was evaluated under. A command whose
    /// lease is no longer current when it applies is rejected (a no-op).
    pub lease_sequence: u64,
    pub writes: WriteSet,
    pub stats: MvccStats,
    pub trigger: Option<Trigger>,
}

/// Side effects on the range's own state, applied with the command.
#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    /// RequestLease: installs `new` if the lease is still `prev` at application.
    Lease { prev: Lease, new: Lease },
    /// A split (`split.rs`): the left side shrinks to `left`, `right` is created.
    Split {
        left: RangeDescriptor,
        right: RangeDescriptor,
    },
    /// TODO(issue 3): merges. `left` absorbs the range described by `right`.
    Merge {
        left: RangeDescriptor,
        right: RangeDescriptor,
    },
    /// A replica change to `desc` (`replica_change.rs`): applied only as the
    /// context of a `ConfChangeV2` entry (a normal command carrying it is
    /// rejected).
    ChangeReplicas { desc: RangeDescriptor },
    /// The consistency check (`consistency.rs`): every replica computes a
    /// digest of its replicated data where this command applies, kept
    /// under `id` for the leaseholder to collect.
    ComputeChecksum { id: u64 },
    /// MVCC GC (`gc_queue.rs`): the range's GC threshold moves up to
    /// `threshold` (never down); reads and writes at or below it are
    /// refused from then on.
    GcThreshold {
        threshold: tardigrade_hlc::Timestamp,
    },
}

/// A command or state could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("corrupt replicated state: {0}")]
pub struct DecodeError(pub String);

fn err(msg: &str) -> DecodeError {
    DecodeError(msg.to_string())
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + self.writes.byte_size());
        b.push(COMMAND_FORMAT);
        put_u64(&mut b, self.id);
        put_u64(&mut b, self.proposer);
        put_u64(&mut b, self.lease_sequence);
        put_u64(&mut b, self.writes.len() as u64);
        for ((space, key), value) in self.writes.iter() {
            b.push(space_code(*space));
            put_bytes(&mut b, key);
            match value {
                Some(v) => {
                    b.push(1);
                    put_bytes(&mut b, v);
                }
                None => b.push(0),
            }
        }
        put_stats(&mut b, &self.stats);
        match &self.trigger {
            None => b.push(0),
            Some(Trigger::Lease { prev, new }) => {
                b.push(1);
                put_bytes(&mut b, &prev.encode());
                put_bytes(&mut b, &new.encode());
            }
            Some(Trigger::Split { left, right }) => {
                b.push(2);
                put_bytes(&mut b, &left.encode());
                put_bytes(&mut b, &right.encode());
            }
            Some(Trigger::Merge { left, right }) => {
                b.push(3);
                put_bytes(&mut b, &left.encode());
                put_bytes(&mut b, &right.encode());
            }
            Some(Trigger::ChangeReplicas { desc }) => {
                b.push(4);
                put_bytes(&mut b, &desc.encode());
            }
            Some(Trigger::ComputeChecksum { id }) => {
                b.push(5);
                put_u64(&mut b, *id);
            }
            Some(Trigger::GcThreshold { threshold }) => {
                b.push(6);
                put_u64(&mut b, threshold.wall as u64);
                put_u64(&mut b, threshold.logical as u32 as u64);
            }
        }
        b
    }

    pub fn decode(buf: &[u8]) -> Result<Command, DecodeError> {
        let mut r = Reader { buf };
        if r.u8()? != COMMAND_FORMAT {
            return Err(err("unknown command format"));
        }
        let id = r.u64()?;
        let proposer = r.u64()?;
        let lease_sequence = r.u64()?;
        let n = r.u64()?;
        let mut writes = WriteSet::default();
        for _ in 0..n {
            let space = space_from(r.u8()?)?;
            let key = r.bytes()?;
            match r.u8()? {
                0 => writes.delete(space, key),
                1 => writes.put(space, key, r.bytes()?),
                _ => return Err(err("bad write tag")),
            }
        }
        let stats = r.stats()?;
        let desc = |r: &mut Reader<'_>| {
            RangeDescriptor::decode(r.bytes()?).map_err(|e| DecodeError(e.to_string()))
        };
        let lease =
            |r: &mut Reader<'_>| Lease::decode(r.bytes()?).map_err(|e| DecodeError(e.to_string()));
        let trigger = match r.u8()? {
            0 => None,
            1 => Some(Trigger::Lease {
                prev: lease(&mut r)?,
                new: lease(&mut r)?,
            }),
            2 => Some(Trigger::Split {
                left: desc(&mut r)?,
                right: desc(&mut r)?,
            }),
            3 => Some(Trigger::Merge {
                left: desc(&mut r)?,
                right: desc(&mut r)?,
            }),
            4 => Some(Trigger::ChangeReplicas {
                desc: desc(&mut r)?,
            }),
            5 => Some(Trigger::ComputeChecksum { id: r.u64()? }),
            6 => {
                let wall = r.u64()? as i64;
                let logical = u32::try_from(r.u64()?).map_err(|_| err("bad GC threshold"))?;
                Some(Trigger::GcThreshold {
                    threshold: tardigrade_hlc::Timestamp::new(wall, logical as i32),
                })
            }
            _ => return Err(err("bad trigger tag")),
        };
        r.done()?;
        Ok(Command {
            id,
            proposer,
            lease_sequence,
            writes,
            stats,
            trigger,
        })
    }
}

/// What a replica has applied: stored under the range's applied-state key in
/// the same batch as the commands it covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppliedState {
    pub raft_applied_index: u64,
    /// Commands (not rejected) applied so far.
    pub lease_applied_index: u64,
    pub stats: MvccStats,
}

impl AppliedState {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(17 + 64);
        b.push(APPLIED_STATE_FORMAT);
        put_u64(&mut b, self.raft_applied_index);
        put_u64(&mut b, self.lease_applied_index);
        put_stats(&mut b, &self.stats);
        b
    }

    pub fn decode(buf: &[u8]) -> Result<AppliedState, DecodeError> {
        let mut r = Reader { buf };
        if r.u8()? != APPLIED_STATE_FORMAT {
            return Err(err("unknown applied state format"));
        }
        let s = AppliedState {
            raft_applied_index: r.u64()?,
            lease_applied_index: r.u64()?,
            stats: r.stats()?,
        };
        r.done()?;
        Ok(s)
    }
}

/// `(index, term)` pairs: the truncated state of the Raft log.
pub fn encode_index_term(index: u64, term: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    put_u64(&mut b, index);
    put_u64(&mut b, term);
    b
}

/// A big-endian `u64` (range tombstones).
pub fn decode_u64(buf: &[u8]) -> Result<u64, DecodeError> {
    <[u8; 8]>::try_from(buf)
        .map(u64::from_be_bytes)
        .map_err(|_| err("bad u64"))
}

pub fn decode_index_term(buf: &[u8]) -> Result<(u64, u64), DecodeError> {
    let mut r = Reader { buf };
    let v = (r.u64()?, r.u64()?);
    r.done()?;
    Ok(v)
}

pub(crate) fn space_code(s: Space) -> u8 {
    match s {
        Space::Mvcc => 0,
        Space::Lock => 1,
        Space::Raw => 2,
    }
}

pub(crate) fn space_from(c: u8) -> Result<Space, DecodeError> {
    Ok(match c {
        0 => Space::Mvcc,
        1 => Space::Lock,
        2 => Space::Raw,
        _ => return Err(err("bad space")),
    })
}

pub(crate) fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_bytes(b: &mut Vec<u8>, v: &[u8]) {
    put_u64(b, v.len() as u64);
    b.extend_from_slice(v);
}

fn put_stats(b: &mut Vec<u8>, s: &MvccStats) {
    for v in [
        s.live_count,
        s.live_bytes,
        s.key_count,
        s.key_bytes,
        s.val_count,
        s.val_bytes,
        s.intent_count,
        s.intent_bytes,
    ] {
        put_u64(b, v as u64);
    }
}

/// A cursor over an encoded value.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(err("truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = usize::try_from(self.u64()?).map_err(|_| err("length overflow"))?;
        self.take(n)
    }
    fn stats(&mut self) -> Result<MvccStats, DecodeError> {
        let mut v = [0i64; 8];
        for x in &mut v {
            *x = self.u64()? as i64;
        }
        Ok(MvccStats {
            live_count: v[0],
            live_bytes: v[1],
            key_count: v[2],
            key_bytes: v[3],
            val_count: v[4],
            val_bytes: v[5],
            intent_count: v[6],
            intent_bytes: v[7],
        })
    }
    pub(crate) fn done(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(err("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use tardigrade_hlc::Timestamp;
    use tardigrade_kvpb::ReplicaDescriptor;

    use super::*;

    #[test]
    fn commands_round_trip_and_garbage_is_an_error() {
        let mut writes = WriteSet::default();
        writes.put(Space::Mvcc, b"a", b"1");
        writes.delete(Space::Lock, b"b");
        writes.put(Space::Raw, b"c", b"");
        let lease = Lease {
            replica: ReplicaDescriptor {
                node_id: 1,
                store_id: 1,
                replica_id: 1,
                ..Default::default()
            },
            start: Timestamp::new(1, 0),
            expiration: Timestamp::new(9, 2),
            sequence: 4,
        };
        for trigger in [
            None,
            Some(Trigger::Lease {
                prev: Lease::default(),
                new: lease,
            }),
            Some(Trigger::ChangeReplicas {
                desc: RangeDescriptor::default(),
            }),
            Some(Trigger::ComputeChecksum { id: u64::MAX - 1 }),
            Some(Trigger::GcThreshold {
                threshold: Timestamp::new(1_700_000_000_000_000_000, 3),
            }),
        ] {
            let c = Command {
                id: 7,
                proposer: 2,
                lease_sequence: 3,
                writes: writes.clone(),
                stats: MvccStats {
                    live_count: -1,
                    val_bytes: 5,
                    ..Default::default()
                },
                trigger,
            };
            let enc = c.encode();
            assert_eq!(Command::decode(&enc), Ok(c));
            for cut in 0..enc.len() {
                assert!(Command::decode(&enc[..cut]).is_err());
            }
        }
        let s = AppliedState {
            raft_applied_index: 5,
            lease_applied_index: 3,
            stats: MvccStats::default(),
        };
        assert_eq!(AppliedState::decode(&s.encode()), Ok(s));
        assert!(AppliedState::decode(&[9]).is_err());
    }
}
