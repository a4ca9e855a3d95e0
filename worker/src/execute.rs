//! Executes one claimed run from start to recorded outcome.
//!
//! Steps: prepare the working directory (input, previous state), spawn the process, ship
//! its output, wait with the timeout, kill its process group, read result and state, and
//! record the outcome and the new state in one transaction.

use crate::command::{self, RunFiles};
use crate::completions::Completion;
use crate::control::Stop;
use crate::isolation::mounts;
use crate::{http_target, log_shipper, Error, WorkerContext};
use jobcenter_core::target::{HttpRequest, Target};
use jobcenter_sql::runs::{ClaimedRun, Outcome};
use jobcenter_sql::states::RunState;
use std::process::ExitStatus;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tracing::Instrument;

/// What happened to the process.
struct Finished {
    state: RunState,
    exit_code: Option<i32>,
    error: Option<String>,
}

/// How supervision ended.
enum Ending {
    /// The run has an outcome to record.
    Finished(Finished),
    /// Killed for a shutdown: the run goes back to the queue.
    HandBack,
    /// Killed because the run was rescued elsewhere: nothing is recorded.
    Abandon,
}

/// How long a finished run's outcome is retried while the database is unreachable.
const RECORD_PATIENCE: Duration = Duration::from_secs(3600);

/// Executes `run`; returns the run claimed for its slot when its outcome was recorded.
pub async fn execute(
    ctx: &WorkerContext,
    run: ClaimedRun,
    stop: watch::Receiver<Option<Stop>>,
) -> Option<ClaimedRun> {
    let span =
        tracing::info_span!("run", run_id = %run.id, job_id = %run.job_id, attempt = run.attempt);
    async {
        match execute_inner(ctx, &run, stop).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "run could not be executed");
                let error = format!("worker error: {e}");
                let outcome = Outcome {
                    state: RunState::Failed,
                    exit_code: None,
                    result: None,
                    error: Some(&error),
                };
                record_patiently(ctx, &run, &outcome, None, None).await
            }
        }
    }
    .instrument(span)
    .await
}

async fn execute_inner(
    ctx: &WorkerContext,
    run: &ClaimedRun,
    stop: watch::Receiver<Option<Stop>>,
) -> Result<Option<ClaimedRun>, Error> {
    match &run.target {
        Target::Command { command } => execute_command(ctx, run, command, None, stop).await,
        Target::Http(request) => execute_http(ctx, run, request, stop).await,
        Target::Binary(binary) => {
            // The lease keeps the cached artifact from eviction until the run ends.
            let (argv, lease, kind) = prepare_binary(ctx, run, binary).await?;
            let artifact = Some(ArtifactView {
                path: &lease.path,
                kind,
            });
            execute_command(ctx, run, &argv, artifact, stop).await
        }
    }
}

/// A run's artifact on the host: a cached file or an unpacked bundle.
struct ArtifactView<'a> {
    path: &'a std::path::Path,
    kind: ArtifactKind,
}

#[derive(Clone, Copy)]
enum ArtifactKind {
    Binary,
    Bundle,
}

/// Resolves the artifact version (`None`: the latest now), records it on the run, and
/// returns the command line: the cached file, or the entrypoint of the unpacked bundle,
/// as the run sees them (inside its sandbox: read-only under `/var/task`).
async fn prepare_binary(
    ctx: &WorkerContext,
    run: &ClaimedRun,
    binary: &jobcenter_core::target::BinaryTarget,
) -> Result<(Vec<String>, crate::artifact_cache::Lease, ArtifactKind), Error> {
    let sandboxed = ctx.isolation.is_some();
    let artifact = {
        let client = ctx.pool.get().await?;
        jobcenter_sql::artifacts::get(&client, run.project_id, &binary.artifact, binary.version)
            .await?
    };
    let artifact = artifact.ok_or_else(|| {
        let version = binary
            .version
            .map_or("latest".to_string(), |v| format!("version {v}"));
        Error::Artifact(format!("{} ({version}) does not exist", binary.artifact))
    })?;
    {
        let client = ctx.pool.get().await?;
        jobcenter_sql::runs::record_artifact_version(
            &client,
            run.id,
            run.lease_id,
            artifact.version,
        )
        .await?;
    }
    let fetch_error = |e: crate::artifact_cache::CacheError| Error::Artifact(e.to_string());
    let (lease, program, kind) = match &binary.entrypoint {
        None => {
            let lease = ctx
                .artifacts
                .binary(&artifact.sha256, &artifact.storage_key)
                .await
                .map_err(fetch_error)?;
            let program = if sandboxed {
                std::path::PathBuf::from(mounts::BINARY)
            } else {
                lease.path.clone()
            };
            (lease, program, ArtifactKind::Binary)
        }
        Some(entrypoint) => {
            let lease = ctx
                .artifacts
                .bundle(&artifact.sha256, &artifact.storage_key)
                .await
                .map_err(fetch_error)?;
            let mut program = crate::bundle::entrypoint(&lease.path, entrypoint)
                .map_err(|e| Error::Artifact(e.to_string()))?;
            if sandboxed {
                let inside = program.strip_prefix(&lease.path).unwrap_or(&program);
                program = std::path::Path::new(mounts::TASK).join(inside);
            }
            (lease, program, ArtifactKind::Bundle)
        }
    };
    let mut argv = vec![program.to_string_lossy().into_owned()];
    argv.extend(binary.args.iter().cloned());
    Ok((argv, lease, kind))
}

