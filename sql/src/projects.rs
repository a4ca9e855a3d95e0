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
}

const COLUMNS: &str = "id, owner_id, name, description, config, created_at, updated_at";

fn from_row(row: &Row) -> Project {
    Project {
        id: row.get(0),
        owner_id: row.get(1),
        name: row.get(2),
        description: row.get(3),
        config: row.get(4),
        created_at: row.get(5),
        updated_at: row.get(6),
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
            ],
        )
        .await?;
    Ok(row.map(|r| from_row(&r)))
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
