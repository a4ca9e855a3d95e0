//! `/metrics`: this process's counters and histograms, plus queue, worker and leader
//! gauges read from the database and the artifact store's reachability, at scrape time.

use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use jobcenter_core::metrics::Metrics;

/// Workers whose heartbeat is younger than this count as alive.
const ALIVE_WITHIN_SECONDS: f64 = 30.0;

/// Prometheus text format.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4"))
)]
#[get("/metrics")]
pub async fn prometheus_metrics(state: web::Data<AppState>) -> HttpResponse {
    let (database, _) = tokio::join!(
        refresh_database_gauges(&state),
        crate::routes::health::probe_store(&state)
    );
    if let Err(e) = database {
        // The process metrics are still worth serving; the gauges keep their last values.
        tracing::warn!(error = %e, "metrics: database gauges unavailable");
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

async fn refresh_database_gauges(state: &AppState) -> Result<(), jobcenter_sql::Error> {
    let client = state.pool.get().await?;
    let queues = jobcenter_sql::stats::queues(&client).await?;
    let workers = jobcenter_sql::stats::workers_alive(&client, ALIVE_WITHIN_SECONDS).await?;
    let leader = jobcenter_sql::stats::leader(&client, jobcenter_sql::LEADER_LOCK_KEY).await?;
    set_gauges(&state.metrics, &queues, &workers, leader.as_deref());
    Ok(())
}

fn set_gauges(
    m: &Metrics,
    queues: &[jobcenter_sql::stats::QueueStats],
    workers: &[(String, i64)],
    leader: Option<&str>,
) {
    m.queue_depth.reset();
    m.queue_oldest_age_seconds.reset();
    for queue in queues {
        m.queue_depth
            .with_label_values(&[&queue.worker_group])
            .set(queue.depth);
        m.queue_oldest_age_seconds
            .with_label_values(&[&queue.worker_group])
            .set(queue.oldest_age_seconds);
    }
    m.workers_alive.reset();
    for (group, count) in workers {
        m.workers_alive.with_label_values(&[group]).set(*count);
    }
    m.leader.reset();
    if let Some(leader) = leader {
        m.leader.with_label_values(&[leader]).set(1);
    }
}
