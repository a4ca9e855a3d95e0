-- The outcome outbox check (V9, V11) runs for every finished run. As a SQL-language
-- function it was planned again on every call (about 0.3 ms per finished run in
-- make bench, the largest statement cost of a burn-down). In PL/pgSQL its queries keep
-- their plans for the session. Same answer as V11's version.
CREATE OR REPLACE FUNCTION jobcenter_outcome_wanted(job uuid) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM job_children WHERE job_id = job)
        OR EXISTS (SELECT 1 FROM jobs WHERE id = job AND pause_after_failures IS NOT NULL)
        OR EXISTS (SELECT 1 FROM notification_channels WHERE job_id = job)
        OR EXISTS (SELECT 1 FROM notification_channels c JOIN jobs j ON j.project_id = c.project_id
                   WHERE j.id = job AND c.job_id IS NULL);
END $$;

-- Whether anything wants the outcome is asked first: for most jobs the answer is no, and
-- the probe for a next attempt is not needed.
CREATE OR REPLACE FUNCTION jobcenter_record_run_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT jobcenter_outcome_wanted(NEW.job_id) THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM runs WHERE previous_run_id = NEW.id) THEN
        RETURN NULL;
    END IF;
    INSERT INTO run_outcomes (run_id, job_id, state, finished_at)
    SELECT id, job_id, state, finished_at FROM runs
    WHERE id = NEW.id AND finished_at IS NOT NULL
    ON CONFLICT (run_id) DO NOTHING;
    RETURN NULL;
END $$;

-- The indexes on runs in flight see each row enter and leave within seconds. With
-- deduplication, equal keys (a burst queued in one transaction shares its queued_at; a
-- worker's running runs share its id) are merged into posting lists, and a posting list
-- can be marked dead only once every run in it has left: until a VACUUM, each claim
-- and each lease renewal read past the runs already gone. On a table with millions of
-- finished runs autovacuum comes rarely, and burn-down halved at 1 M finished runs in
-- make bench. Without deduplication each entry is marked dead by the first scan that
-- finds its run gone. (Applies to entries written from now on.)
ALTER INDEX runs_queue_idx SET (deduplicate_items = off);
ALTER INDEX runs_running_idx SET (deduplicate_items = off);
ALTER INDEX runs_lease_idx SET (deduplicate_items = off);
ALTER INDEX runs_job_active_idx SET (deduplicate_items = off);
