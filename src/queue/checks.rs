//! Publishing jobs of any kind, and the permission check the API and the schedule ask for.

use lapin::BasicProperties;
use uuid::Uuid;

use super::job::{Job, PermissionCheckJob, RemapJob};
use super::{Broker, Message, QueueError};
use crate::model::{ObjectClass, Trigger};

impl Broker {
    /// Publishes a job of any kind with its routing key and waits for the broker's confirm; a nack
    /// or an unroutable return is an error.
    pub async fn publish_job(&self, job: &Job) -> Result<(), QueueError> {
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(job.job_id().to_string().into());
        let message =
            Message { exchange: self.topology().jobs_exchange(), routing_key: job.routing_key(), mandatory: true };
        self.publish_confirmed(message, &job.to_bytes(), properties).await
    }
}

/// Queues a `permission_check` job for the tenant with this Entra tenant id; returns the job id once
/// the broker confirmed it. A worker stores the outcome as the tenant's permission status.
pub async fn publish_permission_check(broker: &Broker, tenant: Uuid) -> Result<Uuid, QueueError> {
    let job = PermissionCheckJob::new(tenant);
    let job_id = job.job_id;
    broker.publish_job(&Job::PermissionCheck(job)).await?;
    Ok(job_id)
}

/// Queues a `remap` job for one class of the tenant with this Entra tenant id (routing key
/// `sync.<class>`, so it waits for that class's run lock like a sync); returns the job id once the
/// broker confirmed it. A worker applies the tenant's current mappings and scoping to the stored objects.
pub async fn publish_remap(
    broker: &Broker,
    tenant: Uuid,
    class: ObjectClass,
    trigger: Trigger,
) -> Result<Uuid, QueueError> {
    let job = RemapJob::new(tenant, class, trigger);
    let job_id = job.job_id;
    broker.publish_job(&Job::Remap(job)).await?;
    Ok(job_id)
}
