//! Retention: the statements that delete old runs and purge deleted jobs, each touching a
//! bounded number of rows (the scheduler's `retention.rs` paces them).
//!
//! The unit of deletion is a *chain*: a first attempt (`first_run_id IS NULL`) with the
//! retry attempts that name it. A chain goes whole or not at all, so no kept run names a
//! previous attempt or first attempt that is gone. Other links between runs (`retry_of`,
//! `parent_run_id`, `job_state.run_id`) are history without a foreign key: a kept run may
//! name a deleted one, as it may name a purged job.
//!
//! Nothing here runs in a transaction of its own: each statement commits alone, holds
//! its row locks for its own few milliseconds, and a crash between two of them leaves
//! rows the next pass finds again (attempts are deleted before their first attempt, so a
//! chain's head is the last to go).

use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use uuid::Uuid;

statements! {
    /// Up to `$2` job ids after `$1`, in id order.
    pub(crate) const JOBS_AFTER: Statement =
        "SELECT id FROM jobs WHERE id > $1 ORDER BY id LIMIT $2";
    /// The runs of up to `$4` chains of jobs `$1` finished before `$2`, keeping each job's
    /// newest `$3` (see [`expired_chains`]).
    pub(crate) const EXPIRED_CHAINS: Statement = "WITH busy AS (
                 SELECT coalesce(r.first_run_id, r.id) AS chain
                 FROM run_outcomes o JOIN runs r ON r.id = o.run_id
                 WHERE o.processed_at IS NULL
                 UNION ALL
                 SELECT coalesce(r.first_run_id, r.id)
                 FROM notification_deliveries d JOIN runs r ON r.id = d.run_id
                 WHERE d.delivered_at IS NULL AND d.gave_up_at IS NULL
             ), heads AS (
                 SELECT h.id
                 FROM jobs j
                 CROSS JOIN LATERAL (
                     SELECT b.queued_at, b.id FROM runs b
                     WHERE b.job_id = j.id AND b.first_run_id IS NULL
                     ORDER BY b.queued_at DESC, b.id DESC
                     OFFSET greatest($3::bigint, j.pause_after_failures) LIMIT 1
                 ) AS boundary
                 CROSS JOIN LATERAL (
                     SELECT h.id FROM runs h
                     WHERE h.job_id = j.id AND h.first_run_id IS NULL
                       AND h.queued_at <= boundary.queued_at
                       AND (h.queued_at, h.id) <= (boundary.queued_at, boundary.id)
                       AND h.finished_at < $2
                       AND NOT EXISTS (SELECT 1 FROM runs a WHERE a.first_run_id = h.id
                                       AND (a.finished_at IS NULL OR a.finished_at >= $2))
                       AND h.id NOT IN (SELECT chain FROM busy)
                     ORDER BY h.queued_at
                     LIMIT $4
                 ) AS h
                 WHERE j.id = ANY($1)
                 LIMIT $4
             )
             SELECT id FROM (
                 SELECT a.id, 0 AS head FROM runs a WHERE a.first_run_id IN (SELECT id FROM heads)
                 UNION ALL
                 SELECT id, 1 FROM heads
             ) AS chain_runs
             ORDER BY head";
    /// Up to `$2` jobs deleted before `$1`, longest deleted first.
    pub(crate) const PURGEABLE_JOBS: Statement =
        "SELECT id FROM jobs WHERE deleted_at < $1 ORDER BY deleted_at, id LIMIT $2";
    /// Up to `$3` runs of job `$1` if it is deleted since before `$2`.
    pub(crate) const RUNS_OF_PURGEABLE_JOB: Statement =
        "SELECT r.id FROM runs r JOIN jobs j ON j.id = r.job_id
             WHERE r.job_id = $1 AND j.deleted_at < $2
             LIMIT $3";
    /// Deletes job `$1`, deleted since before `$2`, if it has no run.
    pub(crate) const DELETE_PURGED_JOB: Statement =
        "DELETE FROM jobs WHERE id = $1 AND deleted_at < $2
               AND NOT EXISTS (SELECT 1 FROM runs WHERE job_id = $1)";
    /// Deletes up to `$2` log chunks of runs `$1`.
    pub(crate) const DELETE_LOGS: Statement = "DELETE FROM run_logs WHERE (run_id, seq) IN
               (SELECT run_id, seq FROM run_logs WHERE run_id = ANY($1) LIMIT $2)";
    /// Deletes runs `$1`.
    pub(crate) const DELETE_RUNS: Statement = "DELETE FROM runs WHERE id = ANY($1)";
}

