-- Issue 17, the write side of change events (docs/events.md). Every change committed to
-- directory_objects or group_members becomes one change_outbox row, written by statement-level AFTER
-- triggers with transition tables in the statement's own transaction: an event exists if and only if
-- its change committed, whichever code path wrote it (a round's COPY and upsert, a re-map, the deletions
-- at a round's end or allowed by an operator, the membership sweep). Nothing is written for a statement
-- that changed no row (a replayed page, an unchanged re-scan), nor for a tenant whose switch is off.
-- docs/decisions.md "Change events: written by triggers" gives the reasons and the measured cost.

-- The triggers first ask whether any tenant has events on: one probe of this index (empty while the
-- feature is unused), so a statement of a tenant without events costs the capture of its transition
-- tables and this probe.
CREATE INDEX tenants_change_events_on ON tenants (id) WHERE change_events;

-- The decision of the first change a full run writes while its tenant has events on: `quiet` when the
-- tenant chose a snapshot for the first round and the (tenant, class) held nothing but this run's rows.
-- A quiet run emits no per-object event; when its checkpoint goes (the run completed, was held, or gave
-- up), one `snapshot` event stands for everything it wrote. Removed with the checkpoint.
CREATE TABLE change_event_runs (
    run_id       uuid PRIMARY KEY,
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    object_class object_class NOT NULL,
    quiet        boolean NOT NULL
);
CREATE INDEX change_event_runs_by_tenant ON change_event_runs (tenant_id);

-- The run writing (tenant, class) in this transaction. Rounds and re-maps lock their checkpoint row
-- (sync_cursors, remap_checkpoints) with FOR UPDATE before they write, and rewrite it after: the row
-- whose xmax (lock) or xmin (rewrite) is this transaction's id names the run, with no change to the code
-- that writes. A held deletion allowed by an operator names its run through the transaction-local
-- setting `entrasync.run_id` (set by the held_deletions trigger below). NULL otherwise.
CREATE FUNCTION change_event_run(p_tenant bigint, p_class object_class) RETURNS uuid
LANGUAGE sql STABLE AS $$
    WITH mine AS (SELECT (pg_current_xact_id()::text::bigint % 4294967296)::text AS xid)
    SELECT coalesce(
        (SELECT found.run_id FROM (
            SELECT c.run_id, c.object_class = p_class AS same, 1 AS rank
            FROM sync_cursors c, mine
            WHERE c.tenant_id = p_tenant AND c.run_id IS NOT NULL
              AND (c.xmax::text = mine.xid OR c.xmin::text = mine.xid)
            UNION ALL
            SELECT r.run_id, r.object_class = p_class, 2
            FROM remap_checkpoints r, mine
            WHERE r.tenant_id = p_tenant AND (r.xmax::text = mine.xid OR r.xmin::text = mine.xid)
        ) found ORDER BY found.same DESC, found.rank LIMIT 1),
        nullif(current_setting('entrasync.run_id', true), '')::uuid)
$$;

-- Whether the run's per-object events are replaced by one snapshot (see change_event_runs). Decided once
-- per run, at its first change with events on; only full rounds of a tenant that chose `snapshot`.
CREATE FUNCTION change_event_quiet(p_tenant bigint, p_class object_class, p_run uuid, p_first_round text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    decided boolean;
BEGIN
    IF p_run IS NULL OR p_first_round IS DISTINCT FROM 'snapshot' THEN
        RETURN false;
    END IF;
    SELECT r.quiet INTO decided FROM change_event_runs r WHERE r.run_id = p_run;
    IF FOUND THEN
        RETURN decided;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM sync_cursors c WHERE c.tenant_id = p_tenant AND c.object_class = p_class
                   AND c.run_id = p_run AND c.run_mode = 'full') THEN
        RETURN false;
    END IF;
    -- Empty but for what this run created (its first batch, or batches written before the switch).
    decided := NOT EXISTS (
        SELECT 1 FROM directory_objects d
        WHERE d.tenant_id = p_tenant AND d.object_class = p_class AND d.created_run IS DISTINCT FROM p_run);
    INSERT INTO change_event_runs (run_id, tenant_id, object_class, quiet)
    VALUES (p_run, p_tenant, p_class, decided) ON CONFLICT (run_id) DO NOTHING;
    RETURN decided;
END $$;

-- A JSON object, or {} (NULL and JSON null alike).
CREATE FUNCTION change_event_object(p jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p) = 'object' THEN p ELSE '{}'::jsonb END
$$;

-- The mapped attributes as readers see them (store::directory): create-time values under the others;
-- NULL when the object has none.
CREATE FUNCTION change_event_mapped(p_mapped jsonb, p_on_create jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p_mapped) = 'object' OR jsonb_typeof(p_on_create) = 'object'
                THEN change_event_object(p_on_create) || change_event_object(p_mapped) END
$$;

-- Names of the attributes that differ between two states, sorted; mapped ones as `mapped.<name>`.
CREATE FUNCTION change_event_changed(o_attrs jsonb, n_attrs jsonb, o_mapped jsonb, n_mapped jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(c.name ORDER BY c.name), '[]'::jsonb) FROM (
        SELECT k AS name FROM (
            SELECT jsonb_object_keys(change_event_object(o_attrs))
            UNION SELECT jsonb_object_keys(change_event_object(n_attrs))) a (k)
        WHERE change_event_object(o_attrs) -> k IS DISTINCT FROM change_event_object(n_attrs) -> k
        UNION ALL
        SELECT 'mapped.' || k FROM (
            SELECT jsonb_object_keys(change_event_object(o_mapped))
            UNION SELECT jsonb_object_keys(change_event_object(n_mapped))) m (k)
        WHERE change_event_object(o_mapped) -> k IS DISTINCT FROM change_event_object(n_mapped) -> k
    ) c
$$;

-- The fields every event carries (docs/events.md, schema_version 1).
CREATE FUNCTION change_event_head(p_event uuid, p_entra uuid, p_tenant bigint, p_class text, p_kind text, p_run uuid)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'schema_version', 1, 'event_id', p_event, 'tenant', p_entra, 'tenant_id', p_tenant,
        'class', p_class, 'kind', p_kind, 'run_id', p_run,
        'occurred_at', to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
$$;

-- The (tenant, class) pairs of a statement's rows that emit events: their tenant has events on and the
-- run writing them is not quiet. With the run and the Entra tenant id the events carry.
CREATE FUNCTION change_event_scope(p_tenants bigint[], p_classes object_class[])
RETURNS TABLE (tenant_id bigint, object_class object_class, entra uuid, run_id uuid)
LANGUAGE sql AS $$
    SELECT s.tenant_id, s.object_class, t.entra_tenant_id, s.run_id
    FROM (
        SELECT k.tenant_id, k.object_class, change_event_run(k.tenant_id, k.object_class) AS run_id
        FROM (SELECT DISTINCT * FROM unnest(p_tenants, p_classes) AS u (tenant_id, object_class)) k
    ) s
    JOIN tenants t ON t.id = s.tenant_id AND t.change_events
    WHERE NOT change_event_quiet(s.tenant_id, s.object_class, s.run_id, t.change_events_first_round)
$$;

CREATE FUNCTION change_events_any_on() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM tenants WHERE change_events)
$$;

