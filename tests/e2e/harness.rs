//! The test harness: a fresh database per test (cloned from a migrated template), the
//! real `jobcenter` binary started as separate processes, and an HTTP client.
//!
//! Waits are bounded polls on an observable condition, never fixed sleeps.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// How long `wait_running`/`wait_finished` wait: generous, because CI machines have two
/// cores shared by parallel tests; a passing test never waits this long.
const RUN_WAIT: Duration = Duration::from_secs(60);
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

fn admin_url() -> String {
    std::env::var("JOBCENTER_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn url_for(database: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{database}")
}

/// Runs an async block on a private runtime in its own thread (usable from Drop and
/// from inside a test's runtime).
fn blocking<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
    .join()
    .expect("helper thread panicked")
}

async fn admin_client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .expect("JOBCENTER_TEST_DATABASE_URL must reach a Postgres server (make test starts one)");
    tokio::spawn(connection);
    client
}

/// The migrated template, named after a hash of the migrations so that a schema change
/// gets a new template. Created once, under an advisory lock against parallel processes.
fn template() -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let mut hash: u64 = 0xcbf29ce484222325;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/sql/migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            for byte in name
                .into_bytes()
                .into_iter()
                .chain(std::fs::read(file).unwrap())
            {
                hash = (hash ^ byte as u64).wrapping_mul(0x100000001b3);
            }
        }
        let name = format!("jc_tpl_{hash:016x}");
        let template = name.clone();
        blocking(async move {
            let client = admin_client().await;
            client
                .execute("SELECT pg_advisory_lock(4242)", &[])
                .await
                .unwrap();
            let exists = client
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template])
                .await
                .unwrap()
                .is_some();
            if !exists {
                let building = format!("{template}_building");
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                    .await
                    .unwrap();
                client
                    .batch_execute(&format!("CREATE DATABASE {building}"))
                    .await
                    .unwrap();
                let status = Command::new(env!("CARGO_BIN_EXE_jobcenter"))
                    .arg("migrate")
                    .env("JOBCENTER_DATABASE_URL", url_for(&building))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                assert!(status.success(), "jobcenter migrate failed on the template");
                client
                    .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}"))
                    .await
                    .unwrap();
            }
            client
                .execute("SELECT pg_advisory_unlock(4242)", &[])
                .await
                .unwrap();
        });
        name
    })
}

/// A fresh, migrated database for one test, dropped afterwards.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// A database on another server (e.g. a private cluster), migrated by the first
    /// component that starts; not dropped by this handle.
    pub fn on_server(url: String) -> TestDb {
        TestDb {
            name: String::new(),
            url,
        }
    }

    pub fn new() -> TestDb {
        let template = template();
        let name = format!("jc_t_{}", uuid::Uuid::new_v4().simple());
        let create = format!("CREATE DATABASE {name} TEMPLATE {template}");
        blocking(async move { admin_client().await.batch_execute(&create).await.unwrap() });
        TestDb {
            url: url_for(&name),
            name,
        }
    }

    /// An empty database (no migrations), for tests of migration itself.
    pub fn empty() -> TestDb {
        let name = format!("jc_t_{}", uuid::Uuid::new_v4().simple());
        let create = format!("CREATE DATABASE {name}");
        blocking(async move { admin_client().await.batch_execute(&create).await.unwrap() });
        TestDb {
            url: url_for(&name),
            name,
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    /// Runs a query returning one bigint (e.g. a count).
    pub async fn count(&self, sql: &str) -> i64 {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }
}

/// Runs left `running` in the database at `url` (none where it has no `runs` table yet).
fn left_running(url: String) -> Vec<String> {
    blocking(async move {
        let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
        else {
            return Vec::new();
        };
        tokio::spawn(connection);
        client
            .query(
                "SELECT id::text || ' of job ' || job_id::text FROM runs
                 WHERE state = 'running' LIMIT 10",
                &[],
            )
            .await
            .map(|rows| rows.iter().map(|row| row.get(0)).collect())
            .unwrap_or_default()
    })
}

impl Drop for TestDb {
    /// The teardown check: no test ends with a run left `running` (its components are
    /// gone by now, so such a run would be held by nobody until a lease ran out).
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        let running = if std::thread::panicking() {
            Vec::new()
        } else {
            left_running(self.url.clone())
        };
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        blocking(async move {
            let _ = admin_client().await.batch_execute(&drop).await;
        });
        assert!(
            running.is_empty(),
            "the test ended with runs left running: {running:?}"
        );
    }
}

/// One running `jobcenter` process, killed when dropped.
pub struct Component {
    child: Child,
    pub base_url: Option<String>,
    pub workdir: tempfile::TempDir,
}

