//! Group commit of run outcomes: the outcomes of runs that finish close together are
//! written in one transaction (one commit, one WAL flush), and each run hears back only
//! after that transaction has committed.
//!
//! One task owns the writing. While a batch commits, the outcomes that arrive meanwhile
//! wait in the channel and form the next batch: no timer, no added latency at idle.
//! A batch that fails for a reason other than an unreachable database is written again
//! one outcome per transaction, so one bad outcome cannot hold back the others.
//!
//! The same transaction claims the next runs for the slots the finished runs free (while
//! the worker is claiming): a run finishing and the next one starting cost one commit,
//! not two, and the slot does not wait for a second round trip. Each run's task gets its
//! successor with the answer and executes it in the same slot. The claim runs under a
//! savepoint: if it fails (a race for an exclusive job's slot), the outcomes still
//! commit, and the claim loop claims for the freed slots as before.
//!
//! A batch of outcomes and log lines alone (the usual case) skips the steps: its whole
//! transaction, `BEGIN` to `COMMIT`, is sent as one pipeline and costs one round trip.
//! If anything in it fails, nothing is written, and the batch is written again step by
//! step.

use jobcenter_sql::runs::{ClaimedRun, Finish, NextClaim, Outcome};
use jobcenter_sql::states::RunState;
use jobcenter_sql::Pool;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Most outcomes in one transaction.
const MAX_BATCH: usize = 128;

/// A finished run's outcome, as the worker reports it.
#[derive(Clone)]
pub struct Completion {
    pub run_id: Uuid,
    pub lease_id: Uuid,
    pub job_id: Uuid,
    pub state: RunState,
    pub exit_code: Option<i32>,
    pub result: Option<String>,
    pub error: Option<String>,
    /// The job's new state (a successful run's state file).
    pub new_state: Option<Vec<u8>>,
    /// A `system` line that is the run's whole log (an HTTP run's request and answer).
    pub log_line: Option<String>,
    /// Queue the next attempt after this delay (a failed run with attempts left).
    pub retry_after: Option<Duration>,
    /// The run's slot is free once this is recorded: claim a run for it.
    pub claim_next: bool,
}

/// What became of a recorded outcome.
pub struct Recorded {
    /// The run was still held under its lease and is now finished (false: the lease
    /// was gone and nothing was changed).
    pub held: bool,
    /// The run claimed for the freed slot, if any.
    pub next: Option<ClaimedRun>,
}

/// Who claims runs for freed slots, and whether to.
#[derive(Clone)]
pub struct NextClaims {
    pub worker_id: uuid::Uuid,
    pub group: String,
    pub lease: Duration,
    /// Cleared when the worker stops claiming (shutdown).
    pub open: Arc<AtomicBool>,
}

/// Why an outcome was not written.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The database could not be reached: worth trying again.
    pub unavailable: bool,
    pub message: String,
}

impl From<&jobcenter_sql::Error> for Failure {
    fn from(e: &jobcenter_sql::Error) -> Self {
        Failure {
            unavailable: e.is_unavailable(),
            message: e.to_string(),
        }
    }
}

type Request = (Completion, oneshot::Sender<Result<Recorded, Failure>>);

/// The handle runs report their outcomes through.
#[derive(Clone)]
pub struct Completer {
    requests: mpsc::UnboundedSender<Request>,
}

impl Completer {
    /// Starts the writing task (it ends when every handle is dropped).
    pub fn start(pool: Pool, claims: NextClaims) -> Self {
        let (requests, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_forever(pool, claims, rx));
        Completer { requests }
    }

