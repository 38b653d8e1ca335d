//! A linearizability checker for per-key register histories.
//!
//! The history is partitioned by key and each key is checked on its own (a
//! register per key is a local property, so the whole history is linearizable
//! iff every key's is). Each key is checked with the Wing–Gong backtracking
//! search as improved by Lowe (WGL), the algorithm of Porcupine and Knossos:
//!
//! - Call and return events sit in one list ordered by time. The operations
//!   that may be linearized next are those invoked before the earliest pending
//!   return. The search tries each, applies it to the register model, removes
//!   it from the list ("lifts" it) and goes on; when no candidate works it
//!   backtracks and restores the list (dancing links).
//! - Memoization: a configuration is the set of linearized operations and the
//!   model state. Reaching a configuration seen before prunes the branch. The
//!   set is kept as a 128-bit Zobrist hash (xor of per-operation random
//!   words), so a step costs O(1) and memory stays small; a false "seen"
//!   needs a 128-bit collision.
//!
//! Indeterminate (`info`) operations may take effect at any point after their
//! invocation, or never: they have no return event, so they are never forced,
//! and the search ends as soon as every determinate operation is linearized.
//! `info` reads are dropped (they change nothing), and so are `fail`
//! operations (they definitely did not happen).
//!
//! Two reductions keep the search small without losing any linearization
//! (each is argued where it is applied):
//!
//! - A read or failed CAS that is allowed at a node is taken there and no
//!   other candidate is tried: it never changes the state, so it can be moved
//!   to the front of any linearization from that node.
//! - An `info` operation is only linearized right before an operation that
//!   observes its effect. Unobserved ones can be dropped or moved later, and
//!   without this rule every timed-out write could be slotted in anywhere as
//!   filler, which makes histories with many timeouts blow up.
//!
//! The search is bounded by a step budget per key ([`Checker::max_steps`]);
//! running out gives [`CheckError::Inconclusive`], never a silent pass.
//!
//! A [`Violation`] reports the longest linearizable prefix the search found,
//! the register value after it, the operation whose completion could not be
//! passed, and why each candidate could not come next.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use crate::history::{Key, Operation, RegisterHistory, RegisterOp, RegisterRet, Val, Value};

/// A register operation as the checker sees it.
pub type RegisterOperation = Operation<RegisterOp, RegisterRet>;

/// Why a history did not check out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// A key's history is not linearizable.
    Violation(Box<Violation>),
    /// The search for a key ran out of its step budget.
    Inconclusive { key: Key, ops: usize, steps: u64 },
    /// The history is malformed (a return before its call).
    Malformed(String),
}

impl CheckError {
    /// The violation, if that is what this is.
    pub fn violation(&self) -> Option<&Violation> {
        match self {
            CheckError::Violation(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_violation(&self) -> bool {
        matches!(self, CheckError::Violation(_))
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Violation(v) => v.fmt(f),
            CheckError::Inconclusive { key, ops, steps } => write!(
                f,
                "linearizability of key {key} ({ops} operations) undecided after {steps} search steps"
            ),
            CheckError::Malformed(msg) => write!(f, "malformed history: {msg}"),
        }
    }
}

impl std::error::Error for CheckError {}

/// An operation that could have come next, and why it could not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub op: RegisterOperation,
    /// Why the model rejects it here, or that every continuation failed.
    pub why: String,
}

/// A key whose history has no linearization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub key: Key,
    /// Operations on the key that the search considered (no `fail` ops, no
    /// `info` reads).
    pub ops_on_key: usize,
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<RegisterOperation>,
    /// The register value after that prefix.
    pub state: Option<Value>,
    /// The earliest-returning operation not in the prefix: nothing invoked
    /// after its return can come before it, and it cannot come next.
    pub blocking: Option<RegisterOperation>,
    /// The operations that could have come next after the prefix, and why
    /// none did.
    pub candidates: Vec<Candidate>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOW: usize = 12;
        writeln!(
            f,
            "register {} is not linearizable ({} operations on the key); longest linearizable prefix: {} operations",
            self.key,
            self.ops_on_key,
            self.prefix.len()
        )?;
        let skip = self.prefix.len().saturating_sub(SHOW);
        if skip > 0 {
            writeln!(f, "  ... {skip} earlier operations of the prefix")?;
        }
        for op in &self.prefix[skip..] {
            writeln!(f, "  {op}")?;
        }
        writeln!(f, "  register after the prefix: {}", Val(self.state))?;
        if let Some(b) = &self.blocking {
            writeln!(
                f,
                "  cannot linearize, and nothing invoked after its return can precede it: {b}"
            )?;
        }
        writeln!(f, "  candidates to come next:")?;
        for c in &self.candidates {
            writeln!(f, "    {} — {}", c.op, c.why)?;
        }
        Ok(())
    }
}

