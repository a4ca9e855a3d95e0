//! Webhook deliveries from CI systems: `POST /hooks/{webhook_id}`.
//!
//! A delivery is authenticated by GitHub's `X-Hub-Signature-256` (an HMAC-SHA256 of the
//! raw body, keyed with the webhook's secret) or GitLab's `X-Gitlab-Token` (the secret
//! itself), both compared in constant time. Anything else answers 401 and creates
//! nothing; so does an unknown webhook id, so that ids cannot be probed.

use crate::error::{ApiError, Problem};
use crate::routes::db;
use crate::state::AppState;
use crate::trigger::{idempotency_key, queue_run, QueueRun};
use actix_web::http::header::HeaderMap;
use actix_web::{post, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use jobcenter_sql::states::RunTrigger;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use uuid::Uuid;

const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
const GITLAB_TOKEN: &str = "x-gitlab-token";
/// Delivery ids that make a repeated delivery return the first delivery's run.
const DELIVERY_ID_HEADERS: &[&str] = &["x-github-delivery", "idempotency-key"];

#[derive(Serialize, ToSchema)]
pub struct HookAccepted {
    /// The run this delivery queued (or, for a repeated delivery id, the first one's).
    pub run_id: Uuid,
}

/// True when the delivery carries a valid signature or token for `secret`.
pub fn authentic(headers: &HeaderMap, secret: &str, body: &[u8]) -> bool {
    if let Some(signature) = headers.get(GITHUB_SIGNATURE) {
        let expected = signature
            .to_str()
            .ok()
            .and_then(|s| s.strip_prefix("sha256="))
            .and_then(|hex| hex::decode(hex).ok());
        let Some(expected) = expected else {
            return false;
        };
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(body);
        return mac.verify_slice(&expected).is_ok(); // constant time
    }
    if let Some(token) = headers.get(GITLAB_TOKEN) {
        // Comparing digests keeps the comparison constant-time in the length too.
        let given = Sha256::digest(token.as_bytes());
        let wanted = Sha256::digest(secret.as_bytes());
        return bool::from(given.as_slice().ct_eq(wanted.as_slice()));
    }
    false
}

/// The run's input: the body as JSON when it is JSON, else the body as a string.
pub fn input_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// Reads the whole body, refusing (413) past `limit` bytes before reading them.
async fn read_capped(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge(format!(
            "the body is larger than {limit} bytes"
        )));
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::Malformed(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge(format!(
                "the body is larger than {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Receives a CI delivery and queues a run of the webhook's job with the body as input.
#[utoipa::path(
    tag = "webhooks",
    security(("github_signature" = []), ("gitlab_token" = [])),
    params(
        ("webhook_id" = Uuid, Path),
        ("X-Hub-Signature-256" = Option<String>, Header, description = "GitHub: sha256=<hex HMAC-SHA256 of the body>"),
        ("X-Gitlab-Token" = Option<String>, Header, description = "GitLab: the secret"),
        ("X-GitHub-Delivery" = Option<String>, Header, description = "a repeated id returns the first delivery's run"),
        ("Idempotency-Key" = Option<String>, Header, description = "like X-GitHub-Delivery"),
    ),
    request_body(content = String, description = "any body; JSON becomes the input as is, anything else as a string"),
    responses(
        (status = 202, body = HookAccepted),
        (status = 200, body = HookAccepted, description = "a repeated delivery id: the first delivery's run"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "the job is deleted"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "the job is disabled"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/hooks/{webhook_id}")]
pub async fn receive(
    state: web::Data<AppState>,
    req: HttpRequest,
    webhook_id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let unauthorized = ApiError::Unauthorized("missing or invalid webhook signature");
    let body = read_capped(&req, payload, state.webhook_max_body_bytes).await?;
    let Ok(webhook_id) = Uuid::parse_str(&webhook_id) else {
        return Err(unauthorized);
    };
    let mut client = db(&state).await?;
    let Some(hook) = jobcenter_sql::webhooks::target(&client, webhook_id).await? else {
        return Err(unauthorized);
    };
    if !authentic(req.headers(), &hook.secret, &body) {
        return Err(unauthorized);
    }
    if hook.job_deleted {
        return Err(ApiError::NotFound("job"));
    }
    if !hook.job_enabled {
        return Err(ApiError::Conflict("the job is disabled".into()));
    }
    let key = idempotency_key(req.headers(), DELIVERY_ID_HEADERS)?;
    let input = input_of(&body);
    let queued = queue_run(
        &mut client,
        &QueueRun {
            job_id: hook.job_id,
            trigger: RunTrigger::Webhook,
            input: &input,
            idempotency_key: key,
            actor_id: None,
            audit_detail: json!({"webhook_id": hook.id}),
        },
        hook.job_skips,
    )
    .await?;
    jobcenter_sql::webhooks::mark_delivered(&client, hook.id).await?;
    let mut response = if queued.replayed {
        HttpResponse::Ok()
    } else {
        HttpResponse::Accepted()
    };
    Ok(response.json(HookAccepted {
        run_id: queued.run.id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn github_signatures_are_checked_against_the_raw_body() {
        // The example from GitHub's documentation ("Validating webhook deliveries").
        let secret = "It's a Secret to Everybody";
        let body = b"Hello, World!";
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(authentic(
            &headers(&[(GITHUB_SIGNATURE, good)]),
            secret,
            body
        ));
        assert!(!authentic(
            &headers(&[(GITHUB_SIGNATURE, good)]),
            secret,
            b"Hello, World?"
        ));
        assert!(!authentic(
            &headers(&[(GITHUB_SIGNATURE, good)]),
            "other",
            body
        ));
        assert!(!authentic(
            &headers(&[(GITHUB_SIGNATURE, "sha256=zz")]),
            secret,
            body
        ));
        assert!(!authentic(
            &headers(&[(GITHUB_SIGNATURE, &good[7..])]),
            secret,
            body
        ));
        assert!(!authentic(&headers(&[]), secret, body));
    }

    #[test]
    fn gitlab_tokens_must_equal_the_secret() {
        let secret = "s3cret-s3cret-s3cret-s3cret-s3cret";
        assert!(authentic(
            &headers(&[(GITLAB_TOKEN, secret)]),
            secret,
            b"{}"
        ));
        assert!(!authentic(
            &headers(&[(GITLAB_TOKEN, "s3cret")]),
            secret,
            b"{}"
        ));
        // A wrong GitHub signature is not rescued by a GitLab token.
        let both = headers(&[(GITHUB_SIGNATURE, "sha256=00"), (GITLAB_TOKEN, secret)]);
        assert!(!authentic(&both, secret, b"{}"));
    }

    #[test]
    fn non_json_bodies_become_strings() {
        assert_eq!(input_of(br#"{"ref":"main"}"#), json!({"ref": "main"}));
        assert_eq!(input_of(b"payload=%7B%7D"), json!("payload=%7B%7D"));
        assert_eq!(input_of(b""), json!(""));
    }
}
