//! `entrasync bench-events --rounds`: does a stopped consumer slow sync rounds? (issue 17). In one
//! invocation the same rounds — a full round of `--users` users (first round `objects`: one `created`
//! event per user), then the emulator's seeded mutation batch and a delta round — run under three
//! conditions, each with a fresh database and emulator, in a rotating order (`--repeats` times):
//!
//! - `off`: change events off (the triggers find no tenant with events on);
//! - `drained`: events on, the relay (a child process, [`super::events_child`]) publishing to a bound
//!   queue a consumer drains;
//! - `stopped`: events on, the relay publishing to a bound durable queue nobody consumes, which already
//!   holds `--backlog` events ([`super::events_backlog`]) before the first such run.
//!
//! Per round: wall time from the request to the final history row (rounds never wait for the relay),
//! how long the outbox took to empty after it, and CPU seconds per part ([`super::events_cpu`]).
//!
//! ```sh
//! entrasync bench-events --rounds --users 100000 --backlog 3600000 --repeats 3
//! ```

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

use super::database::ScratchDatabase;
use super::emulator::{ChildEmulator, EmulatorSpec};
use super::events_cpu::{Pids, Sample, Split};
use super::events_queues::Queues;
use super::events_rounds_report::{Report, RoundFigures, RunFigures};
use crate::config::{AmqpSettings, Settings};
use crate::graph::{AppCredentials, GraphClient, GraphClientOptions, GraphTenant, RequestPriority, TenantSize};
use crate::model::{Cloud, ObjectClass, SyncMode, Trigger};
use crate::queue::Broker;
use crate::store::audit::Actor;
use crate::store::tenants::{self, FirstRound, NewTenant, TenantChanges};
use crate::store::{bench::events::events_written, outbox_relay, Pool};
use crate::sync::{run_round, DeletionGuard, PassThrough, PgRunRecorder, RoundDeps, RoundRequest};

/// What the rounds run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    Off,
    Drained,
    Stopped,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Off => "off",
            Condition::Drained => "drained",
            Condition::Stopped => "stopped",
        }
    }
}

/// What one invocation asks for.
#[derive(Debug, Clone)]
pub struct Plan {
    pub users: usize,
    pub delta_mutations: usize,
    pub repeats: usize,
    pub backlog_events: u64,
    pub per_message: usize,
    pub quorum: bool,
    pub page_size: usize,
    /// `sync.batch_objects` of the configuration.
    pub batch_objects: usize,
    pub exe: std::path::PathBuf,
}

/// The outbox must be empty this long after a round (the relay's pace, not the round's).
const DRAIN_DEADLINE: Duration = Duration::from_secs(600);
const NO_GUARD: DeletionGuard = DeletionGuard { max_deletions: u64::MAX, max_percent: 100 };

pub async fn run(plan: Plan, settings: Settings) -> anyhow::Result<Report> {
    anyhow::ensure!(plan.repeats > 0 && plan.users > 0, "--repeats and --users must be positive");
    let amqp = AmqpSettings {
        prefix: format!("benchevr{}", &Uuid::new_v4().simple().to_string()[..8]),
        ..settings.amqp.clone()
    };
    let broker = Broker::start(&amqp);
    let outcome = measure(&plan, &settings, &amqp, &broker).await;
    if let Err(error) = broker.delete_topology(Duration::from_secs(10)).await {
        tracing::warn!(%error, "could not delete the benchmark's exchanges");
    }
    broker.close().await;
    outcome
}

async fn measure(plan: &Plan, settings: &Settings, amqp: &AmqpSettings, broker: &Broker) -> anyhow::Result<Report> {
    let queues = Queues::declare(broker, plan.quorum).await?;
    let outcome = alternate(plan, settings, amqp, broker, &queues).await;
    queues.delete().await;
    outcome
}

