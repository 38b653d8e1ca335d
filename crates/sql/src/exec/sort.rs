//! Sorting under a memory limit: an external merge sort, and a top-n heap for
//! `ORDER BY … LIMIT n`.
//!
//! A [`Sorter`] buffers `(sort key, input sequence number, row)` entries and
//! charges each one's estimated size ([`row_bytes`]) to its working-memory
//! budget (CockroachDB's `sql.distsql.temp_storage.workmem`, 64 MiB by default,
//! per node in [`TempStorage`]). When the buffer goes over the budget it is
//! sorted and written to a temporary file as a sorted *run*; at the end the runs
//! (and what is still buffered) are merged with a binary heap of run cursors,
//! and the output streams from the merge ([`SortedRows`]). At most
//! [`TempStorage::merge_fan_in`] runs are merged at once (each open run holds a
//! read buffer and a file descriptor): a sort that reaches twice that many
//! runs merges its smallest ones into one while it reads its input, and at
//! the end as many as needed for the rest to fit in one merge.
//!
//! The order is the executor's in-memory order exactly: keys compare with
//! [`Value`]'s total order, each key ascending or descending with its NULLs
//! first or last, and rows with equal keys keep their input order, because
//! every entry carries its input sequence number and that breaks ties (in
//! memory, in runs and in the merge alike). So spilling never changes a
//! result.
//!
//! With a limit of `n` rows the sorter keeps a max-heap of the best `n`
//! entries instead of the whole input (memory bounded by `n` rows); if even
//! those exceed the budget the heap is spilled as a run like a buffer, and the
//! merge stops after `n` rows.
//!
//! ## Run format
//!
//! A run file is a sequence of records, in sort order:
//!
//! ```text
//! record = u32 little-endian length of body, body
//! body   = u64 seq, u32 key count, key datums, u32 row width, row datums
//!          (fixed-width integers little-endian)
//! datum  = rowenc::encode_datum: tag 0 for NULL, else the row-value tag and datum
//! ```
//!
//! Temporary files are created unnamed (`tempfile::tempfile_in`: `O_TMPFILE`
//! or created and unlinked at once) in the node's temp directory, the store's
//! `tmp/` subdirectory when the node has a store directory, else the system's.
//! They disappear when the sort's [`Sorter`] or [`SortedRows`] is dropped (the
//! sort ends, fails, or its statement is cancelled), and even when the process
//! dies. A failed write is a SQL error: 53100 (disk_full) when the device is
//! full, 58030 (io_error) otherwise.
//!
//! Hash tables (aggregation groups, a hash join's build side, DISTINCT and
//! set operations) charge a budget ([`HashBudget`]) of [`HASH_BUDGET_FACTOR`]
//! times the sort's (1 GiB by default). Hash aggregations and hash joins
//! past half of it spill their rows to partitions in the same temp files
//! ([`RunWriter`]; see `exec::operator`); the others fail with 53200.
//!
//! TODO(issue 4): temp-file I/O runs on the statement's task (a
//! `spawn_blocking` writer would keep it off the runtime's threads); DISTINCT
//! and set operations should spill (partitioned) instead of failing; a
//! cluster setting or session variable for the budget (today a node
//! setting).

use std::cmp::Ordering;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::atomic::Ordering as AtomicOrdering;

use tardigrade_sqltypes::{SqlError, SqlResult, Value};

use super::batch::Batch;
use crate::node::RUN_READ_BUFFER;
pub use crate::node::{DEFAULT_STATEMENT_BUDGET, DEFAULT_WORKMEM, TempStorage};
use crate::plan::Row;
use crate::rowenc;

/// SQLSTATE disk_full.
pub const DISK_FULL: &str = "53100";
/// SQLSTATE io_error.
pub const IO_ERROR: &str = "58030";

/// Bytes of write buffer of the run being written.
const RUN_WRITE_BUFFER: usize = 64 << 10;

/// How many times the sort's working memory a hash table may use, until
/// hash tables spill to disk.
pub const HASH_BUDGET_FACTOR: usize = 16;

/// A hash table's memory (aggregation groups, a hash join's build side)
/// charged against [`HASH_BUDGET_FACTOR`] times the working-memory budget:
/// past it the statement fails with 53200 instead of growing without bound
/// (hash aggregations and hash joins spill before they get there).
/// TODO(issue 4): spill DISTINCT and set operations too.
pub struct HashBudget {
    used: usize,
    /// The most ever charged at once (`EXPLAIN ANALYZE` shows it).
    peak: usize,
    limit: usize,
    what: &'static str,
}

impl HashBudget {
    /// A budget for `what` ("hash aggregation", "hash join").
    pub fn new(storage: &TempStorage, what: &'static str) -> HashBudget {
        HashBudget {
            used: 0,
            peak: 0,
            limit: storage.workmem().saturating_mul(HASH_BUDGET_FACTOR),
            what,
        }
    }

