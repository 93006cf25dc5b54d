-- Runs still `running` although no session holds their (tenant, class) run lock: their worker died or
-- lost its connection. $1 the classes and $2 their first lock key (src/store/run_lock.rs).
UPDATE sync_runs r
SET status = 'failed', error = 'interrupted', finished_at = now(), updated_at = now()
FROM unnest($1::text[], $2::int4[]) AS c(class, lock_key)
WHERE r.status = 'running'
  AND r.object_class = c.class::object_class
  AND r.updated_at < now() - interval '2 seconds'
  AND NOT EXISTS (
      SELECT 1 FROM pg_locks l
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid::bigint = c.lock_key AND l.objid::bigint = (r.tenant_id & 2147483647))
