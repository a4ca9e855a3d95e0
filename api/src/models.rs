//! The JSON shapes of the API (request and response bodies) and their conversions.
//!
//! Architecture invariant: only this crate knows the wire format. `Target` and
//! `ScheduleSpec` mirror core's types field for field so the OpenAPI document can
//! describe them; the conversions here and in `target` and `schedule` are the only bridge.

use chrono::{DateTime, Utc};
use jobcenter_core::firing::CatchUp;
use jobcenter_core::sandbox::{Network, SandboxReport};
use jobcenter_sql::job_children::{Child, Condition};
use jobcenter_sql::{jobs::Job, projects::Project, runs::Run};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

mod page;
mod schedule;
mod target;

pub use page::Page;
pub use schedule::*;
pub use target::*;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime of the token in seconds.
    pub expires_in: u64,
}

#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    pub id: Uuid,
    pub username: String,
    /// `admin` or `developer`.
    pub role: String,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    #[schema(min_length = 1, max_length = 128, pattern = r"\S")]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Exported to every run of the project's jobs as environment variables.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Admins only: the owner (default: the caller).
    pub owner_id: Option<Uuid>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    #[schema(min_length = 1, max_length = 128, pattern = r"\S")]
    pub name: Option<String>,
    pub description: Option<String>,
    pub config: Option<BTreeMap<String, String>>,
    /// Admins only: transfer the project.
    pub owner_id: Option<Uuid>,
    /// Admins only: the worker groups the project's jobs may use besides `default`
    /// (replaces the list; each 1 to 64 of `[A-Za-z0-9._-]`). Taking away a group that
    /// live jobs of the project still use answers 409.
    #[schema(max_items = 64)]
    pub worker_groups: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct ProjectResponse {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub description: String,
    #[schema(value_type = BTreeMap<String, String>)]
    pub config: Value,
    /// The worker groups its jobs may use besides `default`, which is always allowed.
    /// Only admins change it.
    pub worker_groups: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Project> for ProjectResponse {
    fn from(p: Project) -> Self {
        ProjectResponse {
            id: p.id,
            owner_id: p.owner_id,
            name: p.name,
            description: p.description,
            config: p.config,
            worker_groups: p.worker_groups,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// What happens to ticks missed while no scheduler ran (by more than the misfire
/// threshold): `once` fires one run for the latest (default), `each` fires every
/// missed tick up to a bound (`JOBCENTER_CATCH_UP_MAX_TICKS`, the latest ones),
/// `skip` fires none.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUpBody {
    Once,
    Each,
    Skip,
}

impl From<CatchUpBody> for CatchUp {
    fn from(body: CatchUpBody) -> Self {
        match body {
            CatchUpBody::Once => CatchUp::Once,
            CatchUpBody::Each => CatchUp::Each,
            CatchUpBody::Skip => CatchUp::Skip,
        }
    }
}

impl From<CatchUp> for CatchUpBody {
    fn from(policy: CatchUp) -> Self {
        match policy {
            CatchUp::Once => CatchUpBody::Once,
            CatchUp::Each => CatchUpBody::Each,
            CatchUp::Skip => CatchUpBody::Skip,
        }
    }
}

/// A child job: it runs when a run of this job ends as `when` says, with the parent's
/// `parent_run_id`, `parent_job_id`, `parent_state` and `parent_result` as its input.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChildBody {
    pub job_id: Uuid,
    pub when: ChildWhen,
}

/// `on_success`; `on_failure` (failed or timed out); `on_finish` (any of those three;
/// a cancelled run triggers no child).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChildWhen {
    OnSuccess,
    OnFailure,
    OnFinish,
}

impl From<ChildBody> for Child {
    fn from(body: ChildBody) -> Self {
        Child {
            job_id: body.job_id,
            condition: match body.when {
                ChildWhen::OnSuccess => Condition::OnSuccess,
                ChildWhen::OnFailure => Condition::OnFailure,
                ChildWhen::OnFinish => Condition::OnFinish,
            },
        }
    }
}

impl From<Child> for ChildBody {
    fn from(child: Child) -> Self {
        ChildBody {
            job_id: child.job_id,
            when: match child.condition {
                Condition::OnSuccess => ChildWhen::OnSuccess,
                Condition::OnFailure => ChildWhen::OnFailure,
                Condition::OnFinish => ChildWhen::OnFinish,
            },
        }
    }
}

/// A run's network inside its sandbox: `outbound` (default) reaches the internet but
/// not the worker host's loopback, private, link-local or metadata addresses; `none` has
/// no network at all.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetworkBody {
    None,
    Outbound,
}

impl From<NetworkBody> for Network {
    fn from(body: NetworkBody) -> Self {
        match body {
            NetworkBody::None => Network::None,
            NetworkBody::Outbound => Network::Outbound,
        }
    }
}

impl From<Network> for NetworkBody {
    fn from(network: Network) -> Self {
        match network {
            Network::None => NetworkBody::None,
            Network::Outbound => NetworkBody::Outbound,
        }
    }
}

