//! Acting on final run outcomes (the `run_outcomes` outbox): start the child jobs the
//! outcome calls for, pause a job after too many failures in a row, and enqueue its
//! notifications ([`crate::notify_enqueue`]).
//!
//! Each outcome is handled in one transaction that also marks it processed, so a crash
//! at any point either did all of it or none of it; the child's run is unique per
//! parent run (`runs_one_child_per_parent_idx`), so even a repeat starts nothing twice.

use jobcenter_sql::run_outcomes::{self, PendingOutcome};
use jobcenter_sql::runs::{self, Guard, RunInsert};
use jobcenter_sql::states::{RunState, RunTrigger};
use jobcenter_sql::{audit, job_children, jobs, GenericClient, Pool};
use serde_json::json;

/// Outcomes handled per call (the rest wait for the next tick).
const BATCH: i64 = 100;

/// The leader's handling of outcomes, a task of the term: a call every `tick`.
pub(crate) async fn run(term: crate::term::Term, pool: Pool, tick: std::time::Duration) {
    while term.still_held().await {
        if let Err(e) = process_pending(&pool).await {
            tracing::warn!(error = %e, "acting on run outcomes failed; retrying next tick");
        }
        tokio::time::sleep(tick).await;
    }
}

/// Handles the pending outcomes, oldest first; returns how many.
pub async fn process_pending(pool: &Pool) -> Result<usize, crate::Error> {
    let mut handled = 0;
    let mut client = pool.get().await?;
    loop {
        let tx = client.transaction().await?;
        let Some(outcome) = run_outcomes::lock_pending(&tx, 1).await?.pop() else {
            return Ok(handled);
        };
        start_children(&tx, &outcome).await?;
        pause_on_failures(&tx, &outcome).await?;
        crate::notify_enqueue::enqueue(&tx, &outcome).await?;
        run_outcomes::mark_processed(&tx, outcome.run_id).await?;
        tx.commit().await?;
        handled += 1;
        if handled as i64 >= BATCH {
            return Ok(handled);
        }
    }
}

/// Queues one run of each child the outcome triggers, with the parent's run id, job,
/// state and result as its input.
async fn start_children(
    tx: &jobcenter_sql::Transaction<'_>,
    outcome: &PendingOutcome,
) -> Result<(), crate::Error> {
    let children = job_children::triggered_by(tx, outcome.job_id, outcome.state).await?;
    let input = json!({
        "parent_run_id": outcome.run_id,
        "parent_job_id": outcome.job_id,
        "parent_state": outcome.state,
        "parent_result": outcome.result,
    });
    for child_job_id in children {
        let new = RunInsert {
            job_id: child_job_id,
            trigger: RunTrigger::Parent,
            input: &input,
            scheduled_for: None,
            retry_of: None,
            parent_run_id: Some(outcome.run_id),
            guard: Guard::QueueLock,
            audit: None,
        };
        if let Some(run) = runs::insert(tx, &new).await? {
            tracing::info!(parent = %outcome.run_id, child = %run.id, job = %child_job_id, "started a child job");
        }
    }
    Ok(())
}

/// Pauses the job when this failure completes its `pause_after_failures` streak.
async fn pause_on_failures(
    tx: &impl GenericClient,
    outcome: &PendingOutcome,
) -> Result<(), crate::Error> {
    if !matches!(outcome.state, RunState::Failed | RunState::TimedOut) {
        return Ok(());
    }
    let Some(job) = jobs::lock(tx, outcome.job_id, None, jobs::Including::Live).await? else {
        return Ok(());
    };
    let Some(limit) = job.fields.pause_after_failures else {
        return Ok(());
    };
    if !job.fields.enabled
        || !run_outcomes::failed_in_a_row(tx, job.id, limit, job.pause.resumed_at).await?
    {
        return Ok(());
    }
    let reason = format!(
        "{limit} consecutive failed runs (the last: run {})",
        outcome.run_id
    );
    if jobs::pause(tx, job.id, &reason).await? {
        runs::cancel_queued_for_job(tx, job.id, "job paused after repeated failures").await?;
        let detail = json!({"reason": reason, "run_id": outcome.run_id});
        audit::record(tx, None, "job.pause", &format!("job:{}", job.id), &detail).await?;
        tracing::warn!(job = %job.id, %reason, "paused a job");
    }
    Ok(())
}
