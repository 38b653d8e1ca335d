//! Arbitrary-precision decimals (SQL `NUMERIC`) and their key encoding.
//!
//! A [`Decimal`] is `±coefficient × 10^exponent`, or NaN, or ±Infinity, as in
//! PostgreSQL. The coefficient keeps its trailing zeros so that [`Display`](fmt::Display)
//! preserves the scale (`12.3400`), but comparison, equality and hashing are by
//! numeric value: `1.1 == 1.10`. Order: `-Infinity < negatives < 0 < positives <
//! Infinity < NaN`, and `NaN == NaN` (PostgreSQL semantics).
//!
//! The key encoding is normalized, so equal values encode to equal bytes; decoding
//! therefore returns the normalized value (`1.10` decodes as `1.1`, `100` as `1E2`,
//! which displays as `100`). A non-zero finite value is written as `0.d₁d₂… × 10^e`:
//! a sign marker, `e` as an integer, then the digits packed two per byte (`pair + 1`,
//! an odd trailing digit padded with 0) and a `0x00` terminator. For negative values
//! everything after the marker is complemented so larger magnitudes sort first.

use std::{
    cmp::Ordering,
    fmt::{self, Write as _},
    hash::{Hash, Hasher},
    num::IntErrorKind,
    str::FromStr,
};

use crate::value::{
    DECIMAL_INF, DECIMAL_NAN, DECIMAL_NEG, DECIMAL_NEG_INF, DECIMAL_POS, DECIMAL_ZERO, decode_int,
    encode_int, finish, first,
};
use crate::{DecodeError, Direction, Result};

/// Largest magnitude of [`Decimal::exponent`] (PostgreSQL allows 131072 digits
/// before the decimal point); bounds the cost of displaying a decoded value.
pub const MAX_EXPONENT: i32 = 131_072;

/// An arbitrary-precision decimal number; see the [module docs](self).
#[derive(Clone)]
pub struct Decimal(Repr);

#[derive(Clone)]
enum Repr {
    NaN,
    Infinity {
        negative: bool,
    },
    /// Digits 0..=9 without leading zeros (zero has none); never negative zero.
    Finite {
        negative: bool,
        coef: Vec<u8>,
        exponent: i32,
    },
}

/// Why text could not be parsed as a [`Decimal`] (PostgreSQL's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseDecimalError {
    #[error("invalid input syntax for type numeric: \"{0}\"")]
    Syntax(String),
    #[error("value overflows numeric format")]
    Overflow,
}

impl Decimal {
    /// Zero (with scale 0).
    pub const ZERO: Decimal = Decimal(Repr::Finite {
        negative: false,
        coef: Vec::new(),
        exponent: 0,
    });

    /// Not-a-number.
    pub const fn nan() -> Self {
        Decimal(Repr::NaN)
    }

    /// Positive or negative infinity.
    pub const fn infinity(negative: bool) -> Self {
        Decimal(Repr::Infinity { negative })
    }

    /// `±digits × 10^exponent`; `digits` are values 0..=9, most significant first.
    /// Returns `None` if a digit is out of range or `|exponent| > MAX_EXPONENT`.
    pub fn from_parts(negative: bool, digits: impl Into<Vec<u8>>, exponent: i32) -> Option<Self> {
        let mut coef = digits.into();
        if coef.iter().any(|&d| d > 9) || exponent.unsigned_abs() > MAX_EXPONENT.unsigned_abs() {
            return None;
        }
        let leading = coef.iter().take_while(|&&d| d == 0).count();
        coef.drain(..leading);
        let negative = negative && !coef.is_empty();
        Some(Decimal(Repr::Finite {
            negative,
            coef,
            exponent,
        }))
    }

    pub fn is_nan(&self) -> bool {
        matches!(self.0, Repr::NaN)
    }

    pub fn is_infinite(&self) -> bool {
        matches!(self.0, Repr::Infinity { .. })
    }

