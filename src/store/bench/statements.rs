//! Where Postgres spends its time, statement by statement, from `pg_stat_statements` when the server
//! loads it (`shared_preload_libraries`; a restart). The benchmarks report it when it is there and say so
//! when it is not: it is a diagnosis, never a figure a target depends on.

use std::collections::HashMap;

use super::super::{Pool, StoreError};

/// Execution (and planning, when tracked) time of every statement of the current database, by query id.
const TOTALS: &str = "\
    SELECT queryid, query, calls, total_exec_time + total_plan_time \
    FROM pg_stat_statements \
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND queryid IS NOT NULL";

/// One normalized statement's cumulative figures.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementTotals {
    pub query: String,
    pub calls: u64,
    pub time_ms: f64,
}

/// The current database's statements, or `None` when the server does not load `pg_stat_statements`
/// (the extension is created in the database on first use; that needs a superuser, as the benchmarks are).
pub async fn totals(pool: &Pool) -> Result<Option<HashMap<i64, StatementTotals>>, StoreError> {
    let client = pool.get().await?;
    let loaded: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM unnest(string_to_array(current_setting('shared_preload_libraries'), ',')) l \
             WHERE trim(l) = 'pg_stat_statements')",
            &[],
        )
        .await?
        .try_get(0)?;
    if !loaded {
        return Ok(None);
    }
    client.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").await?;
    let rows = client.query(TOTALS, &[]).await?;
    let mut totals = HashMap::with_capacity(rows.len());
    for row in rows {
        let calls: i64 = row.try_get(2)?;
        totals.insert(
            row.try_get(0)?,
            StatementTotals {
                query: row.try_get(1)?,
                calls: u64::try_from(calls).unwrap_or_default(),
                time_ms: row.try_get(3)?,
            },
        );
    }
    Ok(Some(totals))
}