impl Component {
    /// Starts `jobcenter <subcommand>` against `db`; for api/all waits until it listens.
    pub fn start(subcommand: &str, db: &TestDb, extra_env: &[(&str, &str)]) -> Component {
        Component::start_as(subcommand, db, extra_env, None)
    }

    /// As [`Component::start`], as the user `(uid, gid)` when given (its working
    /// directory handed to that user).
    pub fn start_as(
        subcommand: &str,
        db: &TestDb,
        extra_env: &[(&str, &str)],
        user: Option<(u32, u32)>,
    ) -> Component {
        let workdir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(workdir.path().join("stderr.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_jobcenter"));
        command
            .arg(subcommand)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("JOBCENTER_DATABASE_URL", &db.url)
            .env("JOBCENTER_LISTEN", "127.0.0.1:0")
            .env("JOBCENTER_JWT_SECRET", JWT_SECRET)
            .env(
                "JOBCENTER_BOOTSTRAP_ADMIN",
                format!("{ADMIN_USER}:{ADMIN_PASSWORD}"),
            )
            .env("JOBCENTER_WORKER_WORKDIR", workdir.path().join("runs"))
            .env("JOBCENTER_SCHEDULER_TICK_MS", "50")
            .env(
                "JOBCENTER_ARTIFACTS",
                format!("file://{}", workdir.path().join("artifacts").display()),
            )
            .envs(extra_env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if let Some((uid, gid)) = user {
            use std::os::unix::process::CommandExt;
            std::os::unix::fs::chown(workdir.path(), Some(uid), Some(gid)).unwrap();
            command.uid(uid).gid(gid);
        }
        let mut child = command.spawn().expect("the jobcenter binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("jobcenter api listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let mut component = Component {
            child,
            base_url: None,
            workdir,
        };
        if subcommand == "api" || subcommand == "all" {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(url) => component.base_url = Some(url),
                Err(_) => panic!(
                    "{subcommand} did not start listening:\n{}",
                    component.stderr()
                ),
            }
        }
        component
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.workdir.path().join("stderr.log")).unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as an orchestrator stopping the process would; does not wait.
    pub fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child's pid touches no memory.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }

    /// The exit status once the process has exited by itself, polled up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 25 ms until it returns Some, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An HTTP client of the API, logged in as someone.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

/// A response: status, content type and body (JSON when it parses, else a string).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub fn text(&self) -> &str {
        self.body.as_str().unwrap_or_default()
    }

    /// Asserts a problem+json answer with `status`, and returns its `field`.
    pub fn assert_problem(&self, status: u16) -> Option<String> {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{self:?}"
        );
        self.body["field"].as_str().map(str::to_owned)
    }
}

impl Api {
    pub fn new(component: &Component) -> Api {
        Api {
            base: component
                .base_url
                .clone()
                .expect("component serves the API"),
            http: reqwest::Client::new(),
            token: None,
        }
    }

    pub async fn login_admin(component: &Component) -> Api {
        Api::login(component, ADMIN_USER, ADMIN_PASSWORD).await
    }

