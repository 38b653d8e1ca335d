//! A thread-safe recorder of operations as they happen, in the style of Jepsen.
//!
//! Every operation produces an *invoke* event when a process starts it and a
//! *completion* event when the process learns its outcome:
//!
//! - `ok`: it happened, with this result;
//! - `fail`: it definitely did not happen (a definite error);
//! - `info`: unknown — a timeout or an ambiguous error. The operation may or may
//!   not have taken effect, at any point after its invocation. An operation that
//!   was never completed counts as `info`.
//!
//! Events are appended under one lock, so their order in the log (their
//! `index`) is the real-time order the checkers use; `time` is the monotonic
//! time since the history's origin, for people reading the log.
//!
//! [`History`] is generic over the operation and result types; the register
//! workload uses [`RegisterHistory`] (`Read`, `Write`, `Cas` on integer keys and
//! values), the bank workload its own types from [`crate::bank`].

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A register key.
pub type Key = u64;
/// A register value. A register that was never written holds no value (`None`).
pub type Value = u64;
/// Identifies one operation of a history (its invocation order, from 0).
pub type OpId = usize;

/// An operation on a per-key register.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    /// Read the register; returns its value (`None`: never written).
    Read { key: Key },
    /// Write the register.
    Write { key: Key, value: Value },
    /// Compare-and-set: if the register holds `expected` (`None`: no value),
    /// set it to `new`; returns whether it did.
    Cas {
        key: Key,
        expected: Option<Value>,
        new: Value,
    },
}

impl RegisterOp {
    pub fn read(key: Key) -> RegisterOp {
        RegisterOp::Read { key }
    }

    pub fn write(key: Key, value: Value) -> RegisterOp {
        RegisterOp::Write { key, value }
    }

    pub fn cas(key: Key, expected: Option<Value>, new: Value) -> RegisterOp {
        RegisterOp::Cas { key, expected, new }
    }

    pub fn key(&self) -> Key {
        match self {
            RegisterOp::Read { key }
            | RegisterOp::Write { key, .. }
            | RegisterOp::Cas { key, .. } => *key,
        }
    }
}

/// Formats a register value: `nil` for no value.
pub(crate) struct Val(pub Option<Value>);

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("nil"),
        }
    }
}

impl fmt::Display for RegisterOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterOp::Read { key } => write!(f, "read({key})"),
            RegisterOp::Write { key, value } => write!(f, "write({key}, {value})"),
            RegisterOp::Cas { key, expected, new } => {
                write!(f, "cas({key}, {} -> {new})", Val(*expected))
            }
        }
    }
}

/// The result of a register operation that completed `ok`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterRet {
    Read(Option<Value>),
    Write,
    Cas(bool),
}

impl fmt::Display for RegisterRet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterRet::Read(v) => write!(f, "{}", Val(*v)),
            RegisterRet::Write => f.write_str("ok"),
            RegisterRet::Cas(b) => write!(f, "{b}"),
        }
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion<R> {
    /// It happened, with this result.
    Ok(R),
    /// It definitely did not happen.
    Fail(String),
    /// Unknown: it may or may not have happened (timeout, ambiguous error,
    /// never completed).
    Info(String),
}

impl<R: fmt::Display> fmt::Display for Completion<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Completion::Ok(r) => write!(f, "{r}"),
            Completion::Fail(why) => write!(f, "fail ({why})"),
            Completion::Info(why) => write!(f, "info ({why})"),
        }
    }
}

/// What an event records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind<O, R> {
    Invoke(O),
    Complete(Completion<R>),
}

/// One entry of the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<O, R> {
    /// Position in the log: the real-time order of events.
    pub index: usize,
    /// The operation this event belongs to.
    pub op: OpId,
    /// The process (client task) that ran it.
    pub process: usize,
    /// Monotonic time since the history's origin.
    pub time: Duration,
    pub kind: EventKind<O, R>,
}

