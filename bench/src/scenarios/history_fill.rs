//! Fills the runs table with finished runs for the history scenario, the way a bulk load
//! is done: the non-unique full indexes of `runs` are dropped for the fill and rebuilt
//! afterwards from their own definitions (`pg_get_indexdef`, so they cannot drift from
//! the migrations), the foreign-key check is skipped (`session_replication_role =
//! replica`; the filler job exists), and the rows go in over one connection per core, in
//! 500 k-row transactions (the lanes get as many: the 9 M that make 10 M came as 5 + 4
//! chunks of 1 M, and one lane inserted the last one alone). The table that results is
//! the one a long-lived installation has: the same rows, the same indexes, vacuumed and
//! checkpointed.

use crate::components::connect;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// Rows per transaction.
const CHUNK: i64 = 500_000;

/// Adds finished runs of `job` numbered `from + 1 ..= to` (none when `to <= from`), then
/// vacuums and checkpoints; returns how long it took.
pub async fn fill(url: &str, job: uuid::Uuid, from: i64, to: i64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let admin = connect(url).await?;
    let indexes = if to > from {
        droppable_indexes(&admin).await?
    } else {
        Vec::new()
    };
    for (name, _) in &indexes {
        admin
            .batch_execute(&format!("DROP INDEX \"{name}\""))
            .await?;
    }
    let lanes = std::thread::available_parallelism().map_or(2, |n| n.get()) as i64;
    let mut fillers = Vec::new();
    for lane in 0..lanes {
        let url = url.to_string();
        fillers.push(tokio::spawn(async move {
            let client = connect(&url).await?;
            client
                .batch_execute("SET session_replication_role = replica")
                .await?;
            // Lane k takes chunks k, k + lanes, …: the lanes finish together.
            let mut low = from + lane * CHUNK;
            while low < to {
                let high = (low + CHUNK).min(to);
                insert_finished(&client, job, low + 1, high).await?;
                eprintln!(
                    "bench: history: rows {}..={} in (lane {lane}, {:.0} s)",
                    low + 1,
                    high,
                    started.elapsed().as_secs_f64()
                );
                low += lanes * CHUNK;
            }
            anyhow::Ok(())
        }));
    }
    for filler in fillers {
        filler.await??;
    }
    let rebuilt = Instant::now();
    admin
        .batch_execute("SET maintenance_work_mem = '256MB'")
        .await?;
    for (_, definition) in &indexes {
        admin.batch_execute(definition).await?;
    }
    if !indexes.is_empty() {
        eprintln!(
            "bench: history: {} indexes rebuilt in {:.0} s",
            indexes.len(),
            rebuilt.elapsed().as_secs_f64()
        );
    }
    // The steady state of a long-lived installation: history vacuumed, no checkpoint of
    // the fill still pending (its I/O would be charged to the measurement).
    admin.batch_execute("VACUUM ANALYZE runs").await?;
    admin.batch_execute("CHECKPOINT").await?;
    Ok(started.elapsed())
}

/// The non-unique, non-partial indexes of `runs` (every finished row has an entry in
/// each), with the statements that recreate them.
async fn droppable_indexes(c: &Client) -> anyhow::Result<Vec<(String, String)>> {
    let rows = c
        .query(
            "SELECT i.relname, pg_get_indexdef(x.indexrelid)
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
             WHERE x.indrelid = 'runs'::regclass AND NOT x.indisunique
               AND x.indpred IS NULL",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Finished runs spread over the past, as a long-lived installation has them.
async fn insert_finished(c: &Client, job: uuid::Uuid, low: i64, high: i64) -> anyhow::Result<()> {
    c.execute(
        "INSERT INTO runs (job_id, state, trigger, worker_group, queued_at,
                           started_at, finished_at, exit_code, worker_id)
         SELECT $1, 'succeeded', 'manual', 'default', t, t + interval '2 ms',
                t + interval '9 ms', 0, '00000000-0000-0000-0000-000000000001'
         FROM (SELECT now() - interval '1 day' - (g * interval '100 ms') AS t
               FROM generate_series($2::bigint, $3::bigint) g) s",
        &[&job, &low, &high],
    )
    .await?;
    Ok(())
}
