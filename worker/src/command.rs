//! Starting a run's process: a fresh working directory, a clean environment, its own
//! process group (so that a timeout or cancel kills everything it started).

use crate::sandbox::Sandbox;
use jobcenter_core::run_contract as contract;
use jobcenter_sql::runs::ClaimedRun;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};

/// The files a run exchanges with the worker, inside its working directory.
pub struct RunFiles {
    pub dir: PathBuf,
    pub input: PathBuf,
    pub result: PathBuf,
    pub state: PathBuf,
}

impl RunFiles {
    pub fn in_dir(dir: &Path) -> Self {
        RunFiles {
            dir: dir.to_path_buf(),
            input: dir.join(".jobcenter-input.json"),
            result: dir.join(".jobcenter-result"),
            state: dir.join(".jobcenter-state"),
        }
    }
}

/// Spawns `argv` for `run` with the contract's environment and nothing of the worker's.
pub fn spawn(
    argv: &[String],
    run: &ClaimedRun,
    files: &RunFiles,
    sandbox: Sandbox,
) -> std::io::Result<Child> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(&files.dir)
        .env_clear()
        .env("PATH", contract::DEFAULT_PATH)
        .env("HOME", &files.dir)
        .env("TMPDIR", &files.dir)
        .envs(&run.project_config)
        .envs(&run.env)
        .env(contract::ENV_RUN_ID, run.id.to_string())
        .env(contract::ENV_JOB_ID, run.job_id.to_string())
        .env(contract::ENV_PROJECT_ID, run.project_id.to_string())
        .env(contract::ENV_ATTEMPT, run.attempt.to_string())
        .env(contract::ENV_TRIGGER, run.trigger.as_str())
        .env(
            contract::ENV_SCHEDULED_FOR,
            run.scheduled_for
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
        )
        .env(contract::ENV_INPUT_FILE, &files.input)
        .env(contract::ENV_RESULT_FILE, &files.result)
        .env(contract::ENV_STATE_FILE, &files.state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (see Sandbox::apply_in_child).
    unsafe {
        command.pre_exec(move || sandbox.apply_in_child());
    }
    command.spawn()
}

/// Sends `signal` to the whole process group led by `pid`.
pub fn signal_group(pid: u32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory.
    unsafe {
        libc::kill(-(pid as i32), signal);
    }
}
