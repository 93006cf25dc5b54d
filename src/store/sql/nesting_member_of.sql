-- The groups an object is a member of (docs/api.md, "Group membership"), directly or, when $5, also
-- through nesting (the groups of its groups, recursively), a page of them by group id, with the total.
-- $1 tenant, $2 object, $3 after (group id or NULL), $4 page size, $5 transitive.
-- * Soft-deleted groups are left out and not walked through, as Entra's /transitiveMemberOf does; an
--   object is never its own group (a cycle leads back to a group asked about).
-- * Cycles terminate: UNION keeps each group once, so a group's parents are read at most once.
-- * The walk goes up through the group_members_member index (tenant, member), one probe per group
--   reached; every other lookup is a LATERAL probe on a primary key: no plan depends on statistics.
WITH RECURSIVE up (group_id) AS (
    SELECT m.group_id
    FROM group_members m
    LEFT JOIN LATERAL (
        SELECT true AS gone FROM directory_objects d
        WHERE d.tenant_id = $1 AND d.object_class = 'group' AND d.object_id = m.group_id
          AND d.deleted_at IS NOT NULL
        LIMIT 1
    ) deleted ON true
    WHERE m.tenant_id = $1 AND m.member_id = $2 AND deleted.gone IS NULL
  UNION
    SELECT n.group_id
    FROM up u
    CROSS JOIN LATERAL (
        SELECT m.group_id FROM group_members m
        WHERE m.tenant_id = $1 AND m.member_id = u.group_id AND $5::boolean
    ) n
    LEFT JOIN LATERAL (
        SELECT true AS gone FROM directory_objects d
        WHERE d.tenant_id = $1 AND d.object_class = 'group' AND d.object_id = n.group_id
          AND d.deleted_at IS NOT NULL
        LIMIT 1
    ) deleted ON true
    WHERE deleted.gone IS NULL
),
groups AS MATERIALIZED (
    SELECT group_id FROM up WHERE group_id <> $2
),
page AS (
    SELECT group_id FROM groups
    WHERE $3::uuid IS NULL OR group_id > $3
    ORDER BY group_id LIMIT $4
)
SELECT t.total, p.group_id, o.display_name, direct.yes IS NOT NULL AS direct
FROM (SELECT count(*) AS total FROM groups) t
LEFT JOIN (
    page p
    LEFT JOIN LATERAL (
        SELECT d.attrs->>'displayName' AS display_name FROM directory_objects d
        WHERE d.tenant_id = $1 AND d.object_class = 'group' AND d.object_id = p.group_id
        LIMIT 1
    ) o ON true
    LEFT JOIN LATERAL (
        SELECT true AS yes FROM group_members g
        WHERE g.tenant_id = $1 AND g.group_id = p.group_id AND g.member_id = $2
        LIMIT 1
    ) direct ON true
) ON true
ORDER BY p.group_id
