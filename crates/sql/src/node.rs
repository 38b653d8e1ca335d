//! The SQL server of one node ([`SqlNode`]): what all its sessions share, and
//! what statements produce ([`QueryOutput`], [`Column`]).
//!
//! Takes the catalog cache ([`crate::catalog`]) and the statistics cache
//! ([`crate::stats`]); gives the node handle every layer above works with
//! (planning, execution, DDL, online schema changes, GC, sessions). So that
//! those layers can sit above it, the per-node state they own is declared
//! here: the temp storage of spilling operators ([`TempStorage`], used by
//! `crate::exec::sort`), what open transactions dropped ([`PendingClears`],
//! cleared by [`crate::gc`]) and the default backfill chunk
//! ([`DEFAULT_CHUNK_ROWS`], of [`crate::schemachange`]). Those modules
//! re-export them under their old paths.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use tardigrade_encoding::keys;
use tardigrade_kv::{Db, Txn};
use tardigrade_kvpb::TxnId;
use tardigrade_sqltypes::{SqlResult, SqlType, Value};

use crate::catalog::{Catalog, DescId, IndexId};
use crate::stats::StatsCache;

/// The SQL server of one node: what all its sessions share.
pub struct SqlNode {
    /// Temp files and working memory of spilling operators (sorts).
    pub temp_storage: TempStorage,
    pub db: Db,
    pub catalog: Catalog,
    pub node_id: u32,
    /// Rows per transaction of an online index backfill
    /// ([`crate::schemachange`]); tests make it small.
    pub backfill_chunk_rows: AtomicUsize,
    /// What open transactions dropped, cleared after they commit
    /// ([`crate::gc`]).
    pub pending_clears: PendingClears,
    /// Holds the clearing of dropped data before its next page while set
    /// (tests: the data is still there after the drop committed).
    pub gc_paused: AtomicBool,
    /// Table statistics the planner reads, cached ([`crate::stats`]).
    pub stats: StatsCache,
    /// The advisory locks sessions on this node hold ([`crate::advisory`]).
    pub advisory: crate::advisory::AdvisoryLocks,
    /// The localities of the cluster's nodes, given by the server (zone
    /// constraints are checked against them); unset on a bare SQL node.
    localities: std::sync::OnceLock<LocalitySource>,
}

/// Lists the locality tiers (`region=…`, `zone=…`) of every node of the
/// cluster.
pub type LocalitySource = Arc<dyn Fn() -> Vec<Vec<(String, String)>> + Send + Sync>;

impl SqlNode {
    /// Sets where the cluster's localities come from (once; later calls
    /// are ignored).
    pub fn set_locality_source(&self, source: LocalitySource) {
        let _ = self.localities.set(source);
    }

    /// The localities of the cluster's nodes, if the server said how to
    /// list them.
    pub fn cluster_localities(&self) -> Option<Vec<Vec<(String, String)>>> {
        self.localities.get().map(|f| f())
    }

    /// Creates the node's SQL server; makes sure the cluster has its initial
    /// databases (`defaultdb`, `postgres`), which the first node to start creates.
    pub async fn start(db: Db, node_id: u32) -> SqlResult<Arc<SqlNode>> {
        let catalog = Catalog::new(db.clone());
        catalog.ensure_bootstrapped().await?;
        Ok(Arc::new(SqlNode {
            temp_storage: Default::default(),
            db,
            catalog,
            node_id,
            backfill_chunk_rows: AtomicUsize::new(DEFAULT_CHUNK_ROWS),
            pending_clears: Default::default(),
            gc_paused: AtomicBool::new(false),
            stats: Default::default(),
            advisory: Default::default(),
            localities: Default::default(),
        }))
    }
}

/// A result column: name and type.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: SqlType,
}

