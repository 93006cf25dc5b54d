-- Applies a run's pending deletions, except those already held for an operator. Permanent deletions
-- take the object's memberships with them (as a member, and as a group); soft deletions keep them,
-- as Entra ID does for restorable objects. Returns the number of objects deleted.
WITH pending AS (
    SELECT p.object_id, p.permanent, p.reason
    FROM sync_run_pending_deletions p
    WHERE p.run_id = $1
      AND NOT EXISTS (
          SELECT 1 FROM held_deletions h
          WHERE h.tenant_id = $2 AND h.object_class = $3::text::object_class
            AND h.object_id = p.object_id AND h.status = 'held'
      )
),
soft AS (
    UPDATE directory_objects d
    SET deleted_at = now(), delete_reason = pending.reason, updated_at = now()
    FROM pending
    WHERE NOT pending.permanent
      AND d.tenant_id = $2 AND d.object_class = $3::text::object_class AND d.object_id = pending.object_id
      AND d.deleted_at IS NULL
    RETURNING d.object_id
),
as_member AS (
    DELETE FROM group_members m USING pending
    WHERE pending.permanent AND m.tenant_id = $2 AND m.member_id = pending.object_id
    RETURNING m.group_id
),
as_group AS (
    DELETE FROM group_members m USING pending
    WHERE pending.permanent AND $3::text = 'group' AND m.tenant_id = $2 AND m.group_id = pending.object_id
    RETURNING m.group_id
),
purged AS (
    DELETE FROM directory_objects d USING pending
    WHERE pending.permanent
      AND d.tenant_id = $2 AND d.object_class = $3::text::object_class AND d.object_id = pending.object_id
    RETURNING d.object_id
)
SELECT (SELECT count(*) FROM soft) + (SELECT count(*) FROM purged) AS deleted,
       (SELECT count(*) FROM as_member) + (SELECT count(*) FROM as_group) AS memberships_removed
