//! Checkers for the workloads that the testkit does not already check, and a
//! common verdict for all of them.
//!
//! Every checker reads a history of [`Operation`]s (`ok`: happened, `fail`:
//! definitely did not happen, `info`: unknown) and judges only what the
//! history proves: an `info` operation may or may not have taken effect, so it
//! is never counted as lost nor as present.
//!
//! - [`check_set`]: every acknowledged insert is in the final read; nothing
//!   that was never attempted, or definitely failed, is.
//! - [`check_monotonic`]: each client sees the counter never go down, no two
//!   committed increments wrote the same value (a lost update), and the final
//!   value holds every committed increment and nothing beyond the unknown ones.
//! - [`check_g2`]: of two transactions that each insert into a key only when a
//!   predicate read finds that key empty in both tables, at most one commits.
//! - [`check_sequential`]: a client that sees the second of two writes made in
//!   order also sees the first.
//!
//! The bank and register workloads use the testkit's [`tardigrade_testkit::BankChecker`]
//! and linearizability checker.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use tardigrade_testkit::Operation;

/// The outcome of one checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Valid,
    /// The history shows an anomaly.
    Invalid,
    /// The checker could not decide (no final read, search budget exhausted).
    Unknown,
}

/// A checker's judgement, with a one-paragraph explanation for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    pub detail: String,
}

impl Verdict {
    pub fn valid(detail: impl Into<String>) -> Self {
        Verdict {
            status: Status::Valid,
            detail: detail.into(),
        }
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Verdict {
            status: Status::Invalid,
            detail: detail.into(),
        }
    }

    pub fn unknown(detail: impl Into<String>) -> Self {
        Verdict {
            status: Status::Unknown,
            detail: detail.into(),
        }
    }

    pub fn is_valid(&self) -> bool {
        self.status == Status::Valid
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Valid => "valid",
            Status::Invalid => "INVALID",
            Status::Unknown => "UNKNOWN",
        };
        write!(f, "{status}: {}", self.detail)
    }
}

/// Lists at most a few values, for messages.
fn some<T: fmt::Debug>(items: &[T]) -> String {
    const SHOW: usize = 10;
    if items.len() <= SHOW {
        format!("{items:?}")
    } else {
        format!("{:?} and {} more", &items[..SHOW], items.len() - SHOW)
    }
}

// ---------------------------------------------------------------------------
// Set

/// An operation of the set workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetOp {
    /// Insert a value never inserted before.
    Add(u64),
    /// Read the whole set.
    Read,
}

/// The result of a set operation that completed `ok`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetRet {
    Added,
    Read(BTreeSet<u64>),
}

impl fmt::Display for SetOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetOp::Add(v) => write!(f, "add({v})"),
            SetOp::Read => f.write_str("read"),
        }
    }
}

impl fmt::Display for SetRet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetRet::Added => f.write_str("ok"),
            SetRet::Read(s) => write!(f, "{} elements", s.len()),
        }
    }
}

pub type SetOperation = Operation<SetOp, SetRet>;

/// Checks a set history against its last `ok` read (the final read, made
/// after the faults healed).
pub fn check_set(ops: &[SetOperation]) -> Verdict {
    let Some(final_read) = ops.iter().rev().find_map(|o| match o.result() {
        Some(SetRet::Read(s)) => Some(s),
        _ => None,
    }) else {
        return Verdict::unknown("no successful final read of the set");
    };
    let mut acknowledged = Vec::new();
    let mut unknown = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for op in ops {
        if let SetOp::Add(v) = op.op {
            match (op.result(), op.is_info()) {
                (Some(_), _) => acknowledged.push(v),
                (None, true) => {
                    unknown.insert(v);
                }
                (None, false) => {
                    failed.insert(v);
                }
            }
        }
    }
    let lost: Vec<u64> = acknowledged
        .iter()
        .filter(|v| !final_read.contains(v))
        .copied()
        .collect();
    let attempted: BTreeSet<u64> = acknowledged
        .iter()
        .copied()
        .chain(unknown.iter().copied())
        .chain(failed.iter().copied())
        .collect();
    let never_attempted: Vec<u64> = final_read
        .iter()
        .filter(|v| !attempted.contains(v))
        .copied()
        .collect();
    let failed_present: Vec<u64> = final_read
        .iter()
        .filter(|v| failed.contains(v))
        .copied()
        .collect();
    let unknown_present = final_read.iter().filter(|v| unknown.contains(v)).count();
    let counts = format!(
        "{} acknowledged inserts, {} unknown ({} of them present), {} failed; final read has {} elements",
        acknowledged.len(),
        unknown.len(),
        unknown_present,
        failed.len(),
        final_read.len()
    );
    let mut problems = Vec::new();
    if !lost.is_empty() {
        problems.push(format!(
            "{} acknowledged inserts lost: {}",
            lost.len(),
            some(&lost)
        ));
    }
    if !failed_present.is_empty() {
        problems.push(format!(
            "{} inserts reported as failed are present: {}",
            failed_present.len(),
            some(&failed_present)
        ));
    }
    if !never_attempted.is_empty() {
        problems.push(format!(
            "{} values present that were never inserted: {}",
            never_attempted.len(),
            some(&never_attempted)
        ));
    }
    if problems.is_empty() {
        Verdict::valid(counts)
    } else {
        Verdict::invalid(format!("{}; {counts}", problems.join("; ")))
    }
}

