//! One page of a delta round: which objects changed after the round's USN, in what shape (full,
//! changed properties only, `@removed`), with large groups' `members@delta` sliced across pages.

use crate::body::{append, append_json};
use crate::directory::{Directory, Life, Record};
use crate::ids::{mix64, ObjectRef};
use crate::props::{odata_type, prop_name};
use crate::rng::SplitMix;
use crate::token::DeltaState;
use entrasync_model::ObjectClass;

/// How the server shapes this page (the server, not the client, chooses page sizes).
#[derive(Debug, Clone)]
pub struct PagePlan {
    pub page_size: usize,
    /// Member entries (`members@delta` items) per page, across all groups on it.
    pub member_page_size: usize,
    /// `Prefer: return=minimal`: changed properties only.
    pub minimal: bool,
    /// Probability of repeating an object (within the page, from the previous page, or next round).
    pub replay_rate: f64,
    /// Serve an empty page that still carries a nextLink.
    pub empty: bool,
}

pub struct DeltaPage {
    /// The `value` array's items, comma-separated, without brackets.
    pub value: Vec<u8>,
    pub objects: usize,
    /// Where the next page starts, or `None` when the round is complete.
    pub next: Option<DeltaState>,
}

enum Shape {
    Skip,
    Removed(&'static str),
    /// Created/restored (or initial round): every selected property, every current member.
    Full,
    /// Changed since the round's USN: changed properties (all in default mode), member changes.
    Changed,
}

fn shape(dir: &Directory, state: &DeltaState, obj: ObjectRef, rec: &Record) -> Shape {
    if state.initial {
        return if rec.life == Life::Live { Shape::Full } else { Shape::Skip };
    }
    if rec.usn <= state.since {
        return Shape::Skip;
    }
    match rec.life {
        Life::SoftDeleted => Shape::Removed("changed"),
        Life::Deleted => Shape::Removed("deleted"),
        Life::Live if rec.born_usn > state.since => Shape::Full,
        Life::Live => {
            let props_changed = rec
                .overrides
                .as_ref()
                .is_some_and(|o| o.iter().any(|o| o.usn > state.since && state.select.props.contains(&o.prop)));
            let members_changed = obj.class == ObjectClass::Group
                && state.select.members
                && dir.members[obj.index as usize].usn > state.since;
            // A change to an unselected property does not make the object appear.
            if props_changed || members_changed {
                Shape::Changed
            } else {
                Shape::Skip
            }
        }
    }
}

fn write_head(out: &mut Vec<u8>, dir: &Directory, obj: ObjectRef) {
    if !out.is_empty() {
        out.push(b',');
    }
    append(out, format_args!("{{\"id\":\"{}\"", dir.codec.encode(obj)));
}

fn write_prop(out: &mut Vec<u8>, name: &str, value: &serde_json::Value) {
    // A property name is one of ours (`props`), plain ASCII: written as it is, without the formatter.
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    append_json(out, value);
}

fn write_props(
    out: &mut Vec<u8>,
    dir: &Directory,
    state: &DeltaState,
    obj: ObjectRef,
    rec: &Record,
    only_changed: bool,
) {
    if only_changed {
        for o in rec.overrides.iter().flat_map(|o| o.iter()) {
            if o.usn > state.since && state.select.props.contains(&o.prop) {
                write_prop(out, prop_name(obj.class, o.prop), &o.value);
            }
        }
        return;
    }
    let values = dir.attributes(obj);
    for &prop in &state.select.props {
        if let Some(value) = &values[usize::from(prop)] {
            write_prop(out, prop_name(obj.class, prop), value);
        }
    }
}

fn write_members(out: &mut Vec<u8>, dir: &Directory, slice: &[(u32, bool)]) {
    out.extend_from_slice(b",\"members@delta\":[");
    for (i, (packed, present)) in slice.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let member = ObjectRef::unpack(*packed);
        append(
            out,
            format_args!("{{\"@odata.type\":\"{}\",\"id\":\"{}\"", odata_type(member.class), dir.codec.encode(member)),
        );
        if !present {
            out.extend_from_slice(b",\"@removed\":{\"reason\":\"deleted\"}");
        }
        out.push(b'}');
    }
    out.push(b']');
}

/// A group's next `budget` members@delta entries after `after` (none for other classes, or without
/// `members` selected), and whether more follow.
fn member_slice(
    dir: &Directory,
    state: &DeltaState,
    obj: ObjectRef,
    full: bool,
    after: Option<u32>,
    budget: usize,
) -> (Vec<(u32, bool)>, bool) {
    if obj.class != ObjectClass::Group || !state.select.members {
        return (Vec::new(), false);
    }
    let membership = &dir.members[obj.index as usize];
    let mut entries: Box<dyn Iterator<Item = (u32, bool)>> = if state.initial {
        Box::new(membership.current_after(after).map(|m| (m, true)))
    } else if full {
        Box::new(membership.full_listing_after(state.since, after))
    } else {
        Box::new(membership.changes_after(state.since, after))
    };
    let slice: Vec<(u32, bool)> = entries.by_ref().take(budget).collect();
    let more = entries.next().is_some();
    (slice, more)
}

