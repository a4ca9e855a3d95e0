//! Schedule policies: backfill of past ticks, jitter of start times, DST choices and
//! the preview's DST marks.

use crate::harness::{eventually, Api, Component, TestDb};
use chrono::{DateTime, Datelike, Duration as ChronoDuration, Timelike, Utc};
use serde_json::{json, Value};
use std::time::Duration;

fn instant(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

async fn hourly_job(api: &Api, project: &str) -> String {
    let job = api
        .create_job(
            project,
            json!({"name": "hourly", "target": {"kind": "command", "command": ["true"]},
                   "schedule": {"kind": "cron", "expression": "0 * * * *"}}),
        )
        .await;
    job["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn backfill_of_a_past_day_creates_24_runs_then_none() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let job = hourly_job(&api, &project).await;
    let today = Utc::now()
        .with_hour(0)
        .unwrap()
        .with_minute(0)
        .unwrap()
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap();
    let day = |n: i64| (today - ChronoDuration::days(n)).to_rfc3339();
    let path = format!("/api/v1/jobs/{job}/backfill");

    let reply = api.post(&path, json!({"from": day(1), "to": day(0)})).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["ticks"], 24, "{reply:?}");
    assert_eq!(reply.body["created"], 24, "{reply:?}");
    assert_eq!(reply.body["skipped"], 0, "{reply:?}");
    assert_eq!(reply.body["run_ids"].as_array().unwrap().len(), 24);
    let runs = api.runs_of(&job).await;
    assert_eq!(runs.len(), 24);
    let mut ticks: Vec<DateTime<Utc>> = runs
        .iter()
        .map(|r| {
            assert_eq!(r["trigger"], "backfill", "{r}");
            assert_eq!(r["attempt"], 1, "{r}");
            instant(&r["scheduled_for"])
        })
        .collect();
    ticks.sort();
    let expected: Vec<_> = (0..24)
        .map(|h| today - ChronoDuration::days(1) + ChronoDuration::hours(h))
        .collect();
    assert_eq!(ticks, expected);

    // Again: nothing new.
    let reply = api.post(&path, json!({"from": day(1), "to": day(0)})).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        (&reply.body["created"], &reply.body["skipped"]),
        (&json!(0), &json!(24)),
        "{reply:?}"
    );
    assert_eq!(reply.body["run_ids"], json!([]));
    assert_eq!(api.runs_of(&job).await.len(), 24);

    // A tick the scheduler already fired is not doubled.
    let fired = today - ChronoDuration::days(2) + ChronoDuration::hours(5);
    db.client()
        .await
        .execute(
            "INSERT INTO runs (job_id, trigger, worker_group, scheduled_for)
             VALUES ($1::text::uuid, 'schedule', 'default', $2)",
            &[&job, &fired],
        )
        .await
        .unwrap();
    let reply = api.post(&path, json!({"from": day(2), "to": day(1)})).await;
    assert_eq!(
        (&reply.body["created"], &reply.body["skipped"]),
        (&json!(23), &json!(1)),
        "{reply:?}"
    );
    let per_tick = db
        .count(&format!(
            "SELECT count(*) FROM runs WHERE job_id = '{job}' AND scheduled_for = '{}'",
            fired.to_rfc3339()
        ))
        .await;
    assert_eq!(per_tick, 1);
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action = 'job.backfill'")
            .await,
        3
    );
}

/// The runs of `job` fired by the scheduler after `since`, finished.
async fn finished_schedule_runs(api: &Api, job: &str, since: DateTime<Utc>) -> Vec<Value> {
    api.runs_of(job)
        .await
        .into_iter()
        .filter(|r| r["trigger"] == "schedule" && instant(&r["scheduled_for"]) > since)
        .filter(|r| r["state"] == "succeeded")
        .collect()
}

