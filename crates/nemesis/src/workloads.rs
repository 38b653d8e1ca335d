//! The Jepsen-style workloads, run through SQL.
//!
//! Each workload creates its tables, then its clients (each with its own
//! [`Session`], spread over the nodes) run operations until the deadline,
//! recording every invocation and completion in a history. After the faults
//! have healed, one final read records the end state, and the checker judges
//! the history. The workloads:
//!
//! - `bank`: transfers between 8 accounts of one table; reads of all
//!   accounts must sum to the initial total, with no negative balance.
//! - `bank-multitable`: the same with the accounts spread over 4 tables, read
//!   in one transaction.
//! - `register`: read, write and compare-and-set on single keys; each key's
//!   history must be linearizable.
//! - `set`: unique inserts; every acknowledged insert must be in the final
//!   read.
//! - `monotonic`: read-and-increment of one counter in a transaction; no
//!   client sees it go down, no increment is lost.
//! - `sequential`: a value written to one table and then another; no reader
//!   sees it in the second without the first.
//! - `g2`: two transactions per key, each inserting only when a predicate read
//!   finds the key in neither table; at most one may commit.
//!
//! Errors map to outcomes as [`crate::client::ErrorKind`] says: 40001 retries
//! the operation (a few times, within its time budget), an ambiguous error
//! during a commit is `info` (unknown), and any error of a read is a `fail`
//! (a read that did not return changes nothing).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::StdRng;
use tardigrade_testkit::linearizability::Checker as LinearizabilityChecker;
use tardigrade_testkit::{
    BankChecker, BankOp, BankRet, Completion, History, OpId, RegisterOp, RegisterRet,
};

use crate::checkers::{
    G2Op, G2Ret, MonotonicOp, MonotonicRet, SequentialOp, SequentialRet, SetOp, SetRet, Verdict,
    check_g2, check_monotonic, check_sequential, check_set,
};
use crate::client::{DbError, ErrorKind, Rows, Session, int};
use crate::stats::{Counts, Outcome, Stats};

/// A deliberate corruption of what a workload records, to show end to end
/// that its checker catches the anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Bug {
    /// Adds 1 to one account of one successful bank read.
    BankReadPlusOne,
    /// Makes one successful register read return a value never written.
    RegisterBadRead,
    /// Drops one acknowledged insert from the set's final read.
    SetLoseInsert,
    /// Makes one counter read lower than what its client saw before.
    MonotonicDecrease,
    /// Counts one key's row twice in the G2 final read.
    G2BothCommit,
    /// Reports one sequential read as seeing the second write only.
    SequentialReorder,
}

/// The workloads, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Bank,
    BankMultitable,
    Register,
    Set,
    Monotonic,
    Sequential,
    G2,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Kind::Bank => "bank",
            Kind::BankMultitable => "bank-multitable",
            Kind::Register => "register",
            Kind::Set => "set",
            Kind::Monotonic => "monotonic",
            Kind::Sequential => "sequential",
            Kind::G2 => "g2",
        };
        f.write_str(name)
    }
}

/// What every client of a run shares.
pub struct Ctx {
    pub stats: Arc<Stats>,
    /// Clients start no operation after this.
    pub deadline: Instant,
    /// Time budget of one operation, retries included.
    pub op_timeout: Duration,
    pub bug: Option<Bug>,
    /// Set once the bug has been injected (it is injected once).
    pub bug_injected: AtomicBool,
}

impl Ctx {
    /// Whether to inject `bug` now (true once, if it is the run's bug).
    fn inject(&self, bug: Bug) -> bool {
        self.bug == Some(bug) && !self.bug_injected.swap(true, Ordering::SeqCst)
    }
}

/// A history plus the run's throughput counters.
pub struct Recorder<O, R> {
    pub history: History<O, R>,
    stats: Arc<Stats>,
    /// This workload's number in `stats`.
    workload: usize,
}

impl<O: Clone, R: Clone> Recorder<O, R> {
    fn new(stats: Arc<Stats>, origin: Instant) -> Self {
        Recorder {
            history: History::with_origin(origin),
            stats,
            workload: 0,
        }
    }

    fn invoke(&self, process: usize, op: O) -> OpId {
        self.history.invoke(process, op)
    }

    /// Records the completion, counting it in the throughput unless it is
    /// the final read (`count: false`); returns how it ended.
    fn complete(&self, id: OpId, completion: Completion<R>, count: bool) -> Outcome {
        let outcome = match completion {
            Completion::Ok(_) => Outcome::Ok,
            Completion::Fail(_) => Outcome::Fail,
            Completion::Info(_) => Outcome::Unknown,
        };
        if count {
            self.stats.record(self.workload, outcome);
        }
        self.history.complete(id, completion);
        outcome
    }

