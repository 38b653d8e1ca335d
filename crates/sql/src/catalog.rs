//! The catalog: descriptors for databases, tables (with their columns, indexes and
//! constraints), sequences and views, stored in the system key space under numeric
//! ids. Names never appear in data keys — ids do.
//!
//! ## Storage
//!
//! Everything lives in the system span (`\x04…`, the range that holds liveness and
//! the id generators, replicated 5 ways when the cluster is large enough):
//!
//! | key                                        | value                                   |
//! |--------------------------------------------|-----------------------------------------|
//! | `/System/"sql-ns"/<parent id>/"<name>"`    | the id (4 bytes big-endian)             |
//! | `/System/"sql-desc"/<id>`                  | the descriptor ([`encode_descriptor`])  |
//! | `/System/"sql-version"`                    | the catalog version (an `Increment`)    |
//! | `/System/"desc-idgen"`                     | the id generator (an `Increment`)       |
//!
//! Databases have parent id 0; tables, views and sequences have their database's
//! id as parent (the `public` schema is implicit: one schema per database). User
//! ids start at [`FIRST_USER_ID`]; `defaultdb` and `postgres` have the fixed ids 50
//! and 51, so bootstrapping is idempotent when several nodes start at once.
//! Sequence values live in the sequence's own table span (`/Table/<id>/1`), a
//! counter updated with `Increment` outside any transaction (like PostgreSQL,
//! `nextval` is not rolled back).
//!
//! ## Consistency across nodes
//!
//! Every schema change increments the catalog version key in its transaction.
//! Every transaction that looks up a name or a descriptor first reads the version
//! key *through its own transaction* (once per transaction: the read is part of
//! the transaction's read set, so its value cannot change under a serializable
//! transaction). Descriptors are cached per node under the version they were read
//! at; a lookup whose transaction saw the cache's version is served from memory,
//! one whose transaction saw a newer version resets the cache, one that saw an
//! older version reads through the transaction without touching the cache. So
//! a statement on any node sees a schema change committed anywhere as soon as its
//! transaction starts after the commit, DDL and DML are serializable with respect
//! to each other (a DDL transaction writes the version key every reader reads),
//! and the steady-state cost is one point read per transaction.
//!
//! A transaction that changed the catalog reads descriptors through itself (its
//! own uncommitted writes) and never fills the cache.
//!
//! ## Index states
//!
//! An index is public or write-only ([`IndexState`]); write-only ones live in
//! [`TableDesc::mutations`] while [`crate::schemachange`] builds them, so that
//! everything reading `indexes` sees only complete ones. Since every
//! transaction reads the version key, a schema change that moves an index
//! from one state to the next is just a committed transaction: no two-version
//! invariant or lease wait is needed between the steps.
//!
//! TODO(issue 4): descriptor leases (CockroachDB's two-version invariant) so that
//! DDL does not conflict with every concurrent transaction through the version key,
//! and the version read can be skipped on a warm node.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use tardigrade_encoding::{Direction, keys};
use tardigrade_kv::{Db, Txn};
use tardigrade_kvpb::codec::{ByteReader, put_bytes};
use tardigrade_kvpb::{ErrorDetail, KvError, Request, TxnId};
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};

pub type DescId = u32;
pub type ColumnId = u32;
pub type IndexId = u32;

/// Computes a table's stored generated columns (see
/// [`Catalog::fill_generated_columns`]).
pub trait GeneratedColumns: Send + Sync {
    /// Sets every stored generated column of each row from its other values.
    fn fill(&self, table: &TableDesc, rows: &mut [Vec<Value>]) -> SqlResult<()>;
}

/// Whether stored expression text is a single function call (`lower(name)`).
fn is_function_call(text: &str) -> bool {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .is_ok_and(|e| matches!(e, sqlparser::ast::Expr::Function(_)))
}

/// Stored expression text as PostgreSQL's deparser prints it at the top
/// level: operator expressions in parentheses (`(credit > 5)`), function
/// calls as they are.
///
/// TODO(issue 13): the rest of PostgreSQL's deparsed form (the implicit
/// casts it prints, `'x'::text`).
pub fn deparsed(text: &str) -> String {
    if is_function_call(text) {
        text.to_string()
    } else {
        format!("({text})")
    }
}

/// The id of `defaultdb`.
pub const DEFAULTDB_ID: DescId = 50;
/// The id of `postgres`.
pub const POSTGRES_ID: DescId = 51;
/// The first id handed out by the id generator.
pub const FIRST_USER_ID: DescId = 100;
/// The id of the primary index of every table.
pub const PRIMARY_INDEX_ID: IndexId = 1;

/// A column of a table. `default` is the SQL text of the DEFAULT expression
/// (`unique_rowid()` for the hidden `rowid`, `nextval('t_c_seq')` for SERIAL).
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnDesc {
    pub id: ColumnId,
    pub name: String,
    pub ty: SqlType,
    pub nullable: bool,
    pub default: Option<String>,
    /// Not shown by `SELECT *` (the implicit `rowid`).
    pub hidden: bool,
    /// `COMMENT ON COLUMN` (`pg_description`, objsubid = attnum).
    pub comment: Option<String>,
    /// An identity column's kind, or a generated column's expression.
    pub generated: Option<Generated>,
}

/// How a column's value is generated beyond a plain DEFAULT.
#[derive(Clone, Debug, PartialEq)]
pub enum Generated {
    /// `GENERATED ALWAYS AS IDENTITY`: values come from the column's
    /// sequence (its `default`); a statement may not give one (428C9).
    IdentityAlways,
    /// `GENERATED BY DEFAULT AS IDENTITY`: the sequence fills the value
    /// when a statement gives none.
    IdentityByDefault,
    /// `GENERATED ALWAYS AS (expr) STORED`: the SQL text of an expression
    /// over the row's other columns, computed on every write and stored.
    Stored(String),
    /// A column an index made for itself (hidden, and not in `SELECT *`,
    /// `pg_attribute` or `information_schema`): the value of an expression
    /// the index is keyed on (`CREATE INDEX ON t (lower(name))`), or the
    /// boolean predicate of a partial index ([`IndexDesc::predicate`]).
    /// It is computed and stored like [`Generated::Stored`], so every write
    /// path keeps it current; the planner matches the expression in a
    /// query's filters to the column (`plan::index`).
    ///
    /// TODO(issue 13): CockroachDB keeps these columns virtual (computed
    /// when read, never stored in the primary row); here they cost their
    /// bytes in every row, and adding one rewrites the table's rows in the
    /// index build's first transaction.
    IndexExpression(String),
}

impl ColumnDesc {
    /// An identity column (`GENERATED … AS IDENTITY`).
    pub fn is_identity(&self) -> bool {
        matches!(
            self.generated,
            Some(Generated::IdentityAlways | Generated::IdentityByDefault)
        )
    }

    /// A stored generated column's expression (an index's own column's too).
    pub fn generation_expr(&self) -> Option<&str> {
        match &self.generated {
            Some(Generated::Stored(e) | Generated::IndexExpression(e)) => Some(e),
            _ => None,
        }
    }

    /// The expression of a column an index made for itself
    /// ([`Generated::IndexExpression`]).
    pub fn index_expression(&self) -> Option<&str> {
        match &self.generated {
            Some(Generated::IndexExpression(e)) => Some(e),
            _ => None,
        }
    }
}

/// An index. The primary index has id 1 and holds every column; a secondary index
/// holds its key columns, the primary key columns (suffix, or in the value when
/// unique) and its `STORING` columns.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexDesc {
    pub id: IndexId,
    pub name: String,
    pub unique: bool,
    pub columns: Vec<ColumnId>,
    pub directions: Vec<Direction>,
    pub storing: Vec<ColumnId>,
    /// [`IndexState::Public`] for the primary index and `TableDesc::indexes`,
    /// [`IndexState::WriteOnly`] for `TableDesc::mutations`.
    pub state: IndexState,
    /// `COMMENT ON INDEX` (the index's `pg_class` entry).
    pub comment: Option<String>,
    /// `COMMENT ON CONSTRAINT` of the PRIMARY KEY or UNIQUE constraint the
    /// index stands for (its `pg_constraint` entry).
    pub constraint_comment: Option<String>,
    /// A partial index (`CREATE INDEX … WHERE p`): the column holding `p`
    /// for each row ([`Generated::IndexExpression`]). The index has an
    /// entry only for the rows where it is true, so only a query whose
    /// filter implies `p` may read it, and a unique one constrains only
    /// those rows.
    pub predicate: Option<ColumnId>,
}

