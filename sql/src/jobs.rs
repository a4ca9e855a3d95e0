//! The `jobs` table: definitions. A deleted job keeps its row (`deleted_at`) so its runs
//! stay readable and it can be restored until retention purges it.

use crate::states::Concurrency;
use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use jobcenter_core::firing::CatchUp;
use jobcenter_core::sandbox::Network;
use jobcenter_core::schedule::ScheduleSpec;
use jobcenter_core::target::Target;
use std::collections::BTreeMap;
use tokio_postgres::Row;
use uuid::Uuid;

/// Everything about a job that its owner sets (plus the derived next fire time).
#[derive(Debug, Clone)]
pub struct JobFields {
    pub name: String,
    pub target: Target,
    pub schedule: ScheduleSpec,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub concurrency: Concurrency,
    /// What happens to ticks missed while no scheduler ran.
    pub catch_up: CatchUp,
    pub timeout_seconds: i32,
    pub max_attempts: i32,
    pub env: BTreeMap<String, String>,
    pub worker_group: String,
    /// The run's network inside its sandbox.
    pub network: Network,
    pub enabled: bool,
    pub next_fire_at: Option<DateTime<Utc>>,
    /// Each tick's run starts up to this many seconds late, by a fixed per-job offset.
    pub jitter_seconds: i32,
    /// Pause (disable) the job after this many consecutive failed runs; None: never.
    pub pause_after_failures: Option<i32>,
}

/// The job's last pause on failures and its end; None where it never happened.
#[derive(Debug, Clone, Default)]
pub struct Pause {
    pub paused_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub resumed_at: Option<DateTime<Utc>>,
    pub resumed_by: Option<Uuid>,
}

