//! Where a (tenant, class) stands (`sync_cursors`): the deltaLink of the last completed round and the
//! checkpoint of the round in progress, written in the same transaction as the page it follows.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{During, StoreError};
use crate::model::RunCounts;
use crate::model::{ObjectClass, SyncMode};

/// A round that started and has not completed: resume it from `next_link` (or its start when `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunCheckpoint {
    pub run_id: Uuid,
    pub mode: SyncMode,
    pub next_link: Option<String>,
    pub counts: RunCounts,
}

/// The stored state of one (tenant, class), plus whether the tenant asked for a full scan this class
/// has not done yet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CursorState {
    pub delta_link: Option<String>,
    pub delta_link_at: Option<DateTime<Utc>>,
    pub in_progress: Option<RunCheckpoint>,
    pub full_scan_requested: bool,
}

fn mode_from_text(text: &str) -> SyncMode {
    if text == "delta" {
        SyncMode::Delta
    } else {
        SyncMode::Full
    }
}

/// Loads the cursor; `None` when the tenant does not exist.
pub async fn load(db: &impl super::Db, tenant_id: i64, class: ObjectClass) -> Result<Option<CursorState>, StoreError> {
    let statement = db
        .prepare_cached(
            "SELECT t.full_scan_next_run AND (c.last_full_scan_at IS NULL OR c.last_full_scan_at < t.full_scan_requested_at), \
                    c.delta_link, c.delta_link_at, c.run_id, c.run_mode::text, c.next_link, c.run_counts \
             FROM tenants t \
             LEFT JOIN sync_cursors c ON c.tenant_id = t.id AND c.object_class = $2::text::object_class \
             WHERE t.id = $1",
        )
        .await.during("loading a cursor")?;
    let row = db.query_opt(&statement, &[&tenant_id, &class.as_str()]).await.during("loading a cursor")?;
    Ok(row.map(|row| from_row(&row, 0)))
}

/// A cursor from `load`'s seven columns, starting at column `first` (a job's start reads them too,
/// `run_start_state.sql`).
pub(super) fn from_row(row: &Row, first: usize) -> CursorState {
    let run_id: Option<Uuid> = row.get(first + 3);
    let mode: Option<String> = row.get(first + 4);
    let counts: Option<serde_json::Value> = row.get(first + 6);
    let in_progress = run_id.map(|run_id| RunCheckpoint {
        run_id,
        mode: mode_from_text(mode.as_deref().unwrap_or("full")),
        next_link: row.get(first + 5),
        // Counts written by this code always parse; anything else restarts them from zero.
        counts: counts.and_then(|c| serde_json::from_value(c).ok()).unwrap_or_default(),
    });
    CursorState {
        full_scan_requested: row.get::<_, Option<bool>>(first).unwrap_or(true),
        delta_link: row.get(first + 1),
        delta_link_at: row.get(first + 2),
        in_progress,
    }
}

fn counts_json(counts: &RunCounts) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(counts).map_err(|e| StoreError::Unexpected(anyhow::Error::new(e)))
}

/// Claims the checkpoint row for one page: true when `run_id` still stands at `pages` committed pages.
/// The row lock lasts until the transaction ends, so a second writer of the same run (a killed
/// worker's backend still committing, a duplicate round) waits and then finds the run moved on.
pub async fn claim_run(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    run_id: Uuid,
    pages: u64,
) -> Result<bool, StoreError> {
    // The claim opens every batch transaction, and also gives the batch's writes their longer limit (as
    // `SET LOCAL` would, without a message of its own; set only when the claim finds its row).
    let statement = db
        .prepare_cached(
            "SELECT set_config('statement_timeout', $5, true) FROM sync_cursors \
             WHERE tenant_id = $1 AND object_class = $2::text::object_class AND run_id = $3 \
               AND COALESCE((run_counts->>'pages')::bigint, 0) = $4 \
             FOR UPDATE",
        )
        .await?;
    let pages = i64::try_from(pages).unwrap_or(i64::MAX);
    let timeout = super::BATCH_STATEMENT_TIMEOUT.as_millis().to_string();
    let class = class.as_str();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [&tenant_id, &class, &run_id, &pages, &timeout];
    let claimed = db.query_opt(&statement, &params).await.during("claiming a run's batch")?;
    Ok(claimed.is_some())
}

