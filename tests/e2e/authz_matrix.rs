//! The authorization matrix: every route of the API (read from its own OpenAPI document)
//! × every kind of caller, each with the status it must answer.
//!
//! The routes come from the one list that both registers them with actix and documents
//! them (`api_routes!` in api/src/openapi.rs). A route without an expectation here fails
//! the test before any request is made, so a new endpoint cannot be forgotten; an
//! expectation for a route that no longer exists fails it too.
//!
//! What a developer may read never holds another owner's things: every successful `GET`
//! of developer A (lists included) is checked for the ids of developer B's fixture, and
//! every one of B's for the ids of A's.

use crate::harness::{Api, Component, TestDb, ADMIN_PASSWORD, JWT_SECRET};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const PASSWORD: &str = "matrix-password-1";

/// Who calls. The first six must be refused (401) on every non-public route.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Anonymous,
    DisabledUser,
    ExpiredToken,
    OtherKeyToken,
    AlgNoneToken,
    RevokedApiToken,
    DeveloperB,
    DeveloperA,
    Admin,
}

const EVERYONE: [Who; 9] = [
    Who::Anonymous,
    Who::DisabledUser,
    Who::ExpiredToken,
    Who::OtherKeyToken,
    Who::AlgNoneToken,
    Who::RevokedApiToken,
    Who::DeveloperB,
    Who::DeveloperA,
    Who::Admin,
];

/// The status a route answers: the same for every caller (public routes), or per role
/// for authenticated callers (everyone else gets 401).
#[derive(Clone, Copy)]
enum Expect {
    Public(u16),
    Private {
        owner_a: u16,
        other_b: u16,
        admin: u16,
    },
}

/// Developer A owns the fixtures; B is another developer.
const fn owned(success: u16) -> Expect {
    Expect::Private {
        owner_a: success,
        other_b: 404,
        admin: success,
    }
}
const fn anyone(success: u16) -> Expect {
    Expect::Private {
        owner_a: success,
        other_b: success,
        admin: success,
    }
}
const fn admin_only(success: u16) -> Expect {
    Expect::Private {
        owner_a: 403,
        other_b: 403,
        admin: success,
    }
}

