//! The PostgreSQL wire protocol front end: the SQL listener of a node
//! (`--sql-addr`, 26257 by default).
//!
//! Built on the `pgwire` crate, which decodes and encodes the protocol messages and
//! holds each connection's prepared statements and portals; everything with meaning
//! is delegated to a [`tardigrade_sql::Session`], one per connection:
//!
//! - startup: any user connects without a password (insecure mode is the only mode
//!   for now); the `database` startup parameter picks the database (`defaultdb` when
//!   absent), and a database that does not exist is a FATAL 3D000;
//! - simple query: [`Session::simple_query_to`] (several statements per string);
//! - extended query: Parse calls [`Session::prepare`] and the parsed, described
//!   [`Prepared`] is what the statement store keeps (no re-parse per execution);
//!   Bind/Execute decode the parameters in text or binary format and call
//!   [`Session::execute_to`]; Describe answers from the `Prepared`;
//! - a query's rows stream to the client while it runs ([`results`]: a
//!   single-statement simple query, or an Execute without a row limit); an
//!   Execute with a row limit keeps its rows in the portal;
//! - ReadyForQuery carries [`Session::transaction_status`];
//! - COPY … FROM STDIN is handled here ([`copy`]): rows become batched, prepared
//!   multi-row INSERTs through the same session, in one transaction; COPY … TO
//!   STDOUT ([`copy_out`]) streams a query's rows as CopyData;
//! - a cancel request interrupts the running statement (57014) at its next await
//!   point (a KV request; the executor's CPU-bound loops yield every few
//!   thousand rows); a cancelled statement inside a transaction block aborts the
//!   block, as in PostgreSQL;
//! - Terminate, a vanished client or a protocol error end the connection, and the
//!   session is terminated: its open transaction is rolled back and its locks
//!   released. Other connections are not affected. A client that hangs up
//!   while a statement runs cancels it (as a cancel request would): the
//!   connection watches its socket for the end of the stream meanwhile
//!   (through a second handle on it, peeking, so no byte is taken from the
//!   protocol's reader). Bytes the client sent before hanging up (a
//!   pipelined next message) hide the hang-up until the statement ends.
//!
//! Not yet (TODO(issue 4)):
//! - a message size limit of our own: pgwire refuses frontend messages over
//!   1 GiB; CockroachDB's default is 16 MiB;
//! - COPY in binary format; an implicit COPY is one transaction, so very
//!   large loads hit the KV layer's large-transaction limits;
//! - a single CPU-bound step that does not yield (an in-memory sort) runs to
//!   completion before a cancel takes effect;
//! - a cancelled multi-statement simple query reports only the cancellation, not
//!   the results of the statements that completed before it;
//! - `ROLLBACK TO SAVEPOINT cockroach_restart` in a block that failed in the wire
//!   layer (cancel, bad COPY data) ends the block instead of restarting it;
//! - TLS and passwords (insecure mode only).
//!
//! The connection loop is ours (not `pgwire::tokio::process_socket`) so that the
//! session is always terminated, undecodable input closes the connection with a
//! FATAL error, and ReadyForQuery always reports the session's real state.

pub mod copy;
pub mod copy_out;
pub mod frontend;
pub mod results;

use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::auth::{
    StartupHandler, protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldFormat, QueryResponse, Response};
use pgwire::api::stmt::StoredStatement;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionGuard, ConnectionHandle, ConnectionManager,
    DEFAULT_NAME, METADATA_DATABASE, METADATA_USER, PgWireConnectionState, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyInResponse};
use pgwire::messages::data::{FieldDescription, NoData, ParameterDescription, RowDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Describe, Execute, Parse, ParseComplete, PortalSuspended, Sync as PgSync,
    TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, ReadyForQuery, TransactionStatus as PgTxnStatus,
};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::process_message;
use tardigrade_kv::Db;
use tardigrade_sql::{Column, Prepared, QueryOutput, Session, SqlNode, TransactionStatus};
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;

use crate::ServerError;
use copy::{CopyField, CopyRow, CopySpec, RowParser};
use results::{DataRows, WireSink, encode_rows};

/// The SQL port CockroachDB uses, and so do we.
pub const DEFAULT_SQL_PORT: u16 = 26257;

/// What `server_version` reports: PostgreSQL 15 compatibility, and who we are.
pub const SERVER_VERSION: &str = "15.0.0 tardigrade";

/// The database a connection uses when it names none.
pub const DEFAULT_DATABASE: &str = "defaultdb";

/// How long a new connection waits to check that its database exists
/// before it opens anyway (the catalog's ranges may have lost quorum).
const CONNECT_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// A client must finish the startup handshake within this time.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Rows per INSERT when COPY loads data (capped so parameters stay below 65535).
const COPY_BATCH_ROWS: usize = 500;

