//! JSONB operators and functions with PostgreSQL 15's semantics: containment
//! (`@>`, `<@`), existence (`?`, `?|`, `?&`), path extraction (`#>`, `#>>`),
//! deletion (`-`, `#-`), `jsonb_set`, `jsonb_insert`, `jsonb_strip_nulls`
//! and `jsonb_pretty`.
//!
//! The operators are calls of the functions PostgreSQL implements them with
//! (`jsonb_contains`, `jsonb_exists`, `jsonb_extract_path`, `jsonb_delete`,
//! `jsonb_delete_path`, …); [`operator_function`] tells the binder which.
//! A jsonb argument may be text (an untyped literal), which is parsed; so may
//! a text[] path (`'{a,b}'`).

use serde_json::Value as J;

use crate::error::codes;
use crate::{SqlError, SqlResult, SqlType, Value};

fn is_text(t: SqlType) -> bool {
    t.is_string() || t == SqlType::Unknown
}

fn is_json(t: SqlType) -> bool {
    t == SqlType::Jsonb || is_text(t)
}

/// A text[] argument (or text holding an array literal).
fn is_path(t: SqlType) -> bool {
    matches!(t, SqlType::Array(e) if e.is_string() || *e == SqlType::Unknown) || is_text(t)
}

fn no_operator(l: SqlType, op: &str, r: SqlType) -> SqlError {
    SqlError::undefined_function(format!("operator does not exist: {l} {op} {r}")).with_hint(
        "No operator matches the given name and argument types. You might need to add explicit type casts.",
    )
}

/// The function implementing the jsonb operator `op` (as SQL spells it) on
/// operands of types `l` and `r`, with the types untyped operands take:
/// `Ok(None)` when the operator is not a jsonb one for these types (`@>` and
/// `<@` on arrays, `-` on numbers); 42883 when it can only be a jsonb
/// operator but the types do not fit.
pub fn operator_function(
    op: &str,
    l: SqlType,
    r: SqlType,
) -> SqlResult<Option<(&'static str, SqlType, SqlType)>> {
    use SqlType as T;
    let text_array = T::array_of(T::Text);
    let left_json = matches!(l, T::Jsonb | T::Unknown);
    let fits = |ok: bool, name: &'static str, rt: SqlType| {
        if ok && left_json {
            Ok(Some((name, T::Jsonb, rt)))
        } else {
            Err(no_operator(l, op, r))
        }
    };
    match op {
        "@>" | "<@" => {
            let name = if op == "@>" {
                "jsonb_contains"
            } else {
                "jsonb_contained"
            };
            match (l, r) {
                (T::Jsonb, T::Jsonb | T::Unknown) | (T::Unknown, T::Jsonb) => {
                    Ok(Some((name, T::Jsonb, T::Jsonb)))
                }
                (T::Jsonb, _) | (_, T::Jsonb) => Err(no_operator(l, op, r)),
                _ => Ok(None),
            }
        }
        "?" => fits(is_text(r), "jsonb_exists", T::Text),
        "?|" => fits(is_path(r) && !r.is_string(), "jsonb_exists_any", text_array),
        "?&" => fits(is_path(r) && !r.is_string(), "jsonb_exists_all", text_array),
        "#>" => fits(
            is_path(r) && !r.is_string(),
            "jsonb_extract_path",
            text_array,
        ),
        "#>>" => fits(
            is_path(r) && !r.is_string(),
            "jsonb_extract_path_text",
            text_array,
        ),
        "#-" => fits(
            is_path(r) && !r.is_string(),
            "jsonb_delete_path",
            text_array,
        ),
        "-" if l == T::Jsonb => {
            if is_text(r) {
                Ok(Some(("jsonb_delete", T::Jsonb, T::Text)))
            } else if r.is_integer() || (is_path(r) && !r.is_string()) {
                Ok(Some(("jsonb_delete", T::Jsonb, r)))
            } else {
                Err(no_operator(l, op, r))
            }
        }
        _ => Ok(None),
    }
}

