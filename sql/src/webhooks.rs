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
}

const COLUMNS: &str = "w.id, w.job_id, w.created_at, w.last_delivery_at";

fn from_row(row: &Row) -> Webhook {
    Webhook {
        id: row.get(0),
        job_id: row.get(1),
        created_at: row.get(2),
        last_delivery_at: row.get(3),
    }
}

pub async fn insert(
    c: &impl GenericClient,
    job_id: Uuid,
    secret: &str,
    created_by: Uuid,
) -> Result<Webhook, Error> {
    let sql = format!(
        "INSERT INTO webhooks AS w (job_id, secret, created_by) VALUES ($1, $2, $3)
         RETURNING {COLUMNS}"
    );
    let stmt = c.prepare_cached(&sql).await?;
    Ok(from_row(
        &c.query_one(&stmt, &[&job_id, &secret, &created_by]).await?,
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

/// The webhook a delivery names, with its secret and its job's state.
pub async fn target(c: &impl GenericClient, id: Uuid) -> Result<Option<WebhookTarget>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT w.id, w.job_id, w.secret, j.enabled, j.deleted_at IS NOT NULL,
                    j.concurrency = 'skip'
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
    }))
}

pub async fn mark_delivered(c: &impl GenericClient, id: Uuid) -> Result<(), Error> {
    let stmt = c
        .prepare_cached("UPDATE webhooks SET last_delivery_at = now() WHERE id = $1")
        .await?;
    c.execute(&stmt, &[&id]).await?;
    Ok(())
}
