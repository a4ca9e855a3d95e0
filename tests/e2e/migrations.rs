//! Migrations: applied once even when components start together; readiness follows them.

use crate::harness::{Api, Component, TestDb};
use std::process::Command;

#[tokio::test]
async fn concurrent_migrations_apply_each_migration_once() {
    let db = TestDb::empty();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_jobcenter"))
            .arg("migrate")
            .env("JOBCENTER_DATABASE_URL", &db.url)
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/migrations"))
        .unwrap()
        .count();
    let applied = db
        .count("SELECT count(*) FROM refinery_schema_history")
        .await;
    assert_eq!(applied as usize, files);
}

#[tokio::test]
async fn readiness_needs_the_database_and_migrations() {
    let db = TestDb::new();
    let app = Component::start("api", &db, &[]);
    let api = Api::new(&app);
    assert_eq!(api.get("/healthz").await.status, 200);
    assert_eq!(api.get("/readyz").await.status, 200);
    // Losing the migrations' record makes the node unready.
    db.client()
        .await
        .batch_execute("DELETE FROM refinery_schema_history")
        .await
        .unwrap();
    assert_eq!(api.get("/readyz").await.status, 503);
}

#[test]
fn a_malformed_variable_stops_the_process_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_jobcenter"))
        .arg("api")
        .env("JOBCENTER_WORKER_CAPACITY", "lots")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("JOBCENTER_WORKER_CAPACITY"), "{stderr}");
}
