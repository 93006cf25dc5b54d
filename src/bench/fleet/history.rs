//! What the runs left in `sync_runs`: how far the benchmark is, and afterwards the audit — one full
//! run per (tenant, class), none missing, no two runs of a (tenant, class) overlapping in time (on one
//! instance or across two), and the timing figures. The statements are in `store::bench::run_history`.

use anyhow::Context;

use crate::store::bench::run_history;
pub use crate::store::bench::run_history::{Progress, RunAudit};
use crate::store::Pool;

pub async fn progress(pool: &Pool) -> anyhow::Result<Progress> {
    run_history::progress(pool).await.context("reading run progress")
}

pub async fn audit(pool: &Pool, class: crate::model::ObjectClass) -> anyhow::Result<RunAudit> {
    run_history::audit(pool, class).await.context("auditing the runs")
}

/// Every (tenant, class) ran exactly once, in full, successfully, and no two runs overlapped.
pub fn clean(audit: &RunAudit, tenants: usize) -> bool {
    let tenants = tenants as u64;
    audit.runs == tenants
        && audit.full_runs == tenants
        && audit.pairs == tenants
        && audit.succeeded() == tenants
        && audit.duplicated_pairs == 0
        && audit.missing_tenants == 0
        && audit.overlapping_runs == 0
}
