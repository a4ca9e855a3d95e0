//! PostgreSQL restarts under a steady trigger load: the API answers 503 meanwhile,
//! every component reconnects by itself, and no accepted run is lost.

use crate::harness::{eventually, Api, Component, TestDb};
use crate::private_postgres::PrivatePostgres;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const QUICK: &[(&str, &str)] = &[
    ("JOBCENTER_HEARTBEAT_SECONDS", "1"),
    ("JOBCENTER_LEASE_SECONDS", "3"),
    ("JOBCENTER_WORKER_POLL_MS", "100"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_loses_no_accepted_run() {
    let pg = PrivatePostgres::start();
    let db = TestDb::on_server(pg.url());
    let api_node = Component::start("api", &db, QUICK);
    let _scheduler = Component::start("scheduler", &db, QUICK);
    let _workers = [
        Component::start("worker", &db, QUICK),
        Component::start("worker", &db, QUICK),
    ];
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "steady", "target": {"kind": "command", "command": ["sleep", "0.5"]}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap().to_string();

    // The load: a trigger every 50 ms, recording what was accepted and what was refused.
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let load = tokio::spawn({
        let (api, accepted, unavailable, running) = (
            api.clone(),
            accepted.clone(),
            unavailable.clone(),
            running.clone(),
        );
        async move {
            let mut other = Vec::new();
            while running.load(Ordering::Relaxed) {
                let reply = api
                    .post(
                        &format!("/api/v1/jobs/{job_id}/runs"),
                        json!({"input": null}),
                    )
                    .await;
                match reply.status {
                    202 => accepted
                        .lock()
                        .unwrap()
                        .push(reply.body["id"].as_str().unwrap().to_string()),
                    503 => {
                        unavailable.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => other.push(reply),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other
        }
    });
    let accepted_count = || accepted.lock().unwrap().len();
    eventually(Duration::from_secs(30), "runs accepted before", || async {
        (accepted_count() >= 20).then_some(())
    })
    .await;
    tokio::task::block_in_place(|| pg.stop());
    eventually(
        Duration::from_secs(20),
        "503 while the database is away",
        || async { (unavailable.load(Ordering::Relaxed) >= 5).then_some(()) },
    )
    .await;
    tokio::task::block_in_place(|| pg.start_again());
    let after_restart = accepted_count();
    eventually(Duration::from_secs(30), "runs accepted after", || async {
        (accepted_count() >= after_restart + 20).then_some(())
    })
    .await;
    running.store(false, Ordering::Relaxed);
    let other = load.await.unwrap();
    assert!(other.is_empty(), "answers other than 202/503: {other:?}");

    let ids = accepted.lock().unwrap().clone();
    eventually(
        Duration::from_secs(60),
        "every accepted run to finish",
        || async {
            let mut unfinished = 0;
            for id in &ids {
                let state = api.get(&format!("/api/v1/runs/{id}")).await.body["state"].clone();
                if state == "queued" || state == "running" {
                    unfinished += 1;
                }
            }
            (unfinished == 0).then_some(())
        },
    )
    .await;
    // Nothing accepted was lost; runs cut by the outage were re-run as new attempts.
    for id in &ids {
        let run = api.get(&format!("/api/v1/runs/{id}")).await.body;
        if run["state"] != "succeeded" {
            assert!(
                run["error"].as_str().unwrap_or("").contains("worker lost"),
                "{run}"
            );
        }
    }
    let lost = db
        .count(
            "SELECT count(*) FROM runs WHERE state <> 'succeeded' AND NOT EXISTS
               (SELECT 1 FROM runs n WHERE n.previous_run_id = runs.id)",
        )
        .await;
    assert_eq!(lost, 0, "runs that neither succeeded nor were re-run");
}
