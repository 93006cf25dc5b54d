//! A re-map run for one (tenant, class): the tenant's current mappings and scoping applied to the
//! objects already stored, from the store alone (no Graph call, no credentials). Stored live objects are
//! read in keyset batches by id; each batch's changed markers and mapped attributes are written in one
//! statement, in one transaction with the run's checkpoint, so memory stays O(batch) and an interrupted
//! re-map resumes where it stopped. Objects the scoping filter now leaves out are staged for deletion
//! ("out of scope") and settled at the end by the same deletion guard as a round's.

use chrono::Utc;
use futures::{SinkExt, StreamExt};
use tracing::Instrument;
use uuid::Uuid;

use super::apply::{PageTarget, REASON_FILTERED};
use super::error::SyncError;
use super::guard::DeletionGuard;
use super::marker::canonicalize;
use super::policy::{Admission, ObjectPolicy};
use super::recorder::{RunRecorder, RunStarted};
use super::round::{conclude, record_failure, report_progress, settle_deletions, Pending, RoundReport};
use crate::model::{ObjectClass, RunCounts, SyncMode, Trigger};
use crate::store::objects::{self, LiveObject};
use crate::store::wire::JsonText;
use crate::store::{held_deletions, remap, run_scratch, Pool};

/// What a re-map needs: the store, the policy to apply, where its history goes.
pub struct RemapDeps<'a, R: RunRecorder> {
    pub pool: &'a Pool,
    pub policy: &'a dyn ObjectPolicy,
    pub recorder: &'a R,
}

/// One re-map to run.
#[derive(Debug, Clone)]
pub struct RemapRequest {
    /// `tenants.id`.
    pub tenant_id: i64,
    pub class: ObjectClass,
    pub trigger: Trigger,
    pub guard: DeletionGuard,
    pub instance_id: Option<String>,
    /// Objects per batch (one transaction each; `sync.batch_objects`).
    pub batch_objects: usize,
    /// The queued job asking for this re-map (its idempotency key).
    pub job_id: Option<Uuid>,
}

/// What one batch decided, before it is written.
#[derive(Debug, Default, PartialEq)]
pub struct RemapBatch {
    /// Admitted objects whose marker changed: (id, new marker, new mapped attributes).
    pub writes: Vec<(Uuid, i64, Option<JsonText>)>,
    /// Admitted objects (a held deletion of one is superseded).
    pub admitted: Vec<Uuid>,
    /// Live objects the scoping filter now leaves out.
    pub filtered: Vec<Uuid>,
}

/// Applies the policy to one batch of stored objects: the marker is computed exactly as a round computes
/// it (canonical stored attributes plus the new mapped attributes), so an object whose mapped attributes
/// did not change keeps its marker and costs no write. Pure.
pub fn prepare_batch(class: ObjectClass, policy: &dyn ObjectPolicy, objects: &[LiveObject]) -> RemapBatch {
    let mut batch = RemapBatch::default();
    for object in objects {
        match policy.admit(class, &object.attrs) {
            Admission::Filter => batch.filtered.push(object.object_id),
            // Create-time values are never rewritten: the object exists already.
            Admission::Admit { mapped, .. } => {
                batch.admitted.push(object.object_id);
                let marker = canonicalize(&object.attrs, mapped.as_ref()).marker;
                if marker != object.marker {
                    batch.writes.push((object.object_id, marker, mapped));
                }
            }
        }
    }
    batch
}

/// Runs (or resumes) the re-map of one (tenant, class). Cancel-safe like a round: every batch commits
/// with its checkpoint; the next call resumes the same run after the last committed batch.
pub async fn run_remap<R: RunRecorder>(
    deps: &RemapDeps<'_, R>,
    request: &RemapRequest,
) -> Result<RoundReport, SyncError> {
    let span = tracing::info_span!(
        "remap",
        tenant_id = request.tenant_id,
        class = %request.class,
        run_id = tracing::field::Empty,
    );
    drive(deps, request).instrument(span).await
}

