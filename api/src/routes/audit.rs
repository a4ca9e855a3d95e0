//! The audit log (admins only): who changed what, and when.

use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::pagination::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::routes::db;
use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use jobcenter_sql::audit::{AuditEntry, AuditFilter};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries by this user.
    pub actor_id: Option<Uuid>,
    /// Only entries about this target, e.g. `job:<uuid>`, `user:<uuid>`, `run:<uuid>`.
    pub target: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEntryResponse {
    pub id: i64,
    /// Who did it; null for a webhook delivery or the system.
    pub actor_id: Option<Uuid>,
    /// The actor's username, when the account still exists.
    pub actor: Option<String>,
    /// e.g. `user.create`, `project.update`, `run.trigger`.
    pub action: String,
    /// `kind:id` of what was changed.
    pub target: String,
    pub detail: Value,
    pub at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntryResponse>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl From<AuditEntry> for AuditEntryResponse {
    fn from(e: AuditEntry) -> Self {
        AuditEntryResponse {
            id: e.id,
            actor_id: e.actor_id,
            actor: e.actor,
            action: e.action,
            target: e.subject,
            detail: e.detail,
            at: e.at,
        }
    }
}

/// Audit entries, newest first, filterable by actor and target.
#[utoipa::path(
    tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses(
        (status = 200, body = AuditPage),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/audit")]
pub async fn list_audit(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin("only admins read the audit log")?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be in 1..={MAX_LIMIT}"),
        ));
    }
    let before_id = match &query.cursor {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid("cursor", "is not a cursor this API returned"))?,
        ),
    };
    let filter = AuditFilter {
        actor_id: query.actor_id,
        subject: query.target.as_deref(),
        before_id,
        limit,
    };
    let rows = jobcenter_sql::audit::list(&db(&state).await?, &filter).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(HttpResponse::Ok().json(AuditPage {
        items: rows.into_iter().map(Into::into).collect(),
        next,
    }))
}
