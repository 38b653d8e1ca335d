//! On-disk encodings of MVCC values: committed versions and intent records.
//!
//! A version stored in [`Space::Mvcc`](crate::Space::Mvcc) is one header byte
//! (`0` tombstone, `1` value) followed by the value bytes; an empty value is a
//! legal value, distinct from a tombstone.
//!
//! An intent record stored in [`Space::Lock`](crate::Space::Lock) under the raw
//! user key is a hand-written compact encoding, led by a format byte so that it
//! can evolve:
//!
//! ```text
//! format=1
//! txn:     id[16] anchor_key:bytes epoch:u32 write_ts:ts min_ts:ts priority:i32 sequence:i32
//! value:   opt_bytes                       (None = provisional delete)
//! history: count:varint, then (seq:i32 opt_bytes)*   (ascending seq)
//! bytes     = varint length, then the bytes
//! opt_bytes = 0 | 1 bytes
//! ts        = wall:i64 logical:i32
//! ```
//!
//! Fixed-width integers are big-endian; varints are LEB128. Decoding anything
//! else returns [`MvccError::Corrupt`] and never panics.

use tardigrade_hlc::Timestamp;

use super::{MvccError, Result};
use crate::txn::{TxnId, TxnMeta};

const TOMBSTONE: u8 = 0;
const VALUE: u8 = 1;

/// Encodes a version value (`None` = tombstone).
pub fn encode_version(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        None => vec![TOMBSTONE],
        Some(v) => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.push(VALUE);
            out.extend_from_slice(v);
            out
        }
    }
}

/// Decodes a version value: `None` for a tombstone.
pub fn decode_version(raw: &[u8]) -> Result<Option<&[u8]>> {
    match raw.split_first() {
        Some((&TOMBSTONE, [])) => Ok(None),
        Some((&VALUE, rest)) => Ok(Some(rest)),
        _ => Err(MvccError::Corrupt(format!(
            "bad version value header {:02x?}",
            raw.first()
        ))),
    }
}

/// The format byte of intent records written by this binary.
pub const INTENT_FORMAT: u8 = 1;

/// An intent as stored in the lock table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntentRecord {
    /// The writer; `txn.write_timestamp` is the intent's timestamp and
    /// `txn.sequence` the sequence number of `value`.
    pub txn: TxnMeta,
    /// The provisional value; `None` is a provisional delete.
    pub value: Option<Vec<u8>>,
    /// Earlier values of the same epoch, by ascending sequence number.
    pub history: Vec<(i32, Option<Vec<u8>>)>,
}

impl IntentRecord {
    /// The value this intent had as of sequence `seq`: `None` if the
    /// transaction had not written the key yet at `seq`; `Some(None)` for a
    /// provisional delete.
    pub fn value_at_seq(&self, seq: i32) -> Option<Option<&[u8]>> {
        if self.txn.sequence <= seq {
            return Some(self.value.as_deref());
        }
        self.history
            .iter()
            .rev()
            .find(|(s, _)| *s <= seq)
            .map(|(_, v)| v.as_deref())
    }

    /// [`IntentRecord::value_at_seq`], skipping the writes whose sequence
    /// numbers fall in `ignored` (inclusive ranges rolled back by
    /// savepoints): the newest write at or before `seq` that was not rolled
    /// back.
    pub fn value_at_seq_ignoring(&self, seq: i32, ignored: &[(i32, i32)]) -> Option<Option<&[u8]>> {
        if ignored.is_empty() {
            return self.value_at_seq(seq);
        }
        let skipped = |s: i32| ignored.iter().any(|&(lo, hi)| lo <= s && s <= hi);
        std::iter::once((self.txn.sequence, self.value.as_deref()))
            .chain(self.history.iter().rev().map(|(s, v)| (*s, v.as_deref())))
            .find(|(s, _)| *s <= seq && !skipped(*s))
            .map(|(_, v)| v)
    }

