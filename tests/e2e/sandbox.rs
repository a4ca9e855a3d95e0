//! Runs on a worker whose sandbox is off (`JOBCENTER_SANDBOX=off`): resource limits, an
//! unprivileged user, the run's own directory removed (confined runs) or emptied of
//! what it left, and caps on logs and results. The sandbox itself: `isolation.rs`.

use crate::harness::{Api, Component, TestDb};
use serde_json::json;

#[tokio::test]
async fn runs_are_confined_by_limits_and_run_as_an_unprivileged_user() {
    let root = unsafe { libc::geteuid() } == 0;
    // The run user must be able to traverse to the run directories.
    let base = tempfile::Builder::new()
        .prefix("jc-sandbox-")
        .tempdir_in("/tmp")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let workdir = base.path().join("runs");
    // The limits and the run-as user of a worker whose sandbox an admin switched off.
    let mut env = vec![
        ("JOBCENTER_SANDBOX", "off"),
        ("JOBCENTER_WORKER_WORKDIR", workdir.to_str().unwrap()),
        ("JOBCENTER_RUN_OPEN_FILES_MAX", "64"),
        ("JOBCENTER_RUN_MEMORY_MAX_BYTES", "268435456"),
        ("JOBCENTER_RUN_PROCESSES_MAX", "500"),
        ("JOBCENTER_LOG_MAX_BYTES", "2048"),
        ("JOBCENTER_RESULT_MAX_BYTES", "16"),
    ];
    if root {
        env.push(("JOBCENTER_RUN_AS_USER", "nobody"));
    }
    let db = TestDb::new();
    let app = Component::start("all", &db, &env);
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let command = |script: &str| json!({"kind": "command", "command": ["sh", "-c", script]});

    let script = r#"grep -E '^Max (processes|open files|address space)' /proc/self/limits
        echo "user=$(id -un) dir=$PWD"
        mkdir -p left/behind && echo x > left/behind/file && ln -s /etc/passwd link
        echo 0123456789abcdefOVERFLOW > "$JOBCENTER_RESULT_FILE""#;
    let job = api
        .create_job(
            &project,
            json!({"name": "limits", "target": command(script)}),
        )
        .await;
    let run_id = api.trigger(job["id"].as_str().unwrap(), json!(null)).await;
    let run = api.wait_finished(&run_id).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(
        run["result"], "0123456789abcdef",
        "result capped at 16 bytes: {run}"
    );
    let logs = api.get(&format!("/api/v1/runs/{run_id}/logs")).await;
    let text = logs.text();
    let squashed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for limit in [
        "Max processes 500 500",
        "Max open files 64 64",
        "Max address space 268435456 268435456",
    ] {
        assert!(squashed.contains(limit), "{limit}: {text}");
    }
    if root {
        assert!(text.contains("user=nobody"), "{text}");
    }
    let dir = text.split("dir=").nth(1).unwrap().trim();
    assert!(dir.starts_with(workdir.to_str().unwrap()), "{dir}");
    if root {
        // A run confined to a user: its directory is removed (a process that escaped the
        // run must not see the next runs).
        assert!(
            !std::path::Path::new(dir).exists(),
            "the run directory was left behind"
        );
    } else {
        // Otherwise it is kept for another run, with nothing the run left in it: only the
        // worker's input and state files.
        let mut left: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [".jobcenter-input.json", ".jobcenter-state"],
            "what the run left behind was not removed"
        );
    }

    // Past the memory limit the run fails instead of taking the machine down.
    let hog = api
        .create_job(
            &project,
            json!({"name": "hog", "target": command("x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo survived")}),
        )
        .await;
    let run_id = api.trigger(hog["id"].as_str().unwrap(), json!(null)).await;
    let run = api.wait_finished(&run_id).await;
    assert_eq!(run["state"], "failed", "{run}");
    let logs = api.get(&format!("/api/v1/runs/{run_id}/logs")).await;
    assert!(!logs.text().contains("survived"), "{logs:?}");

    // Logs past the cap end with a clear marker.
    let chatty = api
        .create_job(
            &project,
            json!({"name": "chatty", "target": command("yes | head -c 100000")}),
        )
        .await;
    let run_id = api
        .trigger(chatty["id"].as_str().unwrap(), json!(null))
        .await;
    assert_eq!(api.wait_finished(&run_id).await["state"], "succeeded");
    let logs = api.get(&format!("/api/v1/runs/{run_id}/logs")).await;
    let text = logs.text();
    assert!(text.len() < 4096, "{}", text.len());
    assert!(
        text.contains("[jobcenter: log truncated at 2048 bytes]"),
        "{text}"
    );
}
