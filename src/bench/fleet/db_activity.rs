//! What the service asked of Postgres during a measurement, from `pg_stat_database` of the scratch
//! database: transactions, new sessions (the run lock opens one per run) and row changes. Backends
//! report their counters when idle (at most every second, or 10 s later) and when they exit, so the
//! closing snapshot is taken after the service instances stopped. Approximate by a few dozen: the
//! benchmark's own progress polls (4 a second) and the instances' start-up are included.

use anyhow::Context;
use serde::Serialize;

use crate::store::Pool;

const COUNTERS: &str = "\
    SELECT xact_commit + xact_rollback, sessions, tup_inserted, tup_updated, tup_deleted \
    FROM pg_stat_database WHERE datname = current_database()";

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DbActivity {
    pub transactions: u64,
    pub sessions: u64,
    pub rows_inserted: u64,
    pub rows_updated: u64,
    pub rows_deleted: u64,
}

impl DbActivity {
    pub async fn snapshot(pool: &Pool) -> anyhow::Result<DbActivity> {
        let client = pool.get().await.context("a connection for database statistics")?;
        // Our own pending counters first, so they are not reported late into the next snapshot.
        client.batch_execute("SELECT pg_stat_force_next_flush()").await.context("flushing statistics")?;
        let row = client.query_one(COUNTERS, &[]).await.context("reading pg_stat_database")?;
        let value = |index: usize| -> anyhow::Result<u64> { Ok(u64::try_from(row.try_get::<_, i64>(index)?)?) };
        Ok(DbActivity {
            transactions: value(0)?,
            sessions: value(1)?,
            rows_inserted: value(2)?,
            rows_updated: value(3)?,
            rows_deleted: value(4)?,
        })
    }

    /// The counts between `self` and `later`.
    pub fn until(&self, later: &DbActivity) -> DbActivity {
        DbActivity {
            transactions: later.transactions.saturating_sub(self.transactions),
            sessions: later.sessions.saturating_sub(self.sessions),
            rows_inserted: later.rows_inserted.saturating_sub(self.rows_inserted),
            rows_updated: later.rows_updated.saturating_sub(self.rows_updated),
            rows_deleted: later.rows_deleted.saturating_sub(self.rows_deleted),
        }
    }
}