    /// Whether `bytes` more stay within half the budget: a hash aggregation
    /// admits new groups only that far, keeping the other half for the
    /// groups it holds to grow (DISTINCT sets); a hash join's build rows
    /// stay within it, keeping the other half for the table of their keys.
    pub fn fits_half(&self, bytes: usize) -> bool {
        self.used.saturating_add(bytes) <= self.limit / 2
    }

    /// The most ever charged at once.
    pub fn peak(&self) -> usize {
        self.peak
    }

    pub fn charge(&mut self, bytes: usize) -> SqlResult<()> {
        self.used += bytes;
        self.peak = self.peak.max(self.used);
        if self.used > self.limit {
            return Err(SqlError::new(
                tardigrade_sqltypes::error::codes::OUT_OF_MEMORY,
                format!(
                    "{} needs more than its memory budget of {} \
                     ({HASH_BUDGET_FACTOR} x sql.distsql.temp_storage.workmem)",
                    self.what,
                    human_bytes(self.limit)
                ),
            ));
        }
        Ok(())
    }

    /// Forgets what was charged (a streaming aggregation's finished group).
    pub fn reset(&mut self) {
        self.used = 0;
    }
}

/// `64 MiB`, `256 KiB`, `100 bytes`.
pub fn human_bytes(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

pub use crate::batch::row_bytes;

/// How one sort key orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyOrder {
    pub descending: bool,
    pub nulls_first: bool,
}

/// Compares two sort keys (NULLs placed by `nulls_first` whatever the
/// direction, other values by [`Value`]'s order, reversed when descending).
pub fn compare_keys(order: &[KeyOrder], a: &[Value], b: &[Value]) -> Ordering {
    for ((o, x), y) in order.iter().zip(a).zip(b) {
        let ord = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) if o.nulls_first => Ordering::Less,
            (true, false) => Ordering::Greater,
            (false, true) if o.nulls_first => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let c = x.cmp(y);
                if o.descending { c.reverse() } else { c }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// One buffered row: its key, its position in the input, the row.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: Vec<Value>,
    pub seq: u64,
    pub row: Row,
}

impl Entry {
    fn bytes(&self) -> usize {
        std::mem::size_of::<Entry>() + row_bytes(&self.key) + row_bytes(&self.row)
    }
}

/// Sort order of entries: keys, then input position (so the order is total
/// and equal keys keep their input order).
fn entry_cmp(order: &[KeyOrder], a: &Entry, b: &Entry) -> Ordering {
    compare_keys(order, &a.key, &b.key).then(a.seq.cmp(&b.seq))
}

/// A binary max-heap under a comparator passed to each call (the sort order
/// depends on the statement, so items cannot implement `Ord` themselves).
struct Heap<T> {
    items: Vec<T>,
}

impl<T> Heap<T> {
    fn new() -> Heap<T> {
        Heap { items: Vec::new() }
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn peek(&self) -> Option<&T> {
        self.items.first()
    }

    fn push(&mut self, item: T, cmp: &impl Fn(&T, &T) -> Ordering) {
        self.items.push(item);
        let mut i = self.items.len() - 1;
        while i > 0 {
            let parent = (i - 1) / 2;
            if cmp(&self.items[i], &self.items[parent]) != Ordering::Greater {
                break;
            }
            self.items.swap(i, parent);
            i = parent;
        }
    }

    /// Replaces the greatest item, returning it.
    fn replace_top(&mut self, item: T, cmp: &impl Fn(&T, &T) -> Ordering) -> Option<T> {
        if self.items.is_empty() {
            self.items.push(item);
            return None;
        }
        let old = std::mem::replace(&mut self.items[0], item);
        self.sift_down(0, cmp);
        Some(old)
    }

    fn pop(&mut self, cmp: &impl Fn(&T, &T) -> Ordering) -> Option<T> {
        if self.items.is_empty() {
            return None;
        }
        let last = self.items.len() - 1;
        self.items.swap(0, last);
        let top = self.items.pop();
        self.sift_down(0, cmp);
        top
    }

    fn sift_down(&mut self, mut i: usize, cmp: &impl Fn(&T, &T) -> Ordering) {
        let n = self.items.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut largest = i;
            if l < n && cmp(&self.items[l], &self.items[largest]) == Ordering::Greater {
                largest = l;
            }
            if r < n && cmp(&self.items[r], &self.items[largest]) == Ordering::Greater {
                largest = r;
            }
            if largest == i {
                return;
            }
            self.items.swap(i, largest);
            i = largest;
        }
    }

    fn into_vec(self) -> Vec<T> {
        self.items
    }
}

fn io_error(what: &str, e: std::io::Error) -> SqlError {
    let code = if e.kind() == std::io::ErrorKind::StorageFull {
        DISK_FULL
    } else {
        IO_ERROR
    };
    SqlError::new(code, format!("{what}: {e}"))
}

