//! The byte-comparable MVCC key: escaped user key, terminator, inverted timestamp.
//!
//! `encode_mvcc_key(k, ts)` = `escape(k) ++ 0x00 0x01 ++ !ts` where
//! - `escape` replaces every `0x00` byte of the user key with `0x00 0xFF`, so the
//!   terminator `0x00 0x01` cannot occur inside the escaped key and no encoded
//!   user key is a prefix of another: byte order of the encodings is the byte
//!   order of the user keys, and all versions of a user key are contiguous;
//! - `!ts` is 12 bytes: the wall time (sign bit flipped, so negative walls would
//!   still order correctly) and the logical counter (sign bit flipped), both
//!   big-endian and bitwise inverted, so newer versions sort first.
//!
//! [`mvcc_key_lower_bound`] (the escaped key and terminator) sorts before every
//! version of its user key and after every version of all smaller user keys,
//! so `[lower_bound(start), lower_bound(end))` covers exactly the versions of the
//! user keys in `[start, end)`.

use tardigrade_hlc::Timestamp;

use super::{MvccError, Result};

/// Length of the encoded timestamp suffix.
pub const TIMESTAMP_LEN: usize = 12;

const ESCAPE: u8 = 0x00;
const ESCAPED_00: u8 = 0xFF;
const TERM: u8 = 0x01;

fn escape_into(user_key: &[u8], out: &mut Vec<u8>) {
    out.reserve(user_key.len() + 2 + TIMESTAMP_LEN);
    let mut rest = user_key;
    while let Some(pos) = rest.iter().position(|&b| b == ESCAPE) {
        out.extend_from_slice(&rest[..pos]);
        out.extend_from_slice(&[ESCAPE, ESCAPED_00]);
        rest = &rest[pos + 1..];
    }
    out.extend_from_slice(rest);
    out.extend_from_slice(&[ESCAPE, TERM]);
}

/// The 12-byte inverted encoding of `ts`: newer sorts first.
pub fn encode_timestamp(ts: Timestamp) -> [u8; TIMESTAMP_LEN] {
    let wall = !((ts.wall as u64) ^ (1 << 63));
    let logical = !((ts.logical as u32) ^ (1 << 31));
    let mut out = [0u8; TIMESTAMP_LEN];
    out[..8].copy_from_slice(&wall.to_be_bytes());
    out[8..].copy_from_slice(&logical.to_be_bytes());
    out
}

fn decode_timestamp(b: &[u8; TIMESTAMP_LEN]) -> Timestamp {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    let mut l = [0u8; 4];
    l.copy_from_slice(&b[8..]);
    let wall = (!u64::from_be_bytes(w) ^ (1 << 63)) as i64;
    let logical = (!u32::from_be_bytes(l) ^ (1 << 31)) as i32;
    Timestamp::new(wall, logical)
}

/// Appends the MVCC key of `user_key` at `ts` to `out`.
pub fn encode_mvcc_key_into(user_key: &[u8], ts: Timestamp, out: &mut Vec<u8>) {
    escape_into(user_key, out);
    out.extend_from_slice(&encode_timestamp(ts));
}

/// The MVCC key of `user_key` at `ts`.
pub fn encode_mvcc_key(user_key: &[u8], ts: Timestamp) -> Vec<u8> {
    let mut out = Vec::new();
    encode_mvcc_key_into(user_key, ts, &mut out);
    out
}

/// The smallest MVCC key of `user_key` (escaped key and terminator): the scan
/// bound for spans of user keys.
pub fn mvcc_key_lower_bound(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    escape_into(user_key, &mut out);
    out
}

/// A key greater than every version of `user_key` and smaller than every
/// version of any greater user key.
pub fn mvcc_key_upper_bound(user_key: &[u8]) -> Vec<u8> {
    let mut out = mvcc_key_lower_bound(user_key);
    out.extend_from_slice(&[0xFF; TIMESTAMP_LEN + 1]);
    out
}

