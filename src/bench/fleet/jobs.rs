//! The benchmark's side of RabbitMQ: its own broker connection under the run's queue prefix, to wait
//! until every worker consumes, publish the jobs (confirmed, several in flight), watch the dead-letter
//! queue, and delete the run's exchanges and queues afterwards.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::stream::{self, StreamExt, TryStreamExt};
use uuid::Uuid;

use crate::config::AmqpSettings;
use crate::model::{ObjectClass, SyncMode, Trigger};
use crate::queue::{Broker, SyncJob};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const CONSUMERS_TIMEOUT: Duration = Duration::from_secs(60);
/// Publishes awaiting their confirm at once, on the broker's one confirm channel.
const IN_FLIGHT: usize = 64;

/// The class every fleet job syncs.
pub const CLASS: ObjectClass = ObjectClass::User;

pub struct JobQueue {
    broker: Broker,
}

impl JobQueue {
    /// Connects under `settings.prefix` and declares its topology.
    pub async fn connect(settings: &AmqpSettings) -> anyhow::Result<JobQueue> {
        let broker = Broker::start(settings);
        broker.connection(CONNECT_TIMEOUT).await.context("connecting to RabbitMQ")?;
        Ok(JobQueue { broker })
    }

    /// The prefix of the run's exchanges and queues.
    pub fn prefix(&self) -> &str {
        &self.broker.topology().prefix
    }

    /// Waits until the class queue has `expected` consumers (every worker of every instance subscribed).
    pub async fn wait_for_consumers(&self, expected: u32) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let consumers = self.depth(CLASS).await?.1;
            if consumers >= expected {
                return Ok(());
            }
            if started.elapsed() > CONSUMERS_TIMEOUT {
                bail!("{consumers} of {expected} workers consume the {CLASS} queue after {CONSUMERS_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Messages ready and consumers of a class queue.
    async fn depth(&self, class: ObjectClass) -> anyhow::Result<(u32, u32)> {
        let depths = self.broker.queue_depths(CONNECT_TIMEOUT).await.context("reading queue depths")?;
        let queue = depths.iter().find(|d| d.class == Some(class)).context("the class queue is missing")?;
        Ok((queue.messages, queue.consumers))
    }

    /// Messages in the dead-letter queue: a job there will never run.
    pub async fn dead_letters(&self) -> anyhow::Result<u32> {
        let depths = self.broker.queue_depths(CONNECT_TIMEOUT).await.context("reading queue depths")?;
        Ok(depths.iter().find(|d| d.class.is_none()).map_or(0, |d| d.messages))
    }

    /// Publishes one full job per tenant, each confirmed by the broker.
    pub async fn publish_full_jobs(&self, entra_ids: &[Uuid]) -> anyhow::Result<()> {
        self.publish_jobs(entra_ids, SyncMode::Full).await
    }

    /// Publishes one job of `mode` per tenant, each confirmed by the broker.
    pub async fn publish_jobs(&self, entra_ids: &[Uuid], mode: SyncMode) -> anyhow::Result<()> {
        stream::iter(entra_ids)
            .map(|tenant| {
                let job = SyncJob::new(*tenant, CLASS, mode, Trigger::Manual);
                async move { self.broker.publish(&job).await.with_context(|| format!("publishing the job of {tenant}")) }
            })
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<()>()
            .await
    }

    /// Deletes the run's queues and exchanges, then closes the connection.
    pub async fn remove(self) {
        if let Err(error) = self.broker.delete_topology(CONNECT_TIMEOUT).await {
            tracing::warn!(%error, "cannot delete the benchmark's queues and exchanges");
        }
        self.broker.close().await;
    }
}
