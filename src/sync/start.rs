//! A round's start: resume the checkpointed run or start a new one in the right mode, in one transaction
//! that commits before Graph is asked — the cursor, the new run's checkpoint, the run's start row and
//! the page hints when the recorder lets the round write its rows, and the tenant's first budget lease.
//! A worker's round joins the job start's transaction, still open on the run-lock session
//! ([`OpenStart`]), so the job's start and the run's start are one transaction (issue 16, target 5); the
//! cursor and whether deletions are held come from the job start's own read ([`StartRead`]).

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::apply::{PageHints, PageTarget};
use super::error::SyncError;
use super::recorder::{RunFinished, RunRecorder, RunStarted};
use super::round::{RoundDeps, RoundRequest, Run};
use crate::graph::{BucketSpec, Grant};
use crate::model::{ObjectClass, RunCounts, RunStatus, SyncMode};
use crate::store::run_lock::{OpenStart, StartRead};
use crate::store::{cursors, held_deletions, rate_budget, run_scratch, runs, Db, StoreError};

/// Graph keeps delta tokens for 7 days; an older stored link is replaced by a full round.
const MAX_DELTA_LINK_AGE: Duration = Duration::from_secs(6 * 24 * 3600);

/// A started run: where its first stream begins (`None`: a full listing from the beginning) and the
/// pooled connection a delta stream goes on with (`None` when the start was written elsewhere).
pub(super) struct Started<'b> {
    pub(super) run: Run<'b>,
    pub(super) link: Option<String>,
    pub(super) client: Option<deadpool_postgres::Object>,
}

/// What a start transaction found and wrote, before it commits.
enum Opened<'b> {
    Run(Box<Opening<'b>>),
    /// An interrupted delta run must give way to the full scan now due: it ends in transactions of its own.
    Supersede {
        checkpoint: cursors::RunCheckpoint,
        why_full: String,
    },
}

/// A run started (or resumed) in a transaction not yet committed.
struct Opening<'b> {
    run: Run<'b>,
    link: Option<String>,
    started: RunStarted,
    grant: Option<Grant>,
}

/// Starts (or resumes) the run: in `open`, the job start's transaction, when given; else in a
/// transaction on a pooled connection.
pub(super) async fn begin<'b, R: RunRecorder>(
    deps: &RoundDeps<'_, R>,
    request: &RoundRequest,
    open: Option<OpenStart<'_>>,
) -> Result<Started<'b>, SyncError> {
    let lease = deps.graph.rate_budget().and_then(|budget| budget.run_start_lease(&request.graph_tenant));
    let lease = lease.as_ref().map(|(bucket, wanted)| (bucket, *wanted));
    if let Some(open) = open {
        // On an error `open` is dropped uncommitted: the job's release rolls the whole start back.
        let opened = open_run(deps, request, &open, open.read(), lease).await?;
        open.commit().await?;
        match opened {
            Opened::Run(opening) => {
                let Opening { run, link, started, grant } = *opening;
                announce(deps, lease, grant, &started).await?;
                return Ok(Started { run, link, client: None });
            }
            Opened::Supersede { .. } => {}
        }
    }
    let mut client = deps.pool.get().await?;
    let mut superseded = false;
    loop {
        let transaction = client.transaction().await?;
        match open_run(deps, request, &transaction, None, lease).await? {
            Opened::Run(opening) => {
                transaction.commit().await?;
                let Opening { run, link, started, grant } = *opening;
                announce(deps, lease, grant, &started).await?;
                return Ok(Started { run, link, client: Some(client) });
            }
            Opened::Supersede { checkpoint, why_full } if !superseded => {
                transaction.rollback().await?;
                supersede(deps.recorder, &mut client, request, &checkpoint, &why_full).await?;
                superseded = true;
            }
            // The checkpoint it just abandoned is back: someone else runs this (tenant, class).
            Opened::Supersede { checkpoint, .. } => return Err(SyncError::RunMovedOn { run_id: checkpoint.run_id }),
        }
    }
}

