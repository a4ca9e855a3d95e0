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

const COLUMNS: &str = "n.id, n.project_id, n.job_id, n.url, n.format, n.events, n.created_at";

fn from_row(row: &Row) -> Channel {
    Channel {
        id: row.get(0),
        project_id: row.get(1),
        job_id: row.get(2),
        url: row.get(3),
        format: row.get(4),
        events: row.get(5),
        created_at: row.get(6),
    }
}

pub async fn insert(c: &impl GenericClient, new: &NewChannel<'_>) -> Result<Channel, Error> {
    let sql = format!(
        "INSERT INTO notification_channels AS n
             (project_id, job_id, url, format, secret, events, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    );
    let stmt = c.prepare_cached(&sql).await?;
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
    Ok(from_row(&row))
}

/// The channels of a project (project-wide and per job), newest first.
pub async fn list_by_project(
    c: &impl GenericClient,
    project_id: Uuid,
    limit: i64,
) -> Result<Vec<Channel>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM notification_channels n WHERE n.project_id = $1
         ORDER BY n.created_at DESC, n.id DESC LIMIT $2"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let rows = c.query(&stmt, &[&project_id, &limit]).await?;
    Ok(rows.iter().map(from_row).collect())
}

/// The channels of one job (not the project-wide ones), newest first.
pub async fn list_by_job(
    c: &impl GenericClient,
    job_id: Uuid,
    limit: i64,
) -> Result<Vec<Channel>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM notification_channels n WHERE n.job_id = $1
         ORDER BY n.created_at DESC, n.id DESC LIMIT $2"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let rows = c.query(&stmt, &[&job_id, &limit]).await?;
    Ok(rows.iter().map(from_row).collect())
}

/// One channel, scoped to the owner of its project (None: any owner).
pub async fn get(
    c: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<Channel>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM notification_channels n JOIN projects p ON p.id = n.project_id
         WHERE n.id = $1 AND ($2::uuid IS NULL OR p.owner_id = $2)"
    );
    let stmt = c.prepare_cached(&sql).await?;
    Ok(c.query_opt(&stmt, &[&id, &owner])
        .await?
        .map(|r| from_row(&r)))
}

/// Deletes the channel and, with it, its deliveries (pending ones are not sent).
pub async fn delete(c: &impl GenericClient, id: Uuid) -> Result<bool, Error> {
    let stmt = c
        .prepare_cached("DELETE FROM notification_channels WHERE id = $1")
        .await?;
    Ok(c.execute(&stmt, &[&id]).await? == 1)
}

/// The channels that hear about `job_id`'s outcomes: its project's and its own, with
/// the events each asked for.
pub async fn for_job(
    c: &impl GenericClient,
    job_id: Uuid,
) -> Result<Vec<(Uuid, Vec<String>)>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT n.id, n.events FROM notification_channels n
             JOIN jobs j ON j.project_id = n.project_id
             WHERE j.id = $1 AND (n.job_id IS NULL OR n.job_id = j.id)",
        )
        .await?;
    let rows = c.query(&stmt, &[&job_id]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
