//! The engine seam: an ordered byte store with atomic batches and snapshots.
//!
//! [`Engine`] wraps fjall. It holds three keyspaces ([`Space`]) that one batch
//! updates atomically. Durability is grouped: many committers that ask for a
//! synced commit share one fsync (see [`Engine::commit`]), which is how a busy
//! node keeps its commit rate far above its disk's fsync rate.
//!
//! A store directory carries a small `TARDIGRADE_STORE` marker with the
//! on-disk format version, so that a foreign directory, or one written by a
//! newer binary, is refused with a clear error instead of being damaged.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::journal_check;

pub use fjall::Slice;

/// The on-disk format this binary writes and reads.
pub const STORE_FORMAT_VERSION: u32 = 1;
const MARKER_FILE: &str = "TARDIGRADE_STORE";

/// The separate key spaces of a store. Each is one LSM tree; a batch may span all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    /// MVCC versions: `encode_mvcc_key(user key, timestamp)` → value.
    Mvcc,
    /// The separated lock table: user key → intent record.
    Lock,
    /// Unversioned keys: transaction records, range state, store identity.
    Raw,
}

impl Space {
    pub const ALL: [Space; 3] = [Space::Mvcc, Space::Lock, Space::Raw];

    fn name(self) -> &'static str {
        match self {
            Space::Mvcc => "mvcc",
            Space::Lock => "lock",
            Space::Raw => "raw",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("storage engine: {0}")]
    Fjall(#[from] fjall::Error),
    #[error("store directory {path}: {msg}")]
    BadStore { path: PathBuf, msg: String },
    #[error("store directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corrupt data in store: {0}")]
    Corrupt(String),
    /// A store file fails its integrity check; the store is refused.
    #[error("corrupt store file {path}: {msg}")]
    CorruptFile { path: PathBuf, msg: String },
    /// A stored record of ours does not decode (its bytes passed the
    /// engine's checksums, so they were written that way or damaged in memory).
    #[error("store {store}: corrupt record under key {key}: {msg}")]
    CorruptRecord {
        store: PathBuf,
        key: String,
        msg: String,
    },
    /// Reading a key failed, usually an SST block failing its checksum.
    #[error("store {store}: reading {space} key {key}: {source}")]
    Read {
        store: PathBuf,
        space: &'static str,
        key: String,
        source: fjall::Error,
    },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Where a store lives: `--store=DIR` or `--store=type=mem`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    Dir(PathBuf),
    /// In memory: a temporary directory on tmpfs (`/dev/shm` where it exists),
    /// deleted when the engine closes.
    Memory,
}

impl std::str::FromStr for StoreSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty --store".into());
        }
        let mut path = None;
        let mut mem = false;
        if !s.contains('=') {
            return Ok(StoreSpec::Dir(PathBuf::from(s)));
        }
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("type", "mem")) => mem = true,
                Some(("path", p)) if !p.is_empty() => path = Some(PathBuf::from(p)),
                Some(("size", _)) => {}
                _ => {
                    return Err(format!(
                        "unknown --store field {part:?} (expected path=DIR or type=mem)"
                    ));
                }
            }
        }
        match (mem, path) {
            (true, None) => Ok(StoreSpec::Memory),
            (false, Some(p)) => Ok(StoreSpec::Dir(p)),
            (true, Some(_)) => Err("--store: type=mem takes no path".into()),
            (false, None) => Err("--store: give path=DIR or type=mem".into()),
        }
    }
}

/// Read access to a consistent view of the store.
pub trait Reader {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Slice>>;
    /// Keys in `[lower, upper)` in ascending order, or descending when `reverse`.
    fn scan<'a>(
        &'a self,
        space: Space,
        lower: &[u8],
        upper: &[u8],
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<(Slice, Slice)>> + 'a>;
    /// The store directory read from, for error messages.
    fn store_path(&self) -> &Path;
}

