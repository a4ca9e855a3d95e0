//! CI webhooks: GitHub's HMAC and GitLab's token, replays, size cap, disabled jobs,
//! GitHub's ping, event and branch filters, the body of an unknown webhook left unread,
//! and idempotent manual triggers.

use crate::harness::{Api, Component, TestDb};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};

fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A job whose run echoes its input file as its result, and a webhook on it.
async fn job_with_webhook(api: &Api) -> (String, Value) {
    let project = api.create_project("ci").await;
    let script = r#"cat "$JOBCENTER_INPUT_FILE" > "$JOBCENTER_RESULT_FILE""#;
    let job = api
        .create_job(
            &project,
            json!({"name": "on-push", "target": {"kind": "command", "command": ["sh", "-c", script]}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap().to_string();
    let reply = api
        .post(&format!("/api/v1/jobs/{job_id}/webhooks"), json!({}))
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    (job_id, reply.body)
}

/// Path part of the webhook's URL (the URL itself names the public base).
fn hook_path(webhook: &Value) -> String {
    format!("/hooks/{}", webhook["id"].as_str().unwrap())
}

async fn deliver(
    api: &Api,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> crate::harness::Reply {
    api.with_token(None)
        .request("POST", path, headers, Some(body.to_vec()))
        .await
}

#[tokio::test]
async fn a_signed_github_delivery_runs_the_job_and_forgeries_create_nothing() {
    let db = TestDb::new();
    let app = Component::start(
        "all",
        &db,
        &[("JOBCENTER_PUBLIC_URL", "https://jobs.example.com/")],
    );
    let api = Api::login_admin(&app).await;
    let (job, webhook) = job_with_webhook(&api).await;
    let secret = webhook["secret"].as_str().unwrap();
    assert!(secret.len() >= 32, "{webhook}");
    let path = hook_path(&webhook);
    assert_eq!(webhook["url"], format!("https://jobs.example.com{path}"));
    // The secret is shown once: listing does not reveal it.
    let listed = api.get(&format!("/api/v1/jobs/{job}/webhooks")).await;
    assert_eq!(listed.body["items"][0]["id"], webhook["id"]);
    assert!(
        listed.body["items"][0].get("secret").is_none(),
        "{listed:?}"
    );

    let body = br#"{"ref":"refs/heads/main","after":"abc123"}"#;
    let signature = github_signature(secret, body);
    let json_type = ("content-type", "application/json");
    let headers = [
        ("x-hub-signature-256", signature.as_str()),
        ("x-github-delivery", "delivery-1"),
        json_type,
    ];
    let reply = deliver(&api, &path, &headers, body).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let run_id = reply.body["run_id"].as_str().unwrap().to_string();
    let run = api.wait_finished(&run_id).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["trigger"], "webhook");
    assert_eq!(
        run["input"],
        json!({"ref": "refs/heads/main", "after": "abc123", "event": null, "delivery": "delivery-1"})
    );
    let result: Value = serde_json::from_str(run["result"].as_str().unwrap()).unwrap();
    assert_eq!(result, run["input"]);

    // The same delivery again: the first run (202, as the first), not a second one.
    let replay = deliver(&api, &path, &headers, body).await;
    assert_eq!(replay.status, 202, "{replay:?}");
    assert_eq!(replay.body["run_id"], run_id.as_str());
    assert_eq!(replay.headers["idempotent-replayed"], "true");

    // Forgeries: wrong key, no signature, a tampered body, a GitLab token that is wrong.
    let wrong_key = github_signature("not-the-secret-not-the-secret-00", body);
    let tampered = br#"{"ref":"refs/heads/evil","after":"abc123"}"#;
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Headers, &[u8]); 5] = [
        (
            &[("x-hub-signature-256", wrong_key.as_str()), json_type],
            body,
        ),
        (&[json_type], body),
        (
            &[("x-hub-signature-256", signature.as_str()), json_type],
            tampered,
        ),
        (
            &[
                ("x-gitlab-token", "guess-guess-guess-guess-guess-guess"),
                json_type,
            ],
            body,
        ),
        (&[("x-hub-signature-256", "sha256=nothex"), json_type], body),
    ];
    for (headers, body) in cases {
        let reply = deliver(&api, &path, headers, body).await;
        reply.assert_problem(401);
    }
    // An unknown webhook id answers 404 (it is random: nothing to learn from probing).
    let unknown = format!("/hooks/{}", uuid::Uuid::new_v4());
    deliver(
        &api,
        &unknown,
        &[("x-hub-signature-256", signature.as_str())],
        body,
    )
    .await
    .assert_problem(404);
    assert_eq!(api.runs_of(&job).await.len(), 1, "forgeries created runs");

    // The audit log records the delivery's run.
    let audit = api.get(&format!("/api/v1/audit?target=run:{run_id}")).await;
    assert_eq!(audit.body["items"][0]["action"], "run.trigger", "{audit:?}");
    assert_eq!(
        audit.body["items"][0]["detail"]["webhook_id"],
        webhook["id"]
    );
    assert!(audit.body["items"][0]["actor_id"].is_null());
}

#[tokio::test]
async fn gitlab_tokens_plain_bodies_size_cap_and_disabled_jobs() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[("JOBCENTER_WEBHOOK_MAX_BODY_BYTES", "2048")]);
    let api = Api::login_admin(&app).await;
    let (job, webhook) = job_with_webhook(&api).await;
    let secret = webhook["secret"].as_str().unwrap();
    let path = hook_path(&webhook);

    // GitLab: the secret in X-Gitlab-Token; a non-JSON body becomes a string input.
    let headers = [("x-gitlab-token", secret), ("content-type", "text/plain")];
    let reply = deliver(&api, &path, &headers, b"not json at all").await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let run = api
        .get(&format!(
            "/api/v1/runs/{}",
            reply.body["run_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(run.body["input"], "not json at all");

    // Idempotency-Key works like a GitHub delivery id.
    let keyed = [("x-gitlab-token", secret), ("idempotency-key", "gl-42")];
    let first = deliver(&api, &path, &keyed, b"{}").await;
    let second = deliver(&api, &path, &keyed, b"{}").await;
    assert_eq!((first.status, second.status), (202, 202));
    assert_eq!(first.body["run_id"], second.body["run_id"]);

    // Past the cap: 413, nothing created.
    let big = vec![b'x'; 4096];
    deliver(&api, &path, &[("x-gitlab-token", secret)], &big)
        .await
        .assert_problem(413);
    assert_eq!(api.runs_of(&job).await.len(), 2);

    // A disabled job's webhook answers 409 and creates nothing.
    assert_eq!(
        api.post(&format!("/api/v1/jobs/{job}/disable"), json!({}))
            .await
            .status,
        200
    );
    deliver(&api, &path, &[("x-gitlab-token", secret)], b"{}")
        .await
        .assert_problem(409);
    assert_eq!(api.runs_of(&job).await.len(), 2);

    // Deleting the webhook makes its URL answer 404.
    let id = webhook["id"].as_str().unwrap();
    let reply = api
        .delete(&format!("/api/v1/jobs/{job}/webhooks/{id}"))
        .await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(
        api.post(&format!("/api/v1/jobs/{job}/enable"), json!({}))
            .await
            .status,
        200
    );
    deliver(&api, &path, &[("x-gitlab-token", secret)], b"{}")
        .await
        .assert_problem(404);
}

/// A job (that no worker runs here) and a webhook on it with `filters` as the body.
async fn filtered_webhook(api: &Api, filters: Value) -> (String, Value) {
    let project = api.create_project("ci").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "deploy", "target": {"kind": "command", "command": ["true"]}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap().to_string();
    let reply = api
        .post(&format!("/api/v1/jobs/{job_id}/webhooks"), filters)
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    (job_id, reply.body)
}

/// A GitHub delivery as GitHub sends it: event, delivery id, JSON, signed.
async fn github(
    api: &Api,
    webhook: &Value,
    event: &str,
    delivery: &str,
    body: &Value,
) -> crate::harness::Reply {
    let body = serde_json::to_vec(body).unwrap();
    let signature = github_signature(webhook["secret"].as_str().unwrap(), &body);
    let headers = [
        ("x-hub-signature-256", signature.as_str()),
        ("x-github-event", event),
        ("x-github-delivery", delivery),
        ("x-github-hook-id", "12345"),
        ("user-agent", "GitHub-Hookshot/abc123"),
        ("content-type", "application/json"),
    ];
    deliver(api, &hook_path(webhook), &headers, &body).await
}

#[tokio::test]
async fn github_ping_event_and_branch_filters_and_replays() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let api = Api::login_admin(&app).await;
    let filters = json!({"events": ["push"], "branches": ["main", "release/*"]});
    let (job, webhook) = filtered_webhook(&api, filters).await;
    assert_eq!(webhook["events"], json!(["push"]), "{webhook}");
    assert_eq!(webhook["branches"], json!(["main", "release/*"]));
    let listed = api.get(&format!("/api/v1/jobs/{job}/webhooks")).await;
    assert_eq!(
        listed.body["items"][0]["events"],
        json!(["push"]),
        "{listed:?}"
    );
    assert_eq!(
        listed.body["items"][0]["branches"],
        json!(["main", "release/*"])
    );

    // GitHub's ping, sent when the webhook is added there: 200, no run.
    let ping = json!({"zen": "Design for failure.", "hook_id": 12345,
                      "hook": {"type": "Repository", "events": ["push"], "active": true}});
    let reply = github(&api, &webhook, "ping", "d-ping", &ping).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, json!({"skipped": "ping"}));
    // Its delivery counts as one.
    let listed = api.get(&format!("/api/v1/jobs/{job}/webhooks")).await;
    assert!(
        listed.body["items"][0]["last_delivery_at"].is_string(),
        "{listed:?}"
    );

    // A push to a branch the webhook does not take, a tag push, another event: skipped.
    let push = |git_ref: &str| {
        json!({"ref": git_ref, "before": "0000", "after": "abc123",
                                      "repository": {"full_name": "acme/app"}, "commits": []})
    };
    let reply = github(&api, &webhook, "push", "d-dev", &push("refs/heads/dev")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let reason = reply.body["skipped"].as_str().unwrap();
    assert!(reason.contains("refs/heads/dev"), "{reason}");
    let reply = github(&api, &webhook, "push", "d-tag", &push("refs/tags/main")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body["skipped"].is_string(), "{reply:?}");
    let issue = json!({"action": "opened", "ref": "refs/heads/main", "issue": {"number": 1}});
    let reply = github(&api, &webhook, "issues", "d-issue", &issue).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let reason = reply.body["skipped"].as_str().unwrap();
    assert!(reason.contains("issues"), "{reason}");
    assert!(
        api.runs_of(&job).await.is_empty(),
        "skipped deliveries queued runs"
    );

    // A filtered-out delivery still has to be authentic.
    let body = serde_json::to_vec(&push("refs/heads/dev")).unwrap();
    let forged = [
        ("x-hub-signature-256", "sha256=00"),
        ("x-github-event", "ping"),
    ];
    deliver(&api, &hook_path(&webhook), &forged, &body)
        .await
        .assert_problem(401);

    // A matching push: 202; the input is the payload with the event and the delivery.
    let payload = push("refs/heads/release/2.1");
    let reply = github(&api, &webhook, "push", "72d3162e-cc78-11e3", &payload).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert!(reply.headers.get("idempotent-replayed").is_none());
    let run_id = reply.body["run_id"].as_str().unwrap().to_string();
    let run = api.get(&format!("/api/v1/runs/{run_id}")).await;
    let mut expected = payload.clone();
    expected["event"] = json!("push");
    expected["delivery"] = json!("72d3162e-cc78-11e3");
    assert_eq!(run.body["input"], expected, "{run:?}");
    assert_eq!(run.body["trigger"], "webhook");

    // GitHub's "Redeliver": the same delivery id, 202 with the first run.
    let again = github(&api, &webhook, "push", "72d3162e-cc78-11e3", &payload).await;
    assert_eq!(again.status, 202, "{again:?}");
    assert_eq!(again.body["run_id"], run_id.as_str());
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let main = github(&api, &webhook, "push", "d-main", &push("refs/heads/main")).await;
    assert_eq!(main.status, 202, "{main:?}");
    assert_ne!(main.body["run_id"], run_id.as_str());
    assert_eq!(api.runs_of(&job).await.len(), 2);
}

#[tokio::test]
async fn gitlab_events_and_branches_filter_and_replays_answer_the_first_run() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let api = Api::login_admin(&app).await;
    let filters = json!({"events": ["Push Hook"], "branches": ["main"]});
    let (job, webhook) = filtered_webhook(&api, filters).await;
    let secret = webhook["secret"].as_str().unwrap();
    let path = hook_path(&webhook);
    let push = |git_ref: &str| {
        serde_json::to_vec(&json!({"object_kind": "push", "event_name": "push", "ref": git_ref,
                                   "checkout_sha": "abc123", "project": {"path_with_namespace": "acme/app"}}))
        .unwrap()
    };
    let gitlab = |event: &'static str, key: &'static str| {
        [
            ("x-gitlab-token", secret),
            ("x-gitlab-event", event),
            (
                "x-gitlab-event-uuid",
                "13792a34-cac6-4fda-95a8-c58e00a3954e",
            ),
            ("x-gitlab-instance", "https://gitlab.example.com"),
            ("idempotency-key", key),
            ("content-type", "application/json"),
        ]
    };

    let mr = serde_json::to_vec(&json!({"object_kind": "merge_request",
                                        "object_attributes": {"target_branch": "main"}}))
    .unwrap();
    let reply = deliver(&api, &path, &gitlab("Merge Request Hook", "k-mr"), &mr).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body["skipped"]
        .as_str()
        .unwrap()
        .contains("Merge Request Hook"));
    let reply = deliver(
        &api,
        &path,
        &gitlab("Push Hook", "k-dev"),
        &push("refs/heads/dev"),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body["skipped"]
        .as_str()
        .unwrap()
        .contains("refs/heads/dev"));
    assert!(api.runs_of(&job).await.is_empty());

    let body = push("refs/heads/main");
    let first = deliver(&api, &path, &gitlab("Push Hook", "k-main"), &body).await;
    assert_eq!(first.status, 202, "{first:?}");
    let run_id = first.body["run_id"].as_str().unwrap();
    let run = api.get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run.body["input"]["event"], "Push Hook", "{run:?}");
    assert_eq!(run.body["input"]["delivery"], "k-main");
    assert_eq!(run.body["input"]["checkout_sha"], "abc123");
    // GitLab's retry keeps the Idempotency-Key: 202 with the first run.
    let retry = deliver(&api, &path, &gitlab("Push Hook", "k-main"), &body).await;
    assert_eq!(retry.status, 202, "{retry:?}");
    assert_eq!(retry.body["run_id"], run_id);
    assert_eq!(api.runs_of(&job).await.len(), 1);
}

