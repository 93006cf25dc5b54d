//! What several handlers share: page sizes, name validation, and the problem responses every
//! endpoint may give (documented once for the OpenAPI document).

use std::collections::BTreeMap;

use utoipa::openapi::{ContentBuilder, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, PartialSchema};

use super::problem::{ApiError, Problem};

/// The page sizes operators choose from (50 is the default).
pub const PAGE_SIZES: [i64; 3] = [50, 100, 1000];

pub fn page_size(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(PAGE_SIZES[0]),
        Some(n) if PAGE_SIZES.contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid("limit", format!("limit {n} is not a page size; use 50, 100 or 1000"))),
    }
}

/// A display name: trimmed, 1 to 200 characters, no control characters.
pub fn name(field: &str, value: &str) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 200 || trimmed.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be 1 to 200 characters without control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Secret material: at most 16 KiB, not blank.
pub fn material(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.len() > 16 * 1024 {
        return Err(ApiError::invalid(field, format!("{field} must be 1 byte to 16 KiB")));
    }
    Ok(())
}

/// The problem responses of every endpoint.
pub struct Problems;

impl IntoResponses for Problems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let cases = [
            ("400", "Malformed JSON, query or unknown field"),
            ("401", "Missing, unknown or revoked token"),
            ("403", "The token's role may not do this"),
            ("404", "No such resource"),
            ("409", "Conflicts with the stored state"),
            ("413", "Body over 64 KiB"),
            ("415", "Body is not JSON"),
            ("422", "A value is not acceptable; `field` names it"),
            ("429", "Too many failed sign-ins from this address"),
            ("500", "Unexpected failure; `instance` names it in the server log"),
            ("502", "Graph or RabbitMQ failed"),
            ("503", "Postgres unreachable"),
        ];
        cases
            .into_iter()
            .map(|(status, description)| {
                let response = ResponseBuilder::new()
                    .description(description)
                    .content("application/problem+json", ContentBuilder::new().schema(Some(Problem::schema())).build())
                    .build();
                (status.to_owned(), RefOr::T(response))
            })
            .collect()
    }
}

/// The closed vocabularies of requests, as enums so the OpenAPI document lists their values and serde
/// rejects anything else (400 naming the value and the accepted ones).
pub mod names {
    use serde::{Deserialize, Serialize};
    use utoipa::ToSchema;

    use crate::model::{ObjectClass, SyncMode};
    use crate::store::api_tokens::Role;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum ClassName {
        User,
        Group,
        Device,
    }

    impl From<ClassName> for ObjectClass {
        fn from(c: ClassName) -> Self {
            match c {
                ClassName::User => ObjectClass::User,
                ClassName::Group => ObjectClass::Group,
                ClassName::Device => ObjectClass::Device,
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum ModeName {
        Full,
        Delta,
        Remap,
        TagSync,
    }

    impl From<ModeName> for SyncMode {
        fn from(m: ModeName) -> Self {
            match m {
                ModeName::Full => SyncMode::Full,
                ModeName::Delta => SyncMode::Delta,
                ModeName::Remap => SyncMode::Remap,
                ModeName::TagSync => SyncMode::TagSync,
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum RoleName {
        Admin,
        Viewer,
    }

    impl From<RoleName> for Role {
        fn from(r: RoleName) -> Self {
            match r {
                RoleName::Admin => Role::Admin,
                RoleName::Viewer => Role::Viewer,
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum CloudName {
        Global,
        UsGov,
        UsGovDod,
        China,
        /// The Graph emulator or a sovereign endpoint: give `login_url` and `graph_url`.
        Custom,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum StatusName {
        Running,
        Success,
        Warning,
        Failed,
        Held,
        Cancelled,
    }

    impl StatusName {
        pub fn as_str(self) -> &'static str {
            match self {
                StatusName::Running => "running",
                StatusName::Success => "success",
                StatusName::Warning => "warning",
                StatusName::Failed => "failed",
                StatusName::Held => "held",
                StatusName::Cancelled => "cancelled",
            }
        }
    }
}
