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

use crate::error::ApiError;
use crate::state::AppState;
use deadpool_postgres::Object;

/// A pooled connection; an unreachable database answers 503.
pub async fn db(state: &AppState) -> Result<Object, ApiError> {
    Ok(state.pool.get().await?)
}

/// Fails with 404 unless the project exists and the caller may see it.
pub async fn visible_project(
    state: &AppState,
    caller: &crate::auth::Caller,
    project_id: uuid::Uuid,
) -> Result<(), ApiError> {
    jobcenter_sql::projects::get(&db(state).await?, project_id, caller.owner_scope())
        .await?
        .ok_or(ApiError::NotFound("project"))?;
    Ok(())
}
