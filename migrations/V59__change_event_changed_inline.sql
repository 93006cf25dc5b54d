-- The `changed` list of an `updated` event, computed in the trigger's own statement instead of by
-- change_event_changed (V57) once per row. That SQL function cannot be inlined (it has a FROM), so every
-- updated row started a query of its own, with a UNION of the two key sets. Here the keys of the two
-- states are paired by a FULL JOIN of jsonb_each, a lateral subquery of the one statement: same names,
-- same order, same comparison (a key missing on one side differs from any value, JSON null included).
-- Measured alone on 10,000 rows of 30 attributes: 2.8-5.3 s -> 0.79 s. A delta round with events on
-- hardly changed with it (bench-events --rounds: Postgres 3.38 -> 3.29 CPU-s): its cost is elsewhere
-- (docs/events-relay.md).
CREATE OR REPLACE FUNCTION change_events_objects_updated() RETURNS trigger LANGUAGE plpgsql AS $$
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
               (SELECT coalesce(jsonb_agg(d.name ORDER BY d.name), '[]'::jsonb) FROM (
                    SELECT coalesce(x.key, y.key) AS name
                    FROM jsonb_each(change_event_object(o.attrs)) x
                    FULL JOIN jsonb_each(change_event_object(n.attrs)) y ON y.key = x.key
                    WHERE x.value IS DISTINCT FROM y.value
                    UNION ALL
                    SELECT 'mapped.' || coalesce(x.key, y.key)
                    FROM jsonb_each(change_event_object(change_event_mapped(o.mapped, o.mapped_on_create))) x
                    FULL JOIN jsonb_each(change_event_object(change_event_mapped(n.mapped, n.mapped_on_create))) y
                        ON y.key = x.key
                    WHERE x.value IS DISTINCT FROM y.value) d) AS changed
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

DROP FUNCTION change_event_changed(jsonb, jsonb, jsonb, jsonb);