    pub async fn login(component: &Component, username: &str, password: &str) -> Api {
        let mut api = Api::new(component);
        let reply = api
            .post(
                "/api/v1/auth/login",
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        api.token = Some(reply.body["access_token"].as_str().unwrap().to_string());
        api
    }

    /// Sends a request built by the caller, with this client's token.
    pub async fn send_request(&self, request: reqwest::RequestBuilder) -> Reply {
        self.send(request).await
    }

    /// The same client with another bearer token (or none).
    pub fn with_token(&self, token: Option<&str>) -> Api {
        Api {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    /// Creates an account as this (admin) client, returns its id.
    pub async fn create_user(&self, username: &str, password: &str, role: &str) -> String {
        let reply = self
            .post(
                "/api/v1/users",
                json!({"username": username, "password": password, "role": role}),
            )
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.body["id"].as_str().unwrap().to_string()
    }

    /// Any request: method, path, extra headers and an optional raw body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            content_type,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: &'static str) -> Reply {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        self.send(request).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Creates a project and returns its id.
    pub async fn create_project(&self, name: &str) -> String {
        let reply = self.post("/api/v1/projects", json!({"name": name})).await;
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.body["id"].as_str().unwrap().to_string()
    }

    /// Creates a job from `body` in `project` and returns the job.
    pub async fn create_job(&self, project: &str, body: Value) -> Value {
        let reply = self
            .post(&format!("/api/v1/projects/{project}/jobs"), body)
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.body
    }

    /// Triggers a run and returns its id.
    pub async fn trigger(&self, job: &str, input: Value) -> String {
        let reply = self
            .post(&format!("/api/v1/jobs/{job}/runs"), json!({"input": input}))
            .await;
        assert_eq!(reply.status, 202, "{reply:?}");
        reply.body["id"].as_str().unwrap().to_string()
    }

    /// Waits until the run is running and returns it.
    pub async fn wait_running(&self, run: &str) -> Value {
        eventually(RUN_WAIT, "the run to start", || async {
            let reply = self.get(&format!("/api/v1/runs/{run}")).await;
            (reply.body["state"] == "running").then_some(reply.body)
        })
        .await
    }

    /// Waits until the run reaches a final state and returns it.
    pub async fn wait_finished(&self, run: &str) -> Value {
        eventually(RUN_WAIT, "the run to finish", || async {
            let reply = self.get(&format!("/api/v1/runs/{run}")).await;
            let state = reply.body["state"].as_str().unwrap_or("").to_string();
            (state != "queued" && state != "running").then_some(reply.body)
        })
        .await
    }

    /// Cancels every unfinished run of `job` and waits until each has ended: a test that
    /// leaves runs running fails the teardown check.
    pub async fn cancel_all(&self, job: &str) {
        for run in self.runs_of(job).await {
            if ["queued", "running"].contains(&run["state"].as_str().unwrap_or_default()) {
                let id = run["id"].as_str().unwrap();
                let reply = self
                    .post(&format!("/api/v1/runs/{id}/cancel"), json!({}))
                    .await;
                assert!(reply.status < 300 || reply.status == 409, "{reply:?}");
                self.wait_finished(id).await;
            }
        }
    }

    /// Every run of a job (up to 200), newest first.
    pub async fn runs_of(&self, job: &str) -> Vec<Value> {
        let reply = self
            .get(&format!("/api/v1/jobs/{job}/runs?limit=200"))
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body["items"].as_array().unwrap().clone()
    }
}

/// Where a test's artifacts live: the local directory store or the real S3-compatible
/// server `make test` starts (its endpoint, bucket and keys come from
/// `JOBCENTER_TEST_S3_ENDPOINT`, `JOBCENTER_TEST_S3_BUCKET`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`). Each test gets its own directory or key prefix.
#[derive(Debug, Clone)]
pub struct ArtifactBackend {
    pub location: String,
    /// The local store's directory, removed with the last clone.
    _dir: Option<std::sync::Arc<tempfile::TempDir>>,
    pub env: Vec<(String, String)>,
    pub s3: jobcenter_core::artifacts::S3Settings,
}

impl ArtifactBackend {
    pub fn local() -> ArtifactBackend {
        let dir = tempfile::Builder::new()
            .prefix("jc-artifacts-")
            .tempdir()
            .unwrap();
        let location = format!("file://{}", dir.path().display());
        ArtifactBackend {
            env: vec![("JOBCENTER_ARTIFACTS".into(), location.clone())],
            location,
            _dir: Some(std::sync::Arc::new(dir)),
            s3: Default::default(),
        }
    }

    pub fn s3() -> ArtifactBackend {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the tests with `make test`, which starts an S3-compatible server")
            })
        };
        let endpoint = var("JOBCENTER_TEST_S3_ENDPOINT");
        let location = format!(
            "s3://{}/test-{}",
            var("JOBCENTER_TEST_S3_BUCKET"),
            uuid::Uuid::new_v4().simple()
        );
        ArtifactBackend {
            env: vec![
                ("JOBCENTER_ARTIFACTS".into(), location.clone()),
                ("JOBCENTER_S3_ENDPOINT".into(), endpoint.clone()),
                ("JOBCENTER_S3_REGION".into(), "us-east-1".into()),
                ("AWS_ACCESS_KEY_ID".into(), var("AWS_ACCESS_KEY_ID")),
                ("AWS_SECRET_ACCESS_KEY".into(), var("AWS_SECRET_ACCESS_KEY")),
            ],
            location,
            _dir: None,
            s3: jobcenter_core::artifacts::S3Settings {
                endpoint: Some(endpoint),
                credentials: None,
                region: "us-east-1".into(),
            },
        }
    }

    pub fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// Every object key the store holds for this test.
    pub async fn object_keys(&self) -> Vec<String> {
        // For S3 the test process uses the same AWS_* credentials, from its environment.
        let store = jobcenter_core::artifacts::ArtifactStore::open(&self.location, &self.s3)
            .await
            .expect("the test's store opens");
        store
            .list("", None, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.key)
            .collect()
    }
}

/// Declares `$name::local` and `$name::s3`: the async test `$name(backend)` run once
/// against each artifact store.
#[macro_export]
macro_rules! on_both_stores {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn local() {
                super::$name($crate::harness::ArtifactBackend::local()).await
            }
            #[tokio::test]
            async fn s3() {
                super::$name($crate::harness::ArtifactBackend::s3()).await
            }
        }
    };
}
