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
use tokio_postgres::types::ToSql;
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
    pub first_run_id: Option<Uuid>,
    pub previous_run_id: Option<Uuid>,
    pub retry_of: Option<Uuid>,
    pub not_before: DateTime<Utc>,
    /// The artifact version a binary-target run executed.
    pub artifact_version: Option<i32>,
    /// The run whose outcome triggered this one (child jobs).
    pub parent_run_id: Option<Uuid>,
}

/// A run to queue as the first attempt of a chain, in its job's worker group. Under the
/// job's `skip` policy it is recorded `skipped` instead when another run of the job is
/// queued or running.
pub struct NewRun<'a> {
    pub job_id: Uuid,
    pub trigger: RunTrigger,
    pub input: &'a Value,
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The finished run this one re-runs by hand.
    pub retry_of: Option<Uuid>,
    /// The run whose outcome triggers this one (a child job's run).
    pub parent_run_id: Option<Uuid>,
}

/// A run a worker has just claimed, with everything needed to execute it. Its `Debug`
/// hides the project's secrets and the target's HTTP headers.
#[derive(Clone)]
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
    pub max_attempts: i32,
    /// The fencing token of this claim: every later change names it.
    pub lease_id: Uuid,
    /// Seconds the run waited to be claimed once it could start (claim latency).
    pub waited_seconds: f64,
    /// What the job's last successful run left in its state file, read with the claim.
    pub previous_state: Option<Vec<u8>>,
    /// The project's secrets (name → value), read with the claim: a worker gets them
    /// only for a run it holds.
    pub secrets: BTreeMap<String, String>,
    /// The job's network inside the run's sandbox.
    pub network: jobcenter_core::sandbox::Network,
}

impl std::fmt::Debug for ClaimedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedRun")
            .field("id", &self.id)
            .field("job_id", &self.job_id)
            .field("project_id", &self.project_id)
            .field("attempt", &self.attempt)
            .field("trigger", &self.trigger)
            .field("input", &self.input)
            .field("scheduled_for", &self.scheduled_for)
            .field("target", &self.target)
            .field("env", &self.env)
            .field("project_config", &self.project_config)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("max_attempts", &self.max_attempts)
            .field("lease_id", &self.lease_id)
            .field("waited_seconds", &self.waited_seconds)
            .field(
                "previous_state",
                &self.previous_state.as_ref().map(|s| s.len()),
            )
            .field(
                "secrets",
                &jobcenter_core::config::RedactedValues(&self.secrets),
            )
            .field("network", &self.network)
            .finish()
    }
}

/// The outcome a worker reports for a run it holds.
#[derive(Clone, Copy)]
pub struct Outcome<'a> {
    pub state: RunState,
    pub exit_code: Option<i32>,
    pub result: Option<&'a str>,
    pub error: Option<&'a str>,
}

const COLUMNS: &str = "r.id, r.job_id, j.project_id, r.state::text, r.trigger::text, r.attempt,
    r.worker_group, r.input, r.result, r.exit_code, r.error, r.scheduled_for, r.queued_at,
    r.started_at, r.finished_at, r.worker_id, r.cancel_requested, r.first_run_id,
    r.previous_run_id, r.retry_of, r.not_before, r.artifact_version, r.parent_run_id";

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
        first_run_id: row.get(17),
        previous_run_id: row.get(18),
        retry_of: row.get(19),
        not_before: row.get(20),
        artifact_version: row.get(21),
        parent_run_id: row.get(22),
    })
}

/// The predicate of the unique index `runs_one_per_tick_idx` (migration V10): first
/// attempts of scheduled and backfilled ticks.
const ONE_PER_TICK: &str = "attempt = 1 AND trigger NOT IN ('manual', 'webhook', 'retry')";

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

const LOCK_JOB_QUEUES: &str = "SELECT count(pg_advisory_xact_lock(hashtextextended(id::text, 7)))
     FROM (SELECT id FROM jobs WHERE id = ANY($1) AND concurrency = 'skip'
           ORDER BY id) skip_jobs";

