//! The orphan sweep: objects in the artifact store that no live version names — left by a
//! crash between writing an object and its row, or by a deletion whose object removal
//! failed — are deleted once older than a grace period (uploads in progress are younger).

use jobcenter_core::artifacts::ArtifactStore;
use jobcenter_sql::Pool;
use std::time::{Duration, SystemTime};

/// Objects looked at per sweep.
const MAX_LISTED: usize = 10_000;

/// Deletes orphans older than `grace`; returns how many.
pub async fn sweep(pool: &Pool, store: &ArtifactStore, grace: Duration) -> Result<usize, String> {
    let listed = store
        .list("projects", MAX_LISTED)
        .await
        .map_err(|e| e.to_string())?;
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let now = SystemTime::now();
    let mut deleted = 0;
    for object in listed {
        let old_enough = now
            .duration_since(object.modified)
            .is_ok_and(|age| age >= grace);
        if !old_enough {
            continue;
        }
        let live = jobcenter_sql::artifacts::key_is_live(&client, &object.key)
            .await
            .map_err(|e| e.to_string())?;
        if !live {
            store.delete(&object.key).await.map_err(|e| e.to_string())?;
            deleted += 1;
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "removed orphan artifact objects");
    }
    Ok(deleted)
}
