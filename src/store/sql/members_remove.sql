-- Applies a members@delta removal slice. Returns the groups whose membership changed.
-- Plan-proof: each pair is found by a LATERAL primary-key probe (LIMIT 1: the planner cannot flatten it
-- into a join), and the row is deleted by its ctid (a TID scan per row). As a plain
-- `DELETE … USING unnest(…)` it was planned, without statistics, as a merge join that sorted all of the
-- tenant's memberships once the slice held a few thousand pairs (959 ms instead of 51 ms for 5,000 pairs
-- among 1,080,000). A tenant's rows are all in one partition, so (tenant, ctid) names one row.
WITH target AS (
    SELECT found.row_id
    FROM unnest($2::uuid[], $3::uuid[]) AS r (group_id, member_id)
    CROSS JOIN LATERAL (
        SELECT m.ctid AS row_id FROM group_members m
        WHERE m.tenant_id = $1 AND m.group_id = r.group_id AND m.member_id = r.member_id
        LIMIT 1
    ) AS found
)
DELETE FROM group_members m
USING target
WHERE m.tenant_id = $1 AND m.ctid = target.row_id
RETURNING m.group_id
