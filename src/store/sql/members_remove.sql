-- Applies a members@delta removal slice. Returns the groups whose membership changed.
DELETE FROM group_members m
USING unnest($2::uuid[], $3::uuid[]) AS r (group_id, member_id)
WHERE m.tenant_id = $1 AND m.group_id = r.group_id AND m.member_id = r.member_id
RETURNING m.group_id
