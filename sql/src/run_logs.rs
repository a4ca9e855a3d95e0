//! The `run_logs` table: a run's stdout/stderr, shipped in numbered chunks while it runs.

use crate::{Error, GenericClient};
use uuid::Uuid;

statements! {
    /// Run `$1`'s chunks numbered from `$2`: streams `$3`, data `$4`.
    pub(crate) const APPEND: Statement = "INSERT INTO run_logs (run_id, seq, stream, data)
             SELECT $1, $2 + ordinality::integer - 1, stream, data
             FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS t(stream, data)";
    /// Run `$1`'s output, at most `$2` chunks.
    pub(crate) const READ: Statement =
        "SELECT coalesce(string_agg(data, '' ORDER BY seq), '') FROM
               (SELECT seq, data FROM run_logs WHERE run_id = $1 ORDER BY seq LIMIT $2) t";
    /// Run `$1`'s chunks after number `$2`, at most `$3`.
    pub(crate) const READ_AFTER: Statement =
        "SELECT seq, stream, data FROM run_logs WHERE run_id = $1 AND seq > $2
             ORDER BY seq LIMIT $3";
}

/// One chunk of output.
pub struct Chunk<'a> {
    pub stream: &'a str,
    pub data: &'a str,
}

/// Appends chunks numbered from `first_seq` in one statement.
pub async fn append(
    c: &impl GenericClient,
    run_id: Uuid,
    first_seq: i32,
    chunks: &[Chunk<'_>],
) -> Result<(), Error> {
    let streams: Vec<&str> = chunks.iter().map(|c| c.stream).collect();
    let data: Vec<&str> = chunks.iter().map(|c| c.data).collect();
    let stmt = c.prepare_cached(APPEND).await?;
    c.execute(&stmt, &[&run_id, &first_seq, &streams, &data])
        .await?;
    Ok(())
}

/// The run's output in order, at most `max_chunks` chunks.
pub async fn read(c: &impl GenericClient, run_id: Uuid, max_chunks: i64) -> Result<String, Error> {
    let stmt = c.prepare_cached(READ).await?;
    Ok(c.query_one(&stmt, &[&run_id, &max_chunks]).await?.get(0))
}

/// A stored chunk, with its sequence number.
pub struct StoredChunk {
    pub seq: i32,
    pub stream: String,
    pub data: String,
}

/// Chunks numbered after `after_seq` (use -1 for all), in order, at most `limit`.
pub async fn read_after(
    c: &impl GenericClient,
    run_id: Uuid,
    after_seq: i32,
    limit: i64,
) -> Result<Vec<StoredChunk>, Error> {
    let stmt = c.prepare_cached(READ_AFTER).await?;
    let rows = c.query(&stmt, &[&run_id, &after_seq, &limit]).await?;
    rows.iter()
        .map(|r| {
            Ok(StoredChunk {
                seq: r.try_get("seq")?,
                stream: r.try_get("stream")?,
                data: r.try_get("data")?,
            })
        })
        .collect()
}
