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
    let stmt = c
        .prepare_cached(
            "SELECT a.id, a.actor_id, u.username, a.action, a.subject, a.detail, a.at
             FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id
             WHERE ($1::uuid IS NULL OR a.actor_id = $1)
               AND ($2::text IS NULL OR a.subject = $2)
               AND ($3::bigint IS NULL OR a.id < $3)
             ORDER BY a.id DESC LIMIT $4",
        )
        .await?;
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
    Ok(rows
        .iter()
        .map(|r| AuditEntry {
            id: r.get(0),
            actor_id: r.get(1),
            actor: r.get(2),
            action: r.get(3),
            subject: r.get(4),
            detail: r.get(5),
            at: r.get(6),
        })
        .collect())
}
