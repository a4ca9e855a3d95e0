//! The worker: decides *how*. Claims queued runs of its group up to its capacity,
//! executes them, ships their logs while they run and records their outcome.
//!
//! Architecture invariant: no transaction is open while a run executes; a run's row is
//! only changed by a compare-and-set that the holding worker alone can win.

mod artifact_cache;
mod bundle;
mod claim_loop;
mod command;
mod completions;
mod control;
mod execute;
mod heartbeat;
mod http_target;
mod isolation;
mod log_shipper;
mod process;
mod run_dirs;
mod sandbox;
mod wakeup;

use jobcenter_core::config::Config;
use jobcenter_sql::Pool;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

pub use claim_loop::run;

/// For a worker that is not root: become root of a user namespace of its own, so that
/// runs can be sandboxed (see `isolation::rootless`). Call before any thread starts.
pub fn enter_own_user_namespace() -> std::io::Result<()> {
    isolation::rootless::enter().map(|_| ())
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] jobcenter_sql::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The run's artifact could not be found, fetched, verified or unpacked.
    #[error("artifact: {0}")]
    Artifact(String),
}

impl From<jobcenter_sql::PoolError> for Error {
    fn from(e: jobcenter_sql::PoolError) -> Self {
        Error::Db(e.into())
    }
}

impl From<jobcenter_sql::DbError> for Error {
    fn from(e: jobcenter_sql::DbError) -> Self {
        Error::Db(e.into())
    }
}

/// Most of a response body an HTTP run keeps in its result.
const HTTP_PREVIEW_MAX_BYTES: usize = 4096;

/// What every run executed by this worker shares.
#[derive(Clone)]
pub struct WorkerContext {
    pub id: Uuid,
    pub pool: Pool,
    pub group: String,
    pub hostname: String,
    pub capacity: usize,
    pub workdir: PathBuf,
    /// Run directories, emptied and reused from run to run.
    pub run_dirs: std::sync::Arc<run_dirs::RunDirs>,
    pub limits: Limits,
    /// How long a claim's lease lasts without renewal.
    pub lease: Duration,
    pub registry: control::Registry,
    pub http: http_target::HttpOptions,
    pub sandbox: sandbox::Sandbox,
    /// How a run's process is started (`JOBCENTER_SPAWN`).
    pub spawn: jobcenter_core::config::Spawn,
    /// Each run's own namespaces, mounts, uid and cgroup; None: `JOBCENTER_SANDBOX=off`.
    pub isolation: Option<std::sync::Arc<isolation::Isolation>>,
    /// What this worker enforces, registered with it and shown by `GET /api/v1/workers`.
    pub sandbox_report: jobcenter_core::sandbox::SandboxReport,
    /// Artifacts of binary targets, downloaded once per sha256.
    pub artifacts: std::sync::Arc<artifact_cache::ArtifactCache>,
    /// This process's metrics (runs started and finished, claim latency).
    pub metrics: std::sync::Arc<jobcenter_core::metrics::Metrics>,
    /// Writes run outcomes, grouping those that finish together into one commit, and
    /// claims runs for the slots they free.
    pub completer: completions::Completer,
    /// Whether the worker claims runs (cleared at shutdown).
    pub claiming: std::sync::Arc<std::sync::atomic::AtomicBool>,
    retry_backoff_base: Duration,
    retry_backoff_max: Duration,
}

/// Caps on what a run can hand back.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub result_bytes: usize,
    pub state_bytes: usize,
    pub log_bytes: usize,
    /// Grace between SIGTERM and SIGKILL when a run is timed out, cancelled or handed back.
    pub kill_grace: Duration,
}

