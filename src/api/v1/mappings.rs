//! `/tenants/{id}/mappings/{class}`: a tenant's attribute mappings and scoping filter for one class, read
//! and replaced as a whole (docs/mappings.md). A write is validated (every problem at once, with its
//! field path and, for an expression, the character), stored with a new version and its audit row, and
//! a `remap` job applies it to the stored objects; a changed scoping also asks for a full scan, since
//! objects a narrower filter kept out were never stored.
//!
//! The request and response types mirror `model::mapping` (which has no OpenAPI dependency) field for
//! field, so the document describes exactly what is stored.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Caller;
use super::page::names::ClassName;
use super::page::Problems;
use super::problem::ApiError;
use super::tenants::no_tenant;
use crate::api::AppState;
use crate::mapping::{validate, MappingProblem};
use crate::model::mapping as m;
use crate::model::{ObjectClass, Trigger};
use crate::queue;
use crate::store::{mappings, tenants};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants/{id}/mappings/{class}", web::get().to(get))
        .route("/tenants/{id}/mappings/{class}", web::put().to(put));
}

/// One target attribute and where its value comes from.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeMapping {
    /// The mapped attribute's name: letters, digits, `_ . : -`, starting with a letter; not `id`;
    /// unique (ignoring case) within the set.
    #[schema(min_length = 1, max_length = 256)]
    pub target: String,
    pub source: MappingSource,
    /// Written when the object is first stored and the source gives null.
    #[serde(default)]
    pub default_if_null: Option<String>,
    #[serde(default)]
    pub apply: ApplyWhen,
}

/// `direct`: a source attribute's value; `constant`: a fixed string; `expression`: an expression of
/// the Entra expression language (at most 10,000 characters); `none`: only `default_if_null`, on
/// creation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MappingSource {
    Direct { attribute: String },
    Constant { value: String },
    Expression { expression: String },
    None,
}

/// "Apply this mapping": `always` (creation and every update) or `on_create` (only when the object is
/// first stored). Expressions calling Now, Guid, RandomString or SelectUniqueValue need `on_create`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApplyWhen {
    #[default]
    Always,
    OnCreate,
}

/// One scoping filter: in scope when every clause holds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeGroup {
    #[schema(min_items = 1)]
    pub clauses: Vec<ScopeClause>,
}

/// `attribute operator value`. Comparisons are case-sensitive; every operator except `is_null` and
/// `is_not_null` is false on an empty attribute; multi-valued attributes cannot be filtered.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeClause {
    pub attribute: String,
    pub operator: ScopeOperator,
    /// Required by every operator except `is_null`, `is_not_null`, `is_true` and `is_false` (which take
    /// none); a regular expression for the regex operators (unanchored), an integer for `greater_than*`.
    #[serde(default)]
    pub value: Option<String>,
}

/// The scoping operators; `contains_in` is the portal's `&` (the attribute's value occurs in the
/// clause's value), `not_contains_in` its `!&`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeOperator {
    Equals,
    NotEquals,
    Includes,
    EndsWith,
    RegexMatch,
    NotRegexMatch,
    IsNull,
    IsNotNull,
    IsTrue,
    IsFalse,
    GreaterThan,
    GreaterThanOrEquals,
    ContainsIn,
    NotContainsIn,
}

/// What `GET` answers: version 0 and no `updated_at` when nothing was ever stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct MappingSetView {
    pub version: i64,
    pub updated_at: Option<DateTime<Utc>>,
    pub mappings: Vec<AttributeMapping>,
    /// AND within a group, OR across groups; empty: every object is in scope.
    pub scoping: Vec<ScopeGroup>,
}

/// The whole set for `PUT`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingSetPut {
    /// The version this change is based on (0 when nothing is stored yet); a different stored version
    /// is `409`. Leave it out to overwrite whatever is stored.
    #[schema(minimum = 0)]
    pub version: Option<i64>,
    #[serde(default)]
    pub mappings: Vec<AttributeMapping>,
    #[serde(default)]
    pub scoping: Vec<ScopeGroup>,
}

/// What `PUT` answers: the stored set, the `remap` job that applies it to the stored objects (none when
/// nothing changed), and whether a full scan was requested (the scoping changed).
#[derive(Debug, Serialize, ToSchema)]
pub struct MappingSetSaved {
    pub version: i64,
    pub updated_at: Option<DateTime<Utc>>,
    pub mappings: Vec<AttributeMapping>,
    pub scoping: Vec<ScopeGroup>,
    pub remap_job_id: Option<Uuid>,
    pub full_scan_requested: bool,
}

/// One problem of a mapping set or expression.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldProblem {
    /// Where: `mappings[2].source.expression`, `scoping[0].clauses[1].value`, `expression`.
    pub field: String,
    pub message: String,
    /// For an expression: the 1-based character the problem is at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

impl From<MappingProblem> for FieldProblem {
    fn from(p: MappingProblem) -> Self {
        FieldProblem { field: p.field, message: p.message, position: p.position }
    }
}

