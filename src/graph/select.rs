//! The few top-level attributes a policy reads, taken from an object's canonical text by a scan
//! (issue 14, mappings' cost): the text is what `canonical` wrote (compact, one object), so the
//! attributes not asked for are stepped over by their brackets and quotes instead of being parsed, and
//! only the asked ones are parsed into values. Profiled before: reading 7 of 30 attributes through
//! serde cost about as much as evaluating five expressions. Anything unexpected in the text (it never
//! happens with text `canonical` wrote) answers `None`, and the caller parses the text with serde.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// The top-level attributes of `text` whose names equal one of `names` ignoring case, as a map.
pub(super) fn select(text: &str, names: &[String]) -> Option<Map<String, Value>> {
    let bytes = text.as_bytes();
    let names = Names::of(names)?;
    let mut selected = Map::new();
    let mut at = after(bytes, 0, b'{')?;
    if bytes.get(at) == Some(&b'}') {
        return (at + 1 == bytes.len()).then_some(selected);
    }
    loop {
        let (key_end, escaped) = string_end(bytes, at)?;
        let key = &text[at..key_end];
        let value_start = after(bytes, key_end, b':')?;
        let value_end = value_end(bytes, value_start)?;
        if let Some(name) = names.wanted(key, escaped) {
            let value: Value = serde_json::from_str(&text[value_start..value_end]).ok()?;
            selected.insert(name.into_owned(), value);
        }
        match bytes.get(value_end) {
            Some(b',') => at = value_end + 1,
            Some(b'}') => return (value_end + 1 == bytes.len()).then_some(selected),
            _ => return None,
        }
    }
}

/// The names asked for, with which of them are ASCII (known once per object, not once per key).
struct Names<'n> {
    names: &'n [String],
    ascii: u64,
}

impl<'n> Names<'n> {
    /// `None` past 64 names (the caller then parses with serde).
    fn of(names: &'n [String]) -> Option<Self> {
        if names.len() > 64 {
            return None;
        }
        let ascii = names.iter().enumerate().filter(|(_, name)| name.is_ascii()).fold(0, |bits, (i, _)| bits | 1 << i);
        Some(Names { names, ascii })
    }

    /// The key (a JSON string with its quotes) unquoted, when it equals one of the names ignoring case.
    fn wanted<'t>(&self, quoted: &'t str, escaped: bool) -> Option<Cow<'t, str>> {
        let inner = quoted.get(1..quoted.len() - 1)?;
        let key: Cow<'t, str> =
            if escaped { Cow::Owned(serde_json::from_str(quoted).ok()?) } else { Cow::Borrowed(inner) };
        let key_ascii = key.is_ascii();
        let hit = self.names.iter().enumerate().any(|(i, name)| {
            if key_ascii && self.ascii & (1 << i) != 0 {
                name.len() == key.len() && key.eq_ignore_ascii_case(name)
            } else {
                key.to_lowercase() == name.to_lowercase()
            }
        });
        hit.then_some(key)
    }
}

/// The index after `expected` at `at`.
fn after(bytes: &[u8], at: usize, expected: u8) -> Option<usize> {
    (bytes.get(at) == Some(&expected)).then_some(at + 1)
}

/// The index after the string that starts (with its quote) at `at`, and whether it holds an escape.
fn string_end(bytes: &[u8], at: usize) -> Option<(usize, bool)> {
    let mut i = after(bytes, at, b'"')?;
    let mut escaped = false;
    loop {
        match bytes.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            // An escape: the next byte is part of it (`\"`, `\\`, `\u…`).
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
}

/// The index after the value that starts at `at`.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => string_end(bytes, at).map(|(end, _)| end),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match bytes.get(i)? {
                    b'"' => {
                        i = string_end(bytes, i)?.0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        // A number, true, false or null: up to the next separator.
        _ => {
            let length = bytes[at..].iter().position(|b| matches!(b, b',' | b'}' | b']'))?;
            (length > 0).then_some(at + length)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};

    use super::*;

    /// The reference: serde reads the whole text, keeping the wanted attributes (the last of duplicates).
    fn parsed(text: &str, names: &[String]) -> Map<String, Value> {
        struct Keep<'n>(&'n [String]);
        impl<'de> Visitor<'de> for Keep<'_> {
            type Value = Map<String, Value>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut kept = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    let quoted = serde_json::to_string(&key).expect("key");
                    if Names::of(self.0).expect("names").wanted(&quoted, quoted.contains('\\')).is_some() {
                        kept.insert(key, map.next_value()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(kept)
            }
        }
        serde_json::Deserializer::from_str(text).deserialize_map(Keep(names)).expect("JSON")
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn the_scan_finds_what_serde_finds() {
        let texts = [
            "{}",
            r#"{"a":1}"#,
            r#"{"A":"x","a":[1,{"a":"}]\"["}],"b":{"c":{"a":2}},"c":-1.5e3,"d":true,"e":false,"f":null}"#,
            r#"{"esc\"aped":"x\u00e9\\","givenName":"Ada","Ünit":{"a":[1,2]},"z":[]}"#,
            r#"{"GIVENNAME":"\"}","givenname":"b","k":"K"}"#,
        ];
        let name_sets = [
            names(&["a"]),
            names(&["givenName", "ünit", "esc\"aped", "absent", "c", "F"]),
            names(&["K", "e", "b", "d"]),
            names(&[]),
        ];
        for text in texts {
            let canonical = crate::graph::canonical_text(text).expect("canonical");
            let canonical = std::str::from_utf8(canonical.as_bytes()).expect("UTF-8");
            for names in &name_sets {
                for text in [text, canonical] {
                    assert_eq!(select(text, names).as_ref(), Some(&parsed(text, names)), "{text} {names:?}");
                }
            }
        }
    }

    #[test]
    fn unexpected_text_is_left_to_serde() {
        let any = names(&["a"]);
        for text in
            ["", "{", r#"{"a":1"#, r#"{"a":1} "#, r#"{ "a":1}"#, r#"{"a" :1}"#, r#"{"a":}"#, r#"{"a":"x}"#, "[1]"]
        {
            assert_eq!(select(text, &any), None, "{text}");
        }
    }
}