/// `allow` (overlap), `queue` (one at a time) or `skip` (drop a tick while one runs).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConcurrencyBody {
    Allow,
    Queue,
    Skip,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    #[schema(min_length = 1, max_length = 128, pattern = r"\S")]
    pub name: String,
    pub target: TargetBody,
    /// Default: manual.
    pub schedule: Option<ScheduleBody>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// Default: allow.
    pub concurrency: Option<ConcurrencyBody>,
    /// Default: once.
    pub catch_up: Option<CatchUpBody>,
    /// Default: 3600.
    #[schema(minimum = 1, maximum = 604800)]
    pub timeout_seconds: Option<i32>,
    /// Default: 1.
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<i32>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Default: `default`. Any other group must be allowed for the project by an admin
    /// (the project's `worker_groups`), or the job is refused (403).
    pub worker_group: Option<String>,
    /// Default: outbound.
    pub network: Option<NetworkBody>,
    /// Default: true.
    pub enabled: Option<bool>,
    /// Each scheduled run starts up to this many seconds after its tick, by an offset
    /// fixed per job (derived from its id). Default: 0.
    #[schema(minimum = 0, maximum = 3600)]
    pub jitter_seconds: Option<i32>,
    /// Jobs to run on this job's outcome. Default: none.
    #[serde(default)]
    pub children: Vec<ChildBody>,
    /// Pause (disable) the job after this many consecutive failed runs. Default: never.
    #[schema(minimum = 1, maximum = 1000)]
    pub pause_after_failures: Option<i32>,
}

/// A partial update: absent fields keep their value; `starts_at`/`ends_at` accept null.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateJob {
    #[schema(min_length = 1, max_length = 128, pattern = r"\S")]
    pub name: Option<String>,
    pub target: Option<TargetBody>,
    pub schedule: Option<ScheduleBody>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub starts_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub ends_at: Option<Option<DateTime<Utc>>>,
    pub concurrency: Option<ConcurrencyBody>,
    pub catch_up: Option<CatchUpBody>,
    #[schema(minimum = 1, maximum = 604800)]
    pub timeout_seconds: Option<i32>,
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<i32>,
    pub env: Option<BTreeMap<String, String>>,
    /// `default`, or a group an admin allowed for the project (else 403).
    pub worker_group: Option<String>,
    pub network: Option<NetworkBody>,
    pub enabled: Option<bool>,
    #[schema(minimum = 0, maximum = 3600)]
    pub jitter_seconds: Option<i32>,
    /// Replaces the job's children.
    pub children: Option<Vec<ChildBody>>,
    /// Null: never pause.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 1000)]
    pub pause_after_failures: Option<Option<i32>>,
}

