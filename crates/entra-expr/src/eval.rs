//! The evaluator: the value model of reference §2.4/§8 and every function of §3, with the §7 decisions
//! recorded in docs/mappings.md.

use std::borrow::Cow;
use std::cmp::Ordering;

use base64::Engine as _;
use chrono::{DateTime, Utc};

use crate::func::{Constant, Func};
use crate::parser::{Call, CmpOp, Node, ReplaceMode};
use crate::regex_net::NetRegex;
use crate::{dates, text, Context, EvalError, Source, Value};

type Result<T> = std::result::Result<T, EvalError>;

fn fail<T>(func: Func, message: impl Into<String>) -> Result<T> {
    Err(EvalError::Function { function: func.name(), message: message.into() })
}

pub(crate) struct Evaluator<'a, 'c> {
    pub source: &'a dyn Source,
    pub ctx: &'a Context<'c>,
}

/// An attribute's JSON value as an expression value: strings, booleans and numbers as themselves,
/// arrays as multi-valued (each element as text; nulls left out), objects as their JSON text.
fn from_json(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => n.as_f64().map_or_else(|| Value::Str(n.to_string()), Value::Float),
        },
        serde_json::Value::Array(items) => Value::Multi(items.iter().filter_map(json_item_text).collect()),
        serde_json::Value::Object(_) => Value::Str(value.to_string()),
    }
}

fn json_item_text(item: &serde_json::Value) -> Option<String> {
    match item {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(true) => Some("True".to_owned()),
        serde_json::Value::Bool(false) => Some("False".to_owned()),
        other => Some(other.to_string()),
    }
}

/// A number written as text: optional sign, digits, optional decimals (no exponents, no `inf`/`NaN`).
fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let valid = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(digits.contains('.') && frac.is_empty());
    if valid {
        t.parse::<f64>().ok()
    } else {
        None
    }
}

fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Int(n) => Some(*n as f64),
        Value::Float(f) => Some(*f),
        Value::Str(s) => parse_number(s),
        Value::Multi(values) if values.len() == 1 => parse_number(&values[0]),
        _ => None,
    }
}

/// VB's conversion of a number to an integer: round half to even.
fn round_to_i64(f: f64) -> Option<i64> {
    let r = f.round_ties_even();
    (r.is_finite() && r >= i64::MIN as f64 && r <= i64::MAX as f64).then_some(r as i64)
}

fn truthy(func: Func, value: &Value) -> Result<bool> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Int(n) => Ok(*n != 0),
        Value::Float(f) => Ok(*f != 0.0),
        v if v.is_null() => Ok(false),
        other => {
            let text = other.as_text().unwrap_or_default();
            let t = text.trim();
            if t.eq_ignore_ascii_case("true") {
                Ok(true)
            } else if t.eq_ignore_ascii_case("false") || t.is_empty() {
                Ok(false)
            } else if let Some(n) = parse_number(t) {
                Ok(n != 0.0)
            } else {
                fail(func, format!("expected True, False or a number, found \"{t}\""))
            }
        }
    }
}

fn compare(left: &Value, op: CmpOp, right: &Value) -> bool {
    // A4: a comparison with a null value is false, whatever the operator.
    if left.is_null() || right.is_null() {
        return false;
    }
    let ordering = match (left, right) {
        (Value::DateTime(a), Value::DateTime(b)) => Some(a.cmp(b)),
        (Value::DateTime(a), other) | (other, Value::DateTime(a)) => {
            let b = other.as_text().and_then(|t| dates::cdate(&t));
            match b {
                Some(b) if matches!(left, Value::DateTime(_)) => Some(a.cmp(&b)),
                Some(b) => Some(b.cmp(a)),
                None => None,
            }
        }
        _ => None,
    };
    // A3: numbers on both sides compare as numbers, anything else as ordinal strings.
    let ordering = ordering.or_else(|| match (number_of(left), number_of(right)) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        _ => None,
    });
    let ordering = ordering.unwrap_or_else(|| {
        let a = left.as_text().unwrap_or_default();
        let b = right.as_text().unwrap_or_default();
        a.as_ref().cmp(b.as_ref())
    });
    match op {
        CmpOp::Eq => ordering == Ordering::Equal,
        CmpOp::Ne => ordering != Ordering::Equal,
        CmpOp::Lt => ordering == Ordering::Less,
        CmpOp::Le => ordering != Ordering::Greater,
        CmpOp::Gt => ordering == Ordering::Greater,
        CmpOp::Ge => ordering != Ordering::Less,
    }
}