const EXPECTATIONS: &[(&str, &str, Expect)] = &[
    ("GET", "/healthz", Expect::Public(200)),
    ("GET", "/readyz", Expect::Public(200)),
    ("GET", "/metrics", Expect::Public(200)),
    ("POST", "/api/v1/schedules/preview", anyone(200)),
    ("GET", "/api/v1/runs", anyone(200)),
    ("GET", "/api/v1/jobs/{id}/next-fires", owned(200)),
    // The fixture's job is manual: a backfill answers 400 (`schedule`) once the caller
    // may see the job (tests/e2e/schedule_policies.rs covers success).
    ("POST", "/api/v1/jobs/{id}/backfill", owned(400)),
    ("POST", "/api/v1/auth/login", Expect::Public(200)),
    ("GET", "/api/v1/auth/me", anyone(200)),
    ("POST", "/api/v1/auth/password", anyone(204)),
    ("GET", "/api/v1/users", admin_only(200)),
    ("POST", "/api/v1/users", admin_only(201)),
    ("GET", "/api/v1/users/{id}", admin_only(200)),
    ("PATCH", "/api/v1/users/{id}", admin_only(200)),
    ("DELETE", "/api/v1/users/{id}", admin_only(204)),
    ("GET", "/api/v1/users/{id}/tokens", admin_only(200)),
    ("GET", "/api/v1/tokens", anyone(200)),
    ("POST", "/api/v1/tokens", anyone(201)),
    ("DELETE", "/api/v1/tokens/{id}", owned(204)),
    ("GET", "/api/v1/audit", admin_only(200)),
    ("GET", "/api/v1/projects", anyone(200)),
    ("POST", "/api/v1/projects", anyone(201)),
    ("GET", "/api/v1/projects/{id}", owned(200)),
    ("PATCH", "/api/v1/projects/{id}", owned(200)),
    ("DELETE", "/api/v1/projects/{id}", owned(204)),
    ("GET", "/api/v1/projects/{id}/jobs", owned(200)),
    ("POST", "/api/v1/projects/{id}/jobs", owned(201)),
    ("GET", "/api/v1/jobs/{id}", owned(200)),
    ("PATCH", "/api/v1/jobs/{id}", owned(200)),
    ("DELETE", "/api/v1/jobs/{id}", owned(204)),
    ("POST", "/api/v1/jobs/{id}/disable", owned(200)),
    ("POST", "/api/v1/jobs/{id}/enable", owned(200)),
    ("POST", "/api/v1/jobs/{id}/restore", owned(200)),
    ("GET", "/api/v1/jobs/{id}/runs", owned(200)),
    ("POST", "/api/v1/jobs/{id}/runs", owned(202)),
    ("GET", "/api/v1/jobs/{id}/webhooks", owned(200)),
    ("POST", "/api/v1/jobs/{id}/webhooks", owned(201)),
    (
        "DELETE",
        "/api/v1/jobs/{id}/webhooks/{webhook_id}",
        owned(204),
    ),
    ("PUT", "/api/v1/projects/{id}/artifacts/{name}", owned(201)),
    ("GET", "/api/v1/projects/{id}/artifacts", owned(200)),
    ("GET", "/api/v1/projects/{id}/artifacts/{name}", owned(200)),
    (
        "GET",
        "/api/v1/projects/{id}/artifacts/{name}/versions/{version}",
        owned(200),
    ),
    (
        "DELETE",
        "/api/v1/projects/{id}/artifacts/{name}/versions/{version}",
        owned(204),
    ),
    (
        "DELETE",
        "/api/v1/projects/{id}/artifacts/{name}",
        owned(204),
    ),
    ("PUT", "/api/v1/projects/{id}/secrets/{name}", owned(204)),
    ("GET", "/api/v1/projects/{id}/secrets", owned(200)),
    ("DELETE", "/api/v1/projects/{id}/secrets/{name}", owned(204)),
    ("GET", "/api/v1/runs/{id}", owned(200)),
    ("GET", "/api/v1/runs/{id}/logs", owned(200)),
    // The fixture's run stays queued (no worker runs here): cancel succeeds, a retry
    // by hand answers 409 (not finished) once the caller is allowed to see the run.
    ("POST", "/api/v1/runs/{id}/cancel", owned(202)),
    ("POST", "/api/v1/runs/{id}/retry", owned(409)),
    ("GET", "/api/v1/workers", anyone(200)),
    // No worker runs here: an admin gets 404 for the unknown worker, others 403.
    ("POST", "/api/v1/workers/{id}/drain", admin_only(404)),
    ("POST", "/api/v1/workers/{id}/resume", admin_only(404)),
    // A delivery without a signature is refused whoever calls: bearer tokens do not
    // authenticate webhooks.
    ("POST", "/hooks/{webhook_id}", Expect::Public(401)),
    ("GET", "/api/v1/projects/{id}/notifications", owned(200)),
    ("POST", "/api/v1/projects/{id}/notifications", owned(201)),
    ("GET", "/api/v1/jobs/{id}/notifications", owned(200)),
    ("POST", "/api/v1/jobs/{id}/notifications", owned(201)),
    ("DELETE", "/api/v1/notifications/{id}", owned(204)),
    ("GET", "/api/v1/notifications/{id}/deliveries", owned(200)),
];

/// What the routes act on, all owned by developer A (created anew for mutating routes).
#[derive(Clone)]
struct Fixture {
    project: String,
    empty_project: String,
    job: String,
    deleted_job: String,
    run: String,
    webhook: String,
    token: String,
    user: String,
    notification: String,
}

impl Fixture {
    /// The ids of everything the fixture made.
    fn ids(&self) -> Vec<String> {
        vec![
            self.project.clone(),
            self.empty_project.clone(),
            self.job.clone(),
            self.deleted_job.clone(),
            self.run.clone(),
            self.webhook.clone(),
            self.token.clone(),
            self.user.clone(),
            self.notification.clone(),
        ]
    }
}

struct World {
    a: Api,
    admin: Api,
    a_name: String,
    /// The ids of what developer B owns (a project, job, run, webhook, token and
    /// notification channel), none of which A may ever read.
    b_ids: Vec<String>,
    callers: Vec<(Who, Api)>,
    serial: std::cell::Cell<u32>,
}

impl World {
    fn next(&self) -> u32 {
        self.serial.set(self.serial.get() + 1);
        self.serial.get()
    }