    pub fn is_zero(&self) -> bool {
        matches!(&self.0, Repr::Finite { coef, .. } if coef.is_empty())
    }

    /// True for negative finite values and -Infinity (never for zero or NaN).
    pub fn is_negative(&self) -> bool {
        matches!(self.0, Repr::Infinity { negative } | Repr::Finite { negative, .. } if negative)
    }

    /// Coefficient digits (0..=9, no leading zeros; empty for zero, NaN and infinities).
    pub fn coefficient_digits(&self) -> &[u8] {
        match &self.0 {
            Repr::Finite { coef, .. } => coef,
            _ => &[],
        }
    }

    /// The power of ten the coefficient is multiplied by (0 when not finite).
    pub fn exponent(&self) -> i32 {
        match self.0 {
            Repr::Finite { exponent, .. } => exponent,
            _ => 0,
        }
    }

    /// The ascending marker byte, which also ranks the value's class.
    pub(crate) fn marker(&self) -> u8 {
        match &self.0 {
            Repr::NaN => DECIMAL_NAN,
            Repr::Infinity { negative: true } => DECIMAL_NEG_INF,
            Repr::Infinity { negative: false } => DECIMAL_INF,
            Repr::Finite { coef, .. } if coef.is_empty() => DECIMAL_ZERO,
            Repr::Finite { negative: true, .. } => DECIMAL_NEG,
            Repr::Finite {
                negative: false, ..
            } => DECIMAL_POS,
        }
    }

    /// For a non-zero finite value: `(e, digits)` with the value's magnitude equal to
    /// `0.digits × 10^e` and no trailing zeros in `digits`.
    fn normalized(&self) -> Option<(i64, &[u8])> {
        match &self.0 {
            Repr::Finite { coef, exponent, .. } if !coef.is_empty() => {
                let len = coef.iter().rposition(|&d| d != 0).map_or(0, |i| i + 1);
                Some((i64::from(*exponent) + coef.len() as i64, &coef[..len]))
            }
            _ => None,
        }
    }
}

