//! Schedule lateness: many jobs on `*/10 * * * * *`, a scheduler and one worker, for a
//! number of ticks. How late each run was queued and started after its scheduled
//! instant, and whether any (job, tick) got no run or more than one. "Queued" is judged
//! by the scheduler's own histogram `jobcenter_schedule_lag_seconds` (instant → the
//! commit of the run's transaction has returned), scraped from its `/metrics`; the
//! `queued_at` column is the transaction's start, earlier, and printed beside it.

use super::{Ctx, Stack};
use crate::report::Row;
use crate::stats::Summary;
use futures_util::StreamExt;
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const EVERY_S: f64 = 10.0;

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut stack = Stack::new(ctx, "bench_schedule", &[]).await?;
    let metrics_addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?.to_string()
    };
    let listen: &'static str = Box::leak(metrics_addr.clone().into_boxed_str());
    stack.env = vec![("JOBCENTER_METRICS_LISTEN", listen)];
    stack.start(ctx, "scheduler")?;
    stack.env.clear();
    stack.start(ctx, "worker")?;
    let jobs = ctx.sizes.schedule_jobs;
    let schedule = json!({"kind": "cron", "expression": "*/10 * * * * *", "timezone": "UTC"});
    let created: Vec<anyhow::Result<String>> = futures_util::stream::iter(0..jobs)
        .map(|i| {
            let (api, project, schedule) = (&stack.api, &stack.project, schedule.clone());
            async move {
                api.create_job(project, &format!("tick-{i}"), &["true"], Some(schedule))
                    .await
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let created = created.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    // The first whole tick at least a second away: every job exists before it.
    let now = unix_now();
    let mut first = (now / EVERY_S).ceil() * EVERY_S;
    if first - now < 1.0 {
        first += EVERY_S;
    }
    let ticks = ctx.sizes.schedule_ticks;
    let last = first + EVERY_S * f64::from(ticks - 1);
    // The histogram before the first counted tick (and before the leader fires it, 200 ms
    // ahead): the jobs created first already had a tick while the rest were created.
    tokio::time::sleep(Duration::from_secs_f64((first - 0.6 - unix_now()).max(0.0))).await;
    let before = scrape_lag(&metrics_addr).await.unwrap_or_default();
    // Past the last tick by 3 s: the leader has had time to queue it.
    tokio::time::sleep(Duration::from_secs_f64((last + 3.0 - unix_now()).max(0.0))).await;
    let lag = scrape_lag(&metrics_addr).await?.minus(&before);
    // No more ticks; the worker finishes what was queued.
    stack.stop("scheduler");
    let db = stack.db().await?;
    let project: uuid::Uuid = stack.project.parse()?;
    drain(&db, project, Duration::from_secs(60)).await?;
    let rows = db
        .query(
            "SELECT (extract(epoch FROM r.queued_at - r.scheduled_for) * 1000)::float8,
                    (extract(epoch FROM r.started_at - r.scheduled_for) * 1000)::float8
             FROM runs r JOIN jobs j ON j.id = r.job_id
             WHERE j.project_id = $1 AND r.trigger = 'schedule'
               AND r.scheduled_for BETWEEN to_timestamp($2::float8) AND to_timestamp($3::float8)",
            &[&project, &first, &last],
        )
        .await?;
    let queued = Summary::of(rows.iter().map(|r| r.get::<_, f64>(0)).collect());
    let started = Summary::of(
        rows.iter()
            .filter_map(|r| r.get::<_, Option<f64>>(1))
            .collect(),
    );
    let gaps = db
        .query_one(
            "WITH ticks AS (SELECT to_timestamp($2::float8 + 10 * g) AS t
                            FROM generate_series(0, $3::int4 - 1) g),
                  counts AS (
                    SELECT count(r.id) AS n
                    FROM jobs j CROSS JOIN ticks t
                    LEFT JOIN runs r ON r.job_id = j.id AND r.scheduled_for = t.t
                                    AND r.trigger = 'schedule'
                    WHERE j.project_id = $1
                    GROUP BY j.id, t.t)
             SELECT count(*) FILTER (WHERE n = 0), count(*) FILTER (WHERE n > 1) FROM counts",
            &[&project, &first, &(ticks as i32)],
        )
        .await?;
    let (missing, doubled): (i64, i64) = (gaps.get(0), gaps.get(1));
    drop(db);
    stack.finish(ctx).await?;

    let title = format!("schedule: {} jobs × {ticks} ticks of */10 s", created.len());
    let share = |n: f64| 100.0 * n / lag.count.max(1.0);
    let (within_10, within_50) = (share(lag.within_10ms), share(lag.within_50ms));
    ctx.row(
        Row::new(
            format!("{title}: committed − scheduled (scheduler's histogram)"),
            format!(
                "{within_10:.1}% ≤ 10 ms, {within_50:.1}% ≤ 50 ms (n={})",
                lag.count
            ),
        )
        .target(
            "p50 ≤ 10 ms, p99 ≤ 50 ms",
            lag.count > 0.0 && within_10 >= 50.0 && within_50 >= 99.0,
        ),
    );
    ctx.row(Row::new(
        format!("{title}: queued_at (its transaction's start) − scheduled_for"),
        queued.ms(),
    ));
    ctx.row(Row::new(
        format!("{title}: started − scheduled_for"),
        started.ms(),
    ));
    ctx.row(
        Row::new(
            format!("{title}: missing / doubled ticks"),
            format!(
                "{missing} / {doubled} of {}",
                created.len() * ticks as usize
            ),
        )
        .target("0 / 0", missing == 0 && doubled == 0),
    );
    Ok(())
}

/// Runs counted by the scheduler's `jobcenter_schedule_lag_seconds` histogram: in all,
/// and within its 10 ms and 50 ms buckets.
#[derive(Default)]
struct Lag {
    count: f64,
    within_10ms: f64,
    within_50ms: f64,
}

impl Lag {
    /// The runs counted since `earlier` was scraped.
    fn minus(&self, earlier: &Lag) -> Lag {
        Lag {
            count: self.count - earlier.count,
            within_10ms: self.within_10ms - earlier.within_10ms,
            within_50ms: self.within_50ms - earlier.within_50ms,
        }
    }
}

async fn scrape_lag(addr: &str) -> anyhow::Result<Lag> {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await?
        .error_for_status()?
        .text()
        .await?;
    let value = |series: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
            .ok_or_else(|| anyhow::anyhow!("the scheduler's /metrics has no {series}"))
    };
    Ok(Lag {
        count: value("jobcenter_schedule_lag_seconds_count")?,
        within_10ms: value("jobcenter_schedule_lag_seconds_bucket{le=\"0.01\"}")?,
        within_50ms: value("jobcenter_schedule_lag_seconds_bucket{le=\"0.05\"}")?,
    })
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_secs_f64()
}

/// Waits (bounded) until no run of the project is queued or running.
async fn drain(
    db: &tokio_postgres::Client,
    project: uuid::Uuid,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let pending: i64 = db
            .query_one(
                "SELECT count(*) FROM runs r JOIN jobs j ON j.id = r.job_id
                 WHERE j.project_id = $1 AND r.state IN ('queued', 'running')",
                &[&project],
            )
            .await?
            .get(0);
        if pending == 0 || tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