/// The result type of `name(args…)`, `None` when it is not one of these.
pub fn function_type(name: &str, args: &[SqlType]) -> Option<SqlType> {
    use SqlType as T;
    let is_bool = |t: &SqlType| *t == T::Bool || is_text(*t);
    Some(match (name, args) {
        ("jsonb_contains" | "jsonb_contained", [a, b]) if is_json(*a) && is_json(*b) => T::Bool,
        ("jsonb_exists", [j, k]) if is_json(*j) && is_text(*k) => T::Bool,
        ("jsonb_exists_any" | "jsonb_exists_all", [j, p]) if is_json(*j) && is_path(*p) => T::Bool,
        ("jsonb_extract_path", [j, p]) if is_json(*j) && is_path(*p) => T::Jsonb,
        ("jsonb_extract_path_text", [j, p]) if is_json(*j) && is_path(*p) => T::Text,
        // VARIADIC text
        ("jsonb_extract_path", [j, rest @ ..])
            if is_json(*j) && !rest.is_empty() && rest.iter().all(|t| is_text(*t)) =>
        {
            T::Jsonb
        }
        ("jsonb_extract_path_text", [j, rest @ ..])
            if is_json(*j) && !rest.is_empty() && rest.iter().all(|t| is_text(*t)) =>
        {
            T::Text
        }
        ("jsonb_delete", [j, k]) if is_json(*j) && (k.is_integer() || is_path(*k)) => T::Jsonb,
        ("jsonb_delete_path", [j, p]) if is_json(*j) && is_path(*p) => T::Jsonb,
        ("jsonb_set" | "jsonb_insert", [j, p, v]) if is_json(*j) && is_path(*p) && is_json(*v) => {
            T::Jsonb
        }
        ("jsonb_set" | "jsonb_insert", [j, p, v, b])
            if is_json(*j) && is_path(*p) && is_json(*v) && is_bool(b) =>
        {
            T::Jsonb
        }
        ("jsonb_strip_nulls", [j]) if is_json(*j) => T::Jsonb,
        ("jsonb_pretty", [j]) if is_json(*j) => T::Text,
        _ => return None,
    })
}

fn json_arg(v: &Value) -> SqlResult<J> {
    match v {
        Value::Jsonb(j) => Ok((**j).clone()),
        Value::Text(s) => crate::value::parse_json(s),
        _ => Err(SqlError::internal(format!("not jsonb: {v:?}"))),
    }
}

/// A text[] argument's elements (NULL elements as `None`).
fn path_arg(v: &Value) -> SqlResult<Vec<Option<String>>> {
    let elems = match v {
        Value::Array(a) => a.clone(),
        Value::Text(s) => match crate::array::parse_text(s, SqlType::Text)? {
            Value::Array(a) => a,
            _ => return Err(SqlError::internal("text[] input")),
        },
        _ => return Err(SqlError::internal(format!("not text[]: {v:?}"))),
    };
    Ok(elems
        .into_iter()
        .map(|e| match e {
            Value::Text(s) => Some(s),
            _ => None,
        })
        .collect())
}

fn bool_arg(v: &Value) -> SqlResult<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Text(s) => match Value::from_text(s, SqlType::Bool)? {
            Value::Bool(b) => Ok(b),
            _ => Err(SqlError::internal("boolean input")),
        },
        _ => Err(SqlError::internal(format!("not boolean: {v:?}"))),
    }
}

fn jsonb(v: J) -> Value {
    Value::Jsonb(Box::new(v))
}