impl EngineError {
    /// A record under `key` that `reader` returned and that does not decode.
    pub fn corrupt_record(reader: &dyn Reader, key: &[u8], msg: impl std::fmt::Display) -> Self {
        EngineError::CorruptRecord {
            store: reader.store_path().to_path_buf(),
            key: key.escape_ascii().to_string(),
            msg: msg.to_string(),
        }
    }
}

struct Inner {
    db: fjall::Database,
    spaces: [fjall::Keyspace; 3],
    sync: GroupSync,
    /// The store directory, for error messages.
    path: PathBuf,
    /// Keeps a memory store's directory alive; deleted on drop.
    _tempdir: Option<TempDir>,
    /// Disk-fault injection for simulations: every commit fails while set.
    fail_writes: std::sync::atomic::AtomicBool,
    /// Lock-table deletes since the lock space was last compacted.
    lock_deletes: std::sync::atomic::AtomicU64,
    /// Wakes the lock-space compactor (see [`LOCK_TOMBSTONES_BEFORE_COMPACTION`]).
    compactor: std::sync::mpsc::SyncSender<()>,
}

/// How many lock-table deletes (resolved intents) make the engine compact
/// the lock space in the background. Every resolved intent leaves an LSM
/// tombstone, and a scan of the lock table steps over each tombstone in its
/// span until a compaction drops it: after a transaction of 200,000 writes,
/// merely starting a scan of its table cost 30–45 ms. The lock space holds
/// only live intents, so compacting it is cheap (about 1.5 ms per 10,000
/// entries), and this bounds what a scan start can cost.
pub const LOCK_TOMBSTONES_BEFORE_COMPACTION: u64 = 10_000;

/// The block cache of each store opened from now on, in bytes (the
/// `--cache` flag of `start`). Default 128 MiB, CockroachDB's default: the
/// LSM's data blocks, decompressed, so that a working set that fits is read
/// without a system call or decompression per block.
static BLOCK_CACHE_BYTES: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(DEFAULT_BLOCK_CACHE_BYTES);

/// The default of [`set_block_cache_bytes`].
pub const DEFAULT_BLOCK_CACHE_BYTES: u64 = 128 << 20;

