//! A leader lost to the network is replaced within 30 s, and no tick is missing or
//! doubled (issue 26, item 3).
//!
//! The leader runs in a network namespace of its own, joined to the host by a veth pair,
//! and reaches PostgreSQL (which listens on 127.0.0.1 only) through a plain TCP relay
//! in this process on the host's end of the veth. Taking the host's end down cuts the
//! leader off mid-run: its packets go nowhere and nothing is closed. The relay's own
//! connections to the server stay healthy, as a proxy's or a session pooler's would:
//! the server's keepalives never notice the cut, and only a standby ending the silent
//! session frees the lock. Needs root (the test makes the namespace and the veth).
//!
//! The job fires every second with `catch_up: each`: every tick late by less than the
//! misfire threshold (60 s) fires as scheduled anyway, so "no tick missing" means one
//! run for each second from the first tick to the last.

use crate::harness::{eventually, Api, Component, TestDb, ADMIN_PASSWORD, ADMIN_USER, JWT_SECRET};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Runs `ip ARGS`, panicking with its output when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace joined to the host by a veth pair; deleted when dropped (the veth
/// goes with it).
struct Netns {
    name: String,
    host_dev: String,
    host_ip: String,
}

impl Netns {
    fn create() -> Netns {
        // Names and a /30 of their own per test process, so parallel runs do not meet.
        let id = std::process::id();
        let n = id % 16_000;
        let (c, d) = (n / 64, (n % 64) * 4);
        let netns = Netns {
            name: format!("jcln{id}"),
            host_dev: format!("jcl{id}h"),
            host_ip: format!("10.77.{c}.{}", d + 1),
        };
        let ns_dev = format!("jcl{id}n");
        let ns_ip = format!("10.77.{c}.{}/30", d + 2);
        ip(&["netns", "add", &netns.name]);
        ip(&[
            "link",
            "add",
            &netns.host_dev,
            "type",
            "veth",
            "peer",
            "name",
            &ns_dev,
        ]);
        ip(&["link", "set", &ns_dev, "netns", &netns.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", netns.host_ip),
            "dev",
            &netns.host_dev,
        ]);
        ip(&["link", "set", &netns.host_dev, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &netns.name, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &ns_ip, "dev", &ns_dev]);
        inside(&["link", "set", &ns_dev, "up"]);
        inside(&["link", "set", "lo", "up"]);
        netns
    }

    /// Takes the host's end of the veth down or up.
    fn link(&self, up: bool) {
        ip(&[
            "link",
            "set",
            &self.host_dev,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_dev])
            .stderr(Stdio::null())
            .status();
    }
}

/// Relays each connection accepted on `listen` to `upstream`, byte for byte, until
/// either side closes; no timeout of its own. Returns the address it listens on.
async fn relay(listen: &str, upstream: String) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind((listen, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.split();
                let (mut server_read, mut server_write) = server.split();
                tokio::select! {
                    _ = tokio::io::copy(&mut client_read, &mut server_write) => {}
                    _ = tokio::io::copy(&mut server_read, &mut client_write) => {}
                }
            });
        }
    });
    addr
}

/// `jobcenter scheduler` inside the namespace, killed when dropped.
struct Isolated {
    child: Child,
    workdir: tempfile::TempDir,
}

