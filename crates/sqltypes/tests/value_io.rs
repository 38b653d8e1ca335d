//! Specification tests for values: PostgreSQL 15 text output and input for every type
//! (expected strings taken from a real PostgreSQL 15), binary wire round trips, and
//! the total order / hashing used for sorting, grouping and DISTINCT.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use tardigrade_sqltypes::{Interval, SqlType, Value};

use SqlType as T;

/// Parses `input` as `ty` and prints it back, or `ERROR <sqlstate>`.
fn round_trip(input: &str, ty: SqlType) -> String {
    match Value::from_text(input, ty) {
        Ok(v) => v.to_text(ty),
        Err(e) => format!("ERROR {}", e.code),
    }
}

#[test]
fn text_round_trips_print_like_postgres() {
    let cases: Vec<(&str, SqlType, &str)> = vec![
        // booleans
        ("true", T::Bool, "t"),
        ("yes", T::Bool, "t"),
        ("on", T::Bool, "t"),
        ("1", T::Bool, "t"),
        ("f", T::Bool, "f"),
        ("off", T::Bool, "f"),
        ("  No ", T::Bool, "f"),
        ("maybe", T::Bool, "ERROR 22P02"),
        // integers
        ("  42 ", T::Int4, "42"),
        ("-32768", T::Int2, "-32768"),
        ("32768", T::Int2, "ERROR 22003"),
        ("2147483648", T::Int4, "ERROR 22003"),
        ("9223372036854775807", T::Int8, "9223372036854775807"),
        ("9223372036854775808", T::Int8, "ERROR 22003"),
        ("1.5", T::Int4, "ERROR 22P02"),
        ("", T::Int4, "ERROR 22P02"),
        // floats: shortest round trip, PostgreSQL's exponent thresholds
        ("1e15", T::Float8, "1e+15"),
        ("1e14", T::Float8, "100000000000000"),
        ("0.0001", T::Float8, "0.0001"),
        ("0.00001234", T::Float8, "1.234e-05"),
        ("1.5e300", T::Float8, "1.5e+300"),
        ("-1.5", T::Float8, "-1.5"),
        ("NaN", T::Float8, "NaN"),
        ("-Infinity", T::Float8, "-Infinity"),
        ("-0", T::Float8, "-0"),
        ("1e400", T::Float8, "ERROR 22003"),
        ("abc", T::Float8, "ERROR 22P02"),
        ("1e6", T::Float4, "1e+06"),
        ("1234567", T::Float4, "1.234567e+06"),
        ("0.1", T::Float4, "0.1"),
        ("3.4e38", T::Float4, "3.4e+38"),
        ("1e39", T::Float4, "ERROR 22003"),
        // numerics keep or impose their scale
        ("1.50", T::Decimal(None), "1.50"),
        ("1.5", T::Decimal(Some((10, 2))), "1.50"),
        ("1.555", T::Decimal(Some((10, 2))), "1.56"),
        ("-1.555", T::Decimal(Some((10, 2))), "-1.56"),
        ("1000", T::Decimal(Some((5, 2))), "ERROR 22003"),
        ("1e3", T::Decimal(None), "1000"),
        ("NaN", T::Decimal(None), "NaN"),
        ("x1", T::Decimal(None), "ERROR 22P02"),
        // strings
        ("abc", T::Varchar(Some(3)), "abc"),
        ("abcd", T::Varchar(Some(3)), "ERROR 22001"),
        ("abc  ", T::Varchar(Some(3)), "abc"),
        ("ab", T::Char(4), "ab  "),
        ("héllo", T::Text, "héllo"),
        // bytea
        ("\\x0102FF", T::Bytes, "\\x0102ff"),
        ("a\\\\b", T::Bytes, "\\x615c62"),
        ("\\001abc", T::Bytes, "\\x01616263"),
        ("\\x012", T::Bytes, "ERROR 22P02"),
        ("\\xzz", T::Bytes, "ERROR 22P02"),
        // uuid
        (
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            T::Uuid,
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ),
        (
            "{a0eebc999c0b4ef8bb6d6bb9bd380a11}",
            T::Uuid,
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ),
        ("a0eebc99", T::Uuid, "ERROR 22P02"),
        // jsonb: keys ordered by length then bytes, PostgreSQL spacing
        (
            r#"{"a":[1,{"c":"x\n"}],"bb":null,"c":true}"#,
            T::Jsonb,
            r#"{"a": [1, {"c": "x\n"}], "c": true, "bb": null}"#,
        ),
        ("[]", T::Jsonb, "[]"),
        ("{bad", T::Jsonb, "ERROR 22P02"),
        // dates and times (session time zone UTC)
        ("2024-01-02", T::Date, "2024-01-02"),
        ("4714-11-24 BC", T::Date, "4714-11-24 BC"),
        ("2024-02-30", T::Date, "ERROR 22008"),
        (
            "2024-01-02 03:04:05.120",
            T::Timestamp,
            "2024-01-02 03:04:05.12",
        ),
        (
            "2024-01-02T03:04:05Z",
            T::TimestampTz,
            "2024-01-02 03:04:05+00",
        ),
        (
            "2024-06-01 12:00:00.000001-07",
            T::TimestampTz,
            "2024-06-01 19:00:00.000001+00",
        ),
        (
            "0044-03-15 12:00 BC",
            T::Timestamp,
            "0044-03-15 12:00:00 BC",
        ),
        ("infinity", T::Timestamp, "infinity"),
        ("nonsense", T::Timestamp, "ERROR 22007"),
        // intervals, PostgreSQL's default style
        ("-1 year -2 months", T::Interval, "-1 years -2 mons"),
        ("1 year -1 day", T::Interval, "1 year -1 days"),
        ("-1 mon +1 day", T::Interval, "-1 mons +1 day"),
        ("1 day 01:02:03.5", T::Interval, "1 day 01:02:03.5"),
        ("P1DT2H", T::Interval, "1 day 02:00:00"),
        ("1 fortnight", T::Interval, "ERROR 22007"),
        // untyped literals stay text
        ("anything", T::Unknown, "anything"),
    ];
    for (input, ty, want) in cases {
        assert_eq!(round_trip(input, ty), want, "{input:?}::{ty}");
    }
}

