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

/// The columns of a [`Webhook`], read by [`from_row`] by name: `w` is the webhook.
macro_rules! columns {
    () => {
        "w.id, w.job_id, w.created_at, w.last_delivery_at, w.events, w.branches"
    };
}

statements! {
    /// A new webhook of job `$1`: secret `$2`, creator `$3`, events `$4`, branches `$5`.
    pub(crate) const INSERT: Statement = concat!(
        "INSERT INTO webhooks AS w (job_id, secret, created_by, events, branches)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING ",
        columns!()
    );
    /// Job `$1`'s webhooks, newest first, at most `$2`.
    pub(crate) const LIST_BY_JOB: Statement = concat!(
        "SELECT ",
        columns!(),
        " FROM webhooks w WHERE w.job_id = $1
         ORDER BY w.created_at DESC, w.id DESC LIMIT $2"
    );
    /// Deletes webhook `$1` of job `$2`.
    pub(crate) const DELETE: Statement = "DELETE FROM webhooks WHERE id = $1 AND job_id = $2";
    /// Webhook `$1` with its secret, its filters and its job's state.
    pub(crate) const TARGET: Statement =
        "SELECT w.id, w.job_id, w.secret, j.enabled AS job_enabled,
                j.deleted_at IS NOT NULL AS job_deleted, j.concurrency = 'skip' AS job_skips,
                w.events, w.branches
             FROM webhooks w JOIN jobs j ON j.id = w.job_id WHERE w.id = $1";
    /// Webhook `$1` was delivered to now.
    pub(crate) const MARK_DELIVERED: Statement =
        "UPDATE webhooks SET last_delivery_at = now() WHERE id = $1";
}

fn from_row(row: &Row) -> Result<Webhook, Error> {
    Ok(Webhook {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        created_at: row.try_get("created_at")?,
        last_delivery_at: row.try_get("last_delivery_at")?,
        events: row.try_get("events")?,
        branches: row.try_get("branches")?,
    })
}

pub async fn insert(
    c: &impl GenericClient,
    job_id: Uuid,
    secret: &str,
    created_by: Uuid,
    events: &[String],
    branches: &[String],
) -> Result<Webhook, Error> {
    let stmt = c.prepare_cached(INSERT).await?;
    from_row(
        &c.query_one(&stmt, &[&job_id, &secret, &created_by, &events, &branches])
            .await?,
    )
}

/// A job's webhooks, newest first (a job has few; `limit` bounds it anyway).
pub async fn list_by_job(
    c: &impl GenericClient,
    job_id: Uuid,
    limit: i64,
) -> Result<Vec<Webhook>, Error> {
    let stmt = c.prepare_cached(LIST_BY_JOB).await?;
    let rows = c.query(&stmt, &[&job_id, &limit]).await?;
    rows.iter().map(from_row).collect()
}

pub async fn delete(c: &impl GenericClient, id: Uuid, job_id: Uuid) -> Result<bool, Error> {
    let stmt = c.prepare_cached(DELETE).await?;
    Ok(c.execute(&stmt, &[&id, &job_id]).await? == 1)
}

/// The webhook a delivery names, with its secret, its filters and its job's state.
pub async fn target(c: &impl GenericClient, id: Uuid) -> Result<Option<WebhookTarget>, Error> {
    let stmt = c.prepare_cached(TARGET).await?;
    c.query_opt(&stmt, &[&id])
        .await?
        .map(|row| {
            Ok(WebhookTarget {
                id: row.try_get("id")?,
                job_id: row.try_get("job_id")?,
                secret: row.try_get("secret")?,
                job_enabled: row.try_get("job_enabled")?,
                job_deleted: row.try_get("job_deleted")?,
                job_skips: row.try_get("job_skips")?,
                events: row.try_get("events")?,
                branches: row.try_get("branches")?,
            })
        })
        .transpose()
}

pub async fn mark_delivered(c: &impl GenericClient, id: Uuid) -> Result<(), Error> {
    let stmt = c.prepare_cached(MARK_DELIVERED).await?;
    c.execute(&stmt, &[&id]).await?;
    Ok(())
}
