//! Two schedulers: one leads; kill it and the standby fires the next ticks.

use crate::harness::{eventually, Api, Component, TestDb};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_standby_scheduler_takes_over_when_the_leader_dies() {
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
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
    let mut first = Component::start("scheduler", &db, &[]);
    let mut second = Component::start("scheduler", &db, &[]);
    // No worker runs: scheduled runs stay queued, which is all this test counts.
    eventually(Duration::from_secs(30), "two ticks", || async {
        (api.runs_of(&job_id).await.len() >= 2).then_some(())
    })
    .await;
    let leaders = |c: &Component| c.stderr().contains("became the scheduling leader");
    let (first_leads, second_leads) = (leaders(&first), leaders(&second));
    assert!(
        first_leads ^ second_leads,
        "exactly one leads: {first_leads} {second_leads}"
    );
    let (leader, standby) = if first_leads {
        (&mut first, &mut second)
    } else {
        (&mut second, &mut first)
    };
    leader.kill();
    let killed = std::time::Instant::now();
    let before = api.runs_of(&job_id).await.len();
    // The promise (a standby leads within about a second) is measured, not asserted.
    eventually(Duration::from_secs(10), "the standby to lead", || async {
        leaders(&*standby).then_some(())
    })
    .await;
    let led = killed.elapsed();
    eventually(Duration::from_secs(10), "the standby to fire", || async {
        (api.runs_of(&job_id).await.len() >= before + 2).then_some(())
    })
    .await;
    println!(
        "failover: the standby led {} ms after the leader was killed",
        led.as_millis()
    );
    // No tick was fired twice, and none was lost across the failover.
    let mut instants: Vec<String> = api
        .runs_of(&job_id)
        .await
        .iter()
        .map(|r| r["scheduled_for"].as_str().unwrap().to_string())
        .collect();
    instants.sort();
    let count = instants.len();
    instants.dedup();
    assert_eq!(count, instants.len(), "a tick fired twice");
    let parsed: Vec<chrono::DateTime<chrono::Utc>> =
        instants.iter().map(|s| s.parse().unwrap()).collect();
    for pair in parsed.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]).num_seconds(),
            1,
            "a tick was lost: {instants:?}"
        );
    }
}