/// Creates an unnamed temp file in `dir` (creating `dir` if needed).
fn temp_file(dir: &std::path::Path) -> SqlResult<File> {
    std::fs::create_dir_all(dir).map_err(|e| {
        io_error(
            &format!("cannot create the temp directory {}", dir.display()),
            e,
        )
    })?;
    tempfile::tempfile_in(dir).map_err(|e| {
        io_error(
            &format!("cannot create a temp file in {}", dir.display()),
            e,
        )
    })
}

/// Writes one run.
pub struct RunWriter {
    out: BufWriter<File>,
    scratch: Vec<u8>,
    rows: u64,
    bytes: u64,
}

impl RunWriter {
    pub fn create(dir: &std::path::Path) -> SqlResult<RunWriter> {
        Ok(RunWriter {
            out: BufWriter::with_capacity(RUN_WRITE_BUFFER, temp_file(dir)?),
            scratch: Vec::new(),
            rows: 0,
            bytes: 0,
        })
    }

    pub fn write(&mut self, e: &Entry) -> SqlResult<()> {
        self.write_parts(&e.key, e.seq, &e.row)
    }

    /// Writes the entry with this key, sequence number and row.
    pub fn write_parts(&mut self, key: &[Value], seq: u64, row: &[Value]) -> SqlResult<()> {
        let b = &mut self.scratch;
        b.clear();
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&seq.to_le_bytes());
        for values in [key, row] {
            b.extend_from_slice(&(values.len() as u32).to_le_bytes());
            for v in values {
                rowenc::encode_datum(b, v)?;
            }
        }
        let body = u32::try_from(b.len() - 4).map_err(|_| {
            SqlError::new(
                tardigrade_sqltypes::error::codes::PROGRAM_LIMIT_EXCEEDED,
                "a row to sort is larger than 4 GiB",
            )
        })?;
        b[..4].copy_from_slice(&body.to_le_bytes());
        self.out
            .write_all(b)
            .map_err(|e| io_error("cannot write a sort run to temp storage", e))?;
        self.rows += 1;
        self.bytes += b.len() as u64;
        Ok(())
    }

    /// Flushes the run and rewinds it for reading.
    pub fn finish(self) -> SqlResult<Run> {
        let mut file = self
            .out
            .into_inner()
            .map_err(|e| io_error("cannot write a sort run to temp storage", e.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| io_error("cannot read a sort run back", e))?;
        Ok(Run {
            file,
            rows: self.rows,
            bytes: self.bytes,
        })
    }
}

/// A written run, positioned at its start.
pub struct Run {
    file: File,
    rows: u64,
    bytes: u64,
}

impl Run {
    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn reader(self) -> RunReader {
        RunReader {
            input: BufReader::with_capacity(RUN_READ_BUFFER, self.file),
            left: self.rows,
            scratch: Vec::new(),
        }
    }
}

/// Reads a run's entries back in order.
pub struct RunReader {
    input: BufReader<File>,
    left: u64,
    scratch: Vec<u8>,
}

fn corrupt_run() -> SqlError {
    SqlError::new(IO_ERROR, "corrupt sort run in temp storage")
}

impl RunReader {
    pub fn next_entry(&mut self) -> SqlResult<Option<Entry>> {
        if self.left == 0 {
            return Ok(None);
        }
        let read_err = |e| io_error("cannot read a sort run from temp storage", e);
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len).map_err(read_err)?;
        let len = u32::from_le_bytes(len) as usize;
        self.scratch.resize(len, 0);
        self.input.read_exact(&mut self.scratch).map_err(read_err)?;
        self.left -= 1;
        let mut buf: &[u8] = &self.scratch;
        let seq = u64::from_le_bytes(take_array(&mut buf)?);
        let key = read_values(&mut buf)?;
        let row = read_values(&mut buf)?;
        if !buf.is_empty() {
            return Err(corrupt_run());
        }
        Ok(Some(Entry { key, seq, row }))
    }
}

fn read_values(buf: &mut &[u8]) -> SqlResult<Vec<Value>> {
    let n = u32::from_le_bytes(take_array(buf)?);
    // Every datum takes at least a byte: bound the allocation.
    if n as usize > buf.len() {
        return Err(corrupt_run());
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        out.push(rowenc::decode_datum(buf).map_err(|_| corrupt_run())?);
    }
    Ok(out)
}

/// The next `N` bytes of `buf`.
fn take_array<const N: usize>(buf: &mut &[u8]) -> SqlResult<[u8; N]> {
    let (head, rest) = buf.split_first_chunk::<N>().ok_or_else(corrupt_run)?;
    *buf = rest;
    Ok(*head)
}

/// A sort in progress: push rows with their keys, then [`Sorter::finish`].
pub struct Sorter<'s> {
    order: Vec<KeyOrder>,
    limit: Option<usize>,
    budget: usize,
    fan_in: usize,
    storage: &'s TempStorage,
    /// Unsorted entries (no limit), in flat vectors; or, under a limit, the
    /// best `limit` so far (a max-heap).
    arena: Arena,
    top: Heap<Entry>,
    buffered: usize,
    /// The most bytes buffered at once (`EXPLAIN ANALYZE`).
    peak: usize,
    runs: Vec<Run>,
    next_seq: u64,
}

