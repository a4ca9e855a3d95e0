//! The `notification_deliveries` table: the durable outbox of notifications. A row is
//! written in the transaction that processes a run's final outcome (one per channel,
//! unique per channel and run), claimed by the leader's dispatcher with a lease, sent,
//! then recorded delivered, retried later, or given up. Its id is the event id.

use crate::notification_channels::Endpoint;
use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;
use tokio_postgres::Row;
use uuid::Uuid;

/// A delivery as the API shows it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: Uuid,
    pub channel_id: Uuid,
    pub run_id: Uuid,
    pub event: String,
    pub events: Vec<String>,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub gave_up_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A delivery claimed for sending: `attempt` is this attempt's number (the fence of
/// its outcome), `payload` the stored body without its id.
#[derive(Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub run_id: Uuid,
    pub event: String,
    pub events: Vec<String>,
    pub payload: Value,
    pub attempt: i32,
    pub endpoint: Endpoint,
}

/// The columns of a [`Delivery`], read by [`from_row`] by name: `d` is the delivery.
macro_rules! columns {
    () => {
        "d.id, d.channel_id, d.run_id, d.event, d.events, d.attempts, d.next_attempt_at,
         d.last_attempt_at, d.last_status, d.last_error, d.delivered_at, d.gave_up_at,
         d.created_at"
    };
}

statements! {
    /// A delivery to channel `$1` about run `$2`: event `$3`, events `$4`, payload `$5`.
    pub(crate) const INSERT: Statement =
        "INSERT INTO notification_deliveries (channel_id, run_id, event, events, payload)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (channel_id, run_id) DO NOTHING";
    /// Up to `$1` due deliveries, each leased for `$2` seconds, with their endpoints.
    pub(crate) const CLAIM_DUE: Statement = "UPDATE notification_deliveries d
             SET attempts = d.attempts + 1, last_attempt_at = now(),
                 next_attempt_at = now() + make_interval(secs => $2)
             FROM (SELECT id FROM notification_deliveries
                   WHERE delivered_at IS NULL AND gave_up_at IS NULL
                     AND next_attempt_at <= now()
                   ORDER BY next_attempt_at LIMIT $1
                   FOR UPDATE SKIP LOCKED) due, notification_channels n
             WHERE d.id = due.id AND n.id = d.channel_id
             RETURNING d.id, d.run_id, d.event, d.events, d.payload, d.attempts,
                       n.url, n.format, n.secret";
    /// Delivery `$1` got HTTP status `$2`.
    pub(crate) const RECORD_DELIVERED: Statement = "UPDATE notification_deliveries
             SET delivered_at = now(), last_status = $2, last_error = NULL
             WHERE id = $1 AND delivered_at IS NULL";
    /// Attempt `$2` of delivery `$1` failed (status `$3`, error `$4`): retried in `$5`
    /// seconds, or given up when null.
    pub(crate) const RECORD_FAILED: Statement = "UPDATE notification_deliveries
             SET last_status = $3, last_error = $4,
                 next_attempt_at = now() + make_interval(secs => coalesce($5::float8, 0)),
                 gave_up_at = CASE WHEN $5::float8 IS NULL THEN now() END
             WHERE id = $1 AND attempts = $2 AND delivered_at IS NULL AND gave_up_at IS NULL";
    /// Channel `$1`'s deliveries, newest first, at most `$2`.
    pub(crate) const LIST_BY_CHANNEL: Statement = concat!(
        "SELECT ",
        columns!(),
        " FROM notification_deliveries d WHERE d.channel_id = $1
         ORDER BY d.created_at DESC, d.id DESC LIMIT $2"
    );
}

fn from_row(row: &Row) -> Result<Delivery, Error> {
    Ok(Delivery {
        id: row.try_get("id")?,
        channel_id: row.try_get("channel_id")?,
        run_id: row.try_get("run_id")?,
        event: row.try_get("event")?,
        events: row.try_get("events")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_attempt_at: row.try_get("last_attempt_at")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        delivered_at: row.try_get("delivered_at")?,
        gave_up_at: row.try_get("gave_up_at")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Enqueues one delivery; false when this channel already has one for this run.
pub async fn insert(
    c: &impl GenericClient,
    channel_id: Uuid,
    run_id: Uuid,
    event: &str,
    events: &[String],
    payload: &Value,
) -> Result<bool, Error> {
    let stmt = c.prepare_cached(INSERT).await?;
    Ok(
        c.execute(&stmt, &[&channel_id, &run_id, &event, &events, payload])
            .await?
            == 1,
    )
}

/// Claims up to `limit` due deliveries (one statement, committed at once): counts the
/// attempt and leases the row until `now() + lease`, after which another dispatcher
/// (this one restarted, or the next leader) may send it again.
pub async fn claim_due(
    c: &impl GenericClient,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Claimed>, Error> {
    let stmt = c.prepare_cached(CLAIM_DUE).await?;
    let rows = c.query(&stmt, &[&limit, &lease.as_secs_f64()]).await?;
    rows.iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get("id")?,
                run_id: r.try_get("run_id")?,
                event: r.try_get("event")?,
                events: r.try_get("events")?,
                payload: r.try_get("payload")?,
                attempt: r.try_get("attempts")?,
                endpoint: Endpoint {
                    url: r.try_get("url")?,
                    format: r.try_get("format")?,
                    secret: r.try_get("secret")?,
                },
            })
        })
        .collect()
}

/// Records a 2xx answer, whichever attempt got it (a late success still counts).
pub async fn record_delivered(c: &impl GenericClient, id: Uuid, status: i32) -> Result<(), Error> {
    let stmt = c.prepare_cached(RECORD_DELIVERED).await?;
    c.execute(&stmt, &[&id, &status]).await?;
    Ok(())
}

/// Records a failed attempt, if it is still the latest one and nothing was delivered:
/// retried after `retry_in`, or given up when None. False when fenced off.
pub async fn record_failed(
    c: &impl GenericClient,
    id: Uuid,
    attempt: i32,
    status: Option<i32>,
    error: &str,
    retry_in: Option<Duration>,
) -> Result<bool, Error> {
    let stmt = c.prepare_cached(RECORD_FAILED).await?;
    let retry_in = retry_in.map(|d| d.as_secs_f64());
    Ok(
        c.execute(&stmt, &[&id, &attempt, &status, &error, &retry_in])
            .await?
            == 1,
    )
}

/// A channel's deliveries, newest first.
pub async fn list_by_channel(
    c: &impl GenericClient,
    channel_id: Uuid,
    limit: i64,
) -> Result<Vec<Delivery>, Error> {
    let stmt = c.prepare_cached(LIST_BY_CHANNEL).await?;
    let rows = c.query(&stmt, &[&channel_id, &limit]).await?;
    rows.iter().map(from_row).collect()
}
