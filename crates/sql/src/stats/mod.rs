//! Table statistics: what the optimizer knows about a table's data (row count,
//! and per column the distinct count, the null count and a histogram), how they
//! are stored, and the node's cache of them.
//!
//! Statistics are collected by `CREATE STATISTICS` / `ANALYZE` and by the
//! automatic refresher ([`collect`]); the planner reads them through
//! [`StatsCache::for_tables`] before optimizing, and cardinality estimation
//! ([`crate::plan::cardinality`]) turns them into selectivities.
//!
//! ## Storage
//!
//! One key per table in the system span, `/System/"sql-stats"/<table id>`, whose
//! value is the table's latest statistics ([`encode`]). A collection on some
//! columns replaces those columns' entries and keeps the others. Statistics are
//! hints, not data: they are written and read outside user transactions, a
//! reader may see them a little late, and a value that does not decode is
//! ignored (the planner falls back to its defaults) rather than failing a query.

pub mod collect;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tardigrade_encoding::Direction;
use tardigrade_kv::Db;
use tardigrade_kvpb::codec::put_bytes;
use tardigrade_sqltypes::{SqlError, SqlResult, Value};

use crate::catalog::{ColumnId, DescId, kv_err};

const STATS_PREFIX: &[u8] = b"\x04sql-stats";
/// Codec version of a stored value.
const FORMAT: u8 = 1;
/// How long a node trusts its cached statistics before reading them again
/// (collections on other nodes become visible within this time).
const CACHE_TTL: Duration = Duration::from_secs(30);

/// `/System/"sql-stats"/<table id>`.
pub fn stats_key(table: DescId) -> Vec<u8> {
    let mut k = STATS_PREFIX.to_vec();
    tardigrade_encoding::encode_uvarint(&mut k, u64::from(table), Direction::Ascending);
    k
}

/// The statistics of one table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableStats {
    /// Rows in the table when the statistics were collected.
    pub row_count: u64,
    /// When they were collected (microseconds since the Unix epoch).
    pub created_micros: i64,
    /// Bumped by every collection; plans cached under older statistics are
    /// rebuilt.
    pub generation: u64,
    pub columns: Vec<ColumnStats>,
}

/// Statistics of one column.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnStats {
    pub column: ColumnId,
    /// The statistics' name (`__auto__` for automatic ones, as in CockroachDB).
    pub name: String,
    pub created_micros: i64,
    pub row_count: u64,
    pub distinct_count: u64,
    pub null_count: u64,
    /// Equi-depth histogram over the non-NULL values, ascending; empty when
    /// the column was not sampled for one.
    pub histogram: Vec<Bucket>,
}

/// A histogram bucket: `num_range` rows strictly between the previous bucket's
/// upper bound and `upper` (with `distinct_range` distinct values), and
/// `num_eq` rows equal to `upper`. Counts are scaled to the whole table.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    pub upper: Value,
    pub num_eq: f64,
    pub num_range: f64,
    pub distinct_range: f64,
}

impl TableStats {
    pub fn column(&self, id: ColumnId) -> Option<&ColumnStats> {
        self.columns.iter().find(|c| c.column == id)
    }
}

/// Encodes statistics for storage.
pub fn encode(stats: &TableStats) -> SqlResult<Vec<u8>> {
    let mut b = vec![FORMAT];
    b.extend_from_slice(&stats.row_count.to_be_bytes());
    b.extend_from_slice(&stats.created_micros.to_be_bytes());
    b.extend_from_slice(&stats.generation.to_be_bytes());
    b.extend_from_slice(&(stats.columns.len() as u32).to_be_bytes());
    for c in &stats.columns {
        b.extend_from_slice(&c.column.to_be_bytes());
        put_bytes(&mut b, c.name.as_bytes());
        b.extend_from_slice(&c.created_micros.to_be_bytes());
        b.extend_from_slice(&c.row_count.to_be_bytes());
        b.extend_from_slice(&c.distinct_count.to_be_bytes());
        b.extend_from_slice(&c.null_count.to_be_bytes());
        b.extend_from_slice(&(c.histogram.len() as u32).to_be_bytes());
        for bucket in &c.histogram {
            crate::rowenc::encode_datum(&mut b, &bucket.upper)?;
            b.extend_from_slice(&bucket.num_eq.to_be_bytes());
            b.extend_from_slice(&bucket.num_range.to_be_bytes());
            b.extend_from_slice(&bucket.distinct_range.to_be_bytes());
        }
    }
    Ok(b)
}

