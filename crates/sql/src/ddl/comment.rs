//! `COMMENT ON … IS …`, as in PostgreSQL 15.
//!
//! A comment is kept in the descriptor of the object it describes (the
//! table's, column's, index's, constraint's, database's; the `public`
//! schema's in its database's), so it is transactional like any other
//! schema change, follows a rename (the object keeps its descriptor) and
//! goes with the object when it is dropped. `pg_description` and
//! `pg_shdescription` ([`crate::vtable`]) list them. `IS NULL` and `IS ''`
//! remove a comment.
//!
//! Errors are PostgreSQL's: a missing relation is 42P01, a relation of the
//! wrong kind 42809, a missing column 42703, a missing constraint 42704, a
//! missing schema 3F000. A missing database is not an error (PostgreSQL
//! warns and does nothing, so that dumps restore into a database of
//! another name; Tardigrade does not send notices, so it only does
//! nothing). Object kinds Tardigrade does not have (functions, types,
//! roles, …) are 0A000.

use std::sync::Arc;

use sqlparser::ast::ObjectName;
use tardigrade_kv::Txn;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult};

use super::{find_index, name_parts, qualify, require_table, resolve};
use crate::catalog::TableDesc;
use crate::node::{QueryOutput, SqlNode};
use crate::parse::CommentObject;

/// Runs `COMMENT ON object IS comment`.
pub(super) async fn comment_on(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    object: &CommentObject,
    comment: &Option<String>,
) -> SqlResult<QueryOutput> {
    // PostgreSQL stores no empty comment: '' removes it, as NULL does.
    let comment = comment.clone().filter(|c| !c.is_empty());
    match object {
        CommentObject::Table(n) | CommentObject::View(n) | CommentObject::Sequence(n) => {
            let (kind, fits): (&str, fn(&TableDesc) -> bool) = match object {
                CommentObject::View(_) => ("a view", TableDesc::is_view),
                CommentObject::Sequence(_) => ("a sequence", TableDesc::is_sequence),
                _ => ("a table", |t| !t.is_view() && !t.is_sequence()),
            };
            let mut t = relation(node, txn, database, n, kind).await?;
            if !fits(&t) {
                return Err(wrong_kind(&t.name, kind));
            }
            t.comment = comment;
            node.catalog.write_tables(txn, &[t]).await?;
        }
        CommentObject::Index(n) => {
            let index = find_index(node, txn, database, n)
                .await?
                .filter(|(t, id)| !(*id == t.primary_index.id && t.has_implicit_pk()));
            let Some((mut t, id)) = index else {
                // An index's name is a relation's name in PostgreSQL.
                return Err(match qualify(database, n) {
                    Ok(q) => match resolve(node, txn, &q).await? {
                        Some(t) => wrong_kind(&t.name, "an index"),
                        None => SqlError::undefined_table(&q.name),
                    },
                    Err(e) => e,
                });
            };
            let index = if id == t.primary_index.id {
                Some(&mut t.primary_index)
            } else {
                t.indexes
                    .iter_mut()
                    .chain(t.mutations.iter_mut())
                    .find(|i| i.id == id)
            };
            if let Some(i) = index {
                i.comment = comment;
            }
            node.catalog.write_tables(txn, &[t]).await?;
        }
        CommentObject::Column(n) => {
            let Some((column, table)) = n.0.split_last() else {
                return Err(SqlError::syntax("column name must be qualified"));
            };
            if table.is_empty() {
                return Err(SqlError::syntax("column name must be qualified"));
            }
            let column = name_parts(&ObjectName(vec![column.clone()]))
                .pop()
                .unwrap_or_default();
            let mut t =
                relation(node, txn, database, &ObjectName(table.to_vec()), "a table").await?;
            if t.is_sequence() {
                return Err(SqlError::new(
                    codes::WRONG_OBJECT_TYPE,
                    format!("cannot set comment on relation \"{}\"", t.name),
                )
                .with_detail("This operation is not supported for sequences."));
            }
            let relation = t.name.clone();
            let Some(c) = t.columns.iter_mut().find(|c| c.name == column && !c.hidden) else {
                return Err(SqlError::new(
                    codes::UNDEFINED_COLUMN,
                    format!("column \"{column}\" of relation \"{relation}\" does not exist"),
                ));
            };
            c.comment = comment;
            node.catalog.write_tables(txn, &[t]).await?;
        }
        CommentObject::Constraint { name, table } => {
            let mut t = relation(node, txn, database, table, "a table").await?;
            let implicit_pk = t.has_implicit_pk();
            let slot = if !implicit_pk && t.primary_index.name == *name {
                Some(&mut t.primary_index.constraint_comment)
            } else if let Some(i) = t.indexes.iter_mut().find(|i| i.unique && i.name == *name) {
                Some(&mut i.constraint_comment)
            } else if let Some(f) = t.foreign_keys.iter_mut().find(|f| f.name == *name) {
                Some(&mut f.comment)
            } else if let Some(c) = t.checks.iter_mut().find(|c| c.name == *name) {
                Some(&mut c.comment)
            } else {
                None
            };
            let Some(slot) = slot else {
                return Err(SqlError::new(
                    codes::UNDEFINED_OBJECT,
                    format!(
                        "constraint \"{name}\" for table \"{}\" does not exist",
                        t.name
                    ),
                ));
            };
            *slot = comment;
            node.catalog.write_tables(txn, &[t]).await?;
        }
        CommentObject::Database(n) => {
            let name = single_name(n)?;
            if node.catalog.database_id(txn, &name).await?.is_none() {
                return Ok(QueryOutput::command("COMMENT"));
            }
            let mut d = node.catalog.database_for_update(txn, &name).await?;
            d.comment = comment;
            node.catalog.write_database(txn, &d).await?;
        }
        CommentObject::Schema(n) => {
            let name = single_name(n)?;
            match name.as_str() {
                "public" => {
                    let mut d = node.catalog.database_for_update(txn, database).await?;
                    d.public_schema_comment = comment;
                    node.catalog.write_database(txn, &d).await?;
                }
                "pg_catalog" | "information_schema" => {
                    return Err(SqlError::unsupported(format!(
                        "COMMENT ON SCHEMA {name}: system schemas cannot be commented on"
                    )));
                }
                _ => {
                    return Err(SqlError::new(
                        codes::INVALID_SCHEMA_NAME,
                        format!("schema \"{name}\" does not exist"),
                    ));
                }
            }
        }
        CommentObject::Unsupported(what) => {
            return Err(SqlError::unsupported(format!("{what} is not supported")));
        }
    }
    Ok(QueryOutput::command("COMMENT"))
}

