//! Order-preserving encodings of scalar values.
//!
//! Every value starts with a marker byte that identifies its type, so a
//! [`Datum`](crate::Datum) can be decoded without a schema and values of different
//! types order by marker. Ascending marker layout (descending is the complement):
//!
//! | bytes        | value                                                       |
//! |--------------|-------------------------------------------------------------|
//! | `0x00`       | NULL (so NULL sorts first ascending, last descending)       |
//! | `0x10/0x11`  | false / true                                                |
//! | `0x20..0x23` | float: negative, zero, positive, NaN (NaN sorts last, as in PostgreSQL) |
//! | `0x30..0x35` | decimal: -Infinity, negative, zero, positive, +Infinity, NaN |
//! | `0x40`       | byte string                                                 |
//! | `0x41`       | text string                                                 |
//! | `0x50`       | timestamp (followed by an integer)                          |
//! | `0x80..0xfd` | integer, length-tagged big-endian (CockroachDB's varint)    |
//!
//! Integers need no extra marker: `0x80..0x87` tag negative values of 8..1 bytes,
//! `0x88..0xf5` are the values 0..=109 in one byte, `0xf6..0xfd` tag positive values
//! of 1..8 bytes. Table and index ids use the same encoding, so `/Table/52` is `0xbc`.
//!
//! Byte strings escape `0x00` as `0x00 0xff` and end with `0x00 0x01`, so a string
//! sorts before its extensions ("a" < "a\0" < "ab") and the encoding is prefix-free.

use crate::{DecodeError, Direction, Result};

pub(crate) const NULL: u8 = 0x00;
pub(crate) const FALSE: u8 = 0x10;
pub(crate) const TRUE: u8 = 0x11;
pub(crate) const FLOAT_NEG: u8 = 0x20;
pub(crate) const FLOAT_ZERO: u8 = 0x21;
pub(crate) const FLOAT_POS: u8 = 0x22;
pub(crate) const FLOAT_NAN: u8 = 0x23;
pub(crate) const DECIMAL_NEG_INF: u8 = 0x30;
pub(crate) const DECIMAL_NEG: u8 = 0x31;
pub(crate) const DECIMAL_ZERO: u8 = 0x32;
pub(crate) const DECIMAL_POS: u8 = 0x33;
pub(crate) const DECIMAL_INF: u8 = 0x34;
pub(crate) const DECIMAL_NAN: u8 = 0x35;
pub(crate) const BYTES: u8 = 0x40;
pub(crate) const STRING: u8 = 0x41;
pub(crate) const TIMESTAMP: u8 = 0x50;
pub(crate) const INT_MIN: u8 = 0x80;
pub(crate) const INT_ZERO: u8 = 0x88;
pub(crate) const INT_MAX: u8 = 0xfd;
/// The largest integer encoded in a single byte.
const INT_SMALL: u64 = (INT_MAX - INT_ZERO - 8) as u64;

const ESCAPE: u8 = 0x00;
const ESCAPED_00: u8 = 0xff;
const TERMINATOR: u8 = 0x01;

/// Complements `buf[start..]` when encoding descending.
#[inline]
pub(crate) fn finish(buf: &mut [u8], start: usize, dir: Direction) {
    if dir == Direction::Descending {
        buf[start..].iter_mut().for_each(|b| *b = !*b);
    }
}

/// Splits off the first byte, unmasked.
#[inline]
pub(crate) fn first<'a>(buf: &'a [u8], mask: u8, what: &'static str) -> Result<(u8, &'a [u8])> {
    buf.split_first()
        .map(|(&b, rest)| (b ^ mask, rest))
        .ok_or(DecodeError::Truncated(what))
}

#[inline]
fn take<'a>(buf: &'a [u8], n: usize, what: &'static str) -> Result<(&'a [u8], &'a [u8])> {
    buf.split_at_checked(n).ok_or(DecodeError::Truncated(what))
}