impl IndexDesc {
    /// A partial index: it holds only the rows its predicate accepts, so it
    /// can neither stand for the whole table (foreign keys, lookups,
    /// uniqueness proofs) nor be read without its predicate implied.
    pub fn is_partial(&self) -> bool {
        self.predicate.is_some()
    }

    /// Whether `row` (in the layout of `table`, the index's table) has an
    /// entry in this index: always, unless the index is partial and its
    /// predicate is not true for the row.
    pub fn holds_row(&self, table: &TableDesc, row: &[Value]) -> bool {
        match self.predicate {
            None => true,
            Some(col) => table
                .column_position(col)
                .and_then(|pos| row.get(pos))
                .is_some_and(|v| matches!(v, Value::Bool(true))),
        }
    }
}

/// Where an index is in its life (CockroachDB's descriptor mutation states,
/// for additions).
///
/// An index being built online (`CREATE INDEX`, `ADD PRIMARY KEY` outside an
/// explicit transaction; see [`crate::ddl`]) is first **write-only**: every
/// write of a row (INSERT, UPDATE, DELETE, UPSERT, ON CONFLICT, foreign-key
/// cascades, COPY) maintains its entry, and a unique one rejects duplicates,
/// but nothing reads it: planning, index selection, foreign-key lookups,
/// ON CONFLICT arbiters, `SHOW INDEXES`, `SHOW CREATE` and `EXPLAIN` see only
/// public indexes. A backfill fills in the rows that existed before, then the
/// index becomes **public**.
///
/// There is no *delete-only* state. CockroachDB needs one because its nodes
/// use leased descriptors up to one version old: while some node may still
/// use version v (no index), a node writing entries under v+1 could leave an
/// entry that a v-node's DELETE never removes, so v+1 only deletes entries and
/// v+2 writes them. Here every transaction that uses a descriptor reads the
/// catalog version key through itself and every schema change writes it, so
/// a DML transaction is serialized either before the change that added the
/// index (it sees no index, and the backfill, which starts after that change
/// commits, sees its rows) or after it (it maintains the index): no
/// transaction ever runs with a stale descriptor, so no writer can skip an
/// entry another one wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexState {
    /// Read and written by every statement.
    Public,
    /// Written by DML, read by nothing but the backfill's idempotence check.
    WriteOnly,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CheckDesc {
    pub name: String,
    /// SQL text of the boolean expression over the table's columns.
    pub expr: String,
    /// `COMMENT ON CONSTRAINT`.
    pub comment: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferentialAction {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ForeignKeyDesc {
    pub name: String,
    pub columns: Vec<ColumnId>,
    pub referenced_table: DescId,
    pub referenced_columns: Vec<ColumnId>,
    pub on_delete: ReferentialAction,
    pub on_update: ReferentialAction,
    /// `COMMENT ON CONSTRAINT`.
    pub comment: Option<String>,
}

/// The options of a sequence (`TableDesc::sequence`).
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceDesc {
    pub increment: i64,
    pub start: i64,
    pub min_value: i64,
    pub max_value: i64,
    pub cycle: bool,
    /// `OWNED BY table.column` (an identity column's sequence is owned by
    /// it): the table id and column id. An owned sequence is dropped with
    /// its table or column and is what `pg_get_serial_sequence` finds.
    pub owned_by: Option<(DescId, u32)>,
}

/// A table (or a view, when `view_query` is set; or a sequence, when `sequence`
/// is set).
#[derive(Clone, Debug, PartialEq)]
pub struct TableDesc {
    pub id: DescId,
    pub parent_id: DescId,
    pub name: String,
    pub columns: Vec<ColumnDesc>,
    pub primary_index: IndexDesc,
    /// The public secondary indexes.
    pub indexes: Vec<IndexDesc>,
    /// Indexes being built online ([`IndexState::WriteOnly`]): maintained by
    /// every write, used by no read. Kept apart from `indexes` so that code
    /// reading `indexes` cannot pick an incomplete one by mistake; writers use
    /// [`TableDesc::mutations`] through `rowenc`.
    pub mutations: Vec<IndexDesc>,
    /// Set while `ADD PRIMARY KEY` is being built online: the id of the
    /// mutation that becomes the primary index. All the mutations then belong
    /// to that change (the new primary index and the re-keyed secondary
    /// indexes) and their entries are encoded as if the swap had happened
    /// ([`TableDesc::after_primary_swap`]). No other index change runs on the
    /// table meanwhile.
    pub new_primary: Option<IndexId>,
    pub checks: Vec<CheckDesc>,
    /// Foreign keys from this table.
    pub foreign_keys: Vec<ForeignKeyDesc>,
    /// Foreign keys of other tables that reference this one: (table id, fk name).
    pub referenced_by: Vec<(DescId, String)>,
    /// SQL text of a view's query; views have no indexes and no data. The view's
    /// output columns are `columns`.
    pub view_query: Option<String>,
    pub version: u64,
    pub next_column_id: ColumnId,
    pub next_index_id: IndexId,
    /// Set for sequences (which have no columns and no rows).
    pub sequence: Option<SequenceDesc>,
    /// Views whose query reads this table (DROP refuses without CASCADE).
    pub dependent_views: Vec<DescId>,
    /// For views: the tables and views the query reads.
    pub depends_on: Vec<DescId>,
    /// The rows of a virtual system table (`pg_catalog`, `information_schema`),
    /// generated for one statement ([`crate::vtable`]); such a table is never
    /// stored and has no key space.
    pub virtual_rows: Option<Arc<Vec<Vec<Value>>>>,
    /// `COMMENT ON TABLE | VIEW | SEQUENCE` (`pg_description`, objsubid 0).
    pub comment: Option<String>,
}

impl TableDesc {
    pub fn is_view(&self) -> bool {
        self.view_query.is_some()
    }

    pub fn is_sequence(&self) -> bool {
        self.sequence.is_some()
    }

    /// The position in `columns` of the column with this id.
    pub fn column_position(&self, id: ColumnId) -> Option<usize> {
        self.columns.iter().position(|c| c.id == id)
    }

    pub fn column_by_id(&self, id: ColumnId) -> Option<&ColumnDesc> {
        self.columns.iter().find(|c| c.id == id)
    }

    pub fn column_by_name(&self, name: &str) -> Option<&ColumnDesc> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The primary index (id 1) or a secondary index.
    /// How an index key column reads in DDL (`SHOW CREATE`, `pg_get_indexdef`):
    /// its name quoted by `quote`, or for a column an index made for itself,
    /// its expression.
    pub fn index_key_text(&self, id: ColumnId, quote: impl Fn(&str) -> String) -> String {
        match self.column_by_id(id) {
            Some(c) => match c.index_expression() {
                // PostgreSQL's form: a function call as it is, any other
                // expression (deparsed, so in parentheses) in parentheses.
                Some(e) if is_function_call(e) => e.to_string(),
                Some(e) => format!("({})", deparsed(e)),
                None => quote(&c.name),
            },
            None => "?".to_string(),
        }
    }

    /// Removes the columns indexes made for themselves
    /// ([`Generated::IndexExpression`]) that no index, public or being
    /// built, uses any more: those of a dropped index, or of a build that
    /// was rolled back. Their stored values stay in the rows until
    /// rewritten, ignored as a dropped column's are.
    pub fn drop_unused_index_columns(&mut self) {
        let used: HashSet<ColumnId> = std::iter::once(&self.primary_index)
            .chain(&self.indexes)
            .chain(&self.mutations)
            .flat_map(|i| i.columns.iter().copied().chain(i.predicate))
            .collect();
        self.columns
            .retain(|c| c.index_expression().is_none() || used.contains(&c.id));
    }

    /// The SQL text of a partial index's predicate.
    pub fn index_predicate_text(&self, index: &IndexDesc) -> Option<&str> {
        index
            .predicate
            .and_then(|c| self.column_by_id(c))
            .and_then(|c| c.index_expression())
    }

    pub fn index(&self, id: IndexId) -> Option<&IndexDesc> {
        if id == self.primary_index.id {
            Some(&self.primary_index)
        } else {
            self.indexes.iter().find(|i| i.id == id)
        }
    }

    pub fn index_by_name(&self, name: &str) -> Option<&IndexDesc> {
        std::iter::once(&self.primary_index)
            .chain(self.indexes.iter())
            .find(|i| i.name == name)
    }

    /// The primary index followed by the secondary ones.
    pub fn all_indexes(&self) -> impl Iterator<Item = &IndexDesc> {
        std::iter::once(&self.primary_index).chain(self.indexes.iter())
    }

    /// A write-only index being built.
    pub fn mutation(&self, id: IndexId) -> Option<&IndexDesc> {
        self.mutations.iter().find(|i| i.id == id)
    }

    /// Whether any index name — public or being built — is `name`.
    pub fn any_index_named(&self, name: &str) -> bool {
        self.all_indexes()
            .chain(self.mutations.iter())
            .any(|i| i.name == name)
    }

    /// The layout the entries of the mutations are encoded against: the table
    /// itself, or (while `ADD PRIMARY KEY` is built) the table as it will be
    /// after the swap — the new primary index, the re-keyed secondary indexes
    /// (all public there), the new key columns NOT NULL.
    pub fn mutation_layout(&self) -> std::borrow::Cow<'_, TableDesc> {
        match self.new_primary {
            None => std::borrow::Cow::Borrowed(self),
            Some(_) => std::borrow::Cow::Owned(self.after_primary_swap()),
        }
    }

    /// The table once its pending primary key change is made public (itself
    /// when there is none). The old primary and secondary indexes are gone;
    /// the old key columns stay as ordinary (hidden) columns.
    pub fn after_primary_swap(&self) -> TableDesc {
        let mut t = self.clone();
        let Some(new_pk) = self.new_primary else {
            return t;
        };
        let mut primary = None;
        let mut secondary = Vec::new();
        for m in &self.mutations {
            let mut m = m.clone();
            m.state = IndexState::Public;
            if m.id == new_pk {
                primary = Some(m);
            } else {
                secondary.push(m);
            }
        }
        if let Some(p) = primary {
            for c in &mut t.columns {
                if p.columns.contains(&c.id) {
                    c.nullable = false;
                }
            }
            t.primary_index = p;
            t.indexes = secondary;
        }
        t.mutations.clear();
        t.new_primary = None;
        t
    }

    /// Whether the primary key is the hidden `rowid`.
    pub fn has_implicit_pk(&self) -> bool {
        self.primary_index.columns.len() == 1
            && self
                .column_by_id(self.primary_index.columns[0])
                .is_some_and(|c| c.hidden)
    }

    /// A new empty table (the caller adds columns and indexes).
    pub fn new(id: DescId, parent_id: DescId, name: &str) -> TableDesc {
        TableDesc {
            id,
            parent_id,
            name: name.to_string(),
            columns: Vec::new(),
            primary_index: IndexDesc {
                id: PRIMARY_INDEX_ID,
                name: format!("{name}_pkey"),
                unique: true,
                columns: Vec::new(),
                directions: Vec::new(),
                storing: Vec::new(),
                state: IndexState::Public,
                comment: None,
                constraint_comment: None,
                predicate: None,
            },
            indexes: Vec::new(),
            mutations: Vec::new(),
            new_primary: None,
            checks: Vec::new(),
            foreign_keys: Vec::new(),
            referenced_by: Vec::new(),
            view_query: None,
            version: 1,
            next_column_id: 1,
            next_index_id: 2,
            sequence: None,
            dependent_views: Vec::new(),
            depends_on: Vec::new(),
            virtual_rows: None,
            comment: None,
        }
    }
}

/// A database.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseDesc {
    pub id: DescId,
    pub name: String,
    /// `COMMENT ON DATABASE` (`pg_shdescription`).
    pub comment: Option<String>,
    /// `COMMENT ON SCHEMA public` (each database has its own `public`):
    /// PostgreSQL's `standard public schema` until changed.
    pub public_schema_comment: Option<String>,
}

