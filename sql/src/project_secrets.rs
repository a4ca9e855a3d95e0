//! The `project_secrets` table. Values leave the database only towards a worker that
//! runs the project's jobs; the API lists names.

use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Creates or replaces a secret.
pub async fn put(
    c: &impl GenericClient,
    project_id: Uuid,
    name: &str,
    value: &str,
) -> Result<(), Error> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO project_secrets (project_id, name, value) VALUES ($1, $2, $3)
             ON CONFLICT (project_id, name) DO UPDATE SET value = $3, updated_at = now()",
        )
        .await?;
    c.execute(&stmt, &[&project_id, &name, &value]).await?;
    Ok(())
}

/// Names and last change of a project's secrets (at most 1000), never their values.
pub async fn names(
    c: &impl GenericClient,
    project_id: Uuid,
) -> Result<Vec<(String, DateTime<Utc>)>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT name, updated_at FROM project_secrets WHERE project_id = $1 ORDER BY name LIMIT 1000",
        )
        .await?;
    let rows = c.query(&stmt, &[&project_id]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub async fn delete(c: &impl GenericClient, project_id: Uuid, name: &str) -> Result<bool, Error> {
    let stmt = c
        .prepare_cached("DELETE FROM project_secrets WHERE project_id = $1 AND name = $2")
        .await?;
    Ok(c.execute(&stmt, &[&project_id, &name]).await? == 1)
}
