//! The `project_secrets` table. Values leave the database only towards a worker that
//! runs the project's jobs; the API lists names.

use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use uuid::Uuid;

statements! {
    /// Project `$1`'s secret `$2` is now `$3`.
    pub(crate) const PUT: Statement =
        "INSERT INTO project_secrets (project_id, name, value) VALUES ($1, $2, $3)
             ON CONFLICT (project_id, name) DO UPDATE SET value = $3, updated_at = now()";
    /// Names and last change of project `$1`'s secrets.
    pub(crate) const NAMES: Statement =
        "SELECT name, updated_at FROM project_secrets WHERE project_id = $1 ORDER BY name LIMIT 1000";
    /// Deletes project `$1`'s secret `$2`.
    pub(crate) const DELETE: Statement =
        "DELETE FROM project_secrets WHERE project_id = $1 AND name = $2";
}

/// Creates or replaces a secret.
pub async fn put(
    c: &impl GenericClient,
    project_id: Uuid,
    name: &str,
    value: &str,
) -> Result<(), Error> {
    let stmt = c.prepare_cached(PUT).await?;
    c.execute(&stmt, &[&project_id, &name, &value]).await?;
    Ok(())
}

/// Names and last change of a project's secrets (at most 1000), never their values.
pub async fn names(
    c: &impl GenericClient,
    project_id: Uuid,
) -> Result<Vec<(String, DateTime<Utc>)>, Error> {
    let stmt = c.prepare_cached(NAMES).await?;
    let rows = c.query(&stmt, &[&project_id]).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("name")?, r.try_get("updated_at")?)))
        .collect()
}

pub async fn delete(c: &impl GenericClient, project_id: Uuid, name: &str) -> Result<bool, Error> {
    let stmt = c.prepare_cached(DELETE).await?;
    Ok(c.execute(&stmt, &[&project_id, &name]).await? == 1)
}
