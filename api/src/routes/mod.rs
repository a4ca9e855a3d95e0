//! HTTP handlers, one module per resource.

pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod backfill;
pub mod docs;
pub mod fallback;
pub mod health;
pub mod hooks;
pub mod jobs;
pub mod logs;
pub mod metrics;
pub mod notifications;
pub mod projects;
pub mod runs;
pub mod schedules;
pub mod secrets;
pub mod tokens;
pub mod users;
pub mod webhooks;
pub mod workers;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use deadpool_postgres::Object;
use jobcenter_sql::jobs::{Including, Job};
use jobcenter_sql::projects::Project;
use jobcenter_sql::GenericClient;
use serde_json::Value;
use uuid::Uuid;

/// A pooled connection; an unreachable database answers 503.
pub async fn db(state: &AppState) -> Result<Object, ApiError> {
    Ok(state.pool.get().await?)
}

/// The project, if the caller may see it; else 404 (another owner's project is not found
/// either).
pub async fn project_or_404(
    c: &impl GenericClient,
    caller: &Caller,
    id: Uuid,
) -> Result<Project, ApiError> {
    jobcenter_sql::projects::get(c, id, caller.owner_scope())
        .await?
        .ok_or(ApiError::NotFound("project"))
}

/// Fails with 404 unless the project exists and the caller may see it.
pub async fn visible_project(
    state: &AppState,
    caller: &Caller,
    project_id: Uuid,
) -> Result<(), ApiError> {
    project_or_404(&db(state).await?, caller, project_id).await?;
    Ok(())
}

/// The job, if the caller may see it (`including` says whether a deleted one counts);
/// else 404.
pub async fn job_or_404(
    c: &impl GenericClient,
    caller: &Caller,
    id: Uuid,
    including: Including,
) -> Result<Job, ApiError> {
    jobcenter_sql::jobs::get(c, id, caller.owner_scope(), including)
        .await?
        .ok_or(ApiError::NotFound("job"))
}

/// Like [`job_or_404`], and the job's row stays locked until the transaction ends, so
/// that changes of one job take turns.
pub async fn locked_job_or_404(
    tx: &impl GenericClient,
    caller: &Caller,
    id: Uuid,
    including: Including,
) -> Result<Job, ApiError> {
    jobcenter_sql::jobs::lock(tx, id, caller.owner_scope(), including)
        .await?
        .ok_or(ApiError::NotFound("job"))
}

/// Records what the caller did to `subject` (e.g. `job:<id>`) in the audit log; called in
/// the transaction that makes the change, so that both are kept or neither.
pub async fn audit(
    tx: &impl GenericClient,
    caller: &Caller,
    action: &str,
    subject: &str,
    detail: &Value,
) -> Result<(), ApiError> {
    jobcenter_sql::audit::record(tx, Some(caller.user_id), action, subject, detail).await?;
    Ok(())
}