    async fn fixture(&self) -> Fixture {
        let n = self.next();
        let a = &self.a;
        let project = a.create_project(&format!("p{n}")).await;
        let empty_project = a.create_project(&format!("empty{n}")).await;
        let job_body = json!({"name": "j", "target": {"kind": "command", "command": ["true"]}});
        let job = a.create_job(&project, job_body.clone()).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let deleted_job = a.create_job(&project, job_body).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            a.delete(&format!("/api/v1/jobs/{deleted_job}"))
                .await
                .status,
            204
        );
        let run = a.trigger(&job, json!({"n": n})).await;
        let reply = a
            .post(&format!("/api/v1/jobs/{job}/webhooks"), json!({}))
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        let webhook = reply.body["id"].as_str().unwrap().to_string();
        let reply = a.post("/api/v1/tokens", json!({"name": "ci"})).await;
        assert_eq!(reply.status, 201, "{reply:?}");
        let token = reply.body["id"].as_str().unwrap().to_string();
        let reply = a
            .request(
                "PUT",
                &format!("/api/v1/projects/{project}/artifacts/tool"),
                &[],
                Some(b"#!/bin/sh\ntrue\n".to_vec()),
            )
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        let reply = a
            .request(
                "PUT",
                &format!("/api/v1/projects/{project}/secrets/tool"),
                &[("content-type", "application/json")],
                Some(br#"{"value":"s3cr3t"}"#.to_vec()),
            )
            .await;
        assert_eq!(reply.status, 204, "{reply:?}");
        let user = self
            .admin
            .create_user(&format!("target{n}"), PASSWORD, "developer")
            .await;
        let reply = a
            .post(
                &format!("/api/v1/projects/{project}/notifications"),
                notification_body(),
            )
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        let notification = reply.body["id"].as_str().unwrap().to_string();
        Fixture {
            project,
            empty_project,
            job,
            deleted_job,
            run,
            webhook,
            token,
            user,
            notification,
        }
    }
}

fn notification_body() -> Value {
    json!({"url": "https://hooks.example.com/jobcenter", "events": ["failure"]})
}

/// A worker id that exists nowhere.
const NO_SUCH_WORKER: &str = "00000000-0000-4000-8000-000000000000";

/// The concrete path of a route template for the fixture.
fn concrete(method: &str, template: &str, f: &Fixture) -> String {
    let id = if template.starts_with("/api/v1/projects/") {
        if method == "DELETE" && template == "/api/v1/projects/{id}" {
            &f.empty_project
        } else {
            &f.project
        }
    } else if template.starts_with("/api/v1/jobs/") {
        if template.ends_with("/restore") {
            &f.deleted_job
        } else {
            &f.job
        }
    } else if template.starts_with("/api/v1/runs/") {
        &f.run
    } else if template.starts_with("/api/v1/users/") {
        &f.user
    } else if template.starts_with("/api/v1/tokens/") {
        &f.token
    } else if template.starts_with("/api/v1/workers/") {
        NO_SUCH_WORKER
    } else if template.starts_with("/api/v1/notifications/") {
        &f.notification
    } else {
        ""
    };
    template
        .replace("{id}", id)
        .replace("{webhook_id}", &f.webhook)
        .replace("{name}", "tool")
        .replace("{version}", "1")
}

/// A valid body for the route, as `who` would send it.
fn body(world: &World, method: &str, template: &str, who: Who) -> Option<Value> {
    let n = world.next();
    let password = match who {
        Who::Admin => ADMIN_PASSWORD,
        _ => PASSWORD,
    };
    let body = match (method, template) {
        ("POST", "/api/v1/auth/login") => json!({"username": world.a_name, "password": PASSWORD}),
        ("POST", "/api/v1/auth/password") => {
            json!({"current_password": password, "new_password": password})
        }
        ("POST", "/api/v1/users") => {
            json!({"username": format!("new{n}"), "password": PASSWORD, "role": "developer"})
        }
        ("PATCH", "/api/v1/users/{id}") => json!({"role": "developer"}),
        ("POST", "/api/v1/tokens") => json!({"name": format!("t{n}")}),
        ("POST", "/api/v1/projects") => json!({"name": format!("p{n}")}),
        ("PATCH", "/api/v1/projects/{id}") => json!({"description": "changed"}),
        ("POST", "/api/v1/projects/{id}/jobs") => {
            json!({"name": "j", "target": {"kind": "command", "command": ["true"]}})
        }
        ("PATCH", "/api/v1/jobs/{id}") => json!({"name": "renamed"}),
        ("PUT", "/api/v1/projects/{id}/secrets/{name}") => json!({"value": format!("v{n}")}),
        ("PUT", "/api/v1/projects/{id}/artifacts/{name}") => json!({"content": n}),
        ("POST", "/api/v1/schedules/preview") => {
            json!({"schedule": {"kind": "interval", "every_seconds": 60}})
        }
        ("POST", "/api/v1/jobs/{id}/runs") => json!({"input": {"n": n}}),
        ("POST", "/api/v1/jobs/{id}/backfill") => {
            json!({"from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z"})
        }
        ("POST", "/hooks/{webhook_id}") => json!({"ref": "main"}),
        ("POST", "/api/v1/projects/{id}/notifications" | "/api/v1/jobs/{id}/notifications") => {
            notification_body()
        }
        (_, _) if method == "POST" || method == "PATCH" => json!({}),
        _ => return None,
    };
    Some(body)
}

