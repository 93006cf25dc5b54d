//! One benchmark run: a fresh database and emulator, then a full round of one object class, the COPY
//! limit of its rows (a group round's memberships included), an unchanged re-scan, a seeded mutation
//! batch and a delta round — each timed end to end.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use secrecy::SecretString;

use super::analyzer::Analyzer;
use super::copy_limit::{self, CopyLimit};
use super::cpu::{CpuSample, CpuSplit};
use super::database::ScratchDatabase;
use super::emulator::{ChildEmulator, EmulatorSpec, GroupsAndDevices};
use super::row_versions::{RowVersions, RowWrites};
use super::rss;
use crate::config::DatabaseSettings;
use crate::graph::{AppCredentials, GraphClient, GraphClientOptions, GraphTenant, RequestPriority, TenantSize};
use crate::model::{Cloud, ObjectClass, SyncMode, Trigger};
use crate::store::tenants::{self, NewTenant};
use crate::store::Pool;
use crate::sync::{
    run_round, DeletionGuard, ObjectPolicy, PassThrough, PgRunRecorder, RoundDeps, RoundReport, RoundRequest,
};

/// The benchmark deletes freely: its mutation batch soft- and permanently deletes objects.
const NO_GUARD: DeletionGuard = DeletionGuard { max_deletions: u64::MAX, max_percent: 100 };

/// What one run asks for.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The class the rounds sync (the emulator's tenant may hold others).
    pub class: ObjectClass,
    pub emulator: EmulatorSpec,
    pub groups_and_devices: GroupsAndDevices,
    pub delta_mutations: usize,
    /// Refresh planner statistics this often during the run (autovacuum's job; off on some servers).
    pub analyze_every: Option<Duration>,
    /// Objects per written batch of pages (`sync.batch_objects` of the configuration).
    pub batch_objects: usize,
    /// Rounds apply the benchmark's mappings and scoping filter ([`super::remap::benchmark_mappings`])
    /// instead of `PassThrough`.
    pub mapped: bool,
}