/// Sets the block cache size of stores opened after this call.
pub fn set_block_cache_bytes(bytes: u64) {
    BLOCK_CACHE_BYTES.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// The block cache size a store opened now gets.
pub fn block_cache_bytes() -> u64 {
    BLOCK_CACHE_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

/// A handle on an open store. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct Engine {
    // Declared first so that it drops first: the last handle stops the
    // compactor before `inner` can close the database.
    _handles: Arc<Handles>,
    inner: Arc<Inner>,
}

/// Dropped with the last [`Engine`] handle: waits out a running lock-space
/// compaction and stops the compactor, so that the database closes in the
/// dropping thread and a reopen of the directory never races an instance
/// the compactor still holds.
struct Handles {
    compactor: Arc<CompactorState>,
}

/// Held by the compactor for the whole of each compaction.
#[derive(Default)]
struct CompactorState {
    closed: Mutex<bool>,
}

impl Drop for Handles {
    fn drop(&mut self) {
        *self.compactor.closed.lock() = true;
    }
}

impl Engine {
    /// Opens (creating if needed) the store at `spec`.
    pub fn open(spec: &StoreSpec) -> Result<Engine> {
        match spec {
            StoreSpec::Dir(path) => Self::open_dir(path, None),
            StoreSpec::Memory => {
                let base = if Path::new("/dev/shm").is_dir() {
                    PathBuf::from("/dev/shm")
                } else {
                    std::env::temp_dir()
                };
                let dir = TempDir::new(&base)?;
                let path = dir.0.clone();
                Self::open_dir(&path, Some(dir))
            }
        }
    }

    fn open_dir(path: &Path, tempdir: Option<TempDir>) -> Result<Engine> {
        check_or_create_marker(path)?;
        let data_dir = path.join("data");
        // Before fjall opens: its recovery truncates the journal at the first
        // bad record, which must not happen to synced batches.
        journal_check::check_journals(path, &data_dir)?;
        let db = fjall::Database::builder(&data_dir)
            .cache_size(block_cache_bytes())
            .open()?;
        let open = |s: Space| db.keyspace(s.name(), fjall::KeyspaceCreateOptions::default);
        let spaces = [open(Space::Mvcc)?, open(Space::Lock)?, open(Space::Raw)?];
        let (compactor, wake) = std::sync::mpsc::sync_channel(1);
        let inner = Arc::new(Inner {
            db,
            spaces,
            sync: GroupSync::default(),
            path: path.to_path_buf(),
            _tempdir: tempdir,
            fail_writes: std::sync::atomic::AtomicBool::new(false),
            lock_deletes: std::sync::atomic::AtomicU64::new(0),
            compactor,
        });
        let state = Arc::new(CompactorState::default());
        spawn_lock_compactor(Arc::downgrade(&inner), state.clone(), wake);
        Ok(Engine {
            _handles: Arc::new(Handles { compactor: state }),
            inner,
        })
    }

    fn space(&self, s: Space) -> &fjall::Keyspace {
        &self.inner.spaces[s as usize]
    }

    /// A consistent point-in-time view.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            engine: self.clone(),
            snap: self.inner.db.snapshot(),
        }
    }

    /// A new, empty write batch reading through to a fresh snapshot.
    pub fn batch(&self) -> crate::Batch {
        crate::Batch::new(self.snapshot())
    }

    /// Applies `writes` atomically. With `sync`, returns only once they are on
    /// disk; concurrent synced commits share one fsync.
    pub fn commit(&self, writes: &crate::batch::WriteSet, sync: bool) -> Result<()> {
        if self
            .inner
            .fail_writes
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(EngineError::Io {
                path: self.inner.path.clone(),
                source: std::io::Error::other("injected disk fault: write failed"),
            });
        }
        if !writes.is_empty() {
            let mut b = self.inner.db.batch();
            let mut lock_deletes = 0;
            for ((space, key), value) in writes.iter() {
                let ks = self.space(*space);
                match value {
                    Some(v) => b.insert(ks, key.as_slice(), v.as_slice()),
                    None => {
                        lock_deletes += u64::from(*space == Space::Lock);
                        b.remove(ks, key.as_slice())
                    }
                }
            }
            // Always push the journal to the OS, so a process crash (kill -9)
            // loses nothing that was acknowledged without `sync` either.
            b = b.durability(Some(fjall::PersistMode::Buffer));
            b.commit()?;
            if lock_deletes > 0 {
                self.count_lock_deletes(lock_deletes);
            }
        }
        if sync {
            self.sync()?;
        }
        Ok(())
    }

    /// Wakes the compactor once enough lock-table tombstones piled up.
    fn count_lock_deletes(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let before = self.inner.lock_deletes.fetch_add(n, Ordering::Relaxed);
        if before < LOCK_TOMBSTONES_BEFORE_COMPACTION
            && before + n >= LOCK_TOMBSTONES_BEFORE_COMPACTION
        {
            // Full means a wake-up is already pending.
            let _ = self.inner.compactor.try_send(());
        }
    }

    /// Fault injection for simulations and tests only: while `fail` is set,
    /// every commit fails as a broken disk's writes would (nothing of the
    /// batch is applied).
    pub fn testing_fail_writes(&self, fail: bool) {
        self.inner
            .fail_writes
            .store(fail, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits until everything committed so far is on disk, sharing the fsync
    /// with concurrent callers.
    pub fn sync(&self) -> Result<()> {
        self.inner.sync.sync(&self.inner.db)
    }

    /// Forces everything committed so far to disk.
    pub fn flush(&self) -> Result<()> {
        self.inner.db.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }

    /// Marks a clean shutdown (see `journal_check`): for servers whose
    /// engine handles outlive their shutdown. Dropping the last handle does
    /// the same.
    pub fn close_cleanly(&self) -> Result<()> {
        self.inner.close_cleanly()
    }

    /// Writes every keyspace's memtable out to table files and waits.
    pub fn flush_memtables(&self) -> Result<()> {
        for space in &self.inner.spaces {
            space.rotate_memtable_and_wait()?;
        }
        Ok(())
    }

    /// The store directory (a temporary one for a memory store).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn read_error(&self, space: Space, key: &[u8], source: fjall::Error) -> EngineError {
        EngineError::Read {
            store: self.inner.path.clone(),
            space: space.name(),
            key: key.escape_ascii().to_string(),
            source,
        }
    }

    /// Entries `space` holds, counting each version and tombstone not yet
    /// compacted away (an estimate from table metadata, for tests and
    /// diagnostics).
    pub fn approximate_entries(&self, space: Space) -> usize {
        self.space(space).approximate_len()
    }

    /// Bytes the store occupies on disk.
    pub fn disk_space(&self) -> u64 {
        self.inner.db.disk_space().unwrap_or(0)
    }
}

