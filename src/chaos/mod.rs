//! `entrasync chaos`: the chaos convergence run (issue 15). A seeded run starts the Graph emulator (in
//! this process, so faults, mutations and the truth are read without HTTP), a fresh database, its own
//! queue prefix, and `--instances` `entrasync serve` child processes with every role, which reach
//! Postgres and RabbitMQ through two fault proxies ([`proxy`]). For `--minutes` it mutates the
//! directories at random and injects faults ([`faults`]): Graph faults from the emulator, and
//! outages of the service (kill -9, RabbitMQ and Postgres restarts as the client sees them, a
//! Postgres stall), one at a time. Then faults stop, every (tenant, class) is synced once more
//! (manual jobs, and the schedule), and the run is judged: every tenant equals the emulator's truth
//! ([`verify`]), every run has one final history row, none is stuck `running`, none overlapped
//! another, the dead-letter queue is empty ([`audit`]). The report is one JSON object; a failed check
//! is named in `failed_checks` and makes the command exit 1. See docs/reliability.md.
//!
//! ```sh
//! entrasync chaos --seed 7 --tenants 20 --minutes 30
//! ```

pub mod audit;
pub mod faults;
pub mod fleet;
pub mod proxy;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use uuid::Uuid;

use crate::config::{AmqpSettings, DatabaseSettings, Settings};
use crate::demo::emulated::{self, EmulatedTenant};
use crate::model::{ObjectClass, SyncMode, Trigger};
use crate::queue::{Broker, SyncJob};
use crate::store::{self, Pool};
use faults::{Active, Fault, FaultCounts, Outage};
use fleet::{Instance, InstanceSpec};
use proxy::TcpProxy;

#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    /// Seed of the directories, the mutations and the fault schedule.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Emulated tenants (20 to 60 users each, with groups and devices).
    #[arg(long, default_value_t = 20)]
    pub tenants: usize,
    /// Minutes of faults and mutations (fractions allowed).
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// `entrasync serve` processes (at least 2: one is killed now and then).
    #[arg(long, default_value_t = 2)]
    pub instances: usize,
    /// The instances' delta interval (ENTRASYNC_SYNC_DELTA_INTERVAL_SECS).
    #[arg(long, default_value_t = 10)]
    pub delta_interval_secs: u64,
    /// Mean seconds between two Graph faults.
    #[arg(long, default_value_t = 0.5)]
    pub graph_fault_every_secs: f64,
    /// Mean seconds between the end of one outage and the start of the next.
    #[arg(long, default_value_t = 20.0)]
    pub outage_every_secs: f64,
    /// Mean seconds between two batches of random directory mutations.
    #[arg(long, default_value_t = 1.0)]
    pub mutate_every_secs: f64,
    /// How long the final sync (every tenant synced once more after the faults) may take.
    #[arg(long, default_value_t = 300)]
    pub final_sync_timeout_secs: u64,
    /// The binary that runs `serve`; this executable by default.
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Where the instances' logs go (a fresh temporary directory by default).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Keep the run's database and queues afterwards, to inspect them (a failed run keeps its database).
    #[arg(long)]
    pub keep: bool,
}

impl ChaosArgs {
    /// The command line that repeats this run.
    pub fn command(&self) -> String {
        format!(
            "entrasync chaos --seed {} --tenants {} --minutes {} --instances {} --delta-interval-secs {} \
             --graph-fault-every-secs {} --outage-every-secs {} --mutate-every-secs {}",
            self.seed,
            self.tenants,
            self.minutes,
            self.instances,
            self.delta_interval_secs,
            self.graph_fault_every_secs,
            self.outage_every_secs,
            self.mutate_every_secs
        )
    }
}

/// Mutations applied to the emulator's directories.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Mutations {
    pub batches: u64,
    pub total: u64,
    pub updated: u64,
    pub created: u64,
    pub soft_deleted: u64,
    pub permanently_deleted: u64,
    pub restored: u64,
    pub members_added: u64,
    pub members_removed: u64,
}