fn position_to_index(state: &DeltaState, position: u32) -> u32 {
    match &state.filter {
        Some(indexes) => indexes[position as usize],
        None => position,
    }
}

/// Computes one page of the round described by `state`.
pub fn delta_page(dir: &Directory, state: &DeltaState, plan: &PagePlan) -> DeltaPage {
    let class = state.class;
    let records = dir.records(class);
    let total = state.filter.as_ref().map_or(records.len(), Vec::len) as u32;
    let mut out = Vec::with_capacity(plan.page_size * 400);
    let mut objects = 0usize;
    let advance = |cursor: u32, member_after: Option<u32>| DeltaState {
        cursor,
        member_after,
        page: state.page + 1,
        ..state.clone()
    };
    if plan.empty {
        return DeltaPage { value: out, objects, next: Some(advance(state.cursor, state.member_after)) };
    }
    let mut rng = SplitMix::new(
        mix64(state.since ^ (u64::from(state.cursor) << 20) ^ u64::from(state.page)) ^ state.upto ^ dir.seed,
    );
    let replay = plan.replay_rate > 0.0;
    let mut member_budget = plan.member_page_size.max(1);
    // Replay across pages: the last object before this page shows up again; a group with its first
    // slice of members again, so a client sees memberships it has already written in an earlier batch.
    if replay && state.cursor > 0 && state.member_after.is_none() && rng.chance(plan.replay_rate) {
        let obj = ObjectRef::new(class, position_to_index(state, state.cursor - 1));
        let rec = &records[obj.index as usize];
        if let shape @ (Shape::Full | Shape::Changed) = shape(dir, state, obj, rec) {
            write_head(&mut out, dir, obj);
            write_props(&mut out, dir, state, obj, rec, false);
            let (slice, _) = member_slice(dir, state, obj, matches!(shape, Shape::Full), None, member_budget);
            if !slice.is_empty() {
                write_members(&mut out, dir, &slice);
                member_budget = member_budget.saturating_sub(slice.len()).max(1);
            }
            out.push(b'}');
            objects += 1;
        }
    }
    let mut position = state.cursor;
    let mut member_after = state.member_after;
    while position < total && objects < plan.page_size {
        let obj = ObjectRef::new(class, position_to_index(state, position));
        let rec = &records[obj.index as usize];
        let start = out.len();
        match shape(dir, state, obj, rec) {
            Shape::Skip => {
                position += 1;
                member_after = None;
                continue;
            }
            Shape::Removed(reason) => {
                write_head(&mut out, dir, obj);
                append(&mut out, format_args!(",\"@removed\":{{\"reason\":\"{reason}\"}}}}"));
                position += 1;
            }
            shape @ (Shape::Full | Shape::Changed) => {
                let full = matches!(shape, Shape::Full);
                let (slice, more) = member_slice(dir, state, obj, full, member_after, member_budget);
                if slice.is_empty() && more && objects > 0 {
                    break; // no member budget left on this page: the group starts the next one
                }
                write_head(&mut out, dir, obj);
                write_props(&mut out, dir, state, obj, rec, !full && plan.minimal);
                if !slice.is_empty() {
                    write_members(&mut out, dir, &slice);
                }
                out.push(b'}');
                member_budget = member_budget.saturating_sub(slice.len());
                if more {
                    // The rest of this group's members follow on the next page, the group repeated.
                    objects += 1;
                    member_after = slice.last().map(|(m, _)| *m);
                    break;
                }
                position += 1;
                member_after = None;
            }
        }
        objects += 1;
        // Duplicate within the page.
        if replay && rng.chance(plan.replay_rate) {
            let copy = out[start..].to_vec();
            if !copy.starts_with(b",") {
                out.push(b',');
            }
            out.extend_from_slice(&copy);
            objects += 1;
        }
    }
    let next = (position < total).then(|| advance(position, member_after));
    DeltaPage { value: out, objects, next }
}

/// The state the round's deltaLink carries. With replays on, a later round may repeat recent changes.
pub fn next_round(state: &DeltaState, replay_rate: f64, issued_ms: i64) -> DeltaState {
    let mut since = state.upto;
    if !state.initial && replay_rate > 0.0 {
        let mut rng = SplitMix::new(state.upto ^ state.since.rotate_left(17));
        if rng.chance(replay_rate) {
            since = state.upto.saturating_sub(1 + rng.below(3)).max(state.since);
        }
    }
    DeltaState { initial: false, since, upto: 0, cursor: 0, member_after: None, page: 0, issued_ms, ..state.clone() }
}
