//! The database's cumulative counters from `pg_stat_database`.

use super::super::{Pool, StoreError};

const COUNTERS: &str = "\
    SELECT xact_commit + xact_rollback, sessions, tup_inserted, tup_updated, tup_deleted \
    FROM pg_stat_database WHERE datname = current_database()";

/// The current database's counters since the statistics were last reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbCounters {
    /// Committed and rolled back.
    pub transactions: u64,
    pub sessions: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    pub rows_deleted: u64,
}

/// Flushes this session's own pending counters first (so they are not reported late, into a later
/// read), then reads the counters of the current database.
pub async fn counters(pool: &Pool) -> Result<DbCounters, StoreError> {
    let client = pool.get().await?;
    client.batch_execute("SELECT pg_stat_force_next_flush()").await?;
    let row = client.query_one(COUNTERS, &[]).await?;
    let value = |index: usize| -> Result<u64, StoreError> {
        let count: i64 = row.try_get(index)?;
        u64::try_from(count)
            .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("pg_stat_database holds a negative count: {count}")))
    };
    Ok(DbCounters {
        transactions: value(0)?,
        sessions: value(1)?,
        rows_inserted: value(2)?,
        rows_updated: value(3)?,
        rows_deleted: value(4)?,
    })
}
