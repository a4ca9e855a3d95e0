//! Schedule previews: the next fire times of a saved job, or of a schedule before saving.
//!
//! `fires` lists the ticks (each run's `scheduled_for`), as always; `entries` adds, per
//! tick, when its run may start (the tick plus the job's jitter offset) and whether DST
//! moved the tick (`gap`) or added it (`repeat`).

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::models::ScheduleBody;
use crate::routes::{db, job_or_404};
use crate::state::AppState;
use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use jobcenter_core::firing::{upcoming, Window};
use jobcenter_core::jitter;
use jobcenter_core::schedule::{DstShift, ScheduleSpec};
use jobcenter_sql::jobs::Including;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

const MAX_COUNT: usize = 100;
const DEFAULT_COUNT: usize = 5;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CountQuery {
    /// How many fire times (1..=100, default 5).
    #[param(minimum = 1, maximum = 100)]
    pub count: Option<usize>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    pub schedule: ScheduleBody,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// How many fire times (1..=100, default 5).
    #[schema(minimum = 1, maximum = 100)]
    pub count: Option<usize>,
}

/// Upcoming fire instants (UTC), in order.
#[derive(Serialize, ToSchema)]
pub struct NextFires {
    /// The ticks: each run's `scheduled_for`.
    pub fires: Vec<DateTime<Utc>>,
    /// The same ticks, with details.
    pub entries: Vec<FireEntry>,
}

/// One upcoming tick.
#[derive(Serialize, ToSchema)]
pub struct FireEntry {
    /// The tick (the run's `scheduled_for`).
    pub scheduled_for: DateTime<Utc>,
    /// The earliest instant the run may start: the tick plus the job's jitter offset.
    /// The preview of an unsaved schedule has no job id, hence no offset: the tick.
    pub start_at: DateTime<Utc>,
    /// Set when DST changed this tick: `gap` (it stands in for a local time that did
    /// not exist, skipped by a spring-forward gap) or `repeat` (the second occurrence of
    /// a repeated local time, under `dst_repeat: twice`).
    pub dst: Option<DstShiftBody>,
}

/// How DST changed a tick.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DstShiftBody {
    Gap,
    Repeat,
}

fn count(requested: Option<usize>) -> Result<usize, ApiError> {
    match requested.unwrap_or(DEFAULT_COUNT) {
        n @ 1..=MAX_COUNT => Ok(n),
        _ => Err(ApiError::invalid(
            "count",
            format!("must be in 1..={MAX_COUNT}"),
        )),
    }
}

fn preview(
    spec: &ScheduleSpec,
    window: Window,
    count: usize,
    jitter: Duration,
) -> Result<NextFires, ApiError> {
    let schedule = spec
        .compile()
        .map_err(|e| ApiError::invalid(e.field, e.reason))?;
    let fires = upcoming(&schedule, window, Utc::now(), count);
    let entries = fires
        .iter()
        .map(|&tick| FireEntry {
            scheduled_for: tick,
            start_at: tick + jitter,
            dst: schedule.dst_shift(tick).map(|shift| match shift {
                DstShift::Gap => DstShiftBody::Gap,
                DstShift::Repeat => DstShiftBody::Repeat,
            }),
        })
        .collect();
    Ok(NextFires { fires, entries })
}

/// The job's next fire times from now, as its schedule and window say (also while the
/// job is disabled: what it would do once enabled).
#[utoipa::path(
    tag = "jobs", security(("bearer" = [])), params(("id" = Uuid, Path), CountQuery),
    responses((status = 200, body = NextFires))
)]
#[get("/api/v1/jobs/{id}/next-fires")]
pub async fn next_fires(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<CountQuery>,
) -> Result<HttpResponse, ApiError> {
    let count = count(query.count)?;
    let job = job_or_404(&db(&state).await?, &caller, *id, Including::Live).await?;
    let window = Window {
        starts_at: job.fields.starts_at,
        ends_at: job.fields.ends_at,
    };
    let jitter = jitter::offset(job.id, job.fields.jitter_seconds.max(0) as u32);
    Ok(HttpResponse::Ok().json(preview(&job.fields.schedule, window, count, jitter)?))
}

/// The fire times a schedule would have, before saving it.
#[utoipa::path(
    tag = "jobs", security(("bearer" = [])), request_body = PreviewRequest,
    responses((status = 200, body = NextFires))
)]
#[post("/api/v1/schedules/preview")]
pub async fn preview_schedule(
    _caller: Caller,
    JsonBody(body): JsonBody<PreviewRequest>,
) -> Result<HttpResponse, ApiError> {
    let count = count(body.count)?;
    let window = Window {
        starts_at: body.starts_at,
        ends_at: body.ends_at,
    };
    Ok(HttpResponse::Ok().json(preview(
        &body.schedule.into(),
        window,
        count,
        Duration::zero(),
    )?))
}
