//! Accounts (admins only): list, create, change role, disable, reset a password, delete.
//!
//! The last active admin cannot be demoted, disabled or deleted: every such change locks
//! the active admins' rows first (`users::lock_active_admins`), so concurrent changes
//! cannot both remove "the other" admin.

use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::AdminJson;
use crate::models::{Page, PageQuery};
use crate::routes::auth::hash_password_blocking;
use crate::routes::db;
use crate::state::AppState;
use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use jobcenter_sql::states::Role;
use jobcenter_sql::users::{self, User, UserPatch};
use jobcenter_sql::GenericClient;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// 1 to 64 characters: letters, digits, `.`, `_`, `-`, `@`.
    pub username: String,
    /// At least 12 characters.
    pub password: String,
    /// `admin` or `developer`.
    pub role: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// `admin` or `developer`.
    pub role: Option<String>,
    /// A disabled user cannot log in, and their tokens stop working at once.
    pub disabled: Option<bool>,
    /// Sets a new password (an admin's reset).
    pub password: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    pub username: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserResponse {
    fn from(u: User) -> Self {
        UserResponse {
            id: u.id,
            username: u.username,
            role: u.role.as_str().into(),
            disabled: u.disabled,
            created_at: u.created_at,
        }
    }
}

/// Refuses anyone but an admin (403).
fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    caller.require_admin("only admins manage accounts")
}

/// The user, or 404.
pub async fn user_or_404(c: &impl GenericClient, id: Uuid) -> Result<User, ApiError> {
    users::by_id(c, id).await?.ok_or(ApiError::NotFound("user"))
}

/// Locks the active admins' rows and reads the user a change is about; refuses the
/// change (409) if it would leave no active admin. `stays_active_admin` says whether the
/// user is an active admin after the change.
async fn target_of_change(
    tx: &Transaction<'_>,
    id: Uuid,
    stays_active_admin: impl FnOnce(&User) -> bool,
) -> Result<User, ApiError> {
    let admins = users::lock_active_admins(tx).await?;
    let target = user_or_404(tx, id).await?;
    if removes_last_admin(&target, &admins, stays_active_admin(&target)) {
        return Err(ApiError::Conflict(
            "this is the last active admin: promote another user first".into(),
        ));
    }
    Ok(target)
}

fn parse_role(role: &str) -> Result<Role, ApiError> {
    Role::parse(role).ok_or_else(|| ApiError::invalid("role", "must be \"admin\" or \"developer\""))
}

fn validate_username(name: &str) -> Result<(), ApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-@".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(allowed) {
        return Err(ApiError::invalid(
            "username",
            "must be 1 to 64 characters: letters, digits, '.', '_', '-', '@'",
        ));
    }
    Ok(())
}

fn check_password(field: &str, password: &str) -> Result<(), ApiError> {
    jobcenter_core::password_policy::check(password)
        .map_err(|reason| ApiError::invalid(field, reason))
}

async fn audit(
    tx: &Transaction<'_>,
    caller: &Caller,
    action: &str,
    user_id: Uuid,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    crate::routes::audit(tx, caller, action, &format!("user:{user_id}"), &detail).await
}

#[utoipa::path(
    tag = "users", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, body = Page<UserResponse>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&caller)?;
    let request = query.parse()?;
    let rows = users::list(&db(&state).await?, request.before, request.limit).await?;
    Ok(request.page(rows, |u| (u.created_at, u.id), UserResponse::from))
}

#[utoipa::path(
    tag = "users", security(("bearer" = [])), request_body = CreateUser,
    responses(
        (status = 201, body = UserResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "the username is taken"),
    )
)]
#[post("/api/v1/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    AdminJson(caller, body): AdminJson<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    validate_username(&body.username)?;
    check_password("password", &body.password)?;
    let role = parse_role(&body.role)?;
    let hash = hash_password_blocking(body.password).await?;
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    let user = match users::insert(&tx, &body.username, &hash, role).await {
        Err(e) if e.sqlstate() == Some("23505") => {
            return Err(ApiError::Conflict("the username is taken".into()))
        }
        other => other?,
    };
    audit(
        &tx,
        &caller,
        "user.create",
        user.id,
        json!({"role": role.as_str()}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(UserResponse::from(user)))
}

#[utoipa::path(
    tag = "users", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = UserResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/users/{id}")]