/// The `422` of mappings and expressions: a problem details document with every problem listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvalidProblem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The first problem's field.
    pub field: String,
    /// The first problem's position, for an expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    pub problems: Vec<FieldProblem>,
}

/// A `422` listing `problems` (at least one).
pub(super) fn invalid_response(problems: Vec<FieldProblem>) -> HttpResponse {
    let first = problems.first().cloned().unwrap_or(FieldProblem {
        field: String::new(),
        message: "the value is not acceptable".to_owned(),
        position: None,
    });
    let detail = match problems.len() {
        1 => first.message.clone(),
        n => format!("{n} problems; the first: {}: {}", first.field, first.message),
    };
    let body = InvalidProblem {
        kind: "https://entrasync.dev/problems/invalid-value".to_owned(),
        title: "Invalid value".to_owned(),
        status: StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
        detail,
        field: first.field,
        position: first.position,
        problems,
    };
    HttpResponse::UnprocessableEntity()
        .content_type("application/problem+json")
        .body(serde_json::to_string(&body).unwrap_or_default())
}

impl From<AttributeMapping> for m::AttributeMapping {
    fn from(a: AttributeMapping) -> Self {
        m::AttributeMapping {
            target: a.target,
            source: match a.source {
                MappingSource::Direct { attribute } => m::MappingSource::Direct { attribute },
                MappingSource::Constant { value } => m::MappingSource::Constant { value },
                MappingSource::Expression { expression } => m::MappingSource::Expression { expression },
                MappingSource::None => m::MappingSource::None,
            },
            default_if_null: a.default_if_null,
            apply: match a.apply {
                ApplyWhen::Always => m::ApplyWhen::Always,
                ApplyWhen::OnCreate => m::ApplyWhen::OnCreate,
            },
        }
    }
}

impl From<m::AttributeMapping> for AttributeMapping {
    fn from(a: m::AttributeMapping) -> Self {
        AttributeMapping {
            target: a.target,
            source: match a.source {
                m::MappingSource::Direct { attribute } => MappingSource::Direct { attribute },
                m::MappingSource::Constant { value } => MappingSource::Constant { value },
                m::MappingSource::Expression { expression } => MappingSource::Expression { expression },
                m::MappingSource::None => MappingSource::None,
            },
            default_if_null: a.default_if_null,
            apply: match a.apply {
                m::ApplyWhen::Always => ApplyWhen::Always,
                m::ApplyWhen::OnCreate => ApplyWhen::OnCreate,
            },
        }
    }
}

macro_rules! operators {
    ($($name:ident),*) => {
        impl From<ScopeOperator> for m::ScopeOperator {
            fn from(o: ScopeOperator) -> Self {
                match o { $(ScopeOperator::$name => m::ScopeOperator::$name),* }
            }
        }
        impl From<m::ScopeOperator> for ScopeOperator {
            fn from(o: m::ScopeOperator) -> Self {
                match o { $(m::ScopeOperator::$name => ScopeOperator::$name),* }
            }
        }
    };
}

operators!(
    Equals,
    NotEquals,
    Includes,
    EndsWith,
    RegexMatch,
    NotRegexMatch,
    IsNull,
    IsNotNull,
    IsTrue,
    IsFalse,
    GreaterThan,
    GreaterThanOrEquals,
    ContainsIn,
    NotContainsIn
);

impl From<ScopeGroup> for m::ScopeGroup {
    fn from(g: ScopeGroup) -> Self {
        m::ScopeGroup {
            clauses: g
                .clauses
                .into_iter()
                .map(|c| m::ScopeClause { attribute: c.attribute, operator: c.operator.into(), value: c.value })
                .collect(),
        }
    }
}

impl From<m::ScopeGroup> for ScopeGroup {
    fn from(g: m::ScopeGroup) -> Self {
        ScopeGroup {
            clauses: g
                .clauses
                .into_iter()
                .map(|c| ScopeClause { attribute: c.attribute, operator: c.operator.into(), value: c.value })
                .collect(),
        }
    }
}

fn view(set: m::MappingSet, version: i64, updated_at: Option<DateTime<Utc>>) -> MappingSetView {
    MappingSetView {
        version,
        updated_at,
        mappings: set.mappings.into_iter().map(AttributeMapping::from).collect(),
        scoping: set.scoping.into_iter().map(ScopeGroup::from).collect(),
    }
}

/// The tenant's mappings and scoping filter for one class.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/mappings/{class}", tag = "mappings",
    params(("id" = i64, Path), ("class" = ClassName, Path)),
    responses((status = 200, body = MappingSetView), Problems))]
pub async fn get(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, ClassName)>,
) -> Result<web::Json<MappingSetView>, ApiError> {
    let (id, class) = path.into_inner();
    let class = ObjectClass::from(class);
    tenants::get(&state.pool, id).await?.ok_or_else(|| no_tenant(id))?;
    Ok(web::Json(match mappings::get(&state.pool, id, class).await? {
        Some(stored) => view(stored.set, stored.version, Some(stored.updated_at)),
        None => view(m::MappingSet::default(), 0, None),
    }))
}

