//! The claim loop: take as many queued runs as there are free slots, start each in its
//! own task, and sleep until a notification, a finished run or the poll interval.

use crate::{execute, heartbeat, wakeup, Error, WorkerContext};
use jobcenter_core::config::Config;
use jobcenter_sql::Pool;
use std::sync::Arc;
use tokio::sync::{Notify, Semaphore};

/// Runs the worker forever.
pub async fn run(config: &Config, pool: Pool) -> Result<(), Error> {
    let ctx = WorkerContext::new(config, pool);
    std::fs::create_dir_all(&ctx.workdir).map_err(|source| Error::Io {
        context: format!(
            "cannot create JOBCENTER_WORKER_WORKDIR {}",
            ctx.workdir.display()
        ),
        source,
    })?;
    let hostname = hostname();
    {
        let client = ctx.pool.get().await?;
        jobcenter_sql::workers::register(
            &client,
            ctx.id,
            &ctx.group,
            &hostname,
            ctx.capacity as i32,
        )
        .await?;
    }
    tracing::info!(worker_id = %ctx.id, group = %ctx.group, capacity = ctx.capacity, "worker started");
    let wake = Arc::new(Notify::new());
    tokio::spawn(wakeup::listen_forever(
        config.database_url.expose().to_string(),
        ctx.group.clone(),
        wake.clone(),
    ));
    tokio::spawn(heartbeat::beat_forever(
        ctx.clone(),
        config.worker_heartbeat,
    ));
    let slots = Arc::new(Semaphore::new(ctx.capacity));
    loop {
        let free = slots.available_permits();
        if free == 0 {
            // Every slot is busy: wait until one frees up.
            drop(
                slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed"),
            );
            continue;
        }
        let runs = claim(&ctx, free).await;
        let more_may_wait = runs.len() == free;
        for run in runs {
            let permit = slots
                .clone()
                .try_acquire_owned()
                .expect("claimed no more runs than free slots");
            let (ctx, wake) = (ctx.clone(), wake.clone());
            tokio::spawn(async move {
                execute::execute(&ctx, run).await;
                drop(permit);
                wake.notify_one();
            });
        }
        if !more_may_wait {
            let _ = tokio::time::timeout(config.worker_poll, wake.notified()).await;
        }
    }
}

async fn claim(ctx: &WorkerContext, free: usize) -> Vec<jobcenter_sql::runs::ClaimedRun> {
    let result = async {
        let client = ctx.pool.get().await?;
        jobcenter_sql::runs::claim(&client, ctx.id, &ctx.group, free as i64).await
    }
    .await;
    result.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "claiming runs failed; retrying");
        Vec::new()
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
