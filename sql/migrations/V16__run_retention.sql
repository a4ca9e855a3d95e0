-- Retention of finished runs (issue 26): the scheduling leader deletes old run chains in
-- bounded batches (sql/src/retention.rs; docs/execution.md, "Retention").
--
-- Old binaries keep working against this schema during a rolling deploy: it only adds
-- indexes. Each is built under a SHARE lock (a migration runs in a transaction, so not
-- CONCURRENTLY): writes to the table wait for one pass over it, seconds at 10 M runs.

-- A chain (a first attempt and its retries) is deleted whole, and its retries are found
-- by first_run_id. Only retry attempts carry one, so the index stays small and a run
-- without retries costs it nothing.
CREATE INDEX runs_first_run_idx ON runs (first_run_id) WHERE first_run_id IS NOT NULL;

-- A deleted run takes its idempotency key with it (ON DELETE CASCADE on run_id). Without
-- an index on run_id each deleted run's cascade read the whole table, so a batch of a
-- thousand runs read it a thousand times (and so did the purge of a deleted job).
CREATE INDEX run_idempotency_keys_run_idx ON run_idempotency_keys (run_id);
