//! Synchronous invoke (`?wait=`) of jobs with retries: the answer is the outcome of the
//! last attempt, not the first attempt's failure.

use crate::harness::{Api, Component, TestDb};
use serde_json::{json, Value};

fn command(script: &str) -> Value {
    json!({"kind": "command", "command": ["sh", "-c", script]})
}

async fn invoke(api: &Api, job: &Value, wait: u64) -> crate::harness::Reply {
    api.post(
        &format!(
            "/api/v1/jobs/{}/runs?wait={wait}",
            job["id"].as_str().unwrap()
        ),
        json!({"input": 1}),
    )
    .await
}

#[tokio::test]
async fn wait_answers_the_final_attempt_of_a_retried_run() {
    let db = TestDb::new();
    let app = Component::start(
        "all",
        &db,
        &[
            ("JOBCENTER_RETRY_BACKOFF_BASE_MS", "50"),
            ("JOBCENTER_RETRY_BACKOFF_MAX_MS", "200"),
        ],
    );
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;

    // Fails twice, then succeeds.
    let flaky = api
        .create_job(
            &project,
            json!({"name": "flaky", "max_attempts": 3, "target": command(
                "[ \"$JOBCENTER_ATTEMPT\" -ge 3 ] || exit 1; echo -n ok > $JOBCENTER_RESULT_FILE")}),
        )
        .await;
    let reply = invoke(&api, &flaky, 30).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["state"], "succeeded", "{reply:?}");
    assert_eq!(reply.body["attempt"], 3, "{reply:?}");
    assert_eq!(reply.body["result"], "ok", "{reply:?}");
    assert!(reply.body["first_run_id"].is_string(), "{reply:?}");

    // Always fails: the third attempt's failure.
    let broken = api
        .create_job(
            &project,
            json!({"name": "broken", "max_attempts": 3, "target": command("exit 3")}),
        )
        .await;
    let reply = invoke(&api, &broken, 30).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["state"], "failed", "{reply:?}");
    assert_eq!(reply.body["attempt"], 3, "{reply:?}");
    assert_eq!(reply.body["exit_code"], 3, "{reply:?}");
}

#[tokio::test]
async fn wait_answers_202_while_a_retry_is_pending() {
    let db = TestDb::new();
    let app = Component::start(
        "all",
        &db,
        &[
            ("JOBCENTER_RETRY_BACKOFF_BASE_MS", "60000"),
            ("JOBCENTER_RETRY_BACKOFF_MAX_MS", "60000"),
        ],
    );
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let broken = api
        .create_job(
            &project,
            json!({"name": "broken", "max_attempts": 3, "target": command("exit 3")}),
        )
        .await;
    let reply = invoke(&api, &broken, 5).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(reply.body["state"], "queued", "{reply:?}");
    assert_eq!(reply.body["attempt"], 2, "{reply:?}");
}