/// Calls `name` ([`function_type`] knows it); no argument is NULL (they are
/// all strict).
pub fn call_function(name: &str, args: &[Value], types: &[SqlType]) -> SqlResult<Value> {
    let null = Value::Null;
    let arg = |i: usize| args.get(i).unwrap_or(&null);
    let j0 = || json_arg(arg(0));
    Ok(match name {
        "jsonb_contains" => Value::Bool(contains(&j0()?, &json_arg(arg(1))?)),
        "jsonb_contained" => Value::Bool(contains(&json_arg(arg(1))?, &j0()?)),
        "jsonb_exists" => match arg(1) {
            Value::Text(k) => Value::Bool(exists(&j0()?, k)),
            _ => Value::Null,
        },
        "jsonb_exists_any" | "jsonb_exists_all" => {
            let j = j0()?;
            // NULL keys are skipped
            let mut keys = path_arg(arg(1))?.into_iter().flatten();
            Value::Bool(if name == "jsonb_exists_any" {
                keys.any(|k| exists(&j, &k))
            } else {
                keys.all(|k| exists(&j, &k))
            })
        }
        "jsonb_extract_path" | "jsonb_extract_path_text" => {
            // `#>` passes a text[]; a call lists the keys (VARIADIC text)
            let path = match types.get(1) {
                Some(t) if t.element().is_some() => path_arg(arg(1))?,
                _ => args.iter().skip(1).map(text_elem).collect(),
            };
            let j = j0()?;
            let found = extract_path(&j, &path);
            match found {
                None => Value::Null,
                Some(v) if name == "jsonb_extract_path" => jsonb(v.clone()),
                Some(v) => crate::ops::json_as_text(v),
            }
        }
        "jsonb_delete" => {
            let j = j0()?;
            match (arg(1), types.get(1)) {
                (Value::Int(i), _) => jsonb(delete_index(j, *i)?),
                (v, Some(t)) if t.element().is_some() => {
                    let keys: Vec<String> = path_arg(v)?.into_iter().flatten().collect();
                    jsonb(delete_keys(j, &keys)?)
                }
                (Value::Text(k), _) => jsonb(delete_keys(j, std::slice::from_ref(k))?),
                _ => return Err(SqlError::internal("jsonb_delete argument")),
            }
        }
        "jsonb_delete_path" => {
            let mut j = j0()?;
            if !is_container(&j) {
                return Err(param("cannot delete path in scalar"));
            }
            let path = path_arg(arg(1))?;
            if !path.is_empty() && !is_empty_container(&j) {
                set_path(&mut j, &path, 0, None, Mode::Delete)?;
            }
            jsonb(j)
        }
        "jsonb_set" | "jsonb_insert" => {
            let mut j = j0()?;
            let path = path_arg(arg(1))?;
            let new = json_arg(arg(2))?;
            let flag = match args.get(3) {
                Some(v) => bool_arg(v)?,
                // create_missing defaults to true, insert_after to false
                None => name == "jsonb_set",
            };
            if !is_container(&j) {
                return Err(param("cannot set path in scalar"));
            }
            let mode = match (name, flag) {
                ("jsonb_set", true) => Mode::Create,
                ("jsonb_set", false) => Mode::Replace,
                (_, true) => Mode::InsertAfter,
                (_, false) => Mode::InsertBefore,
            };
            if mode == Mode::Replace && is_empty_container(&j) {
                return Ok(jsonb(j));
            }
            if !path.is_empty() {
                set_path(&mut j, &path, 0, Some(new), mode)?;
            }
            jsonb(j)
        }
        "jsonb_strip_nulls" => {
            let mut j = j0()?;
            strip_nulls(&mut j);
            jsonb(j)
        }
        "jsonb_pretty" => {
            let mut s = String::new();
            pretty(&mut s, &j0()?, 0);
            Value::Text(s)
        }
        _ => return Err(SqlError::internal(format!("jsonb function {name}"))),
    })
}

fn text_elem(v: &Value) -> Option<String> {
    match v {
        Value::Text(s) => Some(s.clone()),
        _ => None,
    }
}

fn param(message: &str) -> SqlError {
    SqlError::new(codes::INVALID_PARAMETER_VALUE, message)
}

