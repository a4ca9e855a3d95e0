//! The scheduler: decides *when*. Any number run; one leads (see [`leadership`]).
//! The leader fires due schedule ticks ([`firing`]), rescues the runs of dead workers
//! and queues their next attempt ([`rescue`]), acts on final run outcomes (child jobs,
//! pause on failures: [`outcomes`]; notifications: [`notify_enqueue`], sent by
//! [`notify_dispatch`]) and applies retention ([`retention`], a task beside firing).
//!
//! Architecture invariant: the scheduler never executes anything and never talks to
//! the API or workers; it only writes rows (runs) that workers claim.

pub mod firing;
pub mod leadership;
pub mod notify_dispatch;
pub mod notify_enqueue;
pub mod notify_http;
pub mod notify_message;
pub mod orphans;
pub mod outcomes;
pub mod rescue;
pub mod retention;

use jobcenter_core::config::Config;
use jobcenter_core::retry::RetryPolicy;
use jobcenter_sql::Pool;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] jobcenter_sql::Error),
    #[error(transparent)]
    NotASession(#[from] leadership::NotASession),
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

/// How often the leader sweeps orphan artifact objects, and how old they must be.
const ORPHAN_SWEEP_EVERY: Duration = Duration::from_secs(600);
const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

/// Runs until `shutdown` is cancelled: waits for leadership, then leads until it is
/// lost, and again. On shutdown a leader releases the lock at once, so that a standby
/// takes over without waiting for the connection to time out.
///
/// Boxed, so that its state machine is compiled in this crate and not again in the
/// binary that awaits it (ARCHITECTURE.md, "Entry points").
pub fn run(
    config: &Config,
    pool: Pool,
    shutdown: CancellationToken,
    metrics: std::sync::Arc<jobcenter_core::metrics::Metrics>,
) -> futures_util::future::BoxFuture<'_, Result<(), Error>> {
    Box::pin(lead_until_shutdown(config, pool, shutdown, metrics))
}

async fn lead_until_shutdown(
    config: &Config,
    pool: Pool,
    shutdown: CancellationToken,
    metrics: std::sync::Arc<jobcenter_core::metrics::Metrics>,
) -> Result<(), Error> {
    let url = config
        .leader_database_url
        .as_ref()
        .unwrap_or(&config.database_url)
        .expose()
        .to_string();
    loop {
        let lease = tokio::select! {
            lease = leadership::acquire(&url) => lease?,
            _ = shutdown.cancelled() => return Ok(()),
        };
        tracing::info!("became the scheduling leader");
        tokio::select! {
            _ = lead(config, &pool, &lease, &metrics) => {
                tracing::warn!("lost scheduling leadership; standing by");
            }
            _ = shutdown.cancelled() => {
                lease.release().await;
                tracing::info!("released scheduling leadership");
                return Ok(());
            }
        }
    }
}

/// Sleeps until `ahead` before the earliest next fire time, but never longer than `tick`
/// (so that new and changed jobs, rescue and retention are looked at at least that often).
async fn sleep_until_due(pool: &Pool, tick: std::time::Duration, ahead: std::time::Duration) {
    let earliest = async {
        let client = pool.get().await?;
        jobcenter_sql::jobs::earliest_fire(&client).await
    }
    .await;
    let wait = match earliest {
        Ok(Some(at)) => (at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default()
            .saturating_sub(ahead)
            .min(tick),
        Ok(None) => tick,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the next fire time; polling");
            tick
        }
    };
    // Something still due right after firing (a row another transaction holds): back off
    // a little rather than spin.
    let floor = std::time::Duration::from_millis(10);
    tokio::time::sleep(if wait.is_zero() { floor } else { wait }).await;
}

/// One term of leadership: fire due ticks every scheduler tick while the lock holds.
async fn lead(
    config: &Config,
    pool: &Pool,
    lease: &leadership::Lease,
    metrics: &jobcenter_core::metrics::Metrics,
) {
    let term_started = Instant::now();
    let _notifications = notify_dispatch::spawn(
        pool.clone(),
        config.notify.clone(),
        config.public_url.clone(),
        config.http_allow_private,
    );
    // Deletes in bounded batches at a bounded rate, beside firing, not between ticks.
    let _retention = retention::spawn(pool.clone(), retention::Settings::from_config(config));
    let mut last_sweep: Option<Instant> = None;
    let schedules = firing::CompiledSchedules::default();
    let store = match jobcenter_core::artifacts::ArtifactStore::open(&config.artifacts, &config.s3)
        .await
    {
        Ok(store) => Some(store),
        Err(e) => {
            tracing::warn!(error = %e, "artifact store unavailable: orphans are not swept this term");
            None
        }
    };
    loop {
        sleep_until_due(pool, config.scheduler_tick, config.scheduler_fire_ahead).await;
        if !lease.still_held().await {
            return;
        }
        let misfire = firing::Misfire {
            threshold: chrono::Duration::from_std(config.misfire_threshold)
                .unwrap_or(chrono::Duration::days(1)),
            max_catch_up_ticks: config.max_catch_up_ticks,
            ahead: chrono::Duration::from_std(config.scheduler_fire_ahead)
                .unwrap_or(chrono::Duration::zero()),
        };
        if let Err(e) = firing::fire_due(pool, misfire, metrics, &schedules).await {
            tracing::warn!(error = %e, "firing due schedules failed; retrying next tick");
        }
        if let Err(e) = outcomes::process_pending(pool).await {
            tracing::warn!(error = %e, "acting on run outcomes failed; retrying next tick");
        }
        // A new term (after a failover or a database outage) first gives workers one
        // lease period to renew, so a live worker's runs are not taken for lost.
        if term_started.elapsed() >= config.lease {
            if let Err(e) = rescue::rescue_expired(pool, &RetryPolicy::from_config(config)).await {
                tracing::warn!(error = %e, "rescuing runs of lost workers failed; retrying next tick");
            }
        }
        if last_sweep.is_none_or(|at| at.elapsed() >= ORPHAN_SWEEP_EVERY) {
            last_sweep = Some(Instant::now());
            if let Some(store) = &store {
                if let Err(e) = orphans::sweep(pool, store, ORPHAN_GRACE).await {
                    tracing::warn!(error = %e, "sweeping orphan artifacts failed; retrying later");
                }
            }
        }
    }
}
