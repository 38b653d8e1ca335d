//! Property tests: encodings preserve order (reversed when descending), round-trip,
//! decode canonically, and no input makes a decoder or the pretty-printer panic.

use std::cmp::Ordering;
use std::fmt::Debug;

use proptest::collection::vec;
use proptest::prelude::*;
use tardigrade_encoding::keys::{self, addr, prefix_end, range_descriptor_key, transaction_key};
use tardigrade_encoding::*;

fn dir() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Ascending), Just(Direction::Descending)]
}

fn int() -> impl Strategy<Value = i64> {
    prop_oneof![any::<i64>(), -300i64..300, Just(i64::MIN), Just(i64::MAX)]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        1 => prop::sample::select(vec![0.0, -0.0, f64::NAN, -f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 5e-324, -5e-324, 1.0]),
    ]
}

fn decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        1 => prop::sample::select(vec![Decimal::nan(), Decimal::infinity(true), Decimal::infinity(false)]),
        10 => (any::<bool>(), vec(0u8..10, 0..24), -40i32..40)
            .prop_map(|(neg, digits, exp)| Decimal::from_parts(neg, digits, exp).unwrap()),
    ]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![Just(0u8), Just(1), Just(0xff), Just(b'a'), any::<u8>()],
        0..12,
    )
}

fn string() -> impl Strategy<Value = String> {
    vec(
        prop_oneof![
            Just('\0'),
            Just('a'),
            Just('b'),
            Just('\u{ff}'),
            any::<char>()
        ],
        0..8,
    )
    .prop_map(String::from_iter)
}

fn datum() -> impl Strategy<Value = Datum> {
    prop_oneof![
        Just(Datum::Null),
        any::<bool>().prop_map(Datum::Bool),
        int().prop_map(Datum::Int),
        float().prop_map(Datum::Float),
        decimal().prop_map(Datum::Decimal),
        bytes().prop_map(Datum::Bytes),
        string().prop_map(Datum::String),
        int().prop_map(Datum::Timestamp),
    ]
}

