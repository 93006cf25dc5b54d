-- A batch's assignments: add what the mappings produce now, remove what mappings $2 produced before in
-- the range ($3, $4] and no longer do (never an operator's assignment: those have no mapping). Returns
-- rows added, rows removed and the distinct users whose tags changed.
WITH added AS (
    INSERT INTO object_tags (tenant_id, tag_id, object_class, object_id, mapping_id)
    SELECT DISTINCT $1::bigint, tag_id, 'user'::object_class, object_id, mapping_id FROM tag_desired
    ON CONFLICT (tag_id, object_id, (coalesce(mapping_id, 0))) DO NOTHING
    RETURNING object_id
), removed AS (
    DELETE FROM object_tags ot
    WHERE ot.mapping_id = ANY($2::bigint[])
      AND ($3::uuid IS NULL OR ot.object_id > $3::uuid) AND ($4::uuid IS NULL OR ot.object_id <= $4::uuid)
      AND NOT EXISTS (SELECT 1 FROM tag_desired d
                      WHERE d.mapping_id = ot.mapping_id AND d.object_id = ot.object_id AND d.tag_id = ot.tag_id)
    RETURNING ot.object_id
)
SELECT (SELECT count(*) FROM added), (SELECT count(*) FROM removed),
       (SELECT count(*) FROM (SELECT object_id FROM added UNION SELECT object_id FROM removed) AS changed)
