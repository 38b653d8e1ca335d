//! Testing seam: network partitions of real node processes, driven by a file.
//!
//! When [`PARTITION_FILE_ENV`] names a file, the node routes all its
//! node-to-node traffic through a [`FaultInjector`] whose cut set is the
//! list of peer addresses in that file, one per line (`#` starts a comment;
//! blank lines are ignored). Addresses, not node ids: ids are assigned at
//! `init` and the nemesis knows only the addresses up front.
//!
//! A background thread checks the file every [`PARTITION_FILE_POLL`] and
//! re-reads it only when it changed (inode, size or mtime), so a send never
//! waits on file I/O. A missing or empty file means no faults; a malformed
//! one is logged and also means no faults. Write it by renaming a new file
//! over it (as the nemesis does): an in-place rewrite of the same size
//! within one tick of the file system's mtime could go unseen, and a
//! half-written file would be read as it stands. The file cuts outbound traffic
//! only: a partition in both directions is the file of each side naming
//! the other (which is what the nemesis writes). Never set it in production.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::transport::{FaultInjector, normalize_addr};

/// The environment variable naming the partition file.
pub const PARTITION_FILE_ENV: &str = "TARDIGRADE_TESTING_PARTITION_FILE";

/// How often the partition file is checked for changes.
pub const PARTITION_FILE_POLL: Duration = Duration::from_millis(100);

/// A fault injector driven by [`PARTITION_FILE_ENV`], or `None` when it is
/// unset (then nothing is checked on any send).
pub fn partition_injector_from_env() -> Option<FaultInjector> {
    let path = std::env::var_os(PARTITION_FILE_ENV).filter(|p| !p.is_empty())?;
    let path = PathBuf::from(path);
    eprintln!(
        "warning: {PARTITION_FILE_ENV} is set: this node cannot reach the peer addresses listed in {} (testing only)",
        path.display()
    );
    Some(partition_file_injector(&path))
}

/// The peer addresses of a partition file: one `host:port` a line,
/// surrounding whitespace, blank lines and `#` comments ignored. Any other
/// line makes the whole file invalid.
pub fn parse_partition_file(text: &str) -> Result<Vec<String>, String> {
    let mut addrs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let valid = line
            .rsplit_once(':')
            .is_some_and(|(host, port)| valid_host(host) && port.parse::<u16>().is_ok());
        if !valid {
            return Err(format!(
                "line {}: {line:?} is not a peer address (host:port)",
                n + 1
            ));
        }
        addrs.push(normalize_addr(line));
    }
    addrs.sort();
    addrs.dedup();
    Ok(addrs)
}

fn valid_host(host: &str) -> bool {
    !host.is_empty() && !host.chars().any(char::is_whitespace)
}

/// A fault injector whose address cuts follow the file at `path`, checked
/// every [`PARTITION_FILE_POLL`] by a background thread that ends with the
/// injector. The file is read once before this returns.
pub fn partition_file_injector(path: &Path) -> FaultInjector {
    let faults = FaultInjector::new(0);
    let mut watcher = Watcher {
        path: path.to_path_buf(),
        seen: None,
    };
    watcher.poll(&faults);
    let weak = faults.downgrade();
    let spawned = std::thread::Builder::new()
        .name("partition-file".into())
        .spawn(move || {
            loop {
                std::thread::sleep(PARTITION_FILE_POLL);
                let Some(faults) = weak.upgrade() else {
                    return;
                };
                watcher.poll(&faults);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch the partition file: {e}");
    }
    faults
}

/// What identifies one version of the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Version {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

struct Watcher {
    path: PathBuf,
    /// The version last applied; `None` before the first poll.
    seen: Option<Option<Version>>,
}

impl Watcher {
    /// Applies the file to `faults` if it changed since the last poll.
    fn poll(&mut self, faults: &FaultInjector) {
        let version = std::fs::metadata(&self.path).ok().map(|m| Version {
            inode: m.ino(),
            len: m.len(),
            modified: m.modified().ok(),
        });
        if self.seen == Some(version) {
            return;
        }
        self.seen = Some(version);
        let addrs = match version {
            None => Vec::new(),
            Some(_) => match std::fs::read_to_string(&self.path) {
                Ok(text) => parse_partition_file(&text).unwrap_or_else(|e| {
                    tracing::warn!(
                        file = %self.path.display(),
                        "malformed partition file, no peer is cut: {e}"
                    );
                    Vec::new()
                }),
                // Read again once it changes (not every poll: one warning).
                Err(e) => {
                    tracing::warn!(
                        file = %self.path.display(),
                        "cannot read the partition file, no peer is cut: {e}"
                    );
                    Vec::new()
                }
            },
        };
        if addrs != faults.unreachable_addrs() {
            tracing::warn!(peers = ?addrs, "partition file: peers this node cannot reach");
            faults.set_unreachable_addrs(addrs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_file_lists_peer_addresses() {
        let text = "# n2 and n3\n127.0.0.1:20002\n\n  127.0.0.1:20003  # n3\nlocalhost:9\n127.0.0.1:20002\n";
        assert_eq!(
            parse_partition_file(text),
            Ok(vec![
                "127.0.0.1:20002".to_string(),
                "127.0.0.1:20003".to_string(),
                "localhost:9".to_string(),
            ])
        );
        assert_eq!(parse_partition_file(""), Ok(vec![]));
        assert_eq!(parse_partition_file("\n# nothing cut\n"), Ok(vec![]));
        assert_eq!(
            parse_partition_file("[::1]:7"),
            Ok(vec!["[::1]:7".to_string()])
        );
    }

    #[test]
    fn a_malformed_partition_file_is_an_error_naming_the_line() {
        for bad in [
            "127.0.0.1",
            "127.0.0.1:port",
            "127.0.0.1:70000",
            ":20002",
            "n2 n3:1",
        ] {
            let text = format!("127.0.0.1:20002\n{bad}\n");
            let err = parse_partition_file(&text).expect_err(bad);
            assert!(err.starts_with("line 2:"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_injector_follows_the_file_and_cuts_nothing_when_it_is_missing_or_malformed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("partition");
        let faults = partition_file_injector(&file);
        assert!(faults.unreachable_addrs().is_empty(), "missing file");

        // What the node cannot reach once it has seen `text`.
        let cut_after = |text: &str| {
            std::fs::write(&file, text).expect("write");
            std::thread::sleep(PARTITION_FILE_POLL * 4);
            faults.unreachable_addrs()
        };
        cut_after("127.0.0.1:20002\n127.0.0.1:20003\n");
        assert!(faults.is_cut(1, 2, "127.0.0.1:20002"));
        assert!(faults.is_cut(1, 0, "127.0.0.1:20003"));
        assert!(!faults.is_cut(1, 4, "127.0.0.1:20004"));
        assert_eq!(cut_after("127.0.0.1:20004\n"), ["127.0.0.1:20004"]);
        assert!(
            cut_after("127.0.0.1:20002\nnot an address\n").is_empty(),
            "malformed file"
        );
        assert_eq!(cut_after("127.0.0.1:20002\n"), ["127.0.0.1:20002"]);
        assert!(cut_after("").is_empty(), "empty file");

        cut_after("127.0.0.1:20003\n");
        std::fs::remove_file(&file).expect("remove");
        std::thread::sleep(PARTITION_FILE_POLL * 4);
        assert!(faults.unreachable_addrs().is_empty(), "removed file");
    }
}