/// Options for the check.
#[derive(Clone, Debug)]
pub struct Checker {
    /// The value of every register before the history (`None`: no value).
    pub initial: Option<Value>,
    /// Search steps allowed per key before giving up as inconclusive.
    pub max_steps: u64,
}

impl Default for Checker {
    fn default() -> Self {
        Checker {
            initial: None,
            max_steps: 20_000_000,
        }
    }
}

/// Checks a recorded register history with the default options.
pub fn check_register_history(history: &RegisterHistory) -> Result<(), CheckError> {
    Checker::default().check_history(history)
}

/// Checks register operations with the default options.
pub fn check_operations(ops: &[RegisterOperation]) -> Result<(), CheckError> {
    Checker::default().check(ops)
}

impl Checker {
    pub fn check_history(&self, history: &RegisterHistory) -> Result<(), CheckError> {
        self.check(&history.operations())
    }

    /// Checks every key; reports the first violation (by key), else the first
    /// inconclusive key, else `Ok`.
    pub fn check(&self, ops: &[RegisterOperation]) -> Result<(), CheckError> {
        let mut by_key: BTreeMap<Key, Vec<&RegisterOperation>> = BTreeMap::new();
        for op in ops {
            if let Some(ret) = op.ret
                && ret < op.call
            {
                return Err(CheckError::Malformed(format!(
                    "{op} returns before its call"
                )));
            }
            if op.ret.is_none() && !op.is_info() {
                return Err(CheckError::Malformed(format!(
                    "{op} completed without a return time"
                )));
            }
            if let Some(r) = op.result() {
                let fits = matches!(
                    (&op.op, r),
                    (RegisterOp::Read { .. }, RegisterRet::Read(_))
                        | (RegisterOp::Write { .. }, RegisterRet::Write)
                        | (RegisterOp::Cas { .. }, RegisterRet::Cas(_))
                );
                if !fits {
                    return Err(CheckError::Malformed(format!(
                        "{op}: result does not fit the op"
                    )));
                }
            }
            if op.is_fail() || (op.is_info() && matches!(op.op, RegisterOp::Read { .. })) {
                continue;
            }
            by_key.entry(op.op.key()).or_default().push(op);
        }
        let mut inconclusive = None;
        for (key, ops) in by_key {
            match Search::new(key, &ops, self.initial).run(self.max_steps) {
                Ok(()) => {}
                Err(e @ CheckError::Violation(_)) => return Err(e),
                Err(e) => {
                    inconclusive.get_or_insert(e);
                }
            }
        }
        inconclusive.map_or(Ok(()), Err)
    }
}

