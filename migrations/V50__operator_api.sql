-- The operator API (docs/api.md): tokens, the audit log, tenant block / permission / consent state,
-- tombstones of deleted tenants, consent requests, and what keeps history pages fast (indexes and
-- exact per-key run counts). src/store/{api_tokens,audit,tenants,consent,history}.rs own these.

-- Bearer tokens: only the SHA-256 of a token is stored. A name is unique among tokens in use.
CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role         text NOT NULL CHECK (role IN ('admin', 'viewer')),
    token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- Every change an operator (or the CLI) makes, written in the change's transaction. Never a secret.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    target_type text NOT NULL,
    target_id   text NOT NULL,
    before      jsonb,
    after       jsonb
);
CREATE INDEX audit_log_by_target ON audit_log (target_type, target_id, id DESC);

-- Blocked: no run is scheduled, data and credentials are kept. Permission status from the last check,
-- what Entra reports about the directory, and the outcome of the last admin consent.
ALTER TABLE tenants
    ADD COLUMN blocked                 boolean NOT NULL DEFAULT false,
    ADD COLUMN permission_status       text NOT NULL DEFAULT 'unknown' CHECK (permission_status IN
        ('unknown', 'granted', 'granted_needs_settings', 'needs_additional_permissions', 'error')),
    ADD COLUMN permission_details      jsonb,
    ADD COLUMN permissions_checked_at  timestamptz,
    ADD COLUMN display_name_from_entra text,
    ADD COLUMN verified_domains        text[] NOT NULL DEFAULT '{}',
    ADD COLUMN consent_state           text CHECK (consent_state IN ('granted', 'refused')),
    ADD COLUMN consent_error           text,
    ADD COLUMN consented_at            timestamptz;

-- Profile pages count their tenants, and a profile in use cannot be deleted.
CREATE INDEX tenants_by_credential_profile ON tenants (credential_profile_id);

-- Tenants that were deleted: a worker drops a queued job of one of them instead of dead-lettering it.
CREATE TABLE deleted_tenants (
    id              bigint PRIMARY KEY,
    entra_tenant_id uuid NOT NULL,
    name            text NOT NULL,
    deleted_at      timestamptz NOT NULL DEFAULT now()
);

-- Single-use `state` values of the admin-consent redirect; tenant_id NULL means "add by consent".
CREATE TABLE consent_requests (
    state                 text PRIMARY KEY CHECK (length(state) BETWEEN 16 AND 200),
    credential_profile_id bigint NOT NULL REFERENCES credential_profiles (id) ON DELETE CASCADE,
    tenant_id             bigint REFERENCES tenants (id) ON DELETE CASCADE,
    -- As the API gives it (the cloud's JSON, so a custom cloud keeps its URLs).
    cloud                 text NOT NULL CHECK (length(cloud) <= 2000),
    created_by            text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    used_at               timestamptz
);

-- History pages are keyset-ordered by (started_at DESC, id DESC). One index per leading filter, each
-- ending in the page order so a page is an index range read that stops after `limit` rows; the
-- per-(tenant, class) index gains `id` (same name: the metrics and the overview probe it too).
DROP INDEX sync_runs_by_tenant_class;
CREATE INDEX sync_runs_by_tenant_class ON sync_runs (tenant_id, object_class, started_at DESC, id DESC);
CREATE INDEX sync_runs_by_start ON sync_runs (started_at DESC, id DESC);
CREATE INDEX sync_runs_by_tenant ON sync_runs (tenant_id, started_at DESC, id DESC);
CREATE INDEX sync_runs_by_status ON sync_runs (status, started_at DESC, id DESC);
-- The search box scans error texts: only the runs that have one.
CREATE INDEX sync_runs_with_error ON sync_runs (started_at DESC, id DESC) WHERE error IS NOT NULL;

-- Exact run counts per (tenant, class, status, mode): the total of a history page without a time range
-- or search is a sum of at most a few thousand of these, instead of counting a million runs. Kept by
-- statement triggers (one grouped upsert per statement, in key order so concurrent writers lock rows in
-- the same order; a progress update that changes no key writes nothing).
CREATE TABLE sync_run_counts (
    tenant_id    bigint NOT NULL,
    object_class object_class NOT NULL,
    status       run_status NOT NULL,
    mode         sync_mode NOT NULL,
    runs         bigint NOT NULL,
    PRIMARY KEY (tenant_id, object_class, status, mode)
);

CREATE FUNCTION sync_run_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Each branch names only the transition tables its operation has.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO sync_run_counts AS c (tenant_id, object_class, status, mode, runs)
        SELECT tenant_id, object_class, status, mode, count(*) FROM new_rows
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, object_class, status, mode) DO UPDATE SET runs = c.runs + EXCLUDED.runs;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO sync_run_counts AS c (tenant_id, object_class, status, mode, runs)
        SELECT tenant_id, object_class, status, mode, -count(*) FROM old_rows
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, object_class, status, mode) DO UPDATE SET runs = c.runs + EXCLUDED.runs;
    ELSE
        INSERT INTO sync_run_counts AS c (tenant_id, object_class, status, mode, runs)
        SELECT tenant_id, object_class, status, mode, sum(d) FROM (
            SELECT tenant_id, object_class, status, mode, 1 AS d FROM new_rows
            UNION ALL
            SELECT tenant_id, object_class, status, mode, -1 FROM old_rows) AS changes
        GROUP BY 1, 2, 3, 4 HAVING sum(d) <> 0 ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, object_class, status, mode) DO UPDATE SET runs = c.runs + EXCLUDED.runs;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER sync_runs_count_insert AFTER INSERT ON sync_runs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_run_counts_apply();
CREATE TRIGGER sync_runs_count_update AFTER UPDATE ON sync_runs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_run_counts_apply();
CREATE TRIGGER sync_runs_count_delete AFTER DELETE ON sync_runs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_run_counts_apply();

-- Runs recorded before this migration.
INSERT INTO sync_run_counts (tenant_id, object_class, status, mode, runs)
SELECT tenant_id, object_class, status, mode, count(*) FROM sync_runs GROUP BY 1, 2, 3, 4;