struct Remap {
    target: PageTarget,
    after: Option<Uuid>,
    counts: RunCounts,
    resumed: bool,
}

async fn drive<R: RunRecorder>(deps: &RemapDeps<'_, R>, request: &RemapRequest) -> Result<RoundReport, SyncError> {
    let mut run = begin(deps, request).await?;
    tracing::Span::current().record("run_id", tracing::field::display(run.target.run_id));
    let ending = match batches(deps, request, &mut run).await {
        Ok(ending) => ending,
        Err(error @ SyncError::RunMovedOn { .. }) => return Err(error),
        Err(error) => {
            record_failure(deps.recorder, run.target, run.counts, None, &error).await;
            return Err(error);
        }
    };
    conclude(deps.recorder, run.target, run.counts, ending, run.resumed).await
}

/// Resumes the interrupted re-map of (tenant, class), or starts a new one.
async fn begin<R: RunRecorder>(deps: &RemapDeps<'_, R>, request: &RemapRequest) -> Result<Remap, SyncError> {
    let client = deps.pool.get().await?;
    let target =
        |run_id| PageTarget { tenant_id: request.tenant_id, class: request.class, run_id, mode: SyncMode::Remap };
    let run = match remap::load(&client, request.tenant_id, request.class).await? {
        Some(checkpoint) => {
            tracing::info!(run_id = %checkpoint.run_id, examined = checkpoint.counts.total, "resuming an interrupted re-map");
            Remap {
                target: target(checkpoint.run_id),
                after: checkpoint.after,
                counts: checkpoint.counts,
                resumed: true,
            }
        }
        None => {
            let run_id = Uuid::new_v4();
            remap::start(&client, request.tenant_id, request.class, run_id).await?;
            Remap { target: target(run_id), after: None, counts: RunCounts::default(), resumed: false }
        }
    };
    let started = RunStarted {
        run_id: run.target.run_id,
        tenant_id: request.tenant_id,
        class: request.class,
        mode: SyncMode::Remap,
        trigger: request.trigger,
        started_at: Utc::now(),
        resumed: run.resumed,
        reason: Some("mappings or scoping applied to the stored objects".to_owned()),
        counts: run.counts,
        instance_id: request.instance_id.clone(),
        job_id: request.job_id,
    };
    deps.recorder.started(&started).await?;
    Ok(run)
}

/// One keyset read, decided: the batch and its last id, or the end of the stored objects.
enum Read {
    Batch { last: Uuid, batch: RemapBatch },
    End,
}

/// Reads the live objects after `after` and applies the policy to them.
async fn read_next(
    db: &impl deadpool_postgres::GenericClient,
    policy: &dyn ObjectPolicy,
    target: PageTarget,
    after: Option<Uuid>,
    limit: usize,
) -> Result<Read, SyncError> {
    let stored = objects::live_after(db, target.tenant_id, target.class, after, limit).await?;
    Ok(match stored.last() {
        None => Read::End,
        Some(last) => Read::Batch { last: last.object_id, batch: prepare_batch(target.class, policy, &stored) },
    })
}

