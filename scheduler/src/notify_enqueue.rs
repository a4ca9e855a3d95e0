//! Turning a final run outcome into notification deliveries: which events the outcome
//! is (failure, timeout, recovery, finish) and one delivery per channel that asked for
//! any of them. Runs inside the outcome's transaction ([`crate::outcomes`]), so the
//! deliveries exist exactly when the outcome is marked processed; a unique key per
//! channel and run makes a repeat enqueue nothing.

use jobcenter_sql::jobs::{self, Including};
use jobcenter_sql::run_outcomes::{self, PendingOutcome};
use jobcenter_sql::states::RunState;
use jobcenter_sql::GenericClient;
use jobcenter_sql::{notification_channels, notification_deliveries, projects, runs};
use serde_json::json;

/// The events an outcome is, most specific first. `previous` is the job's previous
/// non-cancelled final outcome.
pub fn events_of(state: RunState, previous: Option<RunState>) -> Vec<&'static str> {
    let failed_before = matches!(previous, Some(RunState::Failed | RunState::TimedOut));
    match state {
        RunState::TimedOut => vec!["timeout", "finish"],
        RunState::Failed => vec!["failure", "finish"],
        RunState::Succeeded if failed_before => vec!["recovery", "finish"],
        RunState::Succeeded => vec!["finish"],
        _ => vec![],
    }
}

/// Enqueues the outcome's deliveries; returns how many were new.
pub async fn enqueue(
    tx: &impl GenericClient,
    outcome: &PendingOutcome,
) -> Result<usize, crate::Error> {
    let channels = notification_channels::for_job(tx, outcome.job_id).await?;
    if channels.is_empty() {
        return Ok(0);
    }
    let previous =
        run_outcomes::previous_state(tx, outcome.job_id, outcome.run_id, outcome.finished_at)
            .await?;
    let events = events_of(outcome.state, previous);
    if events.is_empty() {
        return Ok(0);
    }
    let (Some(run), Some(job)) = (
        runs::get(tx, outcome.run_id, None).await?,
        jobs::get(tx, outcome.job_id, None, Including::Deleted).await?,
    ) else {
        return Ok(0);
    };
    let project = projects::get(tx, job.project_id, None).await?;
    let payload = json!({
        "event": null,
        "events": [],
        "job": {"id": job.id, "name": job.fields.name},
        "project": {"id": job.project_id, "name": project.map(|p| p.name)},
        "run": {
            "id": run.id,
            "attempt": run.attempt,
            "trigger": run.trigger,
            "queued_at": run.queued_at,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
        },
        "state": run.state,
        "result": run.result,
        "error": run.error,
        "exit_code": run.exit_code,
    });
    let mut enqueued = 0;
    for (channel_id, wanted) in channels {
        let matching: Vec<String> = events
            .iter()
            .filter(|e| wanted.iter().any(|w| w == *e))
            .map(|e| e.to_string())
            .collect();
        let Some(event) = matching.first() else {
            continue;
        };
        let mut body = payload.clone();
        body["event"] = json!(event);
        body["events"] = json!(matching);
        if notification_deliveries::insert(tx, channel_id, run.id, event, &matching, &body).await? {
            enqueued += 1;
        }
    }
    if enqueued > 0 {
        tracing::info!(run = %run.id, enqueued, ?events, "enqueued notifications");
    }
    Ok(enqueued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunState::*;

    #[test]
    fn events_of_each_outcome() {
        assert_eq!(events_of(Failed, None), ["failure", "finish"]);
        assert_eq!(events_of(TimedOut, Some(Succeeded)), ["timeout", "finish"]);
        assert_eq!(events_of(Succeeded, Some(Failed)), ["recovery", "finish"]);
        assert_eq!(events_of(Succeeded, Some(TimedOut)), ["recovery", "finish"]);
        assert_eq!(events_of(Succeeded, Some(Succeeded)), ["finish"]);
        assert_eq!(events_of(Succeeded, None), ["finish"]);
        assert!(events_of(Cancelled, Some(Failed)).is_empty());
    }
}
