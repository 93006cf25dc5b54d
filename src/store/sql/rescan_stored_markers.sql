-- The re-scan snapshot of a full round (src/sync/snapshot.rs): every stored object of one (tenant, class)
-- with its marker, whether it is soft-deleted, and whether the asking run ($3) created it (a resumed
-- run's earlier batches). Read once per round; the client sorts by id, so no sort runs here. Without
-- statistics the plan is a scan of the tenant's partition (a bitmap or sequential scan), which reads each
-- row once: cheaper than an index scan in id order for the whole (tenant, class).
SELECT o.object_id, o.marker, o.deleted_at IS NOT NULL, o.created_run IS NOT DISTINCT FROM $3::uuid
FROM directory_objects o
WHERE o.tenant_id = $1 AND o.object_class = $2::text::object_class
