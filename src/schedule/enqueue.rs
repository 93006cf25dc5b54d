//! A tenant supervisor's check: read the tenant's schedule, publish the jobs that are due, remember them.

use std::time::Duration;

use tracing::Instrument;

use super::due::{plan, Policy};
use crate::model::Trigger;
use crate::queue::{Broker, QueueError, SyncJob};
use crate::store::{schedule, Pool, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("reading or writing the schedule: {0}")]
    Store(#[from] StoreError),
    #[error("publishing a job: {0}")]
    Queue(#[from] QueueError),
}

/// What one check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Jobs published (possibly none); check again after the delay.
    Checked { published: usize, next_check: Duration },
    /// The tenant was deleted: nothing left to supervise.
    TenantGone,
}

/// Publishes the due jobs of `tenant_id`. A job is marked enqueued only after the broker confirmed it.
pub async fn enqueue_due(
    pool: &Pool,
    broker: &Broker,
    tenant_id: i64,
    policy: &Policy,
) -> Result<CheckOutcome, ScheduleError> {
    let Some(state) = schedule::load(pool, tenant_id).await? else { return Ok(CheckOutcome::TenantGone) };
    // In a span naming the tenant: `plan` warns about damaged schedule rows.
    let decided = tracing::info_span!("schedule_check", tenant = tenant_id).in_scope(|| plan(&state, policy));
    for due in &decided.due {
        let job = SyncJob::new(state.entra_tenant_id, due.class, due.mode, Trigger::Schedule);
        let span = tracing::info_span!("enqueue", tenant = tenant_id, class = %due.class, job = %job.job_id);
        async {
            broker.publish(&job).await?;
            schedule::mark_enqueued(pool, tenant_id, due.class, due.mode, job.job_id).await?;
            tracing::info!(mode = %due.mode, reason = due.reason, "sync job enqueued");
            Ok::<(), ScheduleError>(())
        }
        .instrument(span)
        .await?;
    }
    Ok(CheckOutcome::Checked { published: decided.due.len(), next_check: decided.next_check })
}
