-- The run that first inserted an object. A round knows from it, in the marker lookup it does anyway,
-- which objects it created itself: those count as changed and as listed once, at creation, so a full
-- round needs no per-object rows in sync_run_changed_objects or sync_run_seen_objects for them (a new
-- tenant's first round then writes each object once, by COPY). Nullable without a default: adding it is
-- a catalogue change, no table rewrite. Tombstones and rows written before this migration have NULL.
ALTER TABLE directory_objects ADD COLUMN created_run uuid;
