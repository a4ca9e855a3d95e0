//! Webhook deliveries from CI systems: `POST /hooks/{webhook_id}`.
//!
//! The webhook is looked up first: an unknown id answers 404 before a byte of the body
//! is read, and no pooled connection is held while the body arrives (at most
//! `JOBCENTER_WEBHOOK_MAX_BODY_BYTES`). A delivery is then authenticated by GitHub's
//! `X-Hub-Signature-256` (an HMAC-SHA256 of the raw body, keyed with the webhook's
//! secret) or GitLab's `X-Gitlab-Token` (the secret itself), both compared in constant
//! time; anything else answers 401 and creates nothing.
//!
//! GitHub's `ping` and deliveries the webhook's filters (`events`, `branches`) leave out
//! answer 200 `{"skipped": reason}` and queue nothing. Any other delivery queues a run
//! whose input is the payload, with `event` and `delivery` added to a JSON object.

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
/// The event a delivery reports: GitHub's, then GitLab's.
const EVENT_HEADERS: &[&str] = &["x-github-event", "x-gitlab-event"];
/// Delivery ids that make a repeated delivery return the first delivery's run.
const DELIVERY_ID_HEADERS: &[&str] = &["x-github-delivery", "idempotency-key"];
/// GitLab's id of an event. Only reported in the input: webhooks triggered by an earlier
/// webhook share it, so it does not tell a retry from another event.
const GITLAB_EVENT_UUID: &str = "x-gitlab-event-uuid";
/// A `ref` longer than this matches no branch pattern (git's own limit is lower).
const MAX_REF_BYTES: usize = 1024;

#[derive(Serialize, ToSchema)]
pub struct HookAccepted {
    /// The run this delivery queued (or, for a repeated delivery id, the first one's).
    pub run_id: Uuid,
}

