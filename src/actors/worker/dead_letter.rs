//! Dead-lettering with a reason: the original message goes to `{prefix}.dead` with headers that say
//! why (`x-entrasync-reason`) and where it came from, confirmed by the broker before the original is
//! acknowledged.

use lapin::message::Delivery;
use lapin::types::{AMQPValue, LongString};

use crate::queue::{Broker, Message, QueueError};

pub const REASON_HEADER: &str = "x-entrasync-reason";
pub const SOURCE_QUEUE_HEADER: &str = "x-entrasync-queue";

/// Dead-letters deliveries through the broker's confirmed publishing.
pub struct DeadLetters {
    broker: Broker,
}

impl DeadLetters {
    pub fn new(broker: Broker) -> Self {
        DeadLetters { broker }
    }

    /// Publishes a copy of `delivery` to the dead-letter exchange with `reason`.
    pub async fn publish(&self, delivery: &Delivery, source_queue: &str, reason: &str) -> Result<(), QueueError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(REASON_HEADER.into(), AMQPValue::LongString(LongString::from(reason.to_owned())));
        headers.insert(SOURCE_QUEUE_HEADER.into(), AMQPValue::LongString(LongString::from(source_queue.to_owned())));
        let properties = delivery.properties.clone().with_headers(headers).with_delivery_mode(2);
        let message = Message {
            exchange: self.broker.topology().dead_exchange(),
            routing_key: delivery.routing_key.to_string(),
            mandatory: false,
        };
        self.broker.publish_confirmed(message, &delivery.data, properties).await
    }
}