async fn alternate(
    plan: &Plan,
    settings: &Settings,
    amqp: &AmqpSettings,
    broker: &Broker,
    queues: &Queues,
) -> anyhow::Result<Report> {
    let order = [Condition::Off, Condition::Drained, Condition::Stopped];
    let mut runs = Vec::new();
    let mut backlog = None;
    for repeat in 0..plan.repeats {
        for step in 0..order.len() {
            let condition = order[(repeat + step) % order.len()];
            if condition == Condition::Stopped && backlog.is_none() {
                let connection = broker.connection(Duration::from_secs(20)).await?;
                let published =
                    super::events_backlog::publish(&connection, &queues.stopped, plan.backlog_events, plan.per_message)
                        .await
                        .context("publishing the stopped consumer's backlog")?;
                tracing::info!(?published, "backlog in the stopped queue");
                backlog = Some(published);
            }
            tracing::info!(repeat = repeat + 1, condition = condition.as_str(), "rounds");
            let figures = once(plan, settings, amqp, queues, condition)
                .await
                .with_context(|| format!("repeat {}, condition {}", repeat + 1, condition.as_str()))?;
            runs.push(figures);
        }
    }
    let rabbitmq_peak_rss = super::events::beam_pid().and_then(super::rss::peak_of);
    Ok(Report::of(plan, runs, backlog, rabbitmq_peak_rss))
}

/// One condition's rounds on a fresh database and emulator.
async fn once(
    plan: &Plan,
    settings: &Settings,
    amqp: &AmqpSettings,
    queues: &Queues,
    condition: Condition,
) -> anyhow::Result<RunFigures> {
    let db = ScratchDatabase::create(&settings.database).await?;
    let spec = EmulatorSpec { users: plan.users, seed: 42, page_size: plan.page_size, workers: 2 };
    let outcome = match ChildEmulator::start(&plan.exe, &spec).await {
        Ok(emulator) => {
            let outcome = with_relay(plan, &db, amqp, queues, &emulator, condition).await;
            emulator.stop().await;
            outcome
        }
        Err(error) => Err(error),
    };
    db.drop_or_warn().await;
    outcome
}

async fn with_relay(
    plan: &Plan,
    db: &ScratchDatabase,
    amqp: &AmqpSettings,
    queues: &Queues,
    emulator: &ChildEmulator,
    condition: Condition,
) -> anyhow::Result<RunFigures> {
    let queue = match condition {
        Condition::Off => None,
        Condition::Drained => Some(&queues.drained),
        Condition::Stopped => Some(&queues.stopped),
    };
    let stopped_before = queues.depth(&queues.stopped).await?;
    let mut relay = None;
    if let Some(queue) = queue {
        queues.bind(queue, true).await?;
        let consume = (condition == Condition::Drained).then_some(queue.as_str());
        relay = Some(start_relay(plan, db, amqp, consume).await?);
    }
    let pids = Pids {
        emulator: emulator.pid(),
        relay: relay.as_ref().and_then(Child::id),
        rabbitmq: super::events::beam_pid(),
    };
    let outcome = rounds(plan, &db.pool, emulator, condition, pids).await;
    if let Some(mut child) = relay {
        // Closing its stdin stops it after it settled what is in flight.
        drop(child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(15), child.wait()).await.is_err() {
            tracing::warn!("the relay child did not stop; killing it");
            let _gone = child.kill().await;
        }
    }
    if let Some(queue) = queue {
        queues.bind(queue, false).await?;
    }
    let mut figures = outcome?;
    figures.stopped_queue_before = stopped_before;
    figures.stopped_queue_after = queues.depth(&queues.stopped).await?;
    Ok(figures)
}

/// `exe bench-events --relay-child` against the scratch database and the benchmark's prefix.
async fn start_relay(
    plan: &Plan,
    db: &ScratchDatabase,
    amqp: &AmqpSettings,
    consume: Option<&str>,
) -> anyhow::Result<Child> {
    let mut command = Command::new(&plan.exe);
    command
        .args(["bench-events", "--relay-child", "--per-message", &plan.per_message.to_string()])
        .env("ENTRASYNC_DATABASE_URL", db.settings.url.expose_secret())
        .env("ENTRASYNC_AMQP_URL", amqp.url.expose_secret())
        .env("ENTRASYNC_AMQP_PREFIX", &amqp.prefix)
        .env("ENTRASYNC_LOG_FILTER", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(queue) = consume {
        command.args(["--consume-queue", queue]);
    }
    let mut child = command.spawn().context("starting the relay child")?;
    let stdout = child.stdout.take().context("the relay child's stdout")?;
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(60), BufReader::new(stdout).read_line(&mut line))
        .await
        .context("the relay child did not get ready within 60 s")??;
    if line.trim() != "ready" {
        bail!("the relay child did not start: {line:?}");
    }
    Ok(child)
}

