-- The change-event triggers of V57 capture transition tables only while some tenant has events on.
-- PostgreSQL copies every row a statement writes into a trigger's transition tables before the trigger
-- runs, and it does so for a disabled trigger too (ALTER TABLE ... DISABLE TRIGGER and
-- session_replication_role = replica keep the capture). So with every tenant off, the triggers on
-- directory_objects and group_members are kept in a dormant form: statement-level, no transition tables,
-- WHEN (false). A write then costs nothing for them. Switching the first tenant on replaces them with the
-- capturing form, switching the last one off with the dormant form again (triggers on `tenants` below),
-- in the switch's own transaction. CREATE OR REPLACE TRIGGER takes SHARE ROW EXCLUSIVE on the table:
-- it waits for the writes in flight and holds new ones for the moment of the switch; readers never wait.
-- docs/decisions.md "Change events: written by triggers" and docs/events.md "What it costs".

-- Whether the triggers capture now.
CREATE FUNCTION change_events_capturing() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT t.tgnewtable IS NOT NULL FROM pg_trigger t
                     WHERE t.tgrelid = 'directory_objects'::regclass AND t.tgname = 'change_events_insert'), false)
$$;

-- Puts the five triggers in their capturing (p_on) or dormant form. Same names, same functions.
CREATE FUNCTION change_events_capture(p_on boolean) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_on THEN
        CREATE OR REPLACE TRIGGER change_events_insert AFTER INSERT ON directory_objects
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION change_events_objects_inserted();
        CREATE OR REPLACE TRIGGER change_events_update AFTER UPDATE ON directory_objects
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION change_events_objects_updated();
        CREATE OR REPLACE TRIGGER change_events_delete AFTER DELETE ON directory_objects
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION change_events_objects_deleted();
        CREATE OR REPLACE TRIGGER change_events_insert AFTER INSERT ON group_members
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION change_events_members_changed();
        CREATE OR REPLACE TRIGGER change_events_delete AFTER DELETE ON group_members
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION change_events_members_changed();
    ELSE
        CREATE OR REPLACE TRIGGER change_events_insert AFTER INSERT ON directory_objects
            FOR EACH STATEMENT WHEN (false) EXECUTE FUNCTION change_events_objects_inserted();
        CREATE OR REPLACE TRIGGER change_events_update AFTER UPDATE ON directory_objects
            FOR EACH STATEMENT WHEN (false) EXECUTE FUNCTION change_events_objects_updated();
        CREATE OR REPLACE TRIGGER change_events_delete AFTER DELETE ON directory_objects
            FOR EACH STATEMENT WHEN (false) EXECUTE FUNCTION change_events_objects_deleted();
        CREATE OR REPLACE TRIGGER change_events_insert AFTER INSERT ON group_members
            FOR EACH STATEMENT WHEN (false) EXECUTE FUNCTION change_events_members_changed();
        CREATE OR REPLACE TRIGGER change_events_delete AFTER DELETE ON group_members
            FOR EACH STATEMENT WHEN (false) EXECUTE FUNCTION change_events_members_changed();
    END IF;
END $$;

-- Brings the triggers to the form the tenants ask for. The lock comes first, so two switches (one on,
-- one off, of different tenants) see each other's outcome: the later one reads the tenants once the
-- earlier has committed (each statement of a volatile function takes a fresh snapshot). store::tenants
-- takes the lock before the tenant row, in the order writers take theirs (table, then rows).
CREATE FUNCTION change_events_follow_tenants() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    wanted boolean;
BEGIN
    LOCK TABLE directory_objects, group_members IN SHARE ROW EXCLUSIVE MODE;
    wanted := EXISTS (SELECT 1 FROM tenants WHERE change_events);
    IF wanted IS DISTINCT FROM change_events_capturing() THEN
        PERFORM change_events_capture(wanted);
    END IF;
END $$;

CREATE FUNCTION change_events_tenant_switched() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM change_events_follow_tenants();
    RETURN NULL;
END $$;

-- Every way a tenant's switch can change: an operator's update, a tenant created or deleted with it on.
CREATE TRIGGER change_events_capture_on_switch AFTER UPDATE OF change_events ON tenants
    FOR EACH ROW WHEN (OLD.change_events IS DISTINCT FROM NEW.change_events)
    EXECUTE FUNCTION change_events_tenant_switched();
CREATE TRIGGER change_events_capture_on_insert AFTER INSERT ON tenants
    FOR EACH ROW WHEN (NEW.change_events) EXECUTE FUNCTION change_events_tenant_switched();
CREATE TRIGGER change_events_capture_on_delete AFTER DELETE ON tenants
    FOR EACH ROW WHEN (OLD.change_events) EXECUTE FUNCTION change_events_tenant_switched();

SELECT change_events_follow_tenants();
