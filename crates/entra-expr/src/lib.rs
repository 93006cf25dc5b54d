//! The Microsoft Entra provisioning expression language (docs/mappings.md): parse once, evaluate many
//! times against an object's attributes.
//!
//! ```
//! use entra_expr::{Context, Expression, Value};
//! let expression = Expression::parse(r#"Join(".", [givenName], [surname])"#).unwrap();
//! let object = serde_json::json!({"givenName": "Ada", "surname": "Lovelace"});
//! let now = chrono::DateTime::from_timestamp(0, 0).unwrap();
//! let value = expression.evaluate(object.as_object().unwrap(), &Context::at(now)).unwrap();
//! assert_eq!(value, Value::Str("Ada.Lovelace".into()));
//! ```

use std::fmt;

use chrono::{DateTime, Utc};

mod eval;
mod func;
mod parser;
mod regex_net;
mod value;

mod text;

// Helper B's pure date functions (contract: crates/entra-expr/src/dates.rs and dotnet_format.rs).
mod dates;
mod dotnet_format;

pub use parser::{ParseError, MAX_LENGTH};
pub use value::Value;

/// A parsed expression: the tree with its functions resolved, ready to evaluate any number of times.
#[derive(Debug, Clone)]
pub struct Expression {
    text: String,
    root: parser::Node,
}

impl Expression {
    /// Parses an expression of at most [`MAX_LENGTH`] characters. Function names are resolved here
    /// (ignoring case), so evaluation does no name lookups; literal regex patterns are compiled here.
    pub fn parse(text: &str) -> Result<Expression, ParseError> {
        let root = parser::parse(text)?;
        Ok(Expression { text: text.to_owned(), root })
    }

    /// The expression's text as given to [`Expression::parse`].
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluates the expression against one object's attributes.
    pub fn evaluate(&self, source: &dyn Source, ctx: &Context) -> Result<Value, EvalError> {
        eval::Evaluator { source, ctx }.eval(&self.root)
    }

    /// The attribute names the expression references (`[name]`), in order of first appearance.
    pub fn attributes(&self) -> Vec<&str> {
        let mut out = Vec::new();
        parser::collect_attributes(&self.root, &mut out);
        out
    }

    /// False if the expression calls Now, Guid, RandomString or SelectUniqueValue.
    pub fn is_deterministic(&self) -> bool {
        parser::is_deterministic(&self.root)
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where attribute values come from.
pub trait Source {
    /// The attribute's value: exact name first, then a case-insensitive match (A1).
    fn get(&self, name: &str) -> Option<&serde_json::Value>;
}

impl Source for serde_json::Map<String, serde_json::Value> {
    fn get(&self, name: &str) -> Option<&serde_json::Value> {
        if let Some(value) = serde_json::Map::get(self, name) {
            return Some(value);
        }
        self.iter().find(|(key, _)| eq_ignore_case(key, name)).map(|(_, value)| value)
    }
}

/// Case-insensitive equality without allocating (ASCII fast path, Unicode lower-case otherwise).
fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
    }
}

/// What an evaluation may need besides the object: the time, the tenant's default domain, and the
/// uniqueness check of SelectUniqueValue.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The value of `Now()`.
    pub now: DateTime<Utc>,
    /// The tenant's default verified domain, for `DefaultDomain()` (an error when `None`).
    pub default_domain: Option<&'a str>,
    /// Whether a value is already taken in the target, for `SelectUniqueValue`. `None`: nothing is taken.
    pub is_taken: Option<&'a dyn Fn(&str) -> bool>,
}

impl Context<'_> {
    /// A context with `Now()` = `now`, no default domain and nothing taken.
    pub fn at(now: DateTime<Utc>) -> Self {
        Context { now, default_domain: None, is_taken: None }
    }
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("now", &self.now)
            .field("default_domain", &self.default_domain)
            .field("is_taken", &self.is_taken.map(|_| "<fn>"))
            .finish()
    }
}

/// Why an evaluation failed. The message names the function and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A function could not compute its result from the values it was given.
    #[error("{function}: {message}")]
    Function { function: &'static str, message: String },
    /// `Error("message")` was evaluated: the object fails with the expression's own message.
    #[error("Error(): {0}")]
    Raised(String),
    /// SelectUniqueValue found every candidate taken (Entra escrows the object).
    #[error("SelectUniqueValue: every candidate is already taken ({})", .tried.join(", "))]
    NoUniqueValue { tried: Vec<String> },
    /// DefaultDomain() with no default domain known for the tenant.
    #[error("DefaultDomain: the tenant has no default verified domain")]
    NoDefaultDomain,
}