/// The table, view or sequence `n` names, for rewriting; when there is
/// none, 42809 if an index has the name (`"i" is not a table`, as
/// PostgreSQL, whose indexes are relations, says), else 42P01.
async fn relation(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    n: &ObjectName,
    kind: &str,
) -> SqlResult<TableDesc> {
    match require_table(node, txn, database, n).await {
        Err(e) if e.code == codes::UNDEFINED_TABLE => {
            match find_index(node, txn, database, n).await {
                Ok(Some((t, id))) if !(id == t.primary_index.id && t.has_implicit_pk()) => {
                    let name = name_parts(n).pop().unwrap_or_default();
                    Err(wrong_kind(&name, kind))
                }
                _ => Err(e),
            }
        }
        r => r,
    }
}

/// 42809 `"name" is not a view` (`kind` with its article).
fn wrong_kind(name: &str, kind: &str) -> SqlError {
    SqlError::new(
        codes::WRONG_OBJECT_TYPE,
        format!("\"{name}\" is not {kind}"),
    )
}

/// A database's or schema's name: one identifier.
fn single_name(n: &ObjectName) -> SqlResult<String> {
    match name_parts(n).as_slice() {
        [name] => Ok(name.clone()),
        _ => Err(SqlError::syntax(format!("syntax error at or near \"{n}\""))),
    }
}
