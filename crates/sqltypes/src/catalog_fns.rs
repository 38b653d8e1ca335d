//! The functions PostgreSQL's catalog queries call — psql's `\d` family,
//! drivers' type lookups, ORMs' reflection — and the regular-expression
//! match operators those queries filter names with (`~`, `~*`).
//!
//! Everything here is computed from its arguments alone. What needs the
//! catalog (an index's definition by OID, say) is answered by the virtual
//! catalog tables in the `sql` crate instead.
//!
//! Objects have no owners and no privileges yet: every object is owned by
//! the bootstrap role (OID 10, [`BOOTSTRAP_ROLE`]) and every privilege check
//! passes. TODO(issue 13): roles, owners and GRANT.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::{SqlError, SqlResult, SqlType, Value};

/// The OID of the role that owns every object (PostgreSQL's bootstrap
/// superuser OID) and its name.
pub const BOOTSTRAP_ROLE: (i64, &str) = (10, "root");

/// The role that owns the `public` schema in PostgreSQL 15.
pub const DATABASE_OWNER_ROLE: (i64, &str) = (6171, "pg_database_owner");

/// PostgreSQL's encoding number for UTF8.
pub const UTF8_ENCODING: i64 = 6;

/// PostgreSQL's OIDs of its catalog tables, for `'pg_catalog.x'::regclass`
/// (as in `pg_description.classoid = 'pg_class'::regclass`).
pub const CATALOG_TABLE_OIDS: &[(&str, i64)] = &[
    ("pg_am", 2601),
    ("pg_attrdef", 2604),
    ("pg_attribute", 1249),
    ("pg_authid", 1260),
    ("pg_class", 1259),
    ("pg_collation", 3456),
    ("pg_constraint", 2606),
    ("pg_database", 1262),
    ("pg_depend", 2608),
    ("pg_description", 2609),
    ("pg_enum", 3501),
    ("pg_extension", 3079),
    ("pg_index", 2610),
    ("pg_inherits", 2611),
    ("pg_namespace", 2615),
    ("pg_opclass", 2616),
    ("pg_proc", 1255),
    ("pg_rewrite", 2618),
    ("pg_sequence", 2224),
    ("pg_shdescription", 2396),
    ("pg_statistic_ext", 3381),
    ("pg_tablespace", 1213),
    ("pg_trigger", 2620),
    ("pg_type", 1247),
];

/// `pg_description.classoid` of relations (tables, views, sequences,
/// indexes) and their columns.
pub const PG_CLASS_OID: i64 = 1259;
/// `pg_description.classoid` of constraints.
pub const PG_CONSTRAINT_OID: i64 = 2606;
/// `pg_description.classoid` of schemas.
pub const PG_NAMESPACE_OID: i64 = 2615;
/// `pg_shdescription.classoid` of databases.
pub const PG_DATABASE_OID: i64 = 1262;

/// The privilege checks, all of which pass (there are no privileges yet).
const PRIVILEGE_CHECKS: &[&str] = &[
    "has_table_privilege",
    "has_schema_privilege",
    "has_database_privilege",
    "has_sequence_privilege",
    "has_column_privilege",
    "has_function_privilege",
    "pg_has_role",
];

