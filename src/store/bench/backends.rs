//! The server processes serving the current database: what the benchmark reads `/proc/<pid>/stat` of
//! to split Postgres CPU time from the syncing process's.

use super::super::{Pool, StoreError};

/// Process ids of the client backends connected to the current database (this pool's among them).
pub async fn pids(pool: &Pool) -> Result<Vec<i32>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
