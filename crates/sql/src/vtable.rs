//! Virtual system tables: `pg_catalog` and `information_schema`, generated
//! for each statement from the descriptors its transaction sees (so a
//! transaction's own DDL shows), with PostgreSQL's table and column names
//! and types, so that psql's `\d` family, drivers and ORMs find what they
//! look for.
//!
//! Takes a relation name the statement reads ([`lookup`]); gives a table
//! descriptor whose rows are already computed ([`descriptor`],
//! `TableDesc::virtual_rows`), which the binder turns into a `VALUES` list.
//! Unqualified names find `pg_catalog`'s tables (PostgreSQL searches it
//! first); `information_schema`'s need their schema.
//!
//! Identifiers (OIDs): a table's OID is its descriptor id; an index's is
//! [`INDEX_OID_BASE`] + (table id << 8) + index id; a constraint's is
//! [`CONSTRAINT_OID_BASE`] + (table id << 8) + its number in the table;
//! schemas are PostgreSQL's (`pg_catalog` 11, `public` 2200); types are
//! PostgreSQL's type OIDs; every object is owned by the bootstrap role
//! ([`BOOTSTRAP_ROLE`], OID 10). OID columns have type INT8.
//!
//! TODO(issue 13): `pg_proc` lists no built-in function, `pg_settings`
//! only the session parameters the wire protocol reports, roles other than
//! the bootstrap one, and `crdb_internal`.
//!
//! Comments (`COMMENT ON`, [`crate::comment`]) live in the descriptors of
//! the objects they describe; `pg_description` and `pg_shdescription` list
//! them under the OIDs above.

use std::collections::HashMap;
use std::sync::Arc;

use tardigrade_sqltypes::catalog_fns::{
    BOOTSTRAP_ROLE, CATALOG_TABLE_OIDS, DATABASE_OWNER_ROLE, PG_CLASS_OID, PG_CONSTRAINT_OID,
    PG_DATABASE_OID, PG_NAMESPACE_OID, UTF8_ENCODING, pg_type_name, type_modifier,
};
use tardigrade_sqltypes::strings::quote_ident;
use tardigrade_sqltypes::{SqlResult, SqlType, Value};

use crate::catalog::{
    ColumnDesc, DatabaseDesc, Generated, IndexDesc, ReferentialAction, TableDesc, deparsed,
};

pub const PG_CATALOG_OID: i64 = 11;
pub const PUBLIC_OID: i64 = 2200;
pub const INFORMATION_SCHEMA_OID: i64 = 13_000;
/// `pg_am`: heap tables and btree indexes.
/// The default B-tree operator classes (PostgreSQL's OIDs): (oid, name,
/// input type OID). `opcfamily` is given the class's own OID.
const BTREE_OPCLASSES: &[(i64, &str, i64)] = &[
    (424, "bool_ops", 16),
    (421, "bytea_ops", 17),
    (1979, "int2_ops", 21),
    (1978, "int4_ops", 23),
    (3124, "int8_ops", 20),
    (1970, "float4_ops", 700),
    (3123, "float8_ops", 701),
    (3125, "numeric_ops", 1700),
    (3126, "text_ops", 25),
    (426, "bpchar_ops", 1042),
    (3122, "date_ops", 1082),
    (1996, "time_ops", 1083),
    (3979, "inet_ops", 869),
    (3128, "timestamp_ops", 1114),
    (3127, "timestamptz_ops", 1184),
    (3129, "interval_ops", 1186),
    (2968, "uuid_ops", 2950),
    (4033, "jsonb_ops", 3802),
    (397, "array_ops", 2277),
];

/// The default B-tree operator class of a key of type `ty`: (oid, name).
fn btree_opclass(ty: SqlType) -> (i64, &'static str) {
    let name = match ty {
        SqlType::Bool => "bool_ops",
        SqlType::Bytes => "bytea_ops",
        SqlType::Int2 => "int2_ops",
        SqlType::Int4 => "int4_ops",
        SqlType::Int8 => "int8_ops",
        SqlType::Float4 => "float4_ops",
        SqlType::Float8 => "float8_ops",
        SqlType::Decimal(_) => "numeric_ops",
        SqlType::Char(_) => "bpchar_ops",
        SqlType::Date => "date_ops",
        SqlType::Time => "time_ops",
        SqlType::Inet => "inet_ops",
        SqlType::Timestamp => "timestamp_ops",
        SqlType::TimestampTz => "timestamptz_ops",
        SqlType::Interval => "interval_ops",
        SqlType::Uuid => "uuid_ops",
        SqlType::Jsonb => "jsonb_ops",
        t if t.element().is_some() => "array_ops",
        _ => "text_ops",
    };
    BTREE_OPCLASSES
        .iter()
        .find(|(_, n, _)| *n == name)
        .map_or((3126, "text_ops"), |(oid, n, _)| (*oid, *n))
}

/// The OID of system catalog `parts` (`pg_class`, `pg_catalog.pg_class`).
pub fn catalog_table_oid(parts: &[String]) -> Option<i64> {
    let table = match parts {
        [t] => t,
        [s, t] if s == "pg_catalog" => t,
        _ => return None,
    };
    CATALOG_TABLE_OIDS
        .iter()
        .find(|(n, _)| n == table)
        .map(|(_, oid)| *oid)
}

/// A relation name as regclass input reads it (`schema.table`,
/// `"Mixed".t`): its parts, unquoted ones folded to lower case.
pub fn split_relation_name(name: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    for p in name.split('.') {
        let p = p.trim();
        if p.is_empty() {
            return None;
        }
        parts.push(
            match p.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
                Some(quoted) => quoted.to_string(),
                None => p.to_lowercase(),
            },
        );
    }
    (!parts.is_empty() && parts.len() <= 3).then_some(parts)
}

/// PostgreSQL's comment on `pg_catalog`.
const PG_CATALOG_COMMENT: &str = "system catalog schema";

const HEAP_AM: i64 = 2;
const BTREE_AM: i64 = 403;
/// Where index and constraint OIDs start (above any descriptor id).
pub const INDEX_OID_BASE: i64 = 1 << 30;
pub const CONSTRAINT_OID_BASE: i64 = 1 << 31;
/// The collation OID of string columns (`default`).
const DEFAULT_COLLATION: i64 = 100;

/// What the virtual tables are generated from.
pub struct Snapshot {
    pub database: String,
    pub databases: Vec<DatabaseDesc>,
    /// The current database's tables, views and sequences.
    pub tables: Vec<Arc<TableDesc>>,
}

/// Every virtual table: (schema, name).
const TABLES: &[(&str, &str)] = &[
    ("pg_catalog", "pg_am"),
    ("pg_catalog", "pg_attrdef"),
    ("pg_catalog", "pg_attribute"),
    ("pg_catalog", "pg_auth_members"),
    ("pg_catalog", "pg_authid"),
    ("pg_catalog", "pg_class"),
    ("pg_catalog", "pg_collation"),
    ("pg_catalog", "pg_constraint"),
    ("pg_catalog", "pg_database"),
    ("pg_catalog", "pg_depend"),
    ("pg_catalog", "pg_description"),
    ("pg_catalog", "pg_enum"),
    ("pg_catalog", "pg_extension"),
    ("pg_catalog", "pg_index"),
    ("pg_catalog", "pg_indexes"),
    ("pg_catalog", "pg_inherits"),
    ("pg_catalog", "pg_matviews"),
    ("pg_catalog", "pg_opclass"),
    ("pg_catalog", "pg_namespace"),
    ("pg_catalog", "pg_policy"),
    ("pg_catalog", "pg_proc"),
    ("pg_catalog", "pg_publication"),
    ("pg_catalog", "pg_range"),
    ("pg_catalog", "pg_publication_namespace"),
    ("pg_catalog", "pg_publication_rel"),
    ("pg_catalog", "pg_roles"),
    ("pg_catalog", "pg_sequence"),
    ("pg_catalog", "pg_sequences"),
    ("pg_catalog", "pg_shdescription"),
    ("pg_catalog", "pg_statistic_ext"),
    ("pg_catalog", "pg_tables"),
    ("pg_catalog", "pg_tablespace"),
    ("pg_catalog", "pg_trigger"),
    ("pg_catalog", "pg_type"),
    ("pg_catalog", "pg_user"),
    ("pg_catalog", "pg_views"),
    ("information_schema", "check_constraints"),
    ("information_schema", "columns"),
    ("information_schema", "key_column_usage"),
    ("information_schema", "referential_constraints"),
    ("information_schema", "routines"),
    ("information_schema", "schemata"),
    ("information_schema", "sequences"),
    ("information_schema", "table_constraints"),
    ("information_schema", "tables"),
    ("information_schema", "views"),
];

