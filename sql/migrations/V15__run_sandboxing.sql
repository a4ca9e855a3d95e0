-- Run sandboxing (issue 25): a job's network, the worker groups an admin allows a
-- project, and what each worker reports about the sandbox it enforces.
--
-- Old binaries keep working against this schema during a rolling deploy: every new
-- column has a default, and nothing they write is refused by it.

-- `none`: the run gets an empty network namespace; `outbound` (the default, what every
-- existing job does): the internet, but not the worker host's private addresses.
ALTER TABLE jobs ADD COLUMN network text NOT NULL DEFAULT 'outbound'
    CHECK (network IN ('none', 'outbound'));

-- The worker groups a project's jobs may use besides `default`, which is always allowed.
-- Only an admin changes the list (api/src/routes/projects.rs; docs/auth.md).
ALTER TABLE projects ADD COLUMN worker_groups text[] NOT NULL DEFAULT '{}';

-- Existing projects keep the groups their jobs (deleted ones included) already use, so
-- that no job is refused its next edit or restore by this upgrade; an admin can take a
-- group away afterwards.
UPDATE projects p SET worker_groups = g.groups
FROM (SELECT project_id, array_agg(DISTINCT worker_group ORDER BY worker_group) AS groups
      FROM jobs WHERE worker_group <> 'default' GROUP BY project_id) g
WHERE g.project_id = p.id;

-- What the worker enforces, as it registered (core::sandbox::SandboxReport). Workers of
-- older binaries register nothing here and show as unsandboxed.
ALTER TABLE workers ADD COLUMN sandbox jsonb NOT NULL
    DEFAULT '{"enabled": false, "unenforced": []}'
    CHECK (jsonb_typeof(sandbox) = 'object');
