//! Project secrets: write-only. Set or replace by name, list names, delete. Values reach
//! runs as environment variables and are redacted (`***`) from stored logs and results.

use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::JsonBody;
use crate::routes::{audit, db, visible_project};
use crate::state::AppState;
use actix_web::{delete, get, put, web, HttpResponse};
use chrono::{DateTime, Utc};
use jobcenter_sql::project_secrets;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

const MAX_VALUE_BYTES: usize = 65_536;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSecret {
    /// The value; never returned by the API.
    #[schema(min_length = 1, max_length = 65536)]
    pub value: String,
}

#[derive(Serialize, ToSchema)]
pub struct SecretName {
    pub name: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct SecretList {
    pub items: Vec<SecretName>,
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    let mut env = std::collections::BTreeMap::new();
    env.insert(name.to_string(), String::new());
    jobcenter_core::target::validate_env(&env).map_err(|e| ApiError::invalid("name", e.reason))?;
    if name.len() > 128 {
        return Err(ApiError::invalid("name", "at most 128 characters"));
    }
    Ok(())
}

/// Sets (or replaces) a secret.
#[utoipa::path(
    tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "project id"), ("name" = String, Path)),
    request_body = SetSecret,
    responses((status = 204), (status = 400, body = Problem, content_type = "application/problem+json"))
)]
#[put("/api/v1/projects/{id}/secrets/{name}")]
pub async fn set_secret(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, String)>,
    JsonBody(body): JsonBody<SetSecret>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, name) = path.into_inner();
    validate_name(&name)?;
    if body.value.is_empty() || body.value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::invalid(
            "value",
            format!("must be 1 to {MAX_VALUE_BYTES} bytes"),
        ));
    }
    visible_project(&state, &caller, project_id).await?;
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    project_secrets::put(&tx, project_id, &name, &body.value).await?;
    let subject = format!("project:{project_id}/secret:{name}");
    audit(&tx, &caller, "secret.set", &subject, &json!({})).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The names of the project's secrets (never their values).
#[utoipa::path(
    tag = "projects", security(("bearer" = [])), params(("id" = Uuid, Path, description = "project id")),
    responses((status = 200, body = SecretList))
)]
#[get("/api/v1/projects/{id}/secrets")]
pub async fn list_secrets(
    state: web::Data<AppState>,
    caller: Caller,
    project_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    visible_project(&state, &caller, *project_id).await?;
    let names = project_secrets::names(&db(&state).await?, *project_id).await?;
    Ok(HttpResponse::Ok().json(SecretList {
        items: names
            .into_iter()
            .map(|(name, updated_at)| SecretName { name, updated_at })
            .collect(),
    }))
}

#[utoipa::path(
    tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "project id"), ("name" = String, Path)),
    responses((status = 204))
)]
#[delete("/api/v1/projects/{id}/secrets/{name}")]
pub async fn delete_secret(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, name) = path.into_inner();
    visible_project(&state, &caller, project_id).await?;
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    if !project_secrets::delete(&tx, project_id, &name).await? {
        return Err(ApiError::NotFound("secret"));
    }
    let subject = format!("project:{project_id}/secret:{name}");
    audit(&tx, &caller, "secret.delete", &subject, &json!({})).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
