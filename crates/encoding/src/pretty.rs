//! Human-readable rendering of keys, for logs, errors, `SHOW RANGES` and debugging.
//!
//! [`pretty_key`] follows CockroachDB's style and never fails or panics:
//!
//! - `/Min`, `/Max`;
//! - `/Local/RangeID/5/u/RaftLog/logIndex:12`, `/Local/RangeID/5/r/AbortSpan/<uuid>`;
//! - `/Local/Range/Table/52/rdsc`, `/Local/Range/"a"/txn-/<uuid>`, `/Local/Lock/Table/52/1`;
//! - `/Meta1/Max`, `/Meta2/Table/52`;
//! - `/System/"liveness-"/1` (the printable name, then any encoded datums);
//! - `/Table/52/1/"bob"/7`: the table id, then every datum by its marker ([`Datum`](crate::Datum)'s
//!   `Display`). A descending column is recognized only when its marker is not also a
//!   valid ascending marker, since the key does not record directions.
//!
//! Bytes that cannot be interpreted are printed quoted and escaped, as one final
//! segment: `/Table/52/"\x00\xff"`. A key outside every known space (e.g. `b"a"`,
//! which is below the table space) prints the same way: `/"a"`.

use std::fmt::{self, Write as _};

use crate::datum::decode_datum;
use crate::keys::*;
use crate::value::{INT_MAX, INT_ZERO, decode_bytes, decode_uvarint};
use crate::{Direction, Result};

/// Renders `key` as described in the [module docs](self).
pub fn pretty_key(key: &[u8]) -> String {
    PrettyKey(key).to_string()
}

/// A `Display` adapter for keys that prints like [`pretty_key`] without allocating.
#[derive(Clone, Copy, Debug)]
pub struct PrettyKey<'a>(pub &'a [u8]);

impl fmt::Display for PrettyKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.strip_prefix(LOCAL_PREFIX) {
            Some(rest) => {
                f.write_str("/Local")?;
                local(f, rest)
            }
            None => addressable(f, self.0),
        }
    }
}

/// A meta or global key. Recursion is bounded: local → addressable → global.
fn addressable(f: &mut fmt::Formatter<'_>, key: &[u8]) -> fmt::Result {
    if let Some(rest) = key.strip_prefix(META1_PREFIX) {
        f.write_str("/Meta1")?;
        global(f, rest)
    } else if let Some(rest) = key.strip_prefix(META2_PREFIX) {
        f.write_str("/Meta2")?;
        global(f, rest)
    } else {
        global(f, key)
    }
}

/// A global key outside the meta spaces.
fn global(f: &mut fmt::Formatter<'_>, key: &[u8]) -> fmt::Result {
    match key.first() {
        None => f.write_str("/Min"),
        _ if key == MAX_KEY => f.write_str("/Max"),
        Some(0x04) => {
            f.write_str("/System")?;
            let rest = &key[1..];
            let name = rest
                .iter()
                .position(|b| !b.is_ascii_graphic())
                .unwrap_or(rest.len());
            if name > 0 {
                raw(f, &rest[..name])?;
            }
            datums(f, &rest[name..])
        }
        Some(INT_ZERO..=INT_MAX) => match decode_uvarint(key, Direction::Ascending) {
            Ok((table, rest)) => {
                write!(f, "/Table/{table}")?;
                datums(f, rest)
            }
            Err(_) => raw(f, key),
        },
        Some(_) => raw(f, key),
    }
}

fn local(f: &mut fmt::Formatter<'_>, key: &[u8]) -> fmt::Result {
    let embedded = |prefix: &[u8]| -> Option<Result<(Vec<u8>, &[u8])>> {
        key.strip_prefix(prefix)
            .map(|r| decode_bytes(r, Direction::Ascending))
    };
    if let Some(Ok((addr, rest))) = embedded(&LOCAL_RANGE_PREFIX[1..]) {
        f.write_str("/Range")?;
        addressable(f, &addr)?;
        return match rest
            .strip_prefix(TRANSACTION_SUFFIX)
            .map(<[u8; 16]>::try_from)
        {
            Some(Ok(id)) => write!(f, "/txn-/{}", Uuid(id)),
            _ if rest == RANGE_DESCRIPTOR_SUFFIX => f.write_str("/rdsc"),
            _ => raw_nonempty(f, rest),
        };
    }
    if let Some(Ok((addr, rest))) = embedded(&LOCAL_LOCK_TABLE_PREFIX[1..]) {
        f.write_str("/Lock")?;
        addressable(f, &addr)?;
        return raw_nonempty(f, rest);
    }
    let Some(Ok((range_id, rest))) = key
        .strip_prefix(&LOCAL_RANGE_ID_PREFIX[1..])
        .map(|r| decode_uvarint(r, Direction::Ascending))
    else {
        return raw_nonempty(f, key);
    };
    write!(f, "/RangeID/{range_id}")?;
    let Some(&(suffix, name)) = RANGE_ID_SUFFIXES.iter().find(|(s, _)| rest.starts_with(s)) else {
        return raw_nonempty(f, rest);
    };
    write!(f, "/{}/{name}", char::from(suffix[0]))?;
    let tail = &rest[suffix.len()..];
    if let (RAFT_LOG_SUFFIX, Ok(index)) = (suffix, <[u8; 8]>::try_from(tail)) {
        write!(f, "/logIndex:{}", u64::from_be_bytes(index))
    } else if let (ABORT_SPAN_SUFFIX, Ok(id)) = (suffix, <[u8; 16]>::try_from(tail)) {
        write!(f, "/{}", Uuid(id))
    } else {
        raw_nonempty(f, tail)
    }
}

