//! Queueing a run by hand or by webhook: one transaction that honours an idempotency key
//! and writes the audit record with the run. Without a key, a trigger of a job the caller
//! has not read yet is one statement ([`queue_run_if_open`]).

use crate::error::ApiError;
use actix_web::http::header::HeaderMap;
use deadpool_postgres::Object;
use jobcenter_sql::run_idempotency_keys as keys;
use jobcenter_sql::runs::{self, Guard, QueuedBy, Run, RunInsert};
use jobcenter_sql::states::RunTrigger;
use serde_json::{json, Value};
use uuid::Uuid;

/// Longest idempotency key or delivery id accepted (characters).
const MAX_KEY_CHARS: usize = 255;

pub struct QueueRun<'a> {
    pub job_id: Uuid,
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

/// Queues the run in one statement if it has no idempotency key and its job is live,
/// enabled, owned by `owner` (None: anyone's) and not under the `skip` policy. `None`:
/// nothing was queued; the caller reads the job (to answer 404 or 409) and calls
/// [`queue_run`].
pub async fn queue_run_if_open(
    client: &Object,
    request: &QueueRun<'_>,
    owner: Option<Uuid>,
) -> Result<Option<Queued>, ApiError> {
    if request.idempotency_key.is_some() {
        return Ok(None);
    }
    let detail = audit_detail(request);
    let insert = run_insert(request, Guard::OpenJob { owner }, &detail);
    let run = runs::insert(client, &insert).await?;
    Ok(run.map(|run| Queued {
        run,
        replayed: false,
    }))
}

/// Queues the run, or finds the one an earlier trigger with the same key queued.
/// `job_skips`: the job's concurrency policy is `skip` (as read with the job); without a
/// key, only then is the run queued under the job's queue lock (with a key, the lock
/// statement always goes with the insert, and locks only a `skip` job). Without a key,
/// the run and its audit record are committed in one round trip. Two racing triggers
/// with one key: the second's key claim waits for the first's commit, fails, rolls back
/// its run, and the retry reads the first's run.
pub async fn queue_run(
    client: &mut Object,
    request: &QueueRun<'_>,
    job_skips: bool,
) -> Result<Queued, ApiError> {
    let detail = audit_detail(request);
    let Some(key) = request.idempotency_key else {
        let guard = if job_skips {
            Guard::QueueLockCommitted
        } else {
            Guard::Unlocked
        };
        let run = runs::insert(client, &run_insert(request, guard, &detail))
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
        let run = runs::insert(&tx, &run_insert(request, Guard::QueueLock, &detail))
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

/// The run `request` queues under `guard`, with its audit record (`detail`).
fn run_insert<'a>(request: &QueueRun<'a>, guard: Guard, detail: &'a Value) -> RunInsert<'a> {
    RunInsert {
        job_id: request.job_id,
        trigger: request.trigger,
        input: request.input,
        scheduled_for: None,
        retry_of: None,
        parent_run_id: None,
        guard,
        audit: Some(QueuedBy {
            actor_id: request.actor_id,
            action: "run.trigger",
            detail,
        }),
    }
}

/// The audit record's detail: the job and the trigger, and the request's extra detail.
fn audit_detail(request: &QueueRun<'_>) -> Value {
    let mut detail = json!({"job_id": request.job_id, "trigger": request.trigger.as_str()});
    if let (Some(detail), Some(extra)) = (detail.as_object_mut(), request.audit_detail.as_object())
    {
        detail.extend(extra.clone());
    }
    detail
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
