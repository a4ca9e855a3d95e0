//! Claiming runs and holding them: [`claim`] (`FOR UPDATE SKIP LOCKED`, a fresh lease
//! per run), [`renew_leases`] (the worker's heartbeat), [`record_artifact_version`] and
//! [`hand_back`] (a worker shutting down). Every change after the claim names the lease.

use super::row::{claimed_from_row, ClaimedRun};
use crate::states::RunState;
use crate::{Error, GenericClient};
use uuid::Uuid;

statements! {
    /// The claim: up to `$2` queued runs of group `$1` for worker `$3` (unless it is
    /// drained), each with a lease of `$4` ms; read by `row::claimed_from_row`, by column
    /// name. Public so that the bench's pgbench script is this very statement.
    pub const CLAIM: Statement = "WITH picked AS (
               SELECT r.id FROM runs r
               WHERE r.state = 'queued' AND r.worker_group = $1 AND r.not_before <= now()
                 AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = $3 AND w.drained)
                 AND (NOT r.exclusive OR (
                   NOT EXISTS (SELECT 1 FROM runs o WHERE o.job_id = r.job_id
                               AND o.state = 'running' AND o.exclusive)
                   AND NOT EXISTS (SELECT 1 FROM runs o WHERE o.job_id = r.job_id
                               AND o.state = 'queued'
                               AND (o.queued_at, o.id) < (r.queued_at, r.id))))
               ORDER BY r.queued_at LIMIT $2 FOR UPDATE OF r SKIP LOCKED)
             UPDATE runs r SET state = 'running', started_at = now(), worker_id = $3,
                    lease_id = gen_random_uuid(),
                    lease_expires_at = now() + $4 * interval '1 millisecond'
             FROM picked, jobs j, projects p
             WHERE r.id = picked.id AND j.id = r.job_id AND p.id = j.project_id
             RETURNING r.id, r.job_id, j.project_id, r.attempt, r.trigger::text AS trigger,
                       r.input, r.scheduled_for, j.target, j.env, p.config AS project_config,
                       j.timeout_seconds, j.max_attempts, r.lease_id,
                       extract(epoch FROM now() - greatest(r.queued_at, r.not_before))::float8
                         AS waited_seconds,
                       (SELECT s.data FROM job_state s WHERE s.job_id = r.job_id)
                         AS previous_state,
                       (SELECT coalesce(jsonb_object_agg(x.name, x.value), '{}'::jsonb)
                        FROM (SELECT ps.name, ps.value FROM project_secrets ps
                              WHERE ps.project_id = j.project_id LIMIT 1000) x) AS secrets,
                       j.network";

    /// Renews the leases (`$2` ms) of the runs `$3` that worker `$1` holds.
    pub(crate) const RENEW_LEASES: Statement =
        "UPDATE runs SET lease_expires_at = now() + $2 * interval '1 millisecond'
         WHERE id = ANY($3) AND worker_id = $1 AND state = 'running'
         RETURNING id, lease_id, cancel_requested";

    /// Records artifact version `$3` of run `$1` held under lease `$2`.
    pub(crate) const RECORD_ARTIFACT_VERSION: Statement =
        "UPDATE runs SET artifact_version = $3
         WHERE id = $1 AND lease_id = $2 AND state = 'running'";

    /// Puts run `$1` held under lease `$2` back in the queue, and wakes its group.
    pub(crate) const HAND_BACK: Statement = concat!(
        "UPDATE runs SET state = 'queued', started_at = NULL, worker_id = NULL,
                lease_id = NULL, lease_expires_at = NULL, not_before = now()
         WHERE id = $1 AND lease_id = $2 AND state = 'running'
         RETURNING pg_notify('",
        runs_channel!(),
        "', worker_group)"
    );
}

/// Moves up to `limit` claimable runs of `group` to `running` on `worker_id`, oldest
/// first, each with a fresh lease of `lease_ms`. A drained worker claims nothing. A run
/// of a `queue`/`skip` job is claimable only when it is the job's oldest queued run and
/// none of the job's runs is running; the unique index on running exclusive runs fences
/// two workers racing for the same job (SQLSTATE 23505: claim again). The job's state
/// and the project's secrets come back with each run, so that starting it needs no
/// further round trip.
pub async fn claim(
    c: &impl GenericClient,
    worker_id: Uuid,
    group: &str,
    limit: i64,
    lease_ms: i64,
) -> Result<Vec<ClaimedRun>, Error> {
    let stmt = c.prepare_cached(CLAIM).await?;
    let lease = lease_ms as f64;
    let rows = c
        .query(&stmt, &[&group, &limit, &worker_id, &lease])
        .await?;
    rows.iter().map(claimed_from_row).collect()
}

/// A run this worker holds, as its heartbeat sees it.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    pub id: Uuid,
    pub lease_id: Uuid,
    pub cancel_requested: bool,
}

/// Renews the leases of the runs in `run_ids` that `worker_id` still holds; returns
/// them. A run the worker thinks it holds and that is missing here was taken away
/// (rescued): it must stop. Only the runs the worker is executing are renewed: a run
/// claimed for it that it never started (a commit whose answer was lost) keeps its
/// first lease, expires, and is rescued like a dead worker's.
pub async fn renew_leases(
    c: &impl GenericClient,
    worker_id: Uuid,
    run_ids: &[Uuid],
    lease_ms: i64,
) -> Result<Vec<Held>, Error> {
    let stmt = c.prepare_cached(RENEW_LEASES).await?;
    let rows = c
        .query(&stmt, &[&worker_id, &(lease_ms as f64), &run_ids])
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Held {
                id: r.try_get("id")?,
                lease_id: r.try_get("lease_id")?,
                cancel_requested: r.try_get("cancel_requested")?,
            })
        })
        .collect()
}

/// Records which artifact version a run held under `lease_id` executes.
pub async fn record_artifact_version(
    c: &impl GenericClient,
    run_id: Uuid,
    lease_id: Uuid,
    version: i32,
) -> Result<bool, Error> {
    let stmt = c.prepare_cached(RECORD_ARTIFACT_VERSION).await?;
    Ok(c.execute(&stmt, &[&run_id, &lease_id, &version]).await? == 1)
}

/// Puts a run held under `lease_id` back in the queue (a worker shutting down). It
/// keeps its attempt number: it will be executed again from the start.
pub async fn hand_back(
    c: &impl GenericClient,
    run_id: Uuid,
    lease_id: Uuid,
) -> Result<bool, Error> {
    debug_assert!(RunState::Running.can_become(RunState::Queued));
    let stmt = c.prepare_cached(HAND_BACK).await?;
    Ok(c.query_opt(&stmt, &[&run_id, &lease_id]).await?.is_some())
}
