//! The layout of Tardigrade's single ordered key space (CockroachDB style).
//!
//! Every key lives in one byte-comparable space, in this order:
//!
//! | key                                   | what                                             |
//! |---------------------------------------|--------------------------------------------------|
//! | `""` ([`MIN_KEY`])                    | the smallest key                                 |
//! | `\x01i<range id><r/u><suffix>…`       | range-ID local: per-replica state (Raft log, hard state, applied state, lease, abort span); `r` = replicated, `u` = unreplicated |
//! | `\x01k<encoded key><suffix>…`         | range-local: data addressed to a global key (range descriptor `rdsc`, transaction record `txn-`) |
//! | `\x01zk<encoded key>…`                | the separated lock table, addressed to the key   |
//! | `\x02<key>`                           | meta1: addressing records for meta2 ranges       |
//! | `\x03<key>`                           | meta2: addressing records for data ranges        |
//! | `\x04<name>…`                         | system keys: node liveness, id generators        |
//! | `<uvarint table id><uvarint index id><columns…>` | SQL table data (`/Table/52/1/…`), starting at [`TABLE_DATA_MIN`] (`0x88`) |
//! | `\xff\xff` ([`MAX_KEY`])              | the end of the key space                         |
//!
//! Local keys (`\x01…`) are stored next to a range's data but are not part of the
//! global space; a range-local key is *addressed* ([`addr`]) to the global key
//! embedded in it, so it lives on the range that owns that key. Range ids, table ids
//! and index ids use the integer encoding of [`encode_uvarint`], so the table space
//! begins at `0x88` (`/Table/0`), above every system key.

use crate::value::{decode_bytes, encode_bytes, encode_uvarint};
use crate::{DecodeError, Direction, Result, pretty_key};

pub const MIN_KEY: &[u8] = b"";
pub const MAX_KEY: &[u8] = b"\xff\xff";
pub const LOCAL_PREFIX: &[u8] = b"\x01";
pub const LOCAL_MAX: &[u8] = b"\x02";
pub const LOCAL_RANGE_ID_PREFIX: &[u8] = b"\x01i";
pub const LOCAL_RANGE_PREFIX: &[u8] = b"\x01k";
pub const LOCAL_LOCK_TABLE_PREFIX: &[u8] = b"\x01zk";
pub const META1_PREFIX: &[u8] = b"\x02";
pub const META2_PREFIX: &[u8] = b"\x03";
pub const META_MIN: &[u8] = META1_PREFIX;
pub const META_MAX: &[u8] = b"\x04";
pub const SYSTEM_PREFIX: &[u8] = b"\x04";
pub const SYSTEM_MAX: &[u8] = b"\x05";
/// `table_prefix(0)`: the first key of the SQL table space.
pub const TABLE_DATA_MIN: &[u8] = b"\x88";
/// `prefix_end(table_prefix(u64::MAX))`: the end of the SQL table space.
pub const TABLE_DATA_MAX: &[u8] = b"\xfe";

/// Range-ID local suffixes: a replicated (`r`) or unreplicated (`u`) infix, then a
/// four-byte name. Replicated keys are part of the range's Raft state machine.
pub const ABORT_SPAN_SUFFIX: &[u8] = b"rabc-";
pub const RANGE_APPLIED_STATE_SUFFIX: &[u8] = b"rrask";
pub const RANGE_LEASE_SUFFIX: &[u8] = b"rrll-";
/// The range's GC threshold: reads and writes at or below it are refused.
pub const RANGE_GC_THRESHOLD_SUFFIX: &[u8] = b"rlgc-";
pub const RAFT_HARD_STATE_SUFFIX: &[u8] = b"urfth";
pub const RAFT_LOG_SUFFIX: &[u8] = b"urftl";
pub const RAFT_TRUNCATED_STATE_SUFFIX: &[u8] = b"urftt";

/// Range-local suffixes, following the encoded key.
pub const RANGE_DESCRIPTOR_SUFFIX: &[u8] = b"rdsc";
pub const TRANSACTION_SUFFIX: &[u8] = b"txn-";

/// System keys.
pub const NODE_LIVENESS_PREFIX: &[u8] = b"\x04liveness-";
pub const DESC_ID_GENERATOR: &[u8] = b"\x04desc-idgen";
pub const NODE_ID_GENERATOR: &[u8] = b"\x04node-idgen";
pub const RANGE_ID_GENERATOR: &[u8] = b"\x04range-idgen";
pub const STORE_ID_GENERATOR: &[u8] = b"\x04store-idgen";
/// Span configs, one per table (or index with its own zone), keyed by the
/// span's start key (`tardigrade_kvpb::zone`).
pub const SPAN_CONFIG_PREFIX: &[u8] = b"\x04span-cfg/";
/// The span config of `RANGE default`, which every other one inherits.
pub const SPAN_CONFIG_DEFAULT: &[u8] = b"\x04span-cfg-default";

