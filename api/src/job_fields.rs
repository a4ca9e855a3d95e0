//! Turning a job body (create or patch) into validated `JobFields`, with its next fire
//! time. Everything a job body can get wrong is caught here and named by its field.

use crate::error::ApiError;
use crate::models::{CreateJob, UpdateJob};
use chrono::{DateTime, Utc};
use jobcenter_core::firing::{first_fire, Window};
use jobcenter_core::schedule::ScheduleSpec;
use jobcenter_core::target::{validate_env, Target};
use jobcenter_sql::jobs::JobFields;
use jobcenter_sql::states::Concurrency;

const MAX_ENV_ENTRIES: usize = 256;

pub fn from_create(body: CreateJob, now: DateTime<Utc>) -> Result<JobFields, ApiError> {
    let mut fields = JobFields {
        name: body.name,
        target: body.target.into(),
        schedule: body.schedule.map_or(ScheduleSpec::Manual, Into::into),
        starts_at: body.starts_at,
        ends_at: body.ends_at,
        concurrency: body.concurrency.map_or(Concurrency::Allow, Into::into),
        catch_up: body.catch_up.map_or(Default::default(), Into::into),
        timeout_seconds: body.timeout_seconds.unwrap_or(3600),
        max_attempts: body.max_attempts.unwrap_or(1),
        env: body.env,
        worker_group: body.worker_group.unwrap_or_else(|| "default".into()),
        network: body.network.map_or(Default::default(), Into::into),
        enabled: body.enabled.unwrap_or(true),
        next_fire_at: None,
        jitter_seconds: body.jitter_seconds.unwrap_or(0),
        pause_after_failures: body.pause_after_failures,
    };
    fields.next_fire_at = validate_and_plan(&fields, now)?;
    Ok(fields)
}

/// Merges a patch over the current fields. The next fire time is recomputed only when
/// something it depends on changed, so renaming an interval job keeps its phase.
pub fn apply_patch(
    current: &JobFields,
    patch: UpdateJob,
    now: DateTime<Utc>,
) -> Result<JobFields, ApiError> {
    let mut fields = current.clone();
    let timing_changed = patch.schedule.is_some()
        || patch.starts_at.is_some()
        || patch.ends_at.is_some()
        || patch.enabled.is_some_and(|e| e != current.enabled);
    if let Some(name) = patch.name {
        fields.name = name;
    }
    if let Some(target) = patch.target {
        fields.target = target.into();
    }
    if let Some(schedule) = patch.schedule {
        fields.schedule = schedule.into();
    }
    if let Some(starts_at) = patch.starts_at {
        fields.starts_at = starts_at;
    }
    if let Some(ends_at) = patch.ends_at {
        fields.ends_at = ends_at;
    }
    if let Some(concurrency) = patch.concurrency {
        fields.concurrency = concurrency.into();
    }
    if let Some(catch_up) = patch.catch_up {
        fields.catch_up = catch_up.into();
    }
    if let Some(timeout) = patch.timeout_seconds {
        fields.timeout_seconds = timeout;
    }
    if let Some(attempts) = patch.max_attempts {
        fields.max_attempts = attempts;
    }
    if let Some(env) = patch.env {
        fields.env = env;
    }
    if let Some(group) = patch.worker_group {
        fields.worker_group = group;
    }
    if let Some(network) = patch.network {
        fields.network = network.into();
    }
    if let Some(enabled) = patch.enabled {
        fields.enabled = enabled;
    }
    if let Some(jitter) = patch.jitter_seconds {
        fields.jitter_seconds = jitter;
    }
    if let Some(limit) = patch.pause_after_failures {
        fields.pause_after_failures = limit;
    }
    let planned = validate_and_plan(&fields, now)?;
    if timing_changed {
        fields.next_fire_at = planned;
    }
    Ok(fields)
}

/// The next fire time of `fields` as if (re-)enabled at `now`; None when disabled.
pub fn plan_next_fire(
    fields: &JobFields,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    validate_and_plan(fields, now)
}

fn validate_and_plan(f: &JobFields, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ApiError> {
    if f.name.trim().is_empty() || f.name.chars().count() > 128 {
        return Err(ApiError::invalid(
            "name",
            "must be 1 to 128 characters, not blank",
        ));
    }
    validate_target(&f.target)?;
    let schedule = f
        .schedule
        .compile()
        .map_err(|e| ApiError::invalid(e.field, e.reason))?;
    if let (Some(start), Some(end)) = (f.starts_at, f.ends_at) {
        if start >= end {
            return Err(ApiError::invalid("ends_at", "must be after starts_at"));
        }
    }
    if !(1..=604_800).contains(&f.timeout_seconds) {
        return Err(ApiError::invalid(
            "timeout_seconds",
            "must be in 1..=604800 (7 days)",
        ));
    }
    if !(1..=100).contains(&f.max_attempts) {
        return Err(ApiError::invalid("max_attempts", "must be in 1..=100"));
    }
    if f.env.len() > MAX_ENV_ENTRIES {
        return Err(ApiError::invalid(
            "env",
            format!("at most {MAX_ENV_ENTRIES} entries"),
        ));
    }
    validate_env(&f.env).map_err(|e| ApiError::invalid(e.field, e.reason))?;
    if !valid_group_name(&f.worker_group) {
        return Err(ApiError::invalid(
            "worker_group",
            "must be 1 to 64 of [A-Za-z0-9._-]",
        ));
    }
    let max_jitter = jobcenter_core::jitter::MAX_JITTER_SECONDS as i32;
    if !(0..=max_jitter).contains(&f.jitter_seconds) {
        return Err(ApiError::invalid(
            "jitter_seconds",
            format!("must be in 0..={max_jitter} (one hour)"),
        ));
    }
    if f.pause_after_failures
        .is_some_and(|n| !(1..=1000).contains(&n))
    {
        return Err(ApiError::invalid(
            "pause_after_failures",
            "must be in 1..=1000, or null for never",
        ));
    }
    if !f.enabled {
        return Ok(None);
    }
    let window = Window {
        starts_at: f.starts_at,
        ends_at: f.ends_at,
    };
    Ok(first_fire(&schedule, window, now))
}

/// A worker group's name: 1 to 64 of `[A-Za-z0-9._-]` (a job's group, a project's
/// allowed groups).
pub fn valid_group_name(group: &str) -> bool {
    !group.is_empty()
        && group.len() <= 64
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn validate_target(target: &Target) -> Result<(), ApiError> {
    target
        .validate()
        .map_err(|e| ApiError::invalid(e.field, e.reason))
}
