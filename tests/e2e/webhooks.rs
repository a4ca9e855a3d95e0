//! CI webhooks: GitHub's HMAC and GitLab's token, replays, size cap, disabled jobs, and
//! idempotent manual triggers.

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
        json!({"ref": "refs/heads/main", "after": "abc123"})
    );
    let result: Value = serde_json::from_str(run["result"].as_str().unwrap()).unwrap();
    assert_eq!(result, run["input"]);

    // The same delivery again: the first run, not a second one.
    let replay = deliver(&api, &path, &headers, body).await;
    assert_eq!(replay.status, 200, "{replay:?}");
    assert_eq!(replay.body["run_id"], run_id.as_str());

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
    // An unknown webhook id answers like a bad signature.
    let unknown = format!("/hooks/{}", uuid::Uuid::new_v4());
    deliver(
        &api,
        &unknown,
        &[("x-hub-signature-256", signature.as_str())],
        body,
    )
    .await
    .assert_problem(401);
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
    assert_eq!((first.status, second.status), (202, 200));
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

    // Deleting the webhook makes its URL answer 401.
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
        .assert_problem(401);
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
