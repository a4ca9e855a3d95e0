//! The `job_state` table: what a job's last successful run left in its state file.

use crate::{Error, GenericClient};
use uuid::Uuid;

statements! {
    /// Job `$1`'s state is now `$2`, left by run `$3`.
    pub(crate) const PUT: Statement =
        "INSERT INTO job_state (job_id, data, run_id) VALUES ($1, $2, $3)
         ON CONFLICT (job_id) DO UPDATE SET data = $2, run_id = $3, updated_at = now()";
}

pub async fn put(
    c: &impl GenericClient,
    job_id: Uuid,
    run_id: Uuid,
    data: &[u8],
) -> Result<(), Error> {
    let stmt = c.prepare_cached(PUT).await?;
    c.execute(&stmt, &[&job_id, &data, &run_id]).await?;
    Ok(())
}
