//! One `tag_sync` delivery (from the checks queue): run the tenant's tag sync (`tags::run_tag_sync`)
//! and settle. A tag sync reads only the store, so a disabled or blocked tenant's job is dropped like
//! its sync jobs; one already running for the tenant covers the request.

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::job::{patiently, unknown_tenant, Settlement};
use super::WorkerDeps;
use crate::queue::TagSyncJob;
use crate::store::tenants;
use crate::tags::{run_tag_sync, TagSyncError, TagSyncOptions, TagSyncRequest};

/// Handles one tag sync job.
pub async fn process(deps: &WorkerDeps, job: TagSyncJob, stop: &CancellationToken) -> Settlement {
    let span =
        tracing::info_span!("tag_sync", job = %job.job_id, entra_tenant = %job.tenant, tenant = tracing::field::Empty);
    run(deps, &job, stop).instrument(span).await
}

async fn run(deps: &WorkerDeps, job: &TagSyncJob, stop: &CancellationToken) -> Settlement {
    let pool = &deps.shared.pool;
    let Some(found) = patiently(stop, || tenants::find_by_entra_id(pool, job.tenant)).await else {
        return Settlement::Requeue;
    };
    let Some(tenant) = found else { return unknown_tenant(pool, job.tenant, stop).await };
    tracing::Span::current().record("tenant", tenant.id);
    if !tenant.enabled || tenant.blocked {
        tracing::info!(blocked = tenant.blocked, "tenant disabled or blocked; tag sync dropped");
        return Settlement::Ack;
    }
    let request = TagSyncRequest {
        tenant_id: tenant.id,
        trigger: job.trigger,
        job_id: Some(job.job_id),
        instance_id: Some(deps.shared.settings.instance_id.clone()),
        options: TagSyncOptions::default(),
    };
    // Dropping the sync at shutdown is safe: each batch and each deletion is a transaction of its own,
    // and the run is recorded only when it ends.
    let outcome = tokio::select! {
        outcome = run_tag_sync(pool, &deps.recorder, &request) => outcome,
        () = stop.cancelled() => {
            tracing::info!("shutting down; tag sync stopped after its last batch");
            return Settlement::Requeue;
        }
    };
    match outcome {
        Ok(_) => Settlement::Ack,
        Err(TagSyncError::Busy(_)) => {
            tracing::info!("a tag sync of this tenant is running; it covers this request");
            Settlement::Coalesced
        }
        Err(TagSyncError::Store(error)) if error.is_transient() => {
            tracing::warn!(%error, "Postgres failed during the tag sync; job requeued");
            Settlement::Requeue
        }
        Err(TagSyncError::History(error)) => {
            tracing::warn!(%error, "tag sync history not persisted; job requeued");
            Settlement::Requeue
        }
        // Recorded as a failed run in the history; the next scheduled sync tries again.
        Err(TagSyncError::Store(error)) => {
            tracing::warn!(%error, "tag sync failed");
            Settlement::Ack
        }
    }
}
