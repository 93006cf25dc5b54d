-- "Is $2 a member of $3?" (docs/api.md, "Group membership"): the membership edges above object $2,
-- walked up through live groups (as nesting_member_of.sql), each as (group, member it contains); the
-- caller looks for $3 among the groups and builds the shortest path. $1 tenant.
-- UNION keeps each edge once, so cycles terminate; the walk reads the object's groups and their
-- ancestors only, through the group_members_member index, never a group's member list.
-- `subject_deleted`: the object is soft-deleted (then it is nobody's member, as in Entra).
WITH RECURSIVE up (group_id, member_id) AS (
    SELECT m.group_id, m.member_id
    FROM group_members m
    LEFT JOIN LATERAL (
        SELECT true AS gone FROM directory_objects d
        WHERE d.tenant_id = $1 AND d.object_class = 'group' AND d.object_id = m.group_id
          AND d.deleted_at IS NOT NULL
        LIMIT 1
    ) deleted ON true
    WHERE m.tenant_id = $1 AND m.member_id = $2 AND deleted.gone IS NULL
  UNION
    SELECT n.group_id, n.member_id
    FROM up u
    CROSS JOIN LATERAL (
        SELECT m.group_id, m.member_id FROM group_members m
        WHERE m.tenant_id = $1 AND m.member_id = u.group_id
    ) n
    LEFT JOIN LATERAL (
        SELECT true AS gone FROM directory_objects d
        WHERE d.tenant_id = $1 AND d.object_class = 'group' AND d.object_id = n.group_id
          AND d.deleted_at IS NOT NULL
        LIMIT 1
    ) deleted ON true
    WHERE deleted.gone IS NULL AND u.group_id <> $3
)
SELECT u.group_id, u.member_id,
       EXISTS (SELECT 1 FROM directory_objects d
               WHERE d.tenant_id = $1 AND d.object_class IN ('user', 'group', 'device') AND d.object_id = $2
                 AND d.deleted_at IS NOT NULL) AS subject_deleted
FROM up u
