-- The stored markers of one page's ids. Shaped so that no planner estimate can turn it into a scan of
-- the tenant: the LIMIT keeps the per-id subquery from being flattened into a join, so the only plan is
-- a nested loop of primary-key index probes, one per id (a plain `object_id = ANY($3)` or a join against
-- `unnest($3)` is planned as a bitmap or hash over the whole (tenant, class) range when the partition
-- has no statistics yet: a new tenant's first full round, or a server without autovacuum). $4 is the
-- asking run: whether it created the object.
SELECT d.object_id, d.marker, d.deleted, d.created_in_run
FROM unnest($3::uuid[]) AS i (id)
CROSS JOIN LATERAL (
    SELECT o.object_id, o.marker, o.deleted_at IS NOT NULL AS deleted,
           o.created_run IS NOT DISTINCT FROM $4::uuid AS created_in_run
    FROM directory_objects o
    WHERE o.tenant_id = $1 AND o.object_class = $2::text::object_class AND o.object_id = i.id
    LIMIT 1
) AS d
