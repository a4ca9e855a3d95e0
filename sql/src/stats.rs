//! Read-only figures for `/metrics`, computed by the database at scrape time.

use crate::{Error, GenericClient};

pub struct QueueStats {
    pub worker_group: String,
    pub depth: i64,
    pub oldest_age_seconds: i64,
}

/// Queued runs per worker group, with the age of the oldest (bounded: 1000 groups).
pub async fn queues(c: &impl GenericClient) -> Result<Vec<QueueStats>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT worker_group, count(*), extract(epoch FROM now() - min(queued_at))::bigint
             FROM runs WHERE state = 'queued' GROUP BY worker_group ORDER BY worker_group LIMIT 1000",
        )
        .await?;
    let rows = c.query(&stmt, &[]).await?;
    Ok(rows
        .iter()
        .map(|r| QueueStats {
            worker_group: r.get(0),
            depth: r.get(1),
            oldest_age_seconds: r.get(2),
        })
        .collect())
}

/// Workers whose heartbeat is younger than `within_seconds`, per group.
pub async fn workers_alive(
    c: &impl GenericClient,
    within_seconds: f64,
) -> Result<Vec<(String, i64)>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT worker_group, count(*) FROM workers
             WHERE heartbeat_at > now() - make_interval(secs => $1)
             GROUP BY worker_group ORDER BY worker_group LIMIT 1000",
        )
        .await?;
    let rows = c.query(&stmt, &[&within_seconds]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The `application_name` of the session holding the scheduling leadership lock.
pub async fn leader(c: &impl GenericClient, lock_key: i64) -> Result<Option<String>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
                   SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid = (($1::bigint >> 32) & 4294967295)::oid
               AND l.objid = ($1::bigint & 4294967295)::oid AND l.objsubid = 1
             LIMIT 1",
        )
        .await?;
    Ok(c.query_opt(&stmt, &[&lock_key]).await?.map(|r| r.get(0)))
}
