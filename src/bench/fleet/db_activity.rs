//! What the service asked of Postgres during a measurement, from `pg_stat_database` of the scratch
//! database: transactions, new sessions (the run lock opens one per run) and row changes. Backends
//! report their counters when idle (at most every second, or 10 s later) and when they exit, so the
//! closing snapshot is taken after the service instances stopped. Approximate by a few dozen: the
//! benchmark's own progress polls (4 a second) and the instances' start-up are included.

use anyhow::Context;
use serde::Serialize;

use crate::store::bench::db_stats;
use crate::store::Pool;

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
        let counters = db_stats::counters(pool).await.context("reading pg_stat_database")?;
        Ok(DbActivity {
            transactions: counters.transactions,
            sessions: counters.sessions,
            rows_inserted: counters.rows_inserted,
            rows_updated: counters.rows_updated,
            rows_deleted: counters.rows_deleted,
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
