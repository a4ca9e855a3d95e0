//! The `run_outcomes` outbox: one row per run chain that reached its final outcome,
//! written by a trigger in the transaction that ended the run (see migration V9), and
//! consumed once by the scheduling leader (child jobs, pause on failure).

use crate::states::RunState;
use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use uuid::Uuid;

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
    let stmt = c
        .prepare_cached(
            "SELECT o.run_id, o.job_id, o.state::text, r.result, o.finished_at
             FROM run_outcomes o JOIN runs r ON r.id = o.run_id
             WHERE o.processed_at IS NULL
             ORDER BY o.finished_at LIMIT $1
             FOR UPDATE OF o SKIP LOCKED",
        )
        .await?;
    c.query(&stmt, &[&limit])
        .await?
        .iter()
        .map(|row| {
            let state: String = row.get(2);
            Ok(PendingOutcome {
                run_id: row.get(0),
                job_id: row.get(1),
                state: RunState::parse(&state).ok_or(Error::Corrupt {
                    column: "run_outcomes.state",
                    reason: state,
                })?,
                result: row.get(3),
                finished_at: row.get(4),
            })
        })
        .collect()
}

pub async fn mark_processed(c: &impl GenericClient, run_id: Uuid) -> Result<(), Error> {
    let stmt = c
        .prepare_cached("UPDATE run_outcomes SET processed_at = now() WHERE run_id = $1")
        .await?;
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
    let stmt = c
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE state IN ('failed', 'timed_out')) = $2
             FROM (SELECT state FROM run_outcomes
                   WHERE job_id = $1 AND state <> 'cancelled'
                     AND finished_at > coalesce($3, '-infinity'::timestamptz)
                   ORDER BY finished_at DESC LIMIT $2) AS latest",
        )
        .await?;
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
    let stmt = c
        .prepare_cached(
            "SELECT state::text FROM run_outcomes
             WHERE job_id = $1 AND run_id <> $2 AND state <> 'cancelled'
               AND finished_at <= $3
             ORDER BY finished_at DESC LIMIT 1",
        )
        .await?;
    let row = c
        .query_opt(&stmt, &[&job_id, &run_id, &finished_at])
        .await?;
    Ok(row.and_then(|r| RunState::parse(r.get::<_, &str>(0))))
}
