//! Every SQL statement of jobcenter against the migrated schema: tokio-postgres does not
//! check SQL at compile time, so a column a migration renamed or dropped would otherwise
//! fail only the request that runs the statement. The statements come from
//! `jobcenter_sql::statements`, the registry each module declares its statements in.

use crate::harness::TestDb;
use jobcenter_sql::statements::{self, Kind};

#[tokio::test]
async fn every_statement_prepares_against_the_migrated_schema() {
    let db = TestDb::new();
    let client = db.client().await;
    let mut failed = Vec::new();
    let mut checked = 0;
    for entry in statements::all() {
        let result = match entry.kind {
            Kind::Statement => client.prepare(entry.sql).await.map(drop),
            // A batch cannot be prepared: run it, in a transaction rolled back (at the
            // savepoint `savepoint::attempt` may roll back to).
            Kind::Batch => {
                client.batch_execute("BEGIN").await.unwrap();
                client
                    .batch_execute(jobcenter_sql::savepoint::SAVEPOINT)
                    .await
                    .unwrap();
                let result = client.batch_execute(entry.sql).await;
                client.batch_execute("ROLLBACK").await.unwrap();
                result
            }
        };
        if let Err(e) = result {
            let reason = e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string());
            failed.push(format!("{}: {reason}", entry.name));
        }
        checked += 1;
    }
    assert!(
        failed.is_empty(),
        "{} of {checked} statements do not prepare:\n{}",
        failed.len(),
        failed.join("\n")
    );
    // Every module with statements is in the registry (a sanity floor, not a count to
    // keep in step).
    assert!(checked > 100, "only {checked} statements registered");
}
