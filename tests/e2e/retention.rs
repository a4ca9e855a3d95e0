//! Retention (issue 26): finished runs past `JOBCENTER_RUN_RETENTION_DAYS` go in bounded
//! batches, whole chains at a time, each job keeping its newest; deleted jobs are purged
//! batch by batch too. Runs are written straight into the database (years of history in
//! seconds); the scheduler that deletes them is the real one.

use crate::harness::{eventually, Api, Component, TestDb};
use jobcenter_scheduler::retention::{CHAINS_PER_BATCH, RUNS_PER_STATEMENT};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The scheduler logs every batch (as JSON, to be read back).
const BATCH_LOGS: [(&str, &str); 2] = [
    ("JOBCENTER_LOG_FORMAT", "json"),
    ("RUST_LOG", "info,jobcenter_scheduler::retention=debug"),
];

/// Each "deleted a batch of runs" line of a JSON log: (what, runs, log chunks).
fn batches(log: &str) -> Vec<(String, i64, i64)> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == "deleted a batch of runs")
        .map(|entry| {
            let fields = &entry["fields"];
            (
                fields["what"].as_str().unwrap_or_default().to_string(),
                fields["runs"].as_i64().unwrap(),
                fields["log_chunks"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn command_job(api: &Api, project: &str, body: Value) -> Uuid {
    let mut body = body;
    body["target"] = json!({"kind": "command", "command": ["true"]});
    api.create_job(project, body).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The labels (`input`) of a job's runs, sorted.
async fn labels(db: &TestDb, job: Uuid) -> Vec<String> {
    let client = db.client().await;
    let rows = client
        .query("SELECT input #>> '{}' FROM runs WHERE job_id = $1", &[&job])
        .await
        .unwrap();
    let mut labels: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    labels.sort();
    labels
}

/// A finished (or, with no `finished_ago`, queued) run of `job` labelled `label`.
struct Row<'a> {
    label: &'a str,
    queued_ago: &'a str,
    finished_ago: Option<&'a str>,
    /// The first attempt this one retries (attempt 2).
    retries: Option<Uuid>,
}

async fn insert(db: &TestDb, job: Uuid, row: Row<'_>) -> Uuid {
    let client = db.client().await;
    client
        .query_one(
            "INSERT INTO runs (job_id, state, trigger, worker_group, input, attempt,
                               first_run_id, previous_run_id, queued_at, started_at,
                               finished_at)
             SELECT $1, CASE WHEN $5::text IS NULL THEN 'queued' ELSE 'failed' END::run_state,
                    'manual', 'default', to_jsonb($2::text),
                    CASE WHEN $3::uuid IS NULL THEN 1 ELSE 2 END, $3, $3,
                    now() - $4::text::interval,
                    CASE WHEN $5::text IS NOT NULL THEN now() - $4::text::interval END,
                    now() - $5::text::interval
             RETURNING id",
            &[
                &job,
                &row.label,
                &row.retries,
                &row.queued_ago,
                &row.finished_ago,
            ],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or_else(|e| panic!("inserting {}: {e}", row.label))
}

fn old(label: &str, days: u32) -> (String, String) {
    (label.to_string(), format!("{days} days"))
}

#[tokio::test]
async fn expired_runs_go_by_whole_chains_and_each_job_keeps_its_newest() {
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("history").await;
    let a = command_job(&api, &project, json!({"name": "a"})).await;
    let b = command_job(
        &api,
        &project,
        json!({"name": "b", "pause_after_failures": 5}),
    )
    .await;
    let c = command_job(&api, &project, json!({"name": "c"})).await;

    // Job a, newest three chains kept (JOBCENTER_RUN_RETENTION_KEEP_PER_JOB=3): r1 and r2
    // are recent anyway, c9 is the third newest. Below it, c2, c3 and c4 are kept for
    // their own reasons, the rest goes.
    let c1 = insert(&db, a, row("c1", "10 days", Some("10 days"), None)).await;
    let c1_2 = insert(&db, a, row("c1.2", "10 days", Some("10 days"), Some(c1))).await;
    let c2 = insert(&db, a, row("c2", "9 days", Some("9 days"), None)).await;
    // c2's next attempt is still queued: the chain is not finished.
    insert(&db, a, row("c2.2", "9 days", None, Some(c2))).await;
    let c3 = insert(&db, a, row("c3", "8 days", Some("8 days"), None)).await;
    // c3's next attempt finished an hour ago: the chain is not old.
    insert(&db, a, row("c3.2", "8 days", Some("1 hour"), Some(c3))).await;
    // c4's notification is not sent yet.
    let c4 = insert(&db, a, row("c4", "7 days", Some("7 days"), None)).await;
    for (label, age) in [
        old("c5", 6),
        old("c6", 5),
        old("c7", 4),
        old("c8", 3),
        old("c9", 2),
    ] {
        insert(&db, a, row(&label, &age, Some(&age), None)).await;
    }
    insert(&db, a, row("r1", "2 hours", Some("2 hours"), None)).await;
    insert(&db, a, row("r2", "1 hour", Some("1 hour"), None)).await;
    // Job b pauses after 5 failures in a row: its newest 5 outcomes are kept (not 3).
    for day in 3..=10u32 {
        let (label, age) = old(&format!("b{day:02}"), day);
        insert(&db, b, row(&label, &age, Some(&age), None)).await;
    }
    // Job c has three old runs: all kept.
    for day in 3..=5u32 {
        let (label, age) = old(&format!("c{day}"), day);
        insert(&db, c, row(&label, &age, Some(&age), None)).await;
    }
    let client = db.client().await;
    client
        .execute(
            "INSERT INTO run_logs (run_id, seq, stream, data)
             SELECT id, 0, 'stdout', 'hello' FROM runs",
            &[],
        )
        .await
        .unwrap();
    // c1's chain has a key and a processed outcome; both go with it.
    client
        .execute(
            "INSERT INTO run_idempotency_keys (job_id, key, run_id) VALUES ($1, 'k1', $2)",
            &[&a, &c1_2],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO run_outcomes (run_id, job_id, state, finished_at, processed_at)
             SELECT id, job_id, state, finished_at, finished_at FROM runs WHERE id = $1",
            &[&c1_2],
        )
        .await
        .unwrap();
    client
        .execute(
            "WITH channel AS (
                 INSERT INTO notification_channels (project_id, job_id, url, format, secret, events)
                 SELECT project_id, id, 'https://example.invalid/', 'json', 'secret', '{failure}'
                 FROM jobs WHERE id = $1 RETURNING id)
             INSERT INTO notification_deliveries (channel_id, run_id, event, events, payload,
                                                  next_attempt_at)
             SELECT id, $2, 'failure', '{failure}', '{}', now() + interval '1 day' FROM channel",
            &[&a, &c4],
        )
        .await
        .unwrap();

    let scheduler = Component::start(
        "scheduler",
        &db,
        &[
            BATCH_LOGS[0],
            BATCH_LOGS[1],
            ("JOBCENTER_RUN_RETENTION_DAYS", "1"),
            ("JOBCENTER_RUN_RETENTION_KEEP_PER_JOB", "3"),
        ],
    );
    let started = Instant::now();
    while !scheduler
        .stderr()
        .contains("deleted finished runs past retention")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no retention pass:\n{}",
            scheduler.stderr()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    assert_eq!(
        labels(&db, a).await,
        ["c2", "c2.2", "c3", "c3.2", "c4", "c9", "r1", "r2"],
        "job a"
    );
    assert_eq!(
        labels(&db, b).await,
        ["b03", "b04", "b05", "b06", "b07"],
        "job b"
    );
    assert_eq!(labels(&db, c).await, ["c3", "c4", "c5"], "job c");
    let left = |sql: &'static str| {
        let db = &db;
        async move { db.count(sql).await }
    };
    assert_eq!(
        left("SELECT count(*) FROM run_logs").await,
        8 + 5 + 3,
        "the logs of the kept runs, no more"
    );
    assert_eq!(left("SELECT count(*) FROM run_idempotency_keys").await, 0);
    assert_eq!(left("SELECT count(*) FROM run_outcomes").await, 0);
    assert_eq!(
        left("SELECT count(*) FROM notification_deliveries").await,
        1
    );
    // Every batch was within bounds, and the whole of c1's chain went at once.
    let batches = batches(&scheduler.stderr());
    assert_eq!(
        batches.iter().map(|b| b.1).sum::<i64>(),
        6 + 3,
        "{batches:?}"
    );
}

fn row<'a>(
    label: &'a str,
    queued_ago: &'a str,
    finished_ago: Option<&'a str>,
    retries: Option<Uuid>,
) -> Row<'a> {
    Row {
        label,
        queued_ago,
        finished_ago,
        retries,
    }
}