/// A running SQL listener.
pub struct SqlServer {
    local_addr: SocketAddr,
    node: Arc<SqlNode>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl SqlServer {
    /// Starts the node's SQL layer over `db` (the node's gateway KV client) and
    /// listens on `addr`. Binds first, so a taken port fails before anything else.
    pub async fn start(addr: SocketAddr, db: Db, node_id: u32) -> Result<SqlServer, ServerError> {
        let listener = bind_sql(addr).await?;
        let node = SqlNode::start(db, node_id)
            .await
            .map_err(|e| ServerError::Config(format!("cannot start the SQL layer: {e}")))?;
        Self::serve(listener, node)
    }

    /// [`SqlServer::start`] on a cluster node that may be restarting with
    /// its peers: the SQL layer reads (and the first time writes) its
    /// system tables through KV, which is unavailable until enough nodes
    /// are back. Binds first (a taken port fails at once), then keeps
    /// trying, saying in the log what it waits for; never gives up (the
    /// caller stops it on SIGTERM by dropping the future).
    pub async fn start_when_available(
        addr: SocketAddr,
        db: Db,
        node_id: u32,
    ) -> Result<SqlServer, ServerError> {
        let listener = bind_sql(addr).await?;
        let started = std::time::Instant::now();
        let mut backoff = Duration::from_millis(100);
        let node = loop {
            match SqlNode::start(db.clone(), node_id).await {
                Ok(node) => break node,
                // Only what the cluster's state explains is waited out
                // (ranges unavailable, restarts, ambiguous or internal KV
                // errors); anything else is a real failure.
                Err(e) if !["40", "57", "58", "XX"].contains(&e.code.get(..2).unwrap_or("")) => {
                    return Err(ServerError::Config(format!(
                        "cannot start the SQL layer: {e}"
                    )));
                }
                Err(e) => {
                    tracing::warn!(
                        waited_s = started.elapsed().as_secs(),
                        "SQL is waiting for the cluster's system ranges to become available (are enough nodes up?): {e}"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        };
        if started.elapsed() > Duration::from_secs(1) {
            tracing::info!(waited_s = started.elapsed().as_secs(), "SQL layer started");
        }
        Self::serve(listener, node)
    }

    /// Serves connections from `listener` with an already started SQL node.
    pub fn serve(listener: TcpListener, node: Arc<SqlNode>) -> Result<SqlServer, ServerError> {
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
            hint: "",
        })?;
        let shared = Arc::new(Shared {
            node: node.clone(),
            cancels: Arc::new(ConnectionManager::new()),
            pids: RandomPidSecretKeyGenerator::default(),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(accept_loop(listener, shared, stopped));
        tracing::info!(addr = %local_addr, "SQL listening (PostgreSQL wire protocol)");
        Ok(SqlServer {
            local_addr,
            node,
            stop: Some(stop),
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn node(&self) -> &Arc<SqlNode> {
        &self.node
    }

    /// A `postgresql://` URL for this listener (user `root`, database `defaultdb`).
    pub fn url(&self) -> String {
        connection_url(self.local_addr)
    }

    /// Stops accepting, and closes every connection (their sessions roll back).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(crate::SHUTDOWN_GRACE, &mut self.task).await;
    }
}

impl Drop for SqlServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds the SQL port; a taken port says what to do.
async fn bind_sql(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr,
            hint: if source.kind() == std::io::ErrorKind::AddrInUse {
                " (is another node running? choose another --sql-addr)"
            } else {
                ""
            },
            source,
        })
}

/// The URL clients use to reach a SQL listener at `addr`.
pub fn connection_url(addr: SocketAddr) -> String {
    format!("postgresql://root@{addr}/{DEFAULT_DATABASE}?sslmode=disable")
}

/// What every connection of a listener shares.
struct Shared {
    node: Arc<SqlNode>,
    cancels: Arc<ConnectionManager>,
    pids: RandomPidSecretKeyGenerator,
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let shared = shared.clone();
                    connections.spawn(async move {
                        tracing::debug!(%peer, "SQL connection");
                        serve_connection(stream, shared).await;
                        tracing::debug!(%peer, "SQL connection closed");
                    });
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!("SQL accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Dropping the tasks drops their sessions, which roll back open transactions.
    connections.shutdown().await;
}

/// One statement in the connection's statement store: the parsed and described
/// statement, or a COPY.
pub struct Stmt {
    sql: String,
    kind: StmtKind,
}

enum StmtKind {
    Sql(Box<Prepared>),
    Copy(CopySpec),
}

type StmtRef = Arc<Stmt>;
type Socket = frontend::Socket<StmtRef>;

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let peer = watch_handle(&stream);
    let opened = tokio::time::timeout(STARTUP_TIMEOUT, frontend::open::<StmtRef>(stream)).await;
    let Ok(Some(mut socket)) = opened else {
        return;
    };
    let conn = Arc::new(Conn {
        shared,
        state: Mutex::new(ConnState::default()),
        cancel: OnceLock::new(),
        peer,
    });
    run_connection(&mut socket, &conn).await;
    // Client gone, Terminate, or a fatal error: end the session (rolls back).
    let mut state = conn.state.lock().await;
    if let Some(session) = state.session.as_mut() {
        session.terminate().await;
    }
    state.session = None;
    let _ = socket.close().await;
}

async fn run_connection(socket: &mut Socket, conn: &Arc<Conn>) {
    let startup_deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let next = if starting {
            match tokio::time::timeout_at(startup_deadline, socket.next()).await {
                Ok(m) => m,
                Err(_) => return,
            }
        } else {
            socket.next().await
        };
        let message = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                // Undecodable or oversized input: say why, then hang up.
                tracing::debug!("closing SQL connection: {e}");
                let info = ErrorInfo::new(
                    "FATAL".to_string(),
                    "08P01".to_string(),
                    format!("invalid frontend message: {e}"),
                );
                let _ = socket
                    .send(PgWireBackendMessage::ErrorResponse(info.into()))
                    .await;
                return;
            }
            None => return,
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            return;
        }
        let extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        // Query and Parse text that is not UTF-8 (or holds a NUL) is refused
        // before it is run, as an error of that statement.
        if matches!(
            message,
            PgWireFrontendMessage::Query(_) | PgWireFrontendMessage::Parse(_)
        ) && let Some(e) = socket.get_mut().take_verdict()
        {
            conn.state.lock().await.abort_block().await;
            if send_error(socket, conn, user_error(e), extended)
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        let cancel_request = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        let result = process_message(
            message,
            socket,
            conn.clone(),
            conn.clone(),
            conn.clone(),
            conn.clone(),
            conn.clone(),
        )
        .await;
        if cancel_request {
            return;
        }
        if let Err(e) = result
            && send_error(socket, conn, e, extended).await.is_err()
        {
            return;
        }
    }
}

/// Sends an error the handlers returned. FATAL errors end the connection (Err);
/// in the extended protocol the connection then skips messages until Sync.
async fn send_error(
    socket: &mut Socket,
    conn: &Conn,
    error: PgWireError,
    extended: bool,
) -> Result<(), ()> {
    let fatal = error.is_fatal();
    let info: ErrorInfo = error.into();
    socket
        .feed(PgWireBackendMessage::ErrorResponse(info.into()))
        .await
        .map_err(|_| ())?;
    if fatal {
        let _ = socket.flush().await;
        return Err(());
    }
    if extended {
        socket.set_state(PgWireConnectionState::AwaitingSync);
        socket.flush().await.map_err(|_| ())?;
    } else {
        socket.set_state(PgWireConnectionState::ReadyForQuery);
        let status = conn.state.lock().await.status();
        socket.set_transaction_status(status);
        socket
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await
            .map_err(|_| ())?;
    }
    Ok(())
}

/// One client connection.
struct Conn {
    shared: Arc<Shared>,
    state: Mutex<ConnState>,
    /// Set at startup: this connection's cancel handle, and its registration.
    cancel: OnceLock<(Arc<ConnectionHandle>, ConnectionGuard)>,
    /// A second handle on the client's socket, to notice a hang-up while a
    /// statement runs (None if the socket could not be duplicated).
    peer: Option<TcpStream>,
}

/// A second handle on the client's socket, for [`Conn::hung_up`].
fn watch_handle(stream: &TcpStream) -> Option<TcpStream> {
    use std::os::fd::AsFd;
    let fd = stream.as_fd().try_clone_to_owned().ok()?;
    let dup = std::net::TcpStream::from(fd);
    // Already non-blocking (the flag belongs to the socket, not the handle).
    dup.set_nonblocking(true).ok()?;
    TcpStream::from_std(dup).ok()
}

#[derive(Default)]
struct ConnState {
    session: Option<Session>,
    /// The transaction block failed in a way the session did not see (a cancelled
    /// statement, bad COPY data): the session's transaction was rolled back and
    /// until COMMIT/ROLLBACK the connection behaves as PostgreSQL's aborted block.
    aborted_block: bool,
    copy: Option<CopyIn>,
    /// The settings' generation when their reported values were last sent.
    reported_generation: u64,
    /// The reported parameters as last sent.
    reported: Vec<(&'static str, String)>,
}

/// A COPY FROM STDIN in progress.
struct CopyIn {
    parser: RowParser,
    columns: Vec<Column>,
    insert_sql_prefix: String,
    /// Prepared INSERT for a full batch.
    batch_insert: Option<Prepared>,
    rows: Vec<CopyRow>,
    copied: u64,
    /// The COPY opened its own transaction (it ran outside a block).
    own_txn: bool,
    /// The first error; later data is discarded and the error is reported at
    /// CopyDone.
    error: Option<SqlError>,
}

impl ConnState {
    fn session(&mut self) -> SqlResult<&mut Session> {
        self.session
            .as_mut()
            .ok_or_else(|| SqlError::new("08P01", "the connection has not started a session"))
    }

    fn status(&self) -> PgTxnStatus {
        if self.aborted_block {
            return PgTxnStatus::Error;
        }
        match self.session.as_ref().map(|s| s.transaction_status()) {
            Some(TransactionStatus::InBlock) => PgTxnStatus::Transaction,
            Some(TransactionStatus::Failed) => PgTxnStatus::Error,
            Some(TransactionStatus::Idle) | None => PgTxnStatus::Idle,
        }
    }

    fn in_block(&self) -> bool {
        self.status() != PgTxnStatus::Idle
    }

    /// Rolls the session's transaction back and enters the emulated aborted state
    /// (when a block was open).
    async fn abort_block(&mut self) {
        if self.aborted_block {
            return;
        }
        let was_in_block = self.in_block();
        if let Some(session) = self.session.as_mut()
            && was_in_block
        {
            let _ = session.simple_query("ROLLBACK").await;
            self.aborted_block = true;
        }
    }

    /// The aborted-block emulation: only COMMIT/ROLLBACK (which both roll back)
    /// get through.
    fn check_aborted(&mut self, sql: &str) -> Option<SqlResult<QueryOutput>> {
        if !self.aborted_block {
            return None;
        }
        if ends_block(sql) {
            self.aborted_block = false;
            Some(Ok(QueryOutput::command("ROLLBACK")))
        } else {
            Some(Err(in_failed_block()))
        }
    }

    async fn prepare(&mut self, sql: &str, types: &[SqlType]) -> SqlResult<Prepared> {
        let result = self.session()?.prepare(sql, types).await;
        if result.is_err() {
            // PostgreSQL: an error inside a block aborts the block.
            self.abort_block().await;
        }
        result
    }
}

fn in_failed_block() -> SqlError {
    SqlError::new(
        codes::IN_FAILED_SQL_TRANSACTION,
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

/// Whether the statement is COMMIT/END/ROLLBACK/ABORT (by its first word).
fn ends_block(sql: &str) -> bool {
    let word: String = sql
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    matches!(word.as_str(), "commit" | "end" | "rollback" | "abort")
}

/// Applies the run-time parameters a client sent at startup (as
/// `application_name`, `TimeZone`, or `-c name=value` in `options`). A value
/// that cannot be set is logged and left at its default rather than refusing
/// the connection: drivers send their own defaults here (JDBC sends the
/// client's time zone).
fn apply_startup_parameters(
    settings: &tardigrade_sql::settings::Settings,
    metadata: &std::collections::HashMap<String, String>,
) {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (key, value) in metadata {
        match key.as_str() {
            METADATA_USER | METADATA_DATABASE | "replication" => {}
            "options" => {
                let mut words = value.split_whitespace();
                while let Some(w) = words.next() {
                    let assignment = match w {
                        "-c" => words.next().unwrap_or_default(),
                        w => w
                            .strip_prefix("-c")
                            .or_else(|| w.strip_prefix("--"))
                            .unwrap_or_default(),
                    };
                    if let Some((k, v)) = assignment.split_once('=') {
                        pairs.push((k.replace('-', "_"), v.to_string()));
                    }
                }
            }
            k => pairs.push((k.to_string(), value.clone())),
        }
    }
    for (name, value) in pairs {
        if let Err(e) = settings.set_startup(&name, &value) {
            tracing::debug!(%name, %value, error = %e, "ignoring a startup parameter");
        }
    }
}

fn timed_out() -> SqlError {
    SqlError::new(
        codes::QUERY_CANCELED,
        "canceling statement due to statement timeout",
    )
}

fn canceled() -> SqlError {
    SqlError::new(
        codes::QUERY_CANCELED,
        "canceling statement due to user request",
    )
}

fn user_error(e: SqlError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&e)))
}

fn error_info(e: &SqlError) -> ErrorInfo {
    let mut info = ErrorInfo::new("ERROR".to_string(), e.code.to_string(), e.message.clone());
    info.detail = e.detail.clone();
    info.hint = e.hint.clone();
    info.position = e.position.map(|p| p.to_string());
    info
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_string(),
        code.to_string(),
        message,
    )))
}

