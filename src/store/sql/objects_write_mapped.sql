-- A re-map's writes for one batch: new markers and mapped attributes of live objects; only rows whose
-- marker differs are written. $6 and $7 are the batch's lowest and highest id: the batch is a keyset
-- range, so bounding the primary-key range makes every plan read only the batch's rows, even on a
-- partition without statistics (without the bounds, the join is planned as a hash over the whole
-- (tenant, class) range and a batch costs O(tenant)).
UPDATE directory_objects d
SET marker = w.marker, mapped = w.mapped, updated_at = now()
FROM unnest($3::uuid[], $4::bigint[], $5::json[]) AS w (object_id, marker, mapped)
WHERE d.tenant_id = $1 AND d.object_class = $2::text::object_class
  AND d.object_id BETWEEN $6::uuid AND $7::uuid AND d.object_id = w.object_id
  AND d.deleted_at IS NULL AND d.marker IS DISTINCT FROM w.marker
