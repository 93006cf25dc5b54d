-- live_objects_up_to (V42) in PL/pgSQL: same query, same planner setting, same result. As a SQL function
-- with a SET clause it cannot be inlined, so every call from a top-level statement parsed and planned
-- its query again, over the 16 partitions of directory_objects: ~0.5 ms a call (pgbench, 3,000 calls:
-- 0.49-0.65 ms against 0.04-0.06 ms for the plan PL/pgSQL keeps per session), the costliest statement
-- of a run that changes nothing (run_start_state.sql calls it once per job; docs/benchmarks.md "The
-- fixed cost of a small run").
CREATE OR REPLACE FUNCTION live_objects_up_to(p_tenant bigint, p_class object_class, p_cap bigint) RETURNS bigint
LANGUAGE plpgsql STABLE SET enable_bitmapscan = off AS $$
BEGIN
    RETURN (SELECT count(*) FROM (
        SELECT 1 FROM directory_objects
        WHERE tenant_id = p_tenant AND object_class = p_class AND deleted_at IS NULL
        LIMIT p_cap
    ) capped);
END $$;
