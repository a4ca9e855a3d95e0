//! Disable/enable, edit, delete/restore: what happens to the queue and the history.

use crate::harness::{eventually, Api, Component, TestDb};
use serde_json::json;
use std::time::Duration;

fn command(script: &str) -> serde_json::Value {
    json!({"kind": "command", "command": ["sh", "-c", script]})
}

#[tokio::test]
async fn disabling_cancels_queued_runs_and_stops_the_schedule() {
    let db = TestDb::new();
    // No worker: triggered runs stay queued until the job is disabled.
    let app = Component::start("api", &db, &[]);
    let _scheduler = Component::start("scheduler", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "q", "target": command("true"),
                                     "schedule": {"kind": "cron", "expression": "* * * * * *"}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap();
    let manual = api.trigger(job_id, json!(1)).await;
    eventually(Duration::from_secs(30), "a scheduled tick", || async {
        (api.runs_of(job_id).await.len() >= 2).then_some(())
    })
    .await;

    let reply = api
        .post(&format!("/api/v1/jobs/{job_id}/disable"), json!({}))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["enabled"], false);
    assert!(reply.body["next_fire_at"].is_null());
    let runs = api.runs_of(job_id).await;
    assert!(runs.iter().all(|r| r["state"] == "cancelled"), "{runs:?}");
    assert_eq!(
        api.get(&format!("/api/v1/runs/{manual}")).await.body["error"],
        "job disabled"
    );
    api.post(&format!("/api/v1/jobs/{job_id}/runs"), json!({}))
        .await
        .assert_problem(409);

    // The schedule stays stopped: wait past two tick instants.
    let count = runs.len();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        api.runs_of(job_id).await.len(),
        count,
        "a disabled job fired"
    );

    let reply = api
        .post(&format!("/api/v1/jobs/{job_id}/enable"), json!({}))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body["next_fire_at"].is_string(), "{reply:?}");
    eventually(Duration::from_secs(30), "ticks after enabling", || async {
        (api.runs_of(job_id).await.len() > count).then_some(())
    })
    .await;
}

#[tokio::test]
async fn editing_keeps_history_and_deleted_jobs_stay_readable_and_restorable() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "v1", "target": command("echo one")}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap();
    let first = api
        .wait_finished(&api.trigger(job_id, json!(null)).await)
        .await;

    let reply = api
        .patch(
            &format!("/api/v1/jobs/{job_id}"),
            json!({"name": "v2", "target": command("echo two")}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["name"], "v2");
    let second = api
        .wait_finished(&api.trigger(job_id, json!(null)).await)
        .await;
    assert_eq!(
        api.runs_of(job_id).await.len(),
        2,
        "editing kept the history"
    );
    let first_logs = api
        .get(&format!(
            "/api/v1/runs/{}/logs",
            first["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(first_logs.text(), "one\n");

    assert_eq!(
        api.delete(&format!("/api/v1/jobs/{job_id}")).await.status,
        204
    );
    let deleted = api.get(&format!("/api/v1/jobs/{job_id}")).await;
    assert!(deleted.body["deleted_at"].is_string(), "{deleted:?}");
    assert_eq!(
        api.get(&format!("/api/v1/projects/{project}/jobs"))
            .await
            .body["items"],
        json!([])
    );
    api.post(&format!("/api/v1/jobs/{job_id}/runs"), json!({}))
        .await
        .assert_problem(404);
    let run = api
        .get(&format!("/api/v1/runs/{}", second["id"].as_str().unwrap()))
        .await;
    assert_eq!(run.body["state"], "succeeded");
    let logs = api
        .get(&format!(
            "/api/v1/runs/{}/logs",
            second["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(logs.text(), "two\n");
    assert_eq!(api.runs_of(job_id).await.len(), 2);
    // A project with a (deleted, restorable) job is not deleted.
    api.delete(&format!("/api/v1/projects/{project}"))
        .await
        .assert_problem(409);

    let restored = api
        .post(&format!("/api/v1/jobs/{job_id}/restore"), json!({}))
        .await;
    assert_eq!(restored.status, 200, "{restored:?}");
    assert!(restored.body["deleted_at"].is_null());
    api.post(&format!("/api/v1/jobs/{job_id}/restore"), json!({}))
        .await
        .assert_problem(409);
    let third = api
        .wait_finished(&api.trigger(job_id, json!(null)).await)
        .await;
    assert_eq!(third["state"], "succeeded");
}
