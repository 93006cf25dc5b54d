-- Everything the tenant supervisor needs to decide which runs are due: one row per object class.
-- $1 tenant id; $2 the classes, $3 the first key of each class's run lock, $4 the tenant's lock key
-- (src/store/run_lock.rs), so a held lock shows the class is running right now. The latest run (by start)
-- tells whether the last sync job enqueued has been taken and ended, whatever its outcome (re-maps and
-- tag syncs do not take sync jobs); its last write (a resume, progress, the end) says whether a job took it
-- after the last enqueue. A run that recorded the last job enqueued (sync_run_jobs) took it, whatever the
-- clocks say.
SELECT c.class::text,
       t.enabled AND NOT t.blocked,
       t.full_scan_next_run,
       t.full_scan_requested_at,
       t.quarantined_at,
       cur.delta_link IS NOT NULL,
       cur.delta_link_at,
       cur.last_full_scan_at,
       s.last_enqueued_at,
       s.last_full_enqueued_at,
       COALESCE(s.consecutive_failures, 0),
       s.last_failure_at,
       EXISTS (SELECT 1 FROM pg_locks l
               WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                 AND l.classid::bigint = c.lock_key AND l.objid::bigint = $4::bigint),
       now(),
       t.entra_tenant_id,
       latest.started_at,
       latest.finished_at IS NOT NULL,
       latest.updated_at,
       EXISTS (SELECT 1 FROM sync_run_jobs j WHERE j.job_id = s.last_enqueued_job_id)
FROM tenants t
CROSS JOIN unnest($2::text[], $3::int4[]) AS c(class, lock_key)
LEFT JOIN LATERAL (SELECT r.started_at, r.finished_at, r.updated_at FROM sync_runs r
                   WHERE r.tenant_id = t.id AND r.object_class = c.class::object_class
                     AND r.mode IN ('full', 'delta')
                   ORDER BY r.started_at DESC, r.id DESC LIMIT 1) latest ON true
LEFT JOIN sync_cursors cur ON cur.tenant_id = t.id AND cur.object_class = c.class::object_class
LEFT JOIN sync_schedules s ON s.tenant_id = t.id AND s.object_class = c.class::object_class
WHERE t.id = $1
