//! Conformance: the vectors of reference §6.3, §6.4 and §6.5 (tests/vectors/*.yaml), evaluated with
//! their `now` and `existing`, compared in the `out` forms of §6.0. A vector marked `skip: "<reason>"`
//! is counted and reported, not compared; any other mismatch fails the test. `6.5-notes.yaml` holds the
//! further inputs and computed outputs that §6.5's `note:` fields state.

// In tests a panic is a failed assertion and a print is a diagnostic; library code is held to the workspace lints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use entra_expr::{Context, EvalError, Expression, Value};
use serde_yaml::Value as Yaml;

fn text_of(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(if *b { "True" } else { "False" }.to_owned()),
        _ => None,
    }
}

fn yaml_to_json(y: &Yaml) -> serde_json::Value {
    match y {
        Yaml::Null => serde_json::Value::Null,
        Yaml::Bool(b) => serde_json::Value::Bool(*b),
        Yaml::Number(n) => serde_json::from_str(&n.to_string()).unwrap_or(serde_json::Value::Null),
        Yaml::String(s) => serde_json::Value::String(s.clone()),
        Yaml::Sequence(items) => serde_json::Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Mapping(map) => {
            serde_json::Value::Object(map.iter().filter_map(|(k, v)| Some((text_of(k)?, yaml_to_json(v)))).collect())
        }
        Yaml::Tagged(tagged) => yaml_to_json(&tagged.value),
    }
}

/// Whether an evaluation result is the expected `out` (§6.0 forms).
fn matches(expected: &Yaml, actual: &Result<Value, EvalError>) -> bool {
    match expected {
        Yaml::Mapping(map) => {
            let key = map.keys().next().and_then(text_of).unwrap_or_default();
            match key.as_str() {
                "drop" => matches!(actual, Ok(Value::Drop)),
                "error" => actual.is_err(),
                "ignore_attribute" => matches!(actual, Ok(Value::IgnoreAttribute)),
                "ignore_object" => matches!(actual, Ok(Value::IgnoreObject)),
                "datetime" => {
                    let want = map.values().next().and_then(text_of).and_then(|t| t.parse::<DateTime<Utc>>().ok());
                    matches!((actual, want), (Ok(Value::DateTime(d)), Some(w)) if *d == w)
                }
                _ => false,
            }
        }
        Yaml::Sequence(items) => {
            let want: Vec<String> = items.iter().filter_map(text_of).collect();
            matches!(actual, Ok(Value::Multi(values)) if *values == want)
        }
        Yaml::Bool(b) => match actual {
            Ok(Value::Bool(v)) => v == b,
            Ok(Value::Str(s)) => s == if *b { "True" } else { "False" },
            _ => false,
        },
        Yaml::String(_) | Yaml::Number(_) => {
            let want = text_of(expected);
            match actual {
                Ok(Value::Multi(_)) | Err(_) => false,
                Ok(value) => value.as_text().map(std::borrow::Cow::into_owned) == want,
            }
        }
        _ => false,
    }
}

fn describe(actual: &Result<Value, EvalError>) -> String {
    match actual {
        Ok(value) => format!("{value:?}"),
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn reference_vectors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let default_now: DateTime<Utc> = "2025-07-30T12:00:00Z".parse().unwrap();
    let (mut passed, mut skipped, mut failures) = (0, Vec::new(), Vec::new());
    // `(same as ID)` may name a vector of an earlier file (files are read in name order).
    let mut expressions: HashMap<String, String> = HashMap::new();
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
        let text = std::fs::read_to_string(file).unwrap();
        let vectors: Vec<Yaml> = serde_yaml::from_str(&text).unwrap();
        for vector in &vectors {
            let id = text_of(&vector["id"]).unwrap();
            let mut expr = text_of(&vector["expr"]).unwrap();
            if let Some(other) = expr.strip_prefix("(same as ").and_then(|s| s.strip_suffix(')')) {
                expr = expressions.get(other).unwrap_or_else(|| panic!("{id}: no vector {other} before it")).clone();
            }
            expressions.insert(id.clone(), expr.clone());
            if let Some(reason) = text_of(&vector["skip"]) {
                skipped.push(format!("{id}: {reason}"));
                continue;
            }
            let object = match yaml_to_json(&vector["in"]) {
                serde_json::Value::Object(map) => map,
                _ => serde_json::Map::new(),
            };
            let now = text_of(&vector["now"]).map_or(default_now, |t| t.parse().unwrap());
            let existing: Vec<String> = match &vector["existing"] {
                Yaml::Sequence(items) => items.iter().filter_map(text_of).collect(),
                _ => Vec::new(),
            };
            let is_taken = |candidate: &str| existing.iter().any(|e| e == candidate);
            let ctx = Context { now, default_domain: Some("contoso.com"), is_taken: Some(&is_taken) };
            let actual = match Expression::parse(&expr) {
                Ok(expression) => expression.evaluate(&object, &ctx),
                Err(e) => {
                    failures.push(format!("{id} ({}): does not parse: {e}", file.display()));
                    continue;
                }
            };
            if matches(&vector["out"], &actual) {
                passed += 1;
            } else {
                failures.push(format!("{id}: expected {:?}, got {}", vector["out"], describe(&actual)));
            }
        }
    }
    println!("reference vectors: {passed} passed, {} skipped, {} failed", skipped.len(), failures.len());
    for skip in &skipped {
        println!("  skipped {skip}");
    }
    assert!(passed > 0, "no vectors found in {}", dir.display());
    assert!(failures.is_empty(), "{} vectors failed:\n{}", failures.len(), failures.join("\n"));
}