#[tokio::test]
async fn webhook_filters_are_checked_at_creation() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let api = Api::login_admin(&app).await;
    let (job, webhook) = filtered_webhook(&api, json!({})).await;
    assert_eq!(
        (webhook["events"].clone(), webhook["branches"].clone()),
        (json!([]), json!([]))
    );
    let url = format!("/api/v1/jobs/{job}/webhooks");
    // No body at all: a webhook that takes everything.
    let reply = api.request("POST", &url, &[], None).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(reply.body["events"], json!([]));
    let too_many: Vec<String> = (0..33).map(|i| format!("e{i}")).collect();
    let cases = [
        (json!({"events": too_many}), "events"),
        (json!({"events": ["push", ""]}), "events[1]"),
        (json!({"branches": ["x".repeat(256)]}), "branches[0]"),
        (json!({"branches": ["main\n"]}), "branches[0]"),
        (json!({"branches": "main"}), "branches"),
        (json!({"filters": []}), "filters"),
    ];
    for (body, field) in cases {
        let reply = api.post(&url, body.clone()).await;
        assert_eq!(reply.assert_problem(400).as_deref(), Some(field), "{body}");
    }
    // Repeats are dropped.
    let reply = api.post(&url, json!({"events": ["push", "push"]})).await;
    assert_eq!(reply.body["events"], json!(["push"]), "{reply:?}");
}

