//! String built-ins beyond the basic ones in [`crate::functions`], with
//! PostgreSQL 15's semantics and errors: `pg_typeof`, `encode`/`decode`
//! (hex, base64, escape), `sha256`, `format`, `quote_ident`,
//! `quote_literal`, `quote_nullable`, `translate` and the regular-expression
//! functions `regexp_replace`, `regexp_match` and `regexp_split_to_array`.
//!
//! A bytea argument may be given as text: an untyped literal reaches the
//! functions as text, and is read with bytea's input syntax (`'\x41'` is one
//! byte), as PostgreSQL reads `unknown` as bytea.
//!
//! Regular expressions are PostgreSQL's advanced regular expressions (AREs)
//! run on the `regex` crate. `.` matches a newline unless a newline-sensitive
//! flag (`n`, `m`, `p`) is given, as in PostgreSQL; `\m`, `\M`, `\y`, `\Y`,
//! `\Z` and `\b` are translated. The differences that remain: alternation
//! prefers the leftmost alternative (Perl's rule) where PostgreSQL prefers
//! the longest match (`regexp_match('ab', 'a|ab')` is `{a}` here, `{ab}` in
//! PostgreSQL); back-references inside a pattern and look-around are not
//! supported (0A000); `{m,n}` bounds above 255 are accepted.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::error::codes;
use crate::{SqlError, SqlResult, SqlType, Value, ops};

/// SQLSTATE 2201B.
const INVALID_REGULAR_EXPRESSION: &str = "2201B";

fn is_text(t: SqlType) -> bool {
    t.is_string() || t == SqlType::Unknown
}

fn is_int(t: SqlType) -> bool {
    t.is_integer() || t == SqlType::Unknown
}

/// A bytea argument: bytea itself, or text read with bytea's input syntax.
fn is_bytes(t: SqlType) -> bool {
    t == SqlType::Bytes || is_text(t)
}

/// The result type of `name(args…)`, `None` when it is not one of these.
pub fn function_type(name: &str, args: &[SqlType]) -> Option<SqlType> {
    use SqlType as T;
    Some(match (name, args) {
        ("pg_typeof", [_]) => T::Text,
        ("encode", [b, f]) if is_bytes(*b) && is_text(*f) => T::Text,
        ("decode", [s, f]) if is_text(*s) && is_text(*f) => T::Bytes,
        ("sha256", [b]) if is_bytes(*b) => T::Bytes,
        ("format", [f, ..]) if is_text(*f) => T::Text,
        ("quote_ident", [s]) if is_text(*s) => T::Text,
        ("similar_to_escape", [p]) if is_text(*p) => T::Text,
        // `substring(s FROM pattern)`: the regular-expression form.
        ("substring", [s, p]) if is_text(*s) && is_text(*p) => T::Text,
        ("overlay", [s, r, f]) if is_text(*s) && is_text(*r) && is_int(*f) => T::Text,
        ("overlay", [s, r, f, n]) if is_text(*s) && is_text(*r) && is_int(*f) && is_int(*n) => {
            T::Text
        }
        ("similar_to_escape", [p, e]) if is_text(*p) && is_text(*e) => T::Text,
        ("quote_literal" | "quote_nullable", [_]) => T::Text,
        ("translate", [s, f, t]) if is_text(*s) && is_text(*f) && is_text(*t) => T::Text,
        ("like_escape", [p, e]) if is_text(*p) && is_text(*e) => T::Text,
        ("regexp_replace", [s, p, r]) if is_text(*s) && is_text(*p) && is_text(*r) => T::Text,
        // the fourth argument: flags, or the start position
        ("regexp_replace", [s, p, r, f])
            if is_text(*s) && is_text(*p) && is_text(*r) && (is_text(*f) || f.is_integer()) =>
        {
            T::Text
        }
        ("regexp_replace", [s, p, r, st, n]) | ("regexp_replace", [s, p, r, st, n, _])
            if is_text(*s)
                && is_text(*p)
                && is_text(*r)
                && is_int(*st)
                && is_int(*n)
                && args.get(5).is_none_or(|f| is_text(*f)) =>
        {
            T::Text
        }
        ("regexp_match" | "regexp_split_to_array", [s, p]) if is_text(*s) && is_text(*p) => {
            T::array_of(T::Text)
        }
        ("regexp_match" | "regexp_split_to_array", [s, p, f])
            if is_text(*s) && is_text(*p) && is_text(*f) =>
        {
            T::array_of(T::Text)
        }
        _ => return None,
    })
}

/// Functions here that do not return NULL just because an argument is NULL.
pub fn non_strict(name: &str) -> bool {
    matches!(name, "pg_typeof" | "format" | "quote_nullable")
}

