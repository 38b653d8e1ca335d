//! Built-in scalar functions: result types and evaluation (PostgreSQL 15 semantics).
//!
//! Names are lower-case. Functions are strict (NULL in, NULL out) unless noted:
//! `concat`, `concat_ws`, `greatest`, `least` and `coalesce` skip NULLs. Where
//! PostgreSQL has float8 and numeric variants (`round`, `sqrt`, `ln`, …) an integer
//! argument picks the float8 one, as PostgreSQL's preferred-type rule does; numeric
//! transcendental functions are computed in double precision and rounded to
//! PostgreSQL's result scale (the last digit may differ for results above 10).
//! `position(string, substring)` takes PostgreSQL's internal argument order (that of
//! `strpos`); SQL's `POSITION(sub IN s)` maps to it. `extract` returns numeric,
//! `date_part` double precision, as in PostgreSQL 14+.
//!
//! The encoding, formatting, quoting and regular-expression functions are in
//! [`crate::strings`]; the jsonb operators and functions in [`crate::jsonb`].

use std::cmp::Ordering;

use tardigrade_encoding::decimal::Decimal;

use crate::datetime::{self, USECS_PER_DAY, USECS_PER_SEC};
use crate::error::codes;
use crate::num::{self, Num};
use crate::ops::{self, BinOp};
use crate::{Interval, SqlError, SqlResult, SqlType, Value};

fn undefined(name: &str, args: &[SqlType]) -> SqlError {
    let list: Vec<String> = args.iter().map(|t| t.to_string()).collect();
    SqlError::undefined_function(format!(
        "function {name}({}) does not exist",
        list.join(", ")
    ))
    .with_hint(
        "No function matches the given name and argument types. You might need to add explicit type casts.",
    )
}

fn is_num(t: SqlType) -> bool {
    t.is_numeric() || t == SqlType::Unknown
}

fn is_text(t: SqlType) -> bool {
    t.is_string() || t == SqlType::Unknown
}

fn is_int(t: SqlType) -> bool {
    t.is_integer() || t == SqlType::Unknown
}

/// A date/timestamp argument; text (an untyped literal the planner typed as text)
/// is read as a timestamp with time zone, as PostgreSQL resolves `unknown`.
fn is_ts(t: SqlType) -> bool {
    matches!(
        t,
        SqlType::Date | SqlType::Timestamp | SqlType::TimestampTz | SqlType::Unknown
    ) || t.is_string()
}

/// A jsonb argument (text is parsed as JSON).
fn is_json(t: SqlType) -> bool {
    t == SqlType::Jsonb || is_text(t)
}

/// float8 unless the argument is numeric (PostgreSQL's choice between the float8 and
/// numeric variant of a math function).
fn float_or_numeric(t: SqlType) -> SqlType {
    match t {
        SqlType::Decimal(_) => SqlType::Decimal(None),
        _ => SqlType::Float8,
    }
}

/// Functions that are not strict: NULL arguments do not force a NULL result.
fn non_strict(name: &str) -> bool {
    matches!(
        name,
        "concat"
            | "concat_ws"
            | "greatest"
            | "least"
            | "coalesce"
            | "nullif"
            | "jsonb_build_object"
            | "jsonb_build_array"
            | "json_build_object"
            | "json_build_array"
            | "num_nulls"
            | "num_nonnulls"
            // `format_type(oid, NULL)`: the type's name without a modifier.
            | "format_type"
    ) || crate::array::non_strict(name)
        || crate::strings::non_strict(name)
}

