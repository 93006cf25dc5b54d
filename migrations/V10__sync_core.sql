-- Sync core: per-run scratch tables (mark-and-sweep, staged deletions, changed objects), held deletions,
-- and per-class bookkeeping of "full scan on next run".

-- The tenant flag covers all three classes: it is cleared only once each class has completed a full
-- round after the flag was last set. The trigger stamps when it was set, whoever sets it.
ALTER TABLE tenants ADD COLUMN full_scan_requested_at timestamptz NOT NULL DEFAULT now();

CREATE FUNCTION tenants_stamp_full_scan_request() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.full_scan_next_run AND NOT OLD.full_scan_next_run THEN
        NEW.full_scan_requested_at := now();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER tenants_stamp_full_scan_request
    BEFORE UPDATE OF full_scan_next_run ON tenants FOR EACH ROW EXECUTE FUNCTION tenants_stamp_full_scan_request();

-- When this class last completed a full round (compared with tenants.full_scan_requested_at).
ALTER TABLE sync_cursors ADD COLUMN last_full_scan_at timestamptz;

-- Objects listed by a full round so far (mark); the end of the round sweeps stored objects not in here.
-- Written in the page's transaction, so a resumed run keeps its marks. Rows are removed when the run ends.
CREATE TABLE sync_run_seen_objects (
    run_id    uuid NOT NULL,
    object_id uuid NOT NULL,
    PRIMARY KEY (run_id, object_id)
);

-- Memberships listed by a full group round so far; memberships of listed groups not in here are removed.
CREATE TABLE sync_run_seen_members (
    run_id    uuid NOT NULL,
    group_id  uuid NOT NULL,
    member_id uuid NOT NULL,
    PRIMARY KEY (run_id, group_id, member_id)
);

-- Deletions seen during a run, applied together at its end (or held by the deletion guard). A later
-- upsert of the same object in the same run removes its row: the last event wins.
CREATE TABLE sync_run_pending_deletions (
    run_id    uuid NOT NULL,
    object_id uuid NOT NULL,
    permanent boolean NOT NULL,
    reason    text NOT NULL,
    PRIMARY KEY (run_id, object_id)
);

-- Objects written (or whose membership changed) in a run: makes "changed" a count of distinct objects
-- even when a large group is spread over many pages.
CREATE TABLE sync_run_changed_objects (
    run_id    uuid NOT NULL,
    object_id uuid NOT NULL,
    PRIMARY KEY (run_id, object_id)
);

-- Deletions the guard held for an operator. Allowing applies exactly the rows of one run; an object
-- that reappears in a later round supersedes its held deletion.
CREATE TABLE held_deletions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    object_class object_class NOT NULL,
    run_id       uuid NOT NULL,
    object_id    uuid NOT NULL,
    permanent    boolean NOT NULL,
    reason       text NOT NULL,
    status       text NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'allowed', 'rejected', 'superseded')),
    held_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    resolved_by  text
);

-- One open hold per object: a later run does not hold the same deletion twice.
CREATE UNIQUE INDEX held_deletions_one_open ON held_deletions (tenant_id, object_class, object_id)
    WHERE status = 'held';
CREATE INDEX held_deletions_by_run ON held_deletions (run_id, status);
