//! `POST /{tenant}/oauth2/v2.0/token`: the client-credentials grant with a secret (form or HTTP Basic)
//! or a client assertion.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

use super::aadsts::AadError;
use super::access_token::{self, TokenRequest, GRAPH_APP_ID, TOKEN_LIFETIME_SECS};
use super::registry::Registry;
use super::{base_url, signing, Identity};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// National clouds as the identity platform sees them: login hosts and Graph resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cloud {
    Global,
    UsGov,
    China,
}

fn cloud_of_login_host(host: &str) -> Option<Cloud> {
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    match host.as_str() {
        "login.microsoftonline.com" | "login.windows.net" | "login.microsoft.com" | "sts.windows.net" => {
            Some(Cloud::Global)
        }
        "login.microsoftonline.us" => Some(Cloud::UsGov),
        "login.chinacloudapi.cn" | "login.partner.microsoftonline.cn" => Some(Cloud::China),
        _ => None,
    }
}

/// The cloud of a Graph resource; `Ok(None)` for Graph's app id, which every cloud accepts.
fn cloud_of_resource(resource: &str) -> Result<Option<Cloud>, ()> {
    match resource.trim_end_matches('/').to_ascii_lowercase().as_str() {
        GRAPH_APP_ID => Ok(None),
        "https://graph.microsoft.com" => Ok(Some(Cloud::Global)),
        "https://graph.microsoft.us" | "https://dod-graph.microsoft.us" => Ok(Some(Cloud::UsGov)),
        "https://microsoftgraph.chinacloudapi.cn" => Ok(Some(Cloud::China)),
        _ => Err(()),
    }
}

pub(super) async fn token(
    req: HttpRequest,
    tenant: web::Path<String>,
    body: web::Bytes,
    identity: web::Data<Identity>,
) -> HttpResponse {
    let base = base_url(&req);
    let now = identity.clock.now();
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    match grant(&req, &tenant, &form, &identity, &base) {
        Ok(access_token) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store, no-cache"))
            .insert_header(("Pragma", "no-cache"))
            .json(json!({
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_SECS,
                "ext_expires_in": TOKEN_LIFETIME_SECS,
                "access_token": access_token,
            })),
        Err(e) => {
            tracing::info!(tenant = %tenant, code = e.code, error = e.error, "graph-sim token request refused");
            e.respond(&req, &base, now)
        }
    }
}

/// Resolves the `{tenant}` path segment: GUID or domain; the multi-tenant aliases refuse this grant.
pub(super) fn resolve_tenant(registry: &Registry, segment: &str) -> Result<String, AadError> {
    let lower = segment.to_ascii_lowercase();
    if matches!(lower.as_str(), "common" | "consumers" | "organizations") {
        return Err(AadError::multi_tenant_endpoint());
    }
    let is_guid = uuid::Uuid::parse_str(segment).is_ok();
    let is_dns = lower.contains('.')
        && lower.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !is_guid && !is_dns {
        return Err(AadError::invalid_tenant_name(segment));
    }
    registry.tenant(segment).map(|t| t.id.clone()).ok_or_else(|| AadError::unknown_tenant(segment))
}

/// Client id and secret from `Authorization: Basic` (RFC 6749 §2.3.1: each part form-urlencoded).
fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape =
        |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((unescape(id)?, unescape(secret)?))
}

fn check_scope(scope: &str, host: &str, tenant_id: &str) -> Result<(), AadError> {
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let [single] = scopes.as_slice() else {
        return Err(AadError::invalid_scope(scope));
    };
    let Some(resource) = single.strip_suffix("/.default") else {
        return Err(AadError::scope_without_default(scope));
    };
    let resource_cloud = cloud_of_resource(resource).map_err(|_| AadError::invalid_scope(scope))?;
    // Tokens of one national cloud are not issued for another's Graph.
    match (cloud_of_login_host(host), resource_cloud) {
        (Some(login), Some(graph)) if login != graph => Err(AadError::resource_of_other_cloud(resource, tenant_id)),
        _ => Ok(()),
    }
}

fn grant(
    req: &HttpRequest,
    tenant_segment: &str,
    form: &HashMap<String, String>,
    identity: &Identity,
    base: &str,
) -> Result<String, AadError> {
    let now = identity.clock.now();
    let registry = identity.read();
    let tenant_id = resolve_tenant(&registry, tenant_segment)?;
    let grant_type = form.get("grant_type").ok_or_else(|| AadError::missing_parameter("grant_type"))?;
    if grant_type != "client_credentials" {
        return Err(AadError::unsupported_grant_type(grant_type));
    }
    let basic = basic_credentials(req);
    let client_id = form
        .get("client_id")
        .cloned()
        .or_else(|| basic.as_ref().map(|(id, _)| id.clone()))
        .ok_or_else(|| AadError::missing_parameter("client_id"))?;
    let scope = form.get("scope").ok_or_else(|| AadError::missing_parameter("scope"))?;
    check_scope(scope, req.connection_info().host(), &tenant_id)?;
    let app = registry.app(&client_id).ok_or_else(|| AadError::unknown_application(&client_id, tenant_segment))?;

    let with_certificate = if let Some(assertion) = form.get("client_assertion") {
        let assertion_type =
            form.get("client_assertion_type").ok_or_else(|| AadError::missing_parameter("client_assertion_type"))?;
        if assertion_type != ASSERTION_TYPE {
            return Err(AadError::invalid_assertion_type(assertion_type));
        }
        let audience_ok = |aud: &str| audience_names_endpoint(&registry, aud, base, &tenant_id);
        super::assertion::verify(assertion, app, audience_ok, now)?;
        true
    } else {
        let secret = form
            .get("client_secret")
            .cloned()
            .or_else(|| basic.map(|(_, s)| s))
            .ok_or_else(AadError::missing_credential)?;
        if !app.secrets.contains(&secret) {
            return Err(AadError::invalid_secret(&app.app_id));
        }
        false
    };

    let roles = registry.tenant(&tenant_id).and_then(|t| t.consents.get(&app.app_id)).cloned().unwrap_or_default();
    let key = signing::signing_key().ok_or_else(AadError::server_error)?;
    let request = TokenRequest {
        tenant_id: &tenant_id,
        app_id: &app.app_id,
        app_display_name: &app.display_name,
        with_certificate,
        roles,
    };
    access_token::issue(key, request, now).map_err(|e| {
        tracing::error!(error = %e, "graph-sim could not sign an access token");
        AadError::server_error()
    })
}

/// An assertion's `aud` must be this token endpoint (v2.0 or v1), on this host, for this tenant by id or domain.
fn audience_names_endpoint(registry: &Registry, aud: &str, base: &str, tenant_id: &str) -> bool {
    let Ok(aud_url) = url::Url::parse(aud) else { return false };
    let Ok(base_url) = url::Url::parse(base) else { return false };
    let same_host = aud_url.scheme() == base_url.scheme()
        && aud_url.host_str().map(str::to_ascii_lowercase) == base_url.host_str().map(str::to_ascii_lowercase)
        && aud_url.port_or_known_default() == base_url.port_or_known_default();
    let segments: Vec<&str> = aud_url.path().trim_end_matches('/').split('/').skip(1).collect();
    let tenant_matches = |t: &str| registry.tenant(t).is_some_and(|t| t.id == tenant_id);
    same_host
        && match segments.as_slice() {
            [t, "oauth2", "v2.0", "token"] | [t, "oauth2", "token"] => tenant_matches(t),
            _ => false,
        }
}
