//! Worker groups are the admin's to grant: a project's jobs may use `default` and the
//! groups an admin allowed for the project, and nobody else can route runs to a pool.
//! Workers show the sandbox they registered.

use crate::harness::{eventually, Api, Component, TestDb};
use serde_json::{json, Value};
use std::time::Duration;

const PASSWORD: &str = "groups-password-1";

fn job_in(group: &str) -> Value {
    json!({"name": format!("in-{group}"), "worker_group": group,
           "target": {"kind": "command", "command": ["true"]}})
}

/// Asserts a 403 that names `worker_group` and tells who can fix it.
fn assert_group_refused(reply: &crate::harness::Reply) {
    assert_eq!(reply.assert_problem(403).as_deref(), Some("worker_group"));
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("an admin must allow the group for the project"),
        "{detail}"
    );
}

async fn project_groups(api: &Api, project: &str) -> Value {
    let reply = api.get(&format!("/api/v1/projects/{project}")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body["worker_groups"].clone()
}

#[tokio::test]
async fn a_job_may_use_only_the_worker_groups_an_admin_allowed_for_its_project() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let admin = Api::login_admin(&app).await;
    admin.create_user("dev", PASSWORD, "developer").await;
    let dev = Api::login(&app, "dev", PASSWORD).await;
    let project = dev.create_project("render").await;
    let jobs_path = format!("/api/v1/projects/{project}/jobs");
    let project_path = format!("/api/v1/projects/{project}");
    assert_eq!(project_groups(&dev, &project).await, json!([]));

    // A developer cannot route a job to another pool: refused, nothing created.
    assert_group_refused(&dev.post(&jobs_path, job_in("gpu")).await);
    assert_eq!(db.count("SELECT count(*) FROM jobs").await, 0);
    // `default` needs no grant; moving that job to the pool is refused too.
    let job = dev.create_job(&project, job_in("default")).await;
    let job_path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    assert_group_refused(&dev.patch(&job_path, json!({"worker_group": "gpu"})).await);
    assert_eq!(dev.get(&job_path).await.body["worker_group"], "default");

    // Nor can the developer grant the group: 403 naming the field, nothing changed (the
    // description sent with it neither).
    let reply = dev
        .patch(
            &project_path,
            json!({"worker_groups": ["gpu"], "description": "mine"}),
        )
        .await;
    assert_eq!(reply.assert_problem(403).as_deref(), Some("worker_groups"));
    let seen = dev.get(&project_path).await.body;
    assert_eq!(seen["worker_groups"], json!([]), "{seen}");
    assert_eq!(seen["description"], "", "{seen}");
    assert_group_refused(&dev.post(&jobs_path, job_in("gpu")).await);

    // An admin grants it (sorted, each once, `default` implied); then the job is accepted.
    let reply = admin
        .patch(
            &project_path,
            json!({"worker_groups": ["gpu", "default", "gpu"]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["worker_groups"], json!(["gpu"]));
    assert_eq!(project_groups(&dev, &project).await, json!(["gpu"]));
    let gpu_job = dev.create_job(&project, job_in("gpu")).await;
    assert_eq!(gpu_job["worker_group"], "gpu");
    let reply = dev.patch(&job_path, json!({"worker_group": "gpu"})).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["worker_group"], "gpu");

    // Admins follow the same rule: a group is granted to the project first.
    assert_group_refused(&admin.post(&jobs_path, job_in("night")).await);
    // A group name is checked like a job's.
    let reply = admin
        .patch(
            &project_path,
            json!({"worker_groups": ["gpu", "no spaces"]}),
        )
        .await;
    assert_eq!(
        reply.assert_problem(400).as_deref(),
        Some("worker_groups[1]")
    );

    // A group that live jobs still use cannot be taken away (they would keep routing
    // runs to it): 409, nothing changed.
    let reply = admin
        .patch(&project_path, json!({"worker_groups": []}))
        .await;
    reply.assert_problem(409);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("`gpu` (2 job(s))"),
        "{reply:?}"
    );
    assert_eq!(project_groups(&dev, &project).await, json!(["gpu"]));

    // Once they are moved or deleted it can; a deleted job is then not restored into it.
    let reply = dev
        .patch(&job_path, json!({"worker_group": "default"}))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let gpu_job_path = format!("/api/v1/jobs/{}", gpu_job["id"].as_str().unwrap());
    assert_eq!(dev.delete(&gpu_job_path).await.status, 204);
    let reply = admin
        .patch(&project_path, json!({"worker_groups": []}))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["worker_groups"], json!([]));
    assert_group_refused(
        &dev.post(&format!("{gpu_job_path}/restore"), json!({}))
            .await,
    );
    assert!(dev.get(&gpu_job_path).await.body["deleted_at"].is_string());

    // The grant and the revocation are audited, newest first; the refused changes left
    // nothing.
    let audit = admin
        .get(&format!("/api/v1/audit?target=project:{project}&limit=200"))
        .await;
    assert_eq!(audit.status, 200, "{audit:?}");
    let changes: Vec<&Value> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "project.update")
        .map(|e| &e["detail"])
        .collect();
    assert_eq!(
        changes,
        [
            &json!({"worker_groups": []}),
            &json!({"worker_groups": ["gpu"]})
        ]
    );
}

