//! The nemesis suite: Jepsen-style tests of a cluster of real `tardigrade`
//! processes.
//!
//! A run starts a cluster on loopback with on-disk stores ([`cluster`]),
//! drives SQL workloads against every node with client-side failover
//! ([`client`], [`workloads`]), injects faults on a schedule drawn from a
//! seed ([`nemesis`]: kill -9 and restart, SIGSTOP/SIGCONT, clock jumps,
//! restart of all nodes), counts per-second throughput and the seconds each
//! fault left at zero ([`stats`]), and judges each workload's history with a
//! checker ([`checkers`], plus the testkit's bank and linearizability
//! checkers). [`runner`] ties it together; `docs/nemesis.md` describes the
//! workloads, how to run them and how to read the output.

pub mod checkers;
pub mod client;
pub mod cluster;
pub mod nemesis;
pub mod runner;
pub mod stats;
pub mod workloads;
