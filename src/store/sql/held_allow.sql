-- An operator allowed the deletions one run held: apply exactly those (still held) and mark them
-- (see apply_directory_deletions in migrations/V11).
WITH allowed AS (
    UPDATE held_deletions h
    SET status = 'allowed', resolved_at = now(), resolved_by = $4
    WHERE h.tenant_id = $1 AND h.object_class = $2::text::object_class AND h.run_id = $3 AND h.status = 'held'
    RETURNING h.object_id, h.permanent, h.reason
),
batch AS (
    SELECT count(*) AS allowed, array_agg(object_id) AS ids, array_agg(permanent) AS permanent,
           array_agg(reason) AS reasons
    FROM allowed
)
SELECT batch.allowed, d.deleted
FROM batch,
     apply_directory_deletions($1, $2::text::object_class, coalesce(batch.ids, '{}'),
                               coalesce(batch.permanent, '{}'), coalesce(batch.reasons, '{}')) AS d