    /// The value written at exactly sequence `seq`, if any.
    pub fn value_written_at(&self, seq: i32) -> Option<Option<&[u8]>> {
        if self.txn.sequence == seq {
            return Some(self.value.as_deref());
        }
        self.history
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, v)| v.as_deref())
    }

    pub fn encode(&self) -> Vec<u8> {
        let t = &self.txn;
        let mut out = Vec::with_capacity(
            64 + t.key.len()
                + self.value.as_ref().map_or(0, Vec::len)
                + self
                    .history
                    .iter()
                    .map(|(_, v)| 8 + v.as_ref().map_or(0, Vec::len))
                    .sum::<usize>(),
        );
        out.push(INTENT_FORMAT);
        out.extend_from_slice(&t.id.0);
        put_bytes(&mut out, &t.key);
        out.extend_from_slice(&t.epoch.to_be_bytes());
        put_ts(&mut out, t.write_timestamp);
        put_ts(&mut out, t.min_timestamp);
        out.extend_from_slice(&t.priority.to_be_bytes());
        out.extend_from_slice(&t.sequence.to_be_bytes());
        put_opt_bytes(&mut out, self.value.as_deref());
        put_varint(&mut out, self.history.len() as u64);
        for (seq, v) in &self.history {
            out.extend_from_slice(&seq.to_be_bytes());
            put_opt_bytes(&mut out, v.as_deref());
        }
        out
    }

    pub fn decode(raw: &[u8]) -> Result<IntentRecord> {
        let mut d = Decoder { buf: raw };
        let format = d.u8()?;
        if format != INTENT_FORMAT {
            return Err(MvccError::Corrupt(format!(
                "unknown intent record format {format}"
            )));
        }
        let id = TxnId(d.array::<16>()?);
        let key = d.bytes()?.to_vec();
        let epoch = u32::from_be_bytes(d.array()?);
        let write_timestamp = d.ts()?;
        let min_timestamp = d.ts()?;
        let priority = i32::from_be_bytes(d.array()?);
        let sequence = i32::from_be_bytes(d.array()?);
        let value = d.opt_bytes()?;
        let n = d.varint()?;
        // Every entry takes at least 5 bytes: refuse absurd counts before allocating.
        if n > (d.buf.len() / 5) as u64 {
            return Err(MvccError::Corrupt(format!(
                "intent history of {n} entries in {} bytes",
                d.buf.len()
            )));
        }
        let mut history = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let seq = i32::from_be_bytes(d.array()?);
            history.push((seq, d.opt_bytes()?));
        }
        if !d.buf.is_empty() {
            return Err(MvccError::Corrupt(format!(
                "{} trailing bytes after intent record",
                d.buf.len()
            )));
        }
        Ok(IntentRecord {
            txn: TxnMeta {
                id,
                key,
                epoch,
                write_timestamp,
                min_timestamp,
                priority,
                sequence,
            },
            value,
            history,
        })
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_opt_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            put_bytes(out, b);
        }
    }
}

fn put_ts(out: &mut Vec<u8>, ts: Timestamp) {
    out.extend_from_slice(&ts.wall.to_be_bytes());
    out.extend_from_slice(&ts.logical.to_be_bytes());
}

struct Decoder<'a> {
    buf: &'a [u8],
}

fn short() -> MvccError {
    MvccError::Corrupt("truncated intent record".into())
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(short());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(MvccError::Corrupt(
            "varint too long in intent record".into(),
        ))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| short())?;
        self.take(n)
    }

    fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.bytes()?.to_vec())),
            t => Err(MvccError::Corrupt(format!(
                "bad value tag {t} in intent record"
            ))),
        }
    }

    fn ts(&mut self) -> Result<Timestamp> {
        let wall = i64::from_be_bytes(self.array()?);
        let logical = i32::from_be_bytes(self.array()?);
        Ok(Timestamp::new(wall, logical))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opt_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300))
    }

    fn record() -> impl Strategy<Value = IntentRecord> {
        (
            any::<[u8; 16]>(),
            proptest::collection::vec(any::<u8>(), 0..20),
            any::<u32>(),
            (any::<i64>(), any::<i32>(), any::<i64>(), any::<i32>()),
            any::<i32>(),
            any::<i32>(),
            opt_bytes(),
            proptest::collection::vec((any::<i32>(), opt_bytes()), 0..4),
        )
            .prop_map(
                |(id, key, epoch, (w1, l1, w2, l2), priority, sequence, value, history)| {
                    IntentRecord {
                        txn: TxnMeta {
                            id: TxnId(id),
                            key,
                            epoch,
                            write_timestamp: Timestamp::new(w1, l1),
                            min_timestamp: Timestamp::new(w2, l2),
                            priority,
                            sequence,
                        },
                        value,
                        history,
                    }
                },
            )
    }

    #[test]
    fn versions() {
        assert_eq!(decode_version(&encode_version(None)).unwrap(), None);
        assert_eq!(
            decode_version(&encode_version(Some(b""))).unwrap(),
            Some(&b""[..])
        );
        assert_eq!(
            decode_version(&encode_version(Some(b"x"))).unwrap(),
            Some(&b"x"[..])
        );
        assert!(decode_version(b"").is_err());
        assert!(decode_version(b"\x00x").is_err());
        assert!(decode_version(b"\x02").is_err());
    }

    proptest! {
        #[test]
        fn intent_roundtrip(r in record()) {
            let enc = r.encode();
            prop_assert_eq!(IntentRecord::decode(&enc).unwrap(), r);
            // Every strict prefix is refused.
            for n in 0..enc.len() {
                prop_assert!(IntentRecord::decode(&enc[..n]).is_err());
            }
            let mut longer = enc.clone();
            longer.push(0);
            prop_assert!(IntentRecord::decode(&longer).is_err());
        }

        #[test]
        fn intent_garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = IntentRecord::decode(&b);
            let mut b = b;
            b.insert(0, INTENT_FORMAT);
            let _ = IntentRecord::decode(&b);
        }
    }
}
