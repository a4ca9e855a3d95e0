//! Promises the README makes that no other test held to: a project's config and a job's
//! env reach the run (the job's env winning), and paging through a list while rows are
//! inserted into it shows each row that existed before at most once and none skipped.

use crate::harness::{Api, Component, TestDb};
use serde_json::json;
use std::collections::HashSet;

#[tokio::test]
async fn project_config_and_job_env_reach_the_run_the_job_winning() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let reply = api
        .post(
            "/api/v1/projects",
            json!({"name": "configured", "config": {"GREETING": "hello", "WHO": "project"}}),
        )
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let project = reply.body["id"].as_str().unwrap().to_string();
    let job = api
        .create_job(
            &project,
            json!({"name": "greet", "env": {"WHO": "job", "ONLY_JOB": "yes"},
                   "target": {"kind": "command", "command": ["sh", "-c", "echo \"$GREETING $WHO $ONLY_JOB\""]}}),
        )
        .await;
    let run = api.trigger(job["id"].as_str().unwrap(), json!(null)).await;
    assert_eq!(api.wait_finished(&run).await["state"], "succeeded");
    let logs = api.get(&format!("/api/v1/runs/{run}/logs")).await;
    assert_eq!(logs.text(), "hello job yes\n");
}

#[tokio::test]
async fn paging_while_runs_are_inserted_skips_and_repeats_nothing() {
    let db = TestDb::new();
    // No worker: the runs stay queued, the list only grows.
    let app = Component::start("api", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("paged").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "many", "target": {"kind": "command", "command": ["true"]}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap().to_string();
    let mut before = HashSet::new();
    for _ in 0..40 {
        before.insert(api.trigger(&job_id, json!(null)).await);
    }
    let inserter = tokio::spawn({
        let (api, job_id) = (api.clone(), job_id.clone());
        async move {
            for _ in 0..40 {
                api.trigger(&job_id, json!(null)).await;
            }
        }
    });
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let mut path = format!("/api/v1/runs?job_id={job_id}&limit=7");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = api.get(&path).await;
        assert_eq!(page.status, 200, "{page:?}");
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page.body["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        tokio::task::yield_now().await;
    }
    inserter.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a run was listed twice");
    for id in &before {
        assert!(
            unique.contains(id),
            "run {id}, there before paging began, was skipped"
        );
    }
}
