-- End of a full group round (or of a delta round that restored groups, which are then the only ones marked
-- seen): memberships of the listed groups that the listing did not contain are
-- removed. Groups not listed keep theirs (they are swept as objects, restorably). Returns the groups.
DELETE FROM group_members m
WHERE m.tenant_id = $2
  AND EXISTS (SELECT 1 FROM sync_run_seen_objects s WHERE s.run_id = $1 AND s.object_id = m.group_id)
  AND NOT EXISTS (
      SELECT 1 FROM sync_run_seen_members s
      WHERE s.run_id = $1 AND s.group_id = m.group_id AND s.member_id = m.member_id
  )
RETURNING m.group_id