// ---------------------------------------------------------------------------
// Monotonic

/// An operation of the monotonic workload on one counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MonotonicOp {
    /// Read the counter and write it plus one, in one transaction.
    Increment,
    /// Read the counter.
    Read,
}

/// The result of a monotonic operation that completed `ok`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MonotonicRet {
    /// The increment read `read` and wrote `read + 1`.
    Incremented {
        read: i64,
    },
    Read(i64),
}

impl fmt::Display for MonotonicOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonotonicOp::Increment => f.write_str("increment"),
            MonotonicOp::Read => f.write_str("read"),
        }
    }
}

impl fmt::Display for MonotonicRet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MonotonicRet::Incremented { read } => write!(f, "{read} -> {}", read + 1),
            MonotonicRet::Read(v) => write!(f, "{v}"),
        }
    }
}

pub type MonotonicOperation = Operation<MonotonicOp, MonotonicRet>;

/// Checks a monotonic-counter history that started at `initial`; the last
/// `ok` read (by any process) is taken as the final value.
pub fn check_monotonic(ops: &[MonotonicOperation], initial: i64) -> Verdict {
    let mut problems = Vec::new();
    // What each process last saw, in its own order of operations.
    let mut seen: HashMap<usize, (i64, usize)> = HashMap::new();
    let mut written: BTreeMap<i64, usize> = BTreeMap::new();
    let (mut ok_increments, mut unknown_increments) = (0i64, 0i64);
    let mut decreases = Vec::new();
    for op in ops {
        let observed = match (&op.op, op.result()) {
            (MonotonicOp::Increment, Some(MonotonicRet::Incremented { read })) => {
                ok_increments += 1;
                if let Some(other) = written.insert(read + 1, op.id) {
                    problems.push(format!(
                        "lost update: operations #{other} and #{} both wrote {}",
                        op.id,
                        read + 1
                    ));
                }
                read + 1
            }
            (MonotonicOp::Read, Some(MonotonicRet::Read(v))) => *v,
            (MonotonicOp::Increment, None) if op.is_info() => {
                unknown_increments += 1;
                continue;
            }
            (_, None) => continue,
            (_, Some(r)) => {
                problems.push(format!("#{}: result {r} does not fit {}", op.id, op.op));
                continue;
            }
        };
        if let Some((before, before_op)) = seen.get(&op.process)
            && observed < *before
        {
            decreases.push(format!(
                "p{} saw {before} (#{before_op}) then {observed} (#{})",
                op.process, op.id
            ));
        }
        seen.insert(op.process, (observed, op.id));
    }
    if !decreases.is_empty() {
        problems.push(format!(
            "{} decreasing reads: {}",
            decreases.len(),
            some(&decreases)
        ));
    }
    let final_value = ops.iter().rev().find_map(|o| match (&o.op, o.result()) {
        (MonotonicOp::Read, Some(MonotonicRet::Read(v))) => Some(*v),
        _ => None,
    });
    let counts = format!(
        "{ok_increments} committed increments, {unknown_increments} unknown; final value {}",
        final_value.map_or("unread".to_string(), |v| v.to_string())
    );
    match final_value {
        Some(f) => {
            let applied = f - initial;
            if applied < ok_increments {
                problems.push(format!(
                    "final value {f} holds {applied} increments, fewer than the {ok_increments} committed"
                ));
            }
            if applied > ok_increments + unknown_increments {
                problems.push(format!(
                    "final value {f} holds {applied} increments, more than the {} attempted without a definite failure",
                    ok_increments + unknown_increments
                ));
            }
        }
        None if problems.is_empty() => {
            return Verdict::unknown(format!("no successful read of the counter; {counts}"));
        }
        None => {}
    }
    if problems.is_empty() {
        Verdict::valid(counts)
    } else {
        Verdict::invalid(format!("{}; {counts}", problems.join("; ")))
    }
}