impl Isolated {
    fn start(netns: &Netns, database_url: &str) -> Isolated {
        let workdir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(workdir.path().join("stderr.log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &netns.name,
                env!("CARGO_BIN_EXE_jobcenter"),
            ])
            .arg("scheduler")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("JOBCENTER_DATABASE_URL", database_url)
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
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("ip netns exec starts");
        Isolated { child, workdir }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.workdir.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_by_the_network_is_replaced_within_30_s() {
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "tick", "catch_up": "each",
                   "target": {"kind": "command", "command": ["true"]},
                   "schedule": {"kind": "interval", "every_seconds": 1}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap().to_string();
    let ticks = || async { api.runs_of(&job_id).await.len() };
    let latest = || async {
        let runs = api.runs_of(&job_id).await;
        let instants = runs.iter().map(|r| {
            r["scheduled_for"]
                .as_str()
                .unwrap()
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
        });
        instants.max().unwrap_or_default()
    };

    // The lock connection asks the server for keepalives of its own.
    let probe = jobcenter_sql::leadership::connect(&db.url, "probe", Duration::from_secs(10))
        .await
        .unwrap();
    for (setting, value) in [
        ("tcp_keepalives_idle", "5"),
        ("tcp_keepalives_interval", "2"),
        ("tcp_keepalives_count", "3"),
        ("tcp_user_timeout", "10000"),
    ] {
        let shown: String = probe
            .query_one(&format!("SHOW {setting}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(shown, value, "{setting}");
    }
    drop(probe);

    // The leader, cut off later, reaches the server through the veth and the relay.
    let netns = Netns::create();
    let config = tokio_postgres::Config::from_str(&db.url).unwrap();
    let server = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => format!("{host}:{}", config.get_ports()[0]),
        other => panic!("the test database is not on TCP: {other:?}"),
    };
    let relayed = relay(&netns.host_ip, server.clone()).await;
    assert!(db.url.contains(&server), "{}", db.url);
    let leader_url = db.url.replacen(&server, &relayed.to_string(), 1);
    let leader = Isolated::start(&netns, &leader_url);
    eventually(
        Duration::from_secs(30),
        "the isolated leader to lead",
        || async {
            leader
                .stderr()
                .contains("became the scheduling leader")
                .then_some(())
        },
    )
    .await;
    let standby = Component::start("scheduler", &db, &[]);
    eventually(Duration::from_secs(30), "ticks", || async {
        (ticks().await >= 4).then_some(())
    })
    .await;
    let holder: String = db
        .client()
        .await
        .query_one(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)
             WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        holder.ends_with(&format!(":{}", leader.child.id())),
        "the isolated scheduler leads: {holder}"
    );
    assert!(!standby.stderr().contains("became the scheduling leader"));

    netns.link(false);
    let cut = Instant::now();
    let before = ticks().await;
    let took_over = eventually(Duration::from_secs(30), "a standby to fire", || async {
        (ticks().await > before).then(|| cut.elapsed())
    })
    .await;
    eprintln!("a standby fired {took_over:?} after the cut");
    let standby_log = standby.stderr();
    assert!(
        standby_log.contains("ended the session of a silent leader"),
        "{standby_log}"
    );
    assert!(standby_log.contains("became the scheduling leader"));
    // It fires the ticks of the gap (late, as scheduled), then keeps time.
    eventually(
        Duration::from_secs(30),
        "the new leader to catch up",
        || async { caught_up(&latest().await).then_some(()) },
    )
    .await;
    eprintln!("caught up {:?} after the cut", cut.elapsed());

    // The link comes back: the old leader, whose session is gone, returns as a standby
    // (a new session of its own, trying the lock) and fires nothing.
    netns.link(true);
    let healed = Instant::now();
    eventually(
        Duration::from_secs(60),
        "the old leader to come back",
        || async {
            let back = db
                .client()
                .await
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                    &[&holder],
                )
                .await
                .unwrap()
                .get::<_, i64>(0);
            (back > 0).then_some(())
        },
    )
    .await;
    eprintln!(
        "the old leader came back {:?} after the link",
        healed.elapsed()
    );
    let back = latest().await;
    eventually(Duration::from_secs(30), "three more ticks", || async {
        let now = latest().await;
        (now - back >= chrono::Duration::seconds(3) && caught_up(&now)).then_some(())
    })
    .await;
    assert_eq!(
        leader
            .stderr()
            .matches("became the scheduling leader")
            .count(),
        1,
        "{}",
        leader.stderr()
    );

    let mut instants: Vec<chrono::DateTime<chrono::Utc>> = api
        .runs_of(&job_id)
        .await
        .iter()
        .map(|r| r["scheduled_for"].as_str().unwrap().parse().unwrap())
        .collect();
    instants.sort();
    for pair in instants.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]).num_milliseconds(),
            1000,
            "a tick missing or doubled: {instants:?}"
        );
    }
    assert!(caught_up(instants.last().unwrap()), "{instants:?}");
    assert!(took_over < Duration::from_secs(30), "{took_over:?}");
}

/// True when the latest tick fired is that of the past second (or the coming one,
/// fired ahead).
fn caught_up(latest: &chrono::DateTime<chrono::Utc>) -> bool {
    chrono::Utc::now() - *latest < chrono::Duration::milliseconds(1500)
}

/// A transaction left open on a job's row (as a leader cut off mid-firing leaves one:
/// its server session lives on) keeps the job from firing, since the leader skips
/// locked jobs; the leader ends it once it has been idle for the silence limit, and the
/// job's late ticks fire as scheduled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_left_open_on_a_job_is_ended_by_the_leader() {
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "tick", "catch_up": "each",
                   "target": {"kind": "command", "command": ["true"]},
                   "schedule": {"kind": "interval", "every_seconds": 1}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap().to_string();
    let scheduler = Component::start("scheduler", &db, &[]);
    let ticks = || async { api.runs_of(&job_id).await.len() };
    eventually(Duration::from_secs(30), "ticks", || async {
        (ticks().await >= 2).then_some(())
    })
    .await;
    let stale = db.client().await;
    stale
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM jobs WHERE id = '{job_id}' FOR UPDATE"
        ))
        .await
        .unwrap();
    let opened = Instant::now();
    let held = ticks().await;
    // The locked job does not fire (a tick fired ahead just before may still come in).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!stale.is_closed());
    assert!(ticks().await <= held + 1, "the job fired while locked");
    // A statement of ours would make the session active again: watch its connection.
    let ended = eventually(
        Duration::from_secs(30),
        "the stale session to end",
        || async { stale.is_closed().then(|| opened.elapsed()) },
    )
    .await;
    eprintln!("the open transaction was ended after {ended:?}");
    assert!(ended >= Duration::from_secs(10), "{ended:?}");
    assert!(
        scheduler
            .stderr()
            .contains("ended a session idle in a transaction that held jobs"),
        "{}",
        scheduler.stderr()
    );
    let caught = eventually(Duration::from_secs(30), "the job to catch up", || async {
        let runs = api.runs_of(&job_id).await;
        let mut instants: Vec<chrono::DateTime<chrono::Utc>> = runs
            .iter()
            .map(|r| r["scheduled_for"].as_str().unwrap().parse().unwrap())
            .collect();
        instants.sort();
        caught_up(instants.last().unwrap()).then_some(instants)
    })
    .await;
    for pair in caught.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]).num_milliseconds(),
            1000,
            "a tick missing or doubled: {caught:?}"
        );
    }
}
