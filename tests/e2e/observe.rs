//! Synchronous invoke, live logs, filtered and paged run lists, schedule previews.

use crate::harness::{Api, Component, TestDb};
use futures_util::StreamExt;
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn command(script: &str) -> serde_json::Value {
    json!({"kind": "command", "command": ["sh", "-c", script]})
}

#[tokio::test]
async fn wait_answers_the_finished_run_or_the_running_one() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let quick = api
        .create_job(&project, json!({"name": "quick", "target": command("sleep 0.3; echo -n 42 > $JOBCENTER_RESULT_FILE")}))
        .await;
    let reply = api
        .post(
            &format!(
                "/api/v1/jobs/{}/runs?wait=20",
                quick["id"].as_str().unwrap()
            ),
            json!({"input": 1}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["state"], "succeeded");
    assert_eq!(reply.body["result"], "42");

    let slow = api
        .create_job(
            &project,
            json!({"name": "slow", "target": command("sleep 30")}),
        )
        .await;
    let started = Instant::now();
    let reply = api
        .post(
            &format!("/api/v1/jobs/{}/runs?wait=1", slow["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert!(["queued", "running"].contains(&reply.body["state"].as_str().unwrap()));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let reply = api
        .post(
            &format!(
                "/api/v1/jobs/{}/runs?wait=100000",
                slow["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(reply.assert_problem(400).as_deref(), Some("wait"));
    api.cancel_all(slow["id"].as_str().unwrap()).await;
}

#[tokio::test]
async fn logs_can_be_followed_live_and_resumed_from_an_offset() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(&project, json!({"name": "talks", "target": command("for i in 1 2 3 4; do echo line-$i; sleep 0.4; done")}))
        .await;
    let run_id = api.trigger(job["id"].as_str().unwrap(), json!(null)).await;
    let response = api
        .http
        .get(format!(
            "{}/api/v1/runs/{run_id}/logs?follow=true",
            api.base
        ))
        .bearer_auth(api.token.as_ref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = String::new();
    let mut first_line_seen_while_running = false;
    let mut stream = response.bytes_stream();
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(bytes) = tokio::time::timeout_at(deadline.into(), stream.next())
        .await
        .expect("the stream ends")
    {
        body.push_str(&String::from_utf8_lossy(&bytes.unwrap()));
        if body.contains("data: line-1") && !first_line_seen_while_running {
            let run = api.get(&format!("/api/v1/runs/{run_id}")).await;
            first_line_seen_while_running = run.body["state"] == "running";
        }
    }
    assert!(
        first_line_seen_while_running,
        "the first line arrived only after the run: {body}"
    );
    let lines: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: line-"))
        .collect();
    assert_eq!(lines, ["1", "2", "3", "4"], "{body}");
    assert!(body.ends_with("event: end\ndata: succeeded\n\n"), "{body}");

    let full = api.get(&format!("/api/v1/runs/{run_id}/logs")).await;
    assert_eq!(full.text(), "line-1\nline-2\nline-3\nline-4\n");
    let rest = api
        .get(&format!("/api/v1/runs/{run_id}/logs?offset=14"))
        .await;
    assert_eq!(rest.text(), "line-3\nline-4\n");
}

#[tokio::test]
async fn run_lists_filter_and_page_without_duplicates() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]); // no worker: runs stay queued
    let api = Api::login_admin(&app).await;
    let a = api.create_project("a").await;
    let b = api.create_project("b").await;
    let job_a = api
        .create_job(&a, json!({"name": "a", "target": command("true")}))
        .await;
    let job_b = api
        .create_job(&b, json!({"name": "b", "target": command("true")}))
        .await;
    let mut a_runs = HashSet::new();
    for i in 0..5 {
        a_runs.insert(api.trigger(job_a["id"].as_str().unwrap(), json!(i)).await);
    }
    api.trigger(job_b["id"].as_str().unwrap(), json!(null))
        .await;
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/runs?project_id={a}&limit=2");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let reply = api.get(&path).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        for run in reply.body["items"].as_array().unwrap() {
            assert!(
                seen.insert(run["id"].as_str().unwrap().to_string()),
                "a run appeared twice"
            );
        }
        // A run inserted between pages is newer than the cursor and does not shift it.
        api.trigger(job_b["id"].as_str().unwrap(), json!(null))
            .await;
        match reply.body["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, a_runs);
    let queued = api
        .get(&format!(
            "/api/v1/runs?state=queued&job_id={}",
            job_b["id"].as_str().unwrap()
        ))
        .await;
    assert!(queued.body["items"].as_array().unwrap().len() >= 2);
    let none = api.get("/api/v1/runs?state=succeeded").await;
    assert_eq!(none.body["items"], json!([]));
    let future = api.get("/api/v1/runs?from=2999-01-01T00:00:00Z").await;
    assert_eq!(future.body["items"], json!([]));
    assert_eq!(
        api.get("/api/v1/runs?state=exploded")
            .await
            .assert_problem(400)
            .as_deref(),
        Some("state")
    );
    assert_eq!(
        api.get("/api/v1/runs?limit=100000")
            .await
            .assert_problem(400)
            .as_deref(),
        Some("limit")
    );
}

#[tokio::test]
async fn next_fires_are_previewed_in_the_jobs_time_zone() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(&project, json!({"name": "nine", "target": command("true"),
                   "schedule": {"kind": "cron", "expression": "0 9 * * *", "timezone": "Asia/Tokyo"}}))
        .await;
    let reply = api
        .get(&format!(
            "/api/v1/jobs/{}/next-fires?count=3",
            job["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let fires: Vec<chrono::DateTime<chrono::Utc>> = reply.body["fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(fires.len(), 3);
    for fire in &fires {
        assert_eq!(
            fire.format("%H:%M:%S").to_string(),
            "00:00:00",
            "09:00 in Tokyo is 00:00 UTC"
        );
    }
    assert_eq!((fires[1] - fires[0]).num_hours(), 24);
    assert_eq!(
        fires[0].to_rfc3339(),
        job["next_fire_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            .to_rfc3339()
    );

    let reply = api
        .post("/api/v1/schedules/preview", json!({"schedule": {"kind": "interval", "every_seconds": 60},
                                                   "starts_at": "2040-01-01T00:00:00Z", "count": 2}))
        .await;
    assert_eq!(
        reply.body["fires"],
        json!(["2040-01-01T00:00:00Z", "2040-01-01T00:01:00Z"]),
        "{reply:?}"
    );
    let reply = api
        .post(
            "/api/v1/schedules/preview",
            json!({"schedule": {"kind": "cron", "expression": "99 * * * *"}}),
        )
        .await;
    assert_eq!(
        reply.assert_problem(400).as_deref(),
        Some("schedule.expression")
    );
    let reply = api
        .get(&format!(
            "/api/v1/jobs/{}/next-fires?count=0",
            job["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(reply.assert_problem(400).as_deref(), Some("count"));
}

#[tokio::test]
async fn metrics_show_queues_workers_the_leader_and_http_durations() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let _scheduler = Component::start("scheduler", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    // Groups other than `default` are the admin's to allow, project by project.
    let reply = api
        .patch(
            &format!("/api/v1/projects/{project}"),
            json!({"worker_groups": ["gpu"]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let job = api
        .create_job(
            &project,
            json!({"name": "q", "target": command("true"), "worker_group": "gpu"}),
        )
        .await;
    for _ in 0..3 {
        api.trigger(job["id"].as_str().unwrap(), json!(null)).await;
    }
    let text = crate::harness::eventually(
        Duration::from_secs(10),
        "the leader in the metrics",
        || async {
            let reply = api.get("/metrics").await;
            let text = reply.text().to_string();
            text.contains("jobcenter_scheduler_leader{leader=\"jobcenter-scheduler")
                .then_some(text)
        },
    )
    .await;
    assert!(
        text.contains(r#"jobcenter_queue_depth{worker_group="gpu"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"jobcenter_queue_oldest_age_seconds{worker_group="gpu"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/api/v1/jobs/{id}/runs",status="202"}"#),
        "requests are labelled by route pattern: {text}"
    );
    let _worker = Component::start("worker", &db, &[("JOBCENTER_WORKER_GROUP", "gpu")]);
    crate::harness::eventually(
        Duration::from_secs(10),
        "the worker to drain the queue",
        || async {
            let text = api.get("/metrics").await.text().to_string();
            (text.contains(r#"jobcenter_workers_alive{worker_group="gpu"} 1"#)
                && !text.contains(r#"jobcenter_queue_depth{worker_group="gpu"}"#))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn the_spec_and_an_offline_reference_are_served() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let api = Api::new(&app);
    let spec = api.get("/openapi.json").await;
    assert_eq!(spec.status, 200);
    assert_eq!(spec.body["info"]["title"], "jobcenter");
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        spec.body, committed,
        "the served document is the committed one"
    );
    let page = api.get("/docs/").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.text().contains("swagger-ui"), "{page:?}");
    // The page's assets come from the binary, not from a CDN.
    let bundle = api.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status, 200);
    assert!(bundle.text().len() > 100_000);
    let initializer = api.get("/docs/swagger-initializer.js").await;
    assert_eq!(initializer.status, 200);
    assert!(
        initializer.text().contains("\"/openapi.json\""),
        "the page reads the served document: {initializer:?}"
    );
    assert_eq!(api.get("/docs/no-such-file.js").await.status, 404);
    // The address the README gives, without the slash, leads to the page.
    let bare = api.get("/docs").await;
    assert_eq!(bare.status, 200, "{bare:?}");
    assert!(bare.text().contains("swagger-ui"), "{bare:?}");
    assert!(
        !page.text().contains("https://"),
        "the page loads nothing from the internet"
    );
}

#[tokio::test]
async fn metrics_count_runs_claim_latency_and_schedule_lag() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "tick", "target": command("exit 3"),
                   "schedule": {"kind": "cron", "expression": "* * * * * *"}}),
        )
        .await;
    let text = crate::harness::eventually(
        Duration::from_secs(15),
        "a scheduled run to fail",
        || async {
            let text = api.get("/metrics").await.text().to_string();
            text.contains(r#"jobcenter_runs_finished_total{kind="command",state="failed"}"#)
                .then_some(text)
        },
    )
    .await;
    api.post(
        &format!("/api/v1/jobs/{}/disable", job["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    assert!(
        text.contains(r#"jobcenter_runs_started_total{kind="command"}"#),
        "{text}"
    );
    let count = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        count("jobcenter_claim_latency_seconds_count") >= 1,
        "{text}"
    );
    assert!(count("jobcenter_schedule_lag_seconds_count") >= 1, "{text}");
}

/// One Server-Sent Event as a client reads it (the WHATWG parsing rules: a line ends at
/// `\r\n`, `\r` or `\n`; a blank line dispatches).
#[derive(Debug, Default, Clone, PartialEq)]
struct SseEvent {
    event: String,
    data: String,
    id: Option<String>,
}

fn parse_sse(body: &str) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let mut current = SseEvent::default();
    let mut data: Vec<&str> = Vec::new();
    for line in body.replace("\r\n", "\n").split(['\r', '\n']) {
        if line.is_empty() {
            if !data.is_empty() {
                current.data = data.join("\n");
                if current.event.is_empty() {
                    current.event = "message".into();
                }
                events.push(std::mem::take(&mut current));
                data.clear();
            } else {
                current = SseEvent::default();
            }
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => current.event = value.to_string(),
            "data" => data.push(value),
            "id" => current.id = Some(value.to_string()),
            _ => {}
        }
    }
    events
}

/// Reads a followed log until the server ends it (or `within` passes: None).
async fn read_stream(response: reqwest::Response, within: Duration) -> Option<String> {
    let mut body = String::new();
    let mut stream = response.bytes_stream();
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.next()).await {
            Err(_) => return None,
            Ok(None) => return Some(body),
            Ok(Some(bytes)) => match bytes {
                Ok(bytes) => body.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => return Some(body),
            },
        }
    }
}

#[tokio::test]
async fn run_output_cannot_forge_sse_events_in_a_followed_log() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let script = r"printf 'x\revent: end\rid: 999\rdata: forged\r\r'; sleep 0.3; printf 'y\r\nevent: end\r\ndata: forged2\r\n\r\n'; sleep 0.3; echo done";
    let job = api
        .create_job(
            &project,
            json!({"name": "forger", "target": command(script)}),
        )
        .await;
    let run_id = api.trigger(job["id"].as_str().unwrap(), json!(null)).await;
    let response = api
        .http
        .get(format!(
            "{}/api/v1/runs/{run_id}/logs?follow=true",
            api.base
        ))
        .bearer_auth(api.token.as_ref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = read_stream(response, Duration::from_secs(20))
        .await
        .expect("the stream ends with the run");
    let events = parse_sse(&body);
    let ends: Vec<&SseEvent> = events.iter().filter(|e| e.event != "log").collect();
    assert_eq!(
        ends,
        [&SseEvent {
            event: "end".into(),
            data: "succeeded".into(),
            id: None
        }],
        "{events:#?}"
    );
    assert_eq!(events.last().unwrap().event, "end");
    assert!(
        events.iter().all(|e| e.id.as_deref() != Some("999")),
        "{events:#?}"
    );
    let logged: String = events
        .iter()
        .filter(|e| e.event == "log")
        .map(|e| e.data.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for text in [
        "event: end",
        "data: forged",
        "id: 999",
        "data: forged2",
        "done",
    ] {
        assert!(logged.contains(text), "{text:?} missing from {logged:?}");
    }
}

#[tokio::test]
async fn a_followed_log_ends_when_the_callers_api_token_is_revoked() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "long", "target": command("echo started; sleep 60")}),
        )
        .await;
    let run_id = api.trigger(job["id"].as_str().unwrap(), json!(null)).await;
    let created = api
        .post("/api/v1/tokens", json!({"name": "follower"}))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let token = created.body["token"].as_str().unwrap();
    let response = api
        .http
        .get(format!(
            "{}/api/v1/runs/{run_id}/logs?follow=true",
            api.base
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Still open while the token is valid.
    let mut stream = response.bytes_stream();
    let open_for = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(
        open_for.is_err(),
        "the stream ended while the token was valid"
    );
    let revoked = api
        .delete(&format!(
            "/api/v1/tokens/{}",
            created.body["id"].as_str().unwrap()
        ))
        .await;
    assert!(revoked.status < 300, "{revoked:?}");
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived the revoked token");
    let run = api.get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(
        run.body["state"], "running",
        "it ended with the token, not the run"
    );
    api.cancel_all(job["id"].as_str().unwrap()).await;
}

#[tokio::test]
async fn metrics_require_the_metrics_token_when_one_is_set() {
    let db = TestDb::new();
    let app = Component::start(
        "api",
        &db,
        &[("JOBCENTER_METRICS_TOKEN", "scrape-me-0123456789")],
    );
    let api = Api::new(&app);
    let scrape = |token: Option<&'static str>| {
        let mut request = api.http.get(format!("{}/metrics", api.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap() }
    };
    assert_eq!(scrape(None).await.status(), 401);
    assert_eq!(scrape(Some("scrape-me")).await.status(), 401);
    let admin = Api::login_admin(&app).await;
    let with_a_users_token = admin.get("/metrics").await;
    assert_eq!(with_a_users_token.status, 401, "{with_a_users_token:?}");
    let reply = scrape(Some("scrape-me-0123456789")).await;
    assert_eq!(reply.status(), 200);
    assert!(reply.text().await.unwrap().contains("jobcenter_"));
    // Without the variable, /metrics stays open (the authorization matrix checks it).
}