// ---------------------------------------------------------------------------
// G2

/// An operation of the G2 workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum G2Op {
    /// In one transaction: read `key` from both tables; if neither has it,
    /// insert it into `table` (0 or 1).
    Insert { key: u64, table: u8 },
    /// Read the number of rows per key across both tables.
    Read,
}

/// The result of a G2 operation that completed `ok`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum G2Ret {
    /// The predicate found the key empty and the insert committed.
    Inserted,
    /// The predicate found a row: nothing inserted.
    Skipped,
    /// Rows per key.
    Read(BTreeMap<u64, u64>),
}

impl fmt::Display for G2Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            G2Op::Insert { key, table } => write!(f, "insert-if-empty(key {key}, table {table})"),
            G2Op::Read => f.write_str("read"),
        }
    }
}

impl fmt::Display for G2Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            G2Ret::Inserted => f.write_str("inserted"),
            G2Ret::Skipped => f.write_str("skipped"),
            G2Ret::Read(m) => write!(f, "{} keys", m.len()),
        }
    }
}

pub type G2Operation = Operation<G2Op, G2Ret>;

/// Checks that at most one insert per key committed: among acknowledged
/// inserts, and in the last `ok` read (which also catches two commits whose
/// acknowledgements were lost).
pub fn check_g2(ops: &[G2Operation]) -> Verdict {
    let mut committed: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for op in ops {
        if let (G2Op::Insert { key, .. }, Some(G2Ret::Inserted)) = (&op.op, op.result()) {
            committed.entry(*key).or_default().push(op.id);
        }
    }
    let keys = ops
        .iter()
        .filter_map(|o| match o.op {
            G2Op::Insert { key, .. } => Some(key),
            G2Op::Read => None,
        })
        .collect::<BTreeSet<_>>()
        .len();
    let mut cycles: Vec<String> = committed
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(key, ids)| format!("key {key}: acknowledged inserts {ids:?}"))
        .collect();
    let final_read = ops.iter().rev().find_map(|o| match o.result() {
        Some(G2Ret::Read(m)) => Some(m),
        _ => None,
    });
    if let Some(rows) = final_read {
        for (key, n) in rows {
            if *n > 1 && committed.get(key).is_none_or(|ids| ids.len() <= 1) {
                cycles.push(format!("key {key}: {n} rows in the final read"));
            }
        }
    }
    let counts = format!(
        "{keys} keys, {} with a committed insert{}",
        committed.len(),
        if final_read.is_some() {
            ""
        } else {
            " (no final read)"
        }
    );
    if cycles.is_empty() {
        Verdict::valid(counts)
    } else {
        Verdict::invalid(format!(
            "G2 anti-dependency cycle: both predicate-guarded inserts committed for {} keys: {}; {counts}",
            cycles.len(),
            some(&cycles)
        ))
    }
}

// ---------------------------------------------------------------------------
// Sequential

/// An operation of the sequential workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SequentialOp {
    /// Insert `key` into the first table, then (after that commits) into the
    /// second.
    Write(u64),
    /// Read `key` from the second table, then from the first.
    Read(u64),
}

/// The result of a sequential operation that completed `ok`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SequentialRet {
    Written,
    /// Whether the key was in the second table, then in the first.
    Read {
        second: bool,
        first: bool,
    },
}

impl fmt::Display for SequentialOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SequentialOp::Write(k) => write!(f, "write({k})"),
            SequentialOp::Read(k) => write!(f, "read({k})"),
        }
    }
}

