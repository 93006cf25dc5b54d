-- A re-map's batch: live objects of ($1 tenant, $2 class) with an id after $3 (all when NULL), in id
-- order, at most $4. The primary key (tenant_id, object_class, object_id) serves the range and the order
-- with no sort, so the plan is an index scan stopping after $4 rows, with or without statistics.
SELECT object_id, marker, attrs
FROM directory_objects
WHERE tenant_id = $1 AND object_class = $2::text::object_class
  AND object_id > COALESCE($3::uuid, '00000000-0000-0000-0000-000000000000'::uuid)
  AND deleted_at IS NULL
ORDER BY object_id
LIMIT $4
