//! Tests of the register linearizability checker: hand-written histories that
//! are linearizable pass, hand-written violations are caught, and generated
//! histories from a real register model pass while the same histories with one
//! read corrupted are caught.

use std::time::Instant;

use proptest::prelude::*;
use tardigrade_testkit::history::{Completion, Operation, RegisterOp, RegisterRet, Value};
use tardigrade_testkit::linearizability::{
    CheckError, Checker, RegisterOperation, check_operations,
};

// Hand-written operations; ids are assigned by `h`.

fn rd(p: usize, key: u64, v: Option<Value>, call: u64, ret: u64) -> RegisterOperation {
    Operation::ok(0, p, RegisterOp::read(key), call, ret, RegisterRet::Read(v))
}

fn wr(p: usize, key: u64, v: Value, call: u64, ret: u64) -> RegisterOperation {
    Operation::ok(
        0,
        p,
        RegisterOp::write(key, v),
        call,
        ret,
        RegisterRet::Write,
    )
}

#[allow(clippy::too_many_arguments)]
fn cas(
    p: usize,
    key: u64,
    exp: Option<Value>,
    new: Value,
    ok: bool,
    call: u64,
    ret: u64,
) -> RegisterOperation {
    Operation::ok(
        0,
        p,
        RegisterOp::cas(key, exp, new),
        call,
        ret,
        RegisterRet::Cas(ok),
    )
}

fn info(p: usize, op: RegisterOp, call: u64) -> RegisterOperation {
    Operation::info(0, p, op, call)
}

fn fail(p: usize, op: RegisterOp, call: u64, ret: u64) -> RegisterOperation {
    Operation::fail(0, p, op, call, ret)
}

fn h(mut ops: Vec<RegisterOperation>) -> Vec<RegisterOperation> {
    for (i, o) in ops.iter_mut().enumerate() {
        o.id = i;
    }
    ops
}

fn assert_linearizable(ops: Vec<RegisterOperation>) {
    let ops = h(ops);
    if let Err(e) = check_operations(&ops) {
        panic!("expected linearizable, got: {e}");
    }
}

fn assert_violation(ops: Vec<RegisterOperation>) -> String {
    let ops = h(ops);
    match check_operations(&ops) {
        Err(CheckError::Violation(v)) => v.to_string(),
        other => panic!("expected a violation, got {other:?}"),
    }
}

// ---- linearizable histories -------------------------------------------------

#[test]
fn sequential_history_passes() {
    assert_linearizable(vec![
        rd(0, 1, None, 0, 1),
        wr(0, 1, 1, 2, 3),
        rd(1, 1, Some(1), 4, 5),
        wr(1, 1, 2, 6, 7),
        rd(0, 1, Some(2), 8, 9),
        rd(2, 1, Some(2), 10, 11),
    ]);
}

#[test]
fn empty_history_passes() {
    assert_linearizable(vec![]);
}

#[test]
fn concurrent_writes_with_reads_seeing_either_order_pass() {
    // w1 and w2 overlap; one reader sees 1 then 2 ...
    assert_linearizable(vec![
        wr(0, 1, 1, 0, 10),
        wr(1, 1, 2, 1, 11),
        rd(2, 1, Some(1), 2, 3),
        rd(2, 1, Some(2), 4, 5),
        rd(3, 1, Some(2), 12, 13),
    ]);
    // ... or 2 then 1, and then 1 must stick.
    assert_linearizable(vec![
        wr(0, 1, 1, 0, 10),
        wr(1, 1, 2, 1, 11),
        rd(2, 1, Some(2), 2, 3),
        rd(2, 1, Some(1), 4, 5),
        rd(3, 1, Some(1), 12, 13),
    ]);
    // A read concurrent with a write may see the old or the new value.
    assert_linearizable(vec![
        wr(0, 1, 1, 0, 1),
        wr(0, 1, 2, 2, 10),
        rd(1, 1, Some(1), 3, 4),
        rd(2, 1, Some(2), 3, 4),
        rd(1, 1, Some(2), 5, 6),
    ]);
}

#[test]
fn equal_times_count_as_concurrent() {
    // The read is invoked at the same time the write returns.
    assert_linearizable(vec![wr(0, 1, 1, 0, 5), rd(1, 1, None, 5, 6)]);
}