/// The result type of a catalog function, `None` when `name` is not one.
pub fn function_type(name: &str, args: &[SqlType]) -> Option<SqlType> {
    use SqlType as T;
    let text = |t: &SqlType| matches!(t, T::Text | T::Varchar(_) | T::Char(_) | T::Unknown);
    // OID arguments: integers, or a quoted number (`'16420'`, an unknown
    // literal that PostgreSQL would read as an oid).
    let int = |t: &SqlType| {
        matches!(
            t,
            T::Int2
                | T::Int4
                | T::Int8
                | T::Oid
                | T::RegClass
                | T::RegType
                | T::Unknown
                | T::Text
                | T::Varchar(_)
        )
    };
    Some(match (name, args) {
        ("textregexeq" | "texticregexeq", [a, b]) if text(a) && text(b) => T::Bool,
        ("pg_get_userbyid", [o]) if int(o) => T::Text,
        ("pg_encoding_to_char", [e]) if int(e) => T::Text,
        (
            "pg_table_is_visible"
            | "pg_type_is_visible"
            | "pg_function_is_visible"
            | "pg_collation_is_visible"
            | "pg_opclass_is_visible",
            [o],
        ) if int(o) => T::Bool,
        ("format_type", [o, m]) if int(o) && int(m) => T::Text,
        ("pg_get_expr", [e, o]) if text(e) && int(o) => T::Text,
        ("pg_get_expr", [e, o, _]) if text(e) && int(o) => T::Text,
        (name, args) if PRIVILEGE_CHECKS.contains(&name) && (2..=4).contains(&args.len()) => {
            T::Bool
        }
        ("current_schemas", [T::Bool]) => T::array_of(T::Text),
        ("pg_relation_is_publishable", [o]) if int(o) => T::Bool,
        (
            "pg_table_size" | "pg_relation_size" | "pg_total_relation_size" | "pg_indexes_size",
            [o],
        ) if int(o) => T::Int8,
        ("pg_size_pretty", [T::Int2 | T::Int4 | T::Int8]) => T::Text,
        (
            "pg_get_function_result"
            | "pg_get_function_arguments"
            | "pg_get_function_identity_arguments",
            [o],
        ) if int(o) => T::Text,
        ("pg_partition_ancestors", [o]) if int(o) => T::Int8,
        ("pg_get_statisticsobjdef_columns", [o]) if int(o) => T::Text,
        ("to_regtype", [n]) if text(n) => T::Int8,
        ("pg_get_serial_sequence", [t, c]) if text(t) && text(c) => T::Text,
        // Sequence functions (sql's exec runs them with the session).
        ("currval", [n]) if text(n) => T::Int8,
        ("setval", [n, v]) if text(n) && (v.is_integer() || *v == T::Unknown) => T::Int8,
        ("setval", [n, v, c])
            if text(n)
                && (v.is_integer() || *v == T::Unknown)
                && matches!(c, T::Bool | T::Unknown) =>
        {
            T::Int8
        }
        ("lastval", []) => T::Int8,
        ("current_setting", [n]) if text(n) => T::Text,
        ("current_setting", [n, T::Bool]) if text(n) => T::Text,
        ("set_config", [n, v, T::Bool]) if text(n) && text(v) => T::Text,
        // Advisory locks (sql's advisory.rs; the executor runs them). The
        // void ones are an untyped NULL here, as pg_sleep.
        ("pg_advisory_unlock_all", []) => T::Unknown,
        ("pg_advisory_lock" | "pg_advisory_xact_lock", [k])
            if k.is_integer() || *k == T::Unknown =>
        {
            T::Unknown
        }
        ("pg_advisory_lock" | "pg_advisory_xact_lock", [a, b]) if int4ish(a) && int4ish(b) => {
            T::Unknown
        }
        ("pg_try_advisory_lock" | "pg_try_advisory_xact_lock" | "pg_advisory_unlock", [k])
            if k.is_integer() || *k == T::Unknown =>
        {
            T::Bool
        }
        ("pg_try_advisory_lock" | "pg_try_advisory_xact_lock" | "pg_advisory_unlock", [a, b])
            if int4ish(a) && int4ish(b) =>
        {
            T::Bool
        }
        ("pg_backend_pid", []) => T::Int4,
        // void in PostgreSQL: here an untyped NULL (psql prints it alike).
        ("pg_sleep", [s]) if s.is_numeric() || *s == T::Unknown => T::Unknown,
        ("pg_is_in_recovery", []) => T::Bool,
        _ => return None,
    })
}

