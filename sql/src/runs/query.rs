//! Reading runs: one ([`get`], [`get_with_children`], [`next_attempt`]) or a page of them
//! ([`list`], [`list_by_job`]), newest first with a `(queued_at, id)` cursor. `owner`
//! arguments scope a read to one owner's projects (None: any owner).

use super::row::{from_row, Run};
use crate::states::RunState;
use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use uuid::Uuid;

statements! {
    /// Run `$1`, scoped to owner `$2`.
    pub(crate) const GET: Statement = concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs r JOIN jobs j ON j.id = r.job_id
         JOIN projects p ON p.id = j.project_id
         WHERE r.id = $1 AND ($2::uuid IS NULL OR p.owner_id = $2)"
    );

    /// Run `$1`, scoped to owner `$2`, with the first attempts its outcome started (scoped
    /// to `$2` too), as three arrays, oldest first.
    pub(crate) const GET_WITH_CHILDREN: Statement = concat!(
        "SELECT ",
        run_columns!(),
        ", ch.ids AS child_ids, ch.job_ids AS child_job_ids, ch.states AS child_states
         FROM runs r JOIN jobs j ON j.id = r.job_id JOIN projects p ON p.id = j.project_id
         CROSS JOIN LATERAL (
           SELECT array_agg(c.id ORDER BY c.queued_at, c.id) AS ids,
                  array_agg(c.job_id ORDER BY c.queued_at, c.id) AS job_ids,
                  array_agg(c.state::text ORDER BY c.queued_at, c.id) AS states
           FROM runs c JOIN jobs cj ON cj.id = c.job_id
           JOIN projects cp ON cp.id = cj.project_id
           WHERE c.parent_run_id = r.id AND c.attempt = 1 AND c.retry_of IS NULL
             AND ($2::uuid IS NULL OR cp.owner_id = $2)) ch
         WHERE r.id = $1 AND ($2::uuid IS NULL OR p.owner_id = $2)"
    );

    /// The attempt that follows run `$1`.
    pub(crate) const NEXT_ATTEMPT: Statement = concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs r JOIN jobs j ON j.id = r.job_id
         WHERE r.previous_run_id = $1"
    );

    /// Job `$1`'s runs older than the cursor (`$2`, `$3`), newest first, at most `$4`.
    pub(crate) const LIST_BY_JOB: Statement = concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs r JOIN jobs j ON j.id = r.job_id
         WHERE r.job_id = $1 AND ($2::timestamptz IS NULL OR (r.queued_at, r.id) < ($2, $3))
         ORDER BY r.queued_at DESC, r.id DESC LIMIT $4"
    );

    /// Runs of owner `$1` by state `$2`, job `$3`, project `$4`, queued in [`$5`, `$6`),
    /// older than the cursor (`$7`, `$8`), newest first, at most `$9`; a null filter
    /// filters nothing.
    pub(crate) const LIST: Statement = concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs r JOIN jobs j ON j.id = r.job_id
         JOIN projects p ON p.id = j.project_id
         WHERE ($1::uuid IS NULL OR p.owner_id = $1)
           AND ($2::text IS NULL OR r.state = $2::text::run_state)
           AND ($3::uuid IS NULL OR r.job_id = $3)
           AND ($4::uuid IS NULL OR j.project_id = $4)
           AND ($5::timestamptz IS NULL OR r.queued_at >= $5)
           AND ($6::timestamptz IS NULL OR r.queued_at < $6)
           AND ($7::timestamptz IS NULL OR (r.queued_at, r.id) < ($7, $8))
         ORDER BY r.queued_at DESC, r.id DESC LIMIT $9"
    );
}

/// One run, scoped to `owner` (None: any owner), whether or not its job is deleted.
pub async fn get(
    c: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<Run>, Error> {
    let stmt = c.prepare_cached(GET).await?;
    c.query_opt(&stmt, &[&id, &owner])
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// A run, scoped to `owner` (None: any owner), with the runs its outcome started (first
/// attempts, scoped to `owner` too) as (run id, job id, state), oldest first: one
/// statement.
pub async fn get_with_children(
    c: &impl GenericClient,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<(Run, Vec<(Uuid, Uuid, String)>)>, Error> {
    let stmt = c.prepare_cached(GET_WITH_CHILDREN).await?;
    let Some(row) = c.query_opt(&stmt, &[&id, &owner]).await? else {
        return Ok(None);
    };
    let run = from_row(&row)?;
    let ids: Option<Vec<Uuid>> = row.try_get("child_ids")?;
    let job_ids: Option<Vec<Uuid>> = row.try_get("child_job_ids")?;
    let states: Option<Vec<String>> = row.try_get("child_states")?;
    let children = ids
        .unwrap_or_default()
        .into_iter()
        .zip(job_ids.unwrap_or_default())
        .zip(states.unwrap_or_default())
        .map(|((id, job_id), state)| (id, job_id, state))
        .collect();
    Ok(Some((run, children)))
}

/// The attempt that follows `id` (its retry or rescue), if one was queued. Retries are
/// queued in the transaction that records the failure, so a failed run without one has
/// no further attempt coming from its failure.
pub async fn next_attempt(c: &impl GenericClient, id: Uuid) -> Result<Option<Run>, Error> {
    let stmt = c.prepare_cached(NEXT_ATTEMPT).await?;
    c.query_opt(&stmt, &[&id])
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// A job's runs, newest first, strictly older than the `before` cursor.
pub async fn list_by_job(
    c: &impl GenericClient,
    job_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Run>, Error> {
    let stmt = c.prepare_cached(LIST_BY_JOB).await?;
    let (at, cursor_id) = before.unzip();
    let rows = c.query(&stmt, &[&job_id, &at, &cursor_id, &limit]).await?;
    rows.iter().map(from_row).collect()
}

/// Filters of the runs collection; `None` means any.
#[derive(Debug, Default, Clone)]
pub struct RunFilter {
    pub state: Option<RunState>,
    pub job_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    /// Queued at or after.
    pub from: Option<DateTime<Utc>>,
    /// Queued before.
    pub to: Option<DateTime<Utc>>,
}

/// Runs visible to `owner` matching `filter`, newest first, strictly older than `before`.
pub async fn list(
    c: &impl GenericClient,
    owner: Option<Uuid>,
    filter: &RunFilter,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Run>, Error> {
    let stmt = c.prepare_cached(LIST).await?;
    let (at, cursor_id) = before.unzip();
    let state = filter.state.map(RunState::as_str);
    let rows = c
        .query(
            &stmt,
            &[
                &owner,
                &state,
                &filter.job_id,
                &filter.project_id,
                &filter.from,
                &filter.to,
                &at,
                &cursor_id,
                &limit,
            ],
        )
        .await?;
    rows.iter().map(from_row).collect()
}
