//! Hostile input never panics: random bytes and near-valid strings fed to every
//! type's text and binary input, and random values through every operator, either
//! succeed or return an error.

use tardigrade_sqltypes::ops::{self, BinOp, UnOp};
use tardigrade_sqltypes::{SqlType, Value};

use SqlType as T;

const TYPES: [SqlType; 18] = [
    T::Unknown,
    T::Bool,
    T::Int2,
    T::Int4,
    T::Int8,
    T::Float4,
    T::Float8,
    T::Decimal(None),
    T::Decimal(Some((5, 2))),
    T::Text,
    T::Varchar(Some(3)),
    T::Char(2),
    T::Bytes,
    T::Date,
    T::Timestamp,
    T::TimestampTz,
    T::Interval,
    T::Jsonb,
];

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, X>(&mut self, xs: &'a [X]) -> &'a X {
        &xs[(self.next() % xs.len() as u64) as usize]
    }
}

const FRAGMENTS: [&str; 32] = [
    "1",
    "-",
    "+",
    ".",
    "e",
    "E",
    "9999999999999999999999",
    "0",
    ":",
    " ",
    "T",
    "Z",
    "BC",
    "day",
    "year",
    "mon",
    "@",
    "ago",
    "P",
    "\\x",
    "\\",
    "{",
    "}",
    "[",
    "\"",
    "nan",
    "inf",
    "é",
    "/",
    "2024-02-30",
    "24:00:00",
    "1e99999",
];

#[test]
fn text_input_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let n = (rng.next() % 6) as usize;
        let s: String = (0..n).map(|_| *rng.pick(&FRAGMENTS)).collect();
        for ty in TYPES {
            if let Ok(v) = Value::from_text(&s, ty) {
                let _ = v.to_text(ty);
                let mut buf = Vec::new();
                let _ = v.write_binary(ty, &mut buf);
            }
        }
    }
}

#[test]
fn binary_input_never_panics() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for _ in 0..20_000 {
        let n = (rng.next() % 20) as usize;
        let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        for ty in TYPES {
            if let Ok(v) = Value::from_binary(&bytes, ty) {
                let _ = v.to_text(ty);
            }
        }
    }
}

#[test]
fn operators_on_random_values_never_panic() {
    let mut rng = Rng(42);
    let samples: Vec<(&str, SqlType)> = vec![
        ("0", T::Int2),
        ("-32768", T::Int2),
        ("2147483647", T::Int4),
        ("-9223372036854775808", T::Int8),
        ("9223372036854775807", T::Int8),
        ("0", T::Float8),
        ("-0", T::Float8),
        ("NaN", T::Float8),
        ("Infinity", T::Float8),
        ("1e308", T::Float8),
        ("3.4e38", T::Float4),
        ("0", T::Decimal(None)),
        ("NaN", T::Decimal(None)),
        ("-Infinity", T::Decimal(None)),
        ("123456789.123456789", T::Decimal(None)),
        ("1e-30", T::Decimal(None)),
        ("abc", T::Text),
        ("", T::Text),
        ("t", T::Bool),
        ("2024-01-31", T::Date),
        ("infinity", T::Date),
        ("2024-01-31 10:00", T::Timestamp),
        ("-infinity", T::TimestampTz),
        ("1 mon -2 days 3 hours", T::Interval),
        ("-178000000 years", T::Interval),
        (r#"{"a":[1,2]}"#, T::Jsonb),
        ("\\x00", T::Bytes),
    ];
    let values: Vec<(Value, SqlType)> = samples
        .iter()
        .map(|(s, t)| (Value::from_text(s, *t).expect("sample"), *t))
        .chain([(Value::Null, T::Unknown), (Value::Null, T::Int4)])
        .collect();
    let ops_list = [
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::Div,
        BinOp::Mod,
        BinOp::Pow,
        BinOp::Eq,
        BinOp::Lt,
        BinOp::And,
        BinOp::Or,
        BinOp::Concat,
        BinOp::Like,
        BinOp::BitAnd,
        BinOp::ShiftLeft,
        BinOp::JsonGet,
        BinOp::JsonGetText,
        BinOp::IsDistinctFrom,
    ];
    for (l, lt) in &values {
        for (r, rt) in &values {
            for op in ops_list {
                if ops::binary_type(op, *lt, *rt).is_ok() {
                    let _ = ops::eval_binary(op, l, r, *lt, *rt);
                }
            }
            let _ = ops::cast(l, *lt, *rt);
        }
        for op in [UnOp::Neg, UnOp::Not, UnOp::BitNot] {
            if ops::unary_type(op, *lt).is_ok() {
                let _ = ops::eval_unary(op, l, *lt);
            }
        }
    }
    let _ = rng.next();
}
