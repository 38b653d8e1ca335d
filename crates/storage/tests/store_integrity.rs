//! Storage integrity at open: a damaged journal or table file is refused with
//! an error naming the file, and only a torn, never-synced journal tail may
//! be dropped.

use std::path::{Path, PathBuf};

use tardigrade_storage::journal_check::{CLEAN_MARK_FILE, journal_files};
use tardigrade_storage::{Engine, EngineError, Reader, Space, StoreSpec};

const BATCHES: usize = 300;

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

/// 100 hardly compressible bytes, so that table files are not tiny.
fn value(i: usize) -> Vec<u8> {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..100)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'a' + (x % 26) as u8
        })
        .collect()
}

/// Commits batches `from..to`, one key per space each, synced or not.
fn commit_batches(eng: &Engine, from: usize, to: usize, sync: bool) {
    for i in from..to {
        let mut b = eng.batch();
        b.put(Space::Mvcc, &key(i), &value(i));
        b.put(Space::Raw, &key(i), &value(i));
        eng.commit(b.writes(), sync).expect("commit");
    }
}

fn count_present(eng: &Engine, n: usize) -> usize {
    (0..n)
        .filter(|&i| {
            let got = eng.get(Space::Mvcc, &key(i)).expect("get");
            got.as_deref() == Some(&value(i)[..])
        })
        .count()
}

fn only_journal(store: &Path) -> PathBuf {
    let journals = journal_files(&store.join("data")).expect("list journals");
    journals.last().expect("a journal").1.clone()
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset as usize] ^= 0x20;
    std::fs::write(path, &bytes).expect("write");
}

/// Copies a live store directory, as the disk would look after a crash.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

/// Where the journal's batches end and fjall's preallocated zeros begin.
fn logical_end(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .rposition(|&b| b != 0)
        .expect("a written journal")
        + 1
}

fn open_err(store: &Path) -> EngineError {
    Engine::open(&StoreSpec::Dir(store.to_path_buf()))
        .err()
        .expect("the damaged store must be refused")
}

#[test]
fn a_flipped_byte_in_the_middle_of_the_journal_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("s");
    {
        let eng = Engine::open(&StoreSpec::Dir(store.clone())).expect("open");
        commit_batches(&eng, 0, BATCHES, true);
    }
    let journal = only_journal(&store);
    let len = std::fs::metadata(&journal).expect("stat").len();
    let end = logical_end(&std::fs::read(&journal).expect("read")) as u64;
    // Flips at a quarter, half and three quarters, and on a record tag: the
    // latter is what fjall alone would take for the end of the journal.
    let record_tag = {
        let bytes = std::fs::read(&journal).expect("read");
        // Batch start records (tag 1) are followed by a u32 item count of 2.
        (end as usize / 2..end as usize)
            .find(|&i| bytes[i] == 1 && bytes[i + 1..i + 5] == 2u32.to_le_bytes())
            .expect("a batch start in the second half") as u64
    };
    for offset in [end / 4, end / 2, end * 3 / 4, record_tag] {
        flip_byte(&journal, offset);
        let err = open_err(&store);
        let msg = err.to_string();
        assert!(matches!(err, EngineError::CorruptFile { .. }), "{msg}");
        assert!(msg.contains(&journal.display().to_string()), "{msg}");
        assert!(msg.contains("corrupt at byte"), "{msg}");
        assert_eq!(
            std::fs::metadata(&journal).expect("stat").len(),
            len,
            "refusing must not truncate the journal"
        );
        flip_byte(&journal, offset);
    }
    // Undamaged again, every batch is there: nothing was touched.
    let eng = Engine::open(&StoreSpec::Dir(store)).expect("reopen");
    assert_eq!(count_present(&eng, BATCHES), BATCHES);
}

