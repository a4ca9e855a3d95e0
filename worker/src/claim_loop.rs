//! The claim loop: take as many queued runs as there are free slots, start each in its
//! own task, and sleep until a notification, a finished run or the poll interval. A
//! slot's task goes on with the run claimed with its outcome (see `completions`), and
//! frees the slot when none was.
//!
//! Shutdown (the token is cancelled, e.g. on SIGTERM): stop claiming, let running runs
//! finish within the shutdown grace, then kill the rest and hand them back to the
//! queue, and remove the worker's row.

use crate::control::Stop;
use crate::{execute, heartbeat, wakeup, Error, WorkerContext};
use futures_util::future::BoxFuture;
use jobcenter_core::config::Config;
use jobcenter_sql::Pool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// Runs the worker until `shutdown` is cancelled, then shuts down gracefully.
///
/// Boxed, so that its state machine is compiled in this crate and not again in the
/// binary that awaits it (ARCHITECTURE.md, "Entry points").
pub fn run(
    config: &Config,
    pool: Pool,
    shutdown: CancellationToken,
    metrics: Arc<jobcenter_core::metrics::Metrics>,
) -> BoxFuture<'_, Result<(), Error>> {
    Box::pin(run_until_shutdown(config, pool, shutdown, metrics))
}

async fn run_until_shutdown(
    config: &Config,
    pool: Pool,
    shutdown: CancellationToken,
    metrics: Arc<jobcenter_core::metrics::Metrics>,
) -> Result<(), Error> {
    let store = jobcenter_core::artifacts::ArtifactStore::open(&config.artifacts, &config.s3)
        .await
        .map_err(|e| Error::Io {
            context: "JOBCENTER_ARTIFACTS".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let cache = crate::artifact_cache::ArtifactCache::open(
        config.worker_workdir.join("artifact-cache"),
        config.worker_cache_max_bytes,
        crate::bundle::BundleLimits {
            max_entries: config.bundle_max_entries,
            max_bytes: config.bundle_max_bytes,
            max_link_bytes: config.bundle_max_link_bytes,
        },
        std::sync::Arc::new(store),
    )
    .map_err(|e| Error::Io {
        context: "the artifact cache in JOBCENTER_WORKER_WORKDIR".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    if !config.sandbox {
        // Runs may share the worker's uid and reach the cache: trust no fingerprint.
        cache.reverify_every_use();
    }
    let ctx = WorkerContext::new(config, pool, cache, metrics)?;
    let workdir_error = |source| Error::Io {
        context: format!(
            "cannot create JOBCENTER_WORKER_WORKDIR {}",
            ctx.workdir.display()
        ),
        source,
    };
    std::fs::create_dir_all(&ctx.workdir).map_err(workdir_error)?;
    if ctx.sandbox.run_as.is_some() {
        // The run user must traverse it to reach its own run directory, not list it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ctx.workdir, std::fs::Permissions::from_mode(0o711))
            .map_err(workdir_error)?;
    }
    register(&ctx).await?;
    tracing::info!(worker_id = %ctx.id, group = %ctx.group, capacity = ctx.capacity, "worker started");
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(wakeup::listen_forever(
        config.database_url.expose().to_string(),
        ctx.group.clone(),
        wake.clone(),
        ctx.registry.clone(),
    ));
    tokio::spawn(drop_deleted_artifacts(ctx.clone()));
    let heart = tokio::spawn(heartbeat::beat_forever(
        ctx.clone(),
        config.worker_heartbeat,
    ));
    let slots = Arc::new(Semaphore::new(ctx.capacity));
    tokio::select! {
        _ = claim_forever(&ctx, &slots, &wake, config.worker_poll) => {}
        _ = shutdown.cancelled() => {}
    }
    ctx.claiming
        .store(false, std::sync::atomic::Ordering::SeqCst);
    drain_for_shutdown(&ctx, &slots, config.shutdown_grace).await;
    listener.abort();
    heart.abort();
    if let Ok(client) = ctx.pool.get().await {
        if let Err(e) = jobcenter_sql::workers::deregister(&client, ctx.id).await {
            tracing::warn!(error = %e, "could not remove the worker row");
        }
    }
    tracing::info!(worker_id = %ctx.id, "worker stopped");
    Ok(())
}

/// Registers the worker, retrying while the database is unreachable at start.
async fn register(ctx: &WorkerContext) -> Result<(), Error> {
    let mut delay = Duration::from_millis(250);
    loop {
        let result = async { ctx.register(&ctx.pool.get().await?).await }.await;
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "cannot register the worker yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn claim_forever(
    ctx: &WorkerContext,
    slots: &Arc<Semaphore>,
    wake: &Arc<Notify>,
    poll: Duration,
) {
    loop {
        let free = slots.available_permits();
        if free == 0 {
            // Every slot is busy: wait until one frees up. Runs finished in one group
            // commit free their slots together: let them all go before claiming again,
            // so that one claim takes as many runs as there are free slots.
            drop(
                slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed"),
            );
            tokio::task::yield_now().await;
            continue;
        }
        let runs = claim(ctx, free).await;
        let more_may_wait = runs.len() == free;
        for run in runs {
            let permit = slots
                .clone()
                .try_acquire_owned()
                .expect("claimed no more runs than free slots");
            let (ctx, wake) = (ctx.clone(), wake.clone());
            tokio::spawn(async move {
                let mut next = Some(run);
                while let Some(run) = next {
                    next = execute_in_slot(&ctx, run).await;
                }
                drop(permit);
                wake.notify_one();
            });
        }
        if !more_may_wait {
            let _ = tokio::time::timeout(poll, wake.notified()).await;
        }
    }
}

/// Executes a claimed run; returns the run claimed for the slot with its outcome.
async fn execute_in_slot(
    ctx: &WorkerContext,
    run: jobcenter_sql::runs::ClaimedRun,
) -> Option<jobcenter_sql::runs::ClaimedRun> {
    // Registered before the check, so that a shutdown after it reaches the run.
    let stop = ctx.registry.register(run.id, run.lease_id);
    if !ctx.claiming.load(std::sync::atomic::Ordering::SeqCst) {
        // Claimed as the worker began to shut down: back to the queue unstarted.
        ctx.registry.remove(run.id);
        crate::completions::hand_back(&ctx.pool, &run).await;
        return None;
    }
    ctx.metrics
        .claim_latency
        .observe(run.waited_seconds.max(0.0));
    ctx.metrics
        .runs_started
        .with_label_values(&[run.target.kind()])
        .inc();
    let run_id = run.id;
    let next = execute::execute(ctx, run, stop).await;
    ctx.registry.remove(run_id);
    next
}

/// Waits up to `grace` for running runs, then hands the rest back and waits for them.
async fn drain_for_shutdown(ctx: &WorkerContext, slots: &Arc<Semaphore>, grace: Duration) {
    let all = ctx.capacity as u32;
    let running = ctx.registry.len();
    tracing::info!(
        running,
        grace_s = grace.as_secs(),
        "shutting down: no more claims; letting runs finish"
    );
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_ok()
    {
        return;
    }
    tracing::warn!(
        running = ctx.registry.len(),
        "shutdown grace over; handing unfinished runs back to the queue"
    );
    ctx.registry.stop_all(Stop::HandBack);
    let bound = ctx.limits.kill_grace + Duration::from_secs(10);
    if tokio::time::timeout(bound, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::error!(
            "runs did not stop in time; their leases will expire and the leader rescue them"
        );
    }
}

async fn claim(ctx: &WorkerContext, free: usize) -> Vec<jobcenter_sql::runs::ClaimedRun> {
    let lease_ms = ctx.lease.as_millis() as i64;
    // A race for a queue/skip job's single slot (unique violation) is lost to another
    // worker: claim again at once, the other runs are still there.
    for _ in 0..3 {
        let result = async {
            let client = ctx.pool.get().await?;
            jobcenter_sql::runs::claim(&client, ctx.id, &ctx.group, free as i64, lease_ms).await
        }
        .await;
        match result {
            Ok(runs) => return runs,
            Err(e) if e.sqlstate() == Some("23505") => continue,
            Err(e) => {
                tracing::warn!(error = %e, "claiming runs failed; retrying");
                return Vec::new();
            }
        }
    }
    Vec::new()
}

/// Every minute, drops cached copies of artifact versions that were deleted.
async fn drop_deleted_artifacts(ctx: WorkerContext) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(60);
    loop {
        tokio::time::sleep(EVERY).await;
        let live = async {
            let client = ctx.pool.get().await?;
            jobcenter_sql::artifacts::live_sha256s(&client, 100_000).await
        }
        .await;
        match live {
            Ok(live) => ctx.artifacts.retain_only(&live.into_iter().collect()),
            Err(e) => tracing::warn!(error = %e, "cannot list live artifacts; cache kept as is"),
        }
    }
}
