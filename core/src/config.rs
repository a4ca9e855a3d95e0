//! The one typed configuration of jobcenter, read from `JOBCENTER_*` variables.
//!
//! `Config::from_env` is the only reader of the process environment. A missing or
//! malformed variable is an error whose message names the variable and what is wrong.
//! Every variable here is listed, with its default, in the README.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A secret string whose `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A map of secret values (headers, project secrets) whose `Debug` shows the names only,
/// each value as `[redacted]`.
pub struct RedactedValues<'a>(pub &'a std::collections::BTreeMap<String, String>);

impl fmt::Debug for RedactedValues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, Secret(String::new()))))
            .finish()
    }
}

/// `JOBCENTER_BOOTSTRAP_ADMIN=name:password`.
#[derive(Debug, Clone)]
pub struct BootstrapAdmin {
    pub username: String,
    pub password: Secret,
}

/// How a worker starts a run's process (`JOBCENTER_SPAWN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Spawn {
    /// `clone(CLONE_VM | CLONE_VFORK)`: no copy of the worker's memory per run.
    #[default]
    Clone,
    /// `std::process::Command` (a fork), the safe reference for the clone path.
    Command,
}

/// A variable that is present but unusable, or required but absent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: Secret,
    pub db_pool_size: usize,
    pub listen: SocketAddr,
    /// None: a random per-process secret (tokens die with the process; one API node only).
    pub jwt_secret: Option<Secret>,
    /// The secret tokens were signed with before the last rotation: still accepted
    /// (told apart by the token's `kid`), never used to sign.
    pub jwt_previous_secret: Option<Secret>,
    pub jwt_ttl: Duration,
    /// Base URL clients reach the API at, without a trailing slash (webhook URLs).
    pub public_url: String,
    /// `JOBCENTER_METRICS_TOKEN`: when set, `/metrics` requires `Authorization: Bearer <it>`.
    pub metrics_token: Option<Secret>,
    pub login: LoginThrottle,
    pub webhook_max_body_bytes: usize,
    pub artifacts: String,
    pub s3: crate::artifacts::S3Settings,
    pub artifact_max_bytes: u64,
    pub worker_cache_max_bytes: u64,
    /// What one bundle may unpack to: entries, bytes, and the length of a link target.
    pub bundle_max_entries: u64,
    pub bundle_max_bytes: u64,
    pub bundle_max_link_bytes: u64,
    /// Where a lone `worker` or `scheduler` serves `/metrics` (none: not served).
    pub metrics_listen: Option<SocketAddr>,
    pub bootstrap_admin: Option<BootstrapAdmin>,
    pub worker_group: String,
    pub worker_capacity: usize,
    pub worker_poll: Duration,
    pub worker_heartbeat: Duration,
    /// How long a run's lease lasts without renewal before the leader rescues it.
    pub lease: Duration,
    /// Grace between SIGTERM and SIGKILL when a run is timed out or cancelled.
    pub kill_grace: Duration,
    /// On SIGTERM, how long a worker lets its running runs finish before handing
    /// the rest back to the queue.
    pub shutdown_grace: Duration,
    /// Backoff before retry attempt n+1: base * 2^(n-1), capped, with full jitter.
    pub retry_backoff_base: Duration,
    pub retry_backoff_max: Duration,
    /// Resource limits of command and binary runs (setrlimit in the child); 0: none.
    pub run_memory_max_bytes: u64,
    pub run_open_files_max: u64,
    pub run_processes_max: u64,
    /// Runs execute as this (unprivileged) user when set; the worker must be root.
    pub run_as_user: Option<String>,
    /// Every command, binary and bundle run in a sandbox of its own (`JOBCENTER_SANDBOX`,
    /// on by default; off only for hosts without user namespaces).
    pub sandbox: bool,
    /// How a run's process is started (`JOBCENTER_SPAWN`); the sandbox applies either way.
    pub spawn: Spawn,
    /// The first host uid of the sandboxes' uid range (each worker on a host takes a
    /// block of 65,536 from there, each run one uid of the block).
    pub sandbox_uid_base: u32,
    /// Host directories mounted read-only into every sandbox (when they exist).
    pub sandbox_system_dirs: Vec<PathBuf>,
    /// Size of a sandbox's own `/tmp` (memory, counted in the run's memory limit).
    pub sandbox_tmp_bytes: u64,
    /// CPU share of one run relative to others on the worker (cgroup `cpu.shares`).
    pub run_cpu_shares: u64,
    /// HTTP targets may reach private addresses (RFC 1918, loopback, CGNAT, ULA).
    /// Link-local and cloud metadata addresses are refused regardless.
    pub http_allow_private: bool,
    pub worker_workdir: PathBuf,
    pub result_max_bytes: usize,
    pub state_max_bytes: usize,
    pub log_max_bytes: usize,
    pub scheduler_tick: Duration,
    /// How long before its instant a schedule tick's run is queued (claimable only from
    /// the instant): the tick's transaction is committed by then.
    pub scheduler_fire_ahead: Duration,
    pub misfire_threshold: Duration,
    /// Most runs one catch-up under the `each` policy queues for a job.
    pub max_catch_up_ticks: usize,
    /// Where the leading scheduler holds its lock: a direct connection, never
    /// through a transaction-mode pooler. None: `database_url`.
    pub leader_database_url: Option<Secret>,
    pub deleted_job_retention: Duration,
    /// Finished runs older than this are deleted by the leader (with their logs, outcomes
    /// and idempotency keys), in bounded batches. None: kept forever.
    pub run_retention: Option<Duration>,
    /// The last this many runs of each job are kept whatever their age (a run counts
    /// with its retry attempts).
    pub run_retention_keep_per_job: u32,
    pub log_json: bool,
    pub notify: NotifyConfig,
}

