-- How a deletion reaches the directory copy, in one place: used at the end of a round for its staged
-- deletions and when an operator allows held ones. Soft deletions mark the row (restorable, memberships
-- kept, as Entra ID does); permanent ones remove the row and its memberships (as a member, and as a group).
CREATE FUNCTION apply_directory_deletions(
    p_tenant bigint, p_class object_class, p_ids uuid[], p_permanent boolean[], p_reasons text[]
) RETURNS TABLE (deleted bigint, memberships_removed bigint) LANGUAGE sql AS $$
WITH target AS (
    SELECT t.object_id, t.permanent, t.reason FROM unnest(p_ids, p_permanent, p_reasons) AS t (object_id, permanent, reason)
),
soft AS (
    UPDATE directory_objects d
    SET deleted_at = now(), delete_reason = target.reason, updated_at = now()
    FROM target
    WHERE NOT target.permanent
      AND d.tenant_id = p_tenant AND d.object_class = p_class AND d.object_id = target.object_id
      AND d.deleted_at IS NULL
    RETURNING d.object_id
),
as_member AS (
    DELETE FROM group_members m USING target
    WHERE target.permanent AND m.tenant_id = p_tenant AND m.member_id = target.object_id
    RETURNING m.group_id
),
as_group AS (
    DELETE FROM group_members m USING target
    WHERE target.permanent AND p_class = 'group' AND m.tenant_id = p_tenant AND m.group_id = target.object_id
    RETURNING m.group_id
),
purged AS (
    DELETE FROM directory_objects d USING target
    WHERE target.permanent
      AND d.tenant_id = p_tenant AND d.object_class = p_class AND d.object_id = target.object_id
    RETURNING d.object_id
)
SELECT (SELECT count(*) FROM soft) + (SELECT count(*) FROM purged),
       (SELECT count(*) FROM as_member) + (SELECT count(*) FROM as_group)
$$;