/// The lock-space compactor: one thread per store, woken by commits that
/// pass [`LOCK_TOMBSTONES_BEFORE_COMPACTION`] deletes, gone with the store.
fn spawn_lock_compactor(
    inner: std::sync::Weak<Inner>,
    state: Arc<CompactorState>,
    wake: std::sync::mpsc::Receiver<()>,
) {
    let spawned = std::thread::Builder::new()
        .name("lock-compactor".into())
        .spawn(move || {
            // Ends when the store's last handle drops the sending side.
            while wake.recv().is_ok() {
                // The strong reference below is dropped before this guard,
                // so the last handle (which takes the guard) never leaves
                // the database open in this thread.
                let closed = state.closed.lock();
                if *closed {
                    return;
                }
                let Some(inner) = inner.upgrade() else { return };
                inner
                    .lock_deletes
                    .store(0, std::sync::atomic::Ordering::Relaxed);
                let ks = &inner.spaces[Space::Lock as usize];
                let done = ks
                    .rotate_memtable_and_wait()
                    .and_then(|()| ks.major_compact());
                if let Err(e) = done {
                    tracing::warn!(
                        "store {}: compacting the lock table: {e}",
                        inner.path.display()
                    );
                }
            }
        });
    if let Err(e) = spawned {
        // Reads stay correct without it, only slower over many tombstones.
        tracing::warn!("cannot start the lock-table compactor: {e}");
    }
}

impl Inner {
    /// Syncs everything and records how far the journal is written, so that
    /// damage anywhere before that is refused at the next open (not taken
    /// for a torn tail). Writes after it are fine: the mark vouches only
    /// for what it covers.
    fn close_cleanly(&self) -> Result<()> {
        if self._tempdir.is_some() {
            return Ok(());
        }
        self.db.persist(fjall::PersistMode::SyncAll)?;
        journal_check::record_clean_close(&self.path, &self.path.join("data"))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.close_cleanly() {
            tracing::warn!("store {}: closing: {e}", self.path.display());
        }
    }
}

impl Reader for Engine {
    fn store_path(&self) -> &Path {
        &self.inner.path
    }

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Slice>> {
        self.space(space)
            .get(key)
            .map_err(|e| self.read_error(space, key, e))
    }

    fn scan<'a>(
        &'a self,
        space: Space,
        lower: &[u8],
        upper: &[u8],
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<(Slice, Slice)>> + 'a> {
        if lower >= upper {
            return Box::new(std::iter::empty());
        }
        let iter = self
            .space(space)
            .range::<&[u8], _>((Bound::Included(lower), Bound::Excluded(upper)));
        guard_iter(iter, reverse)
    }
}

/// A consistent point-in-time view of an [`Engine`].
pub struct Snapshot {
    engine: Engine,
    snap: fjall::Snapshot,
}

impl Reader for Snapshot {
    fn store_path(&self) -> &Path {
        self.engine.path()
    }

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Slice>> {
        use fjall::Readable;
        self.snap
            .get(self.engine.space(space), key)
            .map_err(|e| self.engine.read_error(space, key, e))
    }