/// Prints each datum in `rest` (ascending, else descending), then any undecodable tail.
fn datums(f: &mut fmt::Formatter<'_>, mut rest: &[u8]) -> fmt::Result {
    while !rest.is_empty() {
        match decode_datum(rest, Direction::Ascending)
            .or_else(|_| decode_datum(rest, Direction::Descending))
        {
            Ok((d, r)) => {
                write!(f, "/{d}")?;
                rest = r;
            }
            Err(_) => return raw(f, rest),
        }
    }
    Ok(())
}

fn raw(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    f.write_char('/')?;
    write_escaped(f, bytes)
}

fn raw_nonempty(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    if bytes.is_empty() {
        Ok(())
    } else {
        raw(f, bytes)
    }
}

/// Writes `bytes` double-quoted: printable ASCII as is, `"` and `\` escaped, other
/// bytes as `\xNN`.
pub(crate) fn write_escaped(f: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    f.write_char('"')?;
    for &b in bytes {
        match b {
            b'"' | b'\\' => write!(f, "\\{}", char::from(b))?,
            b' '..=b'~' => f.write_char(char::from(b))?,
            _ => write!(f, "\\x{b:02x}")?,
        }
    }
    f.write_char('"')
}

struct Uuid([u8; 16]);

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_char('-')?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Writes microseconds since the epoch as RFC 3339 UTC, e.g. `2024-01-02T03:04:05.5Z`.
pub(crate) fn write_timestamp(f: &mut impl fmt::Write, micros: i64) -> fmt::Result {
    const DAY: i64 = 86_400_000_000;
    let (days, in_day) = (micros.div_euclid(DAY), micros.rem_euclid(DAY));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (secs, mut frac) = (in_day / 1_000_000, in_day % 1_000_000);
    write!(
        f,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )?;
    if frac != 0 {
        let mut width = 6;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        write!(f, ".{frac:0width$}")?;
    }
    f.write_char('Z')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Datum, Decimal, encode_datum, encode_tuple, keys};

    fn table_key(datums: &[Datum], dirs: &[Direction]) -> Vec<u8> {
        let mut k = keys::index_prefix(52, 1);
        encode_tuple(&mut k, datums, dirs);
        k
    }

    #[test]
    fn golden() {
        let txn: [u8; 16] = *b"\x8c\x0a\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e";
        let asc = Direction::Ascending;
        let mut desc_int = keys::index_prefix(52, 2);
        encode_datum(&mut desc_int, &Datum::Int(7), Direction::Descending);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "/Min"),
            (MAX_KEY.to_vec(), "/Max"),
            (
                raft_log_key(5, 12),
                "/Local/RangeID/5/u/RaftLog/logIndex:12",
            ),
            (raft_hard_state_key(5), "/Local/RangeID/5/u/RaftHardState"),
            (
                range_applied_state_key(5),
                "/Local/RangeID/5/r/RangeAppliedState",
            ),
            (range_lease_key(1000), "/Local/RangeID/1000/r/RangeLease"),
            (
                abort_span_key(5, txn),
                "/Local/RangeID/5/r/AbortSpan/8c0a0102-0304-0506-0708-090a0b0c0d0e",
            ),
            (range_id_local_key(5, b"xyz"), "/Local/RangeID/5/\"xyz\""),
            (
                range_descriptor_key(&table_prefix(52)),
                "/Local/Range/Table/52/rdsc",
            ),
            (range_descriptor_key(b""), "/Local/Range/Min/rdsc"),
            (
                range_descriptor_key(&meta2_key(b"a")),
                "/Local/Range/Meta2/\"a\"/rdsc",
            ),
            (
                transaction_key(b"a", txn),
                "/Local/Range/\"a\"/txn-/8c0a0102-0304-0506-0708-090a0b0c0d0e",
            ),
            (
                lock_table_key(&index_prefix(52, 1)),
                "/Local/Lock/Table/52/1",
            ),
            (b"\x01q".to_vec(), "/Local/\"q\""),
            (meta1_key(MAX_KEY), "/Meta1/Max"),
            (meta2_key(&table_prefix(52)), "/Meta2/Table/52"),
            (meta2_key(b"\x02\x02"), "/Meta2/\"\\x02\\x02\""),
            (node_liveness_key(1), "/System/\"liveness-\"/1"),
            (DESC_ID_GENERATOR.to_vec(), "/System/\"desc-idgen\""),
            (
                table_key(&[Datum::String("bob".into()), Datum::Int(7)], &[asc, asc]),
                "/Table/52/1/\"bob\"/7",
            ),
            (
                table_key(
                    &[
                        Datum::Null,
                        Datum::Bool(true),
                        Datum::Float(-1.5),
                        Datum::Decimal("12.30".parse::<Decimal>().unwrap()),
                        Datum::Bytes(vec![0, 255]),
                        Datum::Timestamp(1_700_000_000_000_000),
                        Datum::Int(-3),
                    ],
                    &[asc; 7],
                ),
                "/Table/52/1/NULL/true/-1.5/12.3/b\"\\x00\\xff\"/2023-11-14T22:13:20Z/-3",
            ),
            (desc_int, "/Table/52/2/7"),
            (
                [&index_prefix(52, 1)[..], b"\x00\xfe"].concat(),
                "/Table/52/1/NULL/\"\\xfe\"",
            ),
            (
                [&table_prefix(52)[..], b"\x01\xfe"].concat(),
                "/Table/52/\"\\x01\\xfe\"",
            ),
            (b"a".to_vec(), "/\"a\""),
            (b"\xff".to_vec(), "/\"\\xff\""),
            (b"\xf7\x01".to_vec(), "/\"\\xf7\\x01\""),
        ];
        for (key, want) in cases {
            assert_eq!(pretty_key(&key), want, "{key:x?}");
        }
    }
}