impl Mutations {
    fn add(&mut self, s: &graph_sim::mutate::MutationSummary) {
        let n = |v: usize| v as u64;
        self.batches += 1;
        self.updated += n(s.updated);
        self.created += n(s.created);
        self.soft_deleted += n(s.soft_deleted);
        self.permanently_deleted += n(s.permanently_deleted);
        self.restored += n(s.restored);
        self.members_added += n(s.members_added);
        self.members_removed += n(s.members_removed);
        self.total = self.updated
            + self.created
            + self.soft_deleted
            + self.permanently_deleted
            + self.restored
            + self.members_added
            + self.members_removed;
    }
}

/// Time from the end of outages of one kind until every (tenant, class) had run successfully again
/// (`median_s`, `max_s` over the outages), and until the median pair had (`median_pair_s`: the
/// median over the outages of the median pair's time, which one pair starved by Graph faults does
/// not move).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recovery {
    pub outages: u64,
    pub median_s: Option<f64>,
    pub max_s: Option<f64>,
    pub median_pair_s: Option<f64>,
    /// Outages after which some pair never ran successfully before the run ended.
    pub unrecovered: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    pub seed: u64,
    pub command: String,
    pub tenants: usize,
    pub instances: usize,
    pub minutes: f64,
    pub wall_s: f64,
    pub mutations: Mutations,
    /// Faults that took effect (see `FaultCounts::total`).
    pub faults_total: u64,
    pub faults: FaultCounts,
    pub recovery: BTreeMap<&'static str, Recovery>,
    pub runs: audit::HistoryAudit,
    pub objects_lost: u64,
    pub objects_extra: u64,
    pub objects_differing: u64,
    pub memberships_differing: u64,
    pub divergence_examples: Vec<String>,
    pub duplicate_history_rows: u64,
    pub stuck_runs: u64,
    pub stuck: Vec<audit::StuckRun>,
    pub dead_letters: u64,
    /// From the end of the faults until every (tenant, class) had run successfully once more.
    pub final_sync_s: Option<f64>,
    /// Times each instance was started (1 + restarts after kill -9 or an exit).
    pub instance_starts: BTreeMap<String, u32>,
    /// Instances that exited without being killed, with the end of their log.
    pub unexpected_exits: Vec<String>,
    pub log_dir: String,
    /// The run's database (dropped after a clean run unless `--keep`).
    pub database: String,
    pub failed_checks: Vec<String>,
    pub clean: bool,
}

/// Everything the run's loops share.
struct World<'a> {
    args: &'a ChaosArgs,
    pool: &'a Pool,
    sim: &'a graph_sim::RunningSim,
    tenants: &'a [EmulatedTenant],
    pg: &'a TcpProxy,
    mq: &'a TcpProxy,
}

/// Runs the chaos and judges it. Setup failures are errors; failed checks are in the report.
pub async fn run(args: ChaosArgs, settings: Settings) -> anyhow::Result<ChaosReport> {
    anyhow::ensure!(args.instances >= 2, "--instances must be at least 2 (one is killed now and then)");
    anyhow::ensure!(args.tenants >= 1, "--tenants must be at least 1");
    anyhow::ensure!(args.minutes > 0.0 && args.minutes.is_finite(), "--minutes must be positive");
    let exe = match &args.bin {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("locating this executable to start the service")?,
    };
    let log_dir = match &args.log_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("entrasync-chaos-{}-{}", args.seed, std::process::id())),
    };
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;

    let name = format!("entrasync_chaos_{}", &Uuid::new_v4().simple().to_string()[..12]);
    let direct = with_database(&settings.database, &name)?;
    store::ensure_database_exists(&direct).await.context("creating the run's database")?;
    let outcome = with_db(&args, &settings, &direct, exe, log_dir).await.map(|mut report| {
        report.database.clone_from(&name);
        report
    });
    // A failed check keeps the database for whoever investigates it.
    let failed = outcome.as_ref().map_or(true, |report| !report.clean);
    if failed {
        tracing::warn!(database = %name, "chaos: the run failed; its database is kept");
    } else if !args.keep {
        if let Err(error) = store::drop_database(&direct).await {
            tracing::warn!(%error, database = %name, "chaos: could not drop the run's database");
        }
    }
    outcome
}

