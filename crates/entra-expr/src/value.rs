//! The values an expression produces (reference §2.4 and §8).

use std::borrow::Cow;

use chrono::{DateTime, Utc};

/// The result of evaluating an expression or one of its parts.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An absent attribute ("a Null is expressed by the absence of the attribute"); not the same as `""`.
    Null,
    Str(String),
    /// A multi-valued attribute (proxyAddresses) or the result of Split / RemoveDuplicates.
    Multi(Vec<String>),
    Bool(bool),
    Int(i64),
    Float(f64),
    DateTime(DateTime<Utc>),
    /// IgnoreFlowIfNullOrEmpty on a null or empty value: the target attribute is left out of the flow.
    Drop,
    /// The WDG sentinel `IgnoreAttributeFlow`: the attribute is left out of the flow.
    IgnoreAttribute,
    /// The WDG sentinel `IgnoreObjectFlow`: the whole object is left out of the flow.
    IgnoreObject,
}

impl Value {
    /// The value as JSON, the way it is stored and shown: booleans as JSON booleans, dates as
    /// `M/d/yyyy h:mm:ss tt` (UTC, invariant culture), Null and the flow sentinels as `null`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null | Value::Drop | Value::IgnoreAttribute | Value::IgnoreObject => serde_json::Value::Null,
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Multi(values) => {
                serde_json::Value::Array(values.iter().cloned().map(serde_json::Value::String).collect())
            }
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(n) => serde_json::Value::from(*n),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or_else(|| serde_json::Value::String(format_float(*f)), serde_json::Value::Number),
            Value::DateTime(d) => serde_json::Value::String(crate::dates::format_default(*d)),
        }
    }

    /// True for Null, `""`, a multi-valued attribute without values, and the Drop sentinel.
    pub fn is_null_or_empty(&self) -> bool {
        match self {
            Value::Null | Value::Drop => true,
            Value::Str(s) => s.is_empty(),
            Value::Multi(values) => values.is_empty(),
            _ => false,
        }
    }

    /// True for an absent value (Null, Drop, the sentinels, a multi-valued attribute without values).
    pub fn is_null(&self) -> bool {
        match self {
            Value::Null | Value::Drop | Value::IgnoreAttribute | Value::IgnoreObject => true,
            Value::Multi(values) => values.is_empty(),
            _ => false,
        }
    }

    /// The value as a single string, the way it flows to a string target: booleans as `True`/`False`,
    /// dates as `M/d/yyyy h:mm:ss tt`, numbers in invariant culture. `None` for absent values; a
    /// multi-valued attribute gives its only value (`None` when it has several: see [`Value::as_text`]).
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Null | Value::Drop | Value::IgnoreAttribute | Value::IgnoreObject => None,
            Value::Str(s) => Some(Cow::Borrowed(s)),
            Value::Multi(values) => match values.as_slice() {
                [one] => Some(Cow::Borrowed(one)),
                _ => None,
            },
            Value::Bool(true) => Some(Cow::Borrowed("True")),
            Value::Bool(false) => Some(Cow::Borrowed("False")),
            Value::Int(n) => Some(Cow::Owned(n.to_string())),
            Value::Float(f) => Some(Cow::Owned(format_float(*f))),
            Value::DateTime(d) => Some(Cow::Owned(crate::dates::format_default(*d))),
        }
    }
}

/// A float the way .NET's invariant `Double.ToString()` writes the usual values (`42568.75`, `1`, `-0.5`).
pub(crate) fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        format!("{f}")
    }
}
