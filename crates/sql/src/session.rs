//! Client sessions: the transaction state machine, prepared statements and the
//! server-side retry of implicit transactions.
//!
//! A [`SqlNode`] is the per-node SQL server state (KV handle, catalog cache); every
//! client connection gets a [`Session`]. The wire front end calls
//! [`Session::prepare`] and [`Session::execute`] (the simple protocol goes through
//! [`Session::simple_query`], which does both per statement).
//!
//! Transactions follow PostgreSQL's states (idle, in block, failed) plus
//! CockroachDB's client-directed retry protocol: `SAVEPOINT cockroach_restart`,
//! `ROLLBACK TO SAVEPOINT cockroach_restart` restarts the KV transaction inside the
//! block, `RELEASE SAVEPOINT cockroach_restart` commits it. Other savepoints
//! nest as in PostgreSQL: `ROLLBACK TO SAVEPOINT x` undoes the writes made
//! since `x` (the KV layer ignores their sequence numbers) and brings a
//! failed block back, unless the error doomed the transaction (a retryable
//! conflict: then only a retry helps). A statement outside a
//! block runs in its own transaction, which the server retries itself on a retryable
//! error, since nothing has reached the client yet. CREATE INDEX and ADD PRIMARY
//! KEY outside a block run as online schema changes ([`crate::schemachange`]),
//! in transactions of their own.
//!
//! The session is where a transaction's end is known, so it starts the
//! clearing of what the transaction dropped (DROP, TRUNCATE) once it
//! committed, and forgets it on any other end ([`crate::gc`]).
//!
//! `AS OF SYSTEM TIME` ([`crate::asof`]): a query carrying the clause runs
//! in an implicit transaction fixed at its time (inside a block, only if
//! the block reads at that very time: 0A000 otherwise); `BEGIN … AS OF
//! SYSTEM TIME` opens a block fixed at it, and `SET TRANSACTION AS OF
//! SYSTEM TIME` fixes the open block's transaction before its first read
//! (25000 after). Such transactions are read-only.

use std::collections::HashMap;
use std::sync::Arc;

use sqlparser::ast::Statement;

use crate::cursor;
use crate::cursor::Cursor;
use crate::parse::{AsOf, Ours, Stmt};
use crate::settings::Settings;
use tardigrade_hlc::Timestamp;
use tardigrade_kv::{Savepoint, Txn};
use tardigrade_kvpb::TxnId;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};

pub use crate::error::{RANGE_UNAVAILABLE, kv_error};
use crate::exec::RowSink;
pub use crate::node::{Column, QueryOutput, SqlNode};
use crate::parse;

/// How many times an implicit transaction is retried on a retryable error before the
/// error is returned to the client.
const IMPLICIT_RETRIES: usize = 50;

impl SqlNode {
    pub fn session(self: &Arc<Self>, user: &str, database: &str) -> Session {
        Session {
            node: self.clone(),
            user: user.to_string(),
            database: database.to_string(),
            state: TxnState::Idle,
            settings: Settings::default(),
            cursors: HashMap::new(),
            sql_prepared: HashMap::new(),
            block_as_of: None,
        }
    }
}

/// A parsed statement with the types of its parameters and of its result columns.
pub struct Prepared {
    pub sql: String,
    pub statement: Option<Stmt>,
    pub param_types: Vec<SqlType>,
    /// `None` when the statement returns no rows.
    pub columns: Option<Vec<Column>>,
    /// The plan of the last execution, reused while the tables are unchanged.
    pub plan: crate::exec::PlanCache,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("sql", &self.sql)
            .field("param_types", &self.param_types)
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

/// The ReadyForQuery transaction status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionStatus {
    /// `I`
    Idle,
    /// `T`
    InBlock,
    /// `E`
    Failed,
}

/// The block's savepoints, oldest first (names may repeat: the newest of a
/// name is the one ROLLBACK TO and RELEASE mean), each with how many drops
/// the transaction had scheduled for clearing then ([`PendingClears`]: a
/// DROP rolled back must not clear its table at commit).
///
/// [`PendingClears`]: crate::node::PendingClears
type Savepoints = Vec<(String, Savepoint, usize)>;

enum TxnState {
    Idle,
    /// Inside BEGIN … COMMIT.
    Open {
        txn: Box<Txn>,
        /// `SAVEPOINT cockroach_restart` was issued.
        restart_savepoint: bool,
        savepoints: Savepoints,
    },
    /// RELEASE SAVEPOINT cockroach_restart committed; waiting for COMMIT.
    CommitWait,
    /// An error happened in the block; only ROLLBACK, ROLLBACK TO SAVEPOINT
    /// cockroach_restart when the savepoint exists, or ROLLBACK TO one of the
    /// block's savepoints (when the error left the transaction usable) is
    /// accepted.
    Failed {
        restart_savepoint: bool,
        /// Kept when a savepoint may bring the block back: the error was not
        /// one that dooms the transaction (a retry, a cancellation).
        txn: Option<Box<Txn>>,
        savepoints: Savepoints,
    },
}

/// One client connection's state.
pub struct Session {
    node: Arc<SqlNode>,
    user: String,
    database: String,
    state: TxnState,
    /// Run-time parameters (SET); a block's changes end with it.
    settings: Settings,
    /// Open SQL cursors, by name.
    cursors: HashMap<String, Cursor>,
    /// Statements prepared with SQL's PREPARE, by name.
    sql_prepared: HashMap<String, Arc<Prepared>>,
    /// The open block reads AS OF SYSTEM TIME this time: a restart
    /// (`ROLLBACK TO SAVEPOINT cockroach_restart`) reads there too.
    block_as_of: Option<Timestamp>,
}

/// What a statement does to the transaction state machine.
enum Control {
    /// BEGIN or START TRANSACTION: the command tag, and the access mode
    /// given (`Some(true)`: READ ONLY).
    Begin(&'static str, Option<bool>),
    Commit,
    Rollback,
    Savepoint(String),
    RollbackToSavepoint(String),
    ReleaseSavepoint(String),
}

impl Session {
    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// The session's run-time parameters.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `statement_timeout`, when one is set: the front end cancels a
    /// statement that runs longer (57014).
    pub fn statement_timeout(&self) -> Option<std::time::Duration> {
        self.settings.statement_timeout()
    }

