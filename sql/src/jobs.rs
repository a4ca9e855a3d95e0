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

const COLUMNS: &str = "j.id, j.project_id, j.name, j.target, j.schedule, j.starts_at, j.ends_at,
    j.concurrency::text, j.timeout_seconds, j.max_attempts, j.env, j.worker_group, j.enabled,
    j.next_fire_at, j.deleted_at, j.created_at, j.updated_at, j.catch_up::text,
    j.jitter_seconds, j.pause_after_failures, j.paused_at, j.paused_reason, j.resumed_at,
    j.resumed_by,
    (SELECT coalesce(array_agg(c.child_job_id::text || ' ' || c.condition::text
                               ORDER BY c.condition, c.child_job_id), '{}')
     FROM job_children c WHERE c.job_id = j.id),
    j.network";

fn json_column<T: serde::de::DeserializeOwned>(
    row: &Row,
    index: usize,
    column: &'static str,
) -> Result<T, Error> {
    serde_json::from_value(row.get(index)).map_err(|e| Error::Corrupt {
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
    let concurrency: String = row.get(7);
    Ok(Job {
        id: row.get(0),
        project_id: row.get(1),
        fields: JobFields {
            name: row.get(2),
            target: json_column(row, 3, "jobs.target")?,
            schedule: json_column(row, 4, "jobs.schedule")?,
            starts_at: row.get(5),
            ends_at: row.get(6),
            concurrency: Concurrency::parse(&concurrency).ok_or(Error::Corrupt {
                column: "jobs.concurrency",
                reason: concurrency,
            })?,
            catch_up: catch_up(row.get(17))?,
            timeout_seconds: row.get(8),
            max_attempts: row.get(9),
            env: json_column(row, 10, "jobs.env")?,
            worker_group: row.get(11),
            network: network(row.get(25))?,
            enabled: row.get(12),
            next_fire_at: row.get(13),
            jitter_seconds: row.get(18),
            pause_after_failures: row.get(19),
        },
        children: children(row.get(24))?,
        pause: Pause {
            paused_at: row.get(20),
            reason: row.get(21),
            resumed_at: row.get(22),
            resumed_by: row.get(23),
        },
        deleted_at: row.get(14),
        created_at: row.get(15),
        updated_at: row.get(16),
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("job fields serialize to JSON")
}

pub async fn insert(c: &impl GenericClient, project_id: Uuid, f: &JobFields) -> Result<Job, Error> {
    let sql = format!(
        "INSERT INTO jobs AS j (project_id, name, target, schedule, starts_at, ends_at,
            concurrency, timeout_seconds, max_attempts, env, worker_group, enabled, next_fire_at,
            catch_up, jitter_seconds, pause_after_failures, network)
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::concurrency_policy, $8, $9, $10, $11, $12, $13,
                 $14::text::catch_up_policy, $15, $16, $17)
         RETURNING {COLUMNS}"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let row = c
        .query_one(
            &stmt,
            &[
                &project_id,
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

/// Replaces every owner-set field of a job (the API merges a PATCH first).
pub async fn update(c: &impl GenericClient, id: Uuid, f: &JobFields) -> Result<Job, Error> {
    let sql = format!(
        "UPDATE jobs AS j SET name = $2, target = $3, schedule = $4, starts_at = $5,
            ends_at = $6, concurrency = $7::text::concurrency_policy, timeout_seconds = $8,
            max_attempts = $9, env = $10, worker_group = $11, enabled = $12,
            next_fire_at = $13, catch_up = $14::text::catch_up_policy, jitter_seconds = $15,
            pause_after_failures = $16, network = $17, updated_at = now()
         WHERE j.id = $1 RETURNING {COLUMNS}"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let row = c
        .query_one(
            &stmt,
            &[
                &id,
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
    let sql = format!("SELECT {COLUMNS} {SCOPED_BY_ID}");
    fetch_one(c, &sql, id, owner, including).await
}

/// Like [`get`], and locks the row for a read-modify-write transaction.
pub async fn lock(
    c: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
    including: Including,
) -> Result<Option<Job>, Error> {
    let sql = format!("SELECT {COLUMNS} {SCOPED_BY_ID} FOR UPDATE OF j");
    fetch_one(c, &sql, id, owner, including).await
}

const SCOPED_BY_ID: &str = "FROM jobs j JOIN projects p ON p.id = j.project_id
    WHERE j.id = $1 AND ($2::uuid IS NULL OR p.owner_id = $2) AND ($3 OR j.deleted_at IS NULL)";

async fn fetch_one(
    c: &impl GenericClient,
    sql: &str,
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
    let sql = format!(
        "SELECT {COLUMNS} FROM jobs j
         WHERE j.project_id = $1 AND j.deleted_at IS NULL
           AND ($2::timestamptz IS NULL OR (j.created_at, j.id) < ($2, $3))
         ORDER BY j.created_at DESC, j.id DESC LIMIT $4"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let (at, cursor_id) = before.unzip();
    let rows = c
        .query(&stmt, &[&project_id, &at, &cursor_id, &limit])
        .await?;
    rows.iter().map(from_row).collect()
}

/// Marks a job deleted (its schedule stops because `due` skips deleted jobs).
pub async fn soft_delete(c: &impl GenericClient, id: Uuid) -> Result<(), Error> {
    let stmt = c
        .prepare_cached("UPDATE jobs SET deleted_at = now(), updated_at = now() WHERE id = $1")
        .await?;
    c.execute(&stmt, &[&id]).await?;
    Ok(())
}

/// Undeletes a job, with the next fire time the caller recomputed from now.
pub async fn restore(
    c: &impl GenericClient,
    id: Uuid,
    next_fire_at: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    let stmt = c
        .prepare_cached(
            "UPDATE jobs SET deleted_at = NULL, next_fire_at = $2, updated_at = now()
             WHERE id = $1",
        )
        .await?;
    c.execute(&stmt, &[&id, &next_fire_at]).await?;
    Ok(())
}

/// Pauses an enabled job on its own (repeated failures): disabled, schedule stopped,
/// the pause and its reason recorded. False: it was not enabled (nothing changed).
pub async fn pause(c: &impl GenericClient, id: Uuid, reason: &str) -> Result<bool, Error> {
    let stmt = c
        .prepare_cached(
            "UPDATE jobs SET enabled = false, next_fire_at = NULL, paused_at = now(),
                    paused_reason = $2, updated_at = now()
             WHERE id = $1 AND enabled AND deleted_at IS NULL",
        )
        .await?;
    Ok(c.execute(&stmt, &[&id, &reason]).await? == 1)
}

/// Records who ended a job's pause (enabling it again) and when.
pub async fn record_resume(c: &impl GenericClient, id: Uuid, by: Uuid) -> Result<(), Error> {
    let stmt = c
        .prepare_cached("UPDATE jobs SET resumed_at = now(), resumed_by = $2 WHERE id = $1")
        .await?;
    c.execute(&stmt, &[&id, &by]).await?;
    Ok(())
}

/// The earliest next fire time of any live, enabled job (the leader sleeps until then).
pub async fn earliest_fire(c: &impl GenericClient) -> Result<Option<DateTime<Utc>>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT min(next_fire_at) FROM jobs
             WHERE enabled AND deleted_at IS NULL AND next_fire_at IS NOT NULL",
        )
        .await?;
    Ok(c.query_one(&stmt, &[]).await?.get(0))
}

/// Jobs whose next tick is due by `horizon`, oldest tick first, locked; a concurrent
/// leader (there should be none) skips them rather than firing them twice.
pub async fn lock_due(
    c: &impl GenericClient,
    horizon: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DueJob>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT id, schedule, next_fire_at, ends_at, worker_group, catch_up::text,
                    jitter_seconds FROM jobs
             WHERE enabled AND deleted_at IS NULL AND next_fire_at <= $1
             ORDER BY next_fire_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .await?;
    let rows = c.query(&stmt, &[&horizon, &limit]).await?;
    rows.iter()
        .map(|row| {
            Ok(DueJob {
                id: row.get(0),
                schedule: json_column(row, 1, "jobs.schedule")?,
                next_fire_at: row.get(2),
                ends_at: row.get(3),
                worker_group: row.get(4),
                catch_up: catch_up(row.get(5))?,
                jitter_seconds: row.get(6),
            })
        })
        .collect()
}

/// Sets each job's next fire time (None: the schedule has no more ticks), in one statement.
pub async fn set_next_fires(
    c: &impl GenericClient,
    next: &[(Uuid, Option<DateTime<Utc>>)],
) -> Result<(), Error> {
    let stmt = c
        .prepare_cached(
            "UPDATE jobs SET next_fire_at = n.at
             FROM unnest($1::uuid[], $2::timestamptz[]) AS n(id, at) WHERE jobs.id = n.id",
        )
        .await?;
    let ids: Vec<Uuid> = next.iter().map(|(id, _)| *id).collect();
    let ats: Vec<Option<DateTime<Utc>>> = next.iter().map(|(_, at)| *at).collect();
    c.execute(&stmt, &[&ids, &ats]).await?;
    Ok(())
}
