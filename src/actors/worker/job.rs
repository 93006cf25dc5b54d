//! One delivery of a class queue, start to settlement: validate, coalesce or take the (tenant, class) run
//! lock, run the round (a `sync` job) or the re-map (a `remap` job, see `remap.rs`), record the outcome for
//! the schedule, and say how to settle the delivery. Both kinds share the lock, the duplicate detection,
//! the coalescing and the settling. Plain async code; the worker actor only feeds it deliveries.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::metered::MeteredRecorder;
use super::WorkerDeps;
use super::{credentials, tenant_size};
use crate::access::{unstored_tenant, AccessError};
use crate::backoff::{retry_transient, Patience};
use crate::graph::{GraphTenant, RequestPriority, TenantSize};
use crate::mapping::{load_policy, MappingError};
use crate::model::{ObjectClass, RunStatus, SyncMode, Trigger};
use crate::queue::{Job, RemapJob, SyncJob, REMAP_SCHEMA_VERSION};
use crate::store::run_lock::{self, Begun, Requests, RunLock, RunStart};
use crate::store::runs::{self, JobRun};
use crate::store::{admin_jobs, remap};
use crate::store::{schedule, tenants, Pool, StoreError};
use crate::sync::{
    run_round_joining, DeletionGuard, ObjectPolicy, PassThrough, RecorderError, RoundDeps, RoundRequest, RunFinished,
    RunRecorder, RunStarted, SyncError,
};

/// How long a job waits for Postgres to come back before it is given back to the queue.
const STORE_PATIENCE: Patience = Patience {
    give_up_after: Duration::from_secs(60),
    first_wait: Duration::from_millis(200),
    longest_wait: Duration::from_secs(5),
};
/// A pause before requeueing after a failure, so a broken dependency does not spin the queue.
pub const REQUEUE_PAUSE: Duration = Duration::from_secs(2);

/// How to settle a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Done (run finished and recorded, or nothing to do).
    Ack,
    /// The (tenant, class) was running: one more run was requested of its holder.
    Coalesced,
    /// This job id already started a run (finished, or running now): republishing never runs twice.
    Duplicate,
    /// Not done; give it back (shutdown, lost lock, Postgres unavailable).
    Requeue,
    /// It can never succeed: move it to the dead-letter queue with this reason.
    DeadLetter(String),
    /// Its tenant was deleted through the API: acknowledge and forget it.
    DroppedDeletedTenant,
}

/// A job that runs under the (tenant, class) run lock.
#[derive(Debug, Clone)]
pub(super) enum LockedJob {
    Sync(SyncJob),
    Remap(RemapJob),
}

impl LockedJob {
    pub(super) fn job_id(&self) -> uuid::Uuid {
        match self {
            LockedJob::Sync(job) => job.job_id,
            LockedJob::Remap(job) => job.job_id,
        }
    }

    /// The Entra tenant id.
    pub(super) fn tenant(&self) -> uuid::Uuid {
        match self {
            LockedJob::Sync(job) => job.tenant,
            LockedJob::Remap(job) => job.tenant,
        }
    }

    pub(super) fn class(&self) -> ObjectClass {
        match self {
            LockedJob::Sync(job) => job.object_class,
            LockedJob::Remap(job) => job.object_class,
        }
    }

    pub(super) fn trigger(&self) -> Trigger {
        match self {
            LockedJob::Sync(job) => job.trigger,
            LockedJob::Remap(job) => job.trigger,
        }
    }

    /// The mode of the run it asks for (a round may still choose full over delta).
    fn mode(&self) -> SyncMode {
        match self {
            LockedJob::Sync(job) => job.mode,
            LockedJob::Remap(_) => SyncMode::Remap,
        }
    }
}

