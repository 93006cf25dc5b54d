//! `/credential-profiles`: an app registration's client id and its secret or certificate. The material
//! goes in and never comes out: answers carry the kind and a certificate's thumbprint only.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Caller;
use super::page::{self, Problems};
use super::problem::ApiError;
use crate::api::AppState;
use crate::graph::{AssertionAlgorithm, CertificateCredential};
use crate::store::credentials::{self, CredentialMaterial, CredentialSummary, NewCredentialProfile};
use crate::store::secret_box::SecretBox;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/credential-profiles", web::get().to(list))
        .route("/credential-profiles", web::post().to(create))
        .route("/credential-profiles/{id}", web::get().to(get))
        .route("/credential-profiles/{id}", web::patch().to(rename))
        .route("/credential-profiles/{id}", web::delete().to(delete))
        .route("/credential-profiles/{id}/material", web::put().to(rotate));
}

#[derive(Serialize, ToSchema)]
pub struct ProfileView {
    pub id: i64,
    pub name: String,
    pub client_id: Uuid,
    /// `secret` or `certificate`.
    pub kind: String,
    /// SHA-1 thumbprint (hex) of a certificate profile's certificate.
    pub certificate_thumbprint: Option<String>,
    /// Tenants using this profile.
    pub tenant_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<CredentialSummary> for ProfileView {
    fn from(p: CredentialSummary) -> Self {
        ProfileView {
            id: p.id,
            name: p.name,
            client_id: p.client_id,
            kind: p.kind,
            certificate_thumbprint: p.certificate_thumbprint,
            tenant_count: p.tenant_count,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A client secret, or a certificate with its private key (PEM).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Material {
    #[schema(min_length = 1, max_length = 16384)]
    pub secret: Option<String>,
    #[schema(min_length = 1, max_length = 16384)]
    pub certificate_pem: Option<String>,
    #[schema(min_length = 1, max_length = 16384)]
    pub private_key_pem: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProfile {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The app registration's application (client) id.
    pub client_id: Uuid,
    /// A client secret; or give both `certificate_pem` and `private_key_pem`.
    #[schema(min_length = 1, max_length = 16384)]
    pub secret: Option<String>,
    #[schema(min_length = 1, max_length = 16384)]
    pub certificate_pem: Option<String>,
    #[schema(min_length = 1, max_length = 16384)]
    pub private_key_pem: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

fn secrets(state: &AppState) -> Result<&SecretBox, ApiError> {
    state.secrets.as_deref().ok_or_else(|| {
        ApiError::unavailable(
            "storing credentials needs ENTRASYNC_SECRETS_KEY on the API instances (base64 of 32 random bytes); \
             set it and restart",
        )
    })
}

/// Checks the material and turns it into what the store encrypts.
fn material(
    secret: Option<&str>,
    certificate: Option<&str>,
    key: Option<&str>,
) -> Result<CredentialMaterial, ApiError> {
    match (secret, certificate, key) {
        (Some(secret), None, None) => {
            page::material("secret", secret)?;
            Ok(CredentialMaterial::Secret(SecretString::from(secret.trim().to_owned())))
        }
        (None, Some(certificate), Some(key)) => {
            page::material("certificate_pem", certificate)?;
            page::material("private_key_pem", key)?;
            let key = SecretString::from(key.to_owned());
            CertificateCredential::from_pem(&key, certificate, AssertionAlgorithm::Ps256).map_err(|e| {
                ApiError::invalid("certificate_pem", format!("the certificate and private key cannot be used: {e}"))
            })?;
            Ok(CredentialMaterial::Certificate { certificate_pem: certificate.to_owned(), private_key_pem: key })
        }
        _ => Err(ApiError::invalid(
            "secret",
            "give either \"secret\", or both \"certificate_pem\" and \"private_key_pem\"",
        )),
    }
}

async fn summary(state: &AppState, id: i64) -> Result<ProfileView, ApiError> {
    credentials::get_summary(&state.pool, id)
        .await?
        .map(ProfileView::from)
        .ok_or_else(|| ApiError::not_found(format!("no credential profile with id {id}")))
}

/// Credential profiles, by name.
#[utoipa::path(get, path = "/api/v1/credential-profiles", tag = "credential profiles",
    responses((status = 200, body = Vec<ProfileView>), Problems))]
pub async fn list(_caller: Caller, state: web::Data<AppState>) -> Result<web::Json<Vec<ProfileView>>, ApiError> {
    Ok(web::Json(credentials::list(&state.pool).await?.into_iter().map(ProfileView::from).collect()))
}

/// Stores a profile; the secret or private key is encrypted with ENTRASYNC_SECRETS_KEY.
#[utoipa::path(post, path = "/api/v1/credential-profiles", tag = "credential profiles", request_body = NewProfile,
    responses((status = 201, body = ProfileView), Problems))]
pub async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<NewProfile>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.admin()?;
    let body = body.into_inner();
    let profile = NewCredentialProfile {
        name: page::name("name", &body.name)?,
        client_id: body.client_id,
        material: material(body.secret.as_deref(), body.certificate_pem.as_deref(), body.private_key_pem.as_deref())?,
    };
    let id = credentials::create(&state.pool, secrets(&state)?, &profile, &actor).await?;
    Ok(HttpResponse::Created().json(summary(&state, id).await?))
}

#[utoipa::path(get, path = "/api/v1/credential-profiles/{id}", tag = "credential profiles",
    params(("id" = i64, Path)), responses((status = 200, body = ProfileView), Problems))]
pub async fn get(
    _caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<web::Json<ProfileView>, ApiError> {
    Ok(web::Json(summary(&state, *id).await?))
}

/// Renames a profile.
#[utoipa::path(patch, path = "/api/v1/credential-profiles/{id}", tag = "credential profiles",
    params(("id" = i64, Path)), request_body = Rename, responses((status = 200, body = ProfileView), Problems))]
pub async fn rename(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Rename>,
) -> Result<web::Json<ProfileView>, ApiError> {
    let actor = caller.admin()?;
    let name = page::name("name", &body.name)?;
    credentials::rename(&state.pool, *id, &name, &actor)
        .await?
        .map(|p| web::Json(ProfileView::from(p)))
        .ok_or_else(|| ApiError::not_found(format!("no credential profile with id {id}")))
}

/// Rotation: replaces the secret, or the certificate and key. Tenants use the new material from their
/// next run.
#[utoipa::path(put, path = "/api/v1/credential-profiles/{id}/material", tag = "credential profiles",
    params(("id" = i64, Path)), request_body = Material, responses((status = 200, body = ProfileView), Problems))]
pub async fn rotate(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Material>,
) -> Result<web::Json<ProfileView>, ApiError> {
    let actor = caller.admin()?;
    let material = material(body.secret.as_deref(), body.certificate_pem.as_deref(), body.private_key_pem.as_deref())?;
    credentials::replace_material(&state.pool, secrets(&state)?, *id, &material, &actor)
        .await?
        .map(|p| web::Json(ProfileView::from(p)))
        .ok_or_else(|| ApiError::not_found(format!("no credential profile with id {id}")))
}

/// Deletes a profile no tenant uses (409 names the tenants that do).
#[utoipa::path(delete, path = "/api/v1/credential-profiles/{id}", tag = "credential profiles",
    params(("id" = i64, Path)), responses((status = 204, description = "deleted"), Problems))]
pub async fn delete(caller: Caller, state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let actor = caller.admin()?;
    if credentials::delete(&state.pool, *id, &actor).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found(format!("no credential profile with id {id}")))
    }
}
