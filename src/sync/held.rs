//! Operator decisions on deletions the guard held.

use uuid::Uuid;

use super::error::SyncError;
use crate::model::ObjectClass;
use crate::store::held_deletions::{self, HeldDeletion, Resolution};
use crate::store::Pool;

/// Applies exactly the deletions `run_id` held (those not superseded since) in one transaction.
pub async fn allow_held_deletions(
    pool: &Pool,
    tenant_id: i64,
    class: ObjectClass,
    run_id: Uuid,
    operator: &str,
) -> Result<Resolution, SyncError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let resolution = held_deletions::allow(&transaction, tenant_id, class, run_id, operator).await?;
    if resolution.resolved == 0 {
        return Err(SyncError::NothingHeld { tenant_id, class, run_id });
    }
    transaction.commit().await?;
    tracing::info!(tenant_id, %class, %run_id, operator, deleted = resolution.deleted, "held deletions allowed");
    Ok(resolution)
}

/// Discards the deletions `run_id` held; nothing is deleted.
pub async fn reject_held_deletions(
    pool: &Pool,
    tenant_id: i64,
    class: ObjectClass,
    run_id: Uuid,
    operator: &str,
) -> Result<Resolution, SyncError> {
    let client = pool.get().await?;
    let resolution = held_deletions::reject(&client, tenant_id, class, run_id, operator).await?;
    if resolution.resolved == 0 {
        return Err(SyncError::NothingHeld { tenant_id, class, run_id });
    }
    tracing::info!(tenant_id, %class, %run_id, operator, rejected = resolution.resolved, "held deletions rejected");
    Ok(resolution)
}

/// What a run held, for the API and console.
pub async fn held_deletions_of_run(pool: &Pool, run_id: Uuid) -> Result<Vec<HeldDeletion>, SyncError> {
    let client = pool.get().await?;
    Ok(held_deletions::list_for_run(&client, run_id).await?)
}
