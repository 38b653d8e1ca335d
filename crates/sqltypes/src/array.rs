//! One-dimensional arrays: PostgreSQL's text (`{1,2,NULL}`) and binary formats,
//! their order, and the array functions and operators.
//!
//! An array value is a [`Value::Array`] of elements typed by the element type of
//! its [`SqlType::Array`]; its lower bound is always 1. Multidimensional arrays
//! (`'{{1,2},{3,4}}'`, `array_agg` of arrays) and explicit bounds (`'[0:1]={1,2}'`)
//! are refused with 0A000 (TODO(issue 4): multidimensional arrays).

use std::cmp::Ordering;

use crate::error::codes;
use crate::ops::{self, BinOp};
use crate::{SqlError, SqlResult, SqlType, Value};

/// PostgreSQL's array order (`array_cmp`): element by element, a NULL element
/// after every non-NULL one and equal to another NULL; then the shorter first.
pub fn cmp_elements(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => ops::compare(x, y).unwrap_or(Ordering::Equal),
        };
        if o.is_ne() {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

fn is_array_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C')
}

/// Appends `{e1,e2,…}` with each element in its type's text output, quoted when it
/// is empty, `NULL` in any case, or holds a brace, comma, quote, backslash or space.
pub fn write_text(out: &mut String, elems: &[Value], elem: SqlType) {
    out.push('{');
    let mut text = String::new();
    for (i, v) in elems.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if v.is_null() {
            out.push_str("NULL");
            continue;
        }
        text.clear();
        v.write_text(elem, &mut text);
        let quote = text.is_empty()
            || text.eq_ignore_ascii_case("null")
            || text
                .chars()
                .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || is_array_space(c));
        if !quote {
            out.push_str(&text);
            continue;
        }
        out.push('"');
        for c in text.chars() {
            if matches!(c, '"' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
}

fn malformed(s: &str, detail: &str) -> SqlError {
    SqlError::new(
        codes::INVALID_TEXT_REPRESENTATION,
        format!("malformed array literal: \"{s}\""),
    )
    .with_detail(detail)
}

fn multidimensional() -> SqlError {
    SqlError::unsupported("multidimensional arrays are not supported")
}

/// Parses PostgreSQL's array text input (`array_in`) for elements of type `elem`.
pub fn parse_text(s: &str, elem: SqlType) -> SqlResult<Value> {
    let t = s.trim_start_matches(is_array_space);
    if t.starts_with('[') {
        return Err(SqlError::unsupported(
            "array literals with explicit dimensions are not supported",
        ));
    }
    let Some(body) = t.strip_prefix('{') else {
        return Err(malformed(
            s,
            "Array value must start with \"{\" or dimension information.",
        ));
    };
    let mut chars = body.chars().peekable();
    let mut elems = Vec::new();
    // Skip whitespace; an immediate `}` is the empty array.
    while chars.next_if(|c| is_array_space(*c)).is_some() {}
    let mut closed = chars.next_if_eq(&'}').is_some();
    let mut item = String::new();
    while !closed {
        // One element: quoted and unquoted parts, backslash escapes anywhere.
        item.clear();
        let mut quoted = false;
        let mut escaped = false;
        // length of `item` up to its last character that is not unquoted space
        let mut keep = 0;
        let mut in_quotes = false;
        loop {
            let Some(c) = chars.next() else {
                return Err(malformed(s, "Unexpected end of input."));
            };
            match c {
                '\\' => {
                    let Some(n) = chars.next() else {
                        return Err(malformed(s, "Unexpected end of input."));
                    };
                    item.push(n);
                    keep = item.len();
                    escaped = true;
                }
                '"' => {
                    if !in_quotes && (quoted || keep > 0) {
                        return Err(malformed(s, "Unexpected array element."));
                    }
                    in_quotes = !in_quotes;
                    quoted = true;
                    keep = item.len();
                }
                c if in_quotes => {
                    item.push(c);
                    keep = item.len();
                }
                '{' => return Err(multidimensional()),
                ',' | '}' => {
                    if keep == 0 && !quoted && !escaped {
                        return Err(malformed(s, &format!("Unexpected \"{c}\" character.")));
                    }
                    closed = c == '}';
                    break;
                }
                c if is_array_space(c) => {
                    if keep > 0 || quoted || escaped {
                        item.push(c);
                    }
                }
                c => {
                    if quoted {
                        return Err(malformed(s, "Unexpected array element."));
                    }
                    item.push(c);
                    keep = item.len();
                }
            }
        }
        item.truncate(keep);
        if !quoted && !escaped && item.eq_ignore_ascii_case("null") {
            elems.push(Value::Null);
        } else {
            elems.push(Value::from_text(&item, elem)?);
        }
    }
    if !chars.all(is_array_space) {
        return Err(malformed(s, "Junk after closing right brace."));
    }
    Ok(Value::Array(elems))
}

/// The element OID written in the binary format.
fn element_oid(elem: SqlType) -> u32 {
    match elem {
        SqlType::Unknown => SqlType::Text.oid(),
        e => e.oid(),
    }
}

/// Appends PostgreSQL's binary array (`array_send`): ndim, has-NULL flag, element
/// OID, (length, lower bound) per dimension, then each element as a length (-1 for
/// NULL) and its binary form.
pub fn write_binary(out: &mut Vec<u8>, elems: &[Value], elem: SqlType) -> SqlResult<()> {
    let ndim: i32 = if elems.is_empty() { 0 } else { 1 };
    out.extend_from_slice(&ndim.to_be_bytes());
    out.extend_from_slice(&i32::from(elems.iter().any(Value::is_null)).to_be_bytes());
    out.extend_from_slice(&element_oid(elem).to_be_bytes());
    if ndim == 0 {
        return Ok(());
    }
    let len = i32::try_from(elems.len()).map_err(|_| {
        SqlError::new(
            codes::PROGRAM_LIMIT_EXCEEDED,
            "array size exceeds the maximum allowed",
        )
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    for v in elems {
        if v.is_null() {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            continue;
        }
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        v.write_binary(elem, out)?;
        let n = i32::try_from(out.len() - at - 4)
            .map_err(|_| SqlError::new(codes::PROGRAM_LIMIT_EXCEEDED, "array element too large"))?;
        out[at..at + 4].copy_from_slice(&n.to_be_bytes());
    }
    Ok(())
}

fn bad_binary(what: &str) -> SqlError {
    SqlError::new(codes::INVALID_BINARY_REPRESENTATION, what.to_string())
}

/// Takes `n` bytes off the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> SqlResult<&'a [u8]> {
    if rest.len() < n {
        return Err(bad_binary("insufficient data left in message"));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_i32(rest: &mut &[u8]) -> SqlResult<i32> {
    let b = take(rest, 4)?;
    Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses PostgreSQL's binary array (`array_recv`) with elements of type `elem`.
pub fn parse_binary(b: &[u8], elem: SqlType) -> SqlResult<Value> {
    let mut rest = b;
    let ndim = take_i32(&mut rest)?;
    let flags = take_i32(&mut rest)?;
    let oid = take_i32(&mut rest)? as u32;
    if !(0..=6).contains(&ndim) {
        return Err(bad_binary(&format!("invalid number of dimensions: {ndim}")));
    }
    if flags != 0 && flags != 1 {
        return Err(bad_binary("invalid array flags"));
    }
    let expected = element_oid(elem);
    if oid != expected && SqlType::from_oid(oid).map(SqlType::oid) != Some(expected) {
        return Err(SqlError::datatype_mismatch(format!(
            "binary data has array element type {oid} instead of expected {expected} ({elem})"
        )));
    }
    if ndim > 1 {
        return Err(multidimensional());
    }
    let mut elems = Vec::new();
    if ndim == 1 {
        let len = take_i32(&mut rest)?;
        let _lower_bound = take_i32(&mut rest)?;
        // Every element takes at least its 4-byte length: bound the allocation.
        let len = usize::try_from(len).map_err(|_| bad_binary("invalid array dimensions"))?;
        if len > rest.len() / 4 {
            return Err(bad_binary("insufficient data left in message"));
        }
        elems.reserve(len);
        for _ in 0..len {
            let n = take_i32(&mut rest)?;
            if n == -1 {
                elems.push(Value::Null);
                continue;
            }
            let n =
                usize::try_from(n).map_err(|_| bad_binary("insufficient data left in message"))?;
            elems.push(Value::from_binary(take(&mut rest, n)?, elem)?);
        }
    }
    if !rest.is_empty() {
        return Err(bad_binary("incorrect binary data format in array element"));
    }
    Ok(Value::Array(elems))
}

/// Casts each element of an array of `from` elements to `to` elements.
pub fn cast_elements(elems: &[Value], from: SqlType, to: SqlType) -> SqlResult<Value> {
    elems
        .iter()
        .map(|v| ops::cast(v, from, to))
        .collect::<SqlResult<Vec<_>>>()
        .map(Value::Array)
}

/// The name of the internal function evaluating `x op ANY (array)` (or `ALL`).
pub fn quantified_name(op: BinOp, all: bool) -> String {
    format!("{} {}", op.symbol(), if all { "ALL" } else { "ANY" })
}

/// The operator and quantifier of a [`quantified_name`].
fn parse_quantified(name: &str) -> Option<(BinOp, bool)> {
    let (sym, q) = name.rsplit_once(' ')?;
    let all = match q {
        "ANY" => false,
        "ALL" => true,
        _ => return None,
    };
    let op = [
        BinOp::Eq,
        BinOp::NotEq,
        BinOp::Lt,
        BinOp::LtEq,
        BinOp::Gt,
        BinOp::GtEq,
        BinOp::Like,
        BinOp::NotLike,
        BinOp::ILike,
        BinOp::NotILike,
    ]
    .into_iter()
    .find(|o| o.symbol() == sym)?;
    Some((op, all))
}

/// `x op ANY/ALL (array)` with three-valued logic: an empty array gives false
/// (ANY) or true (ALL) whatever `x`; otherwise a NULL comparison makes an
/// undecided result NULL.
fn quantified(
    op: BinOp,
    all: bool,
    x: &Value,
    arr: &Value,
    xt: SqlType,
    et: SqlType,
) -> SqlResult<Value> {
    match arr {
        Value::Null => Ok(Value::Null),
        Value::Array(a) => quantify(op, all, x, a, xt, et),
        _ => Err(SqlError::internal("ANY/ALL over a non-array")),
    }
}

/// `x op ANY/ALL` over a list of values (an array's elements or a subquery's
/// rows): true/false as soon as one comparison decides, else NULL if one was
/// NULL, else false (ANY) or true (ALL), which is the result for no values.
pub fn quantify(
    op: BinOp,
    all: bool,
    x: &Value,
    elems: &[Value],
    xt: SqlType,
    et: SqlType,
) -> SqlResult<Value> {
    let mut saw_null = false;
    for e in elems {
        match ops::eval_binary(op, x, e, xt, et)? {
            Value::Bool(b) if b != all => return Ok(Value::Bool(b)),
            Value::Null => saw_null = true,
            _ => {}
        }
    }
    Ok(if saw_null {
        Value::Null
    } else {
        Value::Bool(all)
    })
}

/// Calls array function `name` on values read in place (the executor passes
/// array columns by reference rather than copying them for every row).
pub fn call(name: &str, args: &[&Value], types: &[SqlType]) -> SqlResult<Value> {
    match function_type(name, types)? {
        Some(rt) => call_function(name, args, types, rt),
        None => crate::functions::call_function(
            name,
            &args.iter().map(|v| (*v).clone()).collect::<Vec<_>>(),
            types,
        ),
    }
}

/// Whether `name` is one of the array functions (by name alone).
pub fn is_array_function(name: &str) -> bool {
    matches!(
        name,
        "array"
            | "array_subscript"
            | "array_length"
            | "array_lower"
            | "array_upper"
            | "cardinality"
            | "array_ndims"
            | "array_append"
            | "array_prepend"
            | "array_cat"
            | "array_position"
            | "array_to_string"
            | "string_to_array"
            | "array_contains"
            | "array_contained"
            | "array_overlap"
            | "array_slice"
            | "array_remove"
            | "array_replace"
            | "array_positions"
            | "array_fill"
            | "array_dims"
    ) || parse_quantified(name).is_some()
}

/// Whether `name` is an array function that does not return NULL just because an
/// argument is NULL.
pub fn non_strict(name: &str) -> bool {
    matches!(
        name,
        "array"
            | "array_append"
            | "array_prepend"
            | "array_cat"
            | "array_position"
            | "array_positions"
            | "array_fill"
            | "array_remove"
            | "array_replace"
            | "string_to_array"
            | "array_to_string"
    ) || parse_quantified(name).is_some()
}

/// The result type of an array function, `None` when `name(args)` is not one.
pub fn function_type(name: &str, args: &[SqlType]) -> SqlResult<Option<SqlType>> {
    use SqlType as T;
    let is_int = |t: &SqlType| t.is_integer() || *t == T::Unknown;
    let is_text = |t: &SqlType| t.is_string() || *t == T::Unknown;
    Ok(Some(match (name, args) {
        // ARRAY[…]: the binder coerces the elements to one type first.
        ("array", [first, ..]) => T::array_of(*first),
        ("array_subscript", [T::Array(e), i]) if is_int(i) => **e,
        ("array_length" | "array_lower" | "array_upper", [T::Array(_), d]) if is_int(d) => T::Int4,
        ("cardinality" | "array_ndims", [T::Array(_)]) => T::Int4,
        ("array_append", [a @ T::Array(e), x]) if element_fits(**e, *x) => *a,
        ("array_prepend", [x, a @ T::Array(e)]) if element_fits(**e, *x) => *a,
        ("array_cat", [a @ T::Array(_), T::Unknown])
        | ("array_cat", [T::Unknown, a @ T::Array(_)]) => *a,
        ("array_cat", [T::Array(e1), T::Array(e2)]) if element_fits(**e1, **e2) => {
            T::array_of(ops::common_type(&[**e1, **e2])?)
        }
        ("array_position", [T::Array(e), x]) if element_fits(**e, *x) => T::Int4,
        ("array_positions", [T::Array(e), x]) if element_fits(**e, *x) => T::array_of(T::Int4),
        ("array_fill", [x, d])
            if *x != T::Unknown
                && (*d == T::Unknown || d.element().is_some_and(|e| e.is_integer())) =>
        {
            T::array_of(*x)
        }
        ("array_dims", [T::Array(_)]) => T::Text,
        ("array_slice", [a @ T::Array(_), lo, hi]) if is_int(lo) && is_int(hi) => *a,
        ("array_remove", [a @ T::Array(e), x]) if element_fits(**e, *x) => *a,
        ("array_replace", [a @ T::Array(e), x, y])
            if element_fits(**e, *x) && element_fits(**e, *y) =>
        {
            *a
        }
        // anyarray operators: the same element type (modifiers aside);
        // integers of any width, since INT is 8 bytes here but 4 in
        // PostgreSQL (`ARRAY[1, 2] @> '{1}'::int[]`).
        ("array_contains" | "array_contained" | "array_overlap", [T::Array(a), T::Array(b)])
            if std::mem::discriminant(*a) == std::mem::discriminant(*b)
                || (a.is_integer() && b.is_integer()) =>
        {
            T::Bool
        }
        ("array_to_string", [T::Array(_), d]) if is_text(d) => T::Text,
        ("array_to_string", [T::Array(_), d, n]) if is_text(d) && is_text(n) => T::Text,
        ("string_to_array", [s, d]) if is_text(s) && is_text(d) => T::array_of(T::Text),
        ("string_to_array", [s, d, n]) if is_text(s) && is_text(d) && is_text(n) => {
            T::array_of(T::Text)
        }
        (n, [_, T::Array(_)]) if parse_quantified(n).is_some() => T::Bool,
        _ => return Ok(None),
    }))
}

/// Whether a value of type `x` can be an element of an array of `e`s.
fn element_fits(e: SqlType, x: SqlType) -> bool {
    x == SqlType::Unknown || ops::common_type(&[e, x]).is_ok()
}

/// An integer argument (a slice bound).
fn int_arg(v: &Value) -> SqlResult<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        _ => Err(SqlError::datatype_mismatch(
            "array subscript must have type integer",
        )),
    }
}

/// `arr[index]`: 1-based, NULL when out of range or either side is NULL.
pub fn subscript(arr: &Value, index: &Value) -> SqlResult<Value> {
    Ok(match (arr, index) {
        (Value::Array(a), Value::Int(i)) => usize::try_from(*i)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| a.get(i))
            .cloned()
            .unwrap_or(Value::Null),
        (Value::Null, _) | (_, Value::Null) => Value::Null,
        _ => {
            return Err(SqlError::datatype_mismatch(
                "array subscript must have type integer",
            ));
        }
    })
}

/// Evaluates an array function (`function_type` returned `Some(rt)` for it).
pub fn call_function(
    name: &str,
    args: &[&Value],
    types: &[SqlType],
    rt: SqlType,
) -> SqlResult<Value> {
    let ty = |i: usize| types.get(i).copied().unwrap_or(SqlType::Unknown);
    let arg = |i: usize| args.get(i).copied().unwrap_or(&Value::Null);
    let elems = |i: usize| match arg(i) {
        Value::Array(a) => Some(a.as_slice()),
        _ => None,
    };
    let elem_ty = rt.element().unwrap_or(SqlType::Unknown);
    // An appended element, cast to the array's element type.
    let element = |v: &Value, t: SqlType| ops::cast(v, t, elem_ty);
    let int = |i: usize| match ops::cast(arg(i), ty(i), SqlType::Int4)? {
        Value::Int(n) => Ok(n),
        _ => Err(SqlError::datatype_mismatch(
            "array subscript must have type integer",
        )),
    };
    let text = |i: usize| ops::text_of(arg(i), ty(i));
    if let Some((op, all)) = parse_quantified(name) {
        let et = ty(1).element().unwrap_or(SqlType::Unknown);
        return quantified(op, all, arg(0), arg(1), ty(0), et);
    }
    if !non_strict(name) && args.iter().any(|v| v.is_null()) {
        return Ok(Value::Null);
    }
    Ok(match name {
        "array" => Value::Array(args.iter().map(|v| (*v).clone()).collect()),
        "array_subscript" => subscript(arg(0), &Value::Int(int(1)?))?,
        "array_length" | "array_upper" | "array_lower" => {
            let a = elems(0).unwrap_or(&[]);
            if a.is_empty() || int(1)? != 1 {
                Value::Null
            } else if name == "array_lower" {
                Value::Int(1)
            } else {
                Value::Int(a.len() as i64)
            }
        }
        "cardinality" => Value::Int(elems(0).map_or(0, <[Value]>::len) as i64),
        "array_ndims" => match elems(0) {
            Some(a) if !a.is_empty() => Value::Int(1),
            _ => Value::Null,
        },
        "array_append" => {
            let mut a = elems(0).map(<[Value]>::to_vec).unwrap_or_default();
            a.push(element(arg(1), ty(1))?);
            Value::Array(a)
        }
        "array_prepend" => {
            let mut a = vec![element(arg(0), ty(0))?];
            a.extend_from_slice(elems(1).unwrap_or(&[]));
            Value::Array(a)
        }
        "array_cat" => {
            let part = |i: usize| -> SqlResult<Option<Vec<Value>>> {
                match arg(i) {
                    Value::Array(a) => {
                        let et = ty(i).element().unwrap_or(elem_ty);
                        a.iter()
                            .map(|v| ops::cast(v, et, elem_ty))
                            .collect::<SqlResult<_>>()
                            .map(Some)
                    }
                    Value::Text(s) => match parse_text(s, elem_ty)? {
                        Value::Array(a) => Ok(Some(a)),
                        _ => Ok(None),
                    },
                    _ => Ok(None),
                }
            };
            match (part(0)?, part(1)?) {
                (None, None) => Value::Null,
                (a, b) => {
                    let mut a = a.unwrap_or_default();
                    a.extend(b.unwrap_or_default());
                    Value::Array(a)
                }
            }
        }
        "array_slice" => {
            let a = elems(0).unwrap_or(&[]);
            let lo = int_arg(arg(1))?.max(1);
            let hi = int_arg(arg(2))?.min(a.len() as i64);
            if lo > hi {
                Value::Array(Vec::new())
            } else {
                Value::Array(a[(lo - 1) as usize..hi as usize].to_vec())
            }
        }
        "array_remove" | "array_replace" => {
            let Some(a) = elems(0) else {
                return Ok(Value::Null);
            };
            let et = ty(0).element().unwrap_or(SqlType::Unknown);
            let mut out = Vec::with_capacity(a.len());
            for e in a {
                let same = ops::eval_binary(BinOp::IsNotDistinctFrom, e, arg(1), et, ty(1))?;
                match (same, name) {
                    (Value::Bool(true), "array_remove") => {}
                    (Value::Bool(true), _) => out.push(element(arg(2), ty(2))?),
                    _ => out.push(e.clone()),
                }
            }
            Value::Array(out)
        }
        "array_contains" | "array_contained" | "array_overlap" => {
            let (Some(a), Some(b)) = (elems(0), elems(1)) else {
                return Ok(Value::Null);
            };
            let (a, b) = if name == "array_contained" {
                (b, a)
            } else {
                (a, b)
            };
            // NULL elements are never equal to anything (PostgreSQL's array_contain).
            let has = |x: &Value| {
                !x.is_null()
                    && a.iter()
                        .any(|y| ops::compare(x, y) == Some(Ordering::Equal))
            };
            Value::Bool(if name == "array_overlap" {
                b.iter().any(has)
            } else {
                b.iter().all(has)
            })
        }
        "array_position" => {
            let Some(a) = elems(0) else {
                return Ok(Value::Null);
            };
            let et = ty(0).element().unwrap_or(SqlType::Unknown);
            let mut found = Value::Null;
            for (i, e) in a.iter().enumerate() {
                if let Value::Bool(false) =
                    ops::eval_binary(BinOp::IsDistinctFrom, arg(1), e, ty(1), et)?
                {
                    found = Value::Int(i as i64 + 1);
                    break;
                }
            }
            found
        }
        "array_positions" => {
            let Some(a) = elems(0) else {
                return Ok(Value::Null);
            };
            let et = ty(0).element().unwrap_or(SqlType::Unknown);
            let mut found = Vec::new();
            for (i, e) in a.iter().enumerate() {
                if let Value::Bool(false) =
                    ops::eval_binary(BinOp::IsDistinctFrom, arg(1), e, ty(1), et)?
                {
                    found.push(Value::Int(i as i64 + 1));
                }
            }
            Value::Array(found)
        }
        "array_fill" => {
            let Some(dims) = elems(1) else {
                return Err(SqlError::new(
                    "22004",
                    "dimension array or low bound array cannot be null",
                ));
            };
            match dims {
                [] => Value::Array(Vec::new()),
                [Value::Null] => {
                    return Err(SqlError::new("22004", "dimension values cannot be null"));
                }
                [Value::Int(n)] if (0..=134_217_727).contains(n) => {
                    Value::Array(vec![arg(0).clone(); *n as usize])
                }
                [Value::Int(_)] => {
                    return Err(SqlError::new(
                        "54000",
                        "array size exceeds the maximum allowed (134217727)",
                    ));
                }
                _ => {
                    return Err(SqlError::unsupported(
                        "multidimensional arrays are not supported",
                    ));
                }
            }
        }
        "array_dims" => match elems(0) {
            Some(a) if !a.is_empty() => Value::Text(format!("[1:{}]", a.len())),
            _ => Value::Null,
        },
        "array_to_string" => {
            let (Some(a), false) = (elems(0), arg(1).is_null()) else {
                return Ok(Value::Null);
            };
            let et = ty(0).element().unwrap_or(SqlType::Unknown);
            let delim = text(1);
            let null_text = (!arg(2).is_null() && args.len() > 2).then(|| text(2));
            let mut out = String::new();
            let mut first = true;
            for v in a {
                if v.is_null() && null_text.is_none() {
                    continue;
                }
                if !first {
                    out.push_str(&delim);
                }
                first = false;
                match (v, &null_text) {
                    (Value::Null, Some(n)) => out.push_str(n),
                    _ => v.write_text(et, &mut out),
                }
            }
            Value::Text(out)
        }
        "string_to_array" => {
            if arg(0).is_null() {
                return Ok(Value::Null);
            }
            let s = text(0);
            let null_text = (args.len() > 2 && !arg(2).is_null()).then(|| text(2));
            let item = |p: &str| match &null_text {
                Some(n) if n == p => Value::Null,
                _ => Value::Text(p.to_owned()),
            };
            if s.is_empty() {
                Value::Array(Vec::new())
            } else if arg(1).is_null() {
                let mut buf = [0u8; 4];
                Value::Array(s.chars().map(|c| item(c.encode_utf8(&mut buf))).collect())
            } else {
                let d = text(1);
                if d.is_empty() {
                    Value::Array(vec![item(&s)])
                } else {
                    Value::Array(s.split(d.as_str()).map(item).collect())
                }
            }
        }
        _ => return Err(SqlError::internal(format!("no array function {name}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(ty: SqlType, text: &str) -> Value {
        Value::from_text(text, SqlType::array_of(ty)).expect(text)
    }

    #[test]
    fn text_round_trip_and_quoting() {
        let t = SqlType::array_of(SqlType::Text);
        let v = Value::Array(vec![
            Value::Text("a b".into()),
            Value::Text(String::new()),
            Value::Null,
            Value::Text("x\"y".into()),
            Value::Text("a\\b".into()),
            Value::Text("{}".into()),
            Value::Text("null".into()),
            Value::Text("é".into()),
            Value::Text("c,d".into()),
        ]);
        let s = v.to_text(t);
        assert_eq!(s, r#"{"a b","",NULL,"x\"y","a\\b","{}","null",é,"c,d"}"#);
        assert_eq!(Value::from_text(&s, t).expect("parse"), v);
        assert_eq!(
            arr(SqlType::Int8, " { 1 , 2 ,NULL} ").to_text(SqlType::array_of(SqlType::Int8)),
            "{1,2,NULL}"
        );
        assert_eq!(
            arr(SqlType::Text, r#"{"a" , b c , \"}"#).to_text(t),
            r#"{a,"b c","\""}"#
        );
        assert_eq!(arr(SqlType::Text, "{}"), Value::Array(vec![]));
        assert_eq!(
            arr(SqlType::Bool, "{t,false}").to_text(SqlType::array_of(SqlType::Bool)),
            "{t,f}"
        );
        assert_eq!(
            arr(SqlType::Text, r#"{NULL,"NULL"}"#),
            Value::Array(vec![Value::Null, Value::Text("NULL".into())])
        );
    }

    #[test]
    fn array_types() {
        let v3 = SqlType::array_of(SqlType::Varchar(Some(3)));
        assert_eq!(v3, SqlType::array_of(SqlType::Varchar(Some(3))));
        assert_ne!(v3, SqlType::array_of(SqlType::Varchar(Some(4))));
        assert_eq!(v3.to_string(), "character varying(3)[]");
        assert_eq!(v3.oid(), 1015);
        assert_eq!(SqlType::array_of(v3), v3, "one-dimensional");
        for oid in [
            1000, 1001, 1005, 1007, 1016, 1021, 1022, 1231, 1009, 1015, 1182, 1115, 1185, 1187,
            2951, 3807,
        ] {
            let t = SqlType::from_oid(oid).expect("array oid");
            assert_eq!(t.oid(), oid);
            assert_eq!(SqlType::array_of(t.element().expect("element")), t);
        }
        assert_eq!(SqlType::array_of(SqlType::Int8).to_string(), "bigint[]");
    }

    #[test]
    fn text_input_errors() {
        let int = SqlType::array_of(SqlType::Int4);
        for (s, code) in [
            ("{1,2", "22P02"),
            ("{1,2}x", "22P02"),
            ("1,2", "22P02"),
            ("{,}", "22P02"),
            ("{1,a}", "22P02"),
            ("{{1,2},{3,4}}", "0A000"),
            ("{99999999999}", "22003"),
            (r#"{"1"x}"#, "22P02"),
        ] {
            let e = Value::from_text(s, int).expect_err(s);
            assert_eq!(e.code, code, "{s}: {e:?}");
        }
    }

    #[test]
    fn binary_round_trip() {
        for (ty, text) in [
            (SqlType::Int8, "{1,NULL,-3}"),
            (SqlType::Int4, "{}"),
            (SqlType::Text, r#"{a,"b c",NULL}"#),
            (SqlType::Decimal(None), "{1.50,-2}"),
            (SqlType::Float8, "{1.5,NaN}"),
            (SqlType::Bool, "{t,f}"),
            (SqlType::Date, "{2024-01-02}"),
        ] {
            let at = SqlType::array_of(ty);
            let v = arr(ty, text);
            let mut b = Vec::new();
            v.write_binary(at, &mut b).expect("send");
            assert_eq!(&b[8..12], &ty.oid().to_be_bytes(), "{text}");
            let back = Value::from_binary(&b, at).expect("recv");
            assert_eq!(back.to_text(at), v.to_text(at), "{text}");
        }
        // int8[] {1,NULL}: ndim 1, has nulls, oid 20, len 2, lbound 1, elements
        let mut b = Vec::new();
        arr(SqlType::Int8, "{1,NULL}")
            .write_binary(SqlType::array_of(SqlType::Int8), &mut b)
            .expect("send");
        let mut want = Vec::new();
        for w in [1i32, 1, 20, 2, 1, 8] {
            want.extend_from_slice(&w.to_be_bytes());
        }
        want.extend_from_slice(&1i64.to_be_bytes());
        want.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(b, want);
        // truncated and mistyped input fail cleanly
        let at = SqlType::array_of(SqlType::Int8);
        for n in 0..b.len() {
            assert!(Value::from_binary(&b[..n], at).is_err(), "{n}");
        }
        assert_eq!(
            Value::from_binary(&b, SqlType::array_of(SqlType::Int4))
                .expect_err("oid")
                .code,
            "42804"
        );
    }

    #[test]
    fn order_and_functions() {
        let i = SqlType::array_of(SqlType::Int4);
        let a = |s| arr(SqlType::Int4, s);
        assert!(a("{1,2}") < a("{1,2,3}"));
        assert!(a("{1,NULL}") > a("{1,2}"));
        assert_eq!(a("{1,NULL}"), a("{1,NULL}"));
        assert!(a("{}") < a("{0}"));
        assert!(a("{2}") > a("{1,5}"));
        let call = |name: &str, args: &[Value], types: &[SqlType]| {
            let refs: Vec<&Value> = args.iter().collect();
            super::call(name, &refs, types).expect(name)
        };
        assert_eq!(call("cardinality", &[a("{}")], &[i]), Value::Int(0));
        assert_eq!(
            call(
                "array_length",
                &[a("{}"), Value::Int(1)],
                &[i, SqlType::Int4]
            ),
            Value::Null
        );
        assert_eq!(
            call(
                "array_subscript",
                &[a("{5,6}"), Value::Int(2)],
                &[i, SqlType::Int4]
            ),
            Value::Int(6)
        );
        assert_eq!(
            call(
                "array_subscript",
                &[a("{5,6}"), Value::Int(0)],
                &[i, SqlType::Int4]
            ),
            Value::Null
        );
        let any = quantified_name(BinOp::Eq, false);
        assert_eq!(
            call(&any, &[Value::Null, a("{}")], &[SqlType::Int4, i]),
            Value::Bool(false)
        );
        assert_eq!(
            call(&any, &[Value::Int(1), a("{2,NULL}")], &[SqlType::Int4, i]),
            Value::Null
        );
        assert_eq!(
            call(&any, &[Value::Int(2), a("{2,NULL}")], &[SqlType::Int4, i]),
            Value::Bool(true)
        );
        let all = quantified_name(BinOp::NotEq, true);
        assert_eq!(
            call(&all, &[Value::Int(1), a("{2,3}")], &[SqlType::Int4, i]),
            Value::Bool(true)
        );
        assert_eq!(
            call(&all, &[Value::Int(1), a("{1,NULL}")], &[SqlType::Int4, i]),
            Value::Bool(false)
        );
    }
}
