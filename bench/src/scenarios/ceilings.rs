//! The machine's own ceilings: how fast it spawns `/bin/true`, and what PostgreSQL itself
//! does with jobcenter's own enqueue, claim and complete statements (pgbench).

use super::{per_s, Ctx};
use crate::components::{connect, path_str};
use crate::report::Row;
use crate::stats::Summary;
use anyhow::{bail, Context};
use std::path::Path;
use std::process::Command;

pub async fn spawn(ctx: &mut Ctx) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let one = spawn_rate(ctx, 1)?;
    let all = spawn_rate(ctx, cores)?;
    ctx.ceilings.spawn_per_s = Some(all);
    ctx.row(Row::new("ceiling: spawn /bin/true, 1 thread", per_s(one)));
    ctx.row(Row::new(
        format!("ceiling: spawn /bin/true, {cores} threads (one per core)"),
        per_s(all),
    ));
    Ok(())
}

fn spawn_rate(ctx: &Ctx, threads: usize) -> anyhow::Result<f64> {
    let output = Command::new(&ctx.spawn_ceiling)
        .args(["--threads", &threads.to_string()])
        .args(["--seconds", &ctx.sizes.spawn_seconds.to_string()])
        .output()
        .context("running spawn-ceiling")?;
    if !output.status.success() {
        bail!(
            "spawn-ceiling failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    report["per_second"].as_f64().context("per_second")
}

// The enqueue and the claim below are jobcenter's own statements, taken from
// `jobcenter_sql::runs`, with their parameters replaced by pgbench expressions: `:job_id`
// is defined on the command line, the worker id is derived from the client id, and the
// claimed id and lease are kept with \aset. The complete is a one-row copy of the
// worker's `finish_many` (an `UPDATE … FROM unnest(…)` of the outcomes finishing
// together, without the log lines an HTTP run's outcome brings with it): keep it in
// step with that statement.

/// `sql` with its parameters `$1`, `$2`, … replaced by `params` (from the last, so that
/// `$1` does not eat into `$10`).
fn with_params(sql: &str, params: &[&str]) -> String {
    let mut sql = sql.to_string();
    for (i, param) in params.iter().enumerate().rev() {
        sql = sql.replace(&format!("${}", i + 1), param);
    }
    sql
}

/// Queues one manual run: jobcenter's plain insert (no owner filter, no audit record).
fn enqueue_script() -> String {
    let params = [
        ":job_id::uuid",
        "'manual'",
        "'null'::jsonb",
        "NULL::timestamptz",
        "NULL::uuid",
        "NULL::uuid",
    ];
    format!("{};\n", with_params(jobcenter_sql::runs::INSERT, &params))
}

/// Claims one run (the worker claims up to its free slots; one is the per-run cost) with a
/// lease of 60 s: jobcenter's claim statement.
fn claim_script() -> String {
    let worker = "md5(:client_id::text)::uuid";
    let params = ["'default'", "1", worker, "60000"];
    format!(
        "{} \\aset\n",
        with_params(jobcenter_sql::runs::CLAIM, &params)
    )
}

/// One outcome per commit: the worker groups the outcomes of runs finishing together
/// into one `UPDATE … FROM unnest(…)` (`finish_many`); one row is the per-run cost.
const COMPLETE: &str = "UPDATE runs SET state = 'succeeded'::text::run_state, exit_code = 0,
        result = NULL, error = NULL, finished_at = now(), lease_expires_at = NULL
 WHERE id = :id AND lease_id = :lease_id AND state = 'running';
";

/// So that `:id` and `:lease_id` are defined even when a claim finds nothing (the complete
/// then changes nothing, as the worker's compare-and-set would).
const RESET_ID: &str = "SELECT '00000000-0000-0000-0000-000000000000'::uuid AS id,
        '00000000-0000-0000-0000-000000000000'::uuid AS lease_id \\gset\n";

pub async fn pgbench(ctx: &mut Ctx) -> anyhow::Result<()> {
    let name = "bench_pgbench";
    let url = ctx.setup.fresh_database(name).await?;
    let db = connect(&url).await?;
    let job_id = seed_job(&db).await?;
    let dir = ctx.setup.workdir.join("pgbench");
    std::fs::create_dir_all(&dir)?;
    let enqueue = dir.join("enqueue.sql");
    let lifecycle = dir.join("lifecycle.sql");
    let claim = dir.join("claim.sql");
    let drain = dir.join("claim-complete.sql");
    std::fs::write(&drain, format!("{RESET_ID}{}{COMPLETE}", claim_script()))?;
    std::fs::write(&enqueue, enqueue_script())?;
    std::fs::write(
        &lifecycle,
        format!("{}{RESET_ID}{}{COMPLETE}", enqueue_script(), claim_script()),
    )?;
    std::fs::write(&claim, claim_script())?;
    let seconds = ctx.sizes.pgbench_seconds;
    let pg = PgBench {
        ctx,
        db: name,
        job_id: &job_id,
    };

    let enqueue8 = pg.run(&enqueue, 8, Length::Seconds(seconds), None)?;
    db.batch_execute("TRUNCATE runs CASCADE").await?;
    let life8 = pg.run(&lifecycle, 8, Length::Seconds(seconds), None)?;
    db.batch_execute("TRUNCATE runs CASCADE").await?;
    // What a burn-down asks of Postgres: claim and complete queued runs, 8 clients (the
    // worker's default capacity), on a queue filled beforehand with more than enough.
    let job_uuid: uuid::Uuid = job_id.parse()?;
    let prefill = 4_000 * i64::from(seconds);
    super::queue_runs(&db, job_uuid, prefill).await?;
    db.batch_execute("VACUUM ANALYZE runs").await?;
    let drain8 = pg.run(&drain, 8, Length::Seconds(seconds), None)?;
    let counts = db
        .query_one(
            "SELECT count(*) FILTER (WHERE state = 'queued'),
                    count(*) FILTER (WHERE state = 'running')
             FROM runs",
            &[],
        )
        .await?;
    let (left, unfinished): (i64, i64) = (counts.get(0), counts.get(1));
    db.batch_execute("TRUNCATE runs CASCADE").await?;
    // Claims alone, one client, on a queue filled beforehand; per-claim latencies logged.
    let claims: i64 = if ctx.sizes.quick { 2_000 } else { 10_000 };
    super::queue_runs(&db, job_uuid, claims + 100).await?;
    db.batch_execute("VACUUM ANALYZE runs").await?;
    let log_prefix = dir.join("claim-log");
    let claim1 = pg.run(&claim, 1, Length::Transactions(claims), Some(&log_prefix))?;
    let claim_latency = Summary::of(read_latency_logs(&dir, "claim-log")?);
    drop(db);
    ctx.setup.drop_database(name).await?;

    ctx.ceilings.db_enqueue_per_s = Some(enqueue8.tps);
    ctx.ceilings.db_lifecycle_per_s = Some(life8.tps);
    ctx.ceilings.db_drain_per_s = Some(drain8.tps);
    if left == 0 {
        ctx.note("pgbench claim+complete: the queue ran dry, the figure is too high");
    }
    // At most one claim per client can be cut off by the end of the window.
    if unfinished > 8 {
        ctx.note(format!(
            "pgbench claim+complete: {unfinished} claimed runs were never completed: the \
             complete copied here is out of step with the claim"
        ));
    }
    ctx.row(Row::new(
        "ceiling: pgbench enqueue statement, 8 clients",
        format!(
            "{} (avg {:.2} ms)",
            per_s(enqueue8.tps),
            enqueue8.latency_ms
        ),
    ));
    ctx.row(Row::new(
        "ceiling: pgbench run lifecycle (enqueue+claim+complete, 3 commits), 8 clients",
        format!("{} (avg {:.2} ms)", per_s(life8.tps), life8.latency_ms),
    ));
    ctx.row(Row::new(
        "ceiling: pgbench claim+complete of queued runs (2 commits), 8 clients",
        format!("{} (avg {:.2} ms)", per_s(drain8.tps), drain8.latency_ms),
    ));
    ctx.row(Row::new(
        "ceiling: pgbench claim alone, 1 client",
        format!("{} — {}", per_s(claim1.tps), claim_latency.ms()),
    ));
    if claim_latency.n > 0 {
        ctx.ceilings.db_claim_p99_ms = Some(claim_latency.p99);
    }
    Ok(())
}

/// A user, a project and a manual `true` job, straight in SQL; returns the job id.
async fn seed_job(db: &tokio_postgres::Client) -> anyhow::Result<String> {
    let row = db
        .query_one(
            "WITH u AS (INSERT INTO users (username, password_hash, role)
                        VALUES ('pgbench', 'not-a-hash', 'admin') RETURNING id),
                  p AS (INSERT INTO projects (owner_id, name) SELECT id, 'pgbench' FROM u
                        RETURNING id)
             INSERT INTO jobs (project_id, name, target, schedule)
             SELECT id, 'pgbench', '{\"kind\":\"command\",\"command\":[\"true\"]}',
                    '{\"kind\":\"manual\"}' FROM p
             RETURNING id::text",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

enum Length {
    Seconds(u32),
    Transactions(i64),
}

struct PgBench<'a> {
    ctx: &'a Ctx,
    db: &'a str,
    job_id: &'a str,
}

struct PgBenchResult {
    tps: f64,
    latency_ms: f64,
}

impl PgBench<'_> {
    fn run(
        &self,
        script: &Path,
        clients: u32,
        length: Length,
        log_prefix: Option<&Path>,
    ) -> anyhow::Result<PgBenchResult> {
        let mut command = Command::new(&self.ctx.pgbench);
        command
            .args(["-n", "-M", "prepared", "-h", &self.ctx.setup.pg_host])
            .args(["-p", &self.ctx.setup.pg_port.to_string(), "-U", "postgres"])
            .args([
                "-c",
                &clients.to_string(),
                "-j",
                &clients.min(2).to_string(),
            ])
            .args(["-f", path_str(script)])
            .arg("-D")
            .arg(format!("job_id={}", self.job_id));
        match length {
            Length::Seconds(s) => command.args(["-T", &s.to_string()]),
            Length::Transactions(t) => command.args(["-t", &t.to_string()]),
        };
        if let Some(prefix) = log_prefix {
            command
                .arg("-l")
                .arg(format!("--log-prefix={}", path_str(prefix)));
        }
        let output = command.arg(self.db).output().context("running pgbench")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "pgbench failed: {}\n{stdout}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let number_after = |prefix: &str| {
            stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix(prefix))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<f64>().ok())
        };
        Ok(PgBenchResult {
            tps: number_after("tps = ").context("pgbench printed no tps")?,
            latency_ms: number_after("latency average = ").unwrap_or(f64::NAN),
        })
    }
}

/// Per-transaction latencies (ms) from pgbench's `-l` logs: the third field, in µs.
fn read_latency_logs(dir: &Path, prefix: &str) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_log = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix));
        if !is_log {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            if let Some(us) = line
                .split_whitespace()
                .nth(2)
                .and_then(|f| f.parse::<f64>().ok())
            {
                latencies.push(us / 1000.0);
            }
        }
    }
    Ok(latencies)
}
