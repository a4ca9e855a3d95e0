-- Pipelines (issue 8): child jobs triggered by a parent's outcome, pause after repeated
-- failures, and the outbox of final outcomes both are driven from.
-- Forward-only; every new column has a default, so older binaries keep working.

ALTER TYPE run_trigger ADD VALUE 'parent';

CREATE TYPE child_condition AS ENUM ('on_success', 'on_failure', 'on_finish');

-- A job's children: when a run of `job_id` ends as `condition` says, `child_job_id` runs.
CREATE TABLE job_children (
    job_id       uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    child_job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    condition    child_condition NOT NULL,
    PRIMARY KEY (job_id, child_job_id, condition)
);
CREATE INDEX job_children_child_idx ON job_children (child_job_id);

ALTER TABLE jobs
    -- Pause (disable) the job after this many consecutive failed runs; NULL: never.
    ADD COLUMN pause_after_failures integer CHECK (pause_after_failures BETWEEN 1 AND 1000),
    -- Set when the job paused itself; cleared when it is enabled again.
    ADD COLUMN paused_at timestamptz,
    ADD COLUMN paused_reason text,
    -- Who enabled the job after its last pause, and when.
    ADD COLUMN resumed_at timestamptz,
    ADD COLUMN resumed_by uuid REFERENCES users (id) ON DELETE SET NULL;

-- The run whose outcome triggered this one (kept by its retry attempts).
ALTER TABLE runs ADD COLUMN parent_run_id uuid;
-- A parent's outcome starts each child once, however often it is processed.
CREATE UNIQUE INDEX runs_one_child_per_parent_idx ON runs (parent_run_id, job_id)
    WHERE parent_run_id IS NOT NULL AND attempt = 1 AND retry_of IS NULL;

-- Outbox: one row per run chain that reached its final outcome (its last attempt
-- ended and no retry follows). Written at commit by the transaction that ended the run,
-- whoever that was (worker, rescue, cancel), and consumed by the scheduling leader.
CREATE TABLE run_outcomes (
    run_id       uuid PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    job_id       uuid NOT NULL,
    state        run_state NOT NULL,
    finished_at  timestamptz NOT NULL,
    processed_at timestamptz
);
CREATE INDEX run_outcomes_pending_idx ON run_outcomes (finished_at) WHERE processed_at IS NULL;
CREATE INDEX run_outcomes_job_idx ON run_outcomes (job_id, finished_at DESC);

-- Whether anything acts on the outcomes of `job`: only then is one recorded, so that
-- runs of jobs without children or a pause rule cost no extra writes. A later feature
-- that consumes outcomes replaces this function (CREATE OR REPLACE) to add its test.
CREATE FUNCTION jobcenter_outcome_wanted(job uuid) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM job_children WHERE job_id = job)
        OR EXISTS (SELECT 1 FROM jobs WHERE id = job AND pause_after_failures IS NOT NULL)
$$;

-- Deferred to commit, so it sees whether the same transaction queued a next attempt.
CREATE FUNCTION jobcenter_record_run_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM runs WHERE previous_run_id = NEW.id)
       OR NOT jobcenter_outcome_wanted(NEW.job_id) THEN
        RETURN NULL;
    END IF;
    INSERT INTO run_outcomes (run_id, job_id, state, finished_at)
    SELECT id, job_id, state, finished_at FROM runs
    WHERE id = NEW.id AND finished_at IS NOT NULL
    ON CONFLICT (run_id) DO NOTHING;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER runs_record_outcome
    AFTER UPDATE OF state ON runs
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (OLD.state IN ('queued', 'running') AND NEW.state NOT IN ('queued', 'running'))
    EXECUTE FUNCTION jobcenter_record_run_outcome();
