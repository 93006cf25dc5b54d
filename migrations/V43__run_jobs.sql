-- The queued jobs behind each run: a job id is an idempotency key (docs/queue.md). A run can serve
-- several jobs (one starts it, a redelivered or later one resumes it); a job can reach several runs
-- (given back to the queue after an outage, it runs again). `settled_at` is set when the worker
-- acknowledges the job after its run: a settled job id is never run again. Additive: older instances
-- ignore the table.
CREATE TABLE sync_run_jobs (
    job_id     uuid NOT NULL,
    run_id     uuid NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    settled_at timestamptz,
    PRIMARY KEY (job_id, run_id)
);
-- Deleting runs (with their tenant) finds their jobs.
CREATE INDEX sync_run_jobs_by_run ON sync_run_jobs (run_id);
