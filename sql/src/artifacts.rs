//! The `artifacts` table: immutable versions of uploaded files. The object is written
//! to the store before its row, so a row always has its object; an object without a
//! row (a crash between the two) is an orphan the sweeper removes.

use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Artifact {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub version: i32,
    pub sha256: String,
    pub size_bytes: i64,
    pub storage_key: String,
    pub uploaded_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

pub struct NewArtifact<'a> {
    pub project_id: Uuid,
    pub name: &'a str,
    pub sha256: &'a str,
    pub size_bytes: i64,
    pub storage_key: &'a str,
    pub uploaded_by: Uuid,
}

const COLUMNS: &str =
    "id, project_id, name, version, sha256, size_bytes, storage_key, uploaded_by, created_at";

fn from_row(row: &Row) -> Artifact {
    Artifact {
        id: row.get(0),
        project_id: row.get(1),
        name: row.get(2),
        version: row.get(3),
        sha256: row.get(4),
        size_bytes: row.get(5),
        storage_key: row.get(6),
        uploaded_by: row.get(7),
        created_at: row.get(8),
    }
}

/// Records a new version (the next number for this name, deleted ones included).
/// A transaction-scoped advisory lock on (project, name) orders concurrent uploads.
pub async fn insert(c: &impl GenericClient, new: &NewArtifact<'_>) -> Result<Artifact, Error> {
    let lock = c
        .prepare_cached(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text || '/' || $2::text, 0))",
        )
        .await?;
    c.execute(&lock, &[&new.project_id, &new.name]).await?;
    let sql = format!(
        "INSERT INTO artifacts (project_id, name, version, sha256, size_bytes, storage_key, uploaded_by)
         SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5, $6
         FROM artifacts WHERE project_id = $1 AND name = $2
         RETURNING {COLUMNS}"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let row = c
        .query_one(
            &stmt,
            &[
                &new.project_id,
                &new.name,
                &new.sha256,
                &new.size_bytes,
                &new.storage_key,
                &new.uploaded_by,
            ],
        )
        .await?;
    Ok(from_row(&row))
}

/// Live versions of a project's artifacts (of one name when given), newest first.
pub async fn list(
    c: &impl GenericClient,
    project_id: Uuid,
    name: Option<&str>,
    limit: i64,
) -> Result<Vec<Artifact>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM artifacts
         WHERE project_id = $1 AND ($2::text IS NULL OR name = $2) AND deleted_at IS NULL
         ORDER BY name, version DESC LIMIT $3"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let rows = c.query(&stmt, &[&project_id, &name, &limit]).await?;
    Ok(rows.iter().map(from_row).collect())
}

/// A live version; `version` None means the latest.
pub async fn get(
    c: &impl GenericClient,
    project_id: Uuid,
    name: &str,
    version: Option<i32>,
) -> Result<Option<Artifact>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM artifacts
         WHERE project_id = $1 AND name = $2 AND ($3::integer IS NULL OR version = $3)
           AND deleted_at IS NULL
         ORDER BY version DESC LIMIT 1"
    );
    let stmt = c.prepare_cached(&sql).await?;
    Ok(c.query_opt(&stmt, &[&project_id, &name, &version])
        .await?
        .map(|r| from_row(&r)))
}

/// Names of live jobs of the project that pin `version` of `name` (all versions when
/// None), at most 20, for a 409 that says who pins it.
pub async fn pinning_jobs(
    c: &impl GenericClient,
    project_id: Uuid,
    name: &str,
    version: Option<i32>,
) -> Result<Vec<String>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT name FROM jobs
             WHERE project_id = $1 AND deleted_at IS NULL
               AND target->>'kind' = 'binary' AND target->>'artifact' = $2
               AND jsonb_typeof(target->'version') = 'number'
               AND ($3::integer IS NULL OR (target->>'version')::integer = $3)
             ORDER BY name LIMIT 20",
        )
        .await?;
    let rows = c.query(&stmt, &[&project_id, &name, &version]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Marks versions deleted (one, or all of the name) and returns their storage keys.
pub async fn mark_deleted(
    c: &impl GenericClient,
    project_id: Uuid,
    name: &str,
    version: Option<i32>,
) -> Result<Vec<String>, Error> {
    let stmt = c
        .prepare_cached(
            "UPDATE artifacts SET deleted_at = now()
             WHERE project_id = $1 AND name = $2 AND ($3::integer IS NULL OR version = $3)
               AND deleted_at IS NULL
             RETURNING storage_key",
        )
        .await?;
    let rows = c.query(&stmt, &[&project_id, &name, &version]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Which of `storage_keys` a live version names (the others are orphans: a crash
/// between object and row, or a deletion whose object removal failed). Storage keys are
/// unique, so at most as many rows as keys come back.
pub async fn live_keys(
    c: &impl GenericClient,
    storage_keys: &[String],
) -> Result<Vec<String>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT storage_key FROM artifacts
             WHERE storage_key = ANY($1) AND deleted_at IS NULL
             LIMIT cardinality($1)",
        )
        .await?;
    Ok(c.query(&stmt, &[&storage_keys])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The sha256 of every live version (at most `limit`): what a worker's cache may keep.
pub async fn live_sha256s(c: &impl GenericClient, limit: i64) -> Result<Vec<String>, Error> {
    let stmt = c
        .prepare_cached("SELECT DISTINCT sha256 FROM artifacts WHERE deleted_at IS NULL LIMIT $1")
        .await?;
    Ok(c.query(&stmt, &[&limit])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}