/// Calls `name` ([`function_type`] knows it); strict functions have no NULL
/// argument here.
pub fn call_function(name: &str, args: &[Value], types: &[SqlType]) -> SqlResult<Value> {
    let ty = |i: usize| types.get(i).copied().unwrap_or(SqlType::Unknown);
    let null = Value::Null;
    let arg = |i: usize| args.get(i).unwrap_or(&null);
    let text = |i: usize| ops::text_of(arg(i), ty(i));
    Ok(match name {
        "pg_typeof" => Value::Text(regtype_name(ty(0))),
        "encode" => Value::Text(encode(&bytes_arg(arg(0))?, &text(1))?),
        "decode" => Value::Bytes(decode(&text(0), &text(1))?),
        "sha256" => Value::Bytes(sha256(&bytes_arg(arg(0))?).to_vec()),
        "format" => {
            if arg(0).is_null() {
                return Ok(Value::Null);
            }
            let rest = |v: &[SqlType]| v.get(1..).unwrap_or(&[]).to_vec();
            Value::Text(format(
                &text(0),
                args.get(1..).unwrap_or(&[]),
                &rest(types),
            )?)
        }
        "quote_ident" => Value::Text(quote_ident(&text(0))),
        "substring" => {
            let re = compile(&text(1), ReFlags::default())?;
            let s = text(0);
            match re.captures(&s) {
                // With a parenthesized subexpression, what it matched.
                Some(c) if re.captures_len() > 1 => c
                    .get(1)
                    .map_or(Value::Null, |m| Value::Text(m.as_str().into())),
                Some(c) => c
                    .get(0)
                    .map_or(Value::Null, |m| Value::Text(m.as_str().into())),
                None => Value::Null,
            }
        }
        "overlay" => {
            // `overlay(s PLACING r FROM f [FOR n])`: s's characters before
            // f, then r, then those from f + n on (n defaults to r's length).
            let (s, r) = (text(0), text(1));
            let from = int_arg(arg(2))?;
            let count = if args.len() > 3 {
                int_arg(arg(3))?
            } else {
                r.chars().count() as i64
            };
            if from < 1 || count < 0 {
                return Err(SqlError::new(
                    "22011",
                    "negative substring length not allowed",
                ));
            }
            let head: String = s.chars().take((from - 1) as usize).collect();
            let tail: String = s
                .chars()
                .skip((from - 1).saturating_add(count).max(0) as usize)
                .collect();
            Value::Text(format!("{head}{r}{tail}"))
        }
        "similar_to_escape" => {
            let escape = if args.len() > 1 {
                let e = text(1);
                let mut chars = e.chars();
                match (chars.next(), chars.next()) {
                    (None, _) => None,
                    (Some(c), None) => Some(c),
                    _ => {
                        return Err(SqlError::new("22025", "invalid escape string")
                            .with_hint("Escape string must be empty or one character."));
                    }
                }
            } else {
                Some('\\')
            };
            Value::Text(similar_to_regex(&text(0), escape))
        }
        "quote_literal" => Value::Text(quote_literal(&text(0))),
        "quote_nullable" => Value::Text(if arg(0).is_null() {
            "NULL".to_owned()
        } else {
            quote_literal(&text(0))
        }),
        "translate" => Value::Text(translate(&text(0), &text(1), &text(2))),
        "like_escape" => Value::Text(like_escape(&text(0), &text(1))?),
        "regexp_replace" => {
            let (s, p, r) = (text(0), text(1), text(2));
            match args.len() {
                3 => Value::Text(regexp_replace(&s, &p, &r, "", 1, None)?),
                4 if ty(3).is_integer() => {
                    let start = int_arg(arg(3))?;
                    Value::Text(regexp_replace(&s, &p, &r, "", start, None)?)
                }
                4 => {
                    let flags = text(3);
                    if flags.starts_with(|c: char| c.is_ascii_digit()) {
                        return Err(bad_flag(&flags).with_hint(
                            "If you meant to use regexp_replace() with a start parameter, cast the fourth argument to integer explicitly.",
                        ));
                    }
                    Value::Text(regexp_replace(&s, &p, &r, &flags, 1, None)?)
                }
                _ => {
                    let start = int_arg(arg(3))?;
                    let n = int_arg(arg(4))?;
                    let flags = if args.len() > 5 {
                        text(5)
                    } else {
                        String::new()
                    };
                    if n < 0 {
                        return Err(SqlError::new(
                            codes::INVALID_PARAMETER_VALUE,
                            format!("invalid value for parameter \"n\": {n}"),
                        ));
                    }
                    Value::Text(regexp_replace(&s, &p, &r, &flags, start, Some(n))?)
                }
            }
        }
        "regexp_match" => {
            let flags = if args.len() > 2 {
                text(2)
            } else {
                String::new()
            };
            regexp_match(&text(0), &text(1), &flags)?
        }
        "regexp_split_to_array" => {
            let flags = if args.len() > 2 {
                text(2)
            } else {
                String::new()
            };
            let parts = regexp_split(&text(0), &text(1), &flags)?;
            Value::Array(parts.into_iter().map(Value::Text).collect())
        }
        _ => return Err(SqlError::internal(format!("string function {name}"))),
    })
}

fn int_arg(v: &Value) -> SqlResult<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Text(s) => crate::value::parse_int(s, SqlType::Int4),
        _ => Err(SqlError::internal(format!("not an integer: {v:?}"))),
    }
}

fn bytes_arg(v: &Value) -> SqlResult<Vec<u8>> {
    match v {
        Value::Bytes(b) => Ok(b.clone()),
        Value::Text(s) => match Value::from_text(s, SqlType::Bytes)? {
            Value::Bytes(b) => Ok(b),
            _ => Err(SqlError::internal("bytea input")),
        },
        _ => Err(SqlError::internal(format!("not bytea: {v:?}"))),
    }
}

