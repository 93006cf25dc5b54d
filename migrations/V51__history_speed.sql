-- History pages at a million runs without statistics (docs/benchmarks.md, "History pages";
-- src/store/history.rs owns these).

-- Filters on status, class and mode, alone or combined: one index on the three, ending in the page
-- order. A page reads one range per (status, class, mode) cell the filter allows (at most 18, all
-- three being small enums) and merges them in page order, so it stops after `limit` rows however
-- sparse the combination (failed users: 1 % of the runs). It replaces the status-only index: a
-- status page is the merge of its 6 cells, and `status = …` lookups still use its leading column.
CREATE INDEX sync_runs_by_kind ON sync_runs (status, object_class, mode, started_at DESC, id DESC);
DROP INDEX sync_runs_by_status;

-- The error texts the search box scans, lower-cased once, in a narrow table of their own: scanning it
-- reads a few MB instead of the runs' heap, and `error_lower LIKE lower(pattern)` is exactly
-- `error ILIKE pattern` (ILIKE lower-cases both sides the same way) without lower-casing every row at
-- every search. Kept by row triggers that fire only for runs with an error (or whose error changes).
CREATE TABLE sync_run_errors (
    started_at  timestamptz NOT NULL,
    run_id      uuid NOT NULL,
    error_lower text NOT NULL,
    PRIMARY KEY (started_at, run_id)
);

CREATE FUNCTION sync_run_errors_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM sync_run_errors WHERE started_at = OLD.started_at AND run_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.error IS NOT NULL THEN
        INSERT INTO sync_run_errors (started_at, run_id, error_lower)
        VALUES (NEW.started_at, NEW.id, lower(NEW.error));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER sync_runs_error_insert AFTER INSERT ON sync_runs
    FOR EACH ROW WHEN (NEW.error IS NOT NULL) EXECUTE FUNCTION sync_run_errors_apply();
CREATE TRIGGER sync_runs_error_update AFTER UPDATE OF id, started_at, error ON sync_runs
    FOR EACH ROW WHEN (OLD.error IS DISTINCT FROM NEW.error OR OLD.started_at IS DISTINCT FROM NEW.started_at
        OR OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION sync_run_errors_apply();
CREATE TRIGGER sync_runs_error_delete AFTER DELETE ON sync_runs
    FOR EACH ROW WHEN (OLD.error IS NOT NULL) EXECUTE FUNCTION sync_run_errors_apply();

-- Runs recorded before this migration.
INSERT INTO sync_run_errors (started_at, run_id, error_lower)
SELECT started_at, id, lower(error) FROM sync_runs WHERE error IS NOT NULL;

-- The partial index of runs with an error served only the search, which now reads sync_run_errors.
DROP INDEX sync_runs_with_error;
