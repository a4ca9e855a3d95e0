//! API tokens: long-lived bearer tokens for CI and scripts, shown once at creation,
//! stored as a SHA-256, listable and revocable by their user (and by admins).

use crate::auth::{new_api_token, Caller};
use crate::error::{ApiError, Problem};
use crate::extract::JsonBody;
use crate::models::{Page, PageQuery};
use crate::routes::users::user_or_404;
use crate::routes::{audit, db};
use crate::state::AppState;
use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use jobcenter_sql::api_tokens::{self, ApiToken, NewApiToken};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

const DEFAULT_EXPIRY_DAYS: u32 = 90;
const MAX_EXPIRY_DAYS: u32 = 3650;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for (1 to 128 characters), e.g. `github-actions`.
    pub name: String,
    /// Lifetime in days, 1 to 3650 (default 90).
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new token: `token` is shown here only; store it now.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// Use as `Authorization: Bearer <token>`.
    pub token: String,
}

impl From<ApiToken> for TokenInfo {
    fn from(t: ApiToken) -> Self {
        TokenInfo {
            id: t.id,
            name: t.name,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[utoipa::path(
    tag = "tokens", security(("bearer" = [])), request_body = CreateToken,
    responses((status = 201, body = CreatedToken))
)]
#[post("/api/v1/tokens")]
pub async fn create_token(
    state: web::Data<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateToken>,
) -> Result<HttpResponse, ApiError> {
    if body.name.trim().is_empty() || body.name.chars().count() > 128 {
        return Err(ApiError::invalid(
            "name",
            "must be 1 to 128 characters, not blank",
        ));
    }
    let days = body.expires_in_days.unwrap_or(DEFAULT_EXPIRY_DAYS);
    if !(1..=MAX_EXPIRY_DAYS).contains(&days) {
        return Err(ApiError::invalid(
            "expires_in_days",
            format!("must be in 1..={MAX_EXPIRY_DAYS}"),
        ));
    }
    let (token, digest) = new_api_token();
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    let row = api_tokens::insert(
        &tx,
        &NewApiToken {
            user_id: caller.user_id,
            name: &body.name,
            token_sha256: &digest,
            expires_at: Some(Utc::now() + Duration::days(days.into())),
        },
    )
    .await?;
    let subject = format!("token:{}", row.id);
    audit(
        &tx,
        &caller,
        "token.create",
        &subject,
        &json!({"name": row.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(CreatedToken {
        info: row.into(),
        token,
    }))
}

/// The caller's own tokens, revoked ones included; never the token itself.
#[utoipa::path(
    tag = "tokens", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<TokenInfo>))
)]
#[get("/api/v1/tokens")]
pub async fn list_tokens(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let request = query.parse()?;
    let rows = api_tokens::list_by_user(
        &db(&state).await?,
        caller.user_id,
        request.before,
        request.limit,
    )
    .await?;
    Ok(request.page(rows, |t| (t.created_at, t.id), TokenInfo::from))
}

/// Any user's tokens, revoked ones included (admins only; an unknown user answers 404);
/// never the token itself. Revoke one with `DELETE /api/v1/tokens/{id}`.
#[utoipa::path(
    tag = "tokens", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "user id"), PageQuery),
    responses(
        (status = 200, body = Page<TokenInfo>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/users/{id}/tokens")]
pub async fn list_user_tokens(
    state: web::Data<AppState>,
    caller: Caller,
    user_id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin("only admins manage accounts")?;
    let request = query.parse()?;
    let client = db(&state).await?;
    user_or_404(&client, *user_id).await?;
    let rows = api_tokens::list_by_user(&client, *user_id, request.before, request.limit).await?;
    Ok(request.page(rows, |t| (t.created_at, t.id), TokenInfo::from))
}

/// Revokes a token at once. Another user's token answers 404 (admins may revoke any).
#[utoipa::path(
    tag = "tokens", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204))
)]
#[delete("/api/v1/tokens/{id}")]
pub async fn revoke_token(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    if !api_tokens::revoke(&tx, *id, caller.owner_scope()).await? {
        return Err(ApiError::NotFound("token"));
    }
    audit(
        &tx,
        &caller,
        "token.revoke",
        &format!("token:{id}"),
        &json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