/// Handles one job message of `class`.
pub async fn process(deps: &WorkerDeps, class: ObjectClass, body: &[u8], stop: &CancellationToken) -> Settlement {
    let job = match Job::from_bytes(body) {
        // "Sync now" with mode remap asks for a re-map: it is one.
        Ok(Job::Sync(job)) if job.mode == SyncMode::Remap => LockedJob::Remap(RemapJob {
            schema_version: REMAP_SCHEMA_VERSION,
            job_id: job.job_id,
            tenant: job.tenant,
            object_class: job.object_class,
            trigger: job.trigger,
            requested_at: job.requested_at,
        }),
        Ok(Job::Sync(job)) if job.mode == SyncMode::TagSync => {
            return Settlement::DeadLetter(
                "a sync job's mode is full, delta or remap; a tag sync is a job of kind tag_sync \
                 (routing key tags.sync)"
                    .to_owned(),
            )
        }
        Ok(Job::Sync(job)) => LockedJob::Sync(job),
        Ok(Job::Remap(job)) => LockedJob::Remap(job),
        Ok(other) => {
            return Settlement::DeadLetter(format!(
                "a {} job arrived on the {class} queue; publish it with routing key {}",
                other.kind(),
                other.routing_key()
            ))
        }
        Err(error) => return Settlement::DeadLetter(error.to_string()),
    };
    if job.class() != class {
        return Settlement::DeadLetter(format!(
            "a {} job arrived on the {class} queue; publish with routing key sync.{}",
            job.class(),
            job.class()
        ));
    }
    let span = match &job {
        LockedJob::Sync(_) => {
            tracing::info_span!("sync_job", job = %job.job_id(), entra_tenant = %job.tenant(), %class, tenant = tracing::field::Empty)
        }
        LockedJob::Remap(_) => {
            tracing::info_span!("remap_job", job = %job.job_id(), entra_tenant = %job.tenant(), %class, tenant = tracing::field::Empty)
        }
    };
    run_job(deps, &job, stop).instrument(span).await
}

async fn run_job(deps: &WorkerDeps, job: &LockedJob, stop: &CancellationToken) -> Settlement {
    let pool = &deps.shared.pool;
    let class = job.class();
    // The tenant's live users are counted only when its Graph size is not known here (`tenant_size`).
    let known_size = tenant_size::known(job.tenant());
    // One transaction on the lock's session: the tenant, the job's runs, the lock, and under it what the
    // run needs before Graph (store::run_lock::begin).
    let Some(begun) = patiently(stop, || begin(deps, job, known_size.is_none())).await else {
        return Settlement::Requeue;
    };
    let Begun::Found { tenant, job: recorded, locked } = begun else {
        return unknown_tenant(pool, job.tenant(), stop).await;
    };
    tracing::Span::current().record("tenant", tenant.id);
    if !tenant.enabled || tenant.blocked {
        tracing::info!(blocked = tenant.blocked, "tenant disabled or blocked; job dropped");
        return Settlement::Ack;
    }
    if recorded == JobRun::Settled {
        tracing::info!("this job already ran and was acknowledged; a republished copy is not run again");
        return Settlement::Duplicate;
    }
    let (lock, start) = *match locked {
        Some(locked) => locked,
        None if recorded == JobRun::Running => {
            tracing::info!("this job's run is in progress; a republished copy is not run again");
            return Settlement::Duplicate;
        }
        // Held elsewhere: ask for one more run, then try again. A holder finishing in between sees the
        // request (it is stored before the second try), or the second try gets the lock and this job
        // runs, taking its own request with the lock.
        None => {
            if patiently(stop, || request_rerun(pool, tenant.id, job)).await.is_none() {
                return Settlement::Requeue;
            }
            match patiently(stop, || begin(deps, job, known_size.is_none())).await {
                None => return Settlement::Requeue,
                Some(Begun::Found { locked: Some(locked), .. }) => locked,
                Some(Begun::Found { job: JobRun::Settled, .. }) => {
                    tracing::info!("this job's run finished meanwhile; a republished copy is not run again");
                    return Settlement::Duplicate;
                }
                Some(Begun::Found { .. }) => {
                    tracing::info!(mode = %job.mode(), "run in progress; coalesced into one more run after it");
                    return Settlement::Coalesced;
                }
                Some(Begun::UnknownTenant) => return unknown_tenant(pool, job.tenant(), stop).await,
            }
        }
    };
    if start.closed_interrupted > 0 {
        tracing::info!(runs = start.closed_interrupted, "closed runs whose holder is gone as interrupted");
    }
    let outcome = match job {
        LockedJob::Sync(sync) => {
            let size = known_size.unwrap_or_else(|| counted_size(sync.tenant, &start));
            run_locked(deps, sync, &tenant, &lock, &start, size, stop).await
        }
        LockedJob::Remap(remap_job) => {
            // The job's start commits before the re-map writes anything elsewhere (`store::run_lock::open`).
            if !committed_start(&lock).await {
                lock.release().await;
                return Settlement::Requeue;
            }
            // This re-map applies the mappings as they are now: it covers every re-map asked for so far.
            if let Err(error) = remap::take_request(pool, tenant.id, class).await {
                tracing::warn!(%error, "cannot clear the pending re-map request; one more re-map will run");
            }
            let settlement = super::remap::run_locked(deps, remap_job, &tenant, &lock, stop).await;
            Outcome { settlement, settled_by_run: false }
        }
    };
    let Outcome { settlement, settled_by_run } = outcome;
    if settlement != Settlement::Ack {
        lock.release().await;
        return settlement;
    }
    // The requests made while we ran are taken with the release, in one transaction.
    let requests = lock.release_taking_requests(tenant.id, class).await;
    // A run that succeeded (or held deletions) already counts as settled for its job id.
    if !settled_by_run && patiently(stop, || runs::settle_job(pool, job.job_id())).await.is_none() {
        tracing::warn!("cannot mark the job settled; a republished copy would run again");
    }
    match requests {
        Some(requests) => republish_taken(deps, job, tenant.id, requests).await,
        None => republish_requested_rerun(deps, job, tenant.id).await,
    }
    settlement
}

