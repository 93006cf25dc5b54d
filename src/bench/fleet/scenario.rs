//! One measurement: a fresh database, a child emulator serving the scenario's tenants, the tenants
//! registered in bulk, `instances` service processes consuming, then one full user job per tenant
//! published and the clock running until `sync_runs` holds a finished run for every tenant. Every
//! resource is removed afterwards, whatever happened.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Utc;
use serde::Serialize;
use uuid::Uuid;

use super::cpu::{CpuSample, CpuSeconds};
use super::db_activity::DbActivity;
use super::history::{self, RunAudit};
use super::instances::{InstanceSpec, ServiceInstance};
use super::jobs::{JobQueue, CLASS};
use super::registry::{self, Registered};
use super::sim_tenants;
use super::unchanged::{self, UnchangedPass};
use crate::bench::database::ScratchDatabase;
use crate::bench::emulator::{ChildEmulator, EmulatorSpec};
use crate::config::{AmqpSettings, DatabaseSettings};

pub(super) const POLL_EVERY: Duration = Duration::from_millis(250);
/// Instances and the dead-letter queue are checked this often while waiting.
pub(super) const HEALTH_EVERY: Duration = Duration::from_secs(2);
const LOG_EVERY: Duration = Duration::from_secs(10);
/// After the last run finished: time for a duplicate (a redelivered job) to show up before the audit.
const SETTLE: Duration = Duration::from_secs(1);
/// After killing the instances: time for their backends to exit and report their statistics.
pub(super) const BACKENDS_EXIT: Duration = Duration::from_millis(500);

/// What is measured: `tenants` tenants of `users_per_tenant` users each.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Shape {
    pub label: &'static str,
    pub tenants: usize,
    pub users_per_tenant: usize,
}

/// How every measurement is set up.
#[derive(Clone)]
pub struct Setup {
    pub exe: PathBuf,
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub instances: usize,
    pub workers_per_class: usize,
    pub prefetch: u16,
    pub page_size: usize,
    pub emulator_workers: usize,
    pub seed: u64,
    pub timeout: Duration,
    /// Measure a pass of unchanged delta runs after the full one ([`super::unchanged`]).
    pub unchanged_pass: bool,
    /// Warm the instances with an unmeasured unchanged pass first.
    pub warm_unchanged_pass: bool,
}

/// The figures of one measurement.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioFigures {
    /// Which run of the command (from 1) this measurement belongs to.
    pub run: usize,
    pub shape: Shape,
    pub instances: usize,
    /// Emulator, tenants, registration and instances until every worker consumed (not timed below).
    pub setup_s: f64,
    /// Publishing every job, confirmed (part of `wall_s`).
    pub enqueue_s: f64,
    /// From the first publish to the last run's `finished_at`.
    pub wall_s: f64,
    pub audit: RunAudit,
    pub cpu: CpuSeconds,
    /// The scratch database's activity from the first publish until the instances stopped.
    pub db: DbActivity,
    /// The pass of delta runs that change nothing, when asked for.
    pub unchanged: Option<UnchangedPass>,
}

impl ScenarioFigures {
    pub fn objects_per_s(&self) -> f64 {
        self.audit.objects as f64 / self.wall_s.max(1e-9)
    }

    pub fn tenants_per_s(&self) -> f64 {
        self.audit.pairs as f64 / self.wall_s.max(1e-9)
    }

    /// Runs in progress on average: the runs' summed durations over the wall time.
    pub fn mean_concurrency(&self) -> f64 {
        self.audit.run_seconds_total / self.wall_s.max(1e-9)
    }

    pub fn clean(&self) -> bool {
        history::clean(&self.audit, self.shape.tenants)
            && self.unchanged.as_ref().is_none_or(|pass| pass.clean(self.shape.tenants))
    }
}

/// Runs one measurement; the database is dropped whatever happens.
pub async fn run_once(setup: &Setup, shape: Shape) -> anyhow::Result<ScenarioFigures> {
    let started = Instant::now();
    let db = ScratchDatabase::create(&setup.database).await?;
    let outcome = with_database(setup, shape, &db, started).await;
    db.drop_or_warn().await;
    outcome
}

async fn with_database(
    setup: &Setup,
    shape: Shape,
    db: &ScratchDatabase,
    started: Instant,
) -> anyhow::Result<ScenarioFigures> {
    let spec = EmulatorSpec {
        users: shape.users_per_tenant,
        seed: setup.seed,
        page_size: setup.page_size,
        workers: setup.emulator_workers,
    };
    let emulator = ChildEmulator::start(&setup.exe, &spec).await?;
    let outcome = with_emulator(setup, shape, db, &emulator, started).await;
    emulator.stop().await;
    outcome
}

