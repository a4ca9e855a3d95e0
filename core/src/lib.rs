//! Shared building blocks of jobcenter that are neither SQL nor HTTP: configuration,
//! schedule math, job targets and the contract between a worker and the process it runs.
//!
//! Architecture invariant: this crate depends on no other crate of ours and knows
//! nothing of HTTP or SQL.

pub mod artifacts;
pub mod backfill;
pub mod config;
pub mod firing;
pub mod jitter;
pub mod metrics;
pub mod password_policy;
pub mod retry;
pub mod run_contract;
pub mod sandbox;
pub mod schedule;
pub mod ssrf;
pub mod target;
