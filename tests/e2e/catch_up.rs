//! Ticks missed while no scheduler ran follow each job's catch-up policy.

use crate::harness::{eventually, Api, Component, TestDb};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn missed_ticks_are_fired_once_each_up_to_a_bound_or_skipped() {
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("demo").await;
    let mut jobs = Vec::new();
    for policy in ["once", "each", "skip"] {
        let job = api
            .create_job(
                &project,
                json!({"name": policy, "catch_up": policy,
                       "target": {"kind": "command", "command": ["true"]},
                       "schedule": {"kind": "cron", "expression": "* * * * *"}}),
            )
            .await;
        assert_eq!(job["catch_up"], policy, "{job}");
        jobs.push((policy, job["id"].as_str().unwrap().to_string()));
    }
    // As if no scheduler had run for the last 30 minutes.
    db.client()
        .await
        .execute(
            "UPDATE jobs SET next_fire_at = date_trunc('minute', now()) - interval '30 minutes'",
            &[],
        )
        .await
        .unwrap();
    let cutoff = chrono::Utc::now();
    let _scheduler = Component::start("scheduler", &db, &[("JOBCENTER_CATCH_UP_MAX_TICKS", "10")]);
    let expected = [("once", 1), ("each", 10), ("skip", 0)];
    eventually(Duration::from_secs(40), "the catch-up", || async {
        let fired = db
            .count("SELECT count(*) FROM jobs WHERE next_fire_at > now()")
            .await;
        (fired == 3).then_some(())
    })
    .await;
    for ((policy, job), (_, count)) in jobs.iter().zip(expected) {
        // Ticks after the scheduler started are regular ones, not catch-up.
        let mut instants: Vec<chrono::DateTime<chrono::Utc>> = api
            .runs_of(job)
            .await
            .iter()
            .map(|r| r["scheduled_for"].as_str().unwrap().parse().unwrap())
            .filter(|t| *t <= cutoff)
            .collect();
        assert_eq!(instants.len(), count, "{policy}: {instants:?}");
        instants.sort();
        instants.dedup();
        assert_eq!(instants.len(), count, "{policy}: a tick fired twice");
        // The latest missed ticks, one minute apart, the last within the past minute.
        if let Some(last) = instants.last() {
            let age = chrono::Utc::now() - *last;
            assert!(age < chrono::Duration::seconds(65), "{policy}: {age}");
        }
        for pair in instants.windows(2) {
            assert_eq!((pair[1] - pair[0]).num_seconds(), 60, "{policy}");
        }
    }
}
