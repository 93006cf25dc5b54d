-- apply_directory_deletions (V11), made plan-proof. The V11 form joins the id list with the tenant's
-- rows in one statement; with no statistics (a new tenant, a server without autovacuum) Postgres
-- estimates a tenant's rows at two and plans a nested loop over all of them per id: 13 s for 1,500
-- deletions among 100,000 rows. A set-based rewrite (probe each id, change the rows by ctid) was tried
-- and planned the same way. Here each id is its own statement whose key is fully bound, so the only
-- plan is an index probe: linear in the ids, whatever the statistics. Same rules as V11: soft deletions
-- mark the row (restorable, memberships kept); permanent ones remove the row and its memberships (as a
-- member, and as a group).
CREATE OR REPLACE FUNCTION apply_directory_deletions(
    p_tenant bigint, p_class object_class, p_ids uuid[], p_permanent boolean[], p_reasons text[]
) RETURNS TABLE (deleted bigint, memberships_removed bigint) LANGUAGE plpgsql AS $$
DECLARE
    target record;
    affected bigint;
BEGIN
    deleted := 0;
    memberships_removed := 0;
    FOR target IN SELECT * FROM unnest(p_ids, p_permanent, p_reasons) AS t (object_id, permanent, reason) LOOP
        IF target.permanent THEN
            DELETE FROM group_members m WHERE m.tenant_id = p_tenant AND m.member_id = target.object_id;
            GET DIAGNOSTICS affected = ROW_COUNT;
            memberships_removed := memberships_removed + affected;
            IF p_class = 'group' THEN
                DELETE FROM group_members m WHERE m.tenant_id = p_tenant AND m.group_id = target.object_id;
                GET DIAGNOSTICS affected = ROW_COUNT;
                memberships_removed := memberships_removed + affected;
            END IF;
            DELETE FROM directory_objects d
            WHERE d.tenant_id = p_tenant AND d.object_class = p_class AND d.object_id = target.object_id;
        ELSE
            UPDATE directory_objects d
            SET deleted_at = now(), delete_reason = target.reason, updated_at = now()
            WHERE d.tenant_id = p_tenant AND d.object_class = p_class AND d.object_id = target.object_id
              AND d.deleted_at IS NULL;
        END IF;
        GET DIAGNOSTICS affected = ROW_COUNT;
        deleted := deleted + affected;
    END LOOP;
    RETURN NEXT;
END $$;