/// The RowDescription type OID of a result column (untyped NULLs print as text).
fn result_oid(ty: SqlType) -> u32 {
    match ty {
        SqlType::Unknown => SqlType::Text.oid(),
        other => other.oid(),
    }
}

fn row_description(columns: &[Column], format: &Format) -> RowDescription {
    RowDescription::new(
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                // an array column carries its elements' modifier, as in PostgreSQL
                let type_modifier = match c.ty.element().unwrap_or(c.ty) {
                    SqlType::Varchar(Some(n)) | SqlType::Char(n) => n as i32 + 4,
                    SqlType::Decimal(Some((p, s))) => ((i32::from(p) << 16) | i32::from(s)) + 4,
                    _ => -1,
                };
                FieldDescription::new(
                    c.name.clone(),
                    0,
                    0,
                    result_oid(c.ty),
                    c.ty.type_len(),
                    type_modifier,
                    format_of(format, i).value(),
                )
            })
            .collect(),
    )
}

/// The format of column `i`; a format list of the wrong length counts as text
/// (never an out-of-bounds panic on client data).
fn format_of(format: &Format, i: usize) -> FieldFormat {
    match format {
        Format::Individual(codes) => codes
            .get(i)
            .map(|c| FieldFormat::from(*c))
            .unwrap_or(FieldFormat::Text),
        other => other.format_for(i),
    }
}

