//! Log shipping: one run printing 100 MB to stdout. How fast the worker takes it in
//! (MB/s over the run's duration), against the same command writing to /dev/null, and
//! whether the log cap (JOBCENTER_LOG_MAX_BYTES, default 10 MiB) holds.

use super::{Ctx, Stack};
use crate::report::Row;
use std::process::Command;
use std::time::{Duration, Instant};

const BYTES: u64 = 100_000_000;
const CAP_BYTES: i64 = 10 * 1024 * 1024;

fn script(sink: &str) -> String {
    // 100-byte lines (99 characters and a newline).
    format!("yes {} | head -c {BYTES}{sink}", "x".repeat(99))
}

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let started = Instant::now();
    let status = Command::new("sh")
        .args(["-c", &script(" > /dev/null")])
        .status()?;
    let ceiling_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        status.success(),
        "the /dev/null run of the log command failed"
    );

    let stack = Stack::new(ctx, "bench_logs", &["worker"]).await?;
    let job = stack
        .api
        .create_job(&stack.project, "loud", &["sh", "-c", &script("")], None)
        .await?;
    let run: uuid::Uuid = stack
        .api
        .trigger(&job)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the trigger was refused"))?
        .parse()?;
    let db = stack.db().await?;
    let pending = super::wait_final(&db, &job, Duration::from_secs(120)).await?;
    let row = db
        .query_one(
            "SELECT state::text, extract(epoch FROM finished_at - started_at)::float8,
                    (SELECT coalesce(sum(octet_length(data)), 0)::bigint
                     FROM run_logs WHERE run_id = $1)
             FROM runs WHERE id = $1",
            &[&run],
        )
        .await?;
    drop(db);
    stack.finish(ctx).await?;
    let (state, seconds, stored): (String, Option<f64>, i64) = (row.get(0), row.get(1), row.get(2));
    if pending > 0 {
        ctx.note("logs: the 100 MB run did not finish within 120 s");
        return Ok(());
    }
    let mb = BYTES as f64 / 1e6;
    let rate = seconds.map_or(0.0, |s| mb / s);
    let ceiling = mb / ceiling_s;
    ctx.row(
        Row::new(
            format!("log shipping: a run printing 100 MB ({state})"),
            format!("{rate:.0} MB/s"),
        )
        .ceiling(
            format!("same command to /dev/null {ceiling:.0} MB/s"),
            rate,
            ceiling,
        ),
    );
    // The cap plus one truncation marker line.
    let held = stored <= CAP_BYTES + 4096;
    ctx.row(
        Row::new(
            "log shipping: bytes kept of the 100 MB",
            format!("{:.1} MiB", stored as f64 / 1048576.0),
        )
        .target("≤ cap (10 MiB)", held),
    );
    Ok(())
}
