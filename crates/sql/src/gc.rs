//! Clearing the data of dropped tables and indexes after the drop commits, as
//! CockroachDB's schema-change GC job does: DROP TABLE, DROP DATABASE, DROP
//! INDEX and TRUNCATE take constant time in the size of the data.
//!
//! ## The protocol
//!
//! 1. **The statement** removes only names and descriptors (DROP), or gives
//!    the table's indexes fresh ids (TRUNCATE, see [`crate::ddl`]), and
//!    records what became unreachable — a [`Doomed`] table prefix or index
//!    span — with [`PendingClears::schedule`], keyed by its transaction. It
//!    writes O(1) keys however large the data.
//! 2. **The session** ([`crate::session`]) learns how the transaction ended:
//!    after a successful commit (implicit, `COMMIT` or `RELEASE SAVEPOINT
//!    cockroach_restart`) it calls [`start_after_commit`]; on a rollback, a
//!    failed statement or block, a restart or a failed commit it calls
//!    [`PendingClears::discard`], so a rolled-back DROP leaves the data as
//!    it was. (A commit whose outcome is unknown, 40003, counts as failed:
//!    if it did commit, its data is left behind — see the TODO below.)
//! 3. **A background task** clears each span a page at a time
//!    ([`CLEAR_PAGE_KEYS`] keys), each page its own transaction (the KV
//!    layer has no non-transactional range clear). Every page transaction
//!    first reads the descriptor and clears nothing if it still references
//!    the span (`still_referenced`): a safety net, since clearing data a
//!    descriptor names would lose rows.
//!
//! Table and index ids are never reused, so once the descriptor no longer
//! names a span nothing reads or writes it again: leaving it for a while is
//! harmless, and clearing it races with nobody.
//!
//! The same paging clears the indexes an online build replaced or rolled
//! back ([`crate::schemachange`]), and those that `ALTER TABLE … DROP
//! COLUMN` and an `ADD PRIMARY KEY` inside a block leave behind.
//!
//! TODO(issue 4): the list lives in memory only. If the gateway dies between
//! the commit and the end of the clearing, the rest of the spans are left
//! behind (unreachable, never read, but taking space). A GC job registry —
//! a system table of pending clears written in the dropping transaction and
//! resumed by any node, as CockroachDB's jobs are — would find them; so
//! would a sweep for table prefixes with data but no descriptor.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tardigrade_kv::Txn;
use tardigrade_kvpb::TxnId;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult};

use crate::catalog::{Descriptor, decode_descriptor, descriptor_key, kv_err};
use crate::node::SqlNode;
pub use crate::node::{Doomed, PendingClears};
use crate::retry::in_txn;
use crate::rowenc;

/// Keys cleared per transaction when a span is emptied.
pub const CLEAR_PAGE_KEYS: usize = 5000;

/// Starts clearing, in a background task, what `txn` scheduled; called once
/// the transaction committed. Returns the task (None when there was nothing
/// to clear); callers do not wait for it.
pub fn start_after_commit(node: &Arc<SqlNode>, txn: TxnId) -> Option<tokio::task::JoinHandle<()>> {
    let doomed = node.pending_clears.take(txn);
    if doomed.is_empty() {
        return None;
    }
    let node = node.clone();
    Some(tokio::spawn(async move {
        let began = Instant::now();
        for d in &doomed {
            if let Err(e) = clear(&node, *d).await {
                // TODO(issue 4): a GC job would retry this (see the module doc).
                tracing::warn!(doomed = ?d, error = %e,
                    "could not clear the data of a dropped table or index; it is left behind");
            }
        }
        tracing::info!(
            doomed = ?doomed,
            secs = began.elapsed().as_secs_f64(),
            "data of dropped tables and indexes cleared"
        );
    }))
}

/// Whether the committed catalog, read through `txn`, still names the
/// doomed data (then it must not be cleared).
async fn still_referenced(txn: &mut Txn, doomed: Doomed) -> SqlResult<bool> {
    let Some(bytes) = txn
        .get(&descriptor_key(doomed.table()))
        .await
        .map_err(kv_err)?
    else {
        return Ok(false);
    };
    let Doomed::Index(_, index) = doomed else {
        return Ok(true);
    };
    match decode_descriptor(&bytes)? {
        Descriptor::Table(t) => Ok(t
            .all_indexes()
            .chain(t.mutations.iter())
            .any(|i| i.id == index)),
        Descriptor::Database(_) => Ok(true),
    }
}

/// Deletes all of `doomed`'s data, a page per transaction; refuses (without
/// deleting anything) while a descriptor still references it.
pub async fn clear(node: &Arc<SqlNode>, doomed: Doomed) -> SqlResult<()> {
    let (start, end) = doomed.span();
    let mut from = start;
    loop {
        while node.gc_paused.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (f, e) = (from.clone(), end.clone());
        let next = in_txn(node, "gc-clear", true, move |txn, _| {
            let (f, e) = (f.clone(), e.clone());
            Box::pin(async move {
                if still_referenced(txn, doomed).await? {
                    return Err(SqlError::new(
                        codes::OBJECT_IN_USE,
                        format!("{doomed:?} is still referenced by its descriptor"),
                    ));
                }
                rowenc::clear_span_page(txn, &f, &e, CLEAR_PAGE_KEYS).await
            })
        })
        .await?;
        match next {
            Some(k) => from = k,
            None => break,
        }
    }
    if let Doomed::Table(id) = doomed {
        // The dropped table's statistics go with its data.
        node.db
            .del(&crate::stats::stats_key(id))
            .await
            .map_err(crate::catalog::kv_err)?;
        node.stats.invalidate(id);
    }
    Ok(())
}