/// Decodes a portal's parameters with the statement's parameter types.
fn decode_params(prepared: &Prepared, portal: &Portal<StmtRef>) -> SqlResult<Vec<Value>> {
    let expected = prepared.param_types.len();
    if portal.parameters.len() != expected {
        return Err(SqlError::new(
            "08P01",
            format!(
                "bind message supplies {} parameters, but prepared statement requires {expected}",
                portal.parameters.len()
            ),
        ));
    }
    portal
        .parameters
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let Some(bytes) = p else {
                return Ok(Value::Null);
            };
            let ty = match prepared.param_types[i] {
                SqlType::Unknown => SqlType::Text,
                t => t,
            };
            match format_of(&portal.parameter_format, i) {
                FieldFormat::Binary => {
                    if matches!(ty, SqlType::Text | SqlType::Varchar(_) | SqlType::Char(_)) {
                        frontend::check_text(bytes)?;
                    }
                    Value::from_binary(bytes, ty)
                }
                FieldFormat::Text => Value::from_text(frontend::check_text(bytes)?, ty),
            }
        })
        .collect()
}

impl Conn {
    /// Runs `fut` unless a cancel request for this connection arrives
    /// first, the client hangs up, or the session's `statement_timeout`
    /// passes: then the error to report (57014) instead.
    async fn cancellable<T>(
        &self,
        timeout: Option<std::time::Duration>,
        fut: impl Future<Output = T>,
    ) -> Result<T, SqlError> {
        let deadline = async {
            match timeout {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let Some((handle, _)) = self.cancel.get() else {
            return tokio::select! {
                r = fut => Ok(r),
                () = self.hung_up() => Err(canceled()),
                () = deadline => Err(timed_out()),
            };
        };
        let rx = handle.start_query().await;
        tokio::select! {
            r = fut => Ok(r),
            Ok(()) = rx => Err(canceled()),
            () = self.hung_up() => Err(canceled()),
            () = deadline => Err(timed_out()),
        }
    }

    /// Resolves when the client has closed its end of the connection (or it
    /// broke); never while it is open, nor once it sent more bytes (they
    /// wait for the protocol's reader, and hide a later hang-up).
    async fn hung_up(&self) {
        let Some(peer) = &self.peer else {
            return std::future::pending().await;
        };
        let mut byte = [0u8; 1];
        match peer.peek(&mut byte).await {
            Ok(0) | Err(_) => {
                tracing::debug!("SQL client hung up during a statement: cancelling it");
            }
            Ok(_) => std::future::pending().await,
        }
    }

    /// Runs a `COPY … TO STDOUT`: its query's rows stream to the client as
    /// CopyData, then CopyDone and `COPY n`. A failure (which aborts an open
    /// block, as any failed statement) is returned for the caller to send.
    async fn copy_out<C>(
        &self,
        client: &mut C,
        state: &mut ConnState,
        spec: CopySpec,
    ) -> PgWireResult<Result<(), SqlError>>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut spec = spec;
        if let Err(e) = default_copy_columns(state.session().map_err(user_error)?, &mut spec).await
        {
            return Ok(Err(e));
        }
        let sql = copy_out::copy_out_query(&spec);
        let mut sink = copy_out::CopyOutSink::new(&mut *client, copy_out::CopyEncoding::new(spec));
        let session = state.session().map_err(user_error)?;
        let timeout = session.statement_timeout();
        let mut results = match self
            .cancellable(timeout, session.simple_query_to(&sql, Some(&mut sink)))
            .await
        {
            Ok(r) => r,
            Err(e) => vec![Err(e)],
        };
        let pending = sink.into_pending();
        let result = match results.pop() {
            Some(Ok(output)) if output.streamed && results.is_empty() => Ok(output),
            Some(Ok(_)) | None => Err(SqlError::new(
                codes::FEATURE_NOT_SUPPORTED,
                "COPY (query) TO STDOUT takes a single query that returns rows",
            )),
            Some(Err(e)) => Err(e),
        };
        match result {
            Ok(output) => {
                let columns = output.columns.unwrap_or_default();
                pending.finish(client, &columns).await?;
                let n = output.tag.rsplit(' ').next().unwrap_or("0");
                client
                    .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        format!("COPY {n}"),
                    )))
                    .await?;
            }
            Err(e) => {
                if state.status() == PgTxnStatus::Transaction {
                    state.abort_block().await;
                }
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// Sends ParameterStatus for each reported parameter a statement changed
    /// (SET application_name, SET TIME ZONE, …), as PostgreSQL does.
    async fn report_parameters<C>(&self, client: &mut C, state: &mut ConnState) -> PgWireResult<()>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(session) = state.session.as_ref() else {
            return Ok(());
        };
        let generation = session.settings().generation();
        if generation == state.reported_generation {
            return Ok(());
        }
        let now = session.settings().reported();
        state.reported_generation = generation;
        for (name, value) in &now {
            if !state.reported.iter().any(|(n, v)| n == name && v == value) {
                client
                    .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                        name.to_string(),
                        value.clone(),
                    )))
                    .await?;
            }
        }
        state.reported = now;
        Ok(())
    }

    async fn sync_status<C: ClientInfo>(&self, client: &mut C, state: &ConnState) -> PgTxnStatus {
        let status = state.status();
        client.set_transaction_status(status);
        status
    }
}

