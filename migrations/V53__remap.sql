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
