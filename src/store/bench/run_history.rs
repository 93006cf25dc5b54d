//! What the runs left in `sync_runs`, as the fleet benchmark polls and audits it: how far it is, and
//! afterwards the run counts, duplicates, missing tenants, overlapping runs and timing figures.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::super::{Pool, StoreError};
use crate::model::ObjectClass;

/// Distinct (tenant, class) pairs with a finished run, and runs still running.
const PROGRESS: &str = "\
    SELECT count(DISTINCT (tenant_id, object_class)) FILTER (WHERE status <> 'running'), \
           count(*) FILTER (WHERE status = 'running') \
    FROM sync_runs";

/// (tenant, class) pairs with more than one run.
const DUPLICATED: &str = "\
    SELECT count(*) FROM (SELECT 1 FROM sync_runs GROUP BY tenant_id, object_class HAVING count(*) > 1) d";

const BY_STATUS: &str = "SELECT status::text, count(*) FROM sync_runs GROUP BY 1 ORDER BY 1";

const BY_INSTANCE: &str = "\
    SELECT COALESCE(instance_id, '(none)'), count(*), COALESCE(sum(total), 0)::bigint \
    FROM sync_runs GROUP BY 1 ORDER BY 1";

#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub finished_pairs: u64,
    pub running: u64,
}

/// One instance's share of the runs.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceShare {
    pub runs: u64,
    pub objects: u64,
}

/// Everything `sync_runs` says about the runs of one benchmark scenario.
#[derive(Debug, Clone, Serialize)]
pub struct RunAudit {
    pub runs: u64,
    pub full_runs: u64,
    /// Distinct (tenant, class) pairs that ran.
    pub pairs: u64,
    /// Pairs with more than one run.
    pub duplicated_pairs: u64,
    /// Registered tenants with no run of the class.
    pub missing_tenants: u64,
    pub overlapping_runs: u64,
    pub overlapping_across_instances: u64,
    pub by_status: BTreeMap<String, u64>,
    pub by_instance: BTreeMap<String, InstanceShare>,
    pub objects: u64,
    pub pages: u64,
    pub graph_requests: u64,
    #[serde(skip)]
    pub last_finished: Option<DateTime<Utc>>,
    /// Sum of the runs' durations (start to finish): divided by the wall time, the mean concurrency.
    pub run_seconds_total: f64,
    pub run_p50_s: f64,
    pub run_p95_s: f64,
    pub run_max_s: f64,
}

impl RunAudit {
    /// Runs that ended with status `success`.
    pub fn succeeded(&self) -> u64 {
        self.by_status.get("success").copied().unwrap_or(0)
    }
}

pub async fn progress(pool: &Pool) -> Result<Progress, StoreError> {
    let client = pool.get().await?;
    let row = client.query_one(PROGRESS, &[]).await?;
    Ok(Progress { finished_pairs: count(row.try_get(0)?), running: count(row.try_get(1)?) })
}

/// Audits every run in `sync_runs` (one connection, one statement after the other); `class` is the
/// class every registered tenant should have a run of.
pub async fn audit(pool: &Pool, class: ObjectClass) -> Result<RunAudit, StoreError> {
    let client = pool.get().await?;
    let totals = client.query_one(include_str!("../sql/bench_run_totals.sql"), &[]).await?;
    let duplicated = client.query_one(DUPLICATED, &[]).await?;
    let missing = client.query_one(include_str!("../sql/bench_runs_missing.sql"), &[&class.as_str()]).await?;
    let overlaps = client.query_one(include_str!("../sql/bench_run_overlaps.sql"), &[]).await?;
    let mut by_status = BTreeMap::new();
    for row in client.query(BY_STATUS, &[]).await? {
        by_status.insert(row.try_get::<_, String>(0)?, count(row.try_get(1)?));
    }
    let mut by_instance = BTreeMap::new();
    for row in client.query(BY_INSTANCE, &[]).await? {
        let share = InstanceShare { runs: count(row.try_get(1)?), objects: count(row.try_get(2)?) };
        by_instance.insert(row.try_get::<_, String>(0)?, share);
    }
    let seconds =
        |index: usize| -> Result<f64, StoreError> { Ok(totals.try_get::<_, Option<f64>>(index)?.unwrap_or(0.0)) };
    Ok(RunAudit {
        runs: count(totals.try_get(0)?),
        full_runs: count(totals.try_get(1)?),
        pairs: count(totals.try_get(2)?),
        duplicated_pairs: count(duplicated.try_get(0)?),
        missing_tenants: count(missing.try_get(0)?),
        overlapping_runs: count(overlaps.try_get(0)?),
        overlapping_across_instances: count(overlaps.try_get(1)?),
        by_status,
        by_instance,
        objects: count(totals.try_get(3)?),
        pages: count(totals.try_get(4)?),
        graph_requests: count(totals.try_get(5)?),
        last_finished: totals.try_get(6)?,
        run_seconds_total: seconds(7)?,
        run_p50_s: seconds(8)?,
        run_p95_s: seconds(9)?,
        run_max_s: seconds(10)?,
    })
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