impl<'s> Sorter<'s> {
    /// A sort on keys ordered by `order`, keeping only the first `limit` rows
    /// when given, under `storage`'s working-memory budget.
    pub fn new(order: Vec<KeyOrder>, limit: Option<usize>, storage: &'s TempStorage) -> Sorter<'s> {
        Sorter {
            order,
            limit,
            budget: storage.workmem(),
            fan_in: storage.merge_fan_in(),
            storage,
            arena: Arena::default(),
            top: Heap::new(),
            buffered: 0,
            peak: 0,
            runs: Vec::new(),
            next_seq: 0,
        }
    }

    /// The most bytes of rows it held in memory at once.
    pub fn peak_memory(&self) -> usize {
        self.peak
    }

    /// Runs written so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Adds the next input row and its sort key; spills when over budget,
    /// and merges runs when too many are open. The values are moved out of
    /// `key` (left empty, to be reused) and `row` (left NULL).
    pub async fn push(&mut self, key: &mut Vec<Value>, row: &mut [Value]) -> SqlResult<()> {
        let seq = self.next_seq;
        self.next_seq += 1;
        match self.limit {
            Some(0) => return Ok(()),
            Some(n) => {
                let order = &self.order;
                let cmp = |a: &Entry, b: &Entry| entry_cmp(order, a, b);
                let qualifies = self.top.len() < n
                    || self.top.peek().is_some_and(|worst| {
                        compare_keys(order, key, &worst.key).then(seq.cmp(&worst.seq))
                            == Ordering::Less
                    });
                if !qualifies {
                    key.clear();
                    return Ok(());
                }
                let entry = Entry {
                    key: std::mem::take(key),
                    seq,
                    row: row.iter_mut().map(take_value).collect(),
                };
                self.buffered += entry.bytes();
                if self.top.len() < n {
                    self.top.push(entry, &cmp);
                } else if let Some(old) = self.top.replace_top(entry, &cmp) {
                    self.buffered -= old.bytes();
                }
            }
            None => {
                self.buffered += row_bytes(key) + row_bytes(row);
                self.arena.push(seq, key, row)?;
            }
        }
        self.peak = self.peak.max(self.buffered);
        if self.buffered > self.budget {
            self.spill()?;
            if self.runs.len() >= 2 * self.fan_in {
                self.merge_smallest(self.fan_in).await?;
            }
        }
        Ok(())
    }

    /// The buffered entries, sorted.
    fn take_sorted(&mut self) -> Memory {
        self.buffered = 0;
        match self.limit {
            Some(_) => Memory::Entries(self.take_top().into_iter()),
            None => Memory::Arena(std::mem::take(&mut self.arena).into_sorted(&self.order)),
        }
    }

    /// The top-n heap's entries, sorted.
    fn take_top(&mut self) -> Vec<Entry> {
        let mut entries = std::mem::replace(&mut self.top, Heap::new()).into_vec();
        // The order is total (ties broken by seq): unstable is enough.
        entries.sort_unstable_by(|a, b| entry_cmp(&self.order, a, b));
        entries
    }

    /// Sorts the buffer and writes it as a run, emptying it (an arena keeps
    /// its vectors' memory for the next rows).
    fn spill(&mut self) -> SqlResult<()> {
        self.buffered = 0;
        if self.limit.is_none() {
            if self.arena.len == 0 {
                return Ok(());
            }
            let mut w = self.start_run()?;
            for i in self.arena.sorted_positions(&self.order) {
                let i = i as usize;
                w.write_parts(
                    self.arena.key(i),
                    self.arena.first_seq + i as u64,
                    self.arena.row(i),
                )?;
            }
            self.arena.clear();
            return self.end_run(w);
        }
        let entries = self.take_top();
        if entries.is_empty() {
            return Ok(());
        }
        let mut w = self.start_run()?;
        for e in &entries {
            w.write(e)?;
        }
        drop(entries);
        self.end_run(w)
    }

    /// A run file for a spill (the first one counts as a spilled sort).
    fn start_run(&self) -> SqlResult<RunWriter> {
        if self.runs.is_empty() {
            self.storage
                .spilled_sorts
                .fetch_add(1, AtomicOrdering::Relaxed);
        }
        RunWriter::create(&self.storage.dir())
    }

    fn end_run(&mut self, w: RunWriter) -> SqlResult<()> {
        let run = w.finish()?;
        self.note_run(&run);
        self.runs.push(run);
        Ok(())
    }

    /// Merges the `count` smallest runs into one (tiers of similar sizes,
    /// so each row is rewritten about log_fan-in(runs) times), yielding to
    /// the runtime before and every few thousand rows.
    async fn merge_smallest(&mut self, count: usize) -> SqlResult<()> {
        tokio::task::yield_now().await;
        // Which runs merge does not matter for the order (seq breaks ties).
        self.runs.sort_by_key(|r| r.rows);
        let count = count.min(self.runs.len());
        let group: Vec<Cursor> = self
            .runs
            .drain(..count)
            .map(|r| Cursor::Run(r.reader()))
            .collect();
        let mut merge = Merge::new(self.order.clone(), group)?;
        let mut w = RunWriter::create(&self.storage.dir())?;
        let mut written = 0usize;
        while let Some(e) = merge.next_entry()? {
            if self.limit.is_some_and(|l| written >= l) {
                break;
            }
            w.write(&e)?;
            written += 1;
            if written.is_multiple_of(super::YIELD_EVERY) {
                tokio::task::yield_now().await;
            }
        }
        drop(merge);
        let run = w.finish()?;
        self.note_run(&run);
        self.runs.push(run);
        Ok(())
    }

    fn note_run(&self, run: &Run) {
        self.storage
            .spilled_runs
            .fetch_add(1, AtomicOrdering::Relaxed);
        self.storage
            .spilled_bytes
            .fetch_add(run.bytes, AtomicOrdering::Relaxed);
    }

    /// Ends the input and returns the rows in order. With more runs than the
    /// merge fan-in, the smallest runs are first merged into bigger ones
    /// (yielding to the runtime between merges and every few thousand rows,
    /// where a cancelled statement stops).
    pub async fn finish(mut self) -> SqlResult<SortedRows> {
        let memory = self.take_sorted();
        if self.runs.is_empty() {
            return Ok(SortedRows {
                source: Source::Memory(memory),
                left: self.limit,
            });
        }
        let fan_in = self.fan_in;
        // The in-memory rest is one more cursor of the final merge.
        while self.runs.len() + 1 > fan_in {
            // Merge just enough runs for the rest to fit in one merge.
            let excess = self.runs.len() + 1 - fan_in;
            self.merge_smallest((excess + 1).min(fan_in)).await?;
        }
        let mut cursors: Vec<Cursor> = std::mem::take(&mut self.runs)
            .into_iter()
            .map(|r| Cursor::Run(r.reader()))
            .collect();
        cursors.push(Cursor::Memory(memory));
        Ok(SortedRows {
            source: Source::Merge(Merge::new(self.order.clone(), cursors)?),
            left: self.limit,
        })
    }
}

/// Where merged entries come from.
enum Cursor {
    Run(RunReader),
    Memory(Memory),
}

impl Cursor {
    fn next_entry(&mut self) -> SqlResult<Option<Entry>> {
        match self {
            Cursor::Run(r) => r.next_entry(),
            Cursor::Memory(m) => Ok(m.next_entry()),
        }
    }
}

/// A k-way merge: a heap of each cursor's next entry (smallest on top).
struct Merge {
    order: Vec<KeyOrder>,
    cursors: Vec<Cursor>,
    heap: Heap<(Entry, usize)>,
}

impl Merge {
    fn new(order: Vec<KeyOrder>, mut cursors: Vec<Cursor>) -> SqlResult<Merge> {
        let mut heap = Heap::new();
        {
            let cmp = |a: &(Entry, usize), b: &(Entry, usize)| entry_cmp(&order, &b.0, &a.0);
            for (i, c) in cursors.iter_mut().enumerate() {
                if let Some(e) = c.next_entry()? {
                    heap.push((e, i), &cmp);
                }
            }
        }
        Ok(Merge {
            order,
            cursors,
            heap,
        })
    }