#[inline]
fn be_u64(bytes: &[u8], mask: u8) -> u64 {
    bytes
        .iter()
        .fold(0, |acc, &b| (acc << 8) | u64::from(b ^ mask))
}

/// Number of big-endian bytes needed to hold `v` (at least 1).
#[inline]
fn byte_len(v: u64) -> usize {
    (v.max(1).ilog2() / 8 + 1) as usize
}

fn expect_marker<'a>(buf: &'a [u8], mask: u8, marker: u8, what: &'static str) -> Result<&'a [u8]> {
    match first(buf, mask, what)? {
        (m, rest) if m == marker => Ok(rest),
        _ => Err(DecodeError::marker(what, buf)),
    }
}

/// Encodes a NULL.
pub fn encode_null(buf: &mut Vec<u8>, dir: Direction) {
    buf.push(NULL ^ dir.mask());
}

/// Decodes a NULL.
pub fn decode_null(buf: &[u8], dir: Direction) -> Result<((), &[u8])> {
    expect_marker(buf, dir.mask(), NULL, "NULL").map(|rest| ((), rest))
}

/// Encodes a boolean (false < true).
pub fn encode_bool(buf: &mut Vec<u8>, v: bool, dir: Direction) {
    buf.push(if v { TRUE } else { FALSE } ^ dir.mask());
}

/// Decodes a boolean.
pub fn decode_bool(buf: &[u8], dir: Direction) -> Result<(bool, &[u8])> {
    match first(buf, dir.mask(), "bool")? {
        (FALSE, rest) => Ok((false, rest)),
        (TRUE, rest) => Ok((true, rest)),
        _ => Err(DecodeError::marker("bool", buf)),
    }
}

fn uvarint_asc(buf: &mut Vec<u8>, v: u64) {
    if v <= INT_SMALL {
        buf.push(INT_ZERO + v as u8);
    } else {
        let n = byte_len(v);
        buf.push(INT_MAX - 8 + n as u8);
        buf.extend_from_slice(&v.to_be_bytes()[8 - n..]);
    }
}

/// Encodes an unsigned integer; shares the integer encoding (and order) with
/// [`encode_int`] for values up to `i64::MAX`. Used for table, index and range ids.
pub fn encode_uvarint(buf: &mut Vec<u8>, v: u64, dir: Direction) {
    let start = buf.len();
    uvarint_asc(buf, v);
    finish(buf, start, dir);
}

/// Decodes an unsigned integer written by [`encode_uvarint`] (or a non-negative
/// [`encode_int`]).
pub fn decode_uvarint(buf: &[u8], dir: Direction) -> Result<(u64, &[u8])> {
    let mask = dir.mask();
    match first(buf, mask, "unsigned int")? {
        (m, rest) if (INT_ZERO..=INT_MAX - 8).contains(&m) => Ok((u64::from(m - INT_ZERO), rest)),
        (m, rest) if m > INT_MAX - 8 && m <= INT_MAX => {
            let n = usize::from(m - (INT_MAX - 8));
            let (bytes, rest) = take(rest, n, "unsigned int")?;
            let v = be_u64(bytes, mask);
            if v <= INT_SMALL || byte_len(v) != n {
                return Err(DecodeError::Invalid("unsigned int"));
            }
            Ok((v, rest))
        }
        _ => Err(DecodeError::marker("unsigned int", buf)),
    }
}

/// Encodes a signed integer in 1 to 9 bytes; 0..=109 take one byte.
pub fn encode_int(buf: &mut Vec<u8>, v: i64, dir: Direction) {
    let start = buf.len();
    if v >= 0 {
        uvarint_asc(buf, v as u64);
    } else {
        let n = byte_len(!v as u64);
        buf.push(INT_ZERO - n as u8);
        buf.extend_from_slice(&v.to_be_bytes()[8 - n..]);
    }
    finish(buf, start, dir);
}

