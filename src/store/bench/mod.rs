//! The SQL only the benchmarks (`entrasync bench`, `entrasync bench-fleet`) run, never the service: the
//! COPY limit of a round's rows ([`copy`]), row-version counting ([`row_versions`]), the periodic
//! `ANALYZE` ([`analyze`]), the run-history progress and audit ([`run_history`]), the `pg_stat_database`
//! counters ([`db_stats`]), the chaos run's audit ([`chaos`]), the backends serving the database
//! ([`backends`]) and the time per statement ([`statements`]). The benchmarks measure, orchestrate and
//! report; the statements stay here.

pub mod backends;
pub mod chaos;
pub mod copy;
pub mod db_stats;
pub mod events;
pub mod history;
pub mod nesting;
pub mod row_versions;
pub mod run_history;
pub mod statements;

use super::{During, Pool, StoreError};

/// Refreshes the planner statistics of every table of the (benchmark's own) database: a stand-in for
/// autovacuum's ANALYZE on servers where autovacuum is off.
pub async fn analyze(pool: &Pool) -> Result<(), StoreError> {
    let client = pool.get().await?;
    let limit = super::set_local_statement_timeout(super::BULK_STATEMENT_TIMEOUT);
    client.batch_execute(&format!("BEGIN; {limit}; ANALYZE; COMMIT")).await.during("analyzing the database")?;
    Ok(())
}
