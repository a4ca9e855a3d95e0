//! Notification channels of a project or a job (create: the signing secret is shown
//! once; list; delete) and a channel's deliveries with their attempts. Sending is the
//! scheduler's (`scheduler/src/notify_dispatch.rs`); see docs/notifications.md.

use crate::auth::{random_alphanumeric, Caller};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::routes::{audit, db, job_or_404, locked_job_or_404, project_or_404};
use crate::state::AppState;
use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use jobcenter_sql::jobs::Including;
use jobcenter_sql::notification_channels::{self, Channel, NewChannel};
use jobcenter_sql::notification_deliveries::{self, Delivery};
use jobcenter_sql::GenericClient;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

/// Channels and deliveries listed at once.
const MAX_LISTED: i64 = 100;
/// Secret length in characters from [A-Za-z0-9]: about 238 bits.
const SECRET_CHARS: usize = 40;
const MAX_URL_CHARS: usize = 2048;
const EVENTS: [&str; 4] = ["failure", "timeout", "recovery", "finish"];

/// A new channel.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNotification {
    /// The endpoint POSTed to: `http://` or `https://`.
    pub url: String,
    /// `json` (default: the event as JSON) or `slack` (`{"text": "..."}`, for Slack-
    /// compatible incoming webhooks).
    #[serde(default)]
    pub format: Option<String>,
    /// When to notify: any of `failure`, `timeout`, `recovery` (a success after a
    /// failure or timeout), `finish` (every succeeded, failed or timed-out outcome).
    pub events: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationResponse {
    pub id: Uuid,
    pub project_id: Uuid,
    /// Null: every job of the project.
    pub job_id: Option<Uuid>,
    pub url: String,
    pub format: String,
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A new channel: `secret` (the HMAC-SHA256 key of `X-Jobcenter-Signature`) is shown
/// here only.
#[derive(Serialize, ToSchema)]
pub struct CreatedNotification {
    #[serde(flatten)]
    pub notification: NotificationResponse,
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationList {
    pub items: Vec<NotificationResponse>,
}

/// One event's delivery to one channel; `id` is the event id receivers dedupe on.
#[derive(Serialize, ToSchema)]
pub struct DeliveryResponse {
    pub id: Uuid,
    pub channel_id: Uuid,
    pub run_id: Uuid,
    /// The most specific event: `timeout`, `failure`, `recovery` or `finish`.
    pub event: String,
    /// Every event of the outcome the channel asked for.
    pub events: Vec<String>,
    /// Attempts started so far.
    pub attempts: i32,
    /// Not sent before this (while an attempt is in flight: the end of its lease).
    pub next_attempt_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last answer, if there was one.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub gave_up_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryResponse>,
}

fn response(c: Channel) -> NotificationResponse {
    NotificationResponse {
        id: c.id,
        project_id: c.project_id,
        job_id: c.job_id,
        url: c.url,
        format: c.format,
        events: c.events,
        created_at: c.created_at,
    }
}

fn delivery_response(d: Delivery) -> DeliveryResponse {
    DeliveryResponse {
        id: d.id,
        channel_id: d.channel_id,
        run_id: d.run_id,
        event: d.event,
        events: d.events,
        attempts: d.attempts,
        next_attempt_at: d.next_attempt_at,
        last_attempt_at: d.last_attempt_at,
        last_status: d.last_status,
        last_error: d.last_error,
        delivered_at: d.delivered_at,
        gave_up_at: d.gave_up_at,
        created_at: d.created_at,
    }
}

/// The channel, if the caller may see it; else 404.
async fn channel_or_404(
    c: &impl GenericClient,
    caller: &Caller,
    id: Uuid,
) -> Result<Channel, ApiError> {
    notification_channels::get(c, id, caller.owner_scope())
        .await?
        .ok_or(ApiError::NotFound("notification"))
}

/// The checked fields: (url, format, events without duplicates, in request order).
fn validate(body: &CreateNotification) -> Result<(String, String, Vec<String>), ApiError> {
    let url = body.url.trim();
    if url.len() > MAX_URL_CHARS {
        return Err(ApiError::invalid(
            "url",
            format!("longer than {MAX_URL_CHARS} characters"),
        ));
    }
    let uri: actix_web::http::Uri = url
        .parse()
        .map_err(|_| ApiError::invalid("url", "not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(ApiError::invalid(
            "url",
            "must start with http:// or https://",
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(ApiError::invalid("url", "has no host"));
    }
    let format = body.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "slack") {
        return Err(ApiError::invalid("format", "must be \"json\" or \"slack\""));
    }
    if body.events.is_empty() {
        return Err(ApiError::invalid(
            "events",
            "must name at least one of failure, timeout, recovery, finish",
        ));
    }
    let mut events = Vec::new();
    for (i, event) in body.events.iter().enumerate() {
        if !EVENTS.contains(&event.as_str()) {
            return Err(ApiError::invalid(
                format!("events[{i}]"),
                format!("{event:?} is not one of failure, timeout, recovery, finish"),
            ));
        }
        if !events.contains(event) {
            events.push(event.clone());
        }
    }
    Ok((url.to_string(), format.to_string(), events))
}

/// Inserts the channel and its audit record; answers 201 with the secret.
async fn create(
    tx: &impl GenericClient,
    caller: &Caller,
    project_id: Uuid,
    job_id: Option<Uuid>,
    body: &CreateNotification,
) -> Result<HttpResponse, ApiError> {
    let (url, format, events) = validate(body)?;
    let secret = random_alphanumeric(SECRET_CHARS);
    let channel = notification_channels::insert(
        tx,
        &NewChannel {
            project_id,
            job_id,
            url: &url,
            format: &format,
            secret: &secret,
            events: &events,
            created_by: caller.user_id,
        },
    )
    .await?;
    let detail = json!({"project_id": project_id, "job_id": job_id, "url": url, "events": events});
    let subject = format!("notification:{}", channel.id);
    audit(tx, caller, "notification.create", &subject, &detail).await?;
    Ok(HttpResponse::Created().json(CreatedNotification {
        notification: response(channel),
        secret,
    }))
}

#[utoipa::path(
    tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "project id")),
    request_body = CreateNotification,
    responses((status = 201, body = CreatedNotification))
)]
#[post("/api/v1/projects/{id}/notifications")]
pub async fn create_project_notification(
    state: web::Data<AppState>,
    caller: Caller,
    project_id: web::Path<Uuid>,
    body: JsonBody<CreateNotification>,
) -> Result<HttpResponse, ApiError> {
    validate(&body.0)?;
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    project_or_404(&tx, &caller, *project_id).await?;
    let answer = create(&tx, &caller, *project_id, None, &body.0).await?;
    tx.commit().await?;
    Ok(answer)
}