    /// Writes `completion` and returns once it is committed.
    pub async fn record(&self, completion: Completion) -> Result<Recorded, Failure> {
        let (done, answer) = oneshot::channel();
        let gone = || Failure {
            unavailable: false,
            message: "the outcome writer stopped".into(),
        };
        self.requests.send((completion, done)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn write_forever(pool: Pool, claims: NextClaims, mut rx: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let (completions, waiters): (Vec<Completion>, Vec<_>) = batch.into_iter().unzip();
        let answers = match write(&pool, &claims, completions.as_slice()).await {
            Ok(recorded) => recorded.into_iter().map(Ok).collect(),
            Err(e) if completions.len() > 1 && !e.is_unavailable() => {
                tracing::warn!(error = %e, outcomes = completions.len(), "group commit failed; writing the outcomes one by one");
                let mut answers = Vec::with_capacity(completions.len());
                for completion in &completions {
                    let one = write(&pool, &claims, std::slice::from_ref(completion)).await;
                    let one = one.map(|mut recorded| recorded.remove(0));
                    answers.push(one.map_err(|e| Failure::from(&e)));
                }
                answers
            }
            Err(e) => (0..completions.len())
                .map(|_| Err(Failure::from(&e)))
                .collect(),
        };
        for (waiter, answer) in waiters.into_iter().zip(answers) {
            if let Err(Ok(Recorded {
                next: Some(run), ..
            })) = waiter.send(answer)
            {
                // Nobody waits for it any more: its successor goes back to the queue.
                hand_back(&pool, &run).await;
            }
        }
    }
}

/// Writes the outcomes, the jobs' new states, the log lines and the next attempts, and
/// claims runs for the freed slots, in one transaction; returns, per outcome, whether
/// its run was still held and the run claimed for its slot.
///
/// Most batches hold only outcomes and log lines (no new state or retry, which depend
/// on which runs were still held): their transaction is sent as one pipeline, one round
/// trip. Should it fail, or for the other batches, the transaction goes step by step.
async fn write(
    pool: &Pool,
    claims: &NextClaims,
    completions: &[Completion],
) -> Result<Vec<Recorded>, jobcenter_sql::Error> {
    let mut client = pool.get().await?;
    let finishes: Vec<Finish<'_>> = completions
        .iter()
        .map(|c| Finish {
            run_id: c.run_id,
            lease_id: c.lease_id,
            outcome: Outcome {
                state: c.state,
                exit_code: c.exit_code,
                result: c.result.as_deref(),
                error: c.error.as_deref(),
            },
        })
        .collect();
    let wanted = completions.iter().filter(|c| c.claim_next).count();
    let fits_one_pipeline = completions
        .iter()
        .all(|c| c.new_state.is_none() && c.retry_after.is_none());
    let lines: Vec<(Uuid, &str)> = completions
        .iter()
        .filter_map(|c| Some((c.run_id, c.log_line.as_deref()?)))
        .collect();
    if fits_one_pipeline {
        let next = (wanted > 0 && claims.open.load(Ordering::SeqCst)).then(|| NextClaim {
            worker_id: claims.worker_id,
            group: &claims.group,
            limit: wanted as i64,
            lease_ms: claims.lease.as_millis() as i64,
        });
        match jobcenter_sql::runs::finish_and_claim(&client, &finishes, &lines, next).await {
            Ok((held, next)) => return Ok(recorded(completions, held.into_iter().collect(), next)),
            Err(e) if e.is_unavailable() => return Err(e),
            // Nothing was written (a claim racing for an exclusive job's slot, say).
            Err(e) => {
                tracing::debug!(error = %e, "pipelined group commit failed; writing step by step")
            }
        }
    }
    let tx = client.transaction().await?;
    let held: HashSet<Uuid> = jobcenter_sql::runs::finish_many(&tx, &finishes, &lines)
        .await?
        .into_iter()
        .collect();
    // In job order (stable: a job's later run still wins), so that two workers' batches
    // lock job_state rows in the same order and cannot deadlock.
    let mut states: Vec<&Completion> = completions
        .iter()
        .filter(|c| c.new_state.is_some() && held.contains(&c.run_id))
        .collect();
    states.sort_by_key(|c| c.job_id);
    for c in states {
        let data = c.new_state.as_deref().unwrap_or_default();
        jobcenter_sql::job_state::put(&tx, c.job_id, c.run_id, data).await?;
    }
    for c in completions.iter().filter(|c| held.contains(&c.run_id)) {
        if let Some(delay) = c.retry_after {
            if let Some(next) =
                jobcenter_sql::runs::insert_next_attempt(&tx, c.run_id, delay).await?
            {
                tracing::info!(run_id = %c.run_id, next_run_id = %next.id, attempt = next.attempt, delay_ms = delay.as_millis() as u64, "retry queued");
            }
        }
    }
    let next = claim_next(&tx, claims, wanted).await?;
    tx.commit().await?;
    Ok(recorded(completions, held, next))
}

/// Pairs each outcome with whether its run was held and the run claimed for its slot.
fn recorded(
    completions: &[Completion],
    held: HashSet<Uuid>,
    next: Vec<ClaimedRun>,
) -> Vec<Recorded> {
    let mut next = next.into_iter();
    completions
        .iter()
        .map(|c| Recorded {
            held: held.contains(&c.run_id),
            next: if c.claim_next { next.next() } else { None },
        })
        .collect()
}

/// Claims up to `wanted` runs under a savepoint; none if the worker stopped claiming or
/// the claim failed (the outcomes commit regardless). An error only if the transaction
/// could not be brought back to the savepoint.
async fn claim_next(
    tx: &jobcenter_sql::Transaction<'_>,
    claims: &NextClaims,
    wanted: usize,
) -> Result<Vec<ClaimedRun>, jobcenter_sql::Error> {
    if wanted == 0 || !claims.open.load(Ordering::SeqCst) {
        return Ok(Vec::new());
    }
    let lease_ms = claims.lease.as_millis() as i64;
    let claim =
        jobcenter_sql::runs::claim(tx, claims.worker_id, &claims.group, wanted as i64, lease_ms);
    match jobcenter_sql::savepoint::attempt(tx, claim).await? {
        Ok(runs) => Ok(runs),
        Err(e) => {
            tracing::debug!(error = %e, "no runs claimed with the outcomes; the claim loop will");
            Ok(Vec::new())
        }
    }
}

/// Puts a claimed run that will not be executed here back in the queue.
pub async fn hand_back(pool: &Pool, run: &ClaimedRun) {
    let result = async {
        let client = pool.get().await?;
        jobcenter_sql::runs::hand_back(&client, run.id, run.lease_id).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(run_id = %run.id, error = %e, "cannot hand an unstarted run back; its lease will expire and the leader rescue it");
    }
}
