//! `GET /{tenant}/adminconsent?client_id=&redirect_uri=&state=`: the admin-consent prompt, answered at once
//! (granted, or declined when the tenant's "refuse consent" switch is on) with the documented redirect.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::aadsts::AadError;
use super::token_endpoint::resolve_tenant;
use super::{base_url, Identity};

#[derive(Debug, Deserialize)]
pub(super) struct ConsentQuery {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
}

pub(super) async fn admin_consent(
    req: HttpRequest,
    tenant: web::Path<String>,
    query: web::Query<ConsentQuery>,
    identity: web::Data<Identity>,
) -> HttpResponse {
    let base = base_url(&req);
    match decide(&tenant, &query, &identity) {
        Ok(location) => HttpResponse::Found().insert_header((header::LOCATION, location)).finish(),
        // Before a redirect URI is trusted the real service shows an error page; the AADSTS JSON stands in.
        Err(e) => e.respond(&req, &base, identity.clock.now()),
    }
}

fn decide(tenant_segment: &str, query: &ConsentQuery, identity: &Identity) -> Result<String, AadError> {
    let client_id = query.client_id.as_deref().ok_or_else(|| AadError::missing_parameter("client_id"))?;
    let redirect_uri = query.redirect_uri.as_deref().ok_or_else(|| AadError::missing_parameter("redirect_uri"))?;
    let mut registry = identity.write();
    let tenant_id = resolve_tenant(&registry, tenant_segment)?;
    let app = registry.app(client_id).ok_or_else(|| AadError::unknown_application(client_id, tenant_segment))?;
    if !app.redirect_uris.is_empty() && !app.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(AadError::invalid_redirect_uri(redirect_uri, client_id));
    }
    let mut location =
        url::Url::parse(redirect_uri).map_err(|_| AadError::invalid_redirect_uri(redirect_uri, client_id))?;
    let (app_id, roles) = (app.app_id.clone(), app.roles.clone());
    let tenant = registry.tenant_mut(&tenant_id).ok_or_else(|| AadError::unknown_tenant(tenant_segment))?;
    {
        let mut pairs = location.query_pairs_mut();
        if tenant.refuse_consent {
            tracing::info!(tenant = %tenant_id, app_id = %app_id, "graph-sim admin consent refused");
            pairs.append_pair("error", "permission_denied");
            pairs.append_pair("error_description", "The admin canceled the request");
        } else {
            tracing::info!(tenant = %tenant_id, app_id = %app_id, roles = ?roles, "graph-sim admin consent granted");
            tenant.consents.insert(app_id, roles);
            pairs.append_pair("admin_consent", "True");
            pairs.append_pair("tenant", &tenant_id);
        }
        if let Some(state) = &query.state {
            pairs.append_pair("state", state);
        }
    }
    Ok(location.to_string())
}
