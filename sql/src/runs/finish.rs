//! Ending runs: the outcomes workers report ([`finish`], [`finish_many`], and
//! [`finish_and_claim`], the worker's group commit), cancels, and the expired leases the
//! leader rescues. Each is a compare-and-set that only the lease holder (or a run still
//! in the state it expects) can win.

use super::claim::CLAIM;
use super::row::{claimed_from_row, ClaimedRun};
use crate::states::RunState;
use crate::{Error, GenericClient};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// Sent before [`FINISH_MANY`], in its transaction; see [`finish_many`] for why.
macro_rules! plan_by_index {
    () => {
        "SET LOCAL plan_cache_mode = force_generic_plan;
         SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off"
    };
}

statements! {
    /// The outcomes ($1–$6) and the log lines that go with them ($7, $8): a line is
    /// written only with the finish of its run.
    pub(crate) const FINISH_MANY: Statement = "WITH finished AS (
       UPDATE runs r SET state = f.state::run_state, exit_code = f.exit_code,
              result = f.result, error = f.error, finished_at = now(),
              lease_expires_at = NULL
       FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int4[], $5::text[], $6::text[])
            AS f(id, lease_id, state, exit_code, result, error)
       WHERE r.id = f.id AND r.lease_id = f.lease_id AND r.state = 'running'
       RETURNING r.id),
     logged AS (
       INSERT INTO run_logs (run_id, seq, stream, data)
       SELECT l.run_id, 0, 'system', l.data
       FROM unnest($7::uuid[], $8::text[]) AS l(run_id, data)
       JOIN finished f ON f.id = l.run_id)
     SELECT id FROM finished";

    /// Sent before [`FINISH_MANY`]; see [`finish_many`] for why.
    pub(crate) const PLAN_BY_INDEX: Batch = plan_by_index!();
    /// The pipeline's first request: [`PLAN_BY_INDEX`] in a new transaction.
    pub(crate) const BEGIN_PLANNED_BY_INDEX: Batch = concat!("BEGIN; ", plan_by_index!());
    /// Sent after [`FINISH_MANY`], so that what follows in the transaction is planned as
    /// usual.
    pub(crate) const PLAN_AS_USUAL: Batch = "SET LOCAL plan_cache_mode TO DEFAULT;
        SET LOCAL enable_seqscan TO DEFAULT; SET LOCAL enable_bitmapscan TO DEFAULT";
    pub(crate) const COMMIT: Statement = "COMMIT";

    /// Cancels run `$1` if it is queued.
    pub(crate) const CANCEL_QUEUED: Statement =
        "UPDATE runs SET state = 'cancelled', cancel_requested = true, finished_at = now(),
                error = 'cancelled before it started'
         WHERE id = $1 AND state = 'queued'";
    /// Flags run `$1` if it is running, and tells its worker.
    pub(crate) const CANCEL_RUNNING: Statement = concat!(
        "UPDATE runs SET cancel_requested = true WHERE id = $1 AND state = 'running'
         RETURNING pg_notify('",
        cancel_channel!(),
        "', id::text)"
    );

    /// Up to `$1` running runs whose lease expired, locked.
    pub(crate) const LOCK_EXPIRED: Statement =
        "SELECT r.id, r.lease_id, r.attempt, j.max_attempts, r.cancel_requested
         FROM runs r JOIN jobs j ON j.id = r.job_id
         WHERE r.state = 'running' AND r.lease_expires_at < now()
         ORDER BY r.lease_expires_at LIMIT $1 FOR UPDATE OF r SKIP LOCKED";

    /// Cancels the queued runs of job `$1`, with error `$2`.
    pub(crate) const CANCEL_QUEUED_FOR_JOB: Statement =
        "UPDATE runs SET state = 'cancelled', error = $2, finished_at = now()
         WHERE job_id = $1 AND state = 'queued'";
}

/// The outcome a worker reports for a run it holds.
#[derive(Clone, Copy)]
pub struct Outcome<'a> {
    pub state: RunState,
    pub exit_code: Option<i32>,
    pub result: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// Records the outcome of a run held under `lease_id`. False: the lease is gone (the
/// run was rescued, handed back or already finished) and nothing was changed.
pub async fn finish(
    tx: &deadpool_postgres::Transaction<'_>,
    run_id: Uuid,
    lease_id: Uuid,
    outcome: &Outcome<'_>,
) -> Result<bool, Error> {
    let finish = Finish {
        run_id,
        lease_id,
        outcome: *outcome,
    };
    Ok(!finish_many(tx, &[finish], &[]).await?.is_empty())
}

