-- Registered tenants without a run of class $1.
SELECT count(*) FROM tenants t WHERE NOT EXISTS (
    SELECT 1 FROM sync_runs r WHERE r.tenant_id = t.id AND r.object_class = $1::text::object_class)
