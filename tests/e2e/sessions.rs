//! Credentials that end when they should: a password change ends the user's other
//! sessions, an admin's reset ends all of them and revokes the user's API tokens, admins
//! see and revoke anyone's tokens, and the login and password-change throttles count an
//! attempt before its password is checked.

use crate::harness::{Api, Component, TestDb};
use serde_json::json;

const PASSWORD: &str = "a-developer-password-1";
const NEW_PASSWORD: &str = "another-password-22";

fn change(current: &str, new: &str) -> serde_json::Value {
    json!({"current_password": current, "new_password": new})
}

async fn api_token(api: &Api, name: &str) -> (String, String) {
    let reply = api.post("/api/v1/tokens", json!({"name": name})).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    (
        reply.body["id"].as_str().unwrap().to_string(),
        reply.body["token"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_password_change_ends_the_users_other_sessions() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let admin = Api::login_admin(&app).await;
    admin.create_user("dev", PASSWORD, "developer").await;
    let laptop = Api::login(&app, "dev", PASSWORD).await;
    let phone = Api::login(&app, "dev", PASSWORD).await;
    let (_, ci_token) = api_token(&laptop, "ci").await;
    let ci = laptop.with_token(Some(&ci_token));
    for api in [&laptop, &phone, &ci] {
        assert_eq!(api.get("/api/v1/auth/me").await.status, 200);
    }

    let reply = laptop
        .post("/api/v1/auth/password", change(PASSWORD, NEW_PASSWORD))
        .await;
    assert_eq!(reply.status, 204, "{reply:?}");
    // The other session is over; the one that made the change and API tokens remain.
    phone.get("/api/v1/auth/me").await.assert_problem(401);
    assert_eq!(laptop.get("/api/v1/auth/me").await.status, 200);
    assert_eq!(ci.get("/api/v1/auth/me").await.status, 200);
    // A new login works with the new password, and a second change from the kept
    // session works too (and ends that new login).
    let tablet = Api::login(&app, "dev", NEW_PASSWORD).await;
    assert_eq!(tablet.get("/api/v1/auth/me").await.status, 200);
    let reply = laptop
        .post("/api/v1/auth/password", change(NEW_PASSWORD, PASSWORD))
        .await;
    assert_eq!(reply.status, 204, "{reply:?}");
    tablet.get("/api/v1/auth/me").await.assert_problem(401);
    assert_eq!(laptop.get("/api/v1/auth/me").await.status, 200);
}

#[tokio::test]
async fn an_admin_reset_ends_every_session_and_revokes_api_tokens() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let admin = Api::login_admin(&app).await;
    let dev_id = admin.create_user("dev", PASSWORD, "developer").await;
    let other_id = admin.create_user("other", PASSWORD, "developer").await;
    let dev = Api::login(&app, "dev", PASSWORD).await;
    let other = Api::login(&app, "other", PASSWORD).await;
    let (token_id, ci_token) = api_token(&dev, "ci").await;
    let (second_id, _) = api_token(&dev, "deploy").await;
    let ci = dev.with_token(Some(&ci_token));

    // Admins list anyone's tokens (never the secret); nobody else may.
    let reply = admin.get(&format!("/api/v1/users/{dev_id}/tokens")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let items = reply.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{reply:?}");
    assert!(items.iter().all(|t| t.get("token").is_none()), "{reply:?}");
    dev.get(&format!("/api/v1/users/{dev_id}/tokens"))
        .await
        .assert_problem(403);
    other
        .get(&format!("/api/v1/users/{dev_id}/tokens"))
        .await
        .assert_problem(403);
    admin
        .get("/api/v1/users/00000000-0000-4000-8000-000000000000/tokens")
        .await
        .assert_problem(404);
    let reply = admin.get(&format!("/api/v1/users/{other_id}/tokens")).await;
    assert_eq!(reply.body["items"].as_array().unwrap().len(), 0);
    // An admin revokes one of them.
    assert_eq!(
        admin
            .delete(&format!("/api/v1/tokens/{second_id}"))
            .await
            .status,
        204
    );

    let reply = admin
        .patch(
            &format!("/api/v1/users/{dev_id}"),
            json!({"password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    dev.get("/api/v1/auth/me").await.assert_problem(401);
    ci.get("/api/v1/auth/me").await.assert_problem(401);
    assert_eq!(other.get("/api/v1/auth/me").await.status, 200);
    assert_eq!(admin.get("/api/v1/auth/me").await.status, 200);
    let reply = admin.get(&format!("/api/v1/users/{dev_id}/tokens")).await;
    let items = reply.body["items"].as_array().unwrap();
    assert!(
        items.iter().all(|t| t["revoked_at"].is_string()),
        "{reply:?}"
    );
    assert!(items.iter().any(|t| t["id"] == token_id.as_str()));
    let again = Api::login(&app, "dev", NEW_PASSWORD).await;
    assert_eq!(again.get("/api/v1/auth/me").await.status, 200);
}

#[tokio::test]
async fn parallel_wrong_logins_are_checked_at_most_up_to_the_limit() {
    let db = TestDb::new();
    let app = Component::start(
        "api",
        &db,
        &[
            ("JOBCENTER_LOGIN_MAX_FAILURES", "5"),
            ("JOBCENTER_LOGIN_MAX_FAILURES_PER_ADDRESS", "1000"),
        ],
    );
    let admin = Api::login_admin(&app).await;
    admin.create_user("dev", PASSWORD, "developer").await;
    let anonymous = Api::new(&app);
    let guesses = (0..20).map(|i| {
        let api = anonymous.clone();
        async move {
            api.post(
                "/api/v1/auth/login",
                json!({"username": "dev", "password": format!("wrong-guess-{i:04}")}),
            )
            .await
        }
    });
    let replies = futures_util::future::join_all(guesses).await;
    let checked = replies.iter().filter(|r| r.status == 401).count();
    let refused = replies.iter().filter(|r| r.status == 429).count();
    assert_eq!(checked + refused, 20, "{replies:?}");
    assert!(checked <= 5, "{checked} guesses were checked: {replies:?}");
    assert!(refused >= 15, "{replies:?}");
    // Locked now, even with the right password.
    let reply = anonymous
        .post(
            "/api/v1/auth/login",
            json!({"username": "dev", "password": PASSWORD}),
        )
        .await;
    assert_eq!(reply.assert_problem(429), None);
    assert!(reply.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn a_successful_login_is_not_held_against_the_account() {
    let db = TestDb::new();
    let app = Component::start(
        "api",
        &db,
        &[
            ("JOBCENTER_LOGIN_MAX_FAILURES", "2"),
            ("JOBCENTER_LOGIN_MAX_FAILURES_PER_ADDRESS", "3"),
        ],
    );
    let admin = Api::login_admin(&app).await;
    admin.create_user("dev", PASSWORD, "developer").await;
    // Successes count as attempts only until checked: many in a row are never locked.
    for _ in 0..6 {
        Api::login(&app, "dev", PASSWORD).await;
    }
}

#[tokio::test]
async fn wrong_current_passwords_are_throttled() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[("JOBCENTER_LOGIN_MAX_FAILURES", "3")]);
    let admin = Api::login_admin(&app).await;
    admin.create_user("dev", PASSWORD, "developer").await;
    let dev = Api::login(&app, "dev", PASSWORD).await;
    for i in 0..3 {
        let reply = dev
            .post(
                "/api/v1/auth/password",
                change(&format!("wrong-password-{i:03}"), NEW_PASSWORD),
            )
            .await;
        assert_eq!(
            reply.assert_problem(400).as_deref(),
            Some("current_password")
        );
    }
    let reply = dev
        .post("/api/v1/auth/password", change(PASSWORD, NEW_PASSWORD))
        .await;
    reply.assert_problem(429);
    assert!(reply.headers.contains_key("retry-after"));
}
