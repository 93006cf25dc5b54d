//! One sync round for one (tenant, class): start or resume its run (`start`: the mode, the checkpoint),
//! stream Graph's delta pages, apply each batch of pages with its checkpoint in one transaction, and finish
//! (sweep, deletion guard, deltaLink) with the last.

use std::sync::Arc;

use chrono::Utc;
use deadpool_postgres::GenericClient;
use tracing::Instrument;
use uuid::Uuid;

use super::apply::{apply_batch, PageHints, PageTarget, REASON_NOT_LISTED};
use super::batch::{Batches, PageBatch, PREFETCH_PAGES};
use super::error::SyncError;
use super::fingerprints::Fingerprints;
use super::guard::{short_listing, DeletionGuard};
use super::page::{prepare, PreparedPage};
use super::policy::ObjectPolicy;
use super::recorder::{RunFinished, RunProgress, RunRecorder};
use super::snapshot::{Snapshot, SnapshotBudget};
use super::start::{self, Started};
use crate::graph::{DeltaRequest, GraphClient, GraphError, GraphTenant, PageLink, RequestPriority};
use crate::model::RunCounts;
use crate::model::{ObjectClass, RunStatus, SyncMode, Trigger};
use crate::store::run_lock::OpenStart;
use crate::store::{cursors, held_deletions, objects, run_scratch, runs, Pool};

/// What a round needs that outlives it: shared by every round of a worker.
pub struct RoundDeps<'a, R: RunRecorder> {
    pub pool: &'a Pool,
    pub graph: &'a GraphClient,
    /// Shared, so a batch's preparation (policy, markers) can run on a blocking thread.
    pub policy: Arc<dyn ObjectPolicy>,
    pub recorder: &'a R,
}

/// One round to run.
#[derive(Debug, Clone)]
pub struct RoundRequest {
    /// `tenants.id`.
    pub tenant_id: i64,
    /// How to reach the tenant's directory (cloud, Entra tenant id, app credentials).
    pub graph_tenant: GraphTenant,
    pub class: ObjectClass,
    pub trigger: Trigger,
    /// Run a full scan even if a delta round would do (an interrupted run is still resumed first).
    pub force_full: bool,
    pub guard: DeletionGuard,
    pub priority: RequestPriority,
    pub instance_id: Option<String>,
    /// Objects after which a batch of pages is written in one transaction (`sync.batch_objects`).
    pub batch_objects: usize,
    /// The queued job asking for this round, recorded with the run it starts (its idempotency key).
    pub job_id: Option<Uuid>,
}

/// How a round ended. Errors that stop a round early are `Err(SyncError)` instead (the checkpoint is
/// kept and the next round resumes).
#[derive(Debug, Clone, PartialEq)]
pub struct RoundReport {
    pub run_id: Uuid,
    pub mode: SyncMode,
    /// `Success`, `Held` (deletions wait for an operator) or `Failed` (a guard refused the listing).
    pub status: RunStatus,
    pub counts: RunCounts,
    pub reason: Option<String>,
    /// Whether this round continued a checkpointed run.
    pub resumed: bool,
}

/// The state of the run while pages flow.
pub(super) struct Run<'b> {
    pub(super) target: PageTarget,
    pub(super) counts: RunCounts,
    pub(super) reason: Option<String>,
    pub(super) resumed: bool,
    /// A full round's re-scan snapshot (`None`: the streaming path; see [`choose_path`]).
    snapshot: Option<Snapshot<'b>>,
    /// A group round's memberships written for the groups it created or marked seen for stored ones,
    /// when this stream started the run: a resumed run's earlier streams wrote rows it does not know of.
    written: Option<Fingerprints<'b>>,
    /// The page hints, when the run's start transaction read them (the first stream takes them).
    pub(super) hints: Option<PageHints>,
}

impl Run<'_> {
    pub(super) fn new(target: PageTarget, counts: RunCounts, reason: Option<String>, resumed: bool) -> Self {
        Run { target, counts, reason, resumed, snapshot: None, written: None, hints: None }
    }
}

