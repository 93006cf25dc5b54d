//! The emulated Microsoft identity platform: token endpoint (client credentials with a secret or a
//! certificate), admin consent, discovery documents, and validation of the Bearer tokens it issues.
//! See `docs/graph-sim.md`, "Identity platform and HTTPS".

mod aadsts;
mod access_token;
mod admin;
mod assertion;
mod consent;
mod consent_page;
mod discovery;
mod registry;
mod signing;
mod token_endpoint;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use serde::Serialize;

use crate::clock::Clock;
use crate::error::GraphError;

pub use access_token::{GRAPH_APP_ID, TOKEN_LIFETIME_SECS};
pub use registry::{AppInfo, NewApp, RegistryError};

/// Tenants, app registrations, consent and token validation; shared via `web::Data<Identity>`.
pub struct Identity {
    clock: Clock,
    registry: RwLock<registry::Registry>,
    /// Tenant-specific `/adminconsent` shows the consent page too (off: it answers at once).
    consent_page: AtomicBool,
}

/// What a valid access token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub tenant_id: String,
    pub app_id: String,
    pub roles: Vec<String>,
}

/// A tenant's consent as the admin API shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ConsentState {
    pub tenant_id: String,
    pub refuse_consent: bool,
    /// Consented application permissions per app id.
    pub consents: BTreeMap<String, Vec<String>>,
}

/// Generates the process's token-signing key now rather than at the first token request: a 2048-bit
/// RSA key takes 0.05–1 s of CPU (a random prime search), which would otherwise land inside whatever a
/// caller is timing — a benchmark's first round, a test's first sync.
/// A key that cannot be generated is logged there, and token requests then answer with an error.
pub fn prepare_signing_key() {
    signing::signing_key();
}

/// Whether the token-signing key exists yet (a test's view of [`prepare_signing_key`]).
pub fn signing_key_generated() -> bool {
    signing::generated()
}

impl Identity {
    pub fn new(clock: Clock) -> Self {
        Self { clock, registry: RwLock::new(registry::Registry::default()), consent_page: AtomicBool::new(false) }
    }