/// The job's first statement (see [`run_job`]); `count_users`: the tenant's size is not known here.
async fn begin(deps: &WorkerDeps, job: &LockedJob, count_users: bool) -> Result<Begun, StoreError> {
    let take_rerun = matches!(job, LockedJob::Sync(_));
    let users_cap = if count_users { TenantSize::USERS_THAT_DECIDE } else { 0 };
    deps.shared.run_locks.begin(job.tenant(), job.class(), job.job_id(), take_rerun, users_cap).await
}

/// How a locked job ended: how to settle it, and whether its run's status already settles its job id
/// (`runs::job_run`: success, warning, held), so no separate write is needed.
struct Outcome {
    settlement: Settlement,
    settled_by_run: bool,
}

impl From<Settlement> for Outcome {
    fn from(settlement: Settlement) -> Outcome {
        Outcome { settlement, settled_by_run: false }
    }
}

/// Asks for one more run of the job's kind after the current holder of the lock.
async fn request_rerun(pool: &Pool, tenant_id: i64, job: &LockedJob) -> Result<(), StoreError> {
    match job {
        LockedJob::Sync(sync) => schedule::request_rerun(pool, tenant_id, sync.object_class, sync.mode).await,
        LockedJob::Remap(remap_job) => remap::request(pool, tenant_id, remap_job.object_class).await,
    }
}