/// One operation with its invocation and completion, as the checkers see it.
///
/// `call` and `ret` are logical times (event indices for a recorded history; any
/// numbers for a hand-written one): `a` happened before `b` iff `a.ret < b.call`.
/// Equal times count as concurrent. `ret` is `None` when the outcome is unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<O, R> {
    pub id: OpId,
    pub process: usize,
    pub op: O,
    pub call: u64,
    pub ret: Option<u64>,
    pub completion: Completion<R>,
}

impl<O, R> Operation<O, R> {
    /// An operation that completed with `result` over `[call, ret]`.
    pub fn ok(id: OpId, process: usize, op: O, call: u64, ret: u64, result: R) -> Self {
        Operation {
            id,
            process,
            op,
            call,
            ret: Some(ret),
            completion: Completion::Ok(result),
        }
    }

    /// An operation that definitely did not happen.
    pub fn fail(id: OpId, process: usize, op: O, call: u64, ret: u64) -> Self {
        Operation {
            id,
            process,
            op,
            call,
            ret: Some(ret),
            completion: Completion::Fail("failed".into()),
        }
    }

    /// An operation invoked at `call` whose outcome is unknown.
    pub fn info(id: OpId, process: usize, op: O, call: u64) -> Self {
        Operation {
            id,
            process,
            op,
            call,
            ret: None,
            completion: Completion::Info("unknown".into()),
        }
    }

    /// The result, if the operation completed `ok`.
    pub fn result(&self) -> Option<&R> {
        match &self.completion {
            Completion::Ok(r) => Some(r),
            _ => None,
        }
    }

    pub fn is_info(&self) -> bool {
        matches!(self.completion, Completion::Info(_))
    }

    pub fn is_fail(&self) -> bool {
        matches!(self.completion, Completion::Fail(_))
    }
}

impl<O: fmt::Display, R: fmt::Display> fmt::Display for Operation<O, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} p{} {} -> {} [{}, ",
            self.id, self.process, self.op, self.completion, self.call
        )?;
        match self.ret {
            Some(r) => write!(f, "{r}]"),
            None => f.write_str("∞]"),
        }
    }
}

struct Inner<O, R> {
    events: Vec<Event<O, R>>,
    /// Operation id -> process, for operations not completed yet.
    pending: HashMap<OpId, usize>,
    next_op: OpId,
}

/// A thread-safe, append-only log of invoke and completion events.
///
/// Share it behind an `Arc`; every method takes `&self`.
pub struct History<O, R> {
    origin: Instant,
    inner: Mutex<Inner<O, R>>,
}

/// The history of a per-key register workload.
pub type RegisterHistory = History<RegisterOp, RegisterRet>;

impl<O: Clone, R: Clone> Default for History<O, R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<O: Clone, R: Clone> History<O, R> {
    /// An empty history whose times count from now.
    pub fn new() -> Self {
        Self::with_origin(Instant::now())
    }

    /// An empty history whose times count from `origin` (share one origin
    /// between histories of one test to compare their times).
    pub fn with_origin(origin: Instant) -> Self {
        History {
            origin,
            inner: Mutex::new(Inner {
                events: Vec::new(),
                pending: HashMap::new(),
                next_op: 0,
            }),
        }
    }

    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Records that `process` invokes `op`; returns the id to complete it with.
    pub fn invoke(&self, process: usize, op: O) -> OpId {
        let mut inner = self.inner.lock();
        let id = inner.next_op;
        inner.next_op += 1;
        inner.pending.insert(id, process);
        let index = inner.events.len();
        let time = self.origin.elapsed();
        inner.events.push(Event {
            index,
            op: id,
            process,
            time,
            kind: EventKind::Invoke(op),
        });
        id
    }

    /// Records the completion of operation `id`.
    ///
    /// # Panics
    ///
    /// If `id` was never invoked or was already completed: a bug in the test.
    pub fn complete(&self, id: OpId, completion: Completion<R>) {
        let mut inner = self.inner.lock();
        let Some(process) = inner.pending.remove(&id) else {
            panic!("history: operation {id} completed twice or never invoked");
        };
        let index = inner.events.len();
        let time = self.origin.elapsed();
        inner.events.push(Event {
            index,
            op: id,
            process,
            time,
            kind: EventKind::Complete(completion),
        });
    }