/// Decodes a signed integer.
pub fn decode_int(buf: &[u8], dir: Direction) -> Result<(i64, &[u8])> {
    let mask = dir.mask();
    let (m, rest) = first(buf, mask, "int")?;
    if !(INT_MIN..INT_ZERO).contains(&m) {
        let (v, rest) = decode_uvarint(buf, dir)?;
        return Ok((
            i64::try_from(v).map_err(|_| DecodeError::Invalid("int"))?,
            rest,
        ));
    }
    let n = usize::from(INT_ZERO - m);
    let (bytes, rest) = take(rest, n, "int")?;
    let raw = be_u64(bytes, mask);
    let v = (raw | u64::MAX.checked_shl(8 * n as u32).unwrap_or(0)) as i64;
    if v >= 0 || byte_len(!v as u64) != n {
        return Err(DecodeError::Invalid("int"));
    }
    Ok((v, rest))
}

/// Encodes a float. `-0.0` and `+0.0` encode identically; NaN sorts after `+inf`.
pub fn encode_float(buf: &mut Vec<u8>, v: f64, dir: Direction) {
    let start = buf.len();
    if v.is_nan() {
        buf.push(FLOAT_NAN);
    } else if v == 0.0 {
        buf.push(FLOAT_ZERO);
    } else if v < 0.0 {
        buf.push(FLOAT_NEG);
        buf.extend_from_slice(&(!v.to_bits()).to_be_bytes());
    } else {
        buf.push(FLOAT_POS);
        buf.extend_from_slice(&v.to_bits().to_be_bytes());
    }
    finish(buf, start, dir);
}

/// Decodes a float. Zero decodes as `+0.0`, NaN as [`f64::NAN`].
pub fn decode_float(buf: &[u8], dir: Direction) -> Result<(f64, &[u8])> {
    let mask = dir.mask();
    match first(buf, mask, "float")? {
        (FLOAT_ZERO, rest) => Ok((0.0, rest)),
        (FLOAT_NAN, rest) => Ok((f64::NAN, rest)),
        (m @ (FLOAT_NEG | FLOAT_POS), rest) => {
            let (bytes, rest) = take(rest, 8, "float")?;
            let bits = be_u64(bytes, mask);
            let v = f64::from_bits(if m == FLOAT_NEG { !bits } else { bits });
            // Only non-zero, non-NaN values of the marker's sign are canonical.
            let ok = if m == FLOAT_NEG { v < 0.0 } else { v > 0.0 };
            ok.then_some((v, rest)).ok_or(DecodeError::Invalid("float"))
        }
        _ => Err(DecodeError::marker("float", buf)),
    }
}

fn escaped(buf: &mut Vec<u8>, marker: u8, v: &[u8], dir: Direction) {
    let start = buf.len();
    buf.reserve(v.len() + 3);
    buf.push(marker);
    let mut rest = v;
    while let Some(i) = rest.iter().position(|&b| b == 0) {
        buf.extend_from_slice(&rest[..i]);
        buf.extend_from_slice(&[ESCAPE, ESCAPED_00]);
        rest = &rest[i + 1..];
    }
    buf.extend_from_slice(rest);
    buf.extend_from_slice(&[ESCAPE, TERMINATOR]);
    finish(buf, start, dir);
}

fn unescape<'a>(
    buf: &'a [u8],
    dir: Direction,
    marker: u8,
    what: &'static str,
    out: &mut Vec<u8>,
) -> Result<&'a [u8]> {
    let mask = dir.mask();
    let mut rest = expect_marker(buf, mask, marker, what)?;
    loop {
        let i = rest
            .iter()
            .position(|&b| b == ESCAPE ^ mask)
            .ok_or(DecodeError::Truncated(what))?;
        if mask == 0 {
            out.extend_from_slice(&rest[..i]);
        } else {
            out.extend(rest[..i].iter().map(|b| !b));
        }
        let (esc, tail) = first(&rest[i + 1..], mask, what)?;
        rest = tail;
        match esc {
            ESCAPED_00 => out.push(0),
            TERMINATOR => return Ok(rest),
            _ => return Err(DecodeError::Invalid(what)),
        }
    }
}

