//! Pipelines: child jobs started by a parent run's final outcome, cycles refused, and a
//! job that pauses itself after repeated failures.

use crate::harness::{eventually, Api, Component, TestDb};
use serde_json::{json, Value};
use std::time::Duration;

/// Writes its input to the result file (so the test can read what it got), then exits
/// with `code`.
fn echo_input(code: i32) -> Value {
    json!({"kind": "command", "command": ["sh", "-c",
        format!("cat > \"$JOBCENTER_RESULT_FILE\"; exit {code}")]})
}

async fn job(api: &Api, project: &str, body: Value) -> String {
    api.create_job(project, body).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The single run of `job` once it has finished.
async fn only_run(api: &Api, job: &str) -> Value {
    let runs = eventually(Duration::from_secs(30), "a run of the child", || async {
        let runs = api.runs_of(job).await;
        (!runs.is_empty()).then_some(runs)
    })
    .await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    api.wait_finished(runs[0]["id"].as_str().unwrap()).await
}

#[tokio::test]
async fn children_run_on_their_parents_outcome_with_links_and_inputs_and_cycles_are_refused() {
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
    let _scheduler = Component::start("scheduler", &db, &[]);
    let _worker = Component::start("worker", &db, &[]);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("pipeline").await;

    // A → B on success; B (fails twice: two attempts) → C on failure, D on success;
    // A → E on failure.
    let c = job(
        &api,
        &project,
        json!({"name": "c", "target": echo_input(0)}),
    )
    .await;
    let d = job(
        &api,
        &project,
        json!({"name": "d", "target": echo_input(0)}),
    )
    .await;
    let e = job(
        &api,
        &project,
        json!({"name": "e", "target": echo_input(0)}),
    )
    .await;
    let b = job(
        &api,
        &project,
        json!({"name": "b", "target": echo_input(1), "max_attempts": 2,
               "children": [{"job_id": c, "when": "on_failure"},
                            {"job_id": d, "when": "on_success"}]}),
    )
    .await;
    let a = api
        .create_job(
            &project,
            json!({"name": "a",
                   "target": {"kind": "command",
                              "command": ["sh", "-c", "printf built > \"$JOBCENTER_RESULT_FILE\""]},
                   "children": [{"job_id": b, "when": "on_success"},
                                {"job_id": e, "when": "on_failure"}]}),
        )
        .await;
    assert_eq!(a["children"][0]["job_id"], b.as_str(), "{a}");
    let a = a["id"].as_str().unwrap().to_string();

    let a_run = api.trigger(&a, json!({"release": 7})).await;
    assert_eq!(api.wait_finished(&a_run).await["state"], "succeeded");

    // C runs once, after B's last attempt: its parent is that attempt.
    let c_run = only_run(&api, &c).await;
    assert_eq!(c_run["state"], "succeeded", "{c_run}");
    assert_eq!(c_run["trigger"], "parent");
    let b_runs = api.runs_of(&b).await;
    assert_eq!(b_runs.len(), 2, "two attempts of b: {b_runs:#?}");
    let b_last = b_runs.iter().find(|r| r["attempt"] == 2).unwrap();
    let b_first = b_runs.iter().find(|r| r["attempt"] == 1).unwrap();
    assert_eq!(b_last["state"], "failed");
    assert_eq!(c_run["parent_run_id"], b_last["id"]);
    let c_input: Value = serde_json::from_str(c_run["result"].as_str().unwrap()).unwrap();
    assert_eq!(c_input["parent_run_id"], b_last["id"], "{c_input}");
    assert_eq!(c_input["parent_job_id"], b.as_str());
    assert_eq!(c_input["parent_state"], "failed");

    // B got A's run id and result as input, and links back to A (its retry too).
    assert_eq!(b_first["trigger"], "parent");
    assert_eq!(b_first["parent_run_id"], a_run.as_str());
    assert_eq!(b_last["parent_run_id"], a_run.as_str());
    let b_input = &b_first["input"];
    assert_eq!(b_input["parent_run_id"], a_run.as_str(), "{b_input}");
    assert_eq!(b_input["parent_result"], "built");
    assert_eq!(b_input["parent_state"], "succeeded");

    // The outcomes that started C and B started nothing else.
    assert!(api.runs_of(&d).await.is_empty(), "d ran though b failed");
    assert!(api.runs_of(&e).await.is_empty(), "e ran though a succeeded");

    // The run view shows children and parent.
    let a_view = api.get(&format!("/api/v1/runs/{a_run}")).await.body;
    let children: Vec<&str> = a_view["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(children, [b_first["id"].as_str().unwrap()], "{a_view}");
    let b_view = api
        .get(&format!("/api/v1/runs/{}", b_last["id"].as_str().unwrap()))
        .await
        .body;
    assert_eq!(b_view["children"][0]["id"], c_run["id"], "{b_view}");
    assert_eq!(b_view["children"][0]["job_id"], c.as_str());

    // C → A would close A → B → C → A: refused, naming the cycle; nothing changes.
    let refused = api
        .patch(
            &format!("/api/v1/jobs/{c}"),
            json!({"children": [{"job_id": a, "when": "on_finish"}]}),
        )
        .await;
    assert_eq!(refused.assert_problem(400).as_deref(), Some("children"));
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(
        detail.contains(r#""c" → "a" → "b" → "c""#),
        "the cycle is named: {detail}"
    );
    let self_loop = api
        .patch(
            &format!("/api/v1/jobs/{d}"),
            json!({"children": [{"job_id": d, "when": "on_success"}]}),
        )
        .await;
    assert_eq!(self_loop.assert_problem(400).as_deref(), Some("children"));
    for job in [&c, &d] {
        let saved = api.get(&format!("/api/v1/jobs/{job}")).await.body;
        assert_eq!(saved["children"], json!([]), "{saved}");
    }
    // A diamond is not a cycle: D → C and E → C both exist fine alongside B → C.
    for parent in [&d, &e] {
        let reply = api
            .patch(
                &format!("/api/v1/jobs/{parent}"),
                json!({"children": [{"job_id": c, "when": "on_finish"}]}),
            )
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }

    // Another owner's job cannot be a child: it answers 404 as if it did not exist.
    api.create_user("dev", "dev-password-12", "developer").await;
    let dev = Api::login(&api_node, "dev", "dev-password-12").await;
    let dev_project = dev.create_project("mine").await;
    let reply = dev
        .post(
            &format!("/api/v1/projects/{dev_project}/jobs"),
            json!({"name": "x", "target": echo_input(0),
                   "children": [{"job_id": a, "when": "on_success"}]}),
        )
        .await;
    reply.assert_problem(404);
    assert_eq!(
        db.count("SELECT count(*) FROM jobs WHERE name = 'x'").await,
        0
    );
}

#[tokio::test]
async fn a_job_pauses_after_three_failures_in_a_row_and_a_resume_is_recorded() {
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
    let _scheduler = Component::start("scheduler", &db, &[]);
    let _worker = Component::start("worker", &db, &[]);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("flaky").await;
    let job = job(
        &api,
        &project,
        json!({"name": "flaky", "target": echo_input(3), "pause_after_failures": 3}),
    )
    .await;
    let processed = || db.count("SELECT count(*) FROM run_outcomes WHERE processed_at IS NOT NULL");
    let fail_once = |expected_processed: i64| {
        let (api, job) = (&api, &job);
        async move {
            let run = api.trigger(job, json!(null)).await;
            assert_eq!(api.wait_finished(&run).await["state"], "failed");
            eventually(Duration::from_secs(40), "the outcome handled", || async {
                (processed().await >= expected_processed).then_some(())
            })
            .await;
        }
    };
    fail_once(1).await;
    fail_once(2).await;
    let after_two = api.get(&format!("/api/v1/jobs/{job}")).await.body;
    assert_eq!(after_two["enabled"], true, "paused too early: {after_two}");
    fail_once(3).await;
    let paused = api.get(&format!("/api/v1/jobs/{job}")).await.body;
    assert_eq!(paused["enabled"], false, "{paused}");
    assert!(paused["paused_at"].is_string(), "{paused}");
    let reason = paused["paused_reason"].as_str().unwrap();
    assert!(reason.contains("3 consecutive failed runs"), "{reason}");
    let audit = api.get("/api/v1/audit").await.body;
    let pause = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "job.pause")
        .unwrap_or_else(|| panic!("no job.pause in the audit log: {audit}"));
    assert_eq!(pause["target"], format!("job:{job}"));

    // Enabled again by the admin: who and when are on the job and in the audit log.
    let me = api.get("/api/v1/auth/me").await.body;
    let resumed = api
        .post(&format!("/api/v1/jobs/{job}/enable"), json!({}))
        .await
        .body;
    assert_eq!(resumed["enabled"], true, "{resumed}");
    assert_eq!(resumed["resumed_by"], me["id"]);
    assert!(resumed["resumed_at"].is_string());
    let audit = api.get("/api/v1/audit").await.body;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "job.resume" && e["target"] == format!("job:{job}")),
        "{audit}"
    );
    // The streak starts again after the resume: one more failure does not pause it.
    fail_once(4).await;
    let after = api.get(&format!("/api/v1/jobs/{job}")).await.body;
    assert_eq!(after["enabled"], true, "{after}");
}
