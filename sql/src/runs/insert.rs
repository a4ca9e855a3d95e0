//! Queueing runs: [`insert`] (one run, under the [`Guard`] its caller picks, with its
//! audit record when there is one), [`insert_next_attempt`] (a retry or a rescue),
//! [`insert_backfill`] and [`insert_ticks`] (many at once), and [`lock_job_queues`], the
//! queue lock that makes the `skip` policy exact. Each insert wakes the workers of the
//! run's group in the same statement (`pg_notify` on [`crate::RUNS_CHANNEL`]).

use super::row::{from_row, Run};
use crate::states::RunTrigger;
use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// The predicate of the unique index `runs_one_per_tick_idx` (migration V10): first
/// attempts of scheduled and backfilled ticks.
macro_rules! one_per_tick {
    () => {
        "attempt = 1 AND trigger NOT IN ('manual', 'webhook', 'retry')"
    };
}

/// The statement of [`insert`]: the job's row must also pass `$job_filter` (a condition
/// on `jobs`, or nothing), and `$more` (further data-modifying CTEs, which see the
/// inserted run as `r`) comes after its own. The run goes to its job's worker group, as
/// read by the statement. Parameters 1 to 6: job, trigger, input, scheduled tick,
/// `retry_of`, `parent_run_id`.
macro_rules! insert_run {
    ($job_filter:expr, $more:expr) => {
        concat!(
            "WITH j AS (SELECT concurrency, worker_group FROM jobs WHERE id = $1",
            $job_filter,
            "),
             busy AS (SELECT EXISTS (SELECT 1 FROM runs WHERE job_id = $1
                                     AND state IN ('queued', 'running')) AS busy),
             r AS (
               INSERT INTO runs (job_id, trigger, input, worker_group, scheduled_for, retry_of,
                                 parent_run_id, exclusive, state, finished_at, error)
               SELECT $1, $2::text::run_trigger, $3, j.worker_group, $4, $5,
                      $6, j.concurrency <> 'allow',
                      CASE WHEN skip THEN 'skipped' ELSE 'queued' END::run_state,
                      CASE WHEN skip THEN now() END,
                      CASE WHEN skip THEN 'skipped: another run of the job was in progress' END
               FROM j, busy, LATERAL (SELECT j.concurrency = 'skip' AND busy.busy AS skip) s
               ON CONFLICT DO NOTHING RETURNING *)",
            $more,
            announced_runs!()
        )
    };
}

/// The final `SELECT` of a statement whose CTE `r` inserted runs: each run as a row, and
/// a notification to its worker group.
macro_rules! announced_runs {
    () => {
        concat!(
            "
             SELECT ",
            run_columns!(),
            ", pg_notify('",
            runs_channel!(),
            "', r.worker_group)
             FROM r JOIN jobs j ON j.id = r.job_id"
        )
    };
}

/// The audit record of a run (parameters 7 to 9: actor, action, detail).
macro_rules! audit_record {
    () => {
        ", a AS (INSERT INTO audit_log (actor_id, action, subject, detail)
                 SELECT $7, $8, 'run:' || r.id, $9 FROM r)"
    };
}

