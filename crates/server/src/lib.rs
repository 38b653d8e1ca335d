//! Assembles a node: the store (engine + kvserver `Store`) and the KV RPC
//! listener. SQL, HTTP, gossip and liveness come in later issues.

pub mod cluster;
pub mod consistency;
pub mod heartbeat;
pub mod http;
pub mod node;
pub mod pgwire;

use std::fs::{File, TryLockError};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tardigrade_hlc::Hlc;
use tardigrade_kvserver::{Store, StoreConfig};
use tardigrade_storage::{Engine, EngineError, StoreSpec};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a graceful shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What a node needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub store: StoreSpec,
    pub listen_addr: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "store {path} is in use by another process (it holds the lock on the directory); stop that node first"
    )]
    StoreLocked { path: PathBuf },
    #[error("store {path}: {source}")]
    StoreIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open store: {0}")]
    Engine(#[from] EngineError),
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("RPC server failed: {0}")]
    Serve(#[from] tardigrade_rpc::ServeError),
    #[error("RPC server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("invalid setting: {0}")]
    Config(String),
}

/// An exclusive lock on a store directory, held while the node runs, so a
/// second process cannot open the same store.
///
/// The lock is taken on the directory itself (`flock` on its descriptor)
/// rather than on a lock file inside it: the engine refuses to initialize a
/// non-empty directory that lacks its marker, so a lock file created before the
/// first open would make a fresh store directory look foreign.
#[derive(Debug)]
pub struct StoreLock {
    _dir: File,
    path: PathBuf,
}

impl StoreLock {
    /// Creates `path` if needed and locks it, failing with
    /// [`ServerError::StoreLocked`] if another process holds it.
    pub fn acquire(path: &Path) -> Result<StoreLock, ServerError> {
        let io = |source| ServerError::StoreIo {
            path: path.to_path_buf(),
            source,
        };
        if !path.exists() {
            std::fs::create_dir_all(path).map_err(io)?;
        }
        if !path.is_dir() {
            return Err(io(std::io::Error::other("exists and is not a directory")));
        }
        let dir = File::open(path).map_err(io)?;
        match dir.try_lock() {
            Ok(()) => Ok(StoreLock {
                _dir: dir,
                path: path.to_path_buf(),
            }),
            Err(TryLockError::WouldBlock) => Err(ServerError::StoreLocked {
                path: path.to_path_buf(),
            }),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A running single node.
pub struct Server {
    local_addr: SocketAddr,
    store_spec: StoreSpec,
    store: Arc<Store>,
    clock: Arc<Hlc>,
    stop: Option<oneshot::Sender<()>>,
    serving: JoinHandle<Result<(), tardigrade_rpc::ServeError>>,
    /// Released (after everything else) when the server is dropped.
    _lock: Option<StoreLock>,
}

/// "/path" or "type=mem": how a store is shown to people.
pub fn describe_store(spec: &StoreSpec) -> String {
    match spec {
        StoreSpec::Dir(p) => p.display().to_string(),
        StoreSpec::Memory => "type=mem".to_string(),
    }
}

impl Server {
    /// Locks and opens the store, binds the listener and starts serving.
    /// Must be called inside a Tokio runtime.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        let lock = match &config.store {
            StoreSpec::Dir(path) => Some(StoreLock::acquire(path)?),
            StoreSpec::Memory => None,
        };
        // Bind before opening the store: a taken port fails fast and cheaply.
        let listener = tokio::net::TcpListener::bind(config.listen_addr)
            .await
            .map_err(|source| {
                let hint = if source.kind() == std::io::ErrorKind::AddrInUse {
                    " (is another node running? choose another --listen-addr)"
                } else {
                    ""
                };
                ServerError::Bind {
                    addr: config.listen_addr,
                    source,
                    hint,
                }
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen_addr,
            source,
            hint: "",
        })?;

        let engine = Engine::open(&config.store)?;
        let clock = Arc::new(Hlc::system());
        let store = Store::open(engine, clock.clone(), StoreConfig::default())?;
        store.start_gc_queue();

        let (stop, stopped) = oneshot::channel::<()>();
        let sender: Arc<dyn tardigrade_kvpb::Sender> = store.clone();
        let serving = tokio::spawn(tardigrade_rpc::serve(listener, sender, async {
            // A dropped sender means the Server itself was dropped: stop too.
            let _ = stopped.await;
        }));
        tracing::info!(
            addr = %local_addr,
            store = %describe_store(&config.store),
            "node started: KV API listening"
        );
        Ok(Server {
            local_addr,
            store_spec: config.store,
            store,
            clock,
            stop: Some(stop),
            serving,
            _lock: lock,
        })
    }

    /// The address the KV API listens on (with the real port if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn store_spec(&self) -> &StoreSpec {
        &self.store_spec
    }

    /// The node's store, for in-process use (tests, a local SQL gateway).
    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    pub fn clock(&self) -> Arc<Hlc> {
        self.clock.clone()
    }

    /// Stops accepting requests, waits (up to [`SHUTDOWN_GRACE`]) for those in
    /// flight, then closes the store and releases its lock.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        tracing::info!(addr = %self.local_addr, "node shutting down");
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.serving).await {
            Ok(joined) => joined?.map_err(ServerError::from),
            Err(_) => {
                tracing::warn!(
                    "in-flight requests did not finish in {SHUTDOWN_GRACE:?}; aborting them"
                );
                self.serving.abort();
                Ok(())
            }
        };
        if let Err(e) = self.store.engine().close_cleanly() {
            tracing::warn!("store not marked as closed cleanly: {e}");
        }
        tracing::info!("node stopped");
        result
    }
}

/// Installs the log subscriber: to stderr, filtered by `RUST_LOG` (else by
/// `default_filter`, e.g. `info`, with the storage engine's crates at `warn`). Does nothing if one is already installed.
pub fn init_logging(default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    // The engine's own INFO lines (every compaction it starts, several a
    // second during a bulk load) are not an operator's concern.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_filter},lsm_tree=warn,fjall=warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store");
        let first = StoreLock::acquire(&path).expect("first lock");
        assert!(path.is_dir(), "created");
        assert_eq!(
            std::fs::read_dir(&path).expect("read").count(),
            0,
            "locking leaves the directory empty, so the engine still initializes it"
        );
        match StoreLock::acquire(&path) {
            Err(ServerError::StoreLocked { path: p }) => assert_eq!(p, path),
            other => panic!("wanted StoreLocked, got {other:?}"),
        }
        drop(first);
        StoreLock::acquire(&path).expect("free again");
    }

    #[test]
    fn store_lock_refuses_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("file");
        std::fs::write(&path, b"x").expect("write");
        assert!(matches!(
            StoreLock::acquire(&path),
            Err(ServerError::StoreIo { .. })
        ));
    }

    #[tokio::test]
    async fn start_fails_clearly_when_the_store_is_locked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _held = StoreLock::acquire(dir.path()).expect("lock");
        let err = Server::start(ServerConfig {
            store: StoreSpec::Dir(dir.path().to_path_buf()),
            listen_addr: "127.0.0.1:0".parse().expect("addr"),
        })
        .await
        .err()
        .expect("locked");
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn start_fails_clearly_when_the_port_is_taken() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = Server::start(ServerConfig {
            store: StoreSpec::Memory,
            listen_addr: addr,
        })
        .await
        .err()
        .expect("port taken");
        let msg = err.to_string();
        assert!(msg.contains(&format!("cannot listen on {addr}")), "{msg}");
        assert!(msg.contains("another node"), "{msg}");
    }
}
