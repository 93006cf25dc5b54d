-- Sent right after `pg_advisory_unlock_all()` in the same transaction (src/store/run_lock/start.rs), so
-- its snapshot is taken after the release: takes and clears the coalesced sync rerun and re-map requests
-- of ($1 tenant, $2 class) in one statement. A job coalesced into this run stored its request before it
-- tried the lock, i.e. before this release, so it is seen here.
WITH old AS (
    SELECT tenant_id, object_class, rerun_mode, remap_requested FROM sync_schedules
    WHERE tenant_id = $1 AND object_class = $2::text::object_class
      AND (rerun_mode IS NOT NULL OR remap_requested)
    FOR UPDATE
)
UPDATE sync_schedules s SET rerun_mode = NULL, remap_requested = false
FROM old WHERE s.tenant_id = old.tenant_id AND s.object_class = old.object_class
RETURNING old.rerun_mode::text, old.remap_requested
