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

/// The columns of a [`Project`], read by [`from_row`] by name.
macro_rules! columns {
    () => {
        "id, owner_id, name, description, config, created_at, updated_at, worker_groups"
    };
}

statements! {
    /// A new project: owner `$1`, name `$2`, description `$3`, config `$4`.
    pub(crate) const INSERT: Statement = concat!(
        "INSERT INTO projects (owner_id, name, description, config)
         VALUES ($1, $2, $3, $4) RETURNING ",
        columns!()
    );
    /// Project `$1`, scoped to owner `$2` (null: any).
    pub(crate) const GET: Statement = concat!(
        "SELECT ",
        columns!(),
        " FROM projects WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)"
    );
    /// Owner `$1`'s projects (null: all) older than the cursor (`$2`, `$3`), newest first,
    /// at most `$4`.
    pub(crate) const LIST: Statement = concat!(
        "SELECT ",
        columns!(),
        " FROM projects
         WHERE ($1::uuid IS NULL OR owner_id = $1)
           AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    /// Project `$1` of owner `$2` (null: any) gets name `$3`, description `$4`, config
    /// `$5`, owner `$6` and worker groups `$7`, each when not null.
    pub(crate) const UPDATE: Statement = concat!(
        "UPDATE projects SET name = coalesce($3, name),
                description = coalesce($4, description),
                config = coalesce($5, config),
                owner_id = coalesce($6, owner_id),
                worker_groups = coalesce($7, worker_groups),
                updated_at = now()
         WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2) RETURNING ",
        columns!()
    );
    /// Whether project `$1` of owner `$2` (null: any) allows worker group `$3`; share-locks
    /// the row.
    pub(crate) const LOCK_ALLOWING_GROUP: Statement =
        "SELECT $3 = 'default' OR $3 = ANY(worker_groups) FROM projects
             WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2) FOR SHARE";
    /// The groups that project `$1`'s live jobs use and it does not allow, with counts.
    pub(crate) const JOBS_OUTSIDE_GROUPS: Statement =
        "SELECT j.worker_group, count(*) AS jobs FROM jobs j JOIN projects p ON p.id = j.project_id
             WHERE p.id = $1 AND j.deleted_at IS NULL AND j.worker_group <> 'default'
               AND NOT j.worker_group = ANY(p.worker_groups)
             GROUP BY j.worker_group ORDER BY j.worker_group LIMIT 100";
    /// How many jobs and artifact versions project `$1` has.
    pub(crate) const DEPENDENTS: Statement =
        "SELECT (SELECT count(*) FROM jobs WHERE project_id = $1)
                  + (SELECT count(*) FROM artifacts WHERE project_id = $1)";
    /// Deletes project `$1` of owner `$2` (null: any).
    pub(crate) const DELETE: Statement =
        "DELETE FROM projects WHERE id = $1 AND ($2::uuid IS NULL OR owner_id = $2)";
}

fn from_row(row: &Row) -> Result<Project, Error> {
    Ok(Project {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        config: row.try_get("config")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        worker_groups: row.try_get("worker_groups")?,
    })
}

pub async fn insert(c: &impl GenericClient, new: &NewProject<'_>) -> Result<Project, Error> {
    let stmt = c.prepare_cached(INSERT).await?;
    let row = c
        .query_one(
            &stmt,
            &[&new.owner_id, &new.name, &new.description, new.config],
        )
        .await?;
    from_row(&row)
}

pub async fn get(
    c: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<Project>, Error> {
    let stmt = c.prepare_cached(GET).await?;
    c.query_opt(&stmt, &[&id, &owner])
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// Newest first, at most `limit`, strictly older than `before` (a cursor) when given.
pub async fn list(
    c: &impl GenericClient,
    owner: Option<Uuid>,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Project>, Error> {
    let stmt = c.prepare_cached(LIST).await?;
    let (at, id) = before.unzip();
    let rows = c.query(&stmt, &[&owner, &at, &id, &limit]).await?;
    rows.iter().map(from_row).collect()
}

pub async fn update(
    c: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
    patch: &ProjectPatch<'_>,
) -> Result<Option<Project>, Error> {
    let stmt = c.prepare_cached(UPDATE).await?;
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
    row.map(|r| from_row(&r)).transpose()
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
    let stmt = c.prepare_cached(LOCK_ALLOWING_GROUP).await?;
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
    let stmt = c.prepare_cached(JOBS_OUTSIDE_GROUPS).await?;
    let rows = c.query(&stmt, &[&id]).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("worker_group")?, r.try_get("jobs")?)))
        .collect()
}

/// Number of jobs (deleted or not) and artifact versions (idem) that still belong to
/// the project; a project is deleted only when it has none.
pub async fn dependents(c: &impl GenericClient, id: Uuid) -> Result<i64, Error> {
    let stmt = c.prepare_cached(DEPENDENTS).await?;
    Ok(c.query_one(&stmt, &[&id]).await?.get(0))
}

pub async fn delete(c: &impl GenericClient, id: Uuid, owner: Option<Uuid>) -> Result<bool, Error> {
    let stmt = c.prepare_cached(DELETE).await?;
    Ok(c.execute(&stmt, &[&id, &owner]).await? == 1)
}
