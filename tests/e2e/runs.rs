//! A triggered run: its result, logs, exit code, environment and state between runs.

use crate::harness::{Api, Component, TestDb};
use serde_json::json;

#[tokio::test]
async fn a_triggered_run_succeeds_with_its_result_logs_and_run_id() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let script = r#"
        read -r input
        echo "input=$input"
        echo "run=$JOBCENTER_RUN_ID trigger=$JOBCENTER_TRIGGER attempt=$JOBCENTER_ATTEMPT"
        echo "home-leak=${CARGO:-none}"
        printf 'echoed %s' "$(cat "$JOBCENTER_INPUT_FILE")" > "$JOBCENTER_RESULT_FILE"
    "#;
    let job = api
        .create_job(
            &project,
            json!({"name": "echo", "target": {"kind": "command", "command": ["sh", "-c", script]}}),
        )
        .await;
    let run_id = api
        .trigger(job["id"].as_str().unwrap(), json!({"greeting": "hello"}))
        .await;
    let run = api.wait_finished(&run_id).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["exit_code"], 0);
    assert_eq!(run["result"], r#"echoed {"greeting":"hello"}"#);
    assert_eq!(run["trigger"], "manual");
    assert!(
        run["worker"].is_string()
            && run["started_at"].is_string()
            && run["finished_at"].is_string()
    );

    let logs = api.get(&format!("/api/v1/runs/{run_id}/logs")).await;
    assert_eq!(logs.status, 200);
    assert!(logs.content_type.starts_with("text/plain"), "{logs:?}");
    let text = logs.text();
    assert!(text.contains(r#"input={"greeting":"hello"}"#), "{text}");
    assert!(
        text.contains(&format!("run={run_id} trigger=manual attempt=1")),
        "{text}"
    );
    // A clean environment: nothing of the worker's own (cargo sets CARGO for tests).
    assert!(text.contains("home-leak=none"), "{text}");

    let listed = api.runs_of(job["id"].as_str().unwrap()).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], run_id.as_str());

    // The trigger is in the audit log, written with the run: who, what, which job.
    let audit = api.get(&format!("/api/v1/audit?target=run:{run_id}")).await;
    let items = audit.body["items"].as_array().expect("a page");
    assert_eq!(items.len(), 1, "{audit:?}");
    assert_eq!(items[0]["action"], "run.trigger");
    assert_eq!(items[0]["actor"], "admin");
    assert_eq!(items[0]["detail"]["job_id"], job["id"]);
    assert_eq!(items[0]["detail"]["trigger"], "manual");
}

/// A trigger commits its run and audit record in one round trip: one statement, or for a
/// `skip` job BEGIN, the queue lock, that statement and COMMIT in one flight. One that
/// fails in the database writes nothing, and leaves no connection of the pool inside a
/// failed transaction: the triggers after it work.
#[tokio::test]
async fn a_trigger_that_fails_in_the_database_writes_nothing_and_the_next_ones_work() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[("JOBCENTER_DB_POOL_SIZE", "2")]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let mut paths = Vec::new();
    for policy in ["allow", "skip"] {
        let job = api
            .create_job(
                &project,
                json!({"name": policy, "concurrency": policy,
                       "target": {"kind": "command", "command": ["true"]}}),
            )
            .await;
        paths.push(format!("/api/v1/jobs/{}/runs", job["id"].as_str().unwrap()));
    }
    let sql = db.client().await;
    sql.batch_execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql
           AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON audit_log
           FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .await
    .unwrap();
    for path in paths.iter().chain(&paths).chain(&paths) {
        let reply = api.post(path, json!({"input": 1})).await;
        assert!(reply.status >= 500, "{path}: {reply:?}");
    }
    assert_eq!(db.count("SELECT count(*) FROM runs").await, 0);

    sql.batch_execute("DROP TRIGGER refuse ON audit_log")
        .await
        .unwrap();
    for path in paths.iter().chain(&paths).chain(&paths) {
        let reply = api.post(path, json!({"input": 1})).await;
        assert_eq!(reply.status, 202, "{path}: {reply:?}");
    }
    assert_eq!(db.count("SELECT count(*) FROM runs").await, 6);
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action = 'run.trigger'")
            .await,
        6
    );
    // No worker runs here: the skip job's later triggers found its first run queued.
    assert_eq!(
        db.count("SELECT count(*) FROM runs WHERE state = 'skipped'")
            .await,
        2
    );
}

#[tokio::test]
async fn a_failing_command_ends_failed_with_its_exit_code_and_stderr() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "fails", "target": {"kind": "command", "command": ["sh", "-c", "echo broken pipe dream >&2; exit 3"]}}),
        )
        .await;
    let run_id = api.trigger(job["id"].as_str().unwrap(), json!(null)).await;
    let run = api.wait_finished(&run_id).await;
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["exit_code"], 3);
    assert!(run["error"].as_str().unwrap().contains("code 3"), "{run}");
    let logs = api.get(&format!("/api/v1/runs/{run_id}/logs")).await;
    assert!(logs.text().contains("broken pipe dream"), "{logs:?}");

    let missing = api
        .create_job(
            &project,
            json!({"name": "nope", "target": {"kind": "command", "command": ["/no/such/program"]}}),
        )
        .await;
    let run_id = api
        .trigger(missing["id"].as_str().unwrap(), json!(null))
        .await;
    let run = api.wait_finished(&run_id).await;
    assert_eq!(run["state"], "failed", "{run}");
    assert!(
        run["error"].as_str().unwrap().contains("cannot start"),
        "{run}"
    );
}