#[test]
fn a_torn_tail_after_a_crash_is_dropped_and_every_synced_batch_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("s");
    let crashed = dir.path().join("crashed");
    {
        let eng = Engine::open(&StoreSpec::Dir(store.clone())).expect("open");
        commit_batches(&eng, 0, BATCHES, true);
        commit_batches(&eng, BATCHES, BATCHES + 10, false);
        copy_dir(&store, &crashed);
    }
    // The crash tore the last write: its end record never reached the disk.
    let journal = only_journal(&crashed);
    let mut bytes = std::fs::read(&journal).expect("read");
    let end = logical_end(&bytes);
    bytes[end - 20..end].fill(0);
    std::fs::write(&journal, &bytes).expect("write");

    let eng = Engine::open(&StoreSpec::Dir(crashed.clone())).expect("a torn tail opens");
    assert_eq!(count_present(&eng, BATCHES), BATCHES);
    // The whole batches before the torn one survive too.
    assert_eq!(count_present(&eng, BATCHES + 9), BATCHES + 9);
    assert_eq!(eng.get(Space::Mvcc, &key(BATCHES + 9)).expect("get"), None);
}

#[test]
fn a_sealed_journal_damaged_at_its_end_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("s");
    {
        let eng = Engine::open(&StoreSpec::Dir(store.clone())).expect("open");
        commit_batches(&eng, 0, BATCHES, true);
    }
    // As after a crash: no clean-close mark vouches for the journal.
    std::fs::remove_file(store.join(CLEAN_MARK_FILE)).expect("a clean close left its mark");
    // A second journal makes the first one sealed.
    let sealed = only_journal(&store);
    let mut bytes = std::fs::read(&sealed).expect("read");
    let end = logical_end(&bytes);
    bytes[end - 5] ^= 0x20;
    std::fs::write(&sealed, &bytes).expect("write");
    let next = sealed.with_file_name("1000.jnl");
    std::fs::write(&next, vec![0u8; 4096]).expect("write");
    let msg = open_err(&store).to_string();
    assert!(msg.contains(&sealed.display().to_string()), "{msg}");
    assert!(msg.contains("sealed"), "{msg}");
}

#[test]
fn a_flipped_byte_in_a_table_file_is_an_error_never_a_wrong_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("s");
    {
        let eng = Engine::open(&StoreSpec::Dir(store.clone())).expect("open");
        commit_batches(&eng, 0, 2000, true);
        eng.flush_memtables().expect("flush to tables");
    }
    let tables: Vec<PathBuf> = walk(&store.join("data"))
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "tables"))
        .filter(|p| {
            std::fs::metadata(p)
                .map(|m| m.len() > 16 * 1024)
                .unwrap_or(false)
        })
        .collect();
    assert!(!tables.is_empty(), "the data reached table files");
    for table in tables {
        let len = std::fs::metadata(&table).expect("stat").len();
        flip_byte(&table, len / 3);
    }
    // fjall checks every block's checksum when it loads it: the open, or the
    // read that touches the damaged block, fails.
    let Ok(eng) = Engine::open(&StoreSpec::Dir(store.clone())) else {
        return;
    };
    let mut failed = None;
    for i in 0..2000 {
        for space in [Space::Mvcc, Space::Raw] {
            match eng.get(space, &key(i)) {
                Ok(got) => assert_eq!(got.as_deref(), Some(&value(i)[..]), "a wrong value"),
                Err(e) => failed = Some(e),
            }
        }
    }
    let err = failed.expect("a damaged block must fail its read");
    let msg = err.to_string();
    assert!(matches!(err, EngineError::Read { .. }), "{msg}");
    assert!(msg.contains(&store.display().to_string()), "{msg}");
    assert!(msg.contains("key-"), "names the key: {msg}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

#[test]
fn a_flipped_byte_in_the_last_batch_of_a_cleanly_closed_journal_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("s");
    {
        let eng = Engine::open(&StoreSpec::Dir(store.clone())).expect("open");
        commit_batches(&eng, 0, BATCHES, true);
    }
    // Nothing valid follows the last batch: without the clean-close mark
    // this would pass for a torn tail.
    let journal = only_journal(&store);
    let end = logical_end(&std::fs::read(&journal).expect("read")) as u64;
    flip_byte(&journal, end - 30);
    let msg = open_err(&store).to_string();
    assert!(msg.contains(&journal.display().to_string()), "{msg}");
    assert!(msg.contains("closed cleanly"), "{msg}");
    flip_byte(&journal, end - 30);
    let eng = Engine::open(&StoreSpec::Dir(store)).expect("reopen");
    assert_eq!(count_present(&eng, BATCHES), BATCHES);
}
