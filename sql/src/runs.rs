//! The `runs` table: one row per execution attempt, and the queue itself.
//!
//! A run is queued by an insert that notifies [`crate::RUNS_CHANNEL`] in the same
//! statement, claimed with `FOR UPDATE SKIP LOCKED`, and finished by a compare-and-set
//! that only the worker holding it can win.

use crate::states::{RunState, RunTrigger};
use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use jobcenter_core::target::Target;
use serde_json::Value;
use std::collections::BTreeMap;
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Run {
    pub id: Uuid,
    pub job_id: Uuid,
    pub project_id: Uuid,
    pub state: RunState,
    pub trigger: RunTrigger,
    pub attempt: i32,
    pub worker_group: String,
    pub input: Value,
    pub result: Option<String>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub worker_id: Option<Uuid>,
    pub cancel_requested: bool,
}

pub struct NewRun<'a> {
    pub job_id: Uuid,
    pub trigger: RunTrigger,
    pub input: &'a Value,
    pub worker_group: &'a str,
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// A run a worker has just claimed, with everything needed to execute it.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    pub id: Uuid,
    pub job_id: Uuid,
    pub project_id: Uuid,
    pub attempt: i32,
    pub trigger: RunTrigger,
    pub input: Value,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub target: Target,
    pub env: BTreeMap<String, String>,
    pub project_config: BTreeMap<String, String>,
    pub timeout_seconds: i32,
}

/// The outcome a worker reports for a run it holds.
pub struct Outcome<'a> {
    pub state: RunState,
    pub exit_code: Option<i32>,
    pub result: Option<&'a str>,
    pub error: Option<&'a str>,
}

const COLUMNS: &str = "r.id, r.job_id, j.project_id, r.state::text, r.trigger::text, r.attempt,
    r.worker_group, r.input, r.result, r.exit_code, r.error, r.scheduled_for, r.queued_at,
    r.started_at, r.finished_at, r.worker_id, r.cancel_requested";

fn corrupt(column: &'static str, value: String) -> Error {
    Error::Corrupt {
        column,
        reason: value,
    }
}

fn from_row(row: &Row) -> Result<Run, Error> {
    let state: String = row.get(3);
    let trigger: String = row.get(4);
    Ok(Run {
        id: row.get(0),
        job_id: row.get(1),
        project_id: row.get(2),
        state: RunState::parse(&state).ok_or_else(|| corrupt("runs.state", state))?,
        trigger: RunTrigger::parse(&trigger).ok_or_else(|| corrupt("runs.trigger", trigger))?,
        attempt: row.get(5),
        worker_group: row.get(6),
        input: row.get(7),
        result: row.get(8),
        exit_code: row.get(9),
        error: row.get(10),
        scheduled_for: row.get(11),
        queued_at: row.get(12),
        started_at: row.get(13),
        finished_at: row.get(14),
        worker_id: row.get(15),
        cancel_requested: row.get(16),
    })
}

/// Queues a run and wakes the workers of its group, in one statement. A schedule tick
/// that already has its run inserts nothing and returns `None`.
pub async fn insert(c: &impl GenericClient, new: &NewRun<'_>) -> Result<Option<Run>, Error> {
    let sql = format!(
        "WITH r AS (
           INSERT INTO runs (job_id, trigger, input, worker_group, scheduled_for)
           VALUES ($1, $2::text::run_trigger, $3, $4, $5)
           ON CONFLICT (job_id, scheduled_for) WHERE trigger = 'schedule' AND attempt = 1
           DO NOTHING RETURNING *)
         SELECT {COLUMNS}, pg_notify('{channel}', r.worker_group)
         FROM r JOIN jobs j ON j.id = r.job_id",
        channel = crate::RUNS_CHANNEL
    );
    let stmt = c.prepare_cached(&sql).await?;
    let row = c
        .query_opt(
            &stmt,
            &[
                &new.job_id,
                &new.trigger.as_str(),
                new.input,
                &new.worker_group,
                &new.scheduled_for,
            ],
        )
        .await?;
    row.map(|r| from_row(&r)).transpose()
}

/// One run, scoped to `owner` (None: any owner), whether or not its job is deleted.
pub async fn get(
    c: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<Run>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM runs r JOIN jobs j ON j.id = r.job_id
         JOIN projects p ON p.id = j.project_id
         WHERE r.id = $1 AND ($2::uuid IS NULL OR p.owner_id = $2)"
    );
    let stmt = c.prepare_cached(&sql).await?;
    c.query_opt(&stmt, &[&id, &owner])
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// A job's runs, newest first, strictly older than the `before` cursor.
pub async fn list_by_job(
    c: &impl GenericClient,
    job_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Run>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM runs r JOIN jobs j ON j.id = r.job_id
         WHERE r.job_id = $1 AND ($2::timestamptz IS NULL OR (r.queued_at, r.id) < ($2, $3))
         ORDER BY r.queued_at DESC, r.id DESC LIMIT $4"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let (at, cursor_id) = before.unzip();
    let rows = c.query(&stmt, &[&job_id, &at, &cursor_id, &limit]).await?;
    rows.iter().map(from_row).collect()
}