#[test]
fn cas_chain_passes() {
    assert_linearizable(vec![
        cas(0, 1, None, 10, true, 0, 1),
        cas(1, 1, None, 11, false, 2, 3),
        cas(0, 1, Some(10), 12, true, 4, 5),
        cas(1, 1, Some(10), 13, false, 6, 7),
        rd(2, 1, Some(12), 8, 9),
        // Two contending CASes from the same value: exactly one wins.
        cas(0, 1, Some(12), 14, false, 10, 20),
        cas(1, 1, Some(12), 15, true, 10, 20),
        rd(2, 1, Some(15), 21, 22),
    ]);
}

#[test]
fn info_write_that_took_effect_passes() {
    assert_linearizable(vec![
        wr(0, 1, 1, 0, 1),
        info(1, RegisterOp::write(1, 9), 2),
        rd(2, 1, Some(1), 3, 4),
        rd(2, 1, Some(9), 5, 6),
        rd(0, 1, Some(9), 100, 101),
    ]);
}

#[test]
fn info_write_that_never_took_effect_passes() {
    assert_linearizable(vec![
        wr(0, 1, 1, 0, 1),
        info(1, RegisterOp::write(1, 9), 2),
        rd(2, 1, Some(1), 3, 4),
        rd(2, 1, Some(1), 50, 51),
        wr(0, 1, 3, 60, 61),
        rd(2, 1, Some(3), 70, 71),
    ]);
}

#[test]
fn info_cas_and_reads_and_failed_ops_pass() {
    assert_linearizable(vec![
        wr(0, 1, 1, 0, 1),
        info(1, RegisterOp::cas(1, Some(1), 2), 2),
        info(2, RegisterOp::read(1), 2),
        fail(3, RegisterOp::write(1, 7), 2, 3),
        rd(0, 1, Some(2), 10, 11),
        // The info CAS lands late, after a write of 1 again: still explainable.
        info(4, RegisterOp::cas(1, Some(5), 6), 12),
        wr(0, 1, 5, 13, 14),
        rd(0, 1, Some(6), 15, 16),
    ]);
}

#[test]
fn many_info_ops_stay_cheap() {
    // 200 timed-out writes that never took effect, among 400 ordinary ops.
    let mut ops = Vec::new();
    let mut t = 0;
    for i in 0..200u64 {
        ops.push(info(9, RegisterOp::write(1, 1_000_000 + i), t));
        ops.push(wr(0, 1, i, t + 1, t + 2));
        ops.push(rd(1, 1, Some(i), t + 3, t + 4));
        t += 5;
    }
    let checker = Checker {
        max_steps: 100_000,
        ..Checker::default()
    };
    if let Err(e) = checker.check(&h(ops)) {
        panic!("{e}");
    }
}

// ---- violations -------------------------------------------------------------

#[test]
fn stale_read_after_completed_write_is_caught() {
    let msg = assert_violation(vec![
        wr(0, 1, 1, 0, 1),
        wr(0, 1, 2, 2, 3),
        rd(1, 1, Some(1), 4, 5),
    ]);
    assert!(msg.contains("register 1 is not linearizable"), "{msg}");
    assert!(msg.contains("read 1 but the register holds 2"), "{msg}");
}

#[test]
fn read_of_a_value_never_written_is_caught() {
    let msg = assert_violation(vec![wr(0, 1, 1, 0, 1), rd(1, 1, Some(7), 2, 3)]);
    assert!(msg.contains("read 7"), "{msg}");
}

#[test]
fn read_of_nothing_after_a_completed_write_is_caught() {
    assert_violation(vec![wr(0, 1, 1, 0, 1), rd(1, 1, None, 2, 3)]);
}

#[test]
fn reads_observing_writes_in_contradictory_orders_are_caught() {
    // Reader 2 sees w1 before w2, reader 3 sees w2 before w1; the writes
    // overlap everything, so only the order of the reads can tell.
    assert_violation(vec![
        wr(0, 1, 1, 0, 100),
        wr(1, 1, 2, 0, 100),
        rd(2, 1, Some(1), 10, 11),
        rd(2, 1, Some(2), 12, 13),
        rd(3, 1, Some(2), 10, 11),
        rd(3, 1, Some(1), 12, 13),
    ]);
}

#[test]
fn lost_cas_is_caught() {
    // Sequential: the second CAS cannot succeed from a value that is gone.
    assert_violation(vec![
        wr(0, 1, 0, 0, 1),
        cas(0, 1, Some(0), 1, true, 2, 3),
        cas(1, 1, Some(0), 2, true, 4, 5),
    ]);
    // Concurrent: both CASes from 0 succeed, nothing writes 0 in between.
    assert_violation(vec![
        wr(0, 1, 0, 0, 1),
        cas(1, 1, Some(0), 1, true, 2, 10),
        cas(2, 1, Some(0), 2, true, 2, 10),
    ]);
    // A CAS that failed although the register held its expected value.
    assert_violation(vec![wr(0, 1, 5, 0, 1), cas(1, 1, Some(5), 6, false, 2, 3)]);
}

