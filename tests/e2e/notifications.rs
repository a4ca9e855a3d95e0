//! Notifications: signed JSON and Slack-format bodies, the events that fire (failure,
//! timeout, recovery, finish), retries while the receiver is down, and a scheduler
//! SIGKILLed between sending and recording (the event is sent again, same id).

use crate::harness::{eventually, Api, Component, TestDb};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the receiver answers.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Ok,
    Unavailable,
    /// Reads the request and never answers.
    Hold,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    answered: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn id(&self) -> &str {
        &self.headers["x-jobcenter-delivery"]
    }
}

#[derive(Clone)]
struct Receiver {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            port: listener.local_addr().unwrap().port(),
            mode: Arc::new(Mutex::new(Mode::Ok)),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let shared = receiver.clone();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                tokio::spawn(shared.clone().serve(socket));
            }
        });
        receiver
    }

    async fn serve(self, mut socket: tokio::net::TcpStream) {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let (head, body) = loop {
            let n = socket.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            data.extend_from_slice(&buf[..n]);
            let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&data[..end]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                break (head, data[end + 4..end + 4 + length].to_vec());
            }
        };
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mode = *self.mode.lock().unwrap();
        let answered = match mode {
            Mode::Ok => 200,
            Mode::Unavailable => 503,
            Mode::Hold => 0,
        };
        self.seen.lock().unwrap().push(Received {
            path,
            headers,
            body,
            answered,
        });
        if mode == Mode::Hold {
            tokio::time::sleep(Duration::from_secs(600)).await;
            return;
        }
        let reason = if answered == 200 {
            "OK"
        } else {
            "Service Unavailable"
        };
        let response = format!(
            "HTTP/1.1 {answered} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        let _ = socket.write_all(response.as_bytes()).await;
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn seen(&self, path: &str) -> Vec<Received> {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|r| r.path == path).cloned().collect()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// Creates a channel on `owner_path` (`/api/v1/projects/X` or `/api/v1/jobs/X`); returns
/// (channel id, secret).
async fn channel(api: &Api, owner_path: &str, body: Value) -> (String, String) {
    let reply = api.post(&format!("{owner_path}/notifications"), body).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    (
        reply.body["id"].as_str().unwrap().to_string(),
        reply.body["secret"].as_str().unwrap().to_string(),
    )
}

async fn deliveries(api: &Api, channel: &str) -> Vec<Value> {
    let reply = api
        .get(&format!("/api/v1/notifications/{channel}/deliveries"))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body["items"].as_array().unwrap().clone()
}

/// Waits until the channel has `count` deliveries, all delivered; returns them.
async fn all_delivered(api: &Api, channel: &str, count: usize) -> Vec<Value> {
    eventually(
        Duration::from_secs(60),
        "every delivery recorded delivered",
        || async {
            let items = deliveries(api, channel).await;
            (items.len() == count && items.iter().all(|d| d["delivered_at"].is_string()))
                .then_some(items)
        },
    )
    .await
}

/// Waits until nothing is left that could still send to `path` on `channel`: every run
/// outcome processed (no delivery left to create), every delivery of the channel
/// delivered, and each attempt it recorded received. Then returns what was received.
async fn settled(
    db: &TestDb,
    api: &Api,
    receiver: &Receiver,
    channel: &str,
    path: &str,
) -> Vec<Received> {
    eventually(
        Duration::from_secs(60),
        "the notifier to settle",
        || async {
            let pending = db
                .count("SELECT count(*) FROM run_outcomes WHERE processed_at IS NULL")
                .await;
            let items = deliveries(api, channel).await;
            let attempts: i64 = items.iter().filter_map(|d| d["attempts"].as_i64()).sum();
            let seen = receiver.seen(path);
            (pending == 0
                && items.iter().all(|d| d["delivered_at"].is_string())
                && seen.len() as i64 == attempts)
                .then_some(seen)
        },
    )
    .await
}

fn verify_signature(secret: &str, received: &Received) {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&received.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(received.headers["x-jobcenter-signature"], expected);
}

async fn run_to_end(api: &Api, job: &str, input: Value) -> Value {
    let run = api.trigger(job, input).await;
    api.wait_finished(&run).await
}

#[tokio::test]
async fn notifications_are_signed_and_fire_on_exactly_the_right_events() {
    let receiver = Receiver::start().await;
    let db = TestDb::new();
    let app = Component::start(
        "all",
        &db,
        &[
            ("JOBCENTER_HTTP_ALLOW_PRIVATE", "true"),
            ("JOBCENTER_PUBLIC_URL", "https://jobs.example.com"),
            ("JOBCENTER_KILL_GRACE_SECONDS", "1"),
        ],
    );
    let api = Api::login_admin(&app).await;
    let project = api.create_project("notify").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "exits", "target": {"kind": "command",
                   "command": ["sh", "-c", "code=$(cat); printf r$code > $JOBCENTER_RESULT_FILE; exit $code"]}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let slow = api
        .create_job(
            &project,
            json!({"name": "slow", "timeout_seconds": 1,
                   "target": {"kind": "command", "command": ["sleep", "30"]}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Bad input: 400 naming the field, nothing stored.
    let project_path = format!("/api/v1/projects/{project}");
    let bad = [
        (
            json!({"url": "ftp://x.example/", "events": ["failure"]}),
            "url",
        ),
        (json!({"url": "not a url", "events": ["failure"]}), "url"),
        (
            json!({"url": "http:///nohost", "events": ["failure"]}),
            "url",
        ),
        (
            json!({"url": receiver.url("/j"), "format": "xml", "events": ["failure"]}),
            "format",
        ),
        (json!({"url": receiver.url("/j"), "events": []}), "events"),
        (
            json!({"url": receiver.url("/j"), "events": ["failure", "boom"]}),
            "events[1]",
        ),
        (json!({"events": ["failure"]}), "url"),
        (
            json!({"url": receiver.url("/j"), "events": ["failure"], "secret": "x"}),
            "secret",
        ),
    ];
    for (body, field) in bad {
        let reply = api
            .post(&format!("{project_path}/notifications"), body.clone())
            .await;
        assert_eq!(reply.assert_problem(400).as_deref(), Some(field), "{body}");
        let reply = api
            .post(&format!("/api/v1/jobs/{job}/notifications"), body.clone())
            .await;
        assert_eq!(reply.assert_problem(400).as_deref(), Some(field), "{body}");
    }
    assert_eq!(
        db.count("SELECT count(*) FROM notification_channels").await,
        0
    );

    let (alerts, alerts_secret) = channel(
        &api,
        &project_path,
        json!({"url": receiver.url("/alerts"), "events": ["failure", "timeout", "recovery"]}),
    )
    .await;
    let (chat, chat_secret) = channel(
        &api,
        &format!("/api/v1/jobs/{job}"),
        json!({"url": receiver.url("/chat"), "format": "slack", "events": ["finish"]}),
    )
    .await;
    let listed = api.get(&format!("{project_path}/notifications")).await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        2,
        "{listed:?}"
    );
    assert!(listed.body["items"][0].get("secret").is_none());

    // Cloud metadata is refused even with private addresses allowed.
    let (metadata, _) = channel(
        &api,
        &project_path,
        json!({"url": "http://169.254.169.254/latest/meta-data", "events": ["failure"]}),
    )
    .await;

    // success, failure, success (a recovery), success (no recovery), timeout.
    let ok1 = run_to_end(&api, &job, json!(0)).await;
    let failed = run_to_end(&api, &job, json!(3)).await;
    assert_eq!(failed["state"], "failed");
    let recovered = run_to_end(&api, &job, json!(0)).await;
    let ok2 = run_to_end(&api, &job, json!(0)).await;
    let timed_out = run_to_end(&api, &slow, json!(null)).await;
    assert_eq!(timed_out["state"], "timed_out");

    let alert_rows = all_delivered(&api, &alerts, 3).await;
    let refused = eventually(Duration::from_secs(20), "a refused attempt", || async {
        let items = deliveries(&api, &metadata).await;
        items
            .first()
            .filter(|d| d["last_error"].is_string())
            .cloned()
    })
    .await;
    assert!(
        refused["last_error"]
            .as_str()
            .unwrap()
            .contains("always refused"),
        "{refused}"
    );
    assert!(refused["delivered_at"].is_null() && refused["last_status"].is_null());
    let chat_rows = all_delivered(&api, &chat, 4).await;
    // Nothing more arrives.
    let got = settled(&db, &api, &receiver, &alerts, "/alerts").await;
    assert_eq!(got.len(), 3, "{got:#?}");
    let events: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            let b = r.json();
            (
                b["event"].as_str().unwrap().into(),
                b["run"]["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut expected = vec![
        (
            "failure".to_string(),
            failed["id"].as_str().unwrap().to_string(),
        ),
        (
            "recovery".to_string(),
            recovered["id"].as_str().unwrap().to_string(),
        ),
        (
            "timeout".to_string(),
            timed_out["id"].as_str().unwrap().to_string(),
        ),
    ];
    let mut sorted = events.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected);
    for received in &got {
        verify_signature(&alerts_secret, received);
        let body = received.json();
        assert_eq!(body["id"], received.id(), "{body}");
        assert_eq!(received.headers["x-jobcenter-event"], body["event"]);
        for key in [
            "job", "run", "state", "result", "error", "link", "project", "events",
        ] {
            assert!(body.get(key).is_some(), "{key} missing: {body}");
        }
        let run = body["run"]["id"].as_str().unwrap();
        assert_eq!(
            body["link"],
            format!("https://jobs.example.com/api/v1/runs/{run}")
        );
        assert!(body["job"]["name"].is_string());
        assert_eq!(body["project"]["id"], project.as_str());
    }
    let failure = got
        .iter()
        .map(Received::json)
        .find(|b| b["event"] == "failure")
        .unwrap();
    assert_eq!(failure["state"], "failed");
    assert_eq!(failure["result"], "r3");
    assert_eq!(failure["job"]["id"], job.as_str());
    assert!(failure["error"].is_string(), "{failure}");
    assert_eq!(failure["events"], json!(["failure"]));
    for row in &alert_rows {
        assert_eq!(row["attempts"], 1, "{row}");
        assert_eq!(row["last_status"], 200, "{row}");
    }

    // The job's own Slack channel: every finish of that job, and only `text`.
    let chat_got = receiver.seen("/chat");
    assert_eq!(chat_got.len(), 4, "{chat_got:#?}");
    for received in &chat_got {
        verify_signature(&chat_secret, received);
        let body = received.json();
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        assert!(body["text"].as_str().unwrap().contains("exits"), "{body}");
    }
    let runs: BTreeSet<&str> = chat_rows
        .iter()
        .map(|d| d["run_id"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = [&ok1, &failed, &recovered, &ok2]
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(runs, expected);
    assert!(chat_got
        .iter()
        .any(|r| r.json()["text"].as_str().unwrap().contains("failed")));

    // Deleting a channel: gone from the list, audited.
    assert_eq!(
        api.delete(&format!("/api/v1/notifications/{chat}"))
            .await
            .status,
        204
    );
    let listed = api.get(&format!("/api/v1/jobs/{job}/notifications")).await;
    assert_eq!(listed.body["items"], json!([]), "{listed:?}");
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action LIKE 'notification.%'")
            .await,
        4
    );
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_each_event_once() {
    let receiver = Receiver::start().await;
    receiver.set(Mode::Unavailable);
    let db = TestDb::new();
    let app = Component::start(
        "all",
        &db,
        &[
            ("JOBCENTER_HTTP_ALLOW_PRIVATE", "true"),
            ("JOBCENTER_NOTIFY_BACKOFF_BASE_MS", "200"),
        ],
    );
    let api = Api::login_admin(&app).await;
    let project = api.create_project("down").await;
    let (alerts, _) = channel(
        &api,
        &format!("/api/v1/projects/{project}"),
        json!({"url": receiver.url("/alerts"), "events": ["failure"]}),
    )
    .await;
    let job = api
        .create_job(
            &project,
            json!({"name": "fails", "target": {"kind": "command", "command": ["false"]}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    run_to_end(&api, &job, json!(null)).await;
    run_to_end(&api, &job, json!(null)).await;
    for _ in 0..300 {
        if receiver.seen("/alerts").len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = receiver.seen("/alerts").len();
    assert!(seen >= 6, "{seen} requests:\n{}", app.stderr());
    let pending = deliveries(&api, &alerts).await;
    assert!(
        pending.iter().all(|d| d["delivered_at"].is_null()),
        "{pending:?}"
    );
    assert!(
        pending.iter().any(|d| d["last_status"] == 503),
        "{pending:?}"
    );
    receiver.set(Mode::Ok);
    let rows = all_delivered(&api, &alerts, 2).await;
    let got = settled(&db, &api, &receiver, &alerts, "/alerts").await;
    let accepted: Vec<&Received> = got.iter().filter(|r| r.answered == 200).collect();
    let ids: BTreeSet<&str> = accepted.iter().map(|r| r.id()).collect();
    assert_eq!(ids.len(), 2, "{accepted:#?}");
    assert_eq!(accepted.len(), 2, "each event accepted once: {accepted:#?}");
    let all_ids: BTreeSet<&str> = got.iter().map(|r| r.id()).collect();
    assert_eq!(all_ids, ids, "retries reuse the event id");
    for row in &rows {
        assert!(row["attempts"].as_i64().unwrap() > 1, "{row}");
        assert_eq!(row["last_status"], 200, "{row}");
        assert!(row["gave_up_at"].is_null(), "{row}");
    }
}

#[tokio::test]
async fn a_scheduler_killed_while_sending_does_not_lose_the_event() {
    let receiver = Receiver::start().await;
    receiver.set(Mode::Hold);
    let db = TestDb::new();
    let env = [
        ("JOBCENTER_HTTP_ALLOW_PRIVATE", "true"),
        ("JOBCENTER_NOTIFY_TIMEOUT_SECONDS", "3"),
    ];
    let api_process = Component::start("api", &db, &env);
    let mut scheduler = Component::start("scheduler", &db, &env);
    let _worker = Component::start("worker", &db, &env);
    let api = Api::login_admin(&api_process).await;
    let project = api.create_project("crash").await;
    let (alerts, secret) = channel(
        &api,
        &format!("/api/v1/projects/{project}"),
        json!({"url": receiver.url("/alerts"), "events": ["failure"]}),
    )
    .await;
    let job = api
        .create_job(
            &project,
            json!({"name": "fails", "target": {"kind": "command", "command": ["false"]}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    run_to_end(&api, &job, json!(null)).await;
    eventually(Duration::from_secs(20), "the first send", || async {
        (!receiver.seen("/alerts").is_empty()).then_some(())
    })
    .await;
    // Sent, not recorded: the scheduler dies holding the open request.
    scheduler.kill();
    receiver.set(Mode::Ok);
    let row = &deliveries(&api, &alerts).await[0];
    assert!(row["delivered_at"].is_null(), "{row}");
    assert_eq!(row["attempts"], 1, "{row}");
    let _next = Component::start("scheduler", &db, &env);
    let rows = all_delivered(&api, &alerts, 1).await;
    assert_eq!(rows[0]["attempts"], 2, "{:?}", rows[0]);
    let got = receiver.seen("/alerts");
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0].id(), got[1].id(), "the re-send carries the same id");
    assert_eq!(got[0].body, got[1].body);
    assert_eq!(got[1].answered, 200);
    verify_signature(&secret, &got[1]);
    let ids: BTreeSet<&str> = got.iter().map(Received::id).collect();
    assert_eq!(ids.len(), 1, "the receiver dedupes to one event");
}
