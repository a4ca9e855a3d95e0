//! Every SQL statement of jobcenter, the migrations, the row types and state enums.
//!
//! One module per table. Every statement is a complete `const` declared in its module's
//! one `statements!` block, which also registers it in [`statements::ALL`]; one test
//! (`tests/e2e/statements.rs`) prepares them all against the migrated schema, since
//! tokio-postgres does not check SQL at compile time. No statement is put together at run
//! time: a part shared by several statements (a column list, a channel name) is a macro
//! that expands to a literal, joined with `concat!` at compile time. Rows are read by
//! column name, so that a column added to a list cannot shift the others.
//!
//! Every state change of a run is a compare-and-set on its current state; zero rows
//! back means someone else changed it first, and that is an answer, not a panic.
//!
//! Architecture invariant: only this crate contains SQL; it knows nothing of HTTP.

// The channel names as literals, for the statements that notify or listen (`concat!`
// takes literals only); the `*_CHANNEL` constants below are the same names.
macro_rules! runs_channel {
    () => {
        "jobcenter_runs"
    };
}
macro_rules! cancel_channel {
    () => {
        "jobcenter_cancel"
    };
}
macro_rules! run_finished_channel {
    () => {
        "jobcenter_run_finished"
    };
}
macro_rules! run_logs_channel {
    () => {
        "jobcenter_run_logs"
    };
}
macro_rules! users_changed_channel {
    () => {
        "jobcenter_users_changed"
    };
}

#[macro_use]
pub mod statements;

pub mod api_tokens;
pub mod artifacts;
pub mod audit;
pub mod db;
pub mod job_children;
pub mod job_state;
pub mod jobs;
pub mod leadership;
pub mod listen;
pub mod login_throttle;
pub mod notification_channels;
pub mod notification_deliveries;
pub mod project_secrets;
pub mod projects;
pub mod retention;
pub mod run_idempotency_keys;
pub mod run_logs;
pub mod run_outcomes;
pub mod runs;
pub mod savepoint;
pub mod states;
pub mod stats;
pub mod users;
pub mod webhooks;
pub mod workers;

pub use db::{connect_direct, migrate, migrations_applied, new_pool, Error, Pool};
pub use deadpool_postgres::{GenericClient, Transaction};

/// Channel a run's insertion notifies so idle workers wake up. Payload: the worker group,
/// or `group@unix_ms` for runs claimable only from that instant (see
/// [`runs::insert_ticks`]).
pub const RUNS_CHANNEL: &str = runs_channel!();
/// Channel a cancel request notifies (payload: run id) so the holding worker kills it.
pub const CANCEL_CHANNEL: &str = cancel_channel!();
pub use deadpool_postgres::PoolError;
pub use tokio_postgres::Error as DbError;

/// Raised (by a trigger) when a run reaches a final state; payload: the run id.
pub const RUN_FINISHED_CHANNEL: &str = run_finished_channel!();
/// Raised (by a trigger) when log chunks of a run are appended; payload: the run id.
pub const RUN_LOGS_CHANNEL: &str = run_logs_channel!();
/// Raised (by a trigger) when a user's role or disabled flag changes or a user is
/// deleted; no payload. API processes forget the users they remembered.
pub const USERS_CHANGED_CHANNEL: &str = users_changed_channel!();

/// The advisory lock key of scheduling leadership ("jobclead"); the scheduler takes it,
/// `/metrics` reports who holds it.
pub const LEADER_LOCK_KEY: i64 = 0x6a6f_6263_6c65_6164;