-- directory_objects INSERT: `created` (a live object) or `soft_deleted` (a tombstone: an object Graph
-- reported only as deleted).
CREATE FUNCTION change_events_objects_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT change_events_any_on() THEN
        RETURN NULL;
    END IF;
    WITH scope AS (
        SELECT s.* FROM (
            SELECT array_agg(k.tenant_id) AS tenants, array_agg(k.object_class) AS classes
            FROM (SELECT DISTINCT n.tenant_id, n.object_class FROM new_rows n) k) keys,
        change_event_scope(keys.tenants, keys.classes) s
    ),
    events AS (
        SELECT gen_random_uuid() AS event_id, s.entra, s.run_id, n.*,
               CASE WHEN n.deleted_at IS NULL THEN 'created' ELSE 'soft_deleted' END AS kind
        FROM new_rows n JOIN scope s ON s.tenant_id = n.tenant_id AND s.object_class = n.object_class
        ORDER BY n.object_id
    )
    INSERT INTO change_outbox (tenant_id, event_id, routing_key, body)
    SELECT e.tenant_id, e.event_id, concat_ws('.', e.entra, e.object_class, e.kind),
           change_event_head(e.event_id, e.entra, e.tenant_id, e.object_class::text, e.kind, e.run_id)
           || jsonb_build_object('object_id', e.object_id)
           || CASE WHEN e.kind = 'created'
                   THEN jsonb_build_object('object', jsonb_build_object(
                            'attrs', e.attrs, 'mapped', change_event_mapped(e.mapped, e.mapped_on_create)))
                   ELSE jsonb_build_object('reason', e.delete_reason, 'tombstone', true) END
    FROM events e ORDER BY e.object_id;
    RETURN NULL;
