-- Scale-out: which instances coordinate, which instance supervises which tenant, the schedule state of
-- each (tenant, class), and the tenant quarantine. src/store/{leases,schedule}.rs own these tables.

-- Instances running the scheduler role; live while heartbeat_at is recent (src/store/leases.rs).
CREATE TABLE coordinator_instances (
    instance_id  text PRIMARY KEY CHECK (length(instance_id) BETWEEN 1 AND 200),
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- At most one supervising instance per tenant: a row is held until expires_at unless renewed.
CREATE TABLE tenant_leases (
    tenant_id   bigint PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    holder      text NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX tenant_leases_by_holder ON tenant_leases (holder);

-- What the tenant supervisor needs to decide when a run is due, kept in Postgres so it survives a move
-- of the tenant to another instance. Cursor ages come from sync_cursors.
CREATE TABLE sync_schedules (
    tenant_id            bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    object_class         object_class NOT NULL,
    last_enqueued_at     timestamptz,
    last_full_enqueued_at timestamptz,
    consecutive_failures integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    last_failure_at      timestamptz,
    last_error           text,
    -- A job that arrived while a run held the lock: one more run of this mode after the current one.
    rerun_mode           sync_mode,
    PRIMARY KEY (tenant_id, object_class)
);

-- A tenant whose runs keep failing is quarantined: retried on a decaying schedule, disabled after four
-- weeks. The reason is what operators see.
ALTER TABLE tenants ADD COLUMN quarantined_at timestamptz, ADD COLUMN quarantine_reason text;
