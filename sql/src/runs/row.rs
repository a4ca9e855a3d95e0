//! A run as read back: [`Run`] (a row of `runs`, with its job's project) and
//! [`ClaimedRun`] (what a claim hands a worker). Both are decoded by column name, so that
//! a column added to [`run_columns!`] or to the claim's `RETURNING` shifts nothing.

use crate::states::{RunState, RunTrigger};
use crate::Error;
use chrono::{DateTime, Utc};
use jobcenter_core::target::Target;
use serde_json::Value;
use std::collections::BTreeMap;
use tokio_postgres::Row;
use uuid::Uuid;

/// The columns of a [`Run`], read by [`from_row`] by name: `r` is the run, `j` its job.
/// A column computed or cast is named with `AS`.
macro_rules! run_columns {
    () => {
        "r.id, r.job_id, j.project_id, r.state::text AS state, r.trigger::text AS trigger,
         r.attempt, r.worker_group, r.input, r.result, r.exit_code, r.error, r.scheduled_for,
         r.queued_at, r.started_at, r.finished_at, r.worker_id, r.cancel_requested,
         r.first_run_id, r.previous_run_id, r.retry_of, r.not_before, r.artifact_version,
         r.parent_run_id"
    };
}

#[derive(Debug, Clone)]
pub struct Run {
    pub id: Uuid,
    pub job_id: Uuid,
    pub project_id: Uuid,
    pub state: RunState,
    pub trigger: RunTrigger,
    pub attempt: i32,
    pub worker_group: String,
    pub input: Value,
    pub result: Option<String>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub worker_id: Option<Uuid>,
    pub cancel_requested: bool,
    pub first_run_id: Option<Uuid>,
    pub previous_run_id: Option<Uuid>,
    pub retry_of: Option<Uuid>,
    pub not_before: DateTime<Utc>,
    /// The artifact version a binary-target run executed.
    pub artifact_version: Option<i32>,
    /// The run whose outcome triggered this one (child jobs).
    pub parent_run_id: Option<Uuid>,
}

/// A run a worker has just claimed, with everything needed to execute it. Its `Debug`
/// hides the project's secrets and the target's HTTP headers.
#[derive(Clone)]
pub struct ClaimedRun {
    pub id: Uuid,
    pub job_id: Uuid,
    pub project_id: Uuid,
    pub attempt: i32,
    pub trigger: RunTrigger,
    pub input: Value,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub target: Target,
    pub env: BTreeMap<String, String>,
    pub project_config: BTreeMap<String, String>,
    pub timeout_seconds: i32,
    pub max_attempts: i32,
    /// The fencing token of this claim: every later change names it.
    pub lease_id: Uuid,
    /// Seconds the run waited to be claimed once it could start (claim latency).
    pub waited_seconds: f64,
    /// What the job's last successful run left in its state file, read with the claim.
    pub previous_state: Option<Vec<u8>>,
    /// The project's secrets (name → value), read with the claim: a worker gets them
    /// only for a run it holds.
    pub secrets: BTreeMap<String, String>,
    /// The job's network inside the run's sandbox.
    pub network: jobcenter_core::sandbox::Network,
}

impl std::fmt::Debug for ClaimedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedRun")
            .field("id", &self.id)
            .field("job_id", &self.job_id)
            .field("project_id", &self.project_id)
            .field("attempt", &self.attempt)
            .field("trigger", &self.trigger)
            .field("input", &self.input)
            .field("scheduled_for", &self.scheduled_for)
            .field("target", &self.target)
            .field("env", &self.env)
            .field("project_config", &self.project_config)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("max_attempts", &self.max_attempts)
            .field("lease_id", &self.lease_id)
            .field("waited_seconds", &self.waited_seconds)
            .field(
                "previous_state",
                &self.previous_state.as_ref().map(|s| s.len()),
            )
            .field(
                "secrets",
                &jobcenter_core::config::RedactedValues(&self.secrets),
            )
            .field("network", &self.network)
            .finish()
    }
}

