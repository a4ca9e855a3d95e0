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
    let before = snapshot(&db).await;

    let reply = api
        .post_raw(&jobs, "application/json", r#"{"name": "x", "target": "#)
        .await;
    reply.assert_problem(400);

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