#[test]
fn info_write_observed_then_reverted_is_caught() {
    // Once a read saw the info write, an older value cannot come back.
    assert_violation(vec![
        wr(0, 1, 1, 0, 1),
        info(1, RegisterOp::write(1, 9), 2),
        rd(2, 1, Some(9), 3, 4),
        rd(2, 1, Some(1), 5, 6),
    ]);
}

#[test]
fn info_write_cannot_take_effect_before_its_invocation() {
    assert_violation(vec![
        rd(0, 1, Some(9), 0, 1),
        info(1, RegisterOp::write(1, 9), 2),
    ]);
}

#[test]
fn failed_write_that_was_observed_is_caught() {
    assert_violation(vec![
        fail(0, RegisterOp::write(1, 7), 0, 1),
        rd(1, 1, Some(7), 2, 3),
    ]);
}

#[test]
fn violation_names_the_key_and_other_keys_do_not_mask_it() {
    let ops = h(vec![
        wr(0, 1, 1, 0, 1),
        rd(1, 1, Some(1), 2, 3),
        wr(0, 2, 5, 0, 1),
        wr(0, 2, 6, 2, 3),
        rd(1, 2, Some(5), 4, 5),
        wr(0, 3, 1, 0, 1),
    ]);
    let err = check_operations(&ops).unwrap_err();
    let v = err.violation().expect("violation");
    assert_eq!(v.key, 2);
    assert_eq!(v.ops_on_key, 3);
    assert_eq!(v.prefix.len(), 2);
    assert_eq!(v.state, Some(6));
    assert_eq!(v.blocking.as_ref().map(|o| o.id), Some(4));
}

#[test]
fn malformed_history_is_refused() {
    let ops = h(vec![wr(0, 1, 1, 5, 1)]);
    assert!(matches!(
        check_operations(&ops),
        Err(CheckError::Malformed(_))
    ));
}

#[test]
fn exhausted_budget_is_inconclusive_not_a_pass() {
    let ops = h(vec![
        wr(0, 1, 1, 0, 10),
        wr(1, 1, 2, 0, 10),
        wr(2, 1, 3, 0, 10),
        rd(3, 1, Some(1), 11, 12),
    ]);
    let checker = Checker {
        max_steps: 1,
        ..Checker::default()
    };
    assert!(matches!(
        checker.check(&ops),
        Err(CheckError::Inconclusive { key: 1, .. })
    ));
}

// ---- generated histories ----------------------------------------------------

/// One generated step: (kind, key, cas expects the current value, jitter
/// before, jitter after, outcome roll).
type Step = (u8, u64, bool, u64, u64, u8);

/// Runs the steps on a real register model, one linearization point every 100
/// time units, then widens each operation's interval around its point by the
/// jitter. The result is always linearizable. Roll 0: `info` that took effect;
/// 1: `info` that did not; 2: `fail` (did not); otherwise `ok`.
fn generate(steps: &[Step], keys: u64, spread: u64) -> Vec<RegisterOperation> {
    let mut state: Vec<Option<Value>> = vec![None; keys as usize];
    let mut written: Vec<Vec<Value>> = vec![Vec::new(); keys as usize];
    let mut next = 1;
    let mut ops = Vec::new();
    for (i, &(kind, key, expect_current, jb, ja, roll)) in steps.iter().enumerate() {
        let key = key % keys;
        let k = key as usize;
        let t = 1000 + 100 * i as u64;
        let (call, ret) = (t - jb * spread, t + ja * spread);
        let applies = roll == 0 || roll >= 3;
        let (op, result) = match kind % 3 {
            0 => (RegisterOp::read(key), RegisterRet::Read(state[k])),
            1 => {
                let v = next;
                next += 1;
                if applies {
                    state[k] = Some(v);
                    written[k].push(v);
                }
                (RegisterOp::write(key, v), RegisterRet::Write)
            }
            _ => {
                let v = next;
                next += 1;
                let expected = if expect_current || written[k].is_empty() {
                    state[k]
                } else {
                    Some(written[k][(jb as usize) % written[k].len()])
                };
                let ok = applies && expected == state[k];
                if ok {
                    state[k] = Some(v);
                    written[k].push(v);
                }
                (RegisterOp::cas(key, expected, v), RegisterRet::Cas(ok))
            }
        };
        let id = ops.len();
        let p = i % 10;
        ops.push(match roll {
            0 | 1 => Operation::info(id, p, op, call),
            2 => Operation::fail(id, p, op, call, ret),
            _ => Operation::ok(id, p, op, call, ret, result),
        });
    }
    ops
}

