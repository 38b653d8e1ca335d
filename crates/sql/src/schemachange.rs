//! Online index builds: `CREATE INDEX`, `ALTER TABLE … ADD PRIMARY KEY` and
//! `ALTER TABLE … ADD CONSTRAINT … UNIQUE` run outside an explicit
//! transaction, as F1 and CockroachDB build indexes: a sequence of small
//! committed transactions instead of one that writes an entry per row.
//!
//! ## The protocol
//!
//! 1. **Add write-only** (one transaction, [`crate::ddl::start_online`]): the
//!    statement is checked and its indexes are added to the table descriptor
//!    as mutations in state [`IndexState::WriteOnly`]; for ADD PRIMARY KEY,
//!    the new primary index and a re-keyed copy of every secondary index (new
//!    ids), with `new_primary` naming the first. From its commit on, every
//!    statement that writes rows maintains these indexes (`rowenc`'s write
//!    paths: INSERT, UPDATE, DELETE, UPSERT, ON CONFLICT, cascades, COPY), a
//!    unique one rejecting duplicates; nothing reads them.
//! 2. **Backfill** (one transaction per chunk of `SqlNode::backfill_chunk_rows`
//!    rows of the primary index, [`rowenc::backfill_chunk`]): each chunk
//!    re-reads the descriptor through its own transaction, stops if the
//!    mutations are gone (a concurrent DROP INDEX or DROP TABLE), writes the
//!    entries of its rows and commits; the resume key (just after the chunk's
//!    last primary key) is carried to the next chunk. A chunk that keeps
//!    failing with 40001 is retried with half as many rows.
//! 3. **Make public** (one transaction): the mutations become public indexes;
//!    for ADD PRIMARY KEY the new indexes replace the old ones in the same
//!    transaction (the new key columns become NOT NULL), and the old indexes'
//!    spans, which nothing references any more, are cleared afterwards by a
//!    background task, a page per transaction (the statement returns once
//!    the new key is public).
//!
//! On an error (23505 for a duplicate, 23502 for a NULL in a new key column)
//! or a cancel request, the build stops between chunks and is rolled back:
//! one transaction removes the mutations from the descriptor, then their
//! spans are cleared page by page, and the table is as before. The work runs
//! in a task of its own so that a cancelled statement (whose future the wire
//! layer drops) still cleans up: dropping the statement sets a flag the task
//! checks before each chunk. The same holds when the connection's task is
//! dropped (the SQL listener shutting down). A client that merely hangs up
//! is not noticed until the statement ends — the wire layer does not watch
//! the socket during a statement — so its build runs to completion
//! (TODO(issue 4): notice a closed socket mid-statement and cancel).
//!
//! ## Why each row ends up indexed exactly once
//!
//! Every transaction that uses a descriptor reads the catalog version key
//! through itself and every schema change writes it (see [`crate::catalog`]),
//! so each DML transaction is serialized either before step 1 (it sees no
//! index) or after it (it maintains the index); no transaction writes with a
//! stale descriptor. A backfill chunk reads the version key too, so it is
//! serialized against steps 1 and 3 and against a concurrent DROP. Take a row
//! `r` of a chunk's key range, and a DML transaction `D` serialized after
//! step 1 that touches it; the chunk `B` and `D` both read `r`'s primary key
//! and both write `r`'s entry, so serializability orders them:
//!
//! - `D` inserts `r`. `D` before `B`: `D` writes the entry, `B` sees `r` and
//!   writes the same key and value (a `Put` of an existing non-unique entry,
//!   or — unique and primary entries — a read that finds this very value and
//!   writes nothing). `B` before `D`: `B` does not see `r`; `D` writes it.
//! - `D` deletes `r`. `B` before `D`: `B` wrote the entry, `D` deletes it
//!   (`D` deletes the entries of every write-only index). `D` before `B`:
//!   `B` does not see `r` and writes nothing — no entry is left behind.
//! - `D` updates `r`. `B` before `D`: `D` replaces the entry `B` wrote.
//!   `D` before `B`: `B` sees the new `r` and writes its entry, which `D`
//!   already wrote (same key and value).
//! - Rows written before step 1 have no entry until their chunk writes it;
//!   the chunks cover the primary index from start to end once.
//!
//! So, at every committed snapshot after a chunk, each live row of the chunks
//! done has exactly its entry (and an entry of a unique index whose key is
//! present with another value belongs to another row: a duplicate). Rows in
//! chunks not done yet have an entry only if DML wrote one, which is that
//! row's entry too. When the last chunk commits, the index matches the table.
//!
//! ## Inside an explicit transaction
//!
//! `BEGIN; CREATE INDEX …; COMMIT` cannot commit several transactions of its
//! own, so there the statement keeps its in-transaction form in
//! [`crate::ddl`] (the whole backfill is part of the user's transaction, as
//! is a table created in the same block). CockroachDB too runs a block's
//! schema changes differently.
//!
//! TODO(issue 4): a build whose gateway dies between steps 1 and 3 leaves its
//! write-only indexes behind (maintained by writes, never used); `DROP INDEX`
//! removes a leftover secondary one, but a leftover primary key change has no
//! name of its own to drop when the table had no secondary index. A jobs
//! table that another node resumes or rolls back (CockroachDB's job registry)
//! would clean them up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlparser::ast::Statement;
use tardigrade_kv::Txn;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult};

