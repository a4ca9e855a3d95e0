//! Chaos: runs triggered while a worker is SIGKILLed every 10 s and the leading scheduler
//! every 30 s (two cadences of their own). Counts lost runs (a chain with no succeeded
//! attempt) and runs executed twice (a re-run of a cut-off attempt is a new run record and
//! does not count), and measures the longest recovery: for a worker kill, the kill to the
//! start of the next attempt of a run the worker held; for a leader kill, the kill to the
//! first tick of the every-second job fired after it (and the gap between the ticks around
//! it). Slow, so ignored by default and run by `make chaos`:
//! `cargo test --test e2e chaos -- --ignored --nocapture` (JOBCENTER_CHAOS_RUNS=N, default
//! 400; JOBCENTER_CHAOS_RATE=runs per second triggered, default 40).

use crate::harness::{eventually, Api, Component, TestDb};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const QUICK: &[(&str, &str)] = &[
    ("JOBCENTER_HEARTBEAT_SECONDS", "1"),
    ("JOBCENTER_LEASE_SECONDS", "3"),
    ("JOBCENTER_WORKER_POLL_MS", "100"),
    ("JOBCENTER_WORKER_CAPACITY", "8"),
];

/// A worker SIGKILLed this often.
const WORKER_KILL_EVERY: Duration = Duration::from_secs(10);
/// The leading scheduler SIGKILLed this often.
const LEADER_KILL_EVERY: Duration = Duration::from_secs(30);
/// Concurrent API clients triggering runs.
const CLIENTS: usize = 4;

/// A small deterministic generator (xorshift), seeded from the clock.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// The worker id a worker logged when it started (the one its runs carry).
fn worker_id(worker: &Component) -> Option<String> {
    let log = worker.stderr();
    let line = log.lines().find(|l| l.contains("worker started"))?;
    line.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .find(|w| w.len() == 36 && w.matches('-').count() == 4)
        .map(str::to_string)
}

