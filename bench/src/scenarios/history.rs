//! History doesn't slow it: burn-down throughput and claim latency with 0, 1 M and 10 M
//! finished runs in the table (filled by [`history_fill`], timed), each compared with the
//! empty table of the same scenario.

use super::burn_down::burn_down;
use super::latency::{create_stamp_job, idle_triggers};
use super::{history_fill, per_s, settle_disk, Ctx, Stack};
use crate::report::Row;
use crate::stats::fmt_ms;
use std::time::Duration;

/// Triggers sent before the counted ones at each level, as far apart as them. The first
/// claims after the burn-down and the settling pause were the slowest of a level at every
/// level (three of the five slowest of 300 within the first 150 ms, at 0 and at 10 M),
/// which made the comparison between levels a comparison of those few.
const HISTORY_WARM_UP: usize = 10;

/// The spacing of a level's triggers: the system stays idle between them (a run of the
/// stamp command takes a few ms), and 400 fit in 10 s.
const HISTORY_GAP: Duration = Duration::from_millis(25);

struct Level {
    history: i64,
    burn_per_s: f64,
    claim_p50_ms: f64,
    claim_p99_ms: f64,
    fill: Duration,
}

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut stack = Stack::new(ctx, "bench_history", &["scheduler"]).await?;
    let filler = stack
        .api
        .create_job(&stack.project, "history", &["true"], None)
        .await?;
    let job = stack
        .api
        .create_job(&stack.project, "true", &["true"], None)
        .await?;
    let (stamp_job, stamp_file) = create_stamp_job(ctx, &stack).await?;
    let filler: uuid::Uuid = filler.parse()?;
    let mut levels = ctx.sizes.history.clone();
    levels.sort_unstable();
    let mut have = 0i64;
    let mut measured: Vec<Level> = Vec::new();
    for history in levels {
        let fill = history_fill::fill(&stack.url, filler, have, history).await?;
        have = history;
        // Every level starts after the writeback before it has drained: the fill's, or at
        // the empty level the scenario before this one's (a 100 MiB upload in a full run).
        settle_disk("history").await;
        let burn = burn_down(
            ctx,
            &mut stack,
            &job,
            ctx.sizes.history_burn_down_runs,
            ctx.sizes.burn_down_cap,
        )
        .await?;
        settle_disk("history").await;
        let label = format!("history {}", millions(history));
        let idle = idle_triggers(
            &stack,
            &stamp_job,
            &stamp_file,
            (HISTORY_WARM_UP, ctx.sizes.history_triggers),
            HISTORY_GAP,
            &label,
        )
        .await?;
        measured.push(Level {
            history,
            burn_per_s: burn.per_s,
            claim_p50_ms: idle.claim.p50,
            claim_p99_ms: idle.claim.p99,
            fill,
        });
    }
    stack.finish(ctx).await?;
    report(ctx, &measured);
    Ok(())
}

fn report(ctx: &mut Ctx, levels: &[Level]) {
    let Some(empty) = levels.iter().find(|l| l.history == 0) else {
        ctx.note("history: no level 0, nothing to compare with");
        return;
    };
    let (base_burn, base_p99) = (empty.burn_per_s, empty.claim_p99_ms);
    let largest = levels.iter().map(|l| l.history).max().unwrap_or(0);
    let runs = ctx.sizes.history_burn_down_runs;
    for level in levels {
        let label = millions(level.history);
        let judged = level.history == largest && level.history >= 10_000_000;
        let mut burn = Row::new(
            format!("history {label} finished: burn-down of {runs}"),
            per_s(level.burn_per_s),
        );
        let mut claim = Row::new(
            format!("history {label} finished: claim latency, idle"),
            format!(
                "p50 {} / p99 {} ms",
                fmt_ms(level.claim_p50_ms),
                fmt_ms(level.claim_p99_ms)
            ),
        );
        if level.history > 0 {
            burn = burn.ceiling(
                format!("empty table {}", per_s(base_burn)),
                level.burn_per_s,
                base_burn,
            );
            claim = claim.ceiling(
                format!("empty table p99 {} ms", fmt_ms(base_p99)),
                base_p99,
                level.claim_p99_ms,
            );
            ctx.note(format!(
                "history: filling to {label} finished runs took {:.0} s",
                level.fill.as_secs_f64()
            ));
        }
        if judged {
            burn = burn.target("within 10% of empty", level.burn_per_s >= 0.9 * base_burn);
            claim = claim.target("within 10% of empty", level.claim_p99_ms <= 1.1 * base_p99);
        } else if level.history == largest && level.history > 0 {
            burn = burn.target_unjudged("(target is at 10 M)");
        }
        ctx.row(burn);
        ctx.row(claim);
    }
}

fn millions(n: i64) -> String {
    if n >= 1_000_000 {
        format!("{} M", n as f64 / 1e6)
    } else if n >= 1_000 {
        format!("{} k", n / 1_000)
    } else {
        n.to_string()
    }
}
