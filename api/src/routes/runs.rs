//! Runs: trigger, read, list, cancel, retry.

use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::JsonBodyOrDefault;
use crate::models::{ChildRun, Page, PageQuery, RunResponse, TriggerRun};
use crate::routes::{audit, db, job_or_404};
use crate::run_events::RunEvent;
use crate::state::AppState;
use crate::trigger::{idempotency_key, queue_run, queue_run_if_open, QueueRun};
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use jobcenter_sql::jobs::{self, Including};
use jobcenter_sql::runs::{self, Guard, Run, RunFilter, RunInsert};
use jobcenter_sql::states::{Concurrency, RunState, RunTrigger};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use tokio::sync::broadcast;
use utoipa::IntoParams;
use uuid::Uuid;

/// Largest run input accepted, serialized (bytes).
const MAX_INPUT_BYTES: usize = 256 * 1024;
/// Longest synchronous wait.
const MAX_WAIT_SECONDS: u64 = 300;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TriggerQuery {
    /// Seconds to wait for the run to end (0..=300).
    #[param(minimum = 0, maximum = 300)]
    pub wait: Option<u64>,
}

/// Filters of `GET /api/v1/runs`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunListQuery {
    /// `queued`, `running`, `succeeded`, `failed`, `timed_out`, `cancelled` or `skipped`.
    #[param(pattern = "^(queued|running|succeeded|failed|timed_out|cancelled|skipped)$")]
    pub state: Option<String>,
    pub job_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    /// Runs queued at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Runs queued before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The `next` of the previous page.
    #[param(pattern = r"^[0-9]{1,16}_[0-9a-f-]{36}$")]
    pub cursor: Option<String>,
}

/// Queues a run of the job with the given input. With `wait=SECONDS` (at most 300), waits
/// for the outcome: 200 with the finished run if it ends in time, else 202 with the run
/// as it stands. With `max_attempts > 1`, the outcome is the last attempt's: a failed
/// attempt whose retry is queued is followed by that retry (202 with the pending attempt
/// if the deadline comes first). No database connection is held while waiting. With an `Idempotency-Key`
/// header, a repeated request answers the run the first one queued (header
/// `Idempotent-Replayed: true`) instead of queueing another.
#[utoipa::path(
    tag = "runs", security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "job id"),
        TriggerQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters; a repeat returns the first run"),
    ),
    request_body = TriggerRun,
    responses(
        (status = 200, body = RunResponse, description = "finished within the wait"),
        (status = 202, body = RunResponse),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "the job is disabled"),
    )
)]
#[post("/api/v1/jobs/{id}/runs")]
pub async fn trigger_run(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    job_id: web::Path<Uuid>,
    query: web::Query<TriggerQuery>,
    JsonBodyOrDefault(body): JsonBodyOrDefault<TriggerRun>,
) -> Result<HttpResponse, ApiError> {
    let wait = match query.wait {
        Some(seconds) if seconds > MAX_WAIT_SECONDS => {
            return Err(ApiError::invalid(
                "wait",
                format!("at most {MAX_WAIT_SECONDS} seconds"),
            ))
        }
        Some(seconds) => Duration::from_secs(seconds),
        None => Duration::ZERO,
    };
    // Subscribed before the insert, so that the run's end cannot slip by unseen.
    let events = state.events.subscribe();
    let key = idempotency_key(req.headers(), &["idempotency-key"])?;
    if serde_json::to_vec(&body.input).map_or(0, |v| v.len()) > MAX_INPUT_BYTES {
        return Err(ApiError::invalid(
            "input",
            format!("at most {MAX_INPUT_BYTES} bytes of JSON"),
        ));
    }
    let mut client = db(&state).await?;
    let request = QueueRun {
        job_id: *job_id,
        trigger: RunTrigger::Manual,
        input: &body.input,
        idempotency_key: key,
        actor_id: Some(caller.user_id),
        audit_detail: json!({}),
    };
    // The common trigger is one statement; the job is read only when that queued nothing
    // (the job is missing, deleted, not the caller's, disabled or `skip`) or the request
    // carries a key.
    let queued = match queue_run_if_open(&client, &request, caller.owner_scope()).await? {
        Some(queued) => queued,
        None => {
            let job = jobs::get(&client, *job_id, caller.owner_scope(), Including::Live)
                .await?
                .ok_or(ApiError::NotFound("job"))?;
            if !job.fields.enabled {
                return Err(ApiError::Conflict("the job is disabled".into()));
            }
            let skips = job.fields.concurrency == Concurrency::Skip;
            queue_run(&mut client, &request, skips).await?
        }
    };
    drop(client);
    let replayed = queued.replayed;
    let mut run = queued.run;
    if !wait.is_zero() {
        run = wait_for_end(&state, &caller, run, events, wait).await?;
    }
    let mut response = if !wait.is_zero() && run.state.is_final() {
        HttpResponse::Ok()
    } else {
        HttpResponse::Accepted()
    };
    if replayed {
        response.insert_header(("idempotent-replayed", "true"));
    }
    Ok(response.json(RunResponse::from(run)))
}