use crate::catalog::{DescId, IndexId, IndexState, TableDesc};
use crate::ddl::OnlineStart;
pub use crate::node::DEFAULT_CHUNK_ROWS;
use crate::node::{QueryOutput, SqlNode};
use crate::retry::in_txn;
use crate::rowenc;

/// The smallest chunk a retried chunk shrinks to.
const MIN_CHUNK_ROWS: usize = 16;
/// How often a running backfill logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Runs an online schema change (`ddl::runs_online(statement)`) outside any
/// transaction: the whole protocol, in a task of its own. Dropping the
/// returned future (a cancel request) stops the build before its next chunk
/// and rolls it back.
pub async fn run(
    node: &Arc<SqlNode>,
    database: &str,
    statement: &Statement,
) -> SqlResult<QueryOutput> {
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let task = tokio::spawn(build(
        node.clone(),
        database.to_string(),
        statement.clone(),
        cancel,
    ));
    match task.await {
        Ok(r) => r,
        Err(e) => Err(SqlError::internal(format!("schema change task: {e}"))),
    }
}

/// Sets the flag when the statement's future is dropped before the build
/// finished.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn build(
    node: Arc<SqlNode>,
    database: String,
    statement: Statement,
    cancel: Arc<AtomicBool>,
) -> SqlResult<QueryOutput> {
    let start = {
        let (node, database, statement) = (node.clone(), database.clone(), statement.clone());
        in_txn(
            &node.clone(),
            "schema-change-start",
            false,
            move |txn, _| {
                let (node, database, statement) =
                    (node.clone(), database.clone(), statement.clone());
                Box::pin(async move {
                    crate::ddl::start_online(&node, txn, &database, &statement).await
                })
            },
        )
        .await?
    };
    let Some(start) = start else {
        return Ok(QueryOutput::command(tag_of(&statement)));
    };
    match backfill_and_publish(&node, &start, &cancel).await {
        Ok(()) => Ok(QueryOutput::command(start.tag)),
        Err(e) => {
            tracing::info!(
                table = %start.table_name,
                error = %e,
                "index build failed; rolling it back"
            );
            if let Err(cleanup) = roll_back(&node, &start).await {
                // TODO(issue 4): a job that retries this (see the module doc).
                tracing::warn!(
                    table = %start.table_name,
                    error = %cleanup,
                    "could not roll back a failed index build; its write-only indexes remain"
                );
            }
            Err(e)
        }
    }
}

fn tag_of(statement: &Statement) -> &'static str {
    match statement {
        Statement::CreateIndex(_) => "CREATE INDEX",
        _ => "ALTER TABLE",
    }
}

