//! `/expressions`: check an expression of the Entra expression language and try it on an object, given
//! inline or a tenant's stored object: what the console's expression editor previews
//! (docs/mappings.md). Nothing is stored, so viewers may use them.

use actix_web::{web, HttpResponse};
use chrono::Utc;
use entra_expr::{Context, Expression};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Caller;
use super::mappings::{invalid_response, FieldProblem, InvalidProblem};
use super::page::names::ClassName;
use super::page::Problems;
use super::problem::ApiError;
use super::tenants::no_tenant;
use crate::api::AppState;
use crate::model::ObjectClass;
use crate::store::{directory, mappings, tenants};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/expressions/validate", web::post().to(validate))
        .route("/expressions/evaluate", web::post().to(evaluate));
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// At most 10,000 characters.
    pub expression: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExpressionError {
    /// The 1-based character the problem is at.
    pub position: usize,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidateResponse {
    pub valid: bool,
    /// Why it does not parse (absent when valid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ExpressionError>,
    /// The attributes it reads (`[name]`), in order of first use; empty when it does not parse.
    pub attributes: Vec<String>,
    /// False when it calls Now, Guid, RandomString or SelectUniqueValue (then a mapping with it must
    /// apply `on_create`); false too when it does not parse.
    pub deterministic: bool,
}

/// Parses an expression: whether it is valid (else where and why), what it reads, whether it is
/// deterministic.
#[utoipa::path(post, path = "/api/v1/expressions/validate", tag = "mappings", request_body = ValidateRequest,
    responses((status = 200, body = ValidateResponse), Problems))]
pub async fn validate(_caller: Caller, body: web::Json<ValidateRequest>) -> web::Json<ValidateResponse> {
    web::Json(match Expression::parse(&body.expression) {
        Ok(expression) => ValidateResponse {
            valid: true,
            error: None,
            attributes: expression.attributes().into_iter().map(str::to_owned).collect(),
            deterministic: expression.is_deterministic(),
        },
        Err(e) => ValidateResponse {
            valid: false,
            error: Some(ExpressionError { position: e.position, message: e.message }),
            attributes: Vec::new(),
            deterministic: false,
        },
    })
}

/// An expression and the object to evaluate it on: `object` (attributes as a JSON object), or a stored
/// object named by `tenant_id`, `class` and `object_id` (then `DefaultDomain()` is the tenant's).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    pub expression: String,
    #[schema(value_type = Option<Object>)]
    pub object: Option<serde_json::Map<String, serde_json::Value>>,
    pub tenant_id: Option<i64>,
    pub class: Option<ClassName>,
    pub object_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluateResponse {
    /// The result as JSON: a string, number, boolean, array or null.
    pub result: serde_json::Value,
}

/// Evaluates an expression on an object (`Now()` is the current time). A bad expression, or one that
/// fails on this object, is `422` (with `position` for a parse error).
#[utoipa::path(post, path = "/api/v1/expressions/evaluate", tag = "mappings", request_body = EvaluateRequest,
    responses((status = 200, body = EvaluateResponse), Problems,
        (status = 422, body = InvalidProblem, content_type = "application/problem+json",
         description = "The expression does not parse (`position` says where), fails on this object, or the \
                        object is not named right")))]
pub async fn evaluate(
    _caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<EvaluateRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let expression = match Expression::parse(&body.expression) {
        Ok(expression) => expression,
        Err(e) => {
            return Ok(invalid_response(vec![FieldProblem {
                field: "expression".to_owned(),
                message: e.to_string(),
                position: Some(e.position),
            }]))
        }
    };
    let (object, default_domain) = match (body.object, body.tenant_id, body.class, body.object_id) {
        (Some(object), None, None, None) => (object, None),
        (None, Some(tenant_id), Some(class), Some(object_id)) => {
            let class = ObjectClass::from(class);
            tenants::get(&state.pool, tenant_id).await?.ok_or_else(|| no_tenant(tenant_id))?;
            let stored = directory::get_object(&state.pool, tenant_id, class, object_id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("tenant {tenant_id} has no stored {class} {object_id}")))?;
            let serde_json::Value::Object(attrs) = stored.attrs else {
                return Err(ApiError::internal(&format!(
                    "stored {class} {object_id} has attributes that are not an object"
                )));
            };
            (attrs, mappings::default_domain(&state.pool, tenant_id).await?)
        }
        _ => {
            return Ok(invalid_response(vec![FieldProblem {
                field: "object".to_owned(),
                message: "give either \"object\" (the attributes) or all of \"tenant_id\", \"class\" and \
                          \"object_id\" (a stored object), not both"
                    .to_owned(),
                position: None,
            }]))
        }
    };
    let mut context = Context::at(Utc::now());
    context.default_domain = default_domain.as_deref();
    match expression.evaluate(&object, &context) {
        Ok(value) => Ok(HttpResponse::Ok().json(EvaluateResponse { result: value.to_json() })),
        Err(e) => Ok(invalid_response(vec![FieldProblem {
            field: "expression".to_owned(),
            message: format!("the expression fails on this object: {e}"),
            position: None,
        }])),
    }
}
