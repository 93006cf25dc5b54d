-- The job a supervisor (or the API) enqueued last for each (tenant, class). A run records the job it
-- took in sync_run_jobs, so "the last job has been taken" no longer depends on comparing the run's
-- start (the worker's clock) with the enqueue stamp (written after the broker's confirm, by then often
-- later than the start of the run that took the job). Additive: older instances ignore the column.
ALTER TABLE sync_schedules ADD COLUMN last_enqueued_job_id uuid;
