//! Read-only figures for `/metrics`, computed by the database at scrape time.

use crate::{Error, GenericClient};

statements! {
    /// Queued runs per worker group, with the age of the oldest.
    pub(crate) const QUEUES: Statement = "SELECT worker_group, count(*) AS depth,
                    extract(epoch FROM now() - min(queued_at))::bigint AS oldest_age_seconds
             FROM runs WHERE state = 'queued' GROUP BY worker_group ORDER BY worker_group LIMIT 1000";
    /// Workers per group whose heartbeat is younger than `$1` seconds.
    pub(crate) const WORKERS_ALIVE: Statement = "SELECT worker_group, count(*) AS alive FROM workers
             WHERE heartbeat_at > now() - make_interval(secs => $1)
             GROUP BY worker_group ORDER BY worker_group LIMIT 1000";
    /// The `application_name` of the session holding advisory lock `$1`.
    pub(crate) const LEADER: Statement =
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
                   SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid = (($1::bigint >> 32) & 4294967295)::oid
               AND l.objid = ($1::bigint & 4294967295)::oid AND l.objsubid = 1
             LIMIT 1";
}

pub struct QueueStats {
    pub worker_group: String,
    pub depth: i64,
    pub oldest_age_seconds: i64,
}

/// Queued runs per worker group, with the age of the oldest (bounded: 1000 groups).
pub async fn queues(c: &impl GenericClient) -> Result<Vec<QueueStats>, Error> {
    let stmt = c.prepare_cached(QUEUES).await?;
    let rows = c.query(&stmt, &[]).await?;
    rows.iter()
        .map(|r| {
            Ok(QueueStats {
                worker_group: r.try_get("worker_group")?,
                depth: r.try_get("depth")?,
                oldest_age_seconds: r.try_get("oldest_age_seconds")?,
            })
        })
        .collect()
}

/// Workers whose heartbeat is younger than `within_seconds`, per group.
pub async fn workers_alive(
    c: &impl GenericClient,
    within_seconds: f64,
) -> Result<Vec<(String, i64)>, Error> {
    let stmt = c.prepare_cached(WORKERS_ALIVE).await?;
    let rows = c.query(&stmt, &[&within_seconds]).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("worker_group")?, r.try_get("alive")?)))
        .collect()
}

/// The `application_name` of the session holding the scheduling leadership lock.
pub async fn leader(c: &impl GenericClient, lock_key: i64) -> Result<Option<String>, Error> {
    let stmt = c.prepare_cached(LEADER).await?;
    Ok(c.query_opt(&stmt, &[&lock_key]).await?.map(|r| r.get(0)))
}
