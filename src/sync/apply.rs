//! Applies one prepared page inside the caller's transaction: compare markers (one query), write only
//! what changed (bulk), then merge membership, stage deletions for the round's end, mark what a full round
//! saw. Object rows are written before membership rows, so a group new in the batch has its `created`
//! event before its `member_added` ones (docs/events.md, "Ordering").

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::fingerprints::Fingerprints;
use super::page::PreparedPage;
use super::snapshot::{BatchMarks, Known, Snapshot};
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
    /// A delta group round may have restored a group whose membership it is reconciling (its later
    /// member slices must be marked seen).
    pub restored_groups: bool,
}

impl Default for PageHints {
    fn default() -> Self {
        Self { staged_deletions: true, held_deletions: true, restored_groups: true }
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
    /// Delta group rounds: groups restored by this page (their membership is reconciled at the round's end).
    pub restored_groups: u64,
}

pub const REASON_SOFT_DELETED: &str = "deleted in Entra ID (restorable)";
pub const REASON_PERMANENT: &str = "permanently deleted in Entra ID";
pub const REASON_FILTERED: &str = "out of scope";
pub const REASON_NOT_LISTED: &str = "absent from a full listing";

/// Applies a page in two pipelined round trips, plus one for a page with membership slices and one when
/// those changed groups stored before this run (or the page had tombstones): the statements that need
/// only the page (marker lookup, unstaging, superseding) are sent together, then the writes that depend
/// on the stored markers, then the membership merge, whose statements must follow the object writes (the
/// triggers write events in statement order) and whose outcome says which stored groups changed.
/// Statements with nothing to do are not sent. New objects are copied in (`COPY`), and because the lookup
/// says which objects this run created, they need no seen or changed marks: a new tenant's first round
/// writes each object once.
pub async fn apply_page(
    tx: &Transaction<'_>,
    target: PageTarget,
    page: &PreparedPage,
) -> Result<PageOutcome, StoreError> {
    apply_page_with(tx, target, page, PageHints::default()).await
}

/// [`apply_page`], skipping the unstaging and superseding statements that `hints` says find nothing.
pub async fn apply_page_with(
    tx: &Transaction<'_>,
    target: PageTarget,
    page: &PreparedPage,
    hints: PageHints,
) -> Result<PageOutcome, StoreError> {
    Ok(apply_batch(tx, target, page, hints, None, None).await?.0)
}

/// [`apply_page_with`], comparing with a re-scan snapshot when the round holds one: stored states come
/// from it (the store is asked only for ids it cannot answer for), and a full round's seen marks become
/// one chunk row instead of a row per object. With `written`, the memberships of a group this run
/// created, and the seen marks of a stored group's memberships, are copied in when the fingerprints say
/// the stream has not written them yet. The marks are returned, for the caller to remember once the
/// transaction has committed.
pub(super) async fn apply_batch(
    tx: &Transaction<'_>,
    target: PageTarget,
    page: &PreparedPage,
    hints: PageHints,
    snapshot: Option<&Snapshot<'_>>,
    written: Option<&Fingerprints<'_>>,
) -> Result<(PageOutcome, BatchMarks), StoreError> {
    let PageTarget { tenant_id, class, run_id, mode } = target;
    let full = mode == SyncMode::Full;
    // A restored group is listed like a new one, with every current member and no removals: in a delta
    // round its membership is reconciled like a full round's (marked seen here, swept at the round's end),
    // or members removed before its deletion would stay stored for ever.
    let reconciling = mode == SyncMode::Delta && class == ObjectClass::Group;
    let mut outcome = PageOutcome::default();

    let ids: Vec<Uuid> = page
        .objects
        .iter()
        .map(|o| o.id)
        .chain(page.removals.iter().map(|(id, _)| *id))
        .chain(page.filtered.iter().copied())
        .collect();
    let present: Vec<Uuid> = page.objects.iter().map(|o| o.id).collect();
    // With a snapshot, only the ids it cannot answer for are looked up. Where an id is in the snapshot
    // is kept, for its seen mark and its restore.
    let (mut known, mut indices) = (HashMap::new(), HashMap::new());
    let asked = match snapshot {
        None => ids,
        Some(snapshot) => {
            let mut asked = Vec::new();
            for id in ids {
                match snapshot.known(&id) {
                    Known::Stored(index, state) => {
                        known.insert(id, state);
                        indices.insert(id, index);
                    }
                    Known::Absent => {}
                    Known::Ask(index) => {
                        if let Some(index) = index {
                            indices.insert(id, index);
                        }
                        asked.push(id);
                    }
                }
            }
            asked
        }
    };
    // Membership: slices are merged, never taken as the whole list.
    let (mut added, mut removed) = (MemberEntries::default(), MemberEntries::default());
    for change in &page.members {
        let entries = if change.present { &mut added } else { &mut removed };
        entries.push(change.group_id, change.member_id, &change.member_class);
    }

    // Round trip 1: everything that depends on the page alone. An object seen again after a deletion
    // earlier in the run (or a held one) is not deleted.
    let groups_with_adds: Vec<Uuid> =
        if reconciling && hints.restored_groups { added.group_ids.clone() } else { Vec::new() };
    let (stored, reconciled_before, (), _superseded) = futures::try_join!(
        objects::stored_states(tx, tenant_id, class, run_id, &asked),
        run_scratch::seen_among(tx, run_id, &groups_with_adds),
        run_scratch::unstage_deletions(tx, run_id, if hints.staged_deletions { &present } else { &[] }),
        held_deletions::supersede(tx, tenant_id, class, if hints.held_deletions { &present } else { &[] }),
    )?;
    let stored = if known.is_empty() {
        stored
    } else {
        known.extend(stored);
        known
    };

    // Objects: only new, changed or restored ones are written. What the run created counts as changed
    // and as listed once, when it is created; everything else stored is marked (full rounds) and
    // recorded as changed in the run's scratch tables, which count each object once.
    let (mut inserts, mut updates) = (ObjectWrites::default(), ObjectWrites::default());
    let (mut seen_ids, mut changed_ids) = (Vec::new(), Vec::new());
    let mut marks = BatchMarks::default();
    for object in &page.objects {
        let Some(state) = stored.get(&object.id) else {
            // Create-time values are written here only: an update (or a restore) never touches them.
            inserts.push_new(
                object.id,
                object.marker,
                &object.attrs,
                object.mapped.as_ref(),
                object.on_create.as_ref(),
            );
            continue;
        };
        if full && !state.created_in_run || reconciling && state.deleted {
            seen_ids.push(object.id);
        }
        // The snapshot counts the objects the run makes live (`Snapshot::live_count_but_held`).
        if state.deleted && snapshot.is_some() {
            match indices.get(&object.id) {
                Some(index) => marks.restored.push(*index),
                None => marks.restored_outside += 1,
            }
        }
        if state.marker != object.marker || state.deleted {
            updates.push(object.id, object.marker, &object.attrs, object.mapped.as_ref());
            if !state.created_in_run {
                changed_ids.push(object.id);
            }
        }
    }
    let created_in_run = |group: &Uuid| stored.get(group).is_none_or(|state| state.created_in_run);
    let restored: std::collections::HashSet<Uuid> = if reconciling {
        page.objects.iter().filter(|o| stored.get(&o.id).is_some_and(|s| s.deleted)).map(|o| o.id).collect()
    } else {
        Default::default()
    };
    outcome.restored_groups = restored.len() as u64;
    // A listed membership of a stored group is marked seen (the sweep keeps it): copied in when `written`
    // says the stream has surely not marked it yet, else through `ON CONFLICT`.
    let (mut seen_groups, mut seen_members, mut new_seen) = (Vec::new(), Vec::new(), (Vec::new(), Vec::new()));
    let mut seen_prints = Vec::new();
    for (group, member) in added.group_ids.iter().zip(&added.member_ids) {
        let marks =
            if full { !created_in_run(group) } else { restored.contains(group) || reconciled_before.contains(group) };
        if !marks {
            continue;
        }
        if proven_new(written, group, member, &mut seen_prints) {
            new_seen.0.push(*group);
            new_seen.1.push(*member);
        } else {
            seen_groups.push(*group);
            seen_members.push(*member);
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
    // A filtered object was listed all the same: a full round marks it seen (apart from `newly_listed`,
    // which the round adds the filtered count to), so the short-listing guard counts it and the sweep
    // leaves its "out of scope" deletion as it is.
    let mut filtered_seen = Vec::new();
    for &id in &page.filtered {
        if full && stored.get(&id).is_some_and(|s| !s.created_in_run) {
            filtered_seen.push(id);
        }
        if stored.get(&id).is_some_and(|s| !s.deleted) {
            delete_ids.push(id);
            permanent.push(false);
            reasons.push(REASON_FILTERED.to_owned());
        }
    }
    outcome.staged_deletions = delete_ids.len() as u64;

    // Snapshot path: the seen marks are bits in memory, and what this batch adds to them one chunk row.
    let (mut chunk, mut snapshot_newly_seen) = (Vec::new(), 0);
    if let Some(snapshot) = snapshot {
        let mut mark = |id: Uuid, listed: bool| {
            let first = match indices.get(&id).copied().or_else(|| snapshot.index(&id)) {
                Some(index) => {
                    !snapshot.seen_at(index) && {
                        marks.indices.push(index);
                        true
                    }
                }
                None => {
                    !snapshot.seen_extra(&id) && {
                        marks.extra.push(id);
                        true
                    }
                }
            };
            if first {
                chunk.push(id);
                snapshot_newly_seen += u64::from(listed);
            }
        };
        for id in seen_ids.drain(..) {
            mark(id, true);
        }
        for id in filtered_seen.drain(..) {
            mark(id, false);
        }
    }

    // Round trip 2: the writes. Tombstones bypass the guard (nothing stored is lost by them) and are
    // written at once. (The COPY is prepared first, so the statements after it may run before it.)
    let (inserted, updated, tombstoned, (), newly_changed, newly_seen, (), _filtered_seen, ()) = futures::try_join!(
        objects::insert_new(tx, tenant_id, class, run_id, &inserts),
        objects::upsert(tx, tenant_id, class, &updates),
        objects::insert_tombstones(tx, tenant_id, class, &tombstones, REASON_SOFT_DELETED),
        run_scratch::stage_deletions(tx, run_id, &delete_ids, &permanent, &reasons),
        run_scratch::record_changed(tx, run_id, &changed_ids),
        run_scratch::mark_seen(tx, run_id, &seen_ids),
        run_scratch::mark_members_seen(tx, run_id, &seen_groups, &seen_members),
        run_scratch::mark_seen(tx, run_id, &filtered_seen),
        run_scratch::record_seen_chunk(tx, run_id, &chunk),
    )?;
    marks.memberships = seen_prints;
    if snapshot.is_some() {
        marks.created = inserted;
        // Stored from now on, though outside the snapshot: later batches ask the store for them.
        marks.inserted = inserts.ids;
        marks.inserted.extend_from_slice(&tombstones);
    }
    outcome.object_rows = inserted + updated + tombstoned;
    outcome.newly_changed = inserted + newly_changed;
    outcome.newly_listed = if full { inserted + newly_seen + snapshot_newly_seen } else { 0 };

    // Round trip 3: membership, after the object rows (a sequence of its own: pipelined with them, a
    // statement already prepared would run before the COPY, which prepares first).
    // A group this run created has only the memberships this run wrote: the insert need not look first,
    // and those the run surely has not written (`written`) are copied in.
    let (mut copied, mut merged, mut fresh) = (MemberEntries::default(), MemberEntries::default(), Vec::new());
    for ((group, member), class) in added.group_ids.iter().zip(&added.member_ids).zip(&added.member_classes) {
        let created = created_in_run(group);
        if proven_new(written.filter(|_| created), group, member, &mut marks.memberships) {
            copied.push(*group, *member, class);
        } else {
            merged.push(*group, *member, class);
            fresh.push(created);
        }
    }
    // Two COPYs on one connection run one after the other, whichever is polled first.
    let (copied, gained, lost, _newly_seen) = futures::try_join!(
        members::insert_new(tx, tenant_id, &copied),
        members::add(tx, tenant_id, &merged, &fresh),
        members::remove(tx, tenant_id, &removed),
        run_scratch::copy_members_seen(tx, run_id, &new_seen.0, &new_seen.1),
    )?;
    outcome.member_rows = copied + (gained.len() + lost.len()) as u64;
    // A group this run created holds only memberships this run added: nothing of it to count. Tombstones
    // are counted apart: `ON CONFLICT DO NOTHING` makes the two inserts count the union once.
    let mut changed_later: Vec<Uuid> = gained.into_iter().chain(lost).filter(|group| !created_in_run(group)).collect();
    if tombstoned > 0 {
        changed_later.extend_from_slice(&tombstones);
    }
    outcome.newly_changed += run_scratch::record_changed(tx, run_id, &changed_later).await?;
    Ok((outcome, marks))
}

/// Whether `written` proves the stream has not written the membership yet (it can then be copied in
/// unchecked). Its fingerprint goes to `prints` whenever there is a set, for the stream to remember once
/// the batch commits, whichever path it takes.
fn proven_new(written: Option<&Fingerprints<'_>>, group: &Uuid, member: &Uuid, prints: &mut Vec<u64>) -> bool {
    let Some(written) = written else { return false };
    let print = Fingerprints::of_pair(group, member);
    prints.push(print);
    written.surely_absent(print)
}
