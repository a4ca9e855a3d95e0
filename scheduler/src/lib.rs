//! The scheduler: decides *when*. Any number run; one leads (see [`leadership`]).
//! The leader fires due schedule ticks ([`firing`]) and, each in a task of its own
//! beside firing (`term.rs`), rescues the runs of dead workers and queues their next
//! attempt ([`rescue`]), acts on final run outcomes (child jobs, pause on failures:
//! [`outcomes`]; notifications: [`notify_enqueue`], sent by [`notify_dispatch`]),
//! sweeps orphan artifact objects ([`orphans`]) and applies retention ([`retention`]).
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
mod term;

use jobcenter_core::config::Config;
use jobcenter_sql::Pool;
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
            _ = term::lead(config, &pool, &lease, &metrics) => {
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