END $$;

-- directory_objects UPDATE: `soft_deleted`, `restored`, or `updated` when an attribute (stored or
-- mapped) differs. Anything else (a marker rewritten to the same state, created_run cleared) emits nothing.
CREATE FUNCTION change_events_objects_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT change_events_any_on() THEN
        RETURN NULL;
    END IF;
    WITH scope AS (
        SELECT s.* FROM (
            SELECT array_agg(k.tenant_id) AS tenants, array_agg(k.object_class) AS classes
            FROM (SELECT DISTINCT n.tenant_id, n.object_class FROM new_rows n) k) keys,
        change_event_scope(keys.tenants, keys.classes) s
    ),
    pairs AS (
        SELECT s.entra, s.run_id, n.tenant_id, n.object_class, n.object_id, n.attrs,
               change_event_mapped(n.mapped, n.mapped_on_create) AS mapped, n.delete_reason,
               CASE WHEN o.deleted_at IS NULL AND n.deleted_at IS NOT NULL THEN 'soft_deleted'
                    WHEN o.deleted_at IS NOT NULL AND n.deleted_at IS NULL THEN 'restored'
                    WHEN n.deleted_at IS NULL THEN 'updated' END AS kind,
               change_event_changed(o.attrs, n.attrs, change_event_mapped(o.mapped, o.mapped_on_create),
                                    change_event_mapped(n.mapped, n.mapped_on_create)) AS changed
        FROM new_rows n
        JOIN old_rows o ON o.tenant_id = n.tenant_id AND o.object_class = n.object_class AND o.object_id = n.object_id
        JOIN scope s ON s.tenant_id = n.tenant_id AND s.object_class = n.object_class
    ),
    events AS (
        SELECT gen_random_uuid() AS event_id, p.* FROM pairs p
        WHERE p.kind IN ('soft_deleted', 'restored') OR (p.kind = 'updated' AND p.changed <> '[]'::jsonb)
        ORDER BY p.object_id
    )
    INSERT INTO change_outbox (tenant_id, event_id, routing_key, body)
    SELECT e.tenant_id, e.event_id, concat_ws('.', e.entra, e.object_class, e.kind),
           change_event_head(e.event_id, e.entra, e.tenant_id, e.object_class::text, e.kind, e.run_id)
           || jsonb_build_object('object_id', e.object_id)
           || CASE WHEN e.kind = 'soft_deleted' THEN jsonb_build_object('reason', e.delete_reason)
                   ELSE jsonb_build_object('object', jsonb_build_object('attrs', e.attrs, 'mapped', e.mapped),
                                           'changed', e.changed) END
    FROM events e ORDER BY e.object_id;
    RETURN NULL;
