//! The `audit_log` table: who changed what, written in the same transaction as the change.

use crate::{Error, GenericClient};
use serde_json::Value;
use uuid::Uuid;

statements! {
    /// An entry: actor `$1`, action `$2`, subject `$3`, detail `$4`.
    pub(crate) const RECORD: Statement =
        "INSERT INTO audit_log (actor_id, action, subject, detail) VALUES ($1, $2, $3, $4)";
    /// Entries by actor `$1`, about subject `$2` (null: any), older than id `$3`, newest
    /// first, at most `$4`; with the actor's current username.
    pub(crate) const LIST: Statement =
        "SELECT a.id, a.actor_id, u.username AS actor, a.action, a.subject, a.detail, a.at
         FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id
         WHERE ($1::uuid IS NULL OR a.actor_id = $1)
           AND ($2::text IS NULL OR a.subject = $2)
           AND ($3::bigint IS NULL OR a.id < $3)
         ORDER BY a.id DESC LIMIT $4";
}

pub async fn record(
    c: &impl GenericClient,
    actor_id: Option<Uuid>,
    action: &str,
    subject: &str,
    detail: &Value,
) -> Result<(), Error> {
    let stmt = c.prepare_cached(RECORD).await?;
    c.execute(&stmt, &[&actor_id, &action, &subject, detail])
        .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: i64,
    pub actor_id: Option<Uuid>,
    pub actor: Option<String>,
    pub action: String,
    pub subject: String,
    pub detail: Value,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// What to read from the log; `None` filters nothing.
pub struct AuditFilter<'a> {
    pub actor_id: Option<Uuid>,
    pub subject: Option<&'a str>,
    /// Only entries older than this id (the cursor of the previous page).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Entries newest first, with the actor's current username when the actor still exists.
pub async fn list(
    c: &impl GenericClient,
    filter: &AuditFilter<'_>,
) -> Result<Vec<AuditEntry>, Error> {
    let stmt = c.prepare_cached(LIST).await?;
    let rows = c
        .query(
            &stmt,
            &[
                &filter.actor_id,
                &filter.subject,
                &filter.before_id,
                &filter.limit,
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get("id")?,
                actor_id: r.try_get("actor_id")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                subject: r.try_get("subject")?,
                detail: r.try_get("detail")?,
                at: r.try_get("at")?,
            })
        })
        .collect()
}