fn seconds(d: chrono::Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow chaos measurement; run with --ignored --nocapture (make chaos)"]
async fn chaos_kills_lose_and_double_nothing() {
    let runs: usize = env_number("JOBCENTER_CHAOS_RUNS", 400);
    let rate: f64 = env_number("JOBCENTER_CHAOS_RATE", 40.0);
    let marks = tempfile::tempdir().unwrap();
    let db = TestDb::new();
    let api_node = Component::start("api", &db, QUICK);
    let api = Api::login_admin(&api_node).await;
    let mut schedulers: Vec<Component> = (0..2)
        .map(|_| Component::start("scheduler", &db, QUICK))
        .collect();
    // Runs leave their marks in the test's directory: outside a sandbox's view.
    let marking: Vec<(&str, &str)> = QUICK
        .iter()
        .copied()
        .chain([("JOBCENTER_SANDBOX", "off")])
        .collect();
    let mut workers: Vec<Component> = (0..3)
        .map(|_| Component::start("worker", &db, &marking))
        .collect();
    let project = api.create_project("chaos").await;
    let script = r#"echo x >> "$MARK_DIR/$JOBCENTER_RUN_ID"; sleep 0.05"#;
    let job = api
        .create_job(
            &project,
            json!({"name": "work", "max_attempts": 20, "env": {"MARK_DIR": marks.path().to_str().unwrap()},
                   "target": {"kind": "command", "command": ["sh", "-c", script]}}),
        )
        .await;
    let ticker = api
        .create_job(
            &project,
            json!({"name": "tick", "target": {"kind": "command", "command": ["true"]},
                   "schedule": {"kind": "cron", "expression": "* * * * * *"}}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap().to_string();
    // CLIENTS clients, each triggering its share of the runs at rate / CLIENTS per second.
    let every = Duration::from_secs_f64(CLIENTS as f64 / rate);
    let triggers: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let api = api.clone();
            let job_id = job_id.clone();
            tokio::spawn(async move {
                let mut pace = tokio::time::interval_at(
                    tokio::time::Instant::now() + every.mul_f64(client as f64 / CLIENTS as f64),
                    every,
                );
                pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut ids = Vec::new();
                for i in (client..runs).step_by(CLIENTS) {
                    pace.tick().await;
                    ids.push(api.trigger(&job_id, json!({"n": i})).await);
                }
                ids
            })
        })
        .collect();
    let mut dice = Dice(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1,
    );
    // (instant, worker id) of each worker kill; instant of each leader kill.
    let mut worker_kills: Vec<(DateTime<Utc>, Option<String>)> = Vec::new();
    let mut leader_kills: Vec<DateTime<Utc>> = Vec::new();
    let started = Instant::now();
    let leads = |c: &Component| {
        let log = c.stderr();
        log.matches("became the scheduling leader").count()
            > log.matches("lost scheduling leadership").count()
    };
    let (mut next_worker_kill, mut next_leader_kill) =
        (started + WORKER_KILL_EVERY, started + LEADER_KILL_EVERY);
    while !triggers.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = Instant::now();
        if now >= next_worker_kill {
            next_worker_kill += WORKER_KILL_EVERY;
            let i = dice.roll(workers.len() as u64) as usize;
            let id = worker_id(&workers[i]);
            workers[i].kill();
            worker_kills.push((Utc::now(), id));
            workers[i] = Component::start("worker", &db, &marking);
        }
        if now >= next_leader_kill {
            next_leader_kill += LEADER_KILL_EVERY;
            let i = schedulers
                .iter()
                .position(leads)
                .unwrap_or(dice.roll(schedulers.len() as u64) as usize);
            schedulers[i].kill();
            leader_kills.push(Utc::now());
            schedulers[i] = Component::start("scheduler", &db, QUICK);
        }
    }
    let mut ids = Vec::new();
    for trigger in triggers {
        ids.extend(trigger.await.unwrap());
    }
    let chaos_for = started.elapsed();
    // Every chain ends: its last attempt is final.
    eventually(Duration::from_secs(120), "every run to finish", || async {
        let open = db
            .count("SELECT count(*) FROM runs WHERE state IN ('queued', 'running') AND trigger = 'manual'")
            .await;
        (open == 0).then_some(())
    })
    .await;
    let drained_after = started.elapsed();
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT id::text, coalesce(first_run_id, id)::text, state::text, coalesce(error, ''),
                    attempt, coalesce(worker_id::text, ''), started_at
             FROM runs WHERE trigger = 'manual'",
            &[],
        )
        .await
        .unwrap();
    let mut succeeded_per_chain: HashMap<String, usize> = HashMap::new();
    // (chain, attempt) → started_at, to find the attempt that followed a cut-off one.
    let mut attempt_started: HashMap<(String, i32), Option<DateTime<Utc>>> = HashMap::new();
    // (worker id, chain, attempt) of each attempt cut off by a lost worker.
    let mut cut_offs: Vec<(String, String, i32)> = Vec::new();
    let mut executed_twice = 0;
    for row in &rows {
        let (id, chain, state, error): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let (attempt, worker): (i32, String) = (row.get(4), row.get(5));
        attempt_started.insert((chain.clone(), attempt), row.get(6));
        if error.contains("worker lost") {
            cut_offs.push((worker, chain.clone(), attempt));
        }
        let chain_count = succeeded_per_chain.entry(chain).or_default();
        if state == "succeeded" {
            *chain_count += 1;
        }
        let executions = std::fs::read_to_string(marks.path().join(&id))
            .map(|m| m.lines().count())
            .unwrap_or(0);
        if executions > 1 {
            executed_twice += 1;
        }
    }
    let lost = ids
        .iter()
        .filter(|id| succeeded_per_chain.get(*id).copied().unwrap_or(0) == 0)
        .count();
    let doubled_outcomes = succeeded_per_chain.values().filter(|n| **n > 1).count();
    // Worker recovery: a kill → the start of the next attempt of each run the worker held.
    let mut worker_recovery: Option<f64> = None;
    let mut rescued = 0;
    for (killed_at, killed) in &worker_kills {
        let Some(killed) = killed else { continue };
        for (_, chain, attempt) in cut_offs.iter().filter(|c| &c.0 == killed) {
            if let Some(Some(next)) = attempt_started.get(&(chain.clone(), attempt + 1)) {
                rescued += 1;
                let took = seconds(*next - *killed_at);
                worker_recovery = Some(worker_recovery.map_or(took, |w: f64| w.max(took)));
            }
        }
    }
    let unidentified = worker_kills.iter().filter(|(_, id)| id.is_none()).count();
    // Ticks of the every-second job over the whole test: when due, when fired.
    let ticks: Vec<(DateTime<Utc>, DateTime<Utc>)> = client
        .query(
            "SELECT scheduled_for, queued_at FROM runs WHERE job_id = $1::text::uuid AND attempt = 1
             ORDER BY scheduled_for",
            &[&ticker["id"].as_str().unwrap()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let doubled_ticks = ticks.windows(2).filter(|w| w[0].0 == w[1].0).count();
    let missing_ticks: i64 = ticks
        .windows(2)
        .map(|w| ((w[1].0 - w[0].0).num_seconds() - 1).max(0))
        .sum();
    // Leader recovery: a kill → the first tick fired after it; and the gap between the
    // ticks fired on either side of it.
    let mut fired: Vec<DateTime<Utc>> = ticks.iter().map(|t| t.1).collect();
    fired.sort();
    let (mut leader_recovery, mut leader_gap): (Option<f64>, Option<f64>) = (None, None);
    for killed_at in &leader_kills {
        let after = fired.partition_point(|t| t <= killed_at);
        if after == fired.len() {
            continue;
        }
        let took = seconds(fired[after] - *killed_at);
        leader_recovery = Some(leader_recovery.map_or(took, |l: f64| l.max(took)));
        if after > 0 {
            let gap = seconds(fired[after] - fired[after - 1]);
            leader_gap = Some(leader_gap.map_or(gap, |l: f64| l.max(gap)));
        }
    }
    let shown = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{s:.2} s"));
    println!(
        "chaos: {} runs triggered ({CLIENTS} clients, {rate}/s) over {:.1} s, all finished \
         after {:.1} s\n\
         chaos: {} worker SIGKILLs (every {} s; {unidentified} with no worker id), {} leader \
         SIGKILLs (every {} s)\n\
         chaos: lost {lost}, doubled {executed_twice} (run records executed twice), \
         {doubled_outcomes} chains succeeded twice; {} cut-off attempts re-run\n\
         chaos: longest recovery: worker kill → next attempt started {} (over {rescued} \
         rescued runs); leader kill → first tick of the new leader {} (longest gap between \
         ticks around a kill {})\n\
         chaos: every-second ticks: {} fired, {missing_ticks} missing, {doubled_ticks} doubled",
        ids.len(),
        chaos_for.as_secs_f64(),
        drained_after.as_secs_f64(),
        worker_kills.len(),
        WORKER_KILL_EVERY.as_secs(),
        leader_kills.len(),
        LEADER_KILL_EVERY.as_secs(),
        cut_offs.len(),
        shown(worker_recovery),
        shown(leader_recovery),
        shown(leader_gap),
        ticks.len()
    );
    assert_eq!(ids.len(), runs, "runs triggered");
    assert_eq!(lost, 0, "lost runs");
    assert_eq!(executed_twice, 0, "run records executed twice");
    assert_eq!(doubled_outcomes, 0, "chains that succeeded twice");
    assert_eq!(doubled_ticks, 0, "ticks fired twice");
    assert_eq!(missing_ticks, 0, "ticks missed");
}
