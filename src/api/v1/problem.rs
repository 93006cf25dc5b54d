//! RFC 9457 problem details: every error of `/api/v1` is one `ApiError`, rendered as
//! `application/problem+json` with a message an operator can act on. Bad input is always 4xx; a 5xx
//! names no internals (the log has them, under the same `instance` id).

use std::time::Duration;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::StoreError;

/// The problem details document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (stable; clients may switch on it).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field the problem is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For a 5xx: the id the server's log carries with the cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// Boxed: handlers return `Result<_, ApiError>` everywhere, and the error is rare.
#[derive(Debug, Clone)]
pub struct ApiError(Box<Details>);

#[derive(Debug, Clone)]
struct Details {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    field: Option<String>,
    retry_after: Option<Duration>,
    instance: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError(Box::new(Details {
            status,
            slug,
            title,
            detail: detail.into(),
            field: None,
            retry_after: None,
            instance: None,
        }))
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", "Malformed request", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Sign-in required", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed for this role", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    /// A well-formed value that is not acceptable; names the field.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-value", "Invalid value", detail);
        e.0.field = Some(field.to_owned());
        e
    }

    /// A field that is fixed once set (a tenant's directory and cloud).
    pub fn read_only(field: &str, detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "read-only-field", "Field cannot change", detail);
        e.0.field = Some(field.to_owned());
        e
    }

    pub fn too_many_sign_ins(retry_after: Duration) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-sign-ins",
            "Too many failed sign-ins",
            format!("too many failed sign-ins from this address; try again in {} s", retry_after.as_secs().max(1)),
        );
        e.0.retry_after = Some(retry_after);
        e
    }

    /// Something outside the request failed (Graph, RabbitMQ): 502 with what failed and what to do.
    pub fn upstream(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "upstream-failed", "A service entrasync depends on failed", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Temporarily unavailable", detail)
    }

    /// An unexpected failure: logged with an id, answered without internals.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        let id = Uuid::new_v4().to_string();
        tracing::error!(problem = %id, error = %cause, "api request failed");
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            format!("the request failed unexpectedly; the server log has the cause under problem {id}"),
        );
        e.0.instance = Some(id);
        e
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    pub fn problem(&self) -> Problem {
        let d = &self.0;
        Problem {
            kind: format!("https://entrasync.dev/problems/{}", d.slug),
            title: d.title.to_owned(),
            status: d.status.as_u16(),
            detail: d.detail.clone(),
            field: d.field.clone(),
            instance: d.instance.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.0.status.as_u16(), self.0.title, self.0.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.0.status);
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let Some(wait) = self.0.retry_after {
            response.insert_header((header::RETRY_AFTER, wait.as_secs().max(1).to_string()));
        }
        response.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(detail) => ApiError::conflict(detail),
            StoreError::Rejected(detail) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-value", "Invalid value", detail)
            }
            // Unreachable, slow (a statement or lock timeout) or a transient conflict (serialization,
            // deadlock): the same request can succeed shortly.
            e if e.is_transient() => {
                tracing::warn!(error = %e, "api request: Postgres unavailable or busy");
                ApiError::unavailable("the database is not reachable or too busy right now; try again shortly")
            }
            other => ApiError::internal(&other),
        }
    }
}

/// A JSON body that does not parse: 400 (413 when too large) naming what is wrong, e.g. an unknown field.
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let problem = match &err {
        JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!("the request body is over the limit of {limit} bytes"),
        ),
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(e) => ApiError::bad_request(format!("the JSON body is not accepted: {e}")),
        other => ApiError::bad_request(format!("the JSON body cannot be read: {other}")),
    };
    problem.into()
}

pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("the query string is not accepted: {err}")).into()
}

pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::not_found(format!("no such resource: {err}")).into()
}
