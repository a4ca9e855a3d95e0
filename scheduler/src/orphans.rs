//! The orphan sweep: objects in the artifact store that no live version names — left by a
//! crash between writing an object and its row, or by a deletion whose object removal
//! failed — are deleted once older than a grace period (uploads in progress are younger).
//!
//! A sweep walks the whole store a page at a time, each page starting after the last
//! key of the previous one (a cursor that deletions do not move), and asks the database
//! about a page's keys in one statement.

use crate::term::Term;
use jobcenter_core::artifacts::{ArtifactStore, S3Settings};
use jobcenter_sql::Pool;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

/// How often the leader sweeps (counted from the end of the previous sweep).
const EVERY: Duration = Duration::from_secs(600);
/// How old an object without a row must be to count as an orphan.
const GRACE: Duration = Duration::from_secs(3600);
/// Objects listed, and keys looked up, at once.
pub const PAGE_SIZE: usize = 1000;

/// The leader's sweeps, a task of the term: one at its start, then every [`EVERY`].
pub(crate) async fn run(term: Term, pool: Pool, location: String, s3: S3Settings) {
    let store = match ArtifactStore::open(&location, &s3).await {
        Ok(store) => store,
        Err(e) => {
            tracing::warn!(error = %e, "artifact store unavailable: orphans are not swept this term");
            return;
        }
    };
    while term.still_held().await {
        if let Err(e) = sweep(&pool, &store, GRACE, PAGE_SIZE).await {
            tracing::warn!(error = %e, "sweeping orphan artifacts failed; retrying later");
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Deletes the orphans older than `grace` in the whole store, listing `page_size`
/// objects at a time; returns how many.
pub async fn sweep(
    pool: &Pool,
    store: &ArtifactStore,
    grace: Duration,
    page_size: usize,
) -> Result<usize, String> {
    let mut deleted = 0;
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list("projects", after.as_deref(), page_size)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        let now = SystemTime::now();
        let old: Vec<String> = page
            .iter()
            .filter(|o| now.duration_since(o.modified).is_ok_and(|age| age >= grace))
            .map(|o| o.key.clone())
            .collect();
        deleted += delete_orphans(pool, store, &old).await?;
        if page.len() < page_size {
            break;
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "removed orphan artifact objects");
    }
    Ok(deleted)
}

/// Deletes those of `keys` that no live version names; returns how many.
async fn delete_orphans(
    pool: &Pool,
    store: &ArtifactStore,
    keys: &[String],
) -> Result<usize, String> {
    if keys.is_empty() {
        return Ok(0);
    }
    let live: HashSet<String> = {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        jobcenter_sql::artifacts::live_keys(&client, keys)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect()
    };
    let mut deleted = 0;
    for key in keys.iter().filter(|key| !live.contains(*key)) {
        store.delete(key).await.map_err(|e| e.to_string())?;
        deleted += 1;
    }
    Ok(deleted)
}
