//! The worker's heartbeat: its row in `workers` is renewed while it lives.

use crate::WorkerContext;
use std::time::Duration;

pub async fn beat_forever(ctx: WorkerContext, every: Duration) {
    let mut interval = tokio::time::interval(every);
    loop {
        interval.tick().await;
        let beat = async {
            let client = ctx.pool.get().await?;
            jobcenter_sql::workers::heartbeat(&client, ctx.id).await
        };
        match beat.await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(worker_id = %ctx.id, "worker row is gone; heartbeat had nothing to renew")
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; retrying"),
        }
    }
}
