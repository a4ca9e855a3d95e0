//! Runs: trigger, read, list, logs.

use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::JsonBodyOrDefault;
use crate::models::{Page, PageQuery, RunResponse, TriggerRun};
use crate::pagination::page;
use crate::routes::db;
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use jobcenter_sql::jobs::{self, Including};
use jobcenter_sql::runs::{self, NewRun};
use jobcenter_sql::states::RunTrigger;
use uuid::Uuid;

/// Largest run input accepted, serialized (bytes).
const MAX_INPUT_BYTES: usize = 256 * 1024;
/// Log chunks returned by one read (each chunk is at most a batch of lines).
const MAX_LOG_CHUNKS: i64 = 100_000;

/// Queues a run of the job with the given input.
#[utoipa::path(
    tag = "runs", security(("bearer" = [])), params(("id" = Uuid, Path, description = "job id")),
    request_body = TriggerRun,
    responses(
        (status = 202, body = RunResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "the job is disabled"),
    )
)]
#[post("/api/v1/jobs/{id}/runs")]
pub async fn trigger_run(
    state: web::Data<AppState>,
    caller: Caller,
    job_id: web::Path<Uuid>,
    JsonBodyOrDefault(body): JsonBodyOrDefault<TriggerRun>,
) -> Result<HttpResponse, ApiError> {
    if serde_json::to_vec(&body.input).map_or(0, |v| v.len()) > MAX_INPUT_BYTES {
        return Err(ApiError::invalid(
            "input",
            format!("at most {MAX_INPUT_BYTES} bytes of JSON"),
        ));
    }
    let client = db(&state).await?;
    let job = jobs::get(&client, *job_id, caller.owner_scope(), Including::Live)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    if !job.fields.enabled {
        return Err(ApiError::Conflict("the job is disabled".into()));
    }
    let run = runs::insert(
        &client,
        &NewRun {
            job_id: job.id,
            trigger: RunTrigger::Manual,
            input: &body.input,
            worker_group: &job.fields.worker_group,
            scheduled_for: None,
        },
    )
    .await?
    .ok_or_else(|| ApiError::internal(std::fmt::Error))?;
    Ok(HttpResponse::Accepted().json(RunResponse::from(run)))
}

#[utoipa::path(
    tag = "runs", security(("bearer" = [])), params(("id" = Uuid, Path, description = "job id"), PageQuery),
    responses(
        (status = 200, body = Page<RunResponse>),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/jobs/{id}/runs")]
pub async fn list_job_runs(
    state: web::Data<AppState>,
    caller: Caller,
    job_id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let request = query.parse()?;
    let client = db(&state).await?;
    jobs::get(&client, *job_id, caller.owner_scope(), Including::Deleted)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    let rows = runs::list_by_job(&client, *job_id, request.before, request.limit).await?;
    Ok(HttpResponse::Ok().json(page(
        rows,
        &request,
        |r| (r.queued_at, r.id),
        RunResponse::from,
    )))
}

#[utoipa::path(
    tag = "runs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = RunResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/runs/{id}")]
pub async fn get_run(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let run = runs::get(&db(&state).await?, *id, caller.owner_scope())
        .await?
        .ok_or(ApiError::NotFound("run"))?;
    Ok(HttpResponse::Ok().json(RunResponse::from(run)))
}

/// The run's stdout and stderr as shipped so far, interleaved in arrival order.
#[utoipa::path(
    tag = "runs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = String, content_type = "text/plain"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/runs/{id}/logs")]
pub async fn get_run_logs(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = db(&state).await?;
    runs::get(&client, *id, caller.owner_scope())
        .await?
        .ok_or(ApiError::NotFound("run"))?;
    let text = jobcenter_sql::run_logs::read(&client, *id, MAX_LOG_CHUNKS).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text))
}
