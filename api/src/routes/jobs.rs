//! Jobs: create, read, change, disable/enable, delete/restore.
//!
//! Every change is one transaction that locks the job row, writes the job, its queue
//! side effects (queued runs cancelled on disable/delete) and the audit record.
//!
//! A job's worker group must be `default` or one an admin allowed for its project: a
//! create, a patch and a restore check it in their transaction, under a share lock of
//! the project row that an admin's change of the project's groups waits for (see
//! docs/auth.md, "Worker groups").

use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::JsonBody;
use crate::job_fields;
use crate::models::{CreateJob, JobResponse, Page, PageQuery, UpdateJob};
use crate::routes::{self, db, job_or_404, locked_job_or_404, project_or_404};
use crate::state::AppState;
use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::Utc;
use deadpool_postgres::Transaction;
use jobcenter_sql::jobs::{self, Including, Job};
use serde_json::json;
use uuid::Uuid;

async fn audit(
    tx: &Transaction<'_>,
    caller: &Caller,
    action: &str,
    job_id: Uuid,
) -> Result<(), ApiError> {
    routes::audit(tx, caller, action, &format!("job:{job_id}"), &json!({})).await
}

/// Enabling a job that paused itself ends the pause: who and when go on the job and in
/// the audit log.
async fn record_resume(tx: &Transaction<'_>, caller: &Caller, job: &Job) -> Result<(), ApiError> {
    if !job.pause.is_active() {
        return Ok(());
    }
    jobs::record_resume(tx, job.id, caller.user_id).await?;
    let detail = json!({"paused_at": job.pause.paused_at, "reason": job.pause.reason});
    routes::audit(
        tx,
        caller,
        "job.resume",
        &format!("job:{}", job.id),
        &detail,
    )
    .await
}

/// Refuses a worker group the project does not allow (403, naming `worker_group`); 404
/// when the project is not in `owner`'s scope. The project row stays share-locked until
/// the transaction ends, so an admin cannot take the group away in between.
async fn check_worker_group(
    tx: &Transaction<'_>,
    project_id: Uuid,
    owner: Option<Uuid>,
    group: &str,
) -> Result<(), ApiError> {
    let allowed = jobcenter_sql::projects::lock_allowing_group(tx, project_id, owner, group)
        .await?
        .ok_or(ApiError::NotFound("project"))?;
    if allowed {
        return Ok(());
    }
    Err(ApiError::forbidden_value(
        "worker_group",
        format!(
            "the project may not use worker group `{group}`: an admin must allow the group \
             for the project first (its `worker_groups`)"
        ),
    ))
}

#[utoipa::path(
    tag = "jobs", security(("bearer" = [])), params(("id" = Uuid, Path, description = "project id")),
    request_body = CreateJob,
    responses(
        (status = 201, body = JobResponse),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "worker_group is not allowed for the project"),
    )
)]
#[post("/api/v1/projects/{id}/jobs")]
pub async fn create_job(
    state: web::Data<AppState>,
    caller: Caller,
    project_id: web::Path<Uuid>,
    JsonBody(body): JsonBody<CreateJob>,
) -> Result<HttpResponse, ApiError> {
    let children = body.children.clone();
    let fields = job_fields::from_create(body, Utc::now())?;
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    check_worker_group(&tx, *project_id, caller.owner_scope(), &fields.worker_group).await?;
    let mut job = jobs::insert(&tx, *project_id, &fields).await?;
    if !children.is_empty() {
        crate::children::save(&tx, &caller, job.id, children).await?;
        job.children = jobs::get(&tx, job.id, None, Including::Live)
            .await?
            .map(|saved| saved.children)
            .unwrap_or_default();
    }
    audit(&tx, &caller, "job.create", job.id).await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(JobResponse::from(job)))
}

#[utoipa::path(
    tag = "jobs", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "project id"), PageQuery),
    responses((status = 200, body = Page<JobResponse>))
)]
#[get("/api/v1/projects/{id}/jobs")]
pub async fn list_jobs(
    state: web::Data<AppState>,
    caller: Caller,
    project_id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let request = query.parse()?;
    let client = db(&state).await?;
    project_or_404(&client, &caller, *project_id).await?;
    let rows = jobs::list_by_project(&client, *project_id, request.before, request.limit).await?;
    Ok(request.page(rows, |j| (j.created_at, j.id), JobResponse::from))
}

