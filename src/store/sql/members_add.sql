-- Merges a members@delta add slice. Existing memberships are skipped before the insert, so a replayed
-- slice writes nothing. Returns the groups whose membership changed.
-- The existence check is a LATERAL probe with LIMIT 1, which the planner cannot flatten into a join: one
-- index probe per reference whatever the statistics. (As `NOT EXISTS` it was planned, without
-- statistics, as a scan of the tenant's memberships per statement: quadratic over a round of large
-- groups. Without statistics the probe may use the (tenant_id, member_id) index and read each of the
-- member's memberships.)
-- References flagged fresh ($5: their group was created by this run, so nothing of it was stored before)
-- skip the probe: its filter on the outer row is a one-time gate, and `ON CONFLICT DO NOTHING`, which
-- checks the key before it inserts, still skips whatever this run wrote already (a resumed batch)
-- without a row version. A first round of an empty tenant then checks each membership's key once.
INSERT INTO group_members (tenant_id, group_id, member_id, member_class)
SELECT DISTINCT ON (a.group_id, a.member_id) $1::bigint, a.group_id, a.member_id, a.member_class
FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::boolean[]) AS a (group_id, member_id, member_class, fresh)
LEFT JOIN LATERAL (
    SELECT true AS present FROM group_members m
    WHERE NOT a.fresh AND m.tenant_id = $1 AND m.group_id = a.group_id AND m.member_id = a.member_id
    LIMIT 1
) existing ON true
WHERE existing.present IS NULL
ON CONFLICT (tenant_id, group_id, member_id) DO NOTHING
RETURNING group_id
