//! The statements of the history benchmark (`entrasync bench-history`): loading generated runs into
//! `sync_runs` with COPY (the run-count triggers fire once for the whole load), and the key of the run
//! at a depth, where the deep-page requests start.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::SinkExt;
use uuid::Uuid;

use super::super::{Pool, StoreError};

/// The columns each generated line holds, tab-separated, in this order.
pub const COPY_COLUMNS: &str =
    "id, tenant_id, object_class, mode, trigger, status, started_at, finished_at, total, changed, deleted, filtered, error";

/// Loads text-format COPY chunks (lines of [`COPY_COLUMNS`]) into `sync_runs` in one COPY.
pub async fn copy_runs(pool: &Pool, chunks: impl Iterator<Item = Bytes>) -> Result<u64, StoreError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    transaction.batch_execute(&super::super::set_local_statement_timeout(super::super::BULK_STATEMENT_TIMEOUT)).await?;
    let sink = transaction.copy_in::<_, Bytes>(&format!("COPY sync_runs ({COPY_COLUMNS}) FROM STDIN")).await?;
    futures::pin_mut!(sink);
    for chunk in chunks {
        sink.send(chunk).await?;
    }
    let loaded = sink.finish().await?;
    transaction.commit().await?;
    Ok(loaded)
}

/// The key of the run `depth` rows down the newest-first order (one scan, once per benchmark).
pub async fn key_at_depth(pool: &Pool, depth: i64) -> Result<Option<(DateTime<Utc>, Uuid)>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT started_at, id FROM sync_runs ORDER BY started_at DESC, id DESC OFFSET $1 LIMIT 1",
            &[&depth],
        )
        .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}