#[tokio::test]
async fn a_deleted_jobs_runs_are_purged_in_batches_before_the_job() {
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("purge").await;
    let gone = command_job(&api, &project, json!({"name": "gone"})).await;
    let restorable = command_job(&api, &project, json!({"name": "restorable"})).await;
    let client = db.client().await;
    for (job, runs) in [(gone, 5_500), (restorable, 10)] {
        client
            .execute(
                "INSERT INTO runs (job_id, state, trigger, worker_group, queued_at, started_at,
                                   finished_at)
                 SELECT $1, 'succeeded', 'manual', 'default', t, t, t
                 FROM (SELECT now() - interval '1 hour' + g * interval '1 ms' AS t
                       FROM generate_series(1, $2::integer) g) s",
                &[&job, &runs],
            )
            .await
            .unwrap();
    }
    client
        .batch_execute(
            "INSERT INTO run_logs (run_id, seq, stream, data)
             SELECT id, s, 'stdout', 'line' FROM runs, generate_series(0, 1) s;
             INSERT INTO run_idempotency_keys (job_id, key, run_id)
             SELECT job_id, id::text, id FROM runs;
             ANALYZE runs, run_logs, run_idempotency_keys;",
        )
        .await
        .unwrap();
    for job in [gone, restorable] {
        assert_eq!(api.delete(&format!("/api/v1/jobs/{job}")).await.status, 204);
    }
    // Deleted eight days ago: past JOBCENTER_DELETED_JOB_RETENTION_HOURS (168).
    client
        .execute(
            "UPDATE jobs SET deleted_at = now() - interval '8 days' WHERE id = $1",
            &[&gone],
        )
        .await
        .unwrap();

    let scheduler = Component::start("scheduler", &db, &BATCH_LOGS);
    let mut seen = Vec::new();
    let started = Instant::now();
    loop {
        let runs: i64 = client
            .query_one("SELECT count(*) FROM runs WHERE job_id = $1", &[&gone])
            .await
            .unwrap()
            .get(0);
        if seen.last() != Some(&runs) {
            seen.push(runs);
        }
        let job = client
            .query_opt("SELECT 1 FROM jobs WHERE id = $1", &[&gone])
            .await
            .unwrap();
        if job.is_none() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the deleted job was not purged: {seen:?}\n{}",
            scheduler.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("runs of the purged job as observed: {seen:?}");

    let purged: Vec<_> = batches(&scheduler.stderr())
        .into_iter()
        .filter(|b| b.0 == "purged job")
        .collect();
    let most = RUNS_PER_STATEMENT as i64;
    assert!(
        purged.len() >= 6,
        "5,500 runs in batches of at most {most}: {purged:?}"
    );
    assert!(
        purged.iter().all(|b| b.1 <= most && b.2 <= 2 * most),
        "{purged:?}"
    );
    assert_eq!(purged.iter().map(|b| b.1).sum::<i64>(), 5_500);
    let left = |sql: &'static str| {
        let db = &db;
        async move { db.count(sql).await }
    };
    assert_eq!(left("SELECT count(*) FROM runs").await, 10);
    assert_eq!(left("SELECT count(*) FROM run_logs").await, 20);
    assert_eq!(left("SELECT count(*) FROM run_idempotency_keys").await, 10);
    // The job deleted an hour ago is still restorable, with its runs.
    let kept: i64 = client
        .query_one(
            "SELECT count(*) FROM runs WHERE job_id = $1",
            &[&restorable],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 10);
    let restored = api
        .post(&format!("/api/v1/jobs/{restorable}/restore"), json!({}))
        .await;
    assert_eq!(restored.status, 200, "{restored:?}");
}