/// The result type of `name(args…)`; 42883 when no such function exists.
pub fn function_type(name: &str, args: &[SqlType]) -> SqlResult<SqlType> {
    use SqlType as T;
    let fail = || Err(undefined(name, args));
    if let Some(t) = crate::array::function_type(name, args)? {
        return Ok(t);
    }
    if let Some(t) = crate::catalog_fns::function_type(name, args) {
        return Ok(t);
    }
    if let Some(t) = crate::strings::function_type(name, args) {
        return Ok(t);
    }
    if let Some(t) = crate::jsonb::function_type(name, args) {
        return Ok(t);
    }
    let r = match (name, args) {
        ("abs", [t]) if is_num(*t) => match t {
            T::Unknown => T::Float8,
            T::Decimal(_) => T::Decimal(None),
            t => *t,
        },
        ("ceil" | "ceiling" | "floor" | "sign" | "sqrt" | "exp" | "ln" | "log" | "log10", [t])
            if is_num(*t) =>
        {
            float_or_numeric(*t)
        }
        ("round" | "trunc", [t]) if is_num(*t) => float_or_numeric(*t),
        ("round" | "trunc", [t, s]) if is_num(*t) && !is_float_t(*t) && is_int(*s) => {
            T::Decimal(None)
        }
        ("log", [b, x]) if is_num(*b) && is_num(*x) && !is_float_t(*b) && !is_float_t(*x) => {
            T::Decimal(None)
        }
        ("power" | "pow", [a, b]) if is_num(*a) && is_num(*b) => {
            ops::binary_type(BinOp::Pow, *a, *b)?
        }
        ("mod", [a, b]) if is_num(*a) && is_num(*b) => ops::binary_type(BinOp::Mod, *a, *b)?,
        ("div", [a, b]) if is_num(*a) && is_num(*b) => T::Decimal(None),
        ("gcd" | "lcm", [a, b]) if is_num(*a) && is_num(*b) => {
            ops::binary_type(BinOp::Mod, *a, *b)?
        }
        (
            "cbrt" | "degrees" | "radians" | "sin" | "cos" | "tan" | "asin" | "acos" | "atan"
            | "cot" | "sinh" | "cosh" | "tanh",
            [t],
        ) if is_num(*t) => T::Float8,
        ("atan2", [a, b]) if is_num(*a) && is_num(*b) => T::Float8,
        ("pi" | "random", []) => T::Float8,
        ("length" | "char_length" | "character_length", [t]) if is_text(*t) => T::Int4,
        ("length" | "octet_length", [T::Bytes]) => T::Int4,
        ("octet_length" | "bit_length", [t]) if is_text(*t) => T::Int4,
        ("lower" | "upper" | "initcap" | "reverse" | "md5", [t]) if is_text(*t) => T::Text,
        ("md5", [T::Bytes]) => T::Text,
        ("substr" | "substring", [t, s]) if is_text(*t) && is_int(*s) => T::Text,
        ("substr" | "substring", [t, s, l]) if is_text(*t) && is_int(*s) && is_int(*l) => T::Text,
        ("substr" | "substring", [T::Bytes, s, ..]) if is_int(*s) && args.len() <= 3 => T::Bytes,
        ("trim" | "btrim" | "ltrim" | "rtrim", [t]) if is_text(*t) => T::Text,
        ("trim" | "btrim" | "ltrim" | "rtrim", [t, c]) if is_text(*t) && is_text(*c) => T::Text,
        ("replace", [a, b, c]) if is_text(*a) && is_text(*b) && is_text(*c) => T::Text,
        ("concat", _) => T::Text,
        ("concat_ws", [sep, ..]) if is_text(*sep) => T::Text,
        ("left" | "right" | "repeat", [t, n]) if is_text(*t) && is_int(*n) => T::Text,
        ("lpad" | "rpad", [t, n]) if is_text(*t) && is_int(*n) => T::Text,
        ("lpad" | "rpad", [t, n, f]) if is_text(*t) && is_int(*n) && is_text(*f) => T::Text,
        ("strpos" | "position", [a, b]) if is_text(*a) && is_text(*b) => T::Int4,
        ("split_part", [a, b, n]) if is_text(*a) && is_text(*b) && is_int(*n) => T::Text,
        ("starts_with", [a, b]) if is_text(*a) && is_text(*b) => T::Bool,
        ("to_hex", [t]) if is_int(*t) => T::Text,
        ("ascii", [t]) if is_text(*t) => T::Int4,
        ("chr", [t]) if is_int(*t) => T::Text,
        ("gen_random_uuid" | "uuid_generate_v4", []) => T::Uuid,
        (
            "now"
            | "current_timestamp"
            | "transaction_timestamp"
            | "statement_timestamp"
            | "clock_timestamp",
            [],
        ) => T::TimestampTz,
        ("current_date", []) => T::Date,
        ("localtimestamp", []) => T::Timestamp,
        ("localtime", []) => T::Time,
        // The typmod coercions `timestamp(p)` / `timestamptz(p)` apply
        // (PostgreSQL's `pg_catalog.timestamp(timestamp, int)`).
        ("timestamp", [T::Timestamp, p]) if is_int(*p) => T::Timestamp,
        ("timestamptz", [T::TimestampTz, p]) if is_int(*p) => T::TimestampTz,
        // `ts AT TIME ZONE zone`: a timestamptz's local time in the zone,
        // or the instant a local time in the zone is.
        ("timezone", [z, T::TimestampTz]) if is_text(*z) || *z == T::Interval => T::Timestamp,
        ("timezone", [z, T::Timestamp]) if is_text(*z) || *z == T::Interval => T::TimestampTz,
        ("date_trunc", [f, t]) if is_text(*f) => match t {
            T::Timestamp => T::Timestamp,
            T::Interval => T::Interval,
            t if is_ts(*t) => T::TimestampTz,
            _ => return fail(),
        },
        ("date_part", [f, t])
            if is_text(*f) && (is_ts(*t) || matches!(t, T::Interval | T::Time)) =>
        {
            T::Float8
        }
        ("extract", [f, t]) if is_text(*f) && (is_ts(*t) || matches!(t, T::Interval | T::Time)) => {
            T::Decimal(None)
        }
        ("age", [a, b]) if is_ts(*a) && is_ts(*b) => T::Interval,
        ("age", [a]) if is_ts(*a) => T::Interval,
        ("make_date", [y, m, d]) if is_int(*y) && is_int(*m) && is_int(*d) => T::Date,
        ("make_timestamp", [y, m, d, h, mi, s])
            if [y, m, d, h, mi].iter().all(|t| is_int(**t)) && is_num(*s) =>
        {
            T::Timestamp
        }
        ("num_nulls" | "num_nonnulls", [_, ..]) => T::Int4,
        ("justify_days" | "justify_hours" | "justify_interval", [T::Interval | T::Unknown]) => {
            T::Interval
        }
        ("to_timestamp", [t]) if is_num(*t) => T::TimestampTz,
        ("greatest" | "least" | "coalesce", [_, ..]) => ops::common_type_for(
            match name {
                "greatest" => "GREATEST",
                "least" => "LEAST",
                _ => "COALESCE",
            },
            args,
        )?,
        ("nullif", [a, _]) => {
            if *a == T::Unknown {
                T::Text
            } else {
                *a
            }
        }
        ("jsonb_typeof", [t]) if is_json(*t) => T::Text,
        ("jsonb_array_length", [t]) if is_json(*t) => T::Int4,
        // `json_*` builders give JSONB here: there is no separate JSON type
        // (its text keeps input spacing; JSONB's is normalized).
        // TODO(issue 13): a JSON type.
        (
            "jsonb_build_object" | "jsonb_build_array" | "json_build_object" | "json_build_array",
            _,
        ) => T::Jsonb,
        ("to_jsonb" | "to_json", [_]) => T::Jsonb,
        ("scale", [t]) if is_num(*t) && !is_float_t(*t) => T::Int4,
        ("width_bucket", [x, lo, hi, n])
            if is_num(*x) && is_num(*lo) && is_num(*hi) && is_int(*n) =>
        {
            T::Int4
        }
        ("factorial", [t]) if is_int(*t) => T::Decimal(None),
        _ => return fail(),
    };
    Ok(r)
}

fn is_float_t(t: SqlType) -> bool {
    matches!(t, SqlType::Float4 | SqlType::Float8)
}

fn arg_f64(v: &Value) -> SqlResult<f64> {
    match v {
        Value::Text(s) => crate::value::parse_float(s, false),
        v => ops::to_f64(v).ok_or_else(|| SqlError::internal(format!("not a number: {v:?}"))),
    }
}

fn arg_i64(v: &Value) -> SqlResult<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Text(s) => crate::value::parse_int(s, SqlType::Int4),
        Value::Float(f) => Ok(f.round_ties_even() as i64),
        Value::Decimal(_) => match ops::cast(v, SqlType::Decimal(None), SqlType::Int4)? {
            Value::Int(i) => Ok(i),
            _ => Err(SqlError::internal("int cast")),
        },
        _ => Err(SqlError::internal(format!("not an integer: {v:?}"))),
    }
}

fn arg_num(v: &Value) -> SqlResult<Decimal> {
    match v {
        Value::Text(s) => crate::value::parse_decimal(s, SqlType::Decimal(None)),
        v => ops::to_decimal(v),
    }
}

fn arg_text(v: &Value, ty: SqlType) -> String {
    ops::text_of(v, ty)
}

fn float_val(f: f64) -> SqlResult<Value> {
    Ok(Value::Float(f))
}

fn checked_float(f: f64, input_finite: bool) -> SqlResult<Value> {
    if f.is_infinite() && input_finite {
        return Err(SqlError::out_of_range("value out of range: overflow"));
    }
    Ok(Value::Float(f))
}

/// Applies a float function, erroring for arguments outside its domain.
fn float_fn(name: &str, x: f64) -> SqlResult<Value> {
    let domain = || SqlError::out_of_range("input is out of range");
    let fin = x.is_finite();
    match name {
        "ceil" | "ceiling" => float_val(x.ceil()),
        "floor" => float_val(x.floor()),
        "round" => float_val(x.round_ties_even()),
        "trunc" => float_val(x.trunc()),
        "sign" => float_val(if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            0.0
        }),
        "sqrt" => {
            if x < 0.0 {
                return Err(SqlError::new(
                    "2201F",
                    "cannot take square root of a negative number",
                ));
            }
            float_val(x.sqrt())
        }
        "cbrt" => float_val(x.cbrt()),
        "exp" => {
            let r = x.exp();
            if r == 0.0 && fin {
                return Err(SqlError::out_of_range("value out of range: underflow"));
            }
            checked_float(r, fin)
        }
        "ln" | "log" | "log10" => {
            if x == 0.0 {
                return Err(SqlError::new("2201E", "cannot take logarithm of zero"));
            }
            if x < 0.0 {
                return Err(SqlError::new(
                    "2201E",
                    "cannot take logarithm of a negative number",
                ));
            }
            float_val(if name == "ln" { x.ln() } else { x.log10() })
        }
        "degrees" => checked_float(x / (std::f64::consts::PI / 180.0), fin),
        "radians" => float_val(x.to_radians()),
        "sin" | "cos" | "tan" | "cot" if x.is_infinite() => Err(domain()),
        "sin" => float_val(x.sin()),
        "cos" => float_val(x.cos()),
        "tan" => float_val(x.tan()),
        "cot" => float_val(1.0 / x.tan()),
        "asin" | "acos" if !(-1.0..=1.0).contains(&x) && !x.is_nan() => Err(domain()),
        "asin" => float_val(x.asin()),
        "acos" => float_val(x.acos()),
        "atan" => float_val(x.atan()),
        "sinh" => float_val(x.sinh()),
        "cosh" => float_val(x.cosh()),
        "tanh" => float_val(x.tanh()),
        _ => Err(SqlError::internal(format!("float function {name}"))),
    }
}