/// The virtual table `schema.name` (`schema` `None`: unqualified, which
/// finds `pg_catalog`'s).
pub fn lookup(schema: Option<&str>, name: &str) -> Option<(&'static str, &'static str)> {
    let schema = schema.unwrap_or("pg_catalog");
    TABLES
        .iter()
        .find(|(s, n)| *s == schema && *n == name)
        .copied()
}

/// Whether `schema` is a system schema (its tables are all virtual).
pub fn is_system_schema(schema: &str) -> bool {
    matches!(schema, "pg_catalog" | "information_schema")
}

/// The descriptor of virtual table `(schema, name)` with its rows for
/// `snapshot`. Its id is above every real descriptor's.
pub fn descriptor(table: (&str, &str), snapshot: &Snapshot) -> SqlResult<TableDesc> {
    let (columns, rows) = generate(table, snapshot);
    let id = u32::MAX - TABLES.iter().position(|t| *t == table).unwrap_or(0) as u32;
    Ok(virtual_descriptor(id, table.1, columns, rows))
}

/// A descriptor holding `rows` under `columns`.
fn virtual_descriptor(id: u32, name: &str, columns: Columns, rows: Rows) -> TableDesc {
    let mut desc = TableDesc::new(id, 0, name);
    desc.columns = columns
        .into_iter()
        .enumerate()
        .map(|(i, (name, ty))| ColumnDesc {
            id: i as u32 + 1,
            name: name.to_string(),
            ty,
            nullable: true,
            default: None,
            hidden: false,
            comment: None,
            generated: None,
        })
        .collect();
    desc.next_column_id = desc.columns.len() as u32 + 1;
    desc.virtual_rows = Some(Arc::new(rows));
    desc
}

type Columns = Vec<(&'static str, SqlType)>;
type Rows = Vec<Vec<Value>>;

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn int(n: i64) -> Value {
    Value::Int(n)
}

fn boolean(b: bool) -> Value {
    Value::Bool(b)
}

const NULL: Value = Value::Null;

fn int2_array(items: impl IntoIterator<Item = i64>) -> Value {
    Value::Array(items.into_iter().map(Value::Int).collect())
}

/// Column specs: `"name:type"` with type one of oid, name, text, char,
/// bool, int2, int4, int8, float4, text[], int2[], oid[], timestamptz.
fn columns(spec: &[&'static str]) -> Columns {
    spec.iter()
        .map(|s| {
            let (name, ty) = s.split_once(':').unwrap_or((s, "text"));
            let ty = match ty {
                "oid" => SqlType::Oid,
                "int8" => SqlType::Int8,
                "int2" => SqlType::Int2,
                "int4" => SqlType::Int4,
                "float4" => SqlType::Float4,
                "bool" => SqlType::Bool,
                "text[]" => SqlType::array_of(SqlType::Text),
                "int2[]" => SqlType::array_of(SqlType::Int2),
                "int2vector" => SqlType::Int2Vector,
                "oid[]" => SqlType::array_of(SqlType::Oid),
                "timestamptz" => SqlType::TimestampTz,
                _ => SqlType::Text,
            };
            (name, ty)
        })
        .collect()
}

/// The columns naming a constraint and a table in `information_schema`.
const CONSTRAINT_KEY: &[&str] = &["constraint_catalog", "constraint_schema", "constraint_name"];
const TABLE_KEY: &[&str] = &["table_catalog", "table_schema", "table_name"];

/// [`columns`] of `prefixes` then `rest`.
fn columns_after(prefixes: &[&[&'static str]], rest: &[&'static str]) -> Columns {
    let mut all: Vec<&'static str> = prefixes.iter().flat_map(|p| p.iter().copied()).collect();
    all.extend_from_slice(rest);
    columns(&all)
}

fn table_oid(t: &TableDesc) -> i64 {
    i64::from(t.id)
}

fn index_oid(t: &TableDesc, i: &IndexDesc) -> i64 {
    INDEX_OID_BASE + (i64::from(t.id) << 8) + i64::from(i.id)
}

fn constraint_oid(t: &TableDesc, n: usize) -> i64 {
    CONSTRAINT_OID_BASE + (i64::from(t.id) << 8) + n as i64
}

/// The columns `\d` and ORMs see: all but the hidden `rowid`, numbered
/// from 1 without gaps.
fn visible_columns(t: &TableDesc) -> impl Iterator<Item = (i64, &ColumnDesc)> {
    t.columns
        .iter()
        .filter(|c| !c.hidden)
        .enumerate()
        .map(|(i, c)| (i as i64 + 1, c))
}

/// `pg_index.indexprs` of an index keyed on expressions: their SQL, in key
/// order, joined by commas.
fn index_expressions_text(t: &TableDesc, i: &IndexDesc) -> Option<String> {
    let exprs: Vec<String> = i
        .columns
        .iter()
        .filter_map(|c| t.column_by_id(*c).and_then(|c| c.index_expression()))
        .map(deparsed)
        .collect();
    (!exprs.is_empty()).then(|| exprs.join(", "))
}

fn attnum(t: &TableDesc, id: u32) -> Option<i64> {
    visible_columns(t).find(|(_, c)| c.id == id).map(|(n, _)| n)
}

/// The indexes a client sees: the primary index unless it is on the hidden
/// `rowid`, and the public secondary ones.
fn visible_indexes(t: &TableDesc) -> Vec<&IndexDesc> {
    let mut out = Vec::new();
    if !t.is_view() && !t.is_sequence() && !t.has_implicit_pk() {
        out.push(&t.primary_index);
    }
    out.extend(t.indexes.iter());
    out
}

fn relkind(t: &TableDesc) -> &'static str {
    if t.is_view() {
        "v"
    } else if t.is_sequence() {
        "S"
    } else {
        "r"
    }
}

/// `CREATE [UNIQUE] INDEX name ON public.t USING btree (a, b DESC)`, as
/// `pg_get_indexdef` and `pg_indexes.indexdef` give it.
pub fn index_definition(t: &TableDesc, i: &IndexDesc) -> String {
    let cols: Vec<String> = i
        .columns
        .iter()
        .zip(
            i.directions
                .iter()
                .chain(std::iter::repeat(&Default::default())),
        )
        .map(|(id, dir)| {
            let name = t.index_key_text(*id, quote_ident);
            match dir {
                tardigrade_encoding::Direction::Descending => format!("{name} DESC"),
                tardigrade_encoding::Direction::Ascending => name,
            }
        })
        .collect();
    let storing: Vec<String> = i
        .storing
        .iter()
        .filter_map(|id| t.column_by_id(*id).map(|c| quote_ident(&c.name)))
        .collect();
    format!(
        "CREATE {}INDEX {} ON public.{} USING btree ({}){}{}",
        if i.unique { "UNIQUE " } else { "" },
        quote_ident(&i.name),
        quote_ident(&t.name),
        cols.join(", "),
        if storing.is_empty() {
            String::new()
        } else {
            format!(" INCLUDE ({})", storing.join(", "))
        },
        t.index_predicate_text(i)
            .map_or(String::new(), |p| format!(" WHERE {}", deparsed(p)))
    )
}

/// The name under which the statement's [`relation_names`] travel to the
/// binder in its table map (not a name SQL can write).
pub const RELATION_NAMES: &str = "\u{1}relation names";

/// What regclass resolves: every relation of the database (tables, views,
/// sequences, indexes) and the system catalogs, as (oid, name) rows, the
/// names unquoted. The binder resolves `'t'::regclass` with them and turns
/// a regclass's output into a lookup among them.
pub fn relation_names(s: &Snapshot) -> TableDesc {
    let mut rows = Vec::new();
    for t in &s.tables {
        rows.push(vec![int(table_oid(t)), text(t.name.clone())]);
        for i in visible_indexes(t) {
            rows.push(vec![int(index_oid(t, i)), text(i.name.clone())]);
        }
    }
    for (name, oid) in CATALOG_TABLE_OIDS {
        rows.push(vec![int(*oid), text(*name)]);
    }
    // Its version follows the relations, so a cached plan (a prepared
    // statement's) is bound again when they change.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for t in &s.tables {
        std::hash::Hash::hash(&(t.id, t.version, &t.name), &mut hasher);
    }
    let mut desc = virtual_descriptor(
        u32::MAX - TABLES.len() as u32 - 2,
        RELATION_NAMES,
        columns(&["oid:oid", "relname"]),
        rows,
    );
    desc.version = std::hash::Hasher::finish(&hasher);
    desc
}

/// The name under which the statement's [`definitions`] travel to the
/// binder in its table map (not a name SQL can write).
pub const DEFINITIONS: &str = "\u{1}definitions";

/// What `pg_get_indexdef`, `pg_get_constraintdef` and `pg_get_viewdef`
/// return, by OID: every index, constraint and view of the database. The
/// binder turns a call into a `CASE` over them.
pub fn definitions(s: &Snapshot) -> TableDesc {
    let names: HashMap<u32, &str> = s.tables.iter().map(|t| (t.id, t.name.as_str())).collect();
    let mut rows = Vec::new();
    for t in &s.tables {
        for i in visible_indexes(t) {
            rows.push(vec![
                int(index_oid(t, i)),
                int(0),
                text(index_definition(t, i)),
            ]);
            // `pg_get_indexdef(oid, k, …)`: the k-th key column, or its
            // expression.
            for (k, c) in i.columns.iter().enumerate() {
                rows.push(vec![
                    int(index_oid(t, i)),
                    int(k as i64 + 1),
                    text(t.index_key_text(*c, quote_ident)),
                ]);
            }
        }
        let mut fks = t.foreign_keys.iter();
        for (n, (_, contype, _, def, _)) in constraints(t).into_iter().enumerate() {
            // Foreign keys (in their order) name their table by id until here.
            let def = match if contype == "f" { fks.next() } else { None } {
                Some(f) => {
                    let r = s.tables.iter().find(|r| r.id == f.referenced_table);
                    let cols: Vec<String> = f
                        .referenced_columns
                        .iter()
                        .filter_map(|c| {
                            r.and_then(|r| r.column_by_id(*c))
                                .map(|c| quote_ident(&c.name))
                        })
                        .collect();
                    let target = names
                        .get(&f.referenced_table)
                        .map_or("?".to_string(), |n| quote_ident(n));
                    let mut d = def.replace(
                        &format!("[{}]", f.referenced_table),
                        &format!("{target}({})", cols.join(", ")),
                    );
                    if f.on_update != ReferentialAction::NoAction {
                        d.push_str(&format!(" ON UPDATE {}", action_name(f.on_update)));
                    }
                    if f.on_delete != ReferentialAction::NoAction {
                        d.push_str(&format!(" ON DELETE {}", action_name(f.on_delete)));
                    }
                    d
                }
                None => def,
            };
            rows.push(vec![int(constraint_oid(t, n)), int(0), text(def)]);
        }
        if let Some(q) = &t.view_query {
            rows.push(vec![int(table_oid(t)), int(0), text(format!(" {q};"))]);
        }
    }
    virtual_descriptor(
        u32::MAX - TABLES.len() as u32 - 1,
        DEFINITIONS,
        columns(&["oid:oid", "column:int8", "definition"]),
        rows,
    )
}

/// A constraint as [`constraints`] gives it: (name, contype, index,
/// definition, comment).
type Constraint<'a> = (
    String,
    &'static str,
    Option<&'a IndexDesc>,
    String,
    Option<&'a str>,
);