/// Percentiles of a sample in milliseconds, as "p50 / p95 / max".
fn summary(mut ms: Vec<f64>) -> String {
    if ms.is_empty() {
        return "no sample".into();
    }
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    format!(
        "p50 {:.1} / p95 {:.1} / max {:.1} ms (n = {})",
        at(0.5),
        at(0.95),
        at(1.0),
        ms.len()
    )
}

/// Runs triggered during a phase: (run id, when the trigger was sent, its round trip).
#[derive(Default)]
struct Phase {
    triggers: Vec<(Uuid, chrono::DateTime<chrono::Utc>, f64)>,
    started: Option<chrono::DateTime<chrono::Utc>>,
    ended: Option<chrono::DateTime<chrono::Utc>>,
}

impl Phase {
    async fn trigger(&mut self, api: &Api, job: Uuid) {
        self.started.get_or_insert_with(chrono::Utc::now);
        let sent = chrono::Utc::now();
        let clock = Instant::now();
        let id = api.trigger(&job.to_string(), json!(null)).await;
        let round_trip = clock.elapsed().as_secs_f64() * 1000.0;
        self.triggers.push((id.parse().unwrap(), sent, round_trip));
        self.ended = Some(chrono::Utc::now());
    }

    /// Prints the phase's latencies once all its runs have started.
    async fn report(&self, db: &TestDb, name: &str, cron: Uuid) {
        let client = db.client().await;
        let ids: Vec<Uuid> = self.triggers.iter().map(|t| t.0).collect();
        eventually(
            Duration::from_secs(60),
            "the triggered runs to start",
            || {
                let (client, ids) = (&client, &ids);
                async move {
                    let waiting: i64 = client
                        .query_one(
                            "SELECT count(*) FROM runs WHERE id = ANY($1) AND started_at IS NULL",
                            &[ids],
                        )
                        .await
                        .unwrap()
                        .get(0);
                    (waiting == 0).then_some(())
                }
            },
        )
        .await;
        let (mut to_start, mut claim) = (Vec::new(), Vec::new());
        for (id, sent, _) in &self.triggers {
            let row = client
                .query_one(
                    "SELECT queued_at, started_at FROM runs WHERE id = $1",
                    &[id],
                )
                .await
                .unwrap();
            let queued: chrono::DateTime<chrono::Utc> = row.get(0);
            let started: chrono::DateTime<chrono::Utc> = row.get(1);
            to_start.push((started - *sent).num_microseconds().unwrap() as f64 / 1000.0);
            claim.push((started - queued).num_microseconds().unwrap() as f64 / 1000.0);
        }
        let ticks: Vec<f64> = client
            .query(
                "SELECT extract(epoch FROM started_at - scheduled_for)::float8 * 1000 FROM runs
                 WHERE job_id = $1 AND started_at IS NOT NULL
                   AND scheduled_for BETWEEN $2 AND $3",
                &[&cron, &self.started.unwrap(), &self.ended.unwrap()],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        println!("{name}:");
        let round_trips = self.triggers.iter().map(|t| t.2).collect();
        println!("  trigger (POST round trip) {}", summary(round_trips));
        println!("  trigger -> start          {}", summary(to_start));
        println!("  claim (queued -> started) {}", summary(claim));
        println!("  tick -> start             {}", summary(ticks));
    }
}

/// 200,000 old runs (with logs, keys, outcomes and retry attempts) go in batches of at
/// most `CHAINS_PER_BATCH` chains while runs are triggered and a cron job ticks every
/// second; the latencies during the purge and after it are printed, not asserted.
#[tokio::test]
async fn two_hundred_thousand_old_runs_go_in_batches_while_runs_keep_starting() {
    const OLD_RUNS: i64 = 200_000;
    let db = TestDb::new();
    let api_node = Component::start("api", &db, &[]);
    let _worker = Component::start("worker", &db, &[]);
    let api = Api::login_admin(&api_node).await;
    let project = api.create_project("history").await;
    let history = command_job(&api, &project, json!({"name": "history"})).await;
    let few = command_job(&api, &project, json!({"name": "few"})).await;
    let work = command_job(&api, &project, json!({"name": "work"})).await;
    let cron = command_job(
        &api,
        &project,
        json!({"name": "cron", "schedule": {"kind": "cron", "expression": "* * * * * *"}}),
    )
    .await;

    let filling = Instant::now();
    let client = db.client().await;
    client
        .execute(
            "INSERT INTO runs (job_id, state, trigger, worker_group, queued_at, started_at,
                               finished_at)
             SELECT $1, 'succeeded', 'manual', 'default', t, t, t + interval '1 s'
             FROM (SELECT now() - interval '10 days' + g * interval '1 ms' AS t
                   FROM generate_series(1, $2::integer) g) s",
            &[&history, &(OLD_RUNS as i32)],
        )
        .await
        .unwrap();
    // Every hundredth run failed and was retried (attempt 2, the same chain).
    client
        .execute(
            "INSERT INTO runs (job_id, state, trigger, worker_group, attempt, first_run_id,
                               previous_run_id, queued_at, started_at, finished_at)
             SELECT job_id, 'succeeded', trigger, worker_group, 2, id, id,
                    queued_at + interval '2 s', queued_at + interval '2 s',
                    queued_at + interval '3 s'
             FROM (SELECT *, row_number() OVER (ORDER BY queued_at) AS n
                   FROM runs WHERE job_id = $1) r
             WHERE n % 100 = 0",
            &[&history],
        )
        .await
        .unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO runs (job_id, state, trigger, worker_group, queued_at, started_at,
                               finished_at)
             SELECT '{history}', 'succeeded', 'manual', 'default', t, t, t
             FROM (SELECT now() - interval '1 hour' + g * interval '1 s' AS t
                   FROM generate_series(1, 20) g) s;
             INSERT INTO runs (job_id, state, trigger, worker_group, queued_at, started_at,
                               finished_at)
             SELECT '{few}', 'failed', 'manual', 'default', t, t, t
             FROM (SELECT now() - interval '5 days' + g * interval '1 s' AS t
                   FROM generate_series(1, 150) g) s;
             INSERT INTO run_logs (run_id, seq, stream, data)
             SELECT id, s, 'stdout', 'line ' || s FROM runs, generate_series(0, 1) s;
             INSERT INTO run_idempotency_keys (job_id, key, run_id)
             SELECT job_id, 'key-' || id, id FROM runs WHERE random() < 0.01;
             INSERT INTO run_outcomes (run_id, job_id, state, finished_at, processed_at)
             SELECT id, job_id, state, finished_at, finished_at FROM runs
             WHERE random() < 0.01;
             ANALYZE runs, run_logs, run_idempotency_keys, run_outcomes;"
        ))
        .await
        .unwrap();
    // What must be left: each job's newest 100 chains.
    let kept_sql = "SELECT id FROM runs WHERE first_run_id IN (SELECT id FROM heads)
                    UNION ALL SELECT id FROM heads";
    let mut expected = BTreeSet::new();
    for job in [history, few] {
        let rows = client
            .query(
                &format!(
                    "WITH heads AS (SELECT id FROM runs WHERE job_id = $1 AND first_run_id IS NULL
                                    ORDER BY queued_at DESC, id DESC LIMIT 100) {kept_sql}"
                ),
                &[&job],
            )
            .await
            .unwrap();
        expected.extend(rows.iter().map(|r| r.get::<_, Uuid>(0)));
    }
    let total = db.count("SELECT count(*) FROM runs").await;
    println!(
        "filled {total} runs, {} log chunks in {:.1} s",
        db.count("SELECT count(*) FROM run_logs").await,
        filling.elapsed().as_secs_f64()
    );

    let purging = Instant::now();
    let scheduler = Component::start(
        "scheduler",
        &db,
        &[
            BATCH_LOGS[0],
            BATCH_LOGS[1],
            ("JOBCENTER_RUN_RETENTION_DAYS", "1"),
        ],
    );
    let history_and_few = vec![history, few];
    let left_sql = "SELECT count(*) FROM runs WHERE job_id = ANY($1)";
    let mut during = Phase::default();
    let mut seen = Vec::new();
    loop {
        let left: i64 = client
            .query_one(left_sql, &[&history_and_few])
            .await
            .unwrap()
            .get(0);
        if seen.last() != Some(&left) {
            seen.push(left);
        }
        if left == expected.len() as i64 {
            break;
        }
        assert!(
            purging.elapsed() < Duration::from_secs(600),
            "the purge did not end: {left} runs left\n{}",
            scheduler.stderr()
        );
        during.trigger(&api, work).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let purge_seconds = purging.elapsed().as_secs_f64();
    let mut after = Phase::default();
    for _ in 0..during.triggers.len().clamp(20, 100) {
        after.trigger(&api, work).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let deleted = total - expected.len() as i64;
    println!(
        "deleted {deleted} runs in {purge_seconds:.1} s ({:.0} runs/s); counts observed: {}",
        deleted as f64 / purge_seconds,
        seen.len()
    );
    during.report(&db, "during the purge", cron).await;
    after.report(&db, "after it", cron).await;

    // Exactly each job's newest 100 chains are left, with their logs and nothing else's.
    let rows = client
        .query(
            "SELECT id FROM runs WHERE job_id = ANY($1)",
            &[&history_and_few],
        )
        .await
        .unwrap();
    let left: BTreeSet<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(left, expected);
    let orphans = db
        .count(
            "SELECT (SELECT count(*) FROM run_logs l WHERE NOT EXISTS
                       (SELECT 1 FROM runs r WHERE r.id = l.run_id))
                  + (SELECT count(*) FROM run_idempotency_keys k WHERE NOT EXISTS
                       (SELECT 1 FROM runs r WHERE r.id = k.run_id))
                  + (SELECT count(*) FROM run_outcomes o WHERE NOT EXISTS
                       (SELECT 1 FROM runs r WHERE r.id = o.run_id))",
        )
        .await;
    assert_eq!(orphans, 0);
    assert_eq!(
        db.count("SELECT count(*) FROM run_logs l JOIN runs r ON r.id = l.run_id WHERE r.job_id IN (SELECT id FROM jobs WHERE name IN ('history', 'few'))")
            .await,
        2 * expected.len() as i64
    );
    // In batches: many of them, none over the bound (a chain here is at most two runs).
    let batches: Vec<_> = batches(&scheduler.stderr())
        .into_iter()
        .filter(|b| b.0 == "expired")
        .collect();
    assert!(
        batches.len() as i64 >= OLD_RUNS / CHAINS_PER_BATCH,
        "{} batches",
        batches.len()
    );
    assert!(batches.iter().all(|b| b.1 <= 2 * CHAINS_PER_BATCH));
    assert_eq!(batches.iter().map(|b| b.1).sum::<i64>(), deleted);
    assert!(
        seen.len() >= 10,
        "the count fell in steps, not at once: {seen:?}"
    );
    let running = || async {
        let n = db
            .count("SELECT count(*) FROM runs WHERE state IN ('queued', 'running') AND job_id <> (SELECT id FROM jobs WHERE name = 'cron')")
            .await;
        (n == 0).then_some(())
    };
    eventually(
        Duration::from_secs(60),
        "the triggered runs to finish",
        running,
    )
    .await;
}
