-- A job's first statement (src/store/run_lock/start.rs), on the run-lock session: the tenant ($1, its
-- Entra tenant id), what became of the job's runs ($2, the job id; as runs::job_run), and the
-- (tenant, class) run lock ($3, the class's lock key) — tried only for a tenant that may sync and a job
-- not yet settled. No row: no such tenant. Taking the lock also marks it taken for the rest of this
-- transaction (`entrasync.run_lock`), which the job's second statement reads.
WITH tenant AS (
    SELECT id, name, entra_tenant_id, cloud, custom_login_url, custom_graph_url, credential_profile_id,
           enabled, full_scan_next_run, blocked
    FROM tenants WHERE entra_tenant_id = $1
), job AS (
    SELECT bool_or(j.settled_at IS NOT NULL OR r.status IN ('success', 'warning', 'held')) AS settled,
           bool_or(r.status = 'running') AS running
    FROM sync_run_jobs j JOIN sync_runs r ON r.id = j.run_id WHERE j.job_id = $2
)
SELECT t.id, t.name, t.entra_tenant_id, t.cloud, t.custom_login_url, t.custom_graph_url,
       t.credential_profile_id, t.enabled, t.full_scan_next_run, t.blocked,
       job.settled, job.running,
       CASE WHEN t.enabled AND NOT t.blocked AND NOT COALESCE(job.settled, false)
            THEN CASE WHEN pg_try_advisory_lock($3::int4, (t.id & 2147483647)::int4)
                      -- What run_start_state.sql, pipelined behind this statement, checks: set for this
                      -- transaction only, and only when the lock was taken here.
                      THEN set_config('entrasync.run_lock', $3::int4 || '/' || (t.id & 2147483647), true) IS NOT NULL
                      ELSE false END
            ELSE false END
FROM tenant t CROSS JOIN job
