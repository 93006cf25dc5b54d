//! Deletions the guard held for an operator (`held_deletions`).

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{execute_cached, StoreError};
use crate::model::ObjectClass;

/// Moves a run's staged deletions (those not already held) into `held_deletions`; returns how many.
pub async fn hold_pending(
    db: &impl GenericClient,
    run_id: Uuid,
    tenant_id: i64,
    class: ObjectClass,
) -> Result<u64, StoreError> {
    let statement = db
        .prepare_cached(
            "INSERT INTO held_deletions (tenant_id, object_class, run_id, object_id, permanent, reason) \
             SELECT $2::bigint, $3::text::object_class, $1::uuid, p.object_id, p.permanent, p.reason \
             FROM sync_run_pending_deletions p WHERE p.run_id = $1 \
             ON CONFLICT (tenant_id, object_class, object_id) WHERE status = 'held' DO NOTHING",
        )
        .await?;
    Ok(db.execute(&statement, &[&run_id, &tenant_id, &class.as_str()]).await?)
}

/// Whether anything is held for a tenant and class (a page need not supersede anything otherwise).
pub async fn any_held(db: &impl super::Db, tenant_id: i64, class: ObjectClass) -> Result<bool, StoreError> {
    let statement = db
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM held_deletions \
             WHERE tenant_id = $1 AND object_class = $2::text::object_class AND status = 'held')",
        )
        .await?;
    Ok(db.query_one(&statement, &[&tenant_id, &class.as_str()]).await?.get(0))
}

/// Objects that reappeared: their held deletion no longer applies.
pub async fn supersede(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    ids: &[Uuid],
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    // The partial index answers "is anything held for these ids" without touching resolved rows.
    execute_cached(
        db,
        "UPDATE held_deletions SET status = 'superseded', resolved_at = now(), resolved_by = 'sync' \
         WHERE tenant_id = $1 AND object_class = $2::text::object_class AND status = 'held' \
           AND object_id = ANY($3::uuid[])",
        &[&tenant_id, &class.as_str(), &ids],
    )
    .await
}

/// The result of an operator's decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Held rows resolved by the decision.
    pub resolved: u64,
    /// Objects actually deleted (allow only).
    pub deleted: u64,
}

/// Applies exactly the deletions `run_id` holds (still held) and marks them allowed.
pub async fn allow(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    run_id: Uuid,
    operator: &str,
) -> Result<Resolution, StoreError> {
    let statement = db.prepare_cached(include_str!("sql/held_allow.sql")).await?;
    let row = db.query_one(&statement, &[&tenant_id, &class.as_str(), &run_id, &operator]).await?;
    let (resolved, deleted): (i64, i64) = (row.get(0), row.get(1));
    Ok(Resolution { resolved: u64::try_from(resolved).unwrap_or(0), deleted: u64::try_from(deleted).unwrap_or(0) })
}

/// Drops the deletions `run_id` holds without applying them.
pub async fn reject(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    run_id: Uuid,
    operator: &str,
) -> Result<Resolution, StoreError> {
    let resolved = execute_cached(
        db,
        "UPDATE held_deletions SET status = 'rejected', resolved_at = now(), resolved_by = $4 \
         WHERE tenant_id = $1 AND object_class = $2::text::object_class AND run_id = $3 AND status = 'held'",
        &[&tenant_id, &class.as_str(), &run_id, &operator],
    )
    .await?;
    Ok(Resolution { resolved, deleted: 0 })
}

/// One held deletion, for the API and console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldDeletion {
    pub object_id: Uuid,
    pub permanent: bool,
    pub reason: String,
    pub status: String,
}

/// The deletions a run held (any status), ordered by object id.
pub async fn list_for_run(db: &impl GenericClient, run_id: Uuid) -> Result<Vec<HeldDeletion>, StoreError> {
    let statement = db
        .prepare_cached(
            "SELECT object_id, permanent, reason, status FROM held_deletions WHERE run_id = $1 ORDER BY object_id",
        )
        .await?;
    let rows = db.query(&statement, &[&run_id]).await?;
    Ok(rows
        .iter()
        .map(|r| HeldDeletion { object_id: r.get(0), permanent: r.get(1), reason: r.get(2), status: r.get(3) })
        .collect())
}

/// One run's open holds, as the API lists them per tenant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HeldRun {
    pub run_id: Uuid,
    pub class: ObjectClass,
    pub count: i64,
    pub held_at: chrono::DateTime<chrono::Utc>,
    /// The first 20 object ids (by id).
    pub sample: Vec<Uuid>,
}

/// The runs with deletions still held for a tenant, newest first (the open-hold index holds only these).
pub async fn summary(pool: &super::Pool, tenant_id: i64) -> Result<Vec<HeldRun>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT run_id, object_class::text, count(*), min(held_at), (array_agg(object_id ORDER BY object_id))[1:20]
             FROM held_deletions WHERE tenant_id = $1 AND status = 'held'
             GROUP BY run_id, object_class ORDER BY min(held_at) DESC, run_id",
            &[&tenant_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(HeldRun {
                run_id: r.try_get(0)?,
                class: r.try_get::<_, String>(1)?.parse().map_err(|e| StoreError::Unexpected(anyhow::Error::new(e)))?,
                count: r.try_get(2)?,
                held_at: r.try_get(3)?,
                sample: r.try_get(4)?,
            })
        })
        .collect()
}
