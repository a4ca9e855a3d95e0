//! Artifacts against both stores: versions, streaming, limits, aborted uploads.
//! Every test runs twice: `_local` (directory store) and `_s3` (the S3-compatible server).

use crate::harness::{eventually, Api, ArtifactBackend, Component, TestDb};
use futures_util::stream;
use serde_json::json;
use std::time::Duration;

crate::on_both_stores!(versions_round_trip);
crate::on_both_stores!(oversized_and_aborted_uploads_leave_nothing);
crate::on_both_stores!(a_100_mib_upload_streams_through_the_api);
crate::on_both_stores!(the_orphan_sweep_pages_through_the_whole_store);

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn put(api: &Api, project: &str, name: &str, body: Vec<u8>) -> crate::harness::Reply {
    let request = api
        .http
        .put(format!(
            "{}/api/v1/projects/{project}/artifacts/{name}",
            api.base
        ))
        .bearer_auth(api.token.as_ref().unwrap())
        .body(body);
    api.send_request(request).await
}

async fn versions_round_trip(backend: ArtifactBackend) {
    let db = TestDb::new();
    let app = Component::start("api", &db, &backend.env());
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let v1 = pseudo_random(3 << 20, 1);
    let v2 = pseudo_random(9 << 20, 2); // past one multipart part
    let reply = put(&api, &project, "tool", v1.clone()).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(reply.body["version"], 1);
    assert_eq!(reply.body["sha256"], sha256_hex(&v1));
    assert_eq!(reply.body["size"], v1.len());
    let reply = put(&api, &project, "tool", v2.clone()).await;
    assert_eq!(reply.body["version"], 2, "{reply:?}");

    let listed = api
        .get(&format!("/api/v1/projects/{project}/artifacts/tool"))
        .await;
    let versions: Vec<i64> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);

    for (version, content) in [(1, &v1), (2, &v2)] {
        let response = api
            .http
            .get(format!(
                "{}/api/v1/projects/{project}/artifacts/tool/versions/{version}",
                api.base
            ))
            .bearer_auth(api.token.as_ref().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["x-checksum-sha256"],
            sha256_hex(content).as_str()
        );
        let body = response.bytes().await.unwrap();
        assert!(
            body.as_ref() == content.as_slice(),
            "version {version} came back different"
        );
    }
    assert_eq!(backend.object_keys().await.len(), 2);

    let deleted = api
        .delete(&format!(
            "/api/v1/projects/{project}/artifacts/tool/versions/1"
        ))
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    api.get(&format!(
        "/api/v1/projects/{project}/artifacts/tool/versions/1"
    ))
    .await
    .assert_problem(404);
    assert_eq!(
        backend.object_keys().await.len(),
        1,
        "the deleted version's object is gone"
    );
    // Version numbers are never reused.
    let reply = put(&api, &project, "tool", b"three".to_vec()).await;
    assert_eq!(reply.body["version"], 3, "{reply:?}");
    put(&api, &project, "../escape", b"x".to_vec())
        .await
        .assert_problem(404);
    put(&api, &project, "bad name", b"x".to_vec())
        .await
        .assert_problem(400);
}

