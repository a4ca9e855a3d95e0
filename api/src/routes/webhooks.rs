//! Webhooks of a job: create (the secret is shown once), list, delete. Deliveries are
//! received by [`crate::routes::hooks`].

use crate::auth::{random_alphanumeric, Caller};
use crate::error::{ApiError, Problem};
use crate::routes::db;
use crate::state::AppState;
use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use jobcenter_sql::jobs::{self, Including};
use jobcenter_sql::webhooks::{self, Webhook};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

/// Webhooks listed per job (a job needs a handful; this bounds the answer).
const MAX_WEBHOOKS_LISTED: i64 = 100;
/// Secret length in characters from [A-Za-z0-9]: about 238 bits.
const SECRET_CHARS: usize = 40;

#[derive(Serialize, ToSchema)]
pub struct WebhookResponse {
    pub id: Uuid,
    pub job_id: Uuid,
    /// Where the CI system posts: `{JOBCENTER_PUBLIC_URL}/hooks/{id}`.
    pub url: String,
    pub created_at: DateTime<Utc>,
    pub last_delivery_at: Option<DateTime<Utc>>,
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
    }
}

#[utoipa::path(
    tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path, description = "job id")),
    responses(
        (status = 201, body = CreatedWebhook),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/jobs/{id}/webhooks")]
pub async fn create_webhook(
    state: web::Data<AppState>,
    caller: Caller,
    job_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    jobs::lock(&tx, *job_id, caller.owner_scope(), Including::Live)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    let secret = random_alphanumeric(SECRET_CHARS);
    let webhook = webhooks::insert(&tx, *job_id, &secret, caller.user_id).await?;
    let subject = format!("webhook:{}", webhook.id);
    jobcenter_sql::audit::record(
        &tx,
        Some(caller.user_id),
        "webhook.create",
        &subject,
        &json!({"job_id": *job_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(CreatedWebhook {
        webhook: response(&state, webhook),
        secret,
    }))
}

#[utoipa::path(
    tag = "webhooks", security(("bearer" = [])), params(("id" = Uuid, Path, description = "job id")),
    responses(
        (status = 200, body = WebhookList),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/jobs/{id}/webhooks")]
pub async fn list_webhooks(
    state: web::Data<AppState>,
    caller: Caller,
    job_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = db(&state).await?;
    jobs::get(&client, *job_id, caller.owner_scope(), Including::Deleted)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    let rows = webhooks::list_by_job(&client, *job_id, MAX_WEBHOOKS_LISTED).await?;
    Ok(HttpResponse::Ok().json(WebhookList {
        items: rows.into_iter().map(|w| response(&state, w)).collect(),
    }))
}

#[utoipa::path(
    tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "job id"), ("webhook_id" = Uuid, Path)),
    responses(
        (status = 204),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
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
    jobs::get(&tx, job_id, caller.owner_scope(), Including::Deleted)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    if !webhooks::delete(&tx, webhook_id, job_id).await? {
        return Err(ApiError::NotFound("webhook"));
    }
    let subject = format!("webhook:{webhook_id}");
    jobcenter_sql::audit::record(
        &tx,
        Some(caller.user_id),
        "webhook.delete",
        &subject,
        &json!({"job_id": job_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
