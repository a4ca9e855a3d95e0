//! A leader whose lock connection silently hangs (its server process is frozen with
//! SIGSTOP, as a network cut would look) stops firing within 20 s; once the connection
//! is gone, leadership comes back and no tick is missing or doubled.

use crate::harness::{eventually, Api, Component, TestDb};
use crate::private_postgres::PrivatePostgres;
use serde_json::json;
use std::time::{Duration, Instant};

/// Resumes the frozen server process whatever happens to the test.
struct Frozen(i32);

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a pid of our private cluster; touches no memory.
        unsafe {
            libc::kill(self.0, libc::SIGCONT);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_connection_hangs_stops_firing_and_no_tick_is_doubled() {
    let pg = PrivatePostgres::start();
    let db = TestDb::on_server(pg.url());
    let api_node = Component::start("api", &db, &[]);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "tick", "target": {"kind": "command", "command": ["true"]},
                   "schedule": {"kind": "cron", "expression": "* * * * * *"}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap().to_string();
    let leader = Component::start("scheduler", &db, &[]);
    let ticks = || async { api.runs_of(&job_id).await.len() };
    eventually(Duration::from_secs(30), "ticks", || async {
        (ticks().await >= 3).then_some(())
    })
    .await;
    let pid: i32 = db
        .client()
        .await
        .query_one(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // SAFETY: as in Frozen::drop.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let frozen = Frozen(pid);
    let cut = Instant::now();
    // Firing stops: the count holds still for 3 s.
    let stopped_after = eventually(Duration::from_secs(25), "firing to stop", || async {
        let before = ticks().await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        (ticks().await == before).then(|| cut.elapsed() - Duration::from_secs(3))
    })
    .await;
    assert!(stopped_after < Duration::from_secs(20), "{stopped_after:?}");
    assert!(
        leader.stderr().contains("did not answer in time"),
        "{}",
        leader.stderr()
    );
    drop(frozen);
    let resumed = ticks().await;
    eventually(Duration::from_secs(30), "firing to resume", || async {
        (ticks().await >= resumed + 3).then_some(())
    })
    .await;
    let mut instants: Vec<chrono::DateTime<chrono::Utc>> = api
        .runs_of(&job_id)
        .await
        .iter()
        .map(|r| r["scheduled_for"].as_str().unwrap().parse().unwrap())
        .collect();
    instants.sort();
    for pair in instants.windows(2) {
        assert_eq!((pair[1] - pair[0]).num_seconds(), 1, "{instants:?}");
    }
}