impl From<i64> for Decimal {
    fn from(v: i64) -> Self {
        let mut digits = Vec::with_capacity(20);
        let mut u = v.unsigned_abs();
        while u > 0 {
            digits.push((u % 10) as u8);
            u /= 10;
        }
        digits.reverse();
        Decimal(Repr::Finite {
            negative: v < 0,
            coef: digits,
            exponent: 0,
        })
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        let (m, o) = (self.marker(), other.marker());
        match m.cmp(&o) {
            Ordering::Equal if m == DECIMAL_POS || m == DECIMAL_NEG => {
                let ord = self.normalized().cmp(&other.normalized());
                if m == DECIMAL_NEG { ord.reverse() } else { ord }
            }
            ord => ord,
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl Hash for Decimal {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.marker().hash(state);
        self.normalized().hash(state);
    }
}

impl FromStr for Decimal {
    type Err = ParseDecimalError;

    /// Parses PostgreSQL numeric text: `-12.3400`, `.5`, `1e10`, `1.5E-3`, `NaN`,
    /// `Infinity`, `-inf` (case-insensitive), surrounded by optional whitespace.
    fn from_str(s: &str) -> Result<Self, ParseDecimalError> {
        let syntax = || ParseDecimalError::Syntax(s.to_owned());
        let t = s.trim();
        if t.eq_ignore_ascii_case("nan") {
            return Ok(Decimal::nan());
        }
        let (negative, body) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        if body.eq_ignore_ascii_case("infinity") || body.eq_ignore_ascii_case("inf") {
            return Ok(Decimal::infinity(negative));
        }
        let (mantissa, exp) = match body.split_once(['e', 'E']) {
            None => (body, 0),
            Some((m, e)) => {
                let overflow = |err: &std::num::ParseIntError| {
                    matches!(
                        err.kind(),
                        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow
                    )
                };
                let e = e.parse::<i64>().map_err(|err| {
                    if overflow(&err) {
                        ParseDecimalError::Overflow
                    } else {
                        syntax()
                    }
                })?;
                (m, e)
            }
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = || int.bytes().chain(frac.bytes());
        if int.len() + frac.len() == 0 || !digits().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let exponent = i32::try_from(exp.saturating_sub(frac.len() as i64))
            .map_err(|_| ParseDecimalError::Overflow)?;
        Decimal::from_parts(
            negative,
            digits().map(|b| b - b'0').collect::<Vec<_>>(),
            exponent,
        )
        .ok_or(ParseDecimalError::Overflow)
    }
}

impl fmt::Display for Decimal {
    /// PostgreSQL text form preserving the scale: `12.3400`, `100`, `NaN`, `-Infinity`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (negative, coef, exponent) = match &self.0 {
            Repr::NaN => return f.write_str("NaN"),
            Repr::Infinity { negative } => {
                return f.write_str(if *negative { "-Infinity" } else { "Infinity" });
            }
            Repr::Finite {
                negative,
                coef,
                exponent,
            } => (*negative, coef.as_slice(), *exponent),
        };
        let digits = |f: &mut fmt::Formatter<'_>, ds: &[u8]| {
            ds.iter()
                .try_for_each(|d| f.write_char(char::from(b'0' + d)))
        };
        let zeros =
            |f: &mut fmt::Formatter<'_>, n: usize| (0..n).try_for_each(|_| f.write_char('0'));
        if negative {
            f.write_char('-')?;
        }
        if exponent >= 0 {
            if coef.is_empty() {
                return f.write_char('0');
            }
            digits(f, coef)?;
            return zeros(f, exponent as usize);
        }
        let scale = exponent.unsigned_abs() as usize;
        let (int, frac) = coef.split_at(coef.len().saturating_sub(scale));
        if int.is_empty() {
            f.write_char('0')?;
        }
        digits(f, int)?;
        f.write_char('.')?;
        zeros(f, scale - frac.len())?;
        digits(f, frac)
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({self})")
    }
}

/// Encodes a decimal by value (equal values, e.g. `1.1` and `1.10`, encode equally).
pub fn encode_decimal(buf: &mut Vec<u8>, d: &Decimal, dir: Direction) {
    let start = buf.len();
    buf.push(d.marker());
    if let Some((e, digits)) = d.normalized() {
        let body = buf.len();
        encode_int(buf, e, Direction::Ascending);
        buf.extend(
            digits
                .chunks(2)
                .map(|p| p[0] * 10 + p.get(1).copied().unwrap_or(0) + 1),
        );
        buf.push(0);
        if d.is_negative() {
            finish(buf, body, Direction::Descending);
        }
    }
    finish(buf, start, dir);
}

/// Decodes a decimal; the result is normalized (no trailing zeros in the coefficient).
pub fn decode_decimal(buf: &[u8], dir: Direction) -> Result<(Decimal, &[u8])> {
    const WHAT: &str = "decimal";
    let (marker, rest) = first(buf, dir.mask(), WHAT)?;
    let negative = match marker {
        DECIMAL_NAN => return Ok((Decimal::nan(), rest)),
        DECIMAL_NEG_INF | DECIMAL_INF => {
            return Ok((Decimal::infinity(marker == DECIMAL_NEG_INF), rest));
        }
        DECIMAL_ZERO => return Ok((Decimal::ZERO, rest)),
        DECIMAL_NEG => true,
        DECIMAL_POS => false,
        _ => {
            return Err(DecodeError::marker(WHAT, buf));
        }
    };
    let inner = if negative { dir.reverse() } else { dir };
    let (e, mut rest) = decode_int(rest, inner)?;
    let mut coef = Vec::new();
    loop {
        let (b, tail) = first(rest, inner.mask(), WHAT)?;
        rest = tail;
        match b {
            0 => break,
            1..=100 => coef.extend_from_slice(&[(b - 1) / 10, (b - 1) % 10]),
            _ => return Err(DecodeError::Invalid(WHAT)),
        }
    }
    if coef.last() == Some(&0) {
        coef.pop(); // padding of an odd digit count
    }
    if coef.first().is_none_or(|&d| d == 0) || coef.last() == Some(&0) {
        return Err(DecodeError::Invalid(WHAT));
    }
    let exponent = e
        .checked_sub(coef.len() as i64)
        .and_then(|x| i32::try_from(x).ok());
    exponent
        .and_then(|exponent| Decimal::from_parts(negative, coef, exponent))
        .map(|d| (d, rest))
        .ok_or(DecodeError::Invalid(WHAT))
}