/// Up to `limit` job ids after `after` (all jobs, deleted ones too), in id order: the
/// pages [`expired_chains`] looks at.
pub async fn jobs_after(
    c: &impl GenericClient,
    after: Uuid,
    limit: i64,
) -> Result<Vec<Uuid>, Error> {
    let stmt = c.prepare_cached(JOBS_AFTER).await?;
    let rows = c.query(&stmt, &[&after, &limit]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The runs of up to `limit` chains of `jobs` that may be deleted: attempts first, then
/// the first attempts. A chain may be deleted when
/// - every run of it finished before `finished_before`;
/// - it is not among its job's newest `keep_per_job` chains, nor among the newest
///   `pause_after_failures` (the failure streak reads their outcomes);
/// - no outcome of it waits for the leader, and no notification of it waits to be sent.
///
/// Per job, the (keep+1)-th newest first attempt is found on `runs_job_idx`, and chains
/// are taken oldest first below it, on the same index: a job with nothing to delete costs
/// one short index scan, however old its kept runs are.
pub async fn expired_chains(
    c: &impl GenericClient,
    jobs: &[Uuid],
    finished_before: DateTime<Utc>,
    keep_per_job: i64,
    limit: i64,
) -> Result<Vec<Uuid>, Error> {
    let stmt = c.prepare_cached(EXPIRED_CHAINS).await?;
    let rows = c
        .query(&stmt, &[&jobs, &finished_before, &keep_per_job, &limit])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Up to `limit` jobs deleted before `deleted_before`, longest deleted first.
pub async fn purgeable_jobs(
    c: &impl GenericClient,
    deleted_before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, Error> {
    let stmt = c.prepare_cached(PURGEABLE_JOBS).await?;
    let rows = c.query(&stmt, &[&deleted_before, &limit]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Up to `limit` runs of `job`, if it is still deleted since before `deleted_before` (a
/// job restored meanwhile keeps its runs).
pub async fn runs_of_purgeable_job(
    c: &impl GenericClient,
    job: Uuid,
    deleted_before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, Error> {
    let stmt = c.prepare_cached(RUNS_OF_PURGEABLE_JOB).await?;
    let rows = c.query(&stmt, &[&job, &deleted_before, &limit]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Deletes `job` once it has no run left and is still deleted since before
/// `deleted_before`; its webhooks, state, children links and notification channels go
/// with it (a handful of rows each). False: a run is left, or the job was restored.
pub async fn delete_purged_job(
    c: &impl GenericClient,
    job: Uuid,
    deleted_before: DateTime<Utc>,
) -> Result<bool, Error> {
    let stmt = c.prepare_cached(DELETE_PURGED_JOB).await?;
    Ok(c.execute(&stmt, &[&job, &deleted_before]).await? == 1)
}

/// Deletes up to `limit` log chunks of `runs`; fewer than `limit` back means none is left.
pub async fn delete_logs(c: &impl GenericClient, runs: &[Uuid], limit: i64) -> Result<u64, Error> {
    let stmt = c.prepare_cached(DELETE_LOGS).await?;
    Ok(c.execute(&stmt, &[&runs, &limit]).await?)
}

/// Deletes `runs` (the caller bounds how many); their outcomes, idempotency keys,
/// notification deliveries and any log chunk left go with them (`ON DELETE CASCADE`,
/// each on an index of its `run_id`).
pub async fn delete_runs(c: &impl GenericClient, runs: &[Uuid]) -> Result<u64, Error> {
    let stmt = c.prepare_cached(DELETE_RUNS).await?;
    Ok(c.execute(&stmt, &[&runs]).await?)
}