    pub fn node(&self) -> &Arc<SqlNode> {
        &self.node
    }

    pub fn transaction_status(&self) -> TransactionStatus {
        match self.state {
            TxnState::Idle => TransactionStatus::Idle,
            TxnState::Open { .. } | TxnState::CommitWait => TransactionStatus::InBlock,
            TxnState::Failed { .. } => TransactionStatus::Failed,
        }
    }

    /// Runs a simple-protocol query string (possibly several statements). Stops at
    /// the first error, which is the last element.
    pub async fn simple_query(&mut self, sql: &str) -> Vec<SqlResult<QueryOutput>> {
        self.simple_query_to(sql, None).await
    }

    /// [`Session::simple_query`], with the rows of a query string holding a
    /// single statement going to `sink` (see [`Session::execute_to`]); the
    /// results of several statements are collected, since each statement's
    /// rows must reach the client before the next one's.
    pub async fn simple_query_to(
        &mut self,
        sql: &str,
        mut sink: Option<&mut dyn RowSink>,
    ) -> Vec<SqlResult<QueryOutput>> {
        let statements = match parse::parse(sql) {
            Ok(s) => s,
            Err(e) => return vec![Err(e)],
        };
        if statements.len() != 1 {
            sink = None;
        }
        let mut out = Vec::with_capacity(statements.len());
        for statement in statements {
            // The simple protocol describes results from the output itself.
            let prepared = Prepared {
                sql: String::new(),
                statement: Some(statement),
                param_types: Vec::new(),
                columns: None,
                plan: Default::default(),
            };
            let result = self.execute_to(&prepared, &[], reborrow(&mut sink)).await;
            let failed = result.is_err();
            out.push(result);
            if failed {
                return out;
            }
        }
        out
    }

