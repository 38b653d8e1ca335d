//! Schema changes: CREATE/DROP DATABASE, TABLE, INDEX, VIEW, SEQUENCE; ALTER TABLE;
//! TRUNCATE; the SHOW statements over the catalog; CockroachDB's `SHOW RANGES`
//! and `ALTER TABLE … SPLIT AT`.
//!
//! Every change here runs in the statement's transaction: descriptors are
//! rewritten through it (see [`crate::catalog`] for how other nodes learn of the
//! change), and data changes (index backfills, the rewrite of `ADD PRIMARY KEY`)
//! are KV writes of the same transaction, so a failed schema change leaves
//! nothing behind. DROP TABLE, DROP DATABASE, DROP INDEX and TRUNCATE touch no
//! data: they remove names and descriptors (TRUNCATE gives the indexes new ids),
//! O(1) writes, and the data that became unreachable is cleared in the
//! background once the transaction commits ([`crate::gc`]).
//!
//! The exception: `CREATE INDEX`, `ALTER TABLE … ADD PRIMARY KEY` and `ALTER
//! TABLE … ADD CONSTRAINT … UNIQUE` outside an explicit transaction are built
//! *online* by [`crate::schemachange`], in many transactions: this module's
//! [`start_online`] is the first one (the index is added write-only). Inside
//! `BEGIN … COMMIT` they keep running here, in the user's transaction (a
//! multi-transaction change cannot be part of one transaction, and a table
//! created in the same block has nothing to backfill online anyway;
//! CockroachDB also runs schema changes of a block at its commit, differently
//! from implicit ones).
//!
//! Type names follow CockroachDB: `INT` and `INTEGER` are 8-byte integers;
//! `SERIAL` (and `SMALLSERIAL`, `BIGSERIAL`) is an `INT8 NOT NULL DEFAULT
//! unique_rowid()` column, CockroachDB's default `serial_normalization = rowid`
//! (no sequence, no hot spot at the end of the table).
//!
//! TODO(issue 4): online ADD COLUMN / ALTER COLUMN / DROP (column backfills and
//! drops still run in the user's transaction); expression and partial indexes; ALTER COLUMN TYPE; rewriting
//! rows on DROP COLUMN (their bytes stay, skipped on read); dependencies of
//! DEFAULT and CHECK expressions and of views on columns (RENAME/DROP COLUMN do
//! not rewrite them).

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use sqlparser::ast::{
    self, AlterColumnOperation, AlterTableOperation, ColumnDef, ColumnOption, CreateIndex,
    CreateTable, CreateView, DataType, Expr, Ident, IndexColumn, ObjectName, ObjectType,
    OrderBySort, SequenceOptions, Statement, TableConstraint,
};
use tardigrade_encoding::{Direction, keys};
use tardigrade_kv::Txn;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};

use crate::catalog::{
    CheckDesc, ColumnDesc, ColumnId, DescId, ForeignKeyDesc, Generated, IndexDesc, IndexId,
    IndexState, ReferentialAction, SequenceDesc, TableDesc, duplicate_table, kv_err,
};
use crate::node::{Column, QueryOutput, SqlNode};
use crate::parse;
use crate::rowenc;

mod comment;
mod regions;
mod zone;