/// Queues a run and wakes the workers of its group, in one statement. A schedule tick
/// that already has its run, or a parent's child that already has its run, inserts
/// nothing and returns `None` (the unique indexes decide). For the skip policy to be
/// exact, use [`insert_locked`].
pub async fn insert(c: &impl GenericClient, new: &NewRun<'_>) -> Result<Option<Run>, Error> {
    let stmt = c.prepare_cached(&insert_sql()).await?;
    let trigger = new.trigger.as_str();
    let row = c.query_opt(&stmt, &insert_params(new, &trigger)).await?;
    row.map(|r| from_row(&r)).transpose()
}

/// [`lock_job_queues`] then [`insert`] (with its [`QueuedBy`] audit record in the same
/// statement, when `by` is given), in the caller's transaction, sent together (one round
/// trip). Both statements are prepared first, so that the lock is always sent first:
/// Postgres runs the insert, and takes its snapshot, only once the lock is held.
pub async fn insert_locked(
    tx: &deadpool_postgres::Transaction<'_>,
    new: &NewRun<'_>,
    by: Option<&QueuedBy<'_>>,
) -> Result<Option<Run>, Error> {
    let lock = tx.prepare_cached(LOCK_JOB_QUEUES).await?;
    let sql = if by.is_some() {
        insert_audited_sql()
    } else {
        insert_sql()
    };
    let insert = tx.prepare_cached(&sql).await?;
    let job_ids = [new.job_id];
    let job_ids: &[Uuid] = &job_ids;
    let trigger = new.trigger.as_str();
    let (plain, audited);
    let params: &[&(dyn tokio_postgres::types::ToSql + Sync)] = match by {
        Some(by) => {
            audited = audited_params(new, &trigger, by);
            &audited
        }
        None => {
            plain = insert_params(new, &trigger);
            &plain
        }
    };
    let (locked, row) = futures_util::future::join(
        tx.query_one(&lock, &[&job_ids]),
        tx.query_opt(&insert, params),
    )
    .await;
    locked?;
    row?.map(|r| from_row(&r)).transpose()
}

/// Who queued a run by hand or by webhook: the audit record written with it, whose
/// subject is `run:<id>`.
pub struct QueuedBy<'a> {
    pub actor_id: Option<Uuid>,
    pub action: &'a str,
    pub detail: &'a Value,
}

/// Queues a run with its [`QueuedBy`] audit record, committed before it returns, in one
/// round trip. The run and its record are one statement. For a job whose policy is `skip`
/// (`lock_queue`, as the caller read the job), that statement runs under the job's queue
/// lock as in [`insert_locked`]: BEGIN, the lock, the statement and COMMIT go out in one
/// flight, all prepared first so that they go out in this order; a statement that fails
/// aborts the transaction, and the COMMIT then ends it with nothing written. Any other
/// job's run is the statement alone (its own transaction). A trigger that read the job
/// just before its policy became `skip` takes no lock: the race [`lock_job_queues`]
/// names, with a window from the job's read instead of the lock's. `c` must not be
/// inside a transaction. `None`: the job is gone.
pub async fn insert_audited(
    c: &deadpool_postgres::Client,
    new: &NewRun<'_>,
    by: &QueuedBy<'_>,
    lock_queue: bool,
) -> Result<Option<Run>, Error> {
    let insert = c.prepare_cached(&insert_audited_sql()).await?;
    let trigger = new.trigger.as_str();
    let params = audited_params(new, &trigger, by);
    if !lock_queue {
        let row = c.query_opt(&insert, &params).await?;
        return row.map(|r| from_row(&r)).transpose();
    }
    let begin = c.prepare_cached("BEGIN").await?;
    let lock = c.prepare_cached(LOCK_JOB_QUEUES).await?;
    let commit = c.prepare_cached("COMMIT").await?;
    let job_ids = [new.job_id];
    let job_ids: &[Uuid] = &job_ids;
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
    row.map(|r| from_row(&r)).transpose()
}

