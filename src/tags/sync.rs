//! One tag sync of one tenant:
//!
//! 1. Take the tenant's tag sync lock (one run per tenant across instances).
//! 2. Apply the live mappings to the stored users, batch by batch in object id order
//!    (`store::tags::sync_batch`): new values in, assignments added and removed, which mapping synced
//!    what. Then stamp the mappings synced.
//! 3. Delete the mappings pending deletion, each in its own transaction: their values that nothing else
//!    keeps (created or assigned by an operator, synced by another live mapping), then the mapping. A
//!    deletion that fails keeps its pending marker and its error, and is tried again at the next sync.
//! 4. Record the run in the history (mode `tag_sync`, class `user`): total = users read, changed = users
//!    whose tags changed, deleted = tag values deleted. The run is recorded when it ends (started and
//!    finished together, with its real start time), so the sweep of interrupted sync runs, which
//!    watches the sync run locks, never closes a tag sync that is still working.
//!
//! Live mappings are applied before deletions, so a value a deleted mapping shares with a mapping
//! created meanwhile is kept, not deleted and brought back.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::source::TagSource;
use crate::model::{ObjectClass, RunCounts, RunStatus, SyncMode, Trigger};
use crate::store::tags::{self, SyncMapping};
use crate::store::{Pool, StoreError};
use crate::sync::{RecorderError, RunFinished, RunRecorder, RunStarted};

/// How a tag sync runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagSyncOptions {
    /// Users per batch transaction.
    pub batch_users: i64,
    /// How long deleting a pending mapping waits for a row lock before it fails (and is retried at the
    /// next sync): a long wait would hold the run, and whoever holds the lock is working on those rows.
    pub deletion_lock_timeout: Duration,
}

impl Default for TagSyncOptions {
    fn default() -> Self {
        TagSyncOptions { batch_users: 5000, deletion_lock_timeout: Duration::from_secs(5) }
    }
}

#[derive(Debug, Clone)]
pub struct TagSyncRequest {
    pub tenant_id: i64,
    pub trigger: Trigger,
    pub job_id: Option<Uuid>,
    pub instance_id: Option<String>,
    pub options: TagSyncOptions,
}

