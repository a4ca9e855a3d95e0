//! Run lifecycle promises: cancel (queued and running, from the API, killing the
//! process group at once), retries with backoff linked into a chain, retry by hand.

use crate::harness::{eventually, Api, Component, TestDb};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn at(run: &Value, field: &str) -> DateTime<Utc> {
    run[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing: {run}"))
        .parse()
        .unwrap()
}

/// Pids of live processes whose environment names `run_id`.
pub(crate) fn processes_of(run_id: &str) -> Vec<String> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| String::from_utf8_lossy(&env).contains(run_id))
        {
            pids.push(pid);
        }
    }
    pids
}

#[tokio::test]
async fn cancel_kills_a_running_run_at_once_and_a_queued_one_never_starts() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    // The shell ignores TERM for nothing: TERM kills the group; a child survives only
    // if the group is not signalled.
    let job = api
        .create_job(
            &project,
            json!({"name": "long", "target": {"kind": "command", "command": ["sh", "-c", "sleep 300 & sleep 300"]}}),
        )
        .await;
    let run_id = api.trigger(job["id"].as_str().unwrap(), json!(null)).await;
    api.wait_running(&run_id).await;
    eventually(Duration::from_secs(5), "the run's processes", || async {
        (processes_of(&run_id).len() >= 2).then_some(())
    })
    .await;
    let (asked, asked_at) = (Instant::now(), Utc::now());
    let reply = api
        .post(&format!("/api/v1/runs/{run_id}/cancel"), json!({}))
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(reply.body["cancel_requested"], true, "{reply:?}");
    // The promise (gone within a second) is measured here, not asserted: timings
    // belong to `make bench`.
    eventually(
        Duration::from_secs(30),
        "the run's processes to die",
        || async { processes_of(&run_id).is_empty().then_some(()) },
    )
    .await;
    let killed = asked.elapsed();
    let run = api.wait_finished(&run_id).await;
    assert_eq!(run["state"], "cancelled", "{run}");
    let recorded = at(&run, "finished_at") - asked_at;
    println!(
        "cancel of a running run: processes gone {} ms, `cancelled` recorded {} ms after the request",
        killed.as_millis(),
        recorded.num_milliseconds()
    );
    // A finished run cannot be cancelled.
    api.post(&format!("/api/v1/runs/{run_id}/cancel"), json!({}))
        .await
        .assert_problem(409);

    // A run of a group no worker serves stays queued; cancelled, it never starts.
    // Groups other than `default` are the admin's to allow, project by project.
    let reply = api
        .patch(
            &format!("/api/v1/projects/{project}"),
            json!({"worker_groups": ["night"]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let idle = api
        .create_job(
            &project,
            json!({"name": "later", "worker_group": "night", "target": {"kind": "command", "command": ["true"]}}),
        )
        .await;
    let idle_id = idle["id"].as_str().unwrap();
    let queued = api.trigger(idle_id, json!(null)).await;
    let reply = api
        .post(&format!("/api/v1/runs/{queued}/cancel"), json!({}))
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(reply.body["state"], "cancelled", "{reply:?}");
    let _night = Component::start("worker", &db, &[("JOBCENTER_WORKER_GROUP", "night")]);
    let later = api.trigger(idle_id, json!(null)).await;
    assert_eq!(api.wait_finished(&later).await["state"], "succeeded");
    let cancelled = api.get(&format!("/api/v1/runs/{queued}")).await.body;
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    assert!(cancelled["started_at"].is_null(), "{cancelled}");

    // Somebody else's run answers 404, as if it did not exist.
    let missing = uuid::Uuid::new_v4();
    api.post(&format!("/api/v1/runs/{missing}/cancel"), json!({}))
        .await
        .assert_problem(404);
}

#[tokio::test]
async fn failed_runs_are_retried_with_backoff_as_linked_attempts() {
    let db = TestDb::new();
    let app = Component::start(
        "all",
        &db,
        &[
            ("JOBCENTER_RETRY_BACKOFF_BASE_MS", "400"),
            ("JOBCENTER_RETRY_BACKOFF_MAX_MS", "10000"),
        ],
    );
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "flaky", "max_attempts": 3,
                   "target": {"kind": "command", "command": ["sh", "-c", "echo try $JOBCENTER_ATTEMPT; exit 7"]}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap();
    let first = api.trigger(job_id, json!({"n": 1})).await;
    let chain = eventually(Duration::from_secs(30), "three failed attempts", || async {
        let runs = api.runs_of(job_id).await;
        let done = runs.len() == 3 && runs.iter().all(|r| r["state"] == "failed");
        done.then_some(runs)
    })
    .await;
    let mut chain = chain;
    chain.sort_by_key(|r| r["attempt"].as_i64().unwrap());
    for (i, run) in chain.iter().enumerate() {
        assert_eq!(run["attempt"], i as i64 + 1, "{run}");
        assert_eq!(run["exit_code"], 7, "{run}");
        assert_eq!(run["input"], json!({"n": 1}), "{run}");
        assert_eq!(run["trigger"], "manual", "{run}");
        if i == 0 {
            assert_eq!(run["id"], first.as_str());
            assert!(run["first_run_id"].is_null(), "{run}");
        } else {
            assert_eq!(run["first_run_id"], first.as_str(), "{run}");
            assert_eq!(run["previous_run_id"], chain[i - 1]["id"], "{run}");
            // Backoff: base 400 ms doubling, of which the upper half is jitter.
            let gap = at(run, "started_at") - at(&chain[i - 1], "finished_at");
            let floor = 200 * (1 << (i - 1));
            assert!(
                gap.num_milliseconds() >= floor,
                "attempt {} started {gap} after the previous one ended",
                i + 1
            );
        }
    }
    assert_eq!(
        db.count("SELECT count(*) FROM runs WHERE attempt = 4")
            .await,
        0
    );

    // A retry by hand: a new chain, linked to the run it repeats.
    let last = chain[2]["id"].as_str().unwrap();
    let reply = api
        .post(&format!("/api/v1/runs/{last}/retry"), json!({}))
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(reply.body["trigger"], "retry");
    assert_eq!(reply.body["attempt"], 1);
    assert_eq!(reply.body["retry_of"], last);
    assert_eq!(reply.body["input"], json!({"n": 1}));
    let retried = reply.body["id"].as_str().unwrap().to_string();
    // An unfinished run cannot be retried by hand.
    let long = api
        .create_job(
            &project,
            json!({"name": "long", "target": {"kind": "command", "command": ["sleep", "30"]}}),
        )
        .await;
    let running = api.trigger(long["id"].as_str().unwrap(), json!(null)).await;
    api.wait_running(&running).await;
    api.post(&format!("/api/v1/runs/{running}/retry"), json!({}))
        .await
        .assert_problem(409);
    api.cancel_all(long["id"].as_str().unwrap()).await;
    let run = api.wait_finished(&retried).await;
    assert_eq!(run["state"], "failed", "{run}");
}
