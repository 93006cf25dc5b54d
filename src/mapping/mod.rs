//! Attribute mappings and scoping filters of a tenant: compiled from their stored definitions
//! (`model::mapping::MappingSet`, `store::mappings`) into a `sync::ObjectPolicy` (docs/mappings.md).
//! Expressions are parsed once, when the policy is compiled; the round then asks the policy once per
//! object. `cli` is `entrasync mapping eval`.

pub mod cli;
mod policy;
pub mod scope;
pub mod validate;

use serde::Serialize;

pub use policy::{compile, compile_at, load_policy, PolicyContext, TenantPolicy};

use crate::model::ObjectClass;
use crate::store::StoreError;

/// One thing wrong with a mapping set: where (`mappings[2].source.expression`,
/// `scoping[0].clauses[1].value`), what, and for an expression the 1-based character it starts at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappingProblem {
    pub field: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

impl MappingProblem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        MappingProblem { field: field.into(), message: message.into(), position: None }
    }

    pub fn at(field: impl Into<String>, message: impl Into<String>, position: usize) -> Self {
        MappingProblem { field: field.into(), message: message.into(), position: Some(position) }
    }
}

impl std::fmt::Display for MappingProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored set that does not compile (a rule got stricter since it was stored): the round must not
    /// run with half a policy. Fix it through the API.
    #[error(
        "the stored {class} mappings of tenant {tenant_id} are not valid: {}; correct them with \
         PUT /api/v1/tenants/{tenant_id}/mappings/{class}",
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Invalid { tenant_id: i64, class: ObjectClass, problems: Vec<MappingProblem> },
}
