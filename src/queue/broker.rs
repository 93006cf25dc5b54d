//! One RabbitMQ connection per process, re-established whenever the broker goes away.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{watch, Mutex};
use tokio_util::sync::CancellationToken;

use super::{QueueError, SyncJob, Topology};
use crate::backoff::Backoff;
use crate::config::AmqpSettings;
use crate::model::ObjectClass;

/// Where a message goes.
pub struct Message {
    pub exchange: String,
    pub routing_key: String,
    /// Return the message (an error) when no queue is bound for it.
    pub mandatory: bool,
}

/// Handle to the broker; cheap to clone. A background task keeps it connected.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    topology: Topology,
    prefetch: u16,
    current: watch::Sender<Option<Arc<Connection>>>,
    /// A confirm-mode channel for publishing, replaced after a reconnect.
    publish_channel: Mutex<Option<Channel>>,
    stop: CancellationToken,
}

const RECONNECT_MIN: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(10);
const STATUS_POLL: Duration = Duration::from_millis(250);
/// Connecting (TCP, AMQP handshake, topology) against a broker that accepts but never answers gives up
/// after this and tries again.
const CONNECT_DEADLINE: Duration = Duration::from_secs(20);
/// A publish (channel, send, broker confirm) that takes longer is abandoned; the caller retries it.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(10);
/// Opening a consumer (channel, QoS, consume) that takes longer is abandoned; the caller retries it.
const CONSUME_DEADLINE: Duration = Duration::from_secs(30);
/// The AMQP heartbeat asked for when the URL sets none: a connection that stops answering (a frozen
/// peer, lost NAT state) is declared dead after two silent intervals, 20 s, instead of RabbitMQ's 120 s.
const DEFAULT_HEARTBEAT_SECS: u32 = 10;

impl Broker {
    /// Starts connecting in the background and returns at once; [`Broker::connection`] waits for it.
    pub fn start(settings: &AmqpSettings) -> Broker {
        let (current, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            topology: Topology { prefix: settings.prefix.clone(), delivery_limit: settings.delivery_limit },
            prefetch: settings.prefetch,
            current,
            publish_channel: Mutex::new(None),
            stop: CancellationToken::new(),
        });
        tokio::spawn(keep_connected(inner.clone(), settings.url.clone()));
        Broker { inner }
    }

    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    pub fn is_connected(&self) -> bool {
        self.inner.current.borrow().as_ref().is_some_and(|c| c.status().connected())
    }

    /// The live connection, waiting up to `timeout` for one.
    pub async fn connection(&self, timeout: Duration) -> Result<Arc<Connection>, QueueError> {
        let mut rx = self.inner.current.subscribe();
        let wait = async {
            let live = rx.wait_for(|c| c.as_ref().is_some_and(|c| c.status().connected())).await;
            live.ok().and_then(|c| c.clone())
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Some(conn)) => Ok(conn),
            _ => Err(QueueError::Unavailable(format!("not connected to RabbitMQ within {timeout:?}"))),
        }
    }

    /// Publishes a job and waits for the broker's confirm; a nack or an unroutable return is an error.
    pub async fn publish(&self, job: &SyncJob) -> Result<(), QueueError> {
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(job.job_id.to_string().into());
        let message =
            Message { exchange: self.inner.topology.jobs_exchange(), routing_key: job.routing_key(), mandatory: true };
        self.publish_confirmed(message, &job.to_bytes(), properties).await
    }

    /// Publishes on the process's one confirm-mode channel (reopened after a reconnect) and waits for
    /// the broker's confirm, at most [`PUBLISH_DEADLINE`]. Job publishing and dead-lettering both go
    /// through here. On a timeout the channel is abandoned (a confirm may still be owed on it) and
    /// the next publish opens another: the caller retries, so a job can be published twice, never lost.
    pub async fn publish_confirmed(
        &self,
        message: Message,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), QueueError> {
        match tokio::time::timeout(PUBLISH_DEADLINE, self.publish_once(message, body, properties)).await {
            Ok(result) => result,
            Err(_) => {
                self.inner.publish_channel.lock().await.take();
                tracing::warn!(deadline_ms = PUBLISH_DEADLINE.as_millis() as u64, "a publish got no confirm in time");
                Err(QueueError::Timeout(PUBLISH_DEADLINE))
            }
        }
    }

    async fn publish_once(&self, message: Message, body: &[u8], properties: BasicProperties) -> Result<(), QueueError> {
        let channel = self.publish_channel().await?;
        let options = BasicPublishOptions { mandatory: message.mandatory, ..Default::default() };
        let confirm = channel
            .basic_publish(message.exchange.into(), message.routing_key.into(), options, body, properties)
            .await?
            .await?;
        // With `mandatory`, an unroutable message comes back with the ack.
        if confirm.is_ack() && confirm.take_message().is_none() {
            Ok(())
        } else {
            Err(QueueError::Nacked)
        }
    }

    /// Starts a manual-ack consumer on the class queue with the configured prefetch.
    pub async fn consume(&self, class: ObjectClass, consumer_tag: &str) -> Result<JobConsumer, QueueError> {
        self.consume_queue(self.inner.topology.class_queue(class), consumer_tag).await
    }

    /// Starts a manual-ack consumer on a queue of the topology with the configured prefetch.
    pub async fn consume_queue(&self, queue: String, consumer_tag: &str) -> Result<JobConsumer, QueueError> {
        let connection = self.connection(Duration::from_secs(30)).await?;
        let open = async {
            let channel = connection.create_channel().await?;
            channel.basic_qos(self.inner.prefetch, BasicQosOptions::default()).await?;
            let consumer = channel
                .basic_consume(queue.into(), consumer_tag.into(), BasicConsumeOptions::default(), FieldTable::default())
                .await?;
            Ok(JobConsumer { channel, consumer })
        };
        tokio::time::timeout(CONSUME_DEADLINE, open).await.unwrap_or(Err(QueueError::Timeout(CONSUME_DEADLINE)))
    }

    /// Stops reconnecting and closes the connection.
    pub async fn close(&self) {
        self.inner.stop.cancel();
        if let Some(channel) = self.inner.publish_channel.lock().await.take() {
            if let Err(error) = channel.close(200, "shutting down".into()).await {
                tracing::debug!(%error, "closing the publish channel failed");
            }
        }
        let conn = self.inner.current.borrow().clone();
        if let Some(conn) = conn {
            if let Err(error) = conn.close(200, "shutting down".into()).await {
                tracing::debug!(%error, "closing the rabbitmq connection failed");
            }
        }
    }

    async fn publish_channel(&self) -> Result<Channel, QueueError> {
        let mut slot = self.inner.publish_channel.lock().await;
        if let Some(channel) = slot.as_ref().filter(|c| c.status().connected()) {
            return Ok(channel.clone());
        }
        let connection = self.connection(Duration::from_secs(10)).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        *slot = Some(channel.clone());
        Ok(channel)
    }
}

