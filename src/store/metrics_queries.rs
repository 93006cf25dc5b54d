//! Reads for the scrape-time metrics: the tenant list with its states, and per (tenant, class) the
//! freshness of the copy. Both are bounded by the number of tenants (not by objects or history): the
//! tenant list is one small table, and each (tenant, class) costs two index probes on
//! `sync_runs_by_tenant_class` that stop at the first matching run, one on `sync_cursors`' key and one
//! on `held_deletions_one_open` (open holds only).

use uuid::Uuid;

use super::{Pool, StoreError};
use crate::model::ObjectClass;

/// A tenant and its state flags.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantStateRow {
    pub entra_tenant_id: Uuid,
    pub name: String,
    pub cloud: String,
    pub enabled: bool,
    pub quarantined: bool,
    pub blocked: bool,
}

/// Freshness of one (tenant, class) of an enabled tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct FreshnessRow {
    pub entra_tenant_id: Uuid,
    pub class: ObjectClass,
    pub last_success_unix: Option<f64>,
    pub staleness_seconds: f64,
    pub delta_cursor_age_seconds: Option<f64>,
    pub held_deletions: u64,
    pub latest_run_seconds: Option<f64>,
}

/// Quarantine (V30): a quarantined tenant is still enabled and retried on a decaying schedule; one the
/// quarantine disabled (after four weeks) is blocked until an operator acts.
const TENANT_STATES: &str = "\
    SELECT entra_tenant_id, name, cloud, enabled, \
        (enabled AND quarantined_at IS NOT NULL) AS quarantined, \
        (NOT enabled AND quarantined_at IS NOT NULL) AS blocked \
    FROM tenants ORDER BY id";

/// Held deletions are counted through the partial index `held_deletions_one_open` and capped, so a
/// mass deletion held for review cannot make a scrape slow.
pub const HELD_DELETIONS_CAP: i64 = 1_000_000;

/// Success means the copy was brought up to date: `success`, or `warning` (completed with remarks).
/// `now()` is one instant for all rows.
const FRESHNESS: &str = "\
    SELECT t.entra_tenant_id, c.object_class::text AS class, \
        EXTRACT(EPOCH FROM ok.finished_at)::float8 AS last_success, \
        EXTRACT(EPOCH FROM now() - COALESCE(ok.finished_at, t.created_at))::float8 AS staleness, \
        EXTRACT(EPOCH FROM now() - cur.delta_link_at)::float8 AS cursor_age, \
        held.n AS held_deletions, \
        EXTRACT(EPOCH FROM latest.finished_at - latest.started_at)::float8 AS latest_seconds \
    FROM tenants t \
    CROSS JOIN unnest(enum_range(NULL::object_class)) AS c(object_class) \
    LEFT JOIN sync_cursors cur ON cur.tenant_id = t.id AND cur.object_class = c.object_class \
    LEFT JOIN LATERAL ( \
        SELECT r.finished_at FROM sync_runs r \
        WHERE r.tenant_id = t.id AND r.object_class = c.object_class AND r.status IN ('success', 'warning') \
        ORDER BY r.started_at DESC LIMIT 1) ok ON true \
    LEFT JOIN LATERAL ( \
        SELECT r.started_at, r.finished_at FROM sync_runs r \
        WHERE r.tenant_id = t.id AND r.object_class = c.object_class AND r.status <> 'running' \
        ORDER BY r.started_at DESC LIMIT 1) latest ON true \
    CROSS JOIN LATERAL ( \
        SELECT count(*) AS n FROM ( \
            SELECT 1 FROM held_deletions h \
            WHERE h.tenant_id = t.id AND h.object_class = c.object_class AND h.status = 'held' \
            LIMIT $1) capped) held \
    WHERE t.enabled \
    ORDER BY t.id, c.object_class";

pub async fn tenant_states(pool: &Pool) -> Result<Vec<TenantStateRow>, StoreError> {
    let client = pool.get().await?;
    let rows = client.query(TENANT_STATES, &[]).await?;
    rows.iter()
        .map(|row| {
            Ok(TenantStateRow {
                entra_tenant_id: row.try_get(0)?,
                name: row.try_get(1)?,
                cloud: row.try_get(2)?,
                enabled: row.try_get(3)?,
                quarantined: row.try_get(4)?,
                blocked: row.try_get(5)?,
            })
        })
        .collect()
}

pub async fn freshness(pool: &Pool) -> Result<Vec<FreshnessRow>, StoreError> {
    let client = pool.get().await?;
    let rows = client.query(FRESHNESS, &[&HELD_DELETIONS_CAP]).await?;
    rows.iter()
        .map(|row| {
            let class: String = row.try_get(1)?;
            Ok(FreshnessRow {
                entra_tenant_id: row.try_get(0)?,
                class: class.parse().map_err(|e| StoreError::Unexpected(anyhow::Error::new(e)))?,
                last_success_unix: row.try_get(2)?,
                staleness_seconds: row.try_get::<_, Option<f64>>(3)?.unwrap_or(0.0).max(0.0),
                delta_cursor_age_seconds: row.try_get::<_, Option<f64>>(4)?.map(|age| age.max(0.0)),
                held_deletions: u64::try_from(row.try_get::<_, i64>(5)?).unwrap_or(0),
                latest_run_seconds: row.try_get(6)?,
            })
        })
        .collect()
}