/// Calls a catalog function ([`function_type`] knows its type).
pub fn call_function(name: &str, args: &[Value]) -> SqlResult<Value> {
    let arg = |i: usize| args.get(i).unwrap_or(&Value::Null);
    let int = |i: usize| match arg(i) {
        Value::Int(n) => Some(*n),
        Value::Text(t) => t.trim().parse().ok(),
        _ => None,
    };
    Ok(match name {
        "textregexeq" | "texticregexeq" => match (arg(0), arg(1)) {
            (Value::Text(s), Value::Text(p)) => {
                Value::Bool(regex_matches(s, p, name == "texticregexeq")?)
            }
            _ => Value::Null,
        },
        "pg_get_userbyid" => match int(0) {
            Some(o) if o == BOOTSTRAP_ROLE.0 => Value::Text(BOOTSTRAP_ROLE.1.into()),
            Some(o) if o == DATABASE_OWNER_ROLE.0 => Value::Text(DATABASE_OWNER_ROLE.1.into()),
            Some(o) => Value::Text(format!("unknown (OID={o})")),
            None => Value::Null,
        },
        "pg_encoding_to_char" => match int(0) {
            Some(UTF8_ENCODING) => Value::Text("UTF8".into()),
            Some(_) => Value::Text(String::new()),
            None => Value::Null,
        },
        "pg_table_is_visible"
        | "pg_type_is_visible"
        | "pg_function_is_visible"
        | "pg_collation_is_visible"
        | "pg_opclass_is_visible" => match arg(0) {
            Value::Null => Value::Null,
            _ => Value::Bool(true),
        },
        "format_type" => match int(0) {
            Some(oid) => Value::Text(format_type(oid, int(1).unwrap_or(-1))),
            None => Value::Null,
        },
        // Expressions are stored as their SQL text.
        "pg_get_expr" => arg(0).clone(),
        name if PRIVILEGE_CHECKS.contains(&name) => Value::Bool(true),
        "current_schemas" => {
            let mut schemas = Vec::new();
            if matches!(arg(0), Value::Bool(true)) {
                schemas.push(Value::Text("pg_catalog".into()));
            }
            schemas.push(Value::Text("public".into()));
            Value::Array(schemas)
        }
        // No publications and no extended statistics objects.
        "pg_relation_is_publishable" => Value::Bool(false),
        // A table without partitions is its own only ancestor (PostgreSQL's
        // is set-returning; one row is that set).
        "pg_partition_ancestors" => int(0).map_or(Value::Null, Value::Int),
        "pg_get_statisticsobjdef_columns" => Value::Null,
        // TODO(issue 13): sizes from the ranges' statistics.
        "pg_table_size" | "pg_relation_size" | "pg_total_relation_size" | "pg_indexes_size" => {
            Value::Int(0)
        }
        "pg_size_pretty" => match int(0) {
            Some(n) => Value::Text(size_pretty(n)),
            None => Value::Null,
        },
        // `pg_proc` lists no function yet.
        "pg_get_function_result"
        | "pg_get_function_arguments"
        | "pg_get_function_identity_arguments" => Value::Null,
        "to_regtype" => match arg(0) {
            Value::Text(n) => type_oid_by_name(n).map_or(Value::Null, Value::Int),
            _ => Value::Null,
        },
        // The executor runs them (sql's eval_row), never here.
        "pg_advisory_unlock_all"
        | "pg_advisory_lock"
        | "pg_advisory_xact_lock"
        | "pg_try_advisory_lock"
        | "pg_try_advisory_xact_lock"
        | "pg_advisory_unlock" => Value::Null,
        // The executor runs them with the catalog and the session (sql's
        // eval_row), never here.
        "pg_get_serial_sequence" | "currval" | "setval" | "lastval" => Value::Null,
        // Evaluated with the session (sql::plan::eval), never here.
        "current_setting" | "set_config" => Value::Null,
        "pg_backend_pid" => Value::Int(i64::from(std::process::id())),
        // The executor sleeps before evaluating the row (sql's eval_row).
        "pg_sleep" => Value::Null,
        "pg_is_in_recovery" => Value::Bool(false),
        other => {
            return Err(SqlError::internal(format!(
                "not a catalog function: {other}"
            )));
        }
    })
}

/// `pg_size_pretty(bytes)`: bytes below 10 kB, then kB, MB, GB, TB, PB,
/// each below 20,480 of its unit, rounded half away from zero — PostgreSQL's
/// algorithm (it keeps one extra bit for the rounding).
pub fn size_pretty(bytes: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    const LIMIT2: i64 = LIMIT * 2 - 1;
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    if bytes.abs() < LIMIT {
        return format!("{bytes} bytes");
    }
    let mut size = bytes >> 9;
    for unit in ["kB", "MB", "GB", "TB"] {
        if size.abs() < LIMIT2 {
            return format!("{} {unit}", half_rounded(size));
        }
        size >>= 10;
    }
    format!("{} PB", half_rounded(size))
}

