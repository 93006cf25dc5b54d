//! The admin-consent endpoint of the client-credentials flow (entra-docs@03033ebd
//! `docs/identity-platform/v2-oauth2-client-creds-grant-flow.md`, "Request the permissions from a directory
//! admin"): `GET /{tenant}/adminconsent?client_id=&redirect_uri=&state=`, answered with a redirect to
//! `redirect_uri?admin_consent=True&tenant={tid}&state=…`, or `?error=permission_denied&error_description=
//! The+admin+canceled+the+request` when the admin declines.
//!
//! - A tenant-specific request is answered at once (granted, or declined when the tenant's "refuse consent"
//!   switch is on), unless the consent page is switched on ([`Identity::set_consent_page`]).
//! - `/organizations/adminconsent` and `/common/adminconsent` do not know the directory yet: they serve the
//!   "Permissions requested" page (`consent_page.rs`), whose form posts back here with the directory the admin
//!   signs in to and Accept or Cancel; the answer is the same redirect.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::aadsts::AadError;
use super::consent_page::{self, Prompt};
use super::token_endpoint::resolve_tenant;
use super::{base_url, Identity};

/// The documented refusal (client-credentials flow, "Error response").
const DECLINED_ERROR: &str = "permission_denied";
const DECLINED_DESCRIPTION: &str = "The admin canceled the request";

#[derive(Debug, Deserialize)]
pub(super) struct ConsentQuery {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
}

/// What the consent page's form posts.
#[derive(Debug, Deserialize)]
pub(super) struct ConsentForm {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    /// The directory whose admin signs in (id or domain); only read on the multi-tenant paths.
    #[serde(default)]
    tenant: String,
    /// `accept` or `cancel` (the button pressed).
    #[serde(default)]
    action: String,
}

/// `/common` and `/organizations` leave the directory to the admin who signs in.
fn is_multi_tenant(segment: &str) -> bool {
    matches!(segment.to_ascii_lowercase().as_str(), "common" | "organizations")
}

pub(super) async fn admin_consent(
    req: HttpRequest,
    tenant: web::Path<String>,
    query: web::Query<ConsentQuery>,
    identity: web::Data<Identity>,
) -> HttpResponse {
    let base = base_url(&req);
    let segment = tenant.into_inner();
    let query = query.into_inner();
    let multi = is_multi_tenant(&segment);
    let result = if multi || identity.consent_page() {
        prompt(&segment, &query, &identity).map(|prompt| consent_page::render(&prompt, None))
    } else {
        decide(&segment, &query, &identity, false).map(redirect)
    };
    // Before a redirect URI is trusted the real service shows an error page; the AADSTS JSON stands in.
    result.unwrap_or_else(|e| e.respond(&req, &base, identity.clock.now()))
}

/// The consent page's form: Accept grants (unless the tenant refuses), Cancel declines.
pub(super) async fn admin_consent_answer(
    req: HttpRequest,
    tenant: web::Path<String>,
    form: web::Form<ConsentForm>,
    identity: web::Data<Identity>,
) -> HttpResponse {
    let base = base_url(&req);
    let segment = tenant.into_inner();
    let form = form.into_inner();
    let query = ConsentQuery { client_id: form.client_id, redirect_uri: form.redirect_uri, state: form.state };
    let declined = !form.action.eq_ignore_ascii_case("accept");
    let directory = if is_multi_tenant(&segment) { form.tenant.trim().to_owned() } else { segment.clone() };
    match decide(&directory, &query, &identity, declined) {
        Ok(location) => redirect(location),
        // A directory the admin cannot sign in to: the page again, saying why (the request itself is sound).
        Err(e) if e.code == 90002 || e.code == 900023 || e.code == 9001023 || directory.is_empty() => {
            match prompt(&segment, &query, &identity) {
                Ok(mut prompt) => {
                    prompt.tenant_value = directory.clone();
                    let message = if directory.is_empty() {
                        "Enter the domain or tenant id of the directory you administer.".to_owned()
                    } else {
                        format!("'{directory}' is not a directory of this identity platform (AADSTS{}).", e.code)
                    };
                    consent_page::render(&prompt, Some(&message))
                }
                Err(e) => e.respond(&req, &base, identity.clock.now()),
            }
        }
        Err(e) => e.respond(&req, &base, identity.clock.now()),
    }
}

fn redirect(location: String) -> HttpResponse {
    HttpResponse::Found().insert_header((header::LOCATION, location)).finish()
}

/// Checks the request (app, redirect URI, and a named tenant) and gathers what the page shows.
fn prompt(segment: &str, query: &ConsentQuery, identity: &Identity) -> Result<Prompt, AadError> {
    let client_id = query.client_id.as_deref().ok_or_else(|| AadError::missing_parameter("client_id"))?;
    let redirect_uri = query.redirect_uri.as_deref().ok_or_else(|| AadError::missing_parameter("redirect_uri"))?;
    let registry = identity.read();
    let app = registry.app(client_id).ok_or_else(|| AadError::unknown_application(client_id, segment))?;
    check_redirect(&app.redirect_uris, redirect_uri, client_id)?;
    let (tenant_value, tenant_fixed) = if is_multi_tenant(segment) {
        (String::new(), false)
    } else {
        let id = resolve_tenant(&registry, segment)?;
        let tenant = registry.tenant(&id).ok_or_else(|| AadError::unknown_tenant(segment))?;
        (tenant.domains.first().cloned().unwrap_or(id), true)
    };
    Ok(Prompt {
        app_name: app.display_name.clone(),
        app_id: app.app_id.clone(),
        roles: app.roles.clone(),
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        state: query.state.clone(),
        tenant_value,
        tenant_fixed,
    })
}

fn check_redirect(registered: &[String], redirect_uri: &str, client_id: &str) -> Result<url::Url, AadError> {
    if !registered.is_empty() && !registered.iter().any(|u| u == redirect_uri) {
        return Err(AadError::invalid_redirect_uri(redirect_uri, client_id));
    }
    url::Url::parse(redirect_uri).map_err(|_| AadError::invalid_redirect_uri(redirect_uri, client_id))
}

/// Records the admin's answer for `tenant_segment` and returns the redirect's `Location`.
fn decide(tenant_segment: &str, query: &ConsentQuery, identity: &Identity, declined: bool) -> Result<String, AadError> {
    let client_id = query.client_id.as_deref().ok_or_else(|| AadError::missing_parameter("client_id"))?;
    let redirect_uri = query.redirect_uri.as_deref().ok_or_else(|| AadError::missing_parameter("redirect_uri"))?;
    let mut registry = identity.write();
    let tenant_id = resolve_tenant(&registry, tenant_segment)?;
    let app = registry.app(client_id).ok_or_else(|| AadError::unknown_application(client_id, tenant_segment))?;
    let mut location = check_redirect(&app.redirect_uris, redirect_uri, client_id)?;
    let (app_id, roles) = (app.app_id.clone(), app.roles.clone());
    let tenant = registry.tenant_mut(&tenant_id).ok_or_else(|| AadError::unknown_tenant(tenant_segment))?;
    {
        let mut pairs = location.query_pairs_mut();
        if declined || tenant.refuse_consent {
            tracing::info!(tenant = %tenant_id, app_id = %app_id, declined, "graph-sim admin consent refused");
            pairs.append_pair("error", DECLINED_ERROR);
            pairs.append_pair("error_description", DECLINED_DESCRIPTION);
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