/// The start's statements, in `db`'s transaction; `read`: what the job's start already read in it.
async fn open_run<'b, R: RunRecorder>(
    deps: &RoundDeps<'_, R>,
    request: &RoundRequest,
    db: &impl Db,
    read: Option<&StartRead>,
    lease: Option<(&BucketSpec, u32)>,
) -> Result<Opened<'b>, SyncError> {
    let cursor = match read {
        Some(read) => read.cursor.clone(),
        None => cursors::load(db, request.tenant_id, request.class)
            .await?
            .ok_or(SyncError::TenantNotFound(request.tenant_id))?,
    };
    let (mode, reason) = choose_mode(request, &cursor);
    let (mut run, link) = match cursor.in_progress {
        // Finishing an interrupted delta run would leave the full scan that is now due undone.
        Some(checkpoint) if checkpoint.mode == SyncMode::Delta && mode == SyncMode::Full => {
            return Ok(Opened::Supersede { checkpoint, why_full: reason.unwrap_or_default() });
        }
        Some(checkpoint) => resume(request, checkpoint, cursor.delta_link),
        None => start_run(db, request, cursor.delta_link, mode, reason).await?,
    };
    let started = RunStarted {
        run_id: run.target.run_id,
        tenant_id: run.target.tenant_id,
        class: run.target.class,
        mode: run.target.mode,
        trigger: request.trigger,
        started_at: Utc::now(),
        resumed: run.resumed,
        reason: run.reason.clone(),
        counts: run.counts,
        instance_id: request.instance_id.clone(),
        job_id: request.job_id,
    };
    // The tenant's first budget lease rides on this transaction instead of taking one of its own.
    let leasing = async {
        match lease {
            Some((bucket, wanted)) => rate_budget::lease_in(db, bucket, wanted).await.map(Some),
            None => Ok(None),
        }
    };
    let grant = if deps.recorder.rows_in_round() {
        let (hints, (), grant) = futures::try_join!(
            page_hints(db, run.target, run.resumed, read),
            runs::insert_started(db, &started),
            leasing
        )?;
        run.hints = Some(hints);
        grant
    } else {
        leasing.await?
    };
    Ok(Opened::Run(Box::new(Opening { run, link, started, grant })))
}

/// After the start committed: the lease's grant goes to the local budget, the recorder hears of the start
/// (and writes its row, when the round did not).
async fn announce<R: RunRecorder>(
    deps: &RoundDeps<'_, R>,
    lease: Option<(&BucketSpec, u32)>,
    grant: Option<Grant>,
    started: &RunStarted,
) -> Result<(), SyncError> {
    if let (Some(budget), Some((bucket, _)), Some(grant)) = (deps.graph.rate_budget(), lease, grant) {
        budget.credit(&bucket.key, grant);
    }
    if deps.recorder.rows_in_round() {
        deps.recorder.started_in_round(started).await;
    } else {
        deps.recorder.started(started).await?;
    }
    Ok(())
}

/// The checkpointed run, resumed from its next page (or its start, or the stored deltaLink).
fn resume<'b>(
    request: &RoundRequest,
    checkpoint: cursors::RunCheckpoint,
    delta_link: Option<String>,
) -> (Run<'b>, Option<String>) {
    let link = match (checkpoint.mode, checkpoint.next_link) {
        (_, Some(next)) => Some(next),
        (SyncMode::Delta, None) => delta_link,
        // A round never leaves a re-map's or tag sync's checkpoint; if one is there, start over as full.
        (SyncMode::Full | SyncMode::Remap | SyncMode::TagSync, None) => None,
    };
    // A delta run without any link to continue from can only start over as full.
    let mode = if link.is_none() { SyncMode::Full } else { checkpoint.mode };
    let target = PageTarget { tenant_id: request.tenant_id, class: request.class, run_id: checkpoint.run_id, mode };
    tracing::info!(run_id = %checkpoint.run_id, pages = checkpoint.counts.pages, "resuming a checkpointed run");
    (Run::new(target, checkpoint.counts, None, true), link)
}

