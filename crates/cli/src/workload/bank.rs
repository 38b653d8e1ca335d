//! The bank workload: money moves between accounts in transactions; the total
//! must never change (the checker fails loudly if it does).

use std::sync::atomic::Ordering;

use rand::Rng;
use rand::rngs::StdRng;
use tardigrade_kv::{Db, Txn};
use tardigrade_kvpb::KvError;

use super::Stats;
use crate::{CliError, CliResult};

pub const INITIAL_BALANCE: i64 = 1000;
/// The largest amount one transfer moves.
pub const MAX_TRANSFER: i64 = 100;
/// Accounts live in `[ACCOUNTS_START, ACCOUNTS_END)`.
pub const ACCOUNTS_START: &[u8] = b"workload/bank/";
pub const ACCOUNTS_END: &[u8] = b"workload/bank0"; // '/' + 1
/// Records the account count, so `init` can refuse a different one. It sorts
/// outside the account span ('-' < '/').
pub const META_KEY: &[u8] = b"workload/bank-meta/accounts";
/// How many accounts one `init` transaction creates.
const INIT_CHUNK: u64 = 500;
/// Retries of one transaction before it counts as an error.
const MAX_RETRIES: u32 = 100;

/// `workload/bank/<id, zero-padded to 10 digits>`: keys sort like ids.
pub fn account_key(id: u64) -> Vec<u8> {
    format!("workload/bank/{id:010}").into_bytes()
}

