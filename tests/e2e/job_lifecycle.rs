//! Disable/enable, edit, delete/restore: what happens to the queue and the history; a
//! job's network, from the API to the worker's claim.

use crate::harness::{eventually, Api, Component, TestDb};
use serde_json::{json, Value};
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

    // The schedule stays stopped: an enabled job on the same schedule, made now, is the
    // witness that the scheduler went on firing past two tick instants.
    let count = runs.len();
    let witness = api
        .create_job(
            &project,
            json!({"name": "witness", "target": command("true"),
                   "schedule": {"kind": "cron", "expression": "* * * * * *"}}),
        )
        .await;
    let witness_id = witness["id"].as_str().unwrap();
    eventually(
        Duration::from_secs(30),
        "two ticks of the witness",
        || async { (api.runs_of(witness_id).await.len() >= 2).then_some(()) },
    )
    .await;
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

#[tokio::test]
async fn a_jobs_network_round_trips_and_reaches_the_worker_with_its_claim() {
    use jobcenter_core::sandbox::Network;
    use jobcenter_sql::runs::{self, Finish, NextClaim, Outcome};
    let db = TestDb::new();
    // No worker: this test claims the runs itself.
    let app = Component::start("api", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let jobs_path = format!("/api/v1/projects/{project}/jobs");

    let open = api
        .create_job(&project, json!({"name": "open", "target": command("true")}))
        .await;
    assert_eq!(open["network"], "outbound", "the default: {open}");
    let closed = api
        .create_job(
            &project,
            json!({"name": "closed", "target": command("true"), "network": "none"}),
        )
        .await;
    assert_eq!(closed["network"], "none", "{closed}");
    let closed_id = closed["id"].as_str().unwrap();
    let closed_path = format!("/api/v1/jobs/{closed_id}");
    assert_eq!(api.get(&closed_path).await.body["network"], "none");
    let listed = api.get(&jobs_path).await.body;
    let networks: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| &j["network"])
        .collect();
    assert_eq!(networks, [&json!("none"), &json!("outbound")], "{listed}");

    // A bad value is refused, naming the field; nothing is created or changed.
    let reply = api
        .post(
            &jobs_path,
            json!({"name": "bad", "target": command("true"), "network": "internet"}),
        )
        .await;
    assert_eq!(reply.assert_problem(400).as_deref(), Some("network"));
    assert_eq!(db.count("SELECT count(*) FROM jobs").await, 2);
    let reply = api.patch(&closed_path, json!({"network": "host"})).await;
    assert_eq!(reply.assert_problem(400).as_deref(), Some("network"));
    // A patch without it keeps it; one with it changes it, and back.
    let reply = api
        .patch(&closed_path, json!({"name": "still closed"}))
        .await;
    assert_eq!(reply.body["network"], "none", "{reply:?}");
    let reply = api
        .patch(&closed_path, json!({"network": "outbound"}))
        .await;
    assert_eq!(reply.body["network"], "outbound", "{reply:?}");
    let reply = api.patch(&closed_path, json!({"network": "none"})).await;
    assert_eq!(reply.body["network"], "none", "{reply:?}");

    // Both claim paths hand the worker the job's network: the claim loop's and the
    // group commit's.
    let first = api.trigger(closed_id, json!(null)).await;
    let second = api.trigger(open["id"].as_str().unwrap(), json!(null)).await;
    let pool = jobcenter_sql::new_pool(&db.url, 1).unwrap();
    let client = pool.get().await.unwrap();
    let worker_id = uuid::Uuid::new_v4();
    let claimed = runs::claim(&client, worker_id, "default", 1, 60_000)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id.to_string(), first);
    assert_eq!(claimed[0].network, Network::None);
    let finish = [Finish {
        run_id: claimed[0].id,
        lease_id: claimed[0].lease_id,
        outcome: Outcome {
            state: jobcenter_sql::states::RunState::Succeeded,
            exit_code: Some(0),
            result: None,
            error: None,
        },
    }];
    let next = NextClaim {
        worker_id,
        group: "default",
        limit: 1,
        lease_ms: 60_000,
    };
    let (_, next_runs) = runs::finish_and_claim(&client, &finish, &[], Some(next))
        .await
        .unwrap();
    assert_eq!(next_runs.len(), 1);
    assert_eq!(next_runs[0].id.to_string(), second);
    assert_eq!(next_runs[0].network, Network::Outbound);
    // Let teardown find nothing running.
    let finish = [Finish {
        run_id: next_runs[0].id,
        lease_id: next_runs[0].lease_id,
        outcome: finish[0].outcome,
    }];
    runs::finish_and_claim(&client, &finish, &[], None)
        .await
        .unwrap();
}