/// The job is live, enabled, owned by the last parameter (when it is not null) and not
/// under the `skip` policy.
macro_rules! open_job {
    ($owner:literal) => {
        concat!(
            " AND deleted_at IS NULL AND enabled AND concurrency <> 'skip'
               AND (",
            $owner,
            "::uuid IS NULL OR EXISTS (SELECT 1 FROM projects p
                                       WHERE p.id = project_id AND p.owner_id = ",
            $owner,
            "))"
        )
    };
}

statements! {
    /// Locks the queues of the `skip` jobs among `$1` (see [`lock_job_queues`]).
    pub(crate) const LOCK_JOB_QUEUES: Statement =
        "SELECT count(pg_advisory_xact_lock(hashtextextended(id::text, 7)))
         FROM (SELECT id FROM jobs WHERE id = ANY($1) AND concurrency = 'skip'
               ORDER BY id) skip_jobs";

    /// The plain insert (no job filter, no audit record). Public so that the bench's
    /// pgbench script is this very statement.
    pub const INSERT: Statement = insert_run!("", "");
    /// [`INSERT`] that also writes the run's audit record (parameters 7 to 9).
    pub(crate) const INSERT_AUDITED: Statement = insert_run!("", audit_record!());
    /// [`INSERT`] that queues the run only if its job is open (owner: parameter 7).
    pub(crate) const INSERT_IF_OPEN: Statement = insert_run!(open_job!("$7"), "");
    /// [`INSERT_AUDITED`] that queues the run only if its job is open (owner:
    /// parameter 10).
    pub(crate) const INSERT_AUDITED_IF_OPEN: Statement =
        insert_run!(open_job!("$10"), audit_record!());

    pub(crate) const BEGIN: Statement = "BEGIN";
    pub(crate) const COMMIT: Statement = "COMMIT";

    /// The attempt after run `$1`, claimable `$2` ms from now (see [`insert_next_attempt`]).
    pub(crate) const INSERT_NEXT_ATTEMPT: Statement = concat!(
        "WITH p AS (SELECT * FROM runs WHERE id = $1),
         r AS (
           INSERT INTO runs (job_id, trigger, input, worker_group, scheduled_for, attempt,
                             exclusive, first_run_id, previous_run_id, retry_of, parent_run_id,
                             not_before)
           SELECT job_id, trigger, input, worker_group, scheduled_for, attempt + 1,
                  exclusive, coalesce(first_run_id, id), id, retry_of, parent_run_id,
                  now() + $2 * interval '1 millisecond' FROM p
           ON CONFLICT (previous_run_id) WHERE previous_run_id IS NOT NULL
           DO NOTHING RETURNING *)",
        announced_runs!()
    );

    /// Backfilled runs of job `$1` in group `$2`, one per tick of `$3` (see
    /// [`insert_backfill`]).
    pub(crate) const INSERT_BACKFILL: Statement = concat!(
        "WITH r AS (
           INSERT INTO runs (job_id, trigger, worker_group, scheduled_for, exclusive, queued_at)
           SELECT $1, 'backfill', $2, tick, j.concurrency <> 'allow', clock_timestamp()
           FROM jobs j, unnest($3::timestamptz[]) AS tick
           WHERE j.id = $1 ORDER BY tick
           ON CONFLICT (job_id, scheduled_for) WHERE ",
        one_per_tick!(),
        "
           DO NOTHING RETURNING id, scheduled_for, worker_group)
         SELECT id, pg_notify('",
        runs_channel!(),
        "', worker_group) FROM r ORDER BY scheduled_for"
    );

    /// The runs of schedule ticks: jobs `$1`, groups `$2`, ticks `$3`, claimable from `$4`
    /// (see [`insert_ticks`]).
    pub(crate) const INSERT_TICKS: Statement = concat!(
        "WITH t AS (
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[])
                  WITH ORDINALITY AS t(job_id, worker_group, scheduled_for, not_before, n)),
         d AS (
           SELECT t.*, j.concurrency,
                  j.concurrency = 'skip' AND (
                    EXISTS (SELECT 1 FROM runs o WHERE o.job_id = t.job_id
                            AND o.state IN ('queued', 'running'))
                    OR EXISTS (SELECT 1 FROM t e WHERE e.job_id = t.job_id AND e.n < t.n))
                  AS skip
           FROM t JOIN jobs j ON j.id = t.job_id),
         r AS (
           INSERT INTO runs (job_id, trigger, worker_group, scheduled_for, exclusive, not_before,
                             queued_at, state, finished_at, error)
           SELECT job_id, 'schedule', worker_group, scheduled_for, concurrency <> 'allow',
                  coalesce(not_before, now()),
                  CASE WHEN skip THEN now() ELSE greatest(now(), scheduled_for) END,
                  CASE WHEN skip THEN 'skipped' ELSE 'queued' END::run_state,
                  CASE WHEN skip THEN now() END,
                  CASE WHEN skip THEN 'skipped: another run of the job was in progress' END
           FROM d ORDER BY n
           ON CONFLICT DO NOTHING RETURNING job_id, scheduled_for, worker_group, not_before)
         SELECT job_id, scheduled_for,
                pg_notify('",
        runs_channel!(),
        "', CASE WHEN not_before > now()
                  THEN worker_group || '@' || ceil(extract(epoch FROM not_before) * 1000)::bigint
                  ELSE worker_group END)
         FROM r"
    );
}

/// Serializes run insertion for `skip` jobs until the transaction ends, so that two
/// concurrent triggers cannot both find one idle; in id order (two callers locking
/// overlapping sets cannot deadlock). Jobs under other policies take no lock: their
/// triggers commit in parallel. (A trigger racing the very change of a job's policy to
/// `skip` may miss the lock; the policy holds from the next trigger on.)
pub async fn lock_job_queues(c: &impl GenericClient, job_ids: &[Uuid]) -> Result<(), Error> {
    let stmt = c.prepare_cached(LOCK_JOB_QUEUES).await?;
    c.query_one(&stmt, &[&job_ids]).await?;
    Ok(())
}