/// Pretty names of the range-ID local suffixes.
pub(crate) const RANGE_ID_SUFFIXES: &[(&[u8], &str)] = &[
    (ABORT_SPAN_SUFFIX, "AbortSpan"),
    (RANGE_APPLIED_STATE_SUFFIX, "RangeAppliedState"),
    (RANGE_LEASE_SUFFIX, "RangeLease"),
    (RANGE_GC_THRESHOLD_SUFFIX, "RangeGCThreshold"),
    (RAFT_HARD_STATE_SUFFIX, "RaftHardState"),
    (RAFT_LOG_SUFFIX, "RaftLog"),
    (RAFT_TRUNCATED_STATE_SUFFIX, "RaftTruncatedState"),
];

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `\x01i<range id>`: the prefix of all range-ID local keys of a range.
pub fn range_id_prefix(range_id: u64) -> Vec<u8> {
    range_id_local_key(range_id, b"")
}

/// `\x01i<range id><suffix>`.
pub fn range_id_local_key(range_id: u64, suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(LOCAL_RANGE_ID_PREFIX.len() + 9 + suffix.len());
    k.extend_from_slice(LOCAL_RANGE_ID_PREFIX);
    encode_uvarint(&mut k, range_id, Direction::Ascending);
    k.extend_from_slice(suffix);
    k
}

/// Prefix of a range's Raft log entries.
pub fn raft_log_prefix(range_id: u64) -> Vec<u8> {
    range_id_local_key(range_id, RAFT_LOG_SUFFIX)
}

/// A Raft log entry key; the index is fixed-width big-endian so entries sort by index.
pub fn raft_log_key(range_id: u64, index: u64) -> Vec<u8> {
    let mut k = raft_log_prefix(range_id);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

pub fn raft_hard_state_key(range_id: u64) -> Vec<u8> {
    range_id_local_key(range_id, RAFT_HARD_STATE_SUFFIX)
}

pub fn raft_truncated_state_key(range_id: u64) -> Vec<u8> {
    range_id_local_key(range_id, RAFT_TRUNCATED_STATE_SUFFIX)
}

pub fn range_applied_state_key(range_id: u64) -> Vec<u8> {
    range_id_local_key(range_id, RANGE_APPLIED_STATE_SUFFIX)
}

pub fn range_lease_key(range_id: u64) -> Vec<u8> {
    range_id_local_key(range_id, RANGE_LEASE_SUFFIX)
}

pub fn range_gc_threshold_key(range_id: u64) -> Vec<u8> {
    range_id_local_key(range_id, RANGE_GC_THRESHOLD_SUFFIX)
}

/// The abort span entry of a transaction on a range.
pub fn abort_span_key(range_id: u64, txn_id: [u8; 16]) -> Vec<u8> {
    let mut k = range_id_local_key(range_id, ABORT_SPAN_SUFFIX);
    k.extend_from_slice(&txn_id);
    k
}

/// `\x01k<encoded key>`: the prefix of the range-local keys addressed to `key`.
pub fn range_local_prefix(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(LOCAL_RANGE_PREFIX.len() + key.len() + 3 + 20);
    k.extend_from_slice(LOCAL_RANGE_PREFIX);
    encode_bytes(&mut k, key, Direction::Ascending);
    k
}

/// The range descriptor of the range starting at `start_key`.
pub fn range_descriptor_key(start_key: &[u8]) -> Vec<u8> {
    let mut k = range_local_prefix(start_key);
    k.extend_from_slice(RANGE_DESCRIPTOR_SUFFIX);
    k
}

/// The transaction record, stored on the range of the transaction's anchor key.
pub fn transaction_key(anchor_key: &[u8], txn_id: [u8; 16]) -> Vec<u8> {
    let mut k = range_local_prefix(anchor_key);
    k.extend_from_slice(TRANSACTION_SUFFIX);
    k.extend_from_slice(&txn_id);
    k
}

/// `\x01zk<encoded key>`: the lock-table key of `key` (the storage layer may append).
pub fn lock_table_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(LOCAL_LOCK_TABLE_PREFIX.len() + key.len() + 3);
    k.extend_from_slice(LOCAL_LOCK_TABLE_PREFIX);
    encode_bytes(&mut k, key, Direction::Ascending);
    k
}

pub fn meta1_key(key: &[u8]) -> Vec<u8> {
    concat(&[META1_PREFIX, key])
}

pub fn meta2_key(key: &[u8]) -> Vec<u8> {
    concat(&[META2_PREFIX, key])
}

/// The addressing record for a range whose end key is `key` (a global key): meta2
/// for data keys, meta1 for meta2 keys, [`MIN_KEY`] for meta1 keys and `MIN_KEY`.
pub fn range_meta_key(key: &[u8]) -> Vec<u8> {
    match key.first() {
        None | Some(0x02) => MIN_KEY.to_vec(),
        Some(0x03) => meta1_key(&key[1..]),
        Some(_) => meta2_key(key),
    }
}

pub fn system_key(suffix: &[u8]) -> Vec<u8> {
    concat(&[SYSTEM_PREFIX, suffix])
}

pub fn node_liveness_key(node_id: u64) -> Vec<u8> {
    let mut k = NODE_LIVENESS_PREFIX.to_vec();
    encode_uvarint(&mut k, node_id, Direction::Ascending);
    k
}