/// Delivery of notifications (sent by the scheduling leader).
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// One HTTP attempt's limit (connect, send, answer).
    pub timeout: Duration,
    /// Attempts before a delivery is given up.
    pub max_attempts: i32,
    /// Backoff before the second attempt (doubling, with jitter) and its cap.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// Limits on failed logins (shared by every API node through Postgres).
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    /// Failed logins in a row for one account before it is refused for `lockout`.
    pub max_failures: u32,
    /// Failed logins from one client address before it is refused for `lockout`.
    pub max_failures_per_address: u32,
    /// How long failures are remembered, and how long a lock lasts.
    pub lockout: Duration,
    /// Take the client address from `X-Forwarded-For`/`Forwarded` (behind a proxy).
    pub trust_forwarded_for: bool,
}

/// Reads variables from a map, so tests need not touch the process environment.
struct Vars(HashMap<String, String>);

impl Vars {
    fn raw(&self, name: &'static str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn string(&self, name: &'static str, default: &str) -> String {
        self.raw(name).unwrap_or(default).to_string()
    }

    fn parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.raw(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|_| ConfigError {
                variable: name,
                reason: format!("{raw:?} is not {expected}"),
            }),
        }
    }

    /// An optional secret that, when set, must be at least 32 bytes (HS256 key size).
    fn secret_of_32_bytes(&self, name: &'static str) -> Result<Option<Secret>, ConfigError> {
        match self.raw(name) {
            Some(raw) if raw.len() < 32 => Err(ConfigError {
                variable: name,
                reason: format!(
                    "is {} bytes long; it must be at least 32 bytes (e.g. `openssl rand -hex 32`)",
                    raw.len()
                ),
            }),
            raw => Ok(raw.map(Secret::new)),
        }
    }

    fn bounded(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let expected = format!("an integer in {}..={}", range.start(), range.end());
        let value = self.parsed(name, default, &expected)?;
        if !range.contains(&value) {
            return Err(ConfigError {
                variable: name,
                reason: format!("{value} is not {expected}"),
            });
        }
        Ok(value)
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(std::env::vars().collect())
    }

    /// Reads the given variables; everything absent takes its documented default.
    pub fn from_vars(vars: HashMap<String, String>) -> Result<Config, ConfigError> {
        let v = Vars(vars);
        let listen = v.parsed(
            "JOBCENTER_LISTEN",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            "a socket address like 127.0.0.1:8080",
        )?;
        let jwt_secret = v.secret_of_32_bytes("JOBCENTER_JWT_SECRET")?;
        let jwt_previous_secret = v.secret_of_32_bytes("JOBCENTER_JWT_PREVIOUS_SECRET")?;
        if jwt_previous_secret.is_some() && jwt_secret.is_none() {
            return Err(ConfigError {
                variable: "JOBCENTER_JWT_PREVIOUS_SECRET",
                reason: "is set but JOBCENTER_JWT_SECRET is not: set the new secret too".into(),
            });
        }
        let public_url = v.string("JOBCENTER_PUBLIC_URL", &format!("http://{listen}"));
        if !public_url.starts_with("http://") && !public_url.starts_with("https://") {
            return Err(ConfigError {
                variable: "JOBCENTER_PUBLIC_URL",
                reason: format!("{public_url:?} must start with http:// or https://"),
            });
        }
        let public_url = public_url.trim_end_matches('/').to_string();
        let login = LoginThrottle {
            max_failures: v.bounded("JOBCENTER_LOGIN_MAX_FAILURES", 5, 1..=1000)? as u32,
            max_failures_per_address: v.bounded(
                "JOBCENTER_LOGIN_MAX_FAILURES_PER_ADDRESS",
                50,
                1..=1_000_000,
            )? as u32,
            lockout: secs(v.bounded("JOBCENTER_LOGIN_LOCKOUT_SECONDS", 300, 1..=86_400)?),
            trust_forwarded_for: v.parsed(
                "JOBCENTER_TRUST_FORWARDED_FOR",
                false,
                "true or false",
            )?,
        };
        let bootstrap_admin = match v.raw("JOBCENTER_BOOTSTRAP_ADMIN") {
            None => None,
            Some(raw) => Some(parse_bootstrap_admin(raw)?),
        };
        let artifacts = v.string("JOBCENTER_ARTIFACTS", "file://data/artifacts");
        if !artifacts.starts_with("file://") && !artifacts.starts_with("s3://") {
            return Err(ConfigError {
                variable: "JOBCENTER_ARTIFACTS",
                reason: format!("{artifacts:?} must start with file:// or s3://"),
            });
        }
        let worker_group = v.string("JOBCENTER_WORKER_GROUP", "default");
        if worker_group.len() > 64 {
            return Err(ConfigError {
                variable: "JOBCENTER_WORKER_GROUP",
                reason: "must be at most 64 characters".into(),
            });
        }
        let heartbeat_seconds = v.bounded("JOBCENTER_HEARTBEAT_SECONDS", 2, 1..=300)?;
        let lease_seconds = v.bounded("JOBCENTER_LEASE_SECONDS", 8, 2..=3600)?;
        if lease_seconds < 2 * heartbeat_seconds {
            return Err(ConfigError {
                variable: "JOBCENTER_LEASE_SECONDS",
                reason: format!(
                    "{lease_seconds} must be at least twice JOBCENTER_HEARTBEAT_SECONDS ({heartbeat_seconds})"
                ),
            });
        }
        Ok(Config {
            database_url: Secret::new(v.string(
                "JOBCENTER_DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/jobcenter",
            )),
            db_pool_size: v.bounded("JOBCENTER_DB_POOL_SIZE", 16, 1..=1024)? as usize,
            listen,
            jwt_secret,
            jwt_previous_secret,
            jwt_ttl: secs(v.bounded("JOBCENTER_JWT_TTL_SECONDS", 900, 60..=86_400)?),
            public_url,
            metrics_token: v.raw("JOBCENTER_METRICS_TOKEN").map(Secret::new),
            login,
            webhook_max_body_bytes: v.bounded(
                "JOBCENTER_WEBHOOK_MAX_BODY_BYTES",
                1 << 20,
                1024..=64 << 20,
            )? as usize,
            artifacts,
            s3: crate::artifacts::S3Settings {
                endpoint: v.raw("JOBCENTER_S3_ENDPOINT").map(str::to_owned),
                credentials: match (v.raw("AWS_ACCESS_KEY_ID"), v.raw("AWS_SECRET_ACCESS_KEY")) {
                    (Some(id), Some(secret)) => Some(crate::artifacts::S3Credentials {
                        access_key_id: id.to_string(),
                        secret_access_key: Secret::new(secret),
                        session_token: v.raw("AWS_SESSION_TOKEN").map(Secret::new),
                    }),
                    _ => None,
                },
                region: v.string("JOBCENTER_S3_REGION", "us-east-1"),
            },
            metrics_listen: match v.raw("JOBCENTER_METRICS_LISTEN") {
                None => None,
                Some(raw) => Some(raw.parse().map_err(|_| ConfigError {
                    variable: "JOBCENTER_METRICS_LISTEN",
                    reason: format!("{raw:?} is not a socket address like 127.0.0.1:9090"),
                })?),
            },
            worker_cache_max_bytes: v.bounded(
                "JOBCENTER_WORKER_CACHE_MAX_BYTES",
                2 << 30,
                1 << 20..=(1u64 << 40),
            )?,
            bundle_max_entries: v.bounded(
                "JOBCENTER_BUNDLE_MAX_ENTRIES",
                20_000,
                1..=10_000_000,
            )?,
            bundle_max_bytes: v.bounded(
                "JOBCENTER_BUNDLE_MAX_BYTES",
                1 << 30,
                1 << 20..=(1u64 << 40),
            )?,
            bundle_max_link_bytes: v.bounded(
                "JOBCENTER_BUNDLE_MAX_LINK_BYTES",
                4096,
                1..=65_536,
            )?,
            artifact_max_bytes: v.bounded(
                "JOBCENTER_ARTIFACT_MAX_BYTES",
                100 << 20,
                1..=(64u64 << 30),
            )?,
            bootstrap_admin,
            worker_group,
            worker_capacity: v.bounded("JOBCENTER_WORKER_CAPACITY", 8, 1..=1024)? as usize,
            worker_poll: ms(v.bounded("JOBCENTER_WORKER_POLL_MS", 1000, 10..=60_000)?),
            worker_heartbeat: secs(heartbeat_seconds),
            lease: secs(lease_seconds),
            kill_grace: secs(v.bounded("JOBCENTER_KILL_GRACE_SECONDS", 5, 0..=600)?),
            shutdown_grace: secs(v.bounded("JOBCENTER_SHUTDOWN_GRACE_SECONDS", 30, 0..=86_400)?),
            retry_backoff_base: ms(v.bounded(
                "JOBCENTER_RETRY_BACKOFF_BASE_MS",
                1000,
                1..=3_600_000,
            )?),
            run_memory_max_bytes: v.bounded(
                "JOBCENTER_RUN_MEMORY_MAX_BYTES",
                1 << 30,
                0..=1 << 50,
            )?,
            run_open_files_max: v.bounded("JOBCENTER_RUN_OPEN_FILES_MAX", 1024, 0..=1 << 20)?,
            run_processes_max: v.bounded("JOBCENTER_RUN_PROCESSES_MAX", 1024, 0..=1 << 22)?,
            run_as_user: v.raw("JOBCENTER_RUN_AS_USER").map(str::to_owned),
            sandbox: match v.raw("JOBCENTER_SANDBOX").unwrap_or("on") {
                "on" => true,
                "off" => false,
                other => {
                    return Err(ConfigError {
                        variable: "JOBCENTER_SANDBOX",
                        reason: format!("{other:?} is not on or off"),
                    })
                }
            },
            spawn: match v.raw("JOBCENTER_SPAWN").unwrap_or("clone") {
                "clone" => Spawn::Clone,
                "command" => Spawn::Command,
                other => {
                    return Err(ConfigError {
                        variable: "JOBCENTER_SPAWN",
                        reason: format!("{other:?} is not clone or command"),
                    })
                }
            },
            sandbox_uid_base: v.bounded(
                "JOBCENTER_SANDBOX_UID_BASE",
                2_000_000_000,
                100_000..=4_000_000_000,
            )? as u32,
            sandbox_system_dirs: v
                .string(
                    "JOBCENTER_SANDBOX_SYSTEM_DIRS",
                    "/usr:/bin:/sbin:/lib:/lib32:/lib64:/libx32:/etc:/opt",
                )
                .split(':')
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from)
                .collect(),
            sandbox_tmp_bytes: v.bounded(
                "JOBCENTER_SANDBOX_TMP_BYTES",
                256 << 20,
                1 << 20..=1 << 40,
            )?,
            run_cpu_shares: v.bounded("JOBCENTER_RUN_CPU_SHARES", 1024, 2..=262_144)?,
            http_allow_private: v.parsed("JOBCENTER_HTTP_ALLOW_PRIVATE", false, "true or false")?,
            retry_backoff_max: ms(v.bounded(
                "JOBCENTER_RETRY_BACKOFF_MAX_MS",
                300_000,
                1..=86_400_000,
            )?),
            worker_workdir: PathBuf::from(
                v.string(
                    "JOBCENTER_WORKER_WORKDIR",
                    &std::env::temp_dir()
                        .join("jobcenter-runs")
                        .to_string_lossy(),
                ),
            ),
            result_max_bytes: v.bounded("JOBCENTER_RESULT_MAX_BYTES", 65_536, 0..=16 << 20)?
                as usize,
            state_max_bytes: v.bounded("JOBCENTER_STATE_MAX_BYTES", 1 << 20, 0..=64 << 20)?
                as usize,
            log_max_bytes: v.bounded("JOBCENTER_LOG_MAX_BYTES", 10 << 20, 1024..=1 << 30)? as usize,
            scheduler_tick: ms(v.bounded("JOBCENTER_SCHEDULER_TICK_MS", 200, 10..=60_000)?),
            scheduler_fire_ahead: ms(v.bounded(
                "JOBCENTER_SCHEDULER_FIRE_AHEAD_MS",
                200,
                0..=10_000,
            )?),
            misfire_threshold: secs(v.bounded("JOBCENTER_MISFIRE_SECONDS", 60, 1..=86_400)?),
            max_catch_up_ticks: v.bounded("JOBCENTER_CATCH_UP_MAX_TICKS", 100, 0..=10_000)?
                as usize,
            leader_database_url: v.raw("JOBCENTER_LEADER_DATABASE_URL").map(Secret::new),
            deleted_job_retention: secs(
                3600 * v.bounded("JOBCENTER_DELETED_JOB_RETENTION_HOURS", 168, 1..=87_600)?,
            ),
            run_retention: match v.bounded("JOBCENTER_RUN_RETENTION_DAYS", 30, 0..=36_500)? {
                0 => None,
                days => Some(secs(86_400 * days)),
            },
            run_retention_keep_per_job: v.bounded(
                "JOBCENTER_RUN_RETENTION_KEEP_PER_JOB",
                100,
                0..=1_000_000,
            )? as u32,
            log_json: match v.string("JOBCENTER_LOG_FORMAT", "text").as_str() {
                "text" => false,
                "json" => true,
                other => {
                    return Err(ConfigError {
                        variable: "JOBCENTER_LOG_FORMAT",
                        reason: format!("{other:?} is not \"text\" or \"json\""),
                    })
                }
            },
            notify: NotifyConfig {
                timeout: secs(v.bounded("JOBCENTER_NOTIFY_TIMEOUT_SECONDS", 10, 1..=300)?),
                max_attempts: v.bounded("JOBCENTER_NOTIFY_MAX_ATTEMPTS", 12, 1..=100)? as i32,
                backoff_base: ms(v.bounded(
                    "JOBCENTER_NOTIFY_BACKOFF_BASE_MS",
                    2000,
                    1..=3_600_000,
                )?),
                backoff_max: ms(v.bounded(
                    "JOBCENTER_NOTIFY_BACKOFF_MAX_MS",
                    3_600_000,
                    1..=86_400_000,
                )?),
            },
        })
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn parse_bootstrap_admin(raw: &str) -> Result<BootstrapAdmin, ConfigError> {
    let invalid = |reason: &str| ConfigError {
        variable: "JOBCENTER_BOOTSTRAP_ADMIN",
        reason: reason.to_string(),
    };
    let (username, password) = raw
        .split_once(':')
        .ok_or_else(|| invalid("must be name:password"))?;
    if username.is_empty() || password.is_empty() {
        return Err(invalid("must be name:password with both parts non-empty"));
    }
    if let Err(reason) = crate::password_policy::check(password) {
        return Err(invalid(&format!("the password {reason}")));
    }
    Ok(BootstrapAdmin {
        username: username.to_string(),
        password: Secret::new(password),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = Config::from_vars(HashMap::new()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.worker_group, "default");
        assert!(config.jwt_secret.is_none());
        assert_eq!(config.run_retention, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(config.run_retention_keep_per_job, 100);
        assert_eq!(config.spawn, Spawn::Clone);
        let config = Config::from_vars(vars(&[("JOBCENTER_SPAWN", "command")])).unwrap();
        assert_eq!(config.spawn, Spawn::Command);
    }

    #[test]
    fn zero_run_retention_days_keeps_every_run() {
        let config = Config::from_vars(vars(&[("JOBCENTER_RUN_RETENTION_DAYS", "0")])).unwrap();
        assert_eq!(config.run_retention, None);
        let err = Config::from_vars(vars(&[("JOBCENTER_RUN_RETENTION_DAYS", "-1")])).unwrap_err();
        assert_eq!(err.variable, "JOBCENTER_RUN_RETENTION_DAYS");
    }

    #[test]
    fn malformed_variables_are_named() {
        let err = Config::from_vars(vars(&[("JOBCENTER_WORKER_CAPACITY", "many")])).unwrap_err();
        assert_eq!(err.variable, "JOBCENTER_WORKER_CAPACITY");
        assert!(
            err.to_string().contains("\"many\" is not an integer"),
            "{err}"
        );
        let err = Config::from_vars(vars(&[("JOBCENTER_LISTEN", "nowhere")])).unwrap_err();
        assert_eq!(err.variable, "JOBCENTER_LISTEN");
        let err = Config::from_vars(vars(&[("JOBCENTER_WORKER_CAPACITY", "0")])).unwrap_err();
        assert!(err.reason.contains("1..=1024"), "{err}");
        let err = Config::from_vars(vars(&[("JOBCENTER_SPAWN", "fork")])).unwrap_err();
        assert_eq!(err.variable, "JOBCENTER_SPAWN");
    }

    #[test]
    fn a_lease_shorter_than_two_heartbeats_is_refused() {
        let err = Config::from_vars(vars(&[
            ("JOBCENTER_HEARTBEAT_SECONDS", "5"),
            ("JOBCENTER_LEASE_SECONDS", "8"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "JOBCENTER_LEASE_SECONDS");
        let config = Config::from_vars(HashMap::new()).unwrap();
        assert!(config.lease >= 2 * config.worker_heartbeat);
    }

    #[test]
    fn short_jwt_secret_is_refused() {
        let err = Config::from_vars(vars(&[("JOBCENTER_JWT_SECRET", "short")])).unwrap_err();
        assert_eq!(err.variable, "JOBCENTER_JWT_SECRET");
        assert!(err.reason.contains("at least 32 bytes"), "{err}");
        let long = "x".repeat(32);
        let err = Config::from_vars(vars(&[
            ("JOBCENTER_JWT_SECRET", &long),
            ("JOBCENTER_JWT_PREVIOUS_SECRET", "short"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "JOBCENTER_JWT_PREVIOUS_SECRET");
        let err = Config::from_vars(vars(&[("JOBCENTER_JWT_PREVIOUS_SECRET", &long)])).unwrap_err();
        assert_eq!(err.variable, "JOBCENTER_JWT_PREVIOUS_SECRET");
        let config = Config::from_vars(vars(&[
            ("JOBCENTER_JWT_SECRET", &long),
            ("JOBCENTER_JWT_PREVIOUS_SECRET", &"y".repeat(40)),
        ]))
        .unwrap();
        assert_eq!(config.jwt_previous_secret.unwrap().expose().len(), 40);
    }

    #[test]
    fn public_url_defaults_to_the_listen_address() {
        let config = Config::from_vars(vars(&[("JOBCENTER_LISTEN", "0.0.0.0:9000")])).unwrap();
        assert_eq!(config.public_url, "http://0.0.0.0:9000");
        let config = Config::from_vars(vars(&[(
            "JOBCENTER_PUBLIC_URL",
            "https://jobs.example.com/",
        )]))
        .unwrap();
        assert_eq!(config.public_url, "https://jobs.example.com");
        let err =
            Config::from_vars(vars(&[("JOBCENTER_PUBLIC_URL", "jobs.example.com")])).unwrap_err();
        assert_eq!(err.variable, "JOBCENTER_PUBLIC_URL");
        let err =
            Config::from_vars(vars(&[("JOBCENTER_TRUST_FORWARDED_FOR", "maybe")])).unwrap_err();
        assert_eq!(err.variable, "JOBCENTER_TRUST_FORWARDED_FOR");
    }

    #[test]
    fn bootstrap_admin_is_parsed_and_secret_redacted() {
        let config =
            Config::from_vars(vars(&[("JOBCENTER_BOOTSTRAP_ADMIN", "root:correct-horse")]))
                .unwrap();
        let admin = config.bootstrap_admin.unwrap();
        assert_eq!(admin.username, "root");
        assert_eq!(format!("{:?}", admin.password), "[redacted]");
        let err = Config::from_vars(vars(&[("JOBCENTER_BOOTSTRAP_ADMIN", "root")])).unwrap_err();
        assert_eq!(err.variable, "JOBCENTER_BOOTSTRAP_ADMIN");
    }
}