/// [`insert_audited`] for a trigger that has not read the job: the run is queued only if
/// the job is live, enabled, owned by `owner` (None: anyone's) and not under the `skip`
/// policy, all checked by the statement itself, so that the common trigger is one
/// statement and one round trip. `None`: one of those did not hold (or, as for
/// [`insert`], a unique index refused the run); the caller reads the job to tell which,
/// and queues a `skip` job's run with [`insert_audited`].
pub async fn insert_audited_open(
    c: &deadpool_postgres::Client,
    new: &NewRun<'_>,
    by: &QueuedBy<'_>,
    owner: Option<Uuid>,
) -> Result<Option<Run>, Error> {
    let insert = c.prepare_cached(&insert_audited_open_sql()).await?;
    let trigger = new.trigger.as_str();
    let [a, b, c1, d, e, f, g, h, i] = audited_params(new, &trigger, by);
    let row = c
        .query_opt(&insert, &[a, b, c1, d, e, f, g, h, i, &owner])
        .await?;
    row.map(|r| from_row(&r)).transpose()
}

/// The plain insert (no owner filter, no audit record): parameters 1 to 6 of
/// [`insert_params`]. Public so that the bench's pgbench script is this very statement.
pub fn insert_sql() -> String {
    insert_sql_with("", "")
}

/// The audit record of [`insert_audited_sql`] (parameters 7 to 9).
const AUDIT_RECORD: &str = ", a AS (INSERT INTO audit_log (actor_id, action, subject, detail)
                 SELECT $7, $8, 'run:' || r.id, $9 FROM r)";

/// [`insert_sql`] that also writes the run's audit record (parameters 7 to 9).
fn insert_audited_sql() -> String {
    insert_sql_with("", AUDIT_RECORD)
}

/// [`insert_audited_sql`] that queues the run only if its job is live, enabled, owned by
/// parameter 10 (when it is not null) and not under the `skip` policy.
fn insert_audited_open_sql() -> String {
    insert_sql_with(
        " AND deleted_at IS NULL AND enabled AND concurrency <> 'skip'
           AND ($10::uuid IS NULL OR EXISTS (SELECT 1 FROM projects p
                                            WHERE p.id = project_id AND p.owner_id = $10))",
        AUDIT_RECORD,
    )
}

/// The insert statement: the job's row must also pass `job_filter` (a condition on
/// `jobs`, or nothing), and `more` (further data-modifying CTEs, which see the inserted
/// run as `r`) comes after its own. The run goes to its job's worker group, as read by
/// the statement.
fn insert_sql_with(job_filter: &str, more: &str) -> String {
    format!(
        "WITH j AS (SELECT concurrency, worker_group FROM jobs WHERE id = $1{job_filter}),
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
           ON CONFLICT DO NOTHING RETURNING *){more}
         SELECT {COLUMNS}, pg_notify('{channel}', r.worker_group)
         FROM r JOIN jobs j ON j.id = r.job_id",
        channel = crate::RUNS_CHANNEL
    )
}

/// The parameters of [`insert_audited_sql`]: [`insert_params`], then the audit record's.
fn audited_params<'a>(
    new: &'a NewRun<'_>,
    trigger: &'a &'static str,
    by: &'a QueuedBy<'_>,
) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 9] {
    let [a, b, c, d, e, f] = insert_params(new, trigger);
    [a, b, c, d, e, f, &by.actor_id, &by.action, by.detail]
}

/// The parameters of [`insert_sql`]; `trigger` is `new.trigger` as text.
fn insert_params<'a>(
    new: &'a NewRun<'_>,
    trigger: &'a &'static str,
) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 6] {
    [
        &new.job_id,
        trigger,
        new.input,
        &new.scheduled_for,
        &new.retry_of,
        &new.parent_run_id,
    ]
}

