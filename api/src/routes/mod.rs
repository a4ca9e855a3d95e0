//! HTTP handlers, one module per resource.

pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod fallback;
pub mod health;
pub mod hooks;
pub mod jobs;
pub mod logs;
pub mod metrics;
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
