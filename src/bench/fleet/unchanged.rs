//! The unchanged pass (`--unchanged-pass`): after a measurement's full runs, the service instances start
//! again and every tenant gets one delta job whose round finds nothing changed. What Postgres does for
//! those runs is the fixed cost of a small run (issue 16, target 5: ≤ 3 transactions and ≤ 1 ms of
//! Postgres CPU per run that changes nothing). The counters start once the new instances consume, so
//! their start-up is not counted (nor, after an 11 s wait, anything before the pass); the benchmark's own
//! polls (4 a second) are, and are also reported apart.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;
use uuid::Uuid;

use super::cpu::{CpuSample, CpuSeconds};
use super::db_activity::DbActivity;
use super::instances::{InstanceSpec, ServiceInstance};
use super::jobs::JobQueue;
use super::scenario::{self, Setup, Shape, BACKENDS_EXIT, HEALTH_EVERY, POLL_EVERY};
use crate::bench::database::ScratchDatabase;
use crate::bench::emulator::ChildEmulator;
use crate::model::SyncMode;
use crate::store::bench::statements::{self, StatementTotals};
use crate::store::runs::{self, ModeTally};

/// How many statements the report lists, the costliest first.
const STATEMENTS_LISTED: usize = 15;

/// The figures of one unchanged pass.
#[derive(Debug, Clone, Serialize)]
pub struct UnchangedPass {
    /// From the first publish until the poll that saw every run finished (polled every 250 ms).
    pub wall_s: f64,
    pub runs: ModeTally,
    pub cpu: CpuSeconds,
    pub db: DbActivity,
    /// The instances ran one unmeasured unchanged pass first (`--warm-unchanged-pass`).
    pub warm: bool,
    /// Transactions of those the benchmark itself sent to the scratch database (its progress polls and
    /// its closing readings), not the service's.
    pub bench_transactions: u64,
    /// Where Postgres spent its time, when the server loads `pg_stat_statements`.
    pub statements: Option<Vec<StatementCost>>,
}

/// One normalized statement's share of the pass, per run.
#[derive(Debug, Clone, Serialize)]
pub struct StatementCost {
    pub query: String,
    pub calls_per_run: f64,
    pub ms_per_run: f64,
}

impl UnchangedPass {
    /// Every tenant ran one successful delta run that changed nothing.
    pub fn clean(&self, tenants: usize) -> bool {
        let tenants = tenants as u64;
        self.runs.runs == tenants
            && self.runs.succeeded == tenants
            && self.runs.pairs == tenants
            && self.runs.changed == 0
    }

    pub fn transactions_per_run(&self) -> f64 {
        self.db.transactions as f64 / self.runs.runs.max(1) as f64
    }

    /// The service's transactions per run: the benchmark's own left out.
    pub fn service_transactions_per_run(&self) -> f64 {
        self.db.transactions.saturating_sub(self.bench_transactions) as f64 / self.runs.runs.max(1) as f64
    }

    pub fn postgres_ms_per_run(&self) -> f64 {
        self.cpu.postgres * 1000.0 / self.runs.runs.max(1) as f64
    }
}