/// A run, scoped to `owner` (None: any owner), with the runs its outcome started (first
/// attempts, scoped to `owner` too) as (run id, job id, state), oldest first: one
/// statement.
pub async fn get_with_children(
    c: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<(Run, Vec<(Uuid, Uuid, String)>)>, Error> {
    let sql = format!(
        "SELECT {COLUMNS}, ch.ids, ch.job_ids, ch.states
         FROM runs r JOIN jobs j ON j.id = r.job_id JOIN projects p ON p.id = j.project_id
         CROSS JOIN LATERAL (
           SELECT array_agg(c.id ORDER BY c.queued_at, c.id) AS ids,
                  array_agg(c.job_id ORDER BY c.queued_at, c.id) AS job_ids,
                  array_agg(c.state::text ORDER BY c.queued_at, c.id) AS states
           FROM runs c JOIN jobs cj ON cj.id = c.job_id
           JOIN projects cp ON cp.id = cj.project_id
           WHERE c.parent_run_id = r.id AND c.attempt = 1 AND c.retry_of IS NULL
             AND ($2::uuid IS NULL OR cp.owner_id = $2)) ch
         WHERE r.id = $1 AND ($2::uuid IS NULL OR p.owner_id = $2)"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let Some(row) = c.query_opt(&stmt, &[&id, &owner]).await? else {
        return Ok(None);
    };
    let run = from_row(&row)?;
    let first = row.len() - 3; // the three arrays come last
    let ids: Option<Vec<Uuid>> = row.get(first);
    let job_ids: Option<Vec<Uuid>> = row.get(first + 1);
    let states: Option<Vec<String>> = row.get(first + 2);
    let children = ids
        .unwrap_or_default()
        .into_iter()
        .zip(job_ids.unwrap_or_default())
        .zip(states.unwrap_or_default())
        .map(|((id, job_id), state)| (id, job_id, state))
        .collect();
    Ok(Some((run, children)))
}

/// Queues the attempt that follows `previous` (a retry or a rescue), not claimable
/// before `delay` from now (database time). None: that attempt already has a follower (fenced by a unique
/// index, so two leaders cannot both re-queue it).
pub async fn insert_next_attempt(
    c: &impl GenericClient,
    previous: Uuid,
    delay: std::time::Duration,
) -> Result<Option<Run>, Error> {
    let sql = format!(
        "WITH p AS (SELECT * FROM runs WHERE id = $1),
         r AS (
           INSERT INTO runs (job_id, trigger, input, worker_group, scheduled_for, attempt,
                             exclusive, first_run_id, previous_run_id, retry_of, parent_run_id,
                             not_before)
           SELECT job_id, trigger, input, worker_group, scheduled_for, attempt + 1,
                  exclusive, coalesce(first_run_id, id), id, retry_of, parent_run_id,
                  now() + $2 * interval '1 millisecond' FROM p
           ON CONFLICT (previous_run_id) WHERE previous_run_id IS NOT NULL
           DO NOTHING RETURNING *)
         SELECT {COLUMNS}, pg_notify('{channel}', r.worker_group)
         FROM r JOIN jobs j ON j.id = r.job_id",
        channel = crate::RUNS_CHANNEL
    );
    let stmt = c.prepare_cached(&sql).await?;
    let delay_ms = delay.as_secs_f64() * 1000.0;
    let row = c.query_opt(&stmt, &[&previous, &delay_ms]).await?;
    row.map(|r| from_row(&r)).transpose()
}

/// The attempt that follows `id` (its retry or rescue), if one was queued. Retries are
/// queued in the transaction that records the failure, so a failed run without one has
/// no further attempt coming from its failure.
pub async fn next_attempt(c: &impl GenericClient, id: Uuid) -> Result<Option<Run>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM runs r JOIN jobs j ON j.id = r.job_id
         WHERE r.previous_run_id = $1"
    );
    let stmt = c.prepare_cached(&sql).await?;
    c.query_opt(&stmt, &[&id])
        .await?
        .map(|r| from_row(&r))
        .transpose()
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

/// The claim: up to `$2` queued runs of group `$1` for worker `$3` (unless it is drained),
/// each with a lease of `$4` ms. Public so that the bench's pgbench script is this very
/// statement.
pub const CLAIM_SQL: &str = "WITH picked AS (
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
             RETURNING r.id, r.job_id, j.project_id, r.attempt, r.trigger::text, r.input,
                       r.scheduled_for, j.target, j.env, p.config, j.timeout_seconds,
                       j.max_attempts, r.lease_id,
                       extract(epoch FROM now() - greatest(r.queued_at, r.not_before))::float8,
                       (SELECT s.data FROM job_state s WHERE s.job_id = r.job_id),
                       (SELECT coalesce(jsonb_object_agg(x.name, x.value), '{}'::jsonb)
                        FROM (SELECT ps.name, ps.value FROM project_secrets ps
                              WHERE ps.project_id = j.project_id LIMIT 1000) x),
                       j.network";

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
    let stmt = c.prepare_cached(CLAIM_SQL).await?;
    let lease = lease_ms as f64;
    let rows = c
        .query(&stmt, &[&group, &limit, &worker_id, &lease])
        .await?;
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
        max_attempts: row.get(11),
        lease_id: row.get(12),
        waited_seconds: row.get(13),
        previous_state: row.get(14),
        secrets: json_column(row, 15, "project_secrets.value")?,
        network: crate::jobs::network(row.get(16))?,
    })
}