#[async_trait]
impl StartupHandler for Conn {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let PgWireFrontendMessage::Startup(startup) = message else {
            return Err(fatal(
                "08P01",
                "unexpected message during startup (no password is needed)".to_string(),
            ));
        };
        protocol_negotiation(client, &startup).await?;
        save_startup_parameters_to_metadata(client, &startup);
        let user = client
            .metadata()
            .get(METADATA_USER)
            .filter(|u| !u.is_empty())
            .cloned()
            .unwrap_or_else(|| "root".to_string());
        let database = client
            .metadata()
            .get(METADATA_DATABASE)
            .filter(|d| !d.is_empty())
            .cloned()
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        let node = &self.shared.node;
        let mut txn = node.db.txn("connect");
        let exists = tokio::time::timeout(
            CONNECT_CHECK_TIMEOUT,
            node.catalog.database_id(&mut txn, &database),
        )
        .await;
        let _ = txn.rollback().await;
        match exists {
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => {
                return Err(fatal(
                    codes::INVALID_CATALOG_NAME,
                    format!("database \"{database}\" does not exist"),
                ));
            }
            // The ranges holding the catalog have no quorum: the session
            // still opens (statements that need those ranges fail with
            // their own error; `SELECT 1` works), as the check cannot be
            // made now.
            Err(_) => {
                tracing::warn!(%database, "cannot check that the database exists (catalog unavailable); connecting anyway");
            }
            Ok(Err(e)) if e.code == tardigrade_sql::session::RANGE_UNAVAILABLE => {
                tracing::warn!(%database, error = %e, "cannot check that the database exists; connecting anyway");
            }
            Ok(Err(e)) => return Err(fatal(e.code, e.message)),
        }
        let (pid, secret_key) = self.shared.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret_key.clone());
        let _ = self
            .cancel
            .set(self.shared.cancels.register(pid, secret_key.clone()));
        let session = node.session(&user, &database);
        apply_startup_parameters(session.settings(), client.metadata());
        let mut parameters = vec![
            ("server_version", SERVER_VERSION.to_string()),
            ("server_encoding", "UTF8".to_string()),
            ("integer_datetimes", "on".to_string()),
            ("is_superuser", "on".to_string()),
            ("session_authorization", user.clone()),
        ];
        parameters.extend(session.settings().reported());
        {
            let mut state = self.state.lock().await;
            state.reported_generation = session.settings().generation();
            state.session = Some(session);
        }

        client
            .feed(PgWireBackendMessage::Authentication(Authentication::Ok))
            .await?;
        for (name, value) in parameters {
            client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    name.to_string(),
                    value,
                )))
                .await?;
        }
        client
            .feed(PgWireBackendMessage::BackendKeyData(BackendKeyData::new(
                pid, secret_key,
            )))
            .await?;
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                PgTxnStatus::Idle,
            )))
            .await?;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        Ok(())
    }
}

#[async_trait]
impl CancelHandler for Conn {
    async fn on_cancel_request(&self, request: CancelRequest) {
        self.shared
            .cancels
            .cancel(request.pid, &request.secret_key)
            .await;
    }
}

/// Sends one statement's result in the simple protocol.
async fn send_simple_result<C>(client: &mut C, output: QueryOutput) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if let Some(columns) = &output.columns {
        let text = Format::UnifiedText;
        client
            .feed(PgWireBackendMessage::RowDescription(row_description(
                columns, &text,
            )))
            .await?;
        match encode_rows(columns, output.rows.iter().map(|r| r.as_slice()), &text) {
            Ok(rows) => {
                for row in rows {
                    client.feed(PgWireBackendMessage::DataRow(row)).await?;
                }
            }
            Err(e) => {
                client
                    .feed(PgWireBackendMessage::ErrorResponse(error_info(&e).into()))
                    .await?;
                return Ok(());
            }
        }
    } else if output.tag.is_empty() {
        client
            .feed(PgWireBackendMessage::EmptyQueryResponse(
                EmptyQueryResponse::new(),
            ))
            .await?;
        return Ok(());
    }
    client
        .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
            output.tag,
        )))
        .await?;
    Ok(())
}

