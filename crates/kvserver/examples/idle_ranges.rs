//! CPU use of an idle cluster holding many ranges: three in-process stores
//! (real engines, the in-process Raft transport), N ranges replicated on all
//! three. Waits until every range has elected a leader and gone quiet, then
//! measures the process's CPU time over an idle window.
//!
//! Run: `cargo run --release -p tardigrade-kvserver --example idle_ranges -- [RANGES] [SECONDS]`.
//! A benchmark, not a test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tardigrade_hlc::Hlc;
use tardigrade_kvpb::RangeDescriptor;
use tardigrade_kvserver::{LocalRaftTransport, RaftHandler, Store, StoreConfig};
use tardigrade_storage::{Engine, StoreSpec};

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let ranges: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20);
    let descs: Vec<RangeDescriptor> = (0..ranges)
        .map(|i| {
            let start = if i == 0 {
                Vec::new()
            } else {
                format!("r{i:08}").into_bytes()
            };
            let end = if i + 1 == ranges {
                tardigrade_encoding::keys::MAX_KEY.to_vec()
            } else {
                format!("r{:08}", i + 1).into_bytes()
            };
            RangeDescriptor::with_voters(i + 1, start, end, 1..=3)
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new()?;
    let _guard = runtime.enter();
    let transport = LocalRaftTransport::new(None);
    let clock = Arc::new(Hlc::system());
    let mut stores = Vec::new();
    let t = Instant::now();
    for n in 1..=3u64 {
        let engine = Engine::open(&StoreSpec::Memory)?;
        Store::bootstrap(&engine, &descs)?;
        let cfg = StoreConfig {
            node_id: n,
            store_id: n,
            transport: Some(transport.clone()),
            bootstrap_single_node: false,
            ..StoreConfig::default()
        };
        let store = Store::open(engine, clock.clone(), cfg)?;
        let handler: Arc<dyn RaftHandler> = store.clone();
        transport.register(n, Arc::downgrade(&handler));
        stores.push(store);
    }
    println!(
        "bootstrapped {ranges} ranges x 3 replicas in {:?}",
        t.elapsed()
    );
    // Let elections happen and the ranges go quiet.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let quiet = stores
            .iter()
            .map(|s| s.replicas().iter().filter(|r| r.is_quiesced()).count())
            .sum::<usize>();
        let leaders = stores
            .iter()
            .map(|s| s.replicas().iter().filter(|r| r.is_raft_leader()).count())
            .sum::<usize>();
        println!(
            "leaders {leaders}/{ranges}, quiesced replicas {quiet}/{}",
            3 * ranges
        );
        if quiet as u64 == 3 * ranges || Instant::now() > deadline {
            break;
        }
    }
    let c0 = cpu_seconds();
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let cpu = cpu_seconds() - c0;
    let wall = w0.elapsed().as_secs_f64();
    println!(
        "idle: {:.2} CPU-seconds over {wall:.1} s = {:.1}% of one core ({ranges} ranges, 3 replicas each, 3 stores in one process)",
        cpu,
        100.0 * cpu / wall
    );
    for s in &stores {
        s.stop();
    }
    Ok(())
}
