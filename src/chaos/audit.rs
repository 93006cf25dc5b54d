//! Recovery points of the chaos run, from the history its statements read (`store::bench::chaos`).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

pub use crate::store::bench::chaos::{
    history, stuck_runs, succeeded_since, terminate_sessions, HistoryAudit, StuckRun,
};
use crate::store::Pool;

/// When every pair in `expected` had finished a successful run started at or after `since`; `None`
/// when one has not yet.
pub async fn recovered_at(
    pool: &Pool,
    since: DateTime<Utc>,
    expected: &BTreeSet<(i64, String)>,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    let done = succeeded_since(pool, since).await?;
    let mut latest = since;
    for pair in expected {
        match done.get(pair) {
            Some(at) => latest = latest.max(*at),
            None => return Ok(None),
        }
    }
    Ok(Some(latest))
}