fn numeric_fn(name: &str, d: &Decimal) -> SqlResult<Value> {
    if d.is_nan() {
        return Ok(Value::Decimal(Decimal::nan()));
    }
    let Some(n) = Num::from_decimal(d) else {
        // NaN and infinities: defer to float semantics and map back
        let f = float_fn(name, num::dec_to_f64(d))?;
        return Ok(match f {
            Value::Float(f) if f.is_nan() => Value::Decimal(Decimal::nan()),
            Value::Float(f) if f.is_infinite() => Value::Decimal(Decimal::infinity(f < 0.0)),
            Value::Float(f) => Value::Decimal(num::dec_from_f64(f, 15)?),
            v => v,
        });
    };
    Ok(Value::Decimal(match name {
        "ceil" | "ceiling" => n.ceil().to_decimal()?,
        "floor" => n.floor().to_decimal()?,
        "round" => n.round(0).to_decimal()?,
        "trunc" => n.trunc(0).to_decimal()?,
        "abs" => n.abs().to_decimal()?,
        "sign" => Num::from_i128(if n.is_zero() {
            0
        } else if n.neg {
            -1
        } else {
            1
        })
        .to_decimal()?,
        "sqrt" => {
            if n.neg {
                return Err(SqlError::new(
                    "2201F",
                    "cannot take square root of a negative number",
                ));
            }
            n.sqrt(n.sqrt_scale()).to_decimal()?
        }
        "ln" => {
            let rscale = (16 - n.ln_dweight())
                .max(i64::from(n.scale))
                .clamp(0, num::MAX_DISPLAY_SCALE);
            n.ln(rscale as u32)?.to_decimal()?
        }
        "log" | "log10" => numeric_log(&Num::from_i128(10), &n)?,
        "exp" => {
            let val = (n.to_f64() * std::f64::consts::LOG10_E).clamp(-2000.0, 2000.0);
            let rscale = (16 - val as i64)
                .max(i64::from(n.scale))
                .clamp(0, num::MAX_DISPLAY_SCALE);
            n.exp(rscale as u32)?.to_decimal()?
        }
        _ => return Err(SqlError::internal(format!("numeric function {name}"))),
    }))
}

/// log base `b` of `x` with PostgreSQL's `log_var` result scale.
fn numeric_log(b: &Num, x: &Num) -> SqlResult<Decimal> {
    for v in [b, x] {
        if v.is_zero() {
            return Err(SqlError::new("2201E", "cannot take logarithm of zero"));
        }
        if v.neg {
            return Err(SqlError::new(
                "2201E",
                "cannot take logarithm of a negative number",
            ));
        }
    }
    let rscale = (16 - (x.ln_dweight() - b.ln_dweight()))
        .max(i64::from(b.scale))
        .max(i64::from(x.scale))
        .clamp(0, num::MAX_DISPLAY_SCALE);
    let ws = (rscale + 12 + x.ln_dweight().max(0) + b.ln_dweight().unsigned_abs() as i64) as u32;
    let lb = b.ln(ws)?;
    if lb.is_zero() {
        return Err(SqlError::division_by_zero());
    }
    x.ln(ws)?.div_to_scale(&lb, rscale as u32)?.to_decimal()
}