#[utoipa::path(
    tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "project id")),
    responses((status = 200, body = NotificationList))
)]
#[get("/api/v1/projects/{id}/notifications")]
pub async fn list_project_notifications(
    state: web::Data<AppState>,
    caller: Caller,
    project_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = db(&state).await?;
    project_or_404(&client, &caller, *project_id).await?;
    let rows = notification_channels::list_by_project(&client, *project_id, MAX_LISTED).await?;
    Ok(HttpResponse::Ok().json(NotificationList {
        items: rows.into_iter().map(response).collect(),
    }))
}

#[utoipa::path(
    tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "job id")),
    request_body = CreateNotification,
    responses((status = 201, body = CreatedNotification))
)]
#[post("/api/v1/jobs/{id}/notifications")]
pub async fn create_job_notification(
    state: web::Data<AppState>,
    caller: Caller,
    job_id: web::Path<Uuid>,
    body: JsonBody<CreateNotification>,
) -> Result<HttpResponse, ApiError> {
    validate(&body.0)?;
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    let job = locked_job_or_404(&tx, &caller, *job_id, Including::Live).await?;
    let answer = create(&tx, &caller, job.project_id, Some(job.id), &body.0).await?;
    tx.commit().await?;
    Ok(answer)
}

#[utoipa::path(
    tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "job id")),
    responses((status = 200, body = NotificationList))
)]
#[get("/api/v1/jobs/{id}/notifications")]
pub async fn list_job_notifications(
    state: web::Data<AppState>,
    caller: Caller,
    job_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = db(&state).await?;
    job_or_404(&client, &caller, *job_id, Including::Deleted).await?;
    let rows = notification_channels::list_by_job(&client, *job_id, MAX_LISTED).await?;
    Ok(HttpResponse::Ok().json(NotificationList {
        items: rows.into_iter().map(response).collect(),
    }))
}

#[utoipa::path(
    tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "notification channel id")),
    responses((status = 204))
)]
#[delete("/api/v1/notifications/{id}")]
pub async fn delete_notification(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    let channel = channel_or_404(&tx, &caller, *id).await?;
    if !notification_channels::delete(&tx, channel.id).await? {
        return Err(ApiError::NotFound("notification"));
    }
    let detail = json!({"project_id": channel.project_id, "job_id": channel.job_id});
    let subject = format!("notification:{}", channel.id);
    audit(&tx, &caller, "notification.delete", &subject, &detail).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "notification channel id")),
    responses((status = 200, body = DeliveryList))
)]
#[get("/api/v1/notifications/{id}/deliveries")]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = db(&state).await?;
    let channel = channel_or_404(&client, &caller, *id).await?;
    let rows = notification_deliveries::list_by_channel(&client, channel.id, MAX_LISTED).await?;
    Ok(HttpResponse::Ok().json(DeliveryList {
        items: rows.into_iter().map(delivery_response).collect(),
    }))
}
