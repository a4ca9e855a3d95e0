//! The `projects` table. `owner` arguments scope a query to one owner's projects
//! (`None` for admins, who see everything); another owner's project is simply absent.

use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Project {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub description: String,
    /// A JSON object of string values, exported to every run of the project's jobs.
    pub config: Value,
    /// The worker groups its jobs may use besides `default` (set by admins only).
    pub worker_groups: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct NewProject<'a> {
    pub owner_id: Uuid,
    pub name: &'a str,
    pub description: &'a str,
    pub config: &'a Value,
}

/// Fields to change; `None` keeps the current value.
#[derive(Default)]
pub struct ProjectPatch<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub config: Option<&'a Value>,
    pub owner_id: Option<Uuid>,
    /// Replaces the allowed worker groups (the API lets only admins set it).
    pub worker_groups: Option<&'a [String]>,
}

const COLUMNS: &str =
    "id, owner_id, name, description, config, created_at, updated_at, worker_groups";

fn from_row(row: &Row) -> Project {
    Project {
        id: row.get(0),
        owner_id: row.get(1),
        name: row.get(2),
        description: row.get(3),
        config: row.get(4),
        created_at: row.get(5),
        updated_at: row.get(6),
        worker_groups: row.get(7),
    }
}

pub async fn insert(c: &impl GenericClient, new: &NewProject<'_>) -> Result<Project, Error> {
    let sql = format!(
        "INSERT INTO projects (owner_id, name, description, config)
         VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let row = c
        .query_one(
            &stmt,
            &[&new.owner_id, &new.name, &new.description, new.config],
        )
        .await?;
    Ok(from_row(&row))
}

pub async fn get(
    c: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<Project>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM projects WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)"
    );
    let stmt = c.prepare_cached(&sql).await?;
    Ok(c.query_opt(&stmt, &[&id, &owner])
        .await?
        .map(|r| from_row(&r)))
}

/// Newest first, at most `limit`, strictly older than `before` (a cursor) when given.
pub async fn list(
    c: &impl GenericClient,
    owner: Option<Uuid>,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Project>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM projects
         WHERE ($1::uuid IS NULL OR owner_id = $1)
           AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let (at, id) = before.unzip();
    let rows = c.query(&stmt, &[&owner, &at, &id, &limit]).await?;
    Ok(rows.iter().map(from_row).collect())
}

pub async fn update(
    c: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
    patch: &ProjectPatch<'_>,
) -> Result<Option<Project>, Error> {
    let sql = format!(
        "UPDATE projects SET name = coalesce($3, name),
                description = coalesce($4, description),
                config = coalesce($5, config),
                owner_id = coalesce($6, owner_id),
                worker_groups = coalesce($7, worker_groups),
                updated_at = now()
         WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2) RETURNING {COLUMNS}"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let row = c
        .query_opt(
            &stmt,
            &[
                &id,
                &owner,
                &patch.name,
                &patch.description,
                &patch.config,
                &patch.owner_id,
                &patch.worker_groups,
            ],
        )
        .await?;
    Ok(row.map(|r| from_row(&r)))
}

/// Whether the project's jobs may use worker group `group` (`default`, or one an admin
/// allowed); None when the project is not found in `owner`'s scope. The project row is
/// share-locked until the transaction ends, so that an admin's change of its groups
/// waits for the job write this answer allows, and sees that job (see
/// [`jobs_outside_groups`]); job writes do not wait for one another.
pub async fn lock_allowing_group(
    c: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
    group: &str,
) -> Result<Option<bool>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT $3 = 'default' OR $3 = ANY(worker_groups) FROM projects
             WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2) FOR SHARE",
        )
        .await?;
    Ok(c.query_opt(&stmt, &[&id, &owner, &group])
        .await?
        .map(|r| r.get(0)))
}

/// The worker groups that live jobs of the project use but the project does not allow
/// (any but `default` and its `worker_groups`), each with how many jobs use it; at most
/// 100 groups. Run after an update of the project's groups, in the same transaction:
/// that update locked the row, so every job write allowed under the old list has
/// committed and is counted here, and every later one reads the new list.
pub async fn jobs_outside_groups(
    c: &impl GenericClient,
    id: Uuid,
) -> Result<Vec<(String, i64)>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT j.worker_group, count(*) FROM jobs j JOIN projects p ON p.id = j.project_id
             WHERE p.id = $1 AND j.deleted_at IS NULL AND j.worker_group <> 'default'
               AND NOT j.worker_group = ANY(p.worker_groups)
             GROUP BY j.worker_group ORDER BY j.worker_group LIMIT 100",
        )
        .await?;
    let rows = c.query(&stmt, &[&id]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Number of jobs (deleted or not) and artifact versions (idem) that still belong to
/// the project; a project is deleted only when it has none.
pub async fn dependents(c: &impl GenericClient, id: Uuid) -> Result<i64, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT (SELECT count(*) FROM jobs WHERE project_id = $1)
                  + (SELECT count(*) FROM artifacts WHERE project_id = $1)",
        )
        .await?;
    Ok(c.query_one(&stmt, &[&id]).await?.get(0))
}

pub async fn delete(c: &impl GenericClient, id: Uuid, owner: Option<Uuid>) -> Result<bool, Error> {
    let stmt = c
        .prepare_cached(
            "DELETE FROM projects WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)",
        )
        .await?;
    Ok(c.execute(&stmt, &[&id, &owner]).await? == 1)
}