/// Whether `t` has a constraint (in `pg_constraint`) named `name`.
pub fn has_constraint(t: &TableDesc, name: &str) -> bool {
    constraints(t).iter().any(|c| c.0 == name)
}

/// A table's constraints in `pg_constraint` order: primary key, unique
/// indexes, foreign keys, checks.
fn constraints(t: &TableDesc) -> Vec<Constraint<'_>> {
    let names = |ids: &[u32]| {
        ids.iter()
            .filter_map(|id| t.column_by_id(*id).map(|c| quote_ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::new();
    for i in visible_indexes(t) {
        if i.id == t.primary_index.id {
            out.push((
                i.name.clone(),
                "p",
                Some(i),
                format!("PRIMARY KEY ({})", names(&i.columns)),
                i.constraint_comment.as_deref(),
            ));
        } else if i.unique && !i.is_partial() && index_expressions_text(t, i).is_none() {
            // A unique index on expressions or with a predicate is only an
            // index, as in PostgreSQL: no constraint stands for it.
            out.push((
                i.name.clone(),
                "u",
                Some(i),
                format!("UNIQUE ({})", names(&i.columns)),
                i.constraint_comment.as_deref(),
            ));
        }
    }
    for fk in &t.foreign_keys {
        out.push((
            fk.name.clone(),
            "f",
            None,
            format!(
                "FOREIGN KEY ({}) REFERENCES [{}]",
                names(&fk.columns),
                fk.referenced_table
            ),
            fk.comment.as_deref(),
        ));
    }
    for c in &t.checks {
        out.push((
            c.name.clone(),
            "c",
            None,
            format!("CHECK (({}))", c.expr),
            c.comment.as_deref(),
        ));
    }
    out
}

/// `pg_description`'s rows: the comments on the schemas, and on the
/// database's relations, their columns (objsubid = attnum), indexes and
/// constraints, with the OIDs `pg_class`, `pg_attribute` and
/// `pg_constraint` give them.
fn descriptions(s: &Snapshot) -> Rows {
    let row = |objoid: i64, classoid: i64, objsubid: i64, c: &str| {
        vec![int(objoid), int(classoid), int(objsubid), text(c)]
    };
    let mut rows = vec![row(PG_CATALOG_OID, PG_NAMESPACE_OID, 0, PG_CATALOG_COMMENT)];
    if let Some(c) = s
        .databases
        .iter()
        .find(|d| d.name == s.database)
        .and_then(|d| d.public_schema_comment.as_deref())
    {
        rows.push(row(PUBLIC_OID, PG_NAMESPACE_OID, 0, c));
    }
    for t in &s.tables {
        if let Some(c) = &t.comment {
            rows.push(row(table_oid(t), PG_CLASS_OID, 0, c));
        }
        for (num, col) in visible_columns(t) {
            if let Some(c) = &col.comment {
                rows.push(row(table_oid(t), PG_CLASS_OID, num, c));
            }
        }
        for i in visible_indexes(t) {
            if let Some(c) = &i.comment {
                rows.push(row(index_oid(t, i), PG_CLASS_OID, 0, c));
            }
        }
        if t.is_sequence() {
            continue;
        }
        for (n, (_, _, _, _, comment)) in constraints(t).into_iter().enumerate() {
            if let Some(c) = comment {
                rows.push(row(constraint_oid(t, n), PG_CONSTRAINT_OID, 0, c));
            }
        }
    }
    rows
}

fn action_code(a: ReferentialAction) -> &'static str {
    match a {
        ReferentialAction::NoAction => "a",
        ReferentialAction::Restrict => "r",
        ReferentialAction::Cascade => "c",
        ReferentialAction::SetNull => "n",
        ReferentialAction::SetDefault => "d",
    }
}

fn action_name(a: ReferentialAction) -> &'static str {
    match a {
        ReferentialAction::NoAction => "NO ACTION",
        ReferentialAction::Restrict => "RESTRICT",
        ReferentialAction::Cascade => "CASCADE",
        ReferentialAction::SetNull => "SET NULL",
        ReferentialAction::SetDefault => "SET DEFAULT",
    }
}

