-- A re-map's writes for one batch: new markers and mapped attributes of live objects. The LATERAL probe
-- with LIMIT 1 keeps the planner from hashing or scanning the (tenant, class) range when the partition has
-- no statistics (see objects_stored_states.sql): one primary-key probe per id. Only rows whose marker
-- differs are written.
UPDATE directory_objects d
SET marker = w.marker, mapped = w.mapped, updated_at = now()
FROM unnest($3::uuid[], $4::bigint[], $5::jsonb[]) AS w (object_id, marker, mapped)
WHERE d.tenant_id = $1 AND d.object_class = $2::text::object_class AND d.object_id = w.object_id
  AND d.deleted_at IS NULL AND d.marker IS DISTINCT FROM w.marker