/// How the last transaction of a run ended it.
pub(super) struct Ending {
    pub(super) status: RunStatus,
    pub(super) reason: Option<String>,
}

/// Runs one round. Cancel-safe: dropping the future at any await loses nothing, because each batch of
/// pages and its checkpoint commit together; the next call resumes the same run from the last checkpoint.
/// A full round's snapshot comes out of the process's budget ([`SnapshotBudget::instance`]).
pub async fn run_round<R: RunRecorder>(
    deps: &RoundDeps<'_, R>,
    request: &RoundRequest,
) -> Result<RoundReport, SyncError> {
    run_round_with(deps, request, SnapshotBudget::instance()).await
}

/// [`run_round`] for a worker holding the run lock: the run's start joins the job start's transaction
/// when it is still open on the lock's session (`open`), so both commit as one.
pub async fn run_round_joining<R: RunRecorder>(
    deps: &RoundDeps<'_, R>,
    request: &RoundRequest,
    open: Option<OpenStart<'_>>,
) -> Result<RoundReport, SyncError> {
    drive(deps, request, SnapshotBudget::instance(), open).instrument(round_span(request)).await
}

/// [`run_round`] with the snapshot memory taken from `budget` (benchmarks and tests choose theirs).
pub async fn run_round_with<R: RunRecorder>(
    deps: &RoundDeps<'_, R>,
    request: &RoundRequest,
    budget: &SnapshotBudget,
) -> Result<RoundReport, SyncError> {
    drive(deps, request, budget, None).instrument(round_span(request)).await
}

fn round_span(request: &RoundRequest) -> tracing::Span {
    tracing::info_span!(
        "sync_round",
        tenant_id = request.tenant_id,
        class = %request.class,
        run_id = tracing::field::Empty,
        mode = tracing::field::Empty,
    )
}

async fn drive<R: RunRecorder>(
    deps: &RoundDeps<'_, R>,
    request: &RoundRequest,
    budget: &SnapshotBudget,
    open: Option<OpenStart<'_>>,
) -> Result<RoundReport, SyncError> {
    let Started { mut run, link: mut start_link, client } = start::begin(deps, request, open).await?;
    // A delta stream goes on with the start's pooled connection (one pool checkout less, and each checkout
    // may be a round trip); a full round gives it back while it reads its snapshot.
    let mut spare = client.filter(|_| run.target.mode == SyncMode::Delta);
    let span = tracing::Span::current();
    span.record("run_id", tracing::field::display(run.target.run_id));
    span.record("mode", tracing::field::display(run.target.mode));
    if let Err(error) = choose_path(deps.pool, budget, &mut run).await {
        record_failure(deps.recorder, run.target, run.counts, run.reason.clone(), &error).await;
        return Err(error);
    }

    let mut restarted = false;
    let (ending, recorded) = loop {
        let delta_request = match start_link.take() {
            Some(link) => DeltaRequest::resume(request.class, link),
            None => DeltaRequest::full(request.class),
        }
        .with_priority(request.priority)
        .with_prefetch(PREFETCH_PAGES);
        match stream_pages(deps, request, &mut run, delta_request, spare.take()).await {
            Ok(ending) => break ending,
            // 410 Gone / syncStateNotFound: the token is dead; list everything again (once per round).
            Err(SyncError::Graph(error)) if error.requires_full_resync() && !restarted => {
                restarted = true;
                restart_as_full(deps, &mut run, &error).await?;
                choose_path(deps.pool, budget, &mut run).await?;
                span.record("mode", tracing::field::display(run.target.mode));
            }
            // The run belongs to whoever advanced it: its history is theirs to write.
            Err(error @ SyncError::RunMovedOn { .. }) => return Err(error),
            Err(error) => {
                record_failure(deps.recorder, run.target, run.counts, run.reason.clone(), &error).await;
                return Err(error);
            }
        }
    };

    match recorded {
        // The end row committed with the last batch: the recorder only hears of it.
        Some(finished) => {
            deps.recorder.finished_in_round(&finished).await;
            Ok(concluded(&finished, run.resumed))
        }
        None => {
            let reason = ending.reason.clone().or(run.reason.clone());
            conclude(deps.recorder, run.target, run.counts, Ending { reason, ..ending }, run.resumed).await
        }
    }
}

