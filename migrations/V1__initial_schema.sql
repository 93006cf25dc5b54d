-- entrasync initial schema: tenants, credentials, the directory copy, membership, cursors, run history.
-- Sizing: millions of object rows across thousands of tenants. Big tables are hash-partitioned by tenant
-- (every sync access path is per tenant), keyed by a compact bigint tenant key and uuid object ids.
-- docs/decisions.md explains the choices.

CREATE TYPE object_class AS ENUM ('user', 'group', 'device');
CREATE TYPE sync_mode AS ENUM ('full', 'delta');
CREATE TYPE run_status AS ENUM ('running', 'success', 'warning', 'failed', 'held', 'cancelled');

CREATE TABLE credential_profiles (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    client_id      uuid NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('secret', 'certificate')),
    -- Secrets are encrypted by the application before they reach this table (never plaintext).
    secret_ciphertext     bytea,
    certificate_pem       text,
    private_key_ciphertext bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'secret' AND secret_ciphertext IS NOT NULL)
        OR (kind = 'certificate' AND certificate_pem IS NOT NULL AND private_key_ciphertext IS NOT NULL))
);

CREATE TABLE tenants (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    entra_tenant_id       uuid NOT NULL,
    cloud                 text NOT NULL CHECK (cloud IN ('global', 'us_gov', 'us_gov_dod', 'china', 'custom')),
    -- Only for cloud = 'custom' (an emulator or a sovereign endpoint): explicit login and Graph roots.
    custom_login_url      text,
    custom_graph_url      text,
    credential_profile_id bigint REFERENCES credential_profiles (id),
    enabled               boolean NOT NULL DEFAULT true,
    full_scan_next_run    boolean NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (entra_tenant_id),
    CHECK ((cloud = 'custom') = (custom_login_url IS NOT NULL AND custom_graph_url IS NOT NULL))
);

-- A tenant's directory and cloud are its identity: changing them would mix two directories' data.
CREATE FUNCTION tenants_identity_is_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.entra_tenant_id IS DISTINCT FROM OLD.entra_tenant_id
       OR NEW.cloud IS DISTINCT FROM OLD.cloud
       OR NEW.custom_login_url IS DISTINCT FROM OLD.custom_login_url
       OR NEW.custom_graph_url IS DISTINCT FROM OLD.custom_graph_url THEN
        RAISE EXCEPTION 'tenant % cannot change its Entra tenant id or cloud; create a new tenant instead', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER tenants_identity_is_immutable
    BEFORE UPDATE ON tenants FOR EACH ROW EXECUTE FUNCTION tenants_identity_is_immutable();

-- The directory copy. One row per (tenant, class, object). `marker` is the 64-bit hash of the object's
-- canonical state: equal marker, nothing to write. Soft-deleted objects keep their row with deleted_at set.
CREATE TABLE directory_objects (
    tenant_id     bigint NOT NULL,
    object_class  object_class NOT NULL,
    object_id     uuid NOT NULL,
    marker        bigint NOT NULL,
    attrs         jsonb NOT NULL,
    mapped        jsonb,
    deleted_at    timestamptz,
    delete_reason text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, object_class, object_id)
) PARTITION BY HASH (tenant_id);

-- Group membership, merged from members@delta add/remove slices. member_class tells users from devices
-- and nested groups.
CREATE TABLE group_members (
    tenant_id    bigint NOT NULL,
    group_id     uuid NOT NULL,
    member_id    uuid NOT NULL,
    member_class text NOT NULL,
    added_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, group_id, member_id)
) PARTITION BY HASH (tenant_id);

-- Removing a permanently deleted object from every group it belonged to.
CREATE INDEX group_members_member ON group_members (tenant_id, member_id);

DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format('CREATE TABLE directory_objects_p%s PARTITION OF directory_objects
                        FOR VALUES WITH (MODULUS 16, REMAINDER %s)', i, i);
        EXECUTE format('CREATE TABLE group_members_p%s PARTITION OF group_members
                        FOR VALUES WITH (MODULUS 16, REMAINDER %s)', i, i);
    END LOOP;
END $$;

-- Where a (tenant, class) stands: the deltaLink of the last completed round, and the checkpoint of the
-- round in progress (its nextLink and running counts), written in the same transaction as the page it
-- follows.
CREATE TABLE sync_cursors (
    tenant_id      bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    object_class   object_class NOT NULL,
    delta_link     text,
    delta_link_at  timestamptz,
    run_id         uuid,
    run_mode       sync_mode,
    next_link      text,
    run_counts     jsonb,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, object_class)
);

-- One row per run, for the history views and CSV export.
CREATE TABLE sync_runs (
    id              uuid PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    object_class    object_class NOT NULL,
    mode            sync_mode NOT NULL,
    trigger         text NOT NULL,
    status          run_status NOT NULL DEFAULT 'running',
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    total           bigint NOT NULL DEFAULT 0,
    changed         bigint NOT NULL DEFAULT 0,
    deleted         bigint NOT NULL DEFAULT 0,
    filtered        bigint NOT NULL DEFAULT 0,
    pages           bigint NOT NULL DEFAULT 0,
    graph_requests  bigint NOT NULL DEFAULT 0,
    throttled_waits bigint NOT NULL DEFAULT 0,
    reason          text,
    error           text,
    instance_id     text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- History pages are per tenant and class, newest first.
CREATE INDEX sync_runs_by_tenant_class ON sync_runs (tenant_id, object_class, started_at DESC);
-- Finding runs left `running` by a dead instance.
CREATE INDEX sync_runs_running ON sync_runs (started_at) WHERE status = 'running';