/// The single text of a value for a function that works on one value; several values are an error.
fn single(func: Func, value: &Value) -> Result<Option<Cow<'_, str>>> {
    if let Value::Multi(values) = value {
        if values.len() > 1 {
            return fail(
                func,
                format!("expects a single value, found a multi-valued attribute with {} values", values.len()),
            );
        }
    }
    Ok(value.as_text())
}

/// A function applied to every value of a multi-valued input, or to the single value.
fn per_value(value: Value, f: impl Fn(&str) -> String) -> Value {
    match value {
        Value::Multi(values) => Value::Multi(values.iter().map(|v| f(v)).collect()),
        other => match other.as_text() {
            Some(t) => Value::Str(f(&t)),
            None => Value::Null,
        },
    }
}

fn values_of(value: &Value) -> Vec<Cow<'_, str>> {
    match value {
        Value::Multi(values) => values.iter().map(|v| Cow::Borrowed(v.as_str())).collect(),
        other => other.as_text().into_iter().collect(),
    }
}

/// The role names of appRoleAssignments values: plain strings, or the name field of JSON objects.
fn role_names(value: &Value) -> Vec<String> {
    values_of(value)
        .into_iter()
        .map(|v| {
            if v.trim_start().starts_with('{') {
                if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&v) {
                    for key in ["appRoleDisplayName", "displayName", "appRoleValue", "value", "name"] {
                        if let Some(serde_json::Value::String(name)) = map.get(key) {
                            return name.clone();
                        }
                    }
                }
            }
            v.into_owned()
        })
        .collect()
}

impl Evaluator<'_, '_> {
    pub(crate) fn eval(&self, node: &Node) -> Result<Value> {
        match node {
            Node::Attr(name) => Ok(self.source.get(name).map_or(Value::Null, from_json)),
            Node::Str(s) => Ok(Value::Str(s.to_string())),
            Node::Num { text, .. } => Ok(Value::Str(text.to_string())),
            Node::Hex(n) => Ok(Value::Int(*n)),
            Node::Const(Constant::IgnoreAttributeFlow) => Ok(Value::IgnoreAttribute),
            Node::Const(Constant::IgnoreObjectFlow) => Ok(Value::IgnoreObject),
            Node::Const(other) => Ok(Value::Str(other.name().to_owned())),
            Node::Cmp(cmp) => {
                let left = self.eval(&cmp.0)?;
                let right = self.eval(&cmp.2)?;
                Ok(Value::Bool(compare(&left, cmp.1, &right)))
            }
            Node::Concat(parts) => {
                let mut out = String::new();
                for part in parts {
                    let value = self.eval(part)?;
                    for v in values_of(&value) {
                        out.push_str(&v);
                    }
                }
                Ok(Value::Str(out))
            }
            Node::Call(call) => self.call(call),
        }
    }

    fn arg(&self, call: &Call, index: usize) -> Result<Value> {
        match call.arg(index) {
            Some(node) => self.eval(node),
            None => Ok(Value::Null),
        }
    }

    /// An argument as one text (`None` when null or omitted).
    fn text(&self, call: &Call, index: usize) -> Result<Option<String>> {
        match call.arg(index) {
            Some(Node::Str(s)) => Ok(Some(s.to_string())),
            // A string attribute is copied once, not into a value and then out of it.
            Some(Node::Attr(name)) => match self.source.get(name) {
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Ok(single(call.func, &from_json(other))?.map(Cow::into_owned)),
                None => Ok(None),
            },
            Some(node) => {
                let value = self.eval(node)?;
                Ok(single(call.func, &value)?.map(Cow::into_owned))
            }
            None => Ok(None),
        }
    }

