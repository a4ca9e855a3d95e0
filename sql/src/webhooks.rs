//! The `webhooks` table: per-job endpoints that CI systems call to trigger a run.

use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: Uuid,
    pub job_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_delivery_at: Option<DateTime<Utc>>,
    /// Event names taken (`X-GitHub-Event`, `X-Gitlab-Event`); empty: all.
    pub events: Vec<String>,
    /// Branch or ref patterns taken (against the payload's `ref`); empty: all.
    pub branches: Vec<String>,
}

/// What a delivery needs: the secret and the state of the job it triggers.
#[derive(Clone)]
pub struct WebhookTarget {
    pub id: Uuid,
    pub job_id: Uuid,
    pub secret: String,
    pub job_enabled: bool,
    pub job_deleted: bool,
    /// The job's concurrency policy is `skip`.
    pub job_skips: bool,
    pub events: Vec<String>,
    pub branches: Vec<String>,
}

const COLUMNS: &str = "w.id, w.job_id, w.created_at, w.last_delivery_at, w.events, w.branches";

fn from_row(row: &Row) -> Webhook {
    Webhook {
        id: row.get(0),
        job_id: row.get(1),
        created_at: row.get(2),
        last_delivery_at: row.get(3),
        events: row.get(4),
        branches: row.get(5),
    }
}

pub async fn insert(
    c: &impl GenericClient,
    job_id: Uuid,
    secret: &str,
    created_by: Uuid,
    events: &[String],
    branches: &[String],
) -> Result<Webhook, Error> {
    let sql = format!(
        "INSERT INTO webhooks AS w (job_id, secret, created_by, events, branches)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING {COLUMNS}"
    );
    let stmt = c.prepare_cached(&sql).await?;
    Ok(from_row(
        &c.query_one(&stmt, &[&job_id, &secret, &created_by, &events, &branches])
            .await?,
    ))
}

/// A job's webhooks, newest first (a job has few; `limit` bounds it anyway).
pub async fn list_by_job(
    c: &impl GenericClient,
    job_id: Uuid,
    limit: i64,
) -> Result<Vec<Webhook>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM webhooks w WHERE w.job_id = $1
         ORDER BY w.created_at DESC, w.id DESC LIMIT $2"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let rows = c.query(&stmt, &[&job_id, &limit]).await?;
    Ok(rows.iter().map(from_row).collect())
}

pub async fn delete(c: &impl GenericClient, id: Uuid, job_id: Uuid) -> Result<bool, Error> {
    let stmt = c
        .prepare_cached("DELETE FROM webhooks WHERE id = $1 AND job_id = $2")
        .await?;
    Ok(c.execute(&stmt, &[&id, &job_id]).await? == 1)
}

/// The webhook a delivery names, with its secret, its filters and its job's state.
pub async fn target(c: &impl GenericClient, id: Uuid) -> Result<Option<WebhookTarget>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT w.id, w.job_id, w.secret, j.enabled, j.deleted_at IS NOT NULL,
                    j.concurrency = 'skip', w.events, w.branches
             FROM webhooks w JOIN jobs j ON j.id = w.job_id WHERE w.id = $1",
        )
        .await?;
    Ok(c.query_opt(&stmt, &[&id]).await?.map(|row| WebhookTarget {
        id: row.get(0),
        job_id: row.get(1),
        secret: row.get(2),
        job_enabled: row.get(3),
        job_deleted: row.get(4),
        job_skips: row.get(5),
        events: row.get(6),
        branches: row.get(7),
    }))
}

pub async fn mark_delivered(c: &impl GenericClient, id: Uuid) -> Result<(), Error> {
    let stmt = c
        .prepare_cached("UPDATE webhooks SET last_delivery_at = now() WHERE id = $1")
        .await?;
    c.execute(&stmt, &[&id]).await?;
    Ok(())
}