/// Encodes a byte string (marker, `0x00` escaped as `0x00 0xff`, then `0x00 0x01`).
pub fn encode_bytes(buf: &mut Vec<u8>, v: &[u8], dir: Direction) {
    escaped(buf, BYTES, v, dir);
}

/// Decodes a byte string, appending it to `out` (lets callers reuse a buffer).
pub fn decode_bytes_into<'a>(buf: &'a [u8], dir: Direction, out: &mut Vec<u8>) -> Result<&'a [u8]> {
    unescape(buf, dir, BYTES, "bytes", out)
}

/// Decodes a byte string.
pub fn decode_bytes(buf: &[u8], dir: Direction) -> Result<(Vec<u8>, &[u8])> {
    let mut out = Vec::new();
    let rest = decode_bytes_into(buf, dir, &mut out)?;
    Ok((out, rest))
}

/// Encodes a text string: like [`encode_bytes`] with its own marker, so it decodes
/// back as a string (and all strings sort after all byte strings).
pub fn encode_string(buf: &mut Vec<u8>, v: &str, dir: Direction) {
    escaped(buf, STRING, v.as_bytes(), dir);
}

/// Decodes a text string, rejecting invalid UTF-8.
pub fn decode_string(buf: &[u8], dir: Direction) -> Result<(String, &[u8])> {
    let mut out = Vec::new();
    let rest = unescape(buf, dir, STRING, "string", &mut out)?;
    Ok((String::from_utf8(out).map_err(|_| DecodeError::Utf8)?, rest))
}

/// Encodes a timestamp given in microseconds since the Unix epoch.
pub fn encode_timestamp(buf: &mut Vec<u8>, micros: i64, dir: Direction) {
    buf.push(TIMESTAMP ^ dir.mask());
    encode_int(buf, micros, dir);
}

/// Decodes a timestamp as microseconds since the Unix epoch.
pub fn decode_timestamp(buf: &[u8], dir: Direction) -> Result<(i64, &[u8])> {
    decode_int(expect_marker(buf, dir.mask(), TIMESTAMP, "timestamp")?, dir)
}