    /// ok/fail/unknown counts of the history, the final read left out.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for op in self.history.operations() {
            if op.process == FINAL_READER {
                continue;
            }
            match op.completion {
                Completion::Ok(_) => c.ok += 1,
                Completion::Fail(_) => c.fail += 1,
                Completion::Info(_) => c.unknown += 1,
            }
        }
        c
    }
}

/// How a transaction attempt ended: `commit_sent` says whether the failing
/// statement could have committed something (an autocommit write or the
/// COMMIT), which makes an ambiguous error an unknown outcome.
#[derive(Debug)]
pub struct TxnError {
    pub error: DbError,
    pub commit_sent: bool,
}

/// An error before anything could have been committed.
fn before_commit(error: DbError) -> TxnError {
    TxnError {
        error,
        commit_sent: false,
    }
}

/// An error of a statement that could have committed.
fn at_commit(error: DbError) -> TxnError {
    TxnError {
        error,
        commit_sent: true,
    }
}

/// Attempts of one operation on 40001.
const MAX_ATTEMPTS: usize = 8;

/// Runs one transaction attempt after another while it fails with 40001, at
/// most [`MAX_ATTEMPTS`] times within the operation's time budget, and turns
/// the end into a completion.
async fn with_retries<T>(
    session: &mut Session,
    ctx: &Ctx,
    mut attempt: impl AsyncFnMut(&mut Session) -> Result<T, TxnError>,
) -> Completion<T> {
    let budget = Instant::now() + ctx.op_timeout;
    let mut tries = 0;
    loop {
        tries += 1;
        let e = match attempt(session).await {
            Ok(v) => return Completion::Ok(v),
            Err(e) => e,
        };
        // Leave any open transaction (harmless outside one).
        session.rollback().await;
        match e.error.kind() {
            ErrorKind::Retry if tries < MAX_ATTEMPTS && Instant::now() < budget => {
                let pause = 10 * tries as u64;
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            ErrorKind::Ambiguous if e.commit_sent => {
                return Completion::Info(e.error.to_string());
            }
            _ => return Completion::Fail(e.error.to_string()),
        }
    }
}

/// Runs `sql` until it succeeds or `timeout` passes (setup and final reads).
async fn until_ok(session: &mut Session, sql: &str, timeout: Duration) -> Result<Rows, DbError> {
    let deadline = Instant::now() + timeout;
    loop {
        match session.query(sql).await {
            Ok(rows) => return Ok(rows),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => {
                session.rollback().await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

/// The completion with its `ok` result mapped by `f`.
fn map_ok<T, R>(c: Completion<T>, f: impl FnOnce(T) -> R) -> Completion<R> {
    match c {
        Completion::Ok(v) => Completion::Ok(f(v)),
        Completion::Fail(e) => Completion::Fail(e),
        Completion::Info(e) => Completion::Info(e),
    }
}

/// A read's completion: one that did not return changed nothing, so an
/// unknown outcome is a failure.
fn as_read<T>(c: Completion<T>) -> Completion<T> {
    match c {
        Completion::Info(e) => Completion::Fail(e),
        c => c,
    }
}

/// The final read: `attempt` (with its 40001 retries) again and again until
/// it succeeds or `timeout` passes.
async fn final_until_ok<T>(
    session: &mut Session,
    ctx: &Ctx,
    timeout: Duration,
    mut attempt: impl AsyncFnMut(&mut Session) -> Result<T, TxnError>,
) -> Completion<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match with_retries(session, ctx, &mut attempt).await {
            Completion::Ok(v) => return Completion::Ok(v),
            Completion::Fail(e) | Completion::Info(e) if Instant::now() >= deadline => {
                return Completion::Fail(e);
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// Setup statements, each retried until it succeeds (all are idempotent).
async fn setup_statements(
    session: &mut Session,
    statements: &[String],
    timeout: Duration,
) -> Result<(), String> {
    for sql in statements {
        until_ok(session, sql, timeout)
            .await
            .map_err(|e| format!("setup `{sql}`: {e}"))?;
    }
    Ok(())
}

/// A workload: its tables, one operation, the final read and the check.
///
/// The harness runs on one thread (see `main`), so the futures need not be
/// `Send`.
#[allow(async_fn_in_trait)]
pub trait Workload {
    fn kind(&self) -> Kind;
    /// Creates and fills the tables (idempotent).
    async fn setup(&self, session: &mut Session, timeout: Duration) -> Result<(), String>;
    /// Runs and records one operation of client `process`.
    async fn step(
        &self,
        ctx: &Ctx,
        process: usize,
        session: &mut Session,
        rng: &mut StdRng,
    ) -> Outcome;
    /// Reads and records the end state, retrying up to `timeout`.
    async fn final_read(&self, ctx: &Ctx, session: &mut Session, timeout: Duration);
    fn check(&self) -> Verdict;
}

/// The process number the final read is recorded under.
pub const FINAL_READER: usize = usize::MAX / 2;

// ---------------------------------------------------------------------------
// Bank

/// Transfers between accounts spread over one or more tables.
pub struct Bank {
    kind: Kind,
    tables: Vec<String>,
    accounts: u64,
    initial_balance: i64,
    rec: Recorder<BankOp, BankRet>,
}

impl Bank {
    pub fn new(kind: Kind, tables: usize, stats: Arc<Stats>, origin: Instant) -> Self {
        let prefix = if tables == 1 { "bank" } else { "bank_t" };
        Bank {
            kind,
            tables: (0..tables)
                .map(|t| {
                    if tables == 1 {
                        prefix.to_string()
                    } else {
                        format!("{prefix}{t}")
                    }
                })
                .collect(),
            accounts: 8,
            initial_balance: 100,
            rec: Recorder::new(stats, origin),
        }
    }

    fn table(&self, account: u64) -> &str {
        &self.tables[(account % self.tables.len() as u64) as usize]
    }

    /// One transaction reading every account.
    fn read_sql(&self) -> String {
        let selects: Vec<String> = self
            .tables
            .iter()
            .map(|t| format!("SELECT id, balance FROM {t}"))
            .collect();
        if selects.len() == 1 {
            selects[0].clone()
        } else {
            format!("BEGIN; {}; COMMIT", selects.join("; "))
        }
    }

    async fn read(&self, session: &mut Session) -> Result<BTreeMap<u64, i64>, TxnError> {
        let rows = session
            .query(&self.read_sql())
            .await
            .map_err(before_commit)?;
        let mut balances = BTreeMap::new();
        for row in rows {
            let id = int(&row, 0).map_err(before_commit)?;
            balances.insert(id as u64, int(&row, 1).map_err(before_commit)?);
        }
        Ok(balances)
    }

    async fn transfer(
        &self,
        session: &mut Session,
        from: u64,
        to: u64,
        amount: i64,
    ) -> Result<bool, TxnError> {
        let (tf, tt) = (self.table(from), self.table(to));
        let read = if tf == tt {
            format!("BEGIN; SELECT id, balance FROM {tf} WHERE id IN ({from}, {to})")
        } else {
            format!(
                "BEGIN; SELECT id, balance FROM {tf} WHERE id = {from}; SELECT id, balance FROM {tt} WHERE id = {to}"
            )
        };
        let rows = session.query(&read).await.map_err(before_commit)?;
        let mut balance_from = None;
        for row in &rows {
            if int(row, 0).map_err(before_commit)? == from as i64 {
                balance_from = Some(int(row, 1).map_err(before_commit)?);
            }
        }
        if balance_from.is_none_or(|b| b < amount) {
            session.query("ROLLBACK").await.map_err(before_commit)?;
            return Ok(false);
        }
        let write = format!(
            "UPDATE {tf} SET balance = balance - {amount} WHERE id = {from}; UPDATE {tt} SET balance = balance + {amount} WHERE id = {to}; COMMIT"
        );
        session.query(&write).await.map_err(at_commit)?;
        Ok(true)
    }
}

impl Workload for Bank {
    fn kind(&self) -> Kind {
        self.kind
    }

    async fn setup(&self, session: &mut Session, timeout: Duration) -> Result<(), String> {
        let mut statements = Vec::new();
        for t in &self.tables {
            statements.push(format!(
                "CREATE TABLE IF NOT EXISTS {t} (id INT PRIMARY KEY, balance INT NOT NULL)"
            ));
        }
        for a in 0..self.accounts {
            statements.push(format!(
                "INSERT INTO {} VALUES ({a}, {}) ON CONFLICT (id) DO NOTHING",
                self.table(a),
                self.initial_balance
            ));
        }
        setup_statements(session, &statements, timeout).await
    }

    async fn step(
        &self,
        ctx: &Ctx,
        process: usize,
        session: &mut Session,
        rng: &mut StdRng,
    ) -> Outcome {
        if rng.random_bool(0.5) {
            let id = self.rec.invoke(process, BankOp::Read);
            let c = with_retries(session, ctx, async |s| self.read(s).await).await;
            let c = map_ok(as_read(c), |mut b| {
                if ctx.inject(Bug::BankReadPlusOne)
                    && let Some(v) = b.values_mut().next()
                {
                    *v += 1;
                }
                BankRet::Read(b)
            });
            self.rec.complete(id, c, true)
        } else {
            let from = rng.random_range(0..self.accounts);
            let to = (from + rng.random_range(1..self.accounts)) % self.accounts;
            let amount = rng.random_range(1..=5);
            let id = self
                .rec
                .invoke(process, BankOp::Transfer { from, to, amount });
            let c = with_retries(session, ctx, async |s| {
                self.transfer(s, from, to, amount).await
            })
            .await;
            let c = match c {
                Completion::Ok(false) => Completion::Fail("insufficient funds".into()),
                c => map_ok(c, |_| BankRet::Transfer),
            };
            self.rec.complete(id, c, true)
        }
    }

    async fn final_read(&self, ctx: &Ctx, session: &mut Session, timeout: Duration) {
        let id = self.rec.invoke(FINAL_READER, BankOp::Read);
        let c = final_until_ok(session, ctx, timeout, async |s| self.read(s).await).await;
        let c = map_ok(c, BankRet::Read);
        let _ = self.rec.complete(id, c, false);
    }

    fn check(&self) -> Verdict {
        let ops = self.rec.history.operations();
        let final_ok = ops.last().is_some_and(|o| o.result().is_some());
        let checker = BankChecker::new(self.accounts as i64 * self.initial_balance)
            .with_accounts(0..self.accounts);
        match checker.check(&ops) {
            Err(v) => Verdict::invalid(v.to_string().trim_end().to_string()),
            Ok(_) if !final_ok => Verdict::unknown("the final read did not succeed"),
            Ok(reads) => Verdict::valid(format!(
                "{reads} reads (final one included) all sum to {} with no negative balance",
                self.accounts as i64 * self.initial_balance
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// Register

/// Operations per key before the clients move on to fresh keys (keeps each
/// key's linearizability search small).
const OPS_PER_KEY: u64 = 120;
/// Keys in use at a time.
const ACTIVE_KEYS: u64 = 4;

/// Single-key reads, writes and compare-and-sets.
pub struct Register {
    rec: Recorder<RegisterOp, RegisterRet>,
    ops: AtomicU64,
}

impl Register {
    pub fn new(stats: Arc<Stats>, origin: Instant) -> Self {
        Register {
            rec: Recorder::new(stats, origin),
            ops: AtomicU64::new(0),
        }
    }

    async fn run(&self, session: &mut Session, op: &RegisterOp) -> Result<RegisterRet, TxnError> {
        match *op {
            RegisterOp::Read { key } => {
                let rows = session
                    .query(&format!("SELECT val FROM register WHERE id = {key}"))
                    .await
                    .map_err(before_commit)?;
                match rows.first() {
                    None => Ok(RegisterRet::Read(None)),
                    Some(row) => Ok(RegisterRet::Read(Some(
                        int(row, 0).map_err(before_commit)? as u64
                    ))),
                }
            }
            RegisterOp::Write { key, value } => {
                session
                    .execute(&format!("UPSERT INTO register VALUES ({key}, {value})"))
                    .await
                    .map_err(at_commit)?;
                Ok(RegisterRet::Write)
            }
            RegisterOp::Cas { key, expected, new } => {
                let Some(expected) = expected else {
                    return Err(before_commit(DbError::Sql {
                        code: "XX000".into(),
                        message: "cas from no value is not generated".into(),
                    }));
                };
                let n = session
                    .execute(&format!(
                        "UPDATE register SET val = {new} WHERE id = {key} AND val = {expected}"
                    ))
                    .await
                    .map_err(at_commit)?;
                Ok(RegisterRet::Cas(n == 1))
            }
        }
    }
}

impl Workload for Register {
    fn kind(&self) -> Kind {
        Kind::Register
    }

    async fn setup(&self, session: &mut Session, timeout: Duration) -> Result<(), String> {
        setup_statements(
            session,
            &["CREATE TABLE IF NOT EXISTS register (id INT PRIMARY KEY, val INT)".to_string()],
            timeout,
        )
        .await
    }

    async fn step(
        &self,
        ctx: &Ctx,
        process: usize,
        session: &mut Session,
        rng: &mut StdRng,
    ) -> Outcome {
        let n = self.ops.fetch_add(1, Ordering::Relaxed);
        let key = n / (OPS_PER_KEY * ACTIVE_KEYS) * ACTIVE_KEYS + rng.random_range(0..ACTIVE_KEYS);
        let op = match rng.random_range(0..4) {
            0 | 1 => RegisterOp::read(key),
            2 => RegisterOp::write(key, rng.random_range(0..5)),
            _ => RegisterOp::cas(key, Some(rng.random_range(0..5)), rng.random_range(0..5)),
        };
        let is_read = matches!(op, RegisterOp::Read { .. });
        let id = self.rec.invoke(process, op.clone());
        let c = with_retries(session, ctx, async |s| self.run(s, &op).await).await;
        let c = match c {
            Completion::Ok(RegisterRet::Read(Some(v))) if ctx.inject(Bug::RegisterBadRead) => {
                Completion::Ok(RegisterRet::Read(Some(v + 1_000)))
            }
            c if is_read => as_read(c),
            c => c,
        };
        self.rec.complete(id, c, true)
    }

    async fn final_read(&self, _: &Ctx, _: &mut Session, _: Duration) {
        // Linearizability is judged on the history alone.
    }

    fn check(&self) -> Verdict {
        let ops = self.rec.history.operations();
        let keys = ops
            .iter()
            .map(|o| o.op.key())
            .collect::<BTreeSet<_>>()
            .len();
        let checker = LinearizabilityChecker {
            max_steps: 5_000_000,
            ..LinearizabilityChecker::default()
        };
        match checker.check(&ops) {
            Ok(()) => Verdict::valid(format!(
                "{} operations on {keys} keys are linearizable",
                ops.len()
            )),
            Err(e) if e.is_violation() => Verdict::invalid(e.to_string().trim_end().to_string()),
            Err(e) => Verdict::unknown(e.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------
// Set

/// Unique inserts, all checked against a final read.
pub struct Set {
    rec: Recorder<SetOp, SetRet>,
    next: AtomicU64,
}

impl Set {
    pub fn new(stats: Arc<Stats>, origin: Instant) -> Self {
        Set {
            rec: Recorder::new(stats, origin),
            next: AtomicU64::new(0),
        }
    }
}

impl Workload for Set {
    fn kind(&self) -> Kind {
        Kind::Set
    }

    async fn setup(&self, session: &mut Session, timeout: Duration) -> Result<(), String> {
        setup_statements(
            session,
            &["CREATE TABLE IF NOT EXISTS set_elems (val INT PRIMARY KEY)".to_string()],
            timeout,
        )
        .await
    }

    async fn step(
        &self,
        ctx: &Ctx,
        process: usize,
        session: &mut Session,
        _: &mut StdRng,
    ) -> Outcome {
        let v = self.next.fetch_add(1, Ordering::Relaxed);
        let id = self.rec.invoke(process, SetOp::Add(v));
        let c = with_retries(session, ctx, async |s| {
            s.execute(&format!("INSERT INTO set_elems VALUES ({v})"))
                .await
                .map_err(at_commit)
        })
        .await;
        let c = map_ok(c, |_| SetRet::Added);
        self.rec.complete(id, c, true)
    }

    async fn final_read(&self, ctx: &Ctx, session: &mut Session, timeout: Duration) {
        let id = self.rec.invoke(FINAL_READER, SetOp::Read);
        let c = match until_ok(session, "SELECT val FROM set_elems", timeout).await {
            Ok(rows) => {
                let mut values = BTreeSet::new();
                let mut bad = None;
                for row in &rows {
                    match int(row, 0) {
                        Ok(v) => {
                            values.insert(v as u64);
                        }
                        Err(e) => bad = Some(e),
                    }
                }
                match bad {
                    Some(e) => Completion::Fail(e.to_string()),
                    None => {
                        if ctx.inject(Bug::SetLoseInsert) {
                            let acknowledged =
                                self.rec.history.operations().into_iter().find_map(|o| {
                                    match (&o.op, o.result()) {
                                        (SetOp::Add(v), Some(_)) => Some(*v),
                                        _ => None,
                                    }
                                });
                            if let Some(v) = acknowledged {
                                values.remove(&v);
                            }
                        }
                        Completion::Ok(SetRet::Read(values))
                    }
                }
            }
            Err(e) => Completion::Fail(e.to_string()),
        };
        let _ = self.rec.complete(id, c, false);
    }

    fn check(&self) -> Verdict {
        check_set(&self.rec.history.operations())
    }
}

// ---------------------------------------------------------------------------
// Monotonic

/// One counter, read and incremented in transactions.
pub struct Monotonic {
    rec: Recorder<MonotonicOp, MonotonicRet>,
}

impl Monotonic {
    pub fn new(stats: Arc<Stats>, origin: Instant) -> Self {
        Monotonic {
            rec: Recorder::new(stats, origin),
        }
    }

    async fn read(session: &mut Session) -> Result<i64, TxnError> {
        let rows = session
            .query("SELECT val FROM mono WHERE id = 0")
            .await
            .map_err(before_commit)?;
        match rows.first() {
            Some(row) => int(row, 0).map_err(before_commit),
            None => Err(before_commit(DbError::Sql {
                code: "XX000".into(),
                message: "the counter row is missing".into(),
            })),
        }
    }

    async fn increment(session: &mut Session) -> Result<i64, TxnError> {
        session.query("BEGIN").await.map_err(before_commit)?;
        let v = Self::read(session).await?;
        session
            .query(&format!(
                "UPDATE mono SET val = {} WHERE id = 0; COMMIT",
                v + 1
            ))
            .await
            .map_err(at_commit)?;
        Ok(v)
    }
}

impl Workload for Monotonic {
    fn kind(&self) -> Kind {
        Kind::Monotonic
    }

    async fn setup(&self, session: &mut Session, timeout: Duration) -> Result<(), String> {
        setup_statements(
            session,
            &[
                "CREATE TABLE IF NOT EXISTS mono (id INT PRIMARY KEY, val INT NOT NULL)".into(),
                "INSERT INTO mono VALUES (0, 0) ON CONFLICT (id) DO NOTHING".into(),
            ],
            timeout,
        )
        .await
    }

    async fn step(
        &self,
        ctx: &Ctx,
        process: usize,
        session: &mut Session,
        rng: &mut StdRng,
    ) -> Outcome {
        if rng.random_bool(0.5) {
            let id = self.rec.invoke(process, MonotonicOp::Read);
            let c = with_retries(session, ctx, async |s| Self::read(s).await).await;
            let c = map_ok(as_read(c), |v| {
                // The bug reads below what this client last saw.
                let last = self
                    .rec
                    .history
                    .operations()
                    .into_iter()
                    .rev()
                    .filter(|o| o.process == process)
                    .find_map(|o| match o.result() {
                        Some(MonotonicRet::Read(v)) => Some(*v),
                        Some(MonotonicRet::Incremented { read }) => Some(read + 1),
                        None => None,
                    });
                match last {
                    Some(last) if ctx.inject(Bug::MonotonicDecrease) => {
                        MonotonicRet::Read(last - 1)
                    }
                    _ => MonotonicRet::Read(v),
                }
            });
            self.rec.complete(id, c, true)
        } else {
            let id = self.rec.invoke(process, MonotonicOp::Increment);
            let c = with_retries(session, ctx, async |s| Self::increment(s).await).await;
            let c = map_ok(c, |read| MonotonicRet::Incremented { read });
            self.rec.complete(id, c, true)
        }
    }

    async fn final_read(&self, ctx: &Ctx, session: &mut Session, timeout: Duration) {
        let id = self.rec.invoke(FINAL_READER, MonotonicOp::Read);
        let c = final_until_ok(session, ctx, timeout, async |s| Self::read(s).await).await;
        let c = map_ok(c, MonotonicRet::Read);
        let _ = self.rec.complete(id, c, false);
    }

    fn check(&self) -> Verdict {
        check_monotonic(&self.rec.history.operations(), 0)
    }
}

// ---------------------------------------------------------------------------
// Sequential

/// Values written to `seq_a` then `seq_b`, read back in the other order.
pub struct Sequential {
    rec: Recorder<SequentialOp, SequentialRet>,
    next: AtomicU64,
}

impl Sequential {
    pub fn new(stats: Arc<Stats>, origin: Instant) -> Self {
        Sequential {
            rec: Recorder::new(stats, origin),
            next: AtomicU64::new(0),
        }
    }

    async fn contains(session: &mut Session, table: &str, key: u64) -> Result<bool, TxnError> {
        let rows = session
            .query(&format!("SELECT k FROM {table} WHERE k = {key}"))
            .await
            .map_err(before_commit)?;
        Ok(!rows.is_empty())
    }
}

impl Workload for Sequential {
    fn kind(&self) -> Kind {
        Kind::Sequential
    }

    async fn setup(&self, session: &mut Session, timeout: Duration) -> Result<(), String> {
        setup_statements(
            session,
            &[
                "CREATE TABLE IF NOT EXISTS seq_a (k INT PRIMARY KEY)".into(),
                "CREATE TABLE IF NOT EXISTS seq_b (k INT PRIMARY KEY)".into(),
            ],
            timeout,
        )
        .await
    }

    async fn step(
        &self,
        ctx: &Ctx,
        process: usize,
        session: &mut Session,
        rng: &mut StdRng,
    ) -> Outcome {
        if process.is_multiple_of(2) {
            let key = self.next.fetch_add(1, Ordering::Relaxed);
            let id = self.rec.invoke(process, SequentialOp::Write(key));
            let first = with_retries(session, ctx, async |s| {
                s.execute(&format!("INSERT INTO seq_a VALUES ({key})"))
                    .await
                    .map_err(at_commit)
            })
            .await;
            let c = match first {
                Completion::Ok(_) => {
                    match with_retries(session, ctx, async |s| {
                        s.execute(&format!("INSERT INTO seq_b VALUES ({key})"))
                            .await
                            .map_err(at_commit)
                    })
                    .await
                    {
                        Completion::Ok(_) => Completion::Ok(SequentialRet::Written),
                        // The first write happened: the operation as a whole
                        // did, partly.
                        Completion::Fail(e) | Completion::Info(e) => Completion::Info(e),
                    }
                }
                c => map_ok(c, |_| SequentialRet::Written),
            };
            self.rec.complete(id, c, true)
        } else {
            let written = self.next.load(Ordering::Relaxed);
            let key = written.saturating_sub(rng.random_range(1..=5));
            let id = self.rec.invoke(process, SequentialOp::Read(key));
            let c = with_retries(session, ctx, async |s| {
                let second = Self::contains(s, "seq_b", key).await?;
                let first = Self::contains(s, "seq_a", key).await?;
                Ok((second, first))
            })
            .await;
            let c = map_ok(as_read(c), |(second, first)| {
                if ctx.inject(Bug::SequentialReorder) {
                    SequentialRet::Read {
                        second: true,
                        first: false,
                    }
                } else {
                    SequentialRet::Read { second, first }
                }
            });
            self.rec.complete(id, c, true)
        }
    }

    async fn final_read(&self, _: &Ctx, _: &mut Session, _: Duration) {
        // The reads during the run are what is checked.
    }

    fn check(&self) -> Verdict {
        check_sequential(&self.rec.history.operations())
    }
}

// ---------------------------------------------------------------------------
// G2

/// Pairs of predicate-guarded inserts, one per table, per key.
pub struct G2 {
    rec: Recorder<G2Op, G2Ret>,
    next: AtomicU64,
}

const G2_TABLES: [&str; 2] = ["g2_a", "g2_b"];

impl G2 {
    pub fn new(stats: Arc<Stats>, origin: Instant) -> Self {
        G2 {
            rec: Recorder::new(stats, origin),
            next: AtomicU64::new(0),
        }
    }

    async fn insert_if_empty(
        session: &mut Session,
        id: u64,
        key: u64,
        table: u8,
    ) -> Result<G2Ret, TxnError> {
        let rows = session
            .query(&format!(
                "BEGIN; SELECT count(*) FROM g2_a WHERE k = {key}; SELECT count(*) FROM g2_b WHERE k = {key}"
            ))
            .await
            .map_err(before_commit)?;
        let mut found = 0;
        for row in &rows {
            found += int(row, 0).map_err(before_commit)?;
        }
        if found > 0 {
            session.query("COMMIT").await.map_err(before_commit)?;
            return Ok(G2Ret::Skipped);
        }
        let table = G2_TABLES[usize::from(table)];
        session
            .query(&format!("INSERT INTO {table} VALUES ({id}, {key}); COMMIT"))
            .await
            .map_err(at_commit)?;
        Ok(G2Ret::Inserted)
    }
}

impl Workload for G2 {
    fn kind(&self) -> Kind {
        Kind::G2
    }

    async fn setup(&self, session: &mut Session, timeout: Duration) -> Result<(), String> {
        let statements: Vec<String> = G2_TABLES
            .iter()
            .map(|t| format!("CREATE TABLE IF NOT EXISTS {t} (id INT PRIMARY KEY, k INT NOT NULL)"))
            .collect();
        setup_statements(session, &statements, timeout).await
    }

    async fn step(
        &self,
        ctx: &Ctx,
        process: usize,
        session: &mut Session,
        _: &mut StdRng,
    ) -> Outcome {
        // Consecutive numbers go to different clients at about the same
        // time: n and n + 1 race on the same key, one per table.
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (key, table) = (n / 2, (n % 2) as u8);
        let id = self.rec.invoke(process, G2Op::Insert { key, table });
        let c = with_retries(session, ctx, async |s| {
            Self::insert_if_empty(s, n, key, table).await
        })
        .await;
        self.rec.complete(id, c, true)
    }

    async fn final_read(&self, ctx: &Ctx, session: &mut Session, timeout: Duration) {
        let id = self.rec.invoke(FINAL_READER, G2Op::Read);
        let c = match until_ok(
            session,
            "BEGIN; SELECT k FROM g2_a; SELECT k FROM g2_b; COMMIT",
            timeout,
        )
        .await
        {
            Ok(rows) => {
                let mut per_key: BTreeMap<u64, u64> = BTreeMap::new();
                for row in &rows {
                    if let Ok(k) = int(row, 0) {
                        *per_key.entry(k as u64).or_default() += 1;
                    }
                }
                if ctx.inject(Bug::G2BothCommit)
                    && let Some(n) = per_key.values_mut().next()
                {
                    *n += 1;
                }
                Completion::Ok(G2Ret::Read(per_key))
            }
            Err(e) => Completion::Fail(e.to_string()),
        };
        let _ = self.rec.complete(id, c, false);
    }

    fn check(&self) -> Verdict {
        check_g2(&self.rec.history.operations())
    }
}

// ---------------------------------------------------------------------------
// Any workload

/// One of the workloads, chosen at run time.
pub enum AnyWorkload {
    Bank(Bank),
    Register(Register),
    Set(Set),
    Monotonic(Monotonic),
    Sequential(Sequential),
    G2(G2),
}

/// Calls the same method on whichever workload it is.
macro_rules! each {
    ($self:expr, $w:ident => $body:expr) => {
        match $self {
            AnyWorkload::Bank($w) => $body,
            AnyWorkload::Register($w) => $body,
            AnyWorkload::Set($w) => $body,
            AnyWorkload::Monotonic($w) => $body,
            AnyWorkload::Sequential($w) => $body,
            AnyWorkload::G2($w) => $body,
        }
    };
}

impl AnyWorkload {
    pub fn new(kind: Kind, stats: Arc<Stats>, origin: Instant) -> Self {
        match kind {
            Kind::Bank => AnyWorkload::Bank(Bank::new(kind, 1, stats, origin)),
            Kind::BankMultitable => AnyWorkload::Bank(Bank::new(kind, 4, stats, origin)),
            Kind::Register => AnyWorkload::Register(Register::new(stats, origin)),
            Kind::Set => AnyWorkload::Set(Set::new(stats, origin)),
            Kind::Monotonic => AnyWorkload::Monotonic(Monotonic::new(stats, origin)),
            Kind::Sequential => AnyWorkload::Sequential(Sequential::new(stats, origin)),
            Kind::G2 => AnyWorkload::G2(G2::new(stats, origin)),
        }
    }

    /// Counts this workload's operations as workload number `index` of the
    /// run's stats.
    pub fn set_index(&mut self, index: usize) {
        each!(self, w => w.rec.workload = index)
    }

    /// ok/fail/unknown counts of its history, the final read left out.
    pub fn counts(&self) -> Counts {
        each!(self, w => w.rec.counts())
    }

    /// The history as text, one event a line.
    pub fn dump(&self) -> String {
        each!(self, w => w.rec.history.dump())
    }
}

impl Workload for AnyWorkload {
    fn kind(&self) -> Kind {
        each!(self, w => w.kind())
    }

    async fn setup(&self, session: &mut Session, timeout: Duration) -> Result<(), String> {
        each!(self, w => w.setup(session, timeout).await)
    }

    async fn step(
        &self,
        ctx: &Ctx,
        process: usize,
        session: &mut Session,
        rng: &mut StdRng,
    ) -> Outcome {
        each!(self, w => w.step(ctx, process, session, rng).await)
    }

    async fn final_read(&self, ctx: &Ctx, session: &mut Session, timeout: Duration) {
        each!(self, w => w.final_read(ctx, session, timeout).await)
    }

    fn check(&self) -> Verdict {
        each!(self, w => w.check())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Status;

    fn stats() -> (Arc<Stats>, Instant) {
        let origin = Instant::now();
        (Arc::new(Stats::new(origin, 1)), origin)
    }

    fn bank_read(bank: &Bank, process: usize, balances: &[i64]) {
        let id = bank.rec.invoke(process, BankOp::Read);
        let b = balances
            .iter()
            .enumerate()
            .map(|(a, v)| (a as u64, *v))
            .collect();
        let _ = bank
            .rec
            .complete(id, Completion::Ok(BankRet::Read(b)), true);
    }

    #[test]
    fn bank_reads_that_keep_the_total_are_valid_and_a_changed_total_is_not() {
        let (stats, origin) = stats();
        let bank = Bank::new(Kind::Bank, 1, stats, origin);
        let transfer = bank.rec.invoke(
            0,
            BankOp::Transfer {
                from: 0,
                to: 1,
                amount: 5,
            },
        );
        let _ = bank
            .rec
            .complete(transfer, Completion::Info("timed out".into()), true);
        bank_read(&bank, 1, &[95, 105, 100, 100, 100, 100, 100, 100]);
        bank_read(&bank, FINAL_READER, &[100; 8]);
        assert!(bank.check().is_valid(), "{}", bank.check());

        bank_read(&bank, 2, &[95, 100, 100, 100, 100, 100, 100, 100]);
        bank_read(&bank, FINAL_READER, &[100; 8]);
        let v = bank.check();
        assert_eq!(v.status, Status::Invalid);
        assert!(
            v.detail.contains("balances sum to 795, expected 800"),
            "{v}"
        );
        assert_eq!(
            bank.rec.counts().unknown,
            1,
            "the final reads are not counted"
        );
    }

    #[test]
    fn bank_without_a_successful_final_read_is_undecided() {
        let (stats, origin) = stats();
        let bank = Bank::new(Kind::BankMultitable, 4, stats, origin);
        bank_read(&bank, 1, &[100; 8]);
        let id = bank.rec.invoke(FINAL_READER, BankOp::Read);
        let _ = bank
            .rec
            .complete(id, Completion::Fail("unavailable".into()), false);
        assert_eq!(bank.check().status, Status::Unknown);
    }

    #[test]
    fn a_register_read_of_an_overwritten_value_is_not_linearizable() {
        let (stats, origin) = stats();
        let register = Register::new(stats, origin);
        let record = |op: RegisterOp, ret: RegisterRet| {
            let id = register.rec.invoke(0, op);
            let _ = register.rec.complete(id, Completion::Ok(ret), true);
        };
        record(RegisterOp::write(1, 3), RegisterRet::Write);
        record(RegisterOp::cas(1, Some(3), 0), RegisterRet::Cas(true));
        record(RegisterOp::read(1), RegisterRet::Read(Some(0)));
        assert!(register.check().is_valid(), "{}", register.check());
        // A stale read: 3 was replaced by 0 before this read began.
        record(RegisterOp::read(1), RegisterRet::Read(Some(3)));
        let v = register.check();
        assert_eq!(v.status, Status::Invalid);
        assert!(v.detail.contains("register 1 is not linearizable"), "{v}");
    }
}
