//! The `workers` table: live workers and their heartbeats.

use crate::{Error, GenericClient};
use jobcenter_core::sandbox::SandboxReport;
use uuid::Uuid;

statements! {
    /// Worker `$1` of group `$2` on host `$3`, capacity `$4`, sandbox `$5`.
    pub(crate) const REGISTER: Statement =
        "INSERT INTO workers (id, worker_group, hostname, capacity, sandbox)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), sandbox = excluded.sandbox";
    /// Worker `$1` is alive.
    pub(crate) const HEARTBEAT: Statement =
        "UPDATE workers SET heartbeat_at = now() WHERE id = $1";
    /// Forgets worker `$1`.
    pub(crate) const DEREGISTER: Statement = "DELETE FROM workers WHERE id = $1";
    /// Up to `$2` workers with their running runs; alive: a heartbeat within `$1` ms.
    pub(crate) const LIST: Statement =
        "SELECT w.id, w.worker_group, w.hostname, w.capacity,
                    (SELECT count(*) FROM runs r WHERE r.worker_id = w.id AND r.state = 'running')
                      AS running,
                    w.started_at, w.heartbeat_at, w.drained,
                    w.heartbeat_at > now() - $1 * interval '1 millisecond' AS alive, w.sandbox
             FROM workers w ORDER BY w.worker_group, w.started_at, w.id LIMIT $2";
    /// Worker `$1` is drained (`$2` true) or not.
    pub(crate) const SET_DRAINED: Statement = "UPDATE workers SET drained = $2 WHERE id = $1";
    /// Forgets up to 1000 workers silent for `$1` ms.
    pub(crate) const PURGE_SILENT: Statement = "DELETE FROM workers WHERE id IN (SELECT id FROM workers
               WHERE heartbeat_at < now() - $1 * interval '1 millisecond' LIMIT 1000)";
}

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
    let stmt = c.prepare_cached(REGISTER).await?;
    let sandbox = serde_json::to_value(sandbox).expect("a sandbox report serializes to JSON");
    c.execute(&stmt, &[&id, &group, &hostname, &capacity, &sandbox])
        .await?;
    Ok(())
}

/// Renews a worker's heartbeat; false when its row is gone.
pub async fn heartbeat(c: &impl GenericClient, id: Uuid) -> Result<bool, Error> {
    let stmt = c.prepare_cached(HEARTBEAT).await?;
    Ok(c.execute(&stmt, &[&id]).await? == 1)
}

pub async fn deregister(c: &impl GenericClient, id: Uuid) -> Result<(), Error> {
    let stmt = c.prepare_cached(DEREGISTER).await?;
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
    let stmt = c.prepare_cached(LIST).await?;
    let rows = c.query(&stmt, &[&(lease_ms as f64), &limit]).await?;
    rows.iter()
        .map(|r| {
            Ok(WorkerRow {
                id: r.try_get("id")?,
                worker_group: r.try_get("worker_group")?,
                hostname: r.try_get("hostname")?,
                capacity: r.try_get("capacity")?,
                running: r.try_get("running")?,
                started_at: r.try_get("started_at")?,
                heartbeat_at: r.try_get("heartbeat_at")?,
                drained: r.try_get("drained")?,
                alive: r.try_get("alive")?,
                sandbox: serde_json::from_value(r.try_get("sandbox")?).map_err(|e| {
                    Error::Corrupt {
                        column: "workers.sandbox",
                        reason: e.to_string(),
                    }
                })?,
            })
        })
        .collect()
}

/// Drains (true: claims nothing more, finishes what runs) or resumes a worker; false
/// when no such worker exists.
pub async fn set_drained(c: &impl GenericClient, id: Uuid, drained: bool) -> Result<bool, Error> {
    let stmt = c.prepare_cached(SET_DRAINED).await?;
    Ok(c.execute(&stmt, &[&id, &drained]).await? == 1)
}

/// Forgets workers silent for longer than `silent_ms` (their runs were rescued long ago).
pub async fn purge_silent(c: &impl GenericClient, silent_ms: i64) -> Result<u64, Error> {
    let stmt = c.prepare_cached(PURGE_SILENT).await?;
    Ok(c.execute(&stmt, &[&(silent_ms as f64)]).await?)
}
