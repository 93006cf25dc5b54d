-- What tenant $1 has without a foreign key to it: the run scratch tables (keyed by run) and the
-- directory copy and memberships (each DELETE prunes to the tenant's partition). Run in the caller's
-- transaction before the history and the tenant row go (src/store/tenants.rs `delete`).
WITH runs AS (SELECT id FROM sync_runs WHERE tenant_id = $1),
seen AS (DELETE FROM sync_run_seen_objects WHERE run_id IN (SELECT id FROM runs)),
members_seen AS (DELETE FROM sync_run_seen_members WHERE run_id IN (SELECT id FROM runs)),
pending AS (DELETE FROM sync_run_pending_deletions WHERE run_id IN (SELECT id FROM runs)),
changed AS (DELETE FROM sync_run_changed_objects WHERE run_id IN (SELECT id FROM runs)),
members AS (DELETE FROM group_members WHERE tenant_id = $1),
objects AS (DELETE FROM directory_objects WHERE tenant_id = $1)
SELECT 1
