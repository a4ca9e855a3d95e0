//! The `run_outcomes` outbox: one row per run chain that reached its final outcome,
//! written by a trigger in the transaction that ended the run (see migration V9), and
//! consumed once by the scheduling leader (child jobs, pause on failure).

use crate::states::RunState;
use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use uuid::Uuid;

statements! {
    /// Up to `$1` unprocessed outcomes, oldest first, locked.
    pub(crate) const LOCK_PENDING: Statement =
        "SELECT o.run_id, o.job_id, o.state::text AS state, r.result, o.finished_at
             FROM run_outcomes o JOIN runs r ON r.id = o.run_id
             WHERE o.processed_at IS NULL
             ORDER BY o.finished_at LIMIT $1
             FOR UPDATE OF o SKIP LOCKED";
    /// Run `$1`'s outcome is processed.
    pub(crate) const MARK_PROCESSED: Statement =
        "UPDATE run_outcomes SET processed_at = now() WHERE run_id = $1";
    /// Whether job `$1`'s last `$2` outcomes since `$3` all failed or timed out.
    pub(crate) const FAILED_IN_A_ROW: Statement =
        "SELECT count(*) FILTER (WHERE state IN ('failed', 'timed_out')) = $2
             FROM (SELECT state FROM run_outcomes
                   WHERE job_id = $1 AND state <> 'cancelled'
                     AND finished_at > coalesce($3, '-infinity'::timestamptz)
                   ORDER BY finished_at DESC LIMIT $2) AS latest";
    /// The state of job `$1`'s last outcome before run `$2`'s, finished at `$3`.
    pub(crate) const PREVIOUS_STATE: Statement = "SELECT state::text FROM run_outcomes
             WHERE job_id = $1 AND run_id <> $2 AND state <> 'cancelled'
               AND finished_at <= $3
             ORDER BY finished_at DESC LIMIT 1";
}

/// A final outcome waiting to be acted on, with what its consumers need of the run.
#[derive(Debug, Clone)]
pub struct PendingOutcome {
    pub run_id: Uuid,
    pub job_id: Uuid,
    pub state: RunState,
    pub result: Option<String>,
    pub finished_at: DateTime<Utc>,
}

/// Up to `limit` unprocessed outcomes, oldest first, locked until the transaction ends
/// (other schedulers skip them).
pub async fn lock_pending(
    c: &impl GenericClient,
    limit: i64,
) -> Result<Vec<PendingOutcome>, Error> {
    let stmt = c.prepare_cached(LOCK_PENDING).await?;
    c.query(&stmt, &[&limit])
        .await?
        .iter()
        .map(|row| {
            let state: String = row.try_get("state")?;
            Ok(PendingOutcome {
                run_id: row.try_get("run_id")?,
                job_id: row.try_get("job_id")?,
                state: RunState::parse(&state).ok_or(Error::Corrupt {
                    column: "run_outcomes.state",
                    reason: state,
                })?,
                result: row.try_get("result")?,
                finished_at: row.try_get("finished_at")?,
            })
        })
        .collect()
}

pub async fn mark_processed(c: &impl GenericClient, run_id: Uuid) -> Result<(), Error> {
    let stmt = c.prepare_cached(MARK_PROCESSED).await?;
    c.execute(&stmt, &[&run_id]).await?;
    Ok(())
}

/// True when the last `count` outcomes of `job_id` since `since` (cancelled runs do not
/// count either way) all failed or timed out.
pub async fn failed_in_a_row(
    c: &impl GenericClient,
    job_id: Uuid,
    count: i32,
    since: Option<DateTime<Utc>>,
) -> Result<bool, Error> {
    let stmt = c.prepare_cached(FAILED_IN_A_ROW).await?;
    let row = c
        .query_one(&stmt, &[&job_id, &i64::from(count), &since])
        .await?;
    Ok(row.get(0))
}

/// The state of `job_id`'s final outcome before `run_id`'s (cancelled runs do not count),
/// if there is one: a success after a failure is a recovery.
pub async fn previous_state(
    c: &impl GenericClient,
    job_id: Uuid,
    run_id: Uuid,
    finished_at: DateTime<Utc>,
) -> Result<Option<RunState>, Error> {
    let stmt = c.prepare_cached(PREVIOUS_STATE).await?;
    let row = c
        .query_opt(&stmt, &[&job_id, &run_id, &finished_at])
        .await?;
    Ok(row.and_then(|r| RunState::parse(r.get::<_, &str>(0))))
}