/// Decodes `key` into its user key (written into `user_key`, which is cleared
/// first, so that a scan can reuse one buffer) and timestamp.
pub fn decode_mvcc_key_into(key: &[u8], user_key: &mut Vec<u8>) -> Result<Timestamp> {
    user_key.clear();
    let corrupt = || MvccError::Corrupt(format!("bad MVCC key {key:02x?}"));
    if key.len() < 2 + TIMESTAMP_LEN {
        return Err(corrupt());
    }
    let (body, ts) = key.split_at(key.len() - TIMESTAMP_LEN);
    let mut rest = body;
    loop {
        let pos = rest.iter().position(|&b| b == ESCAPE).ok_or_else(corrupt)?;
        user_key.extend_from_slice(&rest[..pos]);
        match rest.get(pos + 1) {
            Some(&ESCAPED_00) => {
                user_key.push(ESCAPE);
                rest = &rest[pos + 2..];
            }
            Some(&TERM) if pos + 2 == rest.len() => break,
            _ => return Err(corrupt()),
        }
    }
    let ts: &[u8; TIMESTAMP_LEN] = ts.try_into().map_err(|_| corrupt())?;
    Ok(decode_timestamp(ts))
}

/// Decodes `key` into its user key and timestamp.
pub fn decode_mvcc_key(key: &[u8]) -> Result<(Vec<u8>, Timestamp)> {
    let mut user_key = Vec::new();
    let ts = decode_mvcc_key_into(key, &mut user_key)?;
    Ok((user_key, ts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts_strategy() -> impl Strategy<Value = Timestamp> {
        (any::<i64>(), any::<i32>()).prop_map(|(w, l)| Timestamp::new(w, l))
    }

    #[test]
    fn examples() {
        let k = encode_mvcc_key(b"a\x00b", Timestamp::new(1, 2));
        assert_eq!(&k[..6], b"a\x00\xffb\x00\x01");
        assert_eq!(k.len(), 6 + TIMESTAMP_LEN);
        assert_eq!(
            decode_mvcc_key(&k).unwrap(),
            (b"a\x00b".to_vec(), Timestamp::new(1, 2))
        );
        assert!(decode_mvcc_key(b"").is_err());
        assert!(decode_mvcc_key(b"a\x00\x02xxxxxxxxxxxx").is_err());
        assert!(decode_mvcc_key(b"a\x00\x01\x00\x01xxxxxxxxxxxx").is_err());
        assert!(decode_mvcc_key(b"a\x00\x01xxxxxxxxxxx").is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(k in proptest::collection::vec(any::<u8>(), 0..12), ts in ts_strategy()) {
            let enc = encode_mvcc_key(&k, ts);
            prop_assert_eq!(decode_mvcc_key(&enc).unwrap(), (k.clone(), ts));
            prop_assert!(enc.starts_with(&mvcc_key_lower_bound(&k)));
            prop_assert!(enc.as_slice() < mvcc_key_upper_bound(&k).as_slice());
        }

        #[test]
        fn order_is_user_key_then_newest_first(
            k1 in proptest::collection::vec(0u8..3, 0..6),
            k2 in proptest::collection::vec(0u8..3, 0..6),
            t1 in ts_strategy(),
            t2 in ts_strategy(),
        ) {
            let e1 = encode_mvcc_key(&k1, t1);
            let e2 = encode_mvcc_key(&k2, t2);
            let want = k1.cmp(&k2).then(t2.cmp(&t1));
            prop_assert_eq!(e1.cmp(&e2), want);
            if k1 < k2 {
                prop_assert!(mvcc_key_upper_bound(&k1) < mvcc_key_lower_bound(&k2));
                prop_assert!(e1 < mvcc_key_lower_bound(&k2));
            }
        }

        #[test]
        fn decoding_garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode_mvcc_key(&b);
        }
    }
}
