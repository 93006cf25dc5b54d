//! Turns one Graph delta page into what the store needs: duplicates folded (the last occurrence of an
//! object wins, membership slices are merged in order), scoping and mapping applied, markers computed.
//! Pure: no I/O, so the rules are unit-tested here.

use std::collections::HashMap;

use serde_json::Value;
use uuid::Uuid;

use super::marker::{canonical_attrs, canonicalize};
use super::policy::{Admission, ObjectPolicy};
use crate::graph::{DeltaItem, MemberRef};
use crate::model::ObjectClass;
use crate::store::wire::JsonText;

/// An object to store (if its marker differs from the stored one).
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedObject {
    pub id: Uuid,
    pub marker: i64,
    /// Canonical JSON text of the attributes: hashed for the marker and stored as it is.
    pub attrs: JsonText,
    pub mapped: Option<Value>,
    /// Written only when the object is first stored (see [`Admission::Admit`]).
    pub on_create: Option<Value>,
}

/// A membership change of an admitted group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    pub group_id: Uuid,
    pub member_id: Uuid,
    pub member_class: String,
    pub present: bool,
}

/// One page, ready to compare with the store and apply.
#[derive(Debug, Default, PartialEq)]
pub struct PreparedPage {
    pub objects: Vec<PreparedObject>,
    /// `@removed`: (id, permanent).
    pub removals: Vec<(Uuid, bool)>,
    /// Outside the scoping filter.
    pub filtered: Vec<Uuid>,
    /// Net membership changes of admitted groups: one entry per (group, member), last one wins.
    pub members: Vec<MemberChange>,
    /// Distinct objects on the page.
    pub distinct: u64,
    /// Items whose id is not a GUID (logged and skipped: ids are the table key).
    pub unusable: u64,
}

enum Last {
    Upsert(usize),
    Removed(bool),
}

/// Folds and prepares a page's items. Memory is O(page).
pub fn prepare(class: ObjectClass, items: Vec<DeltaItem>, policy: &dyn ObjectPolicy) -> PreparedPage {
    let mut page = PreparedPage::default();
    // Final state per object, in first-seen order so the output is deterministic.
    let mut order: Vec<Uuid> = Vec::new();
    let mut last: HashMap<Uuid, Last> = HashMap::new();
    let mut upserts: Vec<serde_json::Map<String, Value>> = Vec::new();
    let mut member_index: HashMap<(Uuid, Uuid), usize> = HashMap::new();
    let mut members: Vec<MemberChange> = Vec::new();

    for item in items {
        let Ok(id) = Uuid::parse_str(item.id()) else {
            tracing::warn!(object_id = item.id(), %class, "skipping an object whose id is not a GUID");
            page.unusable += 1;
            continue;
        };
        if !last.contains_key(&id) {
            order.push(id);
        }
        match item {
            DeltaItem::Removed { permanent, .. } => {
                last.insert(id, Last::Removed(permanent));
            }
            DeltaItem::Upsert { attrs, members_added, members_removed, .. } => {
                upserts.push(attrs);
                last.insert(id, Last::Upsert(upserts.len() - 1));
                let slices = members_removed.iter().map(|m| (m, false)).chain(members_added.iter().map(|m| (m, true)));
                for (member, present) in slices {
                    merge_member(&mut members, &mut member_index, id, member, present, &mut page.unusable);
                }
            }
        }
    }

    page.distinct = order.len() as u64;
    let mut upserts: Vec<Option<serde_json::Map<String, Value>>> = upserts.into_iter().map(Some).collect();
    let mut admitted_groups: Vec<Uuid> = Vec::new();
    for id in order {
        match last.remove(&id) {
            Some(Last::Removed(permanent)) => page.removals.push((id, permanent)),
            Some(Last::Upsert(index)) => {
                let Some(attrs) = upserts.get_mut(index).and_then(Option::take) else { continue };
                let attrs = canonical_attrs(attrs);
                match policy.admit(class, &attrs) {
                    Admission::Filter => page.filtered.push(id),
                    Admission::Admit { mapped, on_create } => {
                        let canonical = canonicalize(&attrs, mapped.as_ref());
                        let attrs = JsonText::from_json_bytes(canonical.attrs_json);
                        page.objects.push(PreparedObject { id, marker: canonical.marker, attrs, mapped, on_create });
                        admitted_groups.push(id);
                    }
                }
            }
            None => {}
        }
    }
    // Membership counts only for groups that end the page admitted and present.
    if class == ObjectClass::Group && !members.is_empty() {
        admitted_groups.sort_unstable();
        members.retain(|m| admitted_groups.binary_search(&m.group_id).is_ok());
        page.members = members;
    }
    page
}

