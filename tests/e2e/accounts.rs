//! Accounts, roles, API tokens, login throttling, JWT rotation and the audit log.

use crate::harness::{eventually, Api, Component, TestDb, ADMIN_USER, JWT_SECRET};
use serde_json::json;
use std::time::Duration;

const PASSWORD: &str = "developer-password-1";

#[tokio::test]
async fn the_n_plus_first_bad_password_is_refused_with_429() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[("JOBCENTER_LOGIN_MAX_FAILURES", "3")]);
    let anonymous = Api::new(&app);
    let login = |username: &str, password: &str| {
        let anonymous = anonymous.clone();
        let body = json!({"username": username, "password": password});
        async move { anonymous.post("/api/v1/auth/login", body).await }
    };
    let mut details = Vec::new();
    for _ in 0..3 {
        let reply = login(ADMIN_USER, "wrong-password-000").await;
        reply.assert_problem(401);
        details.push(reply.body["detail"].clone());
    }
    let reply = login(ADMIN_USER, "wrong-password-000").await;
    reply.assert_problem(429);
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=301).contains(&retry_after), "{retry_after}");
    // Refused for a while even with the right password.
    login(ADMIN_USER, crate::harness::ADMIN_PASSWORD)
        .await
        .assert_problem(429);
    // An unknown user gets the very same answer as a wrong password.
    let unknown = login("nobody-at-all", "wrong-password-000").await;
    unknown.assert_problem(401);
    assert_eq!(unknown.body["detail"], details[0]);
    // The lock lives in Postgres, so another API node refuses too.
    let other_node = Component::start("api", &db, &[("JOBCENTER_LOGIN_MAX_FAILURES", "3")]);
    let reply = Api::new(&other_node)
        .post(
            "/api/v1/auth/login",
            json!({"username": ADMIN_USER, "password": crate::harness::ADMIN_PASSWORD}),
        )
        .await;
    reply.assert_problem(429);
}

#[tokio::test]
async fn one_address_guessing_many_accounts_is_refused_too() {
    let db = TestDb::new();
    let app = Component::start(
        "api",
        &db,
        &[("JOBCENTER_LOGIN_MAX_FAILURES_PER_ADDRESS", "4")],
    );
    let anonymous = Api::new(&app);
    for n in 0..4 {
        let body = json!({"username": format!("user{n}"), "password": "wrong-password-000"});
        anonymous
            .post("/api/v1/auth/login", body)
            .await
            .assert_problem(401);
    }
    let body = json!({"username": "user9", "password": "wrong-password-000"});
    anonymous
        .post("/api/v1/auth/login", body)
        .await
        .assert_problem(429);
}

#[tokio::test]
async fn admins_manage_accounts_and_the_last_admin_is_protected() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let admin = Api::login_admin(&app).await;
    let me = admin.get("/api/v1/auth/me").await;
    let admin_id = me.body["id"].as_str().unwrap().to_string();

    let reply = admin
        .post(
            "/api/v1/users",
            json!({"username": "dev", "password": "short", "role": "developer"}),
        )
        .await;
    assert_eq!(reply.assert_problem(400).as_deref(), Some("password"));
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("at least 12 characters"),
        "{reply:?}"
    );
    let reply = admin
        .post(
            "/api/v1/users",
            json!({"username": "dev", "password": PASSWORD, "role": "root"}),
        )
        .await;
    assert_eq!(reply.assert_problem(400).as_deref(), Some("role"));
    let dev_id = admin.create_user("dev", PASSWORD, "developer").await;
    let reply = admin
        .post(
            "/api/v1/users",
            json!({"username": "dev", "password": PASSWORD, "role": "developer"}),
        )
        .await;
    reply.assert_problem(409);
    let dev = Api::login(&app, "dev", PASSWORD).await;
    dev.get("/api/v1/users").await.assert_problem(403);
    dev.get("/api/v1/audit").await.assert_problem(403);

    // The only admin can be neither demoted, disabled nor deleted.
    let me_path = format!("/api/v1/users/{admin_id}");
    admin
        .patch(&me_path, json!({"role": "developer"}))
        .await
        .assert_problem(409);
    admin
        .patch(&me_path, json!({"disabled": true}))
        .await
        .assert_problem(409);
    admin.delete(&me_path).await.assert_problem(409);
    // With a second admin, the first may step down.
    let dev_path = format!("/api/v1/users/{dev_id}");
    let reply = admin.patch(&dev_path, json!({"role": "admin"})).await;
    assert_eq!(reply.body["role"], "admin", "{reply:?}");
    let reply = admin.patch(&me_path, json!({"role": "developer"})).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    // ...and now the former developer is the last admin.
    dev.patch(&dev_path, json!({"disabled": true}))
        .await
        .assert_problem(409);

    // A user who owns a project cannot be deleted until an admin transfers it.
    let project = admin.create_project("owned-by-the-old-admin").await;
    let reply = dev.delete(&me_path).await;
    assert!(
        reply.body["detail"].as_str().unwrap().contains("project"),
        "{reply:?}"
    );
    reply.assert_problem(409);
    let reply = dev
        .patch(
            &format!("/api/v1/projects/{project}"),
            json!({"owner_id": dev_id}),
        )
        .await;
    assert_eq!(reply.body["owner_id"], dev_id.as_str(), "{reply:?}");
    assert_eq!(dev.delete(&me_path).await.status, 204);
    Api::new(&app)
        .post(
            "/api/v1/auth/login",
            json!({"username": ADMIN_USER, "password": crate::harness::ADMIN_PASSWORD}),
        )
        .await
        .assert_problem(401);

    // Every change is in the audit log with its actor.
    let audit = dev
        .get(&format!("/api/v1/audit?target=user:{dev_id}"))
        .await;
    let actions: Vec<_> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["user.update", "user.create"], "{audit:?}");
    assert_eq!(audit.body["items"][1]["actor_id"], admin_id.as_str());
    let by_dev = dev
        .get(&format!("/api/v1/audit?actor_id={dev_id}&limit=2"))
        .await;
    let items = by_dev.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{by_dev:?}");
    assert_eq!(items[0]["action"], "user.delete");
    assert_eq!(items[1]["action"], "project.update");
    let next = by_dev.body["next"]
        .as_str()
        .expect("a full page has a next cursor");
    let older = dev
        .get(&format!(
            "/api/v1/audit?actor_id={dev_id}&limit=2&cursor={next}"
        ))
        .await;
    assert!(older.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["id"].as_i64() < items[1]["id"].as_i64()));
}

