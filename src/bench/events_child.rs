//! The relay of `entrasync bench-events --rounds` in a process of its own (a hidden `--relay-child`
//! mode), so that the rounds' process, the relay's process, their Postgres backends and RabbitMQ each
//! show their own CPU seconds. It runs [`crate::actors::relay::run`] against the configured database
//! and `amqp.prefix`, and with `--consume-queue` also drains that queue (no acks: a consumer that keeps
//! up). It prints `ready` once connected and stops, settling what is in flight, when its stdin closes.

use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::actors::relay::{self, RelayDeps, Tuning};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::queue::Broker;
use crate::store;

/// The application name of the relay's own session (`store::outbox_relay`): its backend's CPU is the
/// relay's, not the rounds'.
pub const RELAY_SESSION: &str = "entrasync events relay";

pub async fn run(settings: Settings, per_message: usize, consume_queue: Option<String>) -> anyhow::Result<String> {
    let pool = store::pool(&settings.database).context("the relay child's pool")?;
    let broker = Broker::start(&settings.amqp);
    let connection = broker.connection(Duration::from_secs(20)).await.context("connecting to RabbitMQ")?;
    let stop = CancellationToken::new();
    let consumer = match consume_queue {
        Some(queue) => {
            let channel = connection.create_channel().await?;
            let options = BasicConsumeOptions { no_ack: true, ..Default::default() };
            let mut deliveries = channel
                .basic_consume(queue.as_str().into(), "bench-consumer".into(), options, FieldTable::default())
                .await?;
            Some(tokio::spawn(async move {
                let mut received = 0_u64;
                while let Some(delivery) = deliveries.next().await {
                    if delivery.is_err() {
                        break;
                    }
                    received += 1;
                }
                (channel, received)
            }))
        }
        None => None,
    };
    let deps = RelayDeps {
        database: settings.database.clone(),
        pool,
        broker: broker.clone(),
        metrics: Metrics::new().events,
        exchange: broker.topology().changes_exchange(),
        // The backlog figures once (at start): the rounds' process measures the outbox itself, and a
        // query every 10 s would be CPU of neither side.
        tuning: Tuning { per_message, stats_every: Duration::from_secs(86_400), ..Tuning::default() },
    };
    let relay = tokio::spawn(relay::run(deps, stop.clone()));
    // The parent's signal on the pipe it reads (a protocol, not a log line).
    let mut stdout = tokio::io::stdout();
    stdout.write_all(b"ready\n").await.context("telling the parent")?;
    stdout.flush().await.context("telling the parent")?;
    // Until the parent closes stdin (or goes away).
    let mut sink = [0_u8; 64];
    while tokio::io::stdin().read(&mut sink).await.is_ok_and(|n| n > 0) {}
    stop.cancel();
    if let Err(error) = relay.await {
        tracing::warn!(%error, "the relay task ended badly");
    }
    if let Some(consumer) = consumer {
        consumer.abort();
    }
    broker.close().await;
    Ok(String::new())
}