/// The PostgreSQL types `pg_type` lists: (oid, name, type, len, category).
fn types() -> Vec<(i64, &'static str, Option<SqlType>, i64, &'static str)> {
    let base = [
        (16, "bool", SqlType::Bool, 1, "B"),
        (17, "bytea", SqlType::Bytes, -1, "U"),
        (20, "int8", SqlType::Int8, 8, "N"),
        (21, "int2", SqlType::Int2, 2, "N"),
        (23, "int4", SqlType::Int4, 4, "N"),
        (25, "text", SqlType::Text, -1, "S"),
        (700, "float4", SqlType::Float4, 4, "N"),
        (701, "float8", SqlType::Float8, 8, "N"),
        (1042, "bpchar", SqlType::Char(1), -1, "S"),
        (1043, "varchar", SqlType::Varchar(None), -1, "S"),
        (1082, "date", SqlType::Date, 4, "D"),
        (1083, "time", SqlType::Time, 8, "D"),
        (1114, "timestamp", SqlType::Timestamp, 8, "D"),
        (1184, "timestamptz", SqlType::TimestampTz, 8, "D"),
        (1186, "interval", SqlType::Interval, 16, "T"),
        (1700, "numeric", SqlType::Decimal(None), -1, "N"),
        (2950, "uuid", SqlType::Uuid, 16, "U"),
        (3802, "jsonb", SqlType::Jsonb, -1, "U"),
        (26, "oid", SqlType::Oid, 4, "N"),
        (22, "int2vector", SqlType::Int2Vector, -1, "A"),
        (869, "inet", SqlType::Inet, -1, "I"),
    ];
    let mut out: Vec<(i64, &'static str, Option<SqlType>, i64, &'static str)> = base
        .iter()
        .map(|(o, n, t, l, c)| (*o, *n, Some(*t), *l, *c))
        .collect();
    out.extend([
        (18, "char", None, 1, "Z"),
        (19, "name", None, 64, "S"),
        (24, "regproc", None, 4, "N"),
        (114, "json", None, -1, "U"),
        (705, "unknown", None, -2, "X"),
        (2205, "regclass", None, 4, "N"),
        (2206, "regtype", None, 4, "N"),
    ]);
    out
}

fn array_type_name(name: &str) -> String {
    format!("_{name}")
}

