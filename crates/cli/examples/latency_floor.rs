//! The latency floor a replicated write cannot beat on this machine: one
//! `fdatasync` of a small append, and one loopback TCP round trip.
//!
//! Run: `cargo run --release -p tardigrade --example latency_floor -- [DIR]`.
//! A benchmark, not a test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let path = std::path::Path::new(&dir).join("latency-floor.tmp");
    let mut f = std::fs::File::create(&path)?;
    let block = [7u8; 512];
    let mut syncs = Vec::with_capacity(500);
    for _ in 0..500 {
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        syncs.push(t.elapsed());
    }
    drop(f);
    std::fs::remove_file(&path)?;

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        loop {
            match s.read_exact(&mut buf) {
                Ok(()) => s.write_all(&buf)?,
                Err(_) => return Ok(()),
            }
        }
    });
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    let mut rtts = Vec::with_capacity(5000);
    let mut buf = [1u8; 64];
    for _ in 0..5000 {
        let t = Instant::now();
        c.write_all(&buf)?;
        c.read_exact(&mut buf)?;
        rtts.push(t.elapsed());
    }
    drop(c);
    let _ = echo.join();
    println!(
        "fdatasync of a 512 B append ({dir}): p50 {:?} p99 {:?}",
        percentile(&mut syncs, 0.5),
        percentile(&mut syncs, 0.99)
    );
    println!(
        "loopback TCP round trip (64 B): p50 {:?} p99 {:?}",
        percentile(&mut rtts, 0.5),
        percentile(&mut rtts, 0.99)
    );
    Ok(())
}
