//! `tardigrade start-single-node`.

use std::net::{SocketAddr, ToSocketAddrs};

use clap::Args;
use tardigrade_server::{Server, ServerConfig};
use tardigrade_storage::StoreSpec;

use crate::{CliError, CliResult, DEFAULT_ADDR};

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Where the store lives: a directory (DIR or path=DIR), or type=mem.
    #[arg(long, default_value = "tardigrade-data")]
    pub store: StoreSpec,
    /// The address the KV API listens on.
    #[arg(long, default_value = DEFAULT_ADDR, value_parser = parse_listen_addr)]
    pub listen_addr: SocketAddr,
    /// The address the SQL (PostgreSQL wire protocol) listener uses.
    #[arg(long, default_value = crate::sql_shell::DEFAULT_SQL_ADDR, value_parser = parse_listen_addr)]
    pub sql_addr: SocketAddr,
    /// Accepted for CockroachDB compatibility; TLS does not exist yet.
    #[arg(long)]
    pub insecure: bool,
    /// The store's block cache: a size (128MiB, 1GiB, 512MB) or a fraction
    /// of the machine's memory (.25, 25%).
    #[arg(long, default_value = "128MiB", value_parser = parse_cache_size)]
    pub cache: u64,
}

/// A `--cache` value in bytes: a size with a unit (B, KB/KiB, MB/MiB,
/// GB/GiB; bare digits are bytes) or a fraction of physical memory
/// (`.25`, `0.25`, `25%`), as CockroachDB's `--cache` takes it.
pub fn parse_cache_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let fraction = if let Some(p) = t.strip_suffix('%') {
        Some(p.trim().parse::<f64>().map_err(|_| bad_cache(s))? / 100.0)
    } else if t.contains('.') && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        Some(t.parse::<f64>().map_err(|_| bad_cache(s))?)
    } else {
        None
    };
    if let Some(f) = fraction {
        if !(f > 0.0 && f <= 1.0) {
            return Err(format!(
                "--cache {s:?}: a fraction of memory must be in (0, 1]"
            ));
        }
        let total = physical_memory().ok_or_else(|| {
            format!(
                "--cache {s:?}: cannot read this machine's memory size; give a size such as 256MiB"
            )
        })?;
        return Ok((total as f64 * f) as u64);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad_cache(s))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => return Err(bad_cache(s)),
    };
    n.checked_mul(scale).ok_or_else(|| bad_cache(s))
}

fn bad_cache(s: &str) -> String {
    format!(
        "--cache {s:?}: expected a size such as 128MiB or 1GiB, or a fraction such as .25 or 25%"
    )
}

/// Physical memory in bytes, from /proc/meminfo.
fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Puts the SQL layer's temp files (sorts that spill) in the store
/// directory's `tmp/` (the system temp directory for in-memory stores).
pub fn use_store_temp_dir(sql: &tardigrade_server::pgwire::SqlServer, store: &StoreSpec) {
    if let StoreSpec::Dir(dir) = store {
        sql.node().temp_storage.set_dir(dir.join("tmp"));
    }
}

pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("{s:?} is not a HOST:PORT address: {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

pub async fn run(args: StartArgs) -> CliResult {
    tardigrade_storage::set_block_cache_bytes(args.cache);
    let server = Server::start(ServerConfig {
        store: args.store.clone(),
        listen_addr: args.listen_addr,
    })
    .await?;
    let store = match &args.store {
        StoreSpec::Dir(p) => std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.clone())
            .display()
            .to_string(),
        StoreSpec::Memory => "type=mem".to_string(),
    };
    let db = tardigrade_kv::Db::new(server.store(), server.clock());
    let sql = tardigrade_server::pgwire::SqlServer::start(args.sql_addr, db, 1).await?;
    use_store_temp_dir(&sql, &args.store);
    println!(
        "node started: KV API at {}, store {store}",
        server.local_addr()
    );
    println!("SQL: {}", sql.url());

    let signal = wait_for_signal().await;
    tracing::info!("received {signal}, shutting down (send it again to exit at once)");
    // A second signal while draining exits at once.
    tokio::spawn(async {
        let again = wait_for_signal().await;
        eprintln!("received {again} again: exiting without waiting");
        std::process::exit(1);
    });
    sql.shutdown().await;
    server.shutdown().await.map_err(CliError::from)
}

/// Waits for SIGINT or SIGTERM; returns its name.
pub async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            None
        }
    };
    let sigterm = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if let Err(e) = r {
                tracing::warn!("cannot listen for SIGINT: {e}");
                std::future::pending::<()>().await;
            }
            "SIGINT"
        }
        _ = sigterm => "SIGTERM",
    }
}

#[cfg(test)]
mod cache_flag_tests {
    use super::parse_cache_size;

    #[test]
    fn sizes_and_fractions() {
        assert_eq!(parse_cache_size("128MiB"), Ok(128 << 20));
        assert_eq!(parse_cache_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_cache_size("512MB"), Ok(512_000_000));
        assert_eq!(parse_cache_size("4096"), Ok(4096));
        assert!(parse_cache_size(".25").is_ok_and(|b| b > 0));
        assert!(parse_cache_size("25%").is_ok_and(|b| b > 0));
        for bad in [
            "",
            "MiB",
            "12 parsecs",
            "1.5",
            "0%",
            "150%",
            "-1",
            "99999999999999GiB",
        ] {
            assert!(parse_cache_size(bad).is_err(), "{bad:?} accepted");
        }
    }
}
