-- Schedule policies: backfill, jitter (DST choices live in jobs.schedule, jsonb).
-- Forward-only; old binaries keep working against it (every new column has a default,
-- and their ON CONFLICT clause still infers the new tick index).

-- Runs created by POST /jobs/{id}/backfill. Not used below: a value added by
-- ALTER TYPE cannot be used in the transaction that adds it.
ALTER TYPE run_trigger ADD VALUE IF NOT EXISTS 'backfill';

-- The spread of a job's start after each tick (its offset derives from the job id).
ALTER TABLE jobs
    ADD COLUMN jitter_seconds integer NOT NULL DEFAULT 0
        CHECK (jitter_seconds BETWEEN 0 AND 3600);

-- One run per tick now covers backfilled ticks too: a backfill never doubles a tick the
-- scheduler fired, nor the reverse. Spelled without 'backfill' (see above): every
-- trigger but the three that never carry a tick. Runs without scheduled_for (NULL) never
-- conflict, whatever their trigger.
CREATE UNIQUE INDEX runs_one_per_tick_v10_idx ON runs (job_id, scheduled_for)
    WHERE attempt = 1 AND trigger NOT IN ('manual', 'webhook', 'retry');
DROP INDEX runs_one_per_tick_idx;
ALTER INDEX runs_one_per_tick_v10_idx RENAME TO runs_one_per_tick_idx;
