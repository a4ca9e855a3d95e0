//! Retention: deleted jobs (with their runs and logs) are purged once their retention
//! period has passed; until then they stay readable and restorable.

use crate::Error;
use jobcenter_sql::Pool;
use std::time::Duration;

/// Jobs purged per statement, so that one purge never holds locks for long.
const BATCH: i64 = 100;
/// How long a silent (dead) worker stays listed in `GET /api/v1/workers`.
const WORKER_MEMORY_MS: i64 = 3_600_000;

pub async fn purge(pool: &Pool, retention: Duration) -> Result<u64, Error> {
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(3650));
    let client = pool.get().await?;
    let mut purged = 0;
    loop {
        let n = jobcenter_sql::jobs::purge_deleted(&client, cutoff, BATCH).await?;
        purged += n;
        if n < BATCH as u64 {
            break;
        }
    }
    if purged > 0 {
        tracing::info!(purged, "purged deleted jobs past retention");
    }
    let forgotten = jobcenter_sql::workers::purge_silent(&client, WORKER_MEMORY_MS).await?;
    if forgotten > 0 {
        tracing::info!(forgotten, "forgot workers silent for an hour");
    }
    Ok(purged)
}