/// An HTTP target: one call within the run's timeout, interruptible by a stop.
async fn execute_http(
    ctx: &WorkerContext,
    run: &ClaimedRun,
    request: &HttpRequest,
    mut stop: watch::Receiver<Option<Stop>>,
) -> Result<Option<ClaimedRun>, Error> {
    let timeout = Duration::from_secs(run.timeout_seconds.max(1) as u64);
    let started = std::time::Instant::now();
    let call = tokio::time::timeout(timeout, http_target::call(request, &ctx.http));
    let (state, result, error) = tokio::select! {
        answer = call => match answer {
            Ok(Ok(reply)) => {
                tracing::info!(status = reply.status, url = %reply.url, "HTTP target answered");
                let body = String::from_utf8_lossy(&reply.body_start).into_owned();
                let result = serde_json::json!({"status": reply.status, "body": body}).to_string();
                let ok = (200..300).contains(&reply.status);
                let error = (!ok).then(|| format!("HTTP status {}", reply.status));
                let state = if ok { RunState::Succeeded } else { RunState::Failed };
                (state, Some(result), error)
            }
            Ok(Err(e)) => (RunState::Failed, None, Some(e.to_string())),
            Err(_) => (RunState::TimedOut, None, Some(format!("timed out after {} s", run.timeout_seconds))),
        },
        why = stopped(&mut stop) => match why {
            Stop::Cancel => (RunState::Cancelled, None, Some("cancelled while running".to_string())),
            Stop::HandBack => return hand_back(ctx, run).await.map(|()| None),
            Stop::LeaseLost => return Ok(None),
        },
    };
    let line = format!(
        "{} {} -> {} in {} ms\n",
        request.method,
        request.url,
        error.as_deref().unwrap_or("ok"),
        started.elapsed().as_millis()
    );
    let outcome = Outcome {
        state,
        exit_code: None,
        result: result.as_deref(),
        error: error.as_deref(),
    };
    // The line is the run's whole log, written in the outcome's transaction.
    Ok(record_patiently(ctx, run, &outcome, None, Some(line)).await)
}