/// A manual-ack consumer of one class queue. Ends when the connection is lost; consume again.
pub struct JobConsumer {
    pub channel: Channel,
    consumer: lapin::Consumer,
}

impl JobConsumer {
    pub async fn next_delivery(&mut self) -> Option<Result<Delivery, QueueError>> {
        self.consumer.next().await.map(|d| d.map_err(QueueError::from))
    }
}

async fn keep_connected(inner: Arc<Inner>, url: SecretString) {
    let mut backoff = Backoff::capped(RECONNECT_MIN, RECONNECT_MAX);
    while !inner.stop.is_cancelled() {
        let attempt = tokio::time::timeout(CONNECT_DEADLINE, connect_and_declare(&inner.topology, &url));
        match attempt.await.unwrap_or(Err(QueueError::Timeout(CONNECT_DEADLINE))) {
            Ok(connection) => {
                tracing::info!(prefix = %inner.topology.prefix, "connected to rabbitmq");
                backoff.reset();
                let connection = Arc::new(connection);
                inner.current.send_replace(Some(connection.clone()));
                while connection.status().connected() && !inner.stop.is_cancelled() {
                    tokio::select! {
                        _ = tokio::time::sleep(STATUS_POLL) => {}
                        _ = inner.stop.cancelled() => {}
                    }
                }
                inner.current.send_replace(None);
                *inner.publish_channel.lock().await = None;
                if !inner.stop.is_cancelled() {
                    tracing::warn!("lost the rabbitmq connection; reconnecting");
                }
            }
            Err(error) => {
                let retry_in = backoff.next_delay();
                tracing::warn!(%error, retry_in_ms = retry_in.as_millis() as u64, "cannot connect to rabbitmq");
                tokio::select! {
                    _ = tokio::time::sleep(retry_in) => {}
                    _ = inner.stop.cancelled() => {}
                }
            }
        }
    }
}

async fn connect_and_declare(topology: &Topology, url: &SecretString) -> Result<Connection, QueueError> {
    let connection = Connection::connect(&with_default_heartbeat(url.expose_secret()), ConnectionProperties::default())
        .await
        .map_err(|e| QueueError::Unavailable(e.to_string()))?;
    let channel = connection.create_channel().await?;
    topology.declare(&channel).await?;
    if let Err(error) = channel.close(200, "topology declared".into()).await {
        tracing::debug!(%error, "closing the topology channel failed");
    }
    Ok(connection)
}

/// `url` with `heartbeat=` [`DEFAULT_HEARTBEAT_SECS`] added when it names none; an explicit value wins.
fn with_default_heartbeat(url: &str) -> String {
    let has_heartbeat = url
        .split_once('?')
        .is_some_and(|(_, query)| query.split('&').any(|pair| pair.split('=').next() == Some("heartbeat")));
    match (has_heartbeat, url.contains('?')) {
        (true, _) => url.to_owned(),
        (false, true) => format!("{url}&heartbeat={DEFAULT_HEARTBEAT_SECS}"),
        (false, false) => format!("{url}?heartbeat={DEFAULT_HEARTBEAT_SECS}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_default_heartbeat;

    #[test]
    fn a_heartbeat_is_asked_for_unless_the_url_sets_one() {
        assert_eq!(with_default_heartbeat("amqp://h:5672/%2f"), "amqp://h:5672/%2f?heartbeat=10");
        assert_eq!(with_default_heartbeat("amqp://h/%2f?frame_max=8192"), "amqp://h/%2f?frame_max=8192&heartbeat=10");
        assert_eq!(with_default_heartbeat("amqp://h/%2f?heartbeat=30"), "amqp://h/%2f?heartbeat=30");
        assert_eq!(with_default_heartbeat("amqp://h/%2f?a=1&heartbeat=0"), "amqp://h/%2f?a=1&heartbeat=0");
    }
}
