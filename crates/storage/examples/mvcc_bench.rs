//! MVCC throughput on one store: non-transactional puts (batched, one synced
//! commit per batch), point gets at the present, full scans, and the
//! engine's raw iteration over the same versions (the floor a scan could reach).
//!
//! Run: `cargo run --release -p tardigrade-storage --example mvcc_bench -- [KEYS] [DIR]`.
//! A benchmark, not a test: it prints rates and asserts nothing timing-related.

use std::time::Instant;

use tardigrade_hlc::Timestamp;
use tardigrade_storage::mvcc::{self, ReadOptions, ScanLimits};
use tardigrade_storage::{Engine, MvccStats, Reader, Space, StoreSpec};

const BATCH: u64 = 100;

fn key(i: u64) -> Vec<u8> {
    format!("bench/{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).into_bytes()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let spec = match args.next() {
        Some(dir) => StoreSpec::Dir(dir.into()),
        None => StoreSpec::Memory,
    };
    let engine = Engine::open(&spec)?;
    let value = vec![7u8; 256];
    let mut stats = MvccStats::default();

    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let mut b = engine.batch();
        for j in i..(i + BATCH).min(n) {
            mvcc::mvcc_put(
                &mut b,
                &mut stats,
                &key(j),
                Timestamp::new(10, 0),
                Some(&value),
                None,
            )?;
        }
        engine.commit(b.writes(), true)?;
        i += BATCH;
    }
    let put = start.elapsed();
    println!(
        "put:  {n} keys x 256 B in batches of {BATCH} (synced): {:.0} keys/s",
        n as f64 / put.as_secs_f64()
    );

    let snap = engine.snapshot();
    let opts = ReadOptions::default();
    let start = Instant::now();
    let mut found = 0u64;
    for j in 0..n {
        let g = mvcc::mvcc_get(&snap, &key(j), Timestamp::new(20, 0), &opts)?;
        found += u64::from(g.value.is_some());
    }
    let get = start.elapsed();
    assert_eq!(found, n);
    println!("get:  {:.0} gets/s", n as f64 / get.as_secs_f64());

    let start = Instant::now();
    let s = mvcc::mvcc_scan(
        &snap,
        b"bench/",
        b"bench0",
        Timestamp::new(20, 0),
        &opts,
        ScanLimits::default(),
        false,
    )?;
    let scan = start.elapsed();
    assert_eq!(s.kvs.len() as u64, n);
    println!(
        "scan: {:.0} keys/s (one scan of {n} keys)",
        n as f64 / scan.as_secs_f64()
    );

    // The engine's own speed over the same versions: one raw iteration of
    // the version space, touching each key and value, nothing decoded.
    let start = Instant::now();
    let mut bytes = 0usize;
    let mut entries = 0u64;
    for item in snap.scan(Space::Mvcc, b"", b"\xff", false) {
        let (k, v) = item?;
        bytes += k.len() + v.len();
        entries += 1;
    }
    let raw = start.elapsed();
    assert_eq!(entries, n, "{bytes} bytes");
    println!(
        "raw engine iteration: {:.0} keys/s; MVCC scan / raw: {:.2}x the time",
        n as f64 / raw.as_secs_f64(),
        scan.as_secs_f64() / raw.as_secs_f64()
    );
    Ok(())
}
