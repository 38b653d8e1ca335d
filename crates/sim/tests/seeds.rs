//! The deterministic simulation as CI runs it: a fixed range of seeds, each
//! a few simulated seconds of faults, register traffic and bank
//! transactions on a 3-node cluster, must all end linearizable, with the
//! bank adding up, and recovered; a seed must replay exactly; and the
//! checkers must catch known bugs. Longer sweeps are recorded in
//! docs/simulation-runs.md.

use std::time::Duration;

use tardigrade_sim::{Bug, Report, SimConfig, run};

/// Runs `seeds` on two threads (the machine's cores) and returns the
/// reports of the failing ones.
fn failing(seeds: std::ops::Range<u64>, base: &SimConfig) -> (usize, Vec<Report>) {
    let seeds: Vec<u64> = seeds.collect();
    let results: Vec<Vec<Report>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let mine: Vec<u64> = seeds.iter().copied().skip(t).step_by(2).collect();
                s.spawn(move || {
                    mine.into_iter()
                        .map(|seed| {
                            run(&SimConfig {
                                seed,
                                ..base.clone()
                            })
                        })
                        .filter(|r| r.verdict.is_err())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a simulation thread panicked"))
            .collect()
    });
    (seeds.len(), results.into_iter().flatten().collect())
}

fn describe(r: &Report) -> String {
    format!(
        "seed {} (replay: cargo run -p tardigrade-sim -- --seeds {} --seconds {}): {}\n{}",
        r.seed,
        r.seed,
        5,
        r.verdict.as_ref().err().map_or("", String::as_str),
        r.faults.join("\n")
    )
}

#[test]
fn two_thousand_seeds_of_faults_stay_linearizable_and_recover() {
    let base = SimConfig {
        duration: Duration::from_secs(5),
        ..SimConfig::default()
    };
    let (n, failed) = failing(1..2001, &base);
    assert_eq!(n, 2000);
    assert!(
        failed.is_empty(),
        "{} of {n} seeds failed; the first:\n{}",
        failed.len(),
        describe(&failed[0])
    );
}

/// Seeds 845, 1655 and 1759 lost money: a transfer's commit, proposed on
/// a leaseholder that crashed right after, was applied by the others; the
/// restarted node served its old lease from state that lacked the commit
/// (a heartbeat turned the record back to pending), and the client's
/// rollback then aborted the transaction whose debit had committed. A
/// restarted store now takes a new lease before serving.
#[test]
fn seeds_that_lost_money_stay_fixed() {
    for seed in [845, 1655, 1759] {
        let r = run(&SimConfig {
            seed,
            duration: Duration::from_secs(5),
            ..SimConfig::default()
        });
        assert!(r.verdict.is_ok(), "{}", describe(&r));
    }
}

#[test]
fn seeds_that_found_bugs_stay_fixed() {
    // (Seed 1081 found elections split forever by ticks in phase; the
    // jitter that fixed it changed every seed's run since.) 1255: a remote timestamp 495 ms ahead and a 176 ms step back latched
    // a healthy node's clock. 696 (20 s): an old leaseholder with a clock
    // 72 ms behind served a stale read after the next holder's writes (no
    // stasis period).
    // (Both were found before the bank ran in the simulation.)
    for (seed, secs) in [(1255, 6), (696, 20)] {
        let r = run(&SimConfig {
            seed,
            duration: Duration::from_secs(secs),
            bank_clients: 0,
            ..SimConfig::default()
        });
        assert!(r.verdict.is_ok(), "{}", describe(&r));
    }
}

#[test]
fn a_seed_replays_exactly() {
    let cfg = SimConfig {
        seed: 4242,
        duration: Duration::from_secs(10),
        ..SimConfig::default()
    };
    let a = run(&cfg);
    let b = run(&cfg);
    assert!(a.verdict.is_ok(), "{:?}", a.verdict);
    assert!(a.ops > 100 && !a.faults.is_empty(), "the run did something");
    assert_eq!(a.faults, b.faults);
    assert_eq!(a.history, b.history);
    assert_eq!(a.net, b.net);
    assert_eq!(a.bank, b.bank);
    assert!(
        a.bank.0 > 10 && a.bank.1 > 10,
        "transactions ran: {:?}",
        a.bank
    );
    assert_eq!(a.digest, b.digest);
    let other = run(&SimConfig { seed: 4243, ..cfg });
    assert_ne!(a.digest, other.digest, "another seed is another run");
}

#[test]
fn without_faults_every_operation_succeeds() {
    let r = run(&SimConfig {
        seed: 7,
        duration: Duration::from_secs(5),
        faults: false,
        ..SimConfig::default()
    });
    assert!(r.verdict.is_ok(), "{:?}", r.verdict);
    assert!(r.faults.iter().all(|f| !f.contains("crash")));
    assert_eq!(r.indeterminate + r.failed, 0, "{r:?}");
    assert!(r.ops > 500, "{} operations in 5 s from 4 clients", r.ops);
}

#[test]
fn the_checker_catches_reads_served_on_an_expired_lease() {
    // Registers only: with the bank, serving on expired leases can also
    // make a request spin without yielding (seed 4), which hangs the
    // simulation's one thread. TODO(issue 11): find that loop.
    let base = SimConfig {
        duration: Duration::from_secs(20),
        bug: Some(Bug::StaleReads),
        bank_clients: 0,
        ..SimConfig::default()
    };
    let (n, failed) = failing(1..21, &base);
    assert!(
        failed.iter().any(|r| r
            .verdict
            .as_ref()
            .is_err_and(|e| e.contains("not linearizable"))),
        "none of {n} seeds with stale reads was caught"
    );
}

#[test]
fn the_bank_check_catches_transfers_split_over_two_transactions() {
    let base = SimConfig {
        duration: Duration::from_secs(5),
        bug: Some(Bug::SplitTransfers),
        ..SimConfig::default()
    };
    let (n, failed) = failing(1..6, &base);
    assert!(
        failed.iter().any(|r| r
            .verdict
            .as_ref()
            .is_err_and(|e| e.contains("did not add up"))),
        "none of {n} seeds with split transfers was caught"
    );
}