#[derive(Serialize, ToSchema)]
pub struct JobResponse {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub target: TargetBody,
    pub schedule: ScheduleBody,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub concurrency: ConcurrencyBody,
    pub catch_up: CatchUpBody,
    pub timeout_seconds: i32,
    pub max_attempts: i32,
    pub env: BTreeMap<String, String>,
    pub worker_group: String,
    pub network: NetworkBody,
    pub enabled: bool,
    /// The next instant the schedule fires, if any.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// Scheduled runs start up to this many seconds after their tick.
    pub jitter_seconds: i32,
    pub children: Vec<ChildBody>,
    /// Null: the job never pauses itself.
    pub pause_after_failures: Option<i32>,
    /// When the job last paused itself after repeated failures, and why.
    pub paused_at: Option<DateTime<Utc>>,
    pub paused_reason: Option<String>,
    /// When the job was enabled again after that pause, and by which user.
    pub resumed_at: Option<DateTime<Utc>>,
    pub resumed_by: Option<Uuid>,
    /// Set while the job is deleted (restorable until retention purges it).
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Job> for JobResponse {
    fn from(job: Job) -> Self {
        use jobcenter_sql::states::Concurrency;
        let f = job.fields;
        JobResponse {
            id: job.id,
            project_id: job.project_id,
            name: f.name,
            target: f.target.into(),
            schedule: f.schedule.into(),
            starts_at: f.starts_at,
            ends_at: f.ends_at,
            concurrency: match f.concurrency {
                Concurrency::Allow => ConcurrencyBody::Allow,
                Concurrency::Queue => ConcurrencyBody::Queue,
                Concurrency::Skip => ConcurrencyBody::Skip,
            },
            catch_up: f.catch_up.into(),
            timeout_seconds: f.timeout_seconds,
            max_attempts: f.max_attempts,
            env: f.env,
            worker_group: f.worker_group,
            network: f.network.into(),
            enabled: f.enabled,
            next_fire_at: f.next_fire_at,
            jitter_seconds: f.jitter_seconds,
            children: job.children.into_iter().map(Into::into).collect(),
            pause_after_failures: f.pause_after_failures,
            paused_at: job.pause.paused_at,
            paused_reason: job.pause.reason,
            resumed_at: job.pause.resumed_at,
            resumed_by: job.pause.resumed_by,
            deleted_at: job.deleted_at,
            created_at: job.created_at,
            updated_at: job.updated_at,
        }
    }
}

impl From<ConcurrencyBody> for jobcenter_sql::states::Concurrency {
    fn from(body: ConcurrencyBody) -> Self {
        match body {
            ConcurrencyBody::Allow => Self::Allow,
            ConcurrencyBody::Queue => Self::Queue,
            ConcurrencyBody::Skip => Self::Skip,
        }
    }
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TriggerRun {
    /// Any JSON; the run reads it on stdin and from `$JOBCENTER_INPUT_FILE`.
    #[serde(default)]
    pub input: Value,
}

#[derive(Serialize, ToSchema)]
pub struct RunResponse {
    pub id: Uuid,
    pub job_id: Uuid,
    pub project_id: Uuid,
    /// `queued`, `running`, `succeeded`, `failed`, `timed_out`, `cancelled` or `skipped`.
    pub state: String,
    /// `manual`, `schedule`, `webhook`, `retry` or `parent` (a child job's run).
    pub trigger: String,
    pub attempt: i32,
    pub input: Value,
    /// What the run wrote to `$JOBCENTER_RESULT_FILE` (capped).
    pub result: Option<String>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker that ran it.
    pub worker: Option<Uuid>,
    pub worker_group: String,
    /// True once a cancel was requested.
    pub cancel_requested: bool,
    /// The first attempt of this run's chain; null on the first attempt itself.
    pub first_run_id: Option<Uuid>,
    /// The attempt this one follows (automatic retry, or rescue of a lost worker).
    pub previous_run_id: Option<Uuid>,
    /// The finished run this one re-runs by hand (`POST /api/v1/runs/{id}/retry`).
    pub retry_of: Option<Uuid>,
    /// Not started before this instant (retry backoff).
    pub not_before: DateTime<Utc>,
    /// The artifact version a binary-target run executed.
    pub artifact_version: Option<i32>,
    /// The run whose outcome started this one (a child job's run).
    pub parent_run_id: Option<Uuid>,
    /// The child jobs' runs this run's outcome started (`GET /api/v1/runs/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<ChildRun>>,
}

/// A run started by a parent run's outcome.
#[derive(Serialize, ToSchema)]
pub struct ChildRun {
    pub id: Uuid,
    pub job_id: Uuid,
    pub state: String,
}

impl From<Run> for RunResponse {
    fn from(r: Run) -> Self {
        RunResponse {
            id: r.id,
            job_id: r.job_id,
            project_id: r.project_id,
            state: r.state.as_str().to_string(),
            trigger: r.trigger.as_str().to_string(),
            attempt: r.attempt,
            input: r.input,
            result: r.result,
            exit_code: r.exit_code,
            error: r.error,
            scheduled_for: r.scheduled_for,
            queued_at: r.queued_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            worker: r.worker_id,
            worker_group: r.worker_group,
            cancel_requested: r.cancel_requested,
            first_run_id: r.first_run_id,
            previous_run_id: r.previous_run_id,
            retry_of: r.retry_of,
            not_before: r.not_before,
            artifact_version: r.artifact_version,
            parent_run_id: r.parent_run_id,
            children: None,
        }
    }
}

/// A worker process.
#[derive(Serialize, ToSchema)]
pub struct WorkerResponse {
    pub id: Uuid,
    pub worker_group: String,
    pub hostname: String,
    /// Runs it executes at once, at most.
    pub capacity: i32,
    /// Runs it holds now.
    pub running: i64,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// True when an admin drained it: it claims nothing until resumed.
    pub drained: bool,
    /// False once its heartbeat is older than the lease (it is presumed dead).
    pub alive: bool,
    pub sandbox: SandboxBody,
}

/// What a worker enforces, as it registered.
#[derive(Serialize, ToSchema)]
pub struct SandboxBody {
    /// Runs start in a sandbox of their own (`JOBCENTER_SANDBOX=on`).
    pub enabled: bool,
    /// Protections this worker cannot enforce on its host, in words (empty: none).
    pub unenforced: Vec<String>,
}

impl From<SandboxReport> for SandboxBody {
    fn from(report: SandboxReport) -> Self {
        SandboxBody {
            enabled: report.enabled,
            unenforced: report.unenforced,
        }
    }
}

impl From<jobcenter_sql::workers::WorkerRow> for WorkerResponse {
    fn from(w: jobcenter_sql::workers::WorkerRow) -> Self {
        WorkerResponse {
            id: w.id,
            worker_group: w.worker_group,
            hostname: w.hostname,
            capacity: w.capacity,
            running: w.running,
            started_at: w.started_at,
            last_heartbeat: w.heartbeat_at,
            drained: w.drained,
            alive: w.alive,
            sandbox: w.sandbox.into(),
        }
    }
}

/// Query of a collection: newest first, `limit` items (1..=200, default 50), continuing
/// after the `next` cursor of the previous page.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The `next` of the previous page.
    #[param(pattern = r"^[0-9]{1,16}_[0-9a-f-]{36}$")]
    pub cursor: Option<String>,
}
