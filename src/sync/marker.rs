//! The change marker: a 64-bit hash of an object's canonical state. Equal marker, nothing to write.
//!
//! Canonical form: object keys sorted at every level (Graph's property order never matters), array
//! order kept (it is part of the value), and top-level `null`s dropped — without
//! `Prefer: return=minimal` an omitted property is unset, so an explicit `null` means the same thing.
//! xxh3 is specified and stable across releases, so stored markers stay valid after upgrades.

use serde_json::{Map, Value};
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::store::wire::JsonText;

/// Drops top-level `null` properties: "unset" has one representation.
pub fn canonical_attrs(mut attrs: Map<String, Value>) -> Map<String, Value> {
    attrs.retain(|_, value| !value.is_null());
    attrs
}

/// An object's canonical state: its attributes as canonical JSON text (what is stored, so the text is
/// produced once and never serialised again) and the marker of that state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    pub marker: i64,
    /// Canonical JSON text of the attributes (keys sorted at every level, top-level nulls dropped).
    pub attrs_json: Vec<u8>,
}

/// The canonical form and marker of an object's stored state: its canonical attributes and, when
/// mappings produced any, its mapped attributes' canonical text ([`canonical_json`]), so a mapping
/// change rewrites the row.
pub fn canonicalize(attrs: &Map<String, Value>, mapped: Option<&JsonText>) -> Canonical {
    let mut attrs_json = Vec::with_capacity(512);
    write_object(&mut attrs_json, attrs.iter());
    Canonical { marker: marker_of(&attrs_json, mapped), attrs_json }
}

/// The marker of an object whose canonical attribute text is already at hand (a parsed page writes it
/// directly, `graph::CanonicalJson`): the same value [`canonicalize`] computes. `mapped` is canonical
/// text too (the policy writes it so), hashed and stored as it is: never serialised twice.
pub fn marker_of(attrs_json: &[u8], mapped: Option<&JsonText>) -> i64 {
    let digest = match mapped {
        // One shot: the same xxh3-64 as the streaming hasher over the same bytes.
        None => xxh3_64(attrs_json),
        Some(mapped) => {
            let mut hasher = Xxh3::new();
            hasher.update(attrs_json);
            // A separator no JSON text starts with keeps (attrs, mapped) pairs unambiguous.
            hasher.update(&[0]);
            hasher.update(mapped.as_bytes());
            hasher.digest()
        }
    };
    // Stored as Postgres bigint: the same 64 bits, reinterpreted.
    digest as i64
}

/// A JSON value as canonical text (keys sorted at every level, array order kept): the form mapped
/// attributes are hashed and stored in. Policies that build their output as values use this; the
/// compiled mapping policy writes the same bytes directly.
pub fn canonical_json(value: &Value) -> JsonText {
    let mut out = Vec::with_capacity(128);
    write_canonical(&mut out, value);
    JsonText::from_json_bytes(out)
}

fn write_object<'a>(out: &mut Vec<u8>, entries: impl Iterator<Item = (&'a String, &'a Value)>) {
    let mut entries: Vec<(&String, &Value)> = entries.collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (index, (key, value)) in entries.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_string(out, key);
        out.push(b':');
        write_canonical(out, value);
    }
    out.push(b'}');
}

/// Appends the canonical text of `value` (see [`canonical_json`]).
pub fn write_canonical(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => out.extend_from_slice(number.to_string().as_bytes()),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map.iter()),
    }
}

/// Appends `text` as a JSON string, escaped as serde_json escapes it (the canonical form's strings).
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    // serde_json's escaping is deterministic; writing into a Vec cannot fail.
    serde_json::to_writer(&mut *out, text).unwrap_or_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(attrs: &Map<String, Value>, mapped: Option<&JsonText>) -> i64 {
        canonicalize(attrs, mapped).marker
    }
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("object expected"),
        }
    }

    #[test]
    fn property_order_never_changes_the_marker() {
        let a: Map<String, Value> =
            serde_json::from_str(r#"{"displayName":"A","mail":"a@x","nested":{"b":1,"a":[1,2]}}"#).expect("json");
        let b: Map<String, Value> =
            serde_json::from_str(r#"{"nested":{"a":[1,2],"b":1},"mail":"a@x","displayName":"A"}"#).expect("json");
        assert_eq!(marker(&a, None), marker(&b, None));
    }

    #[test]
    fn any_value_change_changes_the_marker() {
        let base = object(json!({"displayName": "A", "tags": ["x", "y"], "enabled": true}));
        let variants = [
            json!({"displayName": "B", "tags": ["x", "y"], "enabled": true}),
            json!({"displayName": "A", "tags": ["y", "x"], "enabled": true}),
            json!({"displayName": "A", "tags": ["x", "y"], "enabled": false}),
            json!({"displayName": "A", "tags": ["x", "y"]}),
            json!({"displayName": "A", "tags": ["x", "y"], "enabled": "true"}),
        ];
        for variant in variants {
            assert_ne!(marker(&base, None), marker(&object(variant.clone()), None), "{variant}");
        }
        assert_ne!(marker(&base, None), marker(&base, Some(&canonical_json(&json!({"tag": "a"})))));
    }

    #[test]
    fn explicit_null_and_omitted_are_the_same_state() {
        let with_null = canonical_attrs(object(json!({"displayName": "A", "mail": null})));
        let without = canonical_attrs(object(json!({"displayName": "A"})));
        assert_eq!(with_null, without);
        assert_eq!(marker(&with_null, None), marker(&without, None));
        // Nested nulls are values (e.g. an alternativeSecurityId's identityProvider).
        let nested = canonical_attrs(object(json!({"ids": [{"identityProvider": null}]})));
        assert_eq!(nested["ids"][0]["identityProvider"], Value::Null);
    }

    #[test]
    fn the_marker_is_stable_across_releases() {
        // Pinned: changing the canonical form or the hash would rewrite every stored row once.
        let attrs = object(json!({"displayName": "Cameron White", "givenName": "Cameron", "surname": "White"}));
        let canonical = {
            let mut out = Vec::new();
            write_object(&mut out, attrs.iter());
            String::from_utf8(out).expect("utf8")
        };
        assert_eq!(canonical, r#"{"displayName":"Cameron White","givenName":"Cameron","surname":"White"}"#);
        assert_eq!(marker(&attrs, None), xxhash_rust::xxh3::xxh3_64(canonical.as_bytes()) as i64);
        assert_eq!(canonicalize(&attrs, None).attrs_json, canonical.as_bytes());
        // With mapped attributes: the attributes' text, a zero byte, the mapped text (keys sorted).
        let mapped = canonical_json(&json!({"upn": "cw", "alias": "Cameron.White"}));
        assert_eq!(mapped.as_bytes(), br#"{"alias":"Cameron.White","upn":"cw"}"#);
        let hashed = [canonical.as_bytes(), b"\0", mapped.as_bytes()].concat();
        assert_eq!(marker(&attrs, Some(&mapped)), xxhash_rust::xxh3::xxh3_64(&hashed) as i64);
    }

    #[test]
    fn the_canonical_text_is_json_of_the_same_value() {
        let attrs = object(json!({"b": [1, {"y": "\u{1}\"", "x": 2.5}], "a": "é", "n": null}));
        let text = canonicalize(&canonical_attrs(attrs.clone()), None).attrs_json;
        let parsed: Value = serde_json::from_slice(&text).expect("canonical text parses");
        assert_eq!(parsed, Value::Object(canonical_attrs(attrs)));
    }
}
