//! Binary and bundle targets: versions pinned or followed, bundles unpacked safely,
//! secrets delivered and redacted. Each runs against both stores.

use crate::harness::{Api, ArtifactBackend, Component, TestDb};
use serde_json::json;

crate::on_both_stores!(pinned_jobs_run_their_version_and_unpinned_ones_the_latest);
crate::on_both_stores!(bundles_run_their_entrypoint_and_hostile_ones_are_refused);

async fn upload(api: &Api, project: &str, name: &str, body: Vec<u8>) -> serde_json::Value {
    let reply = api
        .request(
            "PUT",
            &format!("/api/v1/projects/{project}/artifacts/{name}"),
            &[],
            Some(body),
        )
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    reply.body
}

fn script(version: &str) -> Vec<u8> {
    format!("#!/bin/sh\necho \"running {version} with $*\"\nprintf {version} > \"$JOBCENTER_RESULT_FILE\"\n").into_bytes()
}

async fn pinned_jobs_run_their_version_and_unpinned_ones_the_latest(backend: ArtifactBackend) {
    let db = TestDb::new();
    let app = Component::start("all", &db, &backend.env());
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    upload(&api, &project, "tool", script("v1")).await;
    let binary = |version: serde_json::Value| json!({"kind": "binary", "artifact": "tool", "version": version, "args": ["a", "b"]});
    let pinned = api
        .create_job(
            &project,
            json!({"name": "pinned", "target": binary(json!(1))}),
        )
        .await;
    let latest = api
        .create_job(
            &project,
            json!({"name": "latest", "target": binary(json!(null))}),
        )
        .await;
    upload(&api, &project, "tool", script("v2")).await;

    let run = api
        .wait_finished(
            &api.trigger(pinned["id"].as_str().unwrap(), json!(null))
                .await,
        )
        .await;
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["result"], "v1");
    assert_eq!(run["artifact_version"], 1);
    let logs = api
        .get(&format!(
            "/api/v1/runs/{}/logs",
            run["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(logs.text(), "running v1 with a b\n");
    let run = api
        .wait_finished(
            &api.trigger(latest["id"].as_str().unwrap(), json!(null))
                .await,
        )
        .await;
    assert_eq!(run["result"], "v2", "{run}");
    assert_eq!(run["artifact_version"], 2);

    // Roll the pinned job forward by changing its pin.
    let reply = api
        .patch(
            &format!("/api/v1/jobs/{}", pinned["id"].as_str().unwrap()),
            json!({"target": binary(json!(2))}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    api.delete(&format!(
        "/api/v1/projects/{project}/artifacts/tool/versions/2"
    ))
    .await
    .assert_problem(409);
    let reply = api
        .delete(&format!(
            "/api/v1/projects/{project}/artifacts/tool/versions/2?force=true"
        ))
        .await;
    assert_eq!(reply.status, 204, "{reply:?}");
    let run = api
        .wait_finished(
            &api.trigger(pinned["id"].as_str().unwrap(), json!(null))
                .await,
        )
        .await;
    assert_eq!(run["state"], "failed", "{run}");
    assert!(
        run["error"].as_str().unwrap().contains("does not exist"),
        "{run}"
    );
}

/// A .tar.gz built by Python's tarfile, which writes whatever names it is given: the
/// symlinks first, so that the entries after them can be written through them.
fn tar_gz(entries: &[(&str, &str)], links: &[(&str, &str)]) -> Vec<u8> {
    let mut program = String::from(
        "import io, sys, tarfile\nbuf = io.BytesIO()\nt = tarfile.open(fileobj=buf, mode='w:gz')\n",
    );
    for (name, target) in links {
        program.push_str(&format!("i = tarfile.TarInfo({name:?}); i.type = tarfile.SYMTYPE; i.linkname = {target:?}\nt.addfile(i)\n"));
    }
    for (name, content) in entries {
        program.push_str(&format!(
            "data = {content:?}.encode()\ni = tarfile.TarInfo({name:?}); i.size = len(data); i.mode = 0o755\nt.addfile(i, io.BytesIO(data))\n"
        ));
    }
    program.push_str("t.close()\nsys.stdout.buffer.write(buf.getvalue())\n");
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(program)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

async fn bundles_run_their_entrypoint_and_hostile_ones_are_refused(backend: ArtifactBackend) {
    let db = TestDb::new();
    let app = Component::start("all", &db, &backend.env());
    let api = Api::login_admin(&app).await;
    let project = api.create_project("demo").await;
    let set = api
        .request(
            "PUT",
            &format!("/api/v1/projects/{project}/secrets/TOKEN"),
            &[("content-type", "application/json")],
            Some(br#"{"value":"sup3r-s3cret-value"}"#.to_vec()),
        )
        .await;
    assert_eq!(set.status, 204, "{set:?}");
    let good = tar_gz(
        &[
            ("app/lib.sh", "GREETING=bundled\n"),
            ("app/main.sh", "#!/bin/sh\n. \"$(dirname \"$0\")/lib.sh\"\necho \"$GREETING token=$TOKEN\"\nprintf \"$TOKEN\" > \"$JOBCENTER_RESULT_FILE\"\n"),
        ],
        &[],
    );
    upload(&api, &project, "bundle", good).await;
    let job = api
        .create_job(&project, json!({"name": "bundled", "target": {"kind": "binary", "artifact": "bundle", "entrypoint": "app/main.sh"}}))
        .await;
    let run = api
        .wait_finished(&api.trigger(job["id"].as_str().unwrap(), json!(null)).await)
        .await;
    assert_eq!(run["state"], "succeeded", "{run}");
    // The secret reached the run, and is redacted from what was stored.
    assert_eq!(run["result"], "***");
    let logs = api
        .get(&format!(
            "/api/v1/runs/{}/logs",
            run["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(logs.text(), "bundled token=***\n");

    let escape_marker =
        std::env::temp_dir().join(format!("jc-escape-{}", uuid::Uuid::new_v4().simple()));
    let marker = escape_marker.display().to_string();
    let hostile = [
        tar_gz(
            &[
                ("../../../../../../..".to_string().as_str(), "x"),
                ("app/main.sh", "#!/bin/sh\n"),
            ],
            &[],
        ),
        tar_gz(
            &[(marker.as_str(), "x"), ("app/main.sh", "#!/bin/sh\n")],
            &[],
        ),
        // A symlink may point anywhere, but nothing is written through it: `app/up/x`
        // would land beside the bundle in the worker's cache.
        tar_gz(
            &[("app/up/x", "x"), ("app/main.sh", "#!/bin/sh\n")],
            &[("app/up", "../..")],
        ),
    ];
    for (i, bytes) in hostile.into_iter().enumerate() {
        let name = format!("hostile{i}");
        upload(&api, &project, &name, bytes).await;
        let job = api
            .create_job(&project, json!({"name": name, "target": {"kind": "binary", "artifact": name, "entrypoint": "app/main.sh"}}))
            .await;
        let run = api
            .wait_finished(&api.trigger(job["id"].as_str().unwrap(), json!(null)).await)
            .await;
        assert_eq!(run["state"], "failed", "case {i}: {run}");
        assert!(
            run["error"].as_str().unwrap().contains("bundle entry"),
            "case {i}: {run}"
        );
    }
    assert!(
        !escape_marker.exists(),
        "an absolute entry was written outside"
    );
    let beside = app.workdir.path().join("runs/artifact-cache/bundles/x");
    assert!(!beside.exists(), "an entry was written through a symlink");
}