/// A delivery that queued nothing, and why.
#[derive(Serialize, ToSchema)]
pub struct HookSkipped {
    /// `ping` (GitHub's test delivery), or which filter left the delivery out.
    pub skipped: String,
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

/// The value of header `name`, when it is present and printable.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The event a delivery names (`X-GitHub-Event`, else `X-Gitlab-Event`).
pub fn event_of(headers: &HeaderMap) -> Option<&str> {
    EVENT_HEADERS.iter().find_map(|name| header(headers, name))
}

/// The delivery's id: `X-GitHub-Delivery`, else `Idempotency-Key`, else
/// `X-Gitlab-Event-UUID`.
pub fn delivery_of(headers: &HeaderMap) -> Option<&str> {
    DELIVERY_ID_HEADERS
        .iter()
        .chain(&[GITLAB_EVENT_UUID])
        .find_map(|name| header(headers, name))
}

/// GitHub's `ping`, sent when a webhook is created there.
fn is_ping(headers: &HeaderMap) -> bool {
    header(headers, "x-github-event").is_some_and(|e| e.eq_ignore_ascii_case("ping"))
}

/// The payload: the body as JSON when it is JSON, else the body as a string.
pub fn payload_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// The run's input: the payload, with `event` and `delivery` (null when the delivery
/// did not say) added when it is a JSON object. A payload's own `event` or `delivery`
/// is kept as it is; any other payload is the input unchanged.
pub fn input_of(mut payload: Value, event: Option<&str>, delivery: Option<&str>) -> Value {
    if let Value::Object(map) = &mut payload {
        map.entry("event").or_insert_with(|| json!(event));
        map.entry("delivery").or_insert_with(|| json!(delivery));
    }
    payload
}

/// Why the webhook's filters leave this delivery out, or None to run it. `events`:
/// names compared ignoring ASCII case; `branches`: patterns against the payload's `ref`
/// (see [`ref_matches`]). Empty lists take everything.
pub fn skip_reason(
    event: Option<&str>,
    payload: &Value,
    events: &[String],
    branches: &[String],
) -> Option<String> {
    if !events.is_empty() {
        match event {
            None => {
                return Some(
                    "the delivery names no event (X-GitHub-Event, X-Gitlab-Event) and this \
                     webhook takes only some"
                        .into(),
                )
            }
            Some(event) if !events.iter().any(|e| e.eq_ignore_ascii_case(event)) => {
                return Some(format!(
                    "event {event:?} is not one of this webhook's events"
                ))
            }
            Some(_) => {}
        }
    }
    if !branches.is_empty() {
        let Some(git_ref) = payload.get("ref").and_then(Value::as_str) else {
            return Some("the payload has no ref and this webhook takes only some branches".into());
        };
        if !branches.iter().any(|pattern| ref_matches(pattern, git_ref)) {
            return Some(format!(
                "ref {git_ref:?} matches none of this webhook's branches"
            ));
        }
    }
    None
}

/// A pattern starting with `refs/` matches the whole ref; any other matches the branch
/// of a `refs/heads/<branch>` ref (so never a tag).
pub fn ref_matches(pattern: &str, git_ref: &str) -> bool {
    if git_ref.len() > MAX_REF_BYTES {
        return false;
    }
    if pattern.starts_with("refs/") {
        glob_matches(pattern, git_ref)
    } else {
        git_ref
            .strip_prefix("refs/heads/")
            .is_some_and(|branch| glob_matches(pattern, branch))
    }
}

/// `*`: any characters but `/`; `**`: any characters; `?`: one character but `/`;
/// anything else itself. Linear in the text per pattern character (no backtracking).
fn glob_matches(pattern: &str, text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    // matched[j]: the pattern so far matches text[..j].
    let mut matched = vec![false; text.len() + 1];
    matched[0] = true;
    let mut p = 0;
    while p < pattern.len() {
        let mut next = vec![false; text.len() + 1];
        match pattern[p] {
            '*' if pattern.get(p + 1) == Some(&'*') => {
                p += 1;
                next[0] = matched[0];
                for j in 1..=text.len() {
                    next[j] = matched[j] || next[j - 1];
                }
            }
            '*' => {
                next[0] = matched[0];
                for j in 1..=text.len() {
                    next[j] = matched[j] || (next[j - 1] && text[j - 1] != '/');
                }
            }
            '?' => {
                for j in 1..=text.len() {
                    next[j] = matched[j - 1] && text[j - 1] != '/';
                }
            }
            c => {
                for j in 1..=text.len() {
                    next[j] = matched[j - 1] && text[j - 1] == c;
                }
            }
        }
        matched = next;
        p += 1;
    }
    matched[text.len()]
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

/// Receives a CI delivery and queues a run of the webhook's job with the payload as input.
#[utoipa::path(
    tag = "webhooks",
    security(("github_signature" = []), ("gitlab_token" = [])),
    params(
        ("webhook_id" = Uuid, Path),
        ("X-Hub-Signature-256" = Option<String>, Header, description = "GitHub: sha256=<hex HMAC-SHA256 of the body>"),
        ("X-Gitlab-Token" = Option<String>, Header, description = "GitLab: the secret"),
        ("X-GitHub-Event" = Option<String>, Header, description = "GitHub's event: `ping` queues nothing; checked against the webhook's `events`; the input's `event`"),
        ("X-Gitlab-Event" = Option<String>, Header, description = "GitLab's event, like X-GitHub-Event"),
        ("X-GitHub-Delivery" = Option<String>, Header, description = "a repeated id returns the first delivery's run; the input's `delivery`"),
        ("Idempotency-Key" = Option<String>, Header, description = "like X-GitHub-Delivery (GitLab sends it)"),
        ("X-Gitlab-Event-UUID" = Option<String>, Header, description = "the input's `delivery` when neither of the above is sent (not a replay key)"),
    ),
    // The body is read as bytes whatever its Content-Type: JSON (what GitHub and GitLab
    // send) or any other bytes.
    request_body(
        description = "any body, at most JOBCENTER_WEBHOOK_MAX_BODY_BYTES, whatever its Content-Type; JSON becomes the input (an object gains `event` and `delivery`), anything else a string",
        content((serde_json::Value = "application/json"), (Vec<u8> = "application/octet-stream")),
    ),
    responses(
        (status = 202, body = HookAccepted, description = "a run queued, or for a repeated delivery id the first delivery's run (header Idempotent-Replayed: true)"),
        (status = 200, body = HookSkipped, description = "GitHub's ping, or a delivery the webhook's filters leave out: nothing queued"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "no such webhook (answered before the body is read), or the job is deleted"),
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
    // The webhook first: nothing of the body is read for an unknown one, and the pooled
    // connection goes back before the body arrives.
    let no_such_webhook = ApiError::NotFound("webhook");
    let Ok(webhook_id) = Uuid::parse_str(&webhook_id) else {
        return Err(no_such_webhook);
    };
    let hook = {
        let client = db(&state).await?;
        jobcenter_sql::webhooks::target(&client, webhook_id)
            .await?
            .ok_or(no_such_webhook)?
    };
    let body = read_capped(&req, payload, state.webhook_max_body_bytes).await?;
    let headers = req.headers();
    if !authentic(headers, &hook.secret, &body) {
        return Err(ApiError::Unauthorized(
            "missing or invalid webhook signature",
        ));
    }
    if hook.job_deleted {
        return Err(ApiError::NotFound("job"));
    }
    let event = event_of(headers);
    let payload = payload_of(&body);
    let skipped = if is_ping(headers) {
        Some("ping".to_string())
    } else {
        skip_reason(event, &payload, &hook.events, &hook.branches)
    };
    if let Some(reason) = skipped {
        let client = db(&state).await?;
        jobcenter_sql::webhooks::mark_delivered(&client, hook.id).await?;
        return Ok(HttpResponse::Ok().json(HookSkipped { skipped: reason }));
    }
    if !hook.job_enabled {
        return Err(ApiError::Conflict("the job is disabled".into()));
    }
    let key = idempotency_key(headers, DELIVERY_ID_HEADERS)?;
    let input = input_of(payload, event, delivery_of(headers));
    let mut client = db(&state).await?;
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
    // A replay answers like the first delivery (202), with the first delivery's run.
    let mut response = HttpResponse::Accepted();
    if queued.replayed {
        response.insert_header(("idempotent-replayed", "true"));
    }
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
        assert_eq!(payload_of(br#"{"ref":"main"}"#), json!({"ref": "main"}));
        assert_eq!(payload_of(b"payload=%7B%7D"), json!("payload=%7B%7D"));
        assert_eq!(payload_of(b""), json!(""));
    }

    #[test]
    fn an_object_payload_gains_event_and_delivery() {
        assert_eq!(
            input_of(json!({"ref": "refs/heads/main"}), Some("push"), Some("d-1")),
            json!({"ref": "refs/heads/main", "event": "push", "delivery": "d-1"})
        );
        assert_eq!(
            input_of(json!({}), None, None),
            json!({"event": null, "delivery": null})
        );
        // The payload's own fields are kept; other payloads are the input as they are.
        assert_eq!(
            input_of(json!({"event": "deploy"}), Some("push"), None),
            json!({"event": "deploy", "delivery": null})
        );
        assert_eq!(
            input_of(json!("text"), Some("push"), Some("d")),
            json!("text")
        );
        assert_eq!(input_of(json!([1]), Some("push"), Some("d")), json!([1]));
    }

    #[test]
    fn the_event_and_delivery_come_from_github_or_gitlab_headers() {
        let github = headers(&[("x-github-event", "push"), ("x-github-delivery", "g-1")]);
        assert_eq!(
            (event_of(&github), delivery_of(&github)),
            (Some("push"), Some("g-1"))
        );
        let gitlab = headers(&[
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-event-uuid", "u-1"),
            ("idempotency-key", "k-1"),
        ]);
        assert_eq!(
            (event_of(&gitlab), delivery_of(&gitlab)),
            (Some("Push Hook"), Some("k-1"))
        );
        let older = headers(&[
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-event-uuid", "u-1"),
        ]);
        assert_eq!(delivery_of(&older), Some("u-1"));
        assert_eq!(
            (event_of(&headers(&[])), delivery_of(&headers(&[]))),
            (None, None)
        );
        assert!(is_ping(&headers(&[("x-github-event", "ping")])));
        assert!(!is_ping(&headers(&[("x-gitlab-event", "ping")])));
    }

    #[test]
    fn filters_skip_other_events_and_branches() {
        let push = json!({"ref": "refs/heads/main"});
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(skip_reason(Some("push"), &push, &[], &[]), None);
        assert_eq!(skip_reason(None, &json!("x"), &[], &[]), None);
        let events = list(&["push", "Push Hook"]);
        assert_eq!(skip_reason(Some("push"), &push, &events, &[]), None);
        assert_eq!(skip_reason(Some("push hook"), &push, &events, &[]), None);
        assert!(skip_reason(Some("issues"), &push, &events, &[]).is_some());
        assert!(skip_reason(None, &push, &events, &[]).is_some());
        let branches = list(&["main", "release/*"]);
        assert_eq!(skip_reason(Some("push"), &push, &[], &branches), None);
        let release = json!({"ref": "refs/heads/release/1.2"});
        assert_eq!(skip_reason(None, &release, &[], &branches), None);
        let dev = json!({"ref": "refs/heads/dev"});
        let reason = skip_reason(Some("push"), &dev, &events, &branches).unwrap();
        assert!(reason.contains("refs/heads/dev"), "{reason}");
        assert!(skip_reason(None, &json!({"zen": "hi"}), &[], &branches).is_some());
        assert!(skip_reason(None, &json!({"ref": 7}), &[], &branches).is_some());
    }

    #[test]
    fn branch_patterns() {
        assert!(ref_matches("main", "refs/heads/main"));
        assert!(!ref_matches("main", "refs/heads/main2"));
        assert!(!ref_matches("main", "refs/tags/main"));
        assert!(!ref_matches("main", "main"));
        assert!(ref_matches("release/*", "refs/heads/release/1.2"));
        assert!(!ref_matches("release/*", "refs/heads/release/1/2"));
        assert!(ref_matches("release/**", "refs/heads/release/1/2"));
        assert!(ref_matches("**", "refs/heads/a/b/c"));
        assert!(ref_matches("*", "refs/heads/feature"));
        assert!(!ref_matches("*", "refs/heads/feature/x"));
        assert!(ref_matches("v?", "refs/heads/v1"));
        assert!(!ref_matches("v?", "refs/heads/v12"));
        assert!(ref_matches("refs/tags/v*", "refs/tags/v1.0"));
        assert!(!ref_matches("refs/tags/v*", "refs/heads/v1.0"));
        assert!(ref_matches("refs/heads/main", "refs/heads/main"));
        assert!(ref_matches("*-fix", "refs/heads/bug-fix"));
        assert!(!ref_matches("*-fix", "refs/heads/bug-fix2"));
        // Many stars against a long name: no backtracking blow-up.
        let long = format!("refs/heads/{}", "a".repeat(1000));
        assert!(!ref_matches(&format!("{}b", "*a".repeat(100)), &long));
        assert!(!ref_matches(
            "**",
            &format!("refs/heads/{}", "a".repeat(2000))
        ));
    }
}