/// Runs a schema statement; `Ok(None)` when `statement` is not one. (Each
/// branch's future is boxed: together they would make this one too large for a
/// task's stack in debug builds.)
pub async fn execute(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    statement: &Statement,
) -> SqlResult<Option<QueryOutput>> {
    let out = match statement {
        Statement::CreateDatabase {
            db_name,
            if_not_exists,
            ..
        } => Box::pin(create_database(node, txn, db_name, *if_not_exists)).await?,
        Statement::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            restrict,
            ..
        } => {
            // DROP DATABASE drops what it holds unless it says RESTRICT
            // (PostgreSQL has no such check; CockroachDB's default is
            // CASCADE).
            let cascade = *cascade || (*object_type == ObjectType::Database && !*restrict);
            drop(
                node,
                txn,
                database,
                *object_type,
                *if_exists,
                names,
                cascade,
            )
            .await?
        }
        Statement::CreateTable(ct) => Box::pin(create_table(node, txn, database, ct)).await?,
        Statement::CreateIndex(ci) => Box::pin(create_index(node, txn, database, ci)).await?,
        Statement::AlterTable(at) => {
            Box::pin(alter_table(
                node,
                txn,
                database,
                &at.name,
                at.if_exists,
                &at.operations,
            ))
            .await?
        }
        Statement::AlterView(av) => Box::pin(alter_view(node, txn, database, av)).await?,
        Statement::AlterIndex { name, operation } => {
            let ast::AlterIndexOperation::RenameIndex { index_name } = operation;
            Box::pin(rename_index(node, txn, database, name, index_name)).await?
        }
        Statement::Truncate(t) => {
            let names: Vec<&ObjectName> = t.table_names.iter().map(|n| &n.name).collect();
            let cascade = matches!(t.cascade, Some(ast::CascadeOption::Cascade));
            Box::pin(truncate(node, txn, database, &names, cascade)).await?
        }
        Statement::CreateSequence {
            if_not_exists,
            name,
            sequence_options,
            ..
        } => {
            Box::pin(create_sequence(
                node,
                txn,
                database,
                name,
                *if_not_exists,
                sequence_options,
            ))
            .await?
        }
        Statement::CreateView(cv) => Box::pin(create_view(node, txn, database, cv)).await?,
        Statement::CreateSchema {
            schema_name,
            if_not_exists,
            ..
        } => {
            let name = match schema_name {
                ast::SchemaName::Simple(n) | ast::SchemaName::NamedAuthorization(n, _) => {
                    name_parts(n).last().cloned().unwrap_or_default()
                }
                ast::SchemaName::UnnamedAuthorization(i) => ident(i),
            };
            if name == "public" && *if_not_exists {
                QueryOutput::command("CREATE SCHEMA")
            } else if name == "public" {
                return Err(SqlError::new(
                    codes::DUPLICATE_OBJECT,
                    "schema \"public\" already exists",
                ));
            } else {
                // TODO(issue 4): user-defined schemas.
                return Err(SqlError::unsupported(
                    "CREATE SCHEMA: only the public schema exists",
                ));
            }
        }
        Statement::Use(u) => {
            let name = match u {
                ast::Use::Object(n) | ast::Use::Database(n) | ast::Use::Catalog(n) => n,
                _ => return Err(SqlError::unsupported("this form of USE")),
            };
            let db = name_parts(name).join(".");
            node.catalog.require_database(txn, &db).await?;
            QueryOutput::command("SET")
        }
        Statement::ShowTables { show_options, .. } => {
            let db = match &show_options.show_in {
                Some(ast::ShowStatementIn {
                    parent_name: Some(n),
                    ..
                }) => name_parts(n).first().cloned().unwrap_or_default(),
                _ => database.to_string(),
            };
            Box::pin(show_tables(node, txn, &db)).await?
        }
        Statement::ShowDatabases { .. } => Box::pin(show_databases(node, txn)).await?,
        Statement::ShowColumns { show_options, .. } => {
            let Some(ast::ShowStatementIn {
                parent_name: Some(n),
                ..
            }) = &show_options.show_in
            else {
                return Err(SqlError::syntax("SHOW COLUMNS needs FROM <table>"));
            };
            Box::pin(show_columns(node, txn, database, n)).await?
        }
        Statement::ShowCreate {
            obj_type: ast::ShowCreateObject::Table | ast::ShowCreateObject::View,
            obj_name,
        } => Box::pin(show_create(node, txn, database, obj_name)).await?,
        Statement::Analyze(a) => {
            let Some(table) = &a.table_name else {
                // Every table of the current database, as PostgreSQL does.
                for t in node.catalog.list_tables(txn, database).await? {
                    if t.is_view() || t.is_sequence() {
                        continue;
                    }
                    crate::stats::collect::collect(
                        &node.db,
                        &t,
                        &crate::stats::collect::Request {
                            name: crate::stats::collect::AUTO_STATS_NAME.to_string(),
                            columns: Vec::new(),
                        },
                    )
                    .await?;
                    node.stats.invalidate(t.id);
                }
                return Ok(Some(QueryOutput::command("ANALYZE")));
            };
            let columns: Vec<String> = a.columns.iter().map(crate::parse::normalize).collect();
            let target = table.to_string();
            Box::pin(create_statistics(
                node,
                txn,
                database,
                &target,
                crate::stats::collect::AUTO_STATS_NAME.to_string(),
                &columns,
            ))
            .await?;
            QueryOutput::command("ANALYZE")
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}

// ---------------------------------------------------------------------------
// Names.

/// An identifier as PostgreSQL folds it: lower case unless quoted.
pub fn ident(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// The parts of a (possibly qualified) name, folded.
pub fn name_parts(n: &ObjectName) -> Vec<String> {
    n.0.iter()
        .map(|p| match p.as_ident() {
            Some(i) => ident(i),
            None => p.to_string(),
        })
        .collect()
}

/// A table name resolved against the session's database: `t`, `public.t`,
/// `db.t` (CockroachDB) or `db.public.t`.
struct Qualified {
    database: String,
    name: String,
}

fn qualify(database: &str, n: &ObjectName) -> SqlResult<Qualified> {
    let parts = name_parts(n);
    match parts.as_slice() {
        [t] => Ok(Qualified {
            database: database.to_string(),
            name: t.clone(),
        }),
        [s, t] if s == "public" => Ok(Qualified {
            database: database.to_string(),
            name: t.clone(),
        }),
        [db, t] => Ok(Qualified {
            database: db.clone(),
            name: t.clone(),
        }),
        [db, s, t] if s == "public" => Ok(Qualified {
            database: db.clone(),
            name: t.clone(),
        }),
        [_, s, _] => Err(SqlError::new(
            codes::INVALID_SCHEMA_NAME,
            format!("schema \"{s}\" does not exist"),
        )),
        _ => Err(SqlError::syntax(format!("invalid name: {n}"))),
    }
}

async fn resolve(
    node: &SqlNode,
    txn: &mut Txn,
    q: &Qualified,
) -> SqlResult<Option<Arc<TableDesc>>> {
    node.catalog
        .resolve_table(txn, &q.database, None, &q.name)
        .await
}

async fn require_table(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    n: &ObjectName,
) -> SqlResult<TableDesc> {
    let q = qualify(database, n)?;
    match resolve(node, txn, &q).await? {
        Some(t) => node.catalog.table_for_update(txn, t.id).await,
        None => Err(SqlError::undefined_table(&q.name)),
    }
}

fn not_a(kind: &str, name: &str) -> SqlError {
    SqlError::new(
        codes::WRONG_OBJECT_TYPE,
        format!("\"{name}\" is not a {kind}"),
    )
}

fn require_plain_table(t: &TableDesc) -> SqlResult<()> {
    if t.is_view() || t.is_sequence() {
        Err(not_a("table", &t.name))
    } else {
        Ok(())
    }
}

fn column_id(t: &TableDesc, name: &str) -> SqlResult<ColumnId> {
    t.column_by_name(name)
        .map(|c| c.id)
        .ok_or_else(|| SqlError::undefined_column(name))
}

// ---------------------------------------------------------------------------
// Types.

/// The column type of a type name, CockroachDB style (`INT` is 8 bytes), and
/// whether it is a SERIAL pseudo-type.
pub fn column_type(dt: &DataType) -> SqlResult<(SqlType, bool)> {
    match dt {
        DataType::Int(_) | DataType::Integer(_) => Ok((SqlType::Int8, false)),
        DataType::Custom(name, mods) => {
            let n = name_parts(name).join(".");
            match n.as_str() {
                "serial" | "serial2" | "serial4" | "serial8" | "smallserial" | "bigserial" => {
                    Ok((SqlType::Int8, true))
                }
                "string" if !mods.is_empty() => {
                    let len = mods.first().and_then(|m| m.to_string().parse::<u32>().ok());
                    Ok((SqlType::Varchar(len), false))
                }
                _ => Ok((crate::plan::bind::sql_type_of(dt)?, false)),
            }
        }
        DataType::String(Some(n)) => Ok((SqlType::Varchar(u32::try_from(*n).ok()), false)),
        // elements as columns: `INT[]` is INT8[] (CockroachDB)
        DataType::Array(
            sqlparser::ast::ArrayElemTypeDef::SquareBracket(inner, _)
            | sqlparser::ast::ArrayElemTypeDef::Qualified(inner, _),
        ) => match column_type(inner)? {
            (_, true) => Err(SqlError::unsupported("arrays of serial are not supported")),
            (e, false) => Ok((SqlType::array_of(e), false)),
        },
        _ => Ok((crate::plan::bind::sql_type_of(dt)?, false)),
    }
}

/// The name of a type as CockroachDB's SHOW COLUMNS prints it.
pub fn type_name(ty: SqlType) -> String {
    match ty {
        SqlType::Int2 => "INT2".into(),
        SqlType::Int4 => "INT4".into(),
        SqlType::Int8 => "INT8".into(),
        SqlType::Float4 => "FLOAT4".into(),
        SqlType::Float8 => "FLOAT8".into(),
        SqlType::Bool => "BOOL".into(),
        SqlType::Text => "STRING".into(),
        SqlType::Varchar(Some(n)) => format!("VARCHAR({n})"),
        SqlType::Varchar(None) => "VARCHAR".into(),
        SqlType::Char(n) => format!("CHAR({n})"),
        SqlType::Bytes => "BYTES".into(),
        SqlType::Decimal(None) => "DECIMAL".into(),
        SqlType::Decimal(Some((p, s))) => format!("DECIMAL({p},{s})"),
        SqlType::Date => "DATE".into(),
        SqlType::Time => "TIME".into(),
        SqlType::Inet => "INET".into(),
        SqlType::Timestamp => "TIMESTAMP".into(),
        SqlType::TimestampTz => "TIMESTAMPTZ".into(),
        SqlType::Interval => "INTERVAL".into(),
        SqlType::Uuid => "UUID".into(),
        SqlType::Jsonb => "JSONB".into(),
        SqlType::Array(e) => format!("{}[]", type_name(*e)),
        other => other.to_string().to_uppercase(),
    }
}

fn check_indexable(t: &TableDesc, col: ColumnId) -> SqlResult<()> {
    if let Some(c) = t.column_by_id(col)
        && (c.ty == SqlType::Jsonb || c.ty.element().is_some())
    {
        // TODO(issue 4): array key encoding (forward and inverted indexes).
        return Err(SqlError::unsupported(format!(
            "column {} is of type {} and thus is not indexable",
            c.name, c.ty
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Building table descriptors.

/// An index (or UNIQUE / PRIMARY KEY constraint) not yet added to a table.
#[derive(Clone, Debug)]
struct PendingIndex {
    name: Option<String>,
    unique: bool,
    /// From a UNIQUE constraint (named `_key`) rather than an index (`_idx`).
    constraint: bool,
    columns: Vec<(String, Direction)>,
    storing: Vec<String>,
}

/// A foreign key not yet added.
#[derive(Clone, Debug)]
pub(crate) struct PendingFk {
    name: Option<String>,
    columns: Vec<String>,
    table: ObjectName,
    referenced: Vec<String>,
    on_delete: ReferentialAction,
    on_update: ReferentialAction,
}

fn action(a: &Option<ast::ReferentialAction>) -> ReferentialAction {
    match a {
        None | Some(ast::ReferentialAction::NoAction) => ReferentialAction::NoAction,
        Some(ast::ReferentialAction::Restrict) => ReferentialAction::Restrict,
        Some(ast::ReferentialAction::Cascade) => ReferentialAction::Cascade,
        Some(ast::ReferentialAction::SetNull) => ReferentialAction::SetNull,
        Some(ast::ReferentialAction::SetDefault) => ReferentialAction::SetDefault,
    }
}

fn index_columns(cols: &[IndexColumn]) -> SqlResult<Vec<(String, Direction)>> {
    cols.iter()
        .map(|c| {
            let name = match &c.column.expr {
                Expr::Identifier(i) => ident(i),
                Expr::CompoundIdentifier(parts) if !parts.is_empty() => {
                    ident(&parts[parts.len() - 1])
                }
                other => {
                    // TODO(issue 4): expression indexes.
                    return Err(SqlError::unsupported(format!(
                        "index on an expression: {other}"
                    )));
                }
            };
            let dir = match c.column.options.sort {
                Some(OrderBySort::Desc) => Direction::Descending,
                _ => Direction::Ascending,
            };
            Ok((name, dir))
        })
        .collect()
}

/// What one table's CREATE statement (or ALTER … ADD) asks for.
#[derive(Default)]
struct Pending {
    pk: Option<(Option<String>, Vec<(String, Direction)>)>,
    indexes: Vec<PendingIndex>,
    fks: Vec<PendingFk>,
    checks: Vec<(Option<String>, String)>,
    /// The sequences identity columns take their values from, to create.
    identities: Vec<IdentitySequence>,
}

/// The sequence behind an identity column: `<table>_<column>_seq` (see
/// [`owned_sequence_name`]), owned by the column, so it goes with it.
#[derive(Clone, Debug)]
pub(crate) struct IdentitySequence {
    name: String,
    max: i64,
    /// The column's id.
    column: u32,
}

/// The name of the sequence an identity column of `table` owns.
fn owned_sequence_name(table: &str, column: &str) -> String {
    crate::catalog::owned_sequence_name(table, column)
}

impl Pending {
    fn set_pk(
        &mut self,
        name: Option<String>,
        cols: Vec<(String, Direction)>,
        table: &str,
    ) -> SqlResult<()> {
        if self.pk.is_some() {
            return Err(SqlError::new(
                codes::INVALID_TABLE_DEFINITION,
                format!("multiple primary keys for table \"{table}\" are not allowed"),
            ));
        }
        self.pk = Some((name, cols));
        Ok(())
    }

    fn add_constraint(&mut self, c: &TableConstraint, table: &str) -> SqlResult<()> {
        match c {
            TableConstraint::PrimaryKey(pk) => self.set_pk(
                pk.name.as_ref().map(ident),
                index_columns(&pk.columns)?,
                table,
            )?,
            TableConstraint::Unique(u) => self.indexes.push(PendingIndex {
                name: u.name.as_ref().or(u.index_name.as_ref()).map(ident),
                unique: true,
                constraint: true,
                columns: index_columns(&u.columns)?,
                storing: u.include.iter().map(ident).collect(),
            }),
            TableConstraint::Index(ix) => {
                // CockroachDB's `[UNIQUE] INDEX name (cols) [STORING (cols)]`
                // inside CREATE TABLE (see parse.rs).
                let mut unique = false;
                let mut storing = Vec::new();
                for o in &ix.index_options {
                    if let ast::IndexOption::Comment(s) = o {
                        if s == parse::UNIQUE_INDEX_MARKER {
                            unique = true;
                        } else if let Some(list) = s.strip_prefix(parse::STORING_MARKER) {
                            storing = list
                                .split('\0')
                                .filter(|s| !s.is_empty())
                                .map(str::to_string)
                                .collect();
                        }
                    }
                }
                self.indexes.push(PendingIndex {
                    name: ix.name.as_ref().map(ident),
                    unique,
                    constraint: false,
                    columns: index_columns(&ix.columns)?,
                    storing,
                })
            }
            TableConstraint::ForeignKey(fk) => self.fks.push(PendingFk {
                name: fk.name.as_ref().map(ident),
                columns: fk.columns.iter().map(ident).collect(),
                table: fk.foreign_table.clone(),
                referenced: fk.referred_columns.iter().map(ident).collect(),
                on_delete: action(&fk.on_delete),
                on_update: action(&fk.on_update),
            }),
            TableConstraint::Check(ch) => self
                .checks
                .push((ch.name.as_ref().map(ident), ch.expr.to_string())),
            other => {
                return Err(SqlError::unsupported(format!("constraint: {other}")));
            }
        }
        Ok(())
    }
}

/// Turns a column definition into a column; its inline constraints go to
/// `pending`.
fn column_desc(t: &mut TableDesc, def: &ColumnDef, pending: &mut Pending) -> SqlResult<ColumnDesc> {
    let name = ident(&def.name);
    if let DataType::Custom(n, _) = &def.data_type
        && def.name.quote_style.is_none()
        && matches!(
            def.name.value.to_lowercase().as_str(),
            "index" | "family" | "unique"
        )
        && !name_parts(n).is_empty()
    {
        return Err(SqlError::unsupported(format!("table element: {def}")));
    }
    let (ty, serial) = column_type(&def.data_type)?;
    let mut c = ColumnDesc {
        id: t.next_column_id,
        name: name.clone(),
        ty,
        nullable: !serial,
        default: serial.then(|| "unique_rowid()".to_string()),
        hidden: false,
        comment: None,
        generated: None,
    };
    t.next_column_id += 1;
    for o in &def.options {
        let cname = o.name.as_ref().map(ident);
        match &o.option {
            ColumnOption::Null => c.nullable = true,
            ColumnOption::NotNull => c.nullable = false,
            ColumnOption::Default(e) => c.default = Some(e.to_string()),
            ColumnOption::PrimaryKey(_) => {
                pending.set_pk(cname, vec![(name.clone(), Direction::Ascending)], &t.name)?
            }
            ColumnOption::Unique(_) => pending.indexes.push(PendingIndex {
                name: cname,
                unique: true,
                constraint: true,
                columns: vec![(name.clone(), Direction::Ascending)],
                storing: Vec::new(),
            }),
            ColumnOption::ForeignKey(fk) => pending.fks.push(PendingFk {
                name: cname.or_else(|| fk.name.as_ref().map(ident)),
                columns: vec![name.clone()],
                table: fk.foreign_table.clone(),
                referenced: fk.referred_columns.iter().map(ident).collect(),
                on_delete: action(&fk.on_delete),
                on_update: action(&fk.on_update),
            }),
            ColumnOption::Check(ch) => pending.checks.push((
                cname.or_else(|| ch.name.as_ref().map(ident)),
                ch.expr.to_string(),
            )),
            ColumnOption::Collation(_) | ColumnOption::Comment(_) => {}
            // A stored generated column: its expression is checked once the
            // table's columns are all known (`check_generated_columns`).
            ColumnOption::Generated {
                generation_expr: Some(expr),
                generation_expr_mode,
                generated_keyword,
                ..
            } => {
                if !generated_keyword {
                    return Err(SqlError::syntax(format!(
                        "syntax error at or near \"AS\" (column \"{name}\")"
                    )));
                }
                if !matches!(
                    generation_expr_mode,
                    Some(ast::GeneratedExpressionMode::Stored)
                ) {
                    return Err(SqlError::unsupported(format!(
                        "virtual generated columns (column \"{name}\"): write STORED"
                    )));
                }
                c.generated = Some(Generated::Stored(expr.to_string()));
            }
            // Identity columns take their values from a sequence of their
            // own (1, 2, 3 …, as in PostgreSQL), created with the table and
            // dropped with it; GENERATED ALWAYS refuses values a statement
            // gives (428C9) unless it says OVERRIDING SYSTEM VALUE.
            // TODO(issue 13): the SEQUENCE options.
            ColumnOption::Generated {
                generated_as:
                    generated_as @ (ast::GeneratedAs::Always | ast::GeneratedAs::ByDefault),
                generation_expr: None,
                ..
            } => {
                c.generated = Some(match generated_as {
                    ast::GeneratedAs::Always => Generated::IdentityAlways,
                    _ => Generated::IdentityByDefault,
                });
                let max = match c.ty {
                    SqlType::Int2 => i64::from(i16::MAX),
                    SqlType::Int4 => i64::from(i32::MAX),
                    SqlType::Int8 => i64::MAX,
                    other => {
                        return Err(SqlError::new(
                            codes::INVALID_PARAMETER_VALUE,
                            format!(
                                "identity column type must be smallint, integer, or bigint (column \"{name}\" is {other})"
                            ),
                        ));
                    }
                };
                let seq = owned_sequence_name(&t.name, &name);
                c.nullable = false;
                c.default = Some(nextval_default(&seq));
                pending.identities.push(IdentitySequence {
                    name: seq,
                    max,
                    column: c.id,
                });
            }
            other => {
                return Err(SqlError::unsupported(format!("column option: {other}")));
            }
        }
    }
    let has_default = serial
        || def
            .options
            .iter()
            .any(|o| matches!(o.option, ColumnOption::Default(_)));
    if has_default && c.generated.is_some() {
        let what = if c.is_identity() {
            "identity"
        } else {
            "generation expression"
        };
        return Err(SqlError::syntax(format!(
            "both default and {what} specified for column \"{name}\" of table \"{}\"",
            t.name
        )));
    }
    Ok(c)
}

/// Checks the expressions of `t`'s stored generated columns, as PostgreSQL
/// does at CREATE TABLE: each reads only the row's other, non-generated
/// columns (42703 for an unknown one, 42P17 for a generated one), calls no
/// volatile function (42P17), and holds no subquery (0A000); the binder
/// refuses aggregates and window functions outside a query.
pub(crate) fn check_generated_columns(t: &TableDesc) -> SqlResult<()> {
    let tables = crate::plan::bind::TableMap::new();
    let mut binder = crate::plan::Binder::new(&tables, &[]);
    for col in &t.columns {
        let Some(text) = col.generation_expr() else {
            continue;
        };
        let expr = crate::plan::dml::parse_stored_expr(text)?;
        let mut problem: Option<SqlError> = None;
        let _ = sqlparser::ast::visit_expressions(&expr, |e| {
            let found = match e {
                ast::Expr::Subquery(_)
                | ast::Expr::Exists { .. }
                | ast::Expr::In {
                    target: ast::InTarget::Subquery(_),
                    ..
                } => Some(SqlError::unsupported(
                    "cannot use subquery in column generation expression",
                )),
                ast::Expr::Identifier(id) => generated_reference(t, &ident(id)),
                ast::Expr::CompoundIdentifier(ids) => {
                    ids.last().and_then(|id| generated_reference(t, &ident(id)))
                }
                _ => None,
            };
            match found {
                Some(err) => {
                    problem = Some(err);
                    ControlFlow::Break(())
                }
                None => ControlFlow::Continue(()),
            }
        });
        if let Some(err) = problem {
            return Err(err);
        }
        let scope = crate::plan::dml::table_scope(t, &t.name);
        let bound = binder.bind_expr(&expr, &scope)?;
        if calls_volatile(&bound) {
            return Err(SqlError::new(
                codes::INVALID_OBJECT_DEFINITION,
                "generation expression is not immutable",
            ));
        }
        binder
            .coerce(bound, col.ty, "generated column")
            .map_err(|_| {
                SqlError::datatype_mismatch(format!(
                    "column \"{}\" is of type {} but default expression is of another type",
                    col.name, col.ty
                ))
            })?;
    }
    Ok(())
}

/// Whether a bound expression calls a volatile function (or `nextval`),
/// which stored expressions may not.
fn calls_volatile(bound: &crate::plan::Scalar) -> bool {
    let mut volatile = false;
    crate::plan::norm::visit(bound, &mut |n| {
        if let crate::plan::Scalar::Func { name, .. } = n {
            volatile |= crate::plan::is_volatile(name) || name == "nextval";
        }
    });
    volatile
}

/// The stored expression `text` with its references to column `old`
/// naming `new` instead.
fn rename_column_in_expr(text: &str, old: &str, new: &str) -> SqlResult<String> {
    let mut expr = crate::plan::dml::parse_stored_expr(text)?;
    let renamed = || {
        if new
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
            && new.chars().next().is_some_and(|ch| !ch.is_ascii_digit())
        {
            ast::Ident::new(new)
        } else {
            ast::Ident::with_quote('"', new)
        }
    };
    let _ = sqlparser::ast::visit_expressions_mut(&mut expr, |e| {
        match e {
            ast::Expr::Identifier(id) if ident(id) == old => *id = renamed(),
            ast::Expr::CompoundIdentifier(ids) => {
                if let Some(last) = ids.last_mut()
                    && ident(last) == old
                {
                    *last = renamed();
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(expr.to_string())
}

/// 42P17 when `name` is a generated column of `t`.
fn generated_reference(t: &TableDesc, name: &str) -> Option<SqlError> {
    let col = t.columns.iter().find(|c| c.name == name)?;
    col.generation_expr().map(|_| {
        SqlError::new(
            codes::INVALID_OBJECT_DEFINITION,
            format!("cannot use generated column \"{name}\" in column generation expression"),
        )
        .with_detail("A generated column cannot reference another generated column.")
    })
}

/// A name not used by any index or constraint of `t`, PostgreSQL style
/// (`t_a_b_key`, `t_a_idx`, `t_a_fkey`, `t_check`).
fn default_name(t: &TableDesc, cols: &[String], suffix: &str) -> String {
    let base = if cols.is_empty() {
        format!("{}_{suffix}", t.name)
    } else {
        format!("{}_{}_{suffix}", t.name, cols.join("_"))
    };
    let taken = |n: &str| {
        t.any_index_named(n)
            || t.foreign_keys.iter().any(|f| f.name == n)
            || t.checks.iter().any(|c| c.name == n)
    };
    if !taken(&base) {
        return base;
    }
    (1..)
        .map(|i| format!("{base}{i}"))
        .find(|n| !taken(n))
        .unwrap_or(base)
}

fn constraint_name_taken(t: &TableDesc, name: &str) -> bool {
    t.any_index_named(name)
        || t.foreign_keys.iter().any(|f| f.name == name)
        || t.checks.iter().any(|c| c.name == name)
}

/// 55000 when `t` is in the middle of an online primary key change (no other
/// index may be added or dropped until it is done).
fn refuse_during_primary_key_change(t: &TableDesc) -> SqlResult<()> {
    if t.new_primary.is_some() {
        return Err(SqlError::new(
            codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "table \"{}\" is being changed: its primary key is being rebuilt",
                t.name
            ),
        )
        .with_hint("try again when ALTER TABLE … ADD PRIMARY KEY has finished"));
    }
    Ok(())
}

/// 55000 when indexes of `t` are being built online (`what` cannot run
/// meanwhile).
fn refuse_during_index_build(t: &TableDesc, what: &str) -> SqlResult<()> {
    if let Some(m) = t.mutations.first() {
        return Err(SqlError::new(
            codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "cannot {what} of table \"{}\" while index \"{}\" is being built",
                t.name, m.name
            ),
        ));
    }
    Ok(())
}

/// Adds a (public) index to `t` (not written yet); returns its id.
fn add_index(t: &mut TableDesc, p: &PendingIndex) -> SqlResult<IndexId> {
    refuse_during_primary_key_change(t)?;
    if p.columns.is_empty() {
        return Err(SqlError::syntax("an index needs at least one column"));
    }
    let mut columns = Vec::new();
    let mut directions = Vec::new();
    for (c, d) in &p.columns {
        let id = column_id(t, c)?;
        if columns.contains(&id) {
            return Err(SqlError::new(
                codes::DUPLICATE_COLUMN,
                format!("column \"{c}\" appears twice in index definition"),
            ));
        }
        check_indexable(t, id)?;
        columns.push(id);
        directions.push(*d);
    }
    let mut storing = Vec::new();
    for c in &p.storing {
        let id = column_id(t, c)?;
        if columns.contains(&id) || t.primary_index.columns.contains(&id) {
            // Already in every entry.
            continue;
        }
        if !storing.contains(&id) {
            storing.push(id);
        }
    }
    let names: Vec<String> = p.columns.iter().map(|(c, _)| c.clone()).collect();
    let name = match &p.name {
        Some(n) => {
            if constraint_name_taken(t, n) {
                return Err(SqlError::new(
                    codes::DUPLICATE_TABLE,
                    format!("relation \"{n}\" already exists"),
                ));
            }
            n.clone()
        }
        None => default_name(t, &names, if p.constraint { "key" } else { "idx" }),
    };
    let id = t.next_index_id;
    t.next_index_id += 1;
    t.indexes.push(IndexDesc {
        id,
        name,
        unique: p.unique,
        columns,
        directions,
        storing,
        state: IndexState::Public,
        comment: None,
        constraint_comment: None,
        predicate: None,
    });
    Ok(id)
}

/// Adds an index to `t` as a write-only mutation (not written yet); returns
/// its id.
fn add_write_only_index(t: &mut TableDesc, p: &PendingIndex) -> SqlResult<IndexId> {
    let id = add_index(t, p)?;
    if let Some(pos) = t.indexes.iter().position(|i| i.id == id) {
        let mut ix = t.indexes.remove(pos);
        ix.state = IndexState::WriteOnly;
        t.mutations.push(ix);
    }
    Ok(id)
}

/// Sets the primary key of a new table, or gives it the hidden `rowid`.
fn set_primary_key(
    t: &mut TableDesc,
    pk: Option<(Option<String>, Vec<(String, Direction)>)>,
) -> SqlResult<()> {
    match pk {
        Some((name, cols)) => {
            let mut ids = Vec::new();
            let mut dirs = Vec::new();
            for (c, d) in &cols {
                let id = column_id(t, c)?;
                if ids.contains(&id) {
                    return Err(SqlError::new(
                        codes::DUPLICATE_COLUMN,
                        format!("column \"{c}\" appears twice in primary key constraint"),
                    ));
                }
                check_indexable(t, id)?;
                ids.push(id);
                dirs.push(*d);
                if let Some(col) = t.columns.iter_mut().find(|x| x.id == id) {
                    col.nullable = false;
                }
            }
            t.primary_index.columns = ids;
            t.primary_index.directions = dirs;
            if let Some(n) = name {
                t.primary_index.name = n;
            }
        }
        None => {
            let id = t.next_column_id;
            t.next_column_id += 1;
            t.columns.push(ColumnDesc {
                id,
                name: "rowid".into(),
                ty: SqlType::Int8,
                nullable: false,
                default: Some("unique_rowid()".into()),
                hidden: true,
                comment: None,
                generated: None,
            });
            t.primary_index.columns = vec![id];
            t.primary_index.directions = vec![Direction::Ascending];
        }
    }
    Ok(())
}

/// Adds a foreign key to `t`; the referenced table (unless it is `t`) is
/// updated in `parents`. No index is created on the referencing columns (as
/// in PostgreSQL and CockroachDB): deletes and key updates of parent rows
/// look children up through one when it exists, else scan the child table.
async fn add_foreign_key(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    t: &mut TableDesc,
    fk: &PendingFk,
    parents: &mut HashMap<DescId, TableDesc>,
) -> SqlResult<()> {
    let q = qualify(database, &fk.table)?;
    let self_ref =
        q.name == t.name && node.catalog.database_id(txn, &q.database).await? == Some(t.parent_id);
    let parent: TableDesc = if self_ref {
        t.clone()
    } else {
        match resolve(node, txn, &q).await? {
            Some(p) => match parents.get(&p.id) {
                Some(p) => p.clone(),
                None => node.catalog.table_for_update(txn, p.id).await?,
            },
            None => return Err(SqlError::undefined_table(&q.name)),
        }
    };
    require_plain_table(&parent)?;
    let columns = fk
        .columns
        .iter()
        .map(|c| column_id(t, c))
        .collect::<SqlResult<Vec<_>>>()?;
    let referenced = if fk.referenced.is_empty() {
        parent.primary_index.columns.clone()
    } else {
        fk.referenced
            .iter()
            .map(|c| column_id(&parent, c))
            .collect::<SqlResult<Vec<_>>>()?
    };
    if columns.len() != referenced.len() {
        return Err(SqlError::new(
            codes::INVALID_FOREIGN_KEY,
            "number of referencing and referenced columns for foreign key disagree",
        ));
    }
    for (c, r) in columns.iter().zip(&referenced) {
        let (Some(cc), Some(rc)) = (t.column_by_id(*c), parent.column_by_id(*r)) else {
            continue;
        };
        let compatible = cc.ty == rc.ty
            || (cc.ty.is_integer() && rc.ty.is_integer())
            || (cc.ty.is_string() && rc.ty.is_string())
            || (matches!(cc.ty, SqlType::Decimal(_)) && matches!(rc.ty, SqlType::Decimal(_)));
        if !compatible {
            return Err(SqlError::datatype_mismatch(format!(
                "foreign key constraint cannot be implemented: key columns \"{}\" and \"{}\" are of incompatible types: {} and {}",
                cc.name, rc.name, cc.ty, rc.ty
            )));
        }
    }
    let names: Vec<String> = fk.columns.clone();
    let name = match &fk.name {
        Some(n) if constraint_name_taken(t, n) => {
            return Err(SqlError::new(
                codes::DUPLICATE_OBJECT,
                format!(
                    "constraint \"{n}\" for relation \"{}\" already exists",
                    t.name
                ),
            ));
        }
        Some(n) => n.clone(),
        None => default_name(t, &names, "fkey"),
    };
    let desc = ForeignKeyDesc {
        name: name.clone(),
        columns,
        referenced_table: parent.id,
        referenced_columns: referenced,
        on_delete: fk.on_delete,
        on_update: fk.on_update,
        comment: None,
    };
    // The referenced columns must be the primary key or have a unique index.
    rowenc::referenced_index(if self_ref { t } else { &parent }, &desc)?;
    if matches!(desc.on_delete, ReferentialAction::SetNull)
        || matches!(desc.on_update, ReferentialAction::SetNull)
    {
        for c in &desc.columns {
            if let Some(col) = t.column_by_id(*c)
                && !col.nullable
            {
                return Err(SqlError::new(
                    codes::INVALID_FOREIGN_KEY,
                    format!(
                        "cannot add a SET NULL cascading action on column \"{}\" which has a NOT NULL constraint",
                        col.name
                    ),
                ));
            }
        }
    }
    t.foreign_keys.push(desc.clone());
    if self_ref {
        t.referenced_by.push((t.id, name));
    } else {
        let mut parent = parent;
        parent.referenced_by.push((t.id, name));
        parents.insert(parent.id, parent);
    }
    Ok(())
}

fn add_check(t: &mut TableDesc, name: Option<String>, expr: String) -> SqlResult<()> {
    let name = match name {
        Some(n) if constraint_name_taken(t, &n) => {
            return Err(SqlError::new(
                codes::DUPLICATE_OBJECT,
                format!(
                    "constraint \"{n}\" for relation \"{}\" already exists",
                    t.name
                ),
            ));
        }
        Some(n) => n,
        // PostgreSQL's name: `t_col_check` when the expression reads one
        // column, else `t_check`.
        None => default_name(t, &check_columns(t, &expr), "check"),
    };
    t.checks.push(CheckDesc {
        name,
        expr,
        comment: None,
    });
    Ok(())
}

/// Whether every value of type `from` is stored, compared and printed the
/// same as a value of type `to` (so ALTER COLUMN TYPE only changes the
/// descriptor, as CockroachDB does for these conversions).
fn widens(from: SqlType, to: SqlType) -> bool {
    use SqlType as T;
    let rank = |t: T| match t {
        T::Int2 => 1,
        T::Int4 => 2,
        T::Int8 => 3,
        _ => 0,
    };
    match (from, to) {
        _ if from == to => true,
        (T::Int2 | T::Int4, T::Int4 | T::Int8) => rank(to) > rank(from),
        (T::Varchar(_), T::Text | T::Varchar(None)) | (T::Text, T::Varchar(None)) => true,
        (T::Varchar(Some(a)), T::Varchar(Some(b))) => b >= a,
        (T::Decimal(_), T::Decimal(None)) => true,
        (T::Decimal(Some((p1, s1))), T::Decimal(Some((p2, s2)))) => s1 == s2 && p2 >= p1,
        _ => false,
    }
}

/// Whether a type change keeps every stored value's encoding but needs the
/// values checked: a narrower integer, a shorter VARCHAR (or TEXT to
/// VARCHAR(n)). Keys and row values encode integers and strings without
/// their declared width.
fn narrows_in_place(from: SqlType, to: SqlType) -> bool {
    use SqlType as T;
    matches!(
        (from, to),
        (T::Int2 | T::Int4 | T::Int8, T::Int2 | T::Int4 | T::Int8)
            | (T::Text | T::Varchar(_), T::Varchar(Some(_)))
    )
}

/// `USING` that changes no value: the column itself, or the column cast to
/// the new type (`USING "id"::bigint`, as Django writes it).
fn using_is_plain_cast(using: &Expr, column: &str, to: SqlType) -> bool {
    let is_column = |e: &Expr| match e {
        Expr::Identifier(i) => ident(i) == column,
        Expr::Nested(inner) => matches!(inner.as_ref(), Expr::Identifier(i) if ident(i) == column),
        _ => false,
    };
    match using {
        Expr::Cast {
            expr, data_type, ..
        } => is_column(expr) && column_type(data_type).is_ok_and(|(t, serial)| t == to && !serial),
        Expr::Nested(inner) => using_is_plain_cast(inner, column, to),
        e => is_column(e),
    }
}

/// Checks that every stored value of column `col` of `t` fits type `to`
/// (22003 for an integer out of its range, 22001 for a string too long).
async fn check_values_fit(
    txn: &mut Txn,
    t: &TableDesc,
    col: ColumnId,
    to: SqlType,
) -> SqlResult<()> {
    let Some(pos) = t.column_position(col) else {
        return Ok(());
    };
    let mut scanner = rowenc::full_scan(Arc::new(t.clone()));
    while let Some(rows) = scanner.next_batch(txn, rowenc::BACKFILL_CHUNK).await? {
        for row in &rows {
            match (&row[pos], to) {
                (Value::Int(v), SqlType::Int2) if i16::try_from(*v).is_err() => {
                    return Err(SqlError::new(
                        codes::NUMERIC_VALUE_OUT_OF_RANGE,
                        "smallint out of range",
                    ));
                }
                (Value::Int(v), SqlType::Int4) if i32::try_from(*v).is_err() => {
                    return Err(SqlError::new(
                        codes::NUMERIC_VALUE_OUT_OF_RANGE,
                        "integer out of range",
                    ));
                }
                (Value::Text(s), SqlType::Varchar(Some(n))) if s.chars().count() > n as usize => {
                    return Err(SqlError::new(
                        codes::STRING_DATA_RIGHT_TRUNCATION,
                        format!("value too long for type character varying({n})"),
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The columns of `t` a stored expression reads, each once.
fn expr_columns(t: &TableDesc, expr: &str) -> Vec<String> {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let Ok(parsed) = sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(expr)
        .and_then(|mut p| p.parse_expr())
    else {
        return Vec::new();
    };
    let mut found: Vec<String> = Vec::new();
    let _ = sqlparser::ast::visit_expressions(&parsed, |e| {
        let name = match e {
            Expr::Identifier(i) => Some(ident(i)),
            Expr::CompoundIdentifier(parts) => parts.last().map(ident),
            _ => None,
        };
        if let Some(n) = name
            && t.column_by_name(&n).is_some()
            && !found.contains(&n)
        {
            found.push(n);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

/// The column a CHECK expression reads, when it reads exactly one (for its
/// default name).
fn check_columns(t: &TableDesc, expr: &str) -> Vec<String> {
    let found = expr_columns(t, expr);
    if found.len() == 1 { found } else { Vec::new() }
}

// ---------------------------------------------------------------------------
// Databases.

async fn create_database(
    node: &SqlNode,
    txn: &mut Txn,
    name: &ObjectName,
    if_not_exists: bool,
) -> SqlResult<QueryOutput> {
    let name = name_parts(name).join(".");
    if if_not_exists && node.catalog.database_id(txn, &name).await?.is_some() {
        return Ok(QueryOutput::command("CREATE DATABASE"));
    }
    node.catalog.create_database(txn, &name).await?;
    Ok(QueryOutput::command("CREATE DATABASE"))
}

async fn drop_database(
    node: &SqlNode,
    txn: &mut Txn,
    current: &str,
    name: &str,
    if_exists: bool,
    cascade: bool,
) -> SqlResult<()> {
    let Some(id) = node.catalog.database_id(txn, name).await? else {
        if if_exists {
            return Ok(());
        }
        return Err(crate::catalog::undefined_database(name));
    };
    if name == current {
        return Err(SqlError::new(
            codes::OBJECT_IN_USE,
            "cannot drop the currently open database",
        ));
    }
    let tables = node.catalog.list_tables(txn, name).await?;
    if !tables.is_empty() && !cascade {
        return Err(SqlError::new(
            codes::DEPENDENT_OBJECTS_STILL_EXIST,
            format!("database \"{name}\" is not empty and RESTRICT was specified"),
        ));
    }
    let ids: HashSet<DescId> = tables.iter().map(|t| t.id).collect();
    for t in &tables {
        // References from other databases' tables go away with this one.
        detach_references(node, txn, t, &ids).await?;
        delete_table(node, txn, t).await?;
    }
    zone::drop_database(txn, id).await?;
    node.catalog.delete_database(txn, id, name).await
}

// ---------------------------------------------------------------------------
// DROP.

async fn drop(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    object_type: ObjectType,
    if_exists: bool,
    names: &[ObjectName],
    cascade: bool,
) -> SqlResult<QueryOutput> {
    let tag = match object_type {
        ObjectType::Database => {
            for n in names {
                let name = name_parts(n).join(".");
                drop_database(node, txn, database, &name, if_exists, cascade).await?;
            }
            "DROP DATABASE"
        }
        ObjectType::Table | ObjectType::View | ObjectType::Sequence => {
            let kind = match object_type {
                ObjectType::Table => "table",
                ObjectType::View => "view",
                _ => "sequence",
            };
            let mut targets = Vec::new();
            for n in names {
                let q = qualify(database, n)?;
                match resolve(node, txn, &q).await? {
                    None if if_exists => {}
                    None => {
                        return Err(match kind {
                            "view" => SqlError::new(
                                codes::UNDEFINED_TABLE,
                                format!("view \"{}\" does not exist", q.name),
                            ),
                            "sequence" => SqlError::new(
                                codes::UNDEFINED_TABLE,
                                format!("sequence \"{}\" does not exist", q.name),
                            ),
                            _ => SqlError::undefined_table(&q.name),
                        });
                    }
                    Some(t) => {
                        let actual = if t.is_view() {
                            "view"
                        } else if t.is_sequence() {
                            "sequence"
                        } else {
                            "table"
                        };
                        if actual != kind {
                            return Err(not_a(kind, &t.name));
                        }
                        targets.push(t.id);
                    }
                }
            }
            drop_relations(node, txn, &targets, cascade).await?;
            match object_type {
                ObjectType::Table => "DROP TABLE",
                ObjectType::View => "DROP VIEW",
                _ => "DROP SEQUENCE",
            }
        }
        ObjectType::Index => {
            for n in names {
                drop_index(node, txn, database, n, if_exists, cascade).await?;
            }
            "DROP INDEX"
        }
        ObjectType::Schema => {
            return Err(SqlError::unsupported("DROP SCHEMA"));
        }
        other => return Err(SqlError::unsupported(format!("DROP {other}"))),
    };
    Ok(QueryOutput::command(tag))
}

/// Drops tables, views and sequences (and, with `cascade`, the views that
/// depend on them and the foreign keys that reference them).
async fn drop_relations(
    node: &SqlNode,
    txn: &mut Txn,
    ids: &[DescId],
    cascade: bool,
) -> SqlResult<()> {
    // The closure of what goes: the targets plus (cascade) dependent views.
    let mut all: Vec<DescId> = Vec::new();
    let mut queue: Vec<DescId> = ids.to_vec();
    while let Some(id) = queue.pop() {
        if all.contains(&id) {
            continue;
        }
        all.push(id);
        let t = node.catalog.table_for_update(txn, id).await?;
        for v in &t.dependent_views {
            if !all.contains(v) {
                if !cascade {
                    let view = node.catalog.table_for_update(txn, *v).await;
                    let vname = view.map(|v| v.name).unwrap_or_else(|_| format!("[{v}]"));
                    return Err(SqlError::new(
                        codes::DEPENDENT_OBJECTS_STILL_EXIST,
                        format!(
                            "cannot drop {} \"{}\" because other objects depend on it",
                            if t.is_view() { "view" } else { "table" },
                            t.name
                        ),
                    )
                    .with_detail(format!("view {vname} depends on {}", t.name))
                    .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
                }
                queue.push(*v);
            }
        }
        if !cascade {
            for (child, fk) in &t.referenced_by {
                if *child != t.id && !ids.contains(child) {
                    let c = node.catalog.table_for_update(txn, *child).await;
                    let cname = c.map(|c| c.name).unwrap_or_default();
                    return Err(SqlError::new(
                        codes::DEPENDENT_OBJECTS_STILL_EXIST,
                        format!(
                            "cannot drop table {} because other objects depend on it",
                            t.name
                        ),
                    )
                    .with_detail(format!(
                        "constraint {fk} on table {cname} depends on table {}",
                        t.name
                    ))
                    .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
                }
            }
        }
    }
    let gone: HashSet<DescId> = all.iter().copied().collect();
    for id in &all {
        let t = node.catalog.table_for_update(txn, *id).await?;
        detach_references(node, txn, &t, &gone).await?;
        delete_table(node, txn, &t).await?;
        for seq in owned_sequences(node, txn, &t).await? {
            if !gone.contains(&seq.id) {
                delete_table(node, txn, &seq).await?;
            }
        }
    }
    Ok(())
}

/// Removes a table's (view's, sequence's) name and descriptor, and schedules
/// its data to be cleared once `txn` commits ([`crate::gc`]): the statement
/// writes O(1) keys, whatever the size of the table.
async fn delete_table(node: &SqlNode, txn: &mut Txn, t: &TableDesc) -> SqlResult<()> {
    node.catalog.delete_table(txn, t).await?;
    zone::drop_table(txn, t).await?;
    if !t.is_view() {
        node.pending_clears
            .schedule(txn, crate::gc::Doomed::Table(t.id));
    }
    Ok(())
}

/// The sequences owned by `t` (its identity columns' and those given
/// `OWNED BY` one of its columns), which go with it, read for update.
async fn owned_sequences(
    node: &SqlNode,
    txn: &mut Txn,
    t: &TableDesc,
) -> SqlResult<Vec<TableDesc>> {
    let mut out = Vec::new();
    for s in node.catalog.owned_sequences(txn, t, None).await? {
        out.push(node.catalog.table_for_update(txn, s.id).await?);
    }
    Ok(out)
}

/// Removes the links other tables (not in `gone`) have to `t`: foreign keys
/// referencing it, its entries in its parents' `referenced_by`, its entry in
/// the `dependent_views` of what it reads.
async fn detach_references(
    node: &SqlNode,
    txn: &mut Txn,
    t: &TableDesc,
    gone: &HashSet<DescId>,
) -> SqlResult<()> {
    let mut changed: HashMap<DescId, TableDesc> = HashMap::new();
    for (child, fk) in &t.referenced_by {
        if gone.contains(child) {
            continue;
        }
        load(node, txn, &mut changed, *child).await?;
        if let Some(c) = changed.get_mut(child) {
            c.foreign_keys.retain(|f| &f.name != fk);
        }
    }
    for fk in &t.foreign_keys {
        let p = fk.referenced_table;
        if gone.contains(&p) {
            continue;
        }
        load(node, txn, &mut changed, p).await?;
        if let Some(parent) = changed.get_mut(&p) {
            parent
                .referenced_by
                .retain(|(c, n)| !(*c == t.id && n == &fk.name));
        }
    }
    for d in &t.depends_on {
        if gone.contains(d) {
            continue;
        }
        // A table that was dropped meanwhile has nothing to update.
        if node.catalog.table_for_update(txn, *d).await.is_err() {
            continue;
        }
        load(node, txn, &mut changed, *d).await?;
        if let Some(x) = changed.get_mut(d) {
            x.dependent_views.retain(|v| *v != t.id);
        }
    }
    if !changed.is_empty() {
        let descs: Vec<TableDesc> = changed.into_values().collect();
        node.catalog.write_tables(txn, &descs).await?;
    }
    Ok(())
}

async fn load(
    node: &SqlNode,
    txn: &mut Txn,
    changed: &mut HashMap<DescId, TableDesc>,
    id: DescId,
) -> SqlResult<()> {
    if let std::collections::hash_map::Entry::Vacant(e) = changed.entry(id) {
        e.insert(node.catalog.table_for_update(txn, id).await?);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// CREATE TABLE.

async fn create_table(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    ct: &CreateTable,
) -> SqlResult<QueryOutput> {
    if let Some(query) = &ct.query {
        return create_table_as(node, txn, database, ct, query).await;
    }
    if ct.like.is_some() || ct.clone.is_some() {
        return Err(SqlError::unsupported("CREATE TABLE LIKE/CLONE"));
    }
    let q = qualify(database, &ct.name)?;
    let db_id = node.catalog.require_database(txn, &q.database).await?;
    if node.catalog.table_id(txn, db_id, &q.name).await?.is_some() {
        if ct.if_not_exists {
            return Ok(QueryOutput::command("CREATE TABLE"));
        }
        return Err(duplicate_table(&q.name));
    }
    let id = node.catalog.allocate_id().await?;
    let (mut t, fks, mut identities) = table_from_create(id, db_id, &q.name, ct)?;
    name_identity_sequences(node, txn, &mut t, &mut identities).await?;
    let mut parents = HashMap::new();
    for fk in &fks {
        add_foreign_key(node, txn, &q.database, &mut t, fk, &mut parents).await?;
    }
    node.catalog.create_table(txn, &t).await?;
    zone::write_span_configs(txn, &t).await?;
    create_identity_sequences(node, txn, db_id, t.id, &identities).await?;
    if !parents.is_empty() {
        let descs: Vec<TableDesc> = parents.into_values().collect();
        node.catalog.write_tables(txn, &descs).await?;
    }
    Ok(QueryOutput::command("CREATE TABLE"))
}

/// The descriptor `CREATE TABLE` describes, as table `id` of database
/// `db_id`: columns, primary key, indexes and checks, with nothing read or
/// written (the foreign keys, which need their parent tables, are returned
/// to be added by the caller). The test catalog of [`crate::opttest`]
/// builds its tables with it too.
pub(crate) fn table_from_create(
    id: DescId,
    db_id: DescId,
    name: &str,
    ct: &CreateTable,
) -> SqlResult<(TableDesc, Vec<PendingFk>, Vec<IdentitySequence>)> {
    let mut t = TableDesc::new(id, db_id, name);
    let mut pending = Pending::default();
    for def in &ct.columns {
        let c = column_desc(&mut t, def, &mut pending)?;
        if t.column_by_name(&c.name).is_some() {
            return Err(SqlError::new(
                codes::DUPLICATE_COLUMN,
                format!("column \"{}\" specified more than once", c.name),
            ));
        }
        t.columns.push(c);
    }
    // No columns at all is allowed (PostgreSQL and CockroachDB, with the
    // hidden rowid).
    for c in &ct.constraints {
        pending.add_constraint(c, &t.name)?;
    }
    set_primary_key(&mut t, pending.pk.take())?;
    for ix in &pending.indexes {
        add_index(&mut t, ix)?;
    }
    for (name, expr) in std::mem::take(&mut pending.checks) {
        add_check(&mut t, name, expr)?;
    }
    check_generated_columns(&t)?;
    Ok((t, pending.fks, pending.identities))
}

/// `CREATE TABLE t [(names)] AS <query>`: a table (with the hidden rowid) of
/// the query's columns, filled by an `INSERT … <query>` in the same
/// transaction.
async fn create_table_as(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    ct: &CreateTable,
    query: &ast::Query,
) -> SqlResult<QueryOutput> {
    let q = qualify(database, &ct.name)?;
    let db_id = node.catalog.require_database(txn, &q.database).await?;
    if node.catalog.table_id(txn, db_id, &q.name).await?.is_some() {
        if ct.if_not_exists {
            return Ok(QueryOutput::command("CREATE TABLE AS"));
        }
        return Err(duplicate_table(&q.name));
    }
    let statement = Statement::Query(Box::new(query.clone()));
    let (_, cols) = crate::plan::describe(node, txn, database, &statement, &[]).await?;
    let cols = cols.unwrap_or_default();
    if !ct.columns.is_empty() && ct.columns.len() > cols.len() {
        return Err(SqlError::syntax(
            "CREATE TABLE AS specifies too many column names",
        ));
    }
    let id = node.catalog.allocate_id().await?;
    let mut t = TableDesc::new(id, db_id, &q.name);
    for (i, c) in cols.iter().enumerate() {
        let name = ct
            .columns
            .get(i)
            .map(|d| ident(&d.name))
            .unwrap_or_else(|| c.name.clone());
        if t.column_by_name(&name).is_some() {
            return Err(SqlError::new(
                codes::DUPLICATE_COLUMN,
                format!("column \"{name}\" specified more than once"),
            ));
        }
        let ty = if c.ty == SqlType::Unknown {
            SqlType::Text
        } else {
            c.ty
        };
        t.columns.push(ColumnDesc {
            id: t.next_column_id,
            name,
            ty,
            nullable: true,
            default: None,
            hidden: false,
            comment: None,
            generated: None,
        });
        t.next_column_id += 1;
    }
    set_primary_key(&mut t, None)?;
    node.catalog.create_table(txn, &t).await?;
    zone::write_span_configs(txn, &t).await?;
    let names: Vec<String> = t
        .columns
        .iter()
        .filter(|c| !c.hidden)
        .map(|c| quote_ident(&c.name))
        .collect();
    let insert = format!(
        "INSERT INTO {}.{} ({}) {query}",
        quote_ident(&q.database),
        quote_ident(&q.name),
        names.join(", ")
    );
    let mut statements = parse::parse_statements(&insert)?;
    let Some(stmt) = statements.pop() else {
        return Err(SqlError::internal("CREATE TABLE AS: no INSERT"));
    };
    let out = run_statement(node, txn, database, &stmt).await?;
    let n = out.tag.rsplit(' ').next().unwrap_or("0").to_string();
    Ok(QueryOutput::command(format!("SELECT {n}")))
}

/// Runs a statement (an INSERT) through the executor (boxed: it is large).
fn run_statement<'a>(
    node: &'a Arc<SqlNode>,
    txn: &'a mut Txn,
    database: &'a str,
    stmt: &'a Statement,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = SqlResult<QueryOutput>> + Send + 'a>> {
    // TODO(issue 13): the session's user and settings (statements DDL runs,
    // such as CREATE TABLE AS's query, see the bootstrap role as
    // current_user and default settings).
    Box::pin(async move {
        let settings = crate::settings::Settings::default();
        let session = (
            database,
            tardigrade_sqltypes::catalog_fns::BOOTSTRAP_ROLE.1,
            &settings,
        );
        crate::exec::execute_statement(node, txn, session, stmt, &[], &[], None, None).await
    })
}

/// `"name"` with embedded quotes doubled.
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Refuses a new CHECK constraint that some existing row violates (23514).
async fn validate_check(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    t: &TableDesc,
    check: &CheckDesc,
) -> SqlResult<()> {
    let sql = format!(
        "SELECT 1 FROM {}.{} WHERE NOT ({}) LIMIT 1",
        quote_ident(database),
        quote_ident(&t.name),
        check.expr
    );
    let mut statements = parse::parse_statements(&sql)?;
    let Some(stmt) = statements.pop() else {
        return Ok(());
    };
    let out = run_statement(node, txn, database, &stmt).await?;
    if !out.rows.is_empty() {
        return Err(SqlError::new(
            codes::CHECK_VIOLATION,
            format!(
                "check constraint \"{}\" of relation \"{}\" is violated by some row",
                check.name, t.name
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Indexes.

async fn create_index(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    ci: &CreateIndex,
) -> SqlResult<QueryOutput> {
    if let Some((t, index_id)) = new_index(node, txn, database, ci, false).await? {
        rowenc::backfill_index(txn, &t, index_id).await?;
        node.catalog.write_tables(txn, &[t]).await?;
    }
    Ok(QueryOutput::command("CREATE INDEX"))
}

/// Checks a CREATE INDEX and adds the index to its table's descriptor
/// (public, or write-only for an online build); `None` when it exists and
/// the statement says IF NOT EXISTS.
async fn new_index(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    ci: &CreateIndex,
    write_only: bool,
) -> SqlResult<Option<(TableDesc, IndexId)>> {
    if let Some(u) = &ci.using {
        let u = u.to_string().to_lowercase();
        if u != "btree" && u != "prefix" {
            return Err(SqlError::unsupported(format!("index method {u}")));
        }
    }
    let mut t = require_table(node, txn, database, &ci.table_name).await?;
    require_plain_table(&t)?;
    let name = ci.name.as_ref().and_then(|n| name_parts(n).last().cloned());
    if let Some(n) = &name
        && t.any_index_named(n)
    {
        if ci.if_not_exists {
            return Ok(None);
        }
        return Err(SqlError::new(
            codes::DUPLICATE_TABLE,
            format!("relation \"{n}\" already exists"),
        ));
    }
    // Expression keys and the predicate become columns of the table that
    // the index owns; the rows get their values before the index exists.
    let before = t.clone();
    let mut columns = Vec::with_capacity(ci.columns.len());
    let mut name_words = Vec::with_capacity(ci.columns.len());
    for c in &ci.columns {
        let dir = match c.column.options.sort {
            Some(OrderBySort::Desc) => Direction::Descending,
            _ => Direction::Ascending,
        };
        let key = match plain_column(&c.column.expr) {
            Some(col) => {
                name_words.push(col.clone());
                col
            }
            None => {
                name_words.push(expression_word(&c.column.expr));
                add_index_expression_column(&mut t, &c.column.expr, false)?
            }
        };
        columns.push((key, dir));
    }
    let predicate = match &ci.predicate {
        Some(p) => {
            let col = add_index_expression_column(&mut t, p, true)?;
            t.column_by_name(&col).map(|c| c.id)
        }
        None => None,
    };
    backfill_index_columns(node, txn, database, &before, &t).await?;
    let p = PendingIndex {
        name: Some(name.unwrap_or_else(|| default_name(&t, &name_words, "idx"))),
        unique: ci.unique,
        constraint: false,
        columns,
        storing: ci.include.iter().map(ident).collect(),
    };
    let index_id = if write_only {
        add_write_only_index(&mut t, &p)?
    } else {
        add_index(&mut t, &p)?
    };
    if let Some(ix) = t
        .indexes
        .iter_mut()
        .chain(t.mutations.iter_mut())
        .find(|i| i.id == index_id)
    {
        ix.predicate = predicate;
    }
    Ok(Some((t, index_id)))
}

/// The column an index key names, when it is a plain column reference.
fn plain_column(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(ident(i)),
        Expr::CompoundIdentifier(parts) => parts.last().map(ident),
        Expr::Nested(inner) => plain_column(inner),
        _ => None,
    }
}

/// The word an expression key gives a default index name, as PostgreSQL
/// chooses it: the function's name for a call, `expr` otherwise.
fn expression_word(e: &Expr) -> String {
    match e {
        Expr::Function(f) => name_parts(&f.name)
            .last()
            .cloned()
            .unwrap_or_else(|| "expr".into()),
        Expr::Nested(inner) => expression_word(inner),
        _ => "expr".into(),
    }
}

/// Adds to `t` a hidden column computing `expr` for an index (an
/// expression key, or with `predicate` a partial index's condition, a
/// boolean where NULL counts as false); returns its name. PostgreSQL's
/// rules for index expressions apply: no subqueries (0A000), aggregates or
/// window functions, and only immutable functions (42P17).
fn add_index_expression_column(
    t: &mut TableDesc,
    expr: &Expr,
    predicate: bool,
) -> SqlResult<String> {
    let mut expr = expr;
    while let Expr::Nested(inner) = expr {
        expr = inner;
    }
    let mut subquery = false;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        subquery |= matches!(
            e,
            Expr::Subquery(_)
                | Expr::Exists { .. }
                | Expr::In {
                    target: ast::InTarget::Subquery(_),
                    ..
                }
        );
        ControlFlow::<()>::Continue(())
    });
    let what = if predicate {
        "index predicate"
    } else {
        "index expression"
    };
    if subquery {
        return Err(SqlError::unsupported(format!(
            "cannot use subquery in {what}"
        )));
    }
    let tables = crate::plan::bind::TableMap::new();
    let mut binder = crate::plan::Binder::new(&tables, &[]);
    let scope = crate::plan::dml::table_scope(t, &t.name);
    let bound = binder.bind_expr(expr, &scope)?;
    if calls_volatile(&bound) {
        return Err(SqlError::new(
            codes::INVALID_OBJECT_DEFINITION,
            format!("functions in {what} must be marked IMMUTABLE"),
        ));
    }
    let (ty, text) = if predicate {
        // NULL, like false, keeps the row out ([`IndexDesc::holds_row`]).
        binder.coerce_bool(bound, "WHERE")?;
        (SqlType::Bool, expr.to_string())
    } else {
        // An expression's value has no length or precision limit of its
        // own (`coalesce(varchar30_col, 'a longer text')` is text).
        let ty = match bound.ty() {
            SqlType::Unknown | SqlType::Char(_) => SqlType::Text,
            SqlType::Varchar(_) => SqlType::Varchar(None),
            SqlType::Decimal(_) => SqlType::Decimal(None),
            ty => ty,
        };
        if ty == SqlType::Jsonb || ty.element().is_some() {
            // TODO(issue 13): array and JSONB keys (inverted indexes).
            return Err(SqlError::unsupported(format!(
                "index expression of type {ty} is not indexable"
            )));
        }
        (ty, expr.to_string())
    };
    let base = if predicate {
        "crdb_internal_idx_pred"
    } else {
        "crdb_internal_idx_expr"
    };
    let mut name = base.to_string();
    let mut n = 0;
    while t.column_by_name(&name).is_some() {
        n += 1;
        name = format!("{base}_{n}");
    }
    let id = t.next_column_id;
    t.next_column_id += 1;
    t.columns.push(ColumnDesc {
        id,
        name: name.clone(),
        ty,
        nullable: true,
        default: None,
        hidden: true,
        comment: None,
        generated: Some(Generated::IndexExpression(text)),
    });
    Ok(name)
}

/// Computes, for every row of `before`, the columns `after` adds to it
/// (an index's expression columns), one column at a time.
async fn backfill_index_columns(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    before: &TableDesc,
    after: &TableDesc,
) -> SqlResult<()> {
    let mut current = before.clone();
    for c in &after.columns[before.columns.len()..] {
        let mut next = current.clone();
        next.columns.push(c.clone());
        next.next_column_id = after.next_column_id;
        backfill_column(node, txn, database, &current, &next, c).await?;
        current = next;
    }
    Ok(())
}

/// What the first transaction of an online index build added.
#[derive(Clone, Debug)]
pub struct OnlineStart {
    pub table: DescId,
    pub table_name: String,
    /// The write-only indexes to backfill (for a primary key change: the new
    /// primary index first, then the re-keyed secondary indexes).
    pub index_ids: Vec<IndexId>,
    /// A primary key change: the last step swaps the indexes.
    pub primary_swap: bool,
    /// The command tag of the statement.
    pub tag: &'static str,
}

/// Whether `statement`, run outside an explicit transaction, is built online
/// by [`crate::schemachange`]: CREATE INDEX, and ALTER TABLE with the single
/// operation ADD PRIMARY KEY or ADD CONSTRAINT … UNIQUE.
pub fn runs_online(statement: &Statement) -> bool {
    match statement {
        Statement::CreateIndex(_) => true,
        Statement::AlterTable(at) => matches!(
            at.operations.as_slice(),
            [AlterTableOperation::AddConstraint {
                constraint: TableConstraint::PrimaryKey(_) | TableConstraint::Unique(_),
                ..
            }]
        ),
        _ => false,
    }
}

/// The first transaction of an online build (see [`runs_online`]): checks
/// the statement and adds its indexes to the table as write-only mutations,
/// through `txn`. `None` when there is nothing to build (CREATE INDEX IF NOT
/// EXISTS of an existing index, ALTER TABLE IF EXISTS of no table).
pub async fn start_online(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    statement: &Statement,
) -> SqlResult<Option<OnlineStart>> {
    match statement {
        Statement::CreateIndex(ci) => {
            let Some((t, id)) = new_index(node, txn, database, ci, true).await? else {
                return Ok(None);
            };
            let start = OnlineStart {
                table: t.id,
                table_name: t.name.clone(),
                index_ids: vec![id],
                primary_swap: false,
                tag: "CREATE INDEX",
            };
            node.catalog.write_tables(txn, &[t]).await?;
            Ok(Some(start))
        }
        Statement::AlterTable(at) => {
            let [AlterTableOperation::AddConstraint { constraint, .. }] = at.operations.as_slice()
            else {
                return Err(SqlError::internal("not an online ALTER TABLE"));
            };
            let q = qualify(database, &at.name)?;
            let Some(found) = resolve(node, txn, &q).await? else {
                if at.if_exists {
                    return Ok(None);
                }
                return Err(SqlError::undefined_table(&q.name));
            };
            let mut t = node.catalog.table_for_update(txn, found.id).await?;
            require_plain_table(&t)?;
            let mut pending = Pending::default();
            pending.add_constraint(constraint, &t.name)?;
            let (index_ids, primary_swap) = match (pending.pk.take(), pending.indexes.first()) {
                (Some(pk), _) => (add_write_only_primary_key(&mut t, pk)?, true),
                (None, Some(ix)) => (vec![add_write_only_index(&mut t, ix)?], false),
                (None, None) => return Err(SqlError::internal("not an online ALTER TABLE")),
            };
            let start = OnlineStart {
                table: t.id,
                table_name: t.name.clone(),
                index_ids,
                primary_swap,
                tag: "ALTER TABLE",
            };
            node.catalog.write_tables(txn, &[t]).await?;
            Ok(Some(start))
        }
        _ => Err(SqlError::internal("not an online schema change")),
    }
}

/// `t@i`, `db.t@i` or a plain index name (searched in every table of the
/// database).
async fn find_index(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    n: &ObjectName,
) -> SqlResult<Option<(TableDesc, IndexId)>> {
    let parts = name_parts(n);
    let last = parts.last().cloned().unwrap_or_default();
    if let Some((table, index)) = last.split_once('@') {
        let mut tparts: Vec<Ident> = n.0[..n.0.len() - 1]
            .iter()
            .filter_map(|p| p.as_ident().cloned())
            .collect();
        tparts.push(Ident::with_quote('"', table));
        let tn = ObjectName::from(tparts);
        let t = require_table(node, txn, database, &tn).await?;
        return Ok(t
            .index_by_name(index)
            .or_else(|| t.mutations.iter().find(|i| i.name == index))
            .map(|i| i.id)
            .map(|id| (t.clone(), id)));
    }
    let db = if parts.len() >= 2 && parts[parts.len() - 2] != "public" {
        parts[parts.len() - 2].clone()
    } else {
        database.to_string()
    };
    let mut found: Option<(DescId, IndexId, String)> = None;
    for t in node.catalog.list_tables(txn, &db).await? {
        if let Some(i) = t
            .index_by_name(&last)
            .or_else(|| t.mutations.iter().find(|i| i.name == last))
        {
            if let Some((_, _, other)) = &found {
                return Err(SqlError::new(
                    codes::AMBIGUOUS_COLUMN,
                    format!(
                        "index name \"{last}\" is ambiguous (found in {other} and {})",
                        t.name
                    ),
                ));
            }
            found = Some((t.id, i.id, t.name.clone()));
        }
    }
    match found {
        Some((tid, iid, _)) => Ok(Some((node.catalog.table_for_update(txn, tid).await?, iid))),
        None => Ok(None),
    }
}

async fn drop_index(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    n: &ObjectName,
    if_exists: bool,
    cascade: bool,
) -> SqlResult<()> {
    let Some((mut t, index_id)) = find_index(node, txn, database, n).await? else {
        if if_exists {
            return Ok(());
        }
        let name = name_parts(n).last().cloned().unwrap_or_default();
        return Err(SqlError::new(
            codes::UNDEFINED_OBJECT,
            format!("index \"{name}\" does not exist"),
        ));
    };
    if index_id == t.primary_index.id {
        return Err(SqlError::unsupported(format!(
            "cannot drop the primary index of table \"{}\"",
            t.name
        )));
    }
    if t.mutation(index_id).is_some() {
        // An index being built (or left write-only by a build that stopped):
        // nothing reads it, nothing depends on it. A build in progress sees
        // it gone at its next chunk and stops. An index of a primary key
        // change takes the whole change with it.
        let doomed: Vec<IndexId> = if t.new_primary.is_some() {
            t.mutations.iter().map(|i| i.id).collect()
        } else {
            vec![index_id]
        };
        for id in &doomed {
            node.pending_clears
                .schedule(txn, crate::gc::Doomed::Index(t.id, *id));
        }
        t.mutations.retain(|i| !doomed.contains(&i.id));
        t.new_primary = None;
        return node.catalog.write_tables(txn, &[t]).await;
    }
    refuse_during_primary_key_change(&t)?;
    let mut removed = t.clone();
    removed.indexes.retain(|i| i.id != index_id);
    let mut referenced_drops: Vec<(DescId, String)> = Vec::new();
    for (child, fk_name) in &t.referenced_by {
        let child_desc = if *child == t.id {
            t.clone()
        } else {
            node.catalog.table_for_update(txn, *child).await?
        };
        if let Some(fk) = child_desc.foreign_keys.iter().find(|f| &f.name == fk_name)
            && rowenc::referenced_index(&removed, fk).is_err()
        {
            referenced_drops.push((*child, fk_name.clone()));
        }
    }
    if !referenced_drops.is_empty() && !cascade {
        let index = t
            .index(index_id)
            .map(|i| i.name.clone())
            .unwrap_or_default();
        return Err(SqlError::new(
            codes::DEPENDENT_OBJECTS_STILL_EXIST,
            format!("index \"{index}\" is in use as a foreign key constraint"),
        )
        .with_hint("use CASCADE if you really want to drop it."));
    }
    let mut others: HashMap<DescId, TableDesc> = HashMap::new();
    for (child, fk_name) in referenced_drops {
        if child == t.id {
            drop_fk(node, txn, &mut t, &fk_name).await?;
        } else {
            let mut c = match others.remove(&child) {
                Some(c) => c,
                None => node.catalog.table_for_update(txn, child).await?,
            };
            c.foreign_keys.retain(|f| f.name != fk_name);
            t.referenced_by
                .retain(|(x, n)| !(*x == child && *n == fk_name));
            others.insert(child, c);
        }
    }
    t.indexes.retain(|i| i.id != index_id);
    node.pending_clears
        .schedule(txn, crate::gc::Doomed::Index(t.id, index_id));
    let mut descs = vec![t];
    descs.extend(others.into_values());
    node.catalog.write_tables(txn, &descs).await
}

/// Removes a foreign key of `t` and its entry in the parent (written at once
/// when the parent is another table).
async fn drop_fk(node: &SqlNode, txn: &mut Txn, t: &mut TableDesc, name: &str) -> SqlResult<()> {
    let Some(fk) = t.foreign_keys.iter().find(|f| f.name == name).cloned() else {
        return Ok(());
    };
    t.foreign_keys.retain(|f| f.name != name);
    if fk.referenced_table == t.id {
        t.referenced_by.retain(|(c, n)| !(*c == t.id && n == name));
    } else {
        let mut p = node
            .catalog
            .table_for_update(txn, fk.referenced_table)
            .await?;
        p.referenced_by.retain(|(c, n)| !(*c == t.id && n == name));
        node.catalog.write_tables(txn, &[p]).await?;
    }
    Ok(())
}

async fn rename_index(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    n: &ObjectName,
    new_name: &ObjectName,
) -> SqlResult<QueryOutput> {
    let Some((mut t, id)) = find_index(node, txn, database, n).await? else {
        let name = name_parts(n).last().cloned().unwrap_or_default();
        return Err(SqlError::new(
            codes::UNDEFINED_OBJECT,
            format!("index \"{name}\" does not exist"),
        ));
    };
    let new = name_parts(new_name).last().cloned().unwrap_or_default();
    if constraint_name_taken(&t, &new) {
        return Err(SqlError::new(
            codes::DUPLICATE_TABLE,
            format!("relation \"{new}\" already exists"),
        ));
    }
    if id == t.primary_index.id {
        t.primary_index.name = new;
    } else if let Some(i) = t.indexes.iter_mut().find(|i| i.id == id) {
        i.name = new;
    }
    node.catalog.write_tables(txn, &[t]).await?;
    Ok(QueryOutput::command("ALTER INDEX"))
}

// ---------------------------------------------------------------------------
// ALTER TABLE.

/// `ALTER VIEW v RENAME TO w` (42809 when `v` is not a view, as in
/// PostgreSQL); the other forms are 0A000.
async fn alter_view(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    av: &ast::AlterView,
) -> SqlResult<QueryOutput> {
    let ast::AlterViewOperation::RenameTo { new_name } = &av.operation else {
        // TODO(issue 13): ALTER VIEW … AS, RENAME COLUMN, SET SCHEMA,
        // OWNER TO, options.
        return Err(SqlError::unsupported(format!(
            "unsupported statement: {}",
            Statement::AlterView(av.clone())
        )));
    };
    if av.materialized {
        return Err(SqlError::unsupported("materialized views"));
    }
    let q = qualify(database, &av.name)?;
    match resolve(node, txn, &q).await? {
        None if av.if_exists => return Ok(QueryOutput::command("ALTER VIEW")),
        None => return Err(SqlError::undefined_table(&q.name)),
        Some(t) if !t.is_view() => {
            return Err(SqlError::new(
                codes::WRONG_OBJECT_TYPE,
                format!("\"{}\" is not a view", t.name),
            ));
        }
        Some(_) => {}
    }
    let rename = AlterTableOperation::RenameTable {
        table_name: ast::RenameTableNameKind::To(new_name.clone()),
    };
    alter_table(node, txn, database, &av.name, av.if_exists, &[rename]).await?;
    Ok(QueryOutput::command("ALTER VIEW"))
}

async fn alter_table(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    name: &ObjectName,
    if_exists: bool,
    ops: &[AlterTableOperation],
) -> SqlResult<QueryOutput> {
    let q = qualify(database, name)?;
    let Some(found) = resolve(node, txn, &q).await? else {
        if if_exists {
            return Ok(QueryOutput::command("ALTER TABLE"));
        }
        return Err(SqlError::undefined_table(&q.name));
    };
    for op in ops {
        // Each operation sees the previous ones.
        let mut t = node.catalog.table_for_update(txn, found.id).await?;
        if let AlterTableOperation::RenameTable { table_name } = op {
            let n = match table_name {
                ast::RenameTableNameKind::As(n) | ast::RenameTableNameKind::To(n) => n,
            };
            let new = qualify(&q.database, n)?;
            if new.database != q.database {
                return Err(SqlError::unsupported("moving a table to another database"));
            }
            if let Some(v) = dependent_view(node, txn, &t, None).await? {
                return Err(SqlError::new(
                    codes::DEPENDENT_OBJECTS_STILL_EXIST,
                    format!(
                        "cannot rename relation \"{}\" because view \"{v}\" depends on it",
                        t.name
                    ),
                ));
            }
            node.catalog.rename_table(txn, &t, &new.name).await?;
            continue;
        }
        require_plain_table(&t)?;
        let mut others: HashMap<DescId, TableDesc> = HashMap::new();
        match op {
            AlterTableOperation::AddColumn {
                if_not_exists,
                column_def,
                ..
            } => {
                let cname = ident(&column_def.name);
                if t.column_by_name(&cname).is_some() {
                    if *if_not_exists {
                        continue;
                    }
                    return Err(SqlError::new(
                        codes::DUPLICATE_COLUMN,
                        format!(
                            "column \"{cname}\" of relation \"{}\" already exists",
                            t.name
                        ),
                    ));
                }
                let mut pending = Pending::default();
                let c = column_desc(&mut t, column_def, &mut pending)?;
                if pending.pk.is_some() {
                    return Err(SqlError::new(
                        codes::INVALID_TABLE_DEFINITION,
                        format!(
                            "multiple primary keys for table \"{}\" are not allowed",
                            t.name
                        ),
                    ));
                }
                let old = t.clone();
                t.columns.push(c);
                name_identity_sequences(node, txn, &mut t, &mut pending.identities).await?;
                let Some(c) = t.columns.last().cloned() else {
                    return Err(SqlError::internal("ADD COLUMN: the new column is missing"));
                };
                create_identity_sequences(node, txn, t.parent_id, t.id, &pending.identities)
                    .await?;
                backfill_column(node, txn, &q.database, &old, &t, &c).await?;
                let mut new_indexes = Vec::new();
                for ix in &pending.indexes {
                    new_indexes.push(add_index(&mut t, ix)?);
                }
                for (n, e) in pending.checks {
                    add_check(&mut t, n, e)?;
                }
                for fk in &pending.fks {
                    add_foreign_key(node, txn, &q.database, &mut t, fk, &mut others).await?;
                }
                for ix in new_indexes {
                    rowenc::backfill_index(txn, &t, ix).await?;
                }
                if !pending.fks.is_empty() {
                    validate_foreign_keys(node, txn, &t, t.foreign_keys.len() - pending.fks.len())
                        .await?;
                }
            }
            AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                drop_behavior,
                ..
            } => {
                let cascade = matches!(drop_behavior, Some(ast::DropBehavior::Cascade));
                for n in column_names {
                    let cname = ident(n);
                    let Some(id) = t.column_by_name(&cname).map(|c| c.id) else {
                        if *if_exists {
                            continue;
                        }
                        return Err(SqlError::undefined_column_of(&cname, &t.name));
                    };
                    // Indexes on expressions of the column, or whose predicate
                    // reads it, go with it (as in PostgreSQL).
                    let index_columns: Vec<ColumnId> = t
                        .columns
                        .iter()
                        .filter(|c| {
                            c.index_expression()
                                .is_some_and(|e| expr_columns(&t, e).contains(&cname))
                        })
                        .map(|c| c.id)
                        .collect();
                    for c in index_columns {
                        drop_column(node, txn, &mut t, c, cascade).await?;
                    }
                    if let Some(dependent) = t.columns.iter().find(|c| {
                        c.id != id
                            && c.generation_expr()
                                .is_some_and(|e| expr_columns(&t, e).contains(&cname))
                    }) {
                        // TODO(issue 13): CASCADE dropping the generated
                        // column too, as PostgreSQL does.
                        return Err(SqlError::new(
                            codes::DEPENDENT_OBJECTS_STILL_EXIST,
                            format!(
                                "cannot drop column {cname} of table {} because other objects depend on it",
                                t.name
                            ),
                        )
                        .with_detail(format!(
                            "column {} of table {} depends on column {cname}",
                            dependent.name, t.name
                        )));
                    }
                    drop_column(node, txn, &mut t, id, cascade).await?;
                }
            }
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let old = ident(old_column_name);
                let new = ident(new_column_name);
                if t.column_by_name(&old).is_none() {
                    return Err(SqlError::undefined_column(&old));
                }
                if let Some(v) = dependent_view(node, txn, &t, Some(&old)).await? {
                    return Err(SqlError::new(
                        codes::DEPENDENT_OBJECTS_STILL_EXIST,
                        format!(
                            "cannot rename column \"{old}\" because view \"{v}\" depends on it"
                        ),
                    ));
                }
                if t.column_by_name(&new).is_some() {
                    return Err(SqlError::new(
                        codes::DUPLICATE_COLUMN,
                        format!("column \"{new}\" of relation \"{}\" already exists", t.name),
                    ));
                }
                // Generated columns' and CHECK constraints' expressions name
                // the column: they follow the rename.
                // TODO(issue 4): DEFAULT expressions and view queries.
                for c in &mut t.columns {
                    if let Some(Generated::Stored(e) | Generated::IndexExpression(e)) =
                        &mut c.generated
                    {
                        *e = rename_column_in_expr(e, &old, &new)?;
                    }
                }
                for ch in &mut t.checks {
                    ch.expr = rename_column_in_expr(&ch.expr, &old, &new)?;
                }
                if let Some(c) = t.columns.iter_mut().find(|c| c.name == old) {
                    c.name = new;
                }
            }
            AlterTableOperation::AddConstraint { constraint, .. } => {
                let mut pending = Pending::default();
                pending.add_constraint(constraint, &t.name)?;
                if let Some(pk) = pending.pk.take() {
                    add_primary_key(node, txn, &mut t, pk).await?;
                }
                for ix in &pending.indexes {
                    let id = add_index(&mut t, ix)?;
                    rowenc::backfill_index(txn, &t, id).await?;
                }
                for (n, e) in pending.checks {
                    add_check(&mut t, n, e)?;
                    if let Some(c) = t.checks.last() {
                        validate_check(node, txn, &q.database, &t, c).await?;
                    }
                }
                let first_new_fk = t.foreign_keys.len();
                for fk in &pending.fks {
                    add_foreign_key(node, txn, &q.database, &mut t, fk, &mut others).await?;
                }
                if !pending.fks.is_empty() {
                    // The parent's referenced_by must be visible to the checks.
                    let descs: Vec<TableDesc> = others.values().cloned().collect();
                    if !descs.is_empty() {
                        node.catalog.write_tables(txn, &descs).await?;
                        others.clear();
                    }
                    validate_foreign_keys(node, txn, &t, first_new_fk).await?;
                }
            }
            AlterTableOperation::DropConstraint {
                if_exists,
                name,
                drop_behavior,
            } => {
                let cname = ident(name);
                let cascade = matches!(drop_behavior, Some(ast::DropBehavior::Cascade));
                if t.primary_index.name == cname {
                    return Err(SqlError::unsupported("dropping the primary key"));
                } else if t.foreign_keys.iter().any(|f| f.name == cname) {
                    drop_fk(node, txn, &mut t, &cname).await?;
                } else if t.checks.iter().any(|c| c.name == cname) {
                    t.checks.retain(|c| c.name != cname);
                } else if t.indexes.iter().any(|i| i.name == cname && i.unique) {
                    node.catalog
                        .write_tables(txn, std::slice::from_ref(&t))
                        .await?;
                    let n = ObjectName::from(vec![Ident::with_quote(
                        '"',
                        format!("{}@{cname}", t.name),
                    )]);
                    drop_index(node, txn, &q.database, &n, false, cascade).await?;
                    continue;
                } else if !*if_exists {
                    return Err(SqlError::new(
                        codes::UNDEFINED_OBJECT,
                        format!(
                            "constraint \"{cname}\" of relation \"{}\" does not exist",
                            t.name
                        ),
                    ));
                }
            }
            AlterTableOperation::AlterColumn { column_name, op } => {
                let cname = ident(column_name);
                let id = column_id(&t, &cname)?;
                match op {
                    AlterColumnOperation::SetNotNull => {
                        check_no_nulls(txn, &t, id).await?;
                        if let Some(c) = t.columns.iter_mut().find(|c| c.id == id) {
                            c.nullable = false;
                        }
                    }
                    AlterColumnOperation::DropNotNull => {
                        if t.primary_index.columns.contains(&id) {
                            return Err(SqlError::new(
                                codes::INVALID_TABLE_DEFINITION,
                                format!("column \"{cname}\" is in a primary key"),
                            ));
                        }
                        if let Some(c) = t.columns.iter_mut().find(|c| c.id == id) {
                            c.nullable = true;
                        }
                    }
                    AlterColumnOperation::SetDefault { value } => {
                        if let Some(c) = t.columns.iter_mut().find(|c| c.id == id) {
                            c.default = Some(value.to_string());
                        }
                    }
                    AlterColumnOperation::DropDefault => {
                        if let Some(c) = t.columns.iter_mut().find(|c| c.id == id) {
                            c.default = None;
                        }
                    }
                    AlterColumnOperation::SetDataType {
                        data_type, using, ..
                    } => {
                        let (to, serial) = column_type(data_type)?;
                        let Some(c) = t.columns.iter().find(|c| c.id == id) else {
                            return Err(SqlError::internal("column vanished"));
                        };
                        if serial {
                            return Err(SqlError::new(
                                codes::UNDEFINED_OBJECT,
                                format!("type \"{data_type}\" does not exist"),
                            ));
                        }
                        if let Some(u) = using
                            && !using_is_plain_cast(u, &c.name, to)
                        {
                            // TODO(issue 13): USING expressions that compute
                            // new values (a rewrite with a backfill).
                            return Err(SqlError::unsupported(format!(
                                "ALTER COLUMN TYPE {to} USING {u}: only USING the column itself (or cast to the new type) is supported"
                            )));
                        }
                        let from = c.ty;
                        if !widens(from, to) {
                            if !narrows_in_place(from, to) {
                                // TODO(issue 13): conversions that rewrite
                                // the stored values (online, with a
                                // backfill, like index builds).
                                return Err(SqlError::unsupported(format!(
                                    "ALTER COLUMN TYPE from {from} to {to}: only changes that keep every stored value as it is (a longer or shorter VARCHAR, VARCHAR to TEXT, a wider or narrower integer, a wider NUMERIC) are supported"
                                )));
                            }
                            check_values_fit(txn, &t, id, to).await?;
                        }
                        if let Some(c) = t.columns.iter_mut().find(|c| c.id == id) {
                            c.ty = to;
                        }
                    }
                    other => {
                        return Err(SqlError::unsupported(format!("ALTER COLUMN {other}")));
                    }
                }
            }
            AlterTableOperation::RenameConstraint { old_name, new_name } => {
                let old = ident(old_name);
                let new = ident(new_name);
                if constraint_name_taken(&t, &new) {
                    return Err(SqlError::new(
                        codes::DUPLICATE_OBJECT,
                        format!(
                            "constraint \"{new}\" for relation \"{}\" already exists",
                            t.name
                        ),
                    ));
                }
                if let Some(i) = t.indexes.iter_mut().find(|i| i.name == old) {
                    i.name = new;
                } else if t.primary_index.name == old {
                    t.primary_index.name = new;
                } else if let Some(c) = t.checks.iter_mut().find(|c| c.name == old) {
                    c.name = new;
                } else {
                    // TODO(issue 4): renaming foreign keys (the parent's
                    // referenced_by names them).
                    return Err(SqlError::new(
                        codes::UNDEFINED_OBJECT,
                        format!(
                            "constraint \"{old}\" of relation \"{}\" does not exist",
                            t.name
                        ),
                    ));
                }
            }
            other => {
                return Err(SqlError::unsupported(format!("ALTER TABLE {other}")));
            }
        }
        let mut descs = vec![t];
        descs.extend(others.into_values());
        node.catalog.write_tables(txn, &descs).await?;
    }
    Ok(QueryOutput::command("ALTER TABLE"))
}

/// Fills a new column in every row: its DEFAULT (evaluated once when constant,
/// per row otherwise), checking NOT NULL.
async fn backfill_column(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    old: &TableDesc,
    new: &TableDesc,
    c: &ColumnDesc,
) -> SqlResult<()> {
    let pos = new.columns.len() - 1;
    if let Some(expr) = c.generation_expr() {
        check_generated_columns(new)?;
        let mut scanner = rowenc::full_scan(Arc::new(old.clone()));
        while let Some(rows) = scanner.next_batch(txn, rowenc::BACKFILL_CHUNK).await? {
            let rows: Vec<crate::plan::Row> = rows
                .into_iter()
                .map(|mut r| {
                    r.push(Value::Null);
                    r
                })
                .collect();
            let values = crate::exec::eval_over_rows(node, txn, new, c, expr, &rows).await?;
            let pairs: Vec<(crate::plan::Row, crate::plan::Row)> = rows
                .into_iter()
                .zip(values)
                .map(|(row, v)| {
                    let mut filled = row.clone();
                    filled[pos] = v;
                    (row, filled)
                })
                .collect();
            rowenc::update_rows(txn, &node.catalog, new, &pairs).await?;
        }
        return Ok(());
    }
    let volatile = c.default.as_deref().is_some_and(|d| d.contains('('));
    let constant = match (&c.default, volatile) {
        (Some(d), false) => crate::exec::eval_constant(node, txn, database, d, c.ty).await?,
        _ => Value::Null,
    };
    if c.default.is_none() && c.nullable {
        // Nothing to write: missing columns decode as NULL.
        return Ok(());
    }
    let mut scanner = rowenc::full_scan(Arc::new(old.clone()));
    while let Some(rows) = scanner.next_batch(txn, rowenc::BACKFILL_CHUNK).await? {
        let mut pairs = Vec::with_capacity(rows.len());
        for mut row in rows {
            let v = match (&c.default, volatile) {
                (Some(d), true) => crate::exec::eval_constant(node, txn, database, d, c.ty).await?,
                _ => constant.clone(),
            };
            if v.is_null() && !c.nullable {
                return Err(SqlError::new(
                    codes::NOT_NULL_VIOLATION,
                    format!(
                        "column \"{}\" of relation \"{}\" contains null values",
                        c.name, new.name
                    ),
                ));
            }
            row.push(Value::Null);
            let mut filled = row.clone();
            filled[pos] = v;
            pairs.push((row, filled));
        }
        rowenc::update_rows(txn, &node.catalog, new, &pairs).await?;
    }
    Ok(())
}

async fn check_no_nulls(txn: &mut Txn, t: &TableDesc, col: ColumnId) -> SqlResult<()> {
    let Some(pos) = t.column_position(col) else {
        return Ok(());
    };
    let mut scanner = rowenc::full_scan(Arc::new(t.clone()));
    while let Some(rows) = scanner.next_batch(txn, rowenc::BACKFILL_CHUNK).await? {
        if rows.iter().any(|r| r[pos].is_null()) {
            return Err(SqlError::new(
                codes::NOT_NULL_VIOLATION,
                format!(
                    "column \"{}\" of relation \"{}\" contains null values",
                    t.columns[pos].name, t.name
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that every existing row satisfies the foreign keys from index
/// `first` on.
async fn validate_foreign_keys(
    node: &SqlNode,
    txn: &mut Txn,
    t: &TableDesc,
    first: usize,
) -> SqlResult<()> {
    let mut only = t.clone();
    only.foreign_keys = t.foreign_keys[first.min(t.foreign_keys.len())..].to_vec();
    if only.foreign_keys.is_empty() {
        return Ok(());
    }
    let mut scanner = rowenc::full_scan(Arc::new(t.clone()));
    while let Some(rows) = scanner.next_batch(txn, rowenc::BACKFILL_CHUNK).await? {
        rowenc::check_rows_foreign_keys(txn, &node.catalog, &only, &rows).await?;
    }
    Ok(())
}

async fn drop_column(
    node: &SqlNode,
    txn: &mut Txn,
    t: &mut TableDesc,
    id: ColumnId,
    cascade: bool,
) -> SqlResult<()> {
    let name = t
        .column_by_id(id)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    if let Some(v) = dependent_view(node, txn, t, Some(&name)).await? {
        // TODO(issue 4): DROP COLUMN … CASCADE dropping the views.
        let _ = cascade;
        return Err(SqlError::new(
            codes::DEPENDENT_OBJECTS_STILL_EXIST,
            format!("cannot drop column \"{name}\" because view \"{v}\" depends on it"),
        ));
    }
    if t.primary_index.columns.contains(&id) {
        return Err(SqlError::unsupported(format!(
            "column \"{name}\" is referenced by the primary key"
        )));
    }
    // TODO(issue 4): drop the write-only indexes on the column (and stop
    // their builds) instead of refusing.
    refuse_during_index_build(t, "drop a column")?;
    if t.columns.iter().filter(|c| !c.hidden).count() <= 1 && !t.columns.iter().any(|c| c.hidden) {
        return Err(SqlError::unsupported(
            "cannot drop the only column of a table",
        ));
    }
    // Foreign keys of other tables that reference this column.
    for (child, fk_name) in t.referenced_by.clone() {
        let c = if child == t.id {
            t.clone()
        } else {
            node.catalog.table_for_update(txn, child).await?
        };
        if let Some(fk) = c.foreign_keys.iter().find(|f| f.name == fk_name)
            && fk.referenced_columns.contains(&id)
        {
            if !cascade {
                return Err(SqlError::new(
                    codes::DEPENDENT_OBJECTS_STILL_EXIST,
                    format!(
                        "cannot drop column {name} of table {} because other objects depend on it",
                        t.name
                    ),
                )
                .with_detail(format!(
                    "constraint {fk_name} on table {} depends on column {name}",
                    c.name
                )));
            }
            if child == t.id {
                drop_fk(node, txn, t, &fk_name).await?;
            } else {
                let mut c = c;
                c.foreign_keys.retain(|f| f.name != fk_name);
                t.referenced_by
                    .retain(|(x, n)| !(*x == child && *n == fk_name));
                node.catalog.write_tables(txn, &[c]).await?;
            }
        }
    }
    // This table's foreign keys on the column.
    let own: Vec<String> = t
        .foreign_keys
        .iter()
        .filter(|f| f.columns.contains(&id))
        .map(|f| f.name.clone())
        .collect();
    for f in own {
        drop_fk(node, txn, t, &f).await?;
    }
    // Indexes with the column as a key column go (PostgreSQL drops them too);
    // STORING lists forget it.
    let doomed: Vec<IndexId> = t
        .indexes
        .iter()
        .filter(|i| i.columns.contains(&id) || i.predicate == Some(id))
        .map(|i| i.id)
        .collect();
    for ix in &doomed {
        node.pending_clears
            .schedule(txn, crate::gc::Doomed::Index(t.id, *ix));
    }
    t.indexes.retain(|i| !doomed.contains(&i.id));
    for i in &mut t.indexes {
        i.storing.retain(|c| *c != id);
    }
    // CHECK constraints that mention the column go too.
    t.checks.retain(|c| !mentions(&c.expr, &name));
    t.columns.retain(|c| c.id != id);
    Ok(())
}

/// The name of a view reading `t` (whose query mentions `column`, when given).
async fn dependent_view(
    node: &SqlNode,
    txn: &mut Txn,
    t: &TableDesc,
    column: Option<&str>,
) -> SqlResult<Option<String>> {
    for v in &t.dependent_views {
        let Ok(view) = node.catalog.table_for_update(txn, *v).await else {
            continue;
        };
        let q = view.view_query.as_deref().unwrap_or_default();
        if column.is_none_or(|c| mentions(q, c) || q.contains('*')) {
            return Ok(Some(view.name));
        }
    }
    Ok(None)
}

/// Whether `expr` (SQL text) mentions identifier `name`.
fn mentions(expr: &str, name: &str) -> bool {
    expr.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| w.eq_ignore_ascii_case(name))
}

fn check_can_add_primary_key(t: &TableDesc) -> SqlResult<()> {
    if !t.has_implicit_pk() || t.new_primary.is_some() {
        return Err(SqlError::new(
            codes::INVALID_TABLE_DEFINITION,
            format!(
                "multiple primary keys for table \"{}\" are not allowed",
                t.name
            ),
        ));
    }
    refuse_during_index_build(t, "change the primary key")
}

/// The first transaction of an online ADD PRIMARY KEY: the new primary index
/// and a re-keyed copy of every secondary index (new ids: their entries end
/// with the new key) become write-only mutations of `t`, and `new_primary`
/// names the new primary index. The columns of the new key become NOT NULL
/// only at the swap (the backfill and, meanwhile, every write check them).
fn add_write_only_primary_key(
    t: &mut TableDesc,
    pk: (Option<String>, Vec<(String, Direction)>),
) -> SqlResult<Vec<IndexId>> {
    check_can_add_primary_key(t)?;
    let mut future = t.clone();
    set_primary_key(&mut future, Some(pk))?;
    let mut primary = future.primary_index.clone();
    primary.id = t.next_index_id;
    primary.state = IndexState::WriteOnly;
    t.next_index_id += 1;
    let mut ids = vec![primary.id];
    t.new_primary = Some(primary.id);
    t.mutations.push(primary);
    for i in t.indexes.clone() {
        let mut m = i;
        m.id = t.next_index_id;
        m.state = IndexState::WriteOnly;
        t.next_index_id += 1;
        ids.push(m.id);
        t.mutations.push(m);
    }
    Ok(ids)
}

/// ALTER TABLE … ADD PRIMARY KEY on a table whose key is the hidden rowid
/// inside an explicit transaction: every row is rewritten under the new key
/// (in this transaction); rowid stays as a hidden column. (Outside one,
/// [`crate::schemachange`] builds it online.)
async fn add_primary_key(
    node: &SqlNode,
    txn: &mut Txn,
    t: &mut TableDesc,
    pk: (Option<String>, Vec<(String, Direction)>),
) -> SqlResult<()> {
    check_can_add_primary_key(t)?;
    let old = t.clone();
    let mut new = t.clone();
    set_primary_key(&mut new, Some(pk))?;
    // The new primary index and the secondary indexes (whose entries carry the
    // primary key) get new ids, so the rows are streamed from the old indexes
    // into the new ones (as CockroachDB's ALTER PRIMARY KEY does); the old
    // spans are cleared after the commit.
    new.primary_index.id = new.next_index_id;
    new.next_index_id += 1;
    for i in &mut new.indexes {
        i.id = new.next_index_id;
        new.next_index_id += 1;
    }
    // Rows are rewritten without FK checks (nothing about the references
    // changed); uniqueness of the new key is checked by the writes.
    let mut unchecked = new.clone();
    unchecked.foreign_keys.clear();
    unchecked.referenced_by.clear();
    let mut scanner = rowenc::full_scan(Arc::new(old.clone()));
    while let Some(rows) = scanner.next_batch(txn, rowenc::BACKFILL_CHUNK).await? {
        for r in &rows {
            rowenc::check_key_not_null(&old, &new, r)?;
        }
        rowenc::insert_rows(txn, &node.catalog, &unchecked, &rows, false).await?;
    }
    // The old indexes' entries are cleared after the commit ([`crate::gc`]).
    for index in old.all_indexes() {
        node.pending_clears
            .schedule(txn, crate::gc::Doomed::Index(old.id, index.id));
    }
    *t = new;
    Ok(())
}

// ---------------------------------------------------------------------------
// TRUNCATE.

async fn truncate(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    names: &[&ObjectName],
    cascade: bool,
) -> SqlResult<QueryOutput> {
    let mut ids: Vec<DescId> = Vec::new();
    for n in names {
        let t = require_table(node, txn, database, n).await?;
        require_plain_table(&t)?;
        ids.push(t.id);
    }
    let mut i = 0;
    while i < ids.len() {
        let t = node.catalog.table_for_update(txn, ids[i]).await?;
        for (child, fk) in &t.referenced_by {
            if ids.contains(child) {
                continue;
            }
            if !cascade {
                let c = node.catalog.table_for_update(txn, *child).await?;
                return Err(SqlError::unsupported(
                    "cannot truncate a table referenced in a foreign key constraint",
                )
                .with_detail(format!(
                    "Table \"{}\" references \"{}\" via {fk}.",
                    c.name, t.name
                ))
                .with_hint(
                    "Truncate table \"".to_string()
                        + &c.name
                        + "\" at the same time, or use TRUNCATE ... CASCADE.",
                ));
            }
            ids.push(*child);
        }
        i += 1;
    }
    let mut descs = Vec::with_capacity(ids.len());
    for id in ids {
        let mut t = node.catalog.table_for_update(txn, id).await?;
        if !t.mutations.is_empty() {
            return Err(SqlError::new(
                codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "table \"{}\" is being changed: an index is being built",
                    t.name
                ),
            )
            .with_hint(
                "try again when the build has finished, or DROP INDEX the index being built",
            ));
        }
        for old in renumber_indexes(&mut t) {
            node.pending_clears
                .schedule(txn, crate::gc::Doomed::Index(t.id, old));
        }
        descs.push(t);
    }
    node.catalog.write_tables(txn, &descs).await?;
    Ok(QueryOutput::command("TRUNCATE TABLE"))
}

/// TRUNCATE's way of emptying a table without touching its data: every index
/// gets a fresh id (from `next_index_id`, never reused), so the table's
/// index spans are new and empty, and the old ones — which no descriptor
/// names any more — are cleared after the commit ([`crate::gc`]). Returns
/// the old ids.
///
/// CockroachDB did this first by giving the table a new table id, later by
/// giving it new index ids, for the reason that decides it here too: the table
/// id is the table's identity everywhere — namespace entry, foreign keys
/// (`referenced_table`, `referenced_by`), views' `depends_on`, the planner's
/// caches — while an index id appears only in keys (`/Table/<table
/// id>/<index id>/…`, see [`rowenc::index_span`]) and in the descriptor
/// itself: foreign keys find their indexes by columns, and `ADD PRIMARY KEY`
/// already renumbers every index the same way.
fn renumber_indexes(t: &mut TableDesc) -> Vec<IndexId> {
    let mut old = Vec::new();
    let mut next = t.next_index_id;
    for i in std::iter::once(&mut t.primary_index).chain(t.indexes.iter_mut()) {
        old.push(i.id);
        i.id = next;
        next += 1;
    }
    t.next_index_id = next;
    old
}

// ---------------------------------------------------------------------------
// Sequences and views.

fn const_i64(e: &Expr) -> SqlResult<i64> {
    let text = e.to_string().replace(' ', "");
    text.parse::<i64>()
        .map_err(|_| SqlError::syntax(format!("expected an integer, found {e}")))
}

async fn create_sequence(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    name: &ObjectName,
    if_not_exists: bool,
    options: &[SequenceOptions],
) -> SqlResult<QueryOutput> {
    let q = qualify(database, name)?;
    let db_id = node.catalog.require_database(txn, &q.database).await?;
    if node.catalog.table_id(txn, db_id, &q.name).await?.is_some() {
        if if_not_exists {
            return Ok(QueryOutput::command("CREATE SEQUENCE"));
        }
        return Err(duplicate_table(&q.name));
    }
    let mut increment = 1i64;
    let mut start = None;
    let mut min = None;
    let mut max = None;
    let mut cycle = false;
    let mut owned_by = None;
    for o in options {
        match o {
            SequenceOptions::IncrementBy(e, _) => increment = const_i64(e)?,
            SequenceOptions::StartWith(e, _) => start = Some(const_i64(e)?),
            SequenceOptions::MinValue(Some(e)) => min = Some(const_i64(e)?),
            SequenceOptions::MaxValue(Some(e)) => max = Some(const_i64(e)?),
            SequenceOptions::MinValue(None) | SequenceOptions::MaxValue(None) => {}
            SequenceOptions::Cycle(no) => cycle = !*no,
            SequenceOptions::OwnedBy(owner) => {
                owned_by = sequence_owner(node, txn, database, db_id, owner.as_ref()).await?;
            }
            SequenceOptions::Cache(_) | SequenceOptions::DataType(_) => {}
        }
    }
    if increment == 0 {
        return Err(SqlError::new(
            codes::INVALID_PARAMETER_VALUE,
            "INCREMENT must not be zero",
        ));
    }
    let (min, max) = if increment > 0 {
        (min.unwrap_or(1), max.unwrap_or(i64::MAX))
    } else {
        (min.unwrap_or(i64::MIN), max.unwrap_or(-1))
    };
    let start = start.unwrap_or(if increment > 0 { min } else { max });
    if start < min || start > max {
        return Err(SqlError::new(
            codes::INVALID_PARAMETER_VALUE,
            format!("START value ({start}) cannot be outside [{min}, {max}]"),
        ));
    }
    let sequence = SequenceDesc {
        increment,
        start,
        min_value: min,
        max_value: max,
        cycle,
        owned_by,
    };
    write_sequence(node, txn, db_id, &q.name, sequence).await?;
    Ok(QueryOutput::command("CREATE SEQUENCE"))
}

/// `ALTER SEQUENCE`: options not given keep their values (NO MINVALUE /
/// NO MAXVALUE: the defaults for the increment's sign); START WITH changes
/// what RESTART goes back to, not the next value; RESTART [WITH n] makes
/// the next `nextval` give the start value (n). The counter is changed
/// outside the transaction, as `nextval` and `setval` change it.
// TODO(issue 13): changing INCREMENT of a sequence never used (or reset by
// setval(…, false) / RESTART) moves its next value by the difference, where
// PostgreSQL still gives the start.
async fn alter_sequence(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    name: &ObjectName,
    if_exists: bool,
    options: &[SequenceOptions],
    restart: Option<Option<i64>>,
) -> SqlResult<QueryOutput> {
    let q = qualify(database, name)?;
    let db_id = node.catalog.require_database(txn, &q.database).await?;
    let Some(id) = node.catalog.table_id(txn, db_id, &q.name).await? else {
        if if_exists {
            return Ok(QueryOutput::command("ALTER SEQUENCE"));
        }
        return Err(SqlError::undefined_table(&q.name));
    };
    let mut t = node.catalog.table_for_update(txn, id).await?;
    let Some(old) = t.sequence.clone() else {
        return Err(SqlError::new(
            codes::WRONG_OBJECT_TYPE,
            format!("\"{}\" is not a sequence", q.name),
        ));
    };
    let mut seq = old.clone();
    let (mut min, mut max) = (Some(old.min_value), Some(old.max_value));
    for o in options {
        match o {
            SequenceOptions::IncrementBy(e, _) => seq.increment = const_i64(e)?,
            SequenceOptions::StartWith(e, _) => seq.start = const_i64(e)?,
            SequenceOptions::MinValue(e) => min = e.as_ref().map(const_i64).transpose()?,
            SequenceOptions::MaxValue(e) => max = e.as_ref().map(const_i64).transpose()?,
            SequenceOptions::Cycle(no) => seq.cycle = !*no,
            SequenceOptions::OwnedBy(owner) => {
                seq.owned_by = sequence_owner(node, txn, database, db_id, owner.as_ref()).await?;
            }
            SequenceOptions::Cache(_) | SequenceOptions::DataType(_) => {}
        }
    }
    if seq.increment == 0 {
        return Err(SqlError::new(
            codes::INVALID_PARAMETER_VALUE,
            "INCREMENT must not be zero",
        ));
    }
    seq.min_value = min.unwrap_or(if seq.increment > 0 { 1 } else { i64::MIN });
    seq.max_value = max.unwrap_or(if seq.increment > 0 { i64::MAX } else { -1 });
    let invalid = |m: String| SqlError::new(codes::INVALID_PARAMETER_VALUE, m);
    if seq.min_value >= seq.max_value {
        return Err(invalid(format!(
            "MINVALUE ({}) must be less than MAXVALUE ({})",
            seq.min_value, seq.max_value
        )));
    }
    let bounded = |what: &str, v: i64| {
        if v < seq.min_value {
            Err(invalid(format!(
                "{what} value ({v}) cannot be less than MINVALUE ({})",
                seq.min_value
            )))
        } else if v > seq.max_value {
            Err(invalid(format!(
                "{what} value ({v}) cannot be greater than MAXVALUE ({})",
                seq.max_value
            )))
        } else {
            Ok(())
        }
    };
    bounded("START", seq.start)?;
    let restart = restart.map(|r| r.unwrap_or(seq.start));
    if let Some(r) = restart {
        bounded("RESTART", r)?;
    }
    let increment = seq.increment;
    t.sequence = Some(seq);
    node.catalog.write_tables(txn, &[t]).await?;
    if let Some(r) = restart {
        node.catalog
            .put_sequence_counter(id, r.wrapping_sub(increment))
            .await?;
    }
    Ok(QueryOutput::command("ALTER SEQUENCE"))
}

/// The column `OWNED BY table.column` names (`None` for `OWNED BY NONE`):
/// a table of the sequence's database `db_id` (0A000 otherwise, as
/// PostgreSQL refuses an owner in another schema).
async fn sequence_owner(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    db_id: DescId,
    owner: Option<&ObjectName>,
) -> SqlResult<Option<(DescId, u32)>> {
    let Some(owner) = owner else {
        return Ok(None);
    };
    let parts = name_parts(owner);
    let Some((column, table)) = parts.split_last() else {
        return Err(SqlError::syntax("OWNED BY: expected table.column"));
    };
    if table.is_empty() {
        return Err(SqlError::new(
            codes::INVALID_PARAMETER_VALUE,
            "invalid OWNED BY option",
        ));
    }
    let table = ObjectName::from(
        table
            .iter()
            .map(|p| Ident::with_quote('"', p))
            .collect::<Vec<_>>(),
    );
    let tq = qualify(database, &table)?;
    let tdb = node.catalog.require_database(txn, &tq.database).await?;
    let Some(tid) = node.catalog.table_id(txn, tdb, &tq.name).await? else {
        return Err(SqlError::undefined_table(&tq.name));
    };
    if tdb != db_id {
        return Err(SqlError::new(
            codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "sequence must be in same schema as table it is linked to",
        ));
    }
    let owner = node.catalog.table_by_id(txn, tid).await?;
    if owner.is_sequence() || owner.is_view() {
        return Err(SqlError::new(
            codes::WRONG_OBJECT_TYPE,
            format!("sequence cannot be owned by relation \"{}\"", tq.name),
        ));
    }
    let Some(c) = owner.column_by_name(column) else {
        return Err(SqlError::undefined_column_of(column, &tq.name));
    };
    Ok(Some((tid, c.id)))
}

/// Creates sequence `name` of database `db_id`, before its first value.
async fn write_sequence(
    node: &SqlNode,
    txn: &mut Txn,
    db_id: DescId,
    name: &str,
    sequence: SequenceDesc,
) -> SqlResult<()> {
    let id = node.catalog.allocate_id().await?;
    let mut t = TableDesc::new(id, db_id, name);
    let first = sequence.start.wrapping_sub(sequence.increment);
    t.sequence = Some(sequence);
    // The counter is written outside `txn`, as `nextval` increments it:
    // written in `txn`, it would be an intent that a `nextval` later in the
    // same transaction (an identity column's default, `CREATE SEQUENCE s;
    // SELECT nextval('s')` in one block) waits on forever — its own
    // transaction's. The id is new and never reused, so a rolled-back
    // CREATE only leaves an unreachable counter behind.
    node.catalog.put_sequence_counter(id, first).await?;
    node.catalog.create_table(txn, &t).await?;
    zone::write_span_configs(txn, &t).await
}

/// Gives each identity sequence of `t` a name no relation of its database
/// has: `<table>_<column>_seq`, else with 1, 2, … appended, as PostgreSQL
/// does (a table renamed keeps its sequence's name, and a new table may
/// take the old name). The column's default follows the name.
async fn name_identity_sequences(
    node: &SqlNode,
    txn: &mut Txn,
    t: &mut TableDesc,
    identities: &mut [IdentitySequence],
) -> SqlResult<()> {
    let mut chosen: HashSet<String> = HashSet::from([t.name.clone()]);
    for seq in identities.iter_mut() {
        let base = std::mem::take(&mut seq.name);
        let mut n = 0u32;
        let name = loop {
            let candidate = if n == 0 {
                base.clone()
            } else {
                format!("{base}{n}")
            };
            if !chosen.contains(&candidate)
                && node
                    .catalog
                    .table_id(txn, t.parent_id, &candidate)
                    .await?
                    .is_none()
            {
                break candidate;
            }
            n += 1;
        };
        if let Some(c) = t.columns.iter_mut().find(|c| c.id == seq.column) {
            c.default = Some(nextval_default(&name));
        }
        chosen.insert(name.clone());
        seq.name = name;
    }
    Ok(())
}

/// The default of a column filled from sequence `name`: `nextval('name')`,
/// the name quoted where it needs to be (`nextval('"Mixed_Case_seq"')`).
fn nextval_default(name: &str) -> String {
    let ident = tardigrade_sqltypes::strings::quote_ident(name);
    format!("nextval('{}')", ident.replace('\'', "''"))
}

/// The sequences of table `table_id`'s identity columns, owned by them
/// (named by [`name_identity_sequences`] first).
async fn create_identity_sequences(
    node: &SqlNode,
    txn: &mut Txn,
    db_id: DescId,
    table_id: DescId,
    identities: &[IdentitySequence],
) -> SqlResult<()> {
    for seq in identities {
        let sequence = SequenceDesc {
            increment: 1,
            start: 1,
            min_value: 1,
            max_value: seq.max,
            cycle: false,
            owned_by: Some((table_id, seq.column)),
        };
        write_sequence(node, txn, db_id, &seq.name, sequence).await?;
    }
    Ok(())
}

async fn create_view(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    cv: &CreateView,
) -> SqlResult<QueryOutput> {
    if cv.materialized {
        return Err(SqlError::unsupported("materialized views"));
    }
    let q = qualify(database, &cv.name)?;
    let db_id = node.catalog.require_database(txn, &q.database).await?;
    let existing = resolve(node, txn, &q).await?;
    if let Some(e) = &existing {
        if cv.if_not_exists {
            return Ok(QueryOutput::command("CREATE VIEW"));
        }
        if !cv.or_replace {
            return Err(duplicate_table(&q.name));
        }
        if !e.is_view() {
            return Err(not_a("view", &q.name));
        }
    }
    let statement = Statement::Query(cv.query.clone());
    let (_, cols) = crate::plan::describe(node, txn, database, &statement, &[]).await?;
    let cols = cols.unwrap_or_default();
    if !cv.columns.is_empty() && cv.columns.len() != cols.len() {
        return Err(SqlError::syntax(format!(
            "CREATE VIEW specifies {} column names, but the query has {} columns",
            cv.columns.len(),
            cols.len()
        )));
    }
    let id = match &existing {
        Some(e) => e.id,
        None => node.catalog.allocate_id().await?,
    };
    let mut t = match &existing {
        Some(e) => node.catalog.table_for_update(txn, e.id).await?,
        None => TableDesc::new(id, db_id, &q.name),
    };
    let old_deps = std::mem::take(&mut t.depends_on);
    // CREATE OR REPLACE keeps the comments of the columns that stay.
    let old_columns = std::mem::take(&mut t.columns);
    t.next_column_id = 1;
    let mut seen = HashSet::new();
    for (i, c) in cols.iter().enumerate() {
        let name = cv
            .columns
            .get(i)
            .map(|v| ident(&v.name))
            .unwrap_or_else(|| c.name.clone());
        if !seen.insert(name.clone()) {
            return Err(SqlError::new(
                codes::DUPLICATE_COLUMN,
                format!("column \"{name}\" specified more than once"),
            ));
        }
        let comment = old_columns
            .get(i)
            .filter(|o| o.name == name)
            .and_then(|o| o.comment.clone());
        t.columns.push(ColumnDesc {
            id: t.next_column_id,
            name,
            ty: c.ty,
            nullable: true,
            default: None,
            hidden: false,
            comment,
            generated: None,
        });
        t.next_column_id += 1;
    }
    t.view_query = Some(cv.query.to_string());
    // What the query reads (CTE names and unknown names are skipped).
    let mut names = Vec::new();
    let _ = ast::visit_relations(&statement, |n| {
        names.push(n.clone());
        ControlFlow::<()>::Continue(())
    });
    let mut deps = Vec::new();
    for n in names {
        let Ok(dq) = qualify(database, &n) else {
            continue;
        };
        if let Ok(Some(d)) = resolve(node, txn, &dq).await
            && d.id != id
            && !deps.contains(&d.id)
        {
            deps.push(d.id);
        }
    }
    t.depends_on = deps.clone();
    let mut changed = Vec::new();
    for d in old_deps.iter().filter(|d| !deps.contains(d)) {
        if let Ok(mut x) = node.catalog.table_for_update(txn, *d).await {
            x.dependent_views.retain(|v| *v != id);
            changed.push(x);
        }
    }
    for d in deps.iter().filter(|d| !old_deps.contains(d)) {
        let mut x = node.catalog.table_for_update(txn, *d).await?;
        if !x.dependent_views.contains(&id) {
            x.dependent_views.push(id);
        }
        changed.push(x);
    }
    if existing.is_some() {
        changed.push(t);
    } else {
        node.catalog.create_table(txn, &t).await?;
        zone::write_span_configs(txn, &t).await?;
    }
    if !changed.is_empty() {
        node.catalog.write_tables(txn, &changed).await?;
    }
    Ok(QueryOutput::command("CREATE VIEW"))
}

// ---------------------------------------------------------------------------
// SHOW.

fn text_columns(names: &[&str]) -> Vec<Column> {
    names
        .iter()
        .map(|n| Column {
            name: n.to_string(),
            ty: SqlType::Text,
        })
        .collect()
}

fn rows_output(tag: &str, columns: Vec<Column>, rows: Vec<Vec<Value>>) -> QueryOutput {
    QueryOutput {
        tag: format!("{tag} {}", rows.len()),
        columns: Some(columns),
        rows,
        streamed: false,
    }
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

async fn show_tables(node: &SqlNode, txn: &mut Txn, database: &str) -> SqlResult<QueryOutput> {
    let mut rows = Vec::new();
    for t in node.catalog.list_tables(txn, database).await? {
        let kind = if t.is_view() {
            "view"
        } else if t.is_sequence() {
            "sequence"
        } else {
            "table"
        };
        rows.push(vec![
            text("public"),
            text(&t.name),
            text(kind),
            text("root"),
        ]);
    }
    Ok(rows_output(
        "SHOW",
        text_columns(&["schema_name", "table_name", "type", "owner"]),
        rows,
    ))
}

async fn show_databases(node: &SqlNode, txn: &mut Txn) -> SqlResult<QueryOutput> {
    let rows = node
        .catalog
        .list_databases(txn)
        .await?
        .into_iter()
        .map(|d| vec![text(d.name), text("root")])
        .collect();
    Ok(rows_output(
        "SHOW",
        text_columns(&["database_name", "owner"]),
        rows,
    ))
}

async fn show_columns(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    n: &ObjectName,
) -> SqlResult<QueryOutput> {
    let t = require_table(node, txn, database, n).await?;
    let mut rows = Vec::new();
    for c in &t.columns {
        let indices: Vec<String> = t
            .all_indexes()
            .filter(|i| {
                i.columns.contains(&c.id)
                    || i.storing.contains(&c.id)
                    || (i.id != t.primary_index.id && t.primary_index.columns.contains(&c.id))
            })
            .map(|i| i.name.clone())
            .collect();
        rows.push(vec![
            text(&c.name),
            text(type_name(c.ty)),
            Value::Bool(c.nullable),
            c.default.clone().map_or(Value::Null, Value::Text),
            text(""),
            text(format!("{{{}}}", indices.join(","))),
            Value::Bool(c.hidden),
        ]);
    }
    let mut columns = text_columns(&[
        "column_name",
        "data_type",
        "is_nullable",
        "column_default",
        "generation_expression",
        "indices",
        "is_hidden",
    ]);
    columns[2].ty = SqlType::Bool;
    columns[6].ty = SqlType::Bool;
    Ok(rows_output("SHOW", columns, rows))
}

/// `CREATE TABLE …` text for a descriptor (CockroachDB's SHOW CREATE form).
pub async fn create_statement(node: &SqlNode, txn: &mut Txn, t: &TableDesc) -> SqlResult<String> {
    if let Some(q) = &t.view_query {
        let cols: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        return Ok(format!(
            "CREATE VIEW public.{} ({}) AS {q}",
            t.name,
            cols.join(", ")
        ));
    }
    if let Some(s) = &t.sequence {
        return Ok(format!(
            "CREATE SEQUENCE public.{} MINVALUE {} MAXVALUE {} INCREMENT {} START {}",
            t.name, s.min_value, s.max_value, s.increment, s.start
        ));
    }
    let col_name = |id: ColumnId| {
        t.column_by_id(id)
            .map(|c| c.name.clone())
            .unwrap_or_default()
    };
    let key_list = |i: &IndexDesc| -> String {
        i.columns
            .iter()
            .zip(&i.directions)
            .map(|(c, d)| {
                // CockroachDB's form: an expression in parentheses unless
                // it is a function call.
                let key = match t.column_by_id(*c).and_then(|c| c.index_expression()) {
                    Some(e) => crate::catalog::deparsed(e),
                    None => col_name(*c),
                };
                match d {
                    Direction::Ascending => format!("{key} ASC"),
                    Direction::Descending => format!("{key} DESC"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = Vec::new();
    for c in t.columns.iter().filter(|c| c.index_expression().is_none()) {
        let mut l = format!("\t{} {}", c.name, type_name(c.ty));
        if !c.nullable {
            l.push_str(" NOT NULL");
        }
        match &c.generated {
            Some(Generated::IdentityAlways) => l.push_str(" GENERATED ALWAYS AS IDENTITY"),
            Some(Generated::IdentityByDefault) => l.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
            Some(Generated::Stored(e)) => l.push_str(&format!(" AS ({e}) STORED")),
            Some(Generated::IndexExpression(_)) => {}
            None => {
                if let Some(d) = &c.default {
                    l.push_str(&format!(" DEFAULT {d}"));
                }
            }
        }
        if c.hidden {
            l.push_str(" NOT VISIBLE");
        }
        lines.push(l);
    }
    lines.push(format!(
        "\tCONSTRAINT {} PRIMARY KEY ({})",
        t.primary_index.name,
        key_list(&t.primary_index)
    ));
    for i in &t.indexes {
        let mut l = format!(
            "\t{}INDEX {} ({})",
            if i.unique { "UNIQUE " } else { "" },
            i.name,
            key_list(i)
        );
        if !i.storing.is_empty() {
            let s: Vec<String> = i.storing.iter().map(|c| col_name(*c)).collect();
            l.push_str(&format!(" STORING ({})", s.join(", ")));
        }
        if let Some(p) = t.index_predicate_text(i) {
            l.push_str(&format!(" WHERE {p}"));
        }
        lines.push(l);
    }
    for fk in &t.foreign_keys {
        let parent = if fk.referenced_table == t.id {
            t.clone()
        } else {
            node.catalog
                .table_for_update(txn, fk.referenced_table)
                .await?
        };
        let cols: Vec<String> = fk.columns.iter().map(|c| col_name(*c)).collect();
        let refs: Vec<String> = fk
            .referenced_columns
            .iter()
            .map(|c| {
                parent
                    .column_by_id(*c)
                    .map(|c| c.name.clone())
                    .unwrap_or_default()
            })
            .collect();
        let mut l = format!(
            "\tCONSTRAINT {} FOREIGN KEY ({}) REFERENCES public.{}({})",
            fk.name,
            cols.join(", "),
            parent.name,
            refs.join(", ")
        );
        for (what, a) in [("DELETE", fk.on_delete), ("UPDATE", fk.on_update)] {
            let s = match a {
                ReferentialAction::NoAction => continue,
                ReferentialAction::Restrict => "RESTRICT",
                ReferentialAction::Cascade => "CASCADE",
                ReferentialAction::SetNull => "SET NULL",
                ReferentialAction::SetDefault => "SET DEFAULT",
            };
            l.push_str(&format!(" ON {what} {s}"));
        }
        lines.push(l);
    }
    for c in &t.checks {
        lines.push(format!("\tCONSTRAINT {} CHECK ({})", c.name, c.expr));
    }
    Ok(format!(
        "CREATE TABLE public.{} (\n{}\n)",
        t.name,
        lines.join(",\n")
    ))
}

async fn show_create(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    n: &ObjectName,
) -> SqlResult<QueryOutput> {
    let t = require_table(node, txn, database, n).await?;
    let s = create_statement(node, txn, &t).await?;
    Ok(rows_output(
        "SHOW",
        text_columns(&["table_name", "create_statement"]),
        vec![vec![text(&t.name), text(s)]],
    ))
}

async fn show_indexes(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    target: &str,
) -> SqlResult<QueryOutput> {
    let (t, _) = table_and_index(node, txn, database, target, false).await?;
    // An index's own column shows as its expression, as in CockroachDB.
    let col_name = |id: ColumnId| match t.column_by_id(id) {
        Some(c) => c.index_expression().unwrap_or(&c.name).to_string(),
        None => String::new(),
    };
    let mut rows = Vec::new();
    for i in t.all_indexes() {
        let mut seq = 0;
        let mut push = |rows: &mut Vec<Vec<Value>>,
                        col: ColumnId,
                        dir: &str,
                        storing: bool,
                        implicit: bool| {
            seq += 1;
            rows.push(vec![
                text(&t.name),
                text(&i.name),
                Value::Bool(!i.unique),
                Value::Int(seq),
                text(col_name(col)),
                text(dir),
                Value::Bool(storing),
                Value::Bool(implicit),
            ]);
        };
        for (c, d) in i.columns.iter().zip(&i.directions) {
            let dir = match d {
                Direction::Ascending => "ASC",
                Direction::Descending => "DESC",
            };
            push(&mut rows, *c, dir, false, false);
        }
        if i.id == t.primary_index.id {
            for c in &t.columns {
                if !i.columns.contains(&c.id) && c.index_expression().is_none() {
                    push(&mut rows, c.id, "N/A", true, false);
                }
            }
        } else {
            for c in &i.storing {
                push(&mut rows, *c, "N/A", true, false);
            }
            for c in &t.primary_index.columns {
                if !i.columns.contains(c) {
                    push(&mut rows, *c, "ASC", false, true);
                }
            }
        }
    }
    let mut columns = text_columns(&[
        "table_name",
        "index_name",
        "non_unique",
        "seq_in_index",
        "column_name",
        "direction",
        "storing",
        "implicit",
    ]);
    columns[2].ty = SqlType::Bool;
    columns[3].ty = SqlType::Int8;
    columns[6].ty = SqlType::Bool;
    columns[7].ty = SqlType::Bool;
    Ok(rows_output("SHOW", columns, rows))
}

/// Runs one of our (CockroachDB) statements.
pub async fn execute_ours(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    statement: &parse::Ours,
) -> SqlResult<QueryOutput> {
    use parse::Ours;
    match statement {
        // The session runs cursor statements and AS OF SYSTEM TIME itself.
        Ours::Move(_) => Err(SqlError::internal("MOVE outside a session")),
        Ours::AsOf { .. } => Err(SqlError::internal("AS OF SYSTEM TIME outside a session")),
        // TODO(issue 13): DEFERRABLE constraints, checked at COMMIT; today
        // every constraint is checked at the end of its statement, so
        // there is nothing to defer or to check early.
        Ours::SetConstraints { deferred, names } => {
            if !names.is_empty() {
                let tables = node.catalog.list_tables(txn, database).await?;
                for name in names {
                    if !tables
                        .iter()
                        .any(|t| crate::vtable::has_constraint(t, name))
                    {
                        return Err(SqlError::new(
                            codes::UNDEFINED_OBJECT,
                            format!("constraint \"{name}\" does not exist"),
                        ));
                    }
                    if *deferred {
                        return Err(SqlError::new(
                            codes::WRONG_OBJECT_TYPE,
                            format!("constraint \"{name}\" is not deferrable"),
                        ));
                    }
                }
            }
            Ok(QueryOutput::command("SET CONSTRAINTS"))
        }
        Ours::SplitAt { target, query } => {
            Box::pin(split_at(node, txn, database, target, query)).await
        }
        Ours::AlterSequence {
            name,
            if_exists,
            options,
            restart,
        } => {
            Box::pin(alter_sequence(
                node, txn, database, name, *if_exists, options, *restart,
            ))
            .await
        }
        Ours::Comment { object, comment } => {
            Box::pin(comment::comment_on(node, txn, database, object, comment)).await
        }
        Ours::ConfigureZone {
            target,
            discard,
            settings,
        } => {
            Box::pin(zone::configure_zone(
                node, txn, database, target, *discard, settings,
            ))
            .await
        }
        Ours::Regions(stmt) => Box::pin(regions::execute(node, txn, database, stmt)).await,
        Ours::ShowRegions { database: Some(db) } => {
            let name = if db.is_empty() { database } else { db.as_str() };
            Box::pin(regions::show_database_regions(node, txn, name)).await
        }
        Ours::ShowRegions { database: None } => zone::show_regions(node),
        Ours::ShowZones { target } => {
            Box::pin(zone::show_zones(node, txn, database, target.as_ref())).await
        }
        Ours::ShowRanges { target, index } => {
            Box::pin(show_ranges(node, txn, database, target, *index)).await
        }
        Ours::ShowIndexes { target } => Box::pin(show_indexes(node, txn, database, target)).await,
        Ours::ShowConstraints { target } => {
            Box::pin(show_constraints(node, txn, database, target)).await
        }
        Ours::ShowStatistics { target } => {
            Box::pin(show_statistics(node, txn, database, target)).await
        }
        Ours::CreateStatistics {
            name,
            target,
            columns,
        } => {
            Box::pin(create_statistics(
                node,
                txn,
                database,
                target,
                name.clone(),
                columns,
            ))
            .await
        }
    }
}

/// `CREATE STATISTICS name [ON cols] FROM t` and `ANALYZE t [(cols)]`: reads
/// the table and stores its statistics ([`crate::stats::collect`]).
async fn create_statistics(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    target: &str,
    name: String,
    columns: &[String],
) -> SqlResult<QueryOutput> {
    let (t, _) = table_and_index(node, txn, database, target, false).await?;
    crate::stats::collect::check_collectable(&t)?;
    let mut ids = Vec::new();
    for c in columns {
        let col = t
            .column_by_name(c)
            .ok_or_else(|| SqlError::undefined_column(c))?;
        ids.push(col.id);
    }
    let table = Arc::new(t);
    crate::stats::collect::collect(
        &node.db,
        &table,
        &crate::stats::collect::Request { name, columns: ids },
    )
    .await?;
    node.stats.invalidate(table.id);
    Ok(QueryOutput::command("CREATE STATISTICS"))
}

/// `SHOW STATISTICS FOR TABLE t`: one row per column with statistics.
async fn show_statistics(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    target: &str,
) -> SqlResult<QueryOutput> {
    let (t, _) = table_and_index(node, txn, database, target, false).await?;
    let stats = crate::stats::read(&node.db, t.id).await?;
    let mut rows = Vec::new();
    for c in stats.iter().flat_map(|s| s.columns.iter()) {
        let Some(col) = t.column_by_id(c.column) else {
            continue;
        };
        rows.push(vec![
            text(&c.name),
            text(format!("{{{}}}", col.name)),
            Value::TimestampTz(c.created_micros),
            Value::Int(c.row_count as i64),
            Value::Int(c.distinct_count as i64),
            Value::Int(c.null_count as i64),
            Value::Int(c.histogram.len() as i64),
        ]);
    }
    let mut columns = text_columns(&[
        "statistics_name",
        "column_names",
        "created",
        "row_count",
        "distinct_count",
        "null_count",
        "histogram_buckets",
    ]);
    columns[2].ty = SqlType::TimestampTz;
    for c in &mut columns[3..] {
        c.ty = SqlType::Int8;
    }
    Ok(rows_output("SHOW", columns, rows))
}

async fn show_constraints(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    target: &str,
) -> SqlResult<QueryOutput> {
    let (t, _) = table_and_index(node, txn, database, target, false).await?;
    let create = create_statement(node, txn, &t).await?;
    let details = |name: &str| {
        create
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(&format!("CONSTRAINT {name} ")))
            .map(|l| l.trim_end_matches(',').to_string())
            .unwrap_or_default()
    };
    let col_list = |cols: &[ColumnId]| {
        cols.iter()
            .filter_map(|c| t.column_by_id(*c).map(|c| c.name.clone()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rows = vec![vec![
        text(&t.name),
        text(&t.primary_index.name),
        text("PRIMARY KEY"),
        text(format!(
            "PRIMARY KEY ({})",
            col_list(&t.primary_index.columns)
        )),
        Value::Bool(true),
    ]];
    for i in t.indexes.iter().filter(|i| i.unique) {
        rows.push(vec![
            text(&t.name),
            text(&i.name),
            text("UNIQUE"),
            text(format!("UNIQUE ({})", col_list(&i.columns))),
            Value::Bool(true),
        ]);
    }
    for f in &t.foreign_keys {
        let d = details(&f.name);
        let d = d
            .split_once(' ')
            .and_then(|(_, r)| r.split_once(' '))
            .map_or(d.clone(), |(_, r)| r.to_string());
        rows.push(vec![
            text(&t.name),
            text(&f.name),
            text("FOREIGN KEY"),
            text(d),
            Value::Bool(true),
        ]);
    }
    for c in &t.checks {
        rows.push(vec![
            text(&t.name),
            text(&c.name),
            text("CHECK"),
            text(format!("CHECK ({})", c.expr)),
            Value::Bool(true),
        ]);
    }
    rows.sort_by(|a, b| format!("{:?}", a[1]).cmp(&format!("{:?}", b[1])));
    let mut columns = text_columns(&[
        "table_name",
        "constraint_name",
        "constraint_type",
        "details",
        "validated",
    ]);
    columns[4].ty = SqlType::Bool;
    Ok(rows_output("SHOW", columns, rows))
}

// ---------------------------------------------------------------------------
// Ranges.

/// `t` or `t@index` from the marker statement.
async fn table_and_index(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    target: &str,
    with_index: bool,
) -> SqlResult<(TableDesc, IndexId)> {
    let (table, index) = match target.split_once('@') {
        Some((t, i)) => (t, Some(i)),
        None => (target, None),
    };
    let parts: Vec<Ident> = table
        .split('.')
        .map(|p| Ident::with_quote('"', p))
        .collect();
    let t = require_table(node, txn, database, &ObjectName::from(parts)).await?;
    require_plain_table(&t)?;
    let id = match index {
        Some(i) => t.index_by_name(i).map(|i| i.id).ok_or_else(|| {
            SqlError::new(
                codes::UNDEFINED_OBJECT,
                format!("index \"{i}\" does not exist"),
            )
        })?,
        None if with_index => return Err(SqlError::syntax("expected table@index")),
        None => t.primary_index.id,
    };
    Ok((t, id))
}

/// `ALTER TABLE t SPLIT AT VALUES (…), …`: splits the KV range at the primary
/// (or `t@index`) key of each row of values.
async fn split_at(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    target: &str,
    values: &ast::Query,
) -> SqlResult<QueryOutput> {
    let (t, index_id) = table_and_index(node, txn, database, target, false).await?;
    let index = t
        .index(index_id)
        .cloned()
        .ok_or_else(|| SqlError::internal("index vanished"))?;
    let ast::SetExpr::Values(v) = values.body.as_ref() else {
        return Err(SqlError::unsupported("SPLIT AT with a query (use VALUES)"));
    };
    let key_cols = rowenc::full_key_columns(&t, &index);
    let mut rows = Vec::new();
    for row in &v.rows {
        if row.len() > key_cols.len() {
            return Err(SqlError::syntax(format!(
                "too many columns in SPLIT AT data: {} (the key has {})",
                row.len(),
                key_cols.len()
            )));
        }
        let mut vals = Vec::with_capacity(row.len());
        for (e, (c, _)) in row.iter().zip(&key_cols) {
            let ty = t.column_by_id(*c).map(|c| c.ty).unwrap_or(SqlType::Unknown);
            vals.push(crate::exec::eval_constant(node, txn, database, &e.to_string(), ty).await?);
        }
        let key = rowenc::index_key_prefix(&t, index_id, &vals)?;
        node.db.admin_split(&key).await.map_err(kv_err)?;
        rows.push(vec![
            Value::Bytes(key.clone()),
            text(tardigrade_encoding::pretty_key(&key)),
        ]);
    }
    let mut columns = text_columns(&["key", "pretty"]);
    columns[0].ty = SqlType::Bytes;
    Ok(QueryOutput {
        tag: format!("SPLIT {}", rows.len()),
        columns: Some(columns),
        rows,
        streamed: false,
    })
}

/// `SHOW RANGES FROM TABLE t` / `FROM INDEX t@i`: the KV ranges overlapping
/// the table's (index's) span, from the meta2 records.
async fn show_ranges(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    target: &str,
    index: bool,
) -> SqlResult<QueryOutput> {
    let (t, index_id) = table_and_index(node, txn, database, target, index).await?;
    let (start, end) = if index {
        rowenc::index_span(&t, index_id)
    } else {
        rowenc::table_span(&t)
    };
    // The range holding `start` is the first meta2 record after meta2(start).
    let from = keys::key_next(&keys::meta2_key(&start));
    let mut rows = Vec::new();
    let mut cursor = from;
    'pages: loop {
        let page = node
            .db
            .scan(&cursor, keys::META_MAX, 64)
            .await
            .map_err(kv_err)?;
        if page.is_empty() {
            break;
        }
        for kv in &page {
            let d = tardigrade_kvpb::RangeDescriptor::decode(&kv.value.bytes)
                .map_err(|e| SqlError::internal(format!("meta record: {e}")))?;
            if d.start_key.as_slice() >= end.as_slice() {
                break 'pages;
            }
            let replicas: Vec<String> = d.replicas.iter().map(|r| r.node_id.to_string()).collect();
            rows.push(vec![
                text(tardigrade_encoding::pretty_key(&d.start_key)),
                text(tardigrade_encoding::pretty_key(&d.end_key)),
                Value::Int(d.range_id as i64),
                text(format!("{{{}}}", replicas.join(","))),
            ]);
            if d.end_key.as_slice() >= end.as_slice() {
                break 'pages;
            }
        }
        match page.last() {
            Some(last) => cursor = keys::key_next(&last.key),
            None => break,
        }
    }
    if rows.is_empty() {
        // A single-node store has one range and no meta records.
        rows.push(vec![
            text(tardigrade_encoding::pretty_key(&start)),
            text(tardigrade_encoding::pretty_key(&end)),
            Value::Null,
            Value::Null,
        ]);
    }
    let mut columns = text_columns(&["start_key", "end_key", "range_id", "replicas"]);
    columns[2].ty = SqlType::Int8;
    Ok(rows_output("SHOW", columns, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_whole_words() {
        assert!(mentions("a > 0 AND b < 3", "b"));
        assert!(!mentions("ab > 0", "b"));
    }
}
