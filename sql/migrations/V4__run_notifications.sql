-- Notifications any API node can listen to, raised by the database itself so that every
-- writer (worker, scheduler, API) is covered without each remembering to notify.
-- Payload: the run id. Identical payloads within one transaction are delivered once.

CREATE FUNCTION jobcenter_notify_run_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobcenter_run_finished', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER runs_finished_notify
    AFTER UPDATE OF state ON runs
    FOR EACH ROW
    WHEN (OLD.state IN ('queued', 'running') AND NEW.state NOT IN ('queued', 'running'))
    EXECUTE FUNCTION jobcenter_notify_run_finished();

CREATE FUNCTION jobcenter_notify_run_logs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobcenter_run_logs', NEW.run_id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER run_logs_notify
    AFTER INSERT ON run_logs
    FOR EACH ROW EXECUTE FUNCTION jobcenter_notify_run_logs();

-- Filters of GET /api/v1/runs: newest first within a state or a time range.
CREATE INDEX runs_state_queued_at_idx ON runs (state, queued_at DESC);
CREATE INDEX runs_queued_at_idx ON runs (queued_at DESC, id DESC);