/// Records which artifact version a run held under `lease_id` executes.
pub async fn record_artifact_version(
    c: &impl GenericClient,
    run_id: Uuid,
    lease_id: Uuid,
    version: i32,
) -> Result<bool, Error> {
    let stmt = c
        .prepare_cached(
            "UPDATE runs SET artifact_version = $3
             WHERE id = $1 AND lease_id = $2 AND state = 'running'",
        )
        .await?;
    Ok(c.execute(&stmt, &[&run_id, &lease_id, &version]).await? == 1)
}

/// Records the outcome of a run held under `lease_id`. False: the lease is gone (the
/// run was rescued, handed back or already finished) and nothing was changed.
pub async fn finish(
    tx: &deadpool_postgres::Transaction<'_>,
    run_id: Uuid,
    lease_id: Uuid,
    outcome: &Outcome<'_>,
) -> Result<bool, Error> {
    let finish = Finish {
        run_id,
        lease_id,
        outcome: *outcome,
    };
    Ok(!finish_many(tx, &[finish], &[]).await?.is_empty())
}

/// One run's outcome in a group commit, see [`finish_many`].
pub struct Finish<'a> {
    pub run_id: Uuid,
    pub lease_id: Uuid,
    pub outcome: Outcome<'a>,
}

/// Records several outcomes in one statement, each fenced by its lease like [`finish`];
/// returns the runs that were still held (and are now finished). `lines` are `system`
/// lines that are the whole log of their runs (an HTTP run's request and answer): the
/// same statement writes those of the runs it finishes, and no others.
///
/// The statement runs with its generic plan. Left to choose, Postgres planned it anew
/// on every call: the length of the arrays changes its estimate, so a custom plan always
/// looked cheaper, and planning cost nearly as much as the update. That plan is made once
/// per session, from the statistics of that moment. Where they said few runs were
/// running (a table emptied and vacuumed, or new), it was a bitmap scan of every entry of
/// `runs_lease_idx`: a bitmap scan never marks an index entry dead, so each outcome read
/// again the entries of all the runs finished since the last vacuum (287 of them and
/// 0.6 ms per outcome at idle in make bench, against 3 and 0.2 ms by a plain index scan on
/// the table beside it). So it is planned without bitmap or sequential scans: each run
/// is found by a plain index scan, whatever the statistics say. The settings are sent
/// with the statement (no extra round trip) and set back after it, for this transaction
/// only.
pub async fn finish_many(
    tx: &deadpool_postgres::Transaction<'_>,
    finishes: &[Finish<'_>],
    lines: &[(Uuid, &str)],
) -> Result<Vec<Uuid>, Error> {
    let stmt = tx.prepare_cached(FINISH_MANY_SQL).await?;
    let columns = FinishColumns::new(finishes, lines);
    let (generic, rows, auto) = futures_util::future::join3(
        tx.batch_execute(PLAN_BY_INDEX),
        tx.query(&stmt, &columns.params()),
        tx.batch_execute(PLAN_AS_USUAL),
    )
    .await;
    generic?;
    let rows = rows?;
    auto?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Who claims runs for the slots [`finish_and_claim`] frees, and how many.
pub struct NextClaim<'a> {
    pub worker_id: Uuid,
    pub group: &'a str,
    pub limit: i64,
    pub lease_ms: i64,
}

/// [`finish_many`], then [`claim`] (when `next` is given), in one transaction sent as
/// one pipeline: `BEGIN`, the finishes, the claim and `COMMIT` go out together and cost
/// one round trip instead of four.
///
/// An error means that nothing was written: a statement that fails aborts the
/// transaction, and the `COMMIT` behind it then ends it as a rollback. The caller can
/// write the same outcomes again another way. Once committed, a claimed run that cannot
/// be read (a target kind this build does not know) is left out and logged, as the claim
/// loop leaves it: its lease expires and the leader rescues it. (A lost connection, as always,
/// leaves it unknown whether the commit happened; the finishes are fenced by their
/// leases, so writing them again changes nothing twice.)
pub async fn finish_and_claim(
    client: &deadpool_postgres::Client,
    finishes: &[Finish<'_>],
    lines: &[(Uuid, &str)],
    next: Option<NextClaim<'_>>,
) -> Result<(Vec<Uuid>, Vec<ClaimedRun>), Error> {
    // Prepared first: a statement still to prepare would cost its own round trip in
    // the middle of the pipeline, and the statements behind it would overtake it.
    let finish_stmt = client.prepare_cached(FINISH_MANY_SQL).await?;
    let claim_stmt = match next {
        Some(_) => Some(client.prepare_cached(CLAIM_SQL).await?),
        None => None,
    };
    let columns = FinishColumns::new(finishes, lines);
    // Each request is sent when its future is first polled, and `join` polls in order.
    let claim = async {
        match (&claim_stmt, &next) {
            (Some(stmt), Some(n)) => {
                let lease = n.lease_ms as f64;
                let params: [&(dyn ToSql + Sync); 4] = [&n.group, &n.limit, &n.worker_id, &lease];
                client.query(stmt, &params).await.map(Some)
            }
            _ => Ok(None),
        }
    };
    let (begin, finished, reset, claimed, commit) = futures_util::future::join5(
        client.batch_execute(&BEGIN_PLANNED_BY_INDEX),
        client.query(&finish_stmt, &columns.params()),
        client.batch_execute(PLAN_AS_USUAL),
        claim,
        client.batch_execute("COMMIT"),
    )
    .await;
    // The first error is the cause; the rest only say that the transaction was aborted.
    begin?;
    let finished = finished?;
    reset?;
    let claimed = claimed?;
    commit?;
    let held = finished.iter().map(|r| r.get(0)).collect();
    // Committed: from here on, no error may send the caller to write it all again.
    let rows = claimed.unwrap_or_default();
    let claimed = rows.iter().filter_map(|row| {
        claimed_from_row(row)
            .inspect_err(|e| {
                let run_id: Uuid = row.get(0);
                tracing::error!(%run_id, error = %e, "claimed a run this worker cannot read; its lease will expire and the leader rescue it");
            })
            .ok()
    });
    Ok((held, claimed.collect()))
}

/// Sent before [`FINISH_MANY_SQL`]; see [`finish_many`] for why.
const PLAN_BY_INDEX: &str = "SET LOCAL plan_cache_mode = force_generic_plan;
    SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off";
/// The pipeline's first request: [`PLAN_BY_INDEX`] in a new transaction.
static BEGIN_PLANNED_BY_INDEX: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("BEGIN; {PLAN_BY_INDEX}"));
/// Sent after it, so that what follows in the transaction is planned as usual.
const PLAN_AS_USUAL: &str = "SET LOCAL plan_cache_mode TO DEFAULT;
    SET LOCAL enable_seqscan TO DEFAULT; SET LOCAL enable_bitmapscan TO DEFAULT";

/// The outcomes ($1–$6) and the log lines that go with them ($7, $8): a line is written
/// only with the finish of its run.
const FINISH_MANY_SQL: &str = "WITH finished AS (
       UPDATE runs r SET state = f.state::run_state, exit_code = f.exit_code,
              result = f.result, error = f.error, finished_at = now(),
              lease_expires_at = NULL
       FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int4[], $5::text[], $6::text[])
            AS f(id, lease_id, state, exit_code, result, error)
       WHERE r.id = f.id AND r.lease_id = f.lease_id AND r.state = 'running'
       RETURNING r.id),
     logged AS (
       INSERT INTO run_logs (run_id, seq, stream, data)
       SELECT l.run_id, 0, 'system', l.data
       FROM unnest($7::uuid[], $8::text[]) AS l(run_id, data)
       JOIN finished f ON f.id = l.run_id)
     SELECT id FROM finished";

