//! Fires due schedule ticks: each tick's run is inserted and the job's next fire time
//! advanced in one transaction. The unique index on (job, scheduled_for) makes a second
//! insert of the same tick a no-op, even from a second leader. A job with jitter gets
//! its run queued at the tick (`scheduled_for` is the tick) but claimable only from the
//! tick plus the job's fixed offset (`not_before`).

use crate::Error;
use chrono::Utc;
use jobcenter_core::firing::{plan_tick, Lateness, Window};
use jobcenter_core::jitter;
use jobcenter_core::metrics::Metrics;
use jobcenter_sql::jobs;
use jobcenter_sql::runs::{self, NewRun};
use jobcenter_sql::states::RunTrigger;
use jobcenter_sql::Pool;
use serde_json::Value;

/// Jobs fired per transaction; a fuller backlog loops.
const BATCH: i64 = 500;

/// How late ticks are handled, apart from each job's catch-up policy.
#[derive(Debug, Clone, Copy)]
pub struct Misfire {
    pub threshold: chrono::Duration,
    pub max_catch_up_ticks: usize,
}

/// Fires every due tick; returns how many runs were queued.
pub async fn fire_due(pool: &Pool, misfire: Misfire, metrics: &Metrics) -> Result<usize, Error> {
    let mut queued = 0;
    loop {
        let (batch_jobs, batch_runs) = fire_batch(pool, misfire, metrics).await?;
        queued += batch_runs;
        if batch_jobs < BATCH as usize {
            return Ok(queued);
        }
    }
}

async fn fire_batch(
    pool: &Pool,
    misfire: Misfire,
    metrics: &Metrics,
) -> Result<(usize, usize), Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let due = jobs::lock_due(&tx, BATCH).await?;
    let now = Utc::now();
    let mut queued = 0;
    let mut fired = Vec::new();
    for job in &due {
        let schedule = match job.schedule.compile() {
            Ok(schedule) => schedule,
            Err(e) => {
                tracing::error!(job_id = %job.id, error = %e, "stored schedule is invalid; stopping it");
                jobs::set_next_fire(&tx, job.id, None).await?;
                continue;
            }
        };
        let window = Window {
            starts_at: None,
            ends_at: job.ends_at,
        };
        let lateness = Lateness {
            misfire_threshold: misfire.threshold,
            catch_up: job.catch_up,
            max_catch_up_ticks: misfire.max_catch_up_ticks,
        };
        let plan = plan_tick(&schedule, window, job.next_fire_at, now, lateness);
        for fire in plan.fires {
            let new = NewRun {
                job_id: job.id,
                trigger: RunTrigger::Schedule,
                input: &Value::Null,
                worker_group: &job.worker_group,
                scheduled_for: Some(fire),
                retry_of: None,
                parent_run_id: None,
            };
            runs::lock_job_queue(&tx, job.id).await?;
            if let Some(run) = runs::insert(&tx, &new).await? {
                let offset = jitter::offset(job.id, job.jitter_seconds.max(0) as u32);
                if offset > chrono::Duration::zero() {
                    runs::delay_start(&tx, run.id, fire + offset).await?;
                }
                queued += 1;
                fired.push(fire);
            } else {
                tracing::warn!(job_id = %job.id, %fire, "tick already had its run; not fired twice");
            }
        }
        jobs::set_next_fire(&tx, job.id, plan.next).await?;
    }
    tx.commit().await?;
    // Lateness of each tick: from its instant to its run being durably queued.
    let committed = Utc::now();
    for fire in fired {
        let lag = (committed - fire).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
        metrics.schedule_lag.observe(lag.max(0.0));
    }
    Ok((due.len(), queued))
}
