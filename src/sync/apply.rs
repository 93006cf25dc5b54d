//! Applies one prepared page inside the caller's transaction: compare markers (one query), write only
//! what changed (bulk), merge membership, stage deletions for the round's end, mark what a full round saw.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::page::PreparedPage;
use crate::model::{ObjectClass, SyncMode};
use crate::store::members::MemberEntries;
use crate::store::objects::{self, ObjectWrites};
use crate::store::{held_deletions, members, run_scratch, StoreError};

/// The run a page belongs to.
#[derive(Debug, Clone, Copy)]
pub struct PageTarget {
    pub tenant_id: i64,
    pub class: ObjectClass,
    pub run_id: Uuid,
    pub mode: SyncMode,
}

/// What the round knows about its scratch state, so a page can skip statements that would find
/// nothing. The default assumes everything may exist (always correct).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHints {
    /// The run may have staged deletions (a reappearing object must be unstaged).
    pub staged_deletions: bool,
    /// The tenant and class may have deletions held for an operator (a reappearing object supersedes).
    pub held_deletions: bool,
}

impl Default for PageHints {
    fn default() -> Self {
        Self { staged_deletions: true, held_deletions: true }
    }
}

/// What a page changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageOutcome {
    /// Objects changed by this page that no earlier page of the run had changed.
    pub newly_changed: u64,
    /// Object rows written (inserted or updated).
    pub object_rows: u64,
    /// Membership rows inserted or deleted.
    pub member_rows: u64,
    /// Deletions staged for the round's end.
    pub staged_deletions: u64,
    /// Full rounds: listed objects no earlier page of the run had listed (a large group repeats on
    /// several pages but counts once).
    pub newly_listed: u64,
}

pub const REASON_SOFT_DELETED: &str = "deleted in Entra ID (restorable)";
pub const REASON_PERMANENT: &str = "permanently deleted in Entra ID";
pub const REASON_FILTERED: &str = "outside the scoping filter";
pub const REASON_NOT_LISTED: &str = "absent from a full listing";

/// Applies a page in two pipelined round trips (plus one in the rare case of tombstones): the
/// statements that need only the page (marker lookup, unstaging, superseding, membership, seen marks)
/// are sent together, then the writes that depend on the stored markers. Statements with nothing to
/// do are not sent, so an unchanged page of a full round costs one round trip here.
pub async fn apply_page(
    db: &impl GenericClient,
    target: PageTarget,
    page: &PreparedPage,
) -> Result<PageOutcome, StoreError> {
    apply_page_with(db, target, page, PageHints::default()).await
}

/// [`apply_page`], skipping the unstaging and superseding statements that `hints` says find nothing.
pub async fn apply_page_with(
    db: &impl GenericClient,
    target: PageTarget,
    page: &PreparedPage,
    hints: PageHints,
) -> Result<PageOutcome, StoreError> {
    let PageTarget { tenant_id, class, run_id, mode } = target;
    let full = mode == SyncMode::Full;
    let mut outcome = PageOutcome::default();

    let ids: Vec<Uuid> = page
        .objects
        .iter()
        .map(|o| o.id)
        .chain(page.removals.iter().map(|(id, _)| *id))
        .chain(page.filtered.iter().copied())
        .collect();
    let present: Vec<Uuid> = page.objects.iter().map(|o| o.id).collect();
    // Membership: slices are merged, never taken as the whole list.
    let (mut added, mut removed) = (MemberEntries::default(), MemberEntries::default());
    for change in &page.members {
        let entries = if change.present { &mut added } else { &mut removed };
        entries.push(change.group_id, change.member_id, &change.member_class);
    }
    // What a full round marks as listed (a delta round marks nothing).
    let (seen_ids, seen_groups, seen_members): (&[Uuid], &[Uuid], &[Uuid]) =
        if full { (&present, &added.group_ids, &added.member_ids) } else { (&[], &[], &[]) };

    // Round trip 1: everything that depends on the page alone. An object seen again after a deletion
    // earlier in the run (or a held one) is not deleted.
    let (stored, (), _superseded, gained, lost, newly_listed, ()) = futures::try_join!(
        objects::stored_states(db, tenant_id, class, &ids),
        run_scratch::unstage_deletions(db, run_id, if hints.staged_deletions { &present } else { &[] }),
        held_deletions::supersede(db, tenant_id, class, if hints.held_deletions { &present } else { &[] }),
        members::add(db, tenant_id, &added),
        members::remove(db, tenant_id, &removed),
        run_scratch::mark_seen(db, run_id, seen_ids),
        run_scratch::mark_members_seen(db, run_id, seen_groups, seen_members),
    )?;
    outcome.newly_listed = newly_listed;
    outcome.member_rows = (gained.len() + lost.len()) as u64;

    // Objects: only new, changed or restored ones are sent.
    let mut writes = ObjectWrites::default();
    for object in &page.objects {
        let unchanged = stored.get(&object.id).is_some_and(|s| s.marker == object.marker && !s.deleted);
        if !unchanged {
            writes.push(object.id, object.marker, object.attrs.clone(), object.mapped.clone());
        }
    }

    // Deletions wait for the round's end (deletion guard); only those that would change a row count.
    let (mut delete_ids, mut permanent, mut reasons) = (Vec::new(), Vec::new(), Vec::new());
    let mut tombstones = Vec::new();
    for &(id, is_permanent) in &page.removals {
        let Some(state) = stored.get(&id) else {
            if !is_permanent {
                tombstones.push(id);
            }
            continue;
        };
        if is_permanent || !state.deleted {
            delete_ids.push(id);
            permanent.push(is_permanent);
            reasons.push(if is_permanent { REASON_PERMANENT } else { REASON_SOFT_DELETED }.to_owned());
        }
    }
    for &id in &page.filtered {
        if stored.get(&id).is_some_and(|s| !s.deleted) {
            delete_ids.push(id);
            permanent.push(false);
            reasons.push(REASON_FILTERED.to_owned());
        }
    }
    outcome.staged_deletions = delete_ids.len() as u64;

    let mut changed_ids = writes.ids.clone();
    changed_ids.extend(gained);
    changed_ids.extend(lost);
    // Round trip 2: the writes. Tombstones bypass the guard (nothing stored is lost by them) and are
    // written at once.
    let (object_rows, tombstoned, (), newly_changed) = futures::try_join!(
        objects::upsert(db, tenant_id, class, &writes),
        objects::insert_tombstones(db, tenant_id, class, &tombstones, REASON_SOFT_DELETED),
        run_scratch::stage_deletions(db, run_id, &delete_ids, &permanent, &reasons),
        run_scratch::record_changed(db, run_id, &changed_ids),
    )?;
    outcome.object_rows = object_rows + tombstoned;
    outcome.newly_changed = newly_changed;
    if tombstoned > 0 {
        // Counted apart: `ON CONFLICT DO NOTHING` makes the two inserts count the union once.
        outcome.newly_changed += run_scratch::record_changed(db, run_id, &tombstones).await?;
    }
    Ok(outcome)
}