#[test]
fn input_errors_carry_postgres_messages() {
    let msg = |s: &str, ty| Value::from_text(s, ty).expect_err("must fail").message;
    assert_eq!(
        msg("x", T::Int4),
        "invalid input syntax for type integer: \"x\""
    );
    assert_eq!(
        msg("99999", T::Int2),
        "value \"99999\" is out of range for type smallint"
    );
    assert_eq!(
        msg("abcd", T::Varchar(Some(3))),
        "value too long for type character varying(3)"
    );
    assert_eq!(msg("{", T::Jsonb), "invalid input syntax for type json");
    assert_eq!(
        msg("12345.6", T::Decimal(Some((5, 2)))),
        "numeric field overflow"
    );
}

#[test]
fn binary_formats_round_trip_and_match_postgres_layouts() {
    let cases: Vec<(&str, SqlType)> = vec![
        ("t", T::Bool),
        ("-5", T::Int2),
        ("123456", T::Int4),
        ("-9223372036854775808", T::Int8),
        ("1.5", T::Float4),
        ("-2.25e100", T::Float8),
        ("0", T::Decimal(None)),
        ("1.50", T::Decimal(None)),
        ("-12345.678", T::Decimal(None)),
        ("0.00012", T::Decimal(None)),
        ("100000000", T::Decimal(None)),
        ("NaN", T::Decimal(None)),
        ("héllo", T::Text),
        ("\\x00ff", T::Bytes),
        ("2024-01-02", T::Date),
        ("1969-07-20 20:17:40.5", T::Timestamp),
        ("2024-01-02 03:04:05+00", T::TimestampTz),
        ("1 year 2 mons 3 days 04:05:06", T::Interval),
        ("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", T::Uuid),
        (r#"{"a": [1, 2]}"#, T::Jsonb),
    ];
    for (text, ty) in cases {
        let v = Value::from_text(text, ty).expect("literal");
        let mut buf = Vec::new();
        v.write_binary(ty, &mut buf).expect("write");
        let back = Value::from_binary(&buf, ty).expect("read");
        assert_eq!(back.to_text(ty), v.to_text(ty), "{text}::{ty}");
    }
    let bin = |text: &str, ty| {
        let mut buf = Vec::new();
        Value::from_text(text, ty)
            .expect("literal")
            .write_binary(ty, &mut buf)
            .expect("write");
        buf
    };
    // date: days since 2000-01-01; numeric 1.50: ndigits 2, weight 0, +, dscale 2, 1 5000
    assert_eq!(bin("2000-01-02", T::Date), 1i32.to_be_bytes());
    assert_eq!(
        bin("1.50", T::Decimal(None)),
        [0, 2, 0, 0, 0, 0, 0, 2, 0, 1, 0x13, 0x88]
    );
    // 12345.678 = 1 2345 . 6780, weight 1, dscale 3
    assert_eq!(
        bin("12345.678", T::Decimal(None)),
        [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
    );
    assert_eq!(
        bin("1 day", T::Interval),
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    );
    assert_eq!(bin("{}", T::Jsonb), b"\x01{}");
}

#[test]
fn malformed_binary_input_is_an_error_not_a_panic() {
    let cases: Vec<(&[u8], SqlType)> = vec![
        (&[1, 2, 3], T::Int4),
        (&[2], T::Bool),
        (&[], T::Int8),
        (&[0, 1], T::Decimal(None)),
        (&[0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10], T::Decimal(None)),
        (&[0, 2, 0, 0, 0, 0, 0, 0, 0, 1], T::Decimal(None)),
        (&[0xff, 0xfe], T::Text),
        (&[2, b'{', b'}'], T::Jsonb),
        (&[1, 2, 3], T::Uuid),
        (&[0; 15], T::Interval),
    ];
    for (bytes, ty) in cases {
        let e = Value::from_binary(bytes, ty).expect_err("must fail");
        assert!(
            ["22P03", "22021", "22P02"].contains(&e.code),
            "{bytes:?} as {ty}: {e}"
        );
    }
}

fn hash(v: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

#[test]
fn numbers_compare_and_hash_equal_across_representations() {
    let one = [
        Value::Int(1),
        Value::Float(1.0),
        Value::Decimal("1.00".parse().expect("dec")),
    ];
    for a in &one {
        for b in &one {
            assert_eq!(a, b);
            assert_eq!(hash(a), hash(b), "{a:?} vs {b:?}");
        }
    }
    let half = [
        Value::Float(0.5),
        Value::Decimal("0.50".parse().expect("dec")),
    ];
    assert_eq!(half[0], half[1]);
    assert_eq!(hash(&half[0]), hash(&half[1]));
    // 0.1 as a double is not exactly 1/10
    assert_ne!(
        Value::Float(0.1),
        Value::Decimal("0.1".parse().expect("dec"))
    );
    assert_eq!(Value::Float(-0.0), Value::Float(0.0));
    assert_eq!(hash(&Value::Float(-0.0)), hash(&Value::Int(0)));
    assert_eq!(Value::Float(f64::NAN), Value::Float(f64::NAN));
    assert!(Value::Float(f64::NAN) > Value::Float(f64::INFINITY));
    assert!(Value::Int(i64::MAX) < Value::Float(9.3e18));
    assert!(Value::Int(2) > Value::Float(1.5));
    assert!(Value::Decimal("2.5".parse().expect("dec")) < Value::Int(3));
}

#[test]
fn the_total_order_puts_null_first_and_sorts_within_types() {
    let mut vs = vec![
        Value::Int(3),
        Value::Null,
        Value::Float(-1.5),
        Value::Decimal("2".parse().expect("dec")),
    ];
    vs.sort();
    assert_eq!(
        vs,
        vec![
            Value::Null,
            Value::Float(-1.5),
            Value::Decimal("2".parse().expect("dec")),
            Value::Int(3)
        ]
    );
    assert!(Value::Text("B".into()) < Value::Text("a".into()));
    assert!(Value::Text("a".into()) < Value::Text("ab".into()));
    let iv = |months, days, micros| {
        Value::Interval(Interval {
            months,
            days,
            micros,
        })
    };
    assert_eq!(iv(1, 0, 0), iv(0, 30, 0));
    assert_eq!(hash(&iv(1, 0, 0)), hash(&iv(0, 30, 0)));
    assert!(iv(0, 1, 0) > iv(0, 0, 86_399_999_999));
    let j = |s: &str| Value::from_text(s, T::Jsonb).expect("json");
    assert_eq!(j(r#"{"a":1,"b":2}"#), j(r#"{"b":2,"a":1}"#));
    assert_eq!(hash(&j("1")), hash(&j("1.0")));
}

#[test]
fn values_print_as_the_column_type_they_are_written_for() {
    assert_eq!(Value::Int(1).to_text(T::Decimal(Some((10, 2)))), "1.00");
    assert_eq!(Value::Int(3).to_text(T::Float8), "3");
    assert_eq!(Value::Float(1e20).to_text(T::Float8), "1e+20");
    assert_eq!(Value::Float(0.1).to_text(T::Float4), "0.1");
    assert_eq!(Value::Text("ab".into()).to_text(T::Char(3)), "ab ");
    assert_eq!(
        Value::Date(0).to_text(T::TimestampTz),
        "1970-01-01 00:00:00+00"
    );
    let mut buf = Vec::new();
    Value::Int(2)
        .write_binary(T::Float8, &mut buf)
        .expect("int as float8");
    assert_eq!(buf, 2f64.to_be_bytes());
}