/// Calls the scalar function `name` on `args` of types `arg_types`.
pub fn call_function(name: &str, args: &[Value], arg_types: &[SqlType]) -> SqlResult<Value> {
    if let Some(rt) = crate::array::function_type(name, arg_types)? {
        let refs: Vec<&Value> = args.iter().collect();
        return crate::array::call_function(name, &refs, arg_types, rt);
    }
    let rt = function_type(name, arg_types)?;
    if !non_strict(name) && args.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    if crate::catalog_fns::function_type(name, arg_types).is_some() {
        return crate::catalog_fns::call_function(name, args);
    }
    if crate::strings::function_type(name, arg_types).is_some() {
        return crate::strings::call_function(name, args, arg_types);
    }
    if crate::jsonb::function_type(name, arg_types).is_some() {
        return crate::jsonb::call_function(name, args, arg_types);
    }
    let ty = |i: usize| arg_types.get(i).copied().unwrap_or(SqlType::Unknown);
    let a0 = args.first().unwrap_or(&Value::Null);
    match name {
        "abs" => match a0 {
            Value::Int(i) => Ok(Value::Int(ops::check_int(i128::from(*i).abs(), rt)?)),
            Value::Float(f) => Ok(Value::Float(f.abs())),
            Value::Decimal(d) => match Num::from_decimal(d) {
                Some(n) => Ok(Value::Decimal(n.abs().to_decimal()?)),
                None if d.is_nan() => Ok(a0.clone()),
                None => Ok(Value::Decimal(Decimal::infinity(false))),
            },
            v => Ok(Value::Float(arg_f64(v)?.abs())),
        },
        "ceil" | "ceiling" | "floor" | "sign" | "sqrt" | "exp" | "ln" | "log10" | "cbrt"
        | "degrees" | "radians" | "sin" | "cos" | "tan" | "cot" | "asin" | "acos" | "atan"
        | "sinh" | "cosh" | "tanh"
            if args.len() == 1 =>
        {
            if let SqlType::Decimal(_) = rt {
                numeric_fn(name, &arg_num(a0)?)
            } else {
                float_fn(name, arg_f64(a0)?)
            }
        }
        "log" if args.len() == 1 => {
            if let SqlType::Decimal(_) = rt {
                numeric_fn("log10", &arg_num(a0)?)
            } else {
                float_fn("log10", arg_f64(a0)?)
            }
        }
        "log" => {
            let (b, x) = (arg_num(a0)?, arg_num(&args[1])?);
            match (Num::from_decimal(&b), Num::from_decimal(&x)) {
                (Some(b), Some(x)) => Ok(Value::Decimal(numeric_log(&b, &x)?)),
                _ => Ok(Value::Decimal(Decimal::nan())),
            }
        }
        "round" | "trunc" if args.len() == 1 => {
            if let SqlType::Decimal(_) = rt {
                numeric_fn(name, &arg_num(a0)?)
            } else {
                float_fn(name, arg_f64(a0)?)
            }
        }
        "round" | "trunc" => {
            let d = arg_num(a0)?;
            let s = arg_i64(&args[1])?;
            match Num::from_decimal(&d) {
                None => Ok(Value::Decimal(d)),
                Some(n) => {
                    let s = s.clamp(-(num::MAX_DISPLAY_SCALE * 2), num::MAX_DISPLAY_SCALE);
                    let r = if name == "round" {
                        n.round(s)
                    } else {
                        n.trunc(s)
                    };
                    Ok(Value::Decimal(r.to_decimal()?))
                }
            }
        }
        "power" | "pow" => ops::eval_binary(BinOp::Pow, a0, &args[1], ty(0), ty(1)),
        "mod" => ops::eval_binary(BinOp::Mod, a0, &args[1], ty(0), ty(1)),
        "div" => {
            let (a, b) = (arg_num(a0)?, arg_num(&args[1])?);
            match (Num::from_decimal(&a), Num::from_decimal(&b)) {
                (Some(x), Some(y)) => Ok(Value::Decimal(x.div_trunc(&y)?.to_decimal()?)),
                _ => Ok(Value::Decimal(Decimal::nan())),
            }
        }
        "gcd" | "lcm" => {
            let (a, b) = (arg_i64(a0)?, arg_i64(&args[1])?);
            let (mut x, mut y) = (i128::from(a).abs(), i128::from(b).abs());
            while y != 0 {
                (x, y) = (y, x % y);
            }
            let r = if name == "gcd" {
                x
            } else if x == 0 {
                0
            } else {
                (i128::from(a) / x * i128::from(b)).abs()
            };
            Ok(Value::Int(ops::check_int(r, rt)?))
        }
        "atan2" => float_val(arg_f64(a0)?.atan2(arg_f64(&args[1])?)),
        "pi" => float_val(std::f64::consts::PI),
        "random" => float_val((random_u64() >> 11) as f64 / (1u64 << 53) as f64),
        "length" | "char_length" | "character_length" => match a0 {
            Value::Bytes(b) => Ok(Value::Int(b.len() as i64)),
            v => Ok(Value::Int(arg_text(v, ty(0)).chars().count() as i64)),
        },
        "octet_length" => match a0 {
            Value::Bytes(b) => Ok(Value::Int(b.len() as i64)),
            v => Ok(Value::Int(v.to_text(ty(0)).len() as i64)),
        },
        "bit_length" => Ok(Value::Int(8 * a0.to_text(ty(0)).len() as i64)),
        "lower" => Ok(Value::Text(arg_text(a0, ty(0)).to_lowercase())),
        "upper" => Ok(Value::Text(arg_text(a0, ty(0)).to_uppercase())),
        "initcap" => Ok(Value::Text(initcap(&arg_text(a0, ty(0))))),
        "reverse" => Ok(Value::Text(arg_text(a0, ty(0)).chars().rev().collect())),
        "md5" => {
            let bytes = match a0 {
                Value::Bytes(b) => b.clone(),
                v => arg_text(v, ty(0)).into_bytes(),
            };
            Ok(Value::Text(
                md5(&bytes).iter().map(|b| format!("{b:02x}")).collect(),
            ))
        }
        "substr" | "substring" => {
            let start = arg_i64(&args[1])?;
            let len = args.get(2).map(arg_i64).transpose()?;
            if let Value::Bytes(b) = a0 {
                let (lo, hi) = substr_range(start, len, b.len())?;
                return Ok(Value::Bytes(b[lo..hi].to_vec()));
            }
            let s = arg_text(a0, ty(0));
            let chars: Vec<char> = s.chars().collect();
            let (lo, hi) = substr_range(start, len, chars.len())?;
            Ok(Value::Text(chars[lo..hi].iter().collect()))
        }
        "trim" | "btrim" | "ltrim" | "rtrim" => {
            let s = arg_text(a0, ty(0));
            let set: Vec<char> = match args.get(1) {
                Some(v) => arg_text(v, ty(1)).chars().collect(),
                None => vec![' '],
            };
            let f = |c: char| set.contains(&c);
            Ok(Value::Text(
                match name {
                    "ltrim" => s.trim_start_matches(f),
                    "rtrim" => s.trim_end_matches(f),
                    _ => s.trim_matches(f),
                }
                .to_owned(),
            ))
        }
        "replace" => {
            let (s, from, to) = (
                arg_text(a0, ty(0)),
                arg_text(&args[1], ty(1)),
                arg_text(&args[2], ty(2)),
            );
            Ok(Value::Text(if from.is_empty() {
                s
            } else {
                s.replace(&from, &to)
            }))
        }
        "concat" => {
            let mut out = String::new();
            for (i, v) in args.iter().enumerate() {
                if !v.is_null() {
                    out.push_str(&arg_text(v, ty(i)));
                }
            }
            Ok(Value::Text(out))
        }
        "concat_ws" => {
            if a0.is_null() {
                return Ok(Value::Null);
            }
            let sep = arg_text(a0, ty(0));
            let parts: Vec<String> = args
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(_, v)| !v.is_null())
                .map(|(i, v)| arg_text(v, ty(i)))
                .collect();
            Ok(Value::Text(parts.join(&sep)))
        }
        "left" | "right" => {
            let chars: Vec<char> = arg_text(a0, ty(0)).chars().collect();
            let n = arg_i64(&args[1])?;
            let len = chars.len() as i64;
            let k = if n >= 0 { n.min(len) } else { (len + n).max(0) } as usize;
            Ok(Value::Text(if name == "left" {
                chars[..k].iter().collect()
            } else {
                chars[chars.len() - k..].iter().collect()
            }))
        }
        "repeat" => {
            let s = arg_text(a0, ty(0));
            let n = arg_i64(&args[1])?.max(0);
            if (s.len() as i64).saturating_mul(n) > (1 << 30) {
                return Err(SqlError::new(
                    codes::PROGRAM_LIMIT_EXCEEDED,
                    "requested length too large",
                ));
            }
            Ok(Value::Text(s.repeat(n as usize)))
        }
        "lpad" | "rpad" => {
            let s: Vec<char> = arg_text(a0, ty(0)).chars().collect();
            let n = arg_i64(&args[1])?;
            if n > (1 << 28) {
                return Err(SqlError::new(
                    codes::PROGRAM_LIMIT_EXCEEDED,
                    "requested length too large",
                ));
            }
            let n = n.max(0) as usize;
            let fill: Vec<char> = match args.get(2) {
                Some(v) => arg_text(v, ty(2)).chars().collect(),
                None => vec![' '],
            };
            if s.len() >= n || fill.is_empty() {
                return Ok(Value::Text(s[..n.min(s.len())].iter().collect()));
            }
            let pad: String = fill.iter().cycle().take(n - s.len()).collect();
            let body: String = s.iter().collect();
            Ok(Value::Text(if name == "lpad" {
                pad + &body
            } else {
                body + &pad
            }))
        }
        "strpos" | "position" => {
            let (s, sub) = (arg_text(a0, ty(0)), arg_text(&args[1], ty(1)));
            Ok(Value::Int(match s.find(&sub) {
                Some(i) => s[..i].chars().count() as i64 + 1,
                None => 0,
            }))
        }
        "split_part" => {
            let (s, delim) = (arg_text(a0, ty(0)), arg_text(&args[1], ty(1)));
            let n = arg_i64(&args[2])?;
            if n == 0 {
                return Err(SqlError::new(
                    codes::INVALID_PARAMETER_VALUE,
                    "field position must not be zero",
                ));
            }
            let parts: Vec<&str> = if delim.is_empty() {
                vec![s.as_str()]
            } else {
                s.split(delim.as_str()).collect()
            };
            let idx = if n > 0 { n - 1 } else { parts.len() as i64 + n };
            Ok(Value::Text(
                usize::try_from(idx)
                    .ok()
                    .and_then(|i| parts.get(i))
                    .map_or(String::new(), |p| (*p).to_owned()),
            ))
        }
        "starts_with" => Ok(Value::Bool(
            arg_text(a0, ty(0)).starts_with(&arg_text(&args[1], ty(1))),
        )),
        "to_hex" => {
            let v = arg_i64(a0)?;
            Ok(Value::Text(if ty(0) == SqlType::Int8 {
                format!("{v:x}")
            } else {
                format!("{:x}", v as i32)
            }))
        }
        "ascii" => Ok(Value::Int(
            arg_text(a0, ty(0)).chars().next().map_or(0, |c| c as i64),
        )),
        "chr" => {
            let v = arg_i64(a0)?;
            if v < 0 {
                return Err(SqlError::new(
                    codes::INVALID_PARAMETER_VALUE,
                    "character number must be positive",
                ));
            }
            if v == 0 {
                return Err(SqlError::new(
                    codes::PROGRAM_LIMIT_EXCEEDED,
                    "null character not permitted",
                ));
            }
            let c = u32::try_from(v)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| {
                    SqlError::new(
                        codes::PROGRAM_LIMIT_EXCEEDED,
                        "requested character too large for encoding",
                    )
                })?;
            Ok(Value::Text(c.to_string()))
        }
        "gen_random_uuid" | "uuid_generate_v4" => {
            let hi = u128::from(random_u64());
            let lo = u128::from(random_u64());
            let mut u = hi << 64 | lo;
            // version 4, variant 10
            u = (u & !(0xF << 76)) | (0x4 << 76);
            u = (u & !(0x3 << 62)) | (0x2 << 62);
            Ok(Value::Uuid(u))
        }
        "now"
        | "current_timestamp"
        | "transaction_timestamp"
        | "statement_timestamp"
        | "clock_timestamp" => Ok(Value::TimestampTz(datetime::now_micros())),
        "localtimestamp" => Ok(Value::Timestamp(datetime::now_micros())),
        "localtime" => Ok(Value::Time(
            datetime::now_micros().rem_euclid(USECS_PER_DAY),
        )),
        "current_date" => Ok(Value::Date(
            datetime::now_micros().div_euclid(USECS_PER_DAY) as i32,
        )),
        "timestamp" | "timestamptz" => {
            let precision = match args.get(1) {
                Some(Value::Int(p)) => *p,
                _ => return Err(SqlError::internal("timestamp precision")),
            };
            Ok(wrap_ts(round_timestamp(ts_micros(a0)?, precision)?, rt))
        }
        "date_trunc" => date_trunc(&arg_text(a0, ty(0)), &args[1], ty(1), rt),
        "timezone" => {
            let zone = match a0 {
                Value::Interval(iv) => crate::tz::zone_of_interval(*iv)?,
                v => crate::tz::zone(&arg_text(v, ty(0)))?,
            };
            let t = ts_micros(&args[1])?;
            if t == datetime::TS_POS_INF || t == datetime::TS_NEG_INF {
                return Ok(wrap_ts(t, rt));
            }
            let shifted = if rt == SqlType::Timestamp {
                t.checked_add(zone.offset_at(t).saturating_mul(datetime::USECS_PER_SEC))
            } else {
                Some(zone.utc_of_local(t))
            };
            Ok(wrap_ts(
                shifted.ok_or_else(datetime::timestamp_out_of_range)?,
                rt,
            ))
        }
        "date_part" | "extract" => {
            let field = arg_text(a0, ty(0)).to_ascii_lowercase();
            // A time of day has only its clock fields; it is read as that
            // time on 1970-01-01.
            let v = match &args[1] {
                Value::Time(t) => {
                    if !matches!(
                        field.as_str(),
                        "hour"
                            | "minute"
                            | "second"
                            | "milliseconds"
                            | "millisecond"
                            | "microseconds"
                            | "microsecond"
                            | "epoch"
                    ) {
                        return Err(SqlError::new(
                            codes::FEATURE_NOT_SUPPORTED,
                            format!(
                                "unit \"{field}\" not supported for type time without time zone"
                            ),
                        ));
                    }
                    Value::Timestamp(*t)
                }
                other => coerce_ts(other, ty(1))?,
            };
            let d = extract(&field, &v)?;
            if name == "extract" {
                Ok(Value::Decimal(d))
            } else {
                Ok(Value::Float(num::dec_to_f64(&d)))
            }
        }
        "age" => {
            let a = ts_micros(&coerce_ts(a0, ty(0))?)?;
            let b = match args.get(1) {
                Some(v) => ts_micros(&coerce_ts(v, ty(1))?)?,
                None => datetime::now_micros().div_euclid(USECS_PER_DAY) * USECS_PER_DAY,
            };
            Ok(Value::Interval(age(a, b)?))
        }
        "num_nulls" | "num_nonnulls" => {
            let nulls = args.iter().filter(|v| v.is_null()).count();
            let n = if name == "num_nulls" {
                nulls
            } else {
                args.len() - nulls
            };
            Ok(Value::Int(n as i64))
        }
        "justify_days" | "justify_hours" | "justify_interval" => {
            let iv = match a0 {
                Value::Interval(iv) => *iv,
                v => datetime::parse_interval(&arg_text(v, ty(0)))?,
            };
            Ok(Value::Interval(justify(name, iv)?))
        }
        "make_timestamp" => {
            let date = call_function("make_date", &args[..3], &[SqlType::Int8; 3])?;
            let Value::Date(days) = date else {
                return Err(SqlError::internal("make_date"));
            };
            let (h, mi, s) = (arg_i64(&args[3])?, arg_i64(&args[4])?, arg_f64(&args[5])?);
            if !(0..=24).contains(&h) || !(0..=59).contains(&mi) || !(0.0..=60.0).contains(&s) {
                return Err(SqlError::new(
                    codes::DATETIME_FIELD_OVERFLOW,
                    format!("date field value out of range: {h}:{mi:02}:{s}"),
                ));
            }
            let micros = i64::from(days) * datetime::USECS_PER_DAY
                + h * datetime::USECS_PER_HOUR
                + mi * datetime::USECS_PER_MINUTE
                + (s * 1e6).round() as i64;
            Ok(Value::Timestamp(micros))
        }
        "make_date" => {
            let (y, m, d) = (arg_i64(a0)?, arg_i64(&args[1])?, arg_i64(&args[2])?);
            let bad = || {
                SqlError::new(
                    codes::DATETIME_FIELD_OVERFLOW,
                    format!("date field value out of range: {y}-{m:02}-{d:02}"),
                )
            };
            if y == 0 || !(1..=12).contains(&m) {
                return Err(bad());
            }
            let year = if y < 0 { y + 1 } else { y };
            if d < 1 || d > i64::from(datetime::days_in_month(year, m as u32)) {
                return Err(bad());
            }
            let days = datetime::days_from_civil(year, m as u32, d as u32);
            Ok(Value::Date(i32::try_from(days).map_err(|_| bad())?))
        }
        "to_timestamp" => {
            let f = arg_f64(a0)?;
            if f.is_nan() {
                return Err(SqlError::out_of_range("timestamp cannot be NaN"));
            }
            if f.is_infinite() {
                return Ok(Value::TimestampTz(if f > 0.0 {
                    datetime::TS_POS_INF
                } else {
                    datetime::TS_NEG_INF
                }));
            }
            let micros = (f * 1e6).round();
            if micros.abs() > 9.2e18 {
                return Err(SqlError::out_of_range(format!(
                    "timestamp out of range: \"{f}\""
                )));
            }
            Ok(Value::TimestampTz(micros as i64))
        }
        "greatest" | "least" | "coalesce" => {
            let mut best: Option<Value> = None;
            for (i, v) in args.iter().enumerate() {
                if v.is_null() {
                    continue;
                }
                let v = ops::cast(v, ty(i), rt)?;
                if name == "coalesce" {
                    return Ok(v);
                }
                best = Some(match best {
                    None => v,
                    Some(b) => {
                        let o = ops::compare(&v, &b).unwrap_or(Ordering::Equal);
                        if (name == "greatest" && o.is_gt()) || (name == "least" && o.is_lt()) {
                            v
                        } else {
                            b
                        }
                    }
                });
            }
            Ok(best.unwrap_or(Value::Null))
        }
        "nullif" => {
            if a0.is_null() {
                return Ok(Value::Null);
            }
            let eq = ops::eval_binary(BinOp::Eq, a0, &args[1], ty(0), ty(1))?;
            Ok(if eq == Value::Bool(true) {
                Value::Null
            } else {
                a0.clone()
            })
        }
        "jsonb_typeof" => Ok(Value::Text(
            match json_arg(a0)? {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "boolean",
                serde_json::Value::Number(_) => "number",
                serde_json::Value::String(_) => "string",
                serde_json::Value::Array(_) => "array",
                serde_json::Value::Object(_) => "object",
            }
            .to_owned(),
        )),
        "jsonb_array_length" => match json_arg(a0)? {
            serde_json::Value::Array(a) => Ok(Value::Int(a.len() as i64)),
            serde_json::Value::Object(_) => Err(SqlError::new(
                codes::INVALID_PARAMETER_VALUE,
                "cannot get array length of a non-array",
            )),
            _ => Err(SqlError::new(
                codes::INVALID_PARAMETER_VALUE,
                "cannot get array length of a scalar",
            )),
        },
        "jsonb_build_object" | "json_build_object" => {
            if !args.len().is_multiple_of(2) {
                return Err(SqlError::new(
                    codes::INVALID_PARAMETER_VALUE,
                    "argument list must have even number of elements",
                )
                .with_hint(
                    "The arguments of jsonb_build_object() must consist of alternating keys and values.",
                ));
            }
            let mut m = serde_json::Map::new();
            for (i, pair) in args.chunks(2).enumerate() {
                if pair[0].is_null() {
                    return Err(SqlError::new(
                        codes::INVALID_PARAMETER_VALUE,
                        format!("argument {}: key must not be null", 2 * i + 1),
                    ));
                }
                let key = arg_text(&pair[0], ty(2 * i));
                m.insert(key, to_json(&pair[1], ty(2 * i + 1)));
            }
            Ok(Value::Jsonb(Box::new(serde_json::Value::Object(m))))
        }
        "jsonb_build_array" | "json_build_array" => {
            Ok(Value::Jsonb(Box::new(serde_json::Value::Array(
                args.iter()
                    .enumerate()
                    .map(|(i, v)| to_json(v, ty(i)))
                    .collect(),
            ))))
        }
        "to_jsonb" | "to_json" => Ok(Value::Jsonb(Box::new(to_json(a0, ty(0))))),
        "scale" => {
            let d = arg_num(a0)?;
            Ok(match Num::from_decimal(&d) {
                Some(_) => Value::Int(i64::from(num::dscale(&d))),
                None => Value::Null,
            })
        }
        "width_bucket" => width_bucket(args, arg_types),
        "factorial" => {
            let n = arg_i64(a0)?;
            if n < 0 {
                return Err(SqlError::new(
                    "2201E",
                    "factorial of a negative number is undefined",
                ));
            }
            if n > 32177 {
                return Err(num::overflow());
            }
            let mut r = Num::from_i128(1);
            for i in 2..=n {
                r = r.mul(&Num::from_i128(i128::from(i)));
            }
            Ok(Value::Decimal(r.to_decimal()?))
        }
        _ => Err(undefined(name, arg_types)),
    }
}

