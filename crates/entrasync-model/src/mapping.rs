//! Attribute mappings and scoping filters of one (tenant, class), as stored and as the API reads and
//! writes them (docs/mappings.md). Plain data: validation and evaluation live in the service's
//! `mapping` module.

use serde::{Deserialize, Serialize};

/// Everything configured for one (tenant, class). The default (no mappings, no scoping) stores every
/// object as Graph sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct MappingSet {
    #[serde(default)]
    pub mappings: Vec<AttributeMapping>,
    /// Groups of clauses: AND within a group, OR across groups; no group = every object in scope.
    #[serde(default)]
    pub scoping: Vec<ScopeGroup>,
}

impl MappingSet {
    /// No mappings and no scoping: the same as not configuring anything.
    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty() && self.scoping.is_empty()
    }
}

/// One target attribute and where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct AttributeMapping {
    pub target: String,
    pub source: MappingSource,
    /// Written when the object is first stored and the source gives null ("default value if null").
    #[serde(default)]
    pub default_if_null: Option<String>,
    #[serde(default)]
    pub apply: ApplyWhen,
}

/// "Apply this mapping".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyWhen {
    /// On creation and on every update.
    #[default]
    Always,
    /// Only when the object is first stored.
    OnCreate,
}

impl ApplyWhen {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyWhen::Always => "always",
            ApplyWhen::OnCreate => "on_create",
        }
    }
}

/// The mapping types of Entra provisioning: `{"type": "direct", "attribute": "mail"}`,
/// `{"type": "constant", "value": "x"}`, `{"type": "expression", "expression": "…"}`, `{"type": "none"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MappingSource {
    /// The value of a source attribute (exact name first, then case-insensitive).
    Direct { attribute: String },
    /// A fixed string.
    Constant { value: String },
    /// The result of an expression of the Entra expression language.
    Expression { expression: String },
    /// Leaves the target alone; only its `default_if_null` is written, on creation.
    None,
}

/// One scoping filter: true when all its clauses are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ScopeGroup {
    pub clauses: Vec<ScopeClause>,
}

/// `attribute OPERATOR value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ScopeClause {
    pub attribute: String,
    pub operator: ScopeOperator,
    /// Absent for the unary operators (`is_null`, `is_not_null`, `is_true`, `is_false`).
    #[serde(default)]
    pub value: Option<String>,
}

/// The scoping operators of Entra provisioning (portal labels in the comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeOperator {
    /// `EQUALS`
    Equals,
    /// `NOT EQUALS`
    NotEquals,
    /// `Includes` (the attribute contains the value)
    Includes,
    /// `ENDS_WITH`
    EndsWith,
    /// `REGEX MATCH`
    RegexMatch,
    /// `NOT REGEX MATCH`
    NotRegexMatch,
    /// `IS NULL`
    IsNull,
    /// `IS NOT NULL`
    IsNotNull,
    /// `IS TRUE`
    IsTrue,
    /// `IS FALSE`
    IsFalse,
    /// `Greater_Than`
    GreaterThan,
    /// `Greater_Than_OR_EQUALS`
    GreaterThanOrEquals,
    /// `&`: the attribute's value occurs in the clause's value
    ContainsIn,
    /// `!&`: the attribute's value does not occur in the clause's value
    NotContainsIn,
}

impl ScopeOperator {
    pub const ALL: [ScopeOperator; 14] = [
        ScopeOperator::Equals,
        ScopeOperator::NotEquals,
        ScopeOperator::Includes,
        ScopeOperator::EndsWith,
        ScopeOperator::RegexMatch,
        ScopeOperator::NotRegexMatch,
        ScopeOperator::IsNull,
        ScopeOperator::IsNotNull,
        ScopeOperator::IsTrue,
        ScopeOperator::IsFalse,
        ScopeOperator::GreaterThan,
        ScopeOperator::GreaterThanOrEquals,
        ScopeOperator::ContainsIn,
        ScopeOperator::NotContainsIn,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeOperator::Equals => "equals",
            ScopeOperator::NotEquals => "not_equals",
            ScopeOperator::Includes => "includes",
            ScopeOperator::EndsWith => "ends_with",
            ScopeOperator::RegexMatch => "regex_match",
            ScopeOperator::NotRegexMatch => "not_regex_match",
            ScopeOperator::IsNull => "is_null",
            ScopeOperator::IsNotNull => "is_not_null",
            ScopeOperator::IsTrue => "is_true",
            ScopeOperator::IsFalse => "is_false",
            ScopeOperator::GreaterThan => "greater_than",
            ScopeOperator::GreaterThanOrEquals => "greater_than_or_equals",
            ScopeOperator::ContainsIn => "contains_in",
            ScopeOperator::NotContainsIn => "not_contains_in",
        }
    }

    /// Whether a clause with this operator needs a `value` (the binary operators).
    pub fn needs_value(self) -> bool {
        !matches!(
            self,
            ScopeOperator::IsNull | ScopeOperator::IsNotNull | ScopeOperator::IsTrue | ScopeOperator::IsFalse
        )
    }
}

impl std::fmt::Display for ScopeOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
