//! Login (throttled), the caller's identity and changing one's own password.

use crate::auth::{hash_password, verify_password_blocking, Caller};
use crate::error::{ApiError, Problem};
use crate::extract::JsonBody;
use crate::models::{LoginRequest, MeResponse, TokenResponse};
use crate::routes::{audit, db};
use crate::state::AppState;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::Utc;
use jobcenter_sql::login_throttle;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

/// Stale throttle rows deleted per failed login (bounded housekeeping).
const THROTTLE_PURGE_BATCH: i64 = 100;

/// The throttle keys of a login attempt: the account named and the client address.
/// The account key exists whether or not the account does, so a lock says nothing
/// about existence.
fn throttle_keys(state: &AppState, req: &HttpRequest, username: &str) -> [String; 2] {
    let name: String = username.chars().take(128).collect();
    let address = if state.login.trust_forwarded_for {
        req.connection_info()
            .realip_remote_addr()
            .map(strip_port)
            .unwrap_or_default()
    } else {
        req.peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default()
    };
    let address: String = address.chars().take(64).collect();
    [format!("user:{name}"), format!("addr:{address}")]
}

/// `1.2.3.4:5678` → `1.2.3.4`; `[::1]:80` → `::1`; a bare address is kept.
fn strip_port(address: &str) -> String {
    if let Ok(socket) = address.parse::<std::net::SocketAddr>() {
        return socket.ip().to_string();
    }
    address.to_string()
}

/// Exchanges a username and password for an access token. Repeated failures for one
/// account or from one address answer 429 with `Retry-After` for a while. Each attempt
/// counts as a failure before its password is checked (a success takes it back), so
/// parallel guesses past the limit are refused unchecked.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "wrong username or password, or a disabled account"),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "too many failed logins; see Retry-After"),
    )
)]
#[post("/api/v1/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let [user_key, addr_key] = throttle_keys(&state, &req, &body.username);
    let client = db(&state).await?;
    let limits = [
        (&user_key, state.login.max_failures),
        (&addr_key, state.login.max_failures_per_address),
    ];
    count_attempt(&state, &client, &limits).await?;
    let user = jobcenter_sql::users::by_username(&client, &body.username).await?;
    // Verify against a dummy hash when the user is unknown: same work, same time.
    let hash = user.as_ref().map_or_else(
        || state.dummy_password_hash.clone(),
        |u| u.password_hash.clone(),
    );
    let password_ok = verify_password_blocking(body.password, hash).await;
    let user = match user {
        Some(user) if password_ok && !user.disabled => user,
        _ => {
            // Already counted.
            let window = state.login.lockout.as_secs_f64();
            login_throttle::purge_stale(&client, window, THROTTLE_PURGE_BATCH).await?;
            return Err(ApiError::Unauthorized("invalid username or password"));
        }
    };
    login_throttle::clear(&client, &user_key).await?;
    login_throttle::forgive(
        &client,
        &addr_key,
        state.login.max_failures_per_address as i32,
    )
    .await?;
    let token = state
        .jwt
        .issue(user.id, user.session_generation, state.jwt_ttl)?;
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: state.jwt_ttl.as_secs(),
    }))
}

/// Refuses an attempt (429) if one of its throttle keys is locked, else counts it as a
/// failure before anything is checked, and refuses it if that count is past a key's
/// limit: of any number of parallel attempts, at most the limit are checked.
async fn count_attempt(
    state: &AppState,
    client: &impl jobcenter_sql::GenericClient,
    limits: &[(&String, u32)],
) -> Result<(), ApiError> {
    let window = state.login.lockout.as_secs_f64();
    let keys: Vec<&str> = limits.iter().map(|(key, _)| key.as_str()).collect();
    let refuse = |until: Option<chrono::DateTime<Utc>>| {
        let seconds = until.map_or(window as i64, |until| (until - Utc::now()).num_seconds());
        ApiError::TooManyRequests(seconds.max(0) as u64 + 1)
    };
    if let Some(until) = login_throttle::locked_until(client, &keys).await? {
        return Err(refuse(Some(until)));
    }
    let mut over = false;
    for (key, limit) in limits {
        let failures = login_throttle::record_attempt(client, key, *limit as i32, window).await?;
        over |= failures > *limit as i32;
    }
    if over {
        return Err(refuse(login_throttle::locked_until(client, &keys).await?));
    }
    Ok(())
}

/// Who the token belongs to.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = MeResponse))
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    /// At least 12 characters.
    pub new_password: String,
}

/// Changes the caller's own password (the current one is required). Every other session
/// of the caller ends: access tokens issued before are refused, except the one this
/// request was made with; API tokens are kept (revoke them with `DELETE /api/v1/tokens/{id}`).
/// Wrong current passwords are throttled like logins (429 with `Retry-After`).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = ChangePassword,
    responses(
        (status = 204, description = "changed"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "the new password breaks the rule, or the current one is wrong"),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "too many wrong current passwords; see Retry-After"),
    )
)]
#[post("/api/v1/auth/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<ChangePassword>,
) -> Result<HttpResponse, ApiError> {
    jobcenter_core::password_policy::check(&body.new_password)
        .map_err(|reason| ApiError::invalid("new_password", reason))?;
    let mut client = db(&state).await?;
    let user = jobcenter_sql::users::by_id(&client, caller.user_id)
        .await?
        .ok_or(ApiError::Unauthorized("invalid or expired token"))?;
    let key = format!("password:{}", user.id);
    count_attempt(&state, &client, &[(&key, state.login.max_failures)]).await?;
    if !verify_password_blocking(body.current_password, user.password_hash.clone()).await {
        return Err(ApiError::invalid(
            "current_password",
            "is not your password",
        ));
    }
    login_throttle::clear(&client, &key).await?;
    let new_hash = hash_password_blocking(body.new_password).await?;
    let tx = client.transaction().await?;
    let changed = jobcenter_sql::users::set_password(
        &tx,
        user.id,
        &user.password_hash,
        &new_hash,
        caller.session,
    )
    .await?;
    if !changed {
        return Err(ApiError::Conflict(
            "the password was changed concurrently; retry".into(),
        ));
    }
    let subject = format!("user:{}", user.id);
    audit(&tx, &caller, "user.password", &subject, &json!({})).await?;
    tx.commit().await?;
    // This node refuses the ended sessions from its next request on (the others when
    // notified).
    state.auth_cache.forget_all();
    Ok(HttpResponse::NoContent().finish())
}

/// Runs argon2 off the async executor: it costs tens of milliseconds of CPU.
pub async fn hash_password_blocking(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)?
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_are_stripped_from_addresses() {
        assert_eq!(super::strip_port("10.0.0.7:4431"), "10.0.0.7");
        assert_eq!(super::strip_port("[::1]:80"), "::1");
        assert_eq!(super::strip_port("10.0.0.7"), "10.0.0.7");
    }
}