/// PostgreSQL's `width_bucket(operand, low, high, count)`: float8 when an
/// argument is a float, numeric otherwise.
fn width_bucket(args: &[Value], types: &[SqlType]) -> SqlResult<Value> {
    let bad = |m: &str| Err(SqlError::new("2201G", m.to_string()));
    let n = arg_i64(&args[3])?;
    if n <= 0 {
        return bad("count must be greater than zero");
    }
    // -1: below the range's start, 1: at or past its end, 0: inside.
    let (side, bucket): (i8, i128) = if types[..3].iter().any(|t| is_float_t(*t)) {
        let (x, lo, hi) = (arg_f64(&args[0])?, arg_f64(&args[1])?, arg_f64(&args[2])?);
        if x.is_nan() || lo.is_nan() || hi.is_nan() {
            return bad("operand, lower bound, and upper bound cannot be NaN");
        }
        if lo.is_infinite() || hi.is_infinite() {
            return bad("lower and upper bounds must be finite");
        }
        if lo == hi {
            return bad("lower bound cannot equal upper bound");
        }
        let (x, lo, hi) = if lo < hi { (x, lo, hi) } else { (-x, -lo, -hi) };
        if x < lo {
            (-1, 0)
        } else if x >= hi {
            (1, 0)
        } else {
            let b = if (hi - lo).is_infinite() {
                (n as f64 * (x / 2.0 - lo / 2.0) / (hi / 2.0 - lo / 2.0)) as i128
            } else {
                (n as f64 * (x - lo) / (hi - lo)) as i128
            };
            (0, (b + 1).min(i128::from(n)))
        }
    } else {
        let (x, lo, hi) = (arg_num(&args[0])?, arg_num(&args[1])?, arg_num(&args[2])?);
        if x.is_nan() || lo.is_nan() || hi.is_nan() {
            return bad("operand, lower bound, and upper bound cannot be NaN");
        }
        let (Some(lo), Some(hi)) = (Num::from_decimal(&lo), Num::from_decimal(&hi)) else {
            return bad("lower and upper bounds must be finite");
        };
        let ord = lo.cmp_num(&hi);
        if ord == Ordering::Equal {
            return bad("lower bound cannot equal upper bound");
        }
        let flip = |v: Num| if ord == Ordering::Less { v } else { v.negate() };
        let (lo, hi) = (flip(lo), flip(hi));
        match Num::from_decimal(&x) {
            None => (
                if (num::dec_to_f64(&x) < 0.0) == (ord == Ordering::Less) {
                    -1
                } else {
                    1
                },
                0,
            ),
            Some(x) => {
                let x = flip(x);
                if x.cmp_num(&lo) == Ordering::Less {
                    (-1, 0)
                } else if x.cmp_num(&hi) != Ordering::Less {
                    (1, 0)
                } else {
                    let q = x
                        .sub(&lo)
                        .mul(&Num::from_i128(i128::from(n)))
                        .div_trunc(&hi.sub(&lo))?;
                    (0, q.to_i128_round().unwrap_or(0) + 1)
                }
            }
        }
    };
    let r = match side {
        -1 => 0,
        1 => i128::from(n) + 1,
        _ => bucket,
    };
    Ok(Value::Int(ops::check_int(r, SqlType::Int4)?))
}