#[tokio::test]
async fn state_written_by_one_run_is_seen_by_the_next() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let script = r#"n=$(cat "$JOBCENTER_STATE_FILE"); n=$(( ${n:-0} + 1 )); echo $n > "$JOBCENTER_STATE_FILE"; echo $n > "$JOBCENTER_RESULT_FILE""#;
    let job = api
        .create_job(&project, json!({"name": "counter", "target": {"kind": "command", "command": ["sh", "-c", script]}}))
        .await;
    let job_id = job["id"].as_str().unwrap();
    for expected in ["1", "2", "3"] {
        let run = api
            .wait_finished(&api.trigger(job_id, json!(null)).await)
            .await;
        assert_eq!(run["state"], "succeeded", "{run}");
        assert_eq!(run["result"].as_str().unwrap().trim(), expected, "{run}");
    }
    // A failed run's state is not kept.
    let failing = r#"echo 100 > "$JOBCENTER_STATE_FILE"; exit 1"#;
    api.patch(
        &format!("/api/v1/jobs/{job_id}"),
        json!({"target": {"kind": "command", "command": ["sh", "-c", failing]}}),
    )
    .await;
    assert_eq!(
        api.wait_finished(&api.trigger(job_id, json!(null)).await)
            .await["state"],
        "failed"
    );
    api.patch(
        &format!("/api/v1/jobs/{job_id}"),
        json!({"target": {"kind": "command", "command": ["sh", "-c", script]}}),
    )
    .await;
    let run = api
        .wait_finished(&api.trigger(job_id, json!(null)).await)
        .await;
    assert_eq!(run["result"].as_str().unwrap().trim(), "4", "{run}");
}

#[tokio::test]
async fn a_run_that_leaves_the_state_as_it_was_does_not_overwrite_a_concurrent_change() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    // The input picks the part: a slow run that never touches the state, a writer, and
    // a reader that reports the state it was given.
    let script = r#"if grep -q slow "$JOBCENTER_INPUT_FILE"; then sleep 2;
        elif grep -q write "$JOBCENTER_INPUT_FILE"; then echo B > "$JOBCENTER_STATE_FILE";
        else cat "$JOBCENTER_STATE_FILE" > "$JOBCENTER_RESULT_FILE"; fi"#;
    let job = api
        .create_job(&project, json!({"name": "shared-state", "target": {"kind": "command", "command": ["sh", "-c", script]}}))
        .await;
    let job_id = job["id"].as_str().unwrap();
    let slow = api.trigger(job_id, json!("slow")).await;
    api.wait_running(&slow).await;
    let writer = api
        .wait_finished(&api.trigger(job_id, json!("write")).await)
        .await;
    assert_eq!(writer["state"], "succeeded", "{writer}");
    let slow = api.wait_finished(&slow).await;
    assert_eq!(slow["state"], "succeeded", "{slow}");
    // The slow run started before the write and left its (empty) state as it was: the
    // writer's state stands.
    let reader = api
        .wait_finished(&api.trigger(job_id, json!("read")).await)
        .await;
    assert_eq!(
        reader["result"].as_str().unwrap_or("").trim(),
        "B",
        "{reader}"
    );
}

#[tokio::test]
async fn logs_are_readable_while_the_run_goes_on_and_timeouts_kill_the_group() {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    // Starts a background child in its group, prints, then hangs past the timeout.
    let script = "sleep 300 & echo started-$$; echo $! > child.pid; sleep 300";
    let job = api
        .create_job(
            &project,
            json!({"name": "hangs", "timeout_seconds": 2, "target": {"kind": "command", "command": ["sh", "-c", script]}}),
        )
        .await;
    let run_id = api.trigger(job["id"].as_str().unwrap(), json!(null)).await;
    crate::harness::eventually(
        std::time::Duration::from_secs(10),
        "logs during the run",
        || async {
            let run = api.get(&format!("/api/v1/runs/{run_id}")).await;
            let logs = api.get(&format!("/api/v1/runs/{run_id}/logs")).await;
            (run.body["state"] == "running" && logs.text().contains("started-")).then_some(())
        },
    )
    .await;
    let run = api.wait_finished(&run_id).await;
    assert_eq!(run["state"], "timed_out", "{run}");
    // Neither the shell nor its background child survives.
    let leftovers = std::process::Command::new("pgrep")
        .args(["-f", "sleep 300"])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&leftovers.stdout).to_string();
    let ours: Vec<&str> = pids
        .lines()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/environ"))
                .map(|env| env.contains(&run_id))
                .unwrap_or(false)
        })
        .collect();
    assert!(ours.is_empty(), "processes of the run survived: {ours:?}");
}

/// Run ids are UUIDv7: the first 48 bits are the Unix milliseconds of the trigger, so a
/// later run has a greater id, and the runs in flight sit together at the end of every
/// index that starts with the run id.
#[tokio::test]
async fn run_ids_are_uuid_v7_in_the_order_of_their_triggers() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let job = api
        .create_job(
            &project,
            json!({"name": "t", "target": {"kind": "command", "command": ["true"]}}),
        )
        .await;
    let unix_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        let before = unix_ms();
        let id = api.trigger(job["id"].as_str().unwrap(), json!(null)).await;
        let after = unix_ms();
        let id: uuid::Uuid = id.parse().unwrap();
        assert_eq!(id.get_version_num(), 7, "{id}");
        let bytes = id.as_bytes();
        let ms = bytes[..6]
            .iter()
            .fold(0u64, |ms, b| ms << 8 | u64::from(*b));
        assert!(
            before <= ms && ms <= after,
            "{id}: {ms} not in {before}..={after}"
        );
        ids.push(id);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}
