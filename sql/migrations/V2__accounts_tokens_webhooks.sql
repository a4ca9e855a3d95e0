-- Accounts, API tokens, webhooks, idempotent triggers and login throttling.
-- Forward-only; additive, so binaries of V1 keep working against it.

-- Long-lived tokens for CI and scripts. Only a SHA-256 of the token is stored: the
-- token itself is 190+ random bits, so a fast hash is enough (no password stretching).
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    token_sha256 text NOT NULL UNIQUE CHECK (length(token_sha256) = 64),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    CHECK (expires_at IS NULL OR expires_at > created_at)
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, created_at DESC);

-- One row per webhook of a job. The secret is kept as is: verifying GitHub's HMAC needs
-- the key itself, not a hash of it.
CREATE TABLE webhooks (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    secret     text NOT NULL CHECK (length(secret) >= 32),
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_delivery_at timestamptz
);
CREATE INDEX webhooks_job_idx ON webhooks (job_id, created_at DESC);

-- A trigger's idempotency key (an `Idempotency-Key` header or a webhook delivery id) and
-- the run it created: a repeated key answers that run instead of creating another.
CREATE TABLE run_idempotency_keys (
    job_id     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    key        text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    run_id     uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, key)
);

-- Failed logins per key (`user:NAME` or `addr:IP`), shared by every API node.
CREATE TABLE login_throttle (
    key          text PRIMARY KEY CHECK (length(key) <= 200),
    failures     integer NOT NULL CHECK (failures >= 0),
    window_start timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz
);

CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, id DESC);
CREATE INDEX audit_log_subject_idx ON audit_log (subject, id DESC);
