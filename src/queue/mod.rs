//! RabbitMQ: the job messages (a kind per job), topology, a reconnecting connection, confirmed publishing and
//! manual-ack consuming. See `docs/queue.md`.

mod broker;
mod checks;
mod job;
mod stats;
mod topology;

pub use broker::{Broker, JobConsumer, Message};
pub use checks::{publish_permission_check, publish_remap};
pub use job::{
    Job, JobError, PermissionCheckJob, RemapJob, SyncJob, KINDS, MAX_JOB_BYTES, PERMISSION_CHECK_ROUTING_KEY,
    PERMISSION_CHECK_SCHEMA_VERSION, REMAP_SCHEMA_VERSION, SCHEMA_VERSION,
};
pub use job::{TagSyncJob, TAG_SYNC_ROUTING_KEY, TAG_SYNC_SCHEMA_VERSION};
pub use stats::QueueDepth;
pub use topology::Topology;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("RabbitMQ is unreachable: {0}")]
    Unavailable(String),
    #[error("RabbitMQ refused the message (publisher confirm was a nack)")]
    Nacked,
    #[error("declaring the RabbitMQ topology failed: {0}")]
    Topology(String),
    #[error("RabbitMQ did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
}
