-- Notifications (issue 8 part 2): channels (HTTP endpoints per project or per job) and a
-- durable outbox of deliveries, written in the transaction that processes a run's final
-- outcome and sent by the scheduling leader with retries. Forward-only and additive.

CREATE TABLE notification_channels (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- NULL: every job of the project.
    job_id     uuid REFERENCES jobs (id) ON DELETE CASCADE,
    url        text NOT NULL CHECK (url ~ '^https?://'),
    format     text NOT NULL CHECK (format IN ('json', 'slack')),
    -- HMAC-SHA256 key of the X-Jobcenter-Signature header.
    secret     text NOT NULL,
    events     text[] NOT NULL CHECK (
        cardinality(events) > 0
        AND events <@ ARRAY['failure', 'timeout', 'recovery', 'finish']::text[]),
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_channels_project_idx ON notification_channels (project_id);
CREATE INDEX notification_channels_job_idx ON notification_channels (job_id)
    WHERE job_id IS NOT NULL;

-- One row per (channel, final outcome): its id is the event id receivers dedupe on.
CREATE TABLE notification_deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    channel_id      uuid NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    run_id          uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    -- The most specific event (timeout, failure, recovery, finish) ...
    event           text NOT NULL,
    -- ... and every event of the outcome the channel asked for.
    events          text[] NOT NULL,
    payload         jsonb NOT NULL,
    -- Attempts started (counted when claimed, so a crash mid-send counts too).
    attempts        integer NOT NULL DEFAULT 0,
    -- Not sent before; while an attempt is in flight, the end of its lease.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_status     integer,
    last_error      text,
    delivered_at    timestamptz,
    gave_up_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- An outcome processed twice cannot enqueue twice.
    UNIQUE (channel_id, run_id)
);
CREATE INDEX notification_deliveries_due_idx ON notification_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX notification_deliveries_run_idx ON notification_deliveries (run_id);

-- Outcomes are recorded only for jobs something acts on (V9): channels count too.
CREATE OR REPLACE FUNCTION jobcenter_outcome_wanted(job uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM job_children WHERE job_id = job)
        OR EXISTS (SELECT 1 FROM jobs WHERE id = job AND pause_after_failures IS NOT NULL)
        OR EXISTS (SELECT 1 FROM notification_channels WHERE job_id = job)
        OR EXISTS (SELECT 1 FROM notification_channels c JOIN jobs j ON j.project_id = c.project_id
                   WHERE j.id = job AND c.job_id IS NULL)
$$;
