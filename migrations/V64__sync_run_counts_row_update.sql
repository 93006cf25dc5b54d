-- sync_run_counts (V50) follows a run's update by a row trigger that fires only when the run changes
-- cell (tenant, class, status or mode), instead of a statement trigger that fired for every UPDATE of
-- sync_runs. The statement trigger ran for statements that change no cell, and for those that update no
-- row at all: a job's start closes its pair's interrupted runs in a data-modifying CTE that usually
-- finds none (run_start_state.sql), and a run row's insert fires the update triggers too (its
-- ON CONFLICT DO UPDATE). An unchanged delta run paid for three such firings, each building
-- transition tables and planning a grouped upsert, where one update (its end) moves a count:
-- `perf` put the trigger at ~8 % of Postgres' CPU in the fleet's unchanged pass (docs/benchmarks.md
-- "Stop 25"). Updates touch a handful of runs at a time (a run's end, the closing of interrupted runs),
-- so a row trigger costs no more for them; inserts and deletes, which come in bulk (the history
-- benchmark's COPY, a tenant's deletion), keep their statement triggers.

DROP TRIGGER sync_runs_count_update ON sync_runs;

CREATE FUNCTION sync_run_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The old cell loses the run, the new one gains it; rows in key order, as the statement triggers
    -- lock them, so concurrent writers cannot deadlock on two cells.
    INSERT INTO sync_run_counts AS c (tenant_id, object_class, status, mode, runs)
    SELECT tenant_id, object_class, status, mode, d FROM (VALUES
        (OLD.tenant_id, OLD.object_class, OLD.status, OLD.mode, -1::bigint),
        (NEW.tenant_id, NEW.object_class, NEW.status, NEW.mode, 1::bigint)
    ) AS moved (tenant_id, object_class, status, mode, d)
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (tenant_id, object_class, status, mode) DO UPDATE SET runs = c.runs + EXCLUDED.runs;
    RETURN NULL;
END $$;

CREATE TRIGGER sync_runs_count_move AFTER UPDATE OF tenant_id, object_class, status, mode ON sync_runs
    FOR EACH ROW
    WHEN ((OLD.tenant_id, OLD.object_class, OLD.status, OLD.mode)
          IS DISTINCT FROM (NEW.tenant_id, NEW.object_class, NEW.status, NEW.mode))
    EXECUTE FUNCTION sync_run_counts_move();

-- The statement triggers left are for inserts and deletes: the function's update branch goes.
CREATE OR REPLACE FUNCTION sync_run_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Each branch names only the transition table its operation has.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO sync_run_counts AS c (tenant_id, object_class, status, mode, runs)
        SELECT tenant_id, object_class, status, mode, count(*) FROM new_rows
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, object_class, status, mode) DO UPDATE SET runs = c.runs + EXCLUDED.runs;
    ELSE
        INSERT INTO sync_run_counts AS c (tenant_id, object_class, status, mode, runs)
        SELECT tenant_id, object_class, status, mode, -count(*) FROM old_rows
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, object_class, status, mode) DO UPDATE SET runs = c.runs + EXCLUDED.runs;
    END IF;
    RETURN NULL;
END $$;
