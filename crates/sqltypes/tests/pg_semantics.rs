//! Specification tests: operators, casts, functions and text I/O produce exactly what
//! PostgreSQL 15 prints (expected strings were taken from a real PostgreSQL 15), and
//! fail with PostgreSQL's SQLSTATEs.

use tardigrade_sqltypes::ops::{
    self, BinOp, UnOp, binary_type, call_function, cast, common_type, eval_binary, eval_unary,
    function_type,
};
use tardigrade_sqltypes::{SqlType, Value};

use SqlType as T;

/// A typed literal, as `'text'::type`; `None` is NULL.
type Lit<'a> = (Option<&'a str>, SqlType);

fn lit((s, ty): Lit) -> Value {
    match s {
        None => Value::Null,
        Some(s) => Value::from_text(s, ty).unwrap_or_else(|e| panic!("literal {s}::{ty}: {e}")),
    }
}

/// Output text, `NULL`, or `ERROR <sqlstate>`.
fn show(r: Result<(Value, SqlType), tardigrade_sqltypes::SqlError>) -> String {
    match r {
        Ok((Value::Null, _)) => "NULL".to_owned(),
        Ok((v, ty)) => v.to_text(ty),
        Err(e) => format!("ERROR {}", e.code),
    }
}

fn bin(op: BinOp, l: Lit, r: Lit) -> String {
    show(
        binary_type(op, l.1, r.1)
            .and_then(|rt| eval_binary(op, &lit(l), &lit(r), l.1, r.1).map(|v| (v, rt))),
    )
}

