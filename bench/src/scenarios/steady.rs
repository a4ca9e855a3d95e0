//! Steady throughput through the API: `steady_concurrency` clients each triggering runs
//! of `true` back to back for the window, with the scheduler and one worker running.
//! Accepted per second, finished per second (within the window), and the end-to-end
//! latency from sending the trigger to the run's finished_at, of the runs finished within
//! the window. The triggers outpace the worker (both share the two cores with the API and
//! PostgreSQL), so the window ends with a backlog; the scenario does not wait for it to
//! drain (that took longer than the window itself, and its latencies would only measure
//! the backlog's length): it counts it and drops the database.

use super::{now_ns, per_s, Ctx, Stack};
use crate::report::Row;
use crate::stats::{fmt_mib, RssPeak, Summary};
use std::time::{Duration, Instant};

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let stack = Stack::new(ctx, "bench_steady", &["scheduler", "worker"]).await?;
    let job = stack
        .api
        .create_job(&stack.project, "true", &["true"], None)
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let worker_pid = stack.component("worker").expect("started").pid();
    let sampler = RssPeak::start(vec![stack.api_process.pid(), worker_pid]);
    let window = ctx.sizes.steady_window;
    let window_start_ns = now_ns();
    let deadline = Instant::now() + window;
    let mut clients = Vec::new();
    for _ in 0..ctx.sizes.steady_concurrency {
        let (api, job) = (stack.api.clone(), job.clone());
        clients.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut refused = 0u64;
            while Instant::now() < deadline {
                let t0 = now_ns();
                match api.trigger(&job).await {
                    Ok(Some(id)) => sent.push((id, t0)),
                    _ => refused += 1,
                }
            }
            (sent, refused)
        }));
    }
    let mut sent = Vec::new();
    let mut refused = 0;
    for client in clients {
        let (s, r) = client.await?;
        sent.extend(s);
        refused += r;
    }
    let window_end_ns = now_ns();
    let peaks = sampler.stop();
    let db = stack.db().await?;
    let ids: Vec<uuid::Uuid> = sent.iter().filter_map(|(id, _)| id.parse().ok()).collect();
    let window_end_s = window_end_ns as f64 / 1e9;
    let rows = db
        .query(
            "SELECT id::text, (extract(epoch FROM finished_at) * 1e9)::float8
             FROM runs WHERE id = ANY($1) AND finished_at <= to_timestamp($2)",
            &[&ids, &window_end_s],
        )
        .await?;
    let sent_at: std::collections::HashMap<&str, i128> =
        sent.iter().map(|(id, t0)| (id.as_str(), *t0)).collect();
    let mut latencies = Vec::new();
    for row in &rows {
        let id: String = row.get(0);
        let finished_ns: f64 = row.get(1);
        if let Some(t0) = sent_at.get(id.as_str()) {
            latencies.push((finished_ns - *t0 as f64) / 1e6);
        }
    }
    let finished_in_window = rows.len() as u64;
    let backlog = sent.len() as u64 - finished_in_window;
    drop(db);
    stack.finish(ctx).await?;

    let seconds = (window_end_ns - window_start_ns) as f64 / 1e9;
    let accepted = sent.len() as f64 / seconds;
    let finished = finished_in_window as f64 / seconds;
    let clients = ctx.sizes.steady_concurrency;
    let title = format!("steady via API, {clients} clients, {:.0} s", seconds);
    let mut row = Row::new(format!("{title}: accepted"), per_s(accepted));
    if let Some(db) = ctx.ceilings.db_enqueue_per_s {
        row = row.ceiling(format!("pgbench enqueue {}", per_s(db)), accepted, db);
    }
    ctx.row(row);
    let mut row = Row::new(
        format!("{title}: finished within the window"),
        per_s(finished),
    );
    if let Some(spawn) = ctx.ceilings.spawn_per_s {
        row = row.ceiling(format!("spawn {}", per_s(spawn)), finished, spawn);
    }
    ctx.row(row);
    ctx.row(Row::new(
        format!("{title}: trigger → finished, of the runs finished within it"),
        Summary::of(latencies).ms(),
    ));
    ctx.row(Row::new(
        "memory: api peak under steady load",
        fmt_mib(peaks[0]),
    ));
    ctx.row(Row::new(
        "memory: worker peak under steady load",
        fmt_mib(peaks[1]),
    ));
    ctx.note(format!(
        "steady: {backlog} of the {} accepted runs were not finished at the window's end (not waited for){}",
        sent.len(),
        if refused > 0 {
            format!("; {refused} triggers not accepted")
        } else {
            String::new()
        }
    ));
    Ok(())
}