/// The table with its build still in progress, read through `txn`; an error
/// when the table or one of the build's indexes was dropped meanwhile.
async fn building_table(
    node: &SqlNode,
    txn: &mut Txn,
    start: &OnlineStart,
) -> SqlResult<Arc<TableDesc>> {
    let t = node
        .catalog
        .table_by_id(txn, start.table)
        .await
        .map_err(|_| {
            SqlError::new(
                codes::UNDEFINED_TABLE,
                format!(
                    "table \"{}\" was dropped while its index was being built",
                    start.table_name
                ),
            )
        })?;
    let all_there = start.index_ids.iter().all(|id| {
        t.mutation(*id)
            .is_some_and(|m| m.state == IndexState::WriteOnly)
    });
    let swap_ok = !start.primary_swap || t.new_primary == start.index_ids.first().copied();
    if !all_there || !swap_ok {
        return Err(SqlError::new(
            codes::UNDEFINED_OBJECT,
            format!(
                "the index being built on table \"{}\" was dropped",
                start.table_name
            ),
        ));
    }
    Ok(t)
}

async fn backfill_and_publish(
    node: &Arc<SqlNode>,
    start: &OnlineStart,
    cancel: &AtomicBool,
) -> SqlResult<()> {
    let began = Instant::now();
    let mut last_log = began;
    let mut resume: Option<Vec<u8>> = None;
    let mut rows_done: u64 = 0;
    let mut chunks: u64 = 0;
    tracing::info!(
        table = %start.table_name,
        indexes = ?start.index_ids,
        "backfilling write-only indexes"
    );
    loop {
        if cancel.load(Ordering::SeqCst) {
            return Err(SqlError::new(
                codes::QUERY_CANCELED,
                "canceling statement due to user request",
            ));
        }
        let chunk_rows = node.backfill_chunk_rows.load(Ordering::Relaxed).max(1);
        let chunk = {
            let (node2, start2, from) = (node.clone(), start.clone(), resume.clone());
            in_txn(node, "backfill", true, move |txn, attempt| {
                let (node, start, from) = (node2.clone(), start2.clone(), from.clone());
                // A chunk that keeps conflicting with DML gets smaller.
                let rows = (chunk_rows >> (attempt - 1).min(16)).max(MIN_CHUNK_ROWS);
                Box::pin(async move {
                    let t = building_table(&node, txn, &start).await?;
                    let from = match from {
                        Some(k) => k,
                        None => rowenc::index_span(&t, t.primary_index.id).0,
                    };
                    rowenc::backfill_chunk(txn, &t, &start.index_ids, &from, rows).await
                })
            })
            .await?
        };
        rows_done += chunk.rows as u64;
        chunks += 1;
        tracing::debug!(
            table = %start.table_name,
            rows = chunk.rows,
            written = chunk.written,
            "backfill chunk committed"
        );
        if last_log.elapsed() >= PROGRESS_EVERY {
            last_log = Instant::now();
            tracing::info!(
                table = %start.table_name,
                rows_done,
                chunks,
                rows_per_sec = (rows_done as f64 / began.elapsed().as_secs_f64()) as u64,
                "backfill progress"
            );
        }
        match chunk.resume {
            Some(k) => resume = Some(k),
            None => break,
        }
    }
    if cancel.load(Ordering::SeqCst) {
        return Err(SqlError::new(
            codes::QUERY_CANCELED,
            "canceling statement due to user request",
        ));
    }
    let old_indexes = {
        let (node2, start2) = (node.clone(), start.clone());
        in_txn(node, "schema-change-publish", false, move |txn, _| {
            let (node, start) = (node2.clone(), start2.clone());
            Box::pin(async move { publish(&node, txn, &start).await })
        })
        .await?
    };
    tracing::info!(
        table = %start.table_name,
        rows_done,
        chunks,
        secs = began.elapsed().as_secs_f64(),
        "index build done"
    );
    // The swapped-out indexes of a primary key change: nothing reads or
    // writes them any more, so the statement does not wait for them (as
    // CockroachDB's GC job, minus the GC TTL).
    if !old_indexes.is_empty() {
        let (node, start) = (node.clone(), start.clone());
        tokio::spawn(async move {
            let began = Instant::now();
            for id in old_indexes {
                if let Err(e) = clear_index(&node, start.table, id).await {
                    // TODO(issue 4): a GC job for spans left behind.
                    tracing::warn!(table = %start.table_name, index = id, error = %e,
                        "could not clear the span of a replaced index");
                    return;
                }
            }
            tracing::info!(
                table = %start.table_name,
                secs = began.elapsed().as_secs_f64(),
                "replaced indexes cleared"
            );
        });
    }
    Ok(())
}