async fn oversized_and_aborted_uploads_leave_nothing(backend: ArtifactBackend) {
    let db = TestDb::new();
    let mut env = backend.env();
    env.push(("JOBCENTER_ARTIFACT_MAX_BYTES", "1048576"));
    let app = Component::start("api", &db, &env);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let url = format!("{}/api/v1/projects/{project}/artifacts/big", api.base);

    // Declared too large: refused before a byte is read.
    put(&api, &project, "big", vec![7u8; (1 << 20) + 1])
        .await
        .assert_problem(413);
    // Not declared (chunked): refused once the stream passes the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![1u8; 64 * 1024])).collect();
    let response = api
        .http
        .put(&url)
        .bearer_auth(api.token.as_ref().unwrap())
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send()
        .await;
    if let Ok(response) = response {
        assert_eq!(response.status(), 413);
    } // else the server closed the connection mid-body, which is also a refusal
      // Aborted half-way: the client's body fails after 512 KiB.
    let mut chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![2u8; 64 * 1024])).collect();
    chunks.push(Err(std::io::Error::other("client gave up")));
    let aborted = api
        .http
        .put(&url)
        .bearer_auth(api.token.as_ref().unwrap())
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send()
        .await;
    assert!(aborted.is_err() || aborted.unwrap().status().is_client_error());
    // Exactly 1 MiB is fine.
    let reply = put(&api, &project, "big", vec![7u8; 1 << 20]).await;
    assert_eq!(reply.status, 201, "{reply:?}");

    eventually(
        Duration::from_secs(30),
        "only the accepted upload to remain",
        || async { (backend.object_keys().await.len() == 1).then_some(()) },
    )
    .await;
    assert_eq!(db.count("SELECT count(*) FROM artifacts").await, 1);
    if let Some(dir) = backend.location.strip_prefix("file://") {
        let incoming = std::fs::read_dir(format!("{dir}/.incoming"))
            .unwrap()
            .count();
        assert_eq!(incoming, 0, "no partial upload file is left");
    }
}

/// Resident set of a process, in KiB.
fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

