-- An operator allowed the deletions one run held: apply exactly those (still held) and mark them.
WITH allowed AS (
    UPDATE held_deletions h
    SET status = 'allowed', resolved_at = now(), resolved_by = $4
    WHERE h.tenant_id = $1 AND h.object_class = $2::text::object_class AND h.run_id = $3 AND h.status = 'held'
    RETURNING h.object_id, h.permanent, h.reason
),
soft AS (
    UPDATE directory_objects d
    SET deleted_at = now(), delete_reason = allowed.reason, updated_at = now()
    FROM allowed
    WHERE NOT allowed.permanent
      AND d.tenant_id = $1 AND d.object_class = $2::text::object_class AND d.object_id = allowed.object_id
      AND d.deleted_at IS NULL
    RETURNING d.object_id
),
as_member AS (
    DELETE FROM group_members m USING allowed
    WHERE allowed.permanent AND m.tenant_id = $1 AND m.member_id = allowed.object_id
),
as_group AS (
    DELETE FROM group_members m USING allowed
    WHERE allowed.permanent AND $2::text = 'group' AND m.tenant_id = $1 AND m.group_id = allowed.object_id
),
purged AS (
    DELETE FROM directory_objects d USING allowed
    WHERE allowed.permanent
      AND d.tenant_id = $1 AND d.object_class = $2::text::object_class AND d.object_id = allowed.object_id
    RETURNING d.object_id
)
SELECT (SELECT count(*) FROM allowed) AS allowed,
       (SELECT count(*) FROM soft) + (SELECT count(*) FROM purged) AS deleted
