-- Webhook filters (issue 26): a webhook may take only some events (`X-GitHub-Event`,
-- `X-Gitlab-Event`) and only some branches or refs (patterns against the payload's
-- `ref`). Empty means all, which is what every existing webhook keeps.
--
-- Old binaries keep working against this schema during a rolling deploy: the columns
-- have defaults and nothing old reads them.
ALTER TABLE webhooks
    ADD COLUMN events   text[] NOT NULL DEFAULT '{}' CHECK (cardinality(events) <= 32),
    ADD COLUMN branches text[] NOT NULL DEFAULT '{}' CHECK (cardinality(branches) <= 32);
