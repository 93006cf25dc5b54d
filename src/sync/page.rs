//! Turns one Graph delta page into what the store needs: duplicates folded (the last occurrence of an
//! object wins, membership slices are merged in order), scoping and mapping applied, markers computed.
//! Pure: no I/O, so the rules are unit-tested here.

use std::collections::HashMap;

use serde_json::Value;
use uuid::Uuid;

use super::marker::{canonical_attrs, canonicalize, marker_of};
use super::policy::{Admission, ObjectPolicy, Reads};
use crate::graph::{CanonicalJson, DeltaItem, MemberRef};
use crate::model::ObjectClass;
use crate::store::wire::JsonText;

/// An object to store (if its marker differs from the stored one).
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedObject {
    pub id: Uuid,
    pub marker: i64,
    /// Canonical JSON text of the attributes: hashed for the marker and stored as it is.
    pub attrs: JsonText,
    /// Canonical JSON text of the mapped attributes (hashed into the marker and stored as it is).
    pub mapped: Option<JsonText>,
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

/// An upsert's attributes as the item carried them.
enum Attrs {
    /// Built by hand (`DeltaItem::Upsert`): canonicalised here.
    Map(serde_json::Map<String, Value>),
    /// From a parsed page (`DeltaItem::Parsed`): already canonical text, hashed and stored as it is.
    Canonical(CanonicalJson),
}

/// Folds and prepares a page's items. Memory is O(page).
pub fn prepare(class: ObjectClass, items: Vec<DeltaItem>, policy: &dyn ObjectPolicy) -> PreparedPage {
    let mut page = PreparedPage::default();
    // Final state per object, in first-seen order so the output is deterministic.
    let mut order: Vec<Uuid> = Vec::new();
    let mut last: HashMap<Uuid, Last> = HashMap::new();
    let mut upserts: Vec<Attrs> = Vec::new();
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
        let (attrs, members_added, members_removed) = match item {
            DeltaItem::Removed { permanent, .. } => {
                last.insert(id, Last::Removed(permanent));
                continue;
            }
            DeltaItem::Upsert { attrs, members_added, members_removed, .. } => {
                (Attrs::Map(attrs), members_added, members_removed)
            }
            DeltaItem::Parsed { attrs, members_added, members_removed, .. } => {
                (Attrs::Canonical(attrs), members_added, members_removed)
            }
        };
        upserts.push(attrs);
        last.insert(id, Last::Upsert(upserts.len() - 1));
        let slices = members_removed.iter().map(|m| (m, false)).chain(members_added.iter().map(|m| (m, true)));
        for (member, present) in slices {
            merge_member(&mut members, &mut member_index, id, member, present, &mut page.unusable);
        }
    }

    page.distinct = order.len() as u64;
    let mut upserts: Vec<Option<Attrs>> = upserts.into_iter().map(Some).collect();
    let mut admitted_groups: Vec<Uuid> = Vec::new();
    let reads = policy.reads();
    let no_attrs = serde_json::Map::new();
    page.objects.reserve(order.len());
    for id in order {
        match last.remove(&id) {
            Some(Last::Removed(permanent)) => page.removals.push((id, permanent)),
            Some(Last::Upsert(index)) => {
                let Some(attrs) = upserts.get_mut(index).and_then(Option::take) else { continue };
                let (admission, attrs) = match attrs {
                    Attrs::Map(attrs) => {
                        let attrs = canonical_attrs(attrs);
                        (policy.admit(class, &attrs), Attrs::Map(attrs))
                    }
                    // The policy gets only the attributes it reads (PassThrough none).
                    Attrs::Canonical(text) => {
                        let admission = match &reads {
                            Reads::Nothing => policy.admit(class, &no_attrs),
                            Reads::Attributes(names) => policy.admit(class, &text.to_map_of(names)),
                            Reads::Everything => policy.admit(class, &text.to_map()),
                        };
                        (admission, Attrs::Canonical(text))
                    }
                };
                match admission {
                    Admission::Filter => page.filtered.push(id),
                    Admission::Admit { mapped, on_create } => {
                        let (marker, attrs) = match attrs {
                            Attrs::Map(attrs) => {
                                let canonical = canonicalize(&attrs, mapped.as_ref());
                                (canonical.marker, canonical.attrs_json)
                            }
                            Attrs::Canonical(text) => (marker_of(text.as_bytes(), mapped.as_ref()), text.into_bytes()),
                        };
                        let attrs = JsonText::from_json_bytes(attrs);
                        page.objects.push(PreparedObject { id, marker, attrs, mapped, on_create });
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

/// A delta page of 200 users shaped like Graph's (30 properties each), for the CPU measurements of
/// preparing pages (here and in `mapping::policy`).
#[cfg(test)]
pub(crate) fn graph_shaped_user_page() -> String {
    let objects: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"id":"00000000-0000-4000-8000-{i:012x}","userPrincipalName":"user.{i}@contoso.onmicrosoft.com","displayName":"User Number {i}","givenName":"User","surname":"Number {i}","mail":"user.{i}@contoso.com","jobTitle":"Senior Engineer","officeLocation":"Building 7","mobilePhone":"+1 555 01{i:02}","businessPhones":["+1 555 0100"],"preferredLanguage":"en-US","accountEnabled":true,"department":"Research","companyName":"Contoso","employeeId":"{:07}","employeeType":"Employee","mailNickname":"user.{i}","userType":"Member","createdDateTime":"2021-03-12T10:36:14Z","usageLocation":"US","city":"Redmond","country":"United States","state":"WA","postalCode":"98052","streetAddress":"{} Main Street","onPremisesSyncEnabled":true,"onPremisesImmutableId":"dGVzdGluZzEyMw==","onPremisesSamAccountName":"user{i}","onPremisesExtensionAttributes":{{"extensionAttribute1":"CC-0042"}}}}"#,
                1_000_000 + i,
                i + 1
            )
        })
        .collect();
    format!(r#"{{"@odata.nextLink":"https://g/n","value":[{}]}}"#, objects.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::marker::canonical_json;
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
                    Admission::Admit { mapped: Some(canonical_json(&json!({"tag": "kept"}))), on_create: None }
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
        assert_eq!(page.objects[0].mapped.as_ref().map(JsonText::as_bytes), Some(&br#"{"tag":"kept"}"#[..]));
        assert_eq!(page.members.len(), 1);
        assert_eq!(page.members[0].group_id, uuid(A));
    }

    /// What the page parser gave before issue 16 (a map of values, canonicalised here): the reference
    /// the borrowed parser must match byte for byte, or every stored marker would change once.
    fn reference(object: &str) -> Option<crate::sync::marker::Canonical> {
        let mut map: serde_json::Map<String, Value> = serde_json::from_str(object).ok()?;
        map.remove("id");
        map.retain(|key, _| !key.contains('@'));
        Some(canonicalize(&canonical_attrs(map), None))
    }

    fn parsed(object: &str) -> Result<DeltaItem, crate::graph::GraphError> {
        let body = format!(r#"{{"@odata.deltaLink":"https://g/d","value":[{object}]}}"#);
        let (mut items, _) = crate::graph::parse_page_canonical("u", body.as_bytes())?;
        Ok(items.remove(0))
    }

    fn assert_same_canonical_text(object: &str) {
        let expected = reference(object).expect("the reference parses it");
        let Ok(DeltaItem::Parsed { attrs, .. }) = parsed(object) else { panic!("{object}: not parsed") };
        assert_eq!(
            String::from_utf8_lossy(attrs.as_bytes()),
            String::from_utf8_lossy(&expected.attrs_json),
            "{object}"
        );
        let page = prepare(ObjectClass::User, vec![parsed(object).expect("parsed")], &PassThrough);
        assert_eq!(page.objects[0].marker, expected.marker, "{object}");
        assert_eq!(page.objects[0].attrs.as_bytes(), expected.attrs_json.as_slice());
    }

    #[test]
    fn parsed_pages_give_the_canonical_text_and_marker_of_the_map_path() {
        let id = r#""id":"00000000-0000-4000-8000-00000000000a""#;
        let objects = [
            r#"{"displayName":"Cameron White","givenName":"Cameron","surname":"White","id":"ffff7b1a-13b6-477b-8c0c-380905cd99f7"}"#.to_owned(),
            format!(r#"{{{id},"b":1,"a":null,"c":[1,null,{{"z":null,"y":2}}],"@odata.type":"x"}}"#),
            // Escapes in keys and values, non-ASCII raw and escaped, surrogate pairs, solidus.
            format!(r#"{{{id},"k\"ey":"a\"b","\u00e9t\u00e9":"caf\u00e9","raw":"été ☃ 😀","pair":"\ud83d\ude00","sl":"a\/b","ctl":"\u0001\n\t\r\b\f","del":"\u007f"}}"#),
            // Numbers: serde_json's rules (-0, exponents, trailing zeros, large integers, floats).
            format!(r#"{{{id},"n":[0,-0,1.0,1e2,1E-7,2.50,-3,18446744073709551615,-9223372036854775808,1.5e300,0.1,123456789012345678901234567890,5e-324]}}"#),
            // Duplicate keys: the last wins, at the top level (even a null) and nested.
            format!(r#"{{{id},"d":1,"d":2,"e":"x","e":null,"n":{{"a":1,"b":2,"a":3}}}}"#),
            // Key order by bytes, not by characters or case.
            format!(r#"{{{id},"b":1,"B":2,"é":3,"e":4,"":5,"aa":6,"a":7,"_":8}}"#),
            format!(r#"{{{id},"empty":{{}},"list":[],"nested":[[[]],[{{}}]],"t":true,"f":false}}"#),
            format!(r#"{{ {id} , "spaced" : [ 1 , 2 ] , "obj" : {{ "b" : null , "a" : "x" }} }}"#),
            // The emulator's shape: an extension attribute object, phones, a date.
            format!(r#"{{{id},"userPrincipalName":"a.b@contoso.com","businessPhones":["+1 555 0100"],"onPremisesExtensionAttributes":{{"extensionAttribute1":"CC-0042"}},"createdDateTime":"2021-03-12T10:36:14Z","accountEnabled":true,"mail":null}}"#),
        ];
        for object in &objects {
            assert_same_canonical_text(object);
        }
        // Deep nesting within serde_json's limit parses the same; beyond it the page is malformed.
        let deep = format!(r#"{{{id},"deep":{}1{}}}"#, "[".repeat(100), "]".repeat(100));
        assert_same_canonical_text(&deep);
        let too_deep = format!(r#"{{{id},"deep":{}1{}}}"#, "[".repeat(200_000), "]".repeat(200_000));
        assert!(matches!(parsed(&too_deep), Err(crate::graph::GraphError::MalformedResponse { .. })));
    }

    #[test]
    fn generated_objects_give_the_canonical_text_of_the_map_path() {
        // A small deterministic generator of JSON values (xorshift), covering what the samples miss.
        struct Gen(u64);
        impl Gen {
            fn next(&mut self) -> u64 {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0
            }
            fn below(&mut self, n: u64) -> u64 {
                self.next() % n
            }
            fn string(&mut self) -> String {
                const PARTS: [&str; 13] =
                    ["a", "B", "z", "é", r"\u00e9", r#"\""#, r"\n", " ", "😀", r"\ud83d\ude00", r"\/", "0", "a"];
                let len = self.below(5);
                let text: String = (0..len).map(|_| PARTS[self.below(PARTS.len() as u64) as usize]).collect();
                format!("\"{text}\"")
            }
            fn value(&mut self, depth: u32) -> String {
                match self.below(if depth > 3 { 6 } else { 8 }) {
                    0 => "null".to_owned(),
                    1 => ["true", "false"][self.below(2) as usize].to_owned(),
                    2 => ["0", "-1", "42", "1.25", "-0.5e3", "1e21", "9007199254740993"][self.below(7) as usize]
                        .to_owned(),
                    3..=5 => self.string(),
                    6 => {
                        let items: Vec<String> = (0..self.below(4)).map(|_| self.value(depth + 1)).collect();
                        format!("[{}]", items.join(","))
                    }
                    _ => self.object(depth + 1),
                }
            }
            fn object(&mut self, depth: u32) -> String {
                let entries: Vec<String> =
                    (0..self.below(6)).map(|_| format!("{}:{}", self.string(), self.value(depth))).collect();
                format!("{{{}}}", entries.join(","))
            }
        }
        let mut generator = Gen(0x9e37_79b9_7f4a_7c15);
        let mut objects = Vec::new();
        for n in 0..2_000 {
            let body = generator.object(0);
            let rest = if body == "{}" { "}".to_owned() } else { format!(",{}", &body[1..]) };
            let object = format!(r#"{{"id":"00000000-0000-4000-8000-{n:012x}"{rest}"#);
            assert_same_canonical_text(&object);
            objects.push(object);
            // The same keys in the same order with other values (nulls, duplicates): the parser reuses
            // the previous object's key order within a page.
            let mut twin = generator.object(0);
            if twin.len() > 2 {
                twin = format!(r#"{{"id":"00000000-0000-4000-8000-{n:012x}",{}"#, &twin[1..]);
                objects.push(twin);
            }
            // And with a null and a duplicate key after every property but the id.
            let last = &objects[objects.len() - 1];
            let (head, tail) = last.split_at(last.find(r#"","#).map_or(last.len(), |at| at + 2));
            objects.push(format!("{head}{}", tail.replace(r#"":"#, r#"":null,"x":"#)));
        }
        // Whole pages of them.
        for page in objects.chunks(64) {
            let body = format!(r#"{{"@odata.nextLink":"https://g/n","value":[{}]}}"#, page.join(","));
            let (items, _) = crate::graph::parse_page_canonical("u", body.as_bytes()).expect("page");
            for (object, item) in page.iter().zip(items) {
                let DeltaItem::Parsed { attrs, .. } = item else { panic!("parsed") };
                let expected = reference(object).expect("reference");
                assert_eq!(attrs.as_bytes(), expected.attrs_json.as_slice(), "{object}");
            }
        }
        // Same shape, different values and nulls, one page.
        let shaped: Vec<String> = (0..50)
            .map(|n| {
                let (a, b) = if n % 3 == 0 {
                    ("null".to_owned(), "1".to_owned())
                } else {
                    (format!("\"v{n}\""), "null".to_owned())
                };
                format!(r#"{{"id":"00000000-0000-4000-8000-{n:012x}","z":{a},"a":{b},"m":{a},"a":{a}}}"#)
            })
            .collect();
        let body = format!(r#"{{"@odata.nextLink":"https://g/n","value":[{}]}}"#, shaped.join(","));
        let (items, _) = crate::graph::parse_page_canonical("u", body.as_bytes()).expect("page");
        for (object, item) in shaped.iter().zip(items) {
            let DeltaItem::Parsed { attrs, .. } = item else { panic!("parsed") };
            assert_eq!(attrs.as_bytes(), reference(object).expect("reference").attrs_json.as_slice(), "{object}");
        }
    }

    /// Client CPU of a page (issue 16): `cargo test --release -p entrasync --lib parse_and_prepare_cost
    /// -- --ignored --nocapture` prints microseconds per object for pages shaped like the emulator's.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn parse_and_prepare_cost() {
        let body = graph_shaped_user_page();
        let pages = 2_000;
        let started = std::time::Instant::now();
        let mut markers = 0i64;
        for _ in 0..pages {
            let (items, _) = crate::graph::parse_page_canonical("u", body.as_bytes()).expect("page");
            let page = prepare(ObjectClass::User, items, &PassThrough);
            markers = markers.wrapping_add(page.objects[0].marker);
        }
        let per_object = started.elapsed().as_secs_f64() * 1e6 / f64::from(pages * 200);
        println!("{} bytes per page; parse + prepare: {per_object:.2} µs per object ({markers})", body.len());
        let started = std::time::Instant::now();
        for _ in 0..pages / 4 {
            let mut raw: serde_json::Map<String, Value> = serde_json::from_slice(body.as_bytes()).expect("page");
            let Some(Value::Array(values)) = raw.remove("value") else { panic!("value") };
            let items: Vec<DeltaItem> = values
                .into_iter()
                .map(|v| {
                    let Value::Object(mut map) = v else { panic!("object") };
                    let Some(Value::String(id)) = map.remove("id") else { panic!("id") };
                    DeltaItem::Upsert { id, attrs: map, members_added: vec![], members_removed: vec![] }
                })
                .collect();
            let page = prepare(ObjectClass::User, items, &PassThrough);
            markers = markers.wrapping_add(page.objects[0].marker);
        }
        let per_object = started.elapsed().as_secs_f64() * 1e6 / f64::from(pages / 4 * 200);
        println!("the map path (values tree, then canonicalised): {per_object:.2} µs per object ({markers})");
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
