-- Project secrets: write-only values exported to runs as environment variables and
-- redacted from their stored logs and results.
CREATE TABLE project_secrets (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$' AND name NOT LIKE 'JOBCENTER\_%'),
    value      text NOT NULL CHECK (length(value) BETWEEN 1 AND 65536),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, name)
);