/// A job, deleted or not (a deleted one shows `deleted_at`).
#[utoipa::path(
    tag = "jobs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = JobResponse))
)]
#[get("/api/v1/jobs/{id}")]
pub async fn get_job(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job = job_or_404(&db(&state).await?, &caller, *id, Including::Deleted).await?;
    Ok(HttpResponse::Ok().json(JobResponse::from(job)))
}

/// Changes a job; its run history stays. Disabling through a patch cancels its queued runs.
#[utoipa::path(
    tag = "jobs", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = UpdateJob,
    responses(
        (status = 200, body = JobResponse),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "worker_group is not allowed for the project"),
    )
)]
#[patch("/api/v1/jobs/{id}")]
pub async fn update_job(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    JsonBody(body): JsonBody<UpdateJob>,
) -> Result<HttpResponse, ApiError> {
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    let current = locked_job_or_404(&tx, &caller, *id, Including::Live).await?;
    let children = body.children.clone();
    let fields = job_fields::apply_patch(&current.fields, body, Utc::now())?;
    check_worker_group(&tx, current.project_id, None, &fields.worker_group).await?;
    if let Some(children) = children {
        crate::children::save(&tx, &caller, *id, children).await?;
    }
    if current.fields.enabled && !fields.enabled {
        jobcenter_sql::runs::cancel_queued_for_job(&tx, *id, "job disabled").await?;
    }
    if !current.fields.enabled && fields.enabled {
        record_resume(&tx, &caller, &current).await?;
    }
    let job = jobs::update(&tx, *id, &fields).await?;
    audit(&tx, &caller, "job.update", *id).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(JobResponse::from(job)))
}

/// Stops the schedule and takes the job's queued runs out of the queue (`cancelled`).
#[utoipa::path(
    tag = "jobs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = JobResponse))
)]
#[post("/api/v1/jobs/{id}/disable")]
pub async fn disable_job(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    set_enabled(&state, &caller, *id, false).await
}

/// Resumes the schedule from now (ticks missed while disabled are not fired).
#[utoipa::path(
    tag = "jobs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = JobResponse))
)]
#[post("/api/v1/jobs/{id}/enable")]
pub async fn enable_job(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    set_enabled(&state, &caller, *id, true).await
}

async fn set_enabled(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    enabled: bool,
) -> Result<HttpResponse, ApiError> {
    let mut client = db(state).await?;
    let tx = client.transaction().await?;
    let current = locked_job_or_404(&tx, caller, id, Including::Live).await?;
    let mut fields = current.fields.clone();
    fields.enabled = enabled;
    fields.next_fire_at = job_fields::plan_next_fire(&fields, Utc::now())?;
    if !enabled {
        jobcenter_sql::runs::cancel_queued_for_job(&tx, id, "job disabled").await?;
    } else if !current.fields.enabled {
        record_resume(&tx, caller, &current).await?;
    }
    let job = jobs::update(&tx, id, &fields).await?;
    audit(
        &tx,
        caller,
        if enabled { "job.enable" } else { "job.disable" },
        id,
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(JobResponse::from(job)))
}

/// Deletes a job: its schedule stops and queued runs are cancelled; the job, its runs and
/// logs stay readable and the job restorable until retention purges them.
#[utoipa::path(
    tag = "jobs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204))
)]
#[delete("/api/v1/jobs/{id}")]
pub async fn delete_job(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    locked_job_or_404(&tx, &caller, *id, Including::Live).await?;
    jobcenter_sql::runs::cancel_queued_for_job(&tx, *id, "job deleted").await?;
    jobs::soft_delete(&tx, *id).await?;
    audit(&tx, &caller, "job.delete", *id).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Undeletes a job; an enabled job's schedule resumes from now.
#[utoipa::path(
    tag = "jobs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = JobResponse),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "the job's worker_group is no longer allowed for the project"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/jobs/{id}/restore")]
pub async fn restore_job(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    let job = locked_job_or_404(&tx, &caller, *id, Including::Deleted).await?;
    if job.deleted_at.is_none() {
        return Err(ApiError::Conflict("the job is not deleted".into()));
    }
    check_worker_group(&tx, job.project_id, None, &job.fields.worker_group).await?;
    let next_fire_at = job_fields::plan_next_fire(&job.fields, Utc::now())?;
    jobs::restore(&tx, *id, next_fire_at).await?;
    audit(&tx, &caller, "job.restore", *id).await?;
    let job = locked_job_or_404(&tx, &caller, *id, Including::Live).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(JobResponse::from(job)))
}