fn corrupt() -> SqlError {
    SqlError::internal("table statistics do not decode")
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> SqlResult<&'a [u8]> {
    if buf.len() < n {
        return Err(corrupt());
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn get_u32(buf: &mut &[u8]) -> SqlResult<u32> {
    let mut a = [0u8; 4];
    a.copy_from_slice(take(buf, 4)?);
    Ok(u32::from_be_bytes(a))
}

fn get_u64(buf: &mut &[u8]) -> SqlResult<u64> {
    let mut a = [0u8; 8];
    a.copy_from_slice(take(buf, 8)?);
    Ok(u64::from_be_bytes(a))
}

fn get_f64(buf: &mut &[u8]) -> SqlResult<f64> {
    get_u64(buf).map(f64::from_bits)
}

/// Decodes stored statistics.
pub fn decode(bytes: &[u8]) -> SqlResult<TableStats> {
    let mut r = bytes;
    let r = &mut r;
    if take(r, 1)? != [FORMAT] {
        return Err(corrupt());
    }
    let row_count = get_u64(r)?;
    let created_micros = get_u64(r)? as i64;
    let generation = get_u64(r)?;
    let ncols = get_u32(r)?;
    let mut columns = Vec::new();
    for _ in 0..ncols {
        let column = get_u32(r)?;
        let name_len = get_u32(r)? as usize;
        let name = String::from_utf8(take(r, name_len)?.to_vec()).map_err(|_| corrupt())?;
        let created_micros = get_u64(r)? as i64;
        let row_count = get_u64(r)?;
        let distinct_count = get_u64(r)?;
        let null_count = get_u64(r)?;
        let nbuckets = get_u32(r)?;
        let mut histogram = Vec::new();
        for _ in 0..nbuckets {
            let upper = crate::rowenc::decode_datum(r).map_err(|_| corrupt())?;
            histogram.push(Bucket {
                upper,
                num_eq: get_f64(r)?,
                num_range: get_f64(r)?,
                distinct_range: get_f64(r)?,
            });
        }
        columns.push(ColumnStats {
            column,
            name,
            created_micros,
            row_count,
            distinct_count,
            null_count,
            histogram,
        });
    }
    if !r.is_empty() {
        return Err(corrupt());
    }
    Ok(TableStats {
        row_count,
        created_micros,
        generation,
        columns,
    })
}

/// Reads a table's statistics (outside any transaction).
pub async fn read(db: &Db, table: DescId) -> SqlResult<Option<TableStats>> {
    match db.get(&stats_key(table)).await.map_err(kv_err)? {
        None => Ok(None),
        Some(bytes) => match decode(&bytes) {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                tracing::warn!(table, error = %e, "ignoring table statistics that do not decode");
                Ok(None)
            }
        },
    }
}

/// Statistics a plan was built with, by table id.
pub type StatsMap = HashMap<DescId, Arc<TableStats>>;

struct Cached {
    stats: Option<Arc<TableStats>>,
    read_at: Instant,
}

/// Rows that must change before automatic statistics are refreshed, on top
/// of [`STALE_FRACTION`] of the table (CockroachDB's defaults).
pub const STALE_MIN_ROWS: u64 = 500;
/// The fraction of a table's rows that must change before a refresh.
pub const STALE_FRACTION: f64 = 0.2;

/// A table's automatic refreshes on this node.
#[derive(Clone, Copy, Default)]
struct Refresh {
    running: bool,
    /// When the last one ended and how long it took.
    last: Option<(Instant, Duration)>,
}

/// A table is refreshed again only after this many times the last
/// refresh's duration has passed since it ended, so that a bulk load (whose
/// every batch crosses the 20% threshold of a small table) spends at most a
/// fifth of its time on statistics.
const REFRESH_SPACING: u32 = 4;

/// The node's cache of table statistics, and its automatic refresher.
pub struct StatsCache {
    entries: Arc<Mutex<HashMap<DescId, Cached>>>,
    /// Rows written through this node per table since its last refresh.
    changes: Mutex<HashMap<DescId, u64>>,
    /// Tables being refreshed now (one refresh per table at a time).
    refreshing: Arc<Mutex<HashMap<DescId, Refresh>>>,
    automatic: std::sync::atomic::AtomicBool,
}

impl Default for StatsCache {
    fn default() -> StatsCache {
        StatsCache {
            entries: Arc::default(),
            changes: Mutex::default(),
            refreshing: Arc::default(),
            // Off with TARDIGRADE_AUTO_STATS=0 (tests that compare plans).
            automatic: std::sync::atomic::AtomicBool::new(
                std::env::var("TARDIGRADE_AUTO_STATS").map_or(true, |v| v != "0"),
            ),
        }
    }
}

impl StatsCache {
    /// The statistics of `tables`, from the cache or read (one point read per
    /// table not read in the last [`CACHE_TTL`]). A failed read plans without
    /// statistics rather than failing the statement.
    pub async fn for_tables(&self, db: &Db, tables: impl Iterator<Item = DescId>) -> StatsMap {
        let mut out = StatsMap::new();
        let mut missing = Vec::new();
        {
            let entries = self.entries.lock();
            for id in tables {
                match entries.get(&id) {
                    Some(c) if c.read_at.elapsed() < CACHE_TTL => {
                        if let Some(s) = &c.stats {
                            out.insert(id, s.clone());
                        }
                    }
                    _ => missing.push(id),
                }
            }
        }
        for id in missing {
            let stats = match read(db, id).await {
                Ok(s) => s.map(Arc::new),
                Err(e) => {
                    tracing::debug!(table = id, error = %e, "cannot read table statistics");
                    continue;
                }
            };
            if let Some(s) = &stats {
                out.insert(id, s.clone());
            }
            self.entries.lock().insert(
                id,
                Cached {
                    stats,
                    read_at: Instant::now(),
                },
            );
        }
        out
    }

    /// Forgets a table's statistics (after a collection on this node).
    pub fn invalidate(&self, table: DescId) {
        self.entries.lock().remove(&table);
        self.changes.lock().remove(&table);
    }

    /// Turns automatic collection on or off.
    pub fn set_automatic(&self, on: bool) {
        self.automatic
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts rows a statement wrote; once more than [`STALE_MIN_ROWS`] plus
    /// [`STALE_FRACTION`] of the table's last counted rows changed through this
    /// node, starts a background refresh (automatic statistics). The count
    /// includes writes that later roll back: a refresh too many is cheap.
    pub fn note_changes(&self, db: &Db, table: &Arc<crate::catalog::TableDesc>, rows: u64) {
        if rows == 0
            || !self.automatic.load(std::sync::atomic::Ordering::Relaxed)
            || table.is_view()
            || table.is_sequence()
        {
            return;
        }
        // Some(rows) when this node knows the table's statistics, Some(None)
        // when it knows there are none, None when it has not read them.
        let known: Option<Option<u64>> = self
            .entries
            .lock()
            .get(&table.id)
            .map(|c| c.stats.as_ref().map(|s| s.row_count));
        let threshold = match known {
            Some(Some(rows)) => STALE_MIN_ROWS + (rows as f64 * STALE_FRACTION) as u64,
            // A table without statistics gets them at its first change
            // (CockroachDB's refresher does the same): a small table (the 5
            // regions of TPC-H) never reaches the row threshold, and the
            // planner's guesses for it (1,000 rows) mislead join ordering.
            // When this node has not read them, the refresh reads first.
            Some(None) | None => 0,
        };
        {
            let mut changes = self.changes.lock();
            let n = changes.entry(table.id).or_insert(0);
            *n += rows;
            if *n < threshold {
                return;
            }
            let mut refreshing = self.refreshing.lock();
            let r = refreshing.entry(table.id).or_default();
            let too_soon = r
                .last
                .is_some_and(|(ended, took)| ended.elapsed() < took * REFRESH_SPACING);
            if r.running || too_soon {
                // The changes stay counted: a later statement starts it.
                return;
            }
            r.running = true;
            *n = 0;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            if let Some(r) = self.refreshing.lock().get_mut(&table.id) {
                r.running = false;
            }
            return;
        };
        let (db, table) = (db.clone(), table.clone());
        let (refreshing, entries) = (self.refreshing.clone(), self.entries.clone());
        runtime.spawn(async move {
            if known.is_none()
                && let Ok(Some(stats)) = read(&db, table.id).await
            {
                // It has statistics after all: nothing to refresh yet.
                entries.lock().insert(
                    table.id,
                    Cached {
                        stats: Some(Arc::new(stats)),
                        read_at: Instant::now(),
                    },
                );
                if let Some(r) = refreshing.lock().get_mut(&table.id) {
                    r.running = false;
                }
                return;
            }
            let request = collect::Request {
                name: collect::AUTO_STATS_NAME.to_string(),
                columns: Vec::new(),
            };
            let started = Instant::now();
            match collect::collect(&db, &table, &request).await {
                Ok(s) => tracing::info!(
                    table = %table.name,
                    rows = s.row_count,
                    "refreshed automatic table statistics"
                ),
                Err(e) => tracing::warn!(
                    table = %table.name,
                    error = %e,
                    "automatic table statistics failed"
                ),
            }
            // Other nodes see the new statistics when their cache entry
            // expires; this one rereads at once.
            entries.lock().remove(&table.id);
            refreshing.lock().insert(
                table.id,
                Refresh {
                    running: false,
                    last: Some((Instant::now(), started.elapsed())),
                },
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_round_trip_through_the_codec() {
        let stats = TableStats {
            row_count: 1000,
            created_micros: 1_700_000_000_000_000,
            generation: 3,
            columns: vec![ColumnStats {
                column: 2,
                name: "s1".into(),
                created_micros: 5,
                row_count: 1000,
                distinct_count: 10,
                null_count: 4,
                histogram: vec![
                    Bucket {
                        upper: Value::Int(1),
                        num_eq: 100.0,
                        num_range: 0.0,
                        distinct_range: 0.0,
                    },
                    Bucket {
                        upper: Value::Text("zz".into()),
                        num_eq: 1.5,
                        num_range: 800.0,
                        distinct_range: 8.0,
                    },
                ],
            }],
        };
        let bytes = encode(&stats).expect("encodes");
        assert_eq!(decode(&bytes).expect("decodes"), stats);
        assert!(decode(&bytes[..bytes.len() - 3]).is_err());
        assert!(decode(&[9, 9, 9]).is_err());
    }
}