async fn a_100_mib_upload_streams_through_the_api(backend: ArtifactBackend) {
    let db = TestDb::new();
    let app = Component::start("all", &db, &backend.env());
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    put(&api, &project, "warmup", vec![0u8; 1 << 20]).await;
    // The peak so far (start-up, the warm-up upload) is reset to the current size, so
    // the growth below is the upload's alone.
    std::fs::write(format!("/proc/{}/clear_refs", app.pid()), "5").unwrap();
    let before = rss_kib(app.pid(), "VmHWM:");
    let size = 100usize << 20;
    // Sent chunked from a generator, so the test process does not hold it either.
    let chunk_bytes = 256 * 1024;
    // A shell script that exits before its 100 MiB comment padding.
    let header = b"#!/bin/sh\necho big binary ran\nexit 0\n";
    let body = stream::iter((0..size / chunk_bytes).map(move |i| {
        let mut chunk = vec![b'#'; chunk_bytes];
        if i == 0 {
            chunk[..header.len()].copy_from_slice(header);
        }
        Ok::<_, std::io::Error>(chunk)
    }));
    let response = api
        .http
        .put(format!(
            "{}/api/v1/projects/{project}/artifacts/huge",
            api.base
        ))
        .bearer_auth(api.token.as_ref().unwrap())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["size"], size);
    let growth_mib = (rss_kib(app.pid(), "VmHWM:").saturating_sub(before)) as f64 / 1024.0;
    println!("peak RSS growth of the API during a 100 MiB upload: {growth_mib:.1} MiB");
    assert!(
        growth_mib < 40.0,
        "the upload was held in memory: +{growth_mib:.1} MiB"
    );
    let listed = api
        .get(&format!("/api/v1/projects/{project}/artifacts"))
        .await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        2,
        "{listed:?}"
    );
    // And it runs, fetched by the worker into its cache and checked against its sha256.
    let job = api
        .create_job(
            &project,
            json!({"name": "big", "target": {"kind": "binary", "artifact": "huge"}}),
        )
        .await;
    let run = api
        .wait_finished(&api.trigger(job["id"].as_str().unwrap(), json!(null)).await)
        .await;
    assert_eq!(run["state"], "succeeded", "{run}");
    let logs = api
        .get(&format!(
            "/api/v1/runs/{}/logs",
            run["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(logs.text(), "big binary ran\n");
}

#[tokio::test]
async fn secrets_are_write_only() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let path = format!("/api/v1/projects/{project}/secrets/API_KEY");
    let set = api
        .request(
            "PUT",
            &path,
            &[("content-type", "application/json")],
            Some(br#"{"value":"hunter2-xyz"}"#.to_vec()),
        )
        .await;
    assert_eq!(set.status, 204, "{set:?}");
    let listed = api
        .get(&format!("/api/v1/projects/{project}/secrets"))
        .await;
    assert_eq!(listed.body["items"][0]["name"], "API_KEY");
    assert!(!listed.text().contains("hunter2") && !listed.body.to_string().contains("hunter2"));
    let bad = api
        .request(
            "PUT",
            &format!("/api/v1/projects/{project}/secrets/JOBCENTER_X"),
            &[("content-type", "application/json")],
            Some(br#"{"value":"v"}"#.to_vec()),
        )
        .await;
    assert_eq!(bad.assert_problem(400).as_deref(), Some("name"));
    assert_eq!(api.delete(&path).await.status, 204);
    api.delete(&path).await.assert_problem(404);
}

/// A TCP relay in front of the S3 server that the test can cut and restore, as a network
/// fault or a stopped server would look to the API.
struct Relay {
    port: u16,
    cut: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, _) = tokio::sync::watch::channel(false);
        let cut = std::sync::Arc::new(cut);
        let state = cut.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if *state.borrow() {
                    drop(inbound); // refused while cut
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut_signal = state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_signal.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Relay { port, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

#[tokio::test]
async fn an_unreachable_store_answers_503_and_leaves_nothing_half_written() {
    let mut backend = ArtifactBackend::s3();
    let endpoint = backend.s3.endpoint.clone().unwrap();
    let relay = Relay::start(endpoint.trim_start_matches("http://").to_string()).await;
    let relayed = format!("http://127.0.0.1:{}", relay.port);
    for (name, value) in backend.env.iter_mut() {
        if name == "JOBCENTER_S3_ENDPOINT" {
            *value = relayed.clone();
        }
    }
    let db = TestDb::new();
    let app = Component::start("api", &db, &backend.env());
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    assert_eq!(
        put(&api, &project, "before", vec![1u8; 1 << 20])
            .await
            .status,
        201
    );

    // The store goes away in the middle of a multipart upload.
    let url = format!("{}/api/v1/projects/{project}/artifacts/during", api.base);
    let chunk = 1 << 20;
    let cut_after = 12; // MiB: past the first 8 MiB part
    let relay_cut = relay.cut.clone();
    let body = stream::iter((0..24).map(move |i| {
        if i == cut_after {
            relay_cut.send_replace(true);
        }
        Ok::<_, std::io::Error>(vec![2u8; chunk])
    }));
    let response = api
        .http
        .put(&url)
        .bearer_auth(api.token.as_ref().unwrap())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let ready = api.get("/readyz").await;
    assert_eq!(ready.status, 200, "ready without its store: {ready:?}");
    assert_eq!(ready.body["artifact_store"], "down", "{ready:?}");
    assert_eq!(db.count("SELECT count(*) FROM artifacts").await, 1);

    relay.set_cut(false);
    assert_eq!(
        put(&api, &project, "after", vec![3u8; 1 << 20])
            .await
            .status,
        201
    );
    let ready = api.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["artifact_store"], "up", "{ready:?}");
    // Only the two complete uploads exist: the cut one left no object.
    let keys = backend.object_keys().await;
    assert_eq!(keys.len(), 2, "{keys:?}");
}

/// An S3 outage fails artifact operations with 503 and nothing else: the API stays
/// ready (reporting the store down), projects, jobs and command runs keep working.
#[tokio::test]
async fn an_unreachable_s3_store_leaves_the_api_ready_and_everything_else_working() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // the listener is dropped: nothing answers there
    let endpoint = format!("http://127.0.0.1:{closed_port}");
    let db = TestDb::new();
    let app = Component::start(
        "all",
        &db,
        &[
            ("JOBCENTER_ARTIFACTS", "s3://bucket/x"),
            ("JOBCENTER_S3_ENDPOINT", &endpoint),
            ("JOBCENTER_S3_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "dummy-key"),
            ("AWS_SECRET_ACCESS_KEY", "dummy-secret"),
        ],
    );
    let api = Api::login_admin(&app).await;

    let ready = api.get("/readyz").await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(ready.body["status"], "ready", "{ready:?}");
    assert_eq!(ready.body["database"], "up", "{ready:?}");
    assert_eq!(ready.body["artifact_store"], "down", "{ready:?}");
    let metrics = api.get("/metrics").await;
    assert!(
        metrics.text().contains("jobcenter_artifact_store_up 0"),
        "{}",
        metrics.text()
    );

    let project = api.create_project("demo").await;
    let upload = put(&api, &project, "tool", vec![1u8; 1024]).await;
    assert_eq!(upload.status, 503, "{upload:?}");
    assert!(
        upload.content_type.starts_with("application/problem+json"),
        "{upload:?}"
    );
    assert_eq!(upload.body["status"], 503, "{upload:?}");

    let job = api
        .create_job(
            &project,
            json!({"name": "hello", "target": {"kind": "command",
                   "command": ["sh", "-c", "echo -n hi > $JOBCENTER_RESULT_FILE"]}}),
        )
        .await;
    let run = api.trigger(job["id"].as_str().unwrap(), json!(null)).await;
    let run = api.wait_finished(&run).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["result"], "hi", "{run}");
}

#[tokio::test]
async fn orphan_objects_are_swept_and_live_ones_kept() {
    let backend = ArtifactBackend::local();
    let db = TestDb::new();
    let app = Component::start("api", &db, &backend.env());
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    assert_eq!(
        put(&api, &project, "live", b"live content".to_vec())
            .await
            .status,
        201
    );
    // An object without a row: what a crash between the object and its row leaves.
    let store = jobcenter_core::artifacts::ArtifactStore::open(&backend.location, &backend.s3)
        .await
        .unwrap();
    let orphan = format!("projects/{project}/ghost/{}", uuid::Uuid::new_v4());
    let body = stream::iter(vec![Ok::<_, std::io::Error>(bytes_of(b"ghost"))]);
    store.put(&orphan, body, 1 << 20).await.unwrap();
    assert_eq!(backend.object_keys().await.len(), 2);

    let pool = jobcenter_sql::new_pool(&db.url, 2).unwrap();
    let page_size = jobcenter_scheduler::orphans::PAGE_SIZE;
    let young =
        jobcenter_scheduler::orphans::sweep(&pool, &store, Duration::from_secs(3600), page_size)
            .await
            .unwrap();
    assert_eq!(
        young, 0,
        "objects younger than the grace period are left alone"
    );
    let swept = jobcenter_scheduler::orphans::sweep(&pool, &store, Duration::ZERO, page_size)
        .await
        .unwrap();
    assert_eq!(swept, 1);
    let keys = backend.object_keys().await;
    assert_eq!(keys.len(), 1);
    assert!(!keys[0].contains("ghost"), "{keys:?}");
}

async fn the_orphan_sweep_pages_through_the_whole_store(backend: ArtifactBackend) {
    let db = TestDb::new();
    let app = Component::start("api", &db, &backend.env());
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    for name in ["b-live", "d-live", "f-live"] {
        let reply = put(&api, &project, name, name.as_bytes().to_vec()).await;
        assert_eq!(reply.status, 201);
    }
    // Orphans before, between and after the live objects in key order.
    let store = jobcenter_core::artifacts::ArtifactStore::open(&backend.location, &backend.s3)
        .await
        .unwrap();
    for name in ["a", "c", "e", "g", "h", "i", "j"] {
        let orphan = format!("projects/{project}/{name}-ghost/{}", uuid::Uuid::new_v4());
        let body = stream::iter(vec![Ok::<_, std::io::Error>(bytes_of(b"ghost"))]);
        store.put(&orphan, body, 1 << 20).await.unwrap();
    }
    assert_eq!(backend.object_keys().await.len(), 10);

    // Pages of two: most orphans lie beyond the first page.
    let pool = jobcenter_sql::new_pool(&db.url, 2).unwrap();
    let swept = jobcenter_scheduler::orphans::sweep(&pool, &store, Duration::ZERO, 2)
        .await
        .unwrap();
    assert_eq!(swept, 7);
    let mut keys = backend.object_keys().await;
    keys.sort();
    assert_eq!(keys.len(), 3, "{keys:?}");
    for (key, name) in keys.iter().zip(["b-live", "d-live", "f-live"]) {
        assert!(key.contains(&format!("/{name}/")), "{keys:?}");
    }
}

fn bytes_of(bytes: &[u8]) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(bytes)
}
