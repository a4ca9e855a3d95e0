//! What a notification sends: the body (the stored payload plus the event id and a link
//! to the run, or Slack's `{"text": ...}`) and its signature, HMAC-SHA256 of the exact
//! body bytes keyed by the channel's secret (`X-Jobcenter-Signature: sha256=<hex>`).

use hmac::{Hmac, KeyInit, Mac};
use jobcenter_sql::notification_deliveries::Claimed;
use serde_json::{json, Value};
use sha2::Sha256;

/// The body of `delivery` in its channel's format; `public_url` is the link base.
pub fn body(delivery: &Claimed, public_url: &str) -> Vec<u8> {
    let link = format!("{public_url}/api/v1/runs/{}", delivery.run_id);
    let mut payload = delivery.payload.clone();
    payload["id"] = json!(delivery.id);
    payload["link"] = json!(link);
    let value = if delivery.endpoint.format == "slack" {
        json!({"text": slack_text(&payload, &link)})
    } else {
        payload
    };
    serde_json::to_vec(&value).expect("a JSON value serializes")
}

/// One line for a chat channel: what happened, to which job, and where to look.
fn slack_text(payload: &Value, link: &str) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let job = text(&payload["job"]["name"]);
    let project = text(&payload["project"]["name"]);
    let what = match payload["event"].as_str() {
        Some("failure") => "failed",
        Some("timeout") => "timed out",
        Some("recovery") => "recovered (succeeded after a failure)",
        _ => match payload["state"].as_str() {
            Some("succeeded") => "succeeded",
            Some("failed") => "failed",
            Some("timed_out") => "timed out",
            _ => "finished",
        },
    };
    let mut line = format!("jobcenter: job {job} ({project}) {what}: <{link}|run>");
    if let Some(error) = payload["error"].as_str() {
        line.push_str(&format!(": {error}"));
    }
    line
}

/// `sha256=<hex HMAC-SHA256 of body keyed by secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobcenter_sql::notification_channels::Endpoint;
    use uuid::Uuid;

    fn claimed(format: &str) -> Claimed {
        Claimed {
            id: Uuid::nil(),
            run_id: Uuid::nil(),
            event: "failure".into(),
            events: vec!["failure".into()],
            payload: json!({"event": "failure", "job": {"name": "nightly"},
                            "project": {"name": "p"}, "state": "failed", "error": "exit 3"}),
            attempt: 1,
            endpoint: Endpoint {
                url: "http://x".into(),
                format: format.into(),
                secret: "s".into(),
            },
        }
    }

    #[test]
    fn json_body_has_the_id_and_link_and_slack_a_text() {
        let body: Value = serde_json::from_slice(&body(&claimed("json"), "http://jc")).unwrap();
        assert_eq!(body["id"], json!(Uuid::nil()));
        assert_eq!(
            body["link"],
            json!(format!("http://jc/api/v1/runs/{}", Uuid::nil()))
        );
        let slack: Value = serde_json::from_slice(&body_of_slack()).unwrap();
        let text = slack["text"].as_str().unwrap();
        assert!(text.contains("nightly") && text.contains("failed") && text.contains("exit 3"));
        assert_eq!(slack.as_object().unwrap().len(), 1);
    }

    fn body_of_slack() -> Vec<u8> {
        body(&claimed("slack"), "http://jc")
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
