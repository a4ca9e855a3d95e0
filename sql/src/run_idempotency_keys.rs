//! The `run_idempotency_keys` table: which run a trigger's idempotency key created.
//!
//! A trigger with a key runs in one transaction: [`find`] the key; if absent, insert the
//! run and [`claim`] the key for it. When two deliveries race, the second `claim` waits on
//! the first's row lock and then returns false: the caller rolls back and reads the winner.

use crate::{Error, GenericClient};
use uuid::Uuid;

statements! {
    /// The run created for key `$2` of job `$1`.
    pub(crate) const FIND: Statement =
        "SELECT run_id FROM run_idempotency_keys WHERE job_id = $1 AND key = $2";
    /// Key `$2` of job `$1` created run `$3`, unless the key is taken.
    pub(crate) const CLAIM: Statement =
        "INSERT INTO run_idempotency_keys (job_id, key, run_id) VALUES ($1, $2, $3)
             ON CONFLICT (job_id, key) DO NOTHING";
}

/// The run created for `key` on `job_id`, if any.
pub async fn find(c: &impl GenericClient, job_id: Uuid, key: &str) -> Result<Option<Uuid>, Error> {
    let stmt = c.prepare_cached(FIND).await?;
    Ok(c.query_opt(&stmt, &[&job_id, &key])
        .await?
        .map(|r| r.get(0)))
}

/// Records `run_id` for `key`. False: another trigger holds the key already.
pub async fn claim(
    c: &impl GenericClient,
    job_id: Uuid,
    key: &str,
    run_id: Uuid,
) -> Result<bool, Error> {
    let stmt = c.prepare_cached(CLAIM).await?;
    Ok(c.execute(&stmt, &[&job_id, &key, &run_id]).await? == 1)
}
