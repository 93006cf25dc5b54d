//! Dead-lettering with a reason: the original message goes to `{prefix}.dead` with headers that say
//! why (`x-entrasync-reason`) and where it came from, confirmed by the broker before the original is
//! acknowledged.

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, LongString};
use lapin::Channel;
use tokio::sync::Mutex;

use crate::queue::{Broker, QueueError};

pub const REASON_HEADER: &str = "x-entrasync-reason";
pub const SOURCE_QUEUE_HEADER: &str = "x-entrasync-queue";

/// A confirm-mode channel for dead letters, reopened after a reconnect.
pub struct DeadLetters {
    broker: Broker,
    channel: Mutex<Option<Channel>>,
}

impl DeadLetters {
    pub fn new(broker: Broker) -> Self {
        DeadLetters { broker, channel: Mutex::new(None) }
    }

    /// Publishes a copy of `delivery` to the dead-letter exchange with `reason`.
    pub async fn publish(&self, delivery: &Delivery, source_queue: &str, reason: &str) -> Result<(), QueueError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(LongString::from(reason.to_owned())));
        headers.insert(SOURCE_QUEUE_HEADER.into(), AMQPValue::LongString(LongString::from(source_queue.to_owned())));
        let properties = delivery.properties.clone().with_headers(headers).with_delivery_mode(2);
        let channel = self.channel().await?;
        let confirm = channel
            .basic_publish(
                self.broker.topology().dead_exchange().into(),
                delivery.routing_key.clone(),
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await?
            .await?;
        if confirm.is_ack() {
            Ok(())
        } else {
            Err(QueueError::Nacked)
        }
    }

    async fn channel(&self) -> Result<Channel, QueueError> {
        let mut slot = self.channel.lock().await;
        if let Some(channel) = slot.as_ref().filter(|c| c.status().connected()) {
            return Ok(channel.clone());
        }
        let connection = self.broker.connection(Duration::from_secs(10)).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        *slot = Some(channel.clone());
        Ok(channel)
    }
}
