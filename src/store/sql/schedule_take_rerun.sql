-- Takes (and clears) the coalesced "one more run" request of ($1 tenant, $2 class), if any.
WITH old AS (
    SELECT tenant_id, object_class, rerun_mode FROM sync_schedules
    WHERE tenant_id = $1 AND object_class = $2::text::object_class AND rerun_mode IS NOT NULL
    FOR UPDATE
)
UPDATE sync_schedules s SET rerun_mode = NULL
FROM old WHERE s.tenant_id = old.tenant_id AND s.object_class = old.object_class
RETURNING old.rerun_mode::text