#[async_trait]
impl SimpleQueryHandler for Conn {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sql = query.query;
        let mut state = self.state.lock().await;
        if sql.chars().all(|c| c == ';' || c.is_whitespace()) {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
        } else if copy::looks_like_copy(&sql) {
            let parsed = match state.check_aborted(&sql) {
                Some(Err(e)) => Err(e),
                _ => copy::parse_copy(&sql),
            };
            let started = match parsed {
                Ok(spec) if spec.to => self
                    .copy_out(client, &mut state, spec)
                    .await?
                    .map(|()| None),
                Ok(spec) => start_copy(&mut state, spec).await.map(Some),
                Err(e) => {
                    state.abort_block().await;
                    Err(e)
                }
            };
            match started {
                Ok(None) => {}
                Ok(Some(columns)) => {
                    send_copy_in(client, columns).await?;
                    client.set_state(PgWireConnectionState::CopyInProgress(false));
                    return Ok(());
                }
                Err(e) => {
                    client
                        .feed(PgWireBackendMessage::ErrorResponse(error_info(&e).into()))
                        .await?;
                }
            }
        } else {
            // A single query's rows stream to the client as it runs.
            let mut sink = WireSink::new(&mut *client, DataRows::new(Format::UnifiedText, true));
            let results = match state.check_aborted(&sql) {
                Some(r) => vec![r],
                None => {
                    let session = state.session().map_err(user_error)?;
                    let timeout = session.statement_timeout();
                    match self
                        .cancellable(timeout, session.simple_query_to(&sql, Some(&mut sink)))
                        .await
                    {
                        Ok(r) => r,
                        Err(e) => {
                            state.abort_block().await;
                            vec![Err(e)]
                        }
                    }
                }
            };
            let mut pending = Some(sink.into_pending());
            if results.iter().any(|r| r.is_err()) && state.status() == PgTxnStatus::Transaction {
                // PostgreSQL: any error inside a block aborts it.
                state.abort_block().await;
            }
            if results.is_empty() {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
            }
            for result in results {
                match result {
                    Ok(output) if output.streamed => {
                        if let (Some(rows), Some(columns)) = (pending.take(), &output.columns) {
                            rows.finish(client, columns).await?;
                        }
                        client
                            .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                                output.tag,
                            )))
                            .await?;
                    }
                    Ok(output) => send_simple_result(client, output).await?,
                    Err(e) => {
                        client
                            .feed(PgWireBackendMessage::ErrorResponse(error_info(&e).into()))
                            .await?;
                    }
                }
            }
        }
        self.report_parameters(client, &mut state).await?;
        let status = self.sync_status(client, &state).await;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await?;
        Ok(())
    }

    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // on_query does everything.
        Ok(Vec::new())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Conn {
    type Statement = StmtRef;
    type QueryParser = NoopStatementParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(NoopStatementParser)
    }

    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message
            .name
            .clone()
            .unwrap_or_else(|| DEFAULT_NAME.to_owned());
        let sql = message.query;
        if sql.chars().all(|c| c == ';' || c.is_whitespace()) {
            client.portal_store().put_empty_statement(&name);
        } else {
            let kind = if copy::looks_like_copy(&sql) {
                StmtKind::Copy(copy::parse_copy(&sql).map_err(user_error)?)
            } else {
                let types: Vec<SqlType> = message
                    .type_oids
                    .iter()
                    .map(|oid| SqlType::from_oid(*oid).unwrap_or(SqlType::Unknown))
                    .collect();
                let mut state = self.state.lock().await;
                StmtKind::Sql(Box::new(
                    state.prepare(&sql, &types).await.map_err(user_error)?,
                ))
            };
            let stmt = Arc::new(Stmt { sql, kind });
            client
                .portal_store()
                .put_statement(Arc::new(StoredStatement::new(name, stmt, Vec::new())));
        }
        // Buffered: replies to the extended protocol go out at Sync or
        // Flush, as PostgreSQL sends them (one write per round trip, not
        // one per message).
        client
            .feed(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
        match client.portal_store().get_statement(statement) {
            Some(Entry::Value(stmt)) => {
                let p = Portal::try_new(&message, stmt)?;
                client.portal_store().put_portal(Arc::new(p));
            }
            Some(Entry::Empty) => {
                if !message.parameters.is_empty() {
                    return Err(user_error(SqlError::new(
                        "08P01",
                        format!(
                            "bind message supplies {} parameters, but prepared statement \"{statement}\" requires 0",
                            message.parameters.len()
                        ),
                    )));
                }
                client.portal_store().put_empty_portal(portal);
            }
            None => {
                return Err(user_error(SqlError::new(
                    codes::INVALID_SQL_STATEMENT_NAME,
                    format!("prepared statement \"{statement}\" does not exist"),
                )));
            }
        }
        // Buffered until Sync or Flush, as ParseComplete.
        client
            .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let (params, columns, format) = match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => match client.portal_store().get_statement(name) {
                Some(Entry::Value(s)) => match &s.statement.kind {
                    StmtKind::Sql(p) => (
                        Some(p.param_types.iter().map(|t| t.oid()).collect::<Vec<_>>()),
                        p.columns.clone(),
                        Format::UnifiedText,
                    ),
                    StmtKind::Copy(_) => (Some(Vec::new()), None, Format::UnifiedText),
                },
                Some(Entry::Empty) => (Some(Vec::new()), None, Format::UnifiedText),
                None => {
                    return Err(user_error(SqlError::new(
                        codes::INVALID_SQL_STATEMENT_NAME,
                        format!("prepared statement \"{name}\" does not exist"),
                    )));
                }
            },
            TARGET_TYPE_BYTE_PORTAL => match client.portal_store().get_portal(name) {
                Some(Entry::Value(p)) => match &p.statement.statement.kind {
                    StmtKind::Sql(prepared) => (
                        None,
                        prepared.columns.clone(),
                        p.result_column_format.clone(),
                    ),
                    StmtKind::Copy(_) => (None, None, Format::UnifiedText),
                },
                Some(Entry::Empty) => (None, None, Format::UnifiedText),
                // A SQL cursor is a portal too (psycopg describes its named
                // cursors this way after DECLARE).
                None => match self
                    .state
                    .lock()
                    .await
                    .session
                    .as_ref()
                    .and_then(|s| s.cursor_columns(name))
                {
                    Some(columns) => (None, Some(columns), Format::UnifiedText),
                    None => {
                        return Err(user_error(SqlError::new(
                            codes::INVALID_CURSOR_NAME,
                            format!("portal \"{name}\" does not exist"),
                        )));
                    }
                },
            },
            other => {
                return Err(user_error(SqlError::new(
                    "08P01",
                    format!("invalid DESCRIBE message subtype {other}"),
                )));
            }
        };
        if let Some(params) = params {
            client
                .feed(PgWireBackendMessage::ParameterDescription(
                    ParameterDescription::new(params),
                ))
                .await?;
        }
        match columns {
            Some(columns) => {
                client
                    .feed(PgWireBackendMessage::RowDescription(row_description(
                        &columns, &format,
                    )))
                    .await?
            }
            None => {
                client
                    .feed(PgWireBackendMessage::NoData(NoData::new()))
                    .await?
            }
        }
        Ok(())
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let max_rows = usize::try_from(message.max_rows).unwrap_or(0);
        let portal = match client.portal_store().get_portal(name) {
            Some(Entry::Value(p)) => p,
            Some(Entry::Empty) => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
                return Ok(());
            }
            None => {
                return Err(user_error(SqlError::new(
                    codes::INVALID_CURSOR_NAME,
                    format!("portal \"{name}\" does not exist"),
                )));
            }
        };
        let initial = matches!(*portal.state.lock().await, PortalExecutionState::Initial);
        if initial {
            let stmt = portal.statement.statement.clone();
            let mut state = self.state.lock().await;
            let prepared = match &stmt.kind {
                StmtKind::Copy(spec) if spec.to => {
                    if let Some(Err(e)) = state.check_aborted(&stmt.sql) {
                        return Err(user_error(e));
                    }
                    let result = self.copy_out(client, &mut state, spec.clone()).await?;
                    self.sync_status(client, &state).await;
                    return result.map_err(user_error);
                }
                StmtKind::Copy(spec) => {
                    if let Some(Err(e)) = state.check_aborted(&stmt.sql) {
                        return Err(user_error(e));
                    }
                    let columns = start_copy(&mut state, spec.clone())
                        .await
                        .map_err(user_error)?;
                    client.set_state(PgWireConnectionState::CopyInProgress(true));
                    send_copy_in(client, columns).await?;
                    return Ok(());
                }
                StmtKind::Sql(p) => p,
            };
            // Executed to completion (no row limit), a query's rows stream to
            // the client as it runs; with a limit, the portal keeps them.
            let mut sink = WireSink::new(
                &mut *client,
                DataRows::new(portal.result_column_format.clone(), false),
            );
            let result = match state.check_aborted(&stmt.sql) {
                Some(r) => r,
                None => match decode_params(prepared, &portal) {
                    Err(e) => Err(e),
                    Ok(params) => {
                        let session = state.session().map_err(user_error)?;
                        let timeout = session.statement_timeout();
                        let sink: Option<&mut dyn tardigrade_sql::RowSink> =
                            (max_rows == 0).then_some(&mut sink);
                        match self
                            .cancellable(timeout, session.execute_to(prepared, &params, sink))
                            .await
                        {
                            Ok(r) => r,
                            Err(e) => {
                                state.abort_block().await;
                                Err(e)
                            }
                        }
                    }
                },
            };
            let pending = sink.into_pending();
            if result.is_err() && state.status() == PgTxnStatus::Transaction {
                state.abort_block().await;
            }
            self.sync_status(client, &state).await;
            let output = match result {
                Ok(output) => output,
                Err(e) => {
                    // As in PostgreSQL, a failed portal is gone: executing it
                    // again must not run the statement (and resend rows) again.
                    client.portal_store().rm_portal(name);
                    return Err(user_error(e));
                }
            };
            if output.streamed {
                if let Some(columns) = &output.columns {
                    pending.finish(client, columns).await?;
                }
                // The portal is done: executing it again returns no rows.
                let mut done = QueryResponse::new(Arc::new(Vec::new()), futures::stream::empty());
                done.set_command_tag(&output.tag);
                portal.start(done).await;
                client
                    .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        output.tag,
                    )))
                    .await?;
                return Ok(());
            }
            let Some(columns) = &output.columns else {
                if output.tag.is_empty() {
                    client
                        .feed(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await?;
                } else {
                    client
                        .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                            output.tag,
                        )))
                        .await?;
                }
                return Ok(());
            };
            let rows = encode_rows(
                columns,
                output.rows.iter().map(|r| r.as_slice()),
                &portal.result_column_format,
            )
            .map_err(user_error)?;
            let mut response = QueryResponse::new(
                Arc::new(Vec::new()),
                futures::stream::iter(rows.into_iter().map(Ok)),
            );
            response.set_command_tag(&output.tag);
            portal.start(response).await;
        }
        let fetched = portal.fetch(max_rows).await?;
        let mut response = fetched.response;
        let tag = response.command_tag().to_string();
        while let Some(row) = response.data_rows().next().await {
            client.feed(PgWireBackendMessage::DataRow(row?)).await?;
        }
        if fetched.suspended {
            client
                .feed(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()))
                .await?;
        } else {
            client
                .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                    tag,
                )))
                .await?;
        }
        Ok(())
    }

    async fn on_sync<C>(&self, client: &mut C, _message: PgSync) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        client.portal_store().rm_portal(DEFAULT_NAME);
        let mut state = self.state.lock().await;
        self.report_parameters(client, &mut state).await?;
        let status = self.sync_status(client, &state).await;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await?;
        Ok(())
    }

    async fn do_query<C>(
        &self,
        _client: &mut C,
        _portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // on_execute does everything.
        Ok(Response::EmptyQuery)
    }
}

