//! Work tried inside a larger transaction whose failure must not end it: the worker's
//! group commit claims the next runs in the transaction that records outcomes, and a
//! failed claim (a raced unique index, say) must not lose the outcomes.

use crate::Error;
use std::future::Future;

statements! {
    /// Opens the savepoint [`attempt`] rolls back to.
    pub const SAVEPOINT: Batch = "SAVEPOINT attempt";
    /// Back to [`SAVEPOINT`], the transaction usable again.
    pub(crate) const ROLLBACK_TO_SAVEPOINT: Batch = "ROLLBACK TO SAVEPOINT attempt";
}

/// Runs `work` under a savepoint of `tx`, the `SAVEPOINT` pipelined with it (one round
/// trip). `Ok(Err(_))`: the work failed and the transaction is back at the savepoint,
/// usable; `Err(_)`: it could not be brought back.
pub async fn attempt<T>(
    tx: &crate::Transaction<'_>,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<Result<T, Error>, Error> {
    let (savepoint, done) = futures_util::future::join(tx.batch_execute(SAVEPOINT), work).await;
    let failed = match (savepoint, done) {
        (Ok(()), Ok(value)) => return Ok(Ok(value)),
        (Err(e), _) => Error::from(e),
        (Ok(()), Err(e)) => e,
    };
    tx.batch_execute(ROLLBACK_TO_SAVEPOINT).await?;
    Ok(Err(failed))
}