/// The parameters of [`FINISH_MANY_SQL`]: one array per column.
struct FinishColumns<'a> {
    ids: Vec<Uuid>,
    leases: Vec<Uuid>,
    states: Vec<&'static str>,
    exit_codes: Vec<Option<i32>>,
    results: Vec<Option<&'a str>>,
    errors: Vec<Option<&'a str>>,
    line_runs: Vec<Uuid>,
    line_data: Vec<&'a str>,
}

impl<'a> FinishColumns<'a> {
    fn new(finishes: &[Finish<'a>], lines: &[(Uuid, &'a str)]) -> Self {
        FinishColumns {
            ids: finishes.iter().map(|f| f.run_id).collect(),
            leases: finishes.iter().map(|f| f.lease_id).collect(),
            states: finishes
                .iter()
                .map(|f| {
                    debug_assert!(RunState::Running.can_become(f.outcome.state));
                    f.outcome.state.as_str()
                })
                .collect(),
            exit_codes: finishes.iter().map(|f| f.outcome.exit_code).collect(),
            results: finishes.iter().map(|f| f.outcome.result).collect(),
            errors: finishes.iter().map(|f| f.outcome.error).collect(),
            line_runs: lines.iter().map(|(run, _)| *run).collect(),
            line_data: lines.iter().map(|(_, line)| *line).collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.ids,
            &self.leases,
            &self.states,
            &self.exit_codes,
            &self.results,
            &self.errors,
            &self.line_runs,
            &self.line_data,
        ]
    }
}