fn merge_member(
    members: &mut Vec<MemberChange>,
    index: &mut HashMap<(Uuid, Uuid), usize>,
    group_id: Uuid,
    member: &MemberRef,
    present: bool,
    unusable: &mut u64,
) {
    let Ok(member_id) = Uuid::parse_str(&member.id) else {
        tracing::warn!(%group_id, member_id = %member.id, "skipping a member whose id is not a GUID");
        *unusable += 1;
        return;
    };
    let member_class = member.kind.clone().unwrap_or_else(|| "directoryObject".to_owned());
    let change = MemberChange { group_id, member_id, member_class, present };
    match index.get(&(group_id, member_id)) {
        Some(&at) => members[at] = change,
        None => {
            index.insert((group_id, member_id), members.len());
            members.push(change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::policy::PassThrough;
    use serde_json::json;

    const A: &str = "00000000-0000-4000-8000-00000000000a";
    const B: &str = "00000000-0000-4000-8000-00000000000b";
    const M1: &str = "00000000-0000-4000-8000-0000000000f1";
    const M2: &str = "00000000-0000-4000-8000-0000000000f2";

    fn upsert(id: &str, attrs: Value, added: &[&str], removed: &[&str]) -> DeltaItem {
        let refs =
            |ids: &[&str]| ids.iter().map(|i| MemberRef { id: (*i).to_owned(), kind: Some("user".into()) }).collect();
        let Value::Object(attrs) = attrs else { panic!("object") };
        DeltaItem::Upsert { id: id.to_owned(), attrs, members_added: refs(added), members_removed: refs(removed) }
    }

    fn attrs_of(object: &PreparedObject) -> Value {
        serde_json::from_slice(object.attrs.as_bytes()).expect("attrs are JSON")
    }

    fn uuid(text: &str) -> Uuid {
        Uuid::parse_str(text).expect("uuid")
    }

    #[test]
    fn the_last_occurrence_of_an_object_wins() {
        let items = vec![
            upsert(A, json!({"displayName": "old"}), &[], &[]),
            DeltaItem::Removed { id: B.to_owned(), permanent: false },
            upsert(A, json!({"displayName": "new"}), &[], &[]),
            upsert(B, json!({"displayName": "restored"}), &[], &[]),
        ];
        let page = prepare(ObjectClass::User, items, &PassThrough);
        assert_eq!(page.distinct, 2);
        assert!(page.removals.is_empty());
        assert_eq!(page.objects.len(), 2);
        assert_eq!(attrs_of(&page.objects[0]), json!({"displayName": "new"}));
        assert_eq!(attrs_of(&page.objects[1]), json!({"displayName": "restored"}));

        let items = vec![
            upsert(A, json!({"displayName": "x"}), &[], &[]),
            DeltaItem::Removed { id: A.into(), permanent: true },
        ];
        let page = prepare(ObjectClass::User, items, &PassThrough);
        assert_eq!(page.removals, vec![(uuid(A), true)]);
        assert!(page.objects.is_empty());
    }

    #[test]
    fn membership_slices_of_one_group_are_merged_in_order() {
        let items = vec![
            upsert(A, json!({"displayName": "g"}), &[M1, M2], &[]),
            upsert(A, json!({"displayName": "g"}), &[], &[M1]),
        ];
        let page = prepare(ObjectClass::Group, items, &PassThrough);
        let net: Vec<(Uuid, bool)> = page.members.iter().map(|m| (m.member_id, m.present)).collect();
        assert_eq!(net, vec![(uuid(M1), false), (uuid(M2), true)]);
        assert_eq!(page.objects.len(), 1);
    }

    #[test]
    fn duplicate_pages_prepare_identical_markers_and_nulls_mean_unset() {
        let first =
            prepare(ObjectClass::User, vec![upsert(A, json!({"b": 1, "a": null, "c": [1]}), &[], &[])], &PassThrough);
        let second = prepare(ObjectClass::User, vec![upsert(A, json!({"c": [1], "b": 1}), &[], &[])], &PassThrough);
        assert_eq!(first, second);
    }

    #[test]
    fn filtered_objects_are_counted_and_their_members_dropped() {
        struct OnlyNamedKeep;
        impl ObjectPolicy for OnlyNamedKeep {
            fn admit(&self, _class: ObjectClass, attrs: &serde_json::Map<String, Value>) -> Admission {
                if attrs.get("displayName") == Some(&json!("keep")) {
                    Admission::Admit { mapped: Some(json!({"tag": "kept"})), on_create: None }
                } else {
                    Admission::Filter
                }
            }
        }
        let items = vec![
            upsert(A, json!({"displayName": "keep"}), &[M1], &[]),
            upsert(B, json!({"displayName": "drop"}), &[M2], &[]),
        ];
        let page = prepare(ObjectClass::Group, items, &OnlyNamedKeep);
        assert_eq!(page.filtered, vec![uuid(B)]);
        assert_eq!(page.objects[0].mapped, Some(json!({"tag": "kept"})));
        assert_eq!(page.members.len(), 1);
        assert_eq!(page.members[0].group_id, uuid(A));
    }

    #[test]
    fn ids_that_are_not_guids_are_skipped_not_fatal() {
        let items = vec![
            upsert("not-a-guid", json!({}), &[], &[]),
            upsert(A, json!({}), &["632f6bb2-3ec8-4c1f-9073-0027a8c6859"], &[]),
        ];
        let page = prepare(ObjectClass::Group, items, &PassThrough);
        assert_eq!(page.unusable, 2);
        assert_eq!(page.objects.len(), 1);
        assert!(page.members.is_empty());
    }
}
