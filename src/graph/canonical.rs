//! Borrowed parsing of delta pages (issue 16, client CPU; docs/architecture.md, "One sync round"): while
//! serde_json reads a page, each object's kept properties are written straight into their canonical
//! JSON text — keys sorted at every level, array order kept, top-level `null`s dropped — the form
//! `sync::marker` hashes and the store keeps. No `serde_json::Value` tree is built and nothing is
//! serialised twice: a string without escapes is copied as it arrived (its text is already its
//! canonical text), keys are sorted as borrowed slices of the body, and each object's text is
//! allocated once at its final size.
//!
//! The text is byte-for-byte what `sync::marker::canonicalize` writes for the same object parsed into
//! a map (the same serde_json number and string rules; duplicate keys: the last one wins, as a map's
//! insert does), so stored markers do not change. The tests of `sync::page` compare the two.
//! Malformed input is a serde error (the page is "not a delta page"), never a panic; nesting is
//! bounded by serde_json's recursion limit as before.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::delta::{DeltaItem, MemberRef};

/// The `visit_*` methods of a visitor for the JSON shapes it does not expect: each consumes the value and
/// answers the same thing.
macro_rules! other_values_give {
    ($de:lifetime, $value:expr; $($shape:ident),+) => {
        $(other_values_give!(@ $shape, $de, $value);)+
    };
    (@ unit, $de:lifetime, $value:expr) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> { Ok($value) }
    };
    (@ bool, $de:lifetime, $value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> { Ok($value) }
    };
    (@ i64, $de:lifetime, $value:expr) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> { Ok($value) }
    };
    (@ u64, $de:lifetime, $value:expr) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> { Ok($value) }
    };
    (@ f64, $de:lifetime, $value:expr) => {
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> { Ok($value) }
    };
    (@ str, $de:lifetime, $value:expr) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> { Ok($value) }
    };
    (@ seq, $de:lifetime, $value:expr) => {
        fn visit_seq<A: SeqAccess<$de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($value)
        }
    };
    (@ map, $de:lifetime, $value:expr) => {
        fn visit_map<A: MapAccess<$de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($value)
        }
    };
}

/// An object's attributes as canonical JSON text: keys sorted at every level, array order kept,
/// top-level `null`s dropped (an omitted property and an explicit `null` are the same state).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct CanonicalJson(Vec<u8>);

impl CanonicalJson {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The attributes as a map (for scoping filters and mappings, which read them; and tests). The
    /// text is JSON this module wrote, so it always parses; an empty map otherwise.
    pub fn to_map(&self) -> Map<String, Value> {
        self.as_text().and_then(|text| serde_json::from_str(text).ok()).unwrap_or_default()
    }

    /// The text, checked to be UTF-8 once (fast) so strings are not checked one by one while parsed.
    fn as_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The top-level attributes named in `names` (each in any case: a key is kept when it equals a
    /// name ignoring case), as a map; the other values are skipped unread. What a policy that reads a
    /// few attributes needs, at a fraction of [`to_map`](Self::to_map)'s cost.
    pub fn to_map_of(&self, names: &[String]) -> Map<String, Value> {
        let Some(text) = self.as_text() else { return Map::new() };
        // Stepping over the others by their brackets and quotes; serde only if the text surprises it.
        if let Some(selected) = super::select::select(text, names) {
            return selected;
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        deserializer.deserialize_map(SelectedAttributes { names }).unwrap_or_default()
    }
}

/// Reads a canonical object keeping only the named top-level attributes.
struct SelectedAttributes<'n> {
    names: &'n [String],
}

impl SelectedAttributes<'_> {
    fn wanted(&self, key: &str) -> bool {
        self.names.iter().any(|name| {
            if key.is_ascii() && name.is_ascii() {
                key.eq_ignore_ascii_case(name)
            } else {
                key.to_lowercase() == name.to_lowercase()
            }
        })
    }
}

impl<'de> Visitor<'de> for SelectedAttributes<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut selected = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if self.wanted(&key) {
                let value: Value = map.next_value()?;
                selected.insert(key.into_owned(), value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(selected)
    }
}

impl fmt::Debug for CanonicalJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CanonicalJson({})", String::from_utf8_lossy(&self.0))
    }
}

/// A page as read: its links and, per object, the item or what is wrong with it (reported after the
/// links are checked, as `object {index}: {detail}`).
pub(super) struct ParsedPage {
    pub next_link: Option<String>,
    pub delta_link: Option<String>,
    pub items: Vec<Result<DeltaItem, String>>,
}

/// Reads a whole page body (trailing characters are an error, as with `serde_json::from_slice`).
/// The body is checked to be UTF-8 once, in one pass, instead of string by string.
pub(super) fn read_page(body: &[u8]) -> Result<ParsedPage, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("invalid UTF-8: {e}"))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let page = deserializer.deserialize_map(PageVisitor).map_err(|e| e.to_string())?;
    deserializer.end().map_err(|e| e.to_string())?;
    Ok(page)
}

