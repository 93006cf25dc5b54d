//! What `entrasync bench-events --rounds` reads besides the outbox's backlog: the backends serving the
//! database with their application names (the relay's session names itself), and how many events have
//! been written so far.

use super::super::{Pool, StoreError};

/// Process ids of the client backends of the current database, each with its `application_name`.
pub async fn backends(pool: &Pool) -> Result<Vec<(i32, String)>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT pid, application_name FROM pg_stat_activity
             WHERE datname = current_database() AND backend_type = 'client backend'",
            &[],
        )
        .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

/// Events written to `change_outbox` since the database was created (relayed or not): the identity's
/// last value, 0 before the first.
pub async fn events_written(pool: &Pool) -> Result<i64, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT coalesce((SELECT last_value FROM pg_sequences
                              WHERE schemaname = current_schema()
                                AND sequencename = 'change_outbox_seq_seq'), 0)",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
}