/// Applies `op` (with its observed result, `None` if unknown) to the register
/// holding `state`: the new state, or why the model forbids it.
fn step(
    state: Option<Value>,
    op: &RegisterOp,
    ret: Option<&RegisterRet>,
) -> Result<Option<Value>, String> {
    match (op, ret) {
        (RegisterOp::Read { .. }, None) => Ok(state),
        (RegisterOp::Read { .. }, Some(RegisterRet::Read(v))) => {
            if *v == state {
                Ok(state)
            } else {
                Err(format!(
                    "read {} but the register holds {}",
                    Val(*v),
                    Val(state)
                ))
            }
        }
        (RegisterOp::Write { value, .. }, _) => Ok(Some(*value)),
        (RegisterOp::Cas { expected, new, .. }, None) => Ok(if state == *expected {
            Some(*new)
        } else {
            state
        }),
        (RegisterOp::Cas { expected, new, .. }, Some(RegisterRet::Cas(ok))) => {
            match (state == *expected, *ok) {
                (true, true) => Ok(Some(*new)),
                (false, false) => Ok(state),
                (false, true) => Err(format!(
                    "cas succeeded but the register holds {}",
                    Val(state)
                )),
                (true, false) => Err(format!("cas failed but the register holds {}", Val(state))),
            }
        }
        _ => Err("result does not fit the operation".into()),
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

const NIL: usize = usize::MAX;

/// A search configuration: the operations linearized (a 128-bit hash of the
/// set), the register state, and — if the last operation linearized is
/// indeterminate — the state before it (the next operation must observe it).
type Config = (u128, Option<Value>, Option<Option<Value>>);

/// Whether `op` (with its observed result) depends on the effect of an
/// indeterminate operation that just took the register from `before` to
/// `now`. An indeterminate write or successful CAS that nobody observes before
/// the next write can be dropped from a linearization, and one followed by an
/// operation that does not depend on it can be moved after that operation, so
/// the search only places an indeterminate operation right before an
/// operation that observes it.
fn observes(
    op: &RegisterOp,
    ret: Option<&RegisterRet>,
    before: Option<Value>,
    now: Option<Value>,
) -> bool {
    match (op, ret) {
        // A read that is allowed here reads `now`.
        (RegisterOp::Read { .. }, Some(_)) => true,
        (RegisterOp::Cas { .. }, Some(RegisterRet::Cas(true))) => true,
        (RegisterOp::Cas { expected, .. }, Some(RegisterRet::Cas(false))) => *expected == before,
        // An indeterminate CAS that succeeds here.
        (RegisterOp::Cas { expected, .. }, None) => *expected == now,
        _ => false,
    }
}

/// Links `m` list nodes: 0 is the head, 1 the tail, 2.. the elements in order.
fn chain(m: usize) -> (Vec<usize>, Vec<usize>) {
    let order: Vec<usize> = std::iter::once(0).chain(2..m).chain([1]).collect();
    let mut next = vec![NIL; m];
    let mut prev = vec![NIL; m];
    for w in order.windows(2) {
        next[w[0]] = w[1];
        prev[w[1]] = w[0];
    }
    (next, prev)
}

/// The WGL search over one key's operations.
struct Search<'a> {
    key: Key,
    ops: &'a [&'a RegisterOperation],
    initial: Option<Value>,
    /// Main list: entries 0 (head) and 1 (tail) are sentinels; then, sorted by
    /// time (calls before returns at equal times), the call and return entries
    /// of determinate operations.
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Per entry: (operation, is_call, time).
    entry: Vec<(usize, bool, u64)>,
    /// Per operation: its call entry and return entry (determinate), or its
    /// node in the info list (indeterminate).
    call_entry: Vec<usize>,
    ret_entry: Vec<usize>,
    /// Info list: nodes 0 (head) and 1 (tail) are sentinels; then the
    /// indeterminate operations by call time.
    inext: Vec<usize>,
    iprev: Vec<usize>,
    inode_op: Vec<usize>,
    info_node: Vec<usize>,
    zobrist: Vec<u128>,
    determinate: usize,
}

/// Where a search node is in its list of candidates.
#[derive(Clone, Copy)]
enum Cursor {
    /// Walking the main list at this entry.
    Main(usize),
    /// Walking the info list at this node; candidates must be invoked at or
    /// before `limit` (the earliest pending return).
    Info(usize, u64),
    /// No more candidates: a state-preserving operation was committed here.
    Done,
}

/// See [`Search::wanted`].
struct Wanted {
    /// States some candidate needs (reads, successful CASes, and the expected
    /// values of indeterminate CASes).
    states: Vec<Option<Value>>,
    /// A failed CAS expects the current state: any change lets it through.
    any_change: bool,
}

struct Best {
    /// Determinate operations linearized.
    done: usize,
    path: Vec<usize>,
    state: Option<Value>,
    blocking: Option<usize>,
    candidates: Vec<usize>,
}

