//! History doesn't slow it: burn-down throughput and claim latency with 1 M and 10 M
//! finished runs in the table (filled by [`history_fill`], timed), each against an empty
//! table measured beside it, in the same minute: a second database with components of its
//! own, whose table is truncated before each level. The two burn-downs follow each other
//! (who goes first alternates by level); the idle triggers of the two, and then the claim
//! statements ([`history_claim`]), take turns, so that a moment in which the machine
//! stalls falls on both alike.
//!
//! The claim latency judged is the claim statement's own ([`history_claim`]): the idle
//! triggers' `queued_at → started_at` ends where the claim starts, and is printed beside
//! it as the end-to-end view.
//!
//! Why beside, not before: measured one level after the other, tens of seconds apart,
//! the claim p99 moved between levels by more than the 10% being judged, whichever level
//! held the history; side by side, both tables see the same stalls. Truncated, the empty
//! table is that of a new installation.

use super::burn_down::{burn_down, BurnDown};
use super::history_claim::{claim_in_turns, ClaimTable};
use super::latency::{create_stamp_job, idle_triggers, stamp_env, IdleLatency, StampTarget};
use super::{history_fill, per_s, settle_disk, Ctx, Stack};
use crate::report::Row;
use crate::stats::{fmt_ms, Summary};
use std::time::Duration;

/// Triggers sent before the counted ones at each level, as far apart as them: the first
/// claims after the burn-down and the settling pause are a level's slowest, and would
/// make the comparison between levels a comparison of those few.
const HISTORY_WARM_UP: usize = 10;

/// The spacing of the triggers of both tables together: each table's own are twice as
/// far apart, and a run of the stamp command takes a few ms, so both stay idle between
/// them. Idle claims stall now and then on either table, which is why the tables take
/// turns rather than being measured one after the other.
const HISTORY_GAP: Duration = Duration::from_millis(8);

/// One of the two databases, with its components and jobs.
struct Side {
    stack: Stack,
    /// The burn-down's job (`true`).
    job: String,
    stamp_job: String,
}

impl Side {
    async fn new(ctx: &Ctx, name: &str) -> anyhow::Result<Side> {
        let mut stack = Stack::new(ctx, name, &["scheduler"]).await?;
        stack.env.push(stamp_env(ctx));
        let job = stack
            .api
            .create_job(&stack.project, "true", &["true"], None)
            .await?;
        let stamp_job = create_stamp_job(ctx, &stack).await?;
        Ok(Side {
            stack,
            job,
            stamp_job,
        })
    }

    async fn burn_down(&mut self, ctx: &Ctx) -> anyhow::Result<BurnDown> {
        let (runs, cap) = (ctx.sizes.history_burn_down_runs, ctx.sizes.burn_down_cap);
        burn_down(ctx, &mut self.stack, &self.job, runs, cap).await
    }

    fn target(&self, label: String) -> StampTarget<'_> {
        StampTarget {
            stack: &self.stack,
            job: &self.stamp_job,
            label,
        }
    }

    /// Empties the table: a new relation, as in a new installation (`TRUNCATE`, with the
    /// tables that point into it), without statistics yet.
    async fn clear(&self) -> anyhow::Result<()> {
        let db = self.stack.db().await?;
        db.batch_execute("TRUNCATE runs CASCADE").await?;
        Ok(())
    }
}

/// What one table measured at one level.
struct Measured {
    burn_per_s: f64,
    idle: IdleLatency,
    /// The claim statement's own latency, one connection (`history_claim`).
    claim: Summary,
}

