-- Execution semantics under faults: leases and fencing, attempts linked into chains,
-- retry backoff, concurrency policies enforced by the database, catch-up policies.
-- Forward-only; old binaries keep working against it (every new column has a default).

CREATE TYPE catch_up_policy AS ENUM ('once', 'each', 'skip');

ALTER TABLE jobs
    ADD COLUMN catch_up catch_up_policy NOT NULL DEFAULT 'once';

ALTER TABLE runs
    -- Fencing token of the current holder: a fresh value per claim. Every state change
    -- a worker makes names it, so a worker whose lease was taken away changes nothing.
    ADD COLUMN lease_id uuid,
    -- Renewed by the holder's heartbeat; past it the leader rescues the run.
    ADD COLUMN lease_expires_at timestamptz,
    -- The first attempt of this run's chain (NULL on the first attempt itself).
    ADD COLUMN first_run_id uuid,
    -- The attempt this one follows (automatic retry or rescue); at most one follower.
    ADD COLUMN previous_run_id uuid,
    -- The finished run this one re-runs by hand (POST /runs/{id}/retry).
    ADD COLUMN retry_of uuid,
    -- Not claimed before this instant (retry backoff).
    ADD COLUMN not_before timestamptz NOT NULL DEFAULT now(),
    -- Copied from the job's concurrency policy at insert: queue and skip runs of one
    -- job never run two at once (enforced by runs_one_exclusive_running_idx).
    ADD COLUMN exclusive boolean NOT NULL DEFAULT false;

-- Fencing between two claimers of the same exclusive job: the second one's update fails.
CREATE UNIQUE INDEX runs_one_exclusive_running_idx ON runs (job_id)
    WHERE state = 'running' AND exclusive;
-- An attempt has at most one follow-up attempt, even if two leaders rescue it.
CREATE UNIQUE INDEX runs_one_next_attempt_idx ON runs (previous_run_id)
    WHERE previous_run_id IS NOT NULL;
CREATE INDEX runs_lease_idx ON runs (lease_expires_at) WHERE state = 'running';
CREATE INDEX runs_job_active_idx ON runs (job_id, queued_at) WHERE state IN ('queued', 'running');
