//! The statements of scheduling leadership: the session advisory lock
//! ([`crate::LEADER_LOCK_KEY`]) on a dedicated connection, and the means to end a holder
//! that has gone silent. The policy (how often, how long) is the scheduler's.
//!
//! The leader's heartbeat is its session's own activity as the server records it:
//! every statement sets `pg_stat_activity.state_change` of its backend (going active,
//! then idle), and the leader sends one every second. A standby reads that column for
//! the backend holding the lock, on the server's clock, so no clock of ours is trusted
//! and no table is written. A role that cannot see another session's activity (not the
//! same role, no `pg_read_all_stats`) reads NULL there and ends nobody.

use crate::Error;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// TCP keepalives of the leadership connection, on both ends: first probe after 5 s of
/// silence, then every 2 s, 3 unanswered probes and the connection is dead.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_COUNT: u32 = 3;

/// The pg_locks row `l` of the leadership lock `$1` in this database (an advisory lock
/// on a bigint key: classid is its high half, objid its low half, objsubid 1).
macro_rules! the_lock {
    () => {
        "l.locktype = 'advisory' AND l.granted
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND l.classid = (($1::bigint >> 32) & 4294967295)::oid
         AND l.objid = ($1::bigint & 4294967295)::oid AND l.objsubid = 1"
    };
}

statements! {
    /// This session's TCP keepalives on the server's side: first probe after `$1` s of
    /// silence, then every `$2` s, `$3` unanswered probes and the connection is dead.
    pub(crate) const SET_KEEPALIVES: Statement =
        "SELECT set_config('tcp_keepalives_idle', $1, false),
                set_config('tcp_keepalives_interval', $2, false),
                set_config('tcp_keepalives_count', $3, false)";
    /// This session's `tcp_user_timeout` on the server's side: `$1` ms (PostgreSQL 12 and
    /// later).
    pub(crate) const SET_USER_TIMEOUT: Statement =
        "SELECT set_config('tcp_user_timeout', $1, false)";
    /// Tries the session advisory lock `$1` once; and this session's backend.
    pub(crate) const TRY_LOCK: Statement = "SELECT pg_try_advisory_lock($1) AS locked, pg_backend_pid() AS pid";
    /// 1 when this session holds lock `$1`.
    pub(crate) const HOLDS_LOCK: Statement = concat!(
        "SELECT count(*) FROM pg_locks l WHERE ",
        the_lock!(),
        " AND l.pid = pg_backend_pid()"
    );
    /// This session's backend.
    pub(crate) const BACKEND_PID: Statement = "SELECT pg_backend_pid()";
    /// Releases the session advisory lock `$1`.
    pub(crate) const UNLOCK: Statement = "SELECT pg_advisory_unlock($1)";
    /// Ends the session holding lock `$1` if it has been silent for `$2` seconds.
    pub(crate) const END_SILENT_HOLDER: Statement = concat!(
        "SELECT a.pid, coalesce(a.application_name, '') AS application_name,
                extract(epoch FROM now() - a.state_change)::float8 AS silent_seconds,
                pg_terminate_backend(a.pid)
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE ",
        the_lock!(),
        " AND a.pid <> pg_backend_pid()
           AND a.state_change < now() - make_interval(secs => $2)"
    );
    /// Ends the sessions idle in a transaction for `$1` seconds that hold a write lock on
    /// `jobs`.
    pub(crate) const END_STALE_TRANSACTIONS: Statement =
        "SELECT a.pid, coalesce(a.application_name, '') AS application_name,
                extract(epoch FROM now() - a.state_change)::float8 AS silent_seconds,
                pg_terminate_backend(a.pid)
         FROM pg_stat_activity a
         WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
           AND a.state = 'idle in transaction'
           AND a.state_change < now() - make_interval(secs => $1)
           AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid
                         AND l.locktype = 'relation' AND l.relation = 'jobs'::regclass
                         AND l.mode <> 'AccessShareLock')";
}

