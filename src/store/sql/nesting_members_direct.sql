-- A group's direct members (docs/api.md, "Group membership"), a page of them by member id, with the
-- total. $1 tenant, $2 group, $3 after (member id or NULL), $4 page size.
-- Soft-deleted members are left out, as Entra's /members does. Every lookup is a LATERAL probe on a
-- primary key (group_members by (tenant, group), directory_objects by (tenant, class, id)), so the plan
-- does not depend on statistics (autovacuum may be off).
WITH live AS MATERIALIZED (
    SELECT m.member_id, m.member_class
    FROM group_members m
    LEFT JOIN LATERAL (
        SELECT true AS gone FROM directory_objects d
        WHERE d.tenant_id = $1
          AND d.object_class = (CASE m.member_class WHEN 'user' THEN 'user' WHEN 'group' THEN 'group'
                                                    WHEN 'device' THEN 'device' END)::object_class
          AND d.object_id = m.member_id AND d.deleted_at IS NOT NULL
        LIMIT 1
    ) deleted ON true
    WHERE m.tenant_id = $1 AND m.group_id = $2 AND deleted.gone IS NULL
),
page AS (
    SELECT member_id, member_class FROM live
    WHERE $3::uuid IS NULL OR member_id > $3
    ORDER BY member_id LIMIT $4
)
SELECT t.total, p.member_id, p.member_class, o.display_name, true AS direct
FROM (SELECT count(*) AS total FROM live) t
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
) ON true
ORDER BY p.member_id
