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
