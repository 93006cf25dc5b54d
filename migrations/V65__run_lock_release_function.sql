-- A job's end on its run-lock session in one message (src/store/run_lock/start.rs): the release of the
-- (tenant, class) run lock and the take of the pair's coalesced sync rerun and re-map requests, as one
-- statement's transaction instead of `BEGIN; SELECT pg_advisory_unlock_all()`, the take and `COMMIT`.
-- Each message costs Postgres ~0.044 ms of CPU whatever it carries (tests/bench/message_floor.sh,
-- docs/benchmarks.md "Stop 26"), a sizeable share of a run that changes nothing.
--
-- The take must read after the release: a job coalesced into this run stored its request before it tried
-- the lock, so before this release, and must be seen here. A VOLATILE function's statements each take a
-- snapshot of their own under READ COMMITTED, so the take's snapshot follows the release as it did when
-- the two were separate statements. Session advisory locks are not transactional: the release stands
-- even if the take fails.
CREATE FUNCTION run_lock_release_taking_requests(p_tenant_id bigint, p_class object_class)
RETURNS TABLE (rerun_mode text, remap_requested boolean)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_unlock_all();
    RETURN QUERY
    WITH old AS (
        SELECT s.tenant_id, s.object_class, s.rerun_mode, s.remap_requested FROM sync_schedules s
        WHERE s.tenant_id = p_tenant_id AND s.object_class = p_class
          AND (s.rerun_mode IS NOT NULL OR s.remap_requested)
        FOR UPDATE
    ), taken AS (
        UPDATE sync_schedules s SET rerun_mode = NULL, remap_requested = false
        FROM old WHERE s.tenant_id = old.tenant_id AND s.object_class = old.object_class
        RETURNING old.rerun_mode::text AS mode, old.remap_requested AS remap
    )
    SELECT taken.mode, taken.remap FROM taken;
END $$;