/// Replaces the tenant's mappings and scoping filter for one class: validates, stores (audited), queues
/// a `remap` job, and requests a full scan when the scoping changed. Storing what is stored already
/// changes nothing and queues nothing.
#[utoipa::path(put, path = "/api/v1/tenants/{id}/mappings/{class}", tag = "mappings",
    params(("id" = i64, Path), ("class" = ClassName, Path)), request_body = MappingSetPut,
    responses((status = 200, body = MappingSetSaved), Problems,
        (status = 422, body = InvalidProblem, content_type = "application/problem+json",
         description = "The set is not valid: `problems` lists every problem with its field and, for an \
                        expression, the character")))]
pub async fn put(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(i64, ClassName)>,
    body: web::Json<MappingSetPut>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.admin()?;
    let (id, class) = path.into_inner();
    let class = ObjectClass::from(class);
    let body = body.into_inner();
    let tenant = tenants::get(&state.pool, id).await?.ok_or_else(|| no_tenant(id))?;
    if body.version.is_some_and(|v| v < 0) {
        return Ok(invalid_response(vec![FieldProblem {
            field: "version".to_owned(),
            message: "version is 0 (nothing stored yet) or the version you read".to_owned(),
            position: None,
        }]));
    }
    let set = m::MappingSet {
        mappings: body.mappings.into_iter().map(m::AttributeMapping::from).collect(),
        scoping: body.scoping.into_iter().map(m::ScopeGroup::from).collect(),
    };
    let problems = validate::check(class, &set);
    if !problems.is_empty() {
        return Ok(invalid_response(problems.into_iter().map(FieldProblem::from).collect()));
    }
    let stored = mappings::get(&state.pool, id, class).await?;
    let (stored_version, stored_scoping) =
        stored.as_ref().map_or((0, Vec::new()), |s| (s.version, s.set.scoping.clone()));
    if let Some(expected) = body.version {
        if expected != stored_version {
            return Err(ApiError::conflict(format!(
                "the {class} mappings of tenant {id} changed meanwhile: you sent version {expected}, the stored \
                 version is {stored_version}; read them again and reapply your change"
            )));
        }
    }
    let unchanged = match &stored {
        Some(s) => s.set == set,
        None => set.is_empty(),
    };
    if unchanged {
        let (version, updated_at) = stored.as_ref().map_or((0, None), |s| (s.version, Some(s.updated_at)));
        let current = view(set, version, updated_at);
        return Ok(HttpResponse::Ok().json(MappingSetSaved {
            version: current.version,
            updated_at: current.updated_at,
            mappings: current.mappings,
            scoping: current.scoping,
            remap_job_id: None,
            full_scan_requested: false,
        }));
    }
    let full_scan_requested = stored_scoping != set.scoping;
    let version = mappings::put(&state.pool, &actor, id, class, &set, Some(stored_version)).await?;
    let updated_at = mappings::get(&state.pool, id, class).await?.map(|s| s.updated_at);
    let remap_job_id =
        queue::publish_remap(&state.broker, tenant.entra_tenant_id, class, Trigger::Api).await.map_err(|e| {
            ApiError::upstream(format!(
                "the mappings were stored as version {version}, but RabbitMQ did not accept the remap job ({e}); \
                 they apply to each object when it next changes, and a full sync (POST /api/v1/tenants/{id}/sync) applies \
                 them to every object"
            ))
        })?;
    let saved = view(set, version, updated_at);
    Ok(HttpResponse::Ok().json(MappingSetSaved {
        version: saved.version,
        updated_at: saved.updated_at,
        mappings: saved.mappings,
        scoping: saved.scoping,
        remap_job_id: Some(remap_job_id),
        full_scan_requested,
    }))
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    #[test]
    fn the_document_describes_the_mapping_endpoints_and_their_422() {
        let doc = serde_json::to_value(super::super::ApiDoc::openapi()).unwrap();
        let put = &doc["paths"]["/api/v1/tenants/{id}/mappings/{class}"]["put"];
        let invalid = &put["responses"]["422"]["content"]["application/problem+json"]["schema"]["$ref"];
        assert_eq!(invalid, "#/components/schemas/InvalidProblem", "{put:#}");
        assert!(put["responses"]["409"].is_object() && put["responses"]["403"].is_object());
        let evaluate = &doc["paths"]["/api/v1/expressions/evaluate"]["post"];
        assert_eq!(
            evaluate["responses"]["422"]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/InvalidProblem"
        );
        assert!(doc["paths"]["/api/v1/expressions/validate"]["post"].is_object());
        // The result of an evaluation is any JSON value, not only an object.
        let result = &doc["components"]["schemas"]["EvaluateResponse"]["properties"]["result"];
        assert!(result.get("type").is_none(), "{result:#}");
        let source = &doc["components"]["schemas"]["MappingSource"];
        assert!(source.to_string().contains("\"none\""), "{source:#}");
    }
}
