//! The system under test: a database of its own per scenario (created on the bench
//! cluster and migrated by `jobcenter migrate`), `jobcenter` components started as
//! separate processes against it, and an HTTP client of the API.

use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ADMIN_USER: &str = "bench";
pub const ADMIN_PASSWORD: &str = "bench-password-1";
const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";

/// Where the benchmark finds its programs and the bench cluster.
#[derive(Debug, Clone)]
pub struct Setup {
    pub pg_host: String,
    pub pg_port: u16,
    pub jobcenter: PathBuf,
    pub workdir: PathBuf,
}

impl Setup {
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@{}:{}/{database}",
            self.pg_host, self.pg_port
        )
    }

    /// Drops and creates `name`, then applies the migrations with `jobcenter migrate`.
    pub async fn fresh_database(&self, name: &str) -> anyhow::Result<String> {
        let admin = connect(&self.url("postgres")).await?;
        // Two calls: a multi-statement string would be one transaction, which
        // DROP/CREATE DATABASE refuse.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let url = self.url(name);
        let output = Command::new(&self.jobcenter)
            .arg("migrate")
            .env("JOBCENTER_DATABASE_URL", &url)
            .output()
            .context("running jobcenter migrate")?;
        if !output.status.success() {
            bail!(
                "jobcenter migrate failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(url)
    }

    pub async fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        let admin = connect(&self.url("postgres")).await?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
        Ok(())
    }
}

pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// One `jobcenter <subcommand>` process, killed when dropped.
pub struct Component {
    child: Child,
    pub base_url: Option<String>,
    pub stderr_path: PathBuf,
}

impl Component {
    /// Starts the component; for `api` waits until it prints where it listens.
    pub fn start(
        setup: &Setup,
        subcommand: &str,
        database_url: &str,
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<Component> {
        let dir = setup
            .workdir
            .join(format!("{subcommand}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let stderr_path = dir.join("stderr.log");
        let mut child = Command::new(&setup.jobcenter)
            .arg(subcommand)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("JOBCENTER_DATABASE_URL", database_url)
            .env("JOBCENTER_LISTEN", "127.0.0.1:0")
            .env("JOBCENTER_JWT_SECRET", JWT_SECRET)
            .env(
                "JOBCENTER_BOOTSTRAP_ADMIN",
                format!("{ADMIN_USER}:{ADMIN_PASSWORD}"),
            )
            .env("JOBCENTER_WORKER_WORKDIR", dir.join("runs"))
            .env(
                "JOBCENTER_ARTIFACTS",
                format!("file://{}", dir.join("artifacts").display()),
            )
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path)?)
            .spawn()
            .with_context(|| format!("starting {}", setup.jobcenter.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
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
            stderr_path,
        };
        if subcommand == "api" || subcommand == "all" {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(url) => component.base_url = Some(url),
                Err(_) => bail!(
                    "jobcenter {subcommand} did not start listening; see {}",
                    component.stderr_path.display()
                ),
            }
        }
        Ok(component)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A logged-in client of the API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

impl Api {
    pub async fn login(api: &Component) -> anyhow::Result<Api> {
        let base = api
            .base_url
            .clone()
            .context("the component serves the API")?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?;
        let reply: Value = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = reply["access_token"]
            .as_str()
            .context("login answers an access_token")?
            .to_string();
        Ok(Api { base, token, http })
    }

    /// POSTs JSON and returns the status and the body.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// Sends a request with this client's token; returns the status and the JSON body
    /// (null when there is none).
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let response = request.bearer_auth(&self.token).send().await?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn create(&self, path: &str, body: &Value) -> anyhow::Result<String> {
        let (status, reply) = self.post(path, body).await?;
        if status != 201 {
            bail!("POST {path} answered {status}: {reply}");
        }
        Ok(reply["id"].as_str().context("an id")?.to_string())
    }

    pub async fn create_project(&self, name: &str) -> anyhow::Result<String> {
        self.create("/api/v1/projects", &json!({ "name": name }))
            .await
    }

    /// A manual job with an HTTP target: GET `url`.
    pub async fn create_http_job(
        &self,
        project: &str,
        name: &str,
        url: &str,
    ) -> anyhow::Result<String> {
        let body = json!({
            "name": name,
            "target": {"kind": "http", "url": url},
            "schedule": {"kind": "manual"},
        });
        self.create(&format!("/api/v1/projects/{project}/jobs"), &body)
            .await
    }

    /// A job with a command target and the given schedule (manual when None).
    pub async fn create_job(
        &self,
        project: &str,
        name: &str,
        command: &[&str],
        schedule: Option<Value>,
    ) -> anyhow::Result<String> {
        let body = json!({
            "name": name,
            "target": {"kind": "command", "command": command},
            "schedule": schedule.unwrap_or_else(|| json!({"kind": "manual"})),
        });
        self.create(&format!("/api/v1/projects/{project}/jobs"), &body)
            .await
    }

    /// Uploads a new version of an artifact; returns the status and the body.
    pub async fn put_artifact(
        &self,
        project: &str,
        name: &str,
        body: reqwest::Body,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}/api/v1/projects/{project}/artifacts/{name}", self.base);
        self.send(self.http.put(url).body(body)).await
    }

    /// Triggers a run; returns its id (None when the API did not accept it).
    pub async fn trigger(&self, job: &str) -> anyhow::Result<Option<String>> {
        let (status, reply) = self
            .post(&format!("/api/v1/jobs/{job}/runs"), &json!({"input": null}))
            .await?;
        Ok((status == 202)
            .then(|| reply["id"].as_str().map(str::to_string))
            .flatten())
    }
}

/// A path as a `&str` for command lines (the bench's paths are UTF-8).
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("bench paths are UTF-8")
}