/// The id in an account key.
pub fn account_id(key: &[u8]) -> Option<u64> {
    let digits = key.strip_prefix(ACCOUNTS_START)?;
    if digits.len() != 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

pub fn encode_balance(b: i64) -> Vec<u8> {
    b.to_string().into_bytes()
}

pub fn decode_balance(v: &[u8]) -> Option<i64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Commits on success, rolls back on error.
async fn finish<T>(txn: Txn, body: Result<T, KvError>) -> Result<T, KvError> {
    match body {
        Ok(v) => txn.commit().await.map(|()| v),
        Err(e) => {
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

/// `in_txn!(db, name, stats, |txn| async { … })`: runs the block in a fresh
/// transaction, commits on success and rolls back on error; retryable errors
/// start over with a new transaction (counted in `stats.retries`).
/// (A macro rather than a function taking an async closure: such closures
/// borrowing the transaction make the spawned worker futures not `Send`.)
macro_rules! in_txn {
    ($db:expr, $name:expr, $stats:expr, |$txn:ident| $body:expr) => {{
        let stats: Option<&Stats> = $stats;
        let mut attempt = 0u32;
        loop {
            #[allow(unused_mut)]
            let mut $txn = $db.txn($name);
            let body = $body.await;
            match finish($txn, body).await {
                Err(e) if e.detail.is_retryable() && attempt < MAX_RETRIES => {
                    attempt += 1;
                    if let Some(s) = stats {
                        s.retries.fetch_add(1, Ordering::Relaxed);
                    }
                }
                r => break r,
            }
        }
    }};
}

fn corrupt(what: String) -> KvError {
    KvError::internal(what)
}

pub async fn init(db: &Db, accounts: u64) -> CliResult {
    match db.get(META_KEY).await? {
        Some(v) => {
            let n = decode_balance(&v).ok_or_else(|| {
                CliError(format!(
                    "unreadable bank metadata at {:?}",
                    String::from_utf8_lossy(META_KEY)
                ))
            })?;
            if n != accounts as i64 {
                return Err(CliError(format!(
                    "the bank workload is already initialized with {n} accounts; refusing to use {accounts} (pass --accounts={n}, or start from an empty store)"
                )));
            }
        }
        None => {
            let any = db.scan(ACCOUNTS_START, ACCOUNTS_END, 1).await?;
            if !any.is_empty() {
                return Err(CliError(
                    "found bank accounts but no bank metadata; refusing to touch them".into(),
                ));
            }
        }
    }
    let mut created = 0u64;
    let mut lo = 0;
    while lo < accounts {
        let hi = (lo + INIT_CHUNK).min(accounts);
        created += in_txn!(db, "bank-init", None, |txn| async {
            if lo == 0 {
                txn.put(META_KEY, &encode_balance(accounts as i64)).await?;
            }
            let end = account_key(hi);
            let present = txn.scan(&account_key(lo), &end, 0).await?;
            let mut have = vec![false; (hi - lo) as usize];
            for kv in &present {
                if let Some(id) = account_id(&kv.key).filter(|id| (lo..hi).contains(id)) {
                    have[(id - lo) as usize] = true;
                }
            }
            let mut n = 0;
            let balance = encode_balance(INITIAL_BALANCE);
            for id in lo..hi {
                if !have[(id - lo) as usize] {
                    txn.put(&account_key(id), &balance).await?;
                    n += 1;
                }
            }
            Ok(n)
        })?;
        lo = hi;
    }
    println!(
        "bank init: {accounts} accounts ({created} created, {} already present), balance {INITIAL_BALANCE} each",
        accounts - created
    );
    Ok(())
}

pub struct BankWorker {
    db: Db,
    accounts: u64,
}

impl BankWorker {
    pub fn new(db: Db, accounts: u64) -> BankWorker {
        BankWorker { db, accounts }
    }

    /// One transfer between two random distinct accounts.
    pub async fn op(&mut self, rng: &mut StdRng, stats: &Stats) -> Result<(), KvError> {
        let from = rng.random_range(0..self.accounts);
        let mut to = rng.random_range(0..self.accounts - 1);
        if to >= from {
            to += 1;
        }
        let amount = rng.random_range(1..=MAX_TRANSFER);
        let (from_key, to_key) = (account_key(from), account_key(to));
        in_txn!(&self.db, "bank-transfer", Some(stats), |txn| async {
            let a = read_balance(&mut txn, &from_key).await?;
            let b = read_balance(&mut txn, &to_key).await?;
            if a < amount {
                return Ok(()); // insufficient funds: no negative balances
            }
            txn.put(&from_key, &encode_balance(a - amount)).await?;
            txn.put(&to_key, &encode_balance(b + amount)).await?;
            Ok(())
        })
    }
}

async fn read_balance(txn: &mut Txn, key: &[u8]) -> Result<i64, KvError> {
    let v = txn.get(key).await?.ok_or_else(|| {
        corrupt(format!(
            "account {} does not exist (run `tardigrade workload init bank` with the same --accounts)",
            String::from_utf8_lossy(key)
        ))
    })?;
    decode_balance(&v).ok_or_else(|| {
        corrupt(format!(
            "account {} holds an unreadable balance",
            String::from_utf8_lossy(key)
        ))
    })
}

/// The outcome of scanning the accounts.
#[derive(Debug, PartialEq, Eq)]
pub struct Audit {
    pub accounts: u64,
    pub sum: i128,
    pub negative: u64,
    pub unreadable: u64,
}

pub fn audit(rows: &[tardigrade_kvpb::KeyValue]) -> Audit {
    let mut a = Audit {
        accounts: 0,
        sum: 0,
        negative: 0,
        unreadable: 0,
    };
    for kv in rows {
        a.accounts += 1;
        match (account_id(&kv.key), decode_balance(&kv.value.bytes)) {
            (Some(_), Some(b)) => {
                a.sum += i128::from(b);
                if b < 0 {
                    a.negative += 1;
                }
            }
            _ => a.unreadable += 1,
        }
    }
    a
}

/// Prints the verdict; `Err` (exit code 1) on FAIL.
pub async fn check(db: &Db, accounts: u64) -> CliResult {
    let rows = in_txn!(db, "bank-check", None, |txn| async {
        txn.scan(ACCOUNTS_START, ACCOUNTS_END, 0).await
    })?;
    let a = audit(&rows);
    let want_sum = i128::from(accounts) * i128::from(INITIAL_BALANCE);
    if a.accounts == accounts && a.sum == want_sum && a.negative == 0 && a.unreadable == 0 {
        println!("bank check: OK sum={} accounts={}", a.sum, a.accounts);
        Ok(())
    } else {
        println!(
            "bank check: FAIL sum={} accounts={} negative={} unreadable={} (expected sum={want_sum} accounts={accounts})",
            a.sum, a.accounts, a.negative, a.unreadable
        );
        Err(CliError("bank check failed".into()))
    }
}

#[cfg(test)]
mod tests {
    use tardigrade_kvpb::{KeyValue, Value};

    use super::*;

    #[test]
    fn account_keys_are_zero_padded_and_sorted() {
        assert_eq!(account_key(0), b"workload/bank/0000000000".to_vec());
        assert_eq!(account_key(42), b"workload/bank/0000000042".to_vec());
        assert!(account_key(9) < account_key(10));
        assert!(account_key(999) < account_key(1000));
        for id in [0, 7, 999, 9_999_999_999] {
            let k = account_key(id);
            assert!(k.as_slice() >= ACCOUNTS_START && k.as_slice() < ACCOUNTS_END);
            assert_eq!(account_id(&k), Some(id));
        }
        assert!(
            META_KEY < ACCOUNTS_START,
            "metadata sorts outside the accounts"
        );
        assert_eq!(account_id(b"workload/bank/12"), None);
        assert_eq!(account_id(b"workload/bank/00000000x1"), None);
        assert_eq!(account_id(b"workload/kv/0000000001"), None);
    }

    #[test]
    fn balances_round_trip() {
        for b in [0, 1000, -5, i64::MAX] {
            assert_eq!(decode_balance(&encode_balance(b)), Some(b));
        }
        assert_eq!(decode_balance(b"12x"), None);
        assert_eq!(decode_balance(&[0xff]), None);
    }

    fn row(id: u64, v: &[u8]) -> KeyValue {
        KeyValue {
            key: account_key(id),
            value: Value {
                bytes: v.to_vec(),
                timestamp: Default::default(),
            },
        }
    }

    #[test]
    fn audit_counts_sums_and_flags() {
        let rows = vec![row(0, b"1500"), row(1, b"500"), row(2, b"1000")];
        assert_eq!(
            audit(&rows),
            Audit {
                accounts: 3,
                sum: 3000,
                negative: 0,
                unreadable: 0
            }
        );
        let rows = vec![row(0, b"-1"), row(1, b"zz")];
        assert_eq!(
            audit(&rows),
            Audit {
                accounts: 2,
                sum: -1,
                negative: 1,
                unreadable: 1
            }
        );
    }
}