    fn next_entry(&mut self) -> SqlResult<Option<Entry>> {
        let order = &self.order;
        // Reversed: the heap keeps its greatest on top, the merge wants the least.
        let cmp = |a: &(Entry, usize), b: &(Entry, usize)| entry_cmp(order, &b.0, &a.0);
        let Some((_, i)) = self.heap.peek() else {
            return Ok(None);
        };
        let i = *i;
        let top = match self.cursors[i].next_entry()? {
            Some(next) => self.heap.replace_top((next, i), &cmp),
            None => self.heap.pop(&cmp),
        };
        Ok(top.map(|(e, _)| e))
    }
}

enum Source {
    Memory(Memory),
    Merge(Merge),
}

/// A sort's output, in order.
pub struct SortedRows {
    source: Source,
    left: Option<usize>,
}

impl SortedRows {
    /// The next row, or `None` at the end.
    pub fn next_row(&mut self) -> SqlResult<Option<Row>> {
        if !self.take_one() {
            return Ok(None);
        }
        let e = match &mut self.source {
            Source::Memory(m) => m.next_entry(),
            Source::Merge(m) => m.next_entry()?,
        };
        Ok(e.map(|e| e.row))
    }

    /// Moves the next row to the end of `out`; false at the end. Rows sorted
    /// in memory move without an allocation of their own.
    pub fn next_into(&mut self, out: &mut Batch) -> SqlResult<bool> {
        if !self.take_one() {
            return Ok(false);
        }
        match &mut self.source {
            Source::Memory(m) => m.next_into(out),
            Source::Merge(m) => match m.next_entry()? {
                Some(e) => out.push_owned(e.row).map(|()| true),
                None => Ok(false),
            },
        }
    }

