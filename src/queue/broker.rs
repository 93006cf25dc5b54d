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
    /// the broker's confirm. Job publishing and dead-lettering both go through here.
    pub async fn publish_confirmed(
        &self,
        message: Message,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), QueueError> {
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
        let channel = connection.create_channel().await?;
        channel.basic_qos(self.inner.prefetch, BasicQosOptions::default()).await?;
        let consumer = channel
            .basic_consume(queue.into(), consumer_tag.into(), BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        Ok(JobConsumer { channel, consumer })
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
        match connect_and_declare(&inner.topology, &url).await {
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
    let connection = Connection::connect(url.expose_secret(), ConnectionProperties::default())
        .await
        .map_err(|e| QueueError::Unavailable(e.to_string()))?;
    let channel = connection.create_channel().await?;
    topology.declare(&channel).await?;
    if let Err(error) = channel.close(200, "topology declared".into()).await {
        tracing::debug!(%error, "closing the topology channel failed");
    }
    Ok(connection)
}