/// Waits until the outcome of `run` is known or `wait` passes, re-reading it on each
/// notification about it and at least every second (a missed notification costs at most
/// that). The outcome is that of the last attempt: a finished run whose retry (or rescue)
/// was queued — in the same transaction as its failure — is followed by that next
/// attempt, so the answer is the final attempt, or the pending one at the deadline.
async fn wait_for_end(
    state: &AppState,
    caller: &Caller,
    mut run: Run,
    mut events: broadcast::Receiver<RunEvent>,
    wait: Duration,
) -> Result<Run, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        while run.state.is_final() {
            match runs::next_attempt(&db(state).await?, run.id).await? {
                Some(next) => run = next,
                None => return Ok(run),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(run);
        }
        let _ = tokio::time::timeout_at(deadline, async {
            loop {
                match tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
                    Ok(Ok(RunEvent::Finished(id))) if id == run.id => return,
                    Ok(Ok(RunEvent::Resync)) | Ok(Err(_)) | Err(_) => return,
                    Ok(Ok(_)) => {}
                }
            }
        })
        .await;
        run = runs::get(&db(state).await?, run.id, caller.owner_scope())
            .await?
            .ok_or(ApiError::NotFound("run"))?;
    }
}

#[utoipa::path(
    tag = "runs", security(("bearer" = [])), params(("id" = Uuid, Path, description = "job id"), PageQuery),
    responses((status = 200, body = Page<RunResponse>))
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
    job_or_404(&client, &caller, *job_id, Including::Deleted).await?;
    let rows = runs::list_by_job(&client, *job_id, request.before, request.limit).await?;
    Ok(request.page(rows, |r| (r.queued_at, r.id), RunResponse::from))
}

#[utoipa::path(
    tag = "runs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = RunResponse))
)]
#[get("/api/v1/runs/{id}")]
pub async fn get_run(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = db(&state).await?;
    let (run, children) = runs::get_with_children(&client, *id, caller.owner_scope())
        .await?
        .ok_or(ApiError::NotFound("run"))?;
    let mut response = RunResponse::from(run);
    response.children = Some(
        children
            .into_iter()
            .map(|(id, job_id, state)| ChildRun { id, job_id, state })
            .collect(),
    );
    Ok(HttpResponse::Ok().json(response))
}

/// Runs visible to the caller, newest first, filtered.
#[utoipa::path(
    tag = "runs", security(("bearer" = [])), params(RunListQuery),
    responses((status = 200, body = Page<RunResponse>))
)]
#[get("/api/v1/runs")]
pub async fn list_runs(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<RunListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let request = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .parse()?;
    let run_state =
        match query.state.as_deref() {
            None => None,
            Some(text) => Some(RunState::parse(text).ok_or_else(|| {
                ApiError::invalid("state", format!("{text:?} is not a run state"))
            })?),
        };
    let filter = RunFilter {
        state: run_state,
        job_id: query.job_id,
        project_id: query.project_id,
        from: query.from,
        to: query.to,
    };
    let rows = runs::list(
        &db(&state).await?,
        caller.owner_scope(),
        &filter,
        request.before,
        request.limit,
    )
    .await?;
    Ok(request.page(rows, |r| (r.queued_at, r.id), RunResponse::from))
}

/// Inserts `run` in `tx` (under `Guard::QueueLock`: an exact skip policy).
async fn queue(
    tx: &deadpool_postgres::Transaction<'_>,
    run: &RunInsert<'_>,
) -> Result<runs::Run, ApiError> {
    runs::insert(tx, run)
        .await?
        .ok_or_else(|| ApiError::internal(std::fmt::Error))
}

/// Cancels a run: a queued run never starts (202 with state `cancelled`); a running
/// run is killed by its worker within about a second (202, `cancel_requested` true,
/// it ends `cancelled`). A finished run answers 409.
#[utoipa::path(
    tag = "runs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 202, body = RunResponse),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "the run has already finished"),
    )
)]
#[post("/api/v1/runs/{id}/cancel")]
pub async fn cancel_run(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = db(&state).await?;
    runs::get(&client, *id, caller.owner_scope())
        .await?
        .ok_or(ApiError::NotFound("run"))?;
    if runs::cancel(&client, *id).await? == runs::CancelOutcome::AlreadyFinished {
        return Err(ApiError::Conflict("the run has already finished".into()));
    }
    let run = runs::get(&client, *id, caller.owner_scope())
        .await?
        .ok_or(ApiError::NotFound("run"))?;
    Ok(HttpResponse::Accepted().json(RunResponse::from(run)))
}

/// Re-runs a finished run by hand: a new run (trigger `retry`, attempt 1, `retry_of`
/// naming this one) with the same input, under the job's current definition.
#[utoipa::path(
    tag = "runs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 202, body = RunResponse),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "the run has not finished, or its job is disabled or deleted"),
    )
)]
#[post("/api/v1/runs/{id}/retry")]
pub async fn retry_run(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    let original = runs::get(&tx, *id, caller.owner_scope())
        .await?
        .ok_or(ApiError::NotFound("run"))?;
    if !original.state.is_final() {
        return Err(ApiError::Conflict("the run has not finished yet".into()));
    }
    let job = jobs::get(&tx, original.job_id, caller.owner_scope(), Including::Live)
        .await?
        .ok_or_else(|| ApiError::Conflict("the run's job is deleted".into()))?;
    if !job.fields.enabled {
        return Err(ApiError::Conflict("the job is disabled".into()));
    }
    let new = RunInsert {
        job_id: job.id,
        trigger: RunTrigger::Retry,
        input: &original.input,
        scheduled_for: original.scheduled_for,
        retry_of: Some(original.id),
        parent_run_id: None,
        guard: Guard::QueueLock,
        audit: None,
    };
    let run = queue(&tx, &new).await?;
    let detail = json!({"job_id": job.id, "trigger": "retry", "retry_of": original.id});
    let subject = format!("run:{}", run.id);
    audit(&tx, &caller, "run.retry", &subject, &detail).await?;
    tx.commit().await?;
    Ok(HttpResponse::Accepted().json(RunResponse::from(run)))
}