/// Records the checkpoint of a run in progress (its start when `next_link` is `None`).
pub async fn checkpoint(
    db: &impl super::Db,
    tenant_id: i64,
    class: ObjectClass,
    run_id: Uuid,
    mode: SyncMode,
    next_link: Option<&str>,
    counts: &RunCounts,
) -> Result<(), StoreError> {
    let statement = db
        .prepare_cached(
            "INSERT INTO sync_cursors (tenant_id, object_class, run_id, run_mode, next_link, run_counts) \
             VALUES ($1, $2::text::object_class, $3, $4::text::sync_mode, $5, $6) \
             ON CONFLICT (tenant_id, object_class) DO UPDATE \
             SET run_id = EXCLUDED.run_id, run_mode = EXCLUDED.run_mode, next_link = EXCLUDED.next_link, \
                 run_counts = EXCLUDED.run_counts, updated_at = now()",
        )
        .await
        .during("recording a checkpoint")?;
    db.execute(&statement, &[&tenant_id, &class.as_str(), &run_id, &mode.as_str(), &next_link, &counts_json(counts)?])
        .await
        .during("recording a checkpoint")?;
    Ok(())
}

/// A round completed: store its deltaLink, drop the checkpoint, and after a full round note it (and
/// clear the tenant's "full scan on next run" once every class has done one since it was set).
pub async fn complete(
    db: &impl GenericClient,
    tenant_id: i64,
    class: ObjectClass,
    delta_link: &str,
    full: bool,
) -> Result<(), StoreError> {
    let statement = db
        .prepare_cached(
            "INSERT INTO sync_cursors (tenant_id, object_class, delta_link, delta_link_at, last_full_scan_at) \
             VALUES ($1, $2::text::object_class, $3, now(), CASE WHEN $4 THEN now() END) \
             ON CONFLICT (tenant_id, object_class) DO UPDATE \
             SET delta_link = EXCLUDED.delta_link, delta_link_at = now(), run_id = NULL, run_mode = NULL, \
                 next_link = NULL, run_counts = NULL, updated_at = now(), \
                 last_full_scan_at = CASE WHEN $4 THEN now() ELSE sync_cursors.last_full_scan_at END",
        )
        .await
        .during("completing a run's cursor")?;
    db.execute(&statement, &[&tenant_id, &class.as_str(), &delta_link, &full])
        .await
        .during("completing a run's cursor")?;
    if full {
        let classes = ObjectClass::ALL.len() as i64;
        let statement = db
            .prepare_cached(
                "UPDATE tenants t SET full_scan_next_run = false, updated_at = now() \
                 WHERE t.id = $1 AND t.full_scan_next_run AND ( \
                   SELECT count(*) FROM sync_cursors c \
                   WHERE c.tenant_id = t.id AND c.last_full_scan_at >= t.full_scan_requested_at) >= $2",
            )
            .await
            .during("completing a run's cursor")?;
        db.execute(&statement, &[&tenant_id, &classes]).await.during("completing a run's cursor")?;
    }
    Ok(())
}

/// Drops the checkpoint of a run that cannot continue; the stored deltaLink stays.
pub async fn abandon_run(db: &impl GenericClient, tenant_id: i64, class: ObjectClass) -> Result<(), StoreError> {
    let statement = db
        .prepare_cached(
            "UPDATE sync_cursors SET run_id = NULL, run_mode = NULL, next_link = NULL, run_counts = NULL, \
             updated_at = now() WHERE tenant_id = $1 AND object_class = $2::text::object_class",
        )
        .await
        .during("abandoning a run's checkpoint")?;
    db.execute(&statement, &[&tenant_id, &class.as_str()]).await.during("abandoning a run's checkpoint")?;
    Ok(())
}
