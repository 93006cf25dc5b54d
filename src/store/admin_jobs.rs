//! What the worker's admin jobs read: a deleted tenant by its Entra id (its queued jobs are dropped),
//! the inputs of the daily permission-check rule, and a tenant's quarantine.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Pool, StoreError};

/// Whether a tenant with this Entra id was deleted through the API (and none is registered under it
/// now: the caller looked that up first).
pub async fn was_deleted_by_entra_id(pool: &Pool, entra_tenant_id: Uuid) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_one("SELECT EXISTS (SELECT 1 FROM deleted_tenants WHERE entra_tenant_id = $1)", &[&entra_tenant_id])
        .await?;
    Ok(row.try_get(0)?)
}

/// A tenant's inputs to the permission-check rule; `None` from [`permission_check_state`] when the
/// tenant no longer exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionCheckState {
    /// Database time, so every instance decides on the same clock.
    pub now: DateTime<Utc>,
    pub entra_tenant_id: Uuid,
    pub blocked: bool,
    pub permissions_checked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub async fn permission_check_state(pool: &Pool, tenant_id: i64) -> Result<Option<PermissionCheckState>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT now(), entra_tenant_id, blocked, permissions_checked_at, created_at FROM tenants WHERE id = $1",
            &[&tenant_id],
        )
        .await?;
    row.map(|r| {
        Ok(PermissionCheckState {
            now: r.try_get(0)?,
            entra_tenant_id: r.try_get(1)?,
            blocked: r.try_get(2)?,
            permissions_checked_at: r.try_get(3)?,
            created_at: r.try_get(4)?,
        })
    })
    .transpose()
}

/// The tenant's quarantine reason; `None` when it is not quarantined (or does not exist).
pub async fn quarantine_reason(pool: &Pool, tenant_id: i64) -> Result<Option<String>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT COALESCE(quarantine_reason, '') FROM tenants WHERE id = $1 AND quarantined_at IS NOT NULL",
            &[&tenant_id],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}