#[tokio::test]
async fn workers_show_the_sandbox_they_registered() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let api = Api::login_admin(&app).await;
    let quick = [
        ("JOBCENTER_HEARTBEAT_SECONDS", "1"),
        ("JOBCENTER_LEASE_SECONDS", "3"),
    ];
    let open_env: Vec<(&str, &str)> = quick
        .iter()
        .copied()
        .chain([
            ("JOBCENTER_SANDBOX", "off"),
            ("JOBCENTER_WORKER_GROUP", "open"),
        ])
        .collect();
    let _open = Component::start("worker", &db, &open_env);
    let boxed_env: Vec<(&str, &str)> = quick
        .iter()
        .copied()
        .chain([
            ("JOBCENTER_SANDBOX", "on"),
            ("JOBCENTER_WORKER_GROUP", "boxed"),
        ])
        .collect();
    let _boxed = Component::start("worker", &db, &boxed_env);
    let worker_of = |group: &'static str| {
        let api = api.clone();
        async move {
            eventually(
                Duration::from_secs(30),
                "the worker to register",
                || async {
                    let reply = api.get("/api/v1/workers").await;
                    assert_eq!(reply.status, 200, "{reply:?}");
                    reply
                        .body
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|w| w["worker_group"] == group)
                        .cloned()
                },
            )
            .await
        }
    };
    let open = worker_of("open").await;
    assert_eq!(open["sandbox"]["enabled"], false, "{open}");
    assert!(open["sandbox"]["unenforced"].is_array(), "{open}");
    let boxed = worker_of("boxed").await;
    assert_eq!(boxed["sandbox"]["enabled"], true, "{boxed}");
    assert!(boxed["sandbox"]["unenforced"].is_array(), "{boxed}");

    // A worker whose row was forgotten registers again with its report.
    db.client()
        .await
        .execute("DELETE FROM workers WHERE worker_group = 'boxed'", &[])
        .await
        .unwrap();
    let again = worker_of("boxed").await;
    assert_ne!(again["started_at"], boxed["started_at"], "{again}");
    assert_eq!(again["sandbox"], boxed["sandbox"], "{again}");
}

/// Waits until a session of this test's database waits for a lock.
async fn someone_waits_for_a_lock(db: &TestDb) {
    eventually(
        Duration::from_secs(10),
        "a session to wait for a lock",
        || async {
            let waiting = db
                .count(
                    "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .await;
            (waiting > 0).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_write_and_taking_its_group_away_cannot_slip_past_each_other() {
    use jobcenter_sql::projects;
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let admin = Api::login_admin(&app).await;
    let project = admin.create_project("race").await;
    let reply = admin
        .patch(
            &format!("/api/v1/projects/{project}"),
            json!({"worker_groups": ["gpu"]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let job: uuid::Uuid = admin.create_job(&project, job_in("default")).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let project: uuid::Uuid = project.parse().unwrap();
    let pool = jobcenter_sql::new_pool(&db.url, 2).unwrap();
    let take_away = |pool: jobcenter_sql::Pool| async move {
        let mut client = pool.get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        let none: &[String] = &[];
        let patch = projects::ProjectPatch {
            worker_groups: Some(none),
            ..Default::default()
        };
        projects::update(&tx, project, None, &patch).await.unwrap();
        let in_use = projects::jobs_outside_groups(&tx, project).await.unwrap();
        tx.rollback().await.unwrap();
        in_use
    };

    // A job write allowed under the old list holds the project row: the admin's change
    // waits for it, then sees its job.
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let allowed = projects::lock_allowing_group(&tx, project, None, "gpu").await;
    assert_eq!(allowed.unwrap(), Some(true));
    tx.execute(
        "UPDATE jobs SET worker_group = 'gpu' WHERE id = $1",
        &[&job],
    )
    .await
    .unwrap();
    let admin_change = tokio::spawn(take_away(pool.clone()));
    someone_waits_for_a_lock(&db).await;
    assert!(!admin_change.is_finished());
    tx.commit().await.unwrap();
    assert_eq!(admin_change.await.unwrap(), [("gpu".to_string(), 1)]);

    // The other way round: a job write after the admin's change reads the new list.
    db.client()
        .await
        .execute(
            "UPDATE jobs SET worker_group = 'default' WHERE id = $1",
            &[&job],
        )
        .await
        .unwrap();
    let mut admin_client = pool.get().await.unwrap();
    let admin_tx = admin_client.transaction().await.unwrap();
    let none: &[String] = &[];
    let patch = projects::ProjectPatch {
        worker_groups: Some(none),
        ..Default::default()
    };
    projects::update(&admin_tx, project, None, &patch)
        .await
        .unwrap();
    let url = db.url.clone();
    let job_write = tokio::spawn(async move {
        let pool = jobcenter_sql::new_pool(&url, 1).unwrap();
        let mut client = pool.get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        projects::lock_allowing_group(&tx, project, None, "gpu")
            .await
            .unwrap()
    });
    someone_waits_for_a_lock(&db).await;
    assert!(!job_write.is_finished());
    let in_use = projects::jobs_outside_groups(&admin_tx, project)
        .await
        .unwrap();
    assert!(in_use.is_empty(), "{in_use:?}");
    admin_tx.commit().await.unwrap();
    assert_eq!(job_write.await.unwrap(), Some(false));
}
