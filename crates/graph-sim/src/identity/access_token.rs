//! Graph access tokens: the v1.0 JWT the emulator issues, and its validation for Graph requests.

use actix_web::http::StatusCode;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::signing::SigningKey;
use crate::error::GraphError;

/// Microsoft Graph's application id: the `aud` of Graph access tokens.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Lifetime of issued tokens, as the real service reports it (`expires_in`).
pub const TOKEN_LIFETIME_SECS: i64 = 3599;

/// The claims of an app-only Graph token (client credentials), as observed on real v1.0 tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TokenClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub app_displayname: String,
    pub appid: String,
    /// "1": authenticated with a secret, "2": with a certificate.
    pub appidacr: String,
    pub idp: String,
    pub idtyp: String,
    pub oid: String,
    // Tokens without consent carry no `roles` claim at all, like the real service's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    pub sub: String,
    pub tid: String,
    pub uti: String,
    pub ver: String,
}

pub(super) fn issuer(tenant_id: &str) -> String {
    format!("https://sts.windows.net/{tenant_id}/")
}

pub(super) struct TokenRequest<'a> {
    pub tenant_id: &'a str,
    pub app_id: &'a str,
    pub app_display_name: &'a str,
    pub with_certificate: bool,
    pub roles: Vec<String>,
}

pub(super) fn issue(
    key: &SigningKey,
    req: TokenRequest<'_>,
    now: DateTime<Utc>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = now.timestamp();
    // The app's service principal in the tenant: stable per (tenant, app), so `oid` and `sub` are too.
    let digest = sha2::Sha256::digest(format!("{}/{}", req.tenant_id, req.app_id).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let sp_id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let claims = TokenClaims {
        aud: GRAPH_APP_ID.to_owned(),
        iss: issuer(req.tenant_id),
        iat: now,
        nbf: now,
        exp: now + TOKEN_LIFETIME_SECS,
        app_displayname: req.app_display_name.to_owned(),
        appid: req.app_id.to_owned(),
        appidacr: if req.with_certificate { "2" } else { "1" }.to_owned(),
        idp: issuer(req.tenant_id),
        idtyp: "app".to_owned(),
        oid: sp_id.to_string(),
        roles: req.roles,
        sub: sp_id.to_string(),
        tid: req.tenant_id.to_owned(),
        uti: uuid::Uuid::new_v4().simple().to_string(),
        ver: "1.0".to_owned(),
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    header.x5t = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &key.encoding)
}

fn unauthorized(message: &str) -> GraphError {
    GraphError::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message)
}

/// Checks a Bearer token's form, signature, lifetime (on the emulator's clock) and audience.
pub(super) fn validate(key: &SigningKey, token: &str, now: DateTime<Utc>) -> Result<TokenClaims, GraphError> {
    if token.is_empty() {
        return Err(unauthorized("Access token is empty."));
    }
    // Graph answers this for anything that is not a JWT (observed message).
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| unauthorized("CompactToken parsing failed with error code: 80049217"))?;
    if header.alg != Algorithm::RS256 {
        return Err(unauthorized("Access token validation failure."));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    // Lifetime is checked below against the emulator's clock, which the admin API can advance.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<TokenClaims>(token, &key.decoding, &validation).map_err(|e| {
        tracing::debug!(error = %e, "graph-sim rejected a bearer token");
        unauthorized("Access token validation failure.")
    })?;
    let claims = data.claims;
    let now = now.timestamp();
    if claims.exp <= now || claims.nbf > now + 300 {
        return Err(unauthorized("Access token has expired or is not yet valid."));
    }
    if claims.aud != GRAPH_APP_ID && !claims.aud.starts_with("https://graph.") {
        return Err(unauthorized("Access token validation failure. Invalid audience."));
    }
    if claims.iss != issuer(&claims.tid) {
        return Err(unauthorized("Access token validation failure. Invalid issuer."));
    }
    Ok(claims)
}
