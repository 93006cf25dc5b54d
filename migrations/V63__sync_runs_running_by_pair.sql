-- The running runs of one (tenant, class), by their own small index. A job's start closes the runs of its
-- (tenant, class) left `running` by a holder that is gone (run_start_state.sql), and the coordinator's
-- sweep those nobody holds (runs_close_orphaned.sql). Without planner statistics both used
-- sync_runs_by_kind (status, object_class, …) in a bitmap scan, which visits the index entry of every run
-- of the class that finished since the table was last vacuumed (a run's row is inserted `running` and
-- updated to its end, and a bitmap scan never marks the old entry dead): a job's start cost ~0.7 ms more
-- per 10,000 such runs, fleet-wide (tests/bench/job_start_history.sh, docs/benchmarks.md "Stop 23"). Here
-- each job start finds its pair's entries by an index scan, which marks the dead ones so later scans skip
-- them, and the index holds only running runs once they are cleaned.
CREATE INDEX sync_runs_running_by_pair ON sync_runs (tenant_id, object_class) WHERE status = 'running';
