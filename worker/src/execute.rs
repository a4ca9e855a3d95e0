//! Executes one claimed run from start to recorded outcome.
//!
//! Steps: prepare the working directory (input, previous state), spawn the process, ship
//! its output, wait with the timeout, kill its process group, read result and state, and
//! record the outcome and the new state in one transaction.

use crate::command::{self, RunFiles};
use crate::{log_shipper, Error, WorkerContext};
use jobcenter_core::target::Target;
use jobcenter_sql::runs::{ClaimedRun, Outcome};
use jobcenter_sql::states::RunState;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tracing::Instrument;

/// What happened to the process.
struct Finished {
    state: RunState,
    exit_code: Option<i32>,
    error: Option<String>,
}

pub async fn execute(ctx: &WorkerContext, run: ClaimedRun) {
    let span =
        tracing::info_span!("run", run_id = %run.id, job_id = %run.job_id, attempt = run.attempt);
    async {
        if let Err(e) = execute_inner(ctx, &run).await {
            tracing::error!(error = %e, "run could not be executed");
            let error = format!("worker error: {e}");
            let outcome = Outcome {
                state: RunState::Failed,
                exit_code: None,
                result: None,
                error: Some(&error),
            };
            if let Err(e) = record(ctx, &run, &outcome, None).await {
                tracing::error!(error = %e, "could not record the failure either");
            }
        }
    }
    .instrument(span)
    .await
}

async fn execute_inner(ctx: &WorkerContext, run: &ClaimedRun) -> Result<(), Error> {
    let io = |context: &str| {
        let context = context.to_string();
        move |source| Error::Io { context, source }
    };
    let dir = tempfile::Builder::new()
        .prefix(&format!("run-{}-", run.id))
        .tempdir_in(&ctx.workdir)
        .map_err(io("cannot create the run directory"))?;
    let files = RunFiles::in_dir(dir.path());
    let input = serde_json::to_vec(&run.input).expect("JSON values serialize");
    tokio::fs::write(&files.input, &input)
        .await
        .map_err(io("cannot write the input file"))?;
    let previous_state = {
        let client = ctx.pool.get().await?;
        jobcenter_sql::job_state::get(&client, run.job_id).await?
    };
    tokio::fs::write(&files.state, previous_state.unwrap_or_default())
        .await
        .map_err(io("cannot write the state file"))?;

    let Target::Command { command: argv } = &run.target;
    let finished = match command::spawn(argv, run, &files) {
        Ok(child) => supervise(ctx, run, child, input).await,
        Err(e) => Finished {
            state: RunState::Failed,
            exit_code: None,
            error: Some(format!("cannot start {:?}: {e}", argv[0])),
        },
    };
    let result = read_capped(&files.result, ctx.limits.result_bytes).await;
    let new_state = if finished.state == RunState::Succeeded {
        read_state(&files.state, ctx.limits.state_bytes).await?
    } else {
        None
    };
    let result_text = result.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let outcome = Outcome {
        state: finished.state,
        exit_code: finished.exit_code,
        result: result_text.as_deref().filter(|r| !r.is_empty()),
        error: finished.error.as_deref(),
    };
    record(ctx, run, &outcome, new_state.as_deref()).await
}

/// Feeds stdin, ships output, enforces the timeout; returns once every process of the
/// run's group is gone and its output is shipped.
async fn supervise(
    ctx: &WorkerContext,
    run: &ClaimedRun,
    mut child: tokio::process::Child,
    input: Vec<u8>,
) -> Finished {
    let pid = child.id().expect("a just-spawned child has a pid");
    tracing::info!(pid, "run started");
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            // A process that does not read its input closes the pipe: not an error.
            let _ = stdin.write_all(&input).await;
        });
    }
    let (log_tx, shipper) = log_shipper::spawn(ctx.pool.clone(), run.id, ctx.limits.log_bytes);
    let stdout = child
        .stdout
        .take()
        .map(|out| tokio::spawn(log_shipper::forward(out, "stdout", log_tx.clone())));
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(log_shipper::forward(err, "stderr", log_tx.clone())));
    drop(log_tx);

    let timeout = Duration::from_secs(run.timeout_seconds.max(1) as u64);
    let finished = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => from_exit_status(status),
        Ok(Err(e)) => Finished {
            state: RunState::Failed,
            exit_code: None,
            error: Some(format!("waiting for the process failed: {e}")),
        },
        Err(_) => {
            terminate(&mut child, pid, ctx.limits.kill_grace).await;
            Finished {
                state: RunState::TimedOut,
                exit_code: None,
                error: Some(format!("timed out after {} s", run.timeout_seconds)),
            }
        }
    };
    // Whatever the run left behind in its group goes too (and releases the pipes).
    command::signal_group(pid, libc::SIGKILL);
    for reader in [stdout, stderr].into_iter().flatten() {
        let _ = reader.await;
    }
    let _ = shipper.await;
    finished
}

/// SIGTERM to the group, then SIGKILL after the grace period.
async fn terminate(child: &mut tokio::process::Child, pid: u32, grace: Duration) {
    command::signal_group(pid, libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        command::signal_group(pid, libc::SIGKILL);
        let _ = child.wait().await;
    }
}

fn from_exit_status(status: ExitStatus) -> Finished {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Finished {
            state: RunState::Succeeded,
            exit_code: Some(0),
            error: None,
        },
        (Some(code), _) => Finished {
            state: RunState::Failed,
            exit_code: Some(code),
            error: Some(format!("exited with code {code}")),
        },
        (None, signal) => Finished {
            state: RunState::Failed,
            exit_code: None,
            error: Some(format!("killed by signal {}", signal.unwrap_or(0))),
        },
    }
}

/// At most `cap` bytes of a file the run may have written; None if it does not exist.
async fn read_capped(path: &Path, cap: usize) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await.ok()?;
    let mut bytes = Vec::new();
    file.take(cap as u64).read_to_end(&mut bytes).await.ok()?;
    Some(bytes)
}

/// The state a successful run leaves; a state file over the cap is refused, not cut.
async fn read_state(path: &Path, cap: usize) -> Result<Option<Vec<u8>>, Error> {
    match tokio::fs::metadata(path).await {
        Ok(meta) if meta.len() as usize > cap => {
            tracing::warn!(
                size = meta.len(),
                cap,
                "state file over the cap; previous state kept"
            );
            Ok(None)
        }
        Ok(_) => Ok(read_capped(path, cap).await),
        Err(_) => Ok(None),
    }
}

/// Records the outcome (and the new job state) in one transaction; a run this worker
/// no longer holds is left alone.
async fn record(
    ctx: &WorkerContext,
    run: &ClaimedRun,
    outcome: &Outcome<'_>,
    new_state: Option<&[u8]>,
) -> Result<(), Error> {
    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    let held = jobcenter_sql::runs::finish(&tx, run.id, ctx.id, outcome).await?;
    if !held {
        tracing::warn!("run is no longer held by this worker; outcome not recorded");
        return Ok(());
    }
    if let Some(state) = new_state {
        jobcenter_sql::job_state::put(&tx, run.job_id, run.id, state).await?;
    }
    tx.commit().await?;
    tracing::info!(state = %outcome.state, exit_code = ?outcome.exit_code, "run finished");
    Ok(())
}