/// A run to queue as the first attempt of a chain, in its job's worker group, and how.
/// Under the job's `skip` policy it is recorded `skipped` instead when another run of the
/// job is queued or running.
pub struct RunInsert<'a> {
    pub job_id: Uuid,
    pub trigger: RunTrigger,
    pub input: &'a Value,
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The finished run this one re-runs by hand.
    pub retry_of: Option<Uuid>,
    /// The run whose outcome triggers this one (a child job's run).
    pub parent_run_id: Option<Uuid>,
    /// What keeps concurrent triggers of the job apart, and which transaction it is in.
    pub guard: Guard,
    /// The audit record written with the run, in the same statement.
    pub audit: Option<QueuedBy<'a>>,
}

/// How [`insert`] guards the `skip` policy against concurrent triggers of the job, and in
/// which transaction the run is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// The insert alone, in `c`'s transaction or (outside one) its own: one statement, one
    /// round trip. The unique indexes hold, but under the `skip` policy a concurrent
    /// trigger may be missed, as for a job read before its policy became `skip` (the race
    /// [`lock_job_queues`] names, with a window from the job's read instead of the lock's).
    Unlocked,
    /// [`lock_job_queues`] then the insert, in the caller's transaction, sent together
    /// (one round trip). Both statements are prepared first, so that the lock is always
    /// sent first: Postgres runs the insert, and takes its snapshot, only once the lock
    /// is held. The `skip` policy is exact.
    QueueLock,
    /// [`Guard::QueueLock`] in a transaction of its own, committed before [`insert`]
    /// returns: BEGIN, the lock, the insert and COMMIT go out in one flight, all prepared
    /// first so that they go out in this order; a statement that fails aborts the
    /// transaction, and the COMMIT then ends it with nothing written. `c` must not be
    /// inside a transaction.
    QueueLockCommitted,
    /// The insert alone (as [`Guard::Unlocked`]), queueing the run only if its job is
    /// live, enabled, owned by `owner` (None: anyone's) and not under the `skip` policy,
    /// all checked by the statement itself, so that the common trigger of a job its caller
    /// has not read is one statement and one round trip. `None` back: one of those did not
    /// hold (or a unique index refused the run); the caller reads the job to tell which,
    /// and queues a `skip` job's run under a queue lock.
    OpenJob { owner: Option<Uuid> },
}

/// Who queued a run by hand or by webhook: the audit record written with it, whose
/// subject is `run:<id>`.
pub struct QueuedBy<'a> {
    pub actor_id: Option<Uuid>,
    pub action: &'a str,
    pub detail: &'a Value,
}

/// Queues a run and wakes the workers of its group, with its audit record if it has one,
/// under `run.guard`. A schedule tick that already has its run, or a parent's child that
/// already has its run, inserts nothing and returns `None` (the unique indexes decide);
/// so does a job that is gone (or, under [`Guard::OpenJob`], not open).
pub async fn insert(c: &impl GenericClient, run: &RunInsert<'_>) -> Result<Option<Run>, Error> {
    let trigger = run.trigger.as_str();
    let owner = match run.guard {
        Guard::OpenJob { owner } => owner,
        _ => None,
    };
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &run.job_id,
        &trigger,
        run.input,
        &run.scheduled_for,
        &run.retry_of,
        &run.parent_run_id,
    ];
    if let Some(by) = &run.audit {
        params.extend([&by.actor_id as &(dyn ToSql + Sync), &by.action, by.detail]);
    }
    if let Guard::OpenJob { .. } = run.guard {
        params.push(&owner);
    }
    let sql = match (run.guard, run.audit.is_some()) {
        (Guard::OpenJob { .. }, false) => INSERT_IF_OPEN,
        (Guard::OpenJob { .. }, true) => INSERT_AUDITED_IF_OPEN,
        (_, false) => INSERT,
        (_, true) => INSERT_AUDITED,
    };
    let job_ids = [run.job_id];
    let job_ids: &[Uuid] = &job_ids;
    let row = match run.guard {
        Guard::Unlocked | Guard::OpenJob { .. } => {
            let insert = c.prepare_cached(sql).await?;
            c.query_opt(&insert, &params).await?
        }
        Guard::QueueLock => {
            let lock = c.prepare_cached(LOCK_JOB_QUEUES).await?;
            let insert = c.prepare_cached(sql).await?;
            let (locked, row) = futures_util::future::join(
                c.query_one(&lock, &[&job_ids]),
                c.query_opt(&insert, &params),
            )
            .await;
            locked?;
            row?
        }
        Guard::QueueLockCommitted => {
            let insert = c.prepare_cached(sql).await?;
            let begin = c.prepare_cached(BEGIN).await?;
            let lock = c.prepare_cached(LOCK_JOB_QUEUES).await?;
            let commit = c.prepare_cached(COMMIT).await?;
            let (begun, locked, row, committed) = futures_util::future::join4(
                c.execute(&begin, &[]),
                c.query_one(&lock, &[&job_ids]),
                c.query_opt(&insert, &params),
                c.execute(&commit, &[]),
            )
            .await;
            begun?;
            locked?;
            let row = row?;
            committed?;
            row
        }
    };
    row.map(|r| from_row(&r)).transpose()
}

