//! One term of leadership: what the leader does while it holds the lock. Firing runs in
//! the term itself; everything else is a task of its own (outcomes, rescue, the orphan
//! sweep, retention, notifications), so that firing never waits behind any of them and
//! none waits behind another. All of them stop when the term ends.
//!
//! The fence: firing, outcomes, rescue, the orphan sweep and retention each ask the lock
//! connection ([`Term::still_held`]) right before each pass and stop at a no; the first
//! to hear it ends the term, and the end of the term aborts every task still running
//! (notifications included), within its current statement or request at most. What a
//! pass committed before that is safe to find again: each module says why (unique
//! indexes, compare-and-set updates, leased deliveries).

use crate::leadership::{Fence, Lease};
use crate::{firing, notify_dispatch, orphans, outcomes, rescue, retention};
use jobcenter_core::config::Config;
use jobcenter_core::metrics::Metrics;
use jobcenter_core::retry::RetryPolicy;
use jobcenter_sql::Pool;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What a task of the term holds: the fence, and the term's end.
#[derive(Clone)]
pub struct Term {
    fence: Fence,
    ended: CancellationToken,
}

impl Term {
    fn new(fence: Fence) -> Term {
        Term {
            fence,
            ended: CancellationToken::new(),
        }
    }

    /// True while the lock connection answers and holds the lock; a no ends the term.
    pub async fn still_held(&self) -> bool {
        if self.ended.is_cancelled() {
            return false;
        }
        let held = self.fence.still_held().await;
        if !held {
            self.ended.cancel();
        }
        held
    }
}

/// Leads until a task finds the lock lost. The tasks are aborted when this returns or
/// is dropped (on shutdown): the term's [`JoinSet`] goes with it.
pub async fn lead(config: &Config, pool: &Pool, lease: &Lease, metrics: &Arc<Metrics>) {
    let term = Term::new(lease.fence());
    let tick = config.scheduler_tick;
    let mut tasks = JoinSet::new();
    tasks.spawn(outcomes::run(term.clone(), pool.clone(), tick));
    tasks.spawn(rescue::run(
        term.clone(),
        pool.clone(),
        RetryPolicy::from_config(config),
        // A new term (after a failover or a database outage) first gives workers one
        // lease period to renew, so a live worker's runs are not taken for lost.
        config.lease,
        tick,
    ));
    tasks.spawn(orphans::run(
        term.clone(),
        pool.clone(),
        config.artifacts.clone(),
        config.s3.clone(),
    ));
    tasks.spawn(retention::run(
        term.clone(),
        pool.clone(),
        retention::Settings::from_config(config),
    ));
    tasks.spawn(notify_dispatch::run(
        pool.clone(),
        config.notify.clone(),
        config.public_url.clone(),
        config.http_allow_private,
    ));
    tokio::select! {
        _ = fire(config, pool, &term, metrics) => {}
        _ = term.ended.cancelled() => {}
    }
}

/// Fires due ticks, each firing right after the lock connection said it still holds.
async fn fire(config: &Config, pool: &Pool, term: &Term, metrics: &Metrics) {
    let schedules = firing::CompiledSchedules::default();
    let misfire = firing::Misfire {
        threshold: chrono::Duration::from_std(config.misfire_threshold)
            .unwrap_or(chrono::Duration::days(1)),
        max_catch_up_ticks: config.max_catch_up_ticks,
        ahead: chrono::Duration::from_std(config.scheduler_fire_ahead)
            .unwrap_or(chrono::Duration::zero()),
    };
    loop {
        sleep_until_due(pool, config.scheduler_tick, config.scheduler_fire_ahead).await;
        if !term.still_held().await {
            return;
        }
        if let Err(e) = firing::fire_due(pool, misfire, metrics, &schedules).await {
            tracing::warn!(error = %e, "firing due schedules failed; retrying next tick");
        }
    }
}

/// Sleeps until `ahead` before the earliest next fire time, but never longer than `tick`
/// (so that new and changed jobs are looked at at least that often).
async fn sleep_until_due(pool: &Pool, tick: Duration, ahead: Duration) {
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
    let floor = Duration::from_millis(10);
    tokio::time::sleep(if wait.is_zero() { floor } else { wait }).await;
}
