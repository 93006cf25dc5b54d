-- Two once-per-round statements made plan-proof (V41 explains why plans go wrong without statistics:
-- a new tenant, a server without autovacuum). Each carries the planner setting its plan needs, so any
-- connection gets the same plan whatever the statistics say.

-- Live objects of a (tenant, class), counted up to p_cap: the deletion guard and the tenant size only
-- need to know whether a threshold is reached. A plain index scan stops at p_cap (2 ms for 501 of
-- 1,000,000 rows); the bitmap scan chosen without statistics reads every row first (0.35-1.3 s).
CREATE FUNCTION live_objects_up_to(p_tenant bigint, p_class object_class, p_cap bigint) RETURNS bigint
LANGUAGE sql STABLE SET enable_bitmapscan = off AS $$
    SELECT count(*) FROM (
        SELECT 1 FROM directory_objects
        WHERE tenant_id = p_tenant AND object_class = p_class AND deleted_at IS NULL
        LIMIT p_cap
    ) capped
$$;

-- End of a full round: every live stored object the listing did not contain becomes a pending
-- (restorable) deletion, unless the run already staged one for it. Objects the run created were listed
-- by it (they carry no seen mark: see V40). Without statistics the anti-join is planned as a nested loop
-- with one index probe per stored object (8.9 s at 1,000,000 objects); with nested loops off it is a hash
-- anti-join (3.1 s), which spills to disk in batches instead of growing in memory.
CREATE FUNCTION stage_unlisted_deletions(p_run uuid, p_tenant bigint, p_class object_class, p_reason text)
RETURNS bigint LANGUAGE sql SET enable_nestloop = off AS $$
    WITH staged AS (
        INSERT INTO sync_run_pending_deletions (run_id, object_id, permanent, reason)
        SELECT p_run, d.object_id, false, p_reason
        FROM directory_objects d
        WHERE d.tenant_id = p_tenant AND d.object_class = p_class AND d.deleted_at IS NULL
          AND d.created_run IS DISTINCT FROM p_run
          AND NOT EXISTS (SELECT 1 FROM sync_run_seen_objects s WHERE s.run_id = p_run AND s.object_id = d.object_id)
        ON CONFLICT (run_id, object_id) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) FROM staged
$$;
