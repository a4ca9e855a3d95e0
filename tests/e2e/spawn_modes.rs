//! `JOBCENTER_SPAWN=clone` and `command` start the same runs with the same observable
//! results: exit code, logs, environment, working directory, the sandbox (namespaces,
//! mounts, cgroups, uid), timeouts and cancels that kill every process of the run.

use crate::execution::processes_of;
use crate::harness::{eventually, Api, Component, TestDb};
use serde_json::{json, Value};
use std::time::Duration;

/// Prints what a run sees of its process and sandbox, to stdout and stderr.
const LOOK_AROUND: &str = r#"
    read -r input
    echo "input=$input"
    echo "pwd=$(pwd) pid=$$ group=$(cut -d' ' -f5 /proc/$$/stat) uid=$(id -u)"
    echo "host=$(cat /proc/sys/kernel/hostname) files=$(ulimit -n) root=$(ls / | tr '\n' ' ')"
    echo "mapped=$(awk '{print $3}' /proc/self/uid_map) cgroups=$(grep -c ':/jobcenter/[0-9]*$' /proc/self/cgroup)"
    env | sort | sed 's/^/env /'
    printf 'done' > "$JOBCENTER_RESULT_FILE"
    echo "to stderr" >&2
    exit 3
"#;

/// What one mode made of the runs, with the ids that differ between databases replaced.
#[derive(Debug, PartialEq)]
struct Seen {
    look_around: Value,
    look_around_logs: Vec<String>,
    missing: Value,
    timed_out: Value,
    cancelled: Value,
}

/// The fields of a finished run that do not depend on ids or times.
fn outcome(run: &Value) -> Value {
    json!({
        "state": run["state"],
        "exit_code": run["exit_code"],
        "error": run["error"],
        "result": run["result"],
    })
}

async fn job(api: &Api, project: &str, name: &str, timeout: u32, script: &str) -> String {
    let job = api
        .create_job(
            project,
            json!({"name": name, "timeout_seconds": timeout,
                   "target": {"kind": "command", "command": ["sh", "-c", script]}}),
        )
        .await;
    job["id"].as_str().unwrap().to_string()
}

/// Waits until the run has at least `count` live processes.
async fn processes(run: &str, count: usize) {
    eventually(Duration::from_secs(10), "the run's processes", || async {
        (processes_of(run).len() >= count).then_some(())
    })
    .await;
}

async fn run_everything(spawn: &str) -> Seen {
    let db = TestDb::new();
    let app = Component::start("all", &db, &[("JOBCENTER_SPAWN", spawn)]);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;

    let look = job(&api, &project, "look", 60, LOOK_AROUND).await;
    let run = api.trigger(&look, json!({"greeting": "hello"})).await;
    let look_around = outcome(&api.wait_finished(&run).await);
    let logs = api.get(&format!("/api/v1/runs/{run}/logs")).await;
    let mut look_around_logs: Vec<String> = logs
        .text()
        .replace(&run, "<run>")
        .replace(&look, "<job>")
        .replace(&project, "<project>")
        .lines()
        .map(str::to_owned)
        .collect();
    // Streams are shipped as they come: the order across stdout and stderr is not kept.
    look_around_logs.sort();

    let missing = api
        .create_job(
            &project,
            json!({"name": "missing", "target": {"kind": "command", "command": ["/no/such/program"]}}),
        )
        .await;
    let run = api
        .trigger(missing["id"].as_str().unwrap(), json!(null))
        .await;
    let missing = outcome(&api.wait_finished(&run).await);

    // A background child in the group: neither it nor the shell may outlive the run.
    let hang = "sleep 300 & echo started; sleep 300";
    let slow = job(&api, &project, "slow", 1, hang).await;
    let run = api.trigger(&slow, json!(null)).await;
    let timed_out = outcome(&api.wait_finished(&run).await);
    assert!(
        processes_of(&run).is_empty(),
        "{spawn}: a timed-out run's processes survived"
    );

    let long = job(&api, &project, "long", 600, hang).await;
    let run = api.trigger(&long, json!(null)).await;
    api.wait_running(&run).await;
    processes(&run, 2).await;
    let reply = api
        .post(&format!("/api/v1/runs/{run}/cancel"), json!({}))
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let cancelled = outcome(&api.wait_finished(&run).await);
    assert!(
        processes_of(&run).is_empty(),
        "{spawn}: a cancelled run's processes survived"
    );

    Seen {
        look_around,
        look_around_logs,
        missing,
        timed_out,
        cancelled,
    }
}

#[tokio::test]
async fn clone_and_command_start_runs_alike() {
    let cloned = run_everything("clone").await;
    let commanded = run_everything("command").await;
    assert_eq!(cloned, commanded);

    // And both are right, not merely alike.
    assert_eq!(cloned.look_around["state"], "failed", "{cloned:?}");
    assert_eq!(cloned.look_around["exit_code"], 3, "{cloned:?}");
    assert_eq!(cloned.look_around["result"], "done", "{cloned:?}");
    let logs = &cloned.look_around_logs;
    let has = |line: &str| logs.iter().any(|l| l.contains(line));
    assert!(has(r#"input={"greeting":"hello"}"#), "{logs:?}");
    // The sandbox: its first process in its own PID namespace and group, root of its
    // own user namespace, at /work, alone with its own processes.
    assert!(has("pwd=/work pid=1 group=1 uid=0"), "{logs:?}");
    assert!(has("host=jobcenter files=1024 root="), "{logs:?}");
    // One uid mapped: the run's own user namespace. Its cgroups, where the host has them.
    assert!(has("mapped=1 cgroups="), "{logs:?}");
    assert!(has("env JOBCENTER_RUN_ID=<run>"), "{logs:?}");
    assert!(has("env PATH="), "{logs:?}");
    assert!(has("to stderr"), "{logs:?}");
    assert!(!has("CARGO"), "the worker's environment leaked: {logs:?}");
    assert_eq!(cloned.missing["state"], "failed", "{cloned:?}");
    let error = cloned.missing["error"].as_str().unwrap_or_default();
    assert!(error.contains("cannot run the program"), "{error}");
    assert_eq!(cloned.timed_out["state"], "timed_out", "{cloned:?}");
    assert_eq!(cloned.cancelled["state"], "cancelled", "{cloned:?}");
}
