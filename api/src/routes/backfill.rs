//! Backfill: queueing the runs a job's schedule would have fired in a past range.
//!
//! One transaction locks the job (owner-scoped: another owner's job is not found),
//! computes its ticks in `[from, to)` (`jobcenter_core::backfill`: at most
//! `MAX_BACKFILL_TICKS`, inside the job's window), inserts a `backfill` run for each tick
//! that has no run yet, and writes the audit record. The tick index (one first attempt
//! per job and `scheduled_for`, shared with the scheduler) makes a repeated backfill
//! create nothing and keeps a tick the scheduler already fired from being doubled.

use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::JsonBody;
use crate::routes::{audit, db, locked_job_or_404};
use crate::state::AppState;
use actix_web::{post, web, HttpResponse};
use chrono::{DateTime, Utc};
use jobcenter_core::backfill::{ticks, BackfillError, MAX_BACKFILL_TICKS};
use jobcenter_core::firing::Window;
use jobcenter_sql::jobs::Including;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// The first instant of the range (included).
    pub from: DateTime<Utc>,
    /// The end of the range (excluded): after `from`, not in the future.
    pub to: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct BackfillResponse {
    /// The schedule's ticks in the range (inside the job's window).
    pub ticks: usize,
    /// Runs queued now, one per tick that had none.
    pub created: usize,
    /// Ticks that already had a run (fired by the scheduler or an earlier backfill).
    pub skipped: usize,
    /// The runs queued, oldest tick first.
    pub run_ids: Vec<Uuid>,
}

/// Queues a `backfill` run for each tick the job's schedule had in `[from, to)` that has
/// no run yet; at most 1000 ticks.
#[utoipa::path(
    tag = "jobs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = BackfillRequest,
    responses(
        (status = 200, body = BackfillResponse),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/jobs/{id}/backfill")]
pub async fn backfill_job(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    JsonBody(body): JsonBody<BackfillRequest>,
) -> Result<HttpResponse, ApiError> {
    if body.to > Utc::now() {
        return Err(ApiError::invalid("to", "must not be in the future"));
    }
    if body.from >= body.to {
        return Err(ApiError::invalid("to", "must be after from"));
    }
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    let job = locked_job_or_404(&tx, &caller, *id, Including::Live).await?;
    if !job.fields.enabled {
        return Err(ApiError::Conflict("the job is disabled".into()));
    }
    let schedule = job
        .fields
        .schedule
        .compile()
        .map_err(|e| ApiError::invalid(e.field, e.reason))?;
    let window = Window {
        starts_at: job.fields.starts_at,
        ends_at: job.fields.ends_at,
    };
    // Interval ticks line up with the ones the scheduler fires.
    let anchor = job
        .fields
        .next_fire_at
        .or(job.fields.starts_at)
        .unwrap_or(job.created_at);
    let ticks = ticks(
        &schedule,
        window,
        anchor,
        body.from,
        body.to,
        MAX_BACKFILL_TICKS,
    )
    .map_err(|e| match e {
        BackfillError::Manual => {
            ApiError::invalid("schedule", "a manual job has no ticks to backfill")
        }
        BackfillError::TooMany { max } => ApiError::invalid(
            "from",
            format!("the range holds more than {max} ticks of the schedule; backfill it in parts"),
        ),
    })?;
    let run_ids =
        jobcenter_sql::runs::insert_backfill(&tx, job.id, &job.fields.worker_group, &ticks).await?;
    let detail = json!({"from": body.from, "to": body.to, "created": run_ids.len(),
                        "skipped": ticks.len() - run_ids.len()});
    let subject = format!("job:{}", job.id);
    audit(&tx, &caller, "job.backfill", &subject, &detail).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(BackfillResponse {
        ticks: ticks.len(),
        created: run_ids.len(),
        skipped: ticks.len() - run_ids.len(),
        run_ids,
    }))
}
