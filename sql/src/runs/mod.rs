//! The `runs` table: one row per execution attempt, and the queue itself.
//!
//! A run is queued by an insert that notifies [`crate::RUNS_CHANNEL`] in the same
//! statement, claimed with `FOR UPDATE SKIP LOCKED`, and finished by a compare-and-set
//! that only the worker holding it can win.
//!
//! One module per job: `row` (the row types, decoded by column name), `insert` (queueing),
//! `claim` (claiming and holding), `finish` (outcomes, cancels, expired leases) and
//! `query` (reads). Everything public is re-exported here.

#[macro_use]
mod row;
pub(crate) mod claim;
pub(crate) mod finish;
pub(crate) mod insert;
pub(crate) mod query;

pub use claim::{claim, hand_back, record_artifact_version, renew_leases, Held, CLAIM};
pub use finish::{
    cancel, cancel_queued_for_job, finish, finish_and_claim, finish_many, lock_expired,
    CancelOutcome, Expired, Finish, NextClaim, Outcome,
};
pub use insert::{
    insert, insert_backfill, insert_next_attempt, insert_ticks, lock_job_queues, Guard, QueuedBy,
    RunInsert, Tick, INSERT,
};
pub use query::{get, get_with_children, list, list_by_job, next_attempt, RunFilter};
pub use row::{ClaimedRun, Run};