/// Runs the round under the lock; stops early (keeping the checkpoint) on shutdown or a lost lock.
async fn run_locked(
    deps: &WorkerDeps,
    job: &SyncJob,
    tenant: &tenants::Tenant,
    lock: &RunLock,
    start: &RunStart,
    size: TenantSize,
    stop: &CancellationToken,
) -> Outcome {
    let pool = &deps.shared.pool;
    let class = job.object_class;
    let quarantine_after = deps.failures.quarantine_after;
    let key = JobKey { job_id: job.job_id, class, trigger: job.trigger };
    // This run covers every sync request made so far (taken with the lock); a full request wins.
    let force_full = job.mode == SyncMode::Full || start.rerun == Some(SyncMode::Full);
    let mode = if force_full { SyncMode::Full } else { job.mode };
    // Without a stored set the policy is PassThrough (what load_policy answers), without reading it.
    let policy = if start.has_mappings {
        match load_policy(pool, tenant.id, class).await {
            Ok(policy) => policy,
            Err(error) => {
                if !committed_start(lock).await {
                    return Settlement::Requeue.into();
                }
                return policy_not_loaded(deps, &key, tenant, mode, &error).await.into();
            }
        }
    } else {
        Arc::new(PassThrough) as Arc<dyn ObjectPolicy>
    };
    let graph_tenant = match graph_tenant_at(deps, tenant, start, size).await {
        Ok(graph_tenant) => graph_tenant,
        Err(error) if !is_permanent(&error) => {
            tracing::warn!(%error, "cannot read the tenant's credentials; job requeued");
            return Settlement::Requeue.into();
        }
        Err(error) => {
            // Only an operator can fix this: a failed run shows it, the schedule counts it towards
            // quarantine, and the job is dropped (requeueing would loop forever).
            tracing::warn!(%error, "tenant cannot be synced");
            if !committed_start(lock).await {
                return Settlement::Requeue.into();
            }
            if let Err(history) = record_failed_run(deps, &key, tenant, mode, &error.to_string()).await {
                tracing::warn!(error = %history, "the failed run was not recorded; job requeued");
                return Settlement::Requeue.into();
            }
            record_failure(pool, tenant.id, class, &error.to_string(), quarantine_after).await;
            return Settlement::Ack.into();
        }
    };
    let request = RoundRequest {
        tenant_id: tenant.id,
        graph_tenant,
        class,
        trigger: job.trigger,
        force_full,
        guard: DeletionGuard {
            max_deletions: deps.shared.settings.sync.deletion_threshold,
            max_percent: deps.shared.settings.sync.deletion_threshold_percent,
        },
        priority: if job.trigger == Trigger::Schedule { RequestPriority::Low } else { RequestPriority::Normal },
        instance_id: Some(deps.shared.settings.instance_id.clone()),
        batch_objects: deps.shared.settings.sync.batch_objects,
        job_id: Some(job.job_id),
    };
    // The round's history events also move the sync series (runs, objects, pages), labelled by the
    // Entra tenant id.
    let recorder =
        MeteredRecorder::new(deps.recorder.clone(), deps.shared.metrics.sync.clone(), tenant.entra_tenant_id);
    let round_deps = RoundDeps { pool, graph: &deps.graph, policy, recorder: &recorder };
    let started = Instant::now();
    let outcome = tokio::select! {
        // The run's start joins the job's start, still open on the lock's session: one transaction.
        outcome = run_round_joining(&round_deps, &request, lock.open_start()) => outcome,
        () = lock.lost() => {
            tracing::warn!("run lock lost; round stopped at its last checkpoint");
            return Settlement::Requeue.into();
        }
        () = stop.cancelled() => {
            // Dropping the round is safe: every committed page carries its checkpoint.
            tracing::info!("shutting down; round stopped at its last checkpoint");
            if let Err(error) = run_lock::close_interrupted(lock, tenant.id, class).await {
                tracing::warn!(%error, "cannot close the interrupted run; the next holder will");
            }
            return Settlement::Requeue.into();
        }
    };
    match outcome {
        Ok(report) => {
            tracing::info!(
                run_id = %report.run_id,
                mode = %report.mode,
                status = report.status.as_str(),
                seconds = started.elapsed().as_secs_f64(),
                "sync job done"
            );
            let recorded = if report.status == RunStatus::Failed {
                let reason = report.reason.as_deref().unwrap_or("run failed");
                schedule::record_failure(pool, tenant.id, class, reason, quarantine_after).await.map(|_| ())
            } else if start.schedule_clean {
                // No failure counted, no error kept, not quarantined (read under this lock; only a holder
                // of it counts failures of this class): a success has nothing to reset.
                Ok(())
            } else {
                schedule::record_success(pool, tenant.id, class, quarantine_after).await
            };
            if let Err(error) = recorded {
                tracing::warn!(%error, "run outcome not recorded for the schedule");
            }
            let settled_by_run = matches!(report.status, RunStatus::Success | RunStatus::Warning | RunStatus::Held);
            Outcome { settlement: Settlement::Ack, settled_by_run }
        }
        // The final event is not durable: the job must not be acknowledged.
        Err(SyncError::History(error)) => {
            tracing::warn!(%error, "run history not persisted; job requeued");
            Settlement::Requeue.into()
        }
        Err(SyncError::Store(error)) => {
            tracing::warn!(%error, "Postgres failed during the round; job requeued, the run resumes");
            Settlement::Requeue.into()
        }
        Err(error) => {
            // The round recorded the failed run; the schedule retries (and quarantines if it persists).
            record_failure(pool, tenant.id, class, &error.to_string(), quarantine_after).await;
            Settlement::Ack.into()
        }
    }
}

/// Commits the job's start before the job writes on other connections (`store::run_lock::open`); false
/// when that failed (the lock counts as lost, the job is given back).
async fn committed_start(lock: &RunLock) -> bool {
    match lock.commit_start().await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, "cannot commit the job's start; job requeued");
            false
        }
    }
}

/// The tenant's size from the user count read with the lock, kept for the next runs (`tenant_size`).
fn counted_size(entra_tenant: uuid::Uuid, start: &RunStart) -> TenantSize {
    let size = TenantSize::from_user_count(start.users);
    tenant_size::keep(entra_tenant, size);
    size
}