/// Reads, decides and writes batch after batch; the last (empty) read settles the deletions. A second
/// session reads and decides the next batch while this one writes the current one (the two overlap on
/// the server and with the policy's CPU time); nothing else writes this (tenant, class) meanwhile, since
/// the run lock is held. Without a second connection (a pool exhausted for its wait timeout) the reads
/// run in each batch's own transaction instead.
async fn batches<R: RunRecorder>(
    deps: &RemapDeps<'_, R>,
    request: &RemapRequest,
    run: &mut Remap,
) -> Result<super::round::Ending, SyncError> {
    let mut client = deps.pool.get().await?;
    let PageTarget { tenant_id, class, .. } = run.target;
    // Held deletions are only created at a run's end, and this (tenant, class) runs nowhere else.
    let any_held = held_deletions::any_held(&client, tenant_id, class).await?;
    let limit = request.batch_objects.max(1);
    let Ok(reader) = deps.pool.get().await else {
        loop {
            let transaction = client.transaction().await?;
            claim(&transaction, run).await?;
            let read = read_next(&transaction, deps.policy, run.target, run.after, limit).await?;
            if let Some(ending) = apply(deps, request, run, transaction, read, any_held).await? {
                return Ok(ending);
            }
        }
    };
    let (mut sender, mut receiver) = futures::channel::mpsc::channel::<Read>(1);
    let (policy, target, first) = (deps.policy, run.target, run.after);
    let read_ahead = async move {
        let mut after = first;
        loop {
            let read = read_next(&reader, policy, target, after, limit).await?;
            let next = match &read {
                Read::Batch { last, .. } => Some(*last),
                Read::End => None,
            };
            // A closed channel means the writer stopped; its own result is what try_join reports.
            if sender.send(read).await.is_err() {
                return Ok::<(), SyncError>(());
            }
            match next {
                Some(last) => after = Some(last),
                None => return Ok(()),
            }
        }
    };
    let write = async {
        loop {
            let Some(read) = receiver.next().await else {
                return Err(SyncError::Unexpected(anyhow::anyhow!("the re-map's reader stopped before the end")));
            };
            let transaction = client.transaction().await?;
            claim(&transaction, run).await?;
            if let Some(ending) = apply(deps, request, run, transaction, read, any_held).await? {
                return Ok(ending);
            }
        }
    };
    let ((), ending) = futures::try_join!(read_ahead, write)?;
    Ok(ending)
}

async fn claim(transaction: &deadpool_postgres::Transaction<'_>, run: &Remap) -> Result<(), SyncError> {
    let PageTarget { tenant_id, class, run_id, .. } = run.target;
    if remap::claim(transaction, tenant_id, class, run_id).await? {
        Ok(())
    } else {
        Err(SyncError::RunMovedOn { run_id })
    }
}