/// Connects for leadership, named `application_name`: TCP keepalives and
/// `tcp_user_timeout` on the client's socket and, set right after connecting, on
/// the server's, so that each end gives up on a cut connection within seconds rather
/// than the hours of the operating system's defaults (on the server's side, the lock
/// goes with the connection). The connection task is spawned.
pub async fn connect(
    url: &str,
    application_name: &str,
    user_timeout: Duration,
) -> Result<Client, Error> {
    let mut config =
        tokio_postgres::Config::from_str(url).map_err(|e| Error::Url(e.to_string()))?;
    config
        .application_name(application_name)
        .connect_timeout(Duration::from_secs(5))
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_COUNT)
        .tcp_user_timeout(user_timeout);
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "leadership connection ended");
        }
    });
    let idle = KEEPALIVE_IDLE.as_secs().to_string();
    let interval = KEEPALIVE_INTERVAL.as_secs().to_string();
    let count = KEEPALIVE_COUNT.to_string();
    client
        .execute(SET_KEEPALIVES, &[&idle, &interval, &count])
        .await?;
    // PostgreSQL 12 and later; an older server keeps its keepalives alone.
    let user_timeout = user_timeout.as_millis().to_string();
    if let Err(e) = client.execute(SET_USER_TIMEOUT, &[&user_timeout]).await {
        if e.is_closed() {
            return Err(e.into());
        }
        tracing::warn!(error = %e, "the server does not take tcp_user_timeout");
    }
    Ok(client)
}

/// Tries the lock once: whether this session holds it now, and this session's backend.
pub async fn try_lock(client: &Client, key: i64) -> Result<(bool, i32), Error> {
    let row = client.query_one(TRY_LOCK, &[&key]).await?;
    Ok((row.try_get("locked")?, row.try_get("pid")?))
}

/// True when this session holds the lock.
pub async fn holds_lock(client: &Client, key: i64) -> Result<bool, Error> {
    let row = client.query_one(HOLDS_LOCK, &[&key]).await?;
    Ok(row.get::<_, i64>(0) == 1)
}

/// This session's backend process id.
pub async fn backend_pid(client: &Client) -> Result<i32, Error> {
    Ok(client.query_one(BACKEND_PID, &[]).await?.get(0))
}

/// Releases the lock if this session holds it.
pub async fn unlock(client: &Client, key: i64) -> Result<(), Error> {
    client.execute(UNLOCK, &[&key]).await?;
    Ok(())
}

/// A session ended by [`end_silent_holder`] or [`end_stale_transactions`].
#[derive(Debug, Clone)]
pub struct Ended {
    pub pid: i32,
    pub application_name: String,
    /// How long the session had been silent, by the server's clock.
    pub silent_seconds: f64,
}

/// Ends (`pg_terminate_backend`) the session holding the lock if its last statement
/// began or ended more than `silence` ago. Its backend exits and the lock goes with it
/// (`pg_terminate_backend` does not wait for that: try the lock again a little later).
pub async fn end_silent_holder(
    client: &Client,
    key: i64,
    silence: Duration,
) -> Result<Option<Ended>, Error> {
    let row = client
        .query_opt(END_SILENT_HOLDER, &[&key, &silence.as_secs_f64()])
        .await?;
    row.map(|r| ended(&r)).transpose()
}

/// Ends the sessions of this database that have sat idle inside a transaction for
/// more than `silence` after locking or writing rows of `jobs` (a lock on the table
/// stronger than a plain read's): the unfinished firing of a leader cut off from the
/// database. Such rows stay locked until the server notices the dead connection, and
/// the leader skips locked jobs (`SKIP LOCKED`), so their ticks would wait that long.
/// No transaction of jobcenter waits seconds between its statements.
pub async fn end_stale_transactions(
    client: &Client,
    silence: Duration,
) -> Result<Vec<Ended>, Error> {
    let rows = client
        .query(END_STALE_TRANSACTIONS, &[&silence.as_secs_f64()])
        .await?;
    rows.iter().map(ended).collect()
}

fn ended(row: &tokio_postgres::Row) -> Result<Ended, Error> {
    Ok(Ended {
        pid: row.try_get("pid")?,
        application_name: row.try_get("application_name")?,
        silent_seconds: row.try_get("silent_seconds")?,
    })
}
