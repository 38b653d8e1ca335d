//! Journal integrity: tell a torn tail from corruption in the middle.
//!
//! fjall recovers its journal by replaying batches until the first record it
//! cannot decode, and then *truncates the file there* without an error (a
//! bad batch checksum is an error, a bad record tag or length is not). That
//! is right for a torn tail — a crash during the last write, which was never
//! acknowledged as synced — and disastrous for a flipped byte in the middle:
//! every committed batch after it vanishes silently. fjall 3.1 has no
//! recovery-mode setting (`RecoveryMode` is commented out of its config), so
//! [`check_journals`] checks first, before fjall opens (and truncates)
//! anything. It walks every journal file with its own decoder of fjall's
//! journal format (a start record with the item count, the items, an end
//! record with the xxh3 checksum of the items and a trailer magic) and looks
//! at what follows the last whole, valid batch:
//!
//! * nothing, or zeros to the end of the file (fjall preallocates journals
//!   with zeros): a clean end;
//! * a whole, valid batch further on: the damage is in the middle, synced
//!   batches follow it, and the open is refused naming the file and offset;
//! * anything else in a sealed journal (one fjall rotated away from, which it
//!   fsyncs whole first): refused too;
//! * anything else in the active journal: a torn tail. fjall drops it; we log
//!   how many bytes.
//!
//! Damage to the very last batch of the active journal looks exactly like a
//! torn tail. A clean close tells them apart: the engine then records, in
//! [`CLEAN_MARK_FILE`] next to fjall's directory, how far the active
//! journal was written ([`record_clean_close`]); at the next open, damage
//! before that point is refused too, and the mark is removed once the
//! journals passed. TODO(issue 11): after a crash (no clean close), damage
//! to the last synced batch is still taken for a torn tail; a mark written
//! after each group fsync would close that (fjall preallocates journals, so
//! their file length is no such mark).

use std::path::{Path, PathBuf};

use crate::engine::EngineError;

/// Written on a clean close: `journal=<id> end=<bytes> sum=<xxh3>`.
pub const CLEAN_MARK_FILE: &str = "JOURNAL_CLEAN";

/// fjall's end-of-batch trailer (`file::MAGIC_BYTES` in fjall 3).
const TRAILER_MAGIC: [u8; 4] = [b'F', b'J', b'L', 3];
const TAG_START: u8 = 1;
const TAG_ITEM: u8 = 2;
const TAG_END: u8 = 3;
const TAG_CLEAR: u8 = 4;
const START_LEN: usize = 1 + 4 + 8;
const END_LEN: usize = 1 + 8 + 4;
/// Tag, value type, compression, keyspace id, key len, value len, stored len.
const ITEM_HEADER_LEN: usize = 1 + 1 + 1 + 8 + 2 + 4 + 4;

/// The journal files (`N.jnl`) in fjall's data directory, by ascending id.
pub fn journal_files(data_dir: &Path) -> Result<Vec<(u64, PathBuf)>, EngineError> {
    let io = |source| EngineError::Io {
        path: data_dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(data_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jnl"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((id, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// What a journal holds after its last whole, valid batch.
#[derive(Debug, PartialEq, Eq)]
pub enum JournalEnd {
    /// Nothing but zeros (or nothing at all).
    Clean,
    /// Bytes that are not a valid batch, and no valid batch after them.
    TornTail { valid_len: usize, why: &'static str },
    /// Bytes that are not a valid batch, followed by a valid batch at `resumes_at`.
    CorruptMiddle {
        valid_len: usize,
        why: &'static str,
        resumes_at: usize,
    },
}

/// Decodes a journal's bytes the way fjall's recovery does.
pub fn scan_journal(bytes: &[u8]) -> JournalEnd {
    let mut pos = 0;
    loop {
        match parse_batch(bytes, pos) {
            Ok(end) => pos = end,
            Err(why) => {
                let rest = &bytes[pos..];
                if rest.iter().all(|&b| b == 0) {
                    return JournalEnd::Clean;
                }
                return match (pos + 1..bytes.len())
                    .find(|&at| bytes[at] == TAG_START && parse_batch(bytes, at).is_ok())
                {
                    Some(resumes_at) => JournalEnd::CorruptMiddle {
                        valid_len: pos,
                        why,
                        resumes_at,
                    },
                    None => JournalEnd::TornTail {
                        valid_len: pos,
                        why,
                    },
                };
            }
        }
    }
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], &'static str> {
    bytes
        .get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or("a record runs past the end of the file")
}

/// Parses one whole batch at `start`; returns where it ends.
fn parse_batch(bytes: &[u8], start: usize) -> Result<usize, &'static str> {
    let header: [u8; START_LEN] = field(bytes, start)?;
    if header[0] != TAG_START {
        return Err("no batch starts here");
    }
    let items = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    if items == 0 {
        return Err("a batch announces no items");
    }
    let mut pos = start + START_LEN;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for _ in 0..items {
        let [tag] = field::<1>(bytes, pos)?;
        let len = match tag {
            TAG_ITEM => {
                let h: [u8; ITEM_HEADER_LEN] = field(bytes, pos)?;
                if h[2] > 1 {
                    return Err("an item has an unknown compression");
                }
                let key_len = u16::from_le_bytes([h[11], h[12]]) as usize;
                let stored_len = u32::from_le_bytes([h[17], h[18], h[19], h[20]]) as usize;
                ITEM_HEADER_LEN + key_len + stored_len
            }
            TAG_CLEAR => 1 + 8,
            _ => return Err("a batch holds a record of unknown kind"),
        };
        let record = bytes
            .get(pos..pos + len)
            .ok_or("a record runs past the end of the file")?;
        hasher.update(record);
        pos += len;
    }
    let end: [u8; END_LEN] = field(bytes, pos)?;
    if end[0] != TAG_END {
        return Err("a batch has more items than announced");
    }
    if end[9..13] != TRAILER_MAGIC {
        return Err("a batch's end record has a bad trailer");
    }
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&end[1..9]);
    if hasher.digest() != u64::from_le_bytes(sum) {
        return Err("a batch's checksum does not match");
    }
    Ok(pos + END_LEN)
}

/// How far the active journal was written when the engine closed cleanly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanClose {
    pub journal_id: u64,
    pub end: usize,
}

