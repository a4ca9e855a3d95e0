//! Workers: who is there, in which group, how busy; admins drain and resume them.

use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::models::WorkerResponse;
use crate::routes::{audit, db};
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use jobcenter_sql::workers;
use uuid::Uuid;

/// Most workers listed.
const MAX_WORKERS: i64 = 1000;

/// Every known worker: group, capacity, running runs, last heartbeat, drained.
#[utoipa::path(
    tag = "workers", security(("bearer" = [])),
    responses((status = 200, body = Vec<WorkerResponse>))
)]
#[get("/api/v1/workers")]
pub async fn list_workers(
    state: web::Data<AppState>,
    _caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let lease_ms = state.worker_lease.as_millis() as i64;
    let rows = workers::list(&db(&state).await?, lease_ms, MAX_WORKERS).await?;
    let body: Vec<WorkerResponse> = rows.into_iter().map(WorkerResponse::from).collect();
    Ok(HttpResponse::Ok().json(body))
}

/// Drain: the worker claims no more runs and finishes those it runs (admin).
#[utoipa::path(
    tag = "workers", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 204),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/workers/{id}/drain")]
pub async fn drain_worker(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    set_drained(&state, &caller, *id, true).await
}

/// Resume: a drained worker claims runs again (admin).
#[utoipa::path(
    tag = "workers", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 204),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/workers/{id}/resume")]
pub async fn resume_worker(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    set_drained(&state, &caller, *id, false).await
}

async fn set_drained(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    drained: bool,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin("only admins drain and resume workers")?;
    let mut client = db(state).await?;
    let tx = client.transaction().await?;
    if !workers::set_drained(&tx, id, drained).await? {
        return Err(ApiError::NotFound("worker"));
    }
    let action = if drained {
        "worker.drain"
    } else {
        "worker.resume"
    };
    audit(
        &tx,
        caller,
        action,
        &format!("worker:{id}"),
        &serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