/// The last transaction: the write-only indexes become public (for a primary
/// key change, they replace the old ones). Returns the ids of the replaced
/// indexes, whose spans are to be cleared.
async fn publish(node: &SqlNode, txn: &mut Txn, start: &OnlineStart) -> SqlResult<Vec<IndexId>> {
    building_table(node, txn, start).await?;
    let mut t = node.catalog.table_for_update(txn, start.table).await?;
    let mut replaced = Vec::new();
    if start.primary_swap {
        replaced = t.all_indexes().map(|i| i.id).collect();
        t = t.after_primary_swap();
    } else {
        let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut t.mutations)
            .into_iter()
            .partition(|m| start.index_ids.contains(&m.id));
        t.mutations = rest;
        for mut m in done {
            m.state = IndexState::Public;
            t.indexes.push(m);
        }
    }
    node.catalog.write_tables(txn, &[t]).await?;
    Ok(replaced)
}

/// Undoes a build that failed or was cancelled: removes its mutations (one
/// transaction), then clears their spans.
async fn roll_back(node: &Arc<SqlNode>, start: &OnlineStart) -> SqlResult<()> {
    let removed = {
        let (node2, start2) = (node.clone(), start.clone());
        in_txn(node, "schema-change-rollback", true, move |txn, _| {
            let (node, start) = (node2.clone(), start2.clone());
            Box::pin(async move {
                let Ok(mut t) = node.catalog.table_for_update(txn, start.table).await else {
                    // Dropped: its data went with it.
                    return Ok(Vec::new());
                };
                let removed: Vec<IndexId> = t
                    .mutations
                    .iter()
                    .map(|m| m.id)
                    .filter(|id| start.index_ids.contains(id))
                    .collect();
                if removed.is_empty() {
                    return Ok(removed);
                }
                t.mutations.retain(|m| !removed.contains(&m.id));
                if start.primary_swap {
                    t.new_primary = None;
                }
                node.catalog.write_tables(txn, &[t]).await?;
                Ok(removed)
            })
        })
        .await?
    };
    // Every index of the build, not only those this transaction removed: a
    // retried rollback whose first commit went through finds nothing to
    // remove, and an index a concurrent DROP INDEX removed is cleared twice,
    // harmlessly. No descriptor mentions them now.
    let _ = removed;
    for id in &start.index_ids {
        clear_index(node, start.table, *id).await?;
    }
    tracing::info!(table = %start.table_name, "index build rolled back");
    Ok(())
}

/// Deletes every entry of an index no descriptor mentions any more, a page
/// per transaction ([`crate::gc::clear`]).
async fn clear_index(node: &Arc<SqlNode>, table: DescId, index: IndexId) -> SqlResult<()> {
    crate::gc::clear(node, crate::gc::Doomed::Index(table, index)).await
}

/// For tests and debugging: checks that table `name` of `database` has no
/// index build left over (no write-only index, no pending primary key) and
/// that every index holds exactly its rows' entries
/// ([`rowenc::check_indexes`]); returns the number of rows. Reads through a
/// transaction of its own, rolled back.
pub async fn check_settled_table(node: &SqlNode, database: &str, name: &str) -> SqlResult<usize> {
    let mut txn = node.db.txn("check-table");
    let result = async {
        let t = node
            .catalog
            .resolve_table(&mut txn, database, None, name)
            .await?
            .ok_or_else(|| SqlError::internal(format!("table \"{name}\" does not exist")))?;
        if !t.mutations.is_empty() || t.new_primary.is_some() {
            return Err(SqlError::internal(format!(
                "table \"{name}\" has a build left over: mutations {:?}, new primary {:?}",
                t.mutations, t.new_primary
            )));
        }
        rowenc::check_indexes(&mut txn, &t).await
    }
    .await;
    let _ = txn.rollback().await;
    result
}