/// A type's name as `regtype` prints it: PostgreSQL's name without modifiers.
pub fn regtype_name(ty: SqlType) -> String {
    match ty {
        SqlType::Decimal(_) => "numeric".into(),
        SqlType::Varchar(_) => "character varying".into(),
        SqlType::Char(_) => "character".into(),
        SqlType::Array(e) => format!("{}[]", regtype_name(*e)),
        t => t.to_string(),
    }
}

// ---------------------------------------------------------------------------
// encode / decode / sha256

fn unknown_encoding(name: &str) -> SqlError {
    SqlError::new(
        codes::INVALID_PARAMETER_VALUE,
        format!("unrecognized encoding: \"{name}\""),
    )
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `encode(bytes, format)`.
pub fn encode(b: &[u8], format: &str) -> SqlResult<String> {
    use std::fmt::Write;
    let mut out = String::with_capacity(b.len() * 2);
    match format.to_ascii_lowercase().as_str() {
        "hex" => {
            for byte in b {
                let _ = write!(out, "{byte:02x}");
            }
        }
        "base64" => {
            // PostgreSQL breaks the output into lines of 76 characters.
            let mut line = 0;
            for chunk in b.chunks(3) {
                let n = chunk.len();
                let buf = (u32::from(chunk[0]) << 16)
                    | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
                    | u32::from(chunk.get(2).copied().unwrap_or(0));
                for i in 0..4 {
                    if i <= n {
                        out.push(BASE64[(buf >> (18 - 6 * i) & 0x3f) as usize] as char);
                    } else {
                        out.push('=');
                    }
                }
                line += 4;
                if line >= 76 && n == 3 {
                    out.push('\n');
                    line = 0;
                }
            }
        }
        "escape" => {
            for &c in b {
                if c == 0 || c >= 0x80 {
                    let _ = write!(out, "\\{:03o}", c);
                } else if c == b'\\' {
                    out.push_str("\\\\");
                } else {
                    out.push(c as char);
                }
            }
        }
        _ => return Err(unknown_encoding(format)),
    }
    Ok(out)
}

/// `decode(text, format)`.
pub fn decode(s: &str, format: &str) -> SqlResult<Vec<u8>> {
    let param = |m: String| SqlError::new(codes::INVALID_PARAMETER_VALUE, m);
    let mut out = Vec::with_capacity(s.len() / 2);
    match format.to_ascii_lowercase().as_str() {
        "hex" => {
            let mut chars = s.chars();
            let digit = |c: char| {
                c.to_digit(16)
                    .map(|d| d as u8)
                    .ok_or_else(|| param(format!("invalid hexadecimal digit: \"{c}\"")))
            };
            while let Some(c) = chars.next() {
                if matches!(c, ' ' | '\n' | '\t' | '\r') {
                    continue;
                }
                let hi = digit(c)?;
                let Some(c2) = chars.next() else {
                    return Err(param(
                        "invalid hexadecimal data: odd number of digits".into(),
                    ));
                };
                out.push(hi << 4 | digit(c2)?);
            }
        }
        "base64" => {
            let (mut buf, mut pos, mut end) = (0u32, 0, 0);
            for c in s.chars() {
                if matches!(c, ' ' | '\t' | '\n' | '\r') {
                    continue;
                }
                let b = if c == '=' {
                    if end == 0 {
                        end = match pos {
                            2 => 1,
                            3 => 2,
                            _ => {
                                return Err(param(
                                    "unexpected \"=\" while decoding base64 sequence".into(),
                                ));
                            }
                        };
                    }
                    0
                } else {
                    u8::try_from(c)
                        .ok()
                        .and_then(|c| BASE64.iter().position(|&x| x == c))
                        .ok_or_else(|| {
                            param(format!(
                                "invalid symbol \"{c}\" found while decoding base64 sequence"
                            ))
                        })? as u32
                };
                buf = (buf << 6) + b;
                pos += 1;
                if pos == 4 {
                    out.push((buf >> 16) as u8);
                    if end == 0 || end > 1 {
                        out.push((buf >> 8) as u8);
                    }
                    if end == 0 || end > 2 {
                        out.push(buf as u8);
                    }
                    (buf, pos) = (0, 0);
                }
            }
            if pos != 0 {
                return Err(param("invalid base64 end sequence".into()).with_hint(
                    "Input data is missing padding, is truncated, or is otherwise corrupted.",
                ));
            }
        }
        "escape" => {
            let b = s.as_bytes();
            let mut i = 0;
            while i < b.len() {
                let octal = |c: u8, max: u8| (b'0'..=max).contains(&c);
                if b[i] != b'\\' {
                    out.push(b[i]);
                    i += 1;
                } else if i + 3 < b.len()
                    && octal(b[i + 1], b'3')
                    && octal(b[i + 2], b'7')
                    && octal(b[i + 3], b'7')
                {
                    out.push(
                        ((b[i + 1] - b'0') << 6) | ((b[i + 2] - b'0') << 3) | (b[i + 3] - b'0'),
                    );
                    i += 4;
                } else if i + 1 < b.len() && b[i + 1] == b'\\' {
                    out.push(b'\\');
                    i += 2;
                } else {
                    return Err(SqlError::new(
                        codes::INVALID_TEXT_REPRESENTATION,
                        "invalid input syntax for type bytea",
                    ));
                }
            }
        }
        _ => return Err(unknown_encoding(format)),
    }
    Ok(out)
}

/// SHA-256 digest (FIPS 180-4).
pub fn sha256(input: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in chunk.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

// ---------------------------------------------------------------------------
// format / quoting / translate

/// The keywords PostgreSQL 15 quotes as identifiers: every keyword that is
/// not unreserved (reserved, column-name and type/function-name keywords;
/// `pg_get_keywords()` with `catcode <> 'U'`).
const QUOTED_KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// PostgreSQL's `quote_identifier`: quoted unless a lower-case identifier
/// that is not a keyword (other than an unreserved one).
pub fn quote_ident(s: &str) -> String {
    let safe = s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && QUOTED_KEYWORDS.binary_search(&s).is_err();
    if safe {
        s.to_owned()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// PostgreSQL's `quote_literal`: single quotes doubled; a string with a
/// backslash is written `E'…'` with the backslashes doubled.
pub fn quote_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 3);
    if s.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// `translate(s, from, to)`: each character of `from` becomes the one at the
/// same position in `to`, or is removed when `to` is shorter.
pub fn translate(s: &str, from: &str, to: &str) -> String {
    let from: Vec<char> = from.chars().collect();
    let to: Vec<char> = to.chars().collect();
    s.chars()
        .filter_map(|c| match from.iter().position(|&f| f == c) {
            Some(i) => to.get(i).copied(),
            None => Some(c),
        })
        .collect()
}

fn format_error(message: &str) -> SqlError {
    SqlError::new(codes::INVALID_PARAMETER_VALUE, message)
}

fn unterminated() -> SqlError {
    format_error("unterminated format() type specifier").with_hint("For a single \"%\" use \"%%\".")
}

/// Digits at `chars[*i..]` as a number (`None` when there are none).
fn format_digits(chars: &[char], i: &mut usize) -> SqlResult<Option<i32>> {
    let mut val: Option<i32> = None;
    while let Some(d) = chars.get(*i).and_then(|c| c.to_digit(10)) {
        let v = val
            .unwrap_or(0)
            .checked_mul(10)
            .and_then(|v| v.checked_add(d as i32))
            .ok_or_else(|| SqlError::out_of_range("number is out of range"))?;
        val = Some(v);
        *i += 1;
        if *i >= chars.len() {
            return Err(unterminated());
        }
    }
    Ok(val)
}

/// Advances past one character of a conversion specifier, which must not end there.
fn format_advance(chars: &[char], i: &mut usize) -> SqlResult<()> {
    *i += 1;
    if *i >= chars.len() {
        return Err(unterminated());
    }
    Ok(())
}

/// `format(fmt, args…)`: `%s`, `%I`, `%L` and `%%`, with argument positions
/// (`%2$s`), the `-` flag and widths (`%10s`, `%*s`, `%*3$s`), as
/// PostgreSQL's `text_format`.
pub fn format(fmt: &str, args: &[Value], types: &[SqlType]) -> SqlResult<String> {
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = String::with_capacity(fmt.len());
    // The next argument (1-based, as PostgreSQL counts them after the format).
    let mut next = 1usize;
    let nargs = args.len() + 1;
    let zero = || format_error("format specifies argument 0, but arguments are numbered from 1");
    let too_few = || format_error("too few arguments for format()");
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        format_advance(&chars, &mut i)?;
        if chars[i] == '%' {
            out.push('%');
            i += 1;
            continue;
        }
        // [argpos$][-][width | * | *widthpos$] type
        let (mut argpos, mut widthpos, mut minus, mut width) = (None, None, false, 0i32);
        // a number not followed by `$` is the width, and the type follows it
        let mut width_given = false;
        match format_digits(&chars, &mut i)? {
            Some(n) if chars[i] != '$' => (width, width_given) = (n, true),
            Some(n) => {
                if n == 0 {
                    return Err(zero());
                }
                argpos = Some(n as usize);
                format_advance(&chars, &mut i)?;
            }
            None => {}
        }
        if !width_given {
            while chars[i] == '-' {
                minus = true;
                format_advance(&chars, &mut i)?;
            }
            if chars[i] == '*' {
                format_advance(&chars, &mut i)?;
                match format_digits(&chars, &mut i)? {
                    Some(n) => {
                        if chars[i] != '$' {
                            return Err(format_error(
                                "width argument position must be ended by \"$\"",
                            ));
                        }
                        if n == 0 {
                            return Err(zero());
                        }
                        widthpos = Some(n as usize);
                        format_advance(&chars, &mut i)?;
                    }
                    None => widthpos = Some(0),
                }
            } else if let Some(n) = format_digits(&chars, &mut i)? {
                width = n;
            }
        }
        let conv = chars[i];
        if !matches!(conv, 's' | 'I' | 'L') {
            return Err(
                format_error(&format!("unrecognized format() type specifier \"{conv}\""))
                    .with_hint("For a single \"%\" use \"%%\"."),
            );
        }
        if let Some(wp) = widthpos {
            if wp > 0 {
                next = wp;
            }
            if next >= nargs {
                return Err(too_few());
            }
            let (v, t) = (&args[next - 1], types.get(next - 1).copied());
            next += 1;
            width = match v {
                Value::Null => 0,
                Value::Int(n) => {
                    i32::try_from(*n).map_err(|_| SqlError::out_of_range("integer out of range"))?
                }
                v => {
                    let s = v.to_text(t.unwrap_or(SqlType::Unknown));
                    i32::try_from(crate::value::parse_int(&s, SqlType::Int4)?)
                        .map_err(|_| SqlError::out_of_range("integer out of range"))?
                }
            };
        }
        if let Some(p) = argpos {
            next = p;
        }
        if next >= nargs {
            return Err(too_few());
        }
        let (v, t) = (&args[next - 1], types.get(next - 1).copied());
        next += 1;
        let s = if v.is_null() {
            match conv {
                's' => String::new(),
                'L' => "NULL".to_owned(),
                _ => {
                    return Err(SqlError::new(
                        codes::NULL_VALUE_NOT_ALLOWED,
                        "null values cannot be formatted as an SQL identifier",
                    ));
                }
            }
        } else {
            let s = v.to_text(t.unwrap_or(SqlType::Unknown));
            match conv {
                'I' => quote_ident(&s),
                'L' => quote_literal(&s),
                _ => s,
            }
        };
        pad(&mut out, &s, width, minus)?;
        i += 1;
    }
    Ok(out)
}

/// Appends `s` padded with spaces to `width` characters (a negative width or
/// the `-` flag pads on the right).
fn pad(out: &mut String, s: &str, width: i32, minus: bool) -> SqlResult<()> {
    if width == 0 {
        out.push_str(s);
        return Ok(());
    }
    if width == i32::MIN {
        return Err(SqlError::new(
            codes::PROGRAM_LIMIT_EXCEEDED,
            "number is out of range",
        ));
    }
    let left = minus || width < 0;
    let width = width.unsigned_abs() as usize;
    let fill = width.saturating_sub(s.chars().count());
    if left {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(s);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Regular expressions

/// Options of a regular expression: its flags argument.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct ReFlags {
    /// `g`: every match.
    global: bool,
    case_insensitive: bool,
    /// `.` and `[^…]` do not match a newline (`n`, `m`, `p`).
    newline_stop: bool,
    /// `^` and `$` match at line breaks (`n`, `m`, `w`).
    newline_anchor: bool,
    /// `x`: white space and `#` comments ignored.
    expanded: bool,
    /// `q`: the pattern is a literal string.
    literal: bool,
}

fn bad_flag(flags: &str) -> SqlError {
    let c = flags.chars().next().unwrap_or(' ');
    SqlError::new(
        codes::INVALID_PARAMETER_VALUE,
        format!("invalid regular expression option: \"{c}\""),
    )
}

/// Parses a flags argument as PostgreSQL's `parse_re_flags`.
fn parse_flags(flags: &str) -> SqlResult<ReFlags> {
    let mut f = ReFlags::default();
    for (i, c) in flags.char_indices() {
        match c {
            'g' => f.global = true,
            'c' => f.case_insensitive = false,
            'i' => f.case_insensitive = true,
            'm' | 'n' => (f.newline_stop, f.newline_anchor) = (true, true),
            'p' => (f.newline_stop, f.newline_anchor) = (true, false),
            's' => (f.newline_stop, f.newline_anchor) = (false, false),
            'w' => (f.newline_stop, f.newline_anchor) = (false, true),
            't' => f.expanded = false,
            'x' => f.expanded = true,
            'q' => f.literal = true,
            // plain EREs: read as AREs
            'e' => f.literal = false,
            'b' => {
                return Err(SqlError::unsupported(
                    "basic regular expressions (flag \"b\") are not supported",
                ));
            }
            _ => return Err(bad_flag(&flags[i..])),
        }
    }
    Ok(f)
}

/// Rewrites the ARE escapes the `regex` crate spells differently: `\m`, `\M`
/// (word start and end), `\y`, `\Y` (word boundary or not), `\Z` (end of
/// string) and `\b` (backspace); in a bracket expression a nested `[` that
/// is not a class name and the `regex` crate's set operators are literal.
fn translate_pattern(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\\' => match chars.get(i) {
                Some(&e) => {
                    i += 1;
                    out.push_str(match e {
                        'm' => r"\b{start}",
                        'M' => r"\b{end}",
                        'y' => r"\b",
                        'Y' => r"\B",
                        'Z' => r"\z",
                        'b' => r"\x08",
                        _ => {
                            out.push('\\');
                            out.push(e);
                            continue;
                        }
                    });
                }
                None => out.push('\\'),
            },
            '[' => {
                out.push('[');
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                // a leading `]` is literal
                if chars.get(i) == Some(&']') {
                    out.push_str(r"\]");
                    i += 1;
                }
                while i < chars.len() && chars[i] != ']' {
                    let c = chars[i];
                    i += 1;
                    match c {
                        '\\' => match chars.get(i) {
                            Some('b') => {
                                out.push_str(r"\x08");
                                i += 1;
                            }
                            Some(&e) => {
                                out.push('\\');
                                out.push(e);
                                i += 1;
                            }
                            None => out.push('\\'),
                        },
                        '[' => match class_name_end(&chars, i) {
                            // [:alpha:] and friends, copied as they are
                            Some(end) => {
                                out.push('[');
                                out.extend(&chars[i..end]);
                                i = end;
                            }
                            None => out.push_str(r"\["),
                        },
                        '&' | '~' => {
                            out.push('\\');
                            out.push(c);
                        }
                        '-' if chars.get(i) == Some(&'-') => out.push_str(r"\-"),
                        c => out.push(c),
                    }
                }
                if i < chars.len() {
                    out.push(']');
                    i += 1;
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// At `chars[i]` (just after a `[` in a bracket expression), `[:name:]`,
/// `[=x=]` or `[.x.]`: the index just past its closing `]`.
fn class_name_end(chars: &[char], i: usize) -> Option<usize> {
    let kind = *chars.get(i).filter(|c| matches!(c, ':' | '=' | '.'))?;
    (i + 1..chars.len().saturating_sub(1))
        .find(|&j| chars[j] == kind && chars[j + 1] == ']')
        .map(|j| j + 2)
}

/// A `regex` crate error as PostgreSQL words it.
fn regex_error(e: &regex::Error) -> SqlError {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let last = last.strip_prefix("error: ").unwrap_or(last);
    let has = |s: &str| last.contains(s);
    let pg = if has("unclosed group") || has("unopened group") {
        "parentheses () not balanced"
    } else if has("unclosed character class") {
        "brackets [] not balanced"
    } else if has("repetition operator missing expression") {
        "quantifier operand invalid"
    } else if has("unclosed counted repetition") {
        "braces {} not balanced"
    } else if has("repetition count") || has("repetition quantifier") {
        "invalid repetition count(s)"
    } else if has("character class range") {
        "invalid character range"
    } else if has("escape sequence") {
        "invalid escape \\ sequence"
    } else if has("flag") {
        "invalid embedded option"
    } else if has("class") && (has("unrecognized") || has("invalid")) {
        "invalid character class"
    } else if has("backreferences") || has("look-around") {
        return SqlError::unsupported(format!("invalid regular expression: {last}"));
    } else if matches!(e, regex::Error::CompiledTooBig(_)) {
        "regular expression is too complex"
    } else {
        last
    };
    SqlError::new(
        INVALID_REGULAR_EXPRESSION,
        format!("invalid regular expression: {pg}"),
    )
}

thread_local! {
    /// Compiled patterns by (pattern, flags): a query applies one pattern to
    /// every row.
    static PATTERNS: RefCell<HashMap<(String, ReFlags), regex::Regex>> = RefCell::new(HashMap::new());
}

/// Most patterns kept compiled per thread.
const MAX_PATTERNS: usize = 64;

fn compile(pattern: &str, flags: ReFlags) -> SqlResult<regex::Regex> {
    // `g` does not change the pattern
    let key_flags = ReFlags {
        global: false,
        ..flags
    };
    PATTERNS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let key = (pattern.to_owned(), key_flags);
        if let Some(re) = cache.get(&key) {
            return Ok(re.clone());
        }
        let source = if flags.literal {
            regex::escape(pattern)
        } else {
            translate_pattern(pattern)
        };
        let re = regex::RegexBuilder::new(&source)
            .case_insensitive(flags.case_insensitive)
            .dot_matches_new_line(!flags.newline_stop)
            .multi_line(flags.newline_anchor)
            .ignore_whitespace(flags.expanded && !flags.literal)
            .size_limit(1 << 22)
            .build()
            .map_err(|e| regex_error(&e))?;
        if cache.len() >= MAX_PATTERNS {
            cache.clear();
        }
        cache.insert(key, re.clone());
        Ok(re)
    })
}

/// The byte offset just past the character at `at` (`None` at the end).
fn next_char(s: &str, at: usize) -> Option<usize> {
    s[at..].chars().next().map(|c| at + c.len_utf8())
}

/// `regexp_replace`: `start` is the 1-based character to search from; `n`
/// the match to replace (0: all of them; `None`: the first, or all with `g`).
pub fn regexp_replace(
    s: &str,
    pattern: &str,
    repl: &str,
    flags: &str,
    start: i64,
    n: Option<i64>,
) -> SqlResult<String> {
    let flags = parse_flags(flags)?;
    if start <= 0 {
        return Err(SqlError::new(
            codes::INVALID_PARAMETER_VALUE,
            format!("invalid value for parameter \"start\": {start}"),
        ));
    }
    let n = n.unwrap_or(if flags.global { 0 } else { 1 });
    let re = compile(pattern, flags)?;
    // character `start` as a byte offset
    let Some(mut search) = s
        .char_indices()
        .map(|(i, _)| i)
        .chain([s.len()])
        .nth((start - 1) as usize)
    else {
        return Ok(s.to_owned());
    };
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut count = 0;
    let mut locs = re.capture_locations();
    while search <= s.len() {
        let Some((so, eo)) = re
            .captures_read_at(&mut locs, s, search)
            .map(|m| (m.start(), m.end()))
        else {
            break;
        };
        count += 1;
        let advance = |eo: usize| {
            if so == eo {
                next_char(s, eo).unwrap_or(s.len() + 1)
            } else {
                eo
            }
        };
        if n > 0 && count < n {
            search = advance(eo);
            continue;
        }
        out.push_str(&s[copied..so]);
        substitute(&mut out, repl, s, &locs);
        copied = eo;
        if n > 0 {
            break;
        }
        search = advance(eo);
    }
    out.push_str(&s[copied..]);
    Ok(out)
}

/// Appends `repl` with `\1`…`\9` (a group), `\&` (the match) and `\\`.
fn substitute(out: &mut String, repl: &str, s: &str, locs: &regex::CaptureLocations) {
    let mut chars = repl.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let group = match chars.clone().next() {
            Some(d @ '1'..='9') => d as usize - '0' as usize,
            Some('&') => 0,
            Some('\\') => {
                chars.next();
                out.push('\\');
                continue;
            }
            _ => {
                out.push('\\');
                continue;
            }
        };
        chars.next();
        if let Some((a, b)) = locs.get(group) {
            out.push_str(&s[a..b]);
        }
    }
}

fn no_global(name: &str) -> SqlError {
    SqlError::new(
        codes::INVALID_PARAMETER_VALUE,
        format!("{name}() does not support the \"global\" option"),
    )
}

/// `regexp_match`: the first match's groups (or the whole match when the
/// pattern has none) as text[]; NULL when nothing matches.
pub fn regexp_match(s: &str, pattern: &str, flags: &str) -> SqlResult<Value> {
    let flags = parse_flags(flags)?;
    if flags.global {
        return Err(no_global("regexp_match").with_hint("Use the regexp_matches function instead."));
    }
    let re = compile(pattern, flags)?;
    let Some(caps) = re.captures(s) else {
        return Ok(Value::Null);
    };
    let groups = if caps.len() > 1 { 1..caps.len() } else { 0..1 };
    Ok(Value::Array(
        groups
            .map(|i| {
                caps.get(i)
                    .map_or(Value::Null, |m| Value::Text(m.as_str().to_owned()))
            })
            .collect(),
    ))
}

/// `regexp_split_to_array`: the text between matches. As PostgreSQL, an
/// empty match at the start or end of the string, or right after another
/// match, does not split.
pub fn regexp_split(s: &str, pattern: &str, flags: &str) -> SqlResult<Vec<String>> {
    let flags = parse_flags(flags)?;
    if flags.global {
        return Err(no_global("regexp_split_to_array"));
    }
    let re = compile(pattern, flags)?;
    let mut parts = Vec::new();
    let (mut search, mut prev_end, mut copied) = (0, 0, 0);
    while search <= s.len() {
        let Some(m) = re.find_at(s, search) else {
            break;
        };
        let (so, eo) = (m.start(), m.end());
        if so < s.len() && eo > prev_end {
            parts.push(s[copied..so].to_owned());
            copied = eo;
            prev_end = eo;
        }
        search = if so == eo {
            match next_char(s, eo) {
                Some(p) => p,
                None => break,
            }
        } else {
            eo
        };
    }
    parts.push(s[copied..].to_owned());
    Ok(parts)
}

/// `like_escape(pattern, escape)`: the LIKE pattern written with `escape`
/// as its escape character (`pattern LIKE … ESCAPE escape`), rewritten to
/// the backslash escapes [`ops::like`] reads. An empty `escape` means no
/// escape character: every backslash is then a literal one.
pub fn like_escape(pattern: &str, escape: &str) -> SqlResult<String> {
    let mut esc = escape.chars();
    let escape = match (esc.next(), esc.next()) {
        (None, _) => None,
        (Some(c), None) => Some(c),
        _ => {
            return Err(SqlError::new("22025", "invalid escape string")
                .with_hint("Escape string must be empty or one character."));
        }
    };
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            let next = chars.next().ok_or_else(|| {
                SqlError::new("22025", "LIKE pattern must not end with escape character")
            })?;
            out.push('\\');
            out.push(next);
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// The regular expression a `SIMILAR TO` pattern means (PostgreSQL's
/// `similar_to_escape`): the whole string must match; `%` is any text, `_`
/// any character; `|`, `*`, `+`, `?`, `{m,n}`, groups and brackets keep
/// their regular-expression sense; `.`, `^`, `$` and `\` are literal; the
/// escape character makes the next character literal.
pub fn similar_to_regex(pattern: &str, escape: Option<char>) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    out.push_str("^(?:");
    let mut escaped = false;
    // Inside `[...]`: the position in the bracket (`]` first is literal).
    let mut bracket: Option<usize> = None;
    for c in pattern.chars() {
        if escaped {
            out.push('\\');
            out.push(c);
            escaped = false;
            continue;
        }
        if Some(c) == escape {
            escaped = true;
            continue;
        }
        if let Some(pos) = bracket {
            if c == ']' && pos > 0 {
                bracket = None;
            } else {
                bracket = Some(if c == '^' && pos == 0 { 0 } else { pos + 1 });
            }
            if c == '\\' {
                out.push('\\');
            }
            out.push(c);
            continue;
        }
        match c {
            '[' => {
                bracket = Some(0);
                out.push('[');
            }
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            '(' => out.push_str("(?:"),
            '.' | '^' | '$' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push_str(")$");
    out
}

#[cfg(test)]
mod tests {
    use super::like_escape;

    #[test]
    fn like_escape_rewrites_to_backslash_escapes() {
        assert_eq!(
            like_escape("a#%b#_c", "#").ok(),
            Some("a\\%b\\_c".to_string())
        );
        // A backslash is literal under another escape character, and with none.
        assert_eq!(like_escape("a\\b", "#").ok(), Some("a\\\\b".to_string()));
        assert_eq!(like_escape("a\\b", "").ok(), Some("a\\\\b".to_string()));
        assert!(
            crate::ops::like(
                "50% off",
                &like_escape("50#% off", "#").unwrap_or_default(),
                false
            )
            .unwrap_or(false)
        );
        assert!(
            !crate::ops::like(
                "50x off",
                &like_escape("50#% off", "#").unwrap_or_default(),
                false
            )
            .unwrap_or(true)
        );
        assert_eq!(like_escape("a", "ab").map_err(|e| e.code), Err("22025"));
        assert_eq!(like_escape("a#", "#").map_err(|e| e.code), Err("22025"));
    }

    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha256_matches_known_digests() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // two blocks
        assert_eq!(
            hex(&sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn base64_round_trips_and_wraps_like_postgres() {
        for len in 0..200 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let enc = encode(&data, "base64").expect("encode");
            assert!(enc.lines().all(|l| l.len() <= 76));
            assert_eq!(decode(&enc, "base64").expect("decode"), data);
            let esc = encode(&data, "escape").expect("encode");
            assert_eq!(decode(&esc, "escape").expect("decode"), data);
            let h = encode(&data, "hex").expect("encode");
            assert_eq!(decode(&h, "HEX").expect("decode"), data);
        }
        // 57 bytes make one full line, which ends with a newline
        assert!(encode(&[0; 57], "base64").expect("encode").ends_with('\n'));
        assert_eq!(decode("YQ", "base64").unwrap_err().code, "22023");
        assert_eq!(decode("a=", "base64").unwrap_err().code, "22023");
    }

    #[test]
    fn format_follows_text_format() {
        let t = |s: &str| Value::Text(s.into());
        let args = [t("a"), t("b"), Value::Int(3)];
        let types = [SqlType::Text, SqlType::Text, SqlType::Int4];
        let f = |fmt: &str| format(fmt, &args, &types);
        assert_eq!(f("%s %1$s %s").expect("ok"), "a a b");
        assert_eq!(f("%2$s|%-3s|").expect("ok"), "b|3  |");
        assert_eq!(f("[%1$*3$s]").expect("ok"), "[  a]");
        assert_eq!(
            f("[%*3$s]").unwrap_err().message,
            "too few arguments for format()"
        );
        assert_eq!(
            f("%s%s%s%s").unwrap_err().message,
            "too few arguments for format()"
        );
        assert_eq!(
            f("%").unwrap_err().message,
            "unterminated format() type specifier"
        );
        assert_eq!(
            f("%1$").unwrap_err().message,
            "unterminated format() type specifier"
        );
        assert_eq!(f("%*1s").unwrap_err().code, "22023");
    }

    #[test]
    fn identifiers_are_quoted_like_postgres() {
        assert!(QUOTED_KEYWORDS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(quote_ident("abc_1"), "abc_1");
        assert_eq!(quote_ident("abort"), "abort");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_ident("1a"), "\"1a\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident(""), "\"\"");
        assert_eq!(quote_literal("a'b\\c"), "E'a''b\\\\c'");
    }

    #[test]
    fn patterns_translate_are_escapes() {
        assert_eq!(translate_pattern(r"\mfoo\M"), r"\b{start}foo\b{end}");
        assert_eq!(translate_pattern(r"[]a]"), r"[\]a]");
        assert_eq!(translate_pattern(r"[[:alpha:][]"), r"[[:alpha:]\[]");
        assert_eq!(translate_pattern(r"[a&&b]"), r"[a\&\&b]");
        assert_eq!(translate_pattern(r"\\m"), r"\\m");
        let err = compile("(", ReFlags::default()).unwrap_err();
        assert_eq!(
            err.message,
            "invalid regular expression: parentheses () not balanced"
        );
        assert_eq!(err.code, "2201B");
    }

    #[test]
    fn splitting_skips_degenerate_matches() {
        let split = |s: &str, p: &str| regexp_split(s, p, "").expect("valid");
        assert_eq!(split("abc", ""), ["a", "b", "c"]);
        assert_eq!(split("abc", "x*"), ["a", "b", "c"]);
        assert_eq!(split("a,b,,c,", ","), ["a", "b", "", "c", ""]);
        assert_eq!(split("", ","), [""]);
        assert_eq!(split("héllo", ""), ["h", "é", "l", "l", "o"]);
    }

    #[test]
    fn replacement_escapes_follow_postgres() {
        let r = |s: &str, p: &str, repl: &str, f: &str| {
            regexp_replace(s, p, repl, f, 1, None).expect("valid")
        };
        assert_eq!(r("abc", "x*", "-", "g"), "-a-b-c-");
        assert_eq!(r("abc", "(b)", r"[\1\\\&\0\2\q]", ""), r"a[b\b\0\q]c");
        assert_eq!(r("abc", "b", "x\\", ""), "ax\\c");
        assert_eq!(r("a\nb", ".", "x", "g"), "xxx");
        assert_eq!(r("a\nb", "^b", "x", "gn"), "a\nx");
        assert_eq!(
            regexp_replace("aaa", "a", "b", "", 2, Some(0)).expect("valid"),
            "abb"
        );
        assert_eq!(
            regexp_replace("aaa", "a", "b", "", 1, Some(2)).expect("valid"),
            "aba"
        );
    }
}