/// A full round of users or devices compares with a snapshot of the stored markers when it fits in the
/// budget (re-read on resumption, with the marks the run committed before); groups and rounds that do not
/// fit stream (a marker probe and a seen row per object): the membership sweep reads the groups' seen rows.
/// A run may switch paths when resumed; the marks of each path carry over to the other.
async fn choose_path<'b>(pool: &Pool, budget: &'b SnapshotBudget, run: &mut Run<'b>) -> Result<(), SyncError> {
    // The old snapshot's memory goes back first.
    run.snapshot = None;
    let t = run.target;
    // After a restart as full the run's earlier groups are no longer "created by it" and its seen rows are
    // forgotten: what this stream remembers is still everything of the run's that it could collide with.
    run.written = (t.class == ObjectClass::Group && !run.resumed).then(|| Fingerprints::new(budget));
    if t.mode != SyncMode::Full {
        return Ok(());
    }
    if t.class != ObjectClass::Group {
        if let Some(mut snapshot) = Snapshot::load(pool, budget, t).await? {
            if run.resumed {
                snapshot.restore_marks(pool, t.run_id).await?;
            }
            tracing::debug!(objects = snapshot.len(), seen = snapshot.seen_count(), "full round on the snapshot path");
            run.snapshot = Some(snapshot);
            return Ok(());
        }
    }
    if run.resumed {
        // Batches of this run that took the snapshot path marked what they saw in chunks.
        let client = pool.get().await?;
        run_scratch::seen_chunks_to_rows(&client, t.run_id).await?;
    }
    Ok(())
}

/// Streams and applies pages, a batch per transaction, until the deltaLink page has committed (the
/// stream fetches the next pages while a batch is written).
async fn stream_pages<R: RunRecorder>(
    deps: &RoundDeps<'_, R>,
    request: &RoundRequest,
    run: &mut Run<'_>,
    delta_request: DeltaRequest,
    client: Option<deadpool_postgres::Object>,
) -> Result<(Ending, Option<RunFinished>), SyncError> {
    let mut client = match client {
        Some(client) => client,
        None => deps.pool.get().await?,
    };
    let pages = deps.graph.delta_pages(request.graph_tenant.clone(), delta_request);
    let mut batches = Batches::new(pages, request.batch_objects);
    let mut hints = match run.hints.take() {
        Some(hints) => hints,
        // A resumed stream (restarted as full) asks the store again.
        None => start::page_hints(&client, run.target, true, None).await?,
    };
    let class = run.target.class;
    let mut upcoming = next_prepared(&mut batches, class, &deps.policy).await;
    while let Some(batch) = upcoming.take() {
        let batch = batch?;
        let more = matches!(batch.next, PageLink::Next(_));
        // While this batch is written, the next one is fetched and prepared: the client's work overlaps
        // the database's. A write error returns at once; a fetch error waits its turn (`upcoming`), so
        // the batches before it are written first.
        let prefetch = async { Ok(if more { next_prepared(&mut batches, class, &deps.policy).await } else { None }) };
        let (ending, following) =
            futures::try_join!(apply_and_report(deps, request, &mut client, run, &mut hints, batch), prefetch)?;
        if let Some(ending) = ending {
            return Ok(ending);
        }
        upcoming = following;
    }
    Err(SyncError::Graph(GraphError::MalformedResponse {
        url: "delta round".to_owned(),
        detail: "the page stream ended without a deltaLink".to_owned(),
    }))
}

/// A batch of pages, folded and prepared (markers computed): what one transaction applies.
struct PreparedBatch {
    page: PreparedPage,
    next: PageLink,
    pages: u64,
    graph_requests: u64,
    throttled_waits: u64,
}

