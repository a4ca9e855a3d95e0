//! The `audit_log` table: who changed what, written in the same transaction as the change.

use crate::{Error, GenericClient};
use serde_json::Value;
use uuid::Uuid;

pub async fn record(
    c: &impl GenericClient,
    actor_id: Option<Uuid>,
    action: &str,
    subject: &str,
    detail: &Value,
) -> Result<(), Error> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO audit_log (actor_id, action, subject, detail) VALUES ($1, $2, $3, $4)",
        )
        .await?;
    c.execute(&stmt, &[&actor_id, &action, &subject, detail])
        .await?;
    Ok(())
}
