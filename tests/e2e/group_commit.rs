//! The worker's pipelined group commit (`jobcenter_sql::runs::finish_and_claim`): its
//! `BEGIN`, finishes, claim and `COMMIT` go out together, so a statement that fails in
//! the middle must leave nothing written behind it, a log line goes only with the
//! finish of its run, and nothing after the commit may count as a failure.

use crate::harness::{Api, Component, TestDb};
use jobcenter_sql::runs::{self, Finish, NextClaim, Outcome};
use jobcenter_sql::states::RunState;
use serde_json::json;
use uuid::Uuid;

async fn log_of(api: &Api, run: &str) -> String {
    let reply = api.get(&format!("/api/v1/runs/{run}/logs")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.text().to_string()
}

async fn state_of(api: &Api, run: &str) -> String {
    let reply = api.get(&format!("/api/v1/runs/{run}")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body["state"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pipelined_group_commit_writes_nothing_and_a_good_one_everything() {
    let db = TestDb::new();
    let api_component = Component::start("api", &db, &[]);
    let api = Api::login_admin(&api_component).await;
    let project = api.create_project("pipelined").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "two", "target": {"kind": "command", "command": ["true"]}}),
        )
        .await;
    let job = job["id"].as_str().unwrap();
    let first = api.trigger(job, json!({})).await;
    let second = api.trigger(job, json!({})).await;

    // No worker runs: this test is the worker.
    let pool = jobcenter_sql::new_pool(&db.url, 2).unwrap();
    let client = pool.get().await.unwrap();
    let worker_id = Uuid::new_v4();
    let claimed = runs::claim(&client, worker_id, "default", 1, 60_000)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id.to_string(), first, "the oldest run first");
    let finish = || {
        [Finish {
            run_id: claimed[0].id,
            lease_id: claimed[0].lease_id,
            outcome: Outcome {
                state: RunState::Succeeded,
                exit_code: Some(0),
                result: Some("done"),
                error: None,
            },
        }]
    };

    let line = [(claimed[0].id, "the whole log")];
    // A lease beyond what an interval can hold fails the claim, after the finish.
    let failing = NextClaim {
        worker_id,
        group: "default",
        limit: 1,
        lease_ms: i64::MAX,
    };
    let error = runs::finish_and_claim(&client, &finish(), &line, Some(failing))
        .await
        .expect_err("the claim cannot compute its lease");
    assert!(!error.is_unavailable(), "{error}");
    assert_eq!(
        state_of(&api, &first).await,
        "running",
        "the finish was rolled back"
    );
    assert_eq!(log_of(&api, &first).await, "", "no log line was written");

    // The same connection is usable again: it was not left in the aborted transaction.
    let next = NextClaim {
        worker_id,
        group: "default",
        limit: 1,
        lease_ms: 60_000,
    };
    let (held, next_runs) = runs::finish_and_claim(&client, &finish(), &line, Some(next))
        .await
        .unwrap();
    assert_eq!(held, vec![claimed[0].id]);
    assert_eq!(next_runs.len(), 1);
    assert_eq!(next_runs[0].id.to_string(), second);
    let next_runs_second = next_runs[0].clone();
    let finished = api.get(&format!("/api/v1/runs/{first}")).await;
    assert_eq!(finished.body["state"], "succeeded", "{finished:?}");
    assert_eq!(finished.body["result"], "done", "{finished:?}");
    assert_eq!(state_of(&api, &second).await, "running");
    assert!(log_of(&api, &first).await.contains("the whole log"));

    // A lease already used finishes nothing again; no claim asked, none made.
    let (held, spent) = runs::finish_and_claim(&client, &finish(), &line, None)
        .await
        .unwrap();
    assert!(held.is_empty(), "{held:?}");
    assert!(spent.is_empty());
    let log = log_of(&api, &first).await;
    assert_eq!(log.matches("the whole log").count(), 1, "{log}");

    // Once committed, a claimed run this build cannot read (a target kind it does not
    // know) is no error: the outcome stays written, and that run is left to its lease.
    let odd = api
        .create_job(
            &project,
            json!({"name": "odd", "target": {"kind": "command", "command": ["true"]}}),
        )
        .await;
    let odd_job: Uuid = odd["id"].as_str().unwrap().parse().unwrap();
    let odd_run = api.trigger(&odd_job.to_string(), json!({})).await;
    db.client()
        .await
        .execute(
            "UPDATE jobs SET target = '{\"kind\": \"teleport\"}' WHERE id = $1",
            &[&odd_job],
        )
        .await
        .unwrap();
    let finish_second = [Finish {
        run_id: next_runs_second.id,
        lease_id: next_runs_second.lease_id,
        outcome: Outcome {
            state: RunState::Failed,
            exit_code: Some(1),
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
    let (held, next_runs) = runs::finish_and_claim(&client, &finish_second, &[], Some(next))
        .await
        .expect("committed: no error");
    assert_eq!(held, vec![next_runs_second.id]);
    assert!(next_runs.is_empty(), "the odd run is not handed out");
    assert_eq!(state_of(&api, &second).await, "failed");
    assert_eq!(
        state_of(&api, &odd_run).await,
        "running",
        "claimed, left to its lease"
    );
    // Handed back, as a worker shutting down would: no run is left running.
    let odd_run: Uuid = odd_run.parse().unwrap();
    let lease: Uuid = client
        .query_one("SELECT lease_id FROM runs WHERE id = $1", &[&odd_run])
        .await
        .unwrap()
        .get(0);
    assert!(runs::hand_back(&client, odd_run, lease).await.unwrap());
}