/// One run's outcome in a group commit, see [`finish_many`].
pub struct Finish<'a> {
    pub run_id: Uuid,
    pub lease_id: Uuid,
    pub outcome: Outcome<'a>,
}

/// Records several outcomes in one statement, each fenced by its lease like [`finish`];
/// returns the runs that were still held (and are now finished). `lines` are `system`
/// lines that are the whole log of their runs (an HTTP run's request and answer): the
/// same statement writes those of the runs it finishes, and no others.
///
/// The statement runs with its generic plan. Left to choose, Postgres planned it anew
/// on every call: the length of the arrays changes its estimate, so a custom plan always
/// looked cheaper, and planning cost nearly as much as the update. That plan is made once
/// per session, from the statistics of that moment. Where they said few runs were
/// running (a table emptied and vacuumed, or new), it was a bitmap scan of every entry of
/// `runs_lease_idx`: a bitmap scan never marks an index entry dead, so each outcome read
/// again the entries of all the runs finished since the last vacuum (287 of them and
/// 0.6 ms per outcome at idle in make bench, against 3 and 0.2 ms by a plain index scan on
/// the table beside it). So it is planned without bitmap or sequential scans: each run
/// is found by a plain index scan, whatever the statistics say. The settings are sent
/// with the statement (no extra round trip) and set back after it, for this transaction
/// only.
pub async fn finish_many(
    tx: &deadpool_postgres::Transaction<'_>,
    finishes: &[Finish<'_>],
    lines: &[(Uuid, &str)],
) -> Result<Vec<Uuid>, Error> {
    let stmt = tx.prepare_cached(FINISH_MANY).await?;
    let columns = FinishColumns::new(finishes, lines);
    let (generic, rows, auto) = futures_util::future::join3(
        tx.batch_execute(PLAN_BY_INDEX),
        tx.query(&stmt, &columns.params()),
        tx.batch_execute(PLAN_AS_USUAL),
    )
    .await;
    generic?;
    let rows = rows?;
    auto?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Who claims runs for the slots [`finish_and_claim`] frees, and how many.
pub struct NextClaim<'a> {
    pub worker_id: Uuid,
    pub group: &'a str,
    pub limit: i64,
    pub lease_ms: i64,
}

/// [`finish_many`], then the claim ([`CLAIM`], when `next` is given), in one transaction sent
/// as one pipeline: `BEGIN`, the finishes, the claim and `COMMIT` go out together and cost
/// one round trip instead of four.
///
/// An error means that nothing was written: a statement that fails aborts the
/// transaction, and the `COMMIT` behind it then ends it as a rollback. The caller can
/// write the same outcomes again another way. Once committed, a claimed run that cannot
/// be read (a target kind this build does not know) is left out and logged, as the claim
/// loop leaves it: its lease expires and the leader rescues it. (A lost connection, as always,
/// leaves it unknown whether the commit happened; the finishes are fenced by their
/// leases, so writing them again changes nothing twice.)
pub async fn finish_and_claim(
    client: &deadpool_postgres::Client,
    finishes: &[Finish<'_>],
    lines: &[(Uuid, &str)],
    next: Option<NextClaim<'_>>,
) -> Result<(Vec<Uuid>, Vec<ClaimedRun>), Error> {
    // Prepared first: a statement still to prepare would cost its own round trip in
    // the middle of the pipeline, and the statements behind it would overtake it.
    let finish_stmt = client.prepare_cached(FINISH_MANY).await?;
    let claim_stmt = match next {
        Some(_) => Some(client.prepare_cached(CLAIM).await?),
        None => None,
    };
    let columns = FinishColumns::new(finishes, lines);
    // Each request is sent when its future is first polled, and `join` polls in order.
    let claim = async {
        match (&claim_stmt, &next) {
            (Some(stmt), Some(n)) => {
                let lease = n.lease_ms as f64;
                let params: [&(dyn ToSql + Sync); 4] = [&n.group, &n.limit, &n.worker_id, &lease];
                client.query(stmt, &params).await.map(Some)
            }
            _ => Ok(None),
        }
    };
    let (begin, finished, reset, claimed, commit) = futures_util::future::join5(
        client.batch_execute(BEGIN_PLANNED_BY_INDEX),
        client.query(&finish_stmt, &columns.params()),
        client.batch_execute(PLAN_AS_USUAL),
        claim,
        client.batch_execute(COMMIT),
    )
    .await;
    // The first error is the cause; the rest only say that the transaction was aborted.
    begin?;
    let finished = finished?;
    reset?;
    let claimed = claimed?;
    commit?;
    let held = finished.iter().map(|r| r.get(0)).collect();
    // Committed: from here on, no error may send the caller to write it all again.
    let rows = claimed.unwrap_or_default();
    let claimed = rows.iter().filter_map(|row| {
        claimed_from_row(row)
            .inspect_err(|e| {
                let run_id: Uuid = row.get("id");
                tracing::error!(%run_id, error = %e, "claimed a run this worker cannot read; its lease will expire and the leader rescue it");
            })
            .ok()
    });
    Ok((held, claimed.collect()))
}

/// The parameters of [`FINISH_MANY`]: one array per column.
struct FinishColumns<'a> {
    ids: Vec<Uuid>,
    leases: Vec<Uuid>,
    states: Vec<&'static str>,
    exit_codes: Vec<Option<i32>>,
    results: Vec<Option<&'a str>>,
    errors: Vec<Option<&'a str>>,
    line_runs: Vec<Uuid>,
    line_data: Vec<&'a str>,
}

impl<'a> FinishColumns<'a> {
    fn new(finishes: &[Finish<'a>], lines: &[(Uuid, &'a str)]) -> Self {
        FinishColumns {
            ids: finishes.iter().map(|f| f.run_id).collect(),
            leases: finishes.iter().map(|f| f.lease_id).collect(),
            states: finishes
                .iter()
                .map(|f| {
                    debug_assert!(RunState::Running.can_become(f.outcome.state));
                    f.outcome.state.as_str()
                })
                .collect(),
            exit_codes: finishes.iter().map(|f| f.outcome.exit_code).collect(),
            results: finishes.iter().map(|f| f.outcome.result).collect(),
            errors: finishes.iter().map(|f| f.outcome.error).collect(),
            line_runs: lines.iter().map(|(run, _)| *run).collect(),
            line_data: lines.iter().map(|(_, line)| *line).collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.ids,
            &self.leases,
            &self.states,
            &self.exit_codes,
            &self.results,
            &self.errors,
            &self.line_runs,
            &self.line_data,
        ]
    }
}

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The run was queued: it is now `cancelled` and will never start.
    Cancelled,
    /// The run is running: its worker was notified and will kill it.
    Requested,
    /// The run had already finished.
    AlreadyFinished,
}