async fn next_prepared<S>(
    batches: &mut Batches<S>,
    class: ObjectClass,
    policy: &Arc<dyn ObjectPolicy>,
) -> Option<Result<PreparedBatch, GraphError>>
where
    S: futures::Stream<Item = Result<crate::graph::DeltaPage, GraphError>> + Unpin,
{
    let batch = match batches.next().await? {
        Ok(batch) => batch,
        Err(error) => return Some(Err(error)),
    };
    let PageBatch { items, next, pages, graph_requests, throttled_waits, .. } = batch;
    // Folded across the batch's pages: the last occurrence of an object wins, as within a page. The
    // folding, the policy and the markers are CPU work: on a blocking thread they overlap the write of
    // the previous batch, which this task must keep driving (its statements go out in round trips).
    let policy = Arc::clone(policy);
    let page = match tokio::task::spawn_blocking(move || prepare(class, items, policy.as_ref())).await {
        Ok(page) => page,
        // A panic in the policy is the round's panic, as it was before the work moved threads.
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    };
    Some(Ok(PreparedBatch { page, next, pages, graph_requests, throttled_waits }))
}

/// Applies a batch of pages with its checkpoint (or the round's end) in one transaction, then reports
/// progress.
async fn apply_and_report<R: RunRecorder>(
    deps: &RoundDeps<'_, R>,
    request: &RoundRequest,
    client: &mut deadpool_postgres::Object,
    run: &mut Run<'_>,
    hints: &mut PageHints,
    batch: PreparedBatch,
) -> Result<Option<(Ending, Option<RunFinished>)>, SyncError> {
    let mut counts = run.counts;
    counts.pages += batch.pages;
    counts.graph_requests += batch.graph_requests;
    counts.throttled_waits += batch.throttled_waits;
    let prepared = &batch.page;
    counts.filtered += prepared.filtered.len() as u64;

    let transaction = client.transaction().await?;
    // The claim and the page's first statements travel together; the claim still runs first (one
    // connection executes in order), and if it fails nothing of the page commits.
    let snapshot = run.snapshot.as_ref();
    let written = run.written.as_ref();
    let apply =
        async { Ok::<_, SyncError>(apply_batch(&transaction, run.target, prepared, *hints, snapshot, written).await?) };
    let ((), (outcome, mut marks)) = futures::try_join!(claim(&transaction, run), apply)?;
    // Set before the commit: if the commit fails the round stops, and a new stream asks the store again.
    hints.staged_deletions |= outcome.staged_deletions > 0;
    hints.restored_groups |= outcome.restored_groups > 0;
    counts.changed += outcome.newly_changed;
    counts.total += match run.target.mode {
        SyncMode::Delta => prepared.distinct,
        // A round runs full or delta only.
        SyncMode::Full | SyncMode::Remap | SyncMode::TagSync => {
            outcome.newly_listed + (prepared.removals.len() + prepared.filtered.len()) as u64
        }
    };
    counts.rows_written += outcome.object_rows + outcome.member_rows;
    let ending = match &batch.next {
        PageLink::Next(next) => {
            let t = run.target;
            cursors::checkpoint(&transaction, t.tenant_id, t.class, t.run_id, t.mode, Some(next), &counts).await?;
            None
        }
        PageLink::Delta(delta_link) => {
            let reconcile_members = hints.restored_groups;
            // The sweep needs this batch's marks too. Set before the commit: should the transaction fail,
            // the round ends and its snapshot with it.
            if let Some(snapshot) = run.snapshot.as_mut() {
                snapshot.mark(std::mem::take(&mut marks));
            }
            let snapshot = run.snapshot.as_ref();
            let end =
                RoundEnd { delta_link, restored_groups: reconcile_members, staged_deletions: hints.staged_deletions };
            let ending = finish(&transaction, request, run.target, snapshot, end, &mut counts).await?;
            // The end row commits with the run's last batch when the recorder lets the round write it.
            let recorded = if deps.recorder.rows_in_round() {
                let reason = ending.reason.clone().or(run.reason.clone());
                let finished = finished_event(run.target, counts, ending.status, reason);
                runs::finish(&transaction, &finished).await?;
                Some(finished)
            } else {
                None
            };
            Some((ending, recorded))
        }
    };
    transaction.commit().await?;
    run.counts = counts;
    // Only what committed is remembered: a batch that failed leaves the snapshot as the store has it.
    if let Some(written) = run.written.as_mut() {
        written.add(marks.memberships.iter().copied());
    }
    if let Some(snapshot) = run.snapshot.as_mut() {
        snapshot.mark(marks);
    }
    tracing::debug!(
        pages = counts.pages,
        objects = prepared.distinct,
        rows = outcome.object_rows,
        memberships = outcome.member_rows,
        "pages applied"
    );
    if ending.is_none() {
        report_progress(deps.recorder, run.target, run.counts, run.reason.clone()).await;
    }
    Ok(ending)
}