    // A panic while holding the lock leaves plain data behind; keep serving it.
    fn read(&self) -> RwLockReadGuard<'_, registry::Registry> {
        self.registry.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, registry::Registry> {
        self.registry.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a tenant (or another domain name of an existing one).
    pub fn add_tenant(&self, tenant_id: &str, domain: &str) {
        self.write().add_tenant(tenant_id, domain);
    }

    /// The domain names of a tenant (id or domain), in the order they were added; empty if unknown.
    pub fn domains(&self, tenant: &str) -> Vec<String> {
        self.read().tenant(tenant).map(|t| t.domains.clone()).unwrap_or_default()
    }

    pub fn has_tenant(&self, tenant_id: &str) -> bool {
        self.read().tenant(tenant_id).is_some()
    }

    pub fn register_app(&self, app: NewApp) -> Result<AppInfo, RegistryError> {
        let info = self.write().register_app(app)?;
        tracing::info!(app_id = %info.app_id, "graph-sim app registered");
        Ok(info)
    }

    pub fn list_apps(&self) -> Vec<AppInfo> {
        self.read().list_apps()
    }

    /// Records the application permissions a tenant's admin consented to (replacing earlier ones;
    /// empty revokes). Tokens issued afterwards carry exactly these `roles`.
    pub fn grant_consent(&self, tenant: &str, app_id: &str, roles: &[String]) -> Result<(), RegistryError> {
        let mut registry = self.write();
        let app_id = registry
            .app(app_id)
            .map(|a| a.app_id.clone())
            .ok_or_else(|| RegistryError::UnknownApp(app_id.to_owned()))?;
        let tenant = registry.tenant_mut(tenant).ok_or_else(|| RegistryError::UnknownTenant(tenant.to_owned()))?;
        if roles.is_empty() {
            tenant.consents.remove(&app_id);
        } else {
            tenant.consents.insert(app_id, roles.to_vec());
        }
        Ok(())
    }

    /// The "refuse consent" switch: `/adminconsent` then redirects with the documented error.
    pub fn set_refuse_consent(&self, tenant: &str, refuse: bool) -> Result<(), RegistryError> {
        let mut registry = self.write();
        let tenant = registry.tenant_mut(tenant).ok_or_else(|| RegistryError::UnknownTenant(tenant.to_owned()))?;
        tenant.refuse_consent = refuse;
        Ok(())
    }

    /// Whether `/{tenant}/adminconsent` shows the "Permissions requested" page (as `/organizations` and
    /// `/common` always do) instead of answering at once.
    pub fn set_consent_page(&self, enabled: bool) {
        self.consent_page.store(enabled, Ordering::Relaxed);
    }

    pub fn consent_page(&self) -> bool {
        self.consent_page.load(Ordering::Relaxed)
    }

    pub fn consent_state(&self, tenant: &str) -> Result<ConsentState, RegistryError> {
        let registry = self.read();
        let tenant = registry.tenant(tenant).ok_or_else(|| RegistryError::UnknownTenant(tenant.to_owned()))?;
        Ok(ConsentState {
            tenant_id: tenant.id.clone(),
            refuse_consent: tenant.refuse_consent,
            consents: tenant.consents.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        })
    }

    /// Validates the Bearer token of a Graph request: Ok(claims) or the Graph error to send.
    /// `accepted_roles`: any one of them suffices; empty accepts any valid token.
    pub fn authorize(&self, req: &HttpRequest, accepted_roles: &[&str]) -> Result<AccessClaims, GraphError> {
        let value = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => "",
        };
        let key = signing::signing_key().ok_or_else(|| {
            GraphError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "generalException",
                "The token-signing key is unavailable.",
            )
        })?;
        let claims = access_token::validate(key, token, self.clock.now())?;
        // A token of a tenant this emulator does not know (deleted, or another emulator's) is no token.
        if !self.has_tenant(&claims.tid) {
            return Err(GraphError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
            ));
        }
        if !accepted_roles.is_empty() && !claims.roles.iter().any(|r| accepted_roles.contains(&r.as_str())) {
            return Err(GraphError::new(
                StatusCode::FORBIDDEN,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ));
        }
        Ok(AccessClaims { tenant_id: claims.tid, app_id: claims.appid, roles: claims.roles })
    }
}

/// The `WWW-Authenticate` value Graph sends with its 401 answers (observed).
pub fn www_authenticate(req: &HttpRequest) -> String {
    format!(
        "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"{GRAPH_APP_ID}\"",
        base_url(req)
    )
}

/// Scheme and host the client used to reach the emulator: links and issuers are built from it.
fn base_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// Registers the identity-platform routes and the identity part of the admin API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/_sim/apps", web::post().to(admin::register_app))
        .route("/_sim/apps", web::get().to(admin::list_apps))
        .route("/_sim/tenants/{tenant}/consent", web::get().to(admin::show_consent))
        .route("/_sim/tenants/{tenant}/consent", web::post().to(admin::change_consent))
        .route("/common/discovery/instance", web::get().to(discovery::instance_discovery))
        .route("/{tenant}/oauth2/v2.0/token", web::post().to(token_endpoint::token))
        .route("/_sim/consent-page", web::get().to(admin::show_consent_page))
        .route("/_sim/consent-page", web::put().to(admin::change_consent_page))
        .route("/{tenant}/adminconsent", web::get().to(consent::admin_consent))
        .route("/{tenant}/adminconsent", web::post().to(consent::admin_consent_answer))
        .route("/{tenant}/v2.0/.well-known/openid-configuration", web::get().to(discovery::openid_configuration_v2))
        .route("/{tenant}/.well-known/openid-configuration", web::get().to(discovery::openid_configuration_v1))
        .route("/{tenant}/discovery/v2.0/keys", web::get().to(discovery::keys))
        .route("/{tenant}/discovery/keys", web::get().to(discovery::keys));
}
