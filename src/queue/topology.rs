//! Exchange and queue names, and their idempotent declaration.
//!
//! `{prefix}.jobs` (topic) routes `sync.<class>` to the durable quorum queue `{prefix}.sync.<class>`, and
//! `check.permissions` and `tags.sync` to `{prefix}.checks`. A job delivered more than `delivery_limit` times, or
//! rejected without requeue, goes to the `{prefix}.dead` exchange and its queue `{prefix}.dead`.
//! Change events go to the topic exchange `{prefix}.changes` (docs/events-relay.md); consumers declare and
//! bind their own queues to it.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use super::job::{routing_key, PERMISSION_CHECK_ROUTING_KEY, TAG_SYNC_ROUTING_KEY};
use super::QueueError;
use crate::model::ObjectClass;

#[derive(Debug, Clone)]
pub struct Topology {
    pub prefix: String,
    pub delivery_limit: u32,
}

impl Topology {
    pub fn jobs_exchange(&self) -> String {
        format!("{}.jobs", self.prefix)
    }

    /// Change events (issue 17): topic, durable, routing key `<entra tenant id>.<class>.<kind>`. No queue
    /// of ours is bound: each consumer binds its own.
    pub fn changes_exchange(&self) -> String {
        format!("{}.changes", self.prefix)
    }

    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    pub fn class_queue(&self, class: ObjectClass) -> String {
        format!("{}.sync.{}", self.prefix, class.as_str())
    }

    /// Permission checks: a queue of their own, so a backlog of syncs never delays them.
    pub fn checks_queue(&self) -> String {
        format!("{}.checks", self.prefix)
    }

    /// The job queues with the routing key bound to each: the class queues, then the checks queue
    /// (bound twice: permission checks and tag syncs).
    pub fn job_queues(&self) -> Vec<(String, String)> {
        ObjectClass::ALL
            .iter()
            .map(|class| (self.class_queue(*class), routing_key(*class)))
            .chain([(self.checks_queue(), PERMISSION_CHECK_ROUTING_KEY.to_owned())])
            .chain([(self.checks_queue(), TAG_SYNC_ROUTING_KEY.to_owned())])
            .collect()
    }

    /// Declares everything; safe to repeat (same arguments every time).
    pub async fn declare(&self, channel: &Channel) -> Result<(), QueueError> {
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        let queue_options = QueueDeclareOptions { durable: true, ..Default::default() };
        let topology_error = |what: String| move |e: lapin::Error| QueueError::Topology(format!("{what}: {e}"));

        channel
            .exchange_declare(self.jobs_exchange().into(), ExchangeKind::Topic, durable, FieldTable::default())
            .await
            .map_err(topology_error(self.jobs_exchange()))?;
        channel
            .exchange_declare(self.changes_exchange().into(), ExchangeKind::Topic, durable, FieldTable::default())
            .await
            .map_err(topology_error(self.changes_exchange()))?;
        channel
            .exchange_declare(self.dead_exchange().into(), ExchangeKind::Fanout, durable, FieldTable::default())
            .await
            .map_err(topology_error(self.dead_exchange()))?;
        channel
            .queue_declare(self.dead_queue().into(), queue_options, quorum_args(None))
            .await
            .map_err(topology_error(self.dead_queue()))?;
        channel
            .queue_bind(
                self.dead_queue().into(),
                self.dead_exchange().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(topology_error(self.dead_queue()))?;

        for (queue, key) in self.job_queues() {
            let mut args = quorum_args(Some(self.dead_exchange()));
            args.insert("x-delivery-limit".into(), AMQPValue::LongInt(self.delivery_limit as i32));
            channel
                .queue_declare(queue.clone().into(), queue_options, args)
                .await
                .map_err(topology_error(queue.clone()))?;
            channel
                .queue_bind(
                    queue.clone().into(),
                    self.jobs_exchange().into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(topology_error(queue))?;
        }
        Ok(())
    }
}

fn quorum_args(dead_letter_exchange: Option<String>) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from("quorum")));
    if let Some(exchange) = dead_letter_exchange {
        args.insert(ShortString::from("x-dead-letter-exchange"), AMQPValue::LongString(LongString::from(exchange)));
    }
    args
}

impl super::Broker {
    /// Deletes this prefix's queues (with their messages) and exchanges: for the demo and the benchmarks,
    /// which own their prefix. The next connection declares them again.
    pub async fn delete_topology(&self, connect_wait: std::time::Duration) -> Result<(), super::QueueError> {
        use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
        let connection = self.connection(connect_wait).await?;
        let channel = connection.create_channel().await?;
        let topology = self.topology();
        let mut queues: Vec<String> =
            topology.job_queues().into_iter().map(|(queue, _)| queue).chain([topology.dead_queue()]).collect();
        // A queue bound to several routing keys is listed once per key.
        queues.dedup();
        for queue in queues {
            channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await?;
        }
        for exchange in [topology.jobs_exchange(), topology.changes_exchange(), topology.dead_exchange()] {
            channel.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await?;
        }
        if let Err(error) = channel.close(200, "topology deleted".into()).await {
            tracing::debug!(%error, "closing the channel failed");
        }
        Ok(())
    }
}
