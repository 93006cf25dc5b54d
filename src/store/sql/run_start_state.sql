-- A job's second statement, in the same transaction as run_start_claim.sql and so with a snapshot taken
-- after the lock was taken (the previous holder's last commit precedes its release): everything the run
-- needs before Graph, and its start bookkeeping, only when this session holds the (tenant, class) lock.
-- That includes what the run's start would otherwise read in statements of its own: the cursor (as
-- store::cursors::load reads it) and whether deletions are held (as held_deletions::any_held).
-- $1 Entra tenant id, $2 class, $3 the class's lock key, $4 take the coalesced sync rerun request,
-- $5 how many live users decide the tenant's Graph size. No row: the lock is not held here.
WITH held AS (
    SELECT t.id, t.credential_profile_id, t.quarantined_at, t.full_scan_next_run, t.full_scan_requested_at
    FROM tenants t
    WHERE t.entra_tenant_id = $1
      -- Set by run_start_claim.sql in this transaction when it took this lock: cheaper than reading
      -- pg_locks, whose every read copies the server's whole lock table.
      AND current_setting('entrasync.run_lock', true) = $3::int4 || '/' || (t.id & 2147483647)
), closed AS (
    -- Runs left `running` by a holder that is gone (run_lock::close_interrupted).
    UPDATE sync_runs r
    SET status = 'failed', error = 'interrupted', finished_at = now(), updated_at = now()
    FROM held
    WHERE r.tenant_id = held.id AND r.object_class = $2::text::object_class AND r.status = 'running'
    RETURNING 1
), old AS (
    -- This run covers every sync request made so far (schedule_take_rerun.sql).
    SELECT s.tenant_id, s.object_class, s.rerun_mode
    FROM sync_schedules s JOIN held ON s.tenant_id = held.id
    WHERE $4 AND s.object_class = $2::text::object_class AND s.rerun_mode IS NOT NULL
    FOR UPDATE OF s
), taken AS (
    UPDATE sync_schedules s SET rerun_mode = NULL
    FROM old WHERE s.tenant_id = old.tenant_id AND s.object_class = old.object_class
    RETURNING old.rerun_mode::text AS mode
)
SELECT (SELECT count(*) FROM closed),
       (SELECT mode FROM taken),
       EXISTS (SELECT 1 FROM mapping_sets m
               WHERE m.tenant_id = held.id AND m.object_class = $2::text::object_class),
       p.id,
       p.updated_at,
       p.xmin::text,
       live_objects_up_to(held.id, 'user'::object_class, $5),
       COALESCE(s.consecutive_failures, 0) = 0 AND s.last_error IS NULL AND held.quarantined_at IS NULL,
       -- The cursor, from column 8 on in store::cursors::load's order.
       held.full_scan_next_run AND (c.last_full_scan_at IS NULL OR c.last_full_scan_at < held.full_scan_requested_at),
       c.delta_link, c.delta_link_at, c.run_id, c.run_mode::text, c.next_link, c.run_counts,
       EXISTS (SELECT 1 FROM held_deletions h
               WHERE h.tenant_id = held.id AND h.object_class = $2::text::object_class AND h.status = 'held')
FROM held
LEFT JOIN credential_profiles p ON p.id = held.credential_profile_id
LEFT JOIN sync_schedules s ON s.tenant_id = held.id AND s.object_class = $2::text::object_class
LEFT JOIN sync_cursors c ON c.tenant_id = held.id AND c.object_class = $2::text::object_class
