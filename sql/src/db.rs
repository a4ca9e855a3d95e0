//! Connections, pooling and migrations.

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::NoTls;

pub type Pool = deadpool_postgres::Pool;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Arbitrary constant: the advisory lock key that serializes migrations.
const MIGRATION_LOCK_KEY: i64 = 0x6a6f_6263_6d69_6772; // "jobcmigr"

statements! {
    /// Takes the session advisory lock `$1` (the migrations').
    pub(crate) const LOCK: Statement = "SELECT pg_advisory_lock($1)";
    /// Releases the session advisory lock `$1`.
    pub(crate) const UNLOCK: Statement = "SELECT pg_advisory_unlock($1)";
    /// The latest migration applied (SQLSTATE 42P01 while the history table does not exist).
    pub(crate) const LATEST_MIGRATION: Statement = "SELECT max(version) FROM refinery_schema_history WHERE to_regclass('refinery_schema_history') IS NOT NULL";
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] refinery::Error),
    #[error("invalid stored value in {column}: {reason}")]
    Corrupt {
        column: &'static str,
        reason: String,
    },
    #[error("invalid database URL: {0}")]
    Url(String),
}

impl Error {
    /// True when the database could not be reached (as opposed to a bad statement).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Pool(_) => true,
            Error::Db(e) => {
                // 08: connection exceptions; 57P01-03: the server is shutting down or
                // starting up (a restart); 53300: too many connections.
                let code = e.code().map(|c| c.code()).unwrap_or("");
                e.is_closed()
                    || code.starts_with("08")
                    || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
                    || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            }
            _ => false,
        }
    }

    /// The SQLSTATE of a database-side error, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Db(e) => e.code().map(|c| c.code()),
            _ => None,
        }
    }
}

fn parse_url(url: &str) -> Result<tokio_postgres::Config, Error> {
    tokio_postgres::Config::from_str(url).map_err(|e| Error::Url(e.to_string()))
}

/// A pool of connections for request-sized work (never held across a run).
pub fn new_pool(url: &str, max_size: usize) -> Result<Pool, Error> {
    let mut config = parse_url(url)?;
    config.connect_timeout(Duration::from_secs(5));
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| Error::Url(e.to_string()))
}

/// A dedicated connection outside the pool (leadership lock, LISTEN), with TCP
/// keepalives so that a silently dead peer is noticed. The connection task is spawned.
pub async fn connect_direct(url: &str) -> Result<tokio_postgres::Client, Error> {
    connect_direct_as(url, "jobcenter").await
}

/// Like [`connect_direct`], naming the session (`application_name`, visible in
/// `pg_stat_activity`).
pub async fn connect_direct_as(
    url: &str,
    application_name: &str,
) -> Result<tokio_postgres::Client, Error> {
    let mut config = parse_url(url)?;
    config.application_name(application_name);
    let (client, connection) = connect_with(config).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "direct database connection ended");
        }
    });
    Ok(client)
}

/// Like [`connect_direct`] but hands back the connection so the caller can poll it
/// (needed to receive LISTEN notifications).
pub async fn connect_direct_with_connection(
    url: &str,
) -> Result<(tokio_postgres::Client, DirectConnection), Error> {
    connect_with(parse_url(url)?).await
}

type DirectConnection =
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>;

async fn connect_with(
    mut config: tokio_postgres::Config,
) -> Result<(tokio_postgres::Client, DirectConnection), Error> {
    config.connect_timeout(Duration::from_secs(5));
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(5));
    config.keepalives_interval(Duration::from_secs(2));
    config.keepalives_retries(3);
    Ok(config.connect(NoTls).await?)
}

/// Applies pending migrations, each once and in its own transaction. An advisory lock
/// makes components that start at once against an empty database take turns.
pub async fn migrate(url: &str) -> Result<usize, Error> {
    let mut client = connect_direct(url).await?;
    client.execute(LOCK, &[&MIGRATION_LOCK_KEY]).await?;
    let report = embedded::migrations::runner()
        .set_grouped(false)
        .run_async(&mut client)
        .await;
    client.execute(UNLOCK, &[&MIGRATION_LOCK_KEY]).await?;
    Ok(report?.applied_migrations().len())
}

/// True when every embedded migration is recorded as applied (for `/readyz`).
pub async fn migrations_applied(client: &impl crate::GenericClient) -> Result<bool, Error> {
    let latest = embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0);
    let row = client.query_opt(LATEST_MIGRATION, &[]).await;
    match row {
        Ok(Some(row)) => Ok(row.get::<_, Option<i32>>(0).unwrap_or(0) >= latest),
        Ok(None) => Ok(false),
        // The history table does not exist yet (42P01): not migrated.
        Err(e) if e.code().map(|c| c.code()) == Some("42P01") => Ok(false),
        Err(e) => Err(e.into()),
    }
}
