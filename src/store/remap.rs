//! Re-map runs: their checkpoint (`remap_checkpoints`, one per (tenant, class)) and the coalesced "one
//! re-map after the current run" request (`sync_schedules.remap_requested`).

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{During, Pool, StoreError};
use crate::model::{ObjectClass, RunCounts};

/// Where an interrupted re-map stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemapCheckpoint {
    pub run_id: Uuid,
    /// The last object id examined (keyset position); `None`: none yet.
    pub after: Option<Uuid>,
    pub counts: RunCounts,
}

fn counts_json(counts: &RunCounts) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(counts).map_err(|e| StoreError::Unexpected(anyhow::Error::new(e)))
}

/// The checkpoint of the re-map in progress for (tenant, class), if one was interrupted.
pub async fn load(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
) -> Result<Option<RemapCheckpoint>, StoreError> {
    let statement = db
        .prepare_cached(
            "SELECT run_id, after_id, counts FROM remap_checkpoints \
             WHERE tenant_id = $1 AND object_class = $2::text::object_class",
        )
        .await?;
    let Some(row) = db.query_opt(&statement, &[&tenant_id, &class.as_str()]).await? else { return Ok(None) };
    let counts: serde_json::Value = row.try_get(2)?;
    let counts = serde_json::from_value(counts).unwrap_or_default();
    Ok(Some(RemapCheckpoint { run_id: row.try_get(0)?, after: row.try_get(1)?, counts }))
}

/// Records the start of a re-map run (replacing any checkpoint of an earlier one).
pub async fn start(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    run_id: Uuid,
) -> Result<(), StoreError> {
    let statement = db
        .prepare_cached(
            "INSERT INTO remap_checkpoints (tenant_id, object_class, run_id, after_id, counts) \
             VALUES ($1, $2::text::object_class, $3, NULL, $4) \
             ON CONFLICT (tenant_id, object_class) DO UPDATE \
             SET run_id = EXCLUDED.run_id, after_id = NULL, counts = EXCLUDED.counts, updated_at = now()",
        )
        .await?;
    db.execute(&statement, &[&tenant_id, &class.as_str(), &run_id, &counts_json(&RunCounts::default())?]).await?;
    Ok(())
}

/// Advances the run's checkpoint, in the transaction of the batch it follows. False when the checkpoint
/// no longer belongs to `run_id` (another holder moved on); the row stays locked until the transaction
/// ends, so two writers of one run cannot both commit.
pub async fn advance(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    run_id: Uuid,
    after: Uuid,
    counts: &RunCounts,
) -> Result<bool, StoreError> {
    let statement = db
        .prepare_cached(
            "UPDATE remap_checkpoints SET after_id = $4, counts = $5, updated_at = now() \
             WHERE tenant_id = $1 AND object_class = $2::text::object_class AND run_id = $3",
        )
        .await?;
    let updated =
        db.execute(&statement, &[&tenant_id, &class.as_str(), &run_id, &after, &counts_json(counts)?]).await?;
    Ok(updated == 1)
}

/// Locks the run's checkpoint for this transaction; false when it belongs to another run now.
pub async fn claim(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    run_id: Uuid,
) -> Result<bool, StoreError> {
    let statement = db
        .prepare_cached(
            "SELECT 1 FROM remap_checkpoints \
             WHERE tenant_id = $1 AND object_class = $2::text::object_class AND run_id = $3 FOR UPDATE",
        )
        .await?;
    // The claim opens every re-map batch transaction: it also gives the batch's writes their longer limit.
    let timeout = super::set_local_statement_timeout(super::BATCH_STATEMENT_TIMEOUT);
    let class = class.as_str();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&tenant_id, &class, &run_id];
    let ((), claimed) = futures::try_join!(db.batch_execute(&timeout), db.query_opt(&statement, &params))
        .during("claiming a re-map batch")?;
    Ok(claimed.is_some())
}

/// The run ended: its checkpoint goes.
pub async fn finish(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    run_id: Uuid,
) -> Result<(), StoreError> {
    let statement = db
        .prepare_cached(
            "DELETE FROM remap_checkpoints WHERE tenant_id = $1 AND object_class = $2::text::object_class AND run_id = $3",
        )
        .await?;
    db.execute(&statement, &[&tenant_id, &class.as_str(), &run_id]).await?;
    Ok(())
}

/// Asks for one re-map of (tenant, class) after the run holding its lock (requests coalesce).
pub async fn request(pool: &Pool, tenant_id: i64, class: ObjectClass) -> Result<(), StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO sync_schedules AS s (tenant_id, object_class, remap_requested) \
             VALUES ($1, $2::text::object_class, true) \
             ON CONFLICT (tenant_id, object_class) DO UPDATE SET remap_requested = true",
        )
        .await?;
    client.execute(&statement, &[&tenant_id, &class.as_str()]).await?;
    Ok(())
}

/// Takes and clears the re-map request of (tenant, class): true when one was pending.
pub async fn take_request(pool: &Pool, tenant_id: i64, class: ObjectClass) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE sync_schedules SET remap_requested = false \
             WHERE tenant_id = $1 AND object_class = $2::text::object_class AND remap_requested \
             RETURNING 1",
        )
        .await?;
    Ok(client.query_opt(&statement, &[&tenant_id, &class.as_str()]).await?.is_some())
}