/// The comment PostgreSQL gives the `public` schema of a new database.
pub const PUBLIC_SCHEMA_COMMENT: &str = "standard public schema";

impl DatabaseDesc {
    /// A database without comments but the public schema's default one.
    pub fn new(id: DescId, name: &str) -> DatabaseDesc {
        DatabaseDesc {
            id,
            name: name.to_string(),
            comment: None,
            public_schema_comment: Some(PUBLIC_SCHEMA_COMMENT.to_string()),
        }
    }
}

/// What a descriptor key holds.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Descriptor {
    Database(DatabaseDesc),
    Table(TableDesc),
}

// ---------------------------------------------------------------------------
// Keys.

const NS_PREFIX: &[u8] = b"\x04sql-ns";
const DESC_PREFIX: &[u8] = b"\x04sql-desc";
const VERSION_KEY: &[u8] = b"\x04sql-version";

/// `/System/"sql-ns"/<parent>/"<name>"`.
pub fn namespace_key(parent: DescId, name: &str) -> Vec<u8> {
    let mut k = namespace_prefix(parent);
    tardigrade_encoding::encode_string(&mut k, name, Direction::Ascending);
    k
}

/// The prefix of every name under `parent`.
pub fn namespace_prefix(parent: DescId) -> Vec<u8> {
    let mut k = NS_PREFIX.to_vec();
    tardigrade_encoding::encode_uvarint(&mut k, parent as u64, Direction::Ascending);
    k
}

/// `/System/"sql-desc"/<id>`.
pub fn descriptor_key(id: DescId) -> Vec<u8> {
    let mut k = DESC_PREFIX.to_vec();
    tardigrade_encoding::encode_uvarint(&mut k, id as u64, Direction::Ascending);
    k
}

/// The catalog version key, incremented by every schema change.
pub fn version_key() -> Vec<u8> {
    VERSION_KEY.to_vec()
}

/// The counter holding a sequence's current value.
pub fn sequence_value_key(id: DescId) -> Vec<u8> {
    keys::index_prefix(id as u64, PRIMARY_INDEX_ID as u64)
}

// ---------------------------------------------------------------------------
// Descriptor codec: a format byte, a kind byte, then the fields in order.
//
// Format 1: no index states, no mutations (every index public). Format 2
// (written since online index builds): each index ends with its state byte,
// and a table ends with its mutations and its pending primary index id (0:
// none). Both decode; only format 2 is written, so a binary older than format
// 2 cannot read descriptors written by a newer one (refused as corrupt, never
// misread).
//
// Format 3 (written since COMMENT ON): the comments, each an optional
// string, after the fields of the object they belong to: a database's own
// and its public schema's after its name, a column's after `hidden`, an
// index's (then its constraint's) after its state, a check's and a foreign
// key's after their other fields, a table's at the very end. Formats 1 and 2
// decode without comments (a database's public schema gets PostgreSQL's
// default one).
//
// Format 4 (identity and generated columns): a column's `Generated` after
// its comment. Format 5 (OWNED BY): a sequence's owner (a flag, then the
// table and column ids) after `cycle`; older sequences decode unowned.
// Format 6 (partial indexes): an index's predicate column id (0: none)
// after its comments.

const FORMAT_1: u8 = 1;
const FORMAT_2: u8 = 2;
/// Comments.
const FORMAT_3: u8 = 3;
/// Identity and generated columns.
const FORMAT_4: u8 = 4;
/// A sequence's owner (`OWNED BY`).
const FORMAT_5: u8 = 5;
/// A partial index's predicate column.
const FORMAT_6: u8 = 6;
const FORMAT: u8 = FORMAT_6;

fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_be_bytes());
}
fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_be_bytes());
}
fn put_str(b: &mut Vec<u8>, s: &str) {
    put_bytes(b, s.as_bytes());
}
fn put_opt_str(b: &mut Vec<u8>, s: &Option<String>) {
    match s {
        None => b.push(0),
        Some(s) => {
            b.push(1);
            put_str(b, s);
        }
    }
}
fn put_ids(b: &mut Vec<u8>, ids: &[u32]) {
    put_u32(b, ids.len() as u32);
    for &i in ids {
        put_u32(b, i);
    }
}

fn corrupt(what: &str) -> SqlError {
    SqlError::internal(format!("corrupt descriptor: {what}"))
}

struct Reader<'a>(ByteReader<'a>);

