//! The contract between a worker and the process it runs: the variables it sets and
//! the caps on what a run can hand back. Documented for users in the README.

/// Variables every command/binary run sees (besides the project's config and job's env).
pub const ENV_RUN_ID: &str = "JOBCENTER_RUN_ID";
pub const ENV_JOB_ID: &str = "JOBCENTER_JOB_ID";
pub const ENV_PROJECT_ID: &str = "JOBCENTER_PROJECT_ID";
pub const ENV_ATTEMPT: &str = "JOBCENTER_ATTEMPT";
pub const ENV_TRIGGER: &str = "JOBCENTER_TRIGGER";
/// RFC 3339 instant the schedule meant the run for; empty for unscheduled runs.
pub const ENV_SCHEDULED_FOR: &str = "JOBCENTER_SCHEDULED_FOR";
/// Path of a file holding the run's input JSON (also piped on stdin).
pub const ENV_INPUT_FILE: &str = "JOBCENTER_INPUT_FILE";
/// Path of a file the run may write its result to.
pub const ENV_RESULT_FILE: &str = "JOBCENTER_RESULT_FILE";
/// Path of a file holding the state the previous successful run left; rewritten to keep.
pub const ENV_STATE_FILE: &str = "JOBCENTER_STATE_FILE";

/// A minimal PATH so that `sh`, `env` and friends resolve in the clean environment.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
