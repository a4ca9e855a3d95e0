//! Schedules fire on time, once per tick, and only inside their window.

use crate::harness::{eventually, Api, Component, TestDb};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

fn scheduled_instants(runs: &[Value]) -> Vec<DateTime<Utc>> {
    let mut instants: Vec<DateTime<Utc>> = runs
        .iter()
        .map(|r| {
            assert_eq!(r["trigger"], "schedule", "{r}");
            r["scheduled_for"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    instants.sort();
    instants
}

/// Lets the job fire for about `seconds`, disables it, and returns its scheduled instants.
async fn fire_for(api: &Api, job: &str, seconds: usize) -> Vec<DateTime<Utc>> {
    eventually(
        Duration::from_secs(seconds as u64 + 10),
        "the ticks",
        || async { (api.runs_of(job).await.len() >= seconds).then_some(()) },
    )
    .await;
    let reply = api
        .post(&format!("/api/v1/jobs/{job}/disable"), json!({}))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    scheduled_instants(&api.runs_of(job).await)
}

fn assert_one_per_second(instants: &[DateTime<Utc>]) {
    for pair in instants.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            ChronoDuration::seconds(1),
            "a tick missing or doubled: {instants:?}"
        );
    }
}

#[tokio::test]
async fn a_six_field_cron_fires_once_every_second() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "tick", "target": {"kind": "command", "command": ["true"]},
                   "schedule": {"kind": "cron", "expression": "* * * * * *", "timezone": "Europe/Berlin"}}),
        )
        .await;
    let instants = fire_for(&api, job["id"].as_str().unwrap(), 5).await;
    assert!(instants.len() >= 5, "{instants:?}");
    assert_one_per_second(&instants);
    assert!(
        instants.iter().all(|t| t.timestamp_subsec_nanos() == 0),
        "{instants:?}"
    );
    // Scheduled runs execute too.
    let runs = api.runs_of(job["id"].as_str().unwrap()).await;
    let finished = api.wait_finished(runs[0]["id"].as_str().unwrap()).await;
    assert!(
        ["succeeded", "cancelled"].contains(&finished["state"].as_str().unwrap()),
        "{finished}"
    );
}

#[tokio::test]
async fn an_interval_job_fires_once_every_period() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "every", "target": {"kind": "command", "command": ["true"]},
                   "schedule": {"kind": "interval", "every_seconds": 1}}),
        )
        .await;
    let instants = fire_for(&api, job["id"].as_str().unwrap(), 5).await;
    assert!(instants.len() >= 5, "{instants:?}");
    assert_one_per_second(&instants);
}

#[tokio::test]
async fn nothing_fires_outside_the_window() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let now = Utc::now();
    let ended = api
        .create_job(
            &project,
            json!({"name": "ended", "target": {"kind": "command", "command": ["true"]},
                   "schedule": {"kind": "cron", "expression": "* * * * * *"},
                   "ends_at": (now - ChronoDuration::hours(1)).to_rfc3339()}),
        )
        .await;
    assert!(ended["next_fire_at"].is_null(), "{ended}");
    let starts_at = now + ChronoDuration::seconds(3);
    let later = api
        .create_job(
            &project,
            json!({"name": "later", "target": {"kind": "command", "command": ["true"]},
                   "schedule": {"kind": "interval", "every_seconds": 1},
                   "starts_at": starts_at.to_rfc3339(),
                   "ends_at": (starts_at + ChronoDuration::seconds(2)).to_rfc3339()}),
        )
        .await;
    let later_id = later["id"].as_str().unwrap();
    // The window [starts_at, starts_at + 2 s] holds exactly three ticks.
    eventually(Duration::from_secs(30), "the window's ticks", || async {
        let job = api.get(&format!("/api/v1/jobs/{later_id}")).await;
        job.body["next_fire_at"].is_null().then_some(())
    })
    .await;
    let instants = scheduled_instants(&api.runs_of(later_id).await);
    assert_eq!(instants.len(), 3, "{instants:?}");
    assert!(
        instants[0] >= starts_at.with_nanosecond_floor(),
        "{instants:?} vs {starts_at}"
    );
    assert_one_per_second(&instants);
    assert!(api.runs_of(ended["id"].as_str().unwrap()).await.is_empty());
}

