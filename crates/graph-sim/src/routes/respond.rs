//! Building Graph responses: the JSON envelope, Graph's headers, and the fault variants
//! (429/503/504 bodies, Retry-After forms, truncated and cut-off bodies).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::body::append_json;
use crate::error::GraphError;
use crate::faults::RetryAfter;
use crate::identity::www_authenticate;

pub const JSON_CONTENT_TYPE: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// `{"@odata.context": …, "@odata.nextLink"|"@odata.deltaLink": …, "value": [ … ]}`.
pub fn envelope(context: &str, link: Option<(&str, &str)>, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 512);
    out.extend_from_slice(b"{\"@odata.context\":");
    append_json(&mut out, context);
    if let Some((name, url)) = link {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        append_json(&mut out, url);
    }
    out.extend_from_slice(b",\"value\":[");
    out.extend_from_slice(value);
    out.extend_from_slice(b"]}");
    out
}

fn client_request_id(req: &HttpRequest, request_id: &str) -> String {
    req.headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| request_id.to_owned())
}

/// A 200 builder with Graph's usual headers.
pub fn ok_builder(req: &HttpRequest) -> HttpResponseBuilder {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut builder = HttpResponse::Ok();
    builder
        .insert_header(("content-type", JSON_CONTENT_TYPE))
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("client-request-id", client_request_id(req, &request_id)))
        .insert_header(("request-id", request_id))
        .insert_header(("x-ms-ags-diagnostic", r#"{"ServerInfo":{"DataCenter":"Emulator","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"graph-sim"}}"#));
    builder
}

/// Graph's JSON error, plus `WWW-Authenticate` on a 401.
pub fn error(req: &HttpRequest, err: &GraphError, now: DateTime<Utc>) -> HttpResponse {
    let mut response = err.respond(req, now);
    if err.status == StatusCode::UNAUTHORIZED {
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&www_authenticate(req)) {
            response.headers_mut().insert(actix_web::http::header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

pub fn retry_after_value(retry: &RetryAfter, now: DateTime<Utc>) -> Option<String> {
    match retry {
        RetryAfter::Seconds(s) => Some(s.to_string()),
        RetryAfter::Fraction(f) => Some(format!("{f}")),
        RetryAfter::HttpDate(s) => {
            let at = now + chrono::Duration::seconds(*s as i64);
            let system = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at.timestamp().max(0) as u64);
            Some(httpdate::fmt_http_date(system))
        }
        RetryAfter::Missing => None,
    }
}

/// 429 in the documented shape (graph-samples.md E1), with the throttle headers.
pub fn too_many_requests(req: &HttpRequest, retry: &RetryAfter, scope: &str, now: DateTime<Utc>) -> HttpResponse {
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = json!({
        "error": {
            "code": "TooManyRequests",
            "innerError": {
                "code": "429",
                "date": now.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "message": "Please retry after",
                "request-id": request_id,
                "client-request-id": client_request_id(req, &request_id),
                "status": "429"
            },
            "message": "Please retry again later."
        }
    });
    let mut builder = HttpResponse::TooManyRequests();
    builder
        .insert_header(("client-request-id", client_request_id(req, &request_id)))
        .insert_header(("request-id", request_id))
        .insert_header(("x-ms-throttle-scope", scope))
        .insert_header(("x-ms-throttle-information", "ResourceUnitLimitExceeded"));
    if let Some(value) = retry_after_value(retry, now) {
        builder.insert_header(("retry-after", value));
    }
    builder.json(body)
}

pub fn unavailable(
    req: &HttpRequest,
    status: StatusCode,
    retry: Option<&RetryAfter>,
    now: DateTime<Utc>,
) -> HttpResponse {
    let err = if status == StatusCode::GATEWAY_TIMEOUT {
        GraphError::new(status, "timeout", "The operation timed out.")
    } else {
        GraphError::new(
            status,
            "serviceNotAvailable",
            "The service is temporarily unavailable. Please try again later.",
        )
    };
    let mut response = err.respond(req, now);
    if let Some(value) = retry.and_then(|r| retry_after_value(r, now)) {
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(actix_web::http::header::RETRY_AFTER, v);
        }
    }
    response
}

/// How the body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    Normal,
    /// Half the body with a matching Content-Length: the JSON does not parse.
    Malformed,
    /// Half the body, then the connection is cut.
    Dropped,
}

pub fn send(mut builder: HttpResponseBuilder, body: Vec<u8>, mode: BodyMode) -> HttpResponse {
    match mode {
        BodyMode::Normal => builder.body(body),
        BodyMode::Malformed => {
            let half = body.len() / 2;
            builder.body(body[..half].to_vec())
        }
        BodyMode::Dropped => {
            let half = Bytes::from(body).slice(..);
            let first = half.slice(..half.len() / 2);
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(first),
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "graph-sim fault: connection dropped")),
            ];
            builder.streaming(futures::stream::iter(chunks))
        }
    }
}