impl Reader<'_> {
    fn u8(&mut self) -> SqlResult<u8> {
        self.0.u8().map_err(|e| corrupt(e.0))
    }
    fn u32(&mut self) -> SqlResult<u32> {
        self.0.u32().map_err(|e| corrupt(e.0))
    }
    fn u64(&mut self) -> SqlResult<u64> {
        self.0.u64().map_err(|e| corrupt(e.0))
    }
    fn str(&mut self) -> SqlResult<String> {
        let b = self.0.bytes().map_err(|e| corrupt(e.0))?;
        String::from_utf8(b).map_err(|_| corrupt("name is not UTF-8"))
    }
    fn opt_str(&mut self) -> SqlResult<Option<String>> {
        Ok(match self.u8()? {
            0 => None,
            _ => Some(self.str()?),
        })
    }
    fn bool(&mut self) -> SqlResult<bool> {
        Ok(self.u8()? != 0)
    }
    fn len(&mut self) -> SqlResult<usize> {
        let n = self.u32()? as usize;
        // Every element takes at least one byte: a corrupt count cannot make
        // us allocate more than the input.
        if n > 1 << 24 {
            return Err(corrupt("count"));
        }
        Ok(n)
    }
    fn ids(&mut self) -> SqlResult<Vec<u32>> {
        let n = self.len()?;
        (0..n).map(|_| self.u32()).collect()
    }
}

/// The stored form of a type.
#[allow(unreachable_patterns)]
pub fn encode_type(b: &mut Vec<u8>, ty: SqlType) {
    match ty {
        SqlType::Unknown => b.push(0),
        SqlType::Bool => b.push(1),
        SqlType::Int2 => b.push(2),
        SqlType::Int4 => b.push(3),
        SqlType::Int8 => b.push(4),
        SqlType::Float4 => b.push(5),
        SqlType::Float8 => b.push(6),
        SqlType::Decimal(None) => b.push(7),
        SqlType::Decimal(Some((p, s))) => {
            b.push(8);
            b.extend_from_slice(&p.to_be_bytes());
            b.extend_from_slice(&s.to_be_bytes());
        }
        SqlType::Text => b.push(9),
        SqlType::Varchar(None) => b.push(10),
        SqlType::Varchar(Some(n)) => {
            b.push(11);
            put_u32(b, n);
        }
        SqlType::Char(n) => {
            b.push(12);
            put_u32(b, n);
        }
        SqlType::Bytes => b.push(13),
        SqlType::Date => b.push(14),
        SqlType::Timestamp => b.push(15),
        SqlType::TimestampTz => b.push(16),
        SqlType::Interval => b.push(17),
        SqlType::Uuid => b.push(18),
        SqlType::Jsonb => b.push(19),
        SqlType::Array(e) => {
            b.push(20);
            encode_type(b, *e);
        }
        SqlType::Time => b.push(21),
        SqlType::Inet => b.push(22),
        // A type added to sqltypes that the catalog does not know yet.
        _ => b.push(0),
    }
}

fn decode_type(r: &mut Reader) -> SqlResult<SqlType> {
    Ok(match r.u8()? {
        0 => SqlType::Unknown,
        1 => SqlType::Bool,
        2 => SqlType::Int2,
        3 => SqlType::Int4,
        4 => SqlType::Int8,
        5 => SqlType::Float4,
        6 => SqlType::Float8,
        7 => SqlType::Decimal(None),
        8 => {
            let p = r.u32()?;
            SqlType::Decimal(Some(((p >> 16) as u16, (p & 0xffff) as u16)))
        }
        9 => SqlType::Text,
        10 => SqlType::Varchar(None),
        11 => SqlType::Varchar(Some(r.u32()?)),
        12 => SqlType::Char(r.u32()?),
        13 => SqlType::Bytes,
        14 => SqlType::Date,
        15 => SqlType::Timestamp,
        16 => SqlType::TimestampTz,
        17 => SqlType::Interval,
        18 => SqlType::Uuid,
        19 => SqlType::Jsonb,
        20 => match decode_type(r)? {
            SqlType::Array(_) => return Err(corrupt("type")),
            e => SqlType::array_of(e),
        },
        21 => SqlType::Time,
        22 => SqlType::Inet,
        _ => return Err(corrupt("type")),
    })
}

fn action_byte(a: ReferentialAction) -> u8 {
    match a {
        ReferentialAction::NoAction => 0,
        ReferentialAction::Restrict => 1,
        ReferentialAction::Cascade => 2,
        ReferentialAction::SetNull => 3,
        ReferentialAction::SetDefault => 4,
    }
}

fn action_of(b: u8) -> SqlResult<ReferentialAction> {
    Ok(match b {
        0 => ReferentialAction::NoAction,
        1 => ReferentialAction::Restrict,
        2 => ReferentialAction::Cascade,
        3 => ReferentialAction::SetNull,
        4 => ReferentialAction::SetDefault,
        _ => return Err(corrupt("referential action")),
    })
}

fn put_index(b: &mut Vec<u8>, i: &IndexDesc) {
    put_u32(b, i.id);
    put_str(b, &i.name);
    b.push(i.unique as u8);
    put_ids(b, &i.columns);
    put_u32(b, i.directions.len() as u32);
    for d in &i.directions {
        b.push(matches!(d, Direction::Descending) as u8);
    }
    put_ids(b, &i.storing);
    b.push(match i.state {
        IndexState::Public => 0,
        IndexState::WriteOnly => 1,
    });
    put_opt_str(b, &i.comment);
    put_opt_str(b, &i.constraint_comment);
    put_u32(b, i.predicate.unwrap_or(0));
}

fn read_index(r: &mut Reader, format: u8) -> SqlResult<IndexDesc> {
    let id = r.u32()?;
    let name = r.str()?;
    let unique = r.bool()?;
    let columns = r.ids()?;
    let n = r.len()?;
    let mut directions = Vec::with_capacity(n);
    for _ in 0..n {
        directions.push(if r.bool()? {
            Direction::Descending
        } else {
            Direction::Ascending
        });
    }
    let storing = r.ids()?;
    let state = if format == FORMAT_1 {
        IndexState::Public
    } else {
        match r.u8()? {
            0 => IndexState::Public,
            1 => IndexState::WriteOnly,
            _ => return Err(corrupt("index state")),
        }
    };
    let (comment, constraint_comment) = if format >= FORMAT_3 {
        (r.opt_str()?, r.opt_str()?)
    } else {
        (None, None)
    };
    let predicate = if format >= FORMAT_6 {
        Some(r.u32()?).filter(|&c| c != 0)
    } else {
        None
    };
    if directions.len() != columns.len() {
        return Err(corrupt("index directions"));
    }
    Ok(IndexDesc {
        id,
        name,
        unique,
        columns,
        directions,
        storing,
        state,
        comment,
        constraint_comment,
        predicate,
    })
}

/// The stored form of a descriptor.
pub fn encode_descriptor(d: &Descriptor) -> Vec<u8> {
    let mut b = vec![FORMAT];
    match d {
        Descriptor::Database(db) => {
            b.push(b'D');
            put_u32(&mut b, db.id);
            put_str(&mut b, &db.name);
            put_opt_str(&mut b, &db.comment);
            put_opt_str(&mut b, &db.public_schema_comment);
        }
        Descriptor::Table(t) => {
            b.push(b'T');
            put_u32(&mut b, t.id);
            put_u32(&mut b, t.parent_id);
            put_str(&mut b, &t.name);
            put_u32(&mut b, t.columns.len() as u32);
            for c in &t.columns {
                put_u32(&mut b, c.id);
                put_str(&mut b, &c.name);
                encode_type(&mut b, c.ty);
                b.push(c.nullable as u8);
                put_opt_str(&mut b, &c.default);
                b.push(c.hidden as u8);
                put_opt_str(&mut b, &c.comment);
                match &c.generated {
                    None => b.push(0),
                    Some(Generated::IdentityAlways) => b.push(1),
                    Some(Generated::IdentityByDefault) => b.push(2),
                    Some(Generated::Stored(e)) => {
                        b.push(3);
                        put_str(&mut b, e);
                    }
                    Some(Generated::IndexExpression(e)) => {
                        b.push(4);
                        put_str(&mut b, e);
                    }
                }
            }
            put_index(&mut b, &t.primary_index);
            put_u32(&mut b, t.indexes.len() as u32);
            for i in &t.indexes {
                put_index(&mut b, i);
            }
            put_u32(&mut b, t.checks.len() as u32);
            for c in &t.checks {
                put_str(&mut b, &c.name);
                put_str(&mut b, &c.expr);
                put_opt_str(&mut b, &c.comment);
            }
            put_u32(&mut b, t.foreign_keys.len() as u32);
            for f in &t.foreign_keys {
                put_str(&mut b, &f.name);
                put_ids(&mut b, &f.columns);
                put_u32(&mut b, f.referenced_table);
                put_ids(&mut b, &f.referenced_columns);
                b.push(action_byte(f.on_delete));
                b.push(action_byte(f.on_update));
                put_opt_str(&mut b, &f.comment);
            }
            put_u32(&mut b, t.referenced_by.len() as u32);
            for (id, name) in &t.referenced_by {
                put_u32(&mut b, *id);
                put_str(&mut b, name);
            }
            put_opt_str(&mut b, &t.view_query);
            put_u64(&mut b, t.version);
            put_u32(&mut b, t.next_column_id);
            put_u32(&mut b, t.next_index_id);
            match &t.sequence {
                None => b.push(0),
                Some(s) => {
                    b.push(1);
                    put_u64(&mut b, s.increment as u64);
                    put_u64(&mut b, s.start as u64);
                    put_u64(&mut b, s.min_value as u64);
                    put_u64(&mut b, s.max_value as u64);
                    b.push(s.cycle as u8);
                    match s.owned_by {
                        None => b.push(0),
                        Some((table, column)) => {
                            b.push(1);
                            put_u32(&mut b, table);
                            put_u32(&mut b, column);
                        }
                    }
                }
            }
            put_ids(&mut b, &t.dependent_views);
            put_ids(&mut b, &t.depends_on);
            put_u32(&mut b, t.mutations.len() as u32);
            for i in &t.mutations {
                put_index(&mut b, i);
            }
            put_u32(&mut b, t.new_primary.unwrap_or(0));
            put_opt_str(&mut b, &t.comment);
        }
    }
    b
}

