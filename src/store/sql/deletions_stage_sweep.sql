-- End of a full round: every live stored object the listing did not contain becomes a pending
-- (restorable) deletion, unless the run already staged one for it. Objects the run created were listed
-- by it (they carry no seen mark: see migrations/V40).
INSERT INTO sync_run_pending_deletions (run_id, object_id, permanent, reason)
SELECT $1::uuid, d.object_id, false, $4::text
FROM directory_objects d
WHERE d.tenant_id = $2 AND d.object_class = $3::text::object_class AND d.deleted_at IS NULL
  AND d.created_run IS DISTINCT FROM $1::uuid
  AND NOT EXISTS (SELECT 1 FROM sync_run_seen_objects s WHERE s.run_id = $1 AND s.object_id = d.object_id)
ON CONFLICT (run_id, object_id) DO NOTHING
