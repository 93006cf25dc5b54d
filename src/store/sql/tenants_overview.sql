-- The tenant list of the API and console: one row per (tenant, class) with the class's latest run.
-- Each latest run is one probe of sync_runs_by_tenant_class (LIMIT 1 in the index order), so the cost
-- follows the number of tenants, never the history. $1: one tenant id, or NULL for all.
SELECT t.id, t.name, t.entra_tenant_id, t.cloud, t.custom_login_url, t.custom_graph_url,
       t.credential_profile_id, t.enabled, t.full_scan_next_run, t.blocked,
       p.name, t.permission_status, t.permissions_checked_at, t.quarantined_at, t.quarantine_reason,
       t.verified_domains, t.display_name_from_entra, t.consent_state, t.consent_error, t.consented_at,
       t.created_at, t.updated_at,
       c.class::text, r.id, r.started_at, r.status::text,
       t.change_events, t.change_events_first_round
FROM tenants t
LEFT JOIN credential_profiles p ON p.id = t.credential_profile_id
CROSS JOIN unnest(enum_range(NULL::object_class)) AS c(class)
LEFT JOIN LATERAL (
    SELECT s.id, s.started_at, s.status FROM sync_runs s
    WHERE s.tenant_id = t.id AND s.object_class = c.class
    ORDER BY s.started_at DESC, s.id DESC
    LIMIT 1
) r ON true
WHERE $1::bigint IS NULL OR t.id = $1
ORDER BY t.name, t.id, c.class