fn json_arg(v: &Value) -> SqlResult<serde_json::Value> {
    match v {
        Value::Jsonb(j) => Ok((**j).clone()),
        Value::Text(s) => crate::value::parse_json(s),
        _ => Err(SqlError::internal("not jsonb")),
    }
}

/// A SQL value as JSON, as PostgreSQL's `to_jsonb`.
pub fn to_json(v: &Value, ty: SqlType) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) if f.is_finite() => {
            let text = v.to_text(ty);
            let mut j = serde_json::from_str(&text).unwrap_or(J::String(text));
            crate::value::json_numbers_as_numeric(&mut j);
            j
        }
        Value::Decimal(d) if !d.is_nan() && !d.is_infinite() => {
            let text = v.to_text(ty);
            let mut j = serde_json::from_str(&text).unwrap_or(J::String(text));
            crate::value::json_numbers_as_numeric(&mut j);
            j
        }
        Value::Float(_) | Value::Decimal(_) => J::String(v.to_text(ty)),
        Value::Jsonb(j) => (**j).clone(),
        Value::Timestamp(_) | Value::TimestampTz(_) => {
            let t = v.to_text(ty);
            let t = match t.split_once(' ') {
                Some((d, rest)) if !t.contains("infinity") => format!("{d}T{rest}"),
                _ => t,
            };
            J::String(match t.strip_suffix("+00") {
                Some(base) => format!("{base}+00:00"),
                None => t,
            })
        }
        Value::Text(_) => J::String(ops::text_of(v, ty)),
        Value::Array(a) => {
            let et = ty.element().unwrap_or(SqlType::Unknown);
            J::Array(a.iter().map(|x| to_json(x, et)).collect())
        }
        _ => J::String(v.to_text(ty)),
    }
}