trait Floor {
    fn with_nanosecond_floor(self) -> Self;
}

impl Floor for DateTime<Utc> {
    /// Postgres keeps microseconds; compare at that precision.
    fn with_nanosecond_floor(self) -> Self {
        DateTime::from_timestamp_micros(self.timestamp_micros()).unwrap()
    }
}

/// More jobs due at one instant than the scheduler's lanes fire in one batch each (two
/// lanes of 500): every job gets exactly one run of that instant, and every job's next
/// fire time moves on. The lanes lock their batches with `SKIP LOCKED`, so none is missed
/// and none fired by both.
#[tokio::test]
async fn a_crowded_instant_gives_every_job_exactly_one_run() {
    const JOBS: usize = 1_100;
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("crowd").await;
    // Once a year: only the instant set below fires while the test runs.
    let schedule = json!({"kind": "cron", "expression": "0 0 0 1 1 *", "timezone": "UTC"});
    let created: Vec<Value> = futures_util::stream::iter(0..JOBS)
        .map(|i| {
            let (api, project, schedule) = (&api, &project, schedule.clone());
            async move {
                api.create_job(
                    project,
                    json!({"name": format!("crowd-{i}"), "schedule": schedule,
                           "target": {"kind": "command", "command": ["true"]}}),
                )
                .await
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(created.len(), JOBS);
    let client = db.client().await;
    let instant: DateTime<Utc> = client
        .query(
            "UPDATE jobs SET next_fire_at = date_trunc('second', now()) RETURNING next_fire_at",
            &[],
        )
        .await
        .unwrap()[0]
        .get(0);
    let _scheduler = Component::start("scheduler", &db, &[]);
    eventually(Duration::from_secs(60), "a run for every job", || async {
        let fired = db
            .count("SELECT count(*) FROM jobs WHERE next_fire_at > now()")
            .await;
        (fired == JOBS as i64).then_some(())
    })
    .await;
    let wrong = client
        .query(
            "SELECT j.id, count(r.id) FROM jobs j
             LEFT JOIN runs r ON r.job_id = j.id AND r.scheduled_for = $1
             GROUP BY j.id HAVING count(r.id) <> 1",
            &[&instant],
        )
        .await
        .unwrap();
    assert!(
        wrong.is_empty(),
        "{} jobs without exactly one run",
        wrong.len()
    );
    let runs = db.count("SELECT count(*) FROM runs").await;
    assert_eq!(runs, JOBS as i64);
}

/// A tick is fired ahead of its instant (here 3 s ahead, so the test can see it): its run
/// is queued before the instant, with `queued_at` the instant, and starts no earlier.
#[tokio::test]
async fn a_tick_is_queued_ahead_and_starts_at_its_instant() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[("JOBCENTER_SCHEDULER_FIRE_AHEAD_MS", "3000")]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("ahead").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "ahead", "target": {"kind": "command", "command": ["true"]},
                   "schedule": {"kind": "cron", "expression": "*/10 * * * * *", "timezone": "UTC"}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap();
    let early = eventually(Duration::from_secs(30), "a run queued ahead", || async {
        let now = Utc::now();
        api.runs_of(job_id).await.into_iter().find(|run| {
            let scheduled = run["scheduled_for"].as_str().and_then(|s| s.parse().ok());
            run["state"] == "queued" && scheduled.is_some_and(|s: DateTime<Utc>| s > now)
        })
    })
    .await;
    assert_eq!(early["queued_at"], early["scheduled_for"], "{early}");
    let finished = api.wait_finished(early["id"].as_str().unwrap()).await;
    assert_eq!(finished["state"], "succeeded", "{finished}");
    let scheduled: DateTime<Utc> = finished["scheduled_for"].as_str().unwrap().parse().unwrap();
    let started: DateTime<Utc> = finished["started_at"].as_str().unwrap().parse().unwrap();
    assert!(
        started >= scheduled,
        "started {started} before its instant {scheduled}"
    );
}
