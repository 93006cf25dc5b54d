-- Merges a members@delta add slice. Existing memberships are skipped before the insert, so a replayed
-- slice writes nothing. Returns the groups whose membership changed.
INSERT INTO group_members (tenant_id, group_id, member_id, member_class)
SELECT DISTINCT ON (a.group_id, a.member_id) $1::bigint, a.group_id, a.member_id, a.member_class
FROM unnest($2::uuid[], $3::uuid[], $4::text[]) AS a (group_id, member_id, member_class)
WHERE NOT EXISTS (
    SELECT 1 FROM group_members m
    WHERE m.tenant_id = $1 AND m.group_id = a.group_id AND m.member_id = a.member_id
)
ON CONFLICT (tenant_id, group_id, member_id) DO NOTHING
RETURNING group_id
