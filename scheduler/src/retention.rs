//! Retention, while leading: a task of its own per leadership term, so that firing never
//! waits for it. Every [`EVERY`] it
//! - forgets workers silent for an hour;
//! - purges jobs deleted longer than `JOBCENTER_DELETED_JOB_RETENTION_HOURS` ago: their
//!   runs first, in batches, then the job row (until then they stay restorable);
//! - deletes run chains that finished longer than `JOBCENTER_RUN_RETENTION_DAYS` ago,
//!   keeping each job's newest `JOBCENTER_RUN_RETENTION_KEEP_PER_JOB` (the rules are in
//!   `jobcenter_sql::retention::expired_chains`).
//!
//! A pass goes on until nothing is left to delete, in batches of at most
//! [`CHAINS_PER_BATCH`] chains. No statement deletes more than [`RUNS_PER_STATEMENT`]
//! runs (with their outcomes, keys and deliveries) or [`LOG_CHUNKS_PER_STATEMENT`] log
//! chunks, and each commits alone. The rate is bounded twice: after each deleting
//! statement the task rests as long as the statement took (it keeps at most half of one
//! connection busy, and slows down by itself when the database is slow), and it rests
//! [`BATCH_PAUSE`] between batches. See docs/execution.md, "Retention".

use crate::Error;
use jobcenter_core::config::Config;
use jobcenter_sql::{retention as sql, Pool};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How often a pass starts (counted from the end of the previous one).
pub const EVERY: Duration = Duration::from_secs(60);
/// Chains (a run with its retry attempts) one batch takes.
pub const CHAINS_PER_BATCH: i64 = 1000;
/// Runs one statement deletes (a batch's chains may hold more runs: up to 100 attempts).
pub const RUNS_PER_STATEMENT: usize = 1000;
/// Log chunks one statement deletes.
pub const LOG_CHUNKS_PER_STATEMENT: i64 = 5000;
/// Rest between two batches, besides the rest after each statement: at most
/// `CHAINS_PER_BATCH` chains per 100 ms whatever the database's speed, i.e. 10,000 runs
/// a second, enough to keep up with 800 M runs a day.
pub const BATCH_PAUSE: Duration = Duration::from_millis(100);
/// Jobs looked at by one selection of expired chains.
const JOBS_PER_PAGE: i64 = 100;
/// Deleted jobs read at once.
const PURGED_JOBS_PER_PAGE: i64 = 100;
/// How long a silent (dead) worker stays listed in `GET /api/v1/workers`.
const WORKER_MEMORY_MS: i64 = 3_600_000;

/// What retention keeps (from [`Config`]).
#[derive(Debug, Clone)]
pub struct Settings {
    pub deleted_job_retention: Duration,
    /// None: runs are kept forever.
    pub run_retention: Option<Duration>,
    pub keep_per_job: u32,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            deleted_job_retention: config.deleted_job_retention,
            run_retention: config.run_retention,
            keep_per_job: config.run_retention_keep_per_job,
        }
    }
}

