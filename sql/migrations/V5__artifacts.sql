-- Uploaded artifacts: one row per immutable version. A deleted version keeps its row
-- (deleted_at) so that version numbers are never reused.

CREATE TABLE artifacts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id  uuid NOT NULL REFERENCES projects (id),
    name        text NOT NULL CHECK (name ~ '^[A-Za-z0-9._-]{1,128}$'),
    version     integer NOT NULL CHECK (version >= 1),
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes  bigint NOT NULL CHECK (size_bytes >= 0),
    storage_key text NOT NULL UNIQUE,
    uploaded_by uuid REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    UNIQUE (project_id, name, version)
);
CREATE INDEX artifacts_live_idx ON artifacts (project_id, name, version DESC) WHERE deleted_at IS NULL;