/// What the last batch knows of its round as the round ends.
struct RoundEnd<'a> {
    delta_link: &'a str,
    /// A delta group round restored groups, whose memberships it reconciles like a full round's.
    restored_groups: bool,
    /// The run may have staged deletions (`PageHints::staged_deletions`): false only when no page did.
    staged_deletions: bool,
}

/// The end of a round, in the last page's transaction: sweep (full), guards, deletions, deltaLink.
async fn finish(
    db: &impl GenericClient,
    request: &RoundRequest,
    target: PageTarget,
    snapshot: Option<&Snapshot<'_>>,
    end: RoundEnd<'_>,
    counts: &mut RunCounts,
) -> Result<Ending, SyncError> {
    let RoundEnd { delta_link, restored_groups, staged_deletions } = end;
    let PageTarget { tenant_id, class, run_id, mode } = target;
    let full = mode == SyncMode::Full;
    // A full round needs the exact live count (short-listing guard); a delta round only as far as the
    // deletion guard looks (`stored_that_decides`), which is cheap in a tenant of millions.
    let exact_live = if full { Some(live_now(db, target, snapshot).await?) } else { None };
    if let Some(stored_live) = exact_live {
        let listed = match snapshot {
            Some(snapshot) => snapshot.seen_count() + snapshot.created_count(),
            // Every object a run creates counts as changed: a run that changed nothing created nothing.
            None => run_scratch::listed_count(db, run_id, tenant_id, class, counts.changed > 0).await?,
        };
        if let Some(reason) = short_listing(listed, stored_live) {
            // Keep what the pages wrote (it is true), drop the run, delete nothing; the next round lists again.
            tracing::warn!(listed, stored_live, "full listing refused: {reason}");
            cursors::abandon_run(db, tenant_id, class).await?;
            run_scratch::clear(db, run_id).await?;
            return Ok(Ending { status: RunStatus::Failed, reason: Some(reason) });
        }
        match snapshot {
            // The set difference: the snapshot's live objects the listing did not see.
            Some(snapshot) => {
                let unseen = snapshot.unseen_live();
                run_scratch::stage_unlisted(db, run_id, tenant_id, class, &unseen, REASON_NOT_LISTED).await?
            }
            None => run_scratch::stage_sweep(db, run_id, tenant_id, class, REASON_NOT_LISTED).await?,
        };
    }

    // A full round's sweep stages deletions above; a delta round's only come from its pages.
    let pending = if full || staged_deletions { Pending::Count } else { Pending::None };
    let ending = settle_deletions(db, request.guard, target, exact_live, pending, counts).await?;

    if class == ObjectClass::Group && (full || restored_groups) {
        let groups = run_scratch::sweep_members(db, run_id, tenant_id).await?;
        counts.rows_written += groups.len() as u64;
        counts.changed += run_scratch::record_changed(db, run_id, &groups).await?;
    }
    // Independent statements, sent together: one round trip.
    futures::try_join!(cursors::complete(db, tenant_id, class, delta_link, full), run_scratch::clear(db, run_id))?;
    Ok(ending)
}