    /// Operation `id` happened with result `ret`.
    pub fn ok(&self, id: OpId, ret: R) {
        self.complete(id, Completion::Ok(ret));
    }

    /// Operation `id` definitely did not happen.
    pub fn fail(&self, id: OpId, why: impl Into<String>) {
        self.complete(id, Completion::Fail(why.into()));
    }

    /// The outcome of operation `id` is unknown.
    pub fn info(&self, id: OpId, why: impl Into<String>) {
        self.complete(id, Completion::Info(why.into()));
    }

    /// A copy of the event log.
    pub fn events(&self) -> Vec<Event<O, R>> {
        self.inner.lock().events.clone()
    }

    /// Number of events recorded.
    pub fn len(&self) -> usize {
        self.inner.lock().events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The operations of the log, in invocation order, with event indices as
    /// their `call` and `ret` times. Operations still pending are `info`.
    pub fn operations(&self) -> Vec<Operation<O, R>> {
        let inner = self.inner.lock();
        let mut ops: Vec<Operation<O, R>> = Vec::with_capacity(inner.next_op);
        for ev in &inner.events {
            match &ev.kind {
                EventKind::Invoke(op) => {
                    debug_assert_eq!(ev.op, ops.len());
                    ops.push(Operation {
                        id: ev.op,
                        process: ev.process,
                        op: op.clone(),
                        call: ev.index as u64,
                        ret: None,
                        completion: Completion::Info("never completed".into()),
                    });
                }
                EventKind::Complete(c) => {
                    let o = &mut ops[ev.op];
                    if !matches!(c, Completion::Info(_)) {
                        o.ret = Some(ev.index as u64);
                    }
                    o.completion = c.clone();
                }
            }
        }
        ops
    }
}

impl<O: fmt::Display + Clone, R: fmt::Display + Clone> History<O, R> {
    /// The event log as text, one event a line (for failure messages).
    pub fn dump(&self) -> String {
        use fmt::Write;
        let mut out = String::new();
        for ev in self.events() {
            let _ = match &ev.kind {
                EventKind::Invoke(op) => writeln!(
                    out,
                    "{:>6} {:>10.6}s p{} #{} invoke {op}",
                    ev.index,
                    ev.time.as_secs_f64(),
                    ev.process,
                    ev.op
                ),
                EventKind::Complete(c) => writeln!(
                    out,
                    "{:>6} {:>10.6}s p{} #{} {c}",
                    ev.index,
                    ev.time.as_secs_f64(),
                    ev.process,
                    ev.op
                ),
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_pair_invokes_with_completions() {
        let h = RegisterHistory::new();
        let a = h.invoke(0, RegisterOp::write(1, 5));
        let b = h.invoke(1, RegisterOp::read(1));
        let c = h.invoke(2, RegisterOp::cas(1, Some(5), 6));
        let d = h.invoke(3, RegisterOp::write(2, 1));
        h.ok(a, RegisterRet::Write);
        h.info(c, "timeout");
        h.fail(d, "refused");
        h.ok(b, RegisterRet::Read(Some(5)));
        let e = h.invoke(0, RegisterOp::read(2));
        let ops = h.operations();
        assert_eq!(ops.len(), 5);
        assert_eq!((ops[0].call, ops[0].ret), (0, Some(4)));
        assert_eq!((ops[1].call, ops[1].ret), (1, Some(7)));
        assert!(ops[2].is_info() && ops[2].ret.is_none());
        assert!(ops[3].is_fail());
        assert_eq!(
            ops[e].completion,
            Completion::Info("never completed".into())
        );
        let events = h.events();
        assert!(events.windows(2).all(|w| w[0].time <= w[1].time));
        assert!(h.dump().contains("invoke cas(1, 5 -> 6)"));
    }

    #[test]
    #[should_panic(expected = "completed twice")]
    fn completing_twice_panics() {
        let h = RegisterHistory::new();
        let a = h.invoke(0, RegisterOp::read(1));
        h.ok(a, RegisterRet::Read(None));
        h.ok(a, RegisterRet::Read(None));
    }
}