/// What a statement produced: its command tag (`SELECT 3`, `INSERT 0 1`, `BEGIN`),
/// and for statements that return rows, the columns and the rows.
#[derive(Clone, Debug, Default)]
pub struct QueryOutput {
    pub tag: String,
    /// `Some` for statements that return rows (even zero of them).
    pub columns: Option<Vec<Column>>,
    pub rows: Vec<Vec<Value>>,
    /// The rows went to the [`crate::exec::RowSink`] the statement was run with, not into
    /// `rows`.
    pub streamed: bool,
}

impl QueryOutput {
    pub fn command(tag: impl Into<String>) -> QueryOutput {
        QueryOutput {
            tag: tag.into(),
            columns: None,
            rows: Vec::new(),
            streamed: false,
        }
    }
}

/// Rows per backfill chunk by default (`SqlNode::backfill_chunk_rows`).
pub const DEFAULT_CHUNK_ROWS: usize = 2000;

/// Default working memory of one sort (CockroachDB's
/// `sql.distsql.temp_storage.workmem`).
pub const DEFAULT_WORKMEM: usize = 64 << 20;

/// Default of [`TempStorage::statement_budget`]: 1 GiB.
pub const DEFAULT_STATEMENT_BUDGET: usize = 1 << 30;

/// Bytes of read buffer per run being merged.
pub(crate) const RUN_READ_BUFFER: usize = 8 << 10;
/// Most runs merged at once, whatever the budget (one open file each). A
/// sort keeps fewer than twice as many runs (open files): reaching that, it
/// merges the smallest ones.
const MAX_FAN_IN: usize = 64;

/// A node's temporary storage for operators that spill: where temp files go,
/// the working-memory budget of one sort, and counters of what spilled.
#[derive(Debug)]
pub struct TempStorage {
    dir: parking_lot::Mutex<Option<PathBuf>>,
    workmem: AtomicUsize,
    statement_budget: AtomicUsize,
    pub(crate) spilled_sorts: AtomicU64,
    spilled_aggregations: AtomicU64,
    spilled_joins: AtomicU64,
    pub(crate) spilled_runs: AtomicU64,
    pub(crate) spilled_bytes: AtomicU64,
}

impl Default for TempStorage {
    fn default() -> TempStorage {
        TempStorage {
            dir: parking_lot::Mutex::new(None),
            workmem: AtomicUsize::new(DEFAULT_WORKMEM),
            statement_budget: AtomicUsize::new(DEFAULT_STATEMENT_BUDGET),
            spilled_sorts: AtomicU64::new(0),
            spilled_aggregations: AtomicU64::new(0),
            spilled_joins: AtomicU64::new(0),
            spilled_runs: AtomicU64::new(0),
            spilled_bytes: AtomicU64::new(0),
        }
    }
}

impl TempStorage {
    /// Puts temp files in `dir` (created when first needed), e.g. the store
    /// directory's `tmp/`.
    pub fn set_dir(&self, dir: PathBuf) {
        *self.dir.lock() = Some(dir);
    }

    /// The directory temp files go to: the one set, else the system's.
    pub fn dir(&self) -> PathBuf {
        self.dir.lock().clone().unwrap_or_else(std::env::temp_dir)
    }

    /// Sets the working memory of one sort (at least 1 byte); tests make it
    /// tiny to force spilling.
    pub fn set_workmem(&self, bytes: usize) {
        self.workmem.store(bytes.max(1), AtomicOrdering::Relaxed);
    }

    /// What one statement may collect in memory: the rows returned to a
    /// caller that wants them whole (DML sources, an embedded session; not
    /// the wire, where they stream), cached scans, IN lists.
    pub fn statement_budget(&self) -> usize {
        self.statement_budget.load(AtomicOrdering::Relaxed)
    }

    /// Sets [`TempStorage::statement_budget`] (at least 1 byte).
    pub fn set_statement_budget(&self, bytes: usize) {
        self.statement_budget
            .store(bytes.max(1), AtomicOrdering::Relaxed);
    }

    pub fn workmem(&self) -> usize {
        self.workmem.load(AtomicOrdering::Relaxed)
    }

