//! The claim itself, beside a history: jobcenter's own claim
//! (`jobcenter_sql::runs::claim`, the function the worker's claim loop calls, here one run
//! per call) on one connection per table, each call timed by the driver from sending it
//! to its committed answer, the two tables taking turns call by call, on a queue put into
//! each beforehand.
//!
//! Why this and not only the idle triggers: their claim latency, `queued_at →
//! started_at`, ends where the claim statement starts (`started_at` is its `now()`), so
//! it holds the trigger's commit, the notification and the worker's wake-up, and none of
//! the claim's own work, which is what finished runs in the table could slow (the
//! issue's planning: more index pages read per claim). And a thousand idle claims per
//! table cannot tell 10% apart at the p99: two empty tables measured that way were
//! 68–126% of each other (BENCHMARKS.md).

use crate::stats::Summary;
use anyhow::{bail, Context};
use std::time::Instant;
use uuid::Uuid;

/// Calls per table before the counted ones (the statement is prepared on the first).
const WARM_UP: usize = 100;
/// The lease the claimed runs get: long enough that no lease rescue touches them before
/// they are deleted.
const LEASE_MS: i64 = 600_000;

/// One table: its database and the job whose runs are queued and claimed. The worker of
/// that database must be stopped: it would claim the queue too.
pub struct ClaimTable<'a> {
    pub url: &'a str,
    pub job: &'a str,
}

/// `claims` timed claims per table (after [`WARM_UP`]), the tables taking turns; then the
/// runs queued for it, claimed or not, are deleted. Returns each table's latencies (ms).
pub async fn claim_in_turns(
    tables: &[ClaimTable<'_>],
    claims: usize,
) -> anyhow::Result<Vec<Summary>> {
    let mut clients = Vec::new();
    for table in tables {
        let pool = jobcenter_sql::db::new_pool(table.url, 1)?;
        let client = pool.get().await.context("a pooled connection")?;
        let job: Uuid = table.job.parse()?;
        // The queue, then statistics for both tables alike (an analyze by autovacuum in
        // the middle of one table's claims would fall on that one only).
        super::queue_runs(&client, job, (WARM_UP + claims) as i64).await?;
        client.batch_execute("ANALYZE runs").await?;
        clients.push((pool, client, job));
    }
    let worker = Uuid::new_v4();
    let mut latencies: Vec<Vec<f64>> = vec![Vec::with_capacity(claims); tables.len()];
    for i in 0..WARM_UP + claims {
        for ((_, client, _), latencies) in clients.iter().zip(&mut latencies) {
            let started = Instant::now();
            let claimed = jobcenter_sql::runs::claim(client, worker, "default", 1, LEASE_MS)
                .await?
                .len();
            let ms = started.elapsed().as_secs_f64() * 1e3;
            if claimed != 1 {
                bail!("the claim found {claimed} runs where one was queued");
            }
            if i >= WARM_UP {
                latencies.push(ms);
            }
        }
    }
    for (_, client, job) in &clients {
        client
            .execute(
                "DELETE FROM runs WHERE job_id = $1 AND state IN ('queued', 'running')",
                &[job],
            )
            .await?;
    }
    Ok(latencies.into_iter().map(Summary::of).collect())
}