/// Resolves with the first stop reason; never, if none comes.
async fn stopped(stop: &mut watch::Receiver<Option<Stop>>) -> Stop {
    loop {
        if let Some(why) = *stop.borrow_and_update() {
            return why;
        }
        if stop.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// A command target: a process in its own sandbox (or, with the sandbox off, its own
/// group), working directory and environment.
async fn execute_command(
    ctx: &WorkerContext,
    run: &ClaimedRun,
    argv: &[String],
    artifact: Option<ArtifactView<'_>>,
    stop: watch::Receiver<Option<Stop>>,
) -> Result<Option<ClaimedRun>, Error> {
    let io = |context: &str| {
        let context = context.to_string();
        move |source| Error::Io { context, source }
    };
    let input = serde_json::to_vec(&run.input).expect("JSON values serialize");
    let state = run.previous_state.clone().unwrap_or_default();
    // The run's uid (with its user namespace and cgroup) is held until it is reaped.
    let sandbox = match &ctx.isolation {
        Some(isolation) => Some(
            isolation
                .acquire()
                .map_err(io("cannot make the run's sandbox"))?,
        ),
        None => None,
    };
    let owner = match &sandbox {
        Some(sandbox) => Some((sandbox.host_uid(), sandbox.host_uid())),
        None => ctx.sandbox.run_as,
    };
    // Without a sandbox, a run confined to a user could leave a process behind in its
    // directory; in one, nothing survives the run.
    let reusable = sandbox.is_some() || ctx.sandbox.run_as.is_none();
    let dir = ctx
        .run_dirs
        .prepare(input.clone(), state, owner, reusable)
        .await
        .map_err(io("cannot prepare the run directory"))?;
    let plan = match &sandbox {
        Some(sandbox) => {
            let view = match &artifact {
                None => mounts::Artifact::None,
                Some(a) => match a.kind {
                    ArtifactKind::Binary => mounts::Artifact::Binary(a.path),
                    ArtifactKind::Bundle => mounts::Artifact::Bundle(a.path),
                },
            };
            Some(
                sandbox
                    .plan(dir.path(), view)
                    .map_err(io("cannot plan the run's sandbox"))?,
            )
        }
        None => None,
    };
    let enter = sandbox
        .as_ref()
        .zip(plan.as_ref())
        .map(|(s, p)| s.enter(p, run.network));
    let files = match enter {
        Some(_) => RunFiles::in_dir(std::path::Path::new(mounts::WORK)),
        None => RunFiles::in_dir(dir.path()),
    };
    // Project secrets join the project's config in the environment (the job's env still
    // wins), and are redacted from what the run leaves in logs and result.
    let redactor = log_shipper::Redactor::new(run.secrets.values().cloned());
    let mut with_secrets = run.clone();
    with_secrets
        .project_config
        .extend(run.secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
    let start = crate::process::Start {
        spawn: ctx.spawn,
        sandbox: ctx.sandbox,
        enter,
    };
    let spawned = command::spawn(argv, &with_secrets, &files, start);
    drop(plan);
    let ending = match spawned {
        Ok(child) => {
            let init = sandbox.is_some();
            supervise(ctx, run, child, input, stop, redactor.clone(), init).await
        }
        Err(e) => Ending::Finished(Finished {
            state: RunState::Failed,
            exit_code: None,
            error: Some(format!("cannot start {:?}: {e}", argv[0])),
        }),
    };
    let finished = match ending {
        Ending::Finished(mut finished) => {
            let out_of_memory = sandbox.as_ref().is_some_and(|s| s.ran_out_of_memory());
            if out_of_memory && finished.state == RunState::Failed {
                finished.error = Some("out of memory".into());
            }
            drop(sandbox); // every process of the run is gone: its uid is free
            finished
        }
        Ending::HandBack => return hand_back(ctx, run).await.map(|()| None),
        Ending::Abandon => {
            tracing::warn!("run abandoned: its lease was taken away");
            return Ok(None);
        }
    };
    // Only a successful run's state is kept.
    let state_cap = (finished.state == RunState::Succeeded).then_some(ctx.limits.state_bytes);
    let left = dir
        .collect_and_release(ctx.limits.result_bytes, state_cap)
        .await;
    let result = left.result;
    // A state left as it was is not written again (most runs never touch it).
    let new_state = left
        .state
        .filter(|state| state.as_slice() != run.previous_state.as_deref().unwrap_or_default());
    let result_text = result.map(|bytes| redactor.apply(&String::from_utf8_lossy(&bytes)));
    let outcome = Outcome {
        state: finished.state,
        exit_code: finished.exit_code,
        result: result_text.as_deref().filter(|r| !r.is_empty()),
        error: finished.error.as_deref(),
    };
    Ok(record_patiently(ctx, run, &outcome, new_state.as_deref(), None).await)
}

/// Feeds stdin, ships output, enforces the timeout; returns once every process of the
/// run's group is gone and its output is shipped.
async fn supervise(
    ctx: &WorkerContext,
    run: &ClaimedRun,
    mut child: crate::process::RunProcess,
    input: Vec<u8>,
    mut stop: watch::Receiver<Option<Stop>>,
    redactor: log_shipper::Redactor,
    init: bool,
) -> Ending {
    let pid = child.id();
    tracing::info!(pid, "run started");
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            // A process that does not read its input closes the pipe: not an error.
            let _ = stdin.write_all(&input).await;
        });
    }
    let (log_tx, shipper) =
        log_shipper::spawn(ctx.pool.clone(), run.id, ctx.limits.log_bytes, redactor);
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
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let grace = ctx.limits.kill_grace;
    let ending = tokio::select! {
            status = child.wait() => Ending::Finished(match status {
                Ok(status) => from_exit_status(status),
                Err(e) => Finished {
                    state: RunState::Failed,
                    exit_code: None,
                    error: Some(format!("waiting for the process failed: {e}")),
                },
            }),
            _ = &mut deadline => {
                terminate(&mut child, pid, grace, init).await;
                Ending::Finished(Finished {
                    state: RunState::TimedOut,
                    exit_code: None,
                    error: Some(format!("timed out after {} s", run.timeout_seconds)),
                })
            }
            changed = stop.changed() => {
                let why = if changed.is_ok() { *stop.borrow_and_update() } else { None };
                match why {
                    Some(Stop::Cancel) => {
                        tracing::info!("cancel requested; stopping the run");
                        terminate(&mut child, pid, grace, init).await;
                        Ending::Finished(Finished {
                            state: RunState::Cancelled,
                            exit_code: None,
                            error: Some("cancelled while running".into()),
                        })
                    }
                    Some(Stop::HandBack) => {
                        terminate(&mut child, pid, grace, init).await;
                        Ending::HandBack
                    }
                    Some(Stop::LeaseLost) => {
                        command::signal_group(pid, libc::SIGKILL);
                        let _ = child.wait().await;
                        Ending::Abandon
                    }
                    // The registry never drops a sender before the run ends; if it did,
                    // wait for the process alone.
                    None => {
                        let status = child.wait().await;
                        Ending::Finished(match status {
                            Ok(status) => from_exit_status(status),
                            Err(e) => Finished {
                                state: RunState::Failed,
                                exit_code: None,
                                error: Some(format!("waiting for the process failed: {e}")),
                            },
                        })
                    }
                }
            }
    };
    // Whatever the run left behind in its group goes too (and releases the pipes).
    command::signal_group(pid, libc::SIGKILL);
    for reader in [stdout, stderr].into_iter().flatten() {
        let _ = reader.await;
    }
    let _ = shipper.await;
    ending
}