    /// Runs merged at once: as many read buffers as fit in the budget, at
    /// least 2 and at most [`MAX_FAN_IN`].
    pub fn merge_fan_in(&self) -> usize {
        (self.workmem() / RUN_READ_BUFFER).clamp(2, MAX_FAN_IN)
    }

    /// Sorts that wrote at least one run since the node started.
    /// Hash aggregations (and the partitions of spilled ones) that wrote
    /// rows to temp files.
    pub fn spilled_aggregations(&self) -> u64 {
        self.spilled_aggregations.load(AtomicOrdering::Relaxed)
    }

    /// Times hash joins partitioned their inputs to temp files.
    pub fn spilled_joins(&self) -> u64 {
        self.spilled_joins.load(AtomicOrdering::Relaxed)
    }

    pub(crate) fn note_spilled_join(&self) {
        self.spilled_joins.fetch_add(1, AtomicOrdering::Relaxed);
    }

    pub(crate) fn note_spilled_aggregation(&self) {
        self.spilled_aggregations
            .fetch_add(1, AtomicOrdering::Relaxed);
    }

    pub fn spilled_sorts(&self) -> u64 {
        self.spilled_sorts.load(AtomicOrdering::Relaxed)
    }

    /// Runs written (including those of intermediate merges).
    pub fn spilled_runs(&self) -> u64 {
        self.spilled_runs.load(AtomicOrdering::Relaxed)
    }

    /// Bytes written to runs.
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled_bytes.load(AtomicOrdering::Relaxed)
    }
}

/// Data that no descriptor references any more, to be cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doomed {
    /// All of a dropped table's data (`/Table/<id>`): its indexes, and a
    /// sequence's value.
    Table(DescId),
    /// One index's span (`/Table/<table>/<index>`): a dropped index, an
    /// index a TRUNCATE or a primary key change replaced, or an index an
    /// online build rolled back.
    Index(DescId, IndexId),
}

impl Doomed {
    /// `[start, end)` of the data.
    pub fn span(&self) -> (Vec<u8>, Vec<u8>) {
        let prefix = match *self {
            Doomed::Table(t) => keys::table_prefix(t as u64),
            Doomed::Index(t, i) => keys::index_prefix(t as u64, i as u64),
        };
        let end = keys::prefix_end(&prefix);
        (prefix, end)
    }

    pub(crate) fn table(&self) -> DescId {
        match *self {
            Doomed::Table(t) | Doomed::Index(t, _) => t,
        }
    }
}

/// What each open transaction dropped, to be cleared once it commits (one
/// per [`SqlNode`]; only the session that owns a transaction takes or
/// discards its entry).
#[derive(Default)]
pub struct PendingClears {
    by_txn: Mutex<HashMap<TxnId, Vec<Doomed>>>,
}

impl PendingClears {
    /// Records that `doomed` becomes unreachable if `txn` commits.
    pub fn schedule(&self, txn: &Txn, doomed: Doomed) {
        let mut map = self.by_txn.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(txn.id()).or_default();
        if !list.contains(&doomed) {
            list.push(doomed);
        }
    }

    /// Forgets what `txn` scheduled (it did not commit).
    pub fn discard(&self, txn: TxnId) {
        self.take(txn);
    }

    /// What `txn` scheduled, removed from the list.
    pub fn take(&self, txn: TxnId) -> Vec<Doomed> {
        let mut map = self.by_txn.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&txn).unwrap_or_default()
    }

    /// How many things `txn` has scheduled so far (a savepoint remembers it).
    pub fn scheduled(&self, txn: TxnId) -> usize {
        let map = self.by_txn.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&txn).map_or(0, Vec::len)
    }

    /// Forgets what `txn` scheduled after its first `len` (a rollback to a
    /// savepoint undid the drops that scheduled them).
    pub fn forget_after(&self, txn: TxnId, len: usize) {
        let mut map = self.by_txn.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = map.get_mut(&txn) {
            list.truncate(len);
        }
    }

    /// How many transactions have something scheduled (for tests: a session
    /// leaves nothing behind).
    pub fn open_transactions(&self) -> usize {
        self.by_txn.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
