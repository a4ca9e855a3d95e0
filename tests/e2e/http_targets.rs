//! HTTP targets against a local test server; SSRF rules refuse metadata and, unless
//! allowed, private addresses.

use crate::harness::{Api, Component, TestDb};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A tiny HTTP/1.1 server: records each request's head and body and answers by path.
async fn test_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let record = record.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                let request = loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break text;
                        }
                    }
                };
                record.lock().unwrap().push(request.clone());
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                let response = match path.as_str() {
                    "/ok" => format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: 10000\r\nconnection: close\r\n\r\nhello {}",
                        "x".repeat(9994)
                    ),
                    "/redirect" => "HTTP/1.1 302 Found\r\nlocation: /ok\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string(),
                    "/loop" => "HTTP/1.1 302 Found\r\nlocation: /loop\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string(),
                    _ => "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\noops".to_string(),
                };
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (port, seen)
}

async fn run_http(api: &Api, project: &str, name: &str, target: Value, group: &str) -> Value {
    let job = api
        .create_job(
            project,
            json!({"name": name, "target": target, "worker_group": group}),
        )
        .await;
    let run = api.trigger(job["id"].as_str().unwrap(), json!(null)).await;
    api.wait_finished(&run).await
}

#[tokio::test]
async fn http_targets_call_follow_redirects_and_refuse_forbidden_addresses() {
    let (port, seen) = test_server().await;
    let db = TestDb::new();
    let app = Component::start("all", &db, &[("JOBCENTER_HTTP_ALLOW_PRIVATE", "true")]);
    let _strict = Component::start("worker", &db, &[("JOBCENTER_WORKER_GROUP", "strict")]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    // Groups other than `default` are the admin's to allow, project by project.
    let reply = api
        .patch(
            &format!("/api/v1/projects/{project}"),
            json!({"worker_groups": ["strict"]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let base = format!("http://127.0.0.1:{port}");

    let target = json!({"kind": "http", "method": "POST", "url": format!("{base}/redirect"),
                        "headers": {"X-Token": "abc"}, "body": "payload"});
    let run = run_http(&api, &project, "call", target, "default").await;
    assert_eq!(run["state"], "succeeded", "{run}");
    let result: Value = serde_json::from_str(run["result"].as_str().unwrap()).unwrap();
    assert_eq!(result["status"], 200);
    let body = result["body"].as_str().unwrap();
    assert!(body.starts_with("hello xxx"), "{body}");
    assert!(
        body.len() <= 4096,
        "the start of the body only: {}",
        body.len()
    );
    {
        let seen = seen.lock().unwrap();
        assert!(seen[0].starts_with("POST /redirect"), "{}", seen[0]);
        assert!(
            seen[0].to_ascii_lowercase().contains("x-token: abc"),
            "{}",
            seen[0]
        );
        assert!(seen[0].ends_with("\r\n\r\npayload"), "{}", seen[0]);
        // A 302 after a POST continues with a GET, as browsers do.
        assert!(seen[1].starts_with("GET /ok"), "{}", seen[1]);
    }
    let logs = api
        .get(&format!(
            "/api/v1/runs/{}/logs",
            run["id"].as_str().unwrap()
        ))
        .await;
    assert!(logs.text().contains("/redirect"), "{logs:?}");

    let run = run_http(
        &api,
        &project,
        "fails",
        json!({"kind": "http", "url": format!("{base}/fail")}),
        "default",
    )
    .await;
    assert_eq!(run["state"], "failed", "{run}");
    assert!(run["error"].as_str().unwrap().contains("500"), "{run}");

    let run = run_http(
        &api,
        &project,
        "loops",
        json!({"kind": "http", "url": format!("{base}/loop")}),
        "default",
    )
    .await;
    assert_eq!(run["state"], "failed", "{run}");
    assert!(
        run["error"].as_str().unwrap().contains("redirects"),
        "{run}"
    );

    // Cloud metadata: refused even where private addresses are allowed.
    let metadata = json!({"kind": "http", "url": "http://169.254.169.254/latest/meta-data/"});
    let run = run_http(&api, &project, "metadata", metadata, "default").await;
    assert_eq!(run["state"], "failed", "{run}");
    assert!(run["error"].as_str().unwrap().contains("refused"), "{run}");

    // A worker without JOBCENTER_HTTP_ALLOW_PRIVATE refuses the loopback server.
    let before = seen.lock().unwrap().len();
    let run = run_http(
        &api,
        &project,
        "private",
        json!({"kind": "http", "url": format!("{base}/ok")}),
        "strict",
    )
    .await;
    assert_eq!(run["state"], "failed", "{run}");
    assert!(
        run["error"].as_str().unwrap().contains("private address"),
        "{run}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        before,
        "the request was sent anyway"
    );

    // Invalid targets are refused at the API, naming the field.
    let reply = api
        .post(
            &format!("/api/v1/projects/{project}/jobs"),
            json!({"name": "bad", "target": {"kind": "http", "url": "file:///etc/passwd"}}),
        )
        .await;
    assert_eq!(reply.assert_problem(400).as_deref(), Some("target.url"));
}
