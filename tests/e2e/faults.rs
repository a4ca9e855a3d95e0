//! Promises that must hold across many processes and while they die: concurrency
//! policies over three workers, rescue of a SIGKILLed worker's runs, graceful shutdown.

use crate::harness::{eventually, Api, Component, TestDb};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn at(run: &Value, field: &str) -> DateTime<Utc> {
    run[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing: {run}"))
        .parse()
        .unwrap()
}

/// Fast heartbeats and short leases so that fault tests finish quickly.
const QUICK: &[(&str, &str)] = &[
    ("JOBCENTER_HEARTBEAT_SECONDS", "1"),
    ("JOBCENTER_LEASE_SECONDS", "3"),
    ("JOBCENTER_WORKER_POLL_MS", "100"),
];

fn start_workers(db: &TestDb, count: usize) -> Vec<Component> {
    (0..count)
        .map(|_| Component::start("worker", db, QUICK))
        .collect()
}

/// Every run of the job once all `expected` have finished.
async fn all_finished(api: &Api, job: &str, expected: usize, within: Duration) -> Vec<Value> {
    eventually(within, "every run to finish", || async {
        let runs = api.runs_of(job).await;
        let done = runs.len() >= expected
            && runs
                .iter()
                .all(|r| r["state"] != "queued" && r["state"] != "running");
        done.then_some(runs)
    })
    .await
}

/// Asserts that no two of `runs` (that ran) overlapped in time.
fn assert_never_two_at_once(runs: &[Value]) {
    let mut ran: Vec<&Value> = runs
        .iter()
        .filter(|r| r["started_at"].is_string())
        .collect();
    ran.sort_by_key(|r| at(r, "started_at"));
    for pair in ran.windows(2) {
        assert!(
            at(pair[1], "started_at") >= at(pair[0], "finished_at"),
            "two runs at once:\n{}\n{}",
            pair[0],
            pair[1]
        );
    }
}

#[tokio::test]
async fn a_queue_job_runs_one_at_a_time_in_order_across_three_workers() {
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
    let _workers = start_workers(&db, 3);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "serial", "concurrency": "queue",
                   "target": {"kind": "command", "command": ["sh", "-c", "sleep 0.05"]}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap();
    // A burst: back to back, faster than the runs finish.
    for i in 0..50 {
        api.trigger(job_id, json!({"n": i})).await;
    }
    // The worker that finishes a run is the first to hear of the next, so one worker
    // could take them all. Draining the first runs' worker midway makes the others
    // take over, so the policy is seen to hold across processes.
    let first_worker = eventually(Duration::from_secs(30), "a finished run", || async {
        let runs = api.runs_of(job_id).await;
        runs.iter()
            .find(|r| r["state"] == "succeeded")
            .map(|r| r["worker"].as_str().unwrap().to_string())
    })
    .await;
    let drained = api
        .post(&format!("/api/v1/workers/{first_worker}/drain"), json!({}))
        .await;
    assert_eq!(drained.status, 204, "{drained:?}");
    let runs = all_finished(&api, job_id, 50, Duration::from_secs(90)).await;
    assert_eq!(runs.len(), 50);
    assert!(runs.iter().all(|r| r["state"] == "succeeded"), "{runs:#?}");
    assert_never_two_at_once(&runs);
    // In order: started in the order they were queued.
    let mut by_queue = runs.clone();
    by_queue.sort_by_key(|r| (at(r, "queued_at"), r["id"].as_str().unwrap().to_string()));
    let mut by_start = runs.clone();
    by_start.sort_by_key(|r| at(r, "started_at"));
    let order = |v: &[Value]| v.iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
    assert_eq!(order(&by_queue), order(&by_start), "not run in queue order");
    // More than one worker took part, so the policy held across processes.
    let workers: std::collections::HashSet<_> =
        runs.iter().map(|r| r["worker"].to_string()).collect();
    assert!(workers.len() >= 2, "one worker ran everything: {workers:?}");
    let last = by_start.last().unwrap();
    assert_ne!(
        last["worker"],
        first_worker.as_str(),
        "a drained worker claimed"
    );
}

#[tokio::test]
async fn a_skip_job_skips_exactly_the_overlapping_triggers() {
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
    let _workers = start_workers(&db, 3);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "skippy", "concurrency": "skip",
                   "target": {"kind": "command", "command": ["sh", "-c", "sleep 0.4"]}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap();
    for i in 0..50 {
        api.trigger(job_id, json!({"n": i})).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let runs = all_finished(&api, job_id, 50, Duration::from_secs(60)).await;
    assert_eq!(runs.len(), 50);
    let (skipped, ran): (Vec<&Value>, Vec<&Value>) =
        runs.iter().partition(|r| r["state"] == "skipped");
    assert!(ran.iter().all(|r| r["state"] == "succeeded"), "{runs:#?}");
    assert!(!skipped.is_empty() && ran.len() >= 2, "{} ran", ran.len());
    assert_never_two_at_once(&runs);
    // A run is skipped exactly when another one was in progress (queued or running)
    // when it was triggered. Timestamps are transaction starts, and a finishing run is
    // still in progress for others until its transaction commits, which on a loaded CI
    // machine can come well after `finished_at`: allow 100 ms before, 500 ms after.
    let slack = chrono::Duration::milliseconds(100);
    let commit_slack = chrono::Duration::milliseconds(500);
    for run in &runs {
        let t = at(run, "queued_at");
        let busy_strictly = ran.iter().any(|o| {
            o["id"] != run["id"]
                && at(o, "queued_at") + slack < t
                && t + slack < at(o, "finished_at")
        });
        let busy_loosely = ran.iter().any(|o| {
            o["id"] != run["id"]
                && at(o, "queued_at") < t
                && t < at(o, "finished_at") + commit_slack
        });
        if run["state"] == "skipped" {
            assert!(busy_loosely, "skipped while nothing ran: {run}");
            assert!(run["started_at"].is_null(), "a skipped run started: {run}");
        } else {
            assert!(!busy_strictly, "ran while another was in progress: {run}");
        }
    }
}

#[tokio::test]
async fn a_slot_takes_its_next_run_with_the_outcome_and_capacity_is_never_exceeded() {
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "steady", "target": {"kind": "command", "command": ["sleep", "0.2"]}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap();
    // Queued before any worker runs: the worker meets a full queue.
    for i in 0..12 {
        api.trigger(job_id, json!({"n": i})).await;
    }
    let env: Vec<(&str, &str)> = QUICK
        .iter()
        .copied()
        .chain([("JOBCENTER_WORKER_CAPACITY", "2")])
        .collect();
    let _worker = Component::start("worker", &db, &env);
    let runs = all_finished(&api, job_id, 12, Duration::from_secs(60)).await;
    assert!(runs.iter().all(|r| r["state"] == "succeeded"), "{runs:#?}");

    // Never more than two at once: sweep starts and ends (an end first on a tie).
    let mut events: Vec<(DateTime<Utc>, i32)> = runs
        .iter()
        .flat_map(|r| [(at(r, "started_at"), 1), (at(r, "finished_at"), -1)])
        .collect();
    events.sort();
    let mut running = 0;
    for (when, step) in events {
        running += step;
        assert!(running <= 2, "{running} runs at {when}: {runs:#?}");
    }
    // A successor claimed in the transaction that recorded an outcome starts at the
    // instant the other finished (both are that transaction's now()).
    let finishes: Vec<&Value> = runs.iter().map(|r| &r["finished_at"]).collect();
    let handed_on = runs
        .iter()
        .filter(|r| finishes.contains(&&r["started_at"]))
        .count();
    assert!(
        handed_on >= 1,
        "no run was claimed with another's outcome: {runs:#?}"
    );
}

#[tokio::test]
async fn a_sigkilled_workers_runs_are_requeued_and_succeed_elsewhere() {
    let db = TestDb::new();
    let marks = tempfile::tempdir().unwrap();
    let mark_dir = marks.path().to_str().unwrap().to_string();
    let api_node = Component::start("api", &db, &[]);
    let _scheduler = Component::start("scheduler", &db, QUICK);
    // Runs leave their marks in the test's directory: outside a sandbox's view.
    let marking: Vec<(&str, &str)> = QUICK
        .iter()
        .copied()
        .chain([("JOBCENTER_SANDBOX", "off")])
        .collect();
    let mut doomed = Component::start("worker", &db, &marking);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("demo").await;
    // Each execution leaves a mark; attempt 1 hangs (cut off by the kill), attempt 2 is quick.
    let script = r#"echo "$JOBCENTER_ATTEMPT" >> "$MARK_DIR/$JOBCENTER_RUN_ID"
        if [ "$JOBCENTER_ATTEMPT" = 1 ]; then sleep 30; fi"#;
    let job = api
        .create_job(
            &project,
            json!({"name": "survivor", "max_attempts": 2, "env": {"MARK_DIR": mark_dir},
                   "target": {"kind": "command", "command": ["sh", "-c", script]}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap();
    let mut first = Vec::new();
    for i in 0..4 {
        first.push(api.trigger(job_id, json!({"n": i})).await);
    }
    // Killed in the middle: every first attempt has started executing.
    eventually(
        Duration::from_secs(20),
        "every first attempt to execute",
        || async {
            first
                .iter()
                .all(|id| marks.path().join(id).exists())
                .then_some(())
        },
    )
    .await;
    let _survivor = Component::start("worker", &db, &marking);
    doomed.kill();
    let killed_at = Utc::now();
    let runs = all_finished(&api, job_id, 8, Duration::from_secs(30)).await;
    assert_eq!(runs.len(), 8, "{runs:#?}");
    let by_id: HashMap<String, &Value> = runs
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r))
        .collect();
    for id in &first {
        let cut = by_id[id];
        assert_eq!(cut["state"], "failed", "{cut}");
        assert!(
            cut["error"].as_str().unwrap().contains("worker lost"),
            "{cut}"
        );
        let next = runs
            .iter()
            .find(|r| r["previous_run_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no second attempt of {id}"));
        assert_eq!(next["state"], "succeeded", "{next}");
        assert_eq!(next["attempt"], 2);
        assert_ne!(next["worker"], cut["worker"]);
        // Re-queued after the backoff of a failed attempt 1 (base 1 s: 0.5 to 1 s), as a
        // failure its worker had reported would be.
        let backoff = at(next, "not_before") - at(cut, "finished_at");
        assert!(
            backoff >= chrono::Duration::milliseconds(500)
                && backoff <= chrono::Duration::milliseconds(1000),
            "rescued run re-queued with a backoff of {backoff}"
        );
        // Rescued within the lease (3 s) plus a tick: well within the 10 s bound.
        let rescue = at(next, "queued_at") - killed_at;
        assert!(
            rescue < chrono::Duration::seconds(10),
            "rescued after {rescue}"
        );
        // Executed once per attempt: the cut-off one and the one that succeeded.
        let first_marks = std::fs::read_to_string(marks.path().join(id)).unwrap();
        assert_eq!(
            first_marks.trim(),
            "1",
            "attempt 1 executed {first_marks:?}"
        );
        let next_id = next["id"].as_str().unwrap();
        let next_marks = std::fs::read_to_string(marks.path().join(next_id)).unwrap();
        assert_eq!(next_marks.trim(), "2", "attempt 2 executed {next_marks:?}");
    }
}

#[tokio::test]
async fn sigterm_lets_runs_finish_hands_back_the_rest_and_releases_leadership() {
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
    let env: Vec<(&str, &str)> = QUICK
        .iter()
        .copied()
        .chain([("JOBCENTER_SHUTDOWN_GRACE_SECONDS", "2")])
        .collect();
    let mut worker = Component::start("worker", &db, &env);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("demo").await;
    let short = api
        .create_job(
            &project,
            json!({"name": "short", "target": {"kind": "command", "command": ["sleep", "1"]}}),
        )
        .await;
    let long = api
        .create_job(
            &project,
            json!({"name": "long", "target": {"kind": "command", "command": ["sleep", "60"]}}),
        )
        .await;
    let short_run = api
        .trigger(short["id"].as_str().unwrap(), json!(null))
        .await;
    let long_run = api.trigger(long["id"].as_str().unwrap(), json!(null)).await;
    api.wait_running(&short_run).await;
    api.wait_running(&long_run).await;
    let asked = Instant::now();
    worker.terminate();
    let status = worker
        .wait_exit(Duration::from_secs(20))
        .expect("the worker exits after its grace period");
    assert!(status.success(), "{status:?}\n{}", worker.stderr());
    assert!(asked.elapsed() < Duration::from_secs(15));
    // The short run finished within the grace; the long one is back in the queue.
    assert_eq!(
        api.get(&format!("/api/v1/runs/{short_run}")).await.body["state"],
        "succeeded"
    );
    let long_state = api.get(&format!("/api/v1/runs/{long_run}")).await.body;
    assert_eq!(long_state["state"], "queued", "{long_state}");
    assert_eq!(long_state["attempt"], 1, "{long_state}");
    assert_eq!(db.count("SELECT count(*) FROM workers").await, 0);
    // Another worker picks it up.
    let _next = Component::start("worker", &db, QUICK);
    api.wait_running(&long_run).await;
    api.post(&format!("/api/v1/runs/{long_run}/cancel"), json!({}))
        .await;
    assert_eq!(api.wait_finished(&long_run).await["state"], "cancelled");

    // A leader that is stopped hands over to the standby at once.
    let mut first = Component::start("scheduler", &db, &[]);
    eventually(Duration::from_secs(10), "a leader", || async {
        first
            .stderr()
            .contains("became the scheduling leader")
            .then_some(())
    })
    .await;
    let second = Component::start("scheduler", &db, &[]);
    first.terminate();
    let released = Instant::now();
    eventually(Duration::from_secs(5), "the standby to lead", || async {
        second
            .stderr()
            .contains("became the scheduling leader")
            .then_some(())
    })
    .await;
    assert!(
        released.elapsed() < Duration::from_secs(2),
        "took {:?}",
        released.elapsed()
    );
    assert!(first
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
    assert!(first.stderr().contains("released scheduling leadership"));
}