    /// Parses and describes one statement for the extended protocol. `param_types`
    /// are the types the client declared (missing or `Unknown` ones are inferred).
    pub async fn prepare(&mut self, sql: &str, param_types: &[SqlType]) -> SqlResult<Prepared> {
        let mut statements = parse::parse(sql)?;
        if statements.len() > 1 {
            return Err(SqlError::syntax(
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        match statements.pop() {
            Some(statement) => self.prepare_statement(sql, statement, param_types).await,
            None => Ok(Prepared {
                sql: sql.to_string(),
                statement: None,
                param_types: Vec::new(),
                columns: None,
                plan: Default::default(),
            }),
        }
    }

    async fn prepare_statement(
        &mut self,
        sql: &str,
        statement: Stmt,
        param_types: &[SqlType],
    ) -> SqlResult<Prepared> {
        if let Stmt::Ours(Ours::AsOf {
            statement: q,
            as_of,
        }) = &statement
            && matches!(**q, Statement::Query(_) | Statement::Explain { .. })
        {
            let (param_types, columns) = self.describe_as_of(q, as_of, param_types).await?;
            return Ok(Prepared {
                sql: sql.to_string(),
                statement: Some(statement),
                param_types,
                columns,
                plan: Default::default(),
            });
        }
        let mut sql_statement = match &statement {
            Stmt::Sql(s) if control_of(&statement).is_none() => Some(&**s),
            _ => None,
        };
        // DECLARE takes its query's parameters and returns no rows; FETCH
        // returns its cursor's columns.
        let declared;
        let mut fixed_columns = None;
        if sql_statement.is_some() || matches!(statement, Stmt::Ours(Ours::Move(_))) {
            match cursor::op_of(&statement)? {
                None => {}
                Some(cursor::CursorOp::Declare { query, .. }) => {
                    declared = Statement::Query(Box::new(query.clone()));
                    sql_statement = Some(&declared);
                    fixed_columns = Some(None);
                }
                Some(cursor::CursorOp::Fetch {
                    name,
                    only_move: false,
                    ..
                }) => {
                    sql_statement = None;
                    fixed_columns = Some(self.cursor_columns(&name));
                }
                Some(_) => sql_statement = None,
            }
        }
        let (param_types, columns) = if let Some(statement) = sql_statement {
            let node = self.node.clone();
            let database = self.database.clone();
            match &mut self.state {
                // Inside a block, through the block's transaction: it sees
                // the block's own DDL, and a separate transaction would wait
                // for the block's descriptor writes (intents) to resolve,
                // which they never do while the block waits for this.
                TxnState::Open { txn, .. } => {
                    crate::plan::describe(&node, txn, &database, statement, param_types).await?
                }
                _ => {
                    let mut txn = node.db.txn("describe");
                    let described =
                        crate::plan::describe(&node, &mut txn, &database, statement, param_types)
                            .await;
                    let _ = txn.rollback().await;
                    described?
                }
            }
        } else {
            // Transaction control and our statements take no parameters;
            // their rows are described when they run.
            (Vec::new(), None)
        };
        let columns = fixed_columns.unwrap_or(columns);
        Ok(Prepared {
            sql: sql.to_string(),
            statement: Some(statement),
            param_types,
            columns,
            plan: Default::default(),
        })
    }

    /// Describes a query carrying AS OF SYSTEM TIME with the schema of
    /// that time: in the block's transaction when it reads at that time
    /// (any other time is 0A000, as running it would be), else in a
    /// transaction of its own fixed there.
    async fn describe_as_of(
        &mut self,
        query: &Statement,
        as_of: &AsOf,
        param_types: &[SqlType],
    ) -> SqlResult<(Vec<SqlType>, Option<Vec<Column>>)> {
        let ts = crate::asof::timestamp(as_of, self.node.db.now())?;
        let node = self.node.clone();
        let database = self.database.clone();
        if let TxnState::Open { txn, .. } = &mut self.state {
            if txn.fixed_timestamp() != Some(ts) {
                return Err(crate::asof::inconsistent(txn.read_timestamp(), ts));
            }
            return crate::plan::describe(&node, txn, &database, query, param_types).await;
        }
        let mut txn = node.db.txn("describe");
        fix_timestamp(&mut txn, ts)?;
        let described = crate::plan::describe(&node, &mut txn, &database, query, param_types).await;
        let _ = txn.rollback().await;
        described
    }

    /// Executes a prepared statement with bound parameters.
    pub async fn execute(
        &mut self,
        prepared: &Prepared,
        params: &[Value],
    ) -> SqlResult<QueryOutput> {
        self.execute_to(prepared, params, None).await
    }

    /// Executes a prepared statement; a query's rows go to `sink` as they
    /// are produced (the output is marked `streamed`) rather than being
    /// collected. Once the sink has flushed rows to the client, a retryable
    /// failure is returned to the client instead of being retried.
    pub async fn execute_to(
        &mut self,
        prepared: &Prepared,
        params: &[Value],
        mut sink: Option<&mut dyn RowSink>,
    ) -> SqlResult<QueryOutput> {
        let Some(statement) = &prepared.statement else {
            return Ok(QueryOutput::command(""));
        };
        if let Stmt::Ours(Ours::AsOf { statement, as_of }) = statement {
            return Box::pin(self.execute_as_of(statement, as_of, prepared, params, sink)).await;
        }
        if let Some(control) = control_of(statement) {
            return self.control(control).await;
        }
        if !matches!(self.state, TxnState::Failed { .. } | TxnState::CommitWait) {
            if let Some(op) = cursor::op_of(statement)? {
                return Box::pin(self.cursor_op(op, prepared, params)).await;
            }
            if let Some(s) = statement.sql()
                && let Some(out) = Box::pin(self.sql_prepare_op(s, reborrow(&mut sink))).await
            {
                return out;
            }
        }
        match &mut self.state {
            TxnState::Failed { .. } => Err(SqlError::new(
                codes::IN_FAILED_SQL_TRANSACTION,
                "current transaction is aborted, commands ignored until end of transaction block",
            )),
            TxnState::CommitWait => Err(SqlError::new(
                codes::INVALID_TRANSACTION_STATE,
                "current transaction is committed, commands ignored until end of transaction block",
            )),
            TxnState::Open { txn, .. } => {
                let result = run_in_txn(
                    &self.node,
                    txn,
                    (&self.database, &self.user, &self.settings),
                    prepared,
                    params,
                    reborrow(&mut sink),
                )
                .await;
                if let Err(e) = &result {
                    self.fail_block(recoverable(e));
                }
                result
            }
            TxnState::Idle => {
                let result = self.run_implicit(prepared, params, sink, None).await;
                // its transaction ended: so do its advisory locks
                self.node
                    .advisory
                    .release(self.settings.session_id(), false, true);
                result
            }
        }
    }

    /// A statement that carried AS OF SYSTEM TIME ([`crate::asof`]): BEGIN
    /// or START TRANSACTION, SET TRANSACTION, or a query.
    async fn execute_as_of(
        &mut self,
        statement: &Statement,
        as_of: &AsOf,
        prepared: &Prepared,
        params: &[Value],
        sink: Option<&mut dyn RowSink>,
    ) -> SqlResult<QueryOutput> {
        let inner = Prepared {
            sql: prepared.sql.clone(),
            statement: Some(Stmt::Sql(Box::new(statement.clone()))),
            param_types: prepared.param_types.clone(),
            columns: prepared.columns.clone(),
            plan: Default::default(),
        };
        let Some(inner_statement) = &inner.statement else {
            return Err(SqlError::internal("AS OF SYSTEM TIME without a statement"));
        };
        if let Some(Control::Begin(tag, mode)) = control_of(inner_statement) {
            return self.begin_as_of(tag, mode, as_of).await;
        }
        if let Statement::Set(sqlparser::ast::Set::SetTransaction {
            modes,
            session: false,
            ..
        }) = statement
        {
            return self.set_transaction_as_of(modes, as_of, &inner).await;
        }
        match &mut self.state {
            // The block's error.
            TxnState::Failed { .. } | TxnState::CommitWait => {
                Box::pin(self.execute_to(&inner, params, sink)).await
            }
            TxnState::Open { txn, .. } => {
                let fixed = txn.fixed_timestamp();
                let read = txn.read_timestamp();
                let checked = crate::asof::timestamp(as_of, self.node.db.now()).and_then(|ts| {
                    if fixed == Some(ts) {
                        Ok(())
                    } else {
                        Err(crate::asof::inconsistent(read, ts))
                    }
                });
                if let Err(e) = checked {
                    self.fail_block(recoverable(&e));
                    return Err(e);
                }
                Box::pin(self.execute_to(&inner, params, sink)).await
            }
            TxnState::Idle => {
                let ts = crate::asof::timestamp(as_of, self.node.db.now())?;
                self.settings.set_historical(true);
                let result = self.run_implicit(&inner, params, sink, Some(ts)).await;
                self.settings.set_historical(false);
                self.node
                    .advisory
                    .release(self.settings.session_id(), false, true);
                result
            }
        }
    }

    /// `BEGIN AS OF SYSTEM TIME …`: a read-only block whose transaction
    /// reads at that time.
    async fn begin_as_of(
        &mut self,
        tag: &'static str,
        read_only: Option<bool>,
        as_of: &AsOf,
    ) -> SqlResult<QueryOutput> {
        if !matches!(self.state, TxnState::Idle) {
            // A plain BEGIN in a block only warns; this one would not do
            // what it says.
            let e = SqlError::new(
                codes::ACTIVE_SQL_TRANSACTION,
                "there is already a transaction in progress",
            );
            self.fail_block(true);
            return Err(e);
        }
        if read_only == Some(false) {
            return Err(crate::asof::read_write());
        }
        let ts = crate::asof::timestamp(as_of, self.node.db.now())?;
        let out = self.control(Control::Begin(tag, Some(true))).await?;
        if let TxnState::Open { txn, .. } = &mut self.state {
            fix_timestamp(txn, ts)?;
            self.settings.set_historical(true);
            self.block_as_of = Some(ts);
        }
        Ok(out)
    }

    /// `SET TRANSACTION AS OF SYSTEM TIME …` (with other modes or not):
    /// fixes the block's transaction at that time, before it read or wrote
    /// anything (25000 after). Outside a block, like the other modes of SET
    /// TRANSACTION, it sets nothing (PostgreSQL warns); its time is still
    /// checked.
    async fn set_transaction_as_of(
        &mut self,
        modes: &[sqlparser::ast::TransactionMode],
        as_of: &AsOf,
        inner: &Prepared,
    ) -> SqlResult<QueryOutput> {
        let read_write = modes.iter().any(|m| {
            matches!(
                m,
                sqlparser::ast::TransactionMode::AccessMode(
                    sqlparser::ast::TransactionAccessMode::ReadWrite
                )
            )
        });
        let now = self.node.db.now();
        match &mut self.state {
            TxnState::Idle => {
                if read_write {
                    return Err(crate::asof::read_write());
                }
                crate::asof::timestamp(as_of, now)?;
                Ok(QueryOutput::command("SET"))
            }
            TxnState::Failed { .. } | TxnState::CommitWait => {
                Box::pin(self.execute_to(inner, &[], None)).await
            }
            TxnState::Open { txn, .. } => {
                let fixed = if read_write {
                    Err(crate::asof::read_write())
                } else {
                    crate::asof::timestamp(as_of, now)
                        .and_then(|ts| fix_timestamp(txn, ts).map(|()| ts))
                };
                let ts = match fixed {
                    Ok(ts) => ts,
                    Err(e) => {
                        self.fail_block(recoverable(&e));
                        return Err(e);
                    }
                };
                self.settings.set_historical(true);
                self.block_as_of = Some(ts);
                Box::pin(self.execute_to(inner, &[], None)).await
            }
        }
    }

    /// DECLARE (runs the query in the block's transaction, or in one of its
    /// own for WITH HOLD outside a block), FETCH, MOVE, CLOSE.
    async fn cursor_op(
        &mut self,
        op: cursor::CursorOp<'_>,
        prepared: &Prepared,
        params: &[Value],
    ) -> SqlResult<QueryOutput> {
        match op {
            cursor::CursorOp::Declare { name, query, hold } => {
                let in_block = matches!(self.state, TxnState::Open { .. });
                if !in_block && !hold {
                    return Err(SqlError::new(
                        codes::NO_ACTIVE_SQL_TRANSACTION,
                        "DECLARE CURSOR can only be used in transaction blocks",
                    ));
                }
                if self.cursors.contains_key(&name) {
                    let e = cursor::duplicate_cursor(&name);
                    if in_block {
                        self.fail_block(true);
                    }
                    return Err(e);
                }
                let inner = Prepared {
                    sql: String::new(),
                    statement: Some(Stmt::Sql(Box::new(Statement::Query(Box::new(
                        query.clone(),
                    ))))),
                    param_types: prepared.param_types.clone(),
                    columns: None,
                    plan: Default::default(),
                };
                let out = self.execute_to(&inner, params, None).await?;
                let columns = out.columns.unwrap_or_default();
                self.cursors
                    .insert(name, cursor::Cursor::new(columns, out.rows, hold, in_block));
                Ok(QueryOutput::command("DECLARE CURSOR"))
            }
            cursor::CursorOp::Fetch {
                name,
                motion,
                only_move,
            } => {
                let Some(c) = self.cursors.get_mut(&name) else {
                    if matches!(self.state, TxnState::Open { .. }) {
                        self.fail_block(true);
                    }
                    return Err(cursor::no_such_cursor(&name));
                };
                let rows = c.fetch(motion);
                Ok(cursor::fetch_output(c, rows, only_move))
            }
            cursor::CursorOp::Close(None) => {
                self.cursors.clear();
                Ok(QueryOutput::command("CLOSE CURSOR ALL"))
            }
            cursor::CursorOp::Close(Some(name)) => {
                if self.cursors.remove(&name).is_none() {
                    if matches!(self.state, TxnState::Open { .. }) {
                        self.fail_block(true);
                    }
                    return Err(cursor::no_such_cursor(&name));
                }
                Ok(QueryOutput::command("CLOSE CURSOR"))
            }
        }
    }

    /// SQL's PREPARE, EXECUTE and DEALLOCATE; `None` for other statements.
    async fn sql_prepare_op(
        &mut self,
        statement: &Statement,
        sink: Option<&mut dyn RowSink>,
    ) -> Option<SqlResult<QueryOutput>> {
        Some(match statement {
            Statement::Prepare {
                name,
                data_types,
                statement,
            } => {
                let name = parse::normalize(name);
                if self.sql_prepared.contains_key(&name) {
                    return Some(Err(SqlError::new(
                        "42P05",
                        format!("prepared statement \"{name}\" already exists"),
                    )));
                }
                let types = match data_types
                    .iter()
                    .map(crate::plan::bind::sql_type_of)
                    .collect::<SqlResult<Vec<_>>>()
                {
                    Ok(t) => t,
                    Err(e) => return Some(Err(e)),
                };
                let sql = statement.to_string();
                let inner = match parse::parse(&sql) {
                    Ok(mut v) if v.len() == 1 => v.remove(0),
                    Ok(_) => return Some(Err(SqlError::syntax("PREPARE takes one statement"))),
                    Err(e) => return Some(Err(e)),
                };
                match self.prepare_statement(&sql, inner, &types).await {
                    Ok(p) => {
                        self.sql_prepared.insert(name, Arc::new(p));
                        Ok(QueryOutput::command("PREPARE"))
                    }
                    Err(e) => Err(e),
                }
            }
            Statement::Execute {
                name: Some(name),
                parameters,
                immediate: false,
                into,
                using,
                ..
            } if into.is_empty() && using.is_empty() => {
                let name = name.to_string().trim_matches('"').to_string();
                let name = if name.chars().any(|c| c.is_ascii_uppercase()) && !name.is_empty() {
                    name.to_lowercase()
                } else {
                    name
                };
                let Some(stored) = self.sql_prepared.get(&name).cloned() else {
                    return Some(Err(SqlError::new(
                        codes::INVALID_SQL_STATEMENT_NAME,
                        format!("prepared statement \"{name}\" does not exist"),
                    )));
                };
                if parameters.len() != stored.param_types.len() {
                    return Some(Err(SqlError::new(
                        codes::SYNTAX_ERROR,
                        format!("wrong number of parameters for prepared statement \"{name}\"",),
                    )
                    .with_detail(format!(
                        "Expected {} parameters but got {}.",
                        stored.param_types.len(),
                        parameters.len()
                    ))));
                }
                // The arguments are expressions: evaluate them, cast to the
                // parameters' types, with a SELECT.
                let params = if parameters.is_empty() {
                    Vec::new()
                } else {
                    let list: Vec<String> = parameters
                        .iter()
                        .zip(&stored.param_types)
                        .map(|(e, t)| match t {
                            SqlType::Unknown => format!("({e})"),
                            t => format!("CAST(({e}) AS {t})"),
                        })
                        .collect();
                    let select = format!("SELECT {}", list.join(", "));
                    let out = match parse::parse(&select) {
                        Ok(mut v) if v.len() == 1 => {
                            let p = Prepared {
                                sql: select,
                                statement: Some(v.remove(0)),
                                param_types: Vec::new(),
                                columns: None,
                                plan: Default::default(),
                            };
                            self.execute_to(&p, &[], None).await
                        }
                        Ok(_) => Err(SqlError::syntax("invalid EXECUTE parameters")),
                        Err(e) => Err(e),
                    };
                    match out {
                        Ok(mut o) if o.rows.len() == 1 => o.rows.remove(0),
                        Ok(_) => return Some(Err(SqlError::internal("EXECUTE parameters"))),
                        Err(e) => return Some(Err(e)),
                    }
                };
                self.execute_to(&stored, &params, sink).await
            }
            Statement::Discard {
                object_type: sqlparser::ast::DiscardObject::ALL,
            } => {
                if !matches!(self.state, TxnState::Idle) {
                    return Some(Err(SqlError::new(
                        codes::ACTIVE_SQL_TRANSACTION,
                        "DISCARD ALL cannot run inside a transaction block",
                    )));
                }
                // TODO(issue 13): also the wire protocol's prepared
                // statements, as PostgreSQL's DISCARD ALL does.
                self.cursors.clear();
                self.sql_prepared.clear();
                self.settings.reset_all();
                self.node
                    .advisory
                    .release(self.settings.session_id(), true, false);
                Ok(QueryOutput::command("DISCARD ALL"))
            }
            // Statements prepared through the wire protocol are replaced
            // when a name is prepared again and freed with the connection.
            // TODO(issue 13): DEALLOCATE of a protocol-level statement's
            // name freeing it (one namespace, as in PostgreSQL).
            Statement::Deallocate { name, .. } => {
                if name.value.eq_ignore_ascii_case("all") && name.quote_style.is_none() {
                    self.sql_prepared.clear();
                    Ok(QueryOutput::command("DEALLOCATE ALL"))
                } else {
                    self.sql_prepared.remove(&parse::normalize(name));
                    Ok(QueryOutput::command("DEALLOCATE"))
                }
            }
            _ => return None,
        })
    }

    /// The columns of cursor `name`, for a Describe of it as a portal.
    pub fn cursor_columns(&self, name: &str) -> Option<Vec<Column>> {
        self.cursors.get(name).map(|c| c.columns.clone())
    }

    /// Runs a statement in its own transaction, retrying retryable
    /// failures; `as_of`: the transaction reads at that fixed time (AS OF
    /// SYSTEM TIME).
    async fn run_implicit(
        &mut self,
        prepared: &Prepared,
        params: &[Value],
        mut sink: Option<&mut dyn RowSink>,
        as_of: Option<Timestamp>,
    ) -> SqlResult<QueryOutput> {
        let Some(statement) = &prepared.statement else {
            return Ok(QueryOutput::command(""));
        };
        check_read_only(&self.settings, statement)?;
        if let Stmt::Sql(statement) = statement
            && crate::ddl::runs_online(statement)
        {
            // Its own transactions, retried inside.
            return crate::schemachange::run(&self.node, &self.database, statement).await;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut txn = self.node.db.txn("sql");
            if let Some(ts) = as_of {
                fix_timestamp(&mut txn, ts)?;
            }
            let id = txn.id();
            let result = run_in_txn(
                &self.node,
                &mut txn,
                (&self.database, &self.user, &self.settings),
                prepared,
                params,
                reborrow(&mut sink),
            )
            .await;
            let result = match result {
                Ok(output) => match txn.commit().await {
                    Ok(()) => Ok(output),
                    Err(e) => Err(kv_error(e)),
                },
                Err(e) => {
                    let _ = txn.rollback().await;
                    Err(e)
                }
            };
            self.after_txn(id, result.is_ok());
            match result {
                Err(e)
                    if e.code == codes::SERIALIZATION_FAILURE
                        && attempt < IMPLICIT_RETRIES
                        && !sink.as_ref().is_some_and(|s| s.flushed()) =>
                {
                    tracing::debug!(attempt, error = %e, "retrying implicit transaction");
                    if let Some(s) = reborrow(&mut sink) {
                        s.discard();
                    }
                    continue;
                }
                other => {
                    if other.is_ok()
                        && let Some(database) = use_database(statement)
                    {
                        self.database = database;
                    }
                    return other;
                }
            }
        }
    }

    /// The block failed. With savepoints and an error that leaves the
    /// transaction usable (`recoverable`), the KV transaction is kept for a
    /// ROLLBACK TO SAVEPOINT; otherwise it is rolled back now and the block
    /// stays failed until the client ends it.
    fn fail_block(&mut self, recoverable: bool) {
        let state = std::mem::replace(&mut self.state, TxnState::Idle);
        self.state = match state {
            TxnState::Open {
                txn,
                restart_savepoint,
                savepoints,
            } if recoverable && !savepoints.is_empty() => TxnState::Failed {
                restart_savepoint,
                txn: Some(txn),
                savepoints,
            },
            TxnState::Open {
                txn,
                restart_savepoint,
                savepoints,
            } => {
                self.abandon(txn);
                TxnState::Failed {
                    restart_savepoint,
                    txn: None,
                    savepoints,
                }
            }
            other => other,
        };
    }

    /// Rolls back a transaction of this session in the background.
    fn abandon(&self, txn: Box<Txn>) {
        self.node.pending_clears.discard(txn.id());
        tokio::spawn(async move {
            let _ = (*txn).rollback().await;
        });
    }

    /// A transaction of this session ended: if it committed, the data it
    /// dropped is cleared in the background ([`crate::gc`]); otherwise that
    /// data stays as it is and the list is forgotten.
    fn after_txn(&self, id: TxnId, committed: bool) {
        if committed {
            crate::gc::start_after_commit(&self.node, id);
        } else {
            self.node.pending_clears.discard(id);
        }
    }

    /// Runs a transaction-control statement, and begins or ends the
    /// block's settings with the block.
    async fn control(&mut self, control: Control) -> SqlResult<QueryOutput> {
        let was_idle = matches!(self.state, TxnState::Idle);
        let commit = matches!(control, Control::Commit);
        let read_only = match control {
            Control::Begin(_, mode) => mode,
            _ => None,
        };
        let result = self.control_inner(control).await;
        if !matches!(self.state, TxnState::Idle) {
            if was_idle {
                self.settings.begin_block();
            }
            // BEGIN inside a block (a warning in PostgreSQL) still sets
            // the mode.
            if let Some(on) = read_only {
                let value = if on { "on" } else { "off" };
                self.settings
                    .set("transaction_read_only", Some(value), false)?;
            }
        }
        match (was_idle, matches!(self.state, TxnState::Idle)) {
            (true, false) => {}
            (false, true) => {
                self.block_as_of = None;
                let committed = commit && result.is_ok();
                self.settings.end_block(committed);
                self.node
                    .advisory
                    .release(self.settings.session_id(), false, true);
                // Cursors WITHOUT HOLD end with their block; WITH HOLD ones
                // outlive its commit, not its rollback.
                self.cursors
                    .retain(|_, c| c.hold && (committed || !c.in_open_block));
                for c in self.cursors.values_mut() {
                    c.in_open_block = false;
                }
            }
            _ => {}
        }
        result
    }

    async fn control_inner(&mut self, control: Control) -> SqlResult<QueryOutput> {
        let state = std::mem::replace(&mut self.state, TxnState::Idle);
        match (control, state) {
            (Control::Begin(tag, _), TxnState::Idle) => {
                self.state = TxnState::Open {
                    txn: Box::new(self.node.db.txn("sql")),
                    restart_savepoint: false,
                    savepoints: Vec::new(),
                };
                Ok(QueryOutput::command(tag))
            }
            (Control::Begin(tag, _), state) => {
                // PostgreSQL warns and stays in the block.
                self.state = state;
                Ok(QueryOutput::command(tag))
            }
            (Control::Commit, TxnState::Idle) => Ok(QueryOutput::command("COMMIT")),
            (Control::Commit, TxnState::Open { txn, .. }) => {
                let id = txn.id();
                let result = (*txn).commit().await;
                self.after_txn(id, result.is_ok());
                match result {
                    Ok(()) => Ok(QueryOutput::command("COMMIT")),
                    Err(e) => Err(kv_error(e)),
                }
            }
            (Control::Commit, TxnState::CommitWait) => Ok(QueryOutput::command("COMMIT")),
            (Control::Commit | Control::Rollback, TxnState::Failed { txn, .. }) => {
                if let Some(txn) = txn {
                    self.abandon(txn);
                }
                Ok(QueryOutput::command("ROLLBACK"))
            }
            (Control::Rollback, TxnState::Open { txn, .. }) => {
                self.after_txn(txn.id(), false);
                let _ = (*txn).rollback().await;
                Ok(QueryOutput::command("ROLLBACK"))
            }
            (Control::Rollback, _) => Ok(QueryOutput::command("ROLLBACK")),
            (
                Control::Savepoint(name),
                TxnState::Open {
                    txn, savepoints, ..
                },
            ) if is_restart(&name) => {
                self.state = TxnState::Open {
                    txn,
                    restart_savepoint: true,
                    savepoints,
                };
                Ok(QueryOutput::command("SAVEPOINT"))
            }
            (
                Control::RollbackToSavepoint(name),
                TxnState::Open {
                    txn,
                    restart_savepoint: true,
                    ..
                },
            ) if is_restart(&name) => {
                self.after_txn(txn.id(), false);
                let _ = (*txn).rollback().await;
                self.state = TxnState::Open {
                    txn: self.restarted_txn()?,
                    restart_savepoint: true,
                    savepoints: Vec::new(),
                };
                Ok(QueryOutput::command("ROLLBACK"))
            }
            (
                Control::RollbackToSavepoint(name),
                TxnState::Failed {
                    restart_savepoint: true,
                    txn,
                    ..
                },
            ) if is_restart(&name) => {
                if let Some(txn) = txn {
                    self.abandon(txn);
                }
                self.state = TxnState::Open {
                    txn: self.restarted_txn()?,
                    restart_savepoint: true,
                    savepoints: Vec::new(),
                };
                Ok(QueryOutput::command("ROLLBACK"))
            }
            (
                Control::ReleaseSavepoint(name),
                TxnState::Open {
                    txn,
                    restart_savepoint: true,
                    savepoints,
                },
            ) if is_restart(&name) => {
                let id = txn.id();
                let result = (*txn).commit().await;
                self.after_txn(id, result.is_ok());
                match result {
                    Ok(()) => {
                        self.state = TxnState::CommitWait;
                        Ok(QueryOutput::command("RELEASE"))
                    }
                    Err(e) => {
                        let e = kv_error(e);
                        self.state = TxnState::Failed {
                            restart_savepoint: true,
                            txn: None,
                            savepoints,
                        };
                        Err(e)
                    }
                }
            }
            (
                control @ (Control::Savepoint(_)
                | Control::RollbackToSavepoint(_)
                | Control::ReleaseSavepoint(_)),
                TxnState::Idle,
            ) => {
                let statement = match control {
                    Control::Savepoint(_) => "SAVEPOINT",
                    Control::RollbackToSavepoint(_) => "ROLLBACK TO SAVEPOINT",
                    _ => "RELEASE SAVEPOINT",
                };
                Err(SqlError::new(
                    codes::NO_ACTIVE_SQL_TRANSACTION,
                    format!("{statement} can only be used in transaction blocks"),
                ))
            }
            // General savepoints: a savepoint remembers the transaction's
            // sequence number; rolling back to it makes the KV layer ignore
            // every write since (`Txn::rollback_to_savepoint`).
            (
                Control::Savepoint(name),
                TxnState::Open {
                    txn,
                    restart_savepoint,
                    mut savepoints,
                },
            ) => {
                let scheduled = self.node.pending_clears.scheduled(txn.id());
                savepoints.push((name, txn.savepoint(), scheduled));
                self.state = TxnState::Open {
                    txn,
                    restart_savepoint,
                    savepoints,
                };
                Ok(QueryOutput::command("SAVEPOINT"))
            }
            (
                Control::RollbackToSavepoint(name),
                TxnState::Open {
                    txn,
                    restart_savepoint,
                    savepoints,
                }
                | TxnState::Failed {
                    txn: Some(txn),
                    restart_savepoint,
                    savepoints,
                },
            ) => {
                let (mut txn, restart_savepoint, mut savepoints, i) =
                    self.savepoint_named(&name, txn, restart_savepoint, savepoints)?;
                // The savepoint stays (it can be rolled back to again); the
                // later ones go.
                savepoints.truncate(i + 1);
                let (_, savepoint, scheduled) = savepoints[i];
                match txn.rollback_to_savepoint(savepoint) {
                    Ok(()) => {
                        self.node.pending_clears.forget_after(txn.id(), scheduled);
                        self.state = TxnState::Open {
                            txn,
                            restart_savepoint,
                            savepoints,
                        };
                        Ok(QueryOutput::command("ROLLBACK"))
                    }
                    Err(e) => {
                        self.abandon(txn);
                        self.state = TxnState::Failed {
                            restart_savepoint,
                            txn: None,
                            savepoints,
                        };
                        Err(kv_error(e))
                    }
                }
            }
            (
                Control::RollbackToSavepoint(name),
                TxnState::Failed {
                    restart_savepoint,
                    txn: None,
                    savepoints,
                },
            ) => {
                let known = savepoints.iter().any(|(n, ..)| *n == name);
                self.state = TxnState::Failed {
                    restart_savepoint,
                    txn: None,
                    savepoints,
                };
                if !known {
                    return Err(no_such_savepoint(&name));
                }
                // The error that failed the block doomed the transaction (a
                // retryable conflict): its writes are gone, only a new
                // attempt can continue.
                Err(SqlError::new(
                    codes::SERIALIZATION_FAILURE,
                    format!(
                        "restart transaction: cannot roll back to savepoint \"{name}\" after a \
                         retryable error; the transaction must be retried"
                    ),
                ))
            }
            (
                Control::ReleaseSavepoint(name),
                TxnState::Open {
                    txn,
                    restart_savepoint,
                    savepoints,
                },
            ) => {
                let (txn, restart_savepoint, mut savepoints, i) =
                    self.savepoint_named(&name, txn, restart_savepoint, savepoints)?;
                // Its writes stay part of the transaction.
                savepoints.truncate(i);
                self.state = TxnState::Open {
                    txn,
                    restart_savepoint,
                    savepoints,
                };
                Ok(QueryOutput::command("RELEASE"))
            }
            (
                Control::Savepoint(_) | Control::ReleaseSavepoint(_),
                state @ TxnState::Failed { .. },
            ) => {
                self.state = state;
                Err(SqlError::new(
                    codes::IN_FAILED_SQL_TRANSACTION,
                    "current transaction is aborted, commands ignored until end of transaction block",
                ))
            }
            (
                Control::Savepoint(_)
                | Control::RollbackToSavepoint(_)
                | Control::ReleaseSavepoint(_),
                TxnState::CommitWait,
            ) => {
                self.state = TxnState::CommitWait;
                Err(SqlError::new(
                    codes::INVALID_TRANSACTION_STATE,
                    "current transaction is committed, commands ignored until end of transaction block",
                ))
            }
        }
    }

    /// The block's transaction after a restart: a new one, at the block's
    /// AS OF SYSTEM TIME if it has one.
    fn restarted_txn(&self) -> SqlResult<Box<Txn>> {
        let mut txn = Box::new(self.node.db.txn("sql"));
        if let Some(ts) = self.block_as_of {
            fix_timestamp(&mut txn, ts)?;
        }
        Ok(txn)
    }

    /// The position of the block's newest savepoint named `name`, with the
    /// block's parts handed back; without one the block fails (3B001), as
    /// in PostgreSQL.
    fn savepoint_named(
        &mut self,
        name: &str,
        txn: Box<Txn>,
        restart_savepoint: bool,
        savepoints: Savepoints,
    ) -> SqlResult<(Box<Txn>, bool, Savepoints, usize)> {
        match savepoints.iter().rposition(|(n, ..)| n == name) {
            Some(i) => Ok((txn, restart_savepoint, savepoints, i)),
            None => {
                self.state = TxnState::Open {
                    txn,
                    restart_savepoint,
                    savepoints,
                };
                self.fail_block(true);
                Err(no_such_savepoint(name))
            }
        }
    }

    /// Ends the session: an open transaction is rolled back and its locks released.
    pub async fn terminate(&mut self) {
        if let TxnState::Open { txn, .. } | TxnState::Failed { txn: Some(txn), .. } =
            std::mem::replace(&mut self.state, TxnState::Idle)
        {
            self.after_txn(txn.id(), false);
            let _ = (*txn).rollback().await;
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.node
            .advisory
            .release(self.settings.session_id(), true, true);
        let (TxnState::Open { txn, .. } | TxnState::Failed { txn: Some(txn), .. }) =
            std::mem::replace(&mut self.state, TxnState::Idle)
        else {
            return;
        };
        self.node.pending_clears.discard(txn.id());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = (*txn).rollback().await;
            });
        }
    }
}

/// Fixes `txn` at `ts` (AS OF SYSTEM TIME); once it has read or written,
/// error 25000 as in CockroachDB.
fn fix_timestamp(txn: &mut Txn, ts: Timestamp) -> SqlResult<()> {
    txn.set_fixed_timestamp(ts).map_err(|e| match e.detail {
        tardigrade_kvpb::ErrorDetail::TransactionStatus { msg } => {
            SqlError::new(codes::INVALID_TRANSACTION_STATE, msg)
        }
        _ => kv_error(e),
    })
}

fn no_such_savepoint(name: &str) -> SqlError {
    SqlError::new(
        codes::INVALID_SAVEPOINT_SPECIFICATION,
        format!("savepoint \"{name}\" does not exist"),
    )
}

/// Whether a statement's error leaves the transaction usable, so that a
/// ROLLBACK TO SAVEPOINT can continue it: not a retryable conflict or an
/// aborted transaction (class 40), a cancellation (57), a lost connection
/// (08) or an internal error (XX).
fn recoverable(e: &SqlError) -> bool {
    !["40", "57", "08", "XX"]
        .iter()
        .any(|c| e.code.starts_with(c))
}

fn is_restart(name: &str) -> bool {
    name.eq_ignore_ascii_case("cockroach_restart")
}

fn control_of(statement: &Stmt) -> Option<Control> {
    Some(match statement.sql()? {
        Statement::StartTransaction { begin, modes, .. } => {
            let mut read_only = None;
            for m in modes {
                if let sqlparser::ast::TransactionMode::AccessMode(mode) = m {
                    read_only = Some(matches!(
                        mode,
                        sqlparser::ast::TransactionAccessMode::ReadOnly
                    ));
                }
            }
            Control::Begin(
                if *begin { "BEGIN" } else { "START TRANSACTION" },
                read_only,
            )
        }
        Statement::Commit { .. } => Control::Commit,
        Statement::Rollback {
            savepoint: Some(name),
            ..
        } => Control::RollbackToSavepoint(name.value.clone()),
        Statement::Rollback { .. } => Control::Rollback,
        Statement::Savepoint { name } => Control::Savepoint(name.value.clone()),
        Statement::ReleaseSavepoint { name } => Control::ReleaseSavepoint(name.value.clone()),
        _ => return None,
    })
}

/// `SET database = x` / `USE x` change the session's database.
fn use_database(statement: &Stmt) -> Option<String> {
    match statement.sql() {
        Some(Statement::Use(sqlparser::ast::Use::Object(name))) => Some(name.to_string()),
        _ => None,
    }
}

/// Error 25006 when the transaction is read-only and `statement` writes.
fn check_read_only(settings: &Settings, statement: &Stmt) -> SqlResult<()> {
    if !settings.read_only() {
        return Ok(());
    }
    let command = match statement {
        // SPLIT AT changes the table's ranges; CREATE STATISTICS is
        // ANALYZE, which PostgreSQL allows.
        Stmt::Ours(Ours::SplitAt { .. }) => Some("ALTER TABLE".to_string()),
        Stmt::Ours(Ours::AlterSequence { .. }) => Some("ALTER SEQUENCE".to_string()),
        Stmt::Ours(Ours::Comment { .. }) => Some("COMMENT".to_string()),
        Stmt::Ours(_) => None,
        Stmt::Sql(s) => write_command(s),
    };
    match command {
        Some(c) => Err(crate::settings::read_only_error(&c)),
        None => Ok(()),
    }
}

/// The command `statement` is, as PostgreSQL names it in error 25006, when
/// it writes; `None` when it only reads (queries, SHOW, SET, ANALYZE, plain
/// EXPLAIN). A write hidden in a function (`nextval`) is the executor's to
/// refuse.
fn write_command(statement: &Statement) -> Option<String> {
    use sqlparser::ast::{LockType, SetExpr};
    let command = match statement {
        Statement::Insert(_) => "INSERT",
        Statement::Update(_) => "UPDATE",
        Statement::Delete(_) => "DELETE",
        Statement::Query(q) => {
            let writes = |body: &SetExpr| {
                matches!(
                    body,
                    SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_)
                )
            };
            if let Some(lock) = q.locks.first() {
                return Some(match lock.lock_type {
                    LockType::Update => "SELECT FOR UPDATE".to_string(),
                    LockType::Share => "SELECT FOR SHARE".to_string(),
                });
            }
            let cte_writes = q
                .with
                .as_ref()
                .is_some_and(|w| w.cte_tables.iter().any(|c| writes(&c.query.body)));
            return (cte_writes || writes(&q.body)).then(|| "SELECT".to_string());
        }
        Statement::Explain {
            statement,
            analyze: true,
            ..
        } => return write_command(statement),
        Statement::CreateTable(_) => "CREATE TABLE",
        Statement::CreateIndex(_) => "CREATE INDEX",
        Statement::AlterTable(_) => "ALTER TABLE",
        Statement::AlterIndex { .. } => "ALTER INDEX",
        Statement::AlterView(_) => "ALTER VIEW",
        Statement::Truncate(_) => "TRUNCATE TABLE",
        Statement::CreateSequence { .. } => "CREATE SEQUENCE",
        Statement::CreateView(v) if v.materialized => "CREATE MATERIALIZED VIEW",
        Statement::CreateView(_) => "CREATE VIEW",
        Statement::CreateSchema { .. } => "CREATE SCHEMA",
        Statement::CreateDatabase { .. } => "CREATE DATABASE",
        Statement::Drop { object_type, .. } => {
            return Some(format!("DROP {}", object_type.to_string().to_uppercase()));
        }
        _ => return None,
    };
    Some(command.to_string())
}

/// The sink again, for one more call (a retry, the next statement).
fn reborrow<'b>(sink: &'b mut Option<&mut dyn RowSink>) -> Option<&'b mut dyn RowSink> {
    match sink {
        Some(s) => Some(&mut **s),
        None => None,
    }
}

async fn run_in_txn(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    (database, user, settings): (&str, &str, &Settings),
    prepared: &Prepared,
    params: &[Value],
    sink: Option<&mut dyn RowSink>,
) -> SqlResult<QueryOutput> {
    if let Some(statement) = &prepared.statement {
        check_read_only(settings, statement)?;
    }
    let statement = match &prepared.statement {
        None => return Ok(QueryOutput::command("")),
        Some(Stmt::Ours(ours)) => {
            return Box::pin(crate::ddl::execute_ours(node, txn, database, ours)).await;
        }
        Some(Stmt::Sql(s)) => s,
    };
    if !crate::exec::handles(statement) {
        // Boxed: DDL such as CREATE TABLE AS runs statements in turn.
        return match Box::pin(crate::ddl::execute(node, txn, database, statement)).await? {
            Some(out) => Ok(out),
            None => Err(crate::exec::unsupported_statement(statement)),
        };
    }
    crate::exec::execute_statement(
        node,
        txn,
        (database, user, settings),
        statement,
        params,
        &prepared.param_types,
        Some(&prepared.plan),
        sink,
    )
    .await
}