fn is_container(j: &J) -> bool {
    matches!(j, J::Array(_) | J::Object(_))
}

fn is_empty_container(j: &J) -> bool {
    match j {
        J::Array(a) => a.is_empty(),
        J::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Scalars equal as jsonb compares them (numbers by value).
fn scalar_eq(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Number(x), J::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(p), Some(q)) => p == q,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

/// `a @> b`: PostgreSQL's `JsonbDeepContains`, with its top-level rules (a
/// scalar is a one-element "raw scalar" array: an array contains it, it
/// contains an equal scalar, and it contains no array).
pub fn contains(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Object(_), J::Object(_)) | (J::Array(_), J::Array(_)) => deep_contains(a, b),
        (J::Array(x), s) if !is_container(s) => x.iter().any(|e| scalar_match(e, s)),
        (s, t) if !is_container(s) && !is_container(t) => scalar_eq(s, t),
        _ => false,
    }
}

fn scalar_match(a: &J, b: &J) -> bool {
    !is_container(a) && scalar_eq(a, b)
}

/// Containment of two containers of the same kind.
fn deep_contains(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Object(x), J::Object(y)) => {
            y.len() <= x.len()
                && y.iter().all(|(k, bv)| match x.get(k) {
                    None => false,
                    Some(av) if is_container(bv) => deep_contains(av, bv),
                    Some(av) => scalar_match(av, bv),
                })
        }
        (J::Array(x), J::Array(y)) => y.iter().all(|bv| {
            if is_container(bv) {
                x.iter().any(|av| deep_contains(av, bv))
            } else {
                x.iter().any(|av| scalar_match(av, bv))
            }
        }),
        _ => false,
    }
}

/// `j ? key`: an object's key, or a string element of an array (or the
/// string itself at the top level).
fn exists(j: &J, key: &str) -> bool {
    match j {
        J::Object(m) => m.contains_key(key),
        J::Array(a) => a.iter().any(|e| matches!(e, J::String(s) if s == key)),
        J::String(s) => s == key,
        _ => false,
    }
}

/// C's `strtol` into an int, as PostgreSQL reads an array index from a
/// path: leading white space, a sign, digits and nothing after.
fn strtoint(s: &str) -> Option<i32> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<i32>().ok()
}

