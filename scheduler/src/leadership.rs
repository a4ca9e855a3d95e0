//! Leadership by a Postgres session advisory lock, held on a dedicated connection.
//!
//! Exactly one scheduler holds the lock. The lock lives as long as the connection, so a
//! leader that dies (or whose connection drops) frees it, and a standby, which retries
//! every [`RETRY`], takes over. The leader checks its connection before every firing;
//! TCP keepalives bound how long a silently cut connection can go unnoticed. The
//! uniqueness of a tick's run in the database, not this lock, is what makes a tick
//! impossible to fire twice.
//!
//! A session advisory lock does not survive a transaction-mode pooler (PgBouncer
//! `pool_mode=transaction`): the server session that holds it is lent to other clients
//! between statements. Right after taking the lock the leader checks that its own
//! statements keep landing on the session that holds it, and that a second connection
//! to the same URL does not land there; either finding refuses leadership with
//! [`NotASession`]. On a quiet pooler the second check is certain (the pooler hands
//! the idle session that holds the lock to the next client); on a busy one the first
//! check and the check before every firing catch what it misses.

use std::time::Duration;

use jobcenter_sql::LEADER_LOCK_KEY;
/// How often a standby tries to become leader.
const RETRY: Duration = Duration::from_millis(500);
/// How long the leader waits for its connection to answer before stepping down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Proof of leadership: the connection holding the lock.
pub struct Lease {
    client: tokio_postgres::Client,
}

impl Lease {
    /// True while the lock connection answers and still holds the lock.
    pub async fn still_held(&self) -> bool {
        let check = self.client.query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND pid = pg_backend_pid() AND objid = ($1::bigint & 4294967295)::oid",
            &[&LEADER_LOCK_KEY],
        );
        match tokio::time::timeout(CHECK_TIMEOUT, check).await {
            Ok(Ok(row)) => row.get::<_, i64>(0) == 1,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "leadership connection failed");
                false
            }
            Err(_) => {
                tracing::warn!("leadership connection did not answer in time");
                false
            }
        }
    }
}

impl Lease {
    /// Gives leadership up at once (graceful shutdown); dropping the connection
    /// afterwards would free it too, a little later.
    pub async fn release(&self) {
        let unlock = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&LEADER_LOCK_KEY]);
        if let Ok(Err(e)) = tokio::time::timeout(CHECK_TIMEOUT, unlock).await {
            tracing::warn!(error = %e, "could not release leadership explicitly");
        }
    }
}

/// The leadership connection does not keep one server session.
#[derive(Debug, thiserror::Error)]
#[error(
    "the leadership connection does not keep its own server session ({evidence}): it \
     goes through a transaction-mode pooler? Point JOBCENTER_LEADER_DATABASE_URL at \
     PostgreSQL directly (or a session-mode pool)"
)]
pub struct NotASession {
    evidence: String,
}

/// Waits until this process holds the leadership lock.
pub async fn acquire(url: &str) -> Result<Lease, NotASession> {
    loop {
        match jobcenter_sql::db::connect_direct_as(url, &session_name()).await {
            Ok(client) => {
                if let Some(lease) = try_lock_until_lost(url, client).await? {
                    return Ok(lease);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect for leadership; retrying"),
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// How this scheduler names its session, so `/metrics` can tell who leads.
fn session_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("jobcenter-scheduler {}:{}", host.trim(), std::process::id())
}

/// Tries the lock every [`RETRY`] on one connection; None when the connection fails.
async fn try_lock_until_lost(
    url: &str,
    client: tokio_postgres::Client,
) -> Result<Option<Lease>, NotASession> {
    loop {
        match client
            .query_one(
                "SELECT pg_try_advisory_lock($1), pg_backend_pid()",
                &[&LEADER_LOCK_KEY],
            )
            .await
        {
            Ok(row) if row.get::<_, bool>(0) => {
                let lease = Lease { client };
                return match lease.check_session(url, row.get(1)).await {
                    Ok(true) => Ok(Some(lease)),
                    Ok(false) => Ok(None),
                    Err(e) => Err(e),
                };
            }
            Ok(_) => tokio::time::sleep(RETRY).await,
            Err(e) => {
                tracing::warn!(error = %e, "leadership connection failed; reconnecting");
                return Ok(None);
            }
        }
    }
}

impl Lease {
    /// Checks that a few statements land on the session holding the lock (`lock_pid`)
    /// and that another connection does not. Ok(false): a connection failed meanwhile.
    async fn check_session(&self, url: &str, lock_pid: i32) -> Result<bool, NotASession> {
        for _ in 0..3 {
            let pid = match self.client.query_one("SELECT pg_backend_pid()", &[]).await {
                Ok(row) => row.get::<_, i32>(0),
                Err(_) => return Ok(false),
            };
            if pid != lock_pid {
                return self
                    .refuse(format!(
                        "its statements landed on backends {lock_pid} then {pid}"
                    ))
                    .await;
            }
        }
        let probe = match jobcenter_sql::db::connect_direct_as(url, "jobcenter-probe").await {
            Ok(probe) => probe,
            Err(_) => return Ok(false),
        };
        match probe.query_one("SELECT pg_backend_pid()", &[]).await {
            Ok(row) if row.get::<_, i32>(0) == lock_pid => {
                return self
                    .refuse(format!(
                        "another connection was served by backend {lock_pid}, which holds the lock"
                    ))
                    .await;
            }
            Ok(_) => {}
            Err(_) => return Ok(false),
        }
        Ok(self.still_held().await)
    }

    /// Gives the lock back (a pooled session would otherwise keep it) and refuses.
    async fn refuse(&self, evidence: String) -> Result<bool, NotASession> {
        self.release().await;
        Err(NotASession { evidence })
    }
}
