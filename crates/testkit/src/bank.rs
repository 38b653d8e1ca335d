//! A checker for bank-transfer histories.
//!
//! The bank workload moves money between accounts in transactions while other
//! clients read every account in one transaction. Transfers conserve money, so
//! under snapshot isolation or better every successful read of all accounts
//! sums to the same total. The checker looks at every `ok` read and reports
//! each one whose sum is wrong, that misses or adds accounts, or (unless
//! allowed) shows a negative balance. Transfers themselves are not checked:
//! their outcome (`ok`, `fail` or `info`) does not change the invariant.

use std::collections::BTreeMap;
use std::fmt;

use crate::history::{History, Operation};

/// An account id.
pub type Account = u64;

/// A bank operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BankOp {
    /// Read the balances of all accounts in one transaction.
    Read,
    /// Move `amount` from one account to another.
    Transfer {
        from: Account,
        to: Account,
        amount: i64,
    },
}

impl fmt::Display for BankOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BankOp::Read => f.write_str("read"),
            BankOp::Transfer { from, to, amount } => {
                write!(f, "transfer({from} -> {to}, {amount})")
            }
        }
    }
}

/// The result of a bank operation that completed `ok`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BankRet {
    /// Balance by account.
    Read(BTreeMap<Account, i64>),
    Transfer,
}

impl fmt::Display for BankRet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BankRet::Read(b) => write!(f, "{b:?}"),
            BankRet::Transfer => f.write_str("ok"),
        }
    }
}

/// The history of a bank workload.
pub type BankHistory = History<BankOp, BankRet>;
/// A bank operation as the checker sees it.
pub type BankOperation = Operation<BankOp, BankRet>;

/// What is wrong with a read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BankError {
    /// The balances do not add up to the total.
    WrongTotal { sum: i64, expected: i64 },
    /// The read does not show exactly the expected accounts.
    WrongAccounts {
        missing: Vec<Account>,
        unexpected: Vec<Account>,
    },
    /// An account is overdrawn.
    Negative { account: Account, balance: i64 },
    /// The result does not fit the operation.
    Malformed,
}

impl fmt::Display for BankError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BankError::WrongTotal { sum, expected } => {
                write!(f, "balances sum to {sum}, expected {expected}")
            }
            BankError::WrongAccounts {
                missing,
                unexpected,
            } => write!(
                f,
                "accounts missing {missing:?}, unexpected accounts {unexpected:?}"
            ),
            BankError::Negative { account, balance } => {
                write!(f, "account {account} has negative balance {balance}")
            }
            BankError::Malformed => f.write_str("result does not fit the operation"),
        }
    }
}

/// One bad read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankViolation {
    pub op: BankOperation,
    pub error: BankError,
}

impl fmt::Display for BankViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.error)
    }
}

/// Every bad read of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankViolations {
    /// `ok` reads checked.
    pub reads: usize,
    pub violations: Vec<BankViolation>,
}

impl fmt::Display for BankViolations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "bank invariant violated by {} of {} reads:",
            self.violations.len(),
            self.reads
        )?;
        for v in self.violations.iter().take(20) {
            writeln!(f, "  {v}")?;
        }
        if self.violations.len() > 20 {
            writeln!(f, "  ... and {} more", self.violations.len() - 20)?;
        }
        Ok(())
    }
}

impl std::error::Error for BankViolations {}

/// The bank invariant to check.
#[derive(Clone, Debug)]
pub struct BankChecker {
    /// What every read must sum to.
    pub total: i64,
    /// If set, every read must show exactly these accounts.
    pub accounts: Option<Vec<Account>>,
    /// Whether balances may go below zero.
    pub allow_negative: bool,
}

impl BankChecker {
    /// Reads must sum to `total`; negative balances are violations.
    pub fn new(total: i64) -> Self {
        BankChecker {
            total,
            accounts: None,
            allow_negative: false,
        }
    }

    /// Reads must show exactly `accounts`.
    pub fn with_accounts(mut self, accounts: impl IntoIterator<Item = Account>) -> Self {
        let mut a: Vec<Account> = accounts.into_iter().collect();
        a.sort_unstable();
        a.dedup();
        self.accounts = Some(a);
        self
    }

    pub fn allow_negative(mut self, allow: bool) -> Self {
        self.allow_negative = allow;
        self
    }

