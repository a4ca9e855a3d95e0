//! Queueing a run by hand or by webhook: one transaction that honours an idempotency key
//! and writes the audit record with the run.

use crate::error::ApiError;
use actix_web::http::header::HeaderMap;
use deadpool_postgres::Object;
use jobcenter_sql::run_idempotency_keys as keys;
use jobcenter_sql::runs::{self, NewRun, Run};
use jobcenter_sql::states::RunTrigger;
use serde_json::{json, Value};
use uuid::Uuid;

/// Longest idempotency key or delivery id accepted (characters).
const MAX_KEY_CHARS: usize = 255;

pub struct QueueRun<'a> {
    pub job_id: Uuid,
    pub worker_group: &'a str,
    /// The job's concurrency policy is `skip` (as read with the job): the run is queued
    /// under the job's queue lock.
    pub job_skips: bool,
    pub trigger: RunTrigger,
    pub input: &'a Value,
    pub idempotency_key: Option<&'a str>,
    /// Who triggered it (None: a webhook delivery).
    pub actor_id: Option<Uuid>,
    /// Extra audit detail (e.g. the webhook id).
    pub audit_detail: Value,
}

/// The run queued, and whether it was queued by an earlier request with the same key.
pub struct Queued {
    pub run: Run,
    pub replayed: bool,
}

/// Queues the run, or finds the one an earlier trigger with the same key queued. Without
/// a key, the run and its audit record are committed in one round trip. Two racing
/// triggers with one key: the second's key claim waits for the first's commit, fails,
/// rolls back its run, and the retry reads the first's run.
pub async fn queue_run(client: &mut Object, request: &QueueRun<'_>) -> Result<Queued, ApiError> {
    let new = NewRun {
        job_id: request.job_id,
        trigger: request.trigger,
        input: request.input,
        worker_group: request.worker_group,
        scheduled_for: None,
        retry_of: None,
        parent_run_id: None,
    };
    let mut detail = json!({"job_id": request.job_id, "trigger": request.trigger.as_str()});
    if let (Some(detail), Some(extra)) = (detail.as_object_mut(), request.audit_detail.as_object())
    {
        detail.extend(extra.clone());
    }
    let by = runs::QueuedBy {
        actor_id: request.actor_id,
        action: "run.trigger",
        detail: &detail,
    };
    let Some(key) = request.idempotency_key else {
        let run = runs::insert_audited(client, &new, &by, request.job_skips)
            .await?
            .ok_or(ApiError::NotFound("job"))?;
        return Ok(Queued {
            run,
            replayed: false,
        });
    };
    for _ in 0..2 {
        let tx = client.transaction().await?;
        if let Some(run_id) = keys::find(&tx, request.job_id, key).await? {
            let run = runs::get(&tx, run_id, None)
                .await?
                .ok_or(ApiError::NotFound("run"))?;
            return Ok(Queued {
                run,
                replayed: true,
            });
        }
        // The run and its audit record, under the job's queue lock (so that the skip
        // policy sees every run): one round trip.
        let run = runs::insert_locked(&tx, &new, Some(&by))
            .await?
            .ok_or(ApiError::NotFound("job"))?;
        if !keys::claim(&tx, request.job_id, key, run.id).await? {
            continue; // dropping `tx` rolls the run back
        }
        tx.commit().await?;
        return Ok(Queued {
            run,
            replayed: false,
        });
    }
    Err(ApiError::Conflict(
        "a concurrent request with the same idempotency key is in progress; retry".into(),
    ))
}

/// The first of `names` present in `headers`, validated as an idempotency key.
pub fn idempotency_key<'h>(
    headers: &'h HeaderMap,
    names: &[&'static str],
) -> Result<Option<&'h str>, ApiError> {
    for &name in names {
        if let Some(value) = headers.get(name) {
            let key = value
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.chars().count() <= MAX_KEY_CHARS)
                .ok_or_else(|| {
                    ApiError::invalid(
                        name,
                        format!("must be 1 to {MAX_KEY_CHARS} visible ASCII characters"),
                    )
                })?;
            return Ok(Some(key));
        }
    }
    Ok(None)
}