struct Level {
    history: i64,
    fill: Duration,
    full: Measured,
    empty: Measured,
}

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut full = Side::new(ctx, "bench_history").await?;
    let mut empty = Side::new(ctx, "bench_history_empty").await?;
    let filler = full
        .stack
        .api
        .create_job(&full.stack.project, "history", &["true"], None)
        .await?;
    let filler: uuid::Uuid = filler.parse()?;
    let mut levels: Vec<i64> = ctx
        .sizes
        .history
        .iter()
        .copied()
        .filter(|&l| l > 0)
        .collect();
    levels.sort_unstable();
    levels.dedup();
    let mut have = 0i64;
    let mut measured: Vec<Level> = Vec::new();
    let count = levels.len();
    for (i, history) in levels.into_iter().enumerate() {
        // The judged level (the largest) gets the full count of claim statements, the
        // others a fifth, which keeps the scenario's time in bounds.
        let claims = if i + 1 == count {
            ctx.sizes.history_claims
        } else {
            ctx.sizes.history_claims / 5
        };
        let fill = history_fill::fill(&full.stack.url, filler, have, history).await?;
        have = history;
        empty.clear().await?;
        // Each level starts after the writeback before it has drained: the fill's, or at
        // the first level the scenario before this one's (a 100 MiB upload in a full run).
        settle_disk("history").await;
        let (full_burn, empty_burn) = if i % 2 == 0 {
            let e = empty.burn_down(ctx).await?;
            (full.burn_down(ctx).await?, e)
        } else {
            let f = full.burn_down(ctx).await?;
            (f, empty.burn_down(ctx).await?)
        };
        settle_disk("history").await;
        let label = format!("history {}", millions(history));
        let targets = [
            full.target(label.clone()),
            empty.target(format!("{label}, empty table beside it")),
        ];
        let triggers = (HISTORY_WARM_UP, ctx.sizes.history_triggers);
        let [full_idle, empty_idle]: [IdleLatency; 2] =
            idle_triggers(&targets, triggers, HISTORY_GAP)
                .await?
                .try_into()
                .map_err(|_| anyhow::anyhow!("one figure per target"))?;
        // The claims must be the only ones on each queue: the next level's burn-down
        // starts a worker again.
        full.stack.stop("worker");
        empty.stack.stop("worker");
        let tables = [
            ClaimTable {
                url: &full.stack.url,
                job: &full.job,
            },
            ClaimTable {
                url: &empty.stack.url,
                job: &empty.job,
            },
        ];
        let [full_claim, empty_claim]: [Summary; 2] = claim_in_turns(&tables, claims)
            .await?
            .try_into()
            .map_err(|_| anyhow::anyhow!("one figure per table"))?;
        measured.push(Level {
            history,
            fill,
            full: Measured {
                burn_per_s: full_burn.per_s,
                idle: full_idle,
                claim: full_claim,
            },
            empty: Measured {
                burn_per_s: empty_burn.per_s,
                idle: empty_idle,
                claim: empty_claim,
            },
        });
    }
    full.stack.finish(ctx).await?;
    empty.stack.finish(ctx).await?;
    report(ctx, &measured);
    Ok(())
}

fn report(ctx: &mut Ctx, levels: &[Level]) {
    if levels.is_empty() {
        ctx.note("history: no level above 0 (BENCH_HISTORY), nothing measured");
        return;
    }
    let largest = levels.iter().map(|l| l.history).max().unwrap_or(0);
    let runs = ctx.sizes.history_burn_down_runs;
    for level in levels {
        let label = millions(level.history);
        let (full, empty) = (&level.full, &level.empty);
        let (claim, base_claim) = (full.idle.claim, empty.idle.claim);
        let mut burn = Row::new(
            format!("history {label} finished: burn-down of {runs}"),
            per_s(full.burn_per_s),
        )
        .ceiling(
            format!("empty table beside it {}", per_s(empty.burn_per_s)),
            full.burn_per_s,
            empty.burn_per_s,
        );
        let idle = Row::new(
            format!("history {label} finished: claim latency, idle"),
            quantiles(&claim),
        )
        .ceiling(
            format!("empty table beside it {}", quantiles(&base_claim)),
            base_claim.p99,
            claim.p99,
        );
        let (statement, base_statement) = (full.claim, empty.claim);
        let mut claim_row = Row::new(
            format!(
                "history {label} finished: claim statement, one connection (n={})",
                statement.n
            ),
            quantiles(&statement),
        )
        .ceiling(
            format!("empty table beside it {}", quantiles(&base_statement)),
            base_statement.p99,
            statement.p99,
        );
        ctx.note(format!(
            "history: filling to {label} finished runs took {:.0} s",
            level.fill.as_secs_f64()
        ));
        if level.history == largest && level.history >= 10_000_000 {
            let burn_met = full.burn_per_s >= 0.9 * empty.burn_per_s;
            let claim_met = statement.n > 0 && statement.p99 <= 1.1 * base_statement.p99;
            burn = burn.target("within 10% of empty", burn_met);
            claim_row = claim_row.target("within 10% of empty", claim_met);
        } else if level.history == largest {
            burn = burn.target_unjudged("(target is at 10 M)");
        }
        ctx.row(burn);
        ctx.row(claim_row);
        ctx.row(idle);
    }
}

/// "p50 0.81 / p95 1.00 / p99 1.42 ms"; the ratio (and for the claim statement the
/// target) are the p99's.
fn quantiles(s: &Summary) -> String {
    format!(
        "p50 {} / p95 {} / p99 {} ms",
        fmt_ms(s.p50),
        fmt_ms(s.p95),
        fmt_ms(s.p99)
    )
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