    /// Checks a recorded history; returns the number of reads checked.
    pub fn check_history(&self, history: &BankHistory) -> Result<usize, BankViolations> {
        self.check(&history.operations())
    }

    /// Checks every `ok` read; returns the number of reads checked.
    pub fn check(&self, ops: &[BankOperation]) -> Result<usize, BankViolations> {
        let mut reads = 0;
        let mut violations = Vec::new();
        for op in ops {
            if op.op != BankOp::Read {
                continue;
            }
            let balances = match op.result() {
                None => continue,
                Some(BankRet::Read(b)) => b,
                Some(_) => {
                    violations.push(BankViolation {
                        op: op.clone(),
                        error: BankError::Malformed,
                    });
                    continue;
                }
            };
            reads += 1;
            if let Some(error) = self.check_read(balances) {
                violations.push(BankViolation {
                    op: op.clone(),
                    error,
                });
            }
        }
        if violations.is_empty() {
            Ok(reads)
        } else {
            Err(BankViolations { reads, violations })
        }
    }

    /// What is wrong with one read, if anything.
    pub fn check_read(&self, balances: &BTreeMap<Account, i64>) -> Option<BankError> {
        if let Some(accounts) = &self.accounts {
            let missing: Vec<Account> = accounts
                .iter()
                .filter(|a| !balances.contains_key(a))
                .copied()
                .collect();
            let unexpected: Vec<Account> = balances
                .keys()
                .filter(|a| accounts.binary_search(a).is_err())
                .copied()
                .collect();
            if !missing.is_empty() || !unexpected.is_empty() {
                return Some(BankError::WrongAccounts {
                    missing,
                    unexpected,
                });
            }
        }
        let sum: i64 = balances.values().sum();
        if sum != self.total {
            return Some(BankError::WrongTotal {
                sum,
                expected: self.total,
            });
        }
        if !self.allow_negative
            && let Some((&account, &balance)) = balances.iter().find(|(_, b)| **b < 0)
        {
            return Some(BankError::Negative { account, balance });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bal(v: &[i64]) -> BankRet {
        BankRet::Read(v.iter().enumerate().map(|(i, b)| (i as u64, *b)).collect())
    }

    fn history(reads: &[&[i64]]) -> BankHistory {
        let h = BankHistory::new();
        let t = h.invoke(
            0,
            BankOp::Transfer {
                from: 0,
                to: 1,
                amount: 5,
            },
        );
        for r in reads {
            let id = h.invoke(1, BankOp::Read);
            h.ok(id, bal(r));
        }
        let lost = h.invoke(2, BankOp::Read);
        h.info(lost, "timeout");
        h.ok(t, BankRet::Transfer);
        h
    }

    #[test]
    fn bank_reads_with_the_right_total_pass() {
        let h = history(&[&[50, 50], &[45, 55], &[100, 0]]);
        let checker = BankChecker::new(100).with_accounts([0, 1]);
        assert_eq!(checker.check_history(&h), Ok(3));
    }

    #[test]
    fn bank_read_with_a_wrong_total_is_caught() {
        let h = history(&[&[50, 50], &[45, 50], &[100, 0]]);
        let err = BankChecker::new(100).check_history(&h).unwrap_err();
        assert_eq!(err.reads, 3);
        assert_eq!(err.violations.len(), 1);
        assert_eq!(
            err.violations[0].error,
            BankError::WrongTotal {
                sum: 95,
                expected: 100
            }
        );
        assert!(err.to_string().contains("sum to 95, expected 100"), "{err}");
    }

    #[test]
    fn bank_read_missing_an_account_is_caught() {
        let h = history(&[&[100]]);
        let err = BankChecker::new(100)
            .with_accounts([0, 1])
            .check_history(&h)
            .unwrap_err();
        assert_eq!(
            err.violations[0].error,
            BankError::WrongAccounts {
                missing: vec![1],
                unexpected: vec![]
            }
        );
    }

    #[test]
    fn bank_negative_balance_is_caught_unless_allowed() {
        let h = history(&[&[110, -10]]);
        let err = BankChecker::new(100).check_history(&h).unwrap_err();
        assert!(matches!(
            err.violations[0].error,
            BankError::Negative {
                account: 1,
                balance: -10
            }
        ));
        assert_eq!(
            BankChecker::new(100).allow_negative(true).check_history(&h),
            Ok(1)
        );
    }
}