/// The settings' database URL pointing at database `name`.
fn with_database(base: &DatabaseSettings, name: &str) -> anyhow::Result<DatabaseSettings> {
    let mut url = url::Url::parse(base.url.expose_secret()).context("database.url")?;
    url.set_path(&format!("/{name}"));
    Ok(DatabaseSettings { url: SecretString::from(url.to_string()), ..base.clone() })
}

/// The host and port of `url` (with the scheme's default port) as a socket address.
async fn upstream(url: &SecretString, default_port: u16) -> anyhow::Result<SocketAddr> {
    let url = url::Url::parse(url.expose_secret()).context("parsing a peer's URL")?;
    let host = url.host_str().context("the URL has no host")?.to_owned();
    let port = url.port().unwrap_or(default_port);
    let mut addresses =
        tokio::net::lookup_host((host.as_str(), port)).await.with_context(|| format!("resolving {host}"))?;
    addresses.next().with_context(|| format!("{host} has no address"))
}

/// `url` with its host and port replaced by the proxy's.
fn through(url: &SecretString, proxy: &TcpProxy) -> anyhow::Result<SecretString> {
    let mut url = url::Url::parse(url.expose_secret()).context("parsing a peer's URL")?;
    url.set_ip_host(proxy.addr.ip()).map_err(|()| anyhow::anyhow!("cannot set the proxy's host"))?;
    url.set_port(Some(proxy.addr.port())).map_err(|()| anyhow::anyhow!("cannot set the proxy's port"))?;
    Ok(SecretString::from(url.to_string()))
}

async fn with_db(
    args: &ChaosArgs,
    settings: &Settings,
    direct: &DatabaseSettings,
    exe: PathBuf,
    log_dir: PathBuf,
) -> anyhow::Result<ChaosReport> {
    let started = Instant::now();
    store::migrate::run(direct).await.context("migrating the run's database")?;
    let pool = store::pool(direct).context("a pool on the run's database")?;
    let pg = TcpProxy::start(upstream(&direct.url, 5432).await?).await.context("starting the Postgres proxy")?;
    let mq = TcpProxy::start(upstream(&settings.amqp.url, 5672).await?).await.context("starting the RabbitMQ proxy")?;

    let sim = graph_sim::GraphSim::start(graph_sim::SimOptions::default()).context("starting the Graph emulator")?;
    let secrets_key = SecretString::from(base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>()));
    let secrets = store::secret_box::SecretBox::from_setting(&secrets_key).context("the run's secrets key")?;
    let app = emulated::register_app(&sim, &pool, &secrets, "chaos app").await?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut tenants = Vec::with_capacity(args.tenants);
    for index in 0..args.tenants {
        let users = rng.random_range(20..=60usize);
        let spec = graph_sim::state::TenantSpec {
            seed: Some(args.seed.wrapping_mul(1_000).wrapping_add(index as u64)),
            users,
            groups: users / 5,
            devices: users / 2,
            ..Default::default()
        };
        // Pages of 10: every round has several pages for a fault to land between.
        tenants.push(emulated::add_tenant(&sim, &pool, &app, &format!("chaos {index}"), spec, Some(10)).await?);
    }

    let amqp = AmqpSettings {
        prefix: format!("chaos-{}", &Uuid::new_v4().simple().to_string()[..12]),
        ..settings.amqp.clone()
    };
    let broker = Broker::start(&amqp);
    broker.connection(Duration::from_secs(15)).await.context("connecting to RabbitMQ")?;
    let spec = InstanceSpec {
        exe,
        database_url: through(&direct.url, &pg)?,
        amqp_url: through(&settings.amqp.url, &mq)?,
        amqp_prefix: amqp.prefix.clone(),
        secrets_key,
        delta_interval_secs: args.delta_interval_secs,
        log_dir: log_dir.clone(),
    };
    let world = World { args, pool: &pool, sim: &sim, tenants: &tenants, pg: &pg, mq: &mq };
    let outcome = with_service(&world, &spec, &broker, started).await;
    if !args.keep {
        if let Err(error) = broker.delete_topology(Duration::from_secs(10)).await {
            tracing::warn!(%error, "chaos: cannot delete the run's queues");
        }
    }
    broker.close().await;
    let mut report = outcome?;
    report.log_dir = log_dir.display().to_string();
    Ok(report)
}

