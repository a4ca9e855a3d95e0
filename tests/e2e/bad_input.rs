//! Bad input gets a 4xx problem+json naming the field, and changes nothing.

use crate::harness::{Api, Component, TestDb};
use serde_json::json;

/// Row counts of every table the API writes.
async fn snapshot(db: &TestDb) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "users",
        "projects",
        "jobs",
        "job_children",
        "runs",
        "run_logs",
        "artifacts",
        "audit_log",
    ] {
        counts.push(db.count(&format!("SELECT count(*) FROM {table}")).await);
    }
    counts
}

#[tokio::test]
async fn bad_inputs_answer_problems_and_store_nothing() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let jobs = format!("/api/v1/projects/{project}/jobs");
    let hourly = api
        .create_job(
            &project,
            json!({"name": "hourly", "target": {"kind": "command", "command": ["true"]},
                   "schedule": {"kind": "cron", "expression": "0 * * * *"}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let manual = api
        .create_job(
            &project,
            json!({"name": "manual", "target": {"kind": "command", "command": ["true"]}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = snapshot(&db).await;

    let reply = api
        .post_raw(&jobs, "application/json", r#"{"name": "x", "target": "#)
        .await;
    reply.assert_problem(400);

    // The API decodes no Content-Encoding: an encoded body is refused, not misread.
    let valid = json!({"name": "x", "target": {"kind": "command", "command": ["true"]}});
    let encoded = api
        .http
        .post(format!("{}{jobs}", api.base))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(valid.to_string());
    let reply = api.send_request(encoded).await;
    assert_eq!(
        reply.assert_problem(415).as_deref(),
        Some("Content-Encoding"),
        "{reply:?}"
    );
    let upload = api
        .http
        .put(format!(
            "{}/api/v1/projects/{project}/artifacts/tool",
            api.base
        ))
        .header("content-encoding", "br")
        .body("not really brotli");
    let reply = api.send_request(upload).await;
    assert_eq!(
        reply.assert_problem(415).as_deref(),
        Some("Content-Encoding"),
        "{reply:?}"
    );

    let reply = api
        .post(&jobs, json!({"name": "x", "target": {"kind": "teleport"}}))
        .await;
    assert_eq!(
        reply.assert_problem(400).as_deref(),
        Some("target.kind"),
        "{reply:?}"
    );

    let cron = |expression: &str, timezone: &str| {
        json!({"name": "x", "target": {"kind": "command", "command": ["true"]},
               "schedule": {"kind": "cron", "expression": expression, "timezone": timezone}})
    };
    for bad in ["61 * * * *", "* * *", "not a cron", "* * * * * * * *", ""] {
        let reply = api.post(&jobs, cron(bad, "UTC")).await;
        assert_eq!(
            reply.assert_problem(400).as_deref(),
            Some("schedule.expression"),
            "{bad}: {reply:?}"
        );
    }
    let reply = api
        .post(&jobs, cron("0 * * * *", "Mars/Olympus_Mons"))
        .await;
    assert_eq!(
        reply.assert_problem(400).as_deref(),
        Some("schedule.timezone"),
        "{reply:?}"
    );

    let reply = api
        .post(
            &jobs,
            json!({"name": "x", "target": {"kind": "command", "command": []}}),
        )
        .await;
    assert_eq!(
        reply.assert_problem(400).as_deref(),
        Some("target.command"),
        "{reply:?}"
    );
    let reply = api
        .post(&jobs, json!({"name": "x", "target": {"kind": "command", "command": ["true"]}, "timeout_seconds": "soon"}))
        .await;
    assert_eq!(
        reply.assert_problem(400).as_deref(),
        Some("timeout_seconds"),
        "{reply:?}"
    );
    let reply = api
        .post(&jobs, json!({"name": "x", "target": {"kind": "command", "command": ["true"]}, "colour": "red"}))
        .await;
    assert_eq!(
        reply.assert_problem(400).as_deref(),
        Some("colour"),
        "{reply:?}"
    );
    let reply = api
        .post(&jobs, json!({"name": "x", "target": {"kind": "command", "command": ["true"]},
                            "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}))
        .await;
    assert_eq!(
        reply.assert_problem(400).as_deref(),
        Some("ends_at"),
        "{reply:?}"
    );

    // Schedule policies: jitter, DST choices, backfill ranges.
    let command = json!({"kind": "command", "command": ["true"]});
    for bad in [json!(-1), json!(3601), json!("soon"), json!(1.5)] {
        let reply = api
            .post(
                &jobs,
                json!({"name": "x", "target": command, "jitter_seconds": bad}),
            )
            .await;
        assert_eq!(
            reply.assert_problem(400).as_deref(),
            Some("jitter_seconds"),
            "{bad}: {reply:?}"
        );
    }
    let reply = api
        .patch(
            &format!("/api/v1/jobs/{hourly}"),
            json!({"jitter_seconds": 7200}),
        )
        .await;
    assert_eq!(reply.assert_problem(400).as_deref(), Some("jitter_seconds"));
    for (field, bad) in [
        ("dst_gap", json!("later")),
        ("dst_gap", json!(1)),
        ("dst_repeat", json!("thrice")),
        ("dst_repeat", json!(null)),
    ] {
        let mut schedule = json!({"kind": "cron", "expression": "30 2 * * *",
                                  "timezone": "Europe/Berlin"});
        schedule[field] = bad.clone();
        let reply = api
            .post(
                &jobs,
                json!({"name": "x", "target": command, "schedule": schedule}),
            )
            .await;
        assert_eq!(
            reply.assert_problem(400).as_deref(),
            Some(format!("schedule.{field}").as_str()),
            "{field}={bad}: {reply:?}"
        );
        let reply = api
            .post("/api/v1/schedules/preview", json!({"schedule": schedule}))
            .await;
        assert_eq!(
            reply.assert_problem(400).as_deref(),
            Some(format!("schedule.{field}").as_str()),
            "preview {field}={bad}: {reply:?}"
        );
    }
    let backfill = format!("/api/v1/jobs/{hourly}/backfill");
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    for (body, field) in [
        (json!({"from": "2024-01-02T00:00:00Z", "to": future}), "to"),
        (
            json!({"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"}),
            "to",
        ),
        (
            json!({"from": "2024-01-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"}),
            "to",
        ),
        (json!({"to": "2024-01-01T00:00:00Z"}), "from"),
        (
            json!({"from": "yesterday", "to": "2024-01-01T00:00:00Z"}),
            "from",
        ),
        (
            json!({"from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z", "x": 1}),
            "x",
        ),
        // 1001 hourly ticks.
        (
            json!({"from": "2024-01-01T00:00:00Z", "to": "2024-02-11T17:00:01Z"}),
            "from",
        ),
    ] {
        let reply = api.post(&backfill, body.clone()).await;
        assert_eq!(
            reply.assert_problem(400).as_deref(),
            Some(field),
            "{body}: {reply:?}"
        );
    }
    let reply = api
        .post(
            &format!("/api/v1/jobs/{manual}/backfill"),
            json!({"from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z"}),
        )
        .await;
    assert_eq!(reply.assert_problem(400).as_deref(), Some("schedule"));

    let unknown = uuid::Uuid::new_v4();
    let command = json!({"kind": "command", "command": ["true"]});
    for (extra, field) in [
        (json!({"pause_after_failures": 0}), "pause_after_failures"),
        (
            json!({"pause_after_failures": 1001}),
            "pause_after_failures",
        ),
        (
            json!({"children": [{"job_id": unknown, "when": "sometimes"}]}),
            "children[0].when",
        ),
        (
            json!({"children": [{"job_id": "not-a-uuid", "when": "on_success"}]}),
            "children[0].job_id",
        ),
    ] {
        let mut body = json!({"name": "x", "target": command});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let reply = api.post(&jobs, body).await;
        assert_eq!(
            reply.assert_problem(400).as_deref(),
            Some(field),
            "{reply:?}"
        );
    }
    let reply = api
        .post(
            &jobs,
            json!({"name": "x", "target": command,
                            "children": [{"job_id": unknown, "when": "on_success"}]}),
        )
        .await;
    reply.assert_problem(404);

    api.get(&format!("/api/v1/jobs/{unknown}"))
        .await
        .assert_problem(404);
    api.post(&format!("/api/v1/jobs/{unknown}/runs"), json!({"input": 1}))
        .await
        .assert_problem(404);
    api.post(
        &format!("/api/v1/jobs/{unknown}/backfill"),
        json!({"from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z"}),
    )
    .await
    .assert_problem(404);
    api.get("/api/v1/jobs/not-a-uuid").await.assert_problem(404);
    api.post(
        &format!("/api/v1/projects/{unknown}/jobs"),
        cron("0 * * * *", "UTC"),
    )
    .await
    .assert_problem(404);

    let mut anonymous = api.clone();
    anonymous.token = None;
    anonymous.get("/api/v1/projects").await.assert_problem(401);
    anonymous.token = Some("not-a-token".into());
    anonymous.get("/api/v1/projects").await.assert_problem(401);
    let reply = api
        .post(
            "/api/v1/auth/login",
            json!({"username": "admin", "password": "wrong-password"}),
        )
        .await;
    reply.assert_problem(401);

    assert_eq!(
        snapshot(&db).await,
        before,
        "a bad request changed the database"
    );
}
