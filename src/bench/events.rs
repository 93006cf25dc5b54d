//! `entrasync bench-events`: the change-event relay's throughput (issue 17: ≥ 50,000 events/s with flat
//! memory). A scratch database's outbox is filled with `--events` user `updated` events of about 600
//! bytes (over `--tenants` tenants), then the relay ([`crate::actors::relay::run`], in this process)
//! publishes them to the `{prefix}.changes` exchange of a scratch prefix, where a durable queue bound
//! with `#` takes every event, until the outbox is empty. Reported: events/s, this process's peak RSS
//! over the relay (and before it), and CPU seconds of this process, the Postgres backends of the scratch
//! database and the RabbitMQ server (`beam.smp`) over the relay. Run it twice with different `--events`
//! to see the memory stay flat. `--rounds` measures something else: sync rounds with events off, with a
//! consumer draining the queue and with a stopped consumer holding a backlog ([`super::events_rounds`]).
//!
//! ```sh
//! entrasync bench-events --events 500000
//! entrasync bench-events --rounds
//! ```

use std::time::{Duration, Instant};

use anyhow::Context;
use lapin::options::{QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::cpu::CpuSample;
use super::database::ScratchDatabase;
use super::rss;
use crate::actors::relay::{self, RelayDeps, Tuning};
use crate::config::{AmqpSettings, Settings};
use crate::metrics::Metrics;
use crate::queue::Broker;
use crate::store::outbox_relay;

#[derive(Debug, Clone, clap::Args)]
pub struct EventsBenchArgs {
    /// Events in the outbox before the relay starts.
    #[arg(long, default_value_t = 500_000)]
    pub events: i64,
    /// Tenants the events are spread over (their routing keys differ).
    #[arg(long, default_value_t = 8)]
    pub tenants: i64,
    /// Rows the relay reads and publishes at a time.
    #[arg(long, default_value_t = Tuning::default().batch)]
    pub batch: i64,
    /// Batches waiting for their confirms at most.
    #[arg(long, default_value_t = Tuning::default().in_flight_batches)]
    pub in_flight: usize,
    /// Events per AMQP message: 1, or envelopes of up to this many (default: `amqp.events_per_message`).
    #[arg(long)]
    pub per_message: Option<usize>,
    /// The bound queue is a quorum queue (as the job queues are) instead of a classic durable one.
    #[arg(long)]
    pub quorum: bool,
    /// Print one JSON object instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
    /// Instead of the relay's throughput: sync rounds with events off, with a consumer draining the
    /// queue, and with a stopped consumer whose queue holds `--backlog` events (src/bench/events_rounds.rs).
    #[arg(long)]
    pub rounds: bool,
    /// `--rounds`: users in the generated tenant.
    #[arg(long, default_value_t = 100_000)]
    pub users: usize,
    /// `--rounds`: size of the emulator's mutation batch before the delta round (28,000: ~10,000 user changes).
    #[arg(long, default_value_t = 28_000)]
    pub delta_mutations: usize,
    /// `--rounds`: how often each condition runs (in a rotating order).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// `--rounds`: events waiting in the stopped consumer's queue before its first run (default: an hour
    /// at 1,000 events/s).
    #[arg(long, default_value_t = 3_600_000)]
    pub backlog: u64,
    /// `--rounds`: objects per delta page.
    #[arg(long, default_value_t = 200)]
    pub page_size: usize,
    /// `--rounds`: the binary that runs `graph-sim` and the relay child; this executable by default.
    #[arg(long)]
    pub emulator_bin: Option<std::path::PathBuf>,
    /// Internal: run only the relay (and `--consume-queue`'s consumer) until stdin closes.
    #[arg(long, hide = true)]
    pub relay_child: bool,
    #[arg(long, hide = true)]
    pub consume_queue: Option<String>,
}

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EventsFigures {
    pub events: i64,
    pub fill_s: f64,
    pub relay_s: f64,
    pub events_per_s: f64,
    pub queued: u32,
    /// `change_outbox` on disk after the fill (with its index and TOAST), per event.
    pub outbox_bytes_per_event: f64,
    pub rss_before_mib: f64,
    pub rss_peak_mib: f64,
    pub relay_cpu_s: f64,
    pub postgres_cpu_s: f64,
    pub rabbitmq_cpu_s: f64,
    pub batch: i64,
    pub in_flight: usize,
    pub per_message: usize,
    pub queue_type: &'static str,
}

pub async fn run(args: EventsBenchArgs, settings: Settings) -> anyhow::Result<String> {
    let per_message = args.per_message.unwrap_or(usize::from(settings.amqp.events_per_message)).max(1);
    if args.relay_child {
        return super::events_child::run(settings, per_message, args.consume_queue).await;
    }
    if args.rounds {
        let exe = match &args.emulator_bin {
            Some(path) => path.clone(),
            None => std::env::current_exe().context("locating this executable")?,
        };
        let plan = super::events_rounds::Plan {
            users: args.users,
            delta_mutations: args.delta_mutations,
            repeats: args.repeats,
            backlog_events: args.backlog,
            per_message,
            quorum: args.quorum,
            page_size: args.page_size,
            batch_objects: settings.sync.batch_objects,
            exe,
        };
        let report = super::events_rounds::run(plan, settings).await?;
        return Ok(if args.json {
            serde_json::to_string(&report).context("the JSON report")? + "\n"
        } else {
            report.markdown()
        });
    }
    let args = EventsBenchArgs { per_message: Some(per_message), ..args };
    anyhow::ensure!(
        args.events > 0 && args.batch > 0 && args.in_flight > 0,
        "--events, --batch and --in-flight must be positive"
    );
    let db = ScratchDatabase::create(&settings.database).await?;
    let amqp = AmqpSettings {
        prefix: format!("benchev{}", &Uuid::new_v4().simple().to_string()[..8]),
        ..settings.amqp.clone()
    };
    let broker = Broker::start(&amqp);
    let outcome = measure(&args, &db, &broker).await;
    if let Err(error) = broker.delete_topology(Duration::from_secs(10)).await {
        tracing::warn!(%error, "could not delete the benchmark's exchanges");
    }
    broker.close().await;
    db.drop_or_warn().await;
    let figures = outcome?;
    Ok(if args.json { serde_json::to_string(&figures).context("the JSON summary")? + "\n" } else { markdown(&figures) })
}

async fn measure(args: &EventsBenchArgs, db: &ScratchDatabase, broker: &Broker) -> anyhow::Result<EventsFigures> {
    let exchange = broker.topology().changes_exchange();
    let queue = format!("{}.bench.changes", broker.topology().prefix);
    let connection = broker.connection(Duration::from_secs(20)).await.context("connecting to RabbitMQ")?;
    let channel = connection.create_channel().await?;
    let mut queue_args = FieldTable::default();
    if args.quorum {
        queue_args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
    }
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    channel.queue_declare(queue.as_str().into(), durable, queue_args).await.context("declaring the bench queue")?;
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let started = Instant::now();
    let filled = outbox_relay::fill_for_bench(&db.pool, args.events, args.tenants).await?;
    let fill_s = started.elapsed().as_secs_f64();
    tracing::info!(events = filled, fill_s, "outbox filled");
    let backlog = outbox_relay::backlog(&db.pool).await?;

    let rabbitmq = beam_pid();
    if rabbitmq.is_none() {
        tracing::warn!("no beam.smp process found: no RabbitMQ CPU figure");
    }
    let rss_before = rss::own_current().unwrap_or(0);
    rss::reset_peak();
    let cpu = CpuSample::take(&db.pool, rabbitmq).await;
    let metrics = Metrics::new().events;
    let tuning = Tuning {
        batch: args.batch,
        in_flight_batches: args.in_flight,
        per_message: args.per_message.unwrap_or(1),
        ..Tuning::default()
    };
    let deps = RelayDeps {
        database: db.settings.clone(),
        pool: db.pool.clone(),
        broker: broker.clone(),
        metrics: metrics.clone(),
        exchange,
        tuning,
    };
    let stop = CancellationToken::new();
    let started = Instant::now();
    let relay = tokio::spawn(relay::run(deps, stop.clone()));
    let target = filled;
    let deadline = started + Duration::from_secs(1800);
    while metrics.relayed_total() < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let relay_s = started.elapsed().as_secs_f64();
    let split = cpu.since(&db.pool).await;
    let rss_peak = rss::own_peak().unwrap_or(0);
    stop.cancel();
    if let Err(error) = relay.await {
        tracing::warn!(%error, "the relay task ended badly");
    }
    anyhow::ensure!(
        metrics.relayed_total() >= target,
        "the relay published {} of {target} events in 30 minutes",
        metrics.relayed_total()
    );

    let queued = channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?
        .message_count();
    channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await?;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    Ok(EventsFigures {
        events: args.events,
        fill_s,
        relay_s,
        events_per_s: filled as f64 / relay_s,
        queued,
        outbox_bytes_per_event: backlog.bytes as f64 / filled.max(1) as f64,
        rss_before_mib: mib(rss_before),
        rss_peak_mib: mib(rss_peak),
        relay_cpu_s: split.syncing_s,
        postgres_cpu_s: split.postgres_s,
        rabbitmq_cpu_s: split.emulator_s,
        batch: args.batch,
        in_flight: args.in_flight,
        per_message: args.per_message.unwrap_or(1),
        queue_type: if args.quorum { "quorum" } else { "classic" },
    })
}

/// The RabbitMQ server's process on this machine (`beam.smp`), if there is one.
pub(super) fn beam_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        (comm.trim() == "beam.smp").then_some(pid)
    })
}

fn markdown(f: &EventsFigures) -> String {
    format!(
        "| events | batch × in flight | events/message | queue | relay s | events/s | RSS before → peak (MiB) | CPU-s relay / Postgres / RabbitMQ | outbox bytes/event |\n\
         |---:|---|---:|---|---:|---:|---|---|---:|\n\
         | {} | {} × {} | {} | {} ({} queued) | {:.2} | {:.0} | {:.1} → {:.1} | {:.2} / {:.2} / {:.2} | {:.0} |\n",
        f.events,
        f.batch,
        f.in_flight,
        f.per_message,
        f.queue_type,
        f.queued,
        f.relay_s,
        f.events_per_s,
        f.rss_before_mib,
        f.rss_peak_mib,
        f.relay_cpu_s,
        f.postgres_cpu_s,
        f.rabbitmq_cpu_s,
        f.outbox_bytes_per_event
    )
}