/// Puts a run held under `lease_id` back in the queue (a worker shutting down). It
/// keeps its attempt number: it will be executed again from the start.
pub async fn hand_back(
    c: &impl GenericClient,
    run_id: Uuid,
    lease_id: Uuid,
) -> Result<bool, Error> {
    debug_assert!(RunState::Running.can_become(RunState::Queued));
    let sql = format!(
        "UPDATE runs SET state = 'queued', started_at = NULL, worker_id = NULL,
                lease_id = NULL, lease_expires_at = NULL, not_before = now()
         WHERE id = $1 AND lease_id = $2 AND state = 'running'
         RETURNING pg_notify('{channel}', worker_group)",
        channel = crate::RUNS_CHANNEL
    );
    let stmt = c.prepare_cached(&sql).await?;
    Ok(c.query_opt(&stmt, &[&run_id, &lease_id]).await?.is_some())
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
    let stmt = c
        .prepare_cached(
            "UPDATE runs SET lease_expires_at = now() + $2 * interval '1 millisecond'
             WHERE id = ANY($3) AND worker_id = $1 AND state = 'running'
             RETURNING id, lease_id, cancel_requested",
        )
        .await?;
    let rows = c
        .query(&stmt, &[&worker_id, &(lease_ms as f64), &run_ids])
        .await?;
    Ok(rows
        .iter()
        .map(|r| Held {
            id: r.get(0),
            lease_id: r.get(1),
            cancel_requested: r.get(2),
        })
        .collect())
}

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The run was queued: it is now `cancelled` and will never start.
    Cancelled,
    /// The run is running: its worker was notified and will kill it.
    Requested,
    /// The run had already finished.
    AlreadyFinished,
}

/// Cancels a run: a queued one at once, a running one by flagging it and notifying
/// [`crate::CANCEL_CHANNEL`] (payload: run id) so that its worker kills it.
pub async fn cancel(c: &impl GenericClient, run_id: Uuid) -> Result<CancelOutcome, Error> {
    debug_assert!(RunState::Queued.can_become(RunState::Cancelled));
    let queued = c
        .prepare_cached(
            "UPDATE runs SET state = 'cancelled', cancel_requested = true, finished_at = now(),
                    error = 'cancelled before it started'
             WHERE id = $1 AND state = 'queued'",
        )
        .await?;
    if c.execute(&queued, &[&run_id]).await? == 1 {
        return Ok(CancelOutcome::Cancelled);
    }
    let running = c
        .prepare_cached(&format!(
            "UPDATE runs SET cancel_requested = true WHERE id = $1 AND state = 'running'
             RETURNING pg_notify('{channel}', id::text)",
            channel = crate::CANCEL_CHANNEL
        ))
        .await?;
    if c.query_opt(&running, &[&run_id]).await?.is_some() {
        return Ok(CancelOutcome::Requested);
    }
    Ok(CancelOutcome::AlreadyFinished)
}

