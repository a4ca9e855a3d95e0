//! Worker groups route runs; admins see workers and drain and resume them.

use crate::harness::{eventually, Api, Component, TestDb};
use serde_json::{json, Value};
use std::time::Duration;

const QUICK: &[(&str, &str)] = &[
    ("JOBCENTER_HEARTBEAT_SECONDS", "1"),
    ("JOBCENTER_LEASE_SECONDS", "3"),
    ("JOBCENTER_WORKER_POLL_MS", "100"),
];

async fn workers(api: &Api) -> Vec<Value> {
    let reply = api.get("/api/v1/workers").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body.as_array().unwrap().clone()
}

async fn worker_of_group(api: &Api, group: &str) -> Value {
    eventually(
        Duration::from_secs(30),
        "the worker to register",
        || async {
            workers(api)
                .await
                .into_iter()
                .find(|w| w["worker_group"] == group)
        },
    )
    .await
}

#[tokio::test]
async fn runs_go_to_their_group_and_a_drained_worker_claims_nothing_until_resumed() {
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
    let api = Api::login_admin(&api_node).await;
    let _default = Component::start("worker", &db, QUICK);
    let gpu_env: Vec<(&str, &str)> = QUICK
        .iter()
        .copied()
        .chain([
            ("JOBCENTER_WORKER_GROUP", "gpu"),
            ("JOBCENTER_WORKER_CAPACITY", "2"),
        ])
        .collect();
    let _gpu = Component::start("worker", &db, &gpu_env);
    let gpu = worker_of_group(&api, "gpu").await;
    worker_of_group(&api, "default").await;
    assert_eq!(gpu["capacity"], 2);
    assert_eq!(gpu["alive"], true);
    assert_eq!(gpu["drained"], false);
    let gpu_id = gpu["id"].as_str().unwrap().to_string();

    let project = api.create_project("demo").await;
    // Groups other than `default` are the admin's to allow, project by project.
    let reply = api
        .patch(
            &format!("/api/v1/projects/{project}"),
            json!({"worker_groups": ["gpu"]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let job = api
        .create_job(
            &project,
            json!({"name": "render", "worker_group": "gpu",
                   "target": {"kind": "command", "command": ["sleep", "1"]}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap();
    let runs: Vec<String> = futures_join(&api, job_id, 3).await;
    for run in &runs {
        let done = api.wait_finished(run).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(
            done["worker"],
            gpu_id.as_str(),
            "ran outside its group: {done}"
        );
    }

    // Drain while a run is in progress: it finishes; nothing new is claimed.
    let running = api.trigger(job_id, json!(null)).await;
    api.wait_running(&running).await;
    let busy = worker_of_group(&api, "gpu").await;
    assert_eq!(busy["running"], 1, "{busy}");
    let reply = api
        .post(&format!("/api/v1/workers/{gpu_id}/drain"), json!({}))
        .await;
    assert_eq!(reply.status, 204, "{reply:?}");
    let waiting = api.trigger(job_id, json!(null)).await;
    assert_eq!(api.wait_finished(&running).await["state"], "succeeded");
    // Two heartbeats later (the claim loop polls every 100 ms) it is still queued.
    for _ in 0..2 {
        let seen = worker_of_group(&api, "gpu").await["last_heartbeat"].clone();
        eventually(Duration::from_secs(10), "a heartbeat", || async {
            let now = worker_of_group(&api, "gpu").await["last_heartbeat"].clone();
            (now != seen).then_some(())
        })
        .await;
    }
    let still = api.get(&format!("/api/v1/runs/{waiting}")).await.body;
    assert_eq!(
        still["state"], "queued",
        "a drained worker claimed: {still}"
    );
    assert_eq!(worker_of_group(&api, "gpu").await["drained"], true);

    let reply = api
        .post(&format!("/api/v1/workers/{gpu_id}/resume"), json!({}))
        .await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(api.wait_finished(&waiting).await["state"], "succeeded");

    let unknown = uuid::Uuid::new_v4();
    api.post(&format!("/api/v1/workers/{unknown}/drain"), json!({}))
        .await
        .assert_problem(404);
}

async fn futures_join(api: &Api, job: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(api.trigger(job, json!({"n": i})).await);
    }
    ids
}
