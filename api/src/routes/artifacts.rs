//! Artifacts: upload (streamed, hashed on the way), list, download (streamed), delete.
//!
//! An upload writes the object first and its row second; if the row cannot be written
//! the object is deleted again, and an object left by a crash in between is an orphan
//! the sweeper removes. So a row never names a missing object.

use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::routes::{audit, db, visible_project};
use crate::state::AppState;
use actix_web::{delete, get, put, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use jobcenter_core::artifacts::StoreError;
use jobcenter_sql::artifacts::{self, Artifact, NewArtifact};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Most versions one listing returns.
const MAX_LISTED: i64 = 1000;

#[derive(Serialize, ToSchema)]
pub struct ArtifactResponse {
    pub name: String,
    pub version: i32,
    /// Lowercase hex sha256 of the content.
    pub sha256: String,
    /// Bytes.
    pub size: i64,
    pub uploaded_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<Artifact> for ArtifactResponse {
    fn from(a: Artifact) -> Self {
        ArtifactResponse {
            name: a.name,
            version: a.version,
            sha256: a.sha256,
            size: a.size_bytes,
            uploaded_by: a.uploaded_by,
            created_at: a.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ArtifactList {
    pub items: Vec<ArtifactResponse>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForceQuery {
    /// Delete even what a job pins.
    #[serde(default)]
    pub force: bool,
}

pub fn validate_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "name",
            "must be 1 to 128 of [A-Za-z0-9._-]",
        ))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TooLarge { limit_bytes } => {
                ApiError::TooLarge(format!("the artifact is larger than {limit_bytes} bytes"))
            }
            StoreError::Interrupted(reason) => {
                ApiError::Malformed(format!("upload interrupted: {reason}"))
            }
            StoreError::Unavailable(reason) => ApiError::StoreUnavailable(reason),
            StoreError::NotFound => ApiError::NotFound("artifact content"),
            other => ApiError::internal(other),
        }
    }
}

/// Uploads a new version: the raw body is the content (at most
/// `JOBCENTER_ARTIFACT_MAX_BYTES`, else 413 and nothing stored).
#[utoipa::path(
    tag = "artifacts", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "project id"), ("name" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, body = ArtifactResponse),
        (status = 413, body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/api/v1/projects/{id}/artifacts/{name}")]
pub async fn upload_artifact(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, String)>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (project_id, name) = path.into_inner();
    validate_name(&name)?;
    let limit = state.artifact_max_bytes;
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::TooLarge(format!(
            "the artifact is larger than {limit} bytes"
        )));
    }
    visible_project(&state, &caller, project_id).await?;
    let key = format!("projects/{project_id}/{name}/{}", Uuid::new_v4());
    if declared == Some(0) {
        return Err(ApiError::invalid("body", "the artifact is empty"));
    }
    let stored = state.store.put(&key, payload, limit).await?;
    if stored.size_bytes == 0 {
        let _ = state.store.delete(&key).await;
        return Err(ApiError::invalid("body", "the artifact is empty"));
    }
    let recorded = async {
        let mut client = db(&state).await?;
        let tx = client.transaction().await?;
        let artifact = artifacts::insert(
            &tx,
            &NewArtifact {
                project_id,
                name: &name,
                sha256: &stored.sha256,
                size_bytes: stored.size_bytes as i64,
                storage_key: &key,
                uploaded_by: caller.user_id,
            },
        )
        .await?;
        let detail = json!({"version": artifact.version, "sha256": artifact.sha256});
        let subject = format!("artifact:{project_id}/{name}");
        audit(&tx, &caller, "artifact.upload", &subject, &detail).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(artifact)
    }
    .await;
    match recorded {
        Ok(artifact) => Ok(HttpResponse::Created().json(ArtifactResponse::from(artifact))),
        Err(e) => {
            if let Err(cleanup) = state.store.delete(&key).await {
                tracing::warn!(error = %cleanup, %key, "orphan object left for the sweeper");
            }
            Err(e)
        }
    }
}

/// Live versions of every artifact of the project, by name, newest version first.
#[utoipa::path(
    tag = "artifacts", security(("bearer" = [])), params(("id" = Uuid, Path, description = "project id")),
    responses((status = 200, body = ArtifactList))
)]
#[get("/api/v1/projects/{id}/artifacts")]
pub async fn list_artifacts(
    state: web::Data<AppState>,
    caller: Caller,
    project_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    visible_project(&state, &caller, *project_id).await?;
    let rows = artifacts::list(&db(&state).await?, *project_id, None, MAX_LISTED).await?;
    Ok(HttpResponse::Ok().json(ArtifactList {
        items: rows.into_iter().map(Into::into).collect(),
    }))
}

