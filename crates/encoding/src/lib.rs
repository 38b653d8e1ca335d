//! Order-preserving key encodings, the key-space layout and key pretty-printing.
//!
//! This is the bottom layer of Tardigrade. Every layer above stores data in one
//! ordered, byte-comparable key space (`fjall` has no custom comparator), so every
//! value that can appear in a key is encoded such that comparing the encoded bytes
//! with `memcmp` gives the same answer as comparing the values:
//!
//! - [`value`]: scalar encoders/decoders (NULL, bool, integers, floats, byte strings,
//!   strings, timestamps), each ascending or descending ([`Direction`]);
//! - [`decimal`]: the arbitrary-precision [`Decimal`] type and its key encoding;
//! - [`datum`]: the dynamically typed [`Datum`] and tuples of datums;
//! - [`keys`]: the layout of the monolithic key space (local, meta1, meta2, system,
//!   table data) and its constructors;
//! - [`pretty`]: [`pretty_key`], a human-readable rendering of any key.
//!
//! Encoders append to a caller-owned `&mut Vec<u8>` and never allocate otherwise.
//! Decoders never panic on malformed input: they return [`DecodeError`]. Decoding is
//! strict: every accepted encoding is the canonical encoding of the decoded value, so
//! re-encoding reproduces the input bytes exactly.
//!
//! ```
//! use tardigrade_encoding::{Datum, Direction, decode_tuple, encode_tuple, keys, pretty_key};
//!
//! let dirs = [Direction::Ascending, Direction::Descending];
//! let mut key = keys::index_prefix(52, 1);
//! encode_tuple(&mut key, &[Datum::String("bob".into()), Datum::Int(7)], &dirs);
//! assert_eq!(pretty_key(&key), r#"/Table/52/1/"bob"/7"#);
//! let (row, rest) = decode_tuple(&key[2..], &dirs).unwrap();
//! assert_eq!((row[1].clone(), rest), (Datum::Int(7), &[][..]));
//! ```

/// Defines `xxx_asc` / `xxx_desc` wrappers around a direction-taking encoder.
macro_rules! asc_desc {
    ($($gen:ident => $asc:ident, $desc:ident ($($arg:ident: $ty:ty),*);)*) => {$(
        #[doc = concat!("[`", stringify!($gen), "`] in ascending order.")]
        #[inline]
        pub fn $asc(buf: &mut Vec<u8>, $($arg: $ty),*) {
            $gen(buf, $($arg,)* $crate::Direction::Ascending)
        }
        #[doc = concat!("[`", stringify!($gen), "`] in descending order.")]
        #[inline]
        pub fn $desc(buf: &mut Vec<u8>, $($arg: $ty),*) {
            $gen(buf, $($arg,)* $crate::Direction::Descending)
        }
    )*};
}

pub mod datum;
pub mod decimal;
pub mod keys;
pub mod pretty;
pub mod value;

pub use datum::{Datum, cmp_float, decode_datum, decode_tuple, encode_datum, encode_tuple};
pub use decimal::{Decimal, ParseDecimalError, decode_decimal, encode_decimal};
pub use pretty::{PrettyKey, pretty_key};
pub use value::*;

/// The sort direction of an encoded value. A descending encoding is the bitwise
/// complement of the ascending one, which reverses the byte order because every
/// ascending encoding is prefix-free (no encoding is a proper prefix of another).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    Ascending,
    Descending,
}

impl Direction {
    /// The opposite direction.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::Ascending => Direction::Descending,
            Direction::Descending => Direction::Ascending,
        }
    }

    /// The byte every encoded byte is XORed with: `0x00` ascending, `0xff` descending.
    #[inline]
    pub(crate) fn mask(self) -> u8 {
        match self {
            Direction::Ascending => 0x00,
            Direction::Descending => 0xff,
        }
    }
}

/// Why a byte string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended in the middle of a value.
    #[error("unexpected end of input while decoding {0}")]
    Truncated(&'static str),
    /// The leading marker byte does not start a value of the expected type.
    #[error("unexpected marker byte {found:#04x} while decoding {expected}")]
    BadMarker { expected: &'static str, found: u8 },
    /// The bytes are malformed, out of range or not the canonical encoding.
    #[error("invalid {0} encoding")]
    Invalid(&'static str),
    /// A string value is not valid UTF-8.
    #[error("string value is not valid UTF-8")]
    Utf8,
    /// [`keys::addr`] was asked for the address of a key that has none.
    #[error("key {0} has no global address")]
    NotAddressable(String),
}

impl DecodeError {
    /// A [`DecodeError::BadMarker`] for the first byte of `buf`.
    pub(crate) fn marker(expected: &'static str, buf: &[u8]) -> Self {
        let found = buf.first().copied().unwrap_or_default();
        DecodeError::BadMarker { expected, found }
    }
}

/// Result alias for decoders.
pub type Result<T, E = DecodeError> = std::result::Result<T, E>;
