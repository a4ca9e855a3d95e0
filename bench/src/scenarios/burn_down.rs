//! Burn-down: N queued runs of `true`, put straight into the table, and one worker
//! process started on them. Runs finished per second, against the spawn ceiling and the
//! database's own lifecycle rate. Also the worker's and the API's memory. Measured with
//! the worker's run sandbox on (the default) and off, each on a stack of its own.

use super::{per_s, sandbox_name, settle_disk, Ctx, Stack, SANDBOX_OFF};
use crate::components::connect;
use crate::report::Row;
use crate::stats::{fmt_mib, rss_kib, RssPeak};
use std::time::{Duration, Instant};

/// What one burn-down measured.
pub struct BurnDown {
    pub finished: i64,
    pub failed: i64,
    pub pending: i64,
    /// Finished runs / (last finished_at − first started_at).
    pub per_s: f64,
    pub wall: Duration,
    pub worker_idle_kib: u64,
    pub worker_peak_kib: u64,
}

impl BurnDown {
    /// "N/s (M runs in S s wall{extra})", and the runs still pending at the cap if any.
    pub fn describe(&self, extra: &str) -> String {
        let mut value = format!(
            "{} ({} runs in {:.1} s wall{extra})",
            per_s(self.per_s),
            self.finished + self.failed,
            self.wall.as_secs_f64()
        );
        if self.pending > 0 {
            value.push_str(&format!(", {} still pending at the cap", self.pending));
        }
        value
    }
}

/// Queues `runs` runs of `job` and burns them down with a fresh worker process.
pub async fn burn_down(
    ctx: &Ctx,
    stack: &mut Stack,
    job: &str,
    runs: i64,
    cap: Duration,
) -> anyhow::Result<BurnDown> {
    stack.stop("worker");
    stack.start(ctx, "worker")?;
    // Let the worker settle (connect, register, listen) before measuring its idle RSS.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = stack.component("worker").expect("just started").pid();
    let worker_idle_kib = rss_kib(pid).unwrap_or(0);
    let job_id: uuid::Uuid = job.parse()?;
    let db = connect(&stack.url).await?;
    let sampler = RssPeak::start(vec![pid]);
    // Only this burn-down's runs count: the job may hold runs of an earlier one (the
    // history scenario burns the same job at each level).
    let since: chrono::DateTime<chrono::Utc> = db.query_one("SELECT now()", &[]).await?.get(0);
    let started = Instant::now();
    // One statement, so the worker sees all of them at once (and one notification).
    db.execute(
        "WITH q AS (INSERT INTO runs (job_id, trigger, worker_group)
                    SELECT $1, 'manual', 'default' FROM generate_series(1, $2::bigint) RETURNING 1)
         SELECT count(*), pg_notify('jobcenter_runs', 'default') FROM q",
        &[&job_id, &runs],
    )
    .await?;
    let pending = super::wait_final(&db, job, cap).await?;
    let wall = started.elapsed();
    let worker_peak_kib = sampler.stop()[0];
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE state = 'succeeded'),
                    count(*) FILTER (WHERE state NOT IN ('queued', 'running', 'succeeded')),
                    extract(epoch FROM max(finished_at) - min(started_at))::float8
             FROM runs WHERE job_id = $1 AND finished_at IS NOT NULL AND queued_at >= $2",
            &[&job_id, &since],
        )
        .await?;
    let finished: i64 = row.get(0);
    let failed: i64 = row.get(1);
    let span_s: Option<f64> = row.get(2);
    let per_s = match span_s {
        Some(s) if s > 0.0 => (finished + failed) as f64 / s,
        _ => 0.0,
    };
    Ok(BurnDown {
        finished,
        failed,
        pending,
        per_s,
        wall,
        worker_idle_kib,
        worker_peak_kib,
    })
}