impl WorkerContext {
    pub fn new(
        config: &Config,
        pool: Pool,
        artifacts: std::sync::Arc<artifact_cache::ArtifactCache>,
        metrics: std::sync::Arc<jobcenter_core::metrics::Metrics>,
    ) -> Result<Self, Error> {
        let run_as = match &config.run_as_user {
            None => None,
            // Each sandboxed run has a host uid of its own, which supersedes one shared user.
            Some(user) if config.sandbox => {
                tracing::warn!(%user, "JOBCENTER_RUN_AS_USER is not used: each sandboxed run has a uid of its own");
                None
            }
            Some(user) => Some(sandbox::lookup_user(user).map_err(|source| Error::Io {
                context: format!("JOBCENTER_RUN_AS_USER={user}"),
                source,
            })?),
        };
        let isolation =
            if config.sandbox {
                let isolation = isolation::Isolation::start(config, &config.worker_workdir)
                    .map_err(|source| Error::Io {
                        context: "cannot set up the run sandbox".into(),
                        source,
                    })?;
                Some(std::sync::Arc::new(isolation))
            } else {
                tracing::warn!(
                    "JOBCENTER_SANDBOX=off: runs are not isolated from the worker, its host or \
                 each other"
                );
                None
            };
        let sandbox_report = isolation.as_ref().map_or_else(
            || jobcenter_core::sandbox::SandboxReport {
                enabled: false,
                unenforced: vec!["every isolation of runs (JOBCENTER_SANDBOX=off)".into()],
            },
            |isolation| isolation.report.clone(),
        );
        // A cgroup limits a sandboxed run's memory; the address-space rlimit only stands
        // in where there is none.
        let memory_rlimit = match &isolation {
            Some(isolation) if isolation.limits_memory() => 0,
            _ => config.run_memory_max_bytes,
        };
        let id = Uuid::new_v4();
        let claiming = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let next_claims = completions::NextClaims {
            worker_id: id,
            group: config.worker_group.clone(),
            lease: config.lease,
            open: claiming.clone(),
        };
        Ok(WorkerContext {
            id,
            claiming,
            completer: completions::Completer::start(pool.clone(), next_claims),
            pool,
            group: config.worker_group.clone(),
            hostname: hostname(),
            capacity: config.worker_capacity,
            workdir: config.worker_workdir.clone(),
            run_dirs: run_dirs::RunDirs::new(config.worker_workdir.clone()),
            limits: Limits {
                result_bytes: config.result_max_bytes,
                state_bytes: config.state_max_bytes,
                log_bytes: config.log_max_bytes,
                kill_grace: config.kill_grace,
            },
            lease: config.lease,
            registry: control::Registry::default(),
            http: http_target::HttpOptions::new(
                config.http_allow_private,
                config.result_max_bytes.min(HTTP_PREVIEW_MAX_BYTES),
            ),
            retry_backoff_base: config.retry_backoff_base,
            retry_backoff_max: config.retry_backoff_max,
            artifacts,
            metrics,
            sandbox: sandbox::Sandbox {
                memory_bytes: memory_rlimit,
                open_files: config.run_open_files_max,
                processes: config.run_processes_max,
                run_as,
            },
            spawn: config.spawn,
            sandbox_report,
            isolation,
        })
    }

    /// The delay before the attempt after a failed `attempt` of `max_attempts`, with
    /// jitter; None when none is left (the decision the scheduler's rescue shares).
    pub fn retry_after(&self, attempt: i32, max_attempts: i32) -> Option<Duration> {
        jobcenter_core::retry::RetryPolicy {
            base: self.retry_backoff_base,
            max: self.retry_backoff_max,
        }
        .next_attempt_after_jittered(attempt, max_attempts)
    }

    /// Writes (or rewrites) this worker's row in `workers`: at start, and from the
    /// heartbeat when the row was removed meanwhile.
    pub async fn register(
        &self,
        client: &impl jobcenter_sql::GenericClient,
    ) -> Result<(), jobcenter_sql::Error> {
        let capacity = self.capacity as i32;
        jobcenter_sql::workers::register(
            client,
            self.id,
            &self.group,
            &self.hostname,
            capacity,
            &self.sandbox_report,
        )
        .await
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
