//! Webhooks of a job: create (the secret is shown once), list, delete. Deliveries are
//! received by [`crate::routes::hooks`].

use crate::auth::{random_alphanumeric, Caller};
use crate::error::ApiError;
use crate::extract::JsonBodyOrDefault;
use crate::routes::{audit, db, job_or_404, locked_job_or_404};
use crate::state::AppState;
use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use jobcenter_sql::jobs::Including;
use jobcenter_sql::webhooks::{self, Webhook};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

/// Webhooks listed per job (a job needs a handful; this bounds the answer).
const MAX_WEBHOOKS_LISTED: i64 = 100;
/// Secret length in characters from [A-Za-z0-9]: about 238 bits.
const SECRET_CHARS: usize = 40;
/// Most entries in `events` and in `branches` (the table checks it too).
const MAX_FILTERS: usize = 32;
/// Longest event name and branch pattern (characters).
const MAX_FILTER_CHARS: usize = 255;

/// `POST /api/v1/jobs/{id}/webhooks`: the body is optional (none: every delivery runs).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Events this webhook takes, by the name in `X-GitHub-Event` (`push`,
    /// `pull_request`, ...) or `X-Gitlab-Event` (`Push Hook`, `Tag Push Hook`, ...),
    /// compared ignoring ASCII case. Empty or absent: every event. Others answer 200
    /// `{"skipped"}` and queue nothing.
    #[serde(default)]
    pub events: Vec<String>,
    /// Branches this webhook takes, matched against the payload's `ref`: a pattern
    /// starting with `refs/` against the whole ref (`refs/tags/v*`), any other against
    /// the branch of a `refs/heads/<branch>` ref. `*` matches within one `/`-separated
    /// part, `**` across parts, `?` one character. Empty or absent: every delivery; else
    /// a delivery whose `ref` matches none (or that has none) is skipped.
    #[serde(default)]
    pub branches: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookResponse {
    pub id: Uuid,
    pub job_id: Uuid,
    /// Where the CI system posts: `{JOBCENTER_PUBLIC_URL}/hooks/{id}`.
    pub url: String,
    pub created_at: DateTime<Utc>,
    pub last_delivery_at: Option<DateTime<Utc>>,
    /// Events taken (empty: all).
    pub events: Vec<String>,
    /// Branch or ref patterns taken (empty: all).
    pub branches: Vec<String>,
}

/// A new webhook: `secret` is shown here only.
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookResponse,
    /// GitHub: the webhook's "Secret"; GitLab: its "Secret token".
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<WebhookResponse>,
}

fn response(state: &AppState, w: Webhook) -> WebhookResponse {
    WebhookResponse {
        url: format!("{}/hooks/{}", state.public_url, w.id),
        id: w.id,
        job_id: w.job_id,
        created_at: w.created_at,
        last_delivery_at: w.last_delivery_at,
        events: w.events,
        branches: w.branches,
    }
}

/// Checks one filter list: at most [`MAX_FILTERS`] entries of 1 to [`MAX_FILTER_CHARS`]
/// printable characters; duplicates are dropped, the order kept.
fn filter_list(field: &str, values: Vec<String>) -> Result<Vec<String>, ApiError> {
    if values.len() > MAX_FILTERS {
        return Err(ApiError::invalid(
            field,
            format!("at most {MAX_FILTERS} entries"),
        ));
    }
    let mut kept: Vec<String> = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let chars = value.chars().count();
        if chars == 0 || chars > MAX_FILTER_CHARS || value.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                format!("{field}[{i}]"),
                format!("1 to {MAX_FILTER_CHARS} characters, no control characters"),
            ));
        }
        if !kept.contains(&value) {
            kept.push(value);
        }
    }
    Ok(kept)
}

#[utoipa::path(
    tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path, description = "job id")),
    request_body = CreateWebhook,
    responses((status = 201, body = CreatedWebhook))
)]
#[post("/api/v1/jobs/{id}/webhooks")]
pub async fn create_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    job_id: web::Path<Uuid>,
    JsonBodyOrDefault(body): JsonBodyOrDefault<CreateWebhook>,
) -> Result<HttpResponse, ApiError> {
    let events = filter_list("events", body.events)?;
    let branches = filter_list("branches", body.branches)?;
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    locked_job_or_404(&tx, &caller, *job_id, Including::Live).await?;
    let secret = random_alphanumeric(SECRET_CHARS);
    let webhook =
        webhooks::insert(&tx, *job_id, &secret, caller.user_id, &events, &branches).await?;
    let subject = format!("webhook:{}", webhook.id);
    let detail = json!({"job_id": *job_id, "events": &events, "branches": &branches});
    audit(&tx, &caller, "webhook.create", &subject, &detail).await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(CreatedWebhook {
        webhook: response(&state, webhook),
        secret,
    }))
}

#[utoipa::path(
    tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path, description = "job id")),
    responses((status = 200, body = WebhookList))
)]
#[get("/api/v1/jobs/{id}/webhooks")]
pub async fn list_webhooks(
    state: web::Data<AppState>,
    caller: Caller,
    job_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = db(&state).await?;
    job_or_404(&client, &caller, *job_id, Including::Deleted).await?;
    let rows = webhooks::list_by_job(&client, *job_id, MAX_WEBHOOKS_LISTED).await?;
    Ok(HttpResponse::Ok().json(WebhookList {
        items: rows.into_iter().map(|w| response(&state, w)).collect(),
    }))
}

#[utoipa::path(
    tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "job id"), ("webhook_id" = Uuid, Path)),
    responses((status = 204))
)]
#[delete("/api/v1/jobs/{id}/webhooks/{webhook_id}")]
pub async fn delete_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (job_id, webhook_id) = path.into_inner();
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    job_or_404(&tx, &caller, job_id, Including::Deleted).await?;
    if !webhooks::delete(&tx, webhook_id, job_id).await? {
        return Err(ApiError::NotFound("webhook"));
    }
    let subject = format!("webhook:{webhook_id}");
    audit(
        &tx,
        &caller,
        "webhook.delete",
        &subject,
        &json!({"job_id": job_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