/// One burn-down on a stack of its own, the worker's run sandbox on or off; and the
/// API's idle memory.
async fn measure(ctx: &Ctx, sandbox: bool) -> anyhow::Result<(BurnDown, u64)> {
    settle_disk(&format!("burn-down, {}", sandbox_name(sandbox))).await;
    let mut stack = Stack::new(ctx, "bench_burndown", &[]).await?;
    if !sandbox {
        stack.env.push(SANDBOX_OFF);
    }
    let job = stack
        .api
        .create_job(&stack.project, "true", &["true"], None)
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let api_idle_kib = rss_kib(stack.api_process.pid()).unwrap_or(0);
    let runs = ctx.sizes.burn_down_runs;
    let result = burn_down(ctx, &mut stack, &job, runs, ctx.sizes.burn_down_cap).await?;
    stack.finish(ctx).await?;
    Ok((result, api_idle_kib))
}

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let (on, api_idle_kib) = measure(ctx, true).await?;
    let off = measure(ctx, false).await;
    ctx.ceilings.burn_down_per_s = Some(on.per_s);
    let runs = ctx.sizes.burn_down_runs;
    let name = |sandbox| {
        let sandbox = sandbox_name(sandbox);
        format!("burn-down: {runs} queued `true` runs, one worker, {sandbox}")
    };
    let spawn = ctx.ceilings.spawn_per_s.unwrap_or(0.0);
    ctx.row(Row::new(name(true), on.describe("")).ceiling(
        format!("spawn {}", per_s(spawn)),
        on.per_s,
        spawn,
    ));
    match &off {
        Ok((off, _)) => {
            // The process runner's own target (a spawn per run, as the ceiling) is judged
            // without the sandbox; the sandbox is judged by what it costs, below.
            let share = if spawn > 0.0 { off.per_s / spawn } else { 0.0 };
            ctx.row(
                Row::new(name(false), off.describe(""))
                    .ceiling(format!("spawn {}", per_s(spawn)), off.per_s, spawn)
                    .target(
                        "≥ 1,000/s and ≥ 35% of spawn",
                        off.per_s >= 1000.0 && share >= 0.35,
                    ),
            );
            // Issue 25: the sandbox may cost the burn-down at most 40%.
            ctx.row(
                Row::new("burn-down: sandbox on vs off", per_s(on.per_s))
                    .ceiling(
                        format!("sandbox off {}", per_s(off.per_s)),
                        on.per_s,
                        off.per_s,
                    )
                    .target(
                        "≥ 60%",
                        on.failed + off.failed == 0 && on.per_s >= 0.6 * off.per_s,
                    ),
            );
        }
        Err(e) => ctx.note(format!("burn-down, sandbox off: {e:#}")),
    }
    if let Some(db) = ctx.ceilings.db_drain_per_s {
        ctx.row(
            Row::new("burn-down vs the database's own ceiling", per_s(on.per_s)).ceiling(
                format!("pgbench claim+complete, 8 clients {}", per_s(db)),
                on.per_s,
                db,
            ),
        );
    }
    let off_failed = off.as_ref().map_or(0, |(off, _)| off.failed);
    for (sandbox, failed) in [(true, on.failed), (false, off_failed)] {
        if failed > 0 {
            ctx.note(format!(
                "burn-down, {}: {failed} runs did not succeed (see the worker's log)",
                sandbox_name(sandbox)
            ));
        }
    }
    ctx.row(
        Row::new("memory: api idle (VmRSS)", fmt_mib(api_idle_kib))
            .target("≤ 30 MB", api_idle_kib as f64 * 1024.0 <= 30e6),
    );
    ctx.row(
        Row::new("memory: worker idle (VmRSS)", fmt_mib(on.worker_idle_kib))
            .target("≤ 20 MB", on.worker_idle_kib as f64 * 1024.0 <= 20e6),
    );
    ctx.row(Row::new(
        "memory: worker peak during burn-down",
        fmt_mib(on.worker_peak_kib),
    ));
    Ok(())
}