fn steps(max: usize) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0u8..3, 0u64..3, any::<bool>(), 0u64..6, 0u64..6, 0u8..20),
        1..max,
    )
}

/// Reads that completed `ok`.
fn ok_reads(ops: &[RegisterOperation]) -> Vec<usize> {
    ops.iter()
        .filter(|o| matches!(o.completion, Completion::Ok(RegisterRet::Read(_))))
        .map(|o| o.id)
        .collect()
}

/// (read, value) pairs where the value is definitely stale for the read:
/// it was written by an operation that returned before another write X to the
/// key was invoked, and X returned before the read was invoked.
fn stale_candidates(ops: &[RegisterOperation]) -> Vec<(usize, Value)> {
    let sets = |o: &RegisterOperation| -> Option<Value> {
        match (&o.op, &o.completion) {
            (RegisterOp::Write { value, .. }, Completion::Ok(_)) => Some(*value),
            (RegisterOp::Cas { new, .. }, Completion::Ok(RegisterRet::Cas(true))) => Some(*new),
            _ => None,
        }
    };
    let mut out = Vec::new();
    for r in ok_reads(ops) {
        let read = &ops[r];
        let Some(RegisterRet::Read(seen)) = read.result() else {
            unreachable!()
        };
        for x in ops.iter().filter(|x| x.op.key() == read.op.key()) {
            let (Some(xv), Some(xret)) = (sets(x), x.ret) else {
                continue;
            };
            if xret >= read.call {
                continue;
            }
            // A value whose only writer (values are unique) returned before
            // X was invoked, with a definite outcome.
            for w in ops.iter().filter(|w| w.op.key() == read.op.key()) {
                if let (Some(wv), Some(wret)) = (sets(w), w.ret)
                    && wret < x.call
                    && wv != xv
                    && Some(wv) != *seen
                {
                    out.push((r, wv));
                }
            }
        }
    }
    out
}