/// Starts the instances again, publishes one delta job per tenant and measures until every run ended.
pub async fn measure(
    setup: &Setup,
    shape: Shape,
    db: &ScratchDatabase,
    emulator: &ChildEmulator,
    queue: &JobQueue,
    spec: &InstanceSpec,
    entra_ids: &[Uuid],
) -> anyhow::Result<UnchangedPass> {
    let mut instances = scenario::start_fleet(setup, spec, queue).await?;
    let expected = shape.tenants as u64;
    let warm = if setup.warm_unchanged_pass {
        queue.publish_jobs(entra_ids, SyncMode::Delta).await?;
        Some(wait_for_runs(setup, db, queue, &mut instances, expected, None).await?.0)
    } else {
        None
    };
    // An idle backend reports its counters within a second, or 10 s after its last report when that was
    // less than a second ago: what came before (the benchmark's own polls, a warm pass) is all in before
    // the measured pass starts.
    tokio::time::sleep(STATS_REPORTED).await;

    let pids: Vec<u32> = instances.iter().filter_map(ServiceInstance::pid).collect();
    let db_before = DbActivity::snapshot(&db.pool).await?;
    let statements_before = statements::totals(&db.pool).await.context("reading pg_stat_statements")?;
    let before = CpuSample::take(&pids, emulator.pid());
    let clock = Instant::now();
    queue.publish_jobs(entra_ids, SyncMode::Delta).await?;
    let (runs, polls) = wait_for_runs(setup, db, queue, &mut instances, expected, warm.as_ref()).await?;
    // The polls, and three readings: the opening snapshot's own (counted by the closing one) and
    // pg_stat_statements' before and after. (A pooled connection idle for over a second adds an empty
    // query, so this is a floor.)
    let bench_transactions = polls + 3;
    let wall_s = clock.elapsed().as_secs_f64();
    let cpu = before.until(&CpuSample::take(&pids, emulator.pid()));
    for instance in instances {
        instance.stop().await;
    }
    tokio::time::sleep(BACKENDS_EXIT).await;
    let statements_after = statements::totals(&db.pool).await.context("reading pg_stat_statements")?;
    let db = db_before.until(&DbActivity::snapshot(&db.pool).await?);
    let statements =
        statements_before.zip(statements_after).map(|(before, after)| costliest(&before, &after, runs.runs.max(1)));
    Ok(UnchangedPass { wall_s, runs, cpu, db, warm: warm.is_some(), bench_transactions, statements })
}

/// How long after their last transaction idle backends have reported their counters (Postgres'
/// `PGSTAT_IDLE_INTERVAL`, 10 s, and a margin).
const STATS_REPORTED: std::time::Duration = std::time::Duration::from_secs(11);

/// Polls until `expected` delta runs more than `before` (a warm pass's) ended; returns those runs and how
/// many polls it took (each one a transaction of the benchmark's).
async fn wait_for_runs(
    setup: &Setup,
    db: &ScratchDatabase,
    queue: &JobQueue,
    instances: &mut [ServiceInstance],
    expected: u64,
    before: Option<&ModeTally>,
) -> anyhow::Result<(ModeTally, u64)> {
    let clock = Instant::now();
    let mut checked = Instant::now();
    let mut polls = 0;
    loop {
        let tally = runs::mode_tally(&db.pool, SyncMode::Delta).await.context("reading the delta runs")?;
        polls += 1;
        let tally = match before {
            Some(before) => tally.since(before),
            None => tally,
        };
        if tally.runs >= expected && tally.running == 0 {
            return Ok((tally, polls));
        }
        if checked.elapsed() >= HEALTH_EVERY {
            checked = Instant::now();
            for instance in instances.iter_mut() {
                instance.ensure_running()?;
            }
            let dead = queue.dead_letters().await?;
            if dead > 0 {
                bail!("{dead} delta job(s) were dead-lettered (see the instances' log)");
            }
        }
        if clock.elapsed() > setup.timeout {
            bail!("{} of {expected} delta runs finished within {:?}", tally.runs - tally.running, setup.timeout);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// The statements that took the most time between two readings, per run.
fn costliest(
    before: &HashMap<i64, StatementTotals>,
    after: &HashMap<i64, StatementTotals>,
    runs: u64,
) -> Vec<StatementCost> {
    let runs = runs as f64;
    let mut costs: Vec<StatementCost> = after
        .iter()
        .filter_map(|(id, now)| {
            let (calls, time_ms) = match before.get(id) {
                Some(then) => (now.calls.saturating_sub(then.calls), now.time_ms - then.time_ms),
                None => (now.calls, now.time_ms),
            };
            (calls > 0).then(|| StatementCost {
                query: now.query.split_whitespace().collect::<Vec<_>>().join(" "),
                calls_per_run: calls as f64 / runs,
                ms_per_run: time_ms / runs,
            })
        })
        .collect();
    costs.sort_by(|a, b| b.ms_per_run.total_cmp(&a.ms_per_run));
    costs.truncate(STATEMENTS_LISTED);
    costs
}
