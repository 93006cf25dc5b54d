-- Issue 17: per-object change events (docs/events.md). Every change a round commits to
-- directory_objects or group_members is written to change_outbox in the same transaction, so an event
-- exists if and only if its change committed. The relay (actors::Service) publishes rows in `seq` order
-- to the `entrasync.changes` topic exchange with publisher confirms and deletes them once confirmed.

-- Off by default. `change_events_first_round` says what the first full round of an empty (tenant,
-- class) emits: every object (`objects`) or one `snapshot` event per class (`snapshot`: consumers then
-- read the store).
ALTER TABLE tenants
    ADD COLUMN change_events boolean NOT NULL DEFAULT false,
    ADD COLUMN change_events_first_round text NOT NULL DEFAULT 'snapshot'
        CHECK (change_events_first_round IN ('objects', 'snapshot'));

CREATE TABLE change_outbox (
    -- Commit order within a transaction and per object (runs of one (tenant, class) never overlap):
    -- the relay publishes in this order.
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- No foreign key: a deleted tenant's last events still go out.
    tenant_id   bigint NOT NULL,
    -- The idempotency key consumers deduplicate on; a re-published row keeps it.
    event_id    uuid NOT NULL,
    -- `<entra tenant id>.<class>.<kind>`.
    routing_key text NOT NULL,
    -- The versioned event document (docs/events.md).
    body        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