/// Decodes a stored descriptor; never panics on bad input.
pub fn decode_descriptor(bytes: &[u8]) -> SqlResult<Descriptor> {
    let mut r = Reader(ByteReader::new(bytes));
    let format = r.u8()?;
    if !matches!(
        format,
        FORMAT_1 | FORMAT_2 | FORMAT_3 | FORMAT_4 | FORMAT_5 | FORMAT
    ) {
        return Err(corrupt("unknown format"));
    }
    // A comment of format 3, absent before.
    let comment = |r: &mut Reader| -> SqlResult<Option<String>> {
        if format >= FORMAT_3 {
            r.opt_str()
        } else {
            Ok(None)
        }
    };
    let d = match r.u8()? {
        b'D' => {
            let mut db = DatabaseDesc::new(r.u32()?, &r.str()?);
            if format >= FORMAT_3 {
                db.comment = r.opt_str()?;
                db.public_schema_comment = r.opt_str()?;
            }
            Descriptor::Database(db)
        }
        b'T' => {
            let id = r.u32()?;
            let parent_id = r.u32()?;
            let name = r.str()?;
            let n = r.len()?;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                columns.push(ColumnDesc {
                    id: r.u32()?,
                    name: r.str()?,
                    ty: decode_type(&mut r)?,
                    nullable: r.bool()?,
                    default: r.opt_str()?,
                    hidden: r.bool()?,
                    comment: comment(&mut r)?,
                    generated: if format >= FORMAT_4 {
                        match r.u8()? {
                            0 => None,
                            1 => Some(Generated::IdentityAlways),
                            2 => Some(Generated::IdentityByDefault),
                            3 => Some(Generated::Stored(r.str()?)),
                            4 => Some(Generated::IndexExpression(r.str()?)),
                            _ => return Err(corrupt("column generation kind")),
                        }
                    } else {
                        None
                    },
                });
            }
            let primary_index = read_index(&mut r, format)?;
            let n = r.len()?;
            let indexes: Vec<IndexDesc> = (0..n)
                .map(|_| read_index(&mut r, format))
                .collect::<SqlResult<_>>()?;
            let n = r.len()?;
            let mut checks = Vec::with_capacity(n);
            for _ in 0..n {
                checks.push(CheckDesc {
                    name: r.str()?,
                    expr: r.str()?,
                    comment: comment(&mut r)?,
                });
            }
            let n = r.len()?;
            let mut foreign_keys = Vec::with_capacity(n);
            for _ in 0..n {
                foreign_keys.push(ForeignKeyDesc {
                    name: r.str()?,
                    columns: r.ids()?,
                    referenced_table: r.u32()?,
                    referenced_columns: r.ids()?,
                    on_delete: action_of(r.u8()?)?,
                    on_update: action_of(r.u8()?)?,
                    comment: comment(&mut r)?,
                });
            }
            let n = r.len()?;
            let mut referenced_by = Vec::with_capacity(n);
            for _ in 0..n {
                referenced_by.push((r.u32()?, r.str()?));
            }
            let view_query = r.opt_str()?;
            let version = r.u64()?;
            let next_column_id = r.u32()?;
            let next_index_id = r.u32()?;
            let sequence = match r.u8()? {
                0 => None,
                _ => Some(SequenceDesc {
                    increment: r.u64()? as i64,
                    start: r.u64()? as i64,
                    min_value: r.u64()? as i64,
                    max_value: r.u64()? as i64,
                    cycle: r.bool()?,
                    owned_by: if format >= FORMAT_5 && r.bool()? {
                        Some((r.u32()?, r.u32()?))
                    } else {
                        None
                    },
                }),
            };
            let dependent_views = r.ids()?;
            let depends_on = r.ids()?;
            let (mutations, new_primary) = if format == FORMAT_1 {
                (Vec::new(), None)
            } else {
                let n = r.len()?;
                let mutations: Vec<IndexDesc> = (0..n)
                    .map(|_| read_index(&mut r, format))
                    .collect::<SqlResult<_>>()?;
                let new_primary = match r.u32()? {
                    0 => None,
                    id => Some(id),
                };
                (mutations, new_primary)
            };
            let table_comment = comment(&mut r)?;
            let public_ok = std::iter::once(&primary_index)
                .chain(&indexes)
                .all(|i| i.state == IndexState::Public);
            let mutations_ok = mutations.iter().all(|i| i.state != IndexState::Public);
            let new_primary_ok = new_primary.is_none_or(|id| mutations.iter().any(|m| m.id == id));
            if !public_ok || !mutations_ok || !new_primary_ok {
                return Err(corrupt("index states"));
            }
            Descriptor::Table(TableDesc {
                id,
                parent_id,
                name,
                columns,
                primary_index,
                indexes,
                mutations,
                new_primary,
                checks,
                foreign_keys,
                referenced_by,
                view_query,
                version,
                next_column_id,
                next_index_id,
                sequence,
                dependent_views,
                depends_on,
                virtual_rows: None,
                comment: table_comment,
            })
        }
        _ => return Err(corrupt("kind")),
    };
    r.0.done().map_err(|e| corrupt(e.0))?;
    Ok(d)
}

fn decode_id(bytes: &[u8]) -> SqlResult<DescId> {
    let a: [u8; 4] = bytes.try_into().map_err(|_| corrupt("namespace entry"))?;
    Ok(u32::from_be_bytes(a))
}

fn decode_counter(bytes: &[u8]) -> SqlResult<i64> {
    let a: [u8; 8] = bytes.try_into().map_err(|_| corrupt("counter"))?;
    Ok(i64::from_be_bytes(a))
}

/// A KV error as SQL sees it.
pub fn kv_err(e: KvError) -> SqlError {
    crate::error::kv_error(e)
}

// ---------------------------------------------------------------------------
// The per-node catalog.

#[derive(Default)]
struct Cache {
    version: u64,
    /// (parent, name) → id, including misses.
    names: HashMap<(DescId, String), Option<DescId>>,
    descriptors: HashMap<DescId, Cached>,
}

/// A descriptor as handed out: tables shared.
#[derive(Clone)]
enum Cached {
    Database(Arc<DatabaseDesc>),
    Table(Arc<TableDesc>),
}

/// How a lookup in a transaction may use the cache.
#[derive(Clone, Copy)]
enum Mode {
    /// The transaction saw this version.
    Cached(u64),
    /// The transaction changed the catalog or saw an older version.
    Through,
}

/// The number of transactions whose version read is remembered.
const CHECKED_TXNS: usize = 4096;

/// The node's view of the catalog: reads descriptors through the caller's
/// transaction and caches them by version.
pub struct Catalog {
    db: Db,
    /// Computes stored generated columns (index expressions included) for
    /// the writes the row layer makes on its own (foreign-key cascades);
    /// installed by the executor, which can evaluate expressions.
    generated: std::sync::OnceLock<Arc<dyn GeneratedColumns>>,
    cache: Mutex<Cache>,
    /// The catalog version each recent transaction read.
    checked: Mutex<HashMap<TxnId, u64>>,
    /// Transactions that wrote the catalog: they bypass the cache.
    dirty: Mutex<HashSet<TxnId>>,
}