/// The Graph view of the tenant: its credentials from the process's cache while the profile's row is
/// unchanged (else read and decrypted as `access::graph_tenant` does), and its size.
async fn graph_tenant_at(
    deps: &WorkerDeps,
    tenant: &tenants::Tenant,
    start: &RunStart,
    size: TenantSize,
) -> Result<GraphTenant, AccessError> {
    if let Some(credentials) = start.profile.as_ref().and_then(credentials::cached) {
        let tenant_id = tenant.entra_tenant_id.to_string();
        return Ok(GraphTenant { cloud: tenant.cloud.clone(), tenant_id, credentials, size });
    }
    let profile_id = tenant.credential_profile_id.ok_or(AccessError::NoProfile(tenant.id))?;
    let secrets = deps.secrets.as_ref();
    let mut graph_tenant =
        unstored_tenant(&deps.shared.pool, secrets, profile_id, &tenant.cloud, tenant.entra_tenant_id).await?;
    if let Some(version) = start.profile.clone().filter(|version| version.id == profile_id) {
        credentials::keep(version, graph_tenant.credentials.clone());
    }
    graph_tenant.size = size;
    Ok(graph_tenant)
}

/// A job for a tenant that is not registered: dropped when the tenant was deleted through the API,
/// dead-lettered otherwise (a publisher's mistake someone should see).
pub(super) async fn unknown_tenant(pool: &Pool, entra_tenant: uuid::Uuid, stop: &CancellationToken) -> Settlement {
    match patiently(stop, || admin_jobs::was_deleted_by_entra_id(pool, entra_tenant)).await {
        None => Settlement::Requeue,
        Some(true) => {
            tracing::info!("the tenant was deleted; its queued job is dropped");
            Settlement::DroppedDeletedTenant
        }
        Some(false) => {
            Settlement::DeadLetter(format!("unknown tenant {entra_tenant}: no tenant with this Entra tenant id"))
        }
    }
}

/// Whether retrying cannot help: the credentials or their key need an operator. Postgres errors
/// other than an undecryptable credential may pass, so those jobs are requeued.
pub(super) fn is_permanent(error: &AccessError) -> bool {
    match error {
        AccessError::Store(StoreError::Undecryptable { .. }) => true,
        AccessError::Store(_) => false,
        AccessError::NoProfile(_)
        | AccessError::ProfileMissing(_)
        | AccessError::NoSecretsKey
        | AccessError::Certificate(..) => true,
    }
}

/// What the history needs of a job whose run failed before it started.
pub(super) struct JobKey {
    pub job_id: uuid::Uuid,
    pub class: ObjectClass,
    pub trigger: Trigger,
}

/// The stored mappings of the (tenant, class) could not be loaded. Postgres unavailable: give the job
/// back. A stored set that does not compile: only an operator can fix it, so the run fails visibly (in
/// the history, naming the fix), counts towards quarantine, and the job is acknowledged (requeueing
/// would loop) — as with an undecryptable credential. Nothing is synced with half a policy.
pub(super) async fn policy_not_loaded(
    deps: &WorkerDeps,
    key: &JobKey,
    tenant: &tenants::Tenant,
    mode: SyncMode,
    error: &MappingError,
) -> Settlement {
    match error {
        MappingError::Store(store) if store.is_transient() => {
            tracing::warn!(%error, "cannot read the tenant's mappings; job requeued");
            Settlement::Requeue
        }
        _ => {
            tracing::warn!(%error, "the tenant's mappings cannot be applied");
            let message = error.to_string();
            if let Err(history) = record_failed_run(deps, key, tenant, mode, &message).await {
                tracing::warn!(error = %history, "the failed run was not recorded; job requeued");
                return Settlement::Requeue;
            }
            let quarantine_after = deps.failures.quarantine_after;
            record_failure(&deps.shared.pool, tenant.id, key.class, &message, quarantine_after).await;
            Settlement::Ack
        }
    }
}

/// A run that failed before it could start (no usable credentials, mappings that do not compile), in
/// the history like any other: started and finished at once, linked to its job, counted in the sync
/// metrics.
pub(super) async fn record_failed_run(
    deps: &WorkerDeps,
    job: &JobKey,
    tenant: &tenants::Tenant,
    mode: SyncMode,
    error: &str,
) -> Result<(), RecorderError> {
    let recorder =
        MeteredRecorder::new(deps.recorder.clone(), deps.shared.metrics.sync.clone(), tenant.entra_tenant_id);
    let run_id = uuid::Uuid::new_v4();
    let now = chrono::Utc::now();
    recorder
        .started(&RunStarted {
            run_id,
            tenant_id: tenant.id,
            class: job.class,
            mode,
            trigger: job.trigger,
            started_at: now,
            resumed: false,
            reason: None,
            counts: Default::default(),
            instance_id: Some(deps.shared.settings.instance_id.clone()),
            job_id: Some(job.job_id),
        })
        .await?;
    recorder
        .finished(&RunFinished {
            run_id,
            tenant_id: tenant.id,
            class: job.class,
            mode,
            status: RunStatus::Failed,
            counts: Default::default(),
            reason: None,
            error: Some(error.to_owned()),
            finished_at: chrono::Utc::now(),
        })
        .await
}

