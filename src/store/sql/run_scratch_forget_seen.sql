-- What a restarted listing forgets (src/store/run_scratch.rs `forget_seen`): the run's seen rows,
-- seen memberships and seen chunks, in one statement (one round trip). Each DELETE reads its table's
-- primary key, which leads with run_id.
WITH seen_objects AS (DELETE FROM sync_run_seen_objects WHERE run_id = $1),
     seen_members AS (DELETE FROM sync_run_seen_members WHERE run_id = $1)
DELETE FROM sync_run_seen_chunks WHERE run_id = $1
