-- Applies a run's pending deletions, except those already held for an operator (see
-- apply_directory_deletions in migrations/V11). Returns objects deleted and memberships removed.
WITH pending AS (
    SELECT array_agg(p.object_id) AS ids, array_agg(p.permanent) AS permanent, array_agg(p.reason) AS reasons
    FROM sync_run_pending_deletions p
    WHERE p.run_id = $1
      AND NOT EXISTS (
          SELECT 1 FROM held_deletions h
          WHERE h.tenant_id = $2 AND h.object_class = $3::text::object_class
            AND h.object_id = p.object_id AND h.status = 'held'
      )
)
SELECT d.deleted, d.memberships_removed
FROM pending,
     apply_directory_deletions($2, $3::text::object_class, coalesce(pending.ids, '{}'),
                               coalesce(pending.permanent, '{}'), coalesce(pending.reasons, '{}')) AS d