impl Pause {
    /// True from the job's pause until it is enabled again.
    pub fn is_active(&self) -> bool {
        match (self.paused_at, self.resumed_at) {
            (Some(paused), Some(resumed)) => paused > resumed,
            (paused, _) => paused.is_some(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    pub project_id: Uuid,
    pub fields: JobFields,
    /// The jobs a run's outcome triggers (`job_children`).
    pub children: Vec<crate::job_children::Child>,
    pub pause: Pause,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A job whose next tick is due, locked for the transaction that fires it.
#[derive(Debug, Clone)]
pub struct DueJob {
    pub id: Uuid,
    pub schedule: ScheduleSpec,
    pub next_fire_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub worker_group: String,
    pub catch_up: CatchUp,
    pub jitter_seconds: i32,
}

/// The columns of a [`Job`], read by [`from_row`] by name: `j` is the job. Its children
/// are one array of `"<job id> <condition>"` strings.
macro_rules! columns {
    () => {
        "j.id, j.project_id, j.name, j.target, j.schedule, j.starts_at, j.ends_at,
         j.concurrency::text AS concurrency, j.timeout_seconds, j.max_attempts, j.env,
         j.worker_group, j.enabled, j.next_fire_at, j.deleted_at, j.created_at, j.updated_at,
         j.catch_up::text AS catch_up, j.jitter_seconds, j.pause_after_failures, j.paused_at,
         j.paused_reason, j.resumed_at, j.resumed_by,
         (SELECT coalesce(array_agg(c.child_job_id::text || ' ' || c.condition::text
                                    ORDER BY c.condition, c.child_job_id), '{}')
          FROM job_children c WHERE c.job_id = j.id) AS children,
         j.network"
    };
}

/// Job `$1`, owned by `$2` (when not null), deleted too when `$3`.
macro_rules! scoped_by_id {
    () => {
        " FROM jobs j JOIN projects p ON p.id = j.project_id
         WHERE j.id = $1 AND ($2::uuid IS NULL OR p.owner_id = $2) AND ($3 OR j.deleted_at IS NULL)"
    };
}

statements! {
    /// A new job of project `$1`; `$2` to `$17` are its fields, in the order of
    /// [`JobFields`] as [`insert`] passes them.
    pub(crate) const INSERT: Statement = concat!(
        "INSERT INTO jobs AS j (project_id, name, target, schedule, starts_at, ends_at,
            concurrency, timeout_seconds, max_attempts, env, worker_group, enabled, next_fire_at,
            catch_up, jitter_seconds, pause_after_failures, network)
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::concurrency_policy, $8, $9, $10, $11, $12, $13,
                 $14::text::catch_up_policy, $15, $16, $17)
         RETURNING ",
        columns!()
    );
    /// Job `$1` gets the fields `$2` to `$17` (as for [`INSERT`]).
    pub(crate) const UPDATE: Statement = concat!(
        "UPDATE jobs AS j SET name = $2, target = $3, schedule = $4, starts_at = $5,
            ends_at = $6, concurrency = $7::text::concurrency_policy, timeout_seconds = $8,
            max_attempts = $9, env = $10, worker_group = $11, enabled = $12,
            next_fire_at = $13, catch_up = $14::text::catch_up_policy, jitter_seconds = $15,
            pause_after_failures = $16, network = $17, updated_at = now()
         WHERE j.id = $1 RETURNING ",
        columns!()
    );
    /// Job `$1`, owned by `$2` (when not null), deleted too when `$3`.
    pub(crate) const GET: Statement = concat!("SELECT ", columns!(), scoped_by_id!());
    /// [`GET`], locking the row.
    pub(crate) const LOCK: Statement =
        concat!("SELECT ", columns!(), scoped_by_id!(), " FOR UPDATE OF j");
    /// Project `$1`'s live jobs older than the cursor (`$2`, `$3`), newest first, at most
    /// `$4`.
    pub(crate) const LIST_BY_PROJECT: Statement = concat!(
        "SELECT ",
        columns!(),
        " FROM jobs j
         WHERE j.project_id = $1 AND j.deleted_at IS NULL
           AND ($2::timestamptz IS NULL OR (j.created_at, j.id) < ($2, $3))
         ORDER BY j.created_at DESC, j.id DESC LIMIT $4"
    );
    /// Marks job `$1` deleted.
    pub(crate) const SOFT_DELETE: Statement =
        "UPDATE jobs SET deleted_at = now(), updated_at = now() WHERE id = $1";
    /// Undeletes job `$1`, next firing at `$2`.
    pub(crate) const RESTORE: Statement =
        "UPDATE jobs SET deleted_at = NULL, next_fire_at = $2, updated_at = now()
             WHERE id = $1";
    /// Pauses enabled job `$1` for reason `$2`.
    pub(crate) const PAUSE: Statement =
        "UPDATE jobs SET enabled = false, next_fire_at = NULL, paused_at = now(),
                    paused_reason = $2, updated_at = now()
             WHERE id = $1 AND enabled AND deleted_at IS NULL";
    /// User `$2` ended job `$1`'s pause.
    pub(crate) const RECORD_RESUME: Statement =
        "UPDATE jobs SET resumed_at = now(), resumed_by = $2 WHERE id = $1";
    /// The earliest next fire time of a live, enabled job.
    pub(crate) const EARLIEST_FIRE: Statement = "SELECT min(next_fire_at) FROM jobs
             WHERE enabled AND deleted_at IS NULL AND next_fire_at IS NOT NULL";
    /// Up to `$2` jobs due by `$1`, locked.
    pub(crate) const LOCK_DUE: Statement =
        "SELECT id, schedule, next_fire_at, ends_at, worker_group, catch_up::text AS catch_up,
                    jitter_seconds FROM jobs
             WHERE enabled AND deleted_at IS NULL AND next_fire_at <= $1
             ORDER BY next_fire_at LIMIT $2 FOR UPDATE SKIP LOCKED";
    /// Jobs `$1` next fire at `$2` (one each).
    pub(crate) const SET_NEXT_FIRES: Statement = "UPDATE jobs SET next_fire_at = n.at
             FROM unnest($1::uuid[], $2::timestamptz[]) AS n(id, at) WHERE jobs.id = n.id";
}

fn json_column<T: serde::de::DeserializeOwned>(
    row: &Row,
    name: &str,
    column: &'static str,
) -> Result<T, Error> {
    serde_json::from_value(row.try_get(name)?).map_err(|e| Error::Corrupt {
        column,
        reason: e.to_string(),
    })
}

fn catch_up(text: String) -> Result<CatchUp, Error> {
    CatchUp::parse(&text).ok_or(Error::Corrupt {
        column: "jobs.catch_up",
        reason: text,
    })
}

/// A `jobs.network` value (also read by the claim, `runs::claim`).
pub(crate) fn network(text: String) -> Result<Network, Error> {
    Network::parse(&text).ok_or(Error::Corrupt {
        column: "jobs.network",
        reason: text,
    })
}

/// Children as `"<job id> <condition>"` strings (one array column, no second query).
fn children(texts: Vec<String>) -> Result<Vec<crate::job_children::Child>, Error> {
    texts
        .into_iter()
        .map(|text| {
            let parsed = text.split_once(' ').and_then(|(id, condition)| {
                Some(crate::job_children::Child {
                    job_id: id.parse().ok()?,
                    condition: crate::job_children::Condition::parse(condition)?,
                })
            });
            parsed.ok_or(Error::Corrupt {
                column: "job_children",
                reason: text,
            })
        })
        .collect()
}

fn from_row(row: &Row) -> Result<Job, Error> {
    let concurrency: String = row.try_get("concurrency")?;
    Ok(Job {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        fields: JobFields {
            name: row.try_get("name")?,
            target: json_column(row, "target", "jobs.target")?,
            schedule: json_column(row, "schedule", "jobs.schedule")?,
            starts_at: row.try_get("starts_at")?,
            ends_at: row.try_get("ends_at")?,
            concurrency: Concurrency::parse(&concurrency).ok_or(Error::Corrupt {
                column: "jobs.concurrency",
                reason: concurrency,
            })?,
            catch_up: catch_up(row.try_get("catch_up")?)?,
            timeout_seconds: row.try_get("timeout_seconds")?,
            max_attempts: row.try_get("max_attempts")?,
            env: json_column(row, "env", "jobs.env")?,
            worker_group: row.try_get("worker_group")?,
            network: network(row.try_get("network")?)?,
            enabled: row.try_get("enabled")?,
            next_fire_at: row.try_get("next_fire_at")?,
            jitter_seconds: row.try_get("jitter_seconds")?,
            pause_after_failures: row.try_get("pause_after_failures")?,
        },
        children: children(row.try_get("children")?)?,
        pause: Pause {
            paused_at: row.try_get("paused_at")?,
            reason: row.try_get("paused_reason")?,
            resumed_at: row.try_get("resumed_at")?,
            resumed_by: row.try_get("resumed_by")?,
        },
        deleted_at: row.try_get("deleted_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("job fields serialize to JSON")
}

pub async fn insert(c: &impl GenericClient, project_id: Uuid, f: &JobFields) -> Result<Job, Error> {
    write(c, INSERT, project_id, f).await
}

/// Replaces every owner-set field of a job (the API merges a PATCH first).
pub async fn update(c: &impl GenericClient, id: Uuid, f: &JobFields) -> Result<Job, Error> {
    write(c, UPDATE, id, f).await
}

/// Runs `statement` (INSERT or UPDATE) with `$1` = `key` and the fields as `$2…`, in the
/// one order both statements take them.
async fn write(
    c: &impl GenericClient,
    statement: &str,
    key: Uuid,
    f: &JobFields,
) -> Result<Job, Error> {
    let stmt = c.prepare_cached(statement).await?;
    let row = c
        .query_one(
            &stmt,
            &[
                &key,
                &f.name,
                &to_json(&f.target),
                &to_json(&f.schedule),
                &f.starts_at,
                &f.ends_at,
                &f.concurrency.as_str(),
                &f.timeout_seconds,
                &f.max_attempts,
                &to_json(&f.env),
                &f.worker_group,
                &f.enabled,
                &f.next_fire_at,
                &f.catch_up.as_str(),
                &f.jitter_seconds,
                &f.pause_after_failures,
                &f.network.as_str(),
            ],
        )
        .await?;
    from_row(&row)
}

/// Which jobs a lookup may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Including {
    /// Only jobs that are not deleted.
    Live,
    /// Deleted ones too (reading their runs, restoring them).
    Deleted,
}

/// One job, scoped to `owner` (None: any owner).
pub async fn get(
    c: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
    including: Including,
) -> Result<Option<Job>, Error> {
    fetch_one(c, GET, id, owner, including).await
}

/// Like [`get`], and locks the row for a read-modify-write transaction.
pub async fn lock(
    c: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
    including: Including,
) -> Result<Option<Job>, Error> {
    fetch_one(c, LOCK, id, owner, including).await
}

async fn fetch_one(
    c: &impl GenericClient,
    sql: &'static str,
    id: Uuid,
    owner: Option<Uuid>,
    including: Including,
) -> Result<Option<Job>, Error> {
    let stmt = c.prepare_cached(sql).await?;
    let with_deleted = including == Including::Deleted;
    c.query_opt(&stmt, &[&id, &owner, &with_deleted])
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// A project's live jobs, newest first, strictly older than the `before` cursor.
pub async fn list_by_project(
    c: &impl GenericClient,
    project_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Job>, Error> {
    let stmt = c.prepare_cached(LIST_BY_PROJECT).await?;
    let (at, cursor_id) = before.unzip();
    let rows = c
        .query(&stmt, &[&project_id, &at, &cursor_id, &limit])
        .await?;
    rows.iter().map(from_row).collect()
}

/// Marks a job deleted (its schedule stops because `due` skips deleted jobs).
pub async fn soft_delete(c: &impl GenericClient, id: Uuid) -> Result<(), Error> {
    let stmt = c.prepare_cached(SOFT_DELETE).await?;
    c.execute(&stmt, &[&id]).await?;
    Ok(())
}

/// Undeletes a job, with the next fire time the caller recomputed from now.
pub async fn restore(
    c: &impl GenericClient,
    id: Uuid,
    next_fire_at: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    let stmt = c.prepare_cached(RESTORE).await?;
    c.execute(&stmt, &[&id, &next_fire_at]).await?;
    Ok(())
}

/// Pauses an enabled job on its own (repeated failures): disabled, schedule stopped,
/// the pause and its reason recorded. False: it was not enabled (nothing changed).
pub async fn pause(c: &impl GenericClient, id: Uuid, reason: &str) -> Result<bool, Error> {
    let stmt = c.prepare_cached(PAUSE).await?;
    Ok(c.execute(&stmt, &[&id, &reason]).await? == 1)
}

/// Records who ended a job's pause (enabling it again) and when.
pub async fn record_resume(c: &impl GenericClient, id: Uuid, by: Uuid) -> Result<(), Error> {
    let stmt = c.prepare_cached(RECORD_RESUME).await?;
    c.execute(&stmt, &[&id, &by]).await?;
    Ok(())
}

/// The earliest next fire time of any live, enabled job (the leader sleeps until then).
pub async fn earliest_fire(c: &impl GenericClient) -> Result<Option<DateTime<Utc>>, Error> {
    let stmt = c.prepare_cached(EARLIEST_FIRE).await?;
    Ok(c.query_one(&stmt, &[]).await?.get(0))
}

/// Jobs whose next tick is due by `horizon`, oldest tick first, locked; a concurrent
/// leader (there should be none) skips them rather than firing them twice.
pub async fn lock_due(
    c: &impl GenericClient,
    horizon: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DueJob>, Error> {
    let stmt = c.prepare_cached(LOCK_DUE).await?;
    let rows = c.query(&stmt, &[&horizon, &limit]).await?;
    rows.iter()
        .map(|row| {
            Ok(DueJob {
                id: row.try_get("id")?,
                schedule: json_column(row, "schedule", "jobs.schedule")?,
                next_fire_at: row.try_get("next_fire_at")?,
                ends_at: row.try_get("ends_at")?,
                worker_group: row.try_get("worker_group")?,
                catch_up: catch_up(row.try_get("catch_up")?)?,
                jitter_seconds: row.try_get("jitter_seconds")?,
            })
        })
        .collect()
}

/// Sets each job's next fire time (None: the schedule has no more ticks), in one statement.
pub async fn set_next_fires(
    c: &impl GenericClient,
    next: &[(Uuid, Option<DateTime<Utc>>)],
) -> Result<(), Error> {
    let stmt = c.prepare_cached(SET_NEXT_FIRES).await?;
    let ids: Vec<Uuid> = next.iter().map(|(id, _)| *id).collect();
    let ats: Vec<Option<DateTime<Utc>>> = next.iter().map(|(_, at)| *at).collect();
    c.execute(&stmt, &[&ids, &ats]).await?;
    Ok(())
}
