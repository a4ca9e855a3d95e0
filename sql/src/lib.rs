//! Every SQL statement of jobcenter, the migrations, the row types and state enums.
//!
//! One module per table. Statements are `const` strings run with `prepare_cached`.
//! Every state change of a run is a compare-and-set on its current state; zero rows
//! back means someone else changed it first, and that is an answer, not a panic.
//!
//! Architecture invariant: only this crate contains SQL; it knows nothing of HTTP.

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
pub const RUNS_CHANNEL: &str = "jobcenter_runs";
/// Channel a cancel request notifies (payload: run id) so the holding worker kills it.
pub const CANCEL_CHANNEL: &str = "jobcenter_cancel";
pub use deadpool_postgres::PoolError;
pub use tokio_postgres::Error as DbError;

/// Raised (by a trigger) when a run reaches a final state; payload: the run id.
pub const RUN_FINISHED_CHANNEL: &str = "jobcenter_run_finished";
/// Raised (by a trigger) when log chunks of a run are appended; payload: the run id.
pub const RUN_LOGS_CHANNEL: &str = "jobcenter_run_logs";
/// Raised (by a trigger) when a user's role or disabled flag changes or a user is
/// deleted; no payload. API processes forget the users they remembered.
pub const USERS_CHANGED_CHANNEL: &str = "jobcenter_users_changed";

/// The advisory lock key of scheduling leadership ("jobclead"); the scheduler takes it,
/// `/metrics` reports who holds it.
pub const LEADER_LOCK_KEY: i64 = 0x6a6f_6263_6c65_6164;
