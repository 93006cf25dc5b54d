-- Every scratch row of a finished run (src/store/run_scratch.rs `clear`), in one statement: an
-- unchanged run ends with it, and five statements were five round trips for five empty ranges
-- (docs/benchmarks.md "Stop 24"). Each DELETE reads its table's primary key, which leads with run_id.
WITH seen_objects AS (DELETE FROM sync_run_seen_objects WHERE run_id = $1),
     seen_members AS (DELETE FROM sync_run_seen_members WHERE run_id = $1),
     seen_chunks AS (DELETE FROM sync_run_seen_chunks WHERE run_id = $1),
     pending AS (DELETE FROM sync_run_pending_deletions WHERE run_id = $1)
DELETE FROM sync_run_changed_objects WHERE run_id = $1
