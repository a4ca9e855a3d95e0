//! Login and the caller's identity.

use crate::auth::{verify_password_blocking, Caller};
use crate::error::{ApiError, Problem};
use crate::extract::JsonBody;
use crate::models::{LoginRequest, MeResponse, TokenResponse};
use crate::routes::db;
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};

/// Exchanges a username and password for an access token.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = jobcenter_sql::users::by_username(&db(&state).await?, &body.username).await?;
    // Verify against a dummy hash when the user is unknown: same work, same time.
    let hash = user.as_ref().map_or_else(
        || state.dummy_password_hash.clone(),
        |u| u.password_hash.clone(),
    );
    let password_ok = verify_password_blocking(body.password, hash).await;
    let user = match user {
        Some(user) if password_ok && !user.disabled => user,
        _ => return Err(ApiError::Unauthorized("invalid username or password")),
    };
    let token = state.jwt.issue(user.id, state.jwt_ttl)?;
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: state.jwt_ttl.as_secs(),
    }))
}

/// Who the token belongs to.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, body = MeResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/auth/me")]
pub async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let user = jobcenter_sql::users::by_id(&db(&state).await?, caller.user_id)
        .await?
        .ok_or(ApiError::Unauthorized("invalid or expired token"))?;
    Ok(HttpResponse::Ok().json(MeResponse {
        id: user.id,
        username: user.username,
        role: user.role.as_str().into(),
    }))
}
