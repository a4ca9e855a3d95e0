-- The initial jobcenter schema. Forward-only: later changes are new numbered files.
-- Run states are spelled the same everywhere (database, JSON, logs, metrics, docs).

CREATE TYPE user_role AS ENUM ('admin', 'developer');
CREATE TYPE run_state AS ENUM
    ('queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'skipped');
CREATE TYPE run_trigger AS ENUM ('manual', 'schedule', 'webhook', 'retry');
CREATE TYPE concurrency_policy AS ENUM ('allow', 'queue', 'skip');

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username      text NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 64),
    password_hash text NOT NULL,
    role          user_role NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id    uuid NOT NULL REFERENCES users (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    description text NOT NULL DEFAULT '',
    config      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_owner_idx ON projects (owner_id);

CREATE TABLE jobs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id      uuid NOT NULL REFERENCES projects (id),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    target          jsonb NOT NULL,
    schedule        jsonb NOT NULL,
    starts_at       timestamptz,
    ends_at         timestamptz,
    concurrency     concurrency_policy NOT NULL DEFAULT 'allow',
    timeout_seconds integer NOT NULL DEFAULT 3600 CHECK (timeout_seconds BETWEEN 1 AND 604800),
    max_attempts    integer NOT NULL DEFAULT 1 CHECK (max_attempts BETWEEN 1 AND 100),
    env             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(env) = 'object'),
    worker_group    text NOT NULL DEFAULT 'default',
    enabled         boolean NOT NULL DEFAULT true,
    -- The next instant the schedule fires; NULL when it never fires again (manual,
    -- past ends_at). The leader advances it in the same transaction that queues a tick.
    next_fire_at    timestamptz,
    deleted_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at IS NULL OR starts_at IS NULL OR starts_at < ends_at)
);
CREATE INDEX jobs_project_idx ON jobs (project_id);
CREATE INDEX jobs_due_idx ON jobs (next_fire_at)
    WHERE enabled AND deleted_at IS NULL AND next_fire_at IS NOT NULL;
CREATE INDEX jobs_deleted_idx ON jobs (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE workers (
    id           uuid PRIMARY KEY,
    worker_group text NOT NULL,
    hostname     text NOT NULL,
    capacity     integer NOT NULL CHECK (capacity > 0),
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    drained      boolean NOT NULL DEFAULT false
);

CREATE TABLE runs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id           uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    state            run_state NOT NULL DEFAULT 'queued',
    trigger          run_trigger NOT NULL,
    attempt          integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    worker_group     text NOT NULL,
    input            jsonb NOT NULL DEFAULT 'null',
    result           text,
    exit_code        integer,
    error            text,
    scheduled_for    timestamptz,
    queued_at        timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    worker_id        uuid,
    cancel_requested boolean NOT NULL DEFAULT false,
    CHECK ((state IN ('queued', 'running')) = (finished_at IS NULL)),
    CHECK (state <> 'running' OR (started_at IS NOT NULL AND worker_id IS NOT NULL))
);
-- One run per schedule tick, even with two leaders by mistake.
CREATE UNIQUE INDEX runs_one_per_tick_idx ON runs (job_id, scheduled_for)
    WHERE trigger = 'schedule' AND attempt = 1;
CREATE INDEX runs_queue_idx ON runs (worker_group, queued_at) WHERE state = 'queued';
CREATE INDEX runs_running_idx ON runs (worker_id) WHERE state = 'running';
CREATE INDEX runs_job_idx ON runs (job_id, queued_at DESC);

CREATE TABLE run_logs (
    run_id     uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq        integer NOT NULL,
    stream     text NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
    data       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);

-- What the last successful run of a job left in $JOBCENTER_STATE_FILE.
CREATE TABLE job_state (
    job_id     uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    data       bytea NOT NULL,
    run_id     uuid NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    actor_id uuid,
    action   text NOT NULL,
    subject  text NOT NULL,
    detail   jsonb NOT NULL DEFAULT '{}',
    at       timestamptz NOT NULL DEFAULT now()
);
