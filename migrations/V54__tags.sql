-- External tag mappings (docs/mappings.md, "Tag mappings"; src/store/tags.rs). Per tenant: mappings from
-- a user attribute or group membership to a custom tag key or the Asset group tag; the tag values they
-- bring in and the values operators add (one table: a custom tag is (key, value), an asset group is a
-- value of kind asset_group without a key); which mappings synced a value; which objects carry a value,
-- and why (a mapping, or an operator). Everything goes with its tenant (ON DELETE CASCADE), so deleting
-- a tenant needs no statement of its own here.

CREATE TABLE tag_mappings (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id           bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Canonical name: department, extensionAttribute3, extension_<appid>_<name>, group_membership, ...
    source              text NOT NULL CHECK (length(source) BETWEEN 1 AND 200),
    target_kind         text NOT NULL CHECK (target_kind IN ('custom', 'asset_group')),
    target_key          text CHECK (length(target_key) BETWEEN 1 AND 100),
    created_at          timestamptz NOT NULL DEFAULT now(),
    created_by          text NOT NULL,
    last_synced_at      timestamptz,
    -- Deleted by an operator after it synced: its values go at the next tag sync, then the row.
    pending_deletion_at timestamptz,
    deletion_attempts   integer NOT NULL DEFAULT 0,
    deletion_error      text,
    CHECK ((target_kind = 'custom') = (target_key IS NOT NULL))
);

-- The duplicate rule: no two live mappings with the same source and the same target. A mapping pending
-- deletion is out of it (and out of the limit), so the same mapping can be created again at once.
CREATE UNIQUE INDEX tag_mappings_live_identity
    ON tag_mappings (tenant_id, lower(source), target_kind, lower(coalesce(target_key, '')))
    WHERE pending_deletion_at IS NULL;
CREATE INDEX tag_mappings_by_tenant ON tag_mappings (tenant_id, id);

CREATE TABLE tags (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('custom', 'asset_group')),
    key        text CHECK (length(key) BETWEEN 1 AND 100),
    value      text NOT NULL CHECK (length(value) BETWEEN 1 AND 256),
    -- Created by an operator: never deleted with a mapping.
    manual     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    -- Identity: keys compare case-insensitively; custom values exactly; asset groups by name
    -- case-insensitively (a synced value naming an existing group joins it).
    key_norm   text GENERATED ALWAYS AS (lower(coalesce(key, ''))) STORED,
    value_norm text GENERATED ALWAYS AS (CASE WHEN kind = 'asset_group' THEN lower(value) ELSE value END) STORED,
    CHECK ((kind = 'custom') = (key IS NOT NULL))
);
CREATE UNIQUE INDEX tags_identity ON tags (tenant_id, kind, key_norm, value_norm);

-- Which mappings brought a value in.
CREATE TABLE tag_sources (
    tag_id          bigint NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    mapping_id      bigint NOT NULL REFERENCES tag_mappings (id) ON DELETE CASCADE,
    first_synced_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tag_id, mapping_id)
);
CREATE INDEX tag_sources_by_mapping ON tag_sources (mapping_id, tag_id);

-- A value on an object: one row per reason, a mapping (mapping_id) or an operator (mapping_id NULL).
CREATE TABLE object_tags (
    tenant_id    bigint NOT NULL,
    tag_id       bigint NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    object_class object_class NOT NULL,
    object_id    uuid NOT NULL,
    mapping_id   bigint REFERENCES tag_mappings (id) ON DELETE CASCADE,
    assigned_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX object_tags_identity ON object_tags (tag_id, object_id, (coalesce(mapping_id, 0)));
CREATE INDEX object_tags_by_object ON object_tags (tenant_id, object_id);
-- A tag sync batch diffs one mapping's rows over a range of object ids.
CREATE INDEX object_tags_by_mapping ON object_tags (mapping_id, object_id) WHERE mapping_id IS NOT NULL;
-- "Assigned manually" decides whether a value survives its mapping's deletion.
CREATE INDEX object_tags_manual ON object_tags (tag_id) WHERE mapping_id IS NULL;

-- When the tenant's tag sync last ran (the daily rule, schedule::tags).
CREATE TABLE tag_sync_state (
    tenant_id        bigint PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    last_run_id      uuid,
    last_finished_at timestamptz
);
