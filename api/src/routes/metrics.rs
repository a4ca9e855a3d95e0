//! `/metrics`: this process's counters and histograms, plus queue, worker and leader
//! gauges read from the database and the artifact store's reachability. The database
//! figures are read at most every [`DATABASE_FIGURES_FOR`] whatever the scrape rate
//! (the leader is found through `pg_locks`, not free on a busy server); with
//! `JOBCENTER_METRICS_TOKEN` set, a scrape must bring it as a bearer token.

use crate::error::{ApiError, Problem};
use crate::state::AppState;
use actix_web::{get, web, HttpRequest, HttpResponse};
use jobcenter_core::config::Secret;
use jobcenter_core::metrics::Metrics;
use std::time::{Duration, Instant};

/// How long the database figures of a scrape serve the next scrapes.
const DATABASE_FIGURES_FOR: Duration = Duration::from_secs(5);

/// When this process last read the database figures (one process, one `AppState`).
static LAST_READ: tokio::sync::Mutex<Option<Instant>> = tokio::sync::Mutex::const_new(None);

/// Workers whose heartbeat is younger than this count as alive.
const ALIVE_WITHIN_SECONDS: f64 = 30.0;

/// Prometheus text format.
/// With `JOBCENTER_METRICS_TOKEN` set, `Authorization: Bearer <it>` is required.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, body = String, content_type = "text/plain; version=0.0.4"),
        (status = 401, body = Problem, content_type = "application/problem+json",
         description = "JOBCENTER_METRICS_TOKEN is set and the request does not bring it"),
    )
)]
#[get("/metrics")]
pub async fn prometheus_metrics(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if !token_allows(state.metrics_token.as_ref(), &request) {
        return Err(ApiError::Unauthorized("the metrics token is required"));
    }
    let (database, _) = tokio::join!(
        refresh_database_gauges_at_most_every(&state, DATABASE_FIGURES_FOR),
        crate::routes::health::probe_store(&state)
    );
    if let Err(e) = database {
        // The process metrics are still worth serving; the gauges keep their last values.
        tracing::warn!(error = %e, "metrics: database gauges unavailable");
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render()))
}

/// Whether `request` may read the metrics: no token is configured, or it brings it.
pub fn token_allows(expected: Option<&Secret>, request: &HttpRequest) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|given| same_secret(given, expected.expose()))
}

/// Compares digests, so the time taken says nothing about how much of a guess was right.
fn same_secret(given: &str, expected: &str) -> bool {
    use sha2::Digest;
    sha2::Sha256::digest(given.as_bytes()) == sha2::Sha256::digest(expected.as_bytes())
}

/// Refreshes the database gauges unless they were read less than `every` ago; scrapes
/// arriving together wait for one read.
async fn refresh_database_gauges_at_most_every(
    state: &AppState,
    every: Duration,
) -> Result<(), jobcenter_sql::Error> {
    let mut last = LAST_READ.lock().await;
    if last.is_some_and(|at| at.elapsed() < every) {
        return Ok(());
    }
    refresh_database_gauges(state).await?;
    *last = Some(Instant::now());
    Ok(())
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
