//! Fires due schedule ticks: a batch of due jobs has its ticks' runs inserted and the
//! jobs' next fire times advanced in one transaction, one statement for each (not one
//! per job). The unique index on (job, scheduled_for) makes a second insert of the
//! same tick a no-op, even from a second leader. A job with jitter gets
//! its run queued at the tick (`scheduled_for` is the tick) but claimable only from the
//! tick plus the job's fixed offset (`not_before`). Compiled schedules are kept for the
//! leader's term: parsing a cron expression costs ~50 times its next-fire arithmetic.

use crate::Error;
use chrono::Utc;
use jobcenter_core::firing::{plan_tick, Lateness, Window};
use jobcenter_core::jitter;
use jobcenter_core::metrics::Metrics;
use jobcenter_core::schedule::{InvalidSchedule, Schedule, ScheduleSpec};
use jobcenter_sql::jobs;
use jobcenter_sql::runs::{self, Tick};
use jobcenter_sql::Pool;
use std::collections::{HashMap, HashSet};

/// Jobs fired per transaction; a fuller backlog loops.
const BATCH: i64 = 500;

/// How late ticks are handled, apart from each job's catch-up policy.
#[derive(Debug, Clone, Copy)]
pub struct Misfire {
    pub threshold: chrono::Duration,
    pub max_catch_up_ticks: usize,
}

/// Schedules compiled once per distinct spec (many jobs share one expression).
#[derive(Default)]
pub struct CompiledSchedules(HashMap<ScheduleSpec, Result<Schedule, InvalidSchedule>>);

/// Distinct specs kept before the cache starts over (a bound on the leader's memory).
const MAX_COMPILED: usize = 10_000;

impl CompiledSchedules {
    fn get(&mut self, spec: &ScheduleSpec) -> &Result<Schedule, InvalidSchedule> {
        if !self.0.contains_key(spec) {
            if self.0.len() >= MAX_COMPILED {
                self.0.clear();
            }
            self.0.insert(spec.clone(), spec.compile());
        }
        &self.0[spec]
    }
}

/// Fires every due tick; returns how many runs were queued.
pub async fn fire_due(
    pool: &Pool,
    misfire: Misfire,
    metrics: &Metrics,
    schedules: &mut CompiledSchedules,
) -> Result<usize, Error> {
    let mut queued = 0;
    loop {
        let (batch_jobs, batch_runs) = fire_batch(pool, misfire, metrics, schedules).await?;
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
    schedules: &mut CompiledSchedules,
) -> Result<(usize, usize), Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let due = jobs::lock_due(&tx, BATCH).await?;
    let now = Utc::now();
    let mut ticks = Vec::new();
    let mut next_fires = Vec::with_capacity(due.len());
    for job in &due {
        let schedule = match schedules.get(&job.schedule) {
            Ok(schedule) => schedule,
            Err(e) => {
                tracing::error!(job_id = %job.id, error = %e, "stored schedule is invalid; stopping it");
                next_fires.push((job.id, None));
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
        let plan = plan_tick(schedule, window, job.next_fire_at, now, lateness);
        let offset = jitter::offset(job.id, job.jitter_seconds.max(0) as u32);
        for fire in plan.fires {
            ticks.push(Tick {
                job_id: job.id,
                worker_group: &job.worker_group,
                scheduled_for: fire,
                not_before: (offset > chrono::Duration::zero()).then(|| fire + offset),
            });
        }
        next_fires.push((job.id, plan.next));
    }
    let fired = if ticks.is_empty() {
        Vec::new()
    } else {
        runs::insert_ticks(&tx, &ticks).await?
    };
    if fired.len() < ticks.len() {
        let fired: HashSet<_> = fired.iter().collect();
        for tick in ticks
            .iter()
            .filter(|t| !fired.contains(&(t.job_id, t.scheduled_for)))
        {
            tracing::warn!(job_id = %tick.job_id, fire = %tick.scheduled_for, "tick already had its run; not fired twice");
        }
    }
    if !next_fires.is_empty() {
        jobs::set_next_fires(&tx, &next_fires).await?;
    }
    tx.commit().await?;
    // Lateness of each tick: from its instant to its run being durably queued.
    let committed = Utc::now();
    for (_, fire) in &fired {
        let lag = (committed - *fire).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
        metrics.schedule_lag.observe(lag.max(0.0));
    }
    Ok((due.len(), fired.len()))
}
