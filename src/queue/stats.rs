//! Depth and consumers of the topology's queues, asked of the broker with passive declares (which
//! never create or change a queue), for the metrics endpoint.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

use super::{Broker, QueueError};
use crate::model::ObjectClass;

/// One queue as the broker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    /// The class of a `{prefix}.sync.<class>` queue; `None` for the dead-letter queue.
    pub class: Option<ObjectClass>,
    /// Messages ready for delivery (unacknowledged ones are not included).
    pub messages: u32,
    pub consumers: u32,
}

impl Broker {
    /// Reads every queue of the topology on a short-lived channel; fails fast when not connected.
    pub async fn queue_depths(&self, connect_wait: Duration) -> Result<Vec<QueueDepth>, QueueError> {
        let connection = self.connection(connect_wait).await?;
        let channel = connection.create_channel().await?;
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        let topology = self.topology();
        let queues = ObjectClass::ALL
            .into_iter()
            .map(|class| (Some(class), topology.class_queue(class)))
            .chain([(None, topology.dead_queue())]);
        let mut depths = Vec::with_capacity(ObjectClass::ALL.len() + 1);
        for (class, name) in queues {
            // A missing queue closes the channel with 404: the error ends this read, not the process.
            let queue = channel.queue_declare(name.into(), passive, FieldTable::default()).await?;
            depths.push(QueueDepth { class, messages: queue.message_count(), consumers: queue.consumer_count() });
        }
        if let Err(error) = channel.close(200, "queue depths read".into()).await {
            tracing::debug!(%error, "closing the queue-depth channel failed");
        }
        Ok(depths)
    }
}