/// SIGTERM to the group, then SIGKILL after the grace period. A sandbox's first process
/// (its namespace's init, `init`) that does not handle SIGTERM would ignore it: it is
/// killed at once, as SIGTERM would have killed it outside.
async fn terminate(child: &mut crate::process::RunProcess, pid: u32, grace: Duration, init: bool) {
    command::signal_group(pid, libc::SIGTERM);
    if init && !crate::isolation::handles_sigterm(pid) {
        command::signal_group(pid, libc::SIGKILL);
    }
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

/// Records the outcome (and the new job state, and the next attempt when a failed run
/// has attempts left) in one transaction shared with other runs finishing at the same
/// time (a group commit), fenced by the run's lease: a run this worker no longer holds
/// is left alone. The same commit claims a run for the slot this one frees, returned
/// here. Retries while the database is unreachable (a run that finished during an
/// outage gets its outcome written once it is back).
async fn record_patiently(
    ctx: &WorkerContext,
    run: &ClaimedRun,
    outcome: &Outcome<'_>,
    new_state: Option<&[u8]>,
    log_line: Option<String>,
) -> Option<ClaimedRun> {
    let retryable = matches!(outcome.state, RunState::Failed | RunState::TimedOut);
    let retry_after = retryable
        .then(|| ctx.retry_after(run.attempt, run.max_attempts))
        .flatten();
    let completion = Completion {
        run_id: run.id,
        lease_id: run.lease_id,
        job_id: run.job_id,
        state: outcome.state,
        exit_code: outcome.exit_code,
        result: outcome.result.map(str::to_string),
        error: outcome.error.map(str::to_string),
        new_state: new_state.map(<[u8]>::to_vec),
        log_line,
        retry_after,
        claim_next: true,
    };
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        match ctx.completer.record(completion.clone()).await {
            Ok(recorded) => {
                if recorded.held {
                    tracing::info!(state = %outcome.state, exit_code = ?outcome.exit_code, "run finished");
                } else {
                    tracing::warn!("run is no longer held by this worker; outcome not recorded");
                }
                ctx.metrics
                    .runs_finished
                    .with_label_values(&[outcome.state.as_str(), run.target.kind()])
                    .inc();
                return recorded.next;
            }
            Err(e) if e.unavailable && started.elapsed() < RECORD_PATIENCE => {
                tracing::warn!(error = %e.message, "cannot record the outcome yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::error!(error = %e.message, "cannot record the outcome; the lease will expire and the leader rescue the run");
                return None;
            }
        }
    }
}

/// Puts an unfinished run back in the queue (shutdown).
async fn hand_back(ctx: &WorkerContext, run: &ClaimedRun) -> Result<(), Error> {
    let client = ctx.pool.get().await?;
    if jobcenter_sql::runs::hand_back(&client, run.id, run.lease_id).await? {
        tracing::info!("run handed back to the queue");
    }
    Ok(())
}
