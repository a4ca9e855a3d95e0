//! The `workers` table: live workers and their heartbeats.

use crate::{Error, GenericClient};
use jobcenter_core::sandbox::SandboxReport;
use uuid::Uuid;

/// Records a worker and the sandbox it enforces; registering again (its row was purged
/// while it was away) renews the heartbeat and the report.
pub async fn register(
    c: &impl GenericClient,
    id: Uuid,
    group: &str,
    hostname: &str,
    capacity: i32,
    sandbox: &SandboxReport,
) -> Result<(), Error> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO workers (id, worker_group, hostname, capacity, sandbox)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), sandbox = excluded.sandbox",
        )
        .await?;
    let sandbox = serde_json::to_value(sandbox).expect("a sandbox report serializes to JSON");
    c.execute(&stmt, &[&id, &group, &hostname, &capacity, &sandbox])
        .await?;
    Ok(())
}

/// Renews a worker's heartbeat; false when its row is gone.
pub async fn heartbeat(c: &impl GenericClient, id: Uuid) -> Result<bool, Error> {
    let stmt = c
        .prepare_cached("UPDATE workers SET heartbeat_at = now() WHERE id = $1")
        .await?;
    Ok(c.execute(&stmt, &[&id]).await? == 1)
}

pub async fn deregister(c: &impl GenericClient, id: Uuid) -> Result<(), Error> {
    let stmt = c
        .prepare_cached("DELETE FROM workers WHERE id = $1")
        .await?;
    c.execute(&stmt, &[&id]).await?;
    Ok(())
}

/// A worker as an operator sees it.
#[derive(Debug, Clone)]
pub struct WorkerRow {
    pub id: Uuid,
    pub worker_group: String,
    pub hostname: String,
    pub capacity: i32,
    pub running: i64,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub heartbeat_at: chrono::DateTime<chrono::Utc>,
    pub drained: bool,
    /// Heartbeat seen within `lease_ms`.
    pub alive: bool,
    /// The sandbox it enforces, as it registered.
    pub sandbox: SandboxReport,
}

/// Every known worker (at most `limit`), by group then start, with its running runs.
pub async fn list(
    c: &impl GenericClient,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<WorkerRow>, Error> {
    let stmt = c
        .prepare_cached(
            "SELECT w.id, w.worker_group, w.hostname, w.capacity,
                    (SELECT count(*) FROM runs r WHERE r.worker_id = w.id AND r.state = 'running'),
                    w.started_at, w.heartbeat_at, w.drained,
                    w.heartbeat_at > now() - $1 * interval '1 millisecond', w.sandbox
             FROM workers w ORDER BY w.worker_group, w.started_at, w.id LIMIT $2",
        )
        .await?;
    let rows = c.query(&stmt, &[&(lease_ms as f64), &limit]).await?;
    rows.iter()
        .map(|r| {
            Ok(WorkerRow {
                id: r.get(0),
                worker_group: r.get(1),
                hostname: r.get(2),
                capacity: r.get(3),
                running: r.get(4),
                started_at: r.get(5),
                heartbeat_at: r.get(6),
                drained: r.get(7),
                alive: r.get(8),
                sandbox: serde_json::from_value(r.get(9)).map_err(|e| Error::Corrupt {
                    column: "workers.sandbox",
                    reason: e.to_string(),
                })?,
            })
        })
        .collect()
}

/// Drains (true: claims nothing more, finishes what runs) or resumes a worker; false
/// when no such worker exists.
pub async fn set_drained(c: &impl GenericClient, id: Uuid, drained: bool) -> Result<bool, Error> {
    let stmt = c
        .prepare_cached("UPDATE workers SET drained = $2 WHERE id = $1")
        .await?;
    Ok(c.execute(&stmt, &[&id, &drained]).await? == 1)
}

/// Forgets workers silent for longer than `silent_ms` (their runs were rescued long ago).
pub async fn purge_silent(c: &impl GenericClient, silent_ms: i64) -> Result<u64, Error> {
    let stmt = c
        .prepare_cached(
            "DELETE FROM workers WHERE id IN (SELECT id FROM workers
               WHERE heartbeat_at < now() - $1 * interval '1 millisecond' LIMIT 1000)",
        )
        .await?;
    Ok(c.execute(&stmt, &[&(silent_ms as f64)]).await?)
}
