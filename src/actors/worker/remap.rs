//! A `remap` job under the (tenant, class) run lock (taken by `job::run_job`, as for a sync job): load the
//! tenant's current policy, run `sync::run_remap` against the store, record the outcome for the schedule.
//! No Graph call and no credentials: a tenant whose secret cannot be decrypted still re-maps.

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::job::{policy_not_loaded, record_failure, JobKey, Settlement};
use super::metered::MeteredRecorder;
use super::WorkerDeps;
use crate::mapping::load_policy;
use crate::model::{RunStatus, SyncMode};
use crate::queue::RemapJob;
use crate::store::run_lock::{self, RunLock};
use crate::store::tenants;
use crate::sync::{run_remap, DeletionGuard, RemapDeps, RemapRequest, SyncError};

/// Runs the re-map under the lock; stops early (keeping the checkpoint) on shutdown or a lost lock.
pub(super) async fn run_locked(
    deps: &WorkerDeps,
    job: &RemapJob,
    tenant: &tenants::Tenant,
    lock: &RunLock,
    stop: &CancellationToken,
) -> Settlement {
    let pool = &deps.shared.pool;
    let class = job.object_class;
    let key = JobKey { job_id: job.job_id, class, trigger: job.trigger };
    let policy = match load_policy(pool, tenant.id, class).await {
        Ok(policy) => policy,
        Err(error) => return policy_not_loaded(deps, &key, tenant, SyncMode::Remap, &error).await,
    };
    let settings = &deps.shared.settings;
    let request = RemapRequest {
        tenant_id: tenant.id,
        class,
        trigger: job.trigger,
        guard: DeletionGuard {
            max_deletions: settings.sync.deletion_threshold,
            max_percent: settings.sync.deletion_threshold_percent,
        },
        instance_id: Some(settings.instance_id.clone()),
        batch_objects: settings.sync.batch_objects,
        job_id: Some(job.job_id),
    };
    let recorder =
        MeteredRecorder::new(deps.recorder.clone(), deps.shared.metrics.sync.clone(), tenant.entra_tenant_id);
    let remap_deps = RemapDeps { pool, policy: policy.as_ref(), recorder: &recorder };
    let started = Instant::now();
    let outcome = tokio::select! {
        outcome = run_remap(&remap_deps, &request) => outcome,
        () = lock.lost() => {
            tracing::warn!("run lock lost; re-map stopped at its last checkpoint");
            return Settlement::Requeue;
        }
        () = stop.cancelled() => {
            tracing::info!("shutting down; re-map stopped at its last checkpoint");
            if let Err(error) = run_lock::close_interrupted(lock, tenant.id, class).await {
                tracing::warn!(%error, "cannot close the interrupted run; the next holder will");
            }
            return Settlement::Requeue;
        }
    };
    let quarantine_after = deps.failures.quarantine_after;
    match outcome {
        Ok(report) => {
            tracing::info!(
                run_id = %report.run_id,
                status = report.status.as_str(),
                total = report.counts.total,
                changed = report.counts.changed,
                filtered = report.counts.filtered,
                seconds = started.elapsed().as_secs_f64(),
                "remap job done"
            );
            // A re-map says nothing about reaching Graph: only a failure is counted for the schedule.
            if report.status == RunStatus::Failed {
                let reason = report.reason.as_deref().unwrap_or("re-map failed");
                record_failure(pool, tenant.id, class, reason, quarantine_after).await;
            }
            Settlement::Ack
        }
        Err(SyncError::History(error)) => {
            tracing::warn!(%error, "run history not persisted; job requeued");
            Settlement::Requeue
        }
        Err(SyncError::Store(error)) => {
            tracing::warn!(%error, "Postgres failed during the re-map; job requeued, the run resumes");
            Settlement::Requeue
        }
        Err(error) => {
            record_failure(pool, tenant.id, class, &error.to_string(), quarantine_after).await;
            Settlement::Ack
        }
    }
}
