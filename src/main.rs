//! The `jobcenter` binary: the command line, nothing else. Each subcommand starts one
//! component (or all three) with the configuration read from `JOBCENTER_*` variables.

use anyhow::Context;
use clap::{Parser, Subcommand};
use jobcenter_core::config::Config;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "jobcenter",
    version,
    about = "A self-hosted function scheduler"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The API, a scheduler and a worker in one process (development, small installs).
    All,
    /// The REST API.
    Api,
    /// A scheduler (one leads, the others stand by).
    Scheduler,
    /// A worker.
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
}

fn main() -> ExitCode {
    return_large_allocations_to_the_system();
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        print!("{}", jobcenter_api::openapi::openapi_json());
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("jobcenter: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runs_code = matches!(cli.command, Command::All | Command::Worker);
    // SAFETY: geteuid has no failure mode.
    if runs_code && config.sandbox && unsafe { libc::geteuid() } != 0 {
        // Before the runtime's threads: a threaded process cannot change user namespace.
        if let Err(e) = jobcenter_worker::enter_own_user_namespace() {
            eprintln!(
                "jobcenter: the run sandbox needs a user namespace of the worker's own: {e} \
                 (run as root, or set JOBCENTER_SANDBOX=off)"
            );
            return ExitCode::from(2);
        }
    }
    forget_secrets();
    init_tracing(config.log_json);
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jobcenter: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc serves a large allocation from its heap once a freed one raised its dynamic
/// mmap threshold, and keeps the memory after `free`: every password hash (argon2id's
/// working memory) would stay resident in the thread's heap for good. A fixed threshold
/// makes allocations of 1 MiB and more their own mappings, returned on free.
fn return_large_allocations_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// Once the configuration is read, nothing of it stays readable from outside: the
/// configuration and credential variables are wiped (their bytes too, which
/// `/proc/self/environ` would still show) and removed, and the process is made not
/// dumpable (no ptrace, no `/proc/<pid>/environ` or `mem` for its own uid either).
fn forget_secrets() {
    let secret = |name: &std::ffi::OsStr| {
        let name = name.to_string_lossy();
        name.starts_with("JOBCENTER_")
            || [
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "PGPASSWORD",
            ]
            .contains(&name.as_ref())
    };
    let names: Vec<_> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| secret(name))
        .collect();
    for name in names {
        use std::os::unix::ffi::OsStrExt;
        if let Ok(c_name) = std::ffi::CString::new(name.as_bytes()) {
            // SAFETY: no other thread runs yet; getenv's pointer is to the value's bytes,
            // which we overwrite within their length before the variable is removed.
            unsafe {
                let value = libc::getenv(c_name.as_ptr());
                if !value.is_null() {
                    std::ptr::write_bytes(value, 0, libc::strlen(value));
                }
            }
        }
        std::env::remove_var(&name);
    }
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0);
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let url = config.database_url.expose().to_string();
    let applied = jobcenter_sql::migrate(&url)
        .await
        .context("applying database migrations (JOBCENTER_DATABASE_URL)")?;
    if applied > 0 {
        tracing::info!(applied, "applied database migrations");
    }
    if let Command::Migrate = command {
        println!("database is up to date ({applied} migration(s) applied now)");
        return Ok(());
    }
    let pool =
        jobcenter_sql::new_pool(&url, config.db_pool_size).context("JOBCENTER_DATABASE_URL")?;
    let metrics = std::sync::Arc::new(jobcenter_core::metrics::Metrics::new());
    // SIGTERM/SIGINT cancel this token: the worker stops claiming and lets its runs
    // finish (then hands the rest back), the scheduler releases leadership, the API
    // stops. A second signal exits at once.
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            shutdown.cancel();
            shutdown_signal().await;
            tracing::warn!("second signal: exiting now");
            std::process::exit(1);
        }
    });
    let api = || async {
        tokio::select! {
            result = jobcenter_api::serve(&config, pool.clone(), metrics.clone()) => result.context("api"),
            _ = shutdown.cancelled() => Ok(()),
        }
    };
    let scheduler = || async {
        jobcenter_scheduler::run(&config, pool.clone(), shutdown.clone(), metrics.clone())
            .await
            .context("scheduler")
    };
    let worker = || async {
        jobcenter_worker::run(&config, pool.clone(), shutdown.clone(), metrics.clone())
            .await
            .context("worker")
    };
    // A worker or scheduler on its own serves its metrics when asked to.
    let metrics_only = || async {
        match config.metrics_listen {
            Some(addr) => tokio::select! {
                result = jobcenter_api::serve_metrics(addr, metrics.clone(), config.metrics_token.clone()) => result.context("metrics"),
                _ = shutdown.cancelled() => Ok(()),
            },
            None => Ok(()),
        }
    };
    match command {
        Command::All => tokio::try_join!(api(), scheduler(), worker()).map(|_| ()),
        Command::Api => api().await,
        Command::Scheduler => tokio::try_join!(scheduler(), metrics_only()).map(|_| ()),
        Command::Worker => tokio::try_join!(worker(), metrics_only()).map(|_| ()),
        Command::Migrate | Command::Openapi => unreachable!("handled above"),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