fn corrupt(column: &'static str, value: String) -> Error {
    Error::Corrupt {
        column,
        reason: value,
    }
}

fn trigger(row: &Row) -> Result<RunTrigger, Error> {
    let trigger: String = row.try_get("trigger")?;
    RunTrigger::parse(&trigger).ok_or_else(|| corrupt("runs.trigger", trigger))
}

/// A run from a row with the columns of [`run_columns!`] (and any others).
pub(super) fn from_row(row: &Row) -> Result<Run, Error> {
    let state: String = row.try_get("state")?;
    Ok(Run {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        project_id: row.try_get("project_id")?,
        state: RunState::parse(&state).ok_or_else(|| corrupt("runs.state", state))?,
        trigger: trigger(row)?,
        attempt: row.try_get("attempt")?,
        worker_group: row.try_get("worker_group")?,
        input: row.try_get("input")?,
        result: row.try_get("result")?,
        exit_code: row.try_get("exit_code")?,
        error: row.try_get("error")?,
        scheduled_for: row.try_get("scheduled_for")?,
        queued_at: row.try_get("queued_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        worker_id: row.try_get("worker_id")?,
        cancel_requested: row.try_get("cancel_requested")?,
        first_run_id: row.try_get("first_run_id")?,
        previous_run_id: row.try_get("previous_run_id")?,
        retry_of: row.try_get("retry_of")?,
        not_before: row.try_get("not_before")?,
        artifact_version: row.try_get("artifact_version")?,
        parent_run_id: row.try_get("parent_run_id")?,
    })
}

fn json_column<T: serde::de::DeserializeOwned>(
    row: &Row,
    name: &str,
    column: &'static str,
) -> Result<T, Error> {
    serde_json::from_value(row.try_get(name)?).map_err(|e| corrupt(column, e.to_string()))
}

/// A claimed run from a row the claim returned (see `claim::CLAIM`).
pub(super) fn claimed_from_row(row: &Row) -> Result<ClaimedRun, Error> {
    Ok(ClaimedRun {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        project_id: row.try_get("project_id")?,
        attempt: row.try_get("attempt")?,
        trigger: trigger(row)?,
        input: row.try_get("input")?,
        scheduled_for: row.try_get("scheduled_for")?,
        target: json_column(row, "target", "jobs.target")?,
        env: json_column(row, "env", "jobs.env")?,
        project_config: json_column(row, "project_config", "projects.config")?,
        timeout_seconds: row.try_get("timeout_seconds")?,
        max_attempts: row.try_get("max_attempts")?,
        lease_id: row.try_get("lease_id")?,
        waited_seconds: row.try_get("waited_seconds")?,
        previous_state: row.try_get("previous_state")?,
        secrets: json_column(row, "secrets", "project_secrets.value")?,
        network: crate::jobs::network(row.try_get("network")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_runs_debug_hides_its_secrets() {
        let run = ClaimedRun {
            id: Uuid::nil(),
            job_id: Uuid::nil(),
            project_id: Uuid::nil(),
            attempt: 1,
            trigger: RunTrigger::Manual,
            input: Value::Null,
            scheduled_for: None,
            target: Target::Http(jobcenter_core::target::HttpRequest {
                method: "GET".into(),
                url: "https://example.com/".into(),
                headers: [("Authorization".into(), "Bearer header-s3cret".into())].into(),
                body: None,
            }),
            env: BTreeMap::new(),
            project_config: BTreeMap::new(),
            timeout_seconds: 60,
            max_attempts: 1,
            lease_id: Uuid::nil(),
            waited_seconds: 0.0,
            previous_state: None,
            secrets: [("DB_PASSWORD".into(), "project-s3cret".into())].into(),
            network: Default::default(),
        };
        let printed = format!("{run:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("DB_PASSWORD"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
    }
}