struct PageVisitor;

impl<'de> Visitor<'de> for PageVisitor {
    type Value = ParsedPage;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a delta page object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ParsedPage, A::Error> {
        let mut next_link: Option<Option<String>> = None;
        let mut delta_link: Option<Option<String>> = None;
        let mut items: Option<Vec<Result<DeltaItem, String>>> = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key.as_ref() {
                "@odata.nextLink" => {
                    if next_link.is_some() {
                        return Err(de::Error::duplicate_field("@odata.nextLink"));
                    }
                    next_link = Some(map.next_value()?);
                }
                "@odata.deltaLink" => {
                    if delta_link.is_some() {
                        return Err(de::Error::duplicate_field("@odata.deltaLink"));
                    }
                    delta_link = Some(map.next_value()?);
                }
                "value" => {
                    if items.is_some() {
                        return Err(de::Error::duplicate_field("value"));
                    }
                    items = Some(map.next_value_seed(ItemsSeed)?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let items = items.ok_or_else(|| de::Error::missing_field("value"))?;
        Ok(ParsedPage { next_link: next_link.flatten(), delta_link: delta_link.flatten(), items })
    }
}

/// A key, borrowed from the body unless it held escapes (serde's own `Cow<str>` always copies).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// One property of an object being read: its key and where its canonical value text lies in the
/// scratch buffer.
struct Entry<'de> {
    key: Cow<'de, str>,
    start: usize,
    end: usize,
    null: bool,
}

/// Buffers reused across the objects of a page.
#[derive(Default)]
struct Scratch<'de> {
    values: Vec<u8>,
    entries: Vec<Entry<'de>>,
    /// The previous object's keys in reading order, and the order they were written in: the objects
    /// of a page usually list the same properties in the same order, so the sort is done once.
    last_keys: Vec<Cow<'de, str>>,
    order: Vec<usize>,
}

impl Scratch<'_> {
    /// Sets `order`: how to write this object's entries, the previous object's when its keys came in
    /// the same order.
    fn sort(&mut self) {
        let same = self.last_keys.len() == self.entries.len()
            && self.entries.iter().zip(&self.last_keys).all(|(entry, key)| entry.key == *key);
        if !same {
            sorted_order(&self.entries, &mut self.order);
            self.last_keys.clear();
            self.last_keys.extend(self.entries.iter().map(|entry| entry.key.clone()));
        }
    }
}

/// `value`: the page's objects.
struct ItemsSeed;

impl<'de> DeserializeSeed<'de> for ItemsSeed {
    type Value = Vec<Result<DeltaItem, String>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed {
    type Value = Vec<Result<DeltaItem, String>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1_024));
        let mut scratch = Scratch::default();
        while let Some(item) = seq.next_element_seed(ObjectSeed { scratch: &mut scratch })? {
            items.push(item);
        }
        Ok(items)
    }
}

/// One object of `value`.
struct ObjectSeed<'s, 'de> {
    scratch: &'s mut Scratch<'de>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, 'de> {
    type Value = Result<DeltaItem, String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_, 'de> {
    type Value = Result<DeltaItem, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a directory object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let scratch = self.scratch;
        scratch.values.clear();
        scratch.entries.clear();
        let mut id: Option<Value> = None;
        let mut removed: Option<Option<String>> = None;
        let mut members: Option<Result<Members, &'static str>> = None;
        // The last occurrence of a key wins, as in a map.
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key.as_ref() {
                "id" => id = Some(map.next_value()?),
                "@removed" => removed = Some(map.next_value_seed(RemovedSeed)?),
                "members@delta" => members = Some(map.next_value_seed(MembersSeed)?),
                // Annotations (`@odata.type`, other `x@delta` relationships) are not directory state.
                annotation if annotation.contains('@') => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    let start = scratch.values.len();
                    let kind = map.next_value_seed(Transcode { out: &mut scratch.values })?;
                    let end = scratch.values.len();
                    scratch.entries.push(Entry { key, start, end, null: kind == Kind::Null });
                }
            }
        }
        let id = match id {
            Some(Value::String(id)) if !id.is_empty() => id,
            Some(other) => return Ok(Err(format!("id is not a string: {other}"))),
            None => return Ok(Err("no id".to_owned())),
        };
        if let Some(reason) = removed {
            let reason = reason.unwrap_or_default();
            if reason != "deleted" && reason != "changed" {
                // Unknown reasons are treated as restorable: a soft delete can be undone, a purge cannot.
                tracing::warn!(id = %id, reason, "unknown @removed reason, treating the object as soft-deleted");
            }
            return Ok(Ok(DeltaItem::Removed { id, permanent: reason == "deleted" }));
        }
        let Members { added: members_added, removed: members_removed } = match members {
            None => Members::default(),
            Some(Ok(members)) => members,
            Some(Err(detail)) => return Ok(Err(detail.to_owned())),
        };
        scratch.sort();
        let attrs = write_in_order(&scratch.values, &scratch.entries, &scratch.order, Nulls::Drop);
        Ok(Ok(DeltaItem::Parsed { id, attrs: CanonicalJson(attrs), members_added, members_removed }))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Nulls {
    /// Top level: `null` means unset, so it is left out.
    Drop,
    /// Nested: `null` is a value (e.g. an alternativeSecurityId's identityProvider).
    Keep,
}