/// The extended-protocol handlers above parse statements themselves (through the
/// session); pgwire's parser hook is never used.
pub struct NoopStatementParser;

#[async_trait]
impl pgwire::api::stmt::QueryParser for NoopStatementParser {
    type Statement = StmtRef;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        _sql: &str,
        _types: &[Option<pgwire::api::Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        Ok(None)
    }

    fn get_parameter_types(&self, _stmt: &Self::Statement) -> PgWireResult<Vec<pgwire::api::Type>> {
        Ok(Vec::new())
    }

    fn get_result_schema(
        &self,
        _stmt: &Self::Statement,
        _column_format: Option<&Format>,
    ) -> PgWireResult<Vec<pgwire::api::results::FieldInfo>> {
        Ok(Vec::new())
    }
}

/// CopyInResponse: the column count, all in text or all in binary.
async fn send_copy_in<C>(client: &mut C, (columns, binary): (usize, bool)) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let columns = i16::try_from(columns).unwrap_or(i16::MAX);
    let format = i8::from(binary);
    client
        .send(PgWireBackendMessage::CopyInResponse(CopyInResponse::new(
            format,
            columns,
            vec![i16::from(format); columns.max(0) as usize],
        )))
        .await?;
    Ok(())
}

/// Starts a COPY FROM STDIN: resolves the columns, prepares the batch INSERT,
/// opens a transaction when none is open. Returns the column count and
/// whether the data is binary.
async fn start_copy(state: &mut ConnState, mut spec: CopySpec) -> SqlResult<(usize, bool)> {
    if state.session()?.settings().read_only() {
        return Err(tardigrade_sql::settings::read_only_error("COPY FROM"));
    }
    default_copy_columns(state.session()?, &mut spec).await?;
    let select = if spec.columns.is_empty() {
        format!("SELECT * FROM {}", spec.table)
    } else {
        format!("SELECT {} FROM {}", spec.columns.join(", "), spec.table)
    };
    let described = state.prepare(&select, &[]).await?;
    let columns = described.columns.clone().unwrap_or_default();
    if columns.is_empty() {
        return Err(SqlError::new(
            codes::UNDEFINED_COLUMN,
            format!("table {} has no columns to copy into", spec.table),
        ));
    }
    let names: Vec<String> = if spec.columns.is_empty() {
        columns.iter().map(|c| quote_ident(&c.name)).collect()
    } else {
        spec.columns.clone()
    };
    let insert_sql_prefix = format!("INSERT INTO {} ({}) VALUES ", spec.table, names.join(", "));
    let own_txn = !state.in_block();
    if own_txn {
        for r in state.session()?.simple_query("BEGIN").await {
            r?;
        }
    }
    state.copy = Some(CopyIn {
        parser: RowParser::new(spec),
        columns,
        insert_sql_prefix,
        batch_insert: None,
        rows: Vec::new(),
        copied: 0,
        own_txn,
        error: None,
    });
    Ok(state
        .copy
        .as_ref()
        .map(|c| (c.columns.len(), c.parser.is_binary()))
        .unwrap_or((0, false)))
}