    /// An argument as an integer (number literals are read once, at parse time).
    fn int(&self, call: &Call, index: usize, what: &str) -> Result<Option<i64>> {
        let value = match call.arg(index) {
            Some(Node::Num { int: Some(n), .. }) => return Ok(Some(*n)),
            Some(node) => self.eval(node)?,
            None => return Ok(None),
        };
        if value.is_null() {
            return Ok(None);
        }
        match value {
            Value::Int(n) => Ok(Some(n)),
            Value::Bool(b) => Ok(Some(if b { -1 } else { 0 })),
            other => match number_of(&other).and_then(round_to_i64) {
                Some(n) => Ok(Some(n)),
                None => fail(
                    call.func,
                    format!("{what} must be a whole number, found \"{}\"", other.as_text().unwrap_or_default()),
                ),
            },
        }
    }

    fn float(&self, call: &Call, index: usize, what: &str) -> Result<Option<f64>> {
        let value = self.arg(call, index)?;
        if value.is_null() {
            return Ok(None);
        }
        match number_of(&value) {
            Some(f) => Ok(Some(f)),
            None => {
                fail(call.func, format!("{what} must be a number, found \"{}\"", value.as_text().unwrap_or_default()))
            }
        }
    }

    /// An argument as a date: a DateTime value, or text CDate can read.
    fn date(&self, call: &Call, index: usize) -> Result<Option<DateTime<Utc>>> {
        let value = self.arg(call, index)?;
        match value {
            Value::DateTime(d) => Ok(Some(d)),
            v if v.is_null() => Ok(None),
            other => {
                let text = single(call.func, &other)?.unwrap_or_default();
                match dates::cdate(&text) {
                    Some(d) => Ok(Some(d)),
                    None => fail(call.func, format!("\"{text}\" is not a date CDate can read")),
                }
            }
        }
    }

