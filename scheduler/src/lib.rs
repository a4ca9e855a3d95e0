//! The scheduler: decides *when*. Any number run; one leads (see [`leadership`]).
//! The leader fires due schedule ticks ([`firing`]) and applies retention ([`retention`]).
//!
//! Architecture invariant: the scheduler never executes anything and never talks to
//! the API or workers; it only writes rows (runs) that workers claim.

pub mod firing;
pub mod leadership;
pub mod retention;

use jobcenter_core::config::Config;
use jobcenter_sql::Pool;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] jobcenter_sql::Error),
}

impl From<jobcenter_sql::PoolError> for Error {
    fn from(e: jobcenter_sql::PoolError) -> Self {
        Error::Db(e.into())
    }
}

impl From<jobcenter_sql::DbError> for Error {
    fn from(e: jobcenter_sql::DbError) -> Self {
        Error::Db(e.into())
    }
}

/// How often the leader runs retention.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Runs forever: waits for leadership, then leads until it is lost, and again.
pub async fn run(config: &Config, pool: Pool) {
    let url = config.database_url.expose().to_string();
    loop {
        let lease = leadership::acquire(&url).await;
        tracing::info!("became the scheduling leader");
        lead(config, &pool, lease).await;
        tracing::warn!("lost scheduling leadership; standing by");
    }
}

/// One term of leadership: fire due ticks every scheduler tick while the lock holds.
async fn lead(config: &Config, pool: &Pool, lease: leadership::Lease) {
    let mut last_retention: Option<Instant> = None;
    let mut interval = tokio::time::interval(config.scheduler_tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if !lease.still_held().await {
            return;
        }
        let misfire = chrono::Duration::from_std(config.misfire_threshold)
            .unwrap_or(chrono::Duration::days(1));
        if let Err(e) = firing::fire_due(pool, misfire).await {
            tracing::warn!(error = %e, "firing due schedules failed; retrying next tick");
        }
        if last_retention.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
            last_retention = Some(Instant::now());
            if let Err(e) = retention::purge(pool, config.deleted_job_retention).await {
                tracing::warn!(error = %e, "retention failed; retrying later");
            }
        }
    }
}