fn generate((schema, name): (&str, &str), s: &Snapshot) -> (Columns, Rows) {
    let tables = || s.tables.iter().map(|t| t.as_ref());
    let relations = || tables().filter(|t| !t.is_sequence());
    let mut rows: Rows = Vec::new();
    let cols = match (schema, name) {
        ("pg_catalog", "pg_namespace") => {
            for (oid, n, owner) in [
                (PG_CATALOG_OID, "pg_catalog", BOOTSTRAP_ROLE.0),
                (PUBLIC_OID, "public", DATABASE_OWNER_ROLE.0),
                (
                    INFORMATION_SCHEMA_OID,
                    "information_schema",
                    BOOTSTRAP_ROLE.0,
                ),
            ] {
                rows.push(vec![int(oid), text(n), int(owner), NULL]);
            }
            columns(&["oid:oid", "nspname:name", "nspowner:oid", "nspacl:text[]"])
        }
        ("pg_catalog", "pg_am") => {
            rows.push(vec![
                int(HEAP_AM),
                text("heap"),
                text("heap_tableam_handler"),
                text("t"),
            ]);
            rows.push(vec![
                int(BTREE_AM),
                text("btree"),
                text("bthandler"),
                text("i"),
            ]);
            columns(&["oid:oid", "amname:name", "amhandler", "amtype:char"])
        }
        ("pg_catalog", "pg_opclass") => {
            for (oid, name, intype) in BTREE_OPCLASSES {
                rows.push(vec![
                    int(*oid),
                    int(BTREE_AM),
                    text(*name),
                    int(PG_CATALOG_OID),
                    int(BOOTSTRAP_ROLE.0),
                    int(*oid),
                    int(*intype),
                    boolean(true),
                    int(0),
                ]);
            }
            columns(&[
                "oid:oid",
                "opcmethod:oid",
                "opcname:name",
                "opcnamespace:oid",
                "opcowner:oid",
                "opcfamily:oid",
                "opcintype:oid",
                "opcdefault:bool",
                "opckeytype:oid",
            ])
        }
        ("pg_catalog", "pg_collation") => {
            for (oid, n) in [(100, "default"), (950, "C"), (951, "POSIX")] {
                rows.push(vec![
                    int(oid),
                    text(n),
                    int(PG_CATALOG_OID),
                    int(BOOTSTRAP_ROLE.0),
                    text(if oid == 100 { "d" } else { "c" }),
                    boolean(true),
                    int(-1),
                    text(if oid == 100 { "" } else { n }),
                    text(if oid == 100 { "" } else { n }),
                ]);
            }
            columns(&[
                "oid:oid",
                "collname:name",
                "collnamespace:oid",
                "collowner:oid",
                "collprovider:char",
                "collisdeterministic:bool",
                "collencoding:int4",
                "collcollate",
                "collctype",
            ])
        }
        ("pg_catalog", "pg_class") => {
            for t in tables() {
                let indexes = visible_indexes(t);
                let ncols = visible_columns(t).count() as i64;
                // PostgreSQL enforces foreign keys with triggers, and psql
                // lists a table's foreign keys only when `relhastriggers` is
                // set; its trigger query then needs `pg_partition_ancestors(…)
                // WITH ORDINALITY` in FROM, correlated, so it stays false.
                // TODO(issue 13): LATERAL table functions, then set it for
                // tables with foreign keys so `\d` shows them.
                rows.push(class_row(
                    table_oid(t),
                    &t.name,
                    relkind(t),
                    if t.is_view() || t.is_sequence() {
                        0
                    } else {
                        HEAP_AM
                    },
                    ncols,
                    t.checks.len() as i64,
                    !indexes.is_empty(),
                ));
                for i in indexes {
                    rows.push(class_row(
                        index_oid(t, i),
                        &i.name,
                        "i",
                        BTREE_AM,
                        i.columns.len() as i64,
                        0,
                        false,
                    ));
                }
            }
            columns(&[
                "oid:oid",
                "relname:name",
                "relnamespace:oid",
                "reltype:oid",
                "reloftype:oid",
                "relowner:oid",
                "relam:oid",
                "relfilenode:oid",
                "reltablespace:oid",
                "relpages:int4",
                "reltuples:float4",
                "relallvisible:int4",
                "reltoastrelid:oid",
                "relhasindex:bool",
                "relisshared:bool",
                "relpersistence:char",
                "relkind:char",
                "relnatts:int2",
                "relchecks:int2",
                "relhasrules:bool",
                "relhastriggers:bool",
                "relhassubclass:bool",
                "relrowsecurity:bool",
                "relforcerowsecurity:bool",
                "relispopulated:bool",
                "relreplident:char",
                "relispartition:bool",
                "relrewrite:oid",
                "relfrozenxid:int8",
                "relminmxid:int8",
                "relacl:text[]",
                "reloptions:text[]",
                "relpartbound",
            ])
        }
        ("pg_catalog", "pg_attribute") => {
            for t in relations() {
                // An identity column has no pg_attrdef entry (its sequence
                // fills it); a generated column's expression is one.
                let defaults: Vec<bool> = visible_columns(t)
                    .map(|(_, c)| column_default_text(c).is_some())
                    .collect();
                for ((num, c), has_default) in visible_columns(t).zip(defaults) {
                    rows.push(vec![
                        int(table_oid(t)),
                        text(&c.name),
                        int(i64::from(c.ty.oid())),
                        int(-1),
                        int(i64::from(c.ty.type_len())),
                        int(num),
                        int(i64::from(c.ty.element().is_some())),
                        int(-1),
                        int(type_modifier(c.ty)),
                        boolean(c.ty.type_len() > 0 && c.ty.type_len() <= 8),
                        text("i"),
                        text(if c.ty.type_len() > 0 { "p" } else { "x" }),
                        text(""),
                        boolean(!c.nullable),
                        boolean(has_default),
                        boolean(false),
                        text(match c.generated {
                            Some(Generated::IdentityAlways) => "a",
                            Some(Generated::IdentityByDefault) => "d",
                            _ => "",
                        }),
                        text(if c.generation_expr().is_some() {
                            "s"
                        } else {
                            ""
                        }),
                        boolean(false),
                        boolean(true),
                        int(0),
                        int(if c.ty.is_string() {
                            DEFAULT_COLLATION
                        } else {
                            0
                        }),
                        NULL,
                        NULL,
                    ]);
                }
            }
            columns(&[
                "attrelid:oid",
                "attname:name",
                "atttypid:oid",
                "attstattarget:int4",
                "attlen:int2",
                "attnum:int2",
                "attndims:int4",
                "attcacheoff:int4",
                "atttypmod:int4",
                "attbyval:bool",
                "attalign:char",
                "attstorage:char",
                "attcompression:char",
                "attnotnull:bool",
                "atthasdef:bool",
                "atthasmissing:bool",
                "attidentity:char",
                "attgenerated:char",
                "attisdropped:bool",
                "attislocal:bool",
                "attinhcount:int4",
                "attcollation:oid",
                "attacl:text[]",
                "attoptions:text[]",
            ])
        }
        ("pg_catalog", "pg_attrdef") => {
            for t in relations() {
                for (num, c) in visible_columns(t) {
                    if let Some(d) = column_default_text(c) {
                        rows.push(vec![
                            int(CONSTRAINT_OID_BASE / 2 + (i64::from(t.id) << 8) + num),
                            int(table_oid(t)),
                            int(num),
                            text(d),
                        ]);
                    }
                }
            }
            columns(&["oid:oid", "adrelid:oid", "adnum:int2", "adbin"])
        }
        ("pg_catalog", "pg_index") => {
            for t in relations() {
                for i in visible_indexes(t) {
                    let keys: Vec<i64> = i
                        .columns
                        .iter()
                        .map(|c| attnum(t, *c).unwrap_or(0))
                        .collect();
                    let options = i.directions.iter().map(|d| {
                        if *d == tardigrade_encoding::Direction::Descending {
                            3
                        } else {
                            0
                        }
                    });
                    let key_types = i.columns.iter().map(|c| {
                        t.columns
                            .iter()
                            .find(|col| col.id == *c)
                            .map_or(SqlType::Text, |col| col.ty)
                    });
                    let classes: Vec<i64> =
                        key_types.clone().map(|ty| btree_opclass(ty).0).collect();
                    let collations: Vec<i64> = key_types
                        .map(|ty| if ty.is_string() { 100 } else { 0 })
                        .collect();
                    rows.push(vec![
                        int(index_oid(t, i)),
                        int(table_oid(t)),
                        int(keys.len() as i64),
                        int(keys.len() as i64),
                        boolean(i.unique),
                        boolean(false),
                        boolean(i.id == t.primary_index.id),
                        boolean(false),
                        boolean(true),
                        boolean(false),
                        boolean(true),
                        boolean(false),
                        boolean(true),
                        boolean(true),
                        boolean(false),
                        int2_array(keys),
                        int2_array(collations),
                        int2_array(classes),
                        // int2vector (as indkey): printed space-separated
                        // (drivers split it), subscripted from 0, an array
                        // to unnest.
                        // TODO(issue 13): indclass and indcollation as
                        // oidvector (int2[] / oid[] here).
                        int2_array(options),
                        // PostgreSQL keeps node trees here; `pg_get_expr`
                        // reads them back as SQL, which these already are.
                        index_expressions_text(t, i).map_or(NULL, text),
                        t.index_predicate_text(i)
                            .map_or(NULL, |p| text(deparsed(p))),
                    ]);
                }
            }
            columns(&[
                "indexrelid:oid",
                "indrelid:oid",
                "indnatts:int2",
                "indnkeyatts:int2",
                "indisunique:bool",
                "indnullsnotdistinct:bool",
                "indisprimary:bool",
                "indisexclusion:bool",
                "indimmediate:bool",
                "indisclustered:bool",
                "indisvalid:bool",
                "indcheckxmin:bool",
                "indisready:bool",
                "indislive:bool",
                "indisreplident:bool",
                "indkey:int2vector",
                "indcollation:oid[]",
                "indclass:oid[]",
                "indoption:int2vector",
                "indexprs",
                "indpred",
            ])
        }
        ("pg_catalog", "pg_constraint") => {
            let by_id: HashMap<u32, &TableDesc> = tables().map(|t| (t.id, t)).collect();
            for t in relations() {
                for (n, (cname, contype, index, _, _)) in constraints(t).into_iter().enumerate() {
                    let fk = (contype == "f")
                        .then(|| t.foreign_keys.iter().find(|f| f.name == cname))
                        .flatten();
                    let check = (contype == "c")
                        .then(|| t.checks.iter().find(|c| c.name == cname))
                        .flatten();
                    let conkey: Vec<i64> = match (index, fk) {
                        (Some(i), _) => i.columns.iter().filter_map(|c| attnum(t, *c)).collect(),
                        (_, Some(f)) => f.columns.iter().filter_map(|c| attnum(t, *c)).collect(),
                        _ => Vec::new(),
                    };
                    let referenced = fk.and_then(|f| by_id.get(&f.referenced_table).copied());
                    let confkey: Option<Vec<i64>> = fk.map(|f| {
                        f.referenced_columns
                            .iter()
                            .filter_map(|c| referenced.and_then(|r| attnum(r, *c)))
                            .collect()
                    });
                    rows.push(vec![
                        int(constraint_oid(t, n)),
                        text(cname),
                        int(PUBLIC_OID),
                        text(contype),
                        boolean(false),
                        boolean(false),
                        boolean(true),
                        int(table_oid(t)),
                        int(0),
                        int(index.map_or(0, |i| index_oid(t, i))),
                        int(0),
                        int(fk.map_or(0, |f| i64::from(f.referenced_table))),
                        text(fk.map_or(" ", |f| action_code(f.on_update))),
                        text(fk.map_or(" ", |f| action_code(f.on_delete))),
                        text(if fk.is_some() { "s" } else { " " }),
                        boolean(true),
                        int(0),
                        boolean(true),
                        if conkey.is_empty() {
                            NULL
                        } else {
                            int2_array(conkey)
                        },
                        confkey.map_or(NULL, int2_array),
                        check.map_or(NULL, |c| text(c.expr.clone())),
                    ]);
                }
            }
            columns(&[
                "oid:oid",
                "conname:name",
                "connamespace:oid",
                "contype:char",
                "condeferrable:bool",
                "condeferred:bool",
                "convalidated:bool",
                "conrelid:oid",
                "contypid:oid",
                "conindid:oid",
                "conparentid:oid",
                "confrelid:oid",
                "confupdtype:char",
                "confdeltype:char",
                "confmatchtype:char",
                "conislocal:bool",
                "coninhcount:int4",
                "connoinherit:bool",
                "conkey:int2[]",
                "confkey:int2[]",
                "conbin",
            ])
        }
        ("pg_catalog", "pg_type") => {
            for (oid, tname, ty, len, category) in types() {
                let array = ty.map(|t| i64::from(SqlType::array_of(t).oid()));
                rows.push(type_row(
                    oid,
                    tname,
                    len,
                    category,
                    0,
                    array.unwrap_or(0),
                    ty,
                ));
                if let (Some(t), Some(array_oid)) = (ty, array) {
                    rows.push(type_row(
                        array_oid,
                        &array_type_name(tname),
                        -1,
                        "A",
                        oid,
                        0,
                        Some(SqlType::array_of(t)),
                    ));
                }
            }
            columns(&[
                "oid:oid",
                "typname:name",
                "typnamespace:oid",
                "typowner:oid",
                "typlen:int2",
                "typbyval:bool",
                "typtype:char",
                "typcategory:char",
                "typispreferred:bool",
                "typisdefined:bool",
                "typdelim:char",
                "typrelid:oid",
                "typelem:oid",
                "typarray:oid",
                "typinput",
                "typoutput",
                "typreceive",
                "typsend",
                "typalign:char",
                "typstorage:char",
                "typnotnull:bool",
                "typbasetype:oid",
                "typtypmod:int4",
                "typndims:int4",
                "typcollation:oid",
                "typdefault",
            ])
        }
        ("pg_catalog", "pg_database") => {
            for d in &s.databases {
                rows.push(vec![
                    int(i64::from(d.id)),
                    text(&d.name),
                    int(BOOTSTRAP_ROLE.0),
                    int(UTF8_ENCODING),
                    text("c"),
                    boolean(false),
                    boolean(true),
                    int(-1),
                    int(1663),
                    text("C.UTF-8"),
                    text("C.UTF-8"),
                    NULL,
                    NULL,
                    NULL,
                ]);
            }
            columns(&[
                "oid:oid",
                "datname:name",
                "datdba:oid",
                "encoding:int4",
                "datlocprovider:char",
                "datistemplate:bool",
                "datallowconn:bool",
                "datconnlimit:int4",
                "dattablespace:oid",
                "datcollate",
                "datctype",
                "daticulocale",
                "datcollversion",
                "datacl:text[]",
            ])
        }
        ("pg_catalog", "pg_roles" | "pg_authid") => {
            rows.push(vec![
                int(BOOTSTRAP_ROLE.0),
                text(BOOTSTRAP_ROLE.1),
                boolean(true),
                boolean(true),
                boolean(true),
                boolean(true),
                boolean(true),
                // The bootstrap role can do everything, like PostgreSQL's.
                boolean(true),
                boolean(true),
                int(-1),
                text("********"),
                NULL,
                NULL,
            ]);
            columns(&[
                "oid:oid",
                "rolname:name",
                "rolsuper:bool",
                "rolinherit:bool",
                "rolcreaterole:bool",
                "rolcreatedb:bool",
                "rolcanlogin:bool",
                "rolreplication:bool",
                "rolbypassrls:bool",
                "rolconnlimit:int4",
                "rolpassword",
                "rolvaliduntil:timestamptz",
                "rolconfig:text[]",
            ])
        }
        ("pg_catalog", "pg_user") => {
            rows.push(vec![
                text(BOOTSTRAP_ROLE.1),
                int(BOOTSTRAP_ROLE.0),
                boolean(true),
                boolean(true),
                boolean(false),
                boolean(true),
                text("********"),
                NULL,
                NULL,
            ]);
            columns(&[
                "usename:name",
                "usesysid:oid",
                "usecreatedb:bool",
                "usesuper:bool",
                "userepl:bool",
                "usebypassrls:bool",
                "passwd",
                "valuntil:timestamptz",
                "useconfig:text[]",
            ])
        }
        ("pg_catalog", "pg_auth_members") => columns(&[
            "oid:oid",
            "roleid:oid",
            "member:oid",
            "grantor:oid",
            "admin_option:bool",
        ]),
        ("pg_catalog", "pg_tablespace") => {
            rows.push(vec![
                int(1663),
                text("pg_default"),
                int(BOOTSTRAP_ROLE.0),
                NULL,
                NULL,
            ]);
            columns(&[
                "oid:oid",
                "spcname:name",
                "spcowner:oid",
                "spcacl:text[]",
                "spcoptions:text[]",
            ])
        }
        ("pg_catalog", "pg_tables") => {
            for t in relations().filter(|t| !t.is_view()) {
                rows.push(vec![
                    text("public"),
                    text(&t.name),
                    text(BOOTSTRAP_ROLE.1),
                    NULL,
                    boolean(!visible_indexes(t).is_empty()),
                    boolean(false),
                    boolean(false),
                    boolean(false),
                ]);
            }
            columns(&[
                "schemaname:name",
                "tablename:name",
                "tableowner:name",
                "tablespace:name",
                "hasindexes:bool",
                "hasrules:bool",
                "hastriggers:bool",
                "rowsecurity:bool",
            ])
        }
        ("pg_catalog", "pg_views") => {
            for t in tables().filter(|t| t.is_view()) {
                rows.push(vec![
                    text("public"),
                    text(&t.name),
                    text(BOOTSTRAP_ROLE.1),
                    text(t.view_query.clone().unwrap_or_default()),
                ]);
            }
            columns(&[
                "schemaname:name",
                "viewname:name",
                "viewowner:name",
                "definition",
            ])
        }
        ("pg_catalog", "pg_indexes") => {
            for t in relations() {
                for i in visible_indexes(t) {
                    rows.push(vec![
                        text("public"),
                        text(&t.name),
                        text(&i.name),
                        NULL,
                        text(index_definition(t, i)),
                    ]);
                }
            }
            columns(&[
                "schemaname:name",
                "tablename:name",
                "indexname:name",
                "tablespace:name",
                "indexdef",
            ])
        }
        ("pg_catalog", "pg_sequence") => {
            for t in tables() {
                if let Some(seq) = &t.sequence {
                    rows.push(vec![
                        int(table_oid(t)),
                        int(20),
                        int(seq.start),
                        int(seq.increment),
                        int(seq.max_value),
                        int(seq.min_value),
                        int(1),
                        boolean(seq.cycle),
                    ]);
                }
            }
            columns(&[
                "seqrelid:oid",
                "seqtypid:oid",
                "seqstart:int8",
                "seqincrement:int8",
                "seqmax:int8",
                "seqmin:int8",
                "seqcache:int8",
                "seqcycle:bool",
            ])
        }
        ("pg_catalog", "pg_sequences") => {
            for t in tables() {
                if let Some(seq) = &t.sequence {
                    rows.push(vec![
                        text("public"),
                        text(&t.name),
                        text(BOOTSTRAP_ROLE.1),
                        text("bigint"),
                        int(seq.start),
                        int(seq.min_value),
                        int(seq.max_value),
                        int(seq.increment),
                        boolean(seq.cycle),
                        int(1),
                        NULL,
                    ]);
                }
            }
            columns(&[
                "schemaname:name",
                "sequencename:name",
                "sequenceowner:name",
                "data_type",
                "start_value:int8",
                "min_value:int8",
                "max_value:int8",
                "increment_by:int8",
                "cycle:bool",
                "cache_size:int8",
                "last_value:int8",
            ])
        }
        // Catalogs of things Tardigrade does not have (yet): empty, with
        // the columns clients read.
        ("pg_catalog", "pg_depend") => columns(&[
            "classid:oid",
            "objid:oid",
            "objsubid:int4",
            "refclassid:oid",
            "refobjid:oid",
            "refobjsubid:int4",
            "deptype:char",
        ]),
        ("pg_catalog", "pg_description") => {
            rows = descriptions(s);
            columns(&["objoid:oid", "classoid:oid", "objsubid:int4", "description"])
        }
        ("pg_catalog", "pg_shdescription") => {
            for d in &s.databases {
                if let Some(c) = &d.comment {
                    rows.push(vec![int(i64::from(d.id)), int(PG_DATABASE_OID), text(c)]);
                }
            }
            columns(&["objoid:oid", "classoid:oid", "description"])
        }
        ("pg_catalog", "pg_enum") => columns(&[
            "oid:oid",
            "enumtypid:oid",
            "enumsortorder:float4",
            "enumlabel:name",
        ]),
        ("pg_catalog", "pg_extension") => columns(&[
            "oid:oid",
            "extname:name",
            "extowner:oid",
            "extnamespace:oid",
            "extrelocatable:bool",
            "extversion",
        ]),
        ("pg_catalog", "pg_inherits") => columns(&[
            "inhrelid:oid",
            "inhparent:oid",
            "inhseqno:int4",
            "inhdetachpending:bool",
        ]),
        ("pg_catalog", "pg_matviews") => columns(&[
            "schemaname:name",
            "matviewname:name",
            "matviewowner:name",
            "tablespace:name",
            "hasindexes:bool",
            "ispopulated:bool",
            "definition",
        ]),
        ("pg_catalog", "pg_policy") => columns(&[
            "oid:oid",
            "polname:name",
            "polrelid:oid",
            "polcmd:char",
            "polpermissive:bool",
            "polroles:oid[]",
            "polqual",
            "polwithcheck",
        ]),
        ("pg_catalog", "pg_proc") => columns(&[
            "oid:oid",
            "proname:name",
            "pronamespace:oid",
            "proowner:oid",
            "prolang:oid",
            "prokind:char",
            "proretset:bool",
            "provolatile:char",
            "pronargs:int2",
            "prorettype:oid",
            "proargtypes:oid[]",
            "proargnames:text[]",
            "prosrc",
        ]),
        // No range types.
        ("pg_catalog", "pg_range") => columns(&[
            "rngtypid:oid",
            "rngsubtype:oid",
            "rngmultitypid:oid",
            "rngcollation:oid",
            "rngsubopc:oid",
            "rngcanonical",
            "rngsubdiff",
        ]),
        ("pg_catalog", "pg_publication") => columns(&[
            "oid:oid",
            "pubname:name",
            "pubowner:oid",
            "puballtables:bool",
        ]),
        ("pg_catalog", "pg_publication_namespace") => {
            columns(&["oid:oid", "pnpubid:oid", "pnnspid:oid"])
        }
        ("pg_catalog", "pg_publication_rel") => columns(&[
            "oid:oid",
            "prpubid:oid",
            "prrelid:oid",
            "prqual",
            "prattrs:int2[]",
        ]),
        ("pg_catalog", "pg_statistic_ext") => columns(&[
            "oid:oid",
            "stxrelid:oid",
            "stxname:name",
            "stxnamespace:oid",
            "stxowner:oid",
            "stxstattarget:int4",
            "stxkeys:int2[]",
            "stxkind:text[]",
        ]),
        ("pg_catalog", "pg_trigger") => columns(&[
            "oid:oid",
            "tgrelid:oid",
            "tgname:name",
            "tgfoid:oid",
            "tgtype:int2",
            "tgenabled:char",
            "tgisinternal:bool",
        ]),
        ("information_schema", "schemata") => {
            for n in ["information_schema", "pg_catalog", "public"] {
                rows.push(vec![
                    text(&s.database),
                    text(n),
                    text(BOOTSTRAP_ROLE.1),
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                ]);
            }
            columns(&[
                "catalog_name",
                "schema_name",
                "schema_owner",
                "default_character_set_catalog",
                "default_character_set_schema",
                "default_character_set_name",
                "sql_path",
            ])
        }
        ("information_schema", "tables") => {
            for t in relations() {
                rows.push(vec![
                    text(&s.database),
                    text("public"),
                    text(&t.name),
                    text(if t.is_view() { "VIEW" } else { "BASE TABLE" }),
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    NULL,
                    text(if t.is_view() { "NO" } else { "YES" }),
                    text("NO"),
                    NULL,
                ]);
            }
            columns_after(
                &[TABLE_KEY],
                &[
                    "table_type",
                    "self_referencing_column_name",
                    "reference_generation",
                    "user_defined_type_catalog",
                    "user_defined_type_schema",
                    "user_defined_type_name",
                    "is_insertable_into",
                    "is_typed",
                    "commit_action",
                ],
            )
        }
        ("information_schema", "columns") => {
            for t in relations() {
                for (num, c) in visible_columns(t) {
                    rows.push(information_schema_column(&s.database, t, num, c));
                }
            }
            columns_after(
                &[TABLE_KEY],
                &[
                    "column_name",
                    "ordinal_position:int4",
                    "column_default",
                    "is_nullable",
                    "data_type",
                    "character_maximum_length:int4",
                    "character_octet_length:int4",
                    "numeric_precision:int4",
                    "numeric_precision_radix:int4",
                    "numeric_scale:int4",
                    "datetime_precision:int4",
                    "interval_type",
                    "udt_catalog",
                    "udt_schema",
                    "udt_name",
                    "is_identity",
                    "identity_generation",
                    "is_generated",
                    "generation_expression",
                    "is_updatable",
                ],
            )
        }
        ("information_schema", "views") => {
            for t in tables().filter(|t| t.is_view()) {
                rows.push(vec![
                    text(&s.database),
                    text("public"),
                    text(&t.name),
                    text(t.view_query.clone().unwrap_or_default()),
                    text("NONE"),
                    text("NO"),
                    text("NO"),
                ]);
            }
            columns_after(
                &[TABLE_KEY],
                &[
                    "view_definition",
                    "check_option",
                    "is_updatable",
                    "is_insertable_into",
                ],
            )
        }
        ("information_schema", "sequences") => {
            for t in tables() {
                if let Some(seq) = &t.sequence {
                    rows.push(vec![
                        text(&s.database),
                        text("public"),
                        text(&t.name),
                        text("bigint"),
                        int(64),
                        int(2),
                        int(0),
                        text(seq.start.to_string()),
                        text(seq.min_value.to_string()),
                        text(seq.max_value.to_string()),
                        text(seq.increment.to_string()),
                        text(if seq.cycle { "YES" } else { "NO" }),
                    ]);
                }
            }
            columns(&[
                "sequence_catalog",
                "sequence_schema",
                "sequence_name",
                "data_type",
                "numeric_precision:int4",
                "numeric_precision_radix:int4",
                "numeric_scale:int4",
                "start_value",
                "minimum_value",
                "maximum_value",
                "increment",
                "cycle_option",
            ])
        }
        ("information_schema", "table_constraints") => {
            for t in relations() {
                for (cname, contype, _, _, _) in constraints(t) {
                    let kind = match contype {
                        "p" => "PRIMARY KEY",
                        "u" => "UNIQUE",
                        "f" => "FOREIGN KEY",
                        _ => "CHECK",
                    };
                    rows.push(vec![
                        text(&s.database),
                        text("public"),
                        text(cname),
                        text(&s.database),
                        text("public"),
                        text(&t.name),
                        text(kind),
                        text("NO"),
                        text("NO"),
                        text("YES"),
                    ]);
                }
            }
            columns_after(
                &[CONSTRAINT_KEY, TABLE_KEY],
                &[
                    "constraint_type",
                    "is_deferrable",
                    "initially_deferred",
                    "enforced",
                ],
            )
        }
        ("information_schema", "key_column_usage") => {
            let by_id: HashMap<u32, &TableDesc> = tables().map(|t| (t.id, t)).collect();
            for t in relations() {
                for (cname, contype, index, _, _) in constraints(t) {
                    let fk = t
                        .foreign_keys
                        .iter()
                        .find(|f| f.name == cname && contype == "f");
                    let cols: Vec<u32> = match (index, fk) {
                        (Some(i), _) => i.columns.clone(),
                        (_, Some(f)) => f.columns.clone(),
                        _ => continue,
                    };
                    for (k, id) in cols.iter().enumerate() {
                        let Some(c) = t.column_by_id(*id) else {
                            continue;
                        };
                        let unique_position = fk.and_then(|f| {
                            let r = by_id.get(&f.referenced_table)?;
                            let rid = f.referenced_columns.get(k)?;
                            let pk = &r.primary_index.columns;
                            pk.iter().position(|p| p == rid).map(|p| int(p as i64 + 1))
                        });
                        rows.push(vec![
                            text(&s.database),
                            text("public"),
                            text(&cname),
                            text(&s.database),
                            text("public"),
                            text(&t.name),
                            text(&c.name),
                            int(k as i64 + 1),
                            unique_position.unwrap_or(NULL),
                        ]);
                    }
                }
            }
            columns_after(
                &[CONSTRAINT_KEY, TABLE_KEY],
                &[
                    "column_name",
                    "ordinal_position:int4",
                    "position_in_unique_constraint:int4",
                ],
            )
        }
        ("information_schema", "referential_constraints") => {
            let by_id: HashMap<u32, &TableDesc> = tables().map(|t| (t.id, t)).collect();
            for t in relations() {
                for f in &t.foreign_keys {
                    let unique = by_id
                        .get(&f.referenced_table)
                        .map(|r| r.primary_index.name.clone());
                    rows.push(vec![
                        text(&s.database),
                        text("public"),
                        text(&f.name),
                        text(&s.database),
                        text("public"),
                        unique.map_or(NULL, text),
                        text("NONE"),
                        text(action_name(f.on_update)),
                        text(action_name(f.on_delete)),
                    ]);
                }
            }
            columns_after(
                &[CONSTRAINT_KEY],
                &[
                    "unique_constraint_catalog",
                    "unique_constraint_schema",
                    "unique_constraint_name",
                    "match_option",
                    "update_rule",
                    "delete_rule",
                ],
            )
        }
        ("information_schema", "check_constraints") => {
            for t in relations() {
                for c in &t.checks {
                    rows.push(vec![
                        text(&s.database),
                        text("public"),
                        text(&c.name),
                        text(c.expr.clone()),
                    ]);
                }
            }
            columns_after(&[CONSTRAINT_KEY], &["check_clause"])
        }
        ("information_schema", "routines") => columns(&[
            "specific_catalog",
            "specific_schema",
            "specific_name",
            "routine_catalog",
            "routine_schema",
            "routine_name",
            "routine_type",
            "data_type",
        ]),
        _ => Columns::new(),
    };
    (cols, rows)
}