/// `substr` bounds (1-based `start`, optional length) as a half-open index range.
fn substr_range(start: i64, len: Option<i64>, n: usize) -> SqlResult<(usize, usize)> {
    let end = match len {
        Some(l) if l < 0 => {
            return Err(SqlError::new(
                "22011",
                "negative substring length not allowed",
            ));
        }
        Some(l) => start.saturating_add(l),
        None => i64::MAX,
    };
    let lo = (start.max(1) - 1).min(n as i64) as usize;
    let hi = (end.max(1) - 1).min(n as i64).max(lo as i64) as usize;
    Ok((lo, hi))
}

fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if in_word {
                out.extend(c.to_lowercase());
            } else {
                out.extend(c.to_uppercase());
            }
            in_word = true;
        } else {
            out.push(c);
            in_word = false;
        }
    }
    out
}

/// Date/timestamp argument (text parsed as timestamp).
fn coerce_ts(v: &Value, ty: SqlType) -> SqlResult<Value> {
    match v {
        Value::Text(s) if ty == SqlType::Unknown || ty.is_string() => {
            Value::from_text(s, SqlType::TimestampTz)
        }
        v => Ok(v.clone()),
    }
}

fn ts_micros(v: &Value) -> SqlResult<i64> {
    match v {
        Value::Date(d) => Ok(i64::from(*d) * USECS_PER_DAY),
        Value::Timestamp(t) | Value::TimestampTz(t) => Ok(*t),
        _ => Err(SqlError::internal(format!("not a timestamp: {v:?}"))),
    }
}

fn bad_unit(field: &str, ty: &str) -> SqlError {
    SqlError::new(
        codes::INVALID_PARAMETER_VALUE,
        format!("unit \"{field}\" not recognized for type {ty}"),
    )
}

fn date_trunc(field: &str, v: &Value, ty: SqlType, rt: SqlType) -> SqlResult<Value> {
    let field = field.to_ascii_lowercase();
    if let Value::Interval(iv) = v {
        let mut r = *iv;
        let unit = |u: i64| r.micros - r.micros % u;
        match field.as_str() {
            "millennium" => (r.months, r.days, r.micros) = (r.months / 12000 * 12000, 0, 0),
            "century" => (r.months, r.days, r.micros) = (r.months / 1200 * 1200, 0, 0),
            "decade" => (r.months, r.days, r.micros) = (r.months / 120 * 120, 0, 0),
            "year" => (r.months, r.days, r.micros) = (r.months / 12 * 12, 0, 0),
            "quarter" => (r.months, r.days, r.micros) = (r.months / 3 * 3, 0, 0),
            "month" => (r.days, r.micros) = (0, 0),
            "day" => r.micros = 0,
            "hour" => r.micros = unit(3_600_000_000),
            "minute" => r.micros = unit(60_000_000),
            "second" => r.micros = unit(1_000_000),
            "milliseconds" => r.micros = unit(1000),
            "microseconds" => {}
            _ => return Err(bad_unit(&field, "interval")),
        }
        return Ok(Value::Interval(r));
    }
    let t = ts_micros(&coerce_ts(v, ty)?)?;
    if t == datetime::TS_POS_INF || t == datetime::TS_NEG_INF {
        return Ok(wrap_ts(t, rt));
    }
    let days = t.div_euclid(USECS_PER_DAY);
    let tod = t.rem_euclid(USECS_PER_DAY);
    let (y, m, _) = datetime::civil_from_days(days);
    let ymd = |y: i64, m: u32| datetime::days_from_civil(y, m, 1) * USECS_PER_DAY;
    let r = match field.as_str() {
        "microseconds" => t,
        "milliseconds" => t - t.rem_euclid(1000),
        "second" => t - t.rem_euclid(USECS_PER_SEC),
        "minute" => t - t.rem_euclid(60 * USECS_PER_SEC),
        "hour" => t - t.rem_euclid(3600 * USECS_PER_SEC),
        "day" => t - tod,
        "week" => (days - (days + 3).rem_euclid(7)) * USECS_PER_DAY,
        "month" => ymd(y, m),
        "quarter" => ymd(y, (m - 1) / 3 * 3 + 1),
        "year" => ymd(y, 1),
        "decade" => ymd(y.div_euclid(10) * 10, 1),
        "century" => ymd(if y > 0 { (y - 1) / 100 * 100 + 1 } else { y }, 1),
        "millennium" => ymd(if y > 0 { (y - 1) / 1000 * 1000 + 1 } else { y }, 1),
        _ => return Err(bad_unit(&field, "timestamp without time zone")),
    };
    Ok(wrap_ts(r, rt))
}

/// `t` rounded to `precision` fractional digits of a second, as
/// PostgreSQL's `timestamp(p)` rounds: halves away from its epoch
/// (2000-01-01); 6 or more digits leave it as it is (PostgreSQL warns and
/// takes 6), infinities stay.
pub fn round_timestamp(t: i64, precision: i64) -> SqlResult<i64> {
    if precision < 0 {
        return Err(SqlError::new(
            codes::INVALID_PARAMETER_VALUE,
            format!("TIMESTAMP({precision}) precision must not be negative"),
        ));
    }
    if precision >= 6 || t == datetime::TS_POS_INF || t == datetime::TS_NEG_INF {
        return Ok(t);
    }
    let scale = 10_i64.pow(6 - precision as u32);
    let offset = datetime::PG_EPOCH_DAYS * USECS_PER_DAY;
    let pg = i128::from(t) - i128::from(offset);
    let half = i128::from(scale / 2);
    let scale = i128::from(scale);
    let rounded = if pg >= 0 {
        (pg + half) / scale * scale
    } else {
        -((-pg + half) / scale * scale)
    };
    i64::try_from(rounded + i128::from(offset))
        .map_err(|_| SqlError::new(codes::DATETIME_FIELD_OVERFLOW, "timestamp out of range"))
}

fn wrap_ts(t: i64, rt: SqlType) -> Value {
    match rt {
        SqlType::Timestamp => Value::Timestamp(t),
        _ => Value::TimestampTz(t),
    }
}

/// Decimal `v / 10^scale` printed with `scale` decimals.
fn scaled(v: i128, scale: u32) -> SqlResult<Decimal> {
    let mut n = Num::from_i128(v);
    n.scale = scale;
    n.to_decimal()
}

