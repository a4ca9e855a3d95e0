//! Leadership by a Postgres session advisory lock, held on a dedicated connection.
//!
//! Exactly one scheduler holds the lock. The lock lives as long as the connection's
//! server session, so a leader that dies (or whose connection drops) frees it, and a
//! standby, which retries every [`RETRY`], takes over. The leader checks its connection
//! before every firing and stops firing when it does not answer within
//! [`CHECK_TIMEOUT`]. The uniqueness of a tick's run in the database, not this lock, is
//! what makes a tick impossible to fire twice.
//!
//! A leader lost to the network is another matter: nothing tells its server session,
//! which keeps the lock until the server's TCP stack gives up on the connection (hours
//! with the operating system's defaults, and never when a proxy or session pooler
//! stands between them, since the server's peer is then the proxy). So the lock
//! connection has keepalives and `tcp_user_timeout` on both ends
//! (`jobcenter_sql::leadership::connect`), and leadership has a heartbeat: the leader
//! sends a statement on its lock connection every [`BEAT`], which the server records
//! as its session's `state_change` (`pg_stat_activity`); a standby
//! that finds the lock held by a session silent for longer than [`SILENCE`] ends that
//! session (`pg_terminate_backend`) and takes the lock. The fence: a leader fires only
//! right after its lock connection answered (within [`CHECK_TIMEOUT`]), and a standby
//! ends it only once that connection has said nothing for [`SILENCE`], five times
//! longer; a firing that outlives that (a process frozen mid-firing) meets the unique
//! index. The leader's beat also ends sessions that sit idle in a transaction holding
//! `jobs` rows for longer than [`SILENCE`] (a cut-off leader's unfinished firing), which
//! would otherwise keep those jobs from firing: the leader skips locked jobs.
//!
//! A session advisory lock does not survive a transaction-mode pooler (PgBouncer
//! `pool_mode=transaction`): the server session that holds it is lent to other clients
//! between statements. Right after taking the lock the leader checks that its own
//! statements keep landing on the session that holds it, and that a second connection
//! to the same URL does not land there; either finding refuses leadership with
//! [`NotASession`]. On a quiet pooler the second check is certain (the pooler hands
//! the idle session that holds the lock to the next client); on a busy one the first
//! check and the check before every firing catch what it misses.

use std::sync::Arc;
use std::time::Duration;

use jobcenter_sql::leadership as sql;
use jobcenter_sql::LEADER_LOCK_KEY;
use tokio_postgres::Client;

/// How often a standby tries to become leader.
const RETRY: Duration = Duration::from_millis(500);
/// How long the leader waits for its connection to answer before stepping down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the leader's lock connection shows it is alive.
const BEAT: Duration = Duration::from_secs(1);
/// How long the lock's holder may stay silent before a standby ends its session: ten
/// beats, five check timeouts. A leader lost to the network is replaced after this,
/// plus a beat and a [`RETRY`] or two.
const SILENCE: Duration = Duration::from_secs(10);
/// `tcp_user_timeout` of the lock connection, on both ends: data unacknowledged this
/// long kills the connection.
const USER_TIMEOUT: Duration = Duration::from_secs(10);

/// Proof of leadership: the connection holding the lock, and its heartbeat.
pub struct Lease {
    client: Arc<Client>,
    beat: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(beat) = &self.beat {
            beat.abort();
        }
    }
}

impl Lease {
    /// Starts the heartbeat, once the session is known to be ours.
    fn start_beat(&mut self) {
        self.beat = Some(tokio::spawn(beat(self.client.clone())));
    }

    /// True while the lock connection answers and still holds the lock.
    pub async fn still_held(&self) -> bool {
        self.fence().still_held().await
    }

    /// The question [`Lease::still_held`] asks, for the tasks of a term to ask it too.
    pub fn fence(&self) -> Fence {
        Fence(self.client.clone())
    }
}

/// The lock connection, to ask right before acting whether leadership still holds.
#[derive(Clone)]
pub struct Fence(Arc<Client>);

impl Fence {
    /// True while the lock connection answers within [`CHECK_TIMEOUT`] and still holds
    /// the lock.
    pub async fn still_held(&self) -> bool {
        let check = sql::holds_lock(&self.0, LEADER_LOCK_KEY);
        match tokio::time::timeout(CHECK_TIMEOUT, check).await {
            Ok(Ok(held)) => held,
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

/// The leader's heartbeat: a statement every [`BEAT`] on the lock connection, which
/// also ends the stale transactions that hold jobs (see the module doc). Ends with the
/// connection; the check before each firing then finds leadership lost.
async fn beat(client: Arc<Client>) {
    let mut every = tokio::time::interval(BEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        every.tick().await;
        let sweep = sql::end_stale_transactions(&client, SILENCE);
        match tokio::time::timeout(CHECK_TIMEOUT, sweep).await {
            Ok(Ok(ended)) => {
                failing = false;
                for session in ended {
                    tracing::warn!(
                        pid = session.pid,
                        application_name = %session.application_name,
                        idle_seconds = session.silent_seconds,
                        "ended a session idle in a transaction that held jobs"
                    );
                }
            }
            Ok(Err(e)) if client.is_closed() => {
                tracing::warn!(error = %e, "leadership heartbeat stopped: connection closed");
                return;
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!(error = %e, "leadership heartbeat failed");
                }
                failing = true;
            }
            // The check before the next firing tells.
            Err(_) => {}
        }
    }
}

impl Lease {
    /// Gives leadership up at once (graceful shutdown); dropping the connection
    /// afterwards would free it too, a little later.
    pub async fn release(&self) {
        let unlock = sql::unlock(&self.client, LEADER_LOCK_KEY);
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
        match sql::connect(url, &session_name(), USER_TIMEOUT).await {
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

/// Tries the lock every [`RETRY`] on one connection, ending a holder silent for longer
/// than [`SILENCE`]; None when the connection fails.
async fn try_lock_until_lost(url: &str, client: Client) -> Result<Option<Lease>, NotASession> {
    let mut cannot_end = false;
    loop {
        match sql::try_lock(&client, LEADER_LOCK_KEY).await {
            Ok((true, lock_pid)) => {
                let mut lease = Lease {
                    client: Arc::new(client),
                    beat: None,
                };
                return match lease.check_session(url, lock_pid).await {
                    Ok(true) => {
                        lease.start_beat();
                        Ok(Some(lease))
                    }
                    Ok(false) => Ok(None),
                    Err(e) => Err(e),
                };
            }
            Ok((false, _)) => {
                match sql::end_silent_holder(&client, LEADER_LOCK_KEY, SILENCE).await {
                    Ok(Some(holder)) => tracing::warn!(
                        pid = holder.pid,
                        application_name = %holder.application_name,
                        silent_seconds = holder.silent_seconds,
                        "ended the session of a silent leader; taking over"
                    ),
                    Ok(None) => {}
                    Err(e) if client.is_closed() => {
                        tracing::warn!(error = %e, "leadership connection failed; reconnecting");
                        return Ok(None);
                    }
                    // Not allowed to end it (another role's session?): keepalives only.
                    Err(e) => {
                        if !cannot_end {
                            tracing::warn!(error = %e, "cannot end a silent leader's session");
                        }
                        cannot_end = true;
                    }
                }
                tokio::time::sleep(RETRY).await
            }
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
            let pid = match sql::backend_pid(&self.client).await {
                Ok(pid) => pid,
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
        match sql::backend_pid(&probe).await {
            Ok(pid) if pid == lock_pid => {
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