/// The live objects stored now, for a full round's guards. The snapshot path knows them but for those
/// with a deletion held for an operator, which the store counts (usually none): no read of every row
/// (~1 s at 1,000,000 objects), and no count of the run's creations either.
async fn live_now(db: &impl GenericClient, t: PageTarget, snapshot: Option<&Snapshot<'_>>) -> Result<u64, SyncError> {
    let Some(snapshot) = snapshot else {
        return Ok(objects::live_count(db, t.tenant_id, t.class).await?);
    };
    let held = objects::live_count_among(db, t.tenant_id, t.class, snapshot.held_ids()).await?;
    let live = snapshot.live_count_but_held() + held;
    // Debug builds (every test's round) hold the snapshot's arithmetic to the store's own counts.
    if cfg!(debug_assertions) {
        let (stored, created) = futures::try_join!(
            objects::live_count(db, t.tenant_id, t.class),
            run_scratch::created_count(db, t.run_id, t.tenant_id, t.class),
        )?;
        if (stored, created) != (live, snapshot.created_count()) {
            return Err(SyncError::Unexpected(anyhow::anyhow!(
                "the snapshot counts {live} live objects and {} created by the run; the store {stored} and {created}",
                snapshot.created_count()
            )));
        }
    }
    Ok(live)
}

/// Whether a run's end must count its staged deletions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pending {
    /// The run may have staged some: count them.
    Count,
    /// No page of the run staged any, and nothing else stages a run's deletions.
    None,
}

/// The deletion guard at the end of a run (a round's or a re-map's), in its last transaction: the run's
/// staged deletions are held for an operator when they reach the guard's limit, applied otherwise.
/// `exact_live`: the live objects stored, when the caller counted them already.
pub(super) async fn settle_deletions(
    db: &impl GenericClient,
    guard: DeletionGuard,
    target: PageTarget,
    exact_live: Option<u64>,
    pending: Pending,
    counts: &mut RunCounts,
) -> Result<Ending, SyncError> {
    let PageTarget { tenant_id, class, run_id, .. } = target;
    let deletions = match pending {
        Pending::Count => run_scratch::pending_deletion_count(db, run_id, tenant_id, class).await?,
        Pending::None => 0,
    };
    let stored_for_guard = match exact_live {
        Some(stored) => stored,
        None => objects::live_count_up_to(db, tenant_id, class, guard.stored_that_decides(deletions)).await?,
    };
    if guard.holds(deletions, stored_for_guard) {
        let stored_live = match exact_live {
            Some(stored) => stored,
            None => objects::live_count(db, tenant_id, class).await?, // exact, for the operator's message
        };
        let held = held_deletions::hold_pending(db, run_id, tenant_id, class).await?;
        counts.deleted += held;
        let limit = guard.limit(stored_live);
        tracing::warn!(held, limit, "deletions held for an operator");
        return Ok(Ending {
            status: RunStatus::Held,
            reason: Some(format!(
                "{held} deletions held: at or above the deletion guard ({limit} for {stored_live} stored objects); \
                 nothing was deleted until an operator allows or rejects them"
            )),
        });
    }
    // Nothing pending (most runs): applying would delete nothing, so it is not asked for.
    if deletions > 0 {
        let applied = run_scratch::apply_pending_deletions(db, run_id, tenant_id, class).await?;
        counts.deleted += applied.objects;
        counts.rows_written += applied.objects + applied.memberships;
    }
    Ok(Ending { status: RunStatus::Success, reason: None })
}