pub async fn get_user(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&caller)?;
    let user = user_or_404(&db(&state).await?, *id).await?;
    Ok(HttpResponse::Ok().json(UserResponse::from(user)))
}

/// True when the change would leave no active admin.
fn removes_last_admin(target: &User, active_admins: &[Uuid], still_active_admin: bool) -> bool {
    let is_active_admin = active_admins.contains(&target.id);
    is_active_admin && !still_active_admin && active_admins.len() <= 1
}

/// Changes a user's role, disabled flag or password. Disabling ends the user's access
/// at once on this API node, and on the others as soon as the database's notification
/// reaches them (API tokens are checked against the account on every use; access
/// tokens' accounts are remembered for at most 5 s, forgotten on every change).
#[utoipa::path(
    tag = "users", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = UpdateUser,
    responses(
        (status = 200, body = UserResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "it would leave no active admin"),
    )
)]
#[patch("/api/v1/users/{id}")]
pub async fn update_user(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    AdminJson(caller, body): AdminJson<UpdateUser>,
) -> Result<HttpResponse, ApiError> {
    let role = body.role.as_deref().map(parse_role).transpose()?;
    let hash = match body.password {
        Some(password) => {
            check_password("password", &password)?;
            Some(hash_password_blocking(password).await?)
        }
        None => None,
    };
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    target_of_change(&tx, *id, |target| {
        role.unwrap_or(target.role) == Role::Admin && !body.disabled.unwrap_or(target.disabled)
    })
    .await?;
    let patch = UserPatch {
        role,
        disabled: body.disabled,
        password_hash: hash.as_deref(),
    };
    let user = users::update(&tx, *id, &patch)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    // A reset ends every session of the user (`update` starts a new generation) and
    // revokes their API tokens: whoever knew the old password may have made some.
    let revoked_tokens = match hash {
        Some(_) => jobcenter_sql::api_tokens::revoke_all_of_user(&tx, user.id).await?,
        None => 0,
    };
    let detail = json!({
        "role": role.map(Role::as_str),
        "disabled": body.disabled,
        "password_reset": hash.is_some(),
        "revoked_tokens": revoked_tokens,
    });
    audit(&tx, &caller, "user.update", user.id, detail).await?;
    tx.commit().await?;
    // This node sees the change from its next request on (the others when notified).
    state.auth_cache.forget_all();
    Ok(HttpResponse::Ok().json(UserResponse::from(user)))
}

/// Deletes an account and its API tokens. A user who still owns projects answers 409:
/// transfer them first (`PATCH /api/v1/projects/{id}` with `owner_id`).
#[utoipa::path(
    tag = "users", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 204),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "the last active admin, or the owner of projects"),
    )
)]
#[delete("/api/v1/users/{id}")]
pub async fn delete_user(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&caller)?;
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    let target = target_of_change(&tx, *id, |_| false).await?;
    let owned = users::owned_project_count(&tx, *id).await?;
    if owned > 0 {
        return Err(ApiError::Conflict(format!(
            "the user still owns {owned} project(s): transfer them first"
        )));
    }
    users::delete(&tx, *id).await?;
    audit(
        &tx,
        &caller,
        "user.delete",
        *id,
        json!({"username": target.username}),
    )
    .await?;
    tx.commit().await?;
    state.auth_cache.forget_all();
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role) -> User {
        User {
            id: Uuid::new_v4(),
            username: "u".into(),
            password_hash: String::new(),
            role,
            disabled: false,
            created_at: Utc::now(),
            session_generation: 0,
            kept_session: None,
        }
    }

    #[test]
    fn only_the_last_active_admin_is_protected() {
        let admin = user(Role::Admin);
        let other = user(Role::Admin);
        assert!(removes_last_admin(&admin, &[admin.id], false));
        assert!(!removes_last_admin(&admin, &[admin.id], true));
        assert!(!removes_last_admin(&admin, &[admin.id, other.id], false));
        let developer = user(Role::Developer);
        assert!(!removes_last_admin(&developer, &[admin.id], false));
    }

    #[test]
    fn usernames_and_roles_are_checked() {
        assert!(validate_username("ci-bot@team.example").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("has space").is_err());
        assert!(validate_username(&"x".repeat(65)).is_err());
        assert!(
            matches!(parse_role("root"), Err(ApiError::Invalid { field, .. }) if field == "role")
        );
        assert_eq!(parse_role("developer").unwrap(), Role::Developer);
    }
}
