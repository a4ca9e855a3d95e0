//! The scenarios, each on a database of its own. Ceilings (spawn, pgbench) run first so
//! that every figure can be printed next to the ceiling it is compared with.

mod api_load;
mod burn_down;
mod ceilings;
mod history;
mod history_claim;
mod history_fill;
mod http_burn_down;
mod latency;
mod logs;
mod schedule;
mod steady;
mod upload;

use crate::components::{connect, Api, Component, Setup};
use crate::report::Row;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Counts and windows; `quick` is a smoke run of the harness, not a measurement.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub quick: bool,
    pub burn_down_runs: i64,
    pub burn_down_cap: Duration,
    pub idle_triggers: usize,
    pub steady_window: Duration,
    pub steady_concurrency: usize,
    pub wrk_seconds: u32,
    pub wrk_connections: Vec<u32>,
    pub schedule_jobs: usize,
    pub schedule_ticks: u32,
    pub history: Vec<i64>,
    pub history_burn_down_runs: i64,
    pub history_triggers: usize,
    pub history_claims: usize,
    pub pgbench_seconds: u32,
    pub spawn_seconds: f64,
}

impl Sizes {
    pub fn new(quick: bool, history: Vec<i64>) -> Sizes {
        let (q, full) = (quick, !quick);
        Sizes {
            quick,
            burn_down_runs: if full { 20_000 } else { 2_000 },
            burn_down_cap: Duration::from_secs(if full { 120 } else { 40 }),
            idle_triggers: if full { 200 } else { 60 },
            steady_window: Duration::from_secs(if full { 30 } else { 10 }),
            steady_concurrency: 8,
            wrk_seconds: 2,
            wrk_connections: if q {
                vec![1, 8, 32]
            } else {
                vec![1, 4, 8, 16, 32, 64]
            },
            schedule_jobs: if full { 1_000 } else { 200 },
            schedule_ticks: if full { 6 } else { 2 },
            history,
            history_burn_down_runs: if full { 5_000 } else { 1_000 },
            history_triggers: if full { 200 } else { 30 },
            history_claims: if full { 10_000 } else { 1_000 },
            pgbench_seconds: if full { 5 } else { 4 },
            spawn_seconds: if full { 3.0 } else { 2.0 },
        }
    }
}

/// Ceilings measured first and used by later rows.
#[derive(Debug, Default, Clone)]
pub struct Ceilings {
    /// /bin/true spawns per second from one thread per core.
    pub spawn_per_s: Option<f64>,
    /// pgbench: enqueue + claim + complete, 8 clients, lifecycles per second.
    pub db_lifecycle_per_s: Option<f64>,
    /// pgbench: claim + complete of queued runs, 8 clients, runs per second.
    pub db_drain_per_s: Option<f64>,
    /// pgbench: the enqueue statement alone, 8 clients, per second.
    pub db_enqueue_per_s: Option<f64>,
    /// pgbench: p99 of the claim statement alone, one client, in ms.
    pub db_claim_p99_ms: Option<f64>,
    /// Burn-down of an empty table, for the history comparison.
    pub burn_down_per_s: Option<f64>,
}

pub struct Ctx {
    pub setup: Setup,
    pub sizes: Sizes,
    pub stamp: PathBuf,
    pub spawn_ceiling: PathBuf,
    pub pgbench: PathBuf,
    pub wrk: Option<PathBuf>,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    pub ceilings: Ceilings,
}

impl Ctx {
    pub fn row(&mut self, row: Row) {
        eprintln!(
            "bench: {} = {} {}",
            row.figure,
            row.value,
            if row.ceiling.is_empty() {
                String::new()
            } else {
                format!("(ceiling {})", row.ceiling)
            }
        );
        self.rows.push(row);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        eprintln!("bench: note: {note}");
        self.notes.push(note);
    }
}

/// Runs every scenario (or those in `only`); a failing scenario becomes a note.
pub async fn run_all(ctx: &mut Ctx, only: Option<&[String]>) {
    let wanted = |name: &str| only.is_none_or(|o| o.iter().any(|n| n == name));
    macro_rules! scenario {
        ($name:literal, $call:expr) => {
            if wanted($name) {
                eprintln!("bench: --- {} ---", $name);
                let started = Instant::now();
                if let Err(e) = $call.await {
                    ctx.note(format!("scenario {} failed: {e:#}", $name));
                }
                eprintln!(
                    "bench: {} took {:.0} s",
                    $name,
                    started.elapsed().as_secs_f64()
                );
            }
        };
    }
    scenario!("spawn", ceilings::spawn(ctx));
    scenario!("pgbench", ceilings::pgbench(ctx));
    scenario!("burndown", burn_down::run(ctx));
    scenario!("httpburn", http_burn_down::run(ctx));
    scenario!("latency", latency::run(ctx));
    scenario!("steady", steady::run(ctx));
    scenario!("api", api_load::run(ctx));
    scenario!("schedule", schedule::run(ctx));
    scenario!("logs", logs::run(ctx));
    scenario!("upload", upload::run(ctx));
    scenario!("history", history::run(ctx));
}