fn i4(s: &'static str) -> Lit<'static> {
    (Some(s), T::Int4)
}
fn i8(s: &'static str) -> Lit<'static> {
    (Some(s), T::Int8)
}
fn f8(s: &'static str) -> Lit<'static> {
    (Some(s), T::Float8)
}
fn num(s: &'static str) -> Lit<'static> {
    (Some(s), T::Decimal(None))
}
fn txt(s: &'static str) -> Lit<'static> {
    (Some(s), T::Text)
}
const NULL: Lit<'static> = (None, T::Unknown);

#[test]
fn arithmetic_matches_postgres() {
    use BinOp::*;
    let cases: Vec<(BinOp, Lit, Lit, &str)> = vec![
        (Add, i4("1"), i4("2"), "3"),
        (Add, i4("2147483647"), i4("1"), "ERROR 22003"),
        (Add, i4("2147483647"), i8("1"), "2147483648"),
        (
            Add,
            (Some("32767"), T::Int2),
            (Some("1"), T::Int2),
            "ERROR 22003",
        ),
        (Mul, i8("9223372036854775807"), i8("2"), "ERROR 22003"),
        (Div, i4("7"), i4("2"), "3"),
        (Div, i4("-7"), i4("2"), "-3"),
        (Mod, i4("7"), i4("-3"), "1"),
        (Mod, i4("-7"), i4("3"), "-1"),
        (Div, i4("1"), i4("0"), "ERROR 22012"),
        (Mod, i4("1"), i4("0"), "ERROR 22012"),
        (Div, f8("1"), i4("0"), "ERROR 22012"),
        (Div, f8("NaN"), i4("0"), "NaN"),
        (Div, num("1"), i4("0"), "ERROR 22012"),
        (Div, num("1"), i4("3"), "0.33333333333333333333"),
        (Div, i4("1"), num("3.0"), "0.33333333333333333333"),
        (Div, num("10"), num("4"), "2.5000000000000000"),
        (Add, f8("0.1"), f8("0.2"), "0.30000000000000004"),
        (Add, f8("1.5"), i4("1"), "2.5"),
        (Mul, f8("1e308"), i4("10"), "ERROR 22003"),
        (Pow, i4("2"), i4("10"), "1024"),
        (Pow, num("2.0"), num("0.5"), "1.4142135623730950"),
        (Pow, num("2"), num("3"), "8.0000000000000000"),
        (Add, num("1.50"), num("2.5"), "4.00"),
        (Mul, num("1.5"), num("1.25"), "1.875"),
        (Mod, num("7"), num("3.5"), "0.0"),
        (BitAnd, i4("5"), i4("3"), "1"),
        (BitOr, i4("5"), i4("3"), "7"),
        (BitXor, i4("5"), i4("3"), "6"),
        (ShiftLeft, i4("1"), i4("4"), "16"),
        (ShiftRight, i4("-16"), i4("2"), "-4"),
        (Add, i4("1"), NULL, "NULL"),
        (Add, (Some("1"), T::Unknown), i4("2"), "3"),
    ];
    for (op, l, r, want) in cases {
        assert_eq!(bin(op, l, r), want, "{l:?} {op:?} {r:?}");
    }
}

#[test]
fn untyped_literals_take_the_type_the_operator_needs() {
    use BinOp::*;
    let unk = |s: &'static str| (Some(s), T::Unknown);
    let cases: Vec<(BinOp, Lit, Lit, &str)> = vec![
        (Concat, unk("abc"), i4("1"), "abc1"),
        (Concat, unk("a"), unk("b"), "ab"),
        (Like, unk("abc"), unk("a%"), "t"),
        (JsonGet, (Some(r#"{"a":1}"#), T::Jsonb), unk("a"), "1"),
        (
            Add,
            (Some("2024-01-01"), T::Timestamp),
            unk("1 day"),
            "2024-01-02 00:00:00",
        ),
        (Eq, (Some("2024-01-01"), T::Date), unk("2024-01-01"), "t"),
        (Lt, i4("1"), unk("2"), "t"),
        (Eq, i4("1"), unk("x"), "ERROR 22P02"),
    ];
    for (op, l, r, want) in cases {
        assert_eq!(bin(op, l, r), want, "{l:?} {op:?} {r:?}");
    }
}

#[test]
fn date_and_interval_arithmetic_matches_postgres() {
    use BinOp::*;
    let d = |s: &'static str| (Some(s), T::Date);
    let ts = |s: &'static str| (Some(s), T::Timestamp);
    let iv = |s: &'static str| (Some(s), T::Interval);
    let cases: Vec<(BinOp, Lit, Lit, &str)> = vec![
        (Add, d("2024-01-31"), i4("1"), "2024-02-01"),
        (Sub, d("2024-03-01"), d("2024-01-01"), "60"),
        (Add, d("2024-01-31"), iv("1 month"), "2024-02-29 00:00:00"),
        (
            Add,
            ts("2024-01-31 10:00"),
            iv("1 month"),
            "2024-02-29 10:00:00",
        ),
        (
            Sub,
            ts("2024-01-02 12:00"),
            ts("2024-01-01 10:00"),
            "1 day 02:00:00",
        ),
        (Mul, iv("1 day"), num("1.5"), "1 day 12:00:00"),
        (Div, iv("1 mon"), i4("7"), "4 days 06:51:25.6896"),
        (Add, iv("1 day"), iv("-2 hours"), "1 day -02:00:00"),
        (Lt, d("2024-01-01"), ts("2024-01-01 00:00:01"), "t"),
        (Eq, iv("1 mon"), iv("30 days"), "t"),
    ];
    for (op, l, r, want) in cases {
        assert_eq!(bin(op, l, r), want, "{l:?} {op:?} {r:?}");
    }
}

#[test]
fn comparisons_logic_and_strings_match_postgres() {
    use BinOp::*;
    let b = |s: &'static str| (Some(s), T::Bool);
    let cases: Vec<(BinOp, Lit, Lit, &str)> = vec![
        (Eq, i4("1"), num("1.0"), "t"),
        (Eq, f8("1"), num("1"), "t"),
        (Eq, f8("0.1"), num("0.1"), "t"),
        (Lt, (Some("0.1"), T::Float4), f8("0.1"), "f"),
        (Lt, f8("NaN"), f8("Infinity"), "f"),
        (Eq, f8("NaN"), f8("NaN"), "t"),
        (Eq, f8("-0"), f8("0"), "t"),
        (Lt, txt("abc"), txt("abd"), "t"),
        (Lt, txt("B"), txt("a"), "t"),
        (Eq, (Some("ab"), T::Char(4)), txt("ab"), "t"),
        (Eq, i4("1"), NULL, "NULL"),
        (And, b("true"), NULL, "NULL"),
        (And, b("false"), NULL, "f"),
        (Or, b("true"), NULL, "t"),
        (Or, b("false"), NULL, "NULL"),
        (IsDistinctFrom, NULL, NULL, "f"),
        (IsDistinctFrom, i4("1"), NULL, "t"),
        (IsNotDistinctFrom, i4("1"), num("1.00"), "t"),
        (Concat, txt("abc"), i4("1"), "abc1"),
        (Concat, (Some("ab"), T::Char(4)), txt("x"), "abx"),
        (Concat, txt("a"), NULL, "NULL"),
        (Like, txt("abc"), txt("a%"), "t"),
        (Like, txt("abc"), txt("a_"), "f"),
        (Like, txt("a_c"), txt("a\\_c"), "t"),
        (Like, txt("abc"), txt("a\\_c"), "f"),
        (Like, txt("100%"), txt("%\\%"), "t"),
        (NotLike, txt("abc"), txt("%b%"), "f"),
        (ILike, txt("ABC"), txt("a%c"), "t"),
        (Like, txt("ab\ncd"), txt("ab%"), "t"),
        (Like, (Some("ab"), T::Char(4)), txt("ab"), "f"),
        (Like, (Some("ab"), T::Char(4)), txt("ab  "), "t"),
    ];
    for (op, l, r, want) in cases {
        assert_eq!(bin(op, l, r), want, "{l:?} {op:?} {r:?}");
    }
}

#[test]
fn jsonb_operators_match_postgres() {
    use BinOp::*;
    let j = |s: &'static str| (Some(s), T::Jsonb);
    let cases: Vec<(BinOp, Lit, Lit, &str)> = vec![
        (JsonGet, j(r#"{"a":{"b":1}}"#), txt("a"), r#"{"b": 1}"#),
        (JsonGetText, j(r#"{"a":"x"}"#), txt("a"), "x"),
        (JsonGetText, j(r#"{"a":null}"#), txt("a"), "NULL"),
        (JsonGet, j("[1,2,3]"), i4("-1"), "3"),
        (JsonGet, j("[1,2,3]"), i4("5"), "NULL"),
        (JsonGet, j(r#"{"a":1}"#), txt("zz"), "NULL"),
        (Eq, j(r#"{"a":1,"b":2}"#), j(r#"{"b":2,"a":1}"#), "t"),
        (
            Concat,
            j(r#"{"a":1}"#),
            j(r#"{"b":2}"#),
            r#"{"a": 1, "b": 2}"#,
        ),
    ];
    for (op, l, r, want) in cases {
        assert_eq!(bin(op, l, r), want, "{l:?} {op:?} {r:?}");
    }
}

#[test]
fn operator_resolution_follows_postgres() {
    use BinOp::*;
    assert_eq!(binary_type(Add, T::Int2, T::Int2).ok(), Some(T::Int2));
    assert_eq!(binary_type(Add, T::Int4, T::Int8).ok(), Some(T::Int8));
    assert_eq!(
        binary_type(Add, T::Int4, T::Decimal(Some((10, 2)))).ok(),
        Some(T::Decimal(None))
    );
    assert_eq!(binary_type(Add, T::Float4, T::Int4).ok(), Some(T::Float8));
    assert_eq!(binary_type(Add, T::Float4, T::Float4).ok(), Some(T::Float4));
    assert_eq!(binary_type(Pow, T::Int4, T::Int4).ok(), Some(T::Float8));
    assert_eq!(binary_type(Add, T::Unknown, T::Int4).ok(), Some(T::Int4));
    assert_eq!(binary_type(Sub, T::Date, T::Date).ok(), Some(T::Int4));
    assert_eq!(
        binary_type(Sub, T::Timestamp, T::Timestamp).ok(),
        Some(T::Interval)
    );
    assert_eq!(binary_type(Concat, T::Text, T::Int4).ok(), Some(T::Text));
    assert_eq!(binary_type(Lt, T::Int4, T::Float8).ok(), Some(T::Bool));
    let e = binary_type(Add, T::Int4, T::Bool).expect_err("no int + bool");
    assert_eq!(e.code, "42883");
    assert_eq!(e.message, "operator does not exist: integer + boolean");
    assert_eq!(
        binary_type(Eq, T::Int4, T::Text)
            .expect_err("int = text")
            .code,
        "42883"
    );
    assert_eq!(
        binary_type(Mod, T::Float8, T::Int4)
            .expect_err("no float %")
            .code,
        "42883"
    );
    assert_eq!(
        binary_type(And, T::Int4, T::Bool)
            .expect_err("AND int")
            .code,
        "42804"
    );
}

#[test]
fn unary_operators_check_overflow() {
    assert_eq!(
        eval_unary(UnOp::Neg, &Value::Int(i64::from(i32::MIN)), T::Int4)
            .expect_err("overflow")
            .message,
        "integer out of range"
    );
    assert_eq!(
        eval_unary(UnOp::Neg, &Value::Int(5), T::Int4).ok(),
        Some(Value::Int(-5))
    );
    assert_eq!(
        eval_unary(UnOp::Not, &Value::Null, T::Bool).ok(),
        Some(Value::Null)
    );
    assert_eq!(
        eval_unary(UnOp::BitNot, &Value::Int(5), T::Int4).ok(),
        Some(Value::Int(-6))
    );
    assert_eq!(
        ops::unary_type(UnOp::Not, T::Int4)
            .expect_err("NOT int")
            .code,
        "42804"
    );
}

fn cast_text(s: Option<&str>, from: SqlType, to: SqlType) -> String {
    let v = lit((s, from));
    show(cast(&v, from, to).map(|v| (v, to)))
}

#[test]
fn casts_match_postgres() {
    let cases: Vec<(&str, SqlType, SqlType, &str)> = vec![
        ("2.5", T::Float8, T::Int4, "2"),
        ("3.5", T::Float8, T::Int4, "4"),
        ("-2.5", T::Float8, T::Int4, "-2"),
        ("2.5", T::Decimal(None), T::Int4, "3"),
        ("-2.5", T::Decimal(None), T::Int4, "-3"),
        ("3000000000", T::Int8, T::Int4, "ERROR 22003"),
        ("1e10", T::Float8, T::Int4, "ERROR 22003"),
        ("NaN", T::Decimal(None), T::Int4, "ERROR 0A000"),
        ("1.005", T::Decimal(None), T::Decimal(Some((10, 2))), "1.01"),
        ("1.5", T::Decimal(None), T::Decimal(Some((10, 2))), "1.50"),
        (
            "12345.6",
            T::Decimal(None),
            T::Decimal(Some((5, 2))),
            "ERROR 22003",
        ),
        ("abcdef", T::Text, T::Varchar(Some(3)), "abc"),
        ("ab", T::Text, T::Char(4), "ab  "),
        ("true", T::Bool, T::Int4, "1"),
        ("0", T::Int4, T::Bool, "f"),
        ("true", T::Bool, T::Text, "true"),
        ("yes", T::Text, T::Bool, "t"),
        ("2024-01-02 03:04:05", T::Timestamp, T::Date, "2024-01-02"),
        (
            "2024-01-02",
            T::Date,
            T::TimestampTz,
            "2024-01-02 00:00:00+00",
        ),
        ("1e20", T::Float8, T::Text, "1e+20"),
        ("0.1", T::Float8, T::Decimal(None), "0.1"),
        ("0.1", T::Float4, T::Float8, "0.10000000149011612"),
        ("1.5", T::Decimal(None), T::Float8, "1.5"),
        ("x", T::Text, T::Int4, "ERROR 22P02"),
        (r#"{"b":1,"a":2}"#, T::Text, T::Jsonb, r#"{"a": 2, "b": 1}"#),
        ("12", T::Jsonb, T::Int4, "12"),
        (r#""x""#, T::Jsonb, T::Int4, "ERROR 22023"),
        ("ab  ", T::Char(4), T::Text, "ab"),
        ("1 day 02:00:00", T::Interval, T::Text, "1 day 02:00:00"),
    ];
    for (s, from, to, want) in cases {
        assert_eq!(cast_text(Some(s), from, to), want, "{s}::{from}::{to}");
    }
    assert_eq!(cast_text(None, T::Int4, T::Text), "NULL");
    assert!(ops::can_cast(T::Int4, T::Text));
    assert!(ops::can_cast(T::Text, T::Date));
    assert!(!ops::can_cast(T::Date, T::Int4));
    assert!(!ops::can_cast(T::Int8, T::Bool));
}

#[test]
fn common_types_follow_postgres_union_rules() {
    assert_eq!(common_type(&[T::Int4, T::Int8]).ok(), Some(T::Int8));
    assert_eq!(
        common_type(&[T::Int4, T::Decimal(Some((5, 2)))]).ok(),
        Some(T::Decimal(None))
    );
    assert_eq!(
        common_type(&[T::Decimal(None), T::Float4]).ok(),
        Some(T::Float4)
    );
    assert_eq!(common_type(&[T::Unknown, T::Int4]).ok(), Some(T::Int4));
    assert_eq!(common_type(&[T::Unknown, T::Unknown]).ok(), Some(T::Text));
    assert_eq!(
        common_type(&[T::Varchar(Some(3)), T::Text]).ok(),
        Some(T::Text)
    );
    assert_eq!(
        common_type(&[T::Date, T::Timestamp]).ok(),
        Some(T::Timestamp)
    );
    let e = common_type(&[T::Int4, T::Text]).expect_err("mismatch");
    assert_eq!(e.code, "42804");
    assert_eq!(e.message, "UNION types integer and text cannot be matched");
}

fn call(name: &str, args: &[Lit]) -> String {
    let vals: Vec<Value> = args.iter().map(|a| lit(*a)).collect();
    let tys: Vec<SqlType> = args.iter().map(|a| a.1).collect();
    show(function_type(name, &tys).and_then(|rt| call_function(name, &vals, &tys).map(|v| (v, rt))))
}

#[test]
fn math_functions_match_postgres() {
    let cases: Vec<(&str, Vec<Lit>, &str)> = vec![
        ("abs", vec![i4("-5")], "5"),
        ("abs", vec![i4("-2147483648")], "ERROR 22003"),
        ("abs", vec![num("-1.50")], "1.50"),
        ("round", vec![f8("2.5")], "2"),
        ("round", vec![f8("-2.5")], "-2"),
        ("round", vec![num("2.5")], "3"),
        ("round", vec![num("2.345"), i4("2")], "2.35"),
        ("round", vec![num("1234.5"), i4("-2")], "1200"),
        ("round", vec![i4("7"), i4("2")], "7.00"),
        ("trunc", vec![num("2.789"), i4("1")], "2.7"),
        ("ceil", vec![num("1.2")], "2"),
        ("ceil", vec![num("-1.2")], "-1"),
        ("floor", vec![num("-1.2")], "-2"),
        ("floor", vec![f8("-1.5")], "-2"),
        ("sqrt", vec![f8("16")], "4"),
        ("sqrt", vec![num("2")], "1.414213562373095"),
        ("sqrt", vec![f8("-1")], "ERROR 2201F"),
        ("power", vec![i4("2"), i4("10")], "1024"),
        ("mod", vec![i4("7"), i4("3")], "1"),
        ("mod", vec![i4("7"), i4("0")], "ERROR 22012"),
        ("sign", vec![num("-3.5")], "-1"),
        ("pi", vec![], "3.141592653589793"),
        ("ln", vec![num("2")], "0.6931471805599453"),
        ("ln", vec![num("10")], "2.3025850929940457"),
        ("log", vec![num("1000")], "3.0000000000000000"),
        ("log", vec![num("2"), num("8")], "3.0000000000000000"),
        ("ln", vec![f8("0")], "ERROR 2201E"),
        ("exp", vec![f8("0")], "1"),
        ("exp", vec![num("1")], "2.7182818284590452"),
        ("exp", vec![num("2")], "7.3890560989306502"),
        ("exp", vec![num("-1")], "0.3678794411714423"),
        (
            "exp",
            vec![num("100")],
            "26881171418161354484126255515800135873611119",
        ),
        ("ln", vec![num("0.5")], "-0.6931471805599453"),
        ("ln", vec![num("1e100")], "230.25850929940457"),
        ("ln", vec![num("1.0001")], "0.00009999500033330834"),
        ("log", vec![num("2"), num("1024")], "10.0000000000000000"),
        ("log", vec![num("0.001")], "-3.0000000000000000"),
        ("power", vec![num("10"), num("1.5")], "31.622776601683793"),
        ("power", vec![num("1.1"), num("0.5")], "1.0488088481701515"),
        ("power", vec![num("2.5"), num("-1.5")], "0.2529822128134703"),
        ("degrees", vec![f8("3.141592653589793")], "180"),
        (
            "degrees",
            vec![(Some("-2.25"), T::Float4)],
            "-128.9155039044352",
        ),
        ("sign", vec![num("NaN")], "NaN"),
        ("div", vec![num("7"), num("2")], "3"),
        ("gcd", vec![i4("12"), i4("18")], "6"),
    ];
    for (name, args, want) in cases {
        assert_eq!(call(name, &args), want, "{name}({args:?})");
    }
    let f = call("random", &[]);
    let r: f64 = f.parse().expect("random is a float");
    assert!((0.0..1.0).contains(&r));
}

#[test]
fn string_functions_match_postgres() {
    let cases: Vec<(&str, Vec<Lit>, &str)> = vec![
        ("length", vec![txt("héllo")], "5"),
        ("octet_length", vec![txt("héllo")], "6"),
        ("length", vec![(Some("ab"), T::Char(4))], "2"),
        ("lower", vec![txt("AbC")], "abc"),
        ("upper", vec![txt("AbC")], "ABC"),
        ("initcap", vec![txt("hello wORLD-foo")], "Hello World-Foo"),
        ("substr", vec![txt("hello"), i4("2"), i4("3")], "ell"),
        ("substr", vec![txt("hello"), i4("0"), i4("3")], "he"),
        ("substring", vec![txt("hello"), i4("3")], "llo"),
        (
            "substr",
            vec![txt("hello"), i4("2"), i4("-1")],
            "ERROR 22011",
        ),
        ("trim", vec![txt("  x  ")], "x"),
        ("btrim", vec![txt("xxaxx"), txt("x")], "a"),
        ("ltrim", vec![txt("  x  ")], "x  "),
        ("rtrim", vec![txt("xay"), txt("xy")], "xa"),
        ("replace", vec![txt("abcabc"), txt("b"), txt("X")], "aXcaXc"),
        ("concat", vec![txt("a"), NULL, i4("1")], "a1"),
        ("concat_ws", vec![txt(","), txt("a"), NULL, txt("b")], "a,b"),
        ("left", vec![txt("hello"), i4("2")], "he"),
        ("left", vec![txt("hello"), i4("-2")], "hel"),
        ("right", vec![txt("hello"), i4("2")], "lo"),
        ("right", vec![txt("hello"), i4("-2")], "llo"),
        ("repeat", vec![txt("ab"), i4("3")], "ababab"),
        ("reverse", vec![txt("abc")], "cba"),
        ("lpad", vec![txt("5"), i4("3"), txt("0")], "005"),
        ("rpad", vec![txt("ab"), i4("5"), txt("xy")], "abxyx"),
        ("lpad", vec![txt("hello"), i4("3")], "hel"),
        ("strpos", vec![txt("hello"), txt("l")], "3"),
        ("strpos", vec![txt("hello"), txt("z")], "0"),
        ("split_part", vec![txt("a,b,c"), txt(","), i4("2")], "b"),
        ("split_part", vec![txt("a,b,c"), txt(","), i4("-1")], "c"),
        ("split_part", vec![txt("a,b,c"), txt(","), i4("5")], ""),
        ("starts_with", vec![txt("hello"), txt("he")], "t"),
        ("md5", vec![txt("abc")], "900150983cd24fb0d6963f7d28e17f72"),
        ("md5", vec![txt("")], "d41d8cd98f00b204e9800998ecf8427e"),
        ("to_hex", vec![i4("255")], "ff"),
        ("to_hex", vec![i4("-1")], "ffffffff"),
        ("ascii", vec![txt("A")], "65"),
        ("chr", vec![i4("65")], "A"),
        ("upper", vec![NULL], "NULL"),
        ("greatest", vec![i4("1"), num("2.5"), NULL], "2.5"),
        ("least", vec![i4("3"), i4("1")], "1"),
        ("coalesce", vec![NULL, i4("2"), i4("3")], "2"),
        ("nullif", vec![i4("1"), i4("1")], "NULL"),
    ];
    for (name, args, want) in cases {
        assert_eq!(call(name, &args), want, "{name}({args:?})");
    }
    let e = function_type("foo", &[T::Int4]).expect_err("unknown function");
    assert_eq!(e.code, "42883");
    assert_eq!(e.message, "function foo(integer) does not exist");
}

#[test]
fn date_functions_match_postgres() {
    let ts = |s: &'static str| (Some(s), T::Timestamp);
    let d = |s: &'static str| (Some(s), T::Date);
    let cases: Vec<(&str, Vec<Lit>, &str)> = vec![
        (
            "date_trunc",
            vec![txt("month"), ts("2024-05-17 10:11:12")],
            "2024-05-01 00:00:00",
        ),
        (
            "date_trunc",
            vec![txt("week"), ts("2024-05-17 10:00")],
            "2024-05-13 00:00:00",
        ),
        (
            "date_trunc",
            vec![txt("hour"), ts("2024-05-17 10:11:12")],
            "2024-05-17 10:00:00",
        ),
        (
            "date_trunc",
            vec![txt("month"), d("2024-05-17")],
            "2024-05-01 00:00:00+00",
        ),
        (
            "extract",
            vec![txt("second"), ts("2024-01-02 03:04:05.5")],
            "5.500000",
        ),
        (
            "extract",
            vec![txt("epoch"), ts("2024-01-02 03:04:05.5")],
            "1704164645.500000",
        ),
        ("extract", vec![txt("epoch"), d("2024-01-01")], "1704067200"),
        ("extract", vec![txt("year"), d("2024-01-01")], "2024"),
        (
            "extract",
            vec![txt("milliseconds"), ts("2024-01-02 03:04:05.5")],
            "5500.000",
        ),
        (
            "extract",
            vec![txt("epoch"), (Some("1 day 1.5 seconds"), T::Interval)],
            "86401.500000",
        ),
        ("extract", vec![txt("dow"), d("2024-01-07")], "0"),
        (
            "extract",
            vec![txt("epoch"), (Some("1 year 2 mons"), T::Interval)],
            "36741600.000000",
        ),
        ("extract", vec![txt("week"), d("2024-01-01")], "1"),
        ("extract", vec![txt("julian"), d("2024-01-01")], "2460311"),
        (
            "date_part",
            vec![txt("second"), ts("2024-01-02 03:04:05.5")],
            "5.5",
        ),
        (
            "age",
            vec![ts("2024-03-01"), ts("2023-01-31 12:00")],
            "1 year 1 mon 12:00:00",
        ),
        (
            "make_date",
            vec![i4("2024"), i4("2"), i4("29")],
            "2024-02-29",
        ),
        (
            "make_date",
            vec![i4("2023"), i4("2"), i4("29")],
            "ERROR 22008",
        ),
        ("to_timestamp", vec![f8("0")], "1970-01-01 00:00:00+00"),
    ];
    for (name, args, want) in cases {
        assert_eq!(call(name, &args), want, "{name}({args:?})");
    }
}

#[test]
fn jsonb_functions_match_postgres() {
    let j = |s: &'static str| (Some(s), T::Jsonb);
    let cases: Vec<(&str, Vec<Lit>, &str)> = vec![
        ("jsonb_typeof", vec![j("[1]")], "array"),
        ("jsonb_typeof", vec![j("1.5")], "number"),
        ("jsonb_array_length", vec![j("[1,2]")], "2"),
        ("jsonb_array_length", vec![j("{}")], "ERROR 22023"),
        (
            "jsonb_build_object",
            vec![txt("a"), i4("1"), txt("b"), txt("x")],
            r#"{"a": 1, "b": "x"}"#,
        ),
        ("jsonb_build_object", vec![txt("a")], "ERROR 22023"),
        (
            "to_jsonb",
            vec![(Some("2024-01-02 03:04:05"), T::Timestamp)],
            r#""2024-01-02T03:04:05""#,
        ),
    ];
    for (name, args, want) in cases {
        assert_eq!(call(name, &args), want, "{name}({args:?})");
    }
}