#[tokio::test]
async fn jitter_delays_each_start_by_the_same_offset_across_scheduler_restarts() {
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
    let _worker = Component::start("worker", &db, &[("JOBCENTER_WORKER_POLL_MS", "200")]);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "spread", "target": {"kind": "command", "command": ["true"]},
                   "jitter_seconds": 8,
                   "schedule": {"kind": "cron", "expression": "*/10 * * * * *"}}),
        )
        .await;
    assert_eq!(job["jitter_seconds"], 8, "{job}");
    let job = job["id"].as_str().unwrap().to_string();
    let offset = jobcenter_core::jitter::offset(job.parse().unwrap(), 8)
        .to_std()
        .unwrap();
    let offset = ChronoDuration::from_std(offset).unwrap();
    // The preview shows the same offset.
    let preview = api
        .get(&format!("/api/v1/jobs/{job}/next-fires?count=3"))
        .await;
    assert_eq!(preview.status, 200, "{preview:?}");
    for entry in preview.body["entries"].as_array().unwrap() {
        assert_eq!(
            instant(&entry["start_at"]) - instant(&entry["scheduled_for"]),
            offset,
            "{entry}"
        );
    }

    let mut since = Utc::now();
    for process in 0..2 {
        let mut scheduler = Component::start("scheduler", &db, &[]);
        let runs = eventually(Duration::from_secs(40), "two jittered runs", || async {
            let runs = finished_schedule_runs(&api, &job, since).await;
            (runs.len() >= 2).then_some(runs)
        })
        .await;
        for run in &runs {
            let tick = instant(&run["scheduled_for"]);
            assert_eq!(tick.timestamp() % 10, 0, "scheduled_for is the tick: {run}");
            assert_eq!(tick.timestamp_subsec_nanos(), 0, "{run}");
            let started = instant(&run["started_at"]);
            assert!(
                started >= tick + offset,
                "scheduler #{process}: started {started} before {tick} + {offset}"
            );
            assert!(
                started < tick + offset + ChronoDuration::seconds(15),
                "scheduler #{process}: started {started}, long after {tick} + {offset}"
            );
        }
        scheduler.kill();
        since = Utc::now();
    }
}

/// Local (Europe/Berlin) wall clock of an instant.
fn berlin(t: DateTime<Utc>) -> chrono::DateTime<chrono_tz::Tz> {
    t.with_timezone(&chrono_tz::Europe::Berlin)
}

#[tokio::test]
async fn dst_choices_are_kept_and_the_preview_marks_what_dst_changed() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;

    // Sundays of March at 02:30: the last one has no 02:30 and runs at 03:00 CEST.
    let reply = api
        .post(
            "/api/v1/schedules/preview",
            json!({"count": 12, "schedule": {"kind": "cron", "expression": "30 2 * 3 0",
                   "timezone": "Europe/Berlin"}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let entries = reply.body["entries"].as_array().unwrap();
    let fires: Vec<Value> = entries.iter().map(|e| e["scheduled_for"].clone()).collect();
    assert_eq!(
        reply.body["fires"],
        json!(fires),
        "fires stays the list of ticks"
    );
    let mut gaps = 0;
    for entry in entries {
        let tick = instant(&entry["scheduled_for"]);
        assert_eq!(
            entry["start_at"], entry["scheduled_for"],
            "no job, no jitter"
        );
        let local = berlin(tick);
        if entry["dst"] == "gap" {
            gaps += 1;
            assert_eq!((local.hour(), local.minute()), (3, 0), "{entry}");
            assert!(local.day() > 24, "the last Sunday: {entry}");
        } else {
            assert!(entry["dst"].is_null(), "{entry}");
            assert_eq!((local.hour(), local.minute()), (2, 30), "{entry}");
        }
    }
    assert!(gaps >= 2, "{entries:?}");

    // The same with `skip`: the last Sunday of March does not run at all.
    let reply = api
        .post(
            "/api/v1/schedules/preview",
            json!({"count": 12, "schedule": {"kind": "cron", "expression": "30 2 * 3 0",
                   "timezone": "Europe/Berlin", "dst_gap": "skip"}}),
        )
        .await;
    for entry in reply.body["entries"].as_array().unwrap() {
        let local = berlin(instant(&entry["scheduled_for"]));
        assert_eq!((local.hour(), local.minute()), (2, 30), "{entry}");
        assert!(entry["dst"].is_null(), "{entry}");
    }

    // A saved job: Sundays of October at 02:30, twice. The last one runs in CEST and
    // again an hour later in CET, marked.
    let job = api
        .create_job(
            &project,
            json!({"name": "twice", "target": {"kind": "command", "command": ["true"]},
                   "schedule": {"kind": "cron", "expression": "30 2 * 10 0",
                                "timezone": "Europe/Berlin", "dst_repeat": "twice"}}),
        )
        .await;
    assert_eq!(job["schedule"]["dst_repeat"], "twice", "{job}");
    assert_eq!(job["schedule"]["dst_gap"], "next", "{job}");
    let id = job["id"].as_str().unwrap();
    let reply = api
        .get(&format!("/api/v1/jobs/{id}/next-fires?count=12"))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let entries = reply.body["entries"].as_array().unwrap();
    let mut repeats = 0;
    for (i, entry) in entries.iter().enumerate() {
        let tick = instant(&entry["scheduled_for"]);
        assert_eq!(
            (berlin(tick).hour(), berlin(tick).minute()),
            (2, 30),
            "{entry}"
        );
        if entry["dst"] == "repeat" {
            repeats += 1;
            let previous = instant(&entries[i - 1]["scheduled_for"]);
            assert_eq!(tick - previous, ChronoDuration::hours(1), "{entry}");
        } else {
            assert!(entry["dst"].is_null(), "{entry}");
        }
    }
    assert!(repeats >= 2, "{entries:?}");
}