async fn restart_as_full<R: RunRecorder>(
    deps: &RoundDeps<'_, R>,
    run: &mut Run<'_>,
    error: &GraphError,
) -> Result<(), SyncError> {
    let reason = format!("restarted as a full scan: {error}");
    tracing::warn!(%reason, "delta token rejected");
    run.target.mode = SyncMode::Full;
    run.reason = Some(reason);
    let mut client = deps.pool.get().await?;
    let transaction = client.transaction().await?;
    claim(&transaction, run).await?;
    let t = run.target;
    // What a previous listing saw (or created) says nothing about the new one; staged deletions stay
    // (later pages unstage whatever reappears).
    run_scratch::forget_seen(&transaction, t.run_id).await?;
    run_scratch::forget_created(&transaction, t.run_id, t.tenant_id, t.class).await?;
    cursors::checkpoint(&transaction, t.tenant_id, t.class, t.run_id, t.mode, None, &run.counts).await?;
    transaction.commit().await?;
    report_progress(deps.recorder, run.target, run.counts, run.reason.clone()).await;
    Ok(())
}

/// Locks the run's checkpoint for this transaction, or stops if someone else advanced the run.
async fn claim(db: &impl GenericClient, run: &Run<'_>) -> Result<(), SyncError> {
    let t = run.target;
    if cursors::claim_run(db, t.tenant_id, t.class, t.run_id, run.counts.pages).await? {
        Ok(())
    } else {
        Err(SyncError::RunMovedOn { run_id: t.run_id })
    }
}

/// The final event of a run that ended without an error.
fn finished_event(target: PageTarget, counts: RunCounts, status: RunStatus, reason: Option<String>) -> RunFinished {
    RunFinished {
        run_id: target.run_id,
        tenant_id: target.tenant_id,
        class: target.class,
        mode: target.mode,
        status,
        counts,
        reason,
        error: None,
        finished_at: Utc::now(),
    }
}

/// A run's last history event, durable before it returns, and its report. Rounds and re-maps end alike.
pub(super) async fn conclude<R: RunRecorder>(
    recorder: &R,
    target: PageTarget,
    counts: RunCounts,
    ending: Ending,
    resumed: bool,
) -> Result<RoundReport, SyncError> {
    let finished = finished_event(target, counts, ending.status, ending.reason);
    recorder.finished(&finished).await?;
    Ok(concluded(&finished, resumed))
}

/// The report of a run whose final event is durable.
fn concluded(finished: &RunFinished, resumed: bool) -> RoundReport {
    let counts = finished.counts;
    tracing::info!(
        mode = %finished.mode,
        status = finished.status.as_str(),
        total = counts.total,
        changed = counts.changed,
        deleted = counts.deleted,
        filtered = counts.filtered,
        pages = counts.pages,
        "run finished"
    );
    RoundReport {
        run_id: finished.run_id,
        mode: finished.mode,
        status: finished.status,
        counts,
        reason: finished.reason.clone(),
        resumed,
    }
}

/// The run's counts so far. The checkpoint, not the history, is the source of truth: a missed progress
/// update is only logged.
pub(super) async fn report_progress<R: RunRecorder>(
    recorder: &R,
    target: PageTarget,
    counts: RunCounts,
    reason: Option<String>,
) {
    let progress = RunProgress {
        run_id: target.run_id,
        tenant_id: target.tenant_id,
        class: target.class,
        mode: target.mode,
        reason,
        counts,
    };
    if let Err(error) = recorder.progress(&progress).await {
        tracing::warn!(%error, "run progress not recorded");
    }
}

/// Best effort: the failed run's history row (the checkpoint is kept, so the next run resumes).
pub(super) async fn record_failure<R: RunRecorder>(
    recorder: &R,
    target: PageTarget,
    counts: RunCounts,
    reason: Option<String>,
    error: &SyncError,
) {
    tracing::warn!(%error, mode = %target.mode, "run failed; the checkpoint is kept for the next run");
    let finished = RunFinished {
        run_id: target.run_id,
        tenant_id: target.tenant_id,
        class: target.class,
        mode: target.mode,
        status: RunStatus::Failed,
        counts,
        reason,
        error: Some(error.to_string()),
        finished_at: Utc::now(),
    };
    if let Err(record_error) = recorder.finished(&finished).await {
        tracing::error!(error = %record_error, "failed run not recorded");
    }
}