#[tokio::test]
async fn disabling_a_user_ends_their_tokens_at_once_and_passwords_change() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let admin = Api::login_admin(&app).await;
    let dev_id = admin.create_user("dev", PASSWORD, "developer").await;
    let dev = Api::login(&app, "dev", PASSWORD).await;

    // An API token: shown once, usable as a bearer token, listed without the secret.
    let created = dev
        .post(
            "/api/v1/tokens",
            json!({"name": "github-actions", "expires_in_days": 30}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let token = created.body["token"].as_str().unwrap();
    let ci = dev.with_token(Some(token));
    assert_eq!(ci.get("/api/v1/auth/me").await.body["username"], "dev");
    let listed = dev.get("/api/v1/tokens").await;
    let item = &listed.body["items"][0];
    assert_eq!(item["name"], "github-actions");
    assert!(item["last_used_at"].is_string(), "{listed:?}");
    assert!(item["expires_at"].is_string());
    assert!(item.get("token").is_none(), "{listed:?}");
    // Another developer cannot see or revoke it.
    admin.create_user("other", PASSWORD, "developer").await;
    let other = Api::login(&app, "other", PASSWORD).await;
    assert_eq!(other.get("/api/v1/tokens").await.body["items"], json!([]));
    let token_path = format!("/api/v1/tokens/{}", created.body["id"].as_str().unwrap());
    other.delete(&token_path).await.assert_problem(404);

    // Disabling the user stops both the access token and the API token at once.
    let reply = admin
        .patch(
            &format!("/api/v1/users/{dev_id}"),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(reply.body["disabled"], true, "{reply:?}");
    dev.get("/api/v1/auth/me").await.assert_problem(401);
    ci.get("/api/v1/auth/me").await.assert_problem(401);
    admin
        .patch(
            &format!("/api/v1/users/{dev_id}"),
            json!({"disabled": false}),
        )
        .await;
    assert_eq!(ci.get("/api/v1/auth/me").await.status, 200);
    // Revoking the API token stops it.
    assert_eq!(dev.delete(&token_path).await.status, 204);
    ci.get("/api/v1/auth/me").await.assert_problem(401);
    dev.delete(&token_path).await.assert_problem(404);

    // Changing one's own password needs the current one and follows the rule.
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let reply = dev
        .post(
            "/api/v1/auth/password",
            change("wrong-password-00", "a-new-password-1"),
        )
        .await;
    assert_eq!(
        reply.assert_problem(400).as_deref(),
        Some("current_password")
    );
    let reply = dev
        .post("/api/v1/auth/password", change(PASSWORD, "short"))
        .await;
    assert_eq!(reply.assert_problem(400).as_deref(), Some("new_password"));
    let reply = dev
        .post(
            "/api/v1/auth/password",
            change(PASSWORD, "a-new-password-1"),
        )
        .await;
    assert_eq!(reply.status, 204, "{reply:?}");
    Api::new(&app)
        .post(
            "/api/v1/auth/login",
            json!({"username": "dev", "password": PASSWORD}),
        )
        .await
        .assert_problem(401);
    Api::login(&app, "dev", "a-new-password-1").await;
}

#[tokio::test]
async fn a_rotated_secret_keeps_sessions_until_the_previous_one_is_dropped() {
    let db = TestDb::new();
    let new_secret = "the-new-secret-the-new-secret-0123456789";
    let api = Component::start("api", &db, &[]);
    let session = Api::login_admin(&api).await;
    drop(api);

    let rotated = Component::start(
        "api",
        &db,
        &[
            ("JOBCENTER_JWT_SECRET", new_secret),
            ("JOBCENTER_JWT_PREVIOUS_SECRET", JWT_SECRET),
        ],
    );
    let old_token = session.token.clone();
    let session = Api::new(&rotated).with_token(old_token.as_deref());
    assert_eq!(session.get("/api/v1/auth/me").await.status, 200);
    let fresh = Api::login_admin(&rotated).await;
    drop(rotated);

    let after = Component::start("api", &db, &[("JOBCENTER_JWT_SECRET", new_secret)]);
    Api::new(&after)
        .with_token(old_token.as_deref())
        .get("/api/v1/auth/me")
        .await
        .assert_problem(401);
    let fresh = Api::new(&after).with_token(fresh.token.as_deref());
    assert_eq!(fresh.get("/api/v1/auth/me").await.status, 200);
}

#[test]
fn a_short_jwt_secret_stops_the_server_at_start_up() {
    let db = TestDb::new();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_jobcenter"))
        .arg("api")
        .env_clear()
        .env("JOBCENTER_DATABASE_URL", &db.url)
        .env("JOBCENTER_LISTEN", "127.0.0.1:0")
        .env("JOBCENTER_JWT_SECRET", "only-twenty-bytes-xx")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("JOBCENTER_JWT_SECRET") && stderr.contains("at least 32 bytes"),
        "{stderr}"
    );
}

/// How many access-token users the API resolved from `source` (`cache` or `database`).
async fn auth_lookups(api: &Api, source: &str) -> u64 {
    let metrics = api.get("/metrics").await;
    let prefix = format!("jobcenter_auth_lookups_total{{source=\"{source}\"}} ");
    metrics
        .text()
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map_or(0, |n| n.trim().parse().expect("a counter"))
}

/// The API remembers an access token's user for a few seconds (no database round trip
/// per request), yet a user changed behind its back (by another API node, or with psql)
/// is seen changed as soon as the database's notification arrives: well within the
/// 5 seconds the API would otherwise remember them.
#[tokio::test]
async fn a_user_changed_in_the_database_is_seen_by_the_api_within_moments() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let admin = Api::login_admin(&app).await;
    admin.create_user("dev", PASSWORD, "developer").await;
    let dev = Api::login(&app, "dev", PASSWORD).await;
    // Once the API listens for changes, it answers from what it remembers.
    eventually(
        Duration::from_secs(10),
        "a user resolved from the cache",
        || async {
            assert_eq!(dev.get("/api/v1/auth/me").await.status, 200);
            (auth_lookups(&dev, "cache").await > 0).then_some(())
        },
    )
    .await;
    dev.get("/api/v1/users").await.assert_problem(403);
    let sql = db.client().await;

    sql.execute(
        "UPDATE users SET role = 'admin' WHERE username = 'dev'",
        &[],
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(2), "the promotion seen", || async {
        (dev.get("/api/v1/users").await.status == 200).then_some(())
    })
    .await;

    sql.execute(
        "UPDATE users SET disabled = true WHERE username = 'dev'",
        &[],
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(2),
        "the disabled user refused",
        || async { (dev.get("/api/v1/auth/me").await.status == 401).then_some(()) },
    )
    .await;
}

