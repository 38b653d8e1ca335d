//! Crash tests: a real node process is killed with SIGKILL under load and
//! restarted on the same store. Acknowledged commits must all be there, and
//! no part of an unacknowledged transaction may be visible.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use common::start_node;
use tardigrade_hlc::Hlc;
use tardigrade_kv::Db;
use tardigrade_rpc::RpcSender;

fn tardigrade(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tardigrade"))
        .args(args)
        .output()
        .expect("run tardigrade")
}

fn db(rt: &tokio::runtime::Runtime, addr: &str) -> Db {
    let _enter = rt.enter();
    let sender = RpcSender::connect_lazy(addr).expect("client");
    Db::new(Arc::new(sender), Arc::new(Hlc::system()))
}

#[test]
fn acknowledged_commits_survive_kill_9_and_nothing_partial_appears() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let (node, addr) = start_node(&store);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let acked = Arc::new(AtomicI64::new(-1));

    // Writers: transaction i writes two keys; i is recorded once acknowledged.
    let writers = {
        let acked = acked.clone();
        let db = db(&rt, &addr);
        rt.spawn(async move {
            for i in 0i64.. {
                let mut txn = db.txn("crash");
                let k = format!("crash/{i:08}");
                let r = async {
                    txn.put(format!("{k}/a").as_bytes(), b"x").await?;
                    txn.put(format!("{k}/b").as_bytes(), b"x").await?;
                    txn.commit().await
                }
                .await;
                if r.is_err() {
                    return;
                }
                acked.store(i, Ordering::SeqCst);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(2500));
    drop(node); // SIGKILL, mid-write
    let last_acked = acked.load(Ordering::SeqCst);
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(10), writers).await;
    });
    assert!(
        last_acked > 10,
        "too few commits before the kill: {last_acked}"
    );

    let (_node, addr) = start_node(&store);
    let db = db(&rt, &addr);
    let rows = rt
        .block_on(async {
            let mut txn = db.txn("check");
            txn.scan(b"crash/", b"crash0", 0).await
        })
        .expect("scan after restart");
    let mut seen = std::collections::BTreeMap::<i64, Vec<String>>::new();
    for kv in &rows {
        let key = String::from_utf8_lossy(&kv.key).into_owned();
        let mut parts = key.split('/');
        let i: i64 = parts
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("key format");
        seen.entry(i).or_default().push(key);
    }
    for i in 0..=last_acked {
        assert_eq!(
            seen.get(&i).map(Vec::len),
            Some(2),
            "acknowledged transaction {i} lost (last acknowledged {last_acked})"
        );
    }
    for (i, keys) in &seen {
        assert_eq!(
            keys.len(),
            2,
            "transaction {i} is partially visible: {keys:?}"
        );
    }
}

#[test]
fn bank_invariant_holds_across_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let (node, addr) = start_node(&store);
    let host = format!("--host={addr}");
    let out = tardigrade(&["workload", "init", "bank", &host, "--accounts", "50"]);
    assert!(out.status.success(), "init: {out:?}");
    let mut run = Command::new(env!("CARGO_BIN_EXE_tardigrade"))
        .args([
            "workload",
            "run",
            "bank",
            &host,
            "--accounts",
            "50",
            "--concurrency",
            "8",
            "--duration",
            "20s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn workload");
    std::thread::sleep(Duration::from_secs(3));
    drop(node); // SIGKILL in the middle of the transfers
    let _ = run.kill();
    let _ = run.wait();

    let (_node, addr) = start_node(&store);
    let host = format!("--host={addr}");
    let out = tardigrade(&["workload", "check", "bank", &host, "--accounts", "50"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check failed after kill -9: {stdout} {out:?}"
    );
    assert!(stdout.contains("OK"), "{stdout}");
}

/// The newest journal of a store, and how many of its bytes were written
/// (fjall preallocates journals with zeros).
fn newest_journal(store: &std::path::Path) -> (std::path::PathBuf, usize) {
    let mut journals: Vec<_> = std::fs::read_dir(store.join("data"))
        .expect("data dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jnl"))
        .collect();
    journals.sort_by_key(|p| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok())
    });
    let path = journals.pop().expect("a journal");
    let bytes = std::fs::read(&path).expect("read journal");
    let written = bytes.iter().rposition(|&b| b != 0).expect("written") + 1;
    (path, written)
}

fn flip(path: &std::path::Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at] ^= 0x20;
    std::fs::write(path, &bytes).expect("write");
}

#[test]
fn a_byte_flipped_in_the_journal_of_a_stopped_node_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let (node, addr) = start_node(&store);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let db = db(&rt, &addr);
    rt.block_on(async {
        for i in 0..300 {
            db.put(format!("flip/{i:04}").as_bytes(), b"value")
                .await
                .expect("put");
        }
    });
    drop(node);

    let (journal, written) = newest_journal(&store);
    flip(&journal, written / 2);
    let out = tardigrade(&[
        "start-single-node",
        "--insecure",
        &format!("--store={}", store.display()),
        &format!("--listen-addr={}", common::free_addr()),
        "--sql-addr=127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a damaged journal must be refused: {stderr}"
    );
    assert!(stderr.contains(&journal.display().to_string()), "{stderr}");
    assert!(stderr.contains("corrupt"), "{stderr}");

    // Repaired, the store opens with every committed write.
    flip(&journal, written / 2);
    let (_node, addr) = start_node(&store);
    let db = self::db(&rt, &addr);
    let rows = rt
        .block_on(async { db.scan(b"flip/", b"flip0", 0).await })
        .expect("scan");
    assert_eq!(rows.len(), 300);
}