fn class_row(
    oid: i64,
    name: &str,
    kind: &str,
    am: i64,
    natts: i64,
    checks: i64,
    has_index: bool,
) -> Vec<Value> {
    vec![
        int(oid),
        text(name),
        int(PUBLIC_OID),
        int(0),
        int(0),
        int(BOOTSTRAP_ROLE.0),
        int(am),
        int(oid),
        int(0),
        int(0),
        Value::Float(-1.0),
        int(0),
        int(0),
        boolean(has_index),
        boolean(false),
        text("p"),
        text(kind),
        int(natts),
        int(checks),
        boolean(false),
        boolean(false),
        boolean(false),
        boolean(false),
        boolean(false),
        boolean(true),
        text("d"),
        boolean(false),
        int(0),
        int(0),
        int(0),
        NULL,
        NULL,
        NULL,
    ]
}

fn type_row(
    oid: i64,
    name: &str,
    len: i64,
    category: &str,
    elem: i64,
    array: i64,
    ty: Option<SqlType>,
) -> Vec<Value> {
    let io = if elem != 0 { "array" } else { name };
    vec![
        int(oid),
        text(name),
        int(PG_CATALOG_OID),
        int(BOOTSTRAP_ROLE.0),
        int(len),
        boolean(len > 0 && len <= 8),
        text("b"),
        text(category),
        boolean(matches!(
            name,
            "text" | "float8" | "bool" | "timestamptz" | "oid"
        )),
        boolean(true),
        text(","),
        int(0),
        int(elem),
        int(array),
        text(format!("{io}_in")),
        text(format!("{io}_out")),
        text(format!("{io}_recv")),
        text(format!("{io}_send")),
        text(if len == 8 { "d" } else { "i" }),
        text(if len > 0 { "p" } else { "x" }),
        boolean(false),
        int(0),
        int(-1),
        int(0),
        int(if ty.is_some_and(SqlType::is_string) {
            DEFAULT_COLLATION
        } else {
            0
        }),
        NULL,
    ]
}

