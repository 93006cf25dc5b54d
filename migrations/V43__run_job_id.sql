-- The queued job that started a run: its idempotency key (docs/queue.md). A job id already recorded
-- on a finished run is acknowledged without a second run. Additive: older instances ignore the column.
ALTER TABLE sync_runs ADD COLUMN job_id uuid;
CREATE UNIQUE INDEX sync_runs_job_id ON sync_runs (job_id) WHERE job_id IS NOT NULL;