async fn with_emulator(
    setup: &Setup,
    shape: Shape,
    db: &ScratchDatabase,
    emulator: &ChildEmulator,
    started: Instant,
) -> anyhow::Result<ScenarioFigures> {
    let app = emulator.register_app().await?;
    let entra_ids = sim_tenants::create(emulator, &app.app_id, shape.tenants, shape.users_per_tenant, setup.seed)
        .await
        .context("creating the emulator's tenants")?;
    let registered = registry::register(&db.pool, &app, &emulator.base_url, &entra_ids).await?;
    tracing::info!(
        tenants = registered.tenant_ids.len(),
        setup_s = started.elapsed().as_secs_f64(),
        "fleet registered"
    );
    let amqp = AmqpSettings {
        prefix: format!("bench-fleet-{}", &Uuid::new_v4().simple().to_string()[..12]),
        ..setup.amqp.clone()
    };
    let queue = JobQueue::connect(&amqp).await?;
    let outcome = with_queue(setup, shape, db, emulator, &queue, &registered, &entra_ids, started).await;
    queue.remove().await;
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn with_queue(
    setup: &Setup,
    shape: Shape,
    db: &ScratchDatabase,
    emulator: &ChildEmulator,
    queue: &JobQueue,
    registered: &Registered,
    entra_ids: &[Uuid],
    started: Instant,
) -> anyhow::Result<ScenarioFigures> {
    let spec = InstanceSpec {
        database_url: db.settings.url.clone(),
        amqp_url: setup.amqp.url.clone(),
        amqp_prefix: queue.prefix().to_owned(),
        secrets_key: registered.secrets_key.clone(),
        workers_per_class: setup.workers_per_class,
        prefetch: setup.prefetch,
    };
    let mut instances = start_fleet(setup, &spec, queue).await?;
    let setup_s = started.elapsed().as_secs_f64();

    let pids: Vec<u32> = instances.iter().filter_map(ServiceInstance::pid).collect();
    let db_before = DbActivity::snapshot(&db.pool).await?;
    let before = CpuSample::take(&pids, emulator.pid());
    let first_publish = Utc::now();
    let clock = Instant::now();
    queue.publish_full_jobs(entra_ids).await?;
    let enqueue_s = clock.elapsed().as_secs_f64();
    tracing::info!(jobs = entra_ids.len(), enqueue_s, "fleet jobs published");
    wait_until_finished(setup, shape, db, queue, &mut instances, clock).await?;
    let cpu = before.until(&CpuSample::take(&pids, emulator.pid()));

    tokio::time::sleep(SETTLE).await;
    let audit = history::audit(&db.pool, CLASS).await?;
    for instance in instances {
        instance.stop().await;
    }
    tokio::time::sleep(BACKENDS_EXIT).await;
    let db_activity = db_before.until(&DbActivity::snapshot(&db.pool).await?);
    let last = audit.last_finished.context("no run finished")?;
    let wall_s = (last - first_publish).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
    let unchanged = if setup.unchanged_pass {
        Some(unchanged::measure(setup, shape, db, emulator, queue, &spec, entra_ids).await?)
    } else {
        None
    };
    Ok(ScenarioFigures {
        run: 0,
        shape,
        instances: setup.instances,
        setup_s,
        enqueue_s,
        wall_s,
        audit,
        cpu,
        db: db_activity,
        unchanged,
    })
}

/// Starts the instances and waits until each is ready and every worker consumes.
pub(super) async fn start_fleet(
    setup: &Setup,
    spec: &InstanceSpec,
    queue: &JobQueue,
) -> anyhow::Result<Vec<ServiceInstance>> {
    let mut instances = (1..=setup.instances)
        .map(|n| ServiceInstance::start(&setup.exe, spec, &format!("fleet-{n}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().context("an HTTP client")?;
    for instance in &mut instances {
        instance.wait_ready(&http).await?;
    }
    let workers = u32::try_from(setup.instances * setup.workers_per_class).unwrap_or(u32::MAX);
    queue.wait_for_consumers(workers).await?;
    Ok(instances)
}

/// Polls `sync_runs` until every tenant has a finished run and none runs; fails early when an
/// instance died, a job was dead-lettered, or the timeout passed.
async fn wait_until_finished(
    setup: &Setup,
    shape: Shape,
    db: &ScratchDatabase,
    queue: &JobQueue,
    instances: &mut [ServiceInstance],
    clock: Instant,
) -> anyhow::Result<()> {
    let expected = shape.tenants as u64;
    let (mut checked, mut logged) = (Instant::now(), Instant::now());
    loop {
        let progress = history::progress(&db.pool).await?;
        if progress.finished_pairs >= expected && progress.running == 0 {
            return Ok(());
        }
        if checked.elapsed() >= HEALTH_EVERY {
            checked = Instant::now();
            for instance in instances.iter_mut() {
                instance.ensure_running()?;
            }
            let dead = queue.dead_letters().await?;
            if dead > 0 {
                bail!("{dead} job(s) were dead-lettered; they will never run (see the instances' log)");
            }
        }
        if logged.elapsed() >= LOG_EVERY {
            logged = Instant::now();
            tracing::info!(
                finished = progress.finished_pairs,
                running = progress.running,
                of = expected,
                elapsed_s = clock.elapsed().as_secs(),
                "fleet progress"
            );
        }
        if clock.elapsed() > setup.timeout {
            bail!("{} of {expected} runs finished within {:?}", progress.finished_pairs, setup.timeout);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
