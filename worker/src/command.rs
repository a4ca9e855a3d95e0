//! Starting a run's process: a fresh working directory, a clean environment, its own
//! process group (so that a timeout or cancel kills everything it started).

use crate::process::{self, RunProcess, Spec, Start};
use jobcenter_core::run_contract as contract;
use jobcenter_sql::runs::ClaimedRun;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};

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

/// Spawns `argv` for `run` with the contract's environment and nothing of the worker's,
/// in its own process group and working directory, started and confined as `start` says.
pub fn spawn(
    argv: &[String],
    run: &ClaimedRun,
    files: &RunFiles,
    start: Start,
) -> std::io::Result<RunProcess> {
    let program = argv
        .first()
        .ok_or_else(|| invalid("empty command".to_string()))?;
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let scheduled_for = run
        .scheduled_for
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    // Later entries win, as with Command::env: the job's env over the project's config.
    let mut env: BTreeMap<&str, String> = BTreeMap::new();
    env.insert("PATH", contract::DEFAULT_PATH.to_string());
    env.insert("HOME", path(&files.dir));
    env.insert("TMPDIR", path(&files.dir));
    for (name, value) in run.project_config.iter().chain(&run.env) {
        env.insert(name, value.clone());
    }
    env.insert(contract::ENV_RUN_ID, run.id.to_string());
    env.insert(contract::ENV_JOB_ID, run.job_id.to_string());
    env.insert(contract::ENV_PROJECT_ID, run.project_id.to_string());
    env.insert(contract::ENV_ATTEMPT, run.attempt.to_string());
    env.insert(contract::ENV_TRIGGER, run.trigger.as_str().to_string());
    env.insert(contract::ENV_SCHEDULED_FOR, scheduled_for);
    env.insert(contract::ENV_INPUT_FILE, path(&files.input));
    env.insert(contract::ENV_RESULT_FILE, path(&files.result));
    env.insert(contract::ENV_STATE_FILE, path(&files.state));

    let mut envp = Vec::with_capacity(env.len());
    for (name, value) in &env {
        if name.is_empty() || name.contains('=') {
            return Err(invalid(format!(
                "invalid environment variable name {name:?}"
            )));
        }
        envp.push(c_string(format!("{name}={value}"))?);
    }
    process::spawn(&Spec {
        candidates: candidates(program, &env["PATH"])?,
        argv: argv
            .iter()
            .map(|a| c_string(a.clone()))
            .collect::<Result<_, _>>()?,
        envp,
        dir: c_string(path(&files.dir))?,
        start,
    })
}

/// Where execvp would look for `program`: itself if it names a path, else each
/// directory of the run's PATH (an empty entry is the working directory).
fn candidates(program: &str, search_path: &str) -> std::io::Result<Vec<CString>> {
    if program.contains('/') {
        return Ok(vec![c_string(program.to_string())?]);
    }
    search_path
        .split(':')
        .map(|dir| {
            let dir = if dir.is_empty() { "." } else { dir };
            c_string(format!("{dir}/{program}"))
        })
        .collect()
}

fn c_string(text: String) -> std::io::Result<CString> {
    CString::new(text).map_err(|e| invalid(format!("contains a NUL byte: {:?}", e.into_vec())))
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}

/// Sends `signal` to the whole process group led by `pid`.
pub fn signal_group(pid: u32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory.
    unsafe {
        libc::kill(-(pid as i32), signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_for_a_bare_program_along_the_path_and_takes_a_path_as_it_is() {
        let found = candidates("true", "/usr/bin::/bin").unwrap();
        let found: Vec<&str> = found.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(found, ["/usr/bin/true", "./true", "/bin/true"]);
        let found = candidates("./bin/run", "/usr/bin").unwrap();
        assert_eq!(found[0].to_str().unwrap(), "./bin/run");
        assert_eq!(found.len(), 1);
        assert!(candidates("a\0b", "/bin").is_err());
    }
}
