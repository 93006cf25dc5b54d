//! Run history (`sync_runs`): one row per run, created at start, updated per page, finished once.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StoreError;
use crate::model::{ObjectClass, RunStatus, SyncMode, Trigger};

/// The running totals of a run; checkpointed with every page, so a resumed run continues them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunCounts {
    /// Objects listed (full) or changes received (delta), after removing duplicates within a page.
    pub total: u64,
    /// Distinct objects written: new, changed, restored, or a group whose membership changed.
    pub changed: u64,
    /// Objects deleted (soft or permanent), or held for an operator when the run is `held`.
    pub deleted: u64,
    /// Objects the scoping filter left out.
    pub filtered: u64,
    pub pages: u64,
    pub graph_requests: u64,
    pub throttled_waits: u64,
    /// Rows of objects and memberships inserted, updated or deleted (replays must add none).
    /// Kept in the checkpoint and reports, not in `sync_runs`.
    pub rows_written: u64,
}

/// The row written when a run starts (or resumes).
#[derive(Debug, Clone)]
pub struct RunStart {
    pub run_id: Uuid,
    pub tenant_id: i64,
    pub class: ObjectClass,
    pub mode: SyncMode,
    pub trigger: Trigger,
    pub started_at: DateTime<Utc>,
    pub instance_id: Option<String>,
}

/// Creates the run row; a resumed run reopens its row (status back to running).
pub async fn insert_started(db: &impl GenericClient, run: &RunStart, counts: &RunCounts) -> Result<(), StoreError> {
    let statement = db
        .prepare_cached(
            "INSERT INTO sync_runs (id, tenant_id, object_class, mode, trigger, status, started_at, instance_id, \
                                    total, changed, deleted, filtered, pages, graph_requests, throttled_waits) \
             VALUES ($1, $2, $3::text::object_class, $4::text::sync_mode, $5, 'running', $6, $7, \
                     $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (id) DO UPDATE SET status = 'running', finished_at = NULL, error = NULL, \
                 mode = EXCLUDED.mode, instance_id = EXCLUDED.instance_id, updated_at = now()",
        )
        .await?;
    let c = counts_i64(counts);
    db.execute(
        &statement,
        &[
            &run.run_id,
            &run.tenant_id,
            &run.class.as_str(),
            &run.mode.as_str(),
            &run.trigger.as_str(),
            &run.started_at,
            &run.instance_id,
            &c[0],
            &c[1],
            &c[2],
            &c[3],
            &c[4],
            &c[5],
            &c[6],
        ],
    )
    .await?;
    Ok(())
}

fn counts_i64(c: &RunCounts) -> [i64; 7] {
    [c.total, c.changed, c.deleted, c.filtered, c.pages, c.graph_requests, c.throttled_waits]
        .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// Updates the counts of a running run (and its mode and reason, which a restart as full changes).
pub async fn update_progress(
    db: &impl GenericClient,
    run_id: Uuid,
    mode: SyncMode,
    reason: Option<&str>,
    counts: &RunCounts,
) -> Result<(), StoreError> {
    let statement = db
        .prepare_cached(
            "UPDATE sync_runs SET mode = $2::text::sync_mode, reason = COALESCE($3, reason), \
                 total = $4, changed = $5, deleted = $6, filtered = $7, pages = $8, graph_requests = $9, \
                 throttled_waits = $10, updated_at = now() \
             WHERE id = $1 AND status = 'running'",
        )
        .await?;
    let c = counts_i64(counts);
    db.execute(&statement, &[&run_id, &mode.as_str(), &reason, &c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6]])
        .await?;
    Ok(())
}

/// The final state of a run.
#[derive(Debug, Clone)]
pub struct RunEnd {
    pub run_id: Uuid,
    pub mode: SyncMode,
    pub status: RunStatus,
    pub counts: RunCounts,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub finished_at: DateTime<Utc>,
}

pub async fn finish(db: &impl GenericClient, end: &RunEnd) -> Result<(), StoreError> {
    let statement = db
        .prepare_cached(
            "UPDATE sync_runs SET status = $2::text::run_status, mode = $3::text::sync_mode, \
                 reason = COALESCE($4, reason), error = $5, finished_at = $6, \
                 total = $7, changed = $8, deleted = $9, filtered = $10, pages = $11, graph_requests = $12, \
                 throttled_waits = $13, updated_at = now() \
             WHERE id = $1",
        )
        .await?;
    let c = counts_i64(&end.counts);
    db.execute(
        &statement,
        &[
            &end.run_id,
            &end.status.as_str(),
            &end.mode.as_str(),
            &end.reason,
            &end.error,
            &end.finished_at,
            &c[0],
            &c[1],
            &c[2],
            &c[3],
            &c[4],
            &c[5],
            &c[6],
        ],
    )
    .await?;
    Ok(())
}

/// A run as recorded, for the API and tests.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub run_id: Uuid,
    pub tenant_id: i64,
    pub class: String,
    pub mode: String,
    pub trigger: String,
    pub status: String,
    pub counts: RunCounts,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub async fn get(db: &impl GenericClient, run_id: Uuid) -> Result<Option<RunRecord>, StoreError> {
    let statement = db
        .prepare_cached(
            "SELECT id, tenant_id, object_class::text, mode::text, trigger, status::text, total, changed, deleted, \
                    filtered, pages, graph_requests, throttled_waits, reason, error, started_at, finished_at \
             FROM sync_runs WHERE id = $1",
        )
        .await?;
    let row = db.query_opt(&statement, &[&run_id]).await?;
    let count = |row: &tokio_postgres::Row, i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    Ok(row.map(|r| RunRecord {
        run_id: r.get(0),
        tenant_id: r.get(1),
        class: r.get(2),
        mode: r.get(3),
        trigger: r.get(4),
        status: r.get(5),
        counts: RunCounts {
            total: count(&r, 6),
            changed: count(&r, 7),
            deleted: count(&r, 8),
            filtered: count(&r, 9),
            pages: count(&r, 10),
            graph_requests: count(&r, 11),
            throttled_waits: count(&r, 12),
            rows_written: 0,
        },
        reason: r.get(13),
        error: r.get(14),
        started_at: r.get(15),
        finished_at: r.get(16),
    }))
}
