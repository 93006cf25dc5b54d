-- Issue 14: `mapped` is stored as `json`, not `jsonb`. Every full round writes it for every object, and
-- PostgreSQL 15 spends ~3 µs of CPU per row turning ~150 bytes of text into jsonb (its lexer copies
-- strings character by character, then sorts the keys): 15 % of a 100,000-user round's Postgres CPU.
-- `json` is only checked and kept as sent. The text is already canonical (keys sorted, written by the
-- policy and hashed into the marker), so nothing is lost. Readers that need jsonb operators cast
-- (store::directory, tags_desired_attribute.sql, the change-event triggers through the overload
-- below), which costs only the rows they read. docs/decisions.md "Mapped attributes stored as json".
-- Rewrites the table once (every row's `mapped`, NULL for tenants without mappings).
ALTER TABLE directory_objects ALTER COLUMN mapped TYPE json USING mapped::json;

-- The change-event triggers (V57) call change_event_mapped(mapped, mapped_on_create): with `mapped` a
-- json column this overload is chosen, so the triggers and their diff stay as they are. Only statements
-- of a tenant with change events on reach it.
CREATE FUNCTION change_event_mapped(p_mapped json, p_on_create jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT change_event_mapped(p_mapped::jsonb, p_on_create)
$$;