/// A running run whose lease has expired (its worker is dead or cut off).
#[derive(Debug, Clone, Copy)]
pub struct Expired {
    pub id: Uuid,
    pub lease_id: Uuid,
    pub attempt: i32,
    pub max_attempts: i32,
    pub cancel_requested: bool,
}

/// Up to `limit` running runs whose lease expired, locked for the rescuing transaction.
pub async fn lock_expired(c: &impl GenericClient, limit: i64) -> Result<Vec<Expired>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT r.id, r.lease_id, r.attempt, j.max_attempts, r.cancel_requested
             FROM runs r JOIN jobs j ON j.id = r.job_id
             WHERE r.state = 'running' AND r.lease_expires_at < now()
             ORDER BY r.lease_expires_at LIMIT $1 FOR UPDATE OF r SKIP LOCKED",
        )
        .await?;
    let rows = c.query(&stmt, &[&limit]).await?;
    Ok(rows
        .iter()
        .map(|r| Expired {
            id: r.get(0),
            lease_id: r.get(1),
            attempt: r.get(2),
            max_attempts: r.get(3),
            cancel_requested: r.get(4),
        })
        .collect())
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
    let sql = format!(
        "WITH r AS (
           INSERT INTO runs (job_id, trigger, worker_group, scheduled_for, exclusive, queued_at)
           SELECT $1, 'backfill', $2, tick, j.concurrency <> 'allow', clock_timestamp()
           FROM jobs j, unnest($3::timestamptz[]) AS tick
           WHERE j.id = $1 ORDER BY tick
           ON CONFLICT (job_id, scheduled_for) WHERE {ONE_PER_TICK}
           DO NOTHING RETURNING id, scheduled_for, worker_group)
         SELECT id, pg_notify('{channel}', worker_group) FROM r ORDER BY scheduled_for",
        channel = crate::RUNS_CHANNEL
    );
    let stmt = c.prepare_cached(&sql).await?;
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
    let sql = format!(
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
                pg_notify('{channel}', CASE WHEN not_before > now()
                  THEN worker_group || '@' || ceil(extract(epoch FROM not_before) * 1000)::bigint
                  ELSE worker_group END)
         FROM r",
        channel = crate::RUNS_CHANNEL
    );
    let stmt = c.prepare_cached(&sql).await?;
    let groups: Vec<&str> = ticks.iter().map(|t| t.worker_group).collect();
    let fires: Vec<DateTime<Utc>> = ticks.iter().map(|t| t.scheduled_for).collect();
    let not_befores: Vec<Option<DateTime<Utc>>> = ticks.iter().map(|t| t.not_before).collect();
    let rows = c
        .query(&stmt, &[&job_ids, &groups, &fires, &not_befores])
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn a_claimed_runs_debug_hides_its_secrets() {
        let run = ClaimedRun {
            id: Uuid::nil(),
            job_id: Uuid::nil(),
            project_id: Uuid::nil(),
            attempt: 1,
            trigger: RunTrigger::Manual,
            input: Value::Null,
            scheduled_for: None,
            target: Target::Http(jobcenter_core::target::HttpRequest {
                method: "GET".into(),
                url: "https://example.com/".into(),
                headers: [("Authorization".into(), "Bearer header-s3cret".into())].into(),
                body: None,
            }),
            env: BTreeMap::new(),
            project_config: BTreeMap::new(),
            timeout_seconds: 60,
            max_attempts: 1,
            lease_id: Uuid::nil(),
            waited_seconds: 0.0,
            previous_state: None,
            secrets: [("DB_PASSWORD".into(), "project-s3cret".into())].into(),
            network: Default::default(),
        };
        let printed = format!("{run:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("DB_PASSWORD"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
    }
}