/// The OID of the type a name means (`to_regtype`): PostgreSQL's names and
/// aliases, optionally `pg_catalog.`-qualified, `[]` or a leading `_` for
/// arrays; `None` for a type that does not exist here (`hstore`).
pub fn type_oid_by_name(name: &str) -> Option<i64> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    let (base, array) = match name.strip_suffix("[]") {
        Some(b) => (b.trim(), true),
        None => match name.strip_prefix('_') {
            Some(b) => (b, true),
            None => (name, false),
        },
    };
    let ty = match base {
        "bool" | "boolean" => SqlType::Bool,
        "bytea" => SqlType::Bytes,
        "int2" | "smallint" => SqlType::Int2,
        "int4" | "integer" | "int" => SqlType::Int4,
        "int8" | "bigint" => SqlType::Int8,
        "float4" | "real" => SqlType::Float4,
        "float8" | "double precision" => SqlType::Float8,
        "numeric" | "decimal" => SqlType::Decimal(None),
        "text" => SqlType::Text,
        "varchar" | "character varying" => SqlType::Varchar(None),
        "bpchar" | "character" | "char" => SqlType::Char(1),
        "date" => SqlType::Date,
        "timestamp" | "timestamp without time zone" => SqlType::Timestamp,
        "timestamptz" | "timestamp with time zone" => SqlType::TimestampTz,
        "interval" => SqlType::Interval,
        "uuid" => SqlType::Uuid,
        "jsonb" => SqlType::Jsonb,
        "json" if !array => return Some(114),
        "oid" => SqlType::Oid,
        "regclass" => SqlType::RegClass,
        "regtype" => SqlType::RegType,
        "name" if !array => return Some(19),
        "unknown" if !array => return Some(705),
        _ => return None,
    };
    let ty = if array { SqlType::array_of(ty) } else { ty };
    Some(i64::from(ty.oid()))
}

/// An argument of the two-key advisory lock functions (int4 in
/// PostgreSQL; INT is int8 here, so any integer, checked when run).
fn int4ish(t: &SqlType) -> bool {
    t.is_integer() || *t == SqlType::Unknown
}

/// `format_type(type_oid, typmod)`: the type's name as PostgreSQL prints
/// it in `\d` (`integer`, `character varying(20)`, `numeric(10,2)`).
pub fn format_type(oid: i64, typmod: i64) -> String {
    let Some(ty) = u32::try_from(oid).ok().and_then(SqlType::from_oid) else {
        return "???".into();
    };
    let with_mod = match ty {
        SqlType::Varchar(_) if typmod >= 4 => SqlType::Varchar(Some((typmod - 4) as u32)),
        SqlType::Text if oid == 1042 && typmod >= 4 => SqlType::Char((typmod - 4) as u32),
        SqlType::Decimal(_) if typmod >= 4 => {
            let m = typmod - 4;
            SqlType::Decimal(Some((((m >> 16) & 0xffff) as u16, (m & 0xffff) as u16)))
        }
        other => other,
    };
    pg_type_name(with_mod)
}

/// A type's name in PostgreSQL's long form, with its modifiers.
pub fn pg_type_name(ty: SqlType) -> String {
    match ty {
        SqlType::Unknown => "unknown".into(),
        SqlType::Bool => "boolean".into(),
        SqlType::Int2 => "smallint".into(),
        SqlType::Int4 => "integer".into(),
        SqlType::Int8 => "bigint".into(),
        SqlType::Float4 => "real".into(),
        SqlType::Float8 => "double precision".into(),
        SqlType::Decimal(None) => "numeric".into(),
        SqlType::Decimal(Some((p, s))) => format!("numeric({p},{s})"),
        SqlType::Text => "text".into(),
        SqlType::Varchar(None) => "character varying".into(),
        SqlType::Varchar(Some(n)) => format!("character varying({n})"),
        SqlType::Char(n) => format!("character({n})"),
        SqlType::Bytes => "bytea".into(),
        SqlType::Date => "date".into(),
        SqlType::Time => "time without time zone".into(),
        SqlType::Timestamp => "timestamp without time zone".into(),
        SqlType::TimestampTz => "timestamp with time zone".into(),
        SqlType::Interval => "interval".into(),
        SqlType::Uuid => "uuid".into(),
        SqlType::Jsonb => "jsonb".into(),
        SqlType::Oid => "oid".into(),
        SqlType::RegClass => "regclass".into(),
        SqlType::RegType => "regtype".into(),
        SqlType::Int2Vector => "int2vector".into(),
        SqlType::Inet => "inet".into(),
        SqlType::Array(e) => format!("{}[]", pg_type_name(*e)),
    }
}

