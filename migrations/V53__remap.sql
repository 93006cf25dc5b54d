-- Issue 14: re-map jobs and tag syncs record history runs of their own mode, and what mappings write only
-- when an object is first stored ("apply: on_create", "default value if null") is kept apart from what
-- they write on every round, so a later round never overwrites it. The effective mapped attributes are
-- coalesce(mapped_on_create, '{}') || coalesce(mapped, '{}') (store::directory reads them so).
--
-- ADD VALUE inside the migration's transaction is allowed (PostgreSQL 12+); nothing here uses the new
-- values before the transaction commits.
ALTER TYPE sync_mode ADD VALUE IF NOT EXISTS 'remap';
ALTER TYPE sync_mode ADD VALUE IF NOT EXISTS 'tag_sync';

ALTER TABLE directory_objects ADD COLUMN mapped_on_create jsonb;

-- A re-map run in progress for a (tenant, class): where it stands (the last object id it examined, in
-- primary-key order) and its running counts, written in the same transaction as each batch it applies,
-- so an interrupted re-map resumes where it stopped (same run, same staged deletions). Removed when the
-- run ends. Apart from sync_cursors: a round never resumes a re-map, nor a re-map a round.
CREATE TABLE remap_checkpoints (
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    object_class object_class NOT NULL,
    run_id       uuid NOT NULL,
    after_id     uuid,
    counts       jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, object_class)
);

-- A re-map asked for while a run of the (tenant, class) held the lock: one re-map after it (requests
-- coalesce; the re-map applies the mappings current when it runs).
ALTER TABLE sync_schedules ADD COLUMN remap_requested boolean NOT NULL DEFAULT false;
