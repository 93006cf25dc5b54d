//! Stand-in for autovacuum's ANALYZE on servers where autovacuum is off (test servers often are): without
//! statistics the planner misjudges the per-page marker lookup (see docs/benchmarks.md), so a
//! production-like run refreshes them on a timer, in the benchmark's own database only.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::store::{self, Pool};

/// A background ANALYZE every `every`; stops when dropped.
pub struct Analyzer {
    task: JoinHandle<()>,
}

impl Analyzer {
    pub fn start(pool: Pool, every: Duration) -> Analyzer {
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                // Every table of the benchmark's own database (objects, memberships, the runs' scratch
                // tables), so no table the round reads is left without statistics whatever the schema holds.
                if let Err(error) = store::bench::analyze(&pool).await {
                    tracing::warn!(%error, "benchmark ANALYZE failed");
                }
            }
        });
        Analyzer { task }
    }
}

impl Drop for Analyzer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