    fn scan<'a>(
        &'a self,
        space: Space,
        lower: &[u8],
        upper: &[u8],
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<(Slice, Slice)>> + 'a> {
        use fjall::Readable;
        if lower >= upper {
            return Box::new(std::iter::empty());
        }
        let iter = self.snap.range::<&[u8], _>(
            self.engine.space(space),
            (Bound::Included(lower), Bound::Excluded(upper)),
        );
        guard_iter(iter, reverse)
    }
}

fn guard_iter<'a>(
    iter: fjall::Iter,
    reverse: bool,
) -> Box<dyn Iterator<Item = Result<(Slice, Slice)>> + 'a> {
    let map = |g: fjall::Guard| g.into_inner().map_err(EngineError::from);
    if reverse {
        Box::new(iter.rev().map(map))
    } else {
        Box::new(iter.map(map))
    }
}

/// Group commit: the first committer to find no fsync running starts one;
/// everyone who committed before it started is covered by it, everyone after
/// waits for the next one.
#[derive(Default)]
struct GroupSync {
    state: Mutex<SyncState>,
    done: Condvar,
}

#[derive(Default)]
struct SyncState {
    /// Incremented when an fsync starts; `synced` catches up when it ends.
    started: u64,
    synced: u64,
    running: bool,
    failed: Option<String>,
}

impl GroupSync {
    fn sync(&self, db: &fjall::Database) -> Result<()> {
        let mut st = self.state.lock();
        // Our writes are in the journal buffer already; any fsync that starts
        // from now on covers them.
        let needed = st.started + 1;
        loop {
            if let Some(msg) = &st.failed {
                return Err(EngineError::Corrupt(format!(
                    "an earlier fsync failed: {msg}"
                )));
            }
            if st.synced >= needed {
                return Ok(());
            }
            if !st.running {
                st.running = true;
                st.started += 1;
                let ticket = st.started;
                drop(st);
                let res = db.persist(fjall::PersistMode::SyncData);
                st = self.state.lock();
                st.running = false;
                match res {
                    Ok(()) => st.synced = ticket,
                    Err(e) => st.failed = Some(e.to_string()),
                }
                self.done.notify_all();
                continue;
            }
            self.done.wait(&mut st);
        }
    }
}