/// The indices of `entries` in key byte order (a map's order); of equal keys only the last one read
/// (a map's insert keeps the last).
fn sorted_order(entries: &[Entry<'_>], order: &mut Vec<usize>) {
    order.clear();
    order.extend(0..entries.len());
    // Equal keys: the later one first, so that `dedup_by` (which keeps the first of a run) keeps it.
    order.sort_unstable_by(|&a, &b| entries[a].key.as_bytes().cmp(entries[b].key.as_bytes()).then(b.cmp(&a)));
    order.dedup_by(|a, b| entries[*a].key == entries[*b].key);
}

/// Writes `{"key":value,…}` in `order` (from [`sorted_order`]). Returns a buffer of exactly the
/// text's size.
fn write_in_order(values: &[u8], entries: &[Entry<'_>], order: &[usize], nulls: Nulls) -> Vec<u8> {
    let kept = order.iter().map(|&index| &entries[index]).filter(|entry| !(nulls == Nulls::Drop && entry.null));
    let size: usize = kept.clone().map(|entry| entry.key.len() + 4 + entry.end - entry.start).sum();
    let mut out = Vec::with_capacity(size + 2);
    out.push(b'{');
    for (position, entry) in kept.enumerate() {
        if position > 0 {
            out.push(b',');
        }
        match &entry.key {
            // Read without escapes: it holds no quote, backslash or control character, so it is its
            // own canonical text.
            Cow::Borrowed(key) => write_plain_string(&mut out, key),
            Cow::Owned(key) => write_escaped_string(&mut out, key),
        }
        out.push(b':');
        out.extend_from_slice(&values[entry.start..entry.end]);
    }
    out.push(b'}');
    out
}

/// [`write_in_order`] after sorting.
fn write_sorted(values: &[u8], entries: &[Entry<'_>], nulls: Nulls) -> Vec<u8> {
    let mut order = Vec::with_capacity(entries.len());
    sorted_order(entries, &mut order);
    write_in_order(values, entries, &order, nulls)
}

fn write_plain_string(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

fn write_escaped_string(out: &mut Vec<u8>, text: &str) {
    // serde_json's escaping, as `sync::marker` writes strings; writing into a Vec cannot fail.
    serde_json::to_writer(&mut *out, text).unwrap_or_default();
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Other,
}

/// Reads one value and writes its canonical text to `out`.
struct Transcode<'o> {
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Transcode<'_> {
    type Value = Kind;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Kind, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Transcode<'_> {
    fn number(self, number: Number) -> Kind {
        // Number's Display is what serialising a Value writes.
        write!(self.out, "{number}").unwrap_or_default();
        Kind::Other
    }
}

impl<'de> Visitor<'de> for Transcode<'_> {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        self.out.extend_from_slice(b"null");
        Ok(Kind::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Kind, E> {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(Kind::Other)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Kind, E> {
        Ok(self.number(Number::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
        Ok(self.number(Number::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Kind, E> {
        // A Value holds a non-finite float as null (serde_json's reader never yields one).
        match Number::from_f64(v) {
            Some(number) => Ok(self.number(number)),
            None => self.visit_unit(),
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Kind, E> {
        // Read without escapes, so it is its own canonical text.
        write_plain_string(self.out, v);
        Ok(Kind::Other)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
        write_escaped_string(self.out, v);
        Ok(Kind::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let out = self.out;
        out.push(b'[');
        let mut first = true;
        loop {
            let mark = out.len();
            if !first {
                out.push(b',');
            }
            if seq.next_element_seed(Transcode { out: &mut *out })?.is_none() {
                out.truncate(mark);
                break;
            }
            first = false;
        }
        out.push(b']');
        Ok(Kind::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut values = Vec::new();
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let start = values.len();
            let kind = map.next_value_seed(Transcode { out: &mut values })?;
            entries.push(Entry { key, start, end: values.len(), null: kind == Kind::Null });
        }
        let text = write_sorted(&values, &entries, Nulls::Keep);
        self.out.extend_from_slice(&text);
        Ok(Kind::Other)
    }
}

/// `@removed`: present whatever its value; its `reason` when that is a string.
struct RemovedSeed;

impl<'de> DeserializeSeed<'de> for RemovedSeed {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RemovedSeed {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut reason = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if key == "reason" {
                reason = map.next_value_seed(StringSeed)?.map(Cow::into_owned);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(reason)
    }

    other_values_give!('de, None; seq, unit, bool, i64, u64, f64, str);
}

/// A string value, or `None` for any other value (read and skipped).
struct StringSeed;

impl<'de> DeserializeSeed<'de> for StringSeed {
    type Value = Option<Cow<'de, str>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StringSeed {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }

    other_values_give!('de, None; map, seq, unit, bool, i64, u64, f64);
}

/// `members@delta`: the slice's added and removed members.
#[derive(Default)]
struct Members {
    added: Vec<MemberRef>,
    removed: Vec<MemberRef>,
}

struct MembersSeed;

impl<'de> DeserializeSeed<'de> for MembersSeed {
    type Value = Result<Members, &'static str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

const NOT_AN_ARRAY: &str = "members@delta is not an array";
const MEMBER_WITHOUT_ID: &str = "a members@delta entry has no id";

impl<'de> Visitor<'de> for MembersSeed {
    type Value = Result<Members, &'static str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut members = Members::default();
        let mut problem = None;
        while let Some(member) = seq.next_element_seed(MemberSeed)? {
            match member {
                Some((reference, true)) => members.removed.push(reference),
                Some((reference, false)) => members.added.push(reference),
                None => problem = problem.or(Some(MEMBER_WITHOUT_ID)),
            }
        }
        Ok(match problem {
            Some(problem) => Err(problem),
            None => Ok(members),
        })
    }

    other_values_give!('de, Err(NOT_AN_ARRAY); map, unit, bool, i64, u64, f64, str);
}

/// One `members@delta` entry: the member and whether it was removed; `None` without a string `id`.
struct MemberSeed;

impl<'de> DeserializeSeed<'de> for MemberSeed {
    type Value = Option<(MemberRef, bool)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MemberSeed {
    type Value = Option<(MemberRef, bool)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id: Option<Cow<'de, str>> = None;
        let mut kind: Option<Cow<'de, str>> = None;
        let mut removed = false;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key.as_ref() {
                "id" => id = map.next_value_seed(StringSeed)?,
                "@odata.type" => kind = map.next_value_seed(StringSeed)?,
                "@removed" => {
                    map.next_value::<IgnoredAny>()?;
                    removed = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(id.map(|id| {
            let kind = kind.map(|t| t.trim_start_matches("#microsoft.graph.").to_owned());
            (MemberRef { id: id.into_owned(), kind }, removed)
        }))
    }

    other_values_give!('de, None; seq, unit, bool, i64, u64, f64, str);
}

/// The canonical text of one JSON object given as text (tests and tools; what `parse_page` writes
/// for an object's properties, `id` and annotations included if present).
pub fn canonical_text(json: &str) -> serde_json::Result<CanonicalJson> {
    struct Top;
    impl<'de> Visitor<'de> for Top {
        type Value = CanonicalJson;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CanonicalJson, A::Error> {
            let mut values = Vec::new();
            let mut entries = Vec::new();
            while let Some(key) = map.next_key_seed(KeySeed)? {
                let start = values.len();
                let kind = map.next_value_seed(Transcode { out: &mut values })?;
                entries.push(Entry { key, start, end: values.len(), null: kind == Kind::Null });
            }
            Ok(CanonicalJson(write_sorted(&values, &entries, Nulls::Drop)))
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let text = deserializer.deserialize_map(Top)?;
    deserializer.end()?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn to_map_of_keeps_the_named_attributes_in_any_case_and_nothing_else() {
        let text = canonical_text(
            r#"{"GivenName":"Ada","surname":"Lovelace","businessPhones":["+1 555"],"Ünit":{"a":[1,2]},"mail":null,
                "accountEnabled":true,"esc\"aped":"x\u00e9"}"#,
        )
        .unwrap();
        let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let selected = text.to_map_of(&names(&["givenname", "accountEnabled", "ünit", "esc\"aped", "absent"]));
        let expected = json!({"GivenName": "Ada", "accountEnabled": true, "Ünit": {"a": [1, 2]}, "esc\"aped": "xé"});
        assert_eq!(Value::Object(selected), expected);
        // Whatever is kept is what the whole map holds for it.
        let whole = text.to_map();
        for (key, value) in text.to_map_of(&names(&["SURNAME", "businessphones"])) {
            assert_eq!(whole.get(&key), Some(&value), "{key}");
        }
        assert!(text.to_map_of(&[]).is_empty());
    }
}