/// `#>`: the value at `path`; `None` when there is none (or a path element
/// is NULL).
fn extract_path<'a>(j: &'a J, path: &[Option<String>]) -> Option<&'a J> {
    let mut cur = j;
    for p in path {
        let p = p.as_deref()?;
        cur = match cur {
            J::Object(m) => m.get(p)?,
            J::Array(a) => {
                let i = strtoint(p)?;
                let idx = if i >= 0 {
                    usize::try_from(i).ok()?
                } else {
                    a.len()
                        .checked_sub(usize::try_from(i.unsigned_abs()).ok()?)?
                };
                a.get(idx)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

/// `jsonb - text` / `jsonb - text[]`: removes the keys of an object, or the
/// string elements equal to one of them from an array.
fn delete_keys(j: J, keys: &[String]) -> SqlResult<J> {
    Ok(match j {
        J::Object(mut m) => {
            for k in keys {
                m.remove(k);
            }
            J::Object(m)
        }
        J::Array(a) => J::Array(
            a.into_iter()
                .filter(|e| !matches!(e, J::String(s) if keys.contains(s)))
                .collect(),
        ),
        _ => return Err(param("cannot delete from scalar")),
    })
}

/// `jsonb - integer`: removes an array element (negative counts from the end).
fn delete_index(j: J, i: i64) -> SqlResult<J> {
    match j {
        J::Array(mut a) => {
            let n = a.len() as i64;
            let idx = if i < 0 { n + i } else { i };
            if (0..n).contains(&idx) {
                a.remove(idx as usize);
            }
            Ok(J::Array(a))
        }
        J::Object(_) => Err(param("cannot delete from object using integer index")),
        _ => Err(param("cannot delete from scalar")),
    }
}

/// What `setPath` does at the end of the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `jsonb_set`: replace, or add a missing key or element.
    Create,
    /// `jsonb_set(…, false)`: replace only.
    Replace,
    /// `jsonb_insert`: before the element (a key must be new).
    InsertBefore,
    /// `jsonb_insert(…, true)`: after the element.
    InsertAfter,
    /// `#-`: remove.
    Delete,
}

impl Mode {
    fn creates(self) -> bool {
        matches!(self, Mode::Create | Mode::InsertBefore | Mode::InsertAfter)
    }
}

/// PostgreSQL's `setPath` at `path[level]` within `j`.
fn set_path(
    j: &mut J,
    path: &[Option<String>],
    level: usize,
    new: Option<J>,
    mode: Mode,
) -> SqlResult<()> {
    let Some(key) = path[level].as_deref() else {
        return Err(SqlError::new(
            codes::NULL_VALUE_NOT_ALLOWED,
            format!("path element at position {} is null", level + 1),
        ));
    };
    let last = level + 1 == path.len();
    match j {
        J::Object(m) => {
            if let Some(v) = m.get_mut(key) {
                if !last {
                    return set_path(v, path, level + 1, new, mode);
                }
                match mode {
                    Mode::InsertBefore | Mode::InsertAfter => {
                        return Err(param("cannot replace existing key")
                            .with_hint("Try using the function jsonb_set to replace key value."));
                    }
                    Mode::Delete => {
                        m.remove(key);
                    }
                    _ => *v = new.unwrap_or(J::Null),
                }
            } else if last && mode.creates() {
                m.insert(key.to_owned(), new.unwrap_or(J::Null));
            }
        }
        J::Array(a) => {
            let Some(i) = strtoint(key) else {
                return Err(SqlError::new(
                    codes::INVALID_TEXT_REPRESENTATION,
                    format!(
                        "path element at position {} is not an integer: \"{key}\"",
                        level + 1
                    ),
                ));
            };
            let n = a.len() as i64;
            // None: before the first element
            let idx = match i64::from(i) {
                i if i < 0 && -i > n => None,
                i if i < 0 => Some(n + i),
                i => Some(i.min(n)),
            };
            if last && mode.creates() && (idx.is_none() || n == 0) {
                a.insert(0, new.unwrap_or(J::Null));
                return Ok(());
            }
            let Some(idx) = idx else {
                return Ok(());
            };
            if idx == n {
                // past the end: only creating appends
                if last && mode.creates() {
                    a.push(new.unwrap_or(J::Null));
                }
                return Ok(());
            }
            let idx = idx as usize;
            if !last {
                return set_path(&mut a[idx], path, level + 1, new, mode);
            }
            match mode {
                Mode::Create | Mode::Replace => a[idx] = new.unwrap_or(J::Null),
                Mode::InsertBefore => a.insert(idx, new.unwrap_or(J::Null)),
                Mode::InsertAfter => a.insert(idx + 1, new.unwrap_or(J::Null)),
                Mode::Delete => {
                    a.remove(idx);
                }
            }
        }
        // a scalar inside the path: nothing to do
        _ => {}
    }
    Ok(())
}

/// `jsonb_strip_nulls`: removes object fields whose value is null, at every depth.
fn strip_nulls(j: &mut J) {
    match j {
        J::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        J::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn indent(out: &mut String, level: usize) {
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', 4 * level));
}

/// `jsonb_pretty`: one element or field a line, indented by four spaces a
/// level, as PostgreSQL's `JsonbToCStringIndent` (an empty container is
/// its brackets on two lines).
fn pretty(out: &mut String, j: &J, level: usize) {
    match j {
        J::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, level + 1);
                pretty(out, e, level + 1);
            }
            indent(out, level);
            out.push(']');
        }
        J::Object(m) => {
            out.push('{');
            // jsonb's key order: shorter keys first, then bytewise
            let mut entries: Vec<_> = m.iter().collect();
            entries.sort_by(|a, b| (a.0.len(), a.0.as_bytes()).cmp(&(b.0.len(), b.0.as_bytes())));
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, level + 1);
                crate::value::write_json(out, &J::String(k.clone()));
                out.push_str(": ");
                pretty(out, v, level + 1);
            }
            indent(out, level);
            out.push('}');
        }
        scalar => crate::value::write_json(out, scalar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> J {
        serde_json::from_str(s).expect("json")
    }

    #[test]
    fn containment_follows_postgres() {
        let c = |a: &str, b: &str| contains(&j(a), &j(b));
        assert!(c(r#"[1,2,[3]]"#, "[[3]]"));
        assert!(!c(r#"[1,2,[3]]"#, "[3]"));
        assert!(c("[1,2]", "1"));
        assert!(!c("1", "[1]"));
        assert!(!c(r#"{"a":[1,2]}"#, r#"{"a":1}"#));
        assert!(c(r#"{"a":1.0}"#, r#"{"a":1}"#));
        assert!(c(r#"{"a":1}"#, "{}"));
        assert!(!c("{}", "[]"));
        assert!(c(
            r#"{"a":{"b":[1,{"c":2}]},"d":3}"#,
            r#"{"a":{"b":[{"c":2}]}}"#
        ));
        assert!(!c(r#"[{"a":1}]"#, r#"[[{"a":1}]]"#));
    }

    #[test]
    fn paths_set_insert_and_delete_like_postgres() {
        let set = |t: &str, p: &[&str], v: &str, mode: Mode| {
            let mut t = j(t);
            let p: Vec<Option<String>> = p.iter().map(|s| Some((*s).to_owned())).collect();
            set_path(&mut t, &p, 0, Some(j(v)), mode).expect("set");
            t
        };
        assert_eq!(
            set(r#"{"a":[1,2]}"#, &["a", "0"], "9", Mode::Create),
            j(r#"{"a":[9,2]}"#)
        );
        assert_eq!(
            set(r#"{"a":[1,2]}"#, &["a", "5"], "9", Mode::Create),
            j(r#"{"a":[1,2,9]}"#)
        );
        assert_eq!(
            set(r#"{"a":[1,2]}"#, &["a", "-5"], "9", Mode::Create),
            j(r#"{"a":[9,1,2]}"#)
        );
        assert_eq!(
            set(r#"{"a":[1,2]}"#, &["a", "-5"], "9", Mode::Replace),
            j(r#"{"a":[1,2]}"#)
        );
        assert_eq!(
            set(r#"{"a":1}"#, &["b", "c"], "2", Mode::Create),
            j(r#"{"a":1}"#)
        );
        assert_eq!(
            set(r#"{"a":[1,2]}"#, &["a", "-1"], "9", Mode::InsertAfter),
            j(r#"{"a":[1,2,9]}"#)
        );
        assert_eq!(set("[]", &["0"], "1", Mode::InsertBefore), j("[1]"));
        assert_eq!(
            set("[1,[2,3]]", &["1", "0"], "0", Mode::Delete),
            j("[1,[3]]")
        );
        assert_eq!(
            extract_path(&j("[1,2]"), &[Some(" -1".into())]),
            Some(&j("2"))
        );
        assert_eq!(extract_path(&j("[1,2]"), &[Some("1 ".into())]), None);
    }

    #[test]
    fn pretty_prints_like_postgres() {
        let p = |s: &str| {
            let mut out = String::new();
            pretty(&mut out, &j(s), 0);
            out
        };
        assert_eq!(p("[]"), "[\n]");
        assert_eq!(
            p(r#"{"bb":[],"a":{"c":null}}"#),
            "{\n    \"a\": {\n        \"c\": null\n    },\n    \"bb\": [\n    ]\n}"
        );
        assert_eq!(p("1"), "1");
    }
}
