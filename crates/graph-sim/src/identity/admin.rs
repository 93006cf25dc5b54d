//! Admin API of the identity platform (not part of Graph): app registrations and consent.
//!
//! - `POST /_sim/apps` registers an app (`NewApp`); `GET /_sim/apps` lists them.
//! - `GET /_sim/tenants/{tenant}/consent` shows consent; `POST` with `{"app_id", "roles"}` sets the roles the
//!   admin consented to (empty revokes), with `{"refuse": true|false}` flips the "refuse consent" switch.
//! - `GET`/`PUT /_sim/consent-page` `{"enabled": bool}`: tenant-specific `/adminconsent` shows the consent page.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::registry::RegistryError;
use super::Identity;

fn error_response(e: &RegistryError) -> HttpResponse {
    let body = json!({ "error": e.to_string() });
    match e {
        RegistryError::UnknownTenant(_) | RegistryError::UnknownApp(_) => HttpResponse::NotFound().json(body),
        RegistryError::DuplicateApp(_) => HttpResponse::Conflict().json(body),
        RegistryError::InvalidAppId(_) | RegistryError::InvalidCertificate(_) => HttpResponse::BadRequest().json(body),
    }
}

pub(super) async fn register_app(identity: web::Data<Identity>, body: web::Json<super::NewApp>) -> HttpResponse {
    match identity.register_app(body.into_inner()) {
        Ok(info) => HttpResponse::Created().json(info),
        Err(e) => error_response(&e),
    }
}

pub(super) async fn list_apps(identity: web::Data<Identity>) -> HttpResponse {
    HttpResponse::Ok().json(identity.list_apps())
}

#[derive(Debug, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub(super) enum ConsentChange {
    Grant { app_id: String, roles: Vec<String> },
    Refuse { refuse: bool },
}

pub(super) async fn change_consent(
    identity: web::Data<Identity>,
    tenant: web::Path<String>,
    body: web::Json<ConsentChange>,
) -> HttpResponse {
    let result = match body.into_inner() {
        ConsentChange::Grant { app_id, roles } => identity.grant_consent(&tenant, &app_id, &roles),
        ConsentChange::Refuse { refuse } => identity.set_refuse_consent(&tenant, refuse),
    };
    match result.and_then(|()| identity.consent_state(&tenant)) {
        Ok(state) => HttpResponse::Ok().json(state),
        Err(e) => error_response(&e),
    }
}

pub(super) async fn show_consent(identity: web::Data<Identity>, tenant: web::Path<String>) -> HttpResponse {
    match identity.consent_state(&tenant) {
        Ok(state) => HttpResponse::Ok().json(state),
        Err(e) => error_response(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsentPage {
    enabled: bool,
}

pub(super) async fn change_consent_page(identity: web::Data<Identity>, body: web::Json<ConsentPage>) -> HttpResponse {
    identity.set_consent_page(body.enabled);
    HttpResponse::Ok().json(json!({ "enabled": identity.consent_page() }))
}

pub(super) async fn show_consent_page(identity: web::Data<Identity>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "enabled": identity.consent_page() }))
}
