//! The consumer queues of `entrasync bench-events --rounds`: `{prefix}.bench.drained` (a consumer
//! drains it) and `{prefix}.bench.stopped` (nobody consumes it), durable, bound to every event (`#`)
//! only while their condition runs.

use std::time::Duration;

use anyhow::Context;
use lapin::options::{QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::Channel;

use crate::queue::Broker;

/// The two consumer queues: one drained, one stopped.
pub struct Queues {
    channel: Channel,
    exchange: String,
    pub drained: String,
    pub stopped: String,
}

impl Queues {
    pub async fn declare(broker: &Broker, quorum: bool) -> anyhow::Result<Queues> {
        let connection = broker.connection(Duration::from_secs(20)).await.context("connecting to RabbitMQ")?;
        let channel = connection.create_channel().await?;
        let prefix = &broker.topology().prefix;
        let queues = Queues {
            channel,
            exchange: broker.topology().changes_exchange(),
            drained: format!("{prefix}.bench.drained"),
            stopped: format!("{prefix}.bench.stopped"),
        };
        for queue in [&queues.drained, &queues.stopped] {
            let mut arguments = FieldTable::default();
            if quorum {
                arguments.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
            }
            let durable = QueueDeclareOptions { durable: true, ..Default::default() };
            queues.channel.queue_declare(queue.as_str().into(), durable, arguments).await?;
        }
        Ok(queues)
    }

    /// Binds `queue` to every event (`#`), or unbinds it.
    pub async fn bind(&self, queue: &str, bound: bool) -> anyhow::Result<()> {
        let (queue, exchange) = (queue.into(), self.exchange.as_str().into());
        if bound {
            self.channel
                .queue_bind(queue, exchange, "#".into(), QueueBindOptions::default(), FieldTable::default())
                .await?;
        } else {
            self.channel.queue_unbind(queue, exchange, "#".into(), FieldTable::default()).await?;
        }
        Ok(())
    }

    pub async fn depth(&self, queue: &str) -> anyhow::Result<u32> {
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        Ok(self.channel.queue_declare(queue.into(), passive, FieldTable::default()).await?.message_count())
    }

    pub async fn delete(&self) {
        for queue in [&self.drained, &self.stopped] {
            if let Err(error) = self.channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await {
                tracing::warn!(%error, queue, "could not delete a benchmark queue");
            }
        }
    }
}
