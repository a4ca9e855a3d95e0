//! The API under a real HTTP load generator (wrk): `GET /healthz` (the HTTP stack's
//! ceiling, no database), `GET /api/v1/runs/{id}` and `POST /api/v1/jobs/{id}/runs`, each at
//! a ladder of connection counts. The figure is the best requests/s whose p99 ≤ 10 ms.
//! Only the API runs (no worker), so the machine is the API's and Postgres's.

use super::{per_s, settle_disk, Ctx, Stack};
use crate::components::path_str;
use crate::report::Row;
use crate::stats::{fmt_mib, fmt_ms, RssPeak};
use anyhow::{bail, Context};
use std::path::Path;
use std::process::Command;

/// One wrk run.
#[derive(Debug, Clone, Copy)]
struct Level {
    connections: u32,
    rps: f64,
    p99_ms: f64,
    errors: u64,
}

const P99_LIMIT_MS: f64 = 10.0;

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let Some(wrk) = ctx.wrk.clone() else {
        ctx.note("api: wrk not found, the API scenario was not measured (apt-get install wrk)");
        return Ok(());
    };
    let stack = Stack::new(ctx, "bench_api", &[]).await?;
    let job = stack
        .api
        .create_job(&stack.project, "true", &["true"], None)
        .await?;
    let run = stack.api.trigger(&job).await?.context("a run to GET")?;
    let base = stack.api.base.clone();
    let auth = format!("Authorization: Bearer {}", stack.api.token);
    let post_script = ctx.setup.workdir.join("post-trigger.lua");
    std::fs::write(
        &post_script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{{\"input\":null}}'\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.headers[\"Authorization\"] = \"Bearer {}\"\n",
            stack.api.token
        ),
    )?;
    // As for the idle latency: not charged with the writeback of the scenario before
    // (steady throughput leaves its tens of thousands of runs to be flushed).
    settle_disk("api").await;
    let sampler = RssPeak::start(vec![stack.api_process.pid()]);
    let load = Load {
        wrk: &wrk,
        seconds: ctx.sizes.wrk_seconds,
        ladder: &ctx.sizes.wrk_connections,
    };
    // The ceiling from 8 connections up: below that each connection's round trip, not the
    // HTTP stack, is the limit (its best came at 16 to 64 connections in every full run).
    let health = load.ladder(&format!("{base}/healthz"), &[], 8)?;
    let get = load.ladder(&format!("{base}/api/v1/runs/{run}"), &["-H", &auth], 1)?;
    let post_url = format!("{base}/api/v1/jobs/{job}/runs");
    let post = load.ladder(&post_url, &["-s", path_str(&post_script)], 1)?;
    let api_peak = sampler.stop()[0];
    stack.finish(ctx).await?;

    let health_best = best(&health);
    ctx.row(Row::new(
        "ceiling: GET /healthz (no database), wrk",
        describe(&health),
    ));
    let mut row = Row::new("API: GET /api/v1/runs/{id}, wrk", describe(&get));
    if let (Some(g), Some(h)) = (best(&get), health_best) {
        row = row.ceiling(format!("/healthz {}", per_s(h.rps)), g.rps, h.rps);
    }
    let get_rps = best(&get).map_or(0.0, |l| l.rps);
    ctx.row(row.target("≥ 5,000/s at p99 ≤ 10 ms", get_rps >= 5000.0));
    let mut row = Row::new("API: POST /api/v1/jobs/{id}/runs, wrk", describe(&post));
    let post_rps = best(&post).map_or(0.0, |l| l.rps);
    if let (Some(db), true) = (ctx.ceilings.db_enqueue_per_s, post_rps > 0.0) {
        row = row.ceiling(format!("pgbench enqueue {}", per_s(db)), post_rps, db);
    }
    ctx.row(row.target("≥ 2,000/s at p99 ≤ 10 ms", post_rps >= 2000.0));
    ctx.row(Row::new("memory: api peak under wrk", fmt_mib(api_peak)));
    let errors: u64 = health
        .iter()
        .chain(&get)
        .chain(&post)
        .map(|l| l.errors)
        .sum();
    if errors > 0 {
        ctx.note(format!(
            "api: wrk saw {errors} non-2xx answers or socket errors"
        ));
    }
    Ok(())
}

/// The best level within the p99 limit.
fn best(levels: &[Level]) -> Option<Level> {
    levels
        .iter()
        .filter(|l| l.p99_ms <= P99_LIMIT_MS && l.errors == 0)
        .max_by(|a, b| a.rps.total_cmp(&b.rps))
        .copied()
}

/// "4,210/s at 16 conn (p99 3.1 ms); max 4,500/s at 64 conn (p99 25 ms)"
fn describe(levels: &[Level]) -> String {
    let fastest = levels.iter().max_by(|a, b| a.rps.total_cmp(&b.rps));
    let one = |l: &Level| {
        format!(
            "{} at {} conn (p99 {} ms)",
            per_s(l.rps),
            l.connections,
            fmt_ms(l.p99_ms)
        )
    };
    match (best(levels), fastest) {
        (Some(b), Some(f)) if b.connections == f.connections => one(&b),
        (Some(b), Some(f)) => format!("{}; max {}", one(&b), one(f)),
        (None, Some(f)) => format!("none at p99 ≤ 10 ms; max {}", one(f)),
        _ => "not measured".into(),
    }
}

struct Load<'a> {
    wrk: &'a Path,
    seconds: u32,
    ladder: &'a [u32],
}

impl Load<'_> {
    /// wrk at each level of the ladder from `from` connections up.
    fn ladder(&self, url: &str, extra: &[&str], from: u32) -> anyhow::Result<Vec<Level>> {
        self.ladder
            .iter()
            .filter(|&&c| c >= from)
            .map(|&c| self.once(url, extra, c))
            .collect()
    }

    fn once(&self, url: &str, extra: &[&str], connections: u32) -> anyhow::Result<Level> {
        let output = Command::new(self.wrk)
            .args(["--latency", "-t", &connections.min(2).to_string()])
            .args(["-c", &connections.to_string()])
            .args(["-d", &format!("{}s", self.seconds)])
            .args(extra)
            .arg(url)
            .output()
            .context("running wrk")?;
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let level = parse_wrk(&text, connections)
            .with_context(|| format!("unexpected wrk output:\n{text}"))?;
        eprintln!(
            "bench:   wrk {connections} conn: {:.0}/s, p99 {} ms, {} errors",
            level.rps, level.p99_ms, level.errors
        );
        Ok(level)
    }
}

fn parse_wrk(text: &str, connections: u32) -> Option<Level> {
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| duration_ms(v.trim()))?;
    let mut errors = 0;
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += n.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            errors += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Some(Level {
        connections,
        rps,
        p99_ms: p99,
        errors,
    })
}

/// wrk's durations: "812.00us", "3.21ms", "1.02s", "2.00m".
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        _ => return None,
    };
    Some(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_output() {
        let text = "Running 2s test @ http://127.0.0.1:1/healthz
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   350.12us  100.00us   2.10ms   90.00%
  Latency Distribution
     50%  320.00us
     75%  400.00us
     90%  500.00us
     99%    1.20ms
  40000 requests in 2.00s, 4.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  20000.50
Transfer/sec:      2.00MB
";
        let level = parse_wrk(text, 8).unwrap();
        assert_eq!(level.rps, 20000.5);
        assert!((level.p99_ms - 1.2).abs() < 1e-9);
        assert_eq!(level.errors, 8);
        assert_eq!(duration_ms("812.00us"), Some(0.812));
        assert_eq!(duration_ms("1.50s"), Some(1500.0));
    }
}