fn information_schema_column(
    database: &str,
    t: &TableDesc,
    num: i64,
    c: &ColumnDesc,
) -> Vec<Value> {
    let ty = c.ty;
    let data_type = match ty {
        SqlType::Array(_) => "ARRAY".to_string(),
        other => {
            // Without modifiers: `character varying`, `numeric`.
            let name = pg_type_name(other);
            name.split('(').next().unwrap_or(&name).to_string()
        }
    };
    let (char_len, octet_len) = match ty {
        SqlType::Varchar(Some(n)) | SqlType::Char(n) => (int(i64::from(n)), int(i64::from(n) * 4)),
        SqlType::Text | SqlType::Varchar(None) => (NULL, int(1 << 30)),
        _ => (NULL, NULL),
    };
    let (precision, radix, scale) = match ty {
        SqlType::Int2 => (int(16), int(2), int(0)),
        SqlType::Int4 => (int(32), int(2), int(0)),
        SqlType::Int8 => (int(64), int(2), int(0)),
        SqlType::Float4 => (int(24), int(2), NULL),
        SqlType::Float8 => (int(53), int(2), NULL),
        SqlType::Decimal(Some((p, s))) => (int(i64::from(p)), int(10), int(i64::from(s))),
        SqlType::Decimal(None) => (NULL, int(10), NULL),
        _ => (NULL, NULL, NULL),
    };
    let datetime = match ty {
        SqlType::Date => int(0),
        SqlType::Time | SqlType::Timestamp | SqlType::TimestampTz | SqlType::Interval => int(6),
        _ => NULL,
    };
    let udt = match ty {
        SqlType::Array(e) => format!("_{}", udt_name(*e)),
        other => udt_name(other).to_string(),
    };
    vec![
        text(database),
        text("public"),
        text(&t.name),
        text(&c.name),
        int(num),
        // A generated column's expression is not its default here.
        c.default
            .clone()
            .filter(|_| c.generated.is_none())
            .map_or(NULL, text),
        text(if c.nullable { "YES" } else { "NO" }),
        text(data_type),
        char_len,
        octet_len,
        precision,
        radix,
        scale,
        datetime,
        NULL,
        text(database),
        text("pg_catalog"),
        text(udt),
        text(if c.is_identity() { "YES" } else { "NO" }),
        match c.generated {
            Some(Generated::IdentityAlways) => text("ALWAYS"),
            Some(Generated::IdentityByDefault) => text("BY DEFAULT"),
            _ => NULL,
        },
        text(if c.generation_expr().is_some() {
            "ALWAYS"
        } else {
            "NEVER"
        }),
        c.generation_expr().map_or(NULL, text),
        text(if t.is_view() { "NO" } else { "YES" }),
    ]
}