/// Moves up to `limit` queued runs of `group` to `running` on `worker_id`, oldest first.
pub async fn claim(
    c: &impl GenericClient,
    worker_id: Uuid,
    group: &str,
    limit: i64,
) -> Result<Vec<ClaimedRun>, Error> {
    let stmt = c
        .prepare_cached(
            "WITH picked AS (
               SELECT id FROM runs WHERE state = 'queued' AND worker_group = $1
               ORDER BY queued_at LIMIT $2 FOR UPDATE SKIP LOCKED)
             UPDATE runs r SET state = 'running', started_at = now(), worker_id = $3
             FROM picked, jobs j, projects p
             WHERE r.id = picked.id AND j.id = r.job_id AND p.id = j.project_id
             RETURNING r.id, r.job_id, j.project_id, r.attempt, r.trigger::text, r.input,
                       r.scheduled_for, j.target, j.env, p.config, j.timeout_seconds",
        )
        .await?;
    let rows = c.query(&stmt, &[&group, &limit, &worker_id]).await?;
    rows.iter().map(claimed_from_row).collect()
}

fn json_column<T: serde::de::DeserializeOwned>(
    row: &Row,
    index: usize,
    column: &'static str,
) -> Result<T, Error> {
    serde_json::from_value(row.get(index)).map_err(|e| corrupt(column, e.to_string()))
}

fn claimed_from_row(row: &Row) -> Result<ClaimedRun, Error> {
    let trigger: String = row.get(4);
    Ok(ClaimedRun {
        id: row.get(0),
        job_id: row.get(1),
        project_id: row.get(2),
        attempt: row.get(3),
        trigger: RunTrigger::parse(&trigger).ok_or_else(|| corrupt("runs.trigger", trigger))?,
        input: row.get(5),
        scheduled_for: row.get(6),
        target: json_column(row, 7, "jobs.target")?,
        env: json_column(row, 8, "jobs.env")?,
        project_config: json_column(row, 9, "projects.config")?,
        timeout_seconds: row.get(10),
    })
}

/// Records the outcome of a run `worker_id` holds. False: the run is not (or no longer)
/// running on this worker, and nothing was changed.
pub async fn finish(
    c: &impl GenericClient,
    run_id: Uuid,
    worker_id: Uuid,
    outcome: &Outcome<'_>,
) -> Result<bool, Error> {
    debug_assert!(RunState::Running.can_become(outcome.state));
    let stmt = c
        .prepare_cached(
            "UPDATE runs SET state = $3::text::run_state, exit_code = $4, result = $5, error = $6,
                    finished_at = now()
             WHERE id = $1 AND worker_id = $2 AND state = 'running'",
        )
        .await?;
    let changed = c
        .execute(
            &stmt,
            &[
                &run_id,
                &worker_id,
                &outcome.state.as_str(),
                &outcome.exit_code,
                &outcome.result,
                &outcome.error,
            ],
        )
        .await?;
    Ok(changed == 1)
}

/// Takes a job's queued runs out of the queue (they end `cancelled` with `reason`).
pub async fn cancel_queued_for_job(
    c: &impl GenericClient,
    job_id: Uuid,
    reason: &str,
) -> Result<u64, Error> {
    let stmt = c
        .prepare_cached(
            "UPDATE runs SET state = 'cancelled', error = $2, finished_at = now()
             WHERE job_id = $1 AND state = 'queued'",
        )
        .await?;
    Ok(c.execute(&stmt, &[&job_id, &reason]).await?)
}

/// Filters of the runs collection; `None` means any.
#[derive(Debug, Default, Clone)]
pub struct RunFilter {
    pub state: Option<RunState>,
    pub job_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    /// Queued at or after.
    pub from: Option<DateTime<Utc>>,
    /// Queued before.
    pub to: Option<DateTime<Utc>>,
}

/// Runs visible to `owner` matching `filter`, newest first, strictly older than `before`.
pub async fn list(
    c: &impl GenericClient,
    owner: Option<Uuid>,
    filter: &RunFilter,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Run>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM runs r JOIN jobs j ON j.id = r.job_id
         JOIN projects p ON p.id = j.project_id
         WHERE ($1::uuid IS NULL OR p.owner_id = $1)
           AND ($2::text IS NULL OR r.state = $2::text::run_state)
           AND ($3::uuid IS NULL OR r.job_id = $3)
           AND ($4::uuid IS NULL OR j.project_id = $4)
           AND ($5::timestamptz IS NULL OR r.queued_at >= $5)
           AND ($6::timestamptz IS NULL OR r.queued_at < $6)
           AND ($7::timestamptz IS NULL OR (r.queued_at, r.id) < ($7, $8))
         ORDER BY r.queued_at DESC, r.id DESC LIMIT $9"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let (at, cursor_id) = before.unzip();
    let state = filter.state.map(RunState::as_str);
    let rows = c
        .query(
            &stmt,
            &[
                &owner,
                &state,
                &filter.job_id,
                &filter.project_id,
                &filter.from,
                &filter.to,
                &at,
                &cursor_id,
                &limit,
            ],
        )
        .await?;
    rows.iter().map(from_row).collect()
}