/// The span config record of the span starting at `start`.
pub fn span_config_key(start: &[u8]) -> Vec<u8> {
    let mut k = SPAN_CONFIG_PREFIX.to_vec();
    k.extend_from_slice(start);
    k
}

/// `/Table/<table id>`.
pub fn table_prefix(table_id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    encode_uvarint(&mut k, table_id, Direction::Ascending);
    k
}

/// `/Table/<table id>/<index id>`.
pub fn index_prefix(table_id: u64, index_id: u64) -> Vec<u8> {
    let mut k = table_prefix(table_id);
    encode_uvarint(&mut k, index_id, Direction::Ascending);
    k
}

/// Whether `key` is a local key (stored with a range, outside the global space).
pub fn is_local(key: &[u8]) -> bool {
    key.starts_with(LOCAL_PREFIX)
}

/// The global key that `key` is addressed to: itself for a global key, the embedded
/// key for a range-local or lock-table key. Range-ID local keys have no address.
pub fn addr(key: &[u8]) -> Result<Vec<u8>> {
    if !is_local(key) {
        return Ok(key.to_vec());
    }
    let embedded = [LOCAL_RANGE_PREFIX, LOCAL_LOCK_TABLE_PREFIX]
        .iter()
        .find_map(|p| key.strip_prefix(*p));
    match embedded.map(|rest| decode_bytes(rest, Direction::Ascending)) {
        Some(Ok((k, _))) if !is_local(&k) => Ok(k),
        Some(Err(e)) => Err(e),
        _ => Err(DecodeError::NotAddressable(pretty_key(key))),
    }
}

/// The smallest key greater than `key`: `key + 0x00`.
pub fn key_next(key: &[u8]) -> Vec<u8> {
    concat(&[key, b"\x00"])
}

/// The smallest key greater than every key that starts with `prefix`. When there is
/// none (`prefix` is empty or all `0xff`), returns [`MAX_KEY`].
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|&b| b != 0xff) {
        Some(i) => {
            let mut k = prefix[..=i].to_vec();
            k[i] += 1;
            k
        }
        None => MAX_KEY.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_orders() {
        let txn = [7; 16];
        let ordered: Vec<Vec<u8>> = vec![
            MIN_KEY.to_vec(),
            range_id_prefix(1),
            abort_span_key(1, txn),
            range_applied_state_key(1),
            range_lease_key(1),
            raft_hard_state_key(1),
            raft_log_key(1, 1),
            raft_log_key(1, 256),
            raft_truncated_state_key(1),
            range_id_prefix(2),
            range_descriptor_key(b""),
            range_descriptor_key(&table_prefix(52)),
            transaction_key(&table_prefix(52), txn),
            lock_table_key(b"a"),
            LOCAL_MAX.to_vec(),
            meta1_key(MAX_KEY),
            meta2_key(b""),
            meta2_key(MAX_KEY),
            META_MAX.to_vec(),
            node_liveness_key(1),
            SYSTEM_MAX.to_vec(),
            TABLE_DATA_MIN.to_vec(),
            index_prefix(52, 1),
            table_prefix(53),
            table_prefix(u64::MAX),
            TABLE_DATA_MAX.to_vec(),
            MAX_KEY.to_vec(),
        ];
        for w in ordered.windows(2) {
            assert!(
                w[0] < w[1],
                "{} !< {}",
                pretty_key(&w[0]),
                pretty_key(&w[1])
            );
        }
        assert_eq!(table_prefix(0), TABLE_DATA_MIN);
        assert_eq!(table_prefix(52), [0xbc]);
        assert_eq!(prefix_end(&table_prefix(u64::MAX)), TABLE_DATA_MAX);
        assert!(ordered.iter().filter(|k| is_local(k)).count() == 13);
    }

    #[test]
    fn addressing() {
        let t = index_prefix(52, 1);
        assert_eq!(addr(&range_descriptor_key(&t)), Ok(t.clone()));
        assert_eq!(
            addr(&transaction_key(b"a\x00b", [1; 16])),
            Ok(b"a\x00b".to_vec())
        );
        assert_eq!(addr(&lock_table_key(&t)), Ok(t.clone()));
        assert_eq!(addr(&t), Ok(t.clone()));
        assert!(matches!(
            addr(&raft_log_key(3, 4)),
            Err(DecodeError::NotAddressable(_))
        ));
        assert!(matches!(
            addr(&range_descriptor_key(&raft_log_key(3, 4))),
            Err(DecodeError::NotAddressable(_))
        ));
        assert!(addr(b"\x01k\x40abc").is_err());
        assert_eq!(range_meta_key(&t), meta2_key(&t));
        assert_eq!(range_meta_key(&meta2_key(&t)), meta1_key(&t));
        assert_eq!(range_meta_key(&meta1_key(&t)), MIN_KEY);
    }

    #[test]
    fn next_and_prefix_end() {
        assert_eq!(key_next(b"a"), b"a\x00");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"a\x00"), b"a\x01");
        assert_eq!(prefix_end(b""), MAX_KEY);
        assert_eq!(prefix_end(b"\xff"), MAX_KEY);
    }
}
