//! The leader's maintenance runs beside firing: a step that cannot go on delays no tick.

use crate::harness::{eventually, Api, ArtifactBackend, Component, TestDb};
use serde_json::json;
use std::time::{Duration, SystemTime};

#[tokio::test]
async fn firing_goes_on_while_the_orphan_sweep_is_stuck() {
    let backend = ArtifactBackend::local();
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &backend.env());
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "tick", "target": {"kind": "command", "command": ["true"]},
                   "schedule": {"kind": "cron", "expression": "* * * * * *"}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap().to_string();
    // An object old enough to be an orphan, so that the sweep asks the database about it…
    let store = jobcenter_core::artifacts::ArtifactStore::open(&backend.location, &backend.s3)
        .await
        .unwrap();
    let key = format!("projects/{project}/ghost/{}", uuid::Uuid::new_v4());
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from("x"))]);
    store.put(&key, body, 1 << 20).await.unwrap();
    let dir = backend.location.strip_prefix("file://").unwrap();
    std::fs::File::options()
        .write(true)
        .open(std::path::Path::new(dir).join(&key))
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    // …and the database does not answer: the table stays locked until this test says.
    let mut locker = db.client().await;
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE artifacts IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    // No worker runs: scheduled runs stay queued, which is all this test counts.
    let _scheduler = Component::start("scheduler", &db, &backend.env());
    eventually(Duration::from_secs(30), "the sweep to wait", || async {
        let waiting = db
            .count(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE '%FROM artifacts%'",
            )
            .await;
        (waiting == 1).then_some(())
    })
    .await;
    let before = api.runs_of(&job_id).await.len();
    eventually(Duration::from_secs(30), "three ticks meanwhile", || async {
        (api.runs_of(&job_id).await.len() >= before + 3).then_some(())
    })
    .await;

    lock.rollback().await.unwrap();
    eventually(Duration::from_secs(30), "the orphan to go", || async {
        backend.object_keys().await.is_empty().then_some(())
    })
    .await;
}
