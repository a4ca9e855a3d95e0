//! The `notification_channels` table: HTTP endpoints told about final run outcomes, for
//! a whole project (`job_id` NULL) or one job. Deliveries: [`crate::notification_deliveries`].

use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Channel {
    pub id: Uuid,
    pub project_id: Uuid,
    pub job_id: Option<Uuid>,
    pub url: String,
    /// `json` or `slack`.
    pub format: String,
    /// A subset of `failure`, `timeout`, `recovery`, `finish`.
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
}

pub struct NewChannel<'a> {
    pub project_id: Uuid,
    pub job_id: Option<Uuid>,
    pub url: &'a str,
    pub format: &'a str,
    pub secret: &'a str,
    pub events: &'a [String],
    pub created_by: Uuid,
}

/// What the dispatcher needs to send to a channel.
#[derive(Clone)]
pub struct Endpoint {
    pub url: String,
    pub format: String,
    pub secret: String,
}

/// The columns of a [`Channel`], read by [`from_row`] by name: `n` is the channel.
macro_rules! columns {
    () => {
        "n.id, n.project_id, n.job_id, n.url, n.format, n.events, n.created_at"
    };
}

statements! {
    /// A new channel: project `$1`, job `$2`, URL `$3`, format `$4`, secret `$5`, events
    /// `$6`, creator `$7`.
    pub(crate) const INSERT: Statement = concat!(
        "INSERT INTO notification_channels AS n
             (project_id, job_id, url, format, secret, events, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
        columns!()
    );
    /// Project `$1`'s channels, newest first, at most `$2`.
    pub(crate) const LIST_BY_PROJECT: Statement = concat!(
        "SELECT ",
        columns!(),
        " FROM notification_channels n WHERE n.project_id = $1
         ORDER BY n.created_at DESC, n.id DESC LIMIT $2"
    );
    /// Job `$1`'s own channels, newest first, at most `$2`.
    pub(crate) const LIST_BY_JOB: Statement = concat!(
        "SELECT ",
        columns!(),
        " FROM notification_channels n WHERE n.job_id = $1
         ORDER BY n.created_at DESC, n.id DESC LIMIT $2"
    );
    /// Channel `$1`, scoped to owner `$2` (null: any).
    pub(crate) const GET: Statement = concat!(
        "SELECT ",
        columns!(),
        " FROM notification_channels n JOIN projects p ON p.id = n.project_id
         WHERE n.id = $1 AND ($2::uuid IS NULL OR p.owner_id = $2)"
    );
    /// Deletes channel `$1`.
    pub(crate) const DELETE: Statement = "DELETE FROM notification_channels WHERE id = $1";
    /// The channels (id, events) that hear about job `$1`.
    pub(crate) const FOR_JOB: Statement = "SELECT n.id, n.events FROM notification_channels n
             JOIN jobs j ON j.project_id = n.project_id
             WHERE j.id = $1 AND (n.job_id IS NULL OR n.job_id = j.id)";
}

fn from_row(row: &Row) -> Result<Channel, Error> {
    Ok(Channel {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        job_id: row.try_get("job_id")?,
        url: row.try_get("url")?,
        format: row.try_get("format")?,
        events: row.try_get("events")?,
        created_at: row.try_get("created_at")?,
    })
}

pub async fn insert(c: &impl GenericClient, new: &NewChannel<'_>) -> Result<Channel, Error> {
    let stmt = c.prepare_cached(INSERT).await?;
    let row = c
        .query_one(
            &stmt,
            &[
                &new.project_id,
                &new.job_id,
                &new.url,
                &new.format,
                &new.secret,
                &new.events,
                &new.created_by,
            ],
        )
        .await?;
    from_row(&row)
}

/// The channels of a project (project-wide and per job), newest first.
pub async fn list_by_project(
    c: &impl GenericClient,
    project_id: Uuid,
    limit: i64,
) -> Result<Vec<Channel>, Error> {
    let stmt = c.prepare_cached(LIST_BY_PROJECT).await?;
    let rows = c.query(&stmt, &[&project_id, &limit]).await?;
    rows.iter().map(from_row).collect()
}

/// The channels of one job (not the project-wide ones), newest first.
pub async fn list_by_job(
    c: &impl GenericClient,
    job_id: Uuid,
    limit: i64,
) -> Result<Vec<Channel>, Error> {
    let stmt = c.prepare_cached(LIST_BY_JOB).await?;
    let rows = c.query(&stmt, &[&job_id, &limit]).await?;
    rows.iter().map(from_row).collect()
}

/// One channel, scoped to the owner of its project (None: any owner).
pub async fn get(
    c: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<Channel>, Error> {
    let stmt = c.prepare_cached(GET).await?;
    c.query_opt(&stmt, &[&id, &owner])
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// Deletes the channel and, with it, its deliveries (pending ones are not sent).
pub async fn delete(c: &impl GenericClient, id: Uuid) -> Result<bool, Error> {
    let stmt = c.prepare_cached(DELETE).await?;
    Ok(c.execute(&stmt, &[&id]).await? == 1)
}

/// The channels that hear about `job_id`'s outcomes: its project's and its own, with
/// the events each asked for.
pub async fn for_job(
    c: &impl GenericClient,
    job_id: Uuid,
) -> Result<Vec<(Uuid, Vec<String>)>, Error> {
    let stmt = c.prepare_cached(FOR_JOB).await?;
    let rows = c.query(&stmt, &[&job_id]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
