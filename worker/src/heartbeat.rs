//! The worker's heartbeat: renews its row in `workers` and the lease of every run it
//! executes. It also delivers what the database knows and the worker may have missed: a
//! cancel whose NOTIFY was lost, and runs the leader rescued after our lease expired
//! (those are killed, and their outcome is not recorded: the new attempt owns the run).

use crate::control::Stop;
use crate::WorkerContext;
use std::collections::HashMap;
use std::time::Duration;

pub async fn beat_forever(ctx: WorkerContext, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(e) = beat(&ctx).await {
            tracing::warn!(error = %e, "heartbeat failed; runs keep going, retrying");
        }
    }
}

async fn beat(ctx: &WorkerContext) -> Result<(), jobcenter_sql::Error> {
    // Snapshot before asking: each of these was claimed (committed) before the query.
    let local = ctx.registry.held();
    let client = ctx.pool.get().await?;
    if !jobcenter_sql::workers::heartbeat(&client, ctx.id).await? {
        tracing::warn!(worker_id = %ctx.id, "worker row was gone; registering again");
        ctx.register(&client).await?;
    }
    let lease_ms = ctx.lease.as_millis() as i64;
    let ids: Vec<_> = local.iter().map(|(run_id, _)| *run_id).collect();
    let held = jobcenter_sql::runs::renew_leases(&client, ctx.id, &ids, lease_ms).await?;
    let held: HashMap<_, _> = held.into_iter().map(|h| (h.id, h)).collect();
    for (run_id, lease_id) in local {
        match held.get(&run_id) {
            Some(h) if h.lease_id == lease_id => {
                if h.cancel_requested {
                    ctx.registry.stop(run_id, Stop::Cancel);
                }
            }
            _ => {
                tracing::warn!(%run_id, "lease lost (the run was rescued); stopping it");
                ctx.registry.stop(run_id, Stop::LeaseLost);
            }
        }
    }
    Ok(())
}
