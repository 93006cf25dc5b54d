-- Attribute mappings and scoping filters per (tenant, class) (docs/mappings.md): the whole set as one
-- JSON document (entrasync_model::mapping::MappingSet), validated by the service before it is stored.
-- `version` grows by one per change; a writer that read version n updates only while it is still n.
-- src/store/mappings.rs owns this table. A tenant's rows go with it (ON DELETE CASCADE).
CREATE TABLE mapping_sets (
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    object_class object_class NOT NULL,
    definition   jsonb NOT NULL CHECK (jsonb_typeof(definition) = 'object'),
    version      bigint NOT NULL CHECK (version >= 1),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, object_class)
);