async fn rounds(
    plan: &Plan,
    pool: &Pool,
    emulator: &ChildEmulator,
    condition: Condition,
    pids: Pids,
) -> anyhow::Result<RunFigures> {
    let app = emulator.register_app().await?;
    let cloud = Cloud::Custom { login_url: emulator.base_url.clone(), graph_url: emulator.base_url.clone() };
    let actor = Actor::new("bench");
    let new = NewTenant {
        name: "bench".to_owned(),
        entra_tenant_id: emulator.tenant_id,
        cloud: cloud.clone(),
        credential_profile_id: None,
        enabled: true,
        full_scan_next_run: true,
    };
    let stored = tenants::create(pool, &new, &actor).await.context("registering the benchmark tenant")?;
    if condition != Condition::Off {
        let on = TenantChanges {
            change_events: Some(true),
            change_events_first_round: Some(FirstRound::Objects),
            ..Default::default()
        };
        tenants::update(pool, stored.id, &on, &actor).await.context("switching events on")?;
    }
    let graph_tenant = GraphTenant {
        cloud,
        tenant_id: emulator.tenant_id.to_string(),
        credentials: Arc::new(AppCredentials::with_secret(app.app_id, SecretString::from(app.secret))),
        size: TenantSize::from_user_count(plan.users as u64),
    };
    let graph = GraphClient::new(GraphClientOptions::default()).context("the Graph client")?;
    let recorder = PgRunRecorder::new(pool.clone());
    let deps = RoundDeps { pool, graph: &graph, policy: Arc::new(PassThrough), recorder: &recorder };
    let request = |force_full| RoundRequest {
        tenant_id: stored.id,
        graph_tenant: graph_tenant.clone(),
        class: ObjectClass::User,
        trigger: Trigger::Manual,
        force_full,
        guard: NO_GUARD,
        priority: RequestPriority::Normal,
        instance_id: Some("bench".to_owned()),
        batch_objects: plan.batch_objects,
        job_id: None,
    };
    let full = timed(&deps, &request(true), SyncMode::Full, pids).await.context("the full round")?;
    emulator.mutate(0x5eed, plan.delta_mutations).await?;
    let delta = timed(&deps, &request(false), SyncMode::Delta, pids).await.context("the delta round")?;
    Ok(RunFigures { condition, full, delta, stopped_queue_before: 0, stopped_queue_after: 0 })
}

/// One round from its request to its final history row, then the wait until the outbox is empty.
async fn timed(
    deps: &RoundDeps<'_, PgRunRecorder>,
    request: &RoundRequest,
    mode: SyncMode,
    pids: Pids,
) -> anyhow::Result<RoundFigures> {
    let events_before = events_written(deps.pool).await?;
    let sample = Sample::take(deps.pool, pids).await;
    let started = Instant::now();
    let report = run_round(deps, request).await?;
    let wall = started.elapsed();
    let cpu: Split = sample.since(deps.pool).await;
    if report.mode != mode {
        bail!("expected a {mode} round, the round ran {} ({:?})", report.mode, report.reason);
    }
    let left = outbox_relay::backlog(deps.pool).await?.rows;
    while outbox_relay::backlog(deps.pool).await?.rows > 0 {
        if started.elapsed() > DRAIN_DEADLINE {
            bail!("the outbox did not empty within {DRAIN_DEADLINE:?} of the round's start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = started.elapsed();
    let events = events_written(deps.pool).await? - events_before;
    tracing::info!(%mode, wall_s = wall.as_secs_f64(), events, left, ?cpu, "round");
    Ok(RoundFigures {
        wall_s: wall.as_secs_f64(),
        outbox_empty_s: drained.as_secs_f64(),
        changes: report.counts.total,
        events,
        outbox_left: left,
        cpu,
    })
}