#[tokio::test]
async fn the_body_of_an_unknown_webhook_is_not_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::new();
    let app = Component::start("api", &db, &[("JOBCENTER_WEBHOOK_MAX_BODY_BYTES", "2048")]);
    let api = Api::login_admin(&app).await;
    let unknown = format!("/hooks/{}", uuid::Uuid::new_v4());
    // Larger than the cap: 404 (the webhook is not known), not 413.
    let big = vec![b'x'; 4096];
    deliver(&api, &unknown, &[("x-gitlab-token", "t")], &big)
        .await
        .assert_problem(404);
    deliver(&api, "/hooks/not-a-uuid", &[], b"{}")
        .await
        .assert_problem(404);

    // A body announced and never sent: the 404 comes at once, not after the body.
    let address = api.base.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST {unknown} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         x-gitlab-token: t\r\ncontent-length: 1000\r\n\r\n{{\"ref\": "
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        read.is_ok(),
        "no answer within 5 s while the body was pending: {text:?}"
    );
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_manual_run() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("p").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "j", "target": {"kind": "command", "command": ["true"]}}),
        )
        .await;
    let runs = format!("/api/v1/jobs/{}/runs", job["id"].as_str().unwrap());
    let body = br#"{"input": {"n": 1}}"#.to_vec();
    let headers = [
        ("content-type", "application/json"),
        ("idempotency-key", "deploy-7"),
    ];
    let first = api
        .request("POST", &runs, &headers, Some(body.clone()))
        .await;
    let second = api
        .request("POST", &runs, &headers, Some(body.clone()))
        .await;
    assert_eq!((first.status, second.status), (202, 202), "{second:?}");
    assert_eq!(first.body["id"], second.body["id"]);
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(second.headers["idempotent-replayed"], "true");
    let other = [
        ("content-type", "application/json"),
        ("idempotency-key", "deploy-8"),
    ];
    let third = api.request("POST", &runs, &other, Some(body)).await;
    assert_eq!(third.status, 202);
    assert_ne!(third.body["id"], first.body["id"]);
    assert_eq!(api.runs_of(job["id"].as_str().unwrap()).await.len(), 2);
    let too_long = "k".repeat(300);
    let reply = api
        .request(
            "POST",
            &runs,
            &[("idempotency-key", too_long.as_str())],
            None,
        )
        .await;
    assert_eq!(
        reply.assert_problem(400).as_deref(),
        Some("idempotency-key")
    );
}