    /// Counts one row against the limit; false once it is reached.
    fn take_one(&mut self) -> bool {
        match &mut self.left {
            Some(0) => false,
            Some(left) => {
                *left -= 1;
                true
            }
            None => true,
        }
    }
}

fn take_value(v: &mut Value) -> Value {
    std::mem::replace(v, Value::Null)
}

/// An unlimited sort's buffer: the keys and the rows of every entry in two
/// flat vectors (no allocation per row); entry `i` came `i`-th since the
/// buffer was last emptied.
#[derive(Default)]
struct Arena {
    key_width: usize,
    row_width: usize,
    keys: Vec<Value>,
    rows: Vec<Value>,
    len: usize,
    first_seq: u64,
}

impl Arena {
    fn push(&mut self, seq: u64, key: &mut Vec<Value>, row: &mut [Value]) -> SqlResult<()> {
        if self.len >= u32::MAX as usize {
            return Err(SqlError::new(
                tardigrade_sqltypes::error::codes::PROGRAM_LIMIT_EXCEEDED,
                "sort: more than 4 billion rows in memory; lower the working memory",
            ));
        }
        if self.len == 0 {
            self.key_width = key.len();
            self.row_width = row.len();
            self.first_seq = seq;
        } else if key.len() != self.key_width || row.len() != self.row_width {
            return Err(SqlError::internal("sort: rows of different widths"));
        }
        self.keys.append(key);
        self.rows.extend(row.iter_mut().map(take_value));
        self.len += 1;
        Ok(())
    }

    fn key(&self, i: usize) -> &[Value] {
        &self.keys[i * self.key_width..(i + 1) * self.key_width]
    }

    fn row(&self, i: usize) -> &[Value] {
        &self.rows[i * self.row_width..(i + 1) * self.row_width]
    }

    /// Positions of the entries in sort order; ties keep their input order
    /// (the order is total, so unstable sorting is enough).
    fn sorted_positions(&self, order: &[KeyOrder]) -> Vec<u32> {
        let mut positions: Vec<u32> = (0..self.len as u32).collect();
        positions.sort_unstable_by(|a, b| {
            compare_keys(order, self.key(*a as usize), self.key(*b as usize)).then(a.cmp(b))
        });
        positions
    }

    fn into_sorted(self, order: &[KeyOrder]) -> SortedArena {
        SortedArena {
            order: self.sorted_positions(order).into_iter(),
            arena: self,
        }
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.rows.clear();
        self.len = 0;
    }
}

/// An arena's entries in sorted order, moved out one at a time.
struct SortedArena {
    arena: Arena,
    order: std::vec::IntoIter<u32>,
}

/// Sorted entries in memory.
enum Memory {
    /// A top-n heap's entries.
    Entries(std::vec::IntoIter<Entry>),
    Arena(SortedArena),
}

impl Memory {
    fn next_entry(&mut self) -> Option<Entry> {
        match self {
            Memory::Entries(it) => it.next(),
            Memory::Arena(a) => {
                let i = a.order.next()? as usize;
                let (kw, rw) = (a.arena.key_width, a.arena.row_width);
                Some(Entry {
                    key: a.arena.keys[i * kw..(i + 1) * kw]
                        .iter_mut()
                        .map(take_value)
                        .collect(),
                    seq: a.arena.first_seq + i as u64,
                    row: a.arena.rows[i * rw..(i + 1) * rw]
                        .iter_mut()
                        .map(take_value)
                        .collect(),
                })
            }
        }
    }