/// What a tag sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagSyncReport {
    pub run_id: Uuid,
    pub status: Option<RunStatus>,
    pub users: u64,
    pub changed: u64,
    pub values_added: u64,
    pub assigned: u64,
    pub unassigned: u64,
    /// Live mappings applied.
    pub mappings: usize,
    pub values_deleted: u64,
    pub mappings_deleted: u64,
    /// (mapping id, error) of deletions that failed; retried at the next sync.
    pub deletion_failures: Vec<(i64, String)>,
    /// Stored mappings whose source this entrasync does not read (skipped).
    pub unreadable: Vec<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum TagSyncError {
    /// Another tag sync of the tenant is running; it covers this request (mappings created after it
    /// started wait for the next one).
    #[error("a tag sync of tenant {0} is running")]
    Busy(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run's history record is not durable.
    #[error(transparent)]
    History(#[from] RecorderError),
}

/// Runs one tag sync of `request.tenant_id` and records it.
pub async fn run_tag_sync<R: RunRecorder>(
    pool: &Pool,
    recorder: &R,
    request: &TagSyncRequest,
) -> Result<TagSyncReport, TagSyncError> {
    let Some(lock) = tags::try_lock_tag_sync(pool, request.tenant_id).await? else {
        return Err(TagSyncError::Busy(request.tenant_id));
    };
    let outcome = locked(pool, recorder, request).await;
    lock.release().await;
    outcome
}

async fn locked<R: RunRecorder>(
    pool: &Pool,
    recorder: &R,
    request: &TagSyncRequest,
) -> Result<TagSyncReport, TagSyncError> {
    let started = RunStarted {
        run_id: Uuid::new_v4(),
        tenant_id: request.tenant_id,
        class: ObjectClass::User,
        mode: SyncMode::TagSync,
        trigger: request.trigger,
        started_at: Utc::now(),
        resumed: false,
        reason: None,
        counts: RunCounts::default(),
        instance_id: request.instance_id.clone(),
        job_id: request.job_id,
    };
    let mut report = TagSyncReport { run_id: started.run_id, ..TagSyncReport::default() };
    let work = apply(pool, request, &mut report).await;
    let (status, error) = match &work {
        Ok(()) if report.deletion_failures.is_empty() && report.unreadable.is_empty() => (RunStatus::Success, None),
        Ok(()) => (RunStatus::Warning, problems(&report)),
        Err(error) => (RunStatus::Failed, Some(error.to_string())),
    };
    report.status = Some(status);
    let finished = RunFinished {
        run_id: started.run_id,
        tenant_id: request.tenant_id,
        class: ObjectClass::User,
        mode: SyncMode::TagSync,
        status,
        counts: RunCounts {
            total: report.users,
            changed: report.changed,
            deleted: report.values_deleted,
            ..RunCounts::default()
        },
        reason: Some(summary(&report)),
        error,
        finished_at: Utc::now(),
    };
    recorder.started(&started).await?;
    recorder.finished(&finished).await?;
    work?;
    tags::record_tag_sync(pool, request.tenant_id, started.run_id).await?;
    tracing::info!(
        tenant = request.tenant_id,
        run_id = %started.run_id,
        status = status.as_str(),
        users = report.users,
        changed = report.changed,
        values_added = report.values_added,
        values_deleted = report.values_deleted,
        "tag sync done"
    );
    Ok(report)
}

async fn apply(pool: &Pool, request: &TagSyncRequest, report: &mut TagSyncReport) -> Result<(), StoreError> {
    let tenant_id = request.tenant_id;
    let mut mappings = Vec::new();
    for mapping in tags::list_mappings(pool, tenant_id).await? {
        if mapping.pending_deletion_at.is_some() {
            continue;
        }
        match TagSource::parse(&mapping.source) {
            Ok(source) => mappings.push(SyncMapping { id: mapping.id, source: source.spec(), target: mapping.target }),
            Err(error) => {
                tracing::warn!(tenant = tenant_id, mapping = mapping.id, %error, "tag mapping skipped");
                report.unreadable.push(mapping.id);
            }
        }
    }
    if !mappings.is_empty() {
        let mut after = None;
        let live = loop {
            let batch = tags::sync_batch(pool, tenant_id, &mappings, after, request.options.batch_users).await?;
            report.users += batch.users;
            report.changed += batch.changed;
            report.values_added += batch.values_added;
            report.assigned += batch.assigned;
            report.unassigned += batch.unassigned;
            match batch.upper {
                Some(upper) => after = Some(upper),
                None => break batch.live,
            }
        };
        report.mappings = live.len();
        tags::mark_synced(pool, &live).await?;
    }
    for id in tags::pending_deletions(pool, tenant_id).await? {
        match tags::delete_pending_mapping(pool, tenant_id, id, request.options.deletion_lock_timeout).await {
            Ok(Some(values)) => {
                report.values_deleted += values;
                report.mappings_deleted += 1;
            }
            Ok(None) => {}
            Err(error) => {
                // With its causes: Postgres' own message ("canceling statement due to lock timeout").
                let error = format!("{error:#}");
                tracing::warn!(tenant = tenant_id, mapping = id, %error, "deleting a tag mapping failed; retried at the next tag sync");
                tags::record_deletion_failure(pool, id, &error).await?;
                report.deletion_failures.push((id, error));
            }
        }
    }
    Ok(())
}

fn summary(report: &TagSyncReport) -> String {
    format!(
        "{} mapping(s) applied to {} users: {} new value(s), {} assignment(s) added, {} removed; \
         {} deleted mapping(s) removed with {} value(s)",
        report.mappings,
        report.users,
        report.values_added,
        report.assigned,
        report.unassigned,
        report.mappings_deleted,
        report.values_deleted
    )
}

fn problems(report: &TagSyncReport) -> Option<String> {
    let mut parts: Vec<String> = report
        .deletion_failures
        .iter()
        .map(|(id, error)| format!("deleting tag mapping {id} failed ({error}); retried at the next tag sync"))
        .collect();
    if !report.unreadable.is_empty() {
        parts.push(format!("tag mappings {:?} have a source this entrasync does not read; skipped", report.unreadable));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}