/// Counts a failure towards the tenant's quarantine; a failure to count it is logged, not hidden.
pub(super) async fn record_failure(
    pool: &Pool,
    tenant_id: i64,
    class: ObjectClass,
    error: &str,
    quarantine_after: u32,
) {
    if let Err(store_error) = schedule::record_failure(pool, tenant_id, class, error, quarantine_after).await {
        tracing::warn!(error = %store_error, failure = error, "cannot record the failure for the schedule");
    }
}

/// Jobs arrived while we ran and their requests were taken with the release: publish the one coalesced
/// sync rerun and the one re-map they asked for.
async fn republish_taken(deps: &WorkerDeps, job: &LockedJob, tenant_id: i64, requests: Requests) {
    if requests.remap {
        publish_remap(deps, job, tenant_id).await;
    }
    if let Some(mode) = requests.rerun {
        publish_rerun(deps, job, tenant_id, mode).await;
    }
}

/// Publishes the coalesced sync rerun of `mode`; when that fails the request is stored again.
async fn publish_rerun(deps: &WorkerDeps, job: &LockedJob, tenant_id: i64, mode: SyncMode) {
    let class = job.class();
    let rerun = SyncJob::new(job.tenant(), class, mode, job.trigger());
    match deps.shared.broker.publish(&rerun).await {
        Ok(()) => tracing::info!(%mode, rerun = %rerun.job_id, "coalesced rerun published"),
        Err(error) => {
            tracing::warn!(%error, "cannot publish the coalesced rerun; keeping the request");
            if let Err(error) = schedule::request_rerun(&deps.shared.pool, tenant_id, class, mode).await {
                tracing::error!(%error, %mode, "the coalesced rerun is lost: neither published nor kept");
            }
        }
    }
}

/// Jobs arrived while we ran: publish the one coalesced sync rerun and the one re-map they asked for.
async fn republish_requested_rerun(deps: &WorkerDeps, job: &LockedJob, tenant_id: i64) {
    republish_requested_remap(deps, job, tenant_id).await;
    let pool = &deps.shared.pool;
    let class = job.class();
    let mode = match schedule::take_rerun(pool, tenant_id, class).await {
        Ok(Some(mode)) => mode,
        Ok(None) => return,
        Err(error) => {
            // The request stays stored; the next run of this (tenant, class) takes it.
            tracing::warn!(%error, "cannot read the pending rerun request");
            return;
        }
    };
    publish_rerun(deps, job, tenant_id, mode).await;
}

async fn republish_requested_remap(deps: &WorkerDeps, job: &LockedJob, tenant_id: i64) {
    match remap::take_request(&deps.shared.pool, tenant_id, job.class()).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            // The request stays stored; the next run of this (tenant, class) takes it.
            tracing::warn!(%error, "cannot read the pending re-map request");
            return;
        }
    }
    publish_remap(deps, job, tenant_id).await;
}

/// Publishes the coalesced re-map; when that fails the request is stored again.
async fn publish_remap(deps: &WorkerDeps, job: &LockedJob, tenant_id: i64) {
    let class = job.class();
    let remap_job = RemapJob::new(job.tenant(), class, job.trigger());
    let job_id = remap_job.job_id;
    match deps.shared.broker.publish_job(&Job::Remap(remap_job)).await {
        Ok(()) => tracing::info!(rerun = %job_id, "coalesced re-map published"),
        Err(error) => {
            tracing::warn!(%error, "cannot publish the coalesced re-map; keeping the request");
            if let Err(error) = remap::request(&deps.shared.pool, tenant_id, class).await {
                tracing::error!(%error, "the coalesced re-map is lost: neither published nor kept");
            }
        }
    }
}

/// Retries a store call while Postgres is unavailable, up to [`STORE_PATIENCE`] or shutdown; `None`
/// gives the job back to the queue.
pub(super) async fn patiently<T, F, Fut>(stop: &CancellationToken, call: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    match retry_transient("job bookkeeping", STORE_PATIENCE, Some(stop), call).await {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::warn!(%error, "store call failed; giving the job back");
            None
        }
    }
}