/// A timed round and what it wrote.
#[derive(Debug, Clone)]
pub struct TimedRound {
    pub elapsed: Duration,
    pub report: RoundReport,
    /// Peak resident set size of this process during the round (bytes), when the kernel tells.
    pub peak_rss: Option<u64>,
    /// CPU seconds of the syncing process, the emulator child and the database's backends.
    pub cpu: CpuSplit,
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct RunFigures {
    /// Resident set size when the full round started (runtime, pool, client; bytes).
    pub rss_at_start: Option<u64>,
    pub full: TimedRound,
    pub copy: CopyLimit,
    pub rescan: TimedRound,
    /// Object and membership rows whose row version changed (or that vanished) during the re-scan,
    /// counted by `xmin`.
    pub rescan_row_versions: RowWrites,
    pub delta: TimedRound,
    /// Object and membership rows the delta round wrote, counted by `xmin`.
    pub delta_row_versions: RowWrites,
    /// The emulator's answer to the mutation batch (counts by kind).
    pub mutations: serde_json::Value,
    pub emulator_peak_rss: Option<u64>,
}

/// Runs one benchmark run; the database is dropped and the emulator stopped whatever happens.
pub async fn run_once(exe: &Path, base: &DatabaseSettings, plan: &RunPlan) -> anyhow::Result<RunFigures> {
    let db = ScratchDatabase::create(base).await?;
    let outcome = match ChildEmulator::start_with(exe, &plan.emulator, plan.groups_and_devices).await {
        Ok(emulator) => {
            let outcome = measure(&db.pool, &emulator, plan).await;
            emulator.stop().await;
            outcome
        }
        Err(error) => Err(error),
    };
    db.drop_or_warn().await;
    outcome
}

async fn measure(pool: &Pool, emulator: &ChildEmulator, plan: &RunPlan) -> anyhow::Result<RunFigures> {
    let app = emulator.register_app().await?;
    let cloud = Cloud::Custom { login_url: emulator.base_url.clone(), graph_url: emulator.base_url.clone() };
    let stored = tenants::create(
        pool,
        &NewTenant {
            name: "bench".to_owned(),
            entra_tenant_id: emulator.tenant_id,
            cloud: cloud.clone(),
            credential_profile_id: None,
            enabled: true,
            full_scan_next_run: true,
        },
        &crate::store::audit::Actor::new("bench"),
    )
    .await
    .context("registering the benchmark tenant")?;
    let graph_tenant = GraphTenant {
        cloud,
        tenant_id: emulator.tenant_id.to_string(),
        credentials: Arc::new(AppCredentials::with_secret(app.app_id, SecretString::from(app.secret))),
        size: TenantSize::from_user_count(plan.emulator.users.max(plan.groups_and_devices.devices) as u64),
    };
    // No shared rate budget: it models Graph's quotas, which the emulator does not enforce here.
    let graph = GraphClient::new(GraphClientOptions::default()).context("the Graph client")?;
    let recorder = PgRunRecorder::new(pool.clone());
    let policy: Arc<dyn ObjectPolicy> = if plan.mapped {
        let set = super::remap::benchmark_mappings();
        Arc::new(
            crate::mapping::compile(plan.class, &set)
                .map_err(|problems| anyhow::anyhow!("the benchmark's mappings do not compile: {problems:?}"))?,
        )
    } else {
        Arc::new(PassThrough)
    };
    let deps = RoundDeps { pool, graph: &graph, policy, recorder: &recorder };
    let request = |force_full| RoundRequest {
        tenant_id: stored.id,
        graph_tenant: graph_tenant.clone(),
        class: plan.class,
        trigger: Trigger::Manual,
        force_full,
        guard: NO_GUARD,
        priority: RequestPriority::Normal,
        instance_id: Some("bench".to_owned()),
        batch_objects: plan.batch_objects,
        job_id: None,
    };

    let _analyzer = plan.analyze_every.map(|every| Analyzer::start(pool.clone(), every));
    let rss_at_start = rss::own_current();
    let emulator_pid = emulator.pid();
    let full = timed(&deps, &request(true), SyncMode::Full, emulator_pid).await.context("the full round")?;
    let memberships = plan.class == ObjectClass::Group;
    let copy = copy_limit::measure(pool, stored.id, memberships).await.context("the COPY limit")?;
    if copy.objects.rows != full.report.counts.total {
        let (copied, listed) = (copy.objects.rows, full.report.counts.total);
        tracing::warn!(copied, listed, "COPY rows differ from the listing");
    }

    let before = RowVersions::snapshot(pool, stored.id).await?;
    let rescan = timed(&deps, &request(true), SyncMode::Full, emulator_pid).await.context("the unchanged re-scan")?;
    let rescan_row_versions = before.writes_since(pool).await?;

    let mutations = emulator.mutate(plan.emulator.seed ^ 0x5eed, plan.delta_mutations).await?;
    let before = RowVersions::snapshot(pool, stored.id).await?;
    let delta = timed(&deps, &request(false), SyncMode::Delta, emulator_pid).await.context("the delta round")?;
    let delta_row_versions = before.writes_since(pool).await?;
    let emulator_peak_rss = emulator.pid().and_then(rss::peak_of);
    Ok(RunFigures {
        rss_at_start,
        full,
        copy,
        rescan,
        rescan_row_versions,
        delta,
        delta_row_versions,
        mutations,
        emulator_peak_rss,
    })
}

/// Runs one round from its first request to its final history row, with the peak memory reset first.
async fn timed(
    deps: &RoundDeps<'_, PgRunRecorder>,
    request: &RoundRequest,
    mode: SyncMode,
    emulator_pid: Option<u32>,
) -> anyhow::Result<TimedRound> {
    let cpu_before = CpuSample::take(deps.pool, emulator_pid).await;
    let reset = rss::reset_peak();
    let started = Instant::now();
    let report = run_round(deps, request).await?;
    let elapsed = started.elapsed();
    let peak_rss = if reset { rss::own_peak() } else { None };
    let cpu = cpu_before.since(deps.pool).await;
    if report.mode != mode {
        bail!("expected a {mode} round, the round ran {} ({:?})", report.mode, report.reason);
    }
    tracing::info!(
        mode = %report.mode,
        status = report.status.as_str(),
        total = report.counts.total,
        rows_written = report.counts.rows_written,
        elapsed_s = elapsed.as_secs_f64(),
        peak_rss_mb = peak_rss.map(|b| b / (1 << 20)),
        syncing_cpu_s = cpu.syncing_s,
        emulator_cpu_s = cpu.emulator_s,
        postgres_cpu_s = cpu.postgres_s,
        "benchmark round"
    );
    Ok(TimedRound { elapsed, report, peak_rss, cpu })
}