async fn with_service(
    world: &World<'_>,
    spec: &InstanceSpec,
    broker: &Broker,
    started: Instant,
) -> anyhow::Result<ChaosReport> {
    let args = world.args;
    let mut instances = (1..=args.instances)
        .map(|n| Instance::start(spec, &format!("chaos-{n}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().context("an HTTP client")?;
    for instance in &mut instances {
        instance.wait_ready(&http).await?;
    }
    tracing::info!(tenants = world.tenants.len(), instances = instances.len(), "chaos: the service is up");

    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.minutes * 60.0);
    let mut counts = FaultCounts::default();
    let mut unexpected_exits = Vec::new();
    let ((), outages, mutations) = tokio::join!(
        graph_faults(world, deadline, &mut counts),
        service_outages(world, &mut instances, deadline, &mut unexpected_exits),
        mutate(world, deadline),
    );
    for outage in &outages {
        counts.injected(outage.fault);
    }
    // Nothing is broken from here on.
    world.sim.state().clear_faults(None);
    world.pg.restore();
    world.mq.restore();
    for instance in &mut instances {
        if let Err(error) = instance.restart() {
            unexpected_exits.push(format!("{}: cannot restart: {error:#}", instance.name));
        }
    }
    let faults_end = Utc::now();
    tracing::info!(faults = counts.total(), mutations = mutations.total, "chaos: faults stopped; final sync");

    let expected: BTreeSet<(i64, String)> = world
        .tenants
        .iter()
        .flat_map(|t| ObjectClass::ALL.iter().map(move |c| (t.tenant_id, c.as_str().to_owned())))
        .collect();
    let final_sync = final_sync(world, broker, &expected, faults_end).await?;
    let divergence = verify::compare(world.pool, world.sim, world.tenants).await?;
    let stuck = settled_runs(world.pool, faults_end).await?;
    let history = audit::history(world.pool).await?;
    let dead_letters = broker
        .queue_depths(Duration::from_secs(10))
        .await
        .context("reading the dead-letter queue")?
        .iter()
        .find(|d| d.class.is_none())
        .map_or(0, |d| u64::from(d.messages));
    let recovery = recovery(world.pool, &outages, &expected).await?;
    let instance_starts = instances.iter().map(|i| (i.name.clone(), i.starts)).collect();
    futures::future::join_all(instances.iter_mut().map(|i| i.stop(Duration::from_secs(10)))).await;

    let mut report = ChaosReport {
        seed: args.seed,
        command: args.command(),
        tenants: world.tenants.len(),
        instances: args.instances,
        minutes: args.minutes,
        wall_s: started.elapsed().as_secs_f64(),
        mutations,
        faults_total: counts.total(),
        faults: counts,
        recovery,
        objects_lost: divergence.objects_lost,
        objects_extra: divergence.objects_extra,
        objects_differing: divergence.objects_differing,
        memberships_differing: divergence.memberships_differing,
        divergence_examples: divergence.examples,
        duplicate_history_rows: history.duplicate_history_rows,
        runs: history,
        stuck_runs: stuck.len() as u64,
        stuck,
        dead_letters,
        final_sync_s: final_sync.map(|at| seconds_between(faults_end, at)),
        instance_starts,
        unexpected_exits,
        log_dir: String::new(),
        database: String::new(),
        failed_checks: Vec::new(),
        clean: false,
    };
    report.failed_checks = failed_checks(&report);
    report.clean = report.failed_checks.is_empty();
    Ok(report)
}

/// The checks the run must pass, by name.
fn failed_checks(report: &ChaosReport) -> Vec<String> {
    let mut failed = Vec::new();
    let mut check = |ok: bool, name: &str| {
        if !ok {
            failed.push(name.to_owned());
        }
    };
    check(report.final_sync_s.is_some(), "final_sync: a (tenant, class) never ran successfully after the faults");
    check(report.objects_lost == 0, "objects_lost");
    check(report.objects_extra == 0, "objects_extra");
    check(report.objects_differing == 0, "objects_differing");
    check(report.memberships_differing == 0, "memberships_differing");
    check(report.duplicate_history_rows == 0, "duplicate_history_rows");
    check(report.runs.inconsistent_rows == 0, "inconsistent_history_rows");
    check(report.runs.overlapping_runs == 0, "overlapping_runs");
    check(report.stuck_runs == 0, "stuck_runs");
    check(report.dead_letters == 0, "dead_letters");
    check(report.unexpected_exits.is_empty(), "unexpected_exits");
    let missing = report.faults.missing();
    check(missing.is_empty(), &format!("fault kinds never injected: {}", missing.join(", ")));
    failed
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds().max(0) as f64 / 1000.0
}

/// A duration of `mean` seconds, ± 50 %.
fn jittered(rng: &mut StdRng, mean: f64) -> Duration {
    Duration::from_secs_f64((mean * rng.random_range(0.5..1.5)).max(0.01))
}

/// Injects Graph faults until `deadline`, each undone after its time; all undone at the end.
async fn graph_faults(world: &World<'_>, deadline: tokio::time::Instant, counts: &mut FaultCounts) {
    let mut rng = StdRng::seed_from_u64(world.args.seed ^ 0x6772_6170_6866);
    let state = world.sim.state();
    let sim_tenants: Vec<String> = world.tenants.iter().map(|t| t.sim_tenant.clone()).collect();
    let mut pass = faults::first_pass(&mut rng, Fault::GRAPH);
    let mut active: Vec<Active> = Vec::new();
    let undo = |active: Active, counts: &mut FaultCounts| {
        if let Some(fired) = faults::undo_graph(state, &active.undo) {
            counts.fired(active.fault, fired);
        }
    };
    loop {
        let now = tokio::time::Instant::now();
        let (due, kept): (Vec<Active>, Vec<Active>) = active.into_iter().partition(|a| a.until <= now);
        active = kept;
        for done in due {
            undo(done, counts);
        }
        if now >= deadline {
            break;
        }
        let fault = faults::next_graph_fault(&mut rng, &mut pass, &active);
        match faults::inject_graph(state, &mut rng, fault, &sim_tenants, now) {
            Ok(injected) => {
                for one in injected {
                    counts.injected(one.fault);
                    active.push(one);
                }
            }
            Err(error) => tracing::warn!(fault = fault.name(), %error, "chaos: cannot inject a Graph fault"),
        }
        let next = now + jittered(&mut rng, world.args.graph_fault_every_secs);
        tokio::time::sleep_until(next.min(deadline)).await;
    }
    for left in active {
        undo(left, counts);
    }
}

/// One outage at a time until `deadline`; every peer restored and every instance running at the end.
async fn service_outages(
    world: &World<'_>,
    instances: &mut [Instance],
    deadline: tokio::time::Instant,
    unexpected_exits: &mut Vec<String>,
) -> Vec<Outage> {
    let mut rng = StdRng::seed_from_u64(world.args.seed ^ 0x6f75_7461_6765);
    let mut pass = faults::first_pass(&mut rng, Fault::OUTAGES);
    let mut outages = Vec::new();
    // The first outage comes after a short calm, so the fleet has started its first rounds.
    let mut next = tokio::time::Instant::now() + jittered(&mut rng, world.args.outage_every_secs.min(10.0));
    loop {
        watch_until(instances, next.min(deadline), unexpected_exits).await;
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        let fault =
            if pass.is_empty() { Fault::OUTAGES[rng.random_range(0..Fault::OUTAGES.len())] } else { pass.remove(0) };
        // An outage lasts a few seconds; a stall longer. None runs past the deadline by much.
        let lasting = |rng: &mut StdRng, low: u64, high: u64| {
            let wanted = Duration::from_millis(rng.random_range(low..=high));
            wanted.min(deadline.saturating_duration_since(tokio::time::Instant::now()) + Duration::from_secs(1))
        };
        let started = Utc::now();
        let mut victim = None;
        match fault {
            Fault::Kill9 => {
                let index = rng.random_range(0..instances.len());
                let instance = &mut instances[index];
                victim = Some(instance.name.clone());
                instance.kill9().await;
                let down = lasting(&mut rng, 3_000, 15_000);
                watch_until(instances, tokio::time::Instant::now() + down, unexpected_exits).await;
                if let Err(error) = instances[index].restart() {
                    unexpected_exits
                        .push(format!("{}: cannot restart after kill -9: {error:#}", instances[index].name));
                }
            }
            Fault::RabbitmqRestart => {
                world.mq.cut();
                let down = lasting(&mut rng, 2_000, 8_000);
                watch_until(instances, tokio::time::Instant::now() + down, unexpected_exits).await;
                world.mq.restore();
            }
            Fault::PostgresRestart => {
                world.pg.cut();
                if let Err(error) = audit::terminate_sessions(world.pool).await {
                    tracing::warn!(error = format!("{error:#}"), "chaos: cannot terminate the database's sessions");
                }
                let down = lasting(&mut rng, 2_000, 8_000);
                watch_until(instances, tokio::time::Instant::now() + down, unexpected_exits).await;
                world.pg.restore();
            }
            Fault::PostgresStall => {
                world.pg.blackhole();
                let down = lasting(&mut rng, 5_000, 20_000);
                watch_until(instances, tokio::time::Instant::now() + down, unexpected_exits).await;
                world.pg.restore();
            }
            other => tracing::warn!(fault = other.name(), "chaos: not an outage"),
        }
        outages.push(Outage { fault, started, ended: Utc::now(), instance: victim });
        tracing::info!(fault = fault.name(), outages = outages.len(), "chaos: outage over");
        next = tokio::time::Instant::now() + jittered(&mut rng, world.args.outage_every_secs);
    }
    outages
}

/// Sleeps until `until`, checking every second that no instance exited on its own (one that did is
/// reported and started again).
async fn watch_until(instances: &mut [Instance], until: tokio::time::Instant, exits: &mut Vec<String>) {
    loop {
        for instance in instances.iter_mut() {
            if let Err(error) = instance.ensure_running() {
                let tail = fleet::log_tail(&instance.log_path(), 20);
                exits.push(format!("{error:#}\n{tail}"));
                instance.forget();
                if let Err(error) = instance.restart() {
                    exits.push(format!("{}: cannot restart: {error:#}", instance.name));
                }
            }
        }
        let now = tokio::time::Instant::now();
        if now >= until {
            return;
        }
        tokio::time::sleep((until - now).min(Duration::from_secs(1))).await;
    }
}

/// Random mutation batches on random tenants until `deadline`.
async fn mutate(world: &World<'_>, deadline: tokio::time::Instant) -> Mutations {
    let mut rng = StdRng::seed_from_u64(world.args.seed ^ 0x6d75_7461_7465);
    let mut mutations = Mutations::default();
    let state = world.sim.state();
    while tokio::time::Instant::now() < deadline {
        let tenant = &world.tenants[rng.random_range(0..world.tenants.len())];
        let batch = graph_sim::mutate::MutationBatch { seed: rng.random(), count: rng.random_range(1..=10) };
        match state.random_mutations(&tenant.sim_tenant, &batch) {
            Ok(summary) => mutations.add(&summary),
            Err(error) => tracing::warn!(%error, "chaos: a mutation batch failed"),
        }
        let next = tokio::time::Instant::now() + jittered(&mut rng, world.args.mutate_every_secs);
        tokio::time::sleep_until(next.min(deadline)).await;
    }
    mutations
}

/// Publishes a manual delta job for every (tenant, class) and waits until each ran successfully in a
/// run started after `since` (the schedule's rounds count too); jobs are published again every 30 s
/// for pairs still waiting, since a job that arrives while its pair runs is coalesced away.
async fn final_sync(
    world: &World<'_>,
    broker: &Broker,
    expected: &BTreeSet<(i64, String)>,
    since: DateTime<Utc>,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    let timeout = Duration::from_secs(world.args.final_sync_timeout_secs);
    let started = Instant::now();
    let mut published: Option<Instant> = None;
    loop {
        let done = audit::succeeded_since(world.pool, since).await?;
        let waiting: Vec<&(i64, String)> = expected.iter().filter(|p| !done.contains_key(*p)).collect();
        if waiting.is_empty() {
            return audit::recovered_at(world.pool, since, expected).await;
        }
        if started.elapsed() > timeout {
            tracing::warn!(waiting = waiting.len(), "chaos: the final sync did not finish");
            return Ok(None);
        }
        if published.is_none_or(|at| at.elapsed() >= Duration::from_secs(30)) {
            for (tenant_id, class) in &waiting {
                let Some(tenant) = world.tenants.iter().find(|t| t.tenant_id == *tenant_id) else { continue };
                let class: ObjectClass = class.parse().map_err(|e| anyhow::anyhow!("a stored class: {e}"))?;
                let job = SyncJob::new(tenant.entra_tenant_id, class, SyncMode::Delta, Trigger::Manual);
                if let Err(error) = broker.publish(&job).await {
                    tracing::warn!(%error, "chaos: cannot publish a final job");
                }
            }
            published = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs started before `before` still `running`, after giving the orphan sweep a minute.
async fn settled_runs(pool: &Pool, before: DateTime<Utc>) -> anyhow::Result<Vec<audit::StuckRun>> {
    let started = Instant::now();
    loop {
        let stuck = audit::stuck_runs(pool, before).await?;
        if stuck.is_empty() || started.elapsed() > Duration::from_secs(60) {
            return Ok(stuck);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Recovery figures per outage kind.
async fn recovery(
    pool: &Pool,
    outages: &[Outage],
    expected: &BTreeSet<(i64, String)>,
) -> anyhow::Result<BTreeMap<&'static str, Recovery>> {
    let mut seconds: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut median_pairs: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut figures: BTreeMap<&'static str, Recovery> =
        Fault::OUTAGES.iter().map(|f| (f.name(), Recovery::default())).collect();
    for outage in outages {
        let kind = outage.fault.name();
        let entry = figures.entry(kind).or_default();
        entry.outages += 1;
        let done = audit::succeeded_since(pool, outage.ended).await?;
        let mut pairs: Vec<f64> =
            expected.iter().filter_map(|pair| done.get(pair).map(|at| seconds_between(outage.ended, *at))).collect();
        if pairs.len() == expected.len() {
            pairs.sort_by(f64::total_cmp);
            seconds.entry(kind).or_default().push(pairs.last().copied().unwrap_or(0.0));
            median_pairs.entry(kind).or_default().push(median(&pairs).unwrap_or(0.0));
        } else {
            entry.unrecovered += 1;
        }
    }
    for (kind, mut values) in seconds {
        values.sort_by(f64::total_cmp);
        let entry = figures.entry(kind).or_default();
        entry.median_s = median(&values);
        entry.max_s = values.last().copied();
    }
    for (kind, mut values) in median_pairs {
        values.sort_by(f64::total_cmp);
        figures.entry(kind).or_default().median_pair_s = median(&values);
    }
    Ok(figures)
}

/// The middle value of sorted `values` (the upper one of an even count).
fn median(values: &[f64]) -> Option<f64> {
    values.get(values.len() / 2).copied()
}