/// Writes one batch with the run's checkpoint and commits; at the end, settles the deletions instead
/// and returns how the run ends.
async fn apply<R: RunRecorder>(
    deps: &RemapDeps<'_, R>,
    request: &RemapRequest,
    run: &mut Remap,
    transaction: deadpool_postgres::Transaction<'_>,
    read: Read,
    any_held: bool,
) -> Result<Option<super::round::Ending>, SyncError> {
    let PageTarget { tenant_id, class, run_id, .. } = run.target;
    let (last, batch) = match read {
        Read::Batch { last, batch } => (last, batch),
        Read::End => {
            let mut counts = run.counts;
            let ending =
                settle_deletions(&transaction, request.guard, run.target, None, Pending::Count, &mut counts).await?;
            remap::finish(&transaction, tenant_id, class, run_id).await?;
            run_scratch::clear(&transaction, run_id).await?;
            transaction.commit().await?;
            run.counts = counts;
            return Ok(Some(ending));
        }
    };
    let ids: Vec<Uuid> = batch.writes.iter().map(|w| w.0).collect();
    let markers: Vec<i64> = batch.writes.iter().map(|w| w.1).collect();
    let mapped: Vec<Option<&JsonText>> = batch.writes.iter().map(|w| w.2.as_ref()).collect();
    let reasons = vec![REASON_FILTERED.to_owned(); batch.filtered.len()];
    let permanent = vec![false; batch.filtered.len()];
    let superseding: &[Uuid] = if any_held { &batch.admitted } else { &[] };
    let (written, (), _superseded) = futures::try_join!(
        objects::write_mapped(&transaction, tenant_id, class, &ids, &markers, &mapped),
        run_scratch::stage_deletions(&transaction, run_id, &batch.filtered, &permanent, &reasons),
        held_deletions::supersede(&transaction, tenant_id, class, superseding),
    )?;
    let mut counts = run.counts;
    counts.total += (batch.admitted.len() + batch.filtered.len()) as u64;
    counts.changed += written;
    counts.filtered += batch.filtered.len() as u64;
    counts.rows_written += written;
    if !remap::advance(&transaction, tenant_id, class, run_id, last, &counts).await? {
        return Err(SyncError::RunMovedOn { run_id });
    }
    transaction.commit().await?;
    run.counts = counts;
    run.after = Some(last);
    tracing::debug!(examined = counts.total, written, filtered = batch.filtered.len(), "re-map batch applied");
    report_progress(deps.recorder, run.target, run.counts, None).await;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::marker::{canonical_attrs, canonical_json};
    use crate::sync::policy::PassThrough;
    use serde_json::{json, Value};

    fn stored(id: u128, attrs: Value, mapped: Option<&Value>) -> LiveObject {
        let Value::Object(attrs) = attrs else { panic!("object") };
        let attrs = canonical_attrs(attrs);
        let marker = canonicalize(&attrs, mapped.map(canonical_json).as_ref()).marker;
        LiveObject { object_id: Uuid::from_u128(id), marker, attrs }
    }

    struct DepartmentTag;
    impl ObjectPolicy for DepartmentTag {
        fn admit(&self, _class: ObjectClass, attrs: &serde_json::Map<String, Value>) -> Admission {
            match attrs.get("department").and_then(Value::as_str) {
                Some("gone") => Admission::Filter,
                Some(department) => Admission::Admit {
                    mapped: Some(canonical_json(&json!({ "tag": department }))),
                    on_create: Some(json!({ "created": true })),
                },
                None => Admission::Admit { mapped: None, on_create: None },
            }
        }
    }

    #[test]
    fn only_objects_whose_mapped_attributes_change_are_written() {
        let objects = vec![
            // Stored by PassThrough: gains a tag.
            stored(1, json!({"department": "sales"}), None),
            // Already mapped as the policy maps it: unchanged.
            stored(2, json!({"department": "ops"}), Some(&json!({"tag": "ops"}))),
            // Mapped before, no mapping now: the marker goes back to the attributes' alone.
            stored(3, json!({"displayName": "x"}), Some(&json!({"tag": "old"}))),
            // Out of scope now.
            stored(4, json!({"department": "gone"}), None),
            // No mapping, never mapped: unchanged.
            stored(5, json!({"displayName": "y"}), None),
        ];
        let batch = prepare_batch(ObjectClass::User, &DepartmentTag, &objects);
        let written: Vec<(u128, Option<JsonText>)> =
            batch.writes.iter().map(|w| (w.0.as_u128(), w.2.clone())).collect();
        assert_eq!(written, vec![(1, Some(canonical_json(&json!({"tag": "sales"})))), (3, None)]);
        assert_eq!(batch.filtered, vec![Uuid::from_u128(4)]);
        assert_eq!(batch.admitted.len(), 4);
        // The new marker is the one a round computes for the same attributes and mapping.
        let Value::Object(attrs) = json!({"department": "sales"}) else { panic!("object") };
        assert_eq!(batch.writes[0].1, canonicalize(&attrs, Some(&canonical_json(&json!({"tag": "sales"})))).marker);
    }

    #[test]
    fn a_second_pass_with_the_same_policy_writes_nothing() {
        let objects = vec![stored(1, json!({"department": "sales"}), None), stored(2, json!({"b": [1, 2]}), None)];
        let first = prepare_batch(ObjectClass::User, &DepartmentTag, &objects);
        let after: Vec<LiveObject> = objects
            .iter()
            .map(|o| match first.writes.iter().find(|w| w.0 == o.object_id) {
                Some(w) => LiveObject { marker: w.1, ..o.clone() },
                None => o.clone(),
            })
            .collect();
        assert_eq!(prepare_batch(ObjectClass::User, &DepartmentTag, &after).writes, vec![]);
        assert_eq!(prepare_batch(ObjectClass::User, &PassThrough, &objects).writes, vec![]);
    }
}
