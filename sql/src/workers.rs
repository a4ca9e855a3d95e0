//! The `workers` table: live workers and their heartbeats.

use crate::{Error, GenericClient};
use uuid::Uuid;

pub async fn register(
    c: &impl GenericClient,
    id: Uuid,
    group: &str,
    hostname: &str,
    capacity: i32,
) -> Result<(), Error> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO workers (id, worker_group, hostname, capacity) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
        )
        .await?;
    c.execute(&stmt, &[&id, &group, &hostname, &capacity])
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