/// A COPY of a table without a column list copies every column but the
/// stored generated ones (as PostgreSQL does, both ways): when the table
/// has any, `spec` gets the others as its column list.
async fn default_copy_columns(session: &mut Session, spec: &mut CopySpec) -> SqlResult<()> {
    if !spec.columns.is_empty() || spec.query.is_some() {
        return Ok(());
    }
    let sql = format!(
        "SELECT attname, attgenerated FROM pg_catalog.pg_attribute \
         WHERE attrelid = '{}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        spec.table.replace('\'', "''")
    );
    let Some(result) = session.simple_query(&sql).await.pop() else {
        return Ok(());
    };
    let rows = result?.rows;
    let generated = |r: &Vec<Value>| matches!(r.get(1), Some(Value::Text(g)) if !g.is_empty());
    if !rows.iter().any(generated) {
        return Ok(());
    }
    spec.columns = rows
        .iter()
        .filter(|r| !generated(r))
        .filter_map(|r| match r.first() {
            Some(Value::Text(name)) => Some(quote_ident(name)),
            _ => None,
        })
        .collect();
    Ok(())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn batch_rows(columns: usize) -> usize {
    (60_000 / columns.max(1)).clamp(1, COPY_BATCH_ROWS)
}

fn insert_sql(prefix: &str, columns: usize, rows: usize) -> String {
    let mut sql = String::with_capacity(prefix.len() + rows * columns * 6);
    sql.push_str(prefix);
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            sql.push('$');
            sql.push_str(&n.to_string());
        }
        sql.push(')');
    }
    sql
}

/// Inserts the buffered rows (all of them when `all`, else only full batches).
async fn flush_copy(session: &mut Session, copy: &mut CopyIn, all: bool) -> SqlResult<()> {
    let ncols = copy.columns.len();
    let batch = batch_rows(ncols);
    while copy.rows.len() >= batch || (all && !copy.rows.is_empty()) {
        let n = copy.rows.len().min(batch);
        let types: Vec<SqlType> = (0..n)
            .flat_map(|_| copy.columns.iter().map(|c| c.ty))
            .collect();
        let mut params = Vec::with_capacity(n * ncols);
        for row in copy.rows.drain(..n) {
            if row.len() != ncols {
                return Err(SqlError::new(
                    "22P04",
                    format!(
                        "row {} has {} fields, expected {ncols}",
                        copy.copied + 1,
                        row.len()
                    ),
                ));
            }
            for (field, column) in row.iter().zip(&copy.columns) {
                params.push(match field {
                    None => Value::Null,
                    Some(CopyField::Text(text)) => Value::from_text(text, column.ty)?,
                    Some(CopyField::Binary(bytes)) => {
                        if column.ty.is_string() {
                            frontend::check_text(bytes)?;
                        }
                        Value::from_binary(bytes, column.ty)?
                    }
                });
            }
            copy.copied += 1;
        }
        if n == batch {
            if copy.batch_insert.is_none() {
                let sql = insert_sql(&copy.insert_sql_prefix, ncols, n);
                copy.batch_insert = Some(session.prepare(&sql, &types).await?);
            }
            if let Some(insert) = &copy.batch_insert {
                session.execute(insert, &params).await?;
            }
        } else {
            let sql = insert_sql(&copy.insert_sql_prefix, ncols, n);
            let insert = session.prepare(&sql, &types).await?;
            session.execute(&insert, &params).await?;
        }
    }
    Ok(())
}

impl ConnState {
    /// Ends a failed COPY: rolls back its own transaction, or aborts the block.
    async fn fail_copy(&mut self, copy: CopyIn) {
        if copy.own_txn {
            if let Some(session) = self.session.as_mut() {
                let _ = session.simple_query("ROLLBACK").await;
            }
        } else {
            self.abort_block().await;
        }
    }
}

#[async_trait]
impl CopyHandler for Conn {
    async fn on_copy_data<C>(&self, _client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut state = self.state.lock().await;
        let ConnState { session, copy, .. } = &mut *state;
        let (Some(session), Some(copy)) = (session.as_mut(), copy.as_mut()) else {
            return Ok(());
        };
        if copy.error.is_some() {
            return Ok(());
        }
        let mut result = copy.parser.feed(&data.data, &mut copy.rows);
        if result.is_ok() {
            result = flush_copy(session, copy, false).await;
        }
        if let Err(e) = result {
            copy.error = Some(e);
            copy.rows.clear();
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut state = self.state.lock().await;
        let Some(mut copy) = state.copy.take() else {
            return Ok(());
        };
        let mut result = match copy.error.take() {
            Some(e) => Err(e),
            None => copy.parser.finish(&mut copy.rows),
        };
        if result.is_ok() {
            match state.session() {
                Ok(session) => {
                    result = flush_copy(session, &mut copy, true).await;
                    if result.is_ok() && copy.own_txn {
                        for r in session.simple_query("COMMIT").await {
                            if let Err(e) = r {
                                result = Err(e);
                            }
                        }
                    }
                }
                Err(e) => result = Err(e),
            }
        }
        match result {
            Ok(()) => {
                self.sync_status(client, &state).await;
                client
                    .send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        format!("COPY {}", copy.copied),
                    )))
                    .await?;
                Ok(())
            }
            Err(e) => {
                if !(copy.own_txn && state.status() == PgTxnStatus::Idle) {
                    state.fail_copy(copy).await;
                }
                self.sync_status(client, &state).await;
                Err(user_error(e))
            }
        }
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut state = self.state.lock().await;
        if let Some(copy) = state.copy.take() {
            state.fail_copy(copy).await;
        }
        self.sync_status(client, &state).await;
        user_error(SqlError::new(
            codes::QUERY_CANCELED,
            format!("COPY from stdin failed: {}", fail.message),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_numbers_parameters() {
        assert_eq!(
            insert_sql("INSERT INTO t (a, b) VALUES ", 2, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(batch_rows(1), COPY_BATCH_ROWS);
        assert!(batch_rows(1000) * 1000 <= 65_535);
    }

    #[test]
    fn block_enders() {
        assert!(ends_block(" COMMIT"));
        assert!(ends_block("rollback;"));
        assert!(ends_block("END"));
        assert!(!ends_block("select 1"));
        assert!(!ends_block("committed"));
    }

    #[test]
    fn bad_format_lists_do_not_panic() {
        let f = Format::Individual(vec![1]);
        assert_eq!(format_of(&f, 0), FieldFormat::Binary);
        assert_eq!(format_of(&f, 5), FieldFormat::Text);
    }
}