type Decoder<T> = for<'x> fn(&'x [u8], Direction) -> Result<(T, &'x [u8])>;

/// Checks order preservation for `(a, b)` and the round trip of `a`, both directions.
fn check<T: Debug>(
    (a, b): (T, T),
    enc: fn(&mut Vec<u8>, &T, Direction),
    dec: Decoder<T>,
    cmp: fn(&T, &T) -> Ordering,
    same: fn(&T, &T) -> bool,
) -> Result<(), TestCaseError> {
    for dir in [Direction::Ascending, Direction::Descending] {
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        enc(&mut ea, &a, dir);
        enc(&mut eb, &b, dir);
        let want = if dir == Direction::Ascending {
            cmp(&a, &b)
        } else {
            cmp(&a, &b).reverse()
        };
        prop_assert_eq!(
            ea.cmp(&eb),
            want,
            "{:?} vs {:?} {:?}: {:x?} vs {:x?}",
            a,
            b,
            dir,
            ea,
            eb
        );
        ea.extend_from_slice(b"\x00tail");
        let (back, rest) =
            dec(&ea, dir).map_err(|e| TestCaseError::fail(format!("{a:?} {dir:?}: {e}")))?;
        prop_assert!(same(&a, &back), "{:?} decoded as {:?} ({:?})", a, back, dir);
        prop_assert_eq!(rest, b"\x00tail");
    }
    Ok(())
}

/// Decoding must never panic, and whatever decodes must re-encode to the same bytes.
fn check_canonical(buf: &[u8]) -> Result<(), TestCaseError> {
    for dir in [Direction::Ascending, Direction::Descending] {
        if let Ok((d, rest)) = decode_datum(buf, dir) {
            let mut again = Vec::new();
            encode_datum(&mut again, &d, dir);
            prop_assert_eq!(
                &again[..],
                &buf[..buf.len() - rest.len()],
                "{:?} {:?}",
                d,
                dir
            );
        }
        let _ = decode_tuple(buf, &[dir, dir.reverse(), dir]);
        let _ = (
            decode_int(buf, dir),
            decode_uvarint(buf, dir),
            decode_float(buf, dir),
        );
        let _ = (
            decode_decimal(buf, dir),
            decode_bytes(buf, dir),
            decode_string(buf, dir),
        );
        let _ = (
            decode_timestamp(buf, dir),
            decode_bool(buf, dir),
            decode_null(buf, dir),
        );
    }
    let _ = (pretty_key(buf), addr(buf));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn ints(pair in (int(), int())) {
        check(pair, |b, v, d| encode_int(b, *v, d), decode_int, Ord::cmp, PartialEq::eq)?;
    }

    #[test]
    fn uvarints(pair in (any::<u64>(), prop_oneof![any::<u64>(), 0u64..300])) {
        check(pair, |b, v, d| encode_uvarint(b, *v, d), decode_uvarint, Ord::cmp, PartialEq::eq)?;
    }

    #[test]
    fn floats(pair in (float(), float())) {
        let same = |a: &f64, b: &f64| {
            if a.is_nan() { b.is_nan() } else if *a == 0.0 { b.to_bits() == 0 } else { a.to_bits() == b.to_bits() }
        };
        check(pair, |b, v, d| encode_float(b, *v, d), decode_float, |a, b| cmp_float(*a, *b), same)?;
    }

    #[test]
    fn decimals(pair in (decimal(), decimal())) {
        check(pair.clone(), encode_decimal, decode_decimal, Ord::cmp, PartialEq::eq)?;
        // Value order agrees with the order of the f64 approximations when those differ.
        let (a, b) = pair;
        let (fa, fb) = (a.to_string().parse::<f64>().unwrap(), b.to_string().parse::<f64>().unwrap());
        if cmp_float(fa, fb) != Ordering::Equal {
            prop_assert_eq!(a.cmp(&b), cmp_float(fa, fb));
        }
        // Display/FromStr round-trip, preserving the scale.
        prop_assert_eq!(a.to_string().parse::<Decimal>().unwrap().to_string(), a.to_string());
    }

    #[test]
    fn byte_strings(pair in (bytes(), bytes())) {
        check(pair, |b, v, d| encode_bytes(b, v, d), decode_bytes, Ord::cmp, PartialEq::eq)?;
    }

    #[test]
    fn strings(pair in (string(), string())) {
        check(pair, |b, v, d| encode_string(b, v, d), decode_string, Ord::cmp, PartialEq::eq)?;
    }

    #[test]
    fn timestamps(pair in (int(), int())) {
        check(pair, |b, v, d| encode_timestamp(b, *v, d), decode_timestamp, Ord::cmp, PartialEq::eq)?;
    }

    #[test]
    fn datums(pair in (datum(), datum())) {
        check(pair, encode_datum, decode_datum, Ord::cmp, PartialEq::eq)?;
    }

    #[test]
    fn tuples(
        (dirs, a, b) in vec(dir(), 1..5).prop_flat_map(|dirs| {
            let n = dirs.len();
            (Just(dirs), vec(datum(), n), vec((datum(), any::<bool>()), n))
        })
    ) {
        // Make `b` share a random subset of `a`'s columns so that prefixes often tie.
        let b: Vec<Datum> = b.into_iter().zip(&a).map(|((d, keep), x)| if keep { x.clone() } else { d }).collect();
        let want = a.iter().zip(&b).zip(&dirs)
            .map(|((x, y), dir)| if *dir == Direction::Ascending { x.cmp(y) } else { y.cmp(x) })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal);
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        encode_tuple(&mut ea, &a, &dirs);
        encode_tuple(&mut eb, &b, &dirs);
        prop_assert_eq!(ea.cmp(&eb), want);
        let (back, rest) = decode_tuple(&ea, &dirs).unwrap();
        prop_assert_eq!(back, a);
        prop_assert!(rest.is_empty());
        check_canonical(&ea)?;
    }

    #[test]
    fn random_bytes_never_panic(buf in vec(any::<u8>(), 0..40)) {
        check_canonical(&buf)?;
    }

    #[test]
    fn mutated_encodings_never_panic(
        d in vec(datum(), 1..4),
        dir in dir(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = keys::index_prefix(52, 1);
        encode_tuple(&mut buf, &d, &vec![dir; d.len()]);
        for (i, byte) in edits {
            let i = i.index(buf.len());
            buf[i] = byte;
        }
        let cut = cut.index(buf.len() + 1);
        check_canonical(&buf[..cut])?;
        check_canonical(&buf[2..cut.max(2)])?;
        for k in [range_descriptor_key(&buf[..cut]), transaction_key(&buf, [9; 16])] {
            prop_assert!(pretty_key(&k).starts_with("/Local/Range/"));
        }
    }

    #[test]
    fn key_helpers(k in vec(any::<u8>(), 0..10), suffix in vec(any::<u8>(), 0..4)) {
        let extended = [&k[..], &suffix[..]].concat();
        if k.iter().any(|&b| b != 0xff) {
            prop_assert!(extended < prefix_end(&k));
        }
        prop_assert!(keys::key_next(&k) > k);
        if !keys::is_local(&k) {
            prop_assert_eq!(addr(&range_descriptor_key(&k)).unwrap(), k.clone());
            prop_assert_eq!(addr(&transaction_key(&k, [3; 16])).unwrap(), k);
        }
    }
}