/// Retention passes, a task of the term, aborted (between or within statements) when
/// the term ends. What it deleted is committed; what it did not is found by the next
/// leader.
pub(crate) async fn run(term: crate::term::Term, pool: Pool, settings: Settings) {
    while term.still_held().await {
        if let Err(e) = pass(&pool, &settings).await {
            tracing::warn!(error = %e, "retention failed; retrying later");
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// One pass: everything due is deleted when it returns.
async fn pass(pool: &Pool, settings: &Settings) -> Result<(), Error> {
    let forgotten = {
        let client = pool.get().await?;
        jobcenter_sql::workers::purge_silent(&client, WORKER_MEMORY_MS).await?
    };
    if forgotten > 0 {
        tracing::info!(forgotten, "forgot workers silent for an hour");
    }
    let (purged, runs) = purge_deleted_jobs(pool, before(settings.deleted_job_retention)).await?;
    if purged > 0 {
        tracing::info!(purged, runs, "purged deleted jobs past retention");
    }
    if let Some(retention) = settings.run_retention {
        let keep = i64::from(settings.keep_per_job);
        let runs = delete_expired_runs(pool, before(retention), keep).await?;
        if runs > 0 {
            tracing::info!(runs, "deleted finished runs past retention");
        }
    }
    Ok(())
}

fn before(age: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::days(36_500))
}

/// Purges jobs deleted before `cutoff`: each job's runs in batches, then the job.
/// Returns (jobs, runs) purged.
async fn purge_deleted_jobs(
    pool: &Pool,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<(u64, u64), Error> {
    let (mut jobs_purged, mut runs_deleted) = (0, 0);
    loop {
        let jobs = sql::purgeable_jobs(&pool.get().await?, cutoff, PURGED_JOBS_PER_PAGE).await?;
        let mut purged_now = 0;
        for job in &jobs {
            loop {
                let client = pool.get().await?;
                let limit = RUNS_PER_STATEMENT as i64;
                let runs = sql::runs_of_purgeable_job(&client, *job, cutoff, limit).await?;
                drop(client);
                if runs.is_empty() {
                    break;
                }
                runs_deleted += delete_batch(pool, &runs, "purged job").await?;
                tokio::time::sleep(BATCH_PAUSE).await;
            }
            if sql::delete_purged_job(&pool.get().await?, *job, cutoff).await? {
                purged_now += 1;
            }
        }
        jobs_purged += purged_now;
        // A page none of whose jobs could go (restored meanwhile) ends the pass, so that
        // it is not read again and again.
        if (jobs.len() as i64) < PURGED_JOBS_PER_PAGE || purged_now == 0 {
            return Ok((jobs_purged, runs_deleted));
        }
    }
}

/// Deletes the chains that finished before `cutoff`, page of jobs by page of jobs.
async fn delete_expired_runs(
    pool: &Pool,
    cutoff: chrono::DateTime<chrono::Utc>,
    keep_per_job: i64,
) -> Result<u64, Error> {
    let mut deleted = 0;
    let mut after = Uuid::nil();
    loop {
        let jobs = sql::jobs_after(&pool.get().await?, after, JOBS_PER_PAGE).await?;
        let Some(last) = jobs.last() else {
            return Ok(deleted);
        };
        after = *last;
        loop {
            let client = pool.get().await?;
            let runs =
                sql::expired_chains(&client, &jobs, cutoff, keep_per_job, CHAINS_PER_BATCH).await?;
            drop(client);
            if runs.is_empty() {
                break;
            }
            deleted += delete_batch(pool, &runs, "expired").await?;
            tokio::time::sleep(BATCH_PAUSE).await;
        }
    }
}

/// Deletes `runs` (attempts before first attempts, as given) with everything that hangs
/// on them: their log chunks first, a bounded number per statement, then the runs, a
/// bounded number per statement (outcomes, keys and deliveries go by cascade). Rests
/// after each statement as long as it took.
async fn delete_batch(pool: &Pool, runs: &[Uuid], what: &'static str) -> Result<u64, Error> {
    let mut log_chunks = 0;
    loop {
        let started = Instant::now();
        let n = sql::delete_logs(&pool.get().await?, runs, LOG_CHUNKS_PER_STATEMENT).await?;
        log_chunks += n;
        tokio::time::sleep(started.elapsed()).await;
        if n < LOG_CHUNKS_PER_STATEMENT as u64 {
            break;
        }
    }
    let mut deleted = 0;
    for chunk in runs.chunks(RUNS_PER_STATEMENT) {
        let started = Instant::now();
        deleted += sql::delete_runs(&pool.get().await?, chunk).await?;
        tokio::time::sleep(started.elapsed()).await;
    }
    tracing::debug!(runs = deleted, log_chunks, what, "deleted a batch of runs");
    Ok(deleted)
}