/// A database with the API up, logged in, and a project; more components on request.
pub struct Stack {
    pub name: String,
    pub url: String,
    pub api_process: Component,
    pub others: Vec<(String, Component)>,
    pub api: Api,
    pub project: String,
    /// Extra environment of the components started later (beyond the capacity).
    pub env: Vec<(&'static str, &'static str)>,
}

impl Stack {
    pub async fn new(ctx: &Ctx, name: &str, components: &[&str]) -> anyhow::Result<Stack> {
        let url = ctx.setup.fresh_database(name).await?;
        let api_process = Component::start(&ctx.setup, "api", &url, &[])?;
        let api = Api::login(&api_process).await?;
        let project = api.create_project(name).await?;
        let mut stack = Stack {
            name: name.to_string(),
            url,
            api_process,
            others: Vec::new(),
            api,
            project,
            env: Vec::new(),
        };
        for component in components {
            stack.start(ctx, component)?;
        }
        Ok(stack)
    }

    pub fn start(&mut self, ctx: &Ctx, subcommand: &str) -> anyhow::Result<()> {
        let mut env = vec![("JOBCENTER_WORKER_CAPACITY", "8")];
        env.extend(self.env.iter().copied());
        let component = Component::start(&ctx.setup, subcommand, &self.url, &env)?;
        self.others.push((subcommand.to_string(), component));
        Ok(())
    }

    pub fn component(&self, subcommand: &str) -> Option<&Component> {
        self.others
            .iter()
            .find(|(name, _)| name == subcommand)
            .map(|(_, c)| c)
    }

    pub fn stop(&mut self, subcommand: &str) {
        self.others.retain_mut(|(name, c)| {
            if name == subcommand {
                c.stop();
            }
            name != subcommand
        });
    }

    pub async fn db(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(&self.url).await
    }

    /// Stops the processes and drops the database.
    pub async fn finish(mut self, ctx: &Ctx) -> anyhow::Result<()> {
        for (_, c) in &mut self.others {
            c.stop();
        }
        self.api_process.stop();
        ctx.setup.drop_database(&self.name).await
    }
}

/// Realtime clock in nanoseconds (comparable across processes of this machine).
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_nanos() as i128
}

/// Flushes the kernel's dirty file pages (`sync`) and waits (at most 30 s) until it
/// holds less than 16 MiB of dirty or in-flight ones, so that an idle-latency figure is
/// not charged with the writeback of what the scenario before it wrote. Without the
/// `sync` the flusher takes its time (up to `dirty_expire_centisecs`, 30 s by default).
/// No `CHECKPOINT`: it would make the next commits write full-page images and slow the
/// figure instead (`sync` writes the same pages the flusher would, PostgreSQL does not
/// notice).
pub async fn settle_disk(what: &str) {
    let started = Instant::now();
    let sync = tokio::process::Command::new("sync").status();
    match tokio::time::timeout(Duration::from_secs(30), sync).await {
        Ok(Ok(status)) if status.success() => {}
        Ok(Ok(status)) => eprintln!("bench: {what}: sync answered {status}"),
        Ok(Err(e)) => eprintln!("bench: {what}: sync failed: {e}"),
        Err(_) => eprintln!("bench: {what}: sync took more than 30 s"),
    }
    let mut pending = 0;
    while started.elapsed() < Duration::from_secs(30) {
        pending = dirty_kib().unwrap_or(0);
        if pending < 16 * 1024 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "bench: {what}: waited {:.1} s for writeback ({} KiB still dirty)",
        started.elapsed().as_secs_f64(),
        pending
    );
}

/// `Dirty` + `Writeback` of /proc/meminfo, in KiB.
fn dirty_kib() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some(field("Dirty:")? + field("Writeback:")?)
}

/// Puts `runs` queued manual runs of `job` into the table with one statement and no
/// notification (the queue a measurement starts from).
pub async fn queue_runs(
    db: &tokio_postgres::Client,
    job: uuid::Uuid,
    runs: i64,
) -> anyhow::Result<()> {
    db.execute(
        "INSERT INTO runs (job_id, trigger, worker_group)
         SELECT $1, 'manual', 'default' FROM generate_series(1, $2::bigint)",
        &[&job, &runs],
    )
    .await?;
    Ok(())
}

/// Polls until no run of `job` is queued or running, for at most `limit`.
/// Returns how many are still pending (0: all final).
pub async fn wait_final(
    db: &tokio_postgres::Client,
    job: &str,
    limit: Duration,
) -> anyhow::Result<i64> {
    let job: uuid::Uuid = job.parse()?;
    let deadline = Instant::now() + limit;
    loop {
        let pending: i64 = db
            .query_one(
                "SELECT count(*) FROM runs WHERE job_id = $1 AND state IN ('queued', 'running')",
                &[&job],
            )
            .await?
            .get(0);
        if pending == 0 || Instant::now() >= deadline {
            return Ok(pending);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Worker environment that turns its run sandbox off; it is on by default, and the
/// burn-down and trigger → start are measured both ways.
pub const SANDBOX_OFF: (&str, &str) = ("JOBCENTER_SANDBOX", "off");

pub fn sandbox_name(on: bool) -> &'static str {
    if on {
        "sandbox on"
    } else {
        "sandbox off"
    }
}

pub fn per_s(x: f64) -> String {
    format!("{x:.0}/s")
}