    fn next_into(&mut self, out: &mut Batch) -> SqlResult<bool> {
        match self {
            Memory::Entries(it) => match it.next() {
                Some(e) => out.push_owned(e.row).map(|()| true),
                None => Ok(false),
            },
            Memory::Arena(a) => {
                let Some(i) = a.order.next() else {
                    return Ok(false);
                };
                let rw = a.arena.row_width;
                if rw != out.width() {
                    return Err(SqlError::internal("sort: output of the wrong width"));
                }
                let i = i as usize;
                for v in &mut a.arena.rows[i * rw..(i + 1) * rw] {
                    out.push_value(take_value(v));
                }
                out.finish_row();
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tardigrade_encoding::decimal::Decimal;
    use tardigrade_sqltypes::Interval;

    fn dec(s: &str) -> Value {
        Value::Decimal(s.parse::<Decimal>().expect("decimal"))
    }

    /// One value of every kind, edge cases included.
    fn every_value() -> Vec<Value> {
        vec![
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(0),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Float(-0.0),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Float(1.5e-300),
            dec("1.50"),
            dec("-123456789012345678901234567890.000000001"),
            dec("0"),
            Value::Text(String::new()),
            Value::Text("héllo, wörld \0 ✓".into()),
            Value::Bytes(vec![]),
            Value::Bytes(vec![0, 255, 1, 0]),
            Value::Date(-719_162),
            Value::Date(2_932_896),
            Value::Time(0),
            Value::Time(86_400_000_000),
            Value::Time(45_296_789_012),
            Value::Timestamp(-62_135_596_800_000_000),
            Value::TimestampTz(1_700_000_000_123_456),
            Value::Interval(Interval {
                months: -14,
                days: 3,
                micros: -4_000_001,
            }),
            Value::Uuid(u128::MAX - 7),
            Value::Jsonb(Box::new(
                serde_json::from_str(r#"{"a": [1, 2.5, null, {"b": "c"}], "z": true, "n": 1e300}"#)
                    .expect("json"),
            )),
            Value::Jsonb(Box::new(serde_json::Value::Null)),
            Value::Array(vec![]),
            Value::Array(vec![Value::Int(1), Value::Null, Value::Int(-3)]),
            Value::Array(vec![Value::Text("a b".into()), Value::Null]),
            Value::Array(vec![dec("2.000"), dec("-0.1")]),
        ]
    }

    fn same(a: &[Value], b: &[Value]) -> bool {
        // Debug also tells decimal scales and float bit patterns apart.
        a == b && format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn run_format_round_trips_every_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let values = every_value();
        let entries = vec![
            Entry {
                key: values.clone(),
                seq: u64::MAX,
                row: values.iter().rev().cloned().collect(),
            },
            Entry {
                key: vec![],
                seq: 0,
                row: vec![],
            },
            Entry {
                key: vec![Value::Null],
                seq: 300,
                row: values.clone(),
            },
        ];
        let mut w = RunWriter::create(dir.path()).expect("create");
        for e in &entries {
            w.write(e).expect("write");
        }
        let mut r = w.finish().expect("finish").reader();
        for e in &entries {
            let got = r.next_entry().expect("read").expect("an entry");
            assert_eq!(got.seq, e.seq);
            assert!(same(&got.key, &e.key), "{:?} != {:?}", got.key, e.key);
            assert!(same(&got.row, &e.row), "{:?} != {:?}", got.row, e.row);
        }
        assert!(r.next_entry().expect("read").is_none());
    }

    #[test]
    fn datum_encoding_round_trips_each_value_alone() {
        for v in every_value() {
            let mut b = Vec::new();
            rowenc::encode_datum(&mut b, &v).expect("encode");
            let mut buf: &[u8] = &b;
            let got = rowenc::decode_datum(&mut buf).expect("decode");
            assert!(buf.is_empty());
            assert!(
                same(std::slice::from_ref(&got), std::slice::from_ref(&v)),
                "{got:?} != {v:?}"
            );
        }
    }

    /// Rows `[k1, k2, i]` with few distinct keys (many duplicates) and NULLs;
    /// `i` is the input position.
    fn input(n: usize, seed: u64) -> Vec<Row> {
        (0..n)
            .map(|i| {
                // A multiplicative hash of the position: deterministic noise.
                let h = (i as u64 ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
                let k1 = match h % 11 {
                    0 => Value::Null,
                    x => Value::Int(x as i64 - 5),
                };
                let k2 = match (h >> 8) % 5 {
                    0 => Value::Null,
                    x => Value::Text(format!("t{x}").repeat(1 + (x as usize % 3))),
                };
                vec![k1, k2, Value::Int(i as i64)]
            })
            .collect()
    }

    /// The reference: a stable in-memory sort, as the executor did before.
    fn reference(rows: &[Row], order: &[KeyOrder], limit: Option<usize>) -> Vec<Row> {
        let mut v = rows.to_vec();
        v.sort_by(|a, b| compare_keys(order, &a[..2], &b[..2]));
        if let Some(l) = limit {
            v.truncate(l);
        }
        v
    }

    async fn sorted(
        rows: &[Row],
        order: &[KeyOrder],
        limit: Option<usize>,
        storage: &TempStorage,
    ) -> (Vec<Row>, usize) {
        let mut s = Sorter::new(order.to_vec(), limit, storage);
        for r in rows {
            let mut row = r.clone();
            s.push(&mut r[..2].to_vec(), &mut row).await.expect("push");
        }
        let runs = s.runs();
        let mut out = s.finish().await.expect("finish");
        let mut v = Vec::new();
        while let Some(r) = out.next_row().expect("next") {
            v.push(r);
        }
        (v, runs)
    }

    fn orders() -> Vec<Vec<KeyOrder>> {
        let k = |descending, nulls_first| KeyOrder {
            descending,
            nulls_first,
        };
        vec![
            vec![k(false, true), k(false, true)],
            vec![k(true, false), k(false, true)],
            vec![k(false, false), k(true, true)],
            vec![k(true, true), k(true, false)],
        ]
    }

    #[tokio::test]
    async fn spilled_sort_equals_stable_in_memory_sort() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rows = input(5000, 42);
        for order in orders() {
            for workmem in [20_000, 100_000, 1_000_000, DEFAULT_WORKMEM] {
                let storage = TempStorage::default();
                storage.set_dir(dir.path().join("tmp"));
                storage.set_workmem(workmem);
                let (got, runs) = sorted(&rows, &order, None, &storage).await;
                assert_eq!(got, reference(&rows, &order, None), "{order:?} {workmem}");
                if workmem <= 100_000 {
                    let written = storage.spilled_runs();
                    assert!(written > 2, "{workmem} bytes gave {written} runs");
                    assert!(runs > 0 && runs < 2 * storage.merge_fan_in(), "{runs}");
                    assert_eq!(storage.spilled_sorts(), 1);
                } else if workmem == DEFAULT_WORKMEM {
                    assert_eq!(runs, 0);
                    assert_eq!(storage.spilled_runs(), 0);
                }
            }
        }
        // Unnamed temp files: nothing is left in the directory.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp"))
            .expect("the temp dir was created")
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn many_runs_merge_in_several_passes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = TempStorage::default();
        storage.set_dir(dir.path().to_path_buf());
        // One entry per run, and the smallest fan-in: 300 runs merged
        // two at a time.
        storage.set_workmem(1);
        assert_eq!(storage.merge_fan_in(), 2);
        let rows = input(300, 7);
        let order = &orders()[1];
        let (got, runs) = sorted(&rows, order, None, &storage).await;
        // Never more than 2 × fan-in runs (open files) at a time.
        assert!(runs < 4, "{runs} runs open");
        assert_eq!(got, reference(&rows, order, None));
        // The intermediate merges wrote runs of their own.
        assert!(storage.spilled_runs() > 300);
    }

    #[tokio::test]
    async fn top_n_equals_sort_then_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rows = input(4000, 9);
        for order in orders() {
            for limit in [0, 1, 7, 500, 3999, 4000, 10_000] {
                for workmem in [20_000, DEFAULT_WORKMEM] {
                    let storage = TempStorage::default();
                    storage.set_dir(dir.path().to_path_buf());
                    storage.set_workmem(workmem);
                    let (got, runs) = sorted(&rows, &order, Some(limit), &storage).await;
                    assert_eq!(
                        got,
                        reference(&rows, &order, Some(limit)),
                        "{order:?} limit {limit} workmem {workmem}"
                    );
                    if workmem == DEFAULT_WORKMEM {
                        assert_eq!(runs, 0);
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn top_n_memory_is_bounded_by_n() {
        let storage = TempStorage::default();
        let mut s = Sorter::new(orders()[0].clone(), Some(10), &storage);
        for mut r in input(10_000, 3) {
            s.push(&mut r[..2].to_vec(), &mut r).await.expect("push");
            assert!(s.top.len() <= 10);
        }
        assert_eq!(s.runs(), 0);
    }

    #[tokio::test]
    async fn unwritable_temp_dir_is_an_io_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").expect("write");
        let storage = TempStorage::default();
        storage.set_dir(file.join("tmp"));
        storage.set_workmem(1);
        let mut s = Sorter::new(orders()[0].clone(), None, &storage);
        let err = s
            .push(&mut vec![Value::Int(1)], &mut [Value::Int(1)])
            .await
            .expect_err("cannot spill");
        assert_eq!(err.code, IO_ERROR, "{err:?}");
        assert!(err.message.contains("temp"), "{err:?}");
    }

    #[test]
    fn a_hash_table_over_budget_is_out_of_memory() {
        let storage = TempStorage::default();
        storage.set_workmem(4 << 10);
        let mut b = HashBudget::new(&storage, "hash join");
        b.charge(60 << 10).expect("under");
        b.reset();
        b.charge(60 << 10).expect("under after reset");
        let err = b.charge(8 << 10).expect_err("over");
        assert_eq!(err.code, "53200");
        assert!(
            err.message
                .starts_with("hash join needs more than its memory budget of 64 KiB"),
            "{err:?}"
        );
    }

    #[test]
    fn keys_compare_like_the_executor() {
        let asc_nf = [KeyOrder {
            descending: false,
            nulls_first: true,
        }];
        let desc_nl = [KeyOrder {
            descending: true,
            nulls_first: false,
        }];
        let (n, one, two) = (vec![Value::Null], vec![Value::Int(1)], vec![Value::Int(2)]);
        assert_eq!(compare_keys(&asc_nf, &n, &one), Ordering::Less);
        assert_eq!(compare_keys(&asc_nf, &one, &two), Ordering::Less);
        assert_eq!(compare_keys(&desc_nl, &n, &one), Ordering::Greater);
        assert_eq!(compare_keys(&desc_nl, &one, &two), Ordering::Greater);
        assert_eq!(compare_keys(&desc_nl, &n, &n), Ordering::Equal);
    }
}