impl<'a> Search<'a> {
    fn new(key: Key, ops: &'a [&'a RegisterOperation], initial: Option<Value>) -> Self {
        let n = ops.len();
        let mut entries: Vec<(usize, bool, u64)> = Vec::with_capacity(2 * n);
        let mut infos: Vec<usize> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match op.ret {
                Some(ret) if !op.is_info() => {
                    entries.push((i, true, op.call));
                    entries.push((i, false, ret));
                }
                _ => infos.push(i),
            }
        }
        // Calls before returns at equal times: equal times are concurrent.
        entries.sort_by_key(|&(i, is_call, t)| (t, !is_call, i));
        infos.sort_by_key(|&i| (ops[i].call, i));

        let mut s = Search {
            key,
            ops,
            initial,
            next: Vec::new(),
            prev: Vec::new(),
            entry: vec![(NIL, false, 0), (NIL, false, u64::MAX)],
            call_entry: vec![NIL; n],
            ret_entry: vec![NIL; n],
            inext: Vec::new(),
            iprev: Vec::new(),
            inode_op: vec![NIL, NIL],
            info_node: vec![NIL; n],
            zobrist: (0..n as u64)
                .map(|i| {
                    let a = splitmix(i.wrapping_mul(2).wrapping_add(key.rotate_left(17)));
                    let b = splitmix(a ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d));
                    ((a as u128) << 64) | b as u128
                })
                .collect(),
            determinate: n - infos.len(),
        };
        for &(i, is_call, t) in &entries {
            let e = s.entry.len();
            s.entry.push((i, is_call, t));
            if is_call {
                s.call_entry[i] = e;
            } else {
                s.ret_entry[i] = e;
            }
        }
        (s.next, s.prev) = chain(s.entry.len());
        for &i in &infos {
            s.info_node[i] = s.inode_op.len();
            s.inode_op.push(i);
        }
        (s.inext, s.iprev) = chain(s.inode_op.len());
        s
    }

    fn remove(next: &mut [usize], prev: &mut [usize], e: usize) {
        let (p, n) = (prev[e], next[e]);
        next[p] = n;
        prev[n] = p;
    }

    fn restore(next: &mut [usize], prev: &mut [usize], e: usize) {
        let (p, n) = (prev[e], next[e]);
        next[p] = e;
        prev[n] = e;
    }

    fn lift(&mut self, i: usize) {
        if self.call_entry[i] != NIL {
            Self::remove(&mut self.next, &mut self.prev, self.call_entry[i]);
            Self::remove(&mut self.next, &mut self.prev, self.ret_entry[i]);
        } else {
            Self::remove(&mut self.inext, &mut self.iprev, self.info_node[i]);
        }
    }

    fn unlift(&mut self, i: usize) {
        if self.call_entry[i] != NIL {
            Self::restore(&mut self.next, &mut self.prev, self.ret_entry[i]);
            Self::restore(&mut self.next, &mut self.prev, self.call_entry[i]);
        } else {
            Self::restore(&mut self.inext, &mut self.iprev, self.info_node[i]);
        }
    }

    /// The next candidate of a node, advancing its cursor.
    fn next_candidate(&self, cursor: &mut Cursor) -> Option<usize> {
        loop {
            match *cursor {
                Cursor::Main(e) => {
                    let (i, is_call, t) = self.entry[e];
                    if e == 1 || !is_call {
                        // The tail or the earliest pending return: the
                        // determinate candidates end here.
                        *cursor = Cursor::Info(self.inext[0], t);
                        continue;
                    }
                    *cursor = Cursor::Main(self.next[e]);
                    return Some(i);
                }
                Cursor::Done => return None,
                Cursor::Info(node, limit) => {
                    if node == 1 {
                        return None;
                    }
                    let i = self.inode_op[node];
                    if self.ops[i].call > limit {
                        return None;
                    }
                    *cursor = Cursor::Info(self.inext[node], limit);
                    return Some(i);
                }
            }
        }
    }

    fn run(mut self, max_steps: u64) -> Result<(), CheckError> {
        let mut state = self.initial;
        // The operations linearized, as a hash.
        let mut hash: u128 = 0;
        let mut remaining = self.determinate;
        let mut path: Vec<(usize, Option<Value>)> = Vec::new();
        let mut cursors: Vec<Cursor> = vec![Cursor::Main(self.next[0])];
        // Per node, computed when its first indeterminate candidate comes up:
        // the states that some candidate could observe.
        let mut wanted: Vec<Option<Wanted>> = vec![None];
        let mut seen: HashSet<Config> = HashSet::new();
        seen.insert((hash, state, None));
        let mut steps: u64 = 0;
        let mut best: Option<Best> = None;
        loop {
            if remaining == 0 {
                return Ok(());
            }
            let mut cursor = *cursors.last().expect("a node");
            let cand = self.next_candidate(&mut cursor);
            *cursors.last_mut().expect("a node") = cursor;
            match cand {
                Some(i) => {
                    steps += 1;
                    if steps > max_steps {
                        return Err(CheckError::Inconclusive {
                            key: self.key,
                            ops: self.ops.len(),
                            steps,
                        });
                    }
                    let op = self.ops[i];
                    let Ok(ns) = step(state, &op.op, op.result()) else {
                        continue;
                    };
                    let det = self.call_entry[i] != NIL;
                    if !det && ns == state {
                        // An indeterminate operation without effect here can
                        // be left out of any linearization.
                        continue;
                    }
                    if !det {
                        // Only worth placing if the next operation can
                        // observe it (see `observes`).
                        let w = wanted
                            .last_mut()
                            .expect("a node")
                            .get_or_insert_with(|| self.wanted(state));
                        if !w.any_change && !w.states.contains(&ns) {
                            continue;
                        }
                    }
                    let pending = self.pending_observation(&path);
                    if let Some(before) = pending
                        && !observes(&op.op, op.result(), before, state)
                    {
                        continue;
                    }
                    if matches!(
                        op.result(),
                        Some(RegisterRet::Read(_) | RegisterRet::Cas(false))
                    ) {
                        // Partial-order reduction: a read or a failed CAS
                        // never changes the state, so if it is allowed here
                        // it can be moved to the front of any linearization
                        // from this configuration (it is a candidate, so
                        // nothing pending must precede it): no other
                        // candidate needs trying at this node.
                        *cursors.last_mut().expect("a node") = Cursor::Done;
                    }
                    let h = hash ^ self.zobrist[i];
                    let observe = if det { None } else { Some(state) };
                    if !seen.insert((h, ns, observe)) {
                        continue;
                    }
                    self.lift(i);
                    path.push((i, state));
                    state = ns;
                    hash = h;
                    if det {
                        remaining -= 1;
                    }
                    cursors.push(Cursor::Main(self.next[0]));
                    wanted.push(None);
                }
                None => {
                    let done = self.determinate - remaining;
                    if best.as_ref().is_none_or(|b| done > b.done) {
                        best = Some(self.snapshot(&path, state, done));
                    }
                    cursors.pop();
                    wanted.pop();
                    let Some((i, before)) = path.pop() else {
                        return Err(CheckError::Violation(Box::new(
                            self.violation(best.expect("recorded")),
                        )));
                    };
                    self.unlift(i);
                    state = before;
                    hash ^= self.zobrist[i];
                    if self.call_entry[i] != NIL {
                        remaining += 1;
                    }
                }
            }
        }
    }

    /// What the candidates at a node holding `state` could observe if an
    /// indeterminate operation changed the state first.
    fn wanted(&self, state: Option<Value>) -> Wanted {
        let mut w = Wanted {
            states: Vec::new(),
            any_change: false,
        };
        let mut e = self.next[0];
        let mut limit = u64::MAX;
        while e != 1 {
            let (i, is_call, t) = self.entry[e];
            if !is_call {
                limit = t;
                break;
            }
            let op = self.ops[i];
            match (&op.op, op.result()) {
                (RegisterOp::Read { .. }, Some(RegisterRet::Read(v))) => w.states.push(*v),
                (RegisterOp::Cas { expected, .. }, Some(RegisterRet::Cas(true))) => {
                    w.states.push(*expected)
                }
                (RegisterOp::Cas { expected, .. }, Some(RegisterRet::Cas(false))) => {
                    w.any_change |= *expected == state
                }
                _ => {}
            }
            e = self.next[e];
        }
        let mut node = self.inext[0];
        while node != 1 {
            let op = self.ops[self.inode_op[node]];
            if op.call > limit {
                break;
            }
            if let RegisterOp::Cas { expected, .. } = op.op {
                w.states.push(expected);
            }
            node = self.inext[node];
        }
        w
    }

    /// If the last operation linearized is an indeterminate one (which
    /// changed the state, or it would not have been linearized), the state
    /// before it: the next operation must observe its effect.
    fn pending_observation(&self, path: &[(usize, Option<Value>)]) -> Option<Option<Value>> {
        match path.last() {
            Some(&(i, before)) if self.call_entry[i] == NIL => Some(before),
            _ => None,
        }
    }

    fn snapshot(&self, path: &[(usize, Option<Value>)], state: Option<Value>, done: usize) -> Best {
        let first = self.next[0];
        let mut blocking = None;
        let mut e = first;
        while e != 1 {
            let (i, is_call, _) = self.entry[e];
            if !is_call {
                blocking = Some(i);
                break;
            }
            e = self.next[e];
        }
        let mut candidates = Vec::new();
        let mut cursor = Cursor::Main(first);
        while let Some(i) = self.next_candidate(&mut cursor) {
            candidates.push(i);
        }
        Best {
            done,
            path: path.iter().map(|&(i, _)| i).collect(),
            state,
            blocking,
            candidates,
        }
    }

    fn violation(&self, best: Best) -> Violation {
        let candidates = best
            .candidates
            .iter()
            .map(|&i| {
                let op = self.ops[i];
                let why = match step(best.state, &op.op, op.result()) {
                    Err(why) => why,
                    Ok(_) => "allowed here, but no order of the rest works after it".into(),
                };
                Candidate {
                    op: op.clone(),
                    why,
                }
            })
            .collect();
        Violation {
            key: self.key,
            ops_on_key: self.ops.len(),
            prefix: best.path.iter().map(|&i| self.ops[i].clone()).collect(),
            state: best.state,
            blocking: best.blocking.map(|i| self.ops[i].clone()),
            candidates,
        }
    }
}
