//! Discovery documents MSAL-based clients read before asking for a token: instance discovery
//! (`/common/discovery/instance`), the OpenID configuration of a tenant (v2.0 and v1) and its signing keys.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::aadsts::AadError;
use super::registry::Registry;
use super::{base_url, signing, Identity};

const MULTI_TENANT: [&str; 3] = ["common", "organizations", "consumers"];

/// Login hosts of the real clouds: instance discovery vouches for them and for the emulator's own host.
const CLOUD_METADATA: [(&str, &str, &[&str]); 3] = [
    (
        "login.microsoftonline.com",
        "login.windows.net",
        &["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"],
    ),
    (
        "login.partner.microsoftonline.cn",
        "login.partner.microsoftonline.cn",
        &["login.partner.microsoftonline.cn", "login.chinacloudapi.cn"],
    ),
    ("login.microsoftonline.us", "login.microsoftonline.us", &["login.microsoftonline.us", "login.usgovcloudapi.net"]),
];

/// The tenant of a discovery path: a real tenant's id, or the multi-tenant alias as written.
fn discovery_tenant(registry: &Registry, segment: &str) -> Result<String, AadError> {
    let lower = segment.to_ascii_lowercase();
    if MULTI_TENANT.contains(&lower.as_str()) {
        return Ok(lower);
    }
    super::token_endpoint::resolve_tenant(registry, segment)
}

fn host_of(base: &str) -> String {
    base.split_once("://").map(|(_, h)| h).unwrap_or(base).to_owned()
}

fn graph_host(login_host: &str) -> &'static str {
    match login_host.split(':').next().unwrap_or(login_host) {
        "login.microsoftonline.us" => "graph.microsoft.us",
        "login.chinacloudapi.cn" | "login.partner.microsoftonline.cn" => "microsoftgraph.chinacloudapi.cn",
        _ => "graph.microsoft.com",
    }
}

pub(super) async fn openid_configuration_v2(
    req: HttpRequest,
    tenant: web::Path<String>,
    identity: web::Data<Identity>,
) -> HttpResponse {
    openid_configuration(&req, &tenant, &identity, true)
}

pub(super) async fn openid_configuration_v1(
    req: HttpRequest,
    tenant: web::Path<String>,
    identity: web::Data<Identity>,
) -> HttpResponse {
    openid_configuration(&req, &tenant, &identity, false)
}

fn openid_configuration(req: &HttpRequest, segment: &str, identity: &Identity, v2: bool) -> HttpResponse {
    let base = base_url(req);
    let resolved = discovery_tenant(&identity.read(), segment);
    let tenant = match resolved {
        Ok(t) => t,
        Err(e) => return e.respond(req, &base, identity.clock.now()),
    };
    let host = host_of(&base);
    // The multi-tenant documents carry the literal placeholder, as the real ones do.
    let issuer_tenant = if MULTI_TENANT.contains(&tenant.as_str()) { "{tenantid}".to_owned() } else { tenant.clone() };
    let (version, issuer) = if v2 {
        ("/v2.0", format!("{base}/{issuer_tenant}/v2.0"))
    } else {
        ("", format!("https://sts.windows.net/{issuer_tenant}/"))
    };
    let oauth = if v2 { "oauth2/v2.0" } else { "oauth2" };
    let doc = json!({
        "token_endpoint": format!("{base}/{tenant}/{oauth}/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tenant}/discovery{version}/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{base}/{tenant}/{oauth}/authorize"),
        "device_authorization_endpoint": format!("{base}/{tenant}/{oauth}/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{tenant}/{oauth}/logout"),
        "claims_supported": [
            "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
            "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name",
            "tid", "ver", "at_hash", "c_hash", "email"
        ],
        "kerberos_endpoint": format!("{base}/{tenant}/kerberos"),
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": graph_host(&host),
        "rbac_url": "https://pas.windows.net",
    });
    HttpResponse::Ok().json(doc)
}

#[derive(Debug, Deserialize)]
pub(super) struct InstanceQuery {
    authorization_endpoint: Option<String>,
}

/// `GET /common/discovery/instance?api-version=1.1&authorization_endpoint=…`: vouches for the emulator's
/// host (and the real login hosts, which clients may point at the emulator) and names the tenant's
/// OpenID configuration.
pub(super) async fn instance_discovery(req: HttpRequest, query: web::Query<InstanceQuery>) -> HttpResponse {
    let base = base_url(&req);
    let own_host = host_of(&base).to_ascii_lowercase();
    let endpoint = query.authorization_endpoint.as_deref().unwrap_or_default();
    let parsed = url::Url::parse(endpoint).ok();
    let known_host = |h: &str| h == own_host || CLOUD_METADATA.iter().any(|(_, _, aliases)| aliases.contains(&h));
    let Some((host, tenant)) = parsed.as_ref().and_then(|u| {
        let host = match u.port() {
            Some(p) => format!("{}:{p}", u.host_str()?),
            None => u.host_str()?.to_owned(),
        }
        .to_ascii_lowercase();
        let tenant = u.path_segments()?.next().filter(|t| !t.is_empty())?.to_owned();
        Some((host, tenant))
    }) else {
        return instance_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90014,
            "The required field 'authorization_endpoint' is missing or invalid.",
        );
    };
    if !known_host(&host) {
        return instance_error(StatusCode::BAD_REQUEST, "invalid_instance", 50049, "Unknown or invalid instance.");
    }
    let scheme = parsed.as_ref().map(url::Url::scheme).unwrap_or("https");
    let mut metadata: Vec<Value> = vec![json!({
        "preferred_network": own_host, "preferred_cache": own_host, "aliases": [own_host],
    })];
    metadata.extend(CLOUD_METADATA.iter().map(|(network, cache, aliases)| {
        json!({ "preferred_network": network, "preferred_cache": cache, "aliases": aliases })
    }));
    HttpResponse::Ok().json(json!({
        "tenant_discovery_endpoint": format!("{scheme}://{host}/{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": metadata,
    }))
}

fn instance_error(status: StatusCode, error: &str, code: u32, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {message}"),
        "error_codes": [code],
    }))
}

/// `GET /{tenant}/discovery/v2.0/keys` (and v1 `/discovery/keys`): the emulator's signing key as a JWKS.
pub(super) async fn keys() -> HttpResponse {
    match signing::signing_key() {
        Some(key) => HttpResponse::Ok().json(json!({ "keys": [key.jwk()] })),
        None => HttpResponse::InternalServerError().finish(),
    }
}
