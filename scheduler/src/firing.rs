//! Fires due schedule ticks: a batch of due jobs has its ticks' runs inserted and the
//! jobs' next fire times advanced in one transaction, one statement for each (not one
//! per job). The unique index on (job, scheduled_for) makes a second insert of the
//! same tick a no-op, even from a second leader. A job with jitter gets
//! its run queued at the tick (`scheduled_for` is the tick) but claimable only from the
//! tick plus the job's fixed offset (`not_before`). Ticks are fired up to
//! `JOBCENTER_SCHEDULER_FIRE_AHEAD_MS` before their instant (as Quartz acquires triggers
//! within a fire-ahead window): the run is committed by the instant and claimable from
//! it, and its notification names the instant, so workers wake for it. Several lanes
//! fire side by side, each its own batches (`SKIP LOCKED` hands each lane other jobs), so
//! that the many jobs of one instant are queued by transactions that run at once rather
//! than one after the other. Compiled schedules are kept for the leader's term: parsing a
//! cron expression costs ~50 times its next-fire arithmetic.

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

/// Transactions firing at once: two, so that a crowded instant is queued in two
/// transactions side by side rather than one batch after the other, which left the
/// second batch late (BENCHMARKS.md, the schedule scenario).
const LANES: usize = 2;

/// How late ticks are handled, apart from each job's catch-up policy, and how early
/// coming ones are queued.
#[derive(Debug, Clone, Copy)]
pub struct Misfire {
    pub threshold: chrono::Duration,
    pub max_catch_up_ticks: usize,
    /// Ticks due within this much from now are fired now, their runs claimable only
    /// from the tick (`not_before`): committed before the instant, not after it.
    pub ahead: chrono::Duration,
}

/// Schedules compiled once per distinct spec (many jobs share one expression), shared by
/// the lanes (each holds the lock only while it plans a batch, never across an await).
#[derive(Default)]
pub struct CompiledSchedules(std::sync::Mutex<Compiled>);

#[derive(Default)]
struct Compiled(HashMap<ScheduleSpec, Result<Schedule, InvalidSchedule>>);

/// Distinct specs kept before the cache starts over (a bound on the leader's memory).
const MAX_COMPILED: usize = 10_000;

impl Compiled {
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

/// The runs to queue for `due` jobs and their next fire times; the compiled schedules
/// are locked only here, never across an await.
fn plan_batch<'a>(
    due: &'a [jobs::DueJob],
    now: chrono::DateTime<Utc>,
    misfire: Misfire,
    schedules: &CompiledSchedules,
) -> (Vec<Tick<'a>>, Vec<NextFire>) {
    let mut schedules = schedules.0.lock().unwrap_or_else(|e| e.into_inner());
    let mut ticks = Vec::new();
    let mut next_fires = Vec::with_capacity(due.len());
    for job in due {
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
                // A tick fired ahead waits for its instant; a jittered one for its offset.
                not_before: (fire > now || offset > chrono::Duration::zero())
                    .then(|| fire + offset),
            });
        }
        next_fires.push((job.id, plan.next));
    }
    (ticks, next_fires)
}

/// A job and its next fire time (None: its schedule has no more ticks).
type NextFire = (uuid::Uuid, Option<chrono::DateTime<Utc>>);

/// Fires every due tick, in [`LANES`] lanes; returns how many runs were queued.
pub async fn fire_due(
    pool: &Pool,
    misfire: Misfire,
    metrics: &Metrics,
    schedules: &CompiledSchedules,
) -> Result<usize, Error> {
    let lane = || async {
        let mut queued = 0;
        loop {
            let (batch_jobs, batch_runs) = fire_batch(pool, misfire, metrics, schedules).await?;
            queued += batch_runs;
            if batch_jobs < BATCH as usize {
                return Ok::<_, Error>(queued);
            }
        }
    };
    let queued = futures_util::future::try_join_all((0..LANES).map(|_| lane())).await?;
    Ok(queued.iter().sum())
}

async fn fire_batch(
    pool: &Pool,
    misfire: Misfire,
    metrics: &Metrics,
    schedules: &CompiledSchedules,
) -> Result<(usize, usize), Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let now = Utc::now();
    let due = jobs::lock_due(&tx, now + misfire.ahead, BATCH).await?;
    let (ticks, next_fires) = plan_batch(&due, now, misfire, schedules);
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
