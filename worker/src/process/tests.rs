//! Each test runs under both ways of spawning, which must answer the same.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MODES: [Spawn; 2] = [Spawn::Clone, Spawn::Command];

fn spec(spawn: Spawn, argv: &[&str], candidates: &[&str]) -> Spec {
    let c = |s: &&str| CString::new(*s).unwrap();
    Spec {
        candidates: candidates.iter().map(c).collect(),
        argv: argv.iter().map(c).collect(),
        envp: vec![CString::new("GREETING=hello").unwrap()],
        dir: CString::new("/tmp").unwrap(),
        start: Start {
            spawn,
            sandbox: Sandbox::default(),
            enter: None,
        },
    }
}

/// What the process printed on stdout, and how it exited.
async fn output(spec: &Spec) -> (String, ExitStatus) {
    let mut process = spawn(spec).unwrap();
    let mut out = String::new();
    let mut stdout = process.stdout.take().unwrap();
    stdout.read_to_string(&mut out).await.unwrap();
    (out, process.wait().await.unwrap())
}

#[tokio::test]
async fn runs_a_program_with_its_environment_directory_and_streams() {
    let script = "read line; echo \"$GREETING $line from $(pwd)\"; echo oops >&2; exit 3";
    for mode in MODES {
        let mut process = spawn(&spec(
            mode,
            &["sh", "-c", script],
            &["/nonexistent/sh", "/bin/sh"],
        ))
        .unwrap();
        let mut stdin = process.stdin.take().unwrap();
        stdin.write_all(b"world\n").await.unwrap();
        drop(stdin);
        let (mut out, mut err) = (String::new(), String::new());
        let mut stdout = process.stdout.take().unwrap();
        stdout.read_to_string(&mut out).await.unwrap();
        let mut stderr = process.stderr.take().unwrap();
        stderr.read_to_string(&mut err).await.unwrap();
        let status = process.wait().await.unwrap();
        assert_eq!(out, "hello world from /tmp\n", "{mode:?}");
        assert_eq!(err, "oops\n", "{mode:?}");
        assert_eq!(status.code(), Some(3), "{mode:?}");
        // Waiting again answers the same.
        assert_eq!(process.wait().await.unwrap().code(), Some(3), "{mode:?}");
    }
}

#[tokio::test]
async fn reports_a_program_that_cannot_be_found() {
    for mode in MODES {
        let error = spawn(&spec(
            mode,
            &["nope"],
            &["/nonexistent/nope", "/also/not/nope"],
        ))
        .err()
        .expect("spawning a missing program fails");
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{mode:?}");
        assert!(
            error.to_string().starts_with("cannot run the program"),
            "{mode:?}: {error}"
        );
    }
}

#[tokio::test]
async fn a_failing_setup_step_is_named() {
    for mode in MODES {
        let mut spec = spec(mode, &["true"], &["/bin/true"]);
        spec.dir = CString::new("/nonexistent/dir").unwrap();
        let error = spawn(&spec).err().expect("no such directory");
        assert_eq!(error.kind(), io::ErrorKind::NotFound, "{mode:?}");
        assert!(
            error
                .to_string()
                .starts_with("cannot enter the run directory"),
            "{mode:?}: {error}"
        );
    }
}

#[tokio::test]
async fn a_script_without_a_shebang_is_run_by_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("plain");
    std::fs::write(&script, "echo \"plain $1\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = script.to_str().unwrap();
    for mode in MODES {
        let (out, status) = output(&spec(mode, &[path, "arg"], &[path])).await;
        assert!(status.success(), "{mode:?}");
        assert_eq!(out, "plain arg\n", "{mode:?}");
    }
}

#[tokio::test]
async fn applies_the_sandbox_and_leads_its_own_group() {
    for mode in MODES {
        let mut spec = spec(
            mode,
            &[
                "sh",
                "-c",
                "ulimit -n; test \"$(cut -d' ' -f5 /proc/$$/stat)\" = $$ && echo leader",
            ],
            &["/bin/sh"],
        );
        spec.start.sandbox.open_files = 37;
        let (out, status) = output(&spec).await;
        assert!(status.success(), "{mode:?}");
        assert_eq!(out, "37\nleader\n", "{mode:?}");
    }
}

#[tokio::test]
async fn a_dropped_process_is_killed() {
    for mode in MODES {
        let mut process = spawn(&spec(mode, &["sleep", "30"], &["/bin/sleep"])).unwrap();
        let pid = process.id();
        let mut out = process.stdout.take().unwrap();
        drop(process);
        // Its stdout closes once it is dead, and it is reaped (no zombie left).
        let mut rest = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            out.read_to_end(&mut rest),
        )
        .await
        .expect("the process was killed")
        .unwrap();
        let reaped = async {
            while std::path::Path::new(&format!("/proc/{pid}")).exists() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), reaped)
            .await
            .unwrap_or_else(|_| panic!("{mode:?}: the process was reaped"));
    }
}