asc_desc! {
    encode_null => encode_null_asc, encode_null_desc ();
    encode_bool => encode_bool_asc, encode_bool_desc (v: bool);
    encode_uvarint => encode_uvarint_asc, encode_uvarint_desc (v: u64);
    encode_int => encode_int_asc, encode_int_desc (v: i64);
    encode_float => encode_float_asc, encode_float_desc (v: f64);
    encode_bytes => encode_bytes_asc, encode_bytes_desc (v: &[u8]);
    encode_string => encode_string_asc, encode_string_desc (v: &str);
    encode_timestamp => encode_timestamp_asc, encode_timestamp_desc (micros: i64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;

    fn enc(f: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
        let mut buf = Vec::new();
        f(&mut buf);
        buf
    }

    #[test]
    fn int_layout() {
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x88]),
            (109, &[0xf5]),
            (110, &[0xf6, 110]),
            (256, &[0xf7, 1, 0]),
            (-1, &[0x87, 0xff]),
            (-256, &[0x87, 0x00]),
            (-257, &[0x86, 0xfe, 0xff]),
            (i64::MIN, &[0x80, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            (
                i64::MAX,
                &[0xfd, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
        ];
        for &(v, want) in cases {
            assert_eq!(enc(|b| encode_int_asc(b, v)), want, "{v}");
            for dir in [Ascending, Descending] {
                assert_eq!(
                    decode_int(&enc(|b| encode_int(b, v, dir)), dir),
                    Ok((v, &[][..]))
                );
            }
        }
        assert_eq!(enc(|b| encode_uvarint_asc(b, u64::MAX))[0], 0xfd);
        assert!(decode_int(&enc(|b| encode_uvarint_asc(b, u64::MAX)), Ascending).is_err());
        // Non-canonical lengths are rejected.
        assert!(decode_int(&[0xf6, 5], Ascending).is_err());
        assert!(decode_int(&[0xf7, 0, 200], Ascending).is_err());
        assert!(decode_int(&[0x86, 0xff, 0xff], Ascending).is_err());
        assert!(
            decode_int(
                &[0x80, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Ascending
            )
            .is_err()
        );
        assert_eq!(
            decode_int(&[0xf7, 1], Ascending),
            Err(DecodeError::Truncated("unsigned int"))
        );
    }

    #[test]
    fn float_edges() {
        let ordered = [
            f64::NEG_INFINITY,
            f64::MIN,
            -1.0,
            -f64::MIN_POSITIVE,
            -4.9e-324,
            0.0,
            4.9e-324,
            f64::MIN_POSITIVE,
            1.0,
            f64::MAX,
            f64::INFINITY,
            f64::NAN,
        ];
        for w in ordered.windows(2) {
            assert!(enc(|b| encode_float_asc(b, w[0])) < enc(|b| encode_float_asc(b, w[1])));
            assert!(enc(|b| encode_float_desc(b, w[0])) > enc(|b| encode_float_desc(b, w[1])));
        }
        assert_eq!(
            enc(|b| encode_float_asc(b, -0.0)),
            enc(|b| encode_float_asc(b, 0.0))
        );
        let (z, _) = decode_float(&enc(|b| encode_float_asc(b, -0.0)), Ascending).unwrap();
        assert!(z == 0.0 && z.is_sign_positive());
        assert!(
            decode_float(&enc(|b| encode_float_desc(b, f64::NAN)), Descending)
                .unwrap()
                .0
                .is_nan()
        );
        for v in [f64::INFINITY, f64::NEG_INFINITY, 4.9e-324, -4.9e-324] {
            assert_eq!(
                decode_float(&enc(|b| encode_float_desc(b, v)), Descending)
                    .unwrap()
                    .0,
                v
            );
        }
        // A NaN payload or a zero behind the positive marker is not canonical.
        assert!(decode_float(&[FLOAT_POS, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0], Ascending).is_err());
        assert!(decode_float(&[FLOAT_POS, 0, 0, 0, 0, 0, 0, 0, 0], Ascending).is_err());
    }

    #[test]
    fn byte_strings() {
        let ordered: [&[u8]; 7] = [b"", b"\x00", b"\x00\xff", b"a", b"a\x00", b"ab", b"a\xff"];
        for w in ordered.windows(2) {
            assert!(enc(|b| encode_bytes_asc(b, w[0])) < enc(|b| encode_bytes_asc(b, w[1])));
            assert!(enc(|b| encode_bytes_desc(b, w[0])) > enc(|b| encode_bytes_desc(b, w[1])));
        }
        assert_eq!(
            enc(|b| encode_bytes_asc(b, b"a\x00")),
            b"\x40a\x00\xff\x00\x01"
        );
        for v in ordered {
            for dir in [Ascending, Descending] {
                let e = enc(|b| encode_bytes(b, v, dir));
                assert_eq!(decode_bytes(&e, dir), Ok((v.to_vec(), &[][..])));
                assert!(decode_bytes(&e[..e.len() - 1], dir).is_err());
                assert!(decode_string(&e, dir).is_err());
            }
        }
        assert_eq!(
            decode_string(b"\x41\xff\x00\x01", Ascending),
            Err(DecodeError::Utf8)
        );
        assert!(decode_bytes(b"\x40a\x00\x02", Ascending).is_err());
        let s = enc(|b| encode_string_desc(b, ""));
        assert_eq!(decode_string(&s, Descending), Ok((String::new(), &[][..])));
    }
}