asc_desc! {
    encode_decimal => encode_decimal_asc, encode_decimal_desc (d: &Decimal);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display() {
        for (input, want) in [
            ("-12.3400", "-12.3400"),
            ("1e10", "10000000000"),
            ("1.5E-3", "0.0015"),
            (" .5 ", "0.5"),
            ("007.", "7"),
            ("-0.00", "0.00"),
            ("0e5", "0"),
            ("+3", "3"),
            ("nan", "NaN"),
            ("-inf", "-Infinity"),
            ("Infinity", "Infinity"),
        ] {
            assert_eq!(d(input).to_string(), want, "{input}");
        }
        for bad in [
            "", ".", "-", "1e", "1.2.3", "abc", "--1", "1e+-2", "-NaN", "1 2",
        ] {
            assert!(
                matches!(bad.parse::<Decimal>(), Err(ParseDecimalError::Syntax(_))),
                "{bad}"
            );
        }
        assert_eq!(
            "1e999999".parse::<Decimal>(),
            Err(ParseDecimalError::Overflow)
        );
        assert_eq!(
            "1e99999999999999999999".parse::<Decimal>(),
            Err(ParseDecimalError::Overflow)
        );
        assert_eq!(Decimal::from(-1230).to_string(), "-1230");
        assert_eq!(Decimal::from(i64::MIN).to_string(), i64::MIN.to_string());
    }

    #[test]
    fn order_and_encoding() {
        use Direction::*;
        let ordered = "-Infinity -1e100 -1.1 -1 -0.001 0 1e-100 0.001 1 1.1 1e100 Infinity NaN";
        let ordered: Vec<&str> = ordered.split(' ').collect();
        let enc = |s: &str, dir| {
            let mut b = Vec::new();
            encode_decimal(&mut b, &d(s), dir);
            b
        };
        for w in ordered.windows(2) {
            assert!(d(w[0]) < d(w[1]), "{w:?}");
            assert!(enc(w[0], Ascending) < enc(w[1], Ascending), "{w:?}");
            assert!(enc(w[0], Descending) > enc(w[1], Descending), "{w:?}");
        }
        assert_eq!(d("1.10"), d("1.1"));
        assert_eq!(enc("1.10", Ascending), enc("1.1", Ascending));
        assert_eq!(enc("-0", Ascending), enc("0.000", Ascending));
        let e = enc("1.100", Descending);
        let (back, rest) = decode_decimal(&e, Descending).unwrap();
        assert_eq!((back.to_string().as_str(), rest), ("1.1", &[][..]));
        let (back, _) = decode_decimal(&enc("-12300", Ascending), Ascending).unwrap();
        assert_eq!(
            (back.coefficient_digits(), back.exponent(), back.to_string()),
            (&[1, 2, 3][..], 2, "-12300".into())
        );
        // Non-canonical digit bytes are rejected: trailing "00" pair, leading zero digit.
        assert!(decode_decimal(&[DECIMAL_POS, 0x89, 11, 1, 0], Ascending).is_err());
        assert!(decode_decimal(&[DECIMAL_POS, 0x89, 2, 0], Ascending).is_err());
        assert!(decode_decimal(&[DECIMAL_POS, 0x89, 0], Ascending).is_err());
        assert!(decode_decimal(&[DECIMAL_POS, 0x89, 102, 0], Ascending).is_err());
    }
}