/// Cancels a run: a queued one at once, a running one by flagging it and notifying
/// [`crate::CANCEL_CHANNEL`] (payload: run id) so that its worker kills it.
pub async fn cancel(c: &impl GenericClient, run_id: Uuid) -> Result<CancelOutcome, Error> {
    debug_assert!(RunState::Queued.can_become(RunState::Cancelled));
    let queued = c.prepare_cached(CANCEL_QUEUED).await?;
    if c.execute(&queued, &[&run_id]).await? == 1 {
        return Ok(CancelOutcome::Cancelled);
    }
    let running = c.prepare_cached(CANCEL_RUNNING).await?;
    if c.query_opt(&running, &[&run_id]).await?.is_some() {
        return Ok(CancelOutcome::Requested);
    }
    Ok(CancelOutcome::AlreadyFinished)
}

/// A running run whose lease has expired (its worker is dead or cut off).
#[derive(Debug, Clone, Copy)]
pub struct Expired {
    pub id: Uuid,
    pub lease_id: Uuid,
    pub attempt: i32,
    pub max_attempts: i32,
    pub cancel_requested: bool,
}

/// Up to `limit` running runs whose lease expired, locked for the rescuing transaction.
pub async fn lock_expired(c: &impl GenericClient, limit: i64) -> Result<Vec<Expired>, Error> {
    let stmt = c.prepare_cached(LOCK_EXPIRED).await?;
    let rows = c.query(&stmt, &[&limit]).await?;
    rows.iter()
        .map(|r| {
            Ok(Expired {
                id: r.try_get("id")?,
                lease_id: r.try_get("lease_id")?,
                attempt: r.try_get("attempt")?,
                max_attempts: r.try_get("max_attempts")?,
                cancel_requested: r.try_get("cancel_requested")?,
            })
        })
        .collect()
}

/// Takes a job's queued runs out of the queue (they end `cancelled` with `reason`).
pub async fn cancel_queued_for_job(
    c: &impl GenericClient,
    job_id: Uuid,
    reason: &str,
) -> Result<u64, Error> {
    let stmt = c.prepare_cached(CANCEL_QUEUED_FOR_JOB).await?;
    Ok(c.execute(&stmt, &[&job_id, &reason]).await?)
}
