-- Writes the page's new, changed and restored objects in one statement. The WHERE clause makes a
-- repeated write of an identical live object a no-op (no row version), even if the caller sent it.
INSERT INTO directory_objects AS d (tenant_id, object_class, object_id, marker, attrs, mapped)
SELECT $1::bigint, $2::text::object_class, w.object_id, w.marker, w.attrs, w.mapped
FROM unnest($3::uuid[], $4::bigint[], $5::jsonb[], $6::json[]) AS w (object_id, marker, attrs, mapped)
ON CONFLICT (tenant_id, object_class, object_id) DO UPDATE
SET marker = EXCLUDED.marker,
    attrs = EXCLUDED.attrs,
    mapped = EXCLUDED.mapped,
    deleted_at = NULL,
    delete_reason = NULL,
    updated_at = now()
WHERE d.marker IS DISTINCT FROM EXCLUDED.marker OR d.deleted_at IS NOT NULL