/// What `pg_attrdef` holds for a column: its DEFAULT expression, or a
/// generated column's expression; nothing for an identity column.
fn column_default_text(c: &ColumnDesc) -> Option<String> {
    match &c.generated {
        Some(Generated::Stored(e) | Generated::IndexExpression(e)) => Some(e.clone()),
        Some(Generated::IdentityAlways | Generated::IdentityByDefault) => None,
        None => c.default.clone(),
    }
}

/// The short type name (`pg_type.typname`) of a column type.
fn udt_name(ty: SqlType) -> &'static str {
    match ty {
        SqlType::Unknown => "unknown",
        SqlType::Bool => "bool",
        SqlType::Int2 => "int2",
        SqlType::Int4 => "int4",
        SqlType::Int8 => "int8",
        SqlType::Float4 => "float4",
        SqlType::Float8 => "float8",
        SqlType::Decimal(_) => "numeric",
        SqlType::Text => "text",
        SqlType::Varchar(_) => "varchar",
        SqlType::Char(_) => "bpchar",
        SqlType::Bytes => "bytea",
        SqlType::Date => "date",
        SqlType::Time => "time",
        SqlType::Timestamp => "timestamp",
        SqlType::TimestampTz => "timestamptz",
        SqlType::Interval => "interval",
        SqlType::Uuid => "uuid",
        SqlType::Jsonb => "jsonb",
        SqlType::Oid => "oid",
        SqlType::RegClass => "regclass",
        SqlType::RegType => "regtype",
        SqlType::Int2Vector => "int2vector",
        SqlType::Inet => "inet",
        SqlType::Array(_) => "anyarray",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let mut t = TableDesc::new(104, 100, "users");
        t.columns = vec![
            ColumnDesc {
                id: 1,
                name: "id".into(),
                ty: SqlType::Int8,
                nullable: false,
                default: None,
                hidden: false,
                comment: None,
                generated: None,
            },
            ColumnDesc {
                id: 2,
                name: "email".into(),
                ty: SqlType::Varchar(Some(40)),
                nullable: true,
                default: Some("'x'".into()),
                hidden: false,
                comment: None,
                generated: None,
            },
        ];
        t.primary_index.columns = vec![1];
        t.primary_index.directions = vec![tardigrade_encoding::Direction::Ascending];
        Snapshot {
            database: "defaultdb".into(),
            databases: vec![DatabaseDesc::new(100, "defaultdb")],
            tables: vec![Arc::new(t)],
        }
    }

    #[test]
    fn every_table_has_rows_as_wide_as_its_columns() {
        let s = snapshot();
        for &table in TABLES {
            let d = descriptor(table, &s).expect("descriptor");
            assert!(!d.columns.is_empty(), "{table:?} has no columns");
            let rows = d.virtual_rows.as_ref().expect("rows");
            for r in rows.iter() {
                assert_eq!(r.len(), d.columns.len(), "{table:?}");
            }
        }
    }

    #[test]
    fn a_table_appears_in_pg_class_with_its_index_and_columns() {
        let s = snapshot();
        let class = descriptor(("pg_catalog", "pg_class"), &s).expect("pg_class");
        let rows = class.virtual_rows.expect("rows");
        let names: Vec<&Value> = rows.iter().map(|r| &r[1]).collect();
        assert_eq!(names, [&text("users"), &text("users_pkey")]);
        let cols = descriptor(("information_schema", "columns"), &s).expect("columns");
        let rows = cols.virtual_rows.expect("rows");
        assert_eq!(rows[1][3], text("email"));
        assert_eq!(rows[1][7], text("character varying"));
        assert_eq!(rows[1][8], int(40));
        assert_eq!(lookup(None, "pg_class"), Some(("pg_catalog", "pg_class")));
        assert_eq!(lookup(None, "tables"), None);
    }
}