/// A new run of `mode`, checkpointed before its first page.
async fn start_run<'b>(
    db: &impl Db,
    request: &RoundRequest,
    delta_link: Option<String>,
    mode: SyncMode,
    reason: Option<String>,
) -> Result<(Run<'b>, Option<String>), SyncError> {
    let run_id = Uuid::new_v4();
    let target = PageTarget { tenant_id: request.tenant_id, class: request.class, run_id, mode };
    cursors::checkpoint(db, request.tenant_id, request.class, run_id, mode, None, &RunCounts::default()).await?;
    let link = if mode == SyncMode::Delta { delta_link } else { None };
    Ok((Run::new(target, RunCounts::default(), reason, false), link))
}

/// What the first batch of a stream needs to know of the run's scratch state. Held deletions are only
/// created at a round's end and this (tenant, class) runs nowhere else; staged ones only by this run's
/// pages. What is absent now stays absent until a page stages some. A run that starts now has no
/// scratch state at all. `read`: what the job's start read in this transaction (held deletions).
pub(super) async fn page_hints(
    db: &impl Db,
    t: PageTarget,
    resumed: bool,
    read: Option<&StartRead>,
) -> Result<PageHints, StoreError> {
    let any_held = async {
        match read {
            Some(read) => Ok(read.held_deletions),
            None => held_deletions::any_held(db, t.tenant_id, t.class).await,
        }
    };
    if !resumed {
        let held_deletions = any_held.await?;
        return Ok(PageHints { staged_deletions: false, held_deletions, restored_groups: false });
    }
    let (staged_deletions, held_deletions, restored_groups) =
        futures::try_join!(run_scratch::has_staged_deletions(db, t.run_id), any_held, restored_groups_marked(db, t))?;
    Ok(PageHints { staged_deletions, held_deletions, restored_groups })
}

/// Whether a delta group run restored groups before it was resumed (the only objects it marks seen).
async fn restored_groups_marked(db: &impl Db, t: PageTarget) -> Result<bool, StoreError> {
    if t.mode == SyncMode::Delta && t.class == ObjectClass::Group {
        run_scratch::has_seen(db, t.run_id).await
    } else {
        Ok(false)
    }
}

/// Drops an interrupted delta run's checkpoint and scratch state and ends it in the history as cancelled,
/// so a full scan can start in its place. What its pages applied stays (it is true).
async fn supersede<R: RunRecorder>(
    recorder: &R,
    client: &mut deadpool_postgres::Object,
    request: &RoundRequest,
    checkpoint: &cursors::RunCheckpoint,
    why_full: &str,
) -> Result<(), SyncError> {
    let transaction = client.transaction().await?;
    let claimed =
        cursors::claim_run(&transaction, request.tenant_id, request.class, checkpoint.run_id, checkpoint.counts.pages)
            .await?;
    if !claimed {
        return Err(SyncError::RunMovedOn { run_id: checkpoint.run_id });
    }
    run_scratch::clear(&transaction, checkpoint.run_id).await?;
    cursors::abandon_run(&transaction, request.tenant_id, request.class).await?;
    transaction.commit().await?;
    let reason = format!("superseded by a full scan ({why_full})");
    tracing::info!(run_id = %checkpoint.run_id, %reason, "an interrupted delta run gives way to a full scan");
    let finished = RunFinished {
        run_id: checkpoint.run_id,
        tenant_id: request.tenant_id,
        class: request.class,
        mode: SyncMode::Delta,
        status: RunStatus::Cancelled,
        counts: checkpoint.counts,
        reason: Some(reason),
        error: None,
        finished_at: Utc::now(),
    };
    recorder.finished(&finished).await?;
    Ok(())
}

fn choose_mode(request: &RoundRequest, cursor: &cursors::CursorState) -> (SyncMode, Option<String>) {
    let too_old =
        cursor.delta_link_at.is_some_and(|at| (Utc::now() - at).to_std().unwrap_or_default() > MAX_DELTA_LINK_AGE);
    let reason = if request.force_full {
        Some("full scan forced by the caller")
    } else if cursor.delta_link.is_none() {
        Some("no delta token stored yet")
    } else if cursor.full_scan_requested {
        Some("full scan requested for the tenant")
    } else if too_old {
        Some("the stored delta token is older than 6 days")
    } else {
        None
    };
    match reason {
        Some(reason) => (SyncMode::Full, Some(reason.to_owned())),
        None => (SyncMode::Delta, None),
    }
}
