//! Recent runs of a tenant, for live displays (the demo, later the console).

use chrono::{DateTime, Utc};

use super::{Pool, StoreError};

/// One run as a live display shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLine {
    pub run_id: uuid::Uuid,
    pub class: String,
    pub mode: String,
    pub status: String,
    pub total: i64,
    pub changed: i64,
    pub deleted: i64,
    pub filtered: i64,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Runs of `tenant_id` updated after `since`, oldest first.
pub async fn updated_since(pool: &Pool, tenant_id: i64, since: DateTime<Utc>) -> Result<Vec<RunLine>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, object_class::text, mode::text, status::text, total, changed, deleted, filtered, error,
                    started_at, finished_at
             FROM sync_runs WHERE tenant_id = $1 AND updated_at > $2 ORDER BY started_at",
            &[&tenant_id, &since],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(RunLine {
                run_id: r.try_get(0)?,
                class: r.try_get(1)?,
                mode: r.try_get(2)?,
                status: r.try_get(3)?,
                total: r.try_get(4)?,
                changed: r.try_get(5)?,
                deleted: r.try_get(6)?,
                filtered: r.try_get(7)?,
                error: r.try_get(8)?,
                started_at: r.try_get(9)?,
                finished_at: r.try_get(10)?,
            })
        })
        .collect()
}
