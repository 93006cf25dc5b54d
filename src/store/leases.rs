//! Scale-out bookkeeping: coordinator instance heartbeats and per-tenant supervision leases.
//!
//! A lease is exclusive until it expires; its holder renews all of its leases in one statement. Times are
//! the database's, so instance clocks do not matter.

use std::time::Duration;

use super::{During, Pool, StoreError};

/// Records that `instance` is alive now (inserting it on its first beat).
pub async fn heartbeat(pool: &Pool, instance: &str) -> Result<(), StoreError> {
    let client = pool.get().await.during("recording the instance heartbeat")?;
    client
        .execute(
            "INSERT INTO coordinator_instances (instance_id) VALUES ($1)
             ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = now()",
            &[&instance],
        )
        .await
        .during("recording the instance heartbeat")?;
    Ok(())
}

/// Instances whose last heartbeat is younger than `ttl`, sorted.
pub async fn live_instances(pool: &Pool, ttl: Duration) -> Result<Vec<String>, StoreError> {
    let client = pool.get().await.during("listing live instances")?;
    let rows = client
        .query(
            "SELECT instance_id FROM coordinator_instances
             WHERE heartbeat_at > now() - make_interval(secs => $1) ORDER BY instance_id",
            &[&ttl.as_secs_f64()],
        )
        .await
        .during("listing live instances")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Tenants that should have a supervisor: the enabled ones.
pub async fn supervisable_tenants(pool: &Pool) -> Result<Vec<i64>, StoreError> {
    let client = pool.get().await.during("listing tenants to supervise")?;
    let rows = client
        .query("SELECT id FROM tenants WHERE enabled ORDER BY id", &[])
        .await
        .during("listing tenants to supervise")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Extends every lease `instance` still holds; returns the tenants it holds now.
pub async fn renew(pool: &Pool, instance: &str, ttl: Duration) -> Result<Vec<i64>, StoreError> {
    let client = pool.get().await.during("renewing tenant leases")?;
    let rows = client
        .query(
            "UPDATE tenant_leases SET expires_at = now() + make_interval(secs => $2)
             WHERE holder = $1 AND expires_at > now() RETURNING tenant_id",
            &[&instance, &ttl.as_secs_f64()],
        )
        .await
        .during("renewing tenant leases")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Takes the leases of `tenants` that are free or expired; returns the ones taken.
pub async fn acquire(pool: &Pool, instance: &str, tenants: &[i64], ttl: Duration) -> Result<Vec<i64>, StoreError> {
    if tenants.is_empty() {
        return Ok(Vec::new());
    }
    let client = pool.get().await.during("acquiring a tenant lease")?;
    let rows = client
        .query(
            "INSERT INTO tenant_leases AS l (tenant_id, holder, expires_at)
             SELECT t.id, $1, now() + make_interval(secs => $3) FROM tenants t WHERE t.id = ANY($2)
             ON CONFLICT (tenant_id) DO UPDATE
                 SET holder = EXCLUDED.holder, acquired_at = now(), expires_at = EXCLUDED.expires_at
                 WHERE l.expires_at <= now() OR l.holder = EXCLUDED.holder
             RETURNING tenant_id",
            &[&instance, &tenants, &ttl.as_secs_f64()],
        )
        .await
        .during("acquiring a tenant lease")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Gives up the leases of `tenants` that `instance` holds, so their new owner can take them at once.
pub async fn release(pool: &Pool, instance: &str, tenants: &[i64]) -> Result<u64, StoreError> {
    if tenants.is_empty() {
        return Ok(0);
    }
    let client = pool.get().await.during("releasing tenant leases")?;
    client
        .execute("DELETE FROM tenant_leases WHERE holder = $1 AND tenant_id = ANY($2)", &[&instance, &tenants])
        .await
        .during("releasing tenant leases")
}

/// Leaves the group on shutdown: drops every lease of `instance` and its heartbeat row.
pub async fn leave(pool: &Pool, instance: &str) -> Result<(), StoreError> {
    let mut client = pool.get().await.during("leaving the fleet")?;
    let transaction = client.transaction().await.during("leaving the fleet")?;
    transaction
        .execute("DELETE FROM tenant_leases WHERE holder = $1", &[&instance])
        .await
        .during("leaving the fleet")?;
    transaction
        .execute("DELETE FROM coordinator_instances WHERE instance_id = $1", &[&instance])
        .await
        .during("leaving the fleet")?;
    transaction.commit().await.during("leaving the fleet")?;
    Ok(())
}

/// One unexpired lease, for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lease {
    pub tenant_id: i64,
    pub holder: String,
}

/// Every unexpired lease, by tenant.
pub async fn current(pool: &Pool) -> Result<Vec<Lease>, StoreError> {
    let client = pool.get().await.during("reading tenant leases")?;
    let rows = client
        .query("SELECT tenant_id, holder FROM tenant_leases WHERE expires_at > now() ORDER BY tenant_id", &[])
        .await
        .during("reading tenant leases")?;
    Ok(rows.iter().map(|r| Lease { tenant_id: r.get(0), holder: r.get(1) }).collect())
}