/// Live versions of one artifact, newest first.
#[utoipa::path(
    tag = "artifacts", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "project id"), ("name" = String, Path)),
    responses((status = 200, body = ArtifactList))
)]
#[get("/api/v1/projects/{id}/artifacts/{name}")]
pub async fn list_versions(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, name) = path.into_inner();
    validate_name(&name)?;
    visible_project(&state, &caller, project_id).await?;
    let rows = artifacts::list(&db(&state).await?, project_id, Some(&name), MAX_LISTED).await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound("artifact"));
    }
    Ok(HttpResponse::Ok().json(ArtifactList {
        items: rows.into_iter().map(Into::into).collect(),
    }))
}

/// Downloads a version's content (streamed), with its sha256 in `X-Checksum-Sha256`.
#[utoipa::path(
    tag = "artifacts", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "project id"), ("name" = String, Path), ("version" = i32, Path)),
    responses((status = 200, body = Vec<u8>, content_type = "application/octet-stream"))
)]
#[get("/api/v1/projects/{id}/artifacts/{name}/versions/{version}")]
pub async fn download_artifact(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, String, i32)>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, name, version) = path.into_inner();
    validate_name(&name)?;
    visible_project(&state, &caller, project_id).await?;
    let artifact = artifacts::get(&db(&state).await?, project_id, &name, Some(version))
        .await?
        .ok_or(ApiError::NotFound("artifact version"))?;
    let body = state.store.get(&artifact.storage_key).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("X-Checksum-Sha256", artifact.sha256.clone()))
        .no_chunking(artifact.size_bytes as u64)
        .streaming(body))
}

/// Deletes one version; 409 while a job pins it, unless `force=true`.
#[utoipa::path(
    tag = "artifacts", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "project id"), ("name" = String, Path), ("version" = i32, Path), ForceQuery),
    responses(
        (status = 204),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/api/v1/projects/{id}/artifacts/{name}/versions/{version}")]
pub async fn delete_version(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, String, i32)>,
    query: web::Query<ForceQuery>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, name, version) = path.into_inner();
    remove(
        &state,
        &caller,
        project_id,
        &name,
        Some(version),
        query.force,
    )
    .await
}

/// Deletes every version; 409 while a job pins one, unless `force=true`.
#[utoipa::path(
    tag = "artifacts", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "project id"), ("name" = String, Path), ForceQuery),
    responses(
        (status = 204),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/api/v1/projects/{id}/artifacts/{name}")]
pub async fn delete_artifact(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, String)>,
    query: web::Query<ForceQuery>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, name) = path.into_inner();
    remove(&state, &caller, project_id, &name, None, query.force).await
}

/// Marks the rows deleted (one transaction, pins checked inside it), then deletes the
/// objects; an object whose deletion fails is left to the sweeper.
async fn remove(
    state: &AppState,
    caller: &Caller,
    project_id: Uuid,
    name: &str,
    version: Option<i32>,
    force: bool,
) -> Result<HttpResponse, ApiError> {
    validate_name(name)?;
    visible_project(state, caller, project_id).await?;
    let mut client = db(state).await?;
    let tx = client.transaction().await?;
    if !force {
        let pinned_by = artifacts::pinning_jobs(&tx, project_id, name, version).await?;
        if !pinned_by.is_empty() {
            return Err(ApiError::Conflict(format!(
                "pinned by job(s) {}; pass force=true to delete anyway",
                pinned_by.join(", ")
            )));
        }
    }
    let keys = artifacts::mark_deleted(&tx, project_id, name, version).await?;
    if keys.is_empty() {
        return Err(ApiError::NotFound("artifact"));
    }
    let detail = json!({"version": version, "force": force});
    let subject = format!("artifact:{project_id}/{name}");
    audit(&tx, caller, "artifact.delete", &subject, &detail).await?;
    tx.commit().await?;
    for key in keys {
        if let Err(e) = state.store.delete(&key).await {
            tracing::warn!(error = %e, %key, "object left for the sweeper");
        }
    }
    Ok(HttpResponse::NoContent().finish())
}