fn expected(expect: Expect, who: Who) -> u16 {
    match (expect, who) {
        (Expect::Public(status), _) => status,
        (Expect::Private { owner_a, .. }, Who::DeveloperA) => owner_a,
        (Expect::Private { other_b, .. }, Who::DeveloperB) => other_b,
        (Expect::Private { admin, .. }, Who::Admin) => admin,
        (Expect::Private { .. }, _) => 401,
    }
}

/// An HS256 JWT with the API's claims for `sub`, signed with `secret` (kid: the current).
fn forged_jwt(sub: &str, secret: &[u8], iat: i64, exp: i64) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(jobcenter_api::auth::kid_for(JWT_SECRET.as_bytes()));
    let claims =
        json!({"sub": sub, "iss": "jobcenter", "aud": "jobcenter-api", "iat": iat, "exp": exp});
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn alg_none_jwt(sub: &str) -> String {
    let b64 = |v: &Value| base64url(&serde_json::to_vec(v).unwrap());
    let kid = jobcenter_api::auth::kid_for(JWT_SECRET.as_bytes());
    let now = chrono::Utc::now().timestamp();
    let header = json!({"alg": "none", "typ": "JWT", "kid": kid});
    let claims = json!({"sub": sub, "iss": "jobcenter", "aud": "jobcenter-api", "iat": now, "exp": now + 600});
    format!("{}.{}.", b64(&header), b64(&claims))
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | b as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Makes one of each kind of thing as `owner` and returns their ids. Its own lists show
/// them (the control for the absence checks: a list that shows nothing proves nothing).
async fn owned_by(owner: &Api) -> Vec<String> {
    let project = owner.create_project("b-project").await;
    let job = owner
        .create_job(
            &project,
            json!({"name": "b-job", "target": {"kind": "command", "command": ["true"]}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = owner.trigger(&job, json!({"b": true})).await;
    let created = |reply: crate::harness::Reply| {
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.body["id"].as_str().unwrap().to_string()
    };
    let webhook = created(
        owner
            .post(&format!("/api/v1/jobs/{job}/webhooks"), json!({}))
            .await,
    );
    let token = created(owner.post("/api/v1/tokens", json!({"name": "b"})).await);
    let notification = created(
        owner
            .post(
                &format!("/api/v1/projects/{project}/notifications"),
                notification_body(),
            )
            .await,
    );
    for (list, id) in [
        ("/api/v1/projects".to_string(), &project),
        (format!("/api/v1/projects/{project}/jobs"), &job),
        ("/api/v1/runs".to_string(), &run),
        (format!("/api/v1/jobs/{job}/webhooks"), &webhook),
        ("/api/v1/tokens".to_string(), &token),
        (
            format!("/api/v1/projects/{project}/notifications"),
            &notification,
        ),
    ] {
        let reply = owner.get(&list).await;
        assert!(
            reply.body.to_string().contains(id.as_str()),
            "{list} lacks {id}: {reply:?}"
        );
    }
    vec![project, job, run, webhook, token, notification]
}

/// Which of `ids` a reply shows.
fn leaked<'a>(reply: &str, ids: &'a [String]) -> Vec<&'a String> {
    ids.iter()
        .filter(|id| reply.contains(id.as_str()))
        .collect()
}

async fn world(app: &Component) -> World {
    let admin = Api::login_admin(app).await;
    let a_id = admin.create_user("dev-a", PASSWORD, "developer").await;
    admin.create_user("dev-b", PASSWORD, "developer").await;
    let disabled_id = admin
        .create_user("dev-disabled", PASSWORD, "developer")
        .await;
    let a = Api::login(app, "dev-a", PASSWORD).await;
    let b = Api::login(app, "dev-b", PASSWORD).await;
    let disabled = Api::login(app, "dev-disabled", PASSWORD).await;
    let reply = admin
        .patch(
            &format!("/api/v1/users/{disabled_id}"),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");

    let reply = a
        .post("/api/v1/tokens", json!({"name": "soon revoked"}))
        .await;
    let revoked = reply.body["token"].as_str().unwrap().to_string();
    let revoked_id = reply.body["id"].as_str().unwrap();
    assert_eq!(
        a.delete(&format!("/api/v1/tokens/{revoked_id}"))
            .await
            .status,
        204
    );

    let b_ids = owned_by(&b).await;

    let now = chrono::Utc::now().timestamp();
    // Control: the forging is right, so the tokens below fail for the one reason each.
    let genuine = forged_jwt(&a_id, JWT_SECRET.as_bytes(), now, now + 600);
    let reply = a.with_token(Some(&genuine)).get("/api/v1/auth/me").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let expired = forged_jwt(&a_id, JWT_SECRET.as_bytes(), now - 7200, now - 3600);
    let other_key = forged_jwt(&a_id, &[42u8; 48], now, now + 600);
    let callers = vec![
        (Who::Anonymous, a.with_token(None)),
        (Who::DisabledUser, disabled),
        (Who::ExpiredToken, a.with_token(Some(&expired))),
        (Who::OtherKeyToken, a.with_token(Some(&other_key))),
        (Who::AlgNoneToken, a.with_token(Some(&alg_none_jwt(&a_id)))),
        (Who::RevokedApiToken, a.with_token(Some(&revoked))),
        (Who::DeveloperB, b.clone()),
        (Who::DeveloperA, a.clone()),
        (Who::Admin, admin.clone()),
    ];
    assert_eq!(callers.len(), EVERYONE.len());
    World {
        a,
        admin,
        a_name: "dev-a".into(),
        b_ids,
        callers,
        serial: std::cell::Cell::new(0),
    }
}

#[tokio::test]
async fn every_route_answers_every_caller_as_expected() {
    let routes: BTreeSet<(String, String)> =
        jobcenter_api::openapi::route_table().into_iter().collect();
    let expected_routes: BTreeSet<(String, String)> = EXPECTATIONS
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = routes.difference(&expected_routes).collect();
    assert!(
        missing.is_empty(),
        "routes without an expectation in the authorization matrix: {missing:?}"
    );
    let stale: Vec<_> = expected_routes.difference(&routes).collect();
    assert!(
        stale.is_empty(),
        "expectations for routes that do not exist: {stale:?}"
    );

    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let world = world(&app).await;

    let mut failures = Vec::new();
    let mut table = String::new();
    let shared = world.fixture().await;
    for &(method, template, expect) in EXPECTATIONS {
        let mutating = method != "GET";
        let mut fixture = if mutating {
            world.fixture().await
        } else {
            shared.clone()
        };
        let mut row = format!("{method:6} {template:42}");
        for (who, api) in &world.callers {
            // The admin acts on fresh resources: the owner's success changed the others.
            if *who == Who::Admin && mutating {
                fixture = world.fixture().await;
            }
            let path = concrete(method, template, &fixture);
            let body =
                body(&world, method, template, *who).map(|b| serde_json::to_vec(&b).unwrap());
            let headers: &[(&str, &str)] = if body.is_some() {
                &[("content-type", "application/json")]
            } else {
                &[]
            };
            let reply = api.request(method, &path, headers, body).await;
            if method == "GET" && reply.status == 200 {
                let others = match who {
                    Who::DeveloperA => world.b_ids.clone(),
                    Who::DeveloperB => [shared.ids(), fixture.ids()].concat(),
                    _ => Vec::new(),
                };
                let seen = leaked(&reply.body.to_string(), &others);
                if !seen.is_empty() {
                    failures.push(format!(
                        "{method} {template} as {who:?} shows another owner's {seen:?}: {}",
                        reply.body
                    ));
                }
            }
            let want = expected(expect, *who);
            row.push_str(&format!(" {who:?}={}", reply.status));
            if reply.status != want {
                failures.push(format!(
                    "{method} {template} as {who:?}: expected {want}, got {} ({})",
                    reply.status, reply.body
                ));
            }
        }
        table.push_str(&row);
        table.push('\n');
    }
    println!(
        "authorization matrix ({} routes):\n{table}",
        EXPECTATIONS.len()
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