fn extract(field: &str, v: &Value) -> SqlResult<Decimal> {
    let int = |i: i64| Ok(Decimal::from(i));
    if let Value::Interval(iv) = v {
        let secs_part = iv.micros % 60_000_000;
        return match field {
            "year" | "years" => int(i64::from(iv.months / 12)),
            "month" | "months" | "mon" => int(i64::from(iv.months % 12)),
            "day" | "days" => int(i64::from(iv.days)),
            "hour" | "hours" => int(iv.micros / 3_600_000_000),
            "minute" | "minutes" => int(iv.micros / 60_000_000 % 60),
            "second" | "seconds" => scaled(i128::from(secs_part), 6),
            "millisecond" | "milliseconds" => scaled(i128::from(secs_part), 3),
            "microsecond" | "microseconds" => int(secs_part),
            "epoch" => {
                let total = i128::from(iv.months / 12) * 36_525 * 864_000_000
                    + i128::from(iv.months % 12) * 30 * 86_400_000_000
                    + i128::from(iv.days) * 86_400_000_000
                    + i128::from(iv.micros);
                scaled(total, 6)
            }
            "quarter" => int(i64::from(iv.months % 12 / 3 + 1)),
            "decade" => int(i64::from(iv.months / 120)),
            "century" => int(i64::from(iv.months / 1200)),
            "millennium" => int(i64::from(iv.months / 12000)),
            _ => Err(bad_unit(field, "interval")),
        };
    }
    let is_date = matches!(v, Value::Date(_));
    let t = ts_micros(v)?;
    if t == datetime::TS_POS_INF || t == datetime::TS_NEG_INF {
        return Ok(Decimal::infinity(t < 0));
    }
    let days = t.div_euclid(USECS_PER_DAY);
    let tod = t.rem_euclid(USECS_PER_DAY);
    let (y, m, d) = datetime::civil_from_days(days);
    let dow = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday
    let time_field = |f: &str| {
        if is_date {
            Err(bad_unit(f, "date"))
        } else {
            Ok(())
        }
    };
    match field {
        "year" | "years" => int(if y > 0 { y } else { y - 1 }),
        "month" | "months" | "mon" => int(i64::from(m)),
        "day" | "days" => int(i64::from(d)),
        "hour" | "hours" => {
            time_field(field)?;
            int(tod / 3_600_000_000)
        }
        "minute" | "minutes" => {
            time_field(field)?;
            int(tod / 60_000_000 % 60)
        }
        "second" | "seconds" => {
            time_field(field)?;
            scaled(i128::from(tod % 60_000_000), 6)
        }
        "millisecond" | "milliseconds" => {
            time_field(field)?;
            scaled(i128::from(tod % 60_000_000), 3)
        }
        "microsecond" | "microseconds" => {
            time_field(field)?;
            int(tod % 60_000_000)
        }
        "epoch" => {
            if is_date {
                int(days * 86_400)
            } else {
                scaled(i128::from(t), 6)
            }
        }
        "dow" => int(dow),
        "isodow" => int(if dow == 0 { 7 } else { dow }),
        "doy" => int(days - datetime::days_from_civil(y, 1, 1) + 1),
        "quarter" => int(i64::from((m - 1) / 3 + 1)),
        "week" => int(iso_week(days).1),
        "isoyear" => int(iso_week(days).0),
        "decade" => int(y.div_euclid(10)),
        "century" => int(if y > 0 {
            (y + 99) / 100
        } else {
            -((99 - y) / 100)
        }),
        "millennium" => int(if y > 0 {
            (y + 999) / 1000
        } else {
            -((999 - y) / 1000)
        }),
        "julian" => int(days + 2_440_588),
        "timezone" | "timezone_hour" | "timezone_minute" => int(0),
        _ => Err(bad_unit(
            field,
            if is_date {
                "date"
            } else {
                "timestamp without time zone"
            },
        )),
    }
}

/// ISO 8601 `(year, week)` of a day.
fn iso_week(days: i64) -> (i64, i64) {
    let isodow = (days + 3).rem_euclid(7); // Monday = 0
    let thursday = days - isodow + 3;
    let (ty, _, _) = datetime::civil_from_days(thursday);
    let jan1 = datetime::days_from_civil(ty, 1, 1);
    (ty, (thursday - jan1) / 7 + 1)
}

/// PostgreSQL's `age`: a symbolic difference in years, months, days and time.
fn age(a: i64, b: i64) -> SqlResult<Interval> {
    let (swap, hi, lo) = if a >= b { (false, a, b) } else { (true, b, a) };
    let split = |t: i64| {
        let days = t.div_euclid(USECS_PER_DAY);
        let (y, m, d) = datetime::civil_from_days(days);
        (y, i64::from(m), i64::from(d), t.rem_euclid(USECS_PER_DAY))
    };
    let (y1, m1, d1, t1) = split(hi);
    let (y2, m2, d2, t2) = split(lo);
    let (mut y, mut m, mut d, mut t) = (y1 - y2, m1 - m2, d1 - d2, t1 - t2);
    if t < 0 {
        t += USECS_PER_DAY;
        d -= 1;
    }
    if d < 0 {
        d += i64::from(datetime::days_in_month(y2, m2 as u32));
        m -= 1;
    }
    if m < 0 {
        m += 12;
        y -= 1;
    }
    let iv = Interval {
        months: i32::try_from(y * 12 + m).map_err(|_| datetime::interval_out_of_range())?,
        days: d as i32,
        micros: t,
    };
    if swap {
        datetime::neg_interval(iv)
    } else {
        Ok(iv)
    }
}

/// A pseudo-random u64 (SipHash of a per-process random key, a counter and the time).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static STATE: std::collections::hash_map::RandomState = std::collections::hash_map::RandomState::new();
    }
    STATE.with(|s| {
        let mut h = s.build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_i64(datetime::now_micros());
        h.finish()
    })
}

/// MD5 digest (RFC 1321), for SQL's `md5()`.
fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let (mut a0, mut b0, mut c0, mut d0) = (
        0x6745_2301u32,
        0xefcd_ab89u32,
        0x98ba_dcfeu32,
        0x1032_5476u32,
    );
    let mut msg = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&a0.to_le_bytes());
    out[4..8].copy_from_slice(&b0.to_le_bytes());
    out[8..12].copy_from_slice(&c0.to_le_bytes());
    out[12..].copy_from_slice(&d0.to_le_bytes());
    out
}

/// `justify_days` (30-day spans of days become months), `justify_hours`
/// (24-hour spans of time become days) and `justify_interval` (both, with
/// the signs of the parts made to agree), as PostgreSQL computes them.
fn justify(name: &str, iv: Interval) -> SqlResult<Interval> {
    let overflow = datetime::interval_out_of_range;
    let (mut months, mut days, mut micros) = (i64::from(iv.months), i64::from(iv.days), iv.micros);
    let day = datetime::USECS_PER_DAY;
    if name != "justify_days" {
        days += micros / day;
        micros %= day;
    }
    if name != "justify_hours" {
        months += days / 30;
        days %= 30;
    }
    let months_and_days = name != "justify_hours";
    if months_and_days {
        let time_sign = if name == "justify_interval" {
            micros
        } else {
            0
        };
        if months > 0 && (days < 0 || (days == 0 && time_sign < 0)) {
            days += 30;
            months -= 1;
        } else if months < 0 && (days > 0 || (days == 0 && time_sign > 0)) {
            days -= 30;
            months += 1;
        }
    }
    if name != "justify_days" {
        if days > 0 && micros < 0 {
            micros += day;
            days -= 1;
        } else if days < 0 && micros > 0 {
            micros -= day;
            days += 1;
        }
    }
    Ok(Interval {
        months: i32::try_from(months).map_err(|_| overflow())?,
        days: i32::try_from(days).map_err(|_| overflow())?,
        micros,
    })
}
