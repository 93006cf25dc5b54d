-- One group_membership mapping's (value, user) pairs for the users of one batch range ($2, $3]: the
-- display name of each stored, live group the user is a direct member of.
INSERT INTO tag_desired (mapping_id, kind, key, key_norm, value, value_norm, object_id)
SELECT DISTINCT $4::bigint, $5::text, $6::text, lower(coalesce($6::text, '')), v.value,
       CASE WHEN $5::text = 'asset_group' THEN lower(v.value) ELSE v.value END, u.object_id
FROM directory_objects u
JOIN group_members gm ON gm.tenant_id = u.tenant_id AND gm.member_id = u.object_id
JOIN directory_objects g ON g.tenant_id = gm.tenant_id AND g.object_class = 'group'
                        AND g.object_id = gm.group_id AND g.deleted_at IS NULL
CROSS JOIN LATERAL (SELECT btrim(g.attrs ->> 'displayName') AS value) AS v
WHERE u.tenant_id = $1 AND u.object_class = 'user' AND u.deleted_at IS NULL
  AND ($2::uuid IS NULL OR u.object_id > $2::uuid) AND ($3::uuid IS NULL OR u.object_id <= $3::uuid)
  AND length(v.value) BETWEEN 1 AND 256
