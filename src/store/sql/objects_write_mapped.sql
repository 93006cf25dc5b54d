-- A re-map's writes for one batch: new markers and mapped attributes of live objects; only rows whose
-- marker differs are written. Known limit (docs/benchmarks.md "Re-map"): without statistics this is planned
-- as a hash join over the (tenant, class) range, so a batch costs O(tenant).
UPDATE directory_objects d
SET marker = w.marker, mapped = w.mapped, updated_at = now()
FROM unnest($3::uuid[], $4::bigint[], $5::jsonb[]) AS w (object_id, marker, mapped)
WHERE d.tenant_id = $1 AND d.object_class = $2::text::object_class AND d.object_id = w.object_id
  AND d.deleted_at IS NULL AND d.marker IS DISTINCT FROM w.marker