END $$;

-- directory_objects DELETE: `deleted` (permanent; the only path that removes an object row is
-- apply_directory_deletions for an `@removed deleted`, so the reason is that one). A tenant's deletion
-- switches its events off first (store::tenants::delete), so it emits nothing.
CREATE FUNCTION change_events_objects_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT change_events_any_on() THEN
        RETURN NULL;
    END IF;
    WITH scope AS (
        SELECT s.* FROM (
            SELECT array_agg(k.tenant_id) AS tenants, array_agg(k.object_class) AS classes
            FROM (SELECT DISTINCT o.tenant_id, o.object_class FROM old_rows o) k) keys,
        change_event_scope(keys.tenants, keys.classes) s
    ),
    events AS (
        SELECT gen_random_uuid() AS event_id, s.entra, s.run_id, o.tenant_id, o.object_class, o.object_id
        FROM old_rows o JOIN scope s ON s.tenant_id = o.tenant_id AND s.object_class = o.object_class
        ORDER BY o.object_id
    )
    INSERT INTO change_outbox (tenant_id, event_id, routing_key, body)
    SELECT e.tenant_id, e.event_id, concat_ws('.', e.entra, e.object_class, 'deleted'),
           change_event_head(e.event_id, e.entra, e.tenant_id, e.object_class::text, 'deleted', e.run_id)
           || jsonb_build_object('object_id', e.object_id, 'reason', 'permanently deleted in Entra ID')
    FROM events e ORDER BY e.object_id;
    RETURN NULL;
END $$;

-- group_members INSERT / DELETE: `member_added` / `member_removed`, class `group`, object_id the group.
-- A removal caused by a member's permanent deletion belongs to that member's run (user or device).
CREATE FUNCTION change_event_members(p_kind text, p_tenants bigint[], p_groups uuid[], p_members uuid[],
                                     p_classes text[]) RETURNS void LANGUAGE sql AS $$
    WITH rows AS (
        SELECT * FROM unnest(p_tenants, p_groups, p_members, p_classes) AS r (tenant_id, group_id, member_id, member_class)
    ),
    scope AS (
        SELECT s.* FROM (
            SELECT array_agg(k.tenant_id) AS tenants, array_agg('group'::object_class) AS classes
            FROM (SELECT DISTINCT r.tenant_id FROM rows r) k) keys,
        change_event_scope(keys.tenants, keys.classes) s
    ),
    events AS (
        SELECT gen_random_uuid() AS event_id, s.entra, s.run_id, r.*
        FROM rows r JOIN scope s ON s.tenant_id = r.tenant_id
        ORDER BY r.group_id, r.member_id
    )
    INSERT INTO change_outbox (tenant_id, event_id, routing_key, body)
    SELECT e.tenant_id, e.event_id, concat_ws('.', e.entra, 'group', p_kind),
           change_event_head(e.event_id, e.entra, e.tenant_id, 'group', p_kind, e.run_id)
           || jsonb_build_object('object_id', e.group_id,
                                 'member', jsonb_build_object('id', e.member_id, 'class', e.member_class))
    FROM events e ORDER BY e.group_id, e.member_id
$$;

CREATE FUNCTION change_events_members_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT change_events_any_on() THEN
        RETURN NULL;
    END IF;
    -- Each branch names only the transition table its operation has.
    IF TG_OP = 'INSERT' THEN
        PERFORM change_event_members('member_added', array_agg(n.tenant_id), array_agg(n.group_id),
                                     array_agg(n.member_id), array_agg(n.member_class))
        FROM new_rows n;
    ELSE
        PERFORM change_event_members('member_removed', array_agg(o.tenant_id), array_agg(o.group_id),
                                     array_agg(o.member_id), array_agg(o.member_class))
        FROM old_rows o;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER change_events_insert AFTER INSERT ON directory_objects
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION change_events_objects_inserted();
CREATE TRIGGER change_events_update AFTER UPDATE ON directory_objects
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_events_objects_updated();
CREATE TRIGGER change_events_delete AFTER DELETE ON directory_objects
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION change_events_objects_deleted();
CREATE TRIGGER change_events_insert AFTER INSERT ON group_members
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION change_events_members_changed();
CREATE TRIGGER change_events_delete AFTER DELETE ON group_members
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION change_events_members_changed();