impl Catalog {
    pub fn new(db: Db) -> Catalog {
        Catalog {
            db,
            generated: std::sync::OnceLock::new(),
            cache: Mutex::new(Cache::default()),
            checked: Mutex::new(HashMap::new()),
            dirty: Mutex::new(HashSet::new()),
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Installs the evaluator of generated columns (once; later calls are
    /// no-ops).
    pub fn install_generated_columns(&self, make: impl FnOnce() -> Arc<dyn GeneratedColumns>) {
        self.generated.get_or_init(make);
    }

    /// Recomputes the stored generated columns of `rows` (in `table`'s
    /// layout) from their other values; nothing for a table without any.
    pub fn fill_generated_columns(
        &self,
        table: &TableDesc,
        rows: &mut [Vec<Value>],
    ) -> SqlResult<()> {
        if table.columns.iter().all(|c| c.generation_expr().is_none()) {
            return Ok(());
        }
        match self.generated.get() {
            Some(g) => g.fill(table, rows),
            None => Err(SqlError::internal(format!(
                "no evaluator of the generated columns of \"{}\"",
                table.name
            ))),
        }
    }

    /// Creates `defaultdb` and `postgres` (and their implicit `public` schema) if
    /// they do not exist. Idempotent and safe when several nodes start at once:
    /// the databases have fixed ids and the writes are conditional.
    pub async fn ensure_bootstrapped(&self) -> SqlResult<()> {
        // A node may start before the system range serves (a cluster being
        // formed): keep trying for a while.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let mut txn = self.db.txn("sql-bootstrap");
            let result = async {
                let mut reqs = Vec::new();
                for (id, name) in [(DEFAULTDB_ID, "defaultdb"), (POSTGRES_ID, "postgres")] {
                    if txn
                        .get(&namespace_key(0, name))
                        .await
                        .map_err(kv_err)?
                        .is_some()
                    {
                        continue;
                    }
                    reqs.push(Request::ConditionalPut {
                        key: namespace_key(0, name),
                        value: id.to_be_bytes().to_vec(),
                        expected: None,
                    });
                    reqs.push(Request::Put {
                        key: descriptor_key(id),
                        value: encode_descriptor(&Descriptor::Database(DatabaseDesc::new(
                            id, name,
                        ))),
                    });
                }
                if !reqs.is_empty() {
                    reqs.push(Request::Increment {
                        key: version_key(),
                        inc: 1,
                    });
                    txn.send(reqs).await.map_err(kv_err)?;
                }
                Ok::<_, SqlError>(())
            }
            .await;
            let result = match result {
                Ok(()) => txn.commit().await.map_err(kv_err),
                Err(e) => {
                    let _ = txn.rollback().await;
                    Err(e)
                }
            };
            match result {
                Ok(()) => return Ok(()),
                // Another node bootstrapped meanwhile (condition failed) or we
                // conflicted with it: look again.
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "retrying SQL bootstrap");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the catalog version through `txn` (once per transaction) and says how
    /// the cache may serve it.
    async fn mode(&self, txn: &mut Txn) -> SqlResult<Mode> {
        let id = txn.id();
        if self.dirty.lock().contains(&id) {
            return Ok(Mode::Through);
        }
        let known = self.checked.lock().get(&id).copied();
        let version = match known {
            Some(v) => v,
            None => {
                let v = match txn.get(&version_key()).await.map_err(kv_err)? {
                    Some(b) => decode_counter(&b)? as u64,
                    None => 0,
                };
                let mut checked = self.checked.lock();
                if checked.len() >= CHECKED_TXNS {
                    checked.clear();
                }
                checked.insert(id, v);
                v
            }
        };
        let mut cache = self.cache.lock();
        if version > cache.version {
            *cache = Cache {
                version,
                ..Cache::default()
            };
        }
        Ok(if version == cache.version {
            Mode::Cached(version)
        } else {
            Mode::Through
        })
    }

    /// Looks a name up under `parent`.
    async fn lookup_name(
        &self,
        txn: &mut Txn,
        mode: Mode,
        parent: DescId,
        name: &str,
    ) -> SqlResult<Option<DescId>> {
        if let Mode::Cached(v) = mode {
            let cache = self.cache.lock();
            if cache.version == v
                && let Some(hit) = cache.names.get(&(parent, name.to_string()))
            {
                return Ok(*hit);
            }
        }
        let id = match txn
            .get(&namespace_key(parent, name))
            .await
            .map_err(kv_err)?
        {
            Some(b) => Some(decode_id(&b)?),
            None => None,
        };
        if let Mode::Cached(v) = mode {
            let mut cache = self.cache.lock();
            if cache.version == v {
                cache.names.insert((parent, name.to_string()), id);
            }
        }
        Ok(id)
    }

    async fn lookup_descriptor(
        &self,
        txn: &mut Txn,
        mode: Mode,
        id: DescId,
    ) -> SqlResult<Option<Cached>> {
        if let Mode::Cached(v) = mode {
            let cache = self.cache.lock();
            if cache.version == v
                && let Some(hit) = cache.descriptors.get(&id)
            {
                return Ok(Some(hit.clone()));
            }
        }
        let Some(bytes) = txn.get(&descriptor_key(id)).await.map_err(kv_err)? else {
            return Ok(None);
        };
        let d = match decode_descriptor(&bytes)? {
            Descriptor::Database(d) => Cached::Database(Arc::new(d)),
            Descriptor::Table(t) => Cached::Table(Arc::new(t)),
        };
        if let Mode::Cached(v) = mode {
            let mut cache = self.cache.lock();
            if cache.version == v {
                cache.descriptors.insert(id, d.clone());
            }
        }
        Ok(Some(d))
    }

    async fn table_arc(
        &self,
        txn: &mut Txn,
        mode: Mode,
        id: DescId,
    ) -> SqlResult<Option<Arc<TableDesc>>> {
        match self.lookup_descriptor(txn, mode, id).await? {
            Some(Cached::Table(t)) => Ok(Some(t)),
            _ => Ok(None),
        }
    }

    /// The id of a database.
    pub async fn database_id(&self, txn: &mut Txn, name: &str) -> SqlResult<Option<DescId>> {
        let mode = self.mode(txn).await?;
        self.lookup_name(txn, mode, 0, name).await
    }

    /// The id of a database, or 3D000.
    pub async fn require_database(&self, txn: &mut Txn, name: &str) -> SqlResult<DescId> {
        self.database_id(txn, name)
            .await?
            .ok_or_else(|| undefined_database(name))
    }

    /// All databases, by name (with their comments, from their descriptors).
    pub async fn list_databases(&self, txn: &mut Txn) -> SqlResult<Vec<DatabaseDesc>> {
        let mode = self.mode(txn).await?;
        let prefix = namespace_prefix(0);
        let rows = txn
            .scan(&prefix, &keys::prefix_end(&prefix), 0)
            .await
            .map_err(kv_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for kv in rows {
            let (name, _) =
                tardigrade_encoding::decode_string(&kv.key[prefix.len()..], Direction::Ascending)
                    .map_err(|_| corrupt("namespace key"))?;
            let id = decode_id(&kv.value.bytes)?;
            out.push(match self.lookup_descriptor(txn, mode, id).await? {
                Some(Cached::Database(d)) => (*d).clone(),
                // Not expected (both are written together); still listed.
                _ => DatabaseDesc::new(id, &name),
            });
        }
        Ok(out)
    }

    /// A database's descriptor read through `txn` without the cache (for
    /// DDL, which then rewrites it with [`Catalog::write_database`]); 3D000
    /// when there is none.
    pub async fn database_for_update(&self, txn: &mut Txn, name: &str) -> SqlResult<DatabaseDesc> {
        self.mark_changed(txn).await?;
        let id = self
            .lookup_name(txn, Mode::Through, 0, name)
            .await?
            .ok_or_else(|| undefined_database(name))?;
        match self.lookup_descriptor(txn, Mode::Through, id).await? {
            Some(Cached::Database(d)) => Ok((*d).clone()),
            _ => Err(undefined_database(name)),
        }
    }

    /// Rewrites a database's descriptor.
    pub async fn write_database(&self, txn: &mut Txn, desc: &DatabaseDesc) -> SqlResult<()> {
        self.mark_changed(txn).await?;
        txn.send(vec![Request::Put {
            key: descriptor_key(desc.id),
            value: encode_descriptor(&Descriptor::Database(desc.clone())),
        }])
        .await
        .map_err(kv_err)?;
        Ok(())
    }

    /// A table, view or sequence by name. `schema` is `None` or `public`, or (as
    /// in CockroachDB, where `d.t` is table `t` of database `d`) the name of
    /// another database; system schemas find nothing here. A missing session
    /// database is 3D000.
    pub async fn resolve_table(
        &self,
        txn: &mut Txn,
        database: &str,
        schema: Option<&str>,
        name: &str,
    ) -> SqlResult<Option<Arc<TableDesc>>> {
        let mode = self.mode(txn).await?;
        let database = match schema {
            None | Some("public") => database,
            Some("pg_catalog" | "information_schema" | "crdb_internal" | "pg_extension") => {
                return Ok(None);
            }
            // CockroachDB: `db.t` names table t of database db (public schema).
            Some(other) => other,
        };
        let Some(db_id) = self.lookup_name(txn, mode, 0, database).await? else {
            if schema.is_some_and(|s| s != "public") {
                return Ok(None);
            }
            return Err(undefined_database(database));
        };
        let Some(id) = self.lookup_name(txn, mode, db_id, name).await? else {
            return Ok(None);
        };
        self.table_arc(txn, mode, id).await
    }

    /// A table by id (42P01 if it does not exist).
    pub async fn table_by_id(&self, txn: &mut Txn, id: DescId) -> SqlResult<Arc<TableDesc>> {
        let mode = self.mode(txn).await?;
        self.table_arc(txn, mode, id)
            .await?
            .ok_or_else(|| SqlError::undefined_table(&format!("[{id}]")))
    }

    /// Every table, view and sequence of a database, by name.
    pub async fn list_tables(
        &self,
        txn: &mut Txn,
        database: &str,
    ) -> SqlResult<Vec<Arc<TableDesc>>> {
        let mode = self.mode(txn).await?;
        let Some(db_id) = self.lookup_name(txn, mode, 0, database).await? else {
            return Err(undefined_database(database));
        };
        self.list_tables_of(txn, db_id).await
    }

    /// Every table, view and sequence of database `db_id`, by name.
    pub async fn list_tables_of(
        &self,
        txn: &mut Txn,
        db_id: DescId,
    ) -> SqlResult<Vec<Arc<TableDesc>>> {
        let mode = self.mode(txn).await?;
        let prefix = namespace_prefix(db_id);
        let rows = txn
            .scan(&prefix, &keys::prefix_end(&prefix), 0)
            .await
            .map_err(kv_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for kv in rows {
            let id = decode_id(&kv.value.bytes)?;
            if let Some(t) = self.table_arc(txn, mode, id).await? {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// `nextval`: sequences are not transactional (as in PostgreSQL), so the
    /// counter is incremented outside `txn`. 42P01 if there is no such
    /// sequence, 2200H past a bound of a sequence without CYCLE. Returns the
    /// sequence's id (the session's `currval` is kept by id) and the value.
    pub async fn next_sequence_value(
        &self,
        txn: &mut Txn,
        database: &str,
        sequence_name: &str,
    ) -> SqlResult<(DescId, i64)> {
        let seq = self.require_sequence(txn, database, sequence_name).await?;
        let Some(opts) = &seq.sequence else {
            return Err(not_a_sequence(sequence_name));
        };
        let key = sequence_value_key(seq.id);
        match self.db.inc(&key, opts.increment).await {
            Ok(v) if v <= opts.max_value && v >= opts.min_value => return Ok((seq.id, v)),
            Ok(_) => {}
            Err(e) if matches!(e.detail, ErrorDetail::IntegerOverflow) => {}
            Err(e) => return Err(kv_err(e)),
        }
        if !opts.cycle {
            return Err(reached_limit(sequence_name, opts));
        }
        // CYCLE: start over at the other bound.
        // TODO(issue 13): two sessions passing the bound at the same time
        // both restart there and get the same value (the wrap is a plain
        // put, not a compare-and-swap with the increment).
        let first = if opts.increment > 0 {
            opts.min_value
        } else {
            opts.max_value
        };
        self.db
            .put(&key, &first.to_be_bytes())
            .await
            .map_err(kv_err)?;
        Ok((seq.id, first))
    }

    /// `setval(name, value, is_called)`: the next `nextval` returns
    /// `value + increment`, or `value` itself when `is_called` is false.
    /// 22003 outside the sequence's bounds. Returns the sequence's id.
    pub async fn set_sequence_value(
        &self,
        txn: &mut Txn,
        database: &str,
        sequence_name: &str,
        value: i64,
        is_called: bool,
    ) -> SqlResult<DescId> {
        let seq = self.require_sequence(txn, database, sequence_name).await?;
        let Some(opts) = &seq.sequence else {
            return Err(not_a_sequence(sequence_name));
        };
        if value > opts.max_value || value < opts.min_value {
            return Err(SqlError::out_of_range(format!(
                "setval: value {value} is out of bounds for sequence \"{sequence_name}\" ({}..{})",
                opts.min_value, opts.max_value
            )));
        }
        let counter = if is_called {
            value
        } else {
            value.wrapping_sub(opts.increment)
        };
        self.db
            .put(&sequence_value_key(seq.id), &counter.to_be_bytes())
            .await
            .map_err(kv_err)?;
        Ok(seq.id)
    }

    /// The id of sequence `sequence_name` (42P01 if there is none, 42809 if
    /// it is another kind of relation).
    pub async fn sequence_id(
        &self,
        txn: &mut Txn,
        database: &str,
        sequence_name: &str,
    ) -> SqlResult<DescId> {
        let seq = self.require_sequence(txn, database, sequence_name).await?;
        if !seq.is_sequence() {
            return Err(not_a_sequence(sequence_name));
        }
        Ok(seq.id)
    }

    /// Sets a sequence's counter (the value the last `nextval` gave),
    /// outside any transaction as `nextval` changes it.
    pub async fn put_sequence_counter(&self, id: DescId, counter: i64) -> SqlResult<()> {
        self.db
            .put(&sequence_value_key(id), &counter.to_be_bytes())
            .await
            .map_err(kv_err)
    }

    /// The sequence's last value handed out by any session (CockroachDB's
    /// `currval` is per session; the session keeps that, this is the counter).
    pub async fn sequence_counter(&self, seq: &TableDesc) -> SqlResult<i64> {
        match self
            .db
            .get(&sequence_value_key(seq.id))
            .await
            .map_err(kv_err)?
        {
            Some(b) => decode_counter(&b),
            None => Ok(seq.sequence.as_ref().map_or(0, |s| s.start - s.increment)),
        }
    }

    /// `pg_get_serial_sequence(table, column)`: the sequence the column
    /// owns (an identity column's, or one given `OWNED BY` it),
    /// schema-qualified, or `None`. 42P01 / 42703 when there is no such
    /// table or column.
    pub async fn owned_sequence(
        &self,
        txn: &mut Txn,
        database: &str,
        table: &str,
        column: &str,
    ) -> SqlResult<Option<String>> {
        let t = self.require_sequence(txn, database, table).await?;
        let Some(c) = t.column_by_name(column) else {
            return Err(SqlError::undefined_column_of(column, &t.name));
        };
        let seqs = self.owned_sequences(txn, &t, Some(c.id)).await?;
        Ok(seqs.first().map(|s| {
            format!(
                "public.{}",
                tardigrade_sqltypes::strings::quote_ident(&s.name)
            )
        }))
    }

    /// The sequences owned by table `t` (by its column `column` only, when
    /// given): those whose `OWNED BY` names it. (Identity columns, which own
    /// their sequences, came with ownership: no older descriptor has one.)
    pub async fn owned_sequences(
        &self,
        txn: &mut Txn,
        t: &TableDesc,
        column: Option<u32>,
    ) -> SqlResult<Vec<Arc<TableDesc>>> {
        let mut out = Vec::new();
        for s in self.list_tables_of(txn, t.parent_id).await? {
            let Some(opts) = &s.sequence else {
                continue;
            };
            let owned = opts
                .owned_by
                .is_some_and(|(table, col)| table == t.id && column.is_none_or(|c| c == col));
            if owned {
                out.push(s);
            }
        }
        Ok(out)
    }

    async fn require_sequence(
        &self,
        txn: &mut Txn,
        database: &str,
        name: &str,
    ) -> SqlResult<Arc<TableDesc>> {
        let (schema, name) = match name.split_once('.') {
            Some((s, n)) => (Some(s), n),
            None => (None, name),
        };
        self.resolve_table(txn, database, schema, name)
            .await?
            .ok_or_else(|| SqlError::undefined_table(name))
    }

    // -----------------------------------------------------------------------
    // Writes (used by DDL): all through the caller's transaction.

    /// Marks `txn` as a schema-changing transaction: bumps the catalog version
    /// (once per transaction) and makes its later lookups bypass the cache.
    pub async fn mark_changed(&self, txn: &mut Txn) -> SqlResult<()> {
        let first = self.dirty.lock().insert(txn.id());
        if first {
            txn.send(vec![Request::Increment {
                key: version_key(),
                inc: 1,
            }])
            .await
            .map_err(kv_err)?;
        }
        Ok(())
    }

    /// A new descriptor id.
    pub async fn allocate_id(&self) -> SqlResult<DescId> {
        // Outside the transaction, as CockroachDB does: ids are never reused,
        // and a rolled-back DDL just leaves a gap.
        let n = self
            .db
            .inc(keys::DESC_ID_GENERATOR, 1)
            .await
            .map_err(kv_err)?;
        u32::try_from(n + FIRST_USER_ID as i64)
            .map_err(|_| SqlError::internal("descriptor ids exhausted"))
    }

    /// Creates a database (42P04 if the name is taken).
    pub async fn create_database(&self, txn: &mut Txn, name: &str) -> SqlResult<DescId> {
        self.mark_changed(txn).await?;
        if self
            .lookup_name(txn, Mode::Through, 0, name)
            .await?
            .is_some()
        {
            return Err(SqlError::new(
                codes::DUPLICATE_DATABASE,
                format!("database \"{name}\" already exists"),
            ));
        }
        let id = self.allocate_id().await?;
        txn.send(vec![
            Request::ConditionalPut {
                key: namespace_key(0, name),
                value: id.to_be_bytes().to_vec(),
                expected: None,
            },
            Request::Put {
                key: descriptor_key(id),
                value: encode_descriptor(&Descriptor::Database(DatabaseDesc::new(id, name))),
            },
        ])
        .await
        .map_err(kv_err)?;
        Ok(id)
    }

    /// Removes a database's name and descriptor (the caller drops its tables).
    pub async fn delete_database(&self, txn: &mut Txn, id: DescId, name: &str) -> SqlResult<()> {
        self.mark_changed(txn).await?;
        txn.send(vec![
            Request::Delete {
                key: namespace_key(0, name),
            },
            Request::Delete {
                key: descriptor_key(id),
            },
        ])
        .await
        .map_err(kv_err)?;
        Ok(())
    }

    /// Looks a table up by name through `txn`, bypassing the cache (for DDL).
    pub async fn table_id(
        &self,
        txn: &mut Txn,
        db_id: DescId,
        name: &str,
    ) -> SqlResult<Option<DescId>> {
        let mode = self.mode(txn).await?;
        self.lookup_name(txn, mode, db_id, name).await
    }

    /// Creates the name of a new table, view or sequence and writes its
    /// descriptor (42P07 if the name is taken).
    pub async fn create_table(&self, txn: &mut Txn, desc: &TableDesc) -> SqlResult<()> {
        self.mark_changed(txn).await?;
        if self
            .lookup_name(txn, Mode::Through, desc.parent_id, &desc.name)
            .await?
            .is_some()
        {
            return Err(duplicate_table(&desc.name));
        }
        txn.send(vec![
            Request::ConditionalPut {
                key: namespace_key(desc.parent_id, &desc.name),
                value: desc.id.to_be_bytes().to_vec(),
                expected: None,
            },
            Request::Put {
                key: descriptor_key(desc.id),
                value: encode_descriptor(&Descriptor::Table(desc.clone())),
            },
        ])
        .await
        .map_err(kv_err)?;
        Ok(())
    }

    /// Rewrites descriptors (bumping their versions).
    pub async fn write_tables(&self, txn: &mut Txn, descs: &[TableDesc]) -> SqlResult<()> {
        self.mark_changed(txn).await?;
        let reqs = descs
            .iter()
            .map(|d| {
                let mut d = d.clone();
                d.version += 1;
                d.drop_unused_index_columns();
                Request::Put {
                    key: descriptor_key(d.id),
                    value: encode_descriptor(&Descriptor::Table(d)),
                }
            })
            .collect();
        txn.send(reqs).await.map_err(kv_err)?;
        Ok(())
    }

    /// Renames a table (42P07 if the new name is taken).
    pub async fn rename_table(
        &self,
        txn: &mut Txn,
        desc: &TableDesc,
        new_name: &str,
    ) -> SqlResult<()> {
        self.mark_changed(txn).await?;
        if self
            .lookup_name(txn, Mode::Through, desc.parent_id, new_name)
            .await?
            .is_some()
        {
            return Err(duplicate_table(new_name));
        }
        let mut d = desc.clone();
        d.name = new_name.to_string();
        d.version += 1;
        if d.primary_index.name == format!("{}_pkey", desc.name) {
            d.primary_index.name = format!("{new_name}_pkey");
        }
        txn.send(vec![
            Request::Delete {
                key: namespace_key(desc.parent_id, &desc.name),
            },
            Request::ConditionalPut {
                key: namespace_key(desc.parent_id, new_name),
                value: desc.id.to_be_bytes().to_vec(),
                expected: None,
            },
            Request::Put {
                key: descriptor_key(d.id),
                value: encode_descriptor(&Descriptor::Table(d)),
            },
        ])
        .await
        .map_err(kv_err)?;
        Ok(())
    }

    /// Removes a table's name and descriptor: O(1) writes. Its data is left
    /// for the caller to schedule for clearing after the commit
    /// ([`crate::gc`]); since ids are never reused, nothing reads it once
    /// the descriptor is gone.
    pub async fn delete_table(&self, txn: &mut Txn, desc: &TableDesc) -> SqlResult<()> {
        self.mark_changed(txn).await?;
        txn.send(vec![
            Request::Delete {
                key: namespace_key(desc.parent_id, &desc.name),
            },
            Request::Delete {
                key: descriptor_key(desc.id),
            },
        ])
        .await
        .map_err(kv_err)?;
        Ok(())
    }

    /// A table by id read through `txn` without the cache (for DDL, which then
    /// rewrites it).
    pub async fn table_for_update(&self, txn: &mut Txn, id: DescId) -> SqlResult<TableDesc> {
        // Take the version key first: transactions that start after this
        // wait for the change instead of racing it, and the ones that read
        // the version before only push this transaction, which catches up
        // now, before it reads (and backfills) the table's rows — else any
        // row they insert meanwhile fails the commit's refresh, again on
        // every retry while they keep writing.
        self.mark_changed(txn).await?;
        txn.refresh_if_pushed().await.map_err(kv_err)?;
        match self.lookup_descriptor(txn, Mode::Through, id).await? {
            Some(Cached::Table(t)) => Ok((*t).clone()),
            _ => Err(SqlError::undefined_table(&format!("[{id}]"))),
        }
    }
}

pub fn undefined_database(name: &str) -> SqlError {
    SqlError::new(
        codes::UNDEFINED_DATABASE,
        format!("database \"{name}\" does not exist"),
    )
}

pub fn duplicate_table(name: &str) -> SqlError {
    SqlError::new(
        codes::DUPLICATE_TABLE,
        format!("relation \"{name}\" already exists"),
    )
}

/// The name an identity column's sequence gets unless a relation has it
/// already (then a number is appended, as PostgreSQL does).
pub fn owned_sequence_name(table: &str, column: &str) -> String {
    format!("{table}_{column}_seq")
}

fn not_a_sequence(name: &str) -> SqlError {
    SqlError::new(
        codes::WRONG_OBJECT_TYPE,
        format!("\"{name}\" is not a sequence"),
    )
}

fn reached_limit(name: &str, opts: &SequenceDesc) -> SqlError {
    let (which, v) = if opts.increment > 0 {
        ("maximum", opts.max_value)
    } else {
        ("minimum", opts.min_value)
    };
    SqlError::new(
        "2200H",
        format!("nextval: reached {which} value of sequence \"{name}\" ({v})"),
    )
}

/// A relation named in a string (`currval('s')`): lowercased, unless
/// double-quoted (`'"S"'`), as PostgreSQL reads a regclass literal.
pub fn relation_name(text: &str) -> String {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    let mut part = String::new();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                part.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut part)),
            c if quoted => part.push(c),
            c => part.extend(c.to_lowercase()),
        }
    }
    parts.push(part);
    parts.join(".")
}
