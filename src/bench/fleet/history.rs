//! What the runs left in `sync_runs`: how far the benchmark is, and afterwards the audit — one full
//! run per (tenant, class), none missing, no two runs of a (tenant, class) overlapping in time (on one
//! instance or across two), and the timing figures.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::Pool;

/// Distinct (tenant, class) pairs with a finished run, and runs still running.
const PROGRESS: &str = "\
    SELECT count(DISTINCT (tenant_id, object_class)) FILTER (WHERE status <> 'running'), \
           count(*) FILTER (WHERE status = 'running') \
    FROM sync_runs";

const TOTALS: &str = "\
    SELECT count(*), count(*) FILTER (WHERE mode = 'full'), count(DISTINCT (tenant_id, object_class)), \
           COALESCE(sum(total), 0)::bigint, COALESCE(sum(pages), 0)::bigint, COALESCE(sum(graph_requests), 0)::bigint, \
           max(finished_at), \
           COALESCE(sum(EXTRACT(EPOCH FROM finished_at - started_at)), 0)::float8, \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM finished_at - started_at))::float8, \
           percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM finished_at - started_at))::float8, \
           max(EXTRACT(EPOCH FROM finished_at - started_at))::float8 \
    FROM sync_runs";

/// (tenant, class) pairs with more than one run.
const DUPLICATED: &str = "\
    SELECT count(*) FROM (SELECT 1 FROM sync_runs GROUP BY tenant_id, object_class HAVING count(*) > 1) d";

/// Registered tenants without a run of the class.
const MISSING: &str = "\
    SELECT count(*) FROM tenants t WHERE NOT EXISTS ( \
        SELECT 1 FROM sync_runs r WHERE r.tenant_id = t.id AND r.object_class = $1::text::object_class)";

/// Pairs of runs of one (tenant, class) whose intervals overlap (an unfinished run lasts forever), in
/// total and between two instances.
const OVERLAPS: &str = "\
    SELECT count(*), count(*) FILTER (WHERE a.instance_id IS DISTINCT FROM b.instance_id) \
    FROM sync_runs a JOIN sync_runs b \
      ON a.tenant_id = b.tenant_id AND a.object_class = b.object_class AND a.id < b.id \
     AND a.started_at < COALESCE(b.finished_at, 'infinity') AND b.started_at < COALESCE(a.finished_at, 'infinity')";

const BY_STATUS: &str = "SELECT status::text, count(*) FROM sync_runs GROUP BY 1 ORDER BY 1";

const BY_INSTANCE: &str = "\
    SELECT COALESCE(instance_id, '(none)'), count(*), COALESCE(sum(total), 0)::bigint \
    FROM sync_runs GROUP BY 1 ORDER BY 1";

#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub finished_pairs: u64,
    pub running: u64,
}

pub async fn progress(pool: &Pool) -> anyhow::Result<Progress> {
    let client = pool.get().await.context("a connection to read progress")?;
    let row = client.query_one(PROGRESS, &[]).await.context("reading run progress")?;
    Ok(Progress { finished_pairs: count(row.try_get(0)?), running: count(row.try_get(1)?) })
}

/// One instance's share of the runs.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceShare {
    pub runs: u64,
    pub objects: u64,
}

/// Everything the benchmark checks and reports about the runs of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
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

impl Audit {
    pub fn succeeded(&self) -> u64 {
        self.by_status.get("success").copied().unwrap_or(0)
    }

    /// Every (tenant, class) ran exactly once, in full, successfully, and no two runs overlapped.
    pub fn clean(&self, tenants: usize) -> bool {
        let tenants = tenants as u64;
        self.runs == tenants
            && self.full_runs == tenants
            && self.pairs == tenants
            && self.succeeded() == tenants
            && self.duplicated_pairs == 0
            && self.missing_tenants == 0
            && self.overlapping_runs == 0
    }
}

pub async fn audit(pool: &Pool, class: crate::model::ObjectClass) -> anyhow::Result<Audit> {
    let client = pool.get().await.context("a connection to audit the runs")?;
    let totals = client.query_one(TOTALS, &[]).await.context("run totals")?;
    let duplicated = client.query_one(DUPLICATED, &[]).await.context("duplicated runs")?;
    let missing = client.query_one(MISSING, &[&class.as_str()]).await.context("missing runs")?;
    let overlaps = client.query_one(OVERLAPS, &[]).await.context("overlapping runs")?;
    let mut by_status = BTreeMap::new();
    for row in client.query(BY_STATUS, &[]).await.context("runs by status")? {
        by_status.insert(row.try_get::<_, String>(0)?, count(row.try_get(1)?));
    }
    let mut by_instance = BTreeMap::new();
    for row in client.query(BY_INSTANCE, &[]).await.context("runs by instance")? {
        let share = InstanceShare { runs: count(row.try_get(1)?), objects: count(row.try_get(2)?) };
        by_instance.insert(row.try_get::<_, String>(0)?, share);
    }
    let seconds = |index: usize| -> anyhow::Result<f64> { Ok(totals.try_get::<_, Option<f64>>(index)?.unwrap_or(0.0)) };
    Ok(Audit {
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
