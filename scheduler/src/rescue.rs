//! Rescue of runs whose worker is gone: a running run whose lease expired (no heartbeat
//! renewed it) ends `failed` with the reason "worker lost", and, while attempts are
//! left, its next attempt is queued after the same backoff as a failure its worker
//! reported ([`RetryPolicy`]). Both happen in one transaction, and both
//! are fenced: the old attempt changes only if its lease is still the one read, and an
//! attempt can have only one follower (unique index), so a worker coming back late, or
//! a second leader, cannot double anything.

use crate::Error;
use jobcenter_core::retry::RetryPolicy;
use jobcenter_sql::runs::{self, Outcome};
use jobcenter_sql::states::RunState;
use jobcenter_sql::Pool;

/// Runs rescued per transaction; a bigger backlog is handled on the next ticks.
const BATCH: i64 = 100;

/// The leader's rescue, a task of the term: after `lease` (the time live workers need
/// to renew their leases under a new leader), a call every `tick`.
pub(crate) async fn run(
    term: crate::term::Term,
    pool: Pool,
    retry: RetryPolicy,
    lease: std::time::Duration,
    tick: std::time::Duration,
) {
    tokio::time::sleep(lease).await;
    while term.still_held().await {
        if let Err(e) = rescue_expired(&pool, &retry).await {
            tracing::warn!(error = %e, "rescuing runs of lost workers failed; retrying next tick");
        }
        tokio::time::sleep(tick).await;
    }
}

/// Rescues the runs whose lease expired; returns how many.
pub async fn rescue_expired(pool: &Pool, retry: &RetryPolicy) -> Result<usize, Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let expired = runs::lock_expired(&tx, BATCH).await?;
    let mut rescued = 0;
    for run in &expired {
        let retry_after = (!run.cancel_requested)
            .then(|| retry.next_attempt_after_jittered(run.attempt, run.max_attempts))
            .flatten();
        let requeue = retry_after.is_some();
        let (state, error) = if run.cancel_requested {
            (
                RunState::Cancelled,
                "worker lost while cancelling".to_string(),
            )
        } else if requeue {
            (
                RunState::Failed,
                format!("worker lost; re-queued as attempt {}", run.attempt + 1),
            )
        } else {
            (RunState::Failed, "worker lost".to_string())
        };
        let outcome = Outcome {
            state,
            exit_code: None,
            result: None,
            error: Some(&error),
        };
        if !runs::finish(&tx, run.id, run.lease_id, &outcome).await? {
            continue;
        }
        rescued += 1;
        if let Some(delay) = retry_after {
            let next = runs::insert_next_attempt(&tx, run.id, delay).await?;
            tracing::warn!(run_id = %run.id, next_run_id = ?next.map(|n| n.id), "worker lost; run re-queued");
        } else {
            tracing::warn!(run_id = %run.id, "worker lost; no attempts left, run failed");
        }
    }
    tx.commit().await?;
    Ok(rescued)
}
