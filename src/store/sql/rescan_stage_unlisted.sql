-- End of a full round on the snapshot path: the snapshot's live objects the listing did not see ($4) are
-- staged as restorable deletions, those still live and not created by the run ($1) — one primary-key
-- probe per id (LATERAL … LIMIT 1 keeps any plan from scanning the tenant). A deletion the run staged
-- already (filtered, removed) keeps its reason.
INSERT INTO sync_run_pending_deletions (run_id, object_id, permanent, reason)
SELECT $1::uuid, d.object_id, false, $5::text
FROM unnest($4::uuid[]) AS i (id)
CROSS JOIN LATERAL (
    SELECT o.object_id FROM directory_objects o
    WHERE o.tenant_id = $2 AND o.object_class = $3::text::object_class AND o.object_id = i.id
      AND o.deleted_at IS NULL AND o.created_run IS DISTINCT FROM $1::uuid
    LIMIT 1
) AS d
ON CONFLICT (run_id, object_id) DO NOTHING