fn clean_mark_text(m: CleanClose) -> String {
    let body = format!("journal={} end={}", m.journal_id, m.end);
    let sum = xxhash_rust::xxh3::xxh3_64(body.as_bytes());
    format!("{body} sum={sum:016x}\n")
}

fn parse_clean_mark(text: &str) -> Option<CleanClose> {
    let (body, sum) = text.trim_end().rsplit_once(" sum=")?;
    if u64::from_str_radix(sum, 16).ok()? != xxhash_rust::xxh3::xxh3_64(body.as_bytes()) {
        return None;
    }
    let (journal, end) = body.split_once(' ')?;
    Some(CleanClose {
        journal_id: journal.strip_prefix("journal=")?.parse().ok()?,
        end: end.strip_prefix("end=")?.parse().ok()?,
    })
}

/// Records how far the (just synced) active journal is written, when it is
/// whole; called as the engine closes.
pub fn record_clean_close(store_dir: &Path, data_dir: &Path) -> Result<(), EngineError> {
    let Some((journal_id, path)) = journal_files(data_dir)?.pop() else {
        return Ok(());
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EngineError::Io { path, source }
    };
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    if scan_journal(&bytes) != JournalEnd::Clean {
        return Ok(());
    }
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let mark = store_dir.join(CLEAN_MARK_FILE);
    let tmp = store_dir.join(format!("{CLEAN_MARK_FILE}.tmp"));
    std::fs::write(&tmp, clean_mark_text(CleanClose { journal_id, end })).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &mark).map_err(io(&mark))
}

/// Refuses the open when fjall's recovery would drop committed batches:
/// damage followed by valid batches, damage in a sealed journal, or damage
/// before where a clean close left the active journal.
pub fn check_journals(store_dir: &Path, data_dir: &Path) -> Result<(), EngineError> {
    let mark_path = store_dir.join(CLEAN_MARK_FILE);
    let clean = match std::fs::read_to_string(&mark_path) {
        Ok(text) => parse_clean_mark(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(EngineError::Io {
                path: mark_path,
                source,
            });
        }
    };
    check_journal_files(data_dir, clean)?;
    // Writes follow: from now on only a new clean close vouches for the journal.
    match std::fs::remove_file(&mark_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(EngineError::Io {
            path: mark_path,
            source: e,
        }),
        _ => Ok(()),
    }
}

fn check_journal_files(data_dir: &Path, clean: Option<CleanClose>) -> Result<(), EngineError> {
    let journals = journal_files(data_dir)?;
    let active = journals.last().map(|(id, _)| *id);
    for (id, path) in &journals {
        let bytes = std::fs::read(path).map_err(|source| EngineError::Io {
            path: path.clone(),
            source,
        })?;
        // fjall preallocates journals with zeros: report against what was written.
        let len = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let closed_at = clean.filter(|c| c.journal_id == *id).map(|c| c.end);
        if let Some(end) = closed_at
            && len < end
        {
            return Err(corrupt_journal(
                path,
                format!("holds {len} written bytes, but {end} when the store was closed cleanly"),
            ));
        }
        match scan_journal(&bytes) {
            JournalEnd::Clean => {}
            JournalEnd::CorruptMiddle {
                valid_len,
                why,
                resumes_at,
            } => {
                return Err(corrupt_journal(
                    path,
                    format!(
                        "is corrupt at byte {valid_len} of the {len} written ({why}), and valid \
                         batches follow from byte {resumes_at}: opening would silently drop committed data"
                    ),
                ));
            }
            JournalEnd::TornTail { valid_len, why }
                if closed_at.is_some_and(|end| valid_len < end) =>
            {
                return Err(corrupt_journal(
                    path,
                    format!(
                        "is corrupt at byte {valid_len} of the {len} written ({why}), though the \
                         store was closed cleanly with the journal whole"
                    ),
                ));
            }
            JournalEnd::TornTail { valid_len, why } if Some(*id) != active => {
                return Err(corrupt_journal(
                    path,
                    format!(
                        "is corrupt at byte {valid_len} of the {len} written ({why}), though \
                         this sealed journal was synced whole"
                    ),
                ));
            }
            JournalEnd::TornTail { valid_len, why } => {
                tracing::warn!(
                    "journal {}: dropping a torn tail after byte {valid_len} ({why}), \
                     the remains of a write a crash interrupted",
                    path.display()
                );
            }
        }
    }
    Ok(())
}

fn corrupt_journal(path: &Path, msg: String) -> EngineError {
    EngineError::CorruptFile {
        path: path.to_path_buf(),
        msg: format!(
            "{msg}. Refusing to open the store; replace this node's store (its ranges \
             re-replicate from the other replicas) or restore it from a backup"
        ),
    }
}
