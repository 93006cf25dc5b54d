-- A group's transitive members (docs/api.md, "Group membership"): its members, and the members of its
-- nested groups recursively, a page of them by member id, with the total. $1 tenant, $2 group,
-- $3 after (member id or NULL), $4 page size.
-- * Nesting follows members whose member_class is 'group'.
-- * Soft-deleted objects are left out and a soft-deleted group is not expanded, as Entra's
--   /transitiveMembers does; the group itself is never its own member (a cycle leads back to it).
-- * Cycles terminate: UNION (not UNION ALL) keeps each (member, class, live) once, so a group is
--   expanded at most once.
-- * Every lookup is a LATERAL probe on a primary key or index prefix, so the plan does not depend on
--   statistics (autovacuum may be off).
WITH RECURSIVE walk (member_id, member_class, live) AS (
    SELECT m.member_id, m.member_class, deleted.gone IS NULL
    FROM group_members m
    LEFT JOIN LATERAL (
        SELECT true AS gone FROM directory_objects d
        WHERE d.tenant_id = $1
          AND d.object_class = (CASE m.member_class WHEN 'user' THEN 'user' WHEN 'group' THEN 'group'
                                                    WHEN 'device' THEN 'device' END)::object_class
          AND d.object_id = m.member_id AND d.deleted_at IS NOT NULL
        LIMIT 1
    ) deleted ON true
    WHERE m.tenant_id = $1 AND m.group_id = $2
  UNION
    SELECT n.member_id, n.member_class, deleted.gone IS NULL
    FROM walk w
    CROSS JOIN LATERAL (
        SELECT m.member_id, m.member_class FROM group_members m
        WHERE m.tenant_id = $1 AND m.group_id = w.member_id
    ) n
    LEFT JOIN LATERAL (
        SELECT true AS gone FROM directory_objects d
        WHERE d.tenant_id = $1
          AND d.object_class = (CASE n.member_class WHEN 'user' THEN 'user' WHEN 'group' THEN 'group'
                                                    WHEN 'device' THEN 'device' END)::object_class
          AND d.object_id = n.member_id AND d.deleted_at IS NOT NULL
        LIMIT 1
    ) deleted ON true
    WHERE w.member_class = 'group' AND w.live
),
members AS MATERIALIZED (
    SELECT DISTINCT ON (member_id) member_id, member_class FROM walk
    WHERE live AND member_id <> $2
    ORDER BY member_id
),
page AS (
    SELECT member_id, member_class FROM members
    WHERE $3::uuid IS NULL OR member_id > $3
    ORDER BY member_id LIMIT $4
)
SELECT t.total, p.member_id, p.member_class, o.display_name, direct.yes IS NOT NULL AS direct
FROM (SELECT count(*) AS total FROM members) t
LEFT JOIN (
    page p
    LEFT JOIN LATERAL (
        SELECT d.attrs->>'displayName' AS display_name FROM directory_objects d
        WHERE d.tenant_id = $1
          AND d.object_class = (CASE p.member_class WHEN 'user' THEN 'user' WHEN 'group' THEN 'group'
                                                    WHEN 'device' THEN 'device' END)::object_class
          AND d.object_id = p.member_id
        LIMIT 1
    ) o ON true
    LEFT JOIN LATERAL (
        SELECT true AS yes FROM group_members g
        WHERE g.tenant_id = $1 AND g.group_id = $2 AND g.member_id = p.member_id
        LIMIT 1
    ) direct ON true
) ON true
ORDER BY p.member_id