    fn regex<'n>(&self, call: &'n Call) -> Result<Cow<'n, NetRegex>> {
        if let Some(regex) = call.replace.as_ref().and_then(|spec| spec.regex.as_ref()) {
            return Ok(Cow::Borrowed(regex));
        }
        let pattern = self.text(call, 2)?.unwrap_or_default();
        NetRegex::new(&pattern)
            .map(Cow::Owned)
            .or_else(|e| fail(call.func, format!("the regular expression is not valid: {e}")))
    }

    #[allow(clippy::too_many_lines)]
    fn call(&self, call: &Call) -> Result<Value> {
        let func = call.func;
        match func {
            Func::Join => self.join(call),
            Func::Iif => {
                let condition = self.arg(call, 0)?;
                let branch = if truthy(func, &condition)? { 1 } else { 2 };
                self.arg(call, branch)
            }
            Func::Switch => self.switch(call),
            Func::Coalesce => {
                // A5: the first value that is not null ("" counts as a value).
                for node in call.args.iter().flatten() {
                    let value = self.eval(node)?;
                    if !value.is_null() {
                        return Ok(value);
                    }
                }
                Ok(Value::Null)
            }
            Func::SelectUniqueValue => self.select_unique_value(call),
            Func::IgnoreFlowIfNullOrEmpty => {
                let value = self.arg(call, 0)?;
                Ok(if value.is_null_or_empty() { Value::Drop } else { value })
            }
            Func::Append => {
                let source = self.text(call, 0)?;
                let suffix = self.text(call, 1)?;
                Ok(match (source, suffix) {
                    (None, None) => Value::Null,
                    (source, suffix) => Value::Str(source.unwrap_or_default() + &suffix.unwrap_or_default()),
                })
            }
            Func::AppRoleAssignments | Func::AppRoleAssignmentsComplex | Func::AssertiveAppRoleAssignmentsComplex => {
                let value = self.arg(call, 0)?;
                let names = role_names(&value);
                Ok(if names.is_empty() { Value::Null } else { Value::Multi(names) })
            }
            Func::SingleAppRoleAssignment => {
                let value = self.arg(call, 0)?;
                Ok(role_names(&value).into_iter().next().map_or(Value::Null, Value::Str))
            }
            Func::BitAnd | Func::BitOr => {
                let (Some(a), Some(b)) = (self.int(call, 0, "value1")?, self.int(call, 1, "value2")?) else {
                    return Ok(Value::Null);
                };
                Ok(Value::Int(if func == Func::BitAnd { a & b } else { a | b }))
            }
            Func::CBool => Ok(Value::Bool(truthy(func, &self.arg(call, 0)?)?)),
            Func::CDate => Ok(self.date(call, 0)?.map_or(Value::Null, Value::DateTime)),
            Func::CStr | Func::CRef | Func::Redact => {
                let value = self.arg(call, 0)?;
                Ok(match value {
                    Value::Multi(_) if func == Func::Redact => value,
                    other => single(func, &other)?.map_or(Value::Null, |t| Value::Str(t.into_owned())),
                })
            }
            Func::Contains => {
                let value = self.arg(call, 0)?;
                let Some(needle) = self.text(call, 1)? else { return Ok(Value::Int(0)) };
                let ignore_case = self.ignore_case(call, 2)?;
                let needle_lower = needle.to_lowercase();
                let position = values_of(&value).iter().position(|v| {
                    if ignore_case {
                        v.to_lowercase().contains(&needle_lower)
                    } else {
                        v.contains(needle.as_str())
                    }
                });
                Ok(Value::Int(position.map_or(0, |p| i64::try_from(p + 1).unwrap_or(i64::MAX))))
            }
            Func::ConvertFromBase64 => self.convert_from_base64(call),
            Func::ConvertToBase64 => {
                let Some(source) = self.text(call, 0)? else { return Ok(Value::Null) };
                let bytes: Vec<u8> = source.encode_utf16().flat_map(u16::to_le_bytes).collect();
                Ok(Value::Str(base64::engine::general_purpose::STANDARD.encode(bytes)))
            }
            Func::ConvertToUtf8Hex => {
                let Some(source) = self.text(call, 0)? else { return Ok(Value::Null) };
                let mut out = String::with_capacity(source.len() * 2);
                for byte in source.bytes() {
                    out.push_str(&format!("{byte:02X}"));
                }
                Ok(Value::Str(out))
            }
            Func::Count => {
                let value = self.arg(call, 0)?;
                let count = match &value {
                    Value::Multi(values) => values.len(),
                    v if v.is_null_or_empty() => 0,
                    _ => 1,
                };
                Ok(Value::Int(i64::try_from(count).unwrap_or(i64::MAX)))
            }
            Func::DateAdd => {
                let interval = self.text(call, 0)?.unwrap_or_default();
                let Some(number) = self.float(call, 1, "value")? else { return Ok(Value::Null) };
                let Some(date) = self.date(call, 2)? else { return Ok(Value::Null) };
                dates::date_add(&interval, number, date).map(Value::DateTime).or_else(|e| fail(func, e))
            }
            Func::DateDiff => {
                let interval = self.text(call, 0)?.unwrap_or_default();
                let Some(from) = self.date(call, 1)? else { return Ok(Value::Null) };
                let Some(to) = self.date(call, 2)? else { return Ok(Value::Null) };
                dates::date_diff(&interval, from, to).map(Value::Int).or_else(|e| fail(func, e))
            }
            Func::DateFromNum => {
                let Some(ticks) = self.int(call, 0, "value")? else { return Ok(Value::Null) };
                match dates::from_filetime(ticks) {
                    Some(d) => Ok(Value::DateTime(d)),
                    None => fail(func, format!("{ticks} is not a FILETIME between the years 1601 and 9999")),
                }
            }
            Func::NumFromDate => Ok(self.date(call, 0)?.map_or(Value::Null, |d| Value::Int(dates::to_filetime(d)))),
            Func::Now => Ok(Value::DateTime(self.ctx.now)),
            Func::FormatDateTime => self.format_date_time(call),
            Func::DefaultDomain => match self.ctx.default_domain {
                Some(domain) if !domain.is_empty() => Ok(Value::Str(domain.to_owned())),
                _ => Err(EvalError::NoDefaultDomain),
            },
            Func::DnComponent => {
                let Some(dn) = self.text(call, 0)? else { return Ok(Value::Null) };
                let Some(n) = self.int(call, 1, "componentNumber")? else { return Ok(Value::Null) };
                Ok(text::dn_component(&dn, n).map_or(Value::Null, Value::Str))
            }
            Func::Error => Err(EvalError::Raised(self.text(call, 0)?.unwrap_or_default())),
            Func::Guid => Ok(Value::Str(uuid::Uuid::new_v4().to_string())),
            Func::InStr => self.in_str(call),
            Func::IsNull => Ok(Value::Bool(self.arg(call, 0)?.is_null())),
            Func::IsNullOrEmpty => Ok(Value::Bool(self.arg(call, 0)?.is_null_or_empty())),
            Func::IsPresent => Ok(Value::Bool(!self.arg(call, 0)?.is_null_or_empty())),
            Func::IsString => {
                let value = self.arg(call, 0)?;
                Ok(Value::Bool(match &value {
                    Value::Multi(values) => values.len() == 1,
                    other => !other.is_null(),
                }))
            }
            Func::Item => {
                let value = self.arg(call, 0)?;
                let Some(index) = self.int(call, 1, "index")? else { return Ok(Value::Null) };
                if value.is_null() {
                    return Ok(Value::Null);
                }
                let values = values_of(&value);
                match usize::try_from(index).ok().filter(|i| *i >= 1).and_then(|i| values.get(i - 1)) {
                    Some(v) => Ok(Value::Str(v.to_string())),
                    None => fail(
                        func,
                        format!(
                            "index {index} is out of range: the attribute has {} (the first is 1)",
                            if values.len() == 1 { "1 value".to_owned() } else { format!("{} values", values.len()) }
                        ),
                    ),
                }
            }
            Func::Left | Func::Right => {
                let source = self.text(call, 0)?.unwrap_or_default();
                let Some(n) = self.int(call, 1, "numChars")? else { return Ok(Value::Str(source)) };
                let length = source.chars().count();
                let take = match usize::try_from(n) {
                    Err(_) => length, // numChars < 0 gives the input
                    Ok(n) => n.min(length),
                };
                Ok(Value::Str(if func == Func::Left {
                    source.chars().take(take).collect()
                } else {
                    source.chars().skip(length - take).collect()
                }))
            }
            Func::Len => {
                let value = self.arg(call, 0)?;
                let length = single(func, &value)?.map_or(0, |t| t.chars().count());
                Ok(Value::Int(i64::try_from(length).unwrap_or(i64::MAX)))
            }
            Func::Mid => {
                let Some(source) = self.text(call, 0)? else { return Ok(Value::Null) };
                let start = self.int(call, 1, "start")?.unwrap_or(1);
                let length = self.int(call, 2, "length")?;
                // A19: start < 1, start past the end or a negative length give "".
                if start < 1 || length.is_some_and(|l| l < 0) {
                    return Ok(Value::Str(String::new()));
                }
                let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
                let take = length.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
                Ok(Value::Str(source.chars().skip(skip).take(take).collect()))
            }
            Func::NormalizeDiacritics => Ok(per_value(self.arg(call, 0)?, text::normalize_diacritics)),
            Func::Not => {
                let value = self.arg(call, 0)?;
                let is_true = single(func, &value)?.is_some_and(|t| t.trim().eq_ignore_ascii_case("true"));
                Ok(Value::Str(if is_true { "False" } else { "True" }.to_owned()))
            }
            Func::PCase => {
                let Some(source) = self.text(call, 0)? else { return Ok(Value::Null) };
                let separators = self.text(call, 1)?;
                Ok(Value::Str(text::pcase(&source, separators.as_deref())))
            }
            Func::RandomString => {
                let mut numbers = [0i64; 5];
                let names =
                    ["length", "minimumNumbers", "minimumSpecialCharacters", "minimumCapital", "minimumLowerCase"];
                for (i, name) in names.iter().enumerate() {
                    numbers[i] = self.int(call, i, name)?.unwrap_or(0);
                }
                let avoid = self.text(call, 5)?.unwrap_or_default();
                text::random_string(numbers[0], numbers[1], numbers[2], numbers[3], numbers[4], &avoid)
                    .map(Value::Str)
                    .or_else(|e| fail(func, e))
            }
            Func::RemoveDuplicates => {
                let value = self.arg(call, 0)?;
                match value {
                    Value::Multi(values) => {
                        let mut out: Vec<String> = Vec::with_capacity(values.len());
                        for v in values {
                            if !out.contains(&v) {
                                out.push(v);
                            }
                        }
                        Ok(Value::Multi(out))
                    }
                    other => Ok(other),
                }
            }
            Func::Replace => self.replace(call),
            Func::Split => {
                let Some(source) = self.text(call, 0)? else { return Ok(Value::Null) };
                let delimiter = self.text(call, 1)?.unwrap_or_default();
                // A7: a literal split, no trimming.
                Ok(Value::Multi(if delimiter.is_empty() {
                    vec![source]
                } else {
                    source.split(delimiter.as_str()).map(str::to_owned).collect()
                }))
            }
            Func::StringFromSid => {
                let Some(source) = self.text(call, 0)? else { return Ok(Value::Null) };
                if source.starts_with("S-") {
                    return Ok(Value::Str(source));
                }
                let compact: String = source.chars().filter(|c| !c.is_whitespace()).collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact.as_bytes())
                    .or_else(|_| fail(func, "the SID must be binary given as base64 (as Graph returns it)"))?;
                text::sid_to_string(&bytes).map(Value::Str).or_else(|e| fail(func, e))
            }
            Func::StripSpaces => Ok(per_value(self.arg(call, 0)?, |s| s.replace(' ', ""))),
            Func::ToLower | Func::ToUpper => {
                let value = self.arg(call, 0)?;
                let culture = self.text(call, 1)?;
                let culture = culture.as_deref();
                Ok(if func == Func::ToLower {
                    per_value(value, |s| text::to_lower(s, culture))
                } else {
                    per_value(value, |s| text::to_upper(s, culture))
                })
            }
            Func::Trim => Ok(per_value(self.arg(call, 0)?, |s| s.trim().to_owned())),
            Func::Word => {
                let Some(source) = self.text(call, 0)? else { return Ok(Value::Str(String::new())) };
                let n = self.int(call, 1, "wordNumber")?.unwrap_or(0);
                let delimiters = self.text(call, 2)?.unwrap_or_default();
                Ok(Value::Str(text::word(&source, n, &delimiters)))
            }
        }
    }

    /// Join: the separator between every non-empty value, multi-valued sources flattened (A6).
    /// Written to one buffer; attribute and literal arguments are read without copies.
    fn join(&self, call: &Call) -> Result<Value> {
        let separator: Cow<'_, str> = match call.arg(0) {
            Some(Node::Str(s)) => Cow::Borrowed(s),
            Some(node) => {
                let value = self.eval(node)?;
                Cow::Owned(single(call.func, &value)?.map(Cow::into_owned).unwrap_or_default())
            }
            None => Cow::Borrowed(""),
        };
        let mut out = String::with_capacity(64);
        let mut first = true;
        let mut push = |part: &str| {
            if part.is_empty() {
                return;
            }
            if !first {
                out.push_str(&separator);
            }
            first = false;
            out.push_str(part);
        };
        for node in call.args.iter().skip(1).flatten() {
            match node {
                Node::Str(s) => push(s),
                Node::Num { text, .. } => push(text),
                Node::Attr(name) => match self.source.get(name) {
                    Some(serde_json::Value::String(s)) => push(s),
                    Some(serde_json::Value::Null) | None => {}
                    Some(other) => {
                        for v in values_of(&from_json(other)) {
                            push(&v);
                        }
                    }
                },
                other => {
                    let value = self.eval(other)?;
                    for v in values_of(&value) {
                        push(&v);
                    }
                }
            }
        }
        Ok(Value::Str(out))
    }

    /// Switch: the value of the first key equal (ordinal) to the source; a null source matches "" (A22);
    /// only the chosen value is evaluated (A23).
    fn switch(&self, call: &Call) -> Result<Value> {
        let source = self.arg(call, 0)?;
        let source_text = source.as_text().unwrap_or_default();
        let mut index = 2;
        while index + 1 < call.args.len() {
            // Literal keys (the usual case) are compared in place.
            let matched = match call.arg(index) {
                Some(Node::Str(key)) => **key == *source_text,
                _ => self.arg(call, index)?.as_text().unwrap_or_default() == source_text,
            };
            if matched {
                return self.arg(call, index + 1);
            }
            index += 2;
        }
        self.arg(call, 1)
    }

    /// SelectUniqueValue: the first candidate (in order, each evaluated only when needed) that is not
    /// taken; null or empty candidates are passed over; an error when every candidate is taken.
    fn select_unique_value(&self, call: &Call) -> Result<Value> {
        let mut tried = Vec::new();
        for node in call.args.iter().flatten() {
            let value = self.eval(node)?;
            let Some(candidate) = single(call.func, &value)?.map(Cow::into_owned) else { continue };
            if candidate.is_empty() {
                continue;
            }
            let taken = self.ctx.is_taken.is_some_and(|is_taken| is_taken(&candidate));
            if !taken {
                return Ok(Value::Str(candidate));
            }
            tried.push(candidate);
        }
        Err(EvalError::NoUniqueValue { tried })
    }

    fn ignore_case(&self, call: &Call, index: usize) -> Result<bool> {
        match call.arg(index) {
            None => Ok(false),
            Some(Node::Const(Constant::VbTextCompare)) => Ok(true),
            Some(Node::Const(Constant::VbBinaryCompare)) => Ok(false),
            Some(node) => {
                let value = self.eval(node)?;
                let text = value.as_text().unwrap_or_default();
                match text.trim() {
                    t if t.eq_ignore_ascii_case("vbTextCompare") || t == "1" => Ok(true),
                    t if t.eq_ignore_ascii_case("vbBinaryCompare") || t == "0" || t.is_empty() => Ok(false),
                    t => {
                        fail(call.func, format!("compareType must be vbBinaryCompare or vbTextCompare, found \"{t}\""))
                    }
                }
            }
        }
    }

    /// InStr: the 1-based position of value2 in value1 from `start`, 0 when absent.
    fn in_str(&self, call: &Call) -> Result<Value> {
        let Some(haystack) = self.text(call, 0)? else { return Ok(Value::Int(0)) };
        let needle = self.text(call, 1)?.unwrap_or_default();
        let start = self.int(call, 2, "start")?.unwrap_or(1);
        if start < 1 {
            return fail(call.func, format!("start must be 1 or more, found {start}"));
        }
        let ignore_case = self.ignore_case(call, 3)?;
        let fold = |s: &str| -> Vec<char> {
            if ignore_case {
                s.chars().map(|c| c.to_lowercase().next().unwrap_or(c)).collect()
            } else {
                s.chars().collect()
            }
        };
        let hay = fold(&haystack);
        let pin = fold(&needle);
        let from = usize::try_from(start - 1).unwrap_or(usize::MAX);
        if from > hay.len() {
            return Ok(Value::Int(0));
        }
        if pin.is_empty() {
            return Ok(Value::Int(start));
        }
        let found = (from..=hay.len().saturating_sub(pin.len()))
            .find(|&i| i + pin.len() <= hay.len() && hay[i..i + pin.len()] == pin[..]);
        Ok(Value::Int(found.map_or(0, |i| i64::try_from(i + 1).unwrap_or(i64::MAX))))
    }

    fn convert_from_base64(&self, call: &Call) -> Result<Value> {
        let Some(source) = self.text(call, 0)? else { return Ok(Value::Null) };
        let encoding = match call.arg(1) {
            None => Constant::Unicode,
            Some(Node::Const(c)) => *c,
            Some(node) => {
                let value = self.eval(node)?;
                let name = value.as_text().unwrap_or_default().trim().replace('-', "");
                match name.to_ascii_lowercase().as_str() {
                    "" | "unicode" | "utf16" => Constant::Unicode,
                    "utf8" => Constant::Utf8,
                    "ascii" => Constant::Ascii,
                    "utf32" => Constant::Utf32,
                    "bigendianunicode" => Constant::BigEndianUnicode,
                    _ => {
                        return fail(
                            call.func,
                            format!("unknown encoding \"{name}\": use Unicode, UTF8, ASCII, UTF32 or BigEndianUnicode"),
                        )
                    }
                }
            }
        };
        let compact: String = source.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .or_else(|e| fail(call.func, format!("the source is not valid base64: {e}")))?;
        let text = match encoding {
            Constant::Utf8 => String::from_utf8_lossy(&bytes).into_owned(),
            Constant::Ascii => bytes.iter().map(|b| if b.is_ascii() { char::from(*b) } else { '?' }).collect(),
            Constant::Utf32 => bytes
                .chunks(4)
                .map(|c| {
                    let mut word = [0u8; 4];
                    word[..c.len()].copy_from_slice(c);
                    char::from_u32(u32::from_le_bytes(word)).unwrap_or('\u{FFFD}')
                })
                .collect(),
            Constant::BigEndianUnicode => {
                let units: Vec<u16> =
                    bytes.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])).collect();
                String::from_utf16_lossy(&units)
            }
            _ => {
                let units: Vec<u16> =
                    bytes.chunks(2).map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)])).collect();
                String::from_utf16_lossy(&units)
            }
        };
        Ok(Value::Str(text))
    }

    /// FormatDateTime: 4 arguments are (source, dateTimeStyles, inputFormat, outputFormat), 3 are
    /// (source, inputFormat, outputFormat) (A18); a DateTime source ignores inputFormat.
    fn format_date_time(&self, call: &Call) -> Result<Value> {
        let (input_index, output_index) = if call.args.len() == 4 { (2, 3) } else { (1, 2) };
        let source = self.arg(call, 0)?;
        let Some(output) = self.text(call, output_index)? else {
            return fail(call.func, "outputFormat is required");
        };
        let date = match source {
            Value::DateTime(d) => d,
            v if v.is_null() => return Ok(Value::Null),
            other => {
                let text = single(call.func, &other)?.unwrap_or_default().into_owned();
                let input = self.text(call, input_index)?;
                let parsed = match input.as_deref() {
                    Some(format) if !format.is_empty() => dates::parse_with_format(&text, format),
                    _ => dates::cdate(&text),
                };
                match parsed {
                    Some(d) => d,
                    None => {
                        return fail(
                            call.func,
                            format!("\"{text}\" does not match the input format \"{}\"", input.unwrap_or_default()),
                        )
                    }
                }
            }
        };
        Ok(Value::Str(dates::format_with(date, &output)))
    }

    /// Replace in the mode its arguments chose at parse time (§3.1).
    fn replace(&self, call: &Call) -> Result<Value> {
        let Some(mode) = call.replace.as_ref().map(|spec| spec.mode) else {
            return fail(call.func, "no mode");
        };
        let err = |e: String| EvalError::Function { function: call.func.name(), message: e };
        match mode {
            ReplaceMode::Ordinal => {
                let Some(source) = self.text(call, 0)? else { return Ok(Value::Null) };
                let old = self.text(call, 1)?.unwrap_or_default();
                let replacement = self.text(call, 4)?.unwrap_or_default();
                if old.is_empty() {
                    return Ok(Value::Str(source));
                }
                Ok(Value::Str(source.replace(&old, &replacement)))
            }
            ReplaceMode::Template => {
                let Some(source) = self.text(call, 0)? else { return Ok(Value::Null) };
                let old = self.text(call, 1)?.unwrap_or_default();
                let template = self.text(call, 6)?.unwrap_or_default();
                if old.is_empty() {
                    return Ok(Value::Str(template));
                }
                Ok(Value::Str(template.replace(&old, &source)))
            }
            ReplaceMode::Regex => {
                let Some(source) = self.text(call, 0)? else { return Ok(Value::Null) };
                let regex = self.regex(call)?;
                let replacement = self.text(call, 4)?.unwrap_or_default();
                regex.replace_all(&source, &replacement).map(Value::Str).map_err(err)
            }
            ReplaceMode::RegexGroup => {
                let Some(source) = self.text(call, 0)? else { return Ok(Value::Null) };
                let regex = self.regex(call)?;
                let group = self.text(call, 3)?.unwrap_or_default();
                let replacement = self.text(call, 4)?.unwrap_or_default();
                regex.replace_group(&source, &group, &replacement).map(Value::Str).map_err(err)
            }
            ReplaceMode::RegexGroupFromAttribute => {
                // A8 (F): a source with a value is returned as it is; otherwise the group's value in
                // the replacement attribute.
                let source = self.arg(call, 0)?;
                if !source.is_null_or_empty() {
                    return Ok(source);
                }
                let regex = self.regex(call)?;
                let group = self.text(call, 3)?.unwrap_or_default();
                let Some(other) = self.text(call, 5)? else { return Ok(Value::Null) };
                Ok(regex.first_group(&other, &group).map_err(err)?.map_or(Value::Null, Value::Str))
            }
        }
    }
}