/// Authorization before validation: a developer's request to an admin-only route
/// answers 403 whatever its body; an admin's bad body is still refused, naming the field.
#[tokio::test]
async fn a_developer_gets_403_from_admin_routes_whatever_the_body() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let admin = Api::login_admin(&app).await;
    let dev_id = admin
        .create_user("dev", "a-long-enough-password-1", "developer")
        .await;
    let dev = Api::login(&app, "dev", "a-long-enough-password-1").await;
    let json_type = [("content-type", "application/json")];
    for (method, path) in [
        ("POST", "/api/v1/users".to_string()),
        ("PATCH", format!("/api/v1/users/{dev_id}")),
    ] {
        for body in [&b"{}"[..], b"not json", br#"{"role": 5}"#] {
            let reply = dev
                .request(method, &path, &json_type, Some(body.to_vec()))
                .await;
            assert_eq!(reply.status, 403, "{method} {path} {body:?}: {reply:?}");
        }
    }
    let reply = admin
        .request("POST", "/api/v1/users", &json_type, Some(b"{}".to_vec()))
        .await;
    assert_eq!(reply.status, 400, "{reply:?}");
    // Nothing was created or changed.
    let users = admin.get("/api/v1/users").await;
    assert_eq!(
        users.body["items"].as_array().map(Vec::len),
        Some(2),
        "{users:?}"
    );
}