/// The `atttypmod` PostgreSQL stores for a column of type `ty` (-1: none).
pub fn type_modifier(ty: SqlType) -> i64 {
    match ty {
        SqlType::Varchar(Some(n)) | SqlType::Char(n) => i64::from(n) + 4,
        SqlType::Decimal(Some((p, s))) => ((i64::from(p) << 16) | i64::from(s)) + 4,
        _ => -1,
    }
}

thread_local! {
    /// Compiled patterns by (pattern, case-insensitive): a filter applies
    /// one pattern to every row.
    static PATTERNS: RefCell<HashMap<(String, bool), regex::Regex>> = RefCell::new(HashMap::new());
}

/// Most patterns kept compiled per thread.
const MAX_PATTERNS: usize = 64;

/// POSIX regular-expression match (`~`, `~*`): true when `pattern` matches
/// anywhere in `s`. An invalid pattern is 2201B, as in PostgreSQL.
pub fn regex_matches(s: &str, pattern: &str, case_insensitive: bool) -> SqlResult<bool> {
    PATTERNS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let key = (pattern.to_string(), case_insensitive);
        if let Some(re) = cache.get(&key) {
            return Ok(re.is_match(s));
        }
        let re = regex::RegexBuilder::new(pattern)
            .case_insensitive(case_insensitive)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                SqlError::new(
                    "2201B",
                    format!("invalid regular expression: {}", first_line(&e.to_string())),
                )
            })?;
        let matched = re.is_match(s);
        if cache.len() >= MAX_PATTERNS {
            cache.clear();
        }
        cache.insert(key, re);
        Ok(matched)
    })
}

fn first_line(s: &str) -> &str {
    s.lines().last().unwrap_or(s).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_expressions_match_like_postgres() {
        assert!(regex_matches("pg_toast", "^pg_toast", false).expect("valid"));
        assert!(!regex_matches("public", "^pg_", false).expect("valid"));
        assert!(regex_matches("Users", "^(users)$", true).expect("valid"));
        assert!(!regex_matches("Users", "^(users)$", false).expect("valid"));
        let err = regex_matches("x", "(", false).unwrap_err();
        assert_eq!(err.code, "2201B");
    }

    #[test]
    fn type_names_resolve_to_their_oids() {
        assert_eq!(type_oid_by_name("integer"), Some(23));
        assert_eq!(type_oid_by_name("pg_catalog.int8"), Some(20));
        assert_eq!(type_oid_by_name("text[]"), Some(1009));
        assert_eq!(type_oid_by_name("_int4"), Some(1007));
        assert_eq!(type_oid_by_name("hstore"), None);
    }

    #[test]
    fn sizes_print_like_pg_size_pretty() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(8192), "8192 bytes");
        assert_eq!(size_pretty(10 * 1024), "10 kB");
        assert_eq!(size_pretty(123_456_789), "118 MB");
        assert_eq!(size_pretty(10_485_759), "10 MB");
        assert_eq!(size_pretty(1_536_000), "1500 kB");
    }

    #[test]
    fn types_are_named_as_psql_prints_them() {
        let v = SqlType::Varchar(Some(20));
        assert_eq!(
            format_type(i64::from(v.oid()), type_modifier(v)),
            "character varying(20)"
        );
        let d = SqlType::Decimal(Some((10, 2)));
        assert_eq!(
            format_type(i64::from(d.oid()), type_modifier(d)),
            "numeric(10,2)"
        );
        assert_eq!(format_type(23, -1), "integer");
        assert_eq!(format_type(1184, -1), "timestamp with time zone");
        assert_eq!(format_type(1016, -1), "bigint[]");
    }
}