/// Queues the attempt that follows `previous` (a retry or a rescue), not claimable
/// before `delay` from now (database time). None: that attempt already has a follower
/// (fenced by a unique index, so two leaders cannot both re-queue it).
pub async fn insert_next_attempt(
    c: &impl GenericClient,
    previous: Uuid,
    delay: std::time::Duration,
) -> Result<Option<Run>, Error> {
    let stmt = c.prepare_cached(INSERT_NEXT_ATTEMPT).await?;
    let delay_ms = delay.as_secs_f64() * 1000.0;
    let row = c.query_opt(&stmt, &[&previous, &delay_ms]).await?;
    row.map(|r| from_row(&r)).transpose()
}

/// Queues one backfilled run (trigger `backfill`) for each of `ticks` that has no run
/// yet (the tick index), and wakes the workers; returns the ids created, oldest tick
/// first. Backfilled runs are always queued, even under the `skip` policy (they were
/// asked for); under `queue` and `skip` they run one at a time, oldest tick first
/// (each row's `queued_at` is the clock at its insert, in tick order).
pub async fn insert_backfill(
    c: &impl GenericClient,
    job_id: Uuid,
    worker_group: &str,
    ticks: &[DateTime<Utc>],
) -> Result<Vec<Uuid>, Error> {
    let stmt = c.prepare_cached(INSERT_BACKFILL).await?;
    let rows = c.query(&stmt, &[&job_id, &worker_group, &ticks]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A schedule tick to fire, see [`insert_ticks`].
pub struct Tick<'a> {
    pub job_id: Uuid,
    pub worker_group: &'a str,
    pub scheduled_for: DateTime<Utc>,
    /// Claimable only from this instant (a jittered job); None: at once.
    pub not_before: Option<DateTime<Utc>>,
}

/// Queues the runs of many schedule ticks in one statement, and wakes their workers: a
/// run claimable only later (`not_before`, a tick fired ahead or jittered) is announced as
/// `group@unix_ms`, the instant its workers are to claim it. `queued_at` is the tick for a
/// tick fired ahead of it (the instant the run joins the queue), else now.
/// A tick that already has its run is left alone (the per-tick unique index). Under the
/// `skip` policy a tick's run is recorded `skipped` when the job has a run queued or
/// running, or an earlier tick in `ticks`: the same outcome as queueing them one by one.
/// Locks the `skip` jobs' queues first (see [`lock_job_queues`]), in id order.
/// Returns the (job, tick) pairs that got a run.
pub async fn insert_ticks(
    c: &impl GenericClient,
    ticks: &[Tick<'_>],
) -> Result<Vec<(Uuid, DateTime<Utc>)>, Error> {
    let job_ids: Vec<Uuid> = ticks.iter().map(|t| t.job_id).collect();
    lock_job_queues(c, &job_ids).await?;
    let stmt = c.prepare_cached(INSERT_TICKS).await?;
    let groups: Vec<&str> = ticks.iter().map(|t| t.worker_group).collect();
    let fires: Vec<DateTime<Utc>> = ticks.iter().map(|t| t.scheduled_for).collect();
    let not_befores: Vec<Option<DateTime<Utc>>> = ticks.iter().map(|t| t.not_before).collect();
    let rows = c
        .query(&stmt, &[&job_ids, &groups, &fires, &not_befores])
        .await?;
    Ok(rows
        .iter()
        .map(|r| Ok((r.try_get("job_id")?, r.try_get("scheduled_for")?)))
        .collect::<Result<_, tokio_postgres::Error>>()?)
}