impl fmt::Display for SequentialRet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SequentialRet::Written => f.write_str("ok"),
            SequentialRet::Read { second, first } => {
                write!(f, "second={second} first={first}")
            }
        }
    }
}

pub type SequentialOperation = Operation<SequentialOp, SequentialRet>;

/// Checks that no read saw a key in the second table but not in the first
/// (read afterwards): the writes were made in order, so sequential
/// consistency forbids it.
pub fn check_sequential(ops: &[SequentialOperation]) -> Verdict {
    let mut reads = 0;
    let mut bad = Vec::new();
    for op in ops {
        if let (SequentialOp::Read(key), Some(SequentialRet::Read { second, first })) =
            (&op.op, op.result())
        {
            reads += 1;
            if *second && !*first {
                bad.push(format!("#{} key {key}", op.id));
            }
        }
    }
    if bad.is_empty() && reads == 0 {
        Verdict::unknown(
            "no successful reads (run at least two clients: even ones write, odd ones read)",
        )
    } else if bad.is_empty() {
        Verdict::valid(format!("{reads} ordered reads"))
    } else {
        Verdict::invalid(format!(
            "{} of {reads} reads saw the second write without the first: {}",
            bad.len(),
            some(&bad)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[u64]) -> BTreeSet<u64> {
        values.iter().copied().collect()
    }

    #[test]
    fn set_with_every_acknowledged_insert_present_is_valid_whatever_became_of_unknown_ones() {
        let ops = vec![
            SetOperation::ok(0, 0, SetOp::Add(1), 0, 1, SetRet::Added),
            SetOperation::info(1, 1, SetOp::Add(2), 2),
            SetOperation::info(2, 2, SetOp::Add(3), 3),
            SetOperation::fail(3, 0, SetOp::Add(4), 4, 5),
            SetOperation::ok(4, 0, SetOp::Read, 6, 7, SetRet::Read(set(&[1, 2]))),
        ];
        let v = check_set(&ops);
        assert!(v.is_valid(), "{v}");
    }

    #[test]
    fn set_with_a_lost_acknowledged_insert_is_invalid() {
        let ops = vec![
            SetOperation::ok(0, 0, SetOp::Add(1), 0, 1, SetRet::Added),
            SetOperation::ok(1, 1, SetOp::Add(2), 2, 3, SetRet::Added),
            SetOperation::ok(2, 0, SetOp::Read, 4, 5, SetRet::Read(set(&[1]))),
        ];
        let v = check_set(&ops);
        assert_eq!(v.status, Status::Invalid);
        assert!(v.detail.contains("1 acknowledged inserts lost: [2]"), "{v}");
    }

    #[test]
    fn set_with_a_failed_or_invented_value_present_is_invalid() {
        let ops = vec![
            SetOperation::fail(0, 0, SetOp::Add(1), 0, 1),
            SetOperation::ok(1, 0, SetOp::Read, 2, 3, SetRet::Read(set(&[1, 9]))),
        ];
        let v = check_set(&ops);
        assert_eq!(v.status, Status::Invalid);
        assert!(
            v.detail.contains("reported as failed are present: [1]"),
            "{v}"
        );
        assert!(v.detail.contains("never inserted: [9]"), "{v}");
    }

    #[test]
    fn set_without_a_final_read_is_unknown() {
        let ops = vec![SetOperation::ok(0, 0, SetOp::Add(1), 0, 1, SetRet::Added)];
        assert_eq!(check_set(&ops).status, Status::Unknown);
    }

    fn inc(id: usize, process: usize, read: i64) -> MonotonicOperation {
        let t = id as u64 * 2;
        Operation::ok(
            id,
            process,
            MonotonicOp::Increment,
            t,
            t + 1,
            MonotonicRet::Incremented { read },
        )
    }

    fn read(id: usize, process: usize, v: i64) -> MonotonicOperation {
        let t = id as u64 * 2;
        Operation::ok(
            id,
            process,
            MonotonicOp::Read,
            t,
            t + 1,
            MonotonicRet::Read(v),
        )
    }

    #[test]
    fn monotonic_counter_that_only_grows_is_valid() {
        let ops = vec![
            inc(0, 0, 0),
            inc(1, 1, 1),
            read(2, 0, 2),
            Operation::info(3, 1, MonotonicOp::Increment, 6),
            read(4, 2, 3),
            read(5, 0, 3),
        ];
        let v = check_monotonic(&ops, 0);
        assert!(v.is_valid(), "{v}");
    }

    #[test]
    fn monotonic_read_that_goes_down_is_invalid() {
        let ops = vec![inc(0, 0, 0), inc(1, 0, 1), read(2, 0, 1), read(3, 1, 2)];
        let v = check_monotonic(&ops, 0);
        assert_eq!(v.status, Status::Invalid);
        assert!(v.detail.contains("p0 saw 2 (#1) then 1 (#2)"), "{v}");
    }

    #[test]
    fn monotonic_lost_update_and_missing_increment_are_invalid() {
        // Two committed increments both read 0: one update is lost, and the
        // final value 1 holds one increment where two committed.
        let ops = vec![inc(0, 0, 0), inc(1, 1, 0), read(2, 2, 1)];
        let v = check_monotonic(&ops, 0);
        assert_eq!(v.status, Status::Invalid);
        assert!(v.detail.contains("lost update"), "{v}");
        assert!(v.detail.contains("fewer than the 2 committed"), "{v}");
    }

    fn g2(id: usize, key: u64, table: u8, ret: Option<G2Ret>) -> G2Operation {
        let t = id as u64 * 2;
        let op = G2Op::Insert { key, table };
        match ret {
            Some(r) => Operation::ok(id, id, op, t, t + 1, r),
            None => Operation::info(id, id, op, t),
        }
    }

    #[test]
    fn g2_with_one_insert_per_key_is_valid() {
        let ops = vec![
            g2(0, 1, 0, Some(G2Ret::Inserted)),
            g2(1, 1, 1, Some(G2Ret::Skipped)),
            g2(2, 2, 0, None),
            g2(3, 2, 1, Some(G2Ret::Inserted)),
            Operation::ok(
                4,
                0,
                G2Op::Read,
                8,
                9,
                G2Ret::Read([(1, 1), (2, 1)].into_iter().collect()),
            ),
        ];
        let v = check_g2(&ops);
        assert!(v.is_valid(), "{v}");
    }

    #[test]
    fn g2_with_both_inserts_of_a_key_committed_is_invalid() {
        let ops = vec![
            g2(0, 1, 0, Some(G2Ret::Inserted)),
            g2(1, 1, 1, Some(G2Ret::Inserted)),
        ];
        let v = check_g2(&ops);
        assert_eq!(v.status, Status::Invalid);
        assert!(
            v.detail.contains("key 1: acknowledged inserts [0, 1]"),
            "{v}"
        );
    }

    #[test]
    fn g2_final_read_catches_two_commits_whose_acknowledgements_were_lost() {
        let ops = vec![
            g2(0, 7, 0, None),
            g2(1, 7, 1, None),
            Operation::ok(
                2,
                0,
                G2Op::Read,
                4,
                5,
                G2Ret::Read([(7, 2)].into_iter().collect()),
            ),
        ];
        let v = check_g2(&ops);
        assert_eq!(v.status, Status::Invalid);
        assert!(v.detail.contains("key 7: 2 rows"), "{v}");
    }

    #[test]
    fn sequential_read_of_the_second_write_without_the_first_is_invalid() {
        let write =
            SequentialOperation::ok(0, 0, SequentialOp::Write(1), 0, 1, SequentialRet::Written);
        let good = SequentialOperation::ok(
            1,
            1,
            SequentialOp::Read(1),
            2,
            3,
            SequentialRet::Read {
                second: true,
                first: true,
            },
        );
        let bad = SequentialOperation::ok(
            2,
            1,
            SequentialOp::Read(1),
            4,
            5,
            SequentialRet::Read {
                second: true,
                first: false,
            },
        );
        assert_eq!(
            check_sequential(std::slice::from_ref(&write)).status,
            Status::Unknown,
            "no reads, no verdict"
        );
        assert!(check_sequential(&[write.clone(), good.clone()]).is_valid());
        let v = check_sequential(&[write, good, bad]);
        assert_eq!(v.status, Status::Invalid);
        assert!(v.detail.contains("#2 key 1"), "{v}");
    }
}
