-- The values mapping $1 synced that nothing else keeps: not created by an operator, not assigned by an
-- operator to any object, not synced by another live mapping. Their assignments go with them (cascade).
DELETE FROM tags t
WHERE t.id IN (SELECT s.tag_id FROM tag_sources s WHERE s.mapping_id = $1)
  AND t.tenant_id = $2
  AND NOT t.manual
  AND NOT EXISTS (SELECT 1 FROM tag_sources o JOIN tag_mappings m ON m.id = o.mapping_id
                  WHERE o.tag_id = t.id AND o.mapping_id <> $1 AND m.pending_deletion_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM object_tags ot WHERE ot.tag_id = t.id AND ot.mapping_id IS NULL)
