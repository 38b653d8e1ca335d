//! INET values: an IPv4 or IPv6 address with a netmask length, as
//! PostgreSQL's `inet` type reads and prints them.
//!
//! A value is held as bytes (`Value::Bytes` typed [`SqlType::Inet`]): the
//! family (4 or 6), the address's 4 or 16 bytes, then the mask length, so
//! that byte order sorts by family, then address, then mask.
//! TODO(issue 13): PostgreSQL compares the common network prefix before
//! the mask length; the `cidr` type; the inet functions and operators
//! (`host`, `masklen`, `<<`, …).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::codes;
use crate::{SqlError, SqlResult, SqlType};

fn bad(s: &str) -> SqlError {
    SqlError::new(
        codes::INVALID_TEXT_REPRESENTATION,
        format!("invalid input syntax for type inet: \"{s}\""),
    )
}

/// Parses `addr[/bits]`.
pub fn parse(s: &str) -> SqlResult<Vec<u8>> {
    let t = s.trim();
    let (addr, bits) = match t.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (t, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| bad(s))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        None => max,
        Some(b) => b
            .parse::<u8>()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| bad(s))?,
    };
    Ok(encode(ip, bits))
}

fn encode(ip: IpAddr, bits: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(18);
    match ip {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
    out.push(bits);
    out
}

fn decode(b: &[u8]) -> Option<(IpAddr, u8)> {
    match b {
        [4, a, b2, c, d, bits] => Some((IpAddr::V4(Ipv4Addr::new(*a, *b2, *c, *d)), *bits)),
        [6, rest @ ..] if rest.len() == 17 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&rest[..16]);
            Some((IpAddr::V6(Ipv6Addr::from(o)), rest[16]))
        }
        _ => None,
    }
}

/// `addr` (the mask length only when it is not the whole address).
pub fn write_text(out: &mut String, b: &[u8]) {
    use std::fmt::Write;
    match decode(b) {
        Some((ip, bits)) => {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let _ = write!(out, "{ip}");
            if bits != max {
                let _ = write!(out, "/{bits}");
            }
        }
        None => out.push('?'),
    }
}

/// PostgreSQL's binary form: family (2 for IPv4, 3 for IPv6), mask
/// length, is-cidr (0), address length, address bytes.
pub fn write_binary(out: &mut Vec<u8>, b: &[u8]) -> SqlResult<()> {
    let (ip, bits) = decode(b).ok_or_else(|| SqlError::internal("corrupt inet value"))?;
    match ip {
        IpAddr::V4(a) => {
            out.extend_from_slice(&[2, bits, 0, 4]);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.extend_from_slice(&[3, bits, 0, 16]);
            out.extend_from_slice(&a.octets());
        }
    }
    Ok(())
}

/// Reads PostgreSQL's binary form ([`write_binary`]); 22P03 when malformed.
pub fn read_binary(b: &[u8]) -> SqlResult<Vec<u8>> {
    let malformed = || {
        SqlError::new(
            codes::INVALID_BINARY_REPRESENTATION,
            format!("invalid binary representation for type {}", SqlType::Inet),
        )
    };
    match b {
        [2, bits, _, 4, a, b2, c, d] if *bits <= 32 => {
            Ok(encode(IpAddr::V4(Ipv4Addr::new(*a, *b2, *c, *d)), *bits))
        }
        [3, bits, _, 16, rest @ ..] if *bits <= 128 && rest.len() == 16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(rest);
            Ok(encode(IpAddr::V6(Ipv6Addr::from(o)), *bits))
        }
        _ => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(s: &str) -> String {
        let mut out = String::new();
        write_text(&mut out, &parse(s).unwrap_or_default());
        out
    }

    #[test]
    fn reads_and_prints_as_postgresql() {
        assert_eq!(round("192.168.0.1"), "192.168.0.1");
        assert_eq!(round("192.168.0.1/32"), "192.168.0.1");
        assert_eq!(round(" 10.0.0.0/8 "), "10.0.0.0/8");
        assert_eq!(round("::1"), "::1");
        assert_eq!(round("2001:DB8::1/64"), "2001:db8::1/64");
        assert!(parse("10.0.0.1/33").is_err());
        assert!(parse("300.1.1.1").is_err());
        assert!(parse("abc").is_err());
    }

    #[test]
    fn bytes_sort_by_family_then_address_then_mask() {
        let a = parse("10.0.0.2").unwrap_or_default();
        let b = parse("10.0.0.10").unwrap_or_default();
        let c = parse("::1").unwrap_or_default();
        assert!(a < b && b < c);
    }

    #[test]
    fn binary_round_trips() {
        for s in ["127.0.0.1", "10.0.0.0/8", "fe80::1/10"] {
            let v = parse(s).unwrap_or_default();
            let mut wire = Vec::new();
            write_binary(&mut wire, &v).unwrap_or_default();
            assert_eq!(read_binary(&wire).ok(), Some(v));
        }
        assert!(read_binary(&[2, 40, 0, 4, 1, 2, 3, 4]).is_err());
    }
}
