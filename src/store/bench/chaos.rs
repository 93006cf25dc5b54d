//! The chaos run's statements (`entrasync chaos`, `src/chaos`): what the run left in the history (stuck
//! runs, duplicated rows, overlapping runs, failures by error), which pairs have succeeded since a
//! moment, and the "Postgres restarted" half of an outage (every session of the run's database
//! terminated). The overlap count is the fleet audit's own ([`super::run_history`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::ObjectClass;
use crate::store::{During, Pool, StoreError};

const TERMINATE: &str = "\
    SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
    WHERE datname = current_database() AND pid <> pg_backend_pid()) t";

/// (tenant, class) pairs with a successful run that started at or after $1, and when the first ended.
const SUCCEEDED_SINCE: &str = "\
    SELECT tenant_id, object_class::text, min(finished_at) FROM sync_runs \
    WHERE status = 'success' AND started_at >= $1 GROUP BY 1, 2";

const STUCK: &str = "\
    SELECT tenant_id, object_class::text, started_at, COALESCE(instance_id, '') FROM sync_runs \
    WHERE status = 'running' AND started_at < $1 ORDER BY started_at";

/// A final status without an end, or an end without a final status.
const INCONSISTENT: &str = "\
    SELECT count(*) FROM sync_runs WHERE (status <> 'running') <> (finished_at IS NOT NULL)";

/// Rows recording one run twice: the same (tenant, class) started at the same instant.
const DUPLICATED: &str = "\
    SELECT COALESCE(sum(n - 1), 0)::bigint FROM \
    (SELECT count(*) AS n FROM sync_runs GROUP BY tenant_id, object_class, started_at HAVING count(*) > 1) d";

const FAILURES: &str = "\
    SELECT COALESCE(left(error, 160), '(no error text)'), count(*) FROM sync_runs WHERE status = 'failed' \
    GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 15";

/// Terminates every other session of the run's database, as a Postgres restart would.
pub async fn terminate_sessions(pool: &Pool) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    let row = client.query_one(TERMINATE, &[]).await.during("terminating sessions")?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

/// Pairs that ran successfully in a run started at or after `since`, with the first such run's end.
pub async fn succeeded_since(
    pool: &Pool,
    since: DateTime<Utc>,
) -> Result<BTreeMap<(i64, String), DateTime<Utc>>, StoreError> {
    let client = pool.get().await?;
    let rows = client.query(SUCCEEDED_SINCE, &[&since]).await.during("reading successful runs")?;
    let mut pairs = BTreeMap::new();
    for row in rows {
        let finished: Option<DateTime<Utc>> = row.get(2);
        if let Some(finished) = finished {
            pairs.insert((row.get::<_, i64>(0), row.get::<_, String>(1)), finished);
        }
    }
    Ok(pairs)
}

/// A run still `running` that should have ended.
#[derive(Debug, Clone, Serialize)]
pub struct StuckRun {
    pub tenant_id: i64,
    pub class: String,
    pub started_at: DateTime<Utc>,
    pub instance: String,
}

pub async fn stuck_runs(pool: &Pool, started_before: DateTime<Utc>) -> Result<Vec<StuckRun>, StoreError> {
    let client = pool.get().await?;
    let rows = client.query(STUCK, &[&started_before]).await.during("reading running runs")?;
    Ok(rows
        .iter()
        .map(|r| StuckRun { tenant_id: r.get(0), class: r.get(1), started_at: r.get(2), instance: r.get(3) })
        .collect())
}

/// The run history's figures.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryAudit {
    pub runs: u64,
    pub by_status: BTreeMap<String, u64>,
    /// Rows beyond the first of one (tenant, class, started_at).
    pub duplicate_history_rows: u64,
    /// Runs whose status and end disagree (final without an end, or an end while running).
    pub inconsistent_rows: u64,
    /// Pairs of runs of one (tenant, class) that overlapped in time.
    pub overlapping_runs: u64,
    /// The most common errors of failed runs, with their counts.
    pub failures: Vec<(String, u64)>,
}

pub async fn history(pool: &Pool) -> Result<HistoryAudit, StoreError> {
    let fleet = crate::store::bench::run_history::audit(pool, ObjectClass::User).await.during("auditing the runs")?;
    let client = pool.get().await?;
    let count = |row: &tokio_postgres::Row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
    let duplicated = count(&client.query_one(DUPLICATED, &[]).await.during("duplicated rows")?);
    let inconsistent = count(&client.query_one(INCONSISTENT, &[]).await.during("inconsistent rows")?);
    let failures = client
        .query(FAILURES, &[])
        .await
        .during("failed runs")?
        .iter()
        .map(|r| (r.get::<_, String>(0), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
        .collect();
    Ok(HistoryAudit {
        runs: fleet.runs,
        by_status: fleet.by_status,
        duplicate_history_rows: duplicated,
        inconsistent_rows: inconsistent,
        overlapping_runs: fleet.overlapping_runs,
        failures,
    })
}