fn set_read(ops: &mut [RegisterOperation], r: usize, v: Value) {
    ops[r].completion = Completion::Ok(RegisterRet::Read(Some(v)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn generated_register_histories_are_linearizable(s in steps(150), spread in 1u64..60) {
        let ops = generate(&s, 3, spread);
        if let Err(e) = check_operations(&ops) {
            prop_assert!(false, "generated history rejected: {e}");
        }
    }

    #[test]
    fn generated_histories_with_a_read_of_a_never_written_value_are_caught(
        s in steps(150),
        spread in 1u64..60,
        pick in any::<prop::sample::Index>(),
    ) {
        let mut ops = generate(&s, 3, spread);
        let reads = ok_reads(&ops);
        prop_assume!(!reads.is_empty());
        set_read(&mut ops, reads[pick.index(reads.len())], 1 << 60);
        let err = check_operations(&ops).unwrap_err();
        prop_assert!(err.is_violation(), "{}", err);
    }

    #[test]
    fn generated_histories_with_a_stale_read_are_caught(
        s in steps(150),
        spread in 1u64..60,
        pick in any::<prop::sample::Index>(),
    ) {
        let mut ops = generate(&s, 3, spread);
        let candidates = stale_candidates(&ops);
        prop_assume!(!candidates.is_empty());
        let (r, v) = candidates[pick.index(candidates.len())];
        set_read(&mut ops, r, v);
        let err = check_operations(&ops).unwrap_err();
        prop_assert!(err.is_violation(), "{}", err);
    }
}

// ---- scale ------------------------------------------------------------------

fn big_history(n: usize, seed: u64) -> Vec<RegisterOperation> {
    // A deterministic pseudo-random history on one key, ~10 ops in flight.
    let mut x = seed;
    let mut rnd = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let steps: Vec<Step> = (0..n)
        .map(|_| (rnd(3) as u8, 0, rnd(4) != 0, rnd(6), rnd(6), rnd(40) as u8))
        .collect();
    generate(&steps, 1, 100)
}

/// A budget that keeps these checks well under a second in an optimized
/// build (they take ~15 ms and ~70 ms); counted in steps, not time, so the
/// test does not depend on the machine.
const BUDGET: u64 = 2_000_000;

#[test]
fn thousands_of_concurrent_ops_on_one_key_check_within_budget() {
    let checker = Checker {
        max_steps: BUDGET,
        ..Checker::default()
    };
    // ~10 operations in flight, 5% of them timed out.
    let ops = big_history(3000, 7);
    assert!(ops.iter().filter(|o| o.is_info()).count() > 100);
    let start = Instant::now();
    if let Err(e) = checker.check(&ops) {
        panic!("{e}");
    }
    eprintln!("3000 ops, linearizable: {:?}", start.elapsed());

    let mut bad = ops.clone();
    let reads = ok_reads(&bad);
    set_read(&mut bad, reads[reads.len() - 10], 1 << 60);
    let start = Instant::now();
    let err = checker.check(&bad).unwrap_err();
    assert!(err.is_violation(), "{err}");
    eprintln!("3000 ops, violation near the end: {:?}", start.elapsed());
}

// ---- cross-check against brute force ----------------------------------------

/// The definition, by brute force: try every order of the operations that
/// respects real time, with indeterminate ones optional.
fn brute_force(ops: &[RegisterOperation]) -> bool {
    fn go(ops: &[&RegisterOperation], used: &mut Vec<bool>, state: Option<Value>) -> bool {
        let pending_det = ops
            .iter()
            .zip(used.iter())
            .filter(|(o, u)| !**u && !o.is_info())
            .count();
        if pending_det == 0 {
            return true;
        }
        let min_ret = ops
            .iter()
            .zip(used.iter())
            .filter(|(_, u)| !**u)
            .filter_map(|(o, _)| o.ret)
            .min()
            .unwrap_or(u64::MAX);
        for i in 0..ops.len() {
            if used[i] || ops[i].call > min_ret {
                continue;
            }
            let o = ops[i];
            let next = match (&o.op, o.result()) {
                (RegisterOp::Read { .. }, Some(RegisterRet::Read(v))) => {
                    (*v == state).then_some(state)
                }
                (RegisterOp::Read { .. }, _) => Some(state),
                (RegisterOp::Write { value, .. }, _) => Some(Some(*value)),
                (RegisterOp::Cas { expected, new, .. }, Some(RegisterRet::Cas(ok))) => {
                    match (*expected == state, *ok) {
                        (true, true) => Some(Some(*new)),
                        (false, false) => Some(state),
                        _ => None,
                    }
                }
                (RegisterOp::Cas { expected, new, .. }, _) => Some(if *expected == state {
                    Some(*new)
                } else {
                    state
                }),
            };
            if let Some(ns) = next {
                used[i] = true;
                let ok = go(ops, used, ns);
                used[i] = false;
                if ok {
                    return true;
                }
            }
        }
        false
    }
    let ops: Vec<&RegisterOperation> = ops.iter().filter(|o| !o.is_fail()).collect();
    go(&ops, &mut vec![false; ops.len()], None)
}

/// (kind, value, expected, ok, call, length, outcome)
type Raw = (u8, u64, Option<u64>, bool, u64, u64, u8);

fn arbitrary_history(raw: &[Raw]) -> Vec<RegisterOperation> {
    raw.iter()
        .enumerate()
        .map(|(id, &(kind, v, exp, ok, call, len, outcome))| {
            let (op, ret) = match kind % 3 {
                0 => (RegisterOp::read(0), RegisterRet::Read(exp)),
                1 => (RegisterOp::write(0, v), RegisterRet::Write),
                _ => (RegisterOp::cas(0, exp, v), RegisterRet::Cas(ok)),
            };
            match outcome {
                0 => Operation::info(id, id, op, call),
                1 => Operation::fail(id, id, op, call, call + len),
                _ => Operation::ok(id, id, op, call, call + len, ret),
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary small histories (most of them not linearizable): the checker,
    /// with its reductions, agrees with the brute-force definition.
    #[test]
    fn checker_agrees_with_brute_force(
        raw in prop::collection::vec(
            (0u8..3, 1u64..4, prop::option::of(1u64..4), any::<bool>(), 0u64..12, 0u64..6, 0u8..6),
            0..8,
        )
    ) {
        let ops = arbitrary_history(&raw);
        let expected = brute_force(&ops);
        let got = check_operations(&ops);
        prop_assert_eq!(got.is_ok(), expected, "{:?}", got);
        if let Err(e) = got {
            prop_assert!(e.is_violation());
        }
    }
}
