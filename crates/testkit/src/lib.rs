//! Test support for Jepsen-style fault tests (DESIGN.md, "Testing levels", level 6).
//!
//! - [`history`]: a thread-safe recorder of operations as they happen (invoke and
//!   completion events: `ok`, `fail` = definitely did not happen, `info` = unknown).
//! - [`linearizability`]: a per-key register linearizability checker (Wing–Gong /
//!   Lowe backtracking search with memoization, as in Porcupine and Knossos).
//! - [`bank`]: a checker for bank-transfer histories (every read sums to the total).
//! - [`workload`]: a small driver that runs concurrent random register operations
//!   against any client implementing [`workload::RegisterClient`] and records the
//!   history; [`workload::KvRegister`] adapts a [`tardigrade_kv::Db`].
//!
//! The checkers are shown to fail: the crate's tests feed them hand-written and
//! generated violations, and run the workload against a deliberately broken register.

pub mod bank;
pub mod history;
pub mod linearizability;
pub mod workload;

pub use bank::{BankChecker, BankHistory, BankOp, BankRet};
pub use history::{
    Completion, Event, EventKind, History, Key, OpId, Operation, RegisterHistory, RegisterOp,
    RegisterRet, Value,
};
pub use linearizability::{
    CheckError, Checker, RegisterOperation, Violation, check_operations, check_register_history,
};
pub use workload::{
    ClientError, KvRegister, RegisterClient, RegisterWorkload, classify_kv_error, register_workload,
};
