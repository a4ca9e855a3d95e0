//! `jobcenter-bench`: the driver behind `make bench`. Measures jobcenter and, in the same
//! run on the same machine, the ceilings it is compared with, then prints one table.
//!
//! `scripts/bench.sh` builds everything in release mode, starts a private PostgreSQL
//! (fsync and synchronous_commit on) and calls this driver with its port. The driver
//! creates one database per scenario and starts `jobcenter api`, `scheduler` and
//! `worker` as separate processes against it. Nothing here asserts a timing: the
//! benchmark reports, it does not pass or fail.

mod components;
mod report;
mod scenarios;
mod stats;
mod trigger_socket;

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "jobcenter-bench",
    about = "jobcenter against this machine's ceilings"
)]
struct Opts {
    /// Host of the bench PostgreSQL (user postgres, no password).
    #[arg(long, env = "BENCH_PG_HOST", default_value = "127.0.0.1")]
    pg_host: String,
    /// Port of the bench PostgreSQL.
    #[arg(long, env = "BENCH_PG_PORT")]
    pg_port: u16,
    /// The jobcenter binary under test (release build).
    #[arg(long, env = "BENCH_JOBCENTER")]
    jobcenter: PathBuf,
    /// pgbench of the same PostgreSQL version as the server.
    #[arg(long, env = "BENCH_PGBENCH", default_value = "pgbench")]
    pgbench: PathBuf,
    /// wrk (HTTP load generator); the API scenario is skipped without it.
    #[arg(long, env = "BENCH_WRK")]
    wrk: Option<PathBuf>,
    /// Smaller counts and shorter windows: a smoke run of the harness.
    #[arg(long, env = "BENCH_QUICK", value_parser = clap::builder::BoolishValueParser::new(),
          num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    quick: bool,
    /// Scratch directory (run directories, component logs, stamp files).
    #[arg(long, env = "BENCH_WORKDIR")]
    workdir: PathBuf,
    /// Also write the table here.
    #[arg(long, env = "BENCH_TABLE_OUT")]
    table_out: Option<PathBuf>,
    /// Finished runs to have in the history scenario, comma-separated (e.g. 1000000);
    /// each level is measured beside an empty table.
    #[arg(long, env = "BENCH_HISTORY")]
    history: Option<String>,
    /// Only these scenarios, comma-separated (spawn,pgbench,burndown,latency,steady,api,
    /// schedule,logs,upload,history); all when absent.
    #[arg(long, env = "BENCH_ONLY")]
    only: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(opts))
}

async fn run(opts: Opts) -> anyhow::Result<()> {
    let bin_dir = std::env::current_exe()?
        .parent()
        .expect("the executable has a directory")
        .to_path_buf();
    let history = match &opts.history {
        Some(list) => list
            .split(',')
            .map(|n| n.trim().parse::<i64>())
            .collect::<Result<Vec<_>, _>>()?,
        None if opts.quick => vec![100_000, 1_000_000],
        None => vec![1_000_000, 10_000_000],
    };
    let only: Option<Vec<String>> = opts
        .only
        .as_ref()
        .map(|l| l.split(',').map(|s| s.trim().to_string()).collect());
    std::fs::create_dir_all(&opts.workdir)?;
    // The stamp runs as a job's command: a copy of it in a directory of its own, which
    // the scenarios that run it show to sandboxed runs (`latency::stamp_env`).
    let stamp_dir = opts.workdir.join("stamp");
    std::fs::create_dir_all(&stamp_dir)?;
    let stamp = stamp_dir.join("jobcenter-bench-stamp");
    std::fs::copy(bin_dir.join("jobcenter-bench-stamp"), &stamp)?;
    let mut ctx = scenarios::Ctx {
        setup: components::Setup {
            pg_host: opts.pg_host.clone(),
            pg_port: opts.pg_port,
            jobcenter: opts.jobcenter.clone(),
            workdir: opts.workdir.clone(),
        },
        sizes: scenarios::Sizes::new(opts.quick, history),
        stamp,
        spawn_ceiling: bin_dir.join("spawn-ceiling"),
        pgbench: opts.pgbench.clone(),
        wrk: opts.wrk.clone(),
        rows: Vec::new(),
        notes: Vec::new(),
        ceilings: scenarios::Ceilings::default(),
    };
    scenarios::run_all(&mut ctx, only.as_deref()).await;
    let table = report::render(&ctx.rows);
    let mut out = table.clone();
    if !ctx.notes.is_empty() {
        out.push_str("\nNotes:\n");
        for note in &ctx.notes {
            out.push_str(&format!("- {note}\n"));
        }
    }
    println!("\n{out}");
    if let Some(path) = &opts.table_out {
        std::fs::write(path, &out)?;
    }
    Ok(())
}