fn check_or_create_marker(path: &Path) -> Result<()> {
    let io = |source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |msg: String| EngineError::BadStore {
        path: path.to_path_buf(),
        msg,
    };
    let marker = path.join(MARKER_FILE);
    if path.exists() {
        if !path.is_dir() {
            return Err(bad("exists and is not a directory".into()));
        }
        match std::fs::read_to_string(&marker) {
            Ok(text) => {
                let version = text
                    .lines()
                    .find_map(|l| l.strip_prefix("format-version="))
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .ok_or_else(|| bad(format!("{MARKER_FILE} is unreadable")))?;
                if version > STORE_FORMAT_VERSION {
                    return Err(bad(format!(
                        "written by a newer Tardigrade (store format {version}, this binary reads up to {STORE_FORMAT_VERSION})"
                    )));
                }
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let not_empty = std::fs::read_dir(path).map_err(io)?.next().is_some();
                if not_empty {
                    return Err(bad(
                        "is not empty and is not a Tardigrade store (no TARDIGRADE_STORE marker); refusing to touch it".into(),
                    ));
                }
            }
            Err(e) => return Err(io(e)),
        }
    } else {
        std::fs::create_dir_all(path).map_err(io)?;
    }
    let text = format!("format-version={STORE_FORMAT_VERSION}\n");
    let tmp = path.join(format!("{MARKER_FILE}.tmp"));
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, &marker).map_err(io)?;
    Ok(())
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(base: &Path) -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // A counter too: two stores opened in the same process at the same
        // moment (tests start nodes in parallel) must not share a directory.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = base.join(format!("tardigrade-mem-{}-{nanos}-{n}", std::process::id()));
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_and_delete_intents(engine: &Engine, n: u64) {
        let key = |i: u64| format!("t/{i:08}").into_bytes();
        for delete in [false, true] {
            for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
                let mut w = crate::batch::WriteSet::default();
                for &i in chunk {
                    if delete {
                        w.delete(Space::Lock, &key(i));
                    } else {
                        w.put(Space::Lock, &key(i), b"intent");
                    }
                }
                engine.commit(&w, false).expect("commit");
            }
        }
    }

    #[test]
    fn resolved_intents_do_not_leave_tombstones_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(&StoreSpec::Dir(dir.path().to_path_buf())).expect("open");
        let n = 3 * LOCK_TOMBSTONES_BEFORE_COMPACTION;
        put_and_delete_intents(&engine, n);
        // Each key was written and deleted: 2n entries until compacted.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while engine.approximate_entries(Space::Lock) as u64 >= LOCK_TOMBSTONES_BEFORE_COMPACTION {
            assert!(
                std::time::Instant::now() < deadline,
                "the lock space still holds {} entries",
                engine.approximate_entries(Space::Lock)
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let snap = engine.snapshot();
        assert!(snap.scan(Space::Lock, b"t/", b"t0", false).next().is_none());
    }

    #[test]
    fn a_store_reopens_right_after_triggering_a_compaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = StoreSpec::Dir(dir.path().to_path_buf());
        for round in 0..4u8 {
            let engine = Engine::open(&spec).expect("open");
            if round > 0 {
                let kept = engine.get(Space::Raw, b"round").expect("get");
                assert_eq!(kept.as_deref(), Some(&[round - 1][..]));
            }
            put_and_delete_intents(&engine, LOCK_TOMBSTONES_BEFORE_COMPACTION);
            let mut w = crate::batch::WriteSet::default();
            w.put(Space::Raw, b"round", &[round]);
            engine.commit(&w, true).expect("commit");
            // Dropped while the compactor is likely running.
        }
    }

    #[test]
    fn refuses_a_foreign_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("precious.txt"), b"user data").expect("write");
        let err = Engine::open(&StoreSpec::Dir(dir.path().to_path_buf()))
            .err()
            .expect("must refuse");
        assert!(err.to_string().contains("not a Tardigrade store"), "{err}");
        assert!(dir.path().join("precious.txt").exists());
    }

    #[test]
    fn refuses_a_store_from_a_newer_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(MARKER_FILE), "format-version=99\n").expect("write");
        let err = Engine::open(&StoreSpec::Dir(dir.path().to_path_buf()))
            .err()
            .expect("must refuse");
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[test]
    fn store_spec_parses_cockroach_style_flags() {
        assert_eq!("type=mem".parse::<StoreSpec>(), Ok(StoreSpec::Memory));
        assert_eq!(
            "path=/x".parse::<StoreSpec>(),
            Ok(StoreSpec::Dir(PathBuf::from("/x")))
        );
        assert_eq!(
            "/y".parse::<StoreSpec>(),
            Ok(StoreSpec::Dir(PathBuf::from("/y")))
        );
        assert!("type=disk".parse::<StoreSpec>().is_err());
        assert!("".parse::<StoreSpec>().is_err());
    }

    #[test]
    fn batches_are_atomic_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = StoreSpec::Dir(dir.path().join("s"));
        {
            let eng = Engine::open(&spec).expect("open");
            let mut b = eng.batch();
            b.put(Space::Raw, b"a", b"1");
            b.put(Space::Mvcc, b"b", b"2");
            eng.commit(b.writes(), true).expect("commit");
        }
        let eng = Engine::open(&spec).expect("reopen");
        assert_eq!(
            eng.get(Space::Raw, b"a").expect("get").as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(
            eng.get(Space::Mvcc, b"b").expect("get").as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(eng.get(Space::Lock, b"a").expect("get"), None);
    }
}