-- One `snapshot` event: consumers read the (tenant, class) from the store (or the API) as their baseline.
CREATE FUNCTION change_event_snapshot(p_tenant bigint, p_class object_class, p_run uuid) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO change_outbox (tenant_id, event_id, routing_key, body)
    SELECT t.id, e.event_id, concat_ws('.', t.entra_tenant_id, p_class, 'snapshot'),
           change_event_head(e.event_id, t.entra_tenant_id, t.id, p_class::text, 'snapshot', p_run)
           || jsonb_build_object('snapshot', jsonb_build_object(
                  'objects', (SELECT count(*) FROM directory_objects d
                              WHERE d.tenant_id = t.id AND d.object_class = p_class AND d.deleted_at IS NULL),
                  'soft_deleted', (SELECT count(*) FROM directory_objects d
                                   WHERE d.tenant_id = t.id AND d.object_class = p_class AND d.deleted_at IS NOT NULL),
                  'memberships', CASE WHEN p_class = 'group'
                                      THEN (SELECT count(*) FROM group_members m WHERE m.tenant_id = t.id) ELSE 0 END))
    FROM tenants t, (SELECT gen_random_uuid() AS event_id) e
    WHERE t.id = p_tenant AND t.change_events
$$;

-- A run's checkpoint went (completed, held, refused or superseded): a quiet run's snapshot goes out, and
-- the run's decision is dropped.
CREATE FUNCTION change_events_run_left() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_quiet boolean;
BEGIN
    DELETE FROM change_event_runs r WHERE r.run_id = OLD.run_id RETURNING r.quiet INTO was_quiet;
    IF was_quiet THEN
        PERFORM change_event_snapshot(OLD.tenant_id, OLD.object_class, OLD.run_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER change_events_run_left AFTER UPDATE OF run_id ON sync_cursors
    FOR EACH ROW WHEN (OLD.run_id IS NOT NULL AND OLD.run_id IS DISTINCT FROM NEW.run_id)
    EXECUTE FUNCTION change_events_run_left();

-- Switched on: a class that holds objects already gets one snapshot event, in the switch's transaction,
-- so consumers have a baseline before the first per-object event (store::tenants::set_change_events
-- first waits for the writes in flight: see there).
CREATE FUNCTION change_events_switched_on() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    class object_class;
BEGIN
    FOREACH class IN ARRAY enum_range(NULL::object_class) LOOP
        IF EXISTS (SELECT 1 FROM directory_objects d WHERE d.tenant_id = NEW.id AND d.object_class = class) THEN
            PERFORM change_event_snapshot(NEW.id, class, NULL);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER change_events_switched_on AFTER UPDATE OF change_events ON tenants
    FOR EACH ROW WHEN (NEW.change_events AND NOT OLD.change_events) EXECUTE FUNCTION change_events_switched_on();

-- An operator allowed a run's held deletions (held_allow.sql): the deletions it applies belong to that run.
-- BEFORE, so the setting is there when the same statement goes on to apply them (AFTER row triggers
-- would fire only once the statement is over).
CREATE FUNCTION change_events_held_allowed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('entrasync.run_id', NEW.run_id::text, true);
    RETURN NEW;
END $$;

CREATE TRIGGER change_events_held_allowed BEFORE UPDATE OF status ON held_deletions
    FOR EACH ROW WHEN (NEW.status = 'allowed' AND OLD.status = 'held') EXECUTE FUNCTION change_events_held_allowed();
