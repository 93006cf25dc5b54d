//! Tenants, app registrations and admin consent: the identity platform's directory.

use std::collections::HashMap;

use base64::Engine;
use serde::Serialize;
use sha1::Digest as _;

/// Errors of the registry's admin operations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("tenant '{0}' does not exist")]
    UnknownTenant(String),
    #[error("application '{0}' is not registered")]
    UnknownApp(String),
    #[error("application '{0}' is already registered")]
    DuplicateApp(String),
    #[error("app_id must be a GUID, got '{0}'")]
    InvalidAppId(String),
    #[error("certificate is not usable: {0}")]
    InvalidCertificate(String),
}

#[derive(Debug, Clone)]
pub(super) struct Tenant {
    pub id: String,
    pub domains: Vec<String>,
    /// Application permissions the tenant's administrator consented to, per app id.
    pub consents: HashMap<String, Vec<String>>,
    /// When set, the admin-consent prompt is declined (the "refuse consent" switch of the admin API).
    pub refuse_consent: bool,
}

/// A certificate credential: its thumbprints and RSA public key (PKCS#1 DER).
#[derive(Debug, Clone)]
pub(super) struct AppCertificate {
    pub sha1: Vec<u8>,
    pub sha256: Vec<u8>,
    pub public_key_pkcs1: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(super) struct App {
    pub app_id: String,
    pub display_name: String,
    pub secrets: Vec<String>,
    pub certificates: Vec<AppCertificate>,
    /// Application permissions the app requests (granted by admin consent).
    pub roles: Vec<String>,
    /// Empty means any redirect URI is accepted by `/adminconsent` (an emulator convenience).
    pub redirect_uris: Vec<String>,
}

/// What the admin API and Rust callers pass to register an app.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    /// Client id; a random GUID when absent.
    pub app_id: Option<String>,
    pub display_name: Option<String>,
    /// Client secret; one is generated when neither a secret nor a certificate is given.
    pub secret: Option<String>,
    /// PEM of an X.509 certificate with an RSA key (its private key signs client assertions).
    pub certificate_pem: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
}

/// An app registration as the admin API shows it (the secret only in the answer that created it).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AppInfo {
    pub app_id: String,
    pub display_name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret: Option<String>,
    /// SHA-1 thumbprints (hex, upper case) of the registered certificates.
    pub certificate_thumbprints: Vec<String>,
    pub roles: Vec<String>,
    pub redirect_uris: Vec<String>,
}

#[derive(Default)]
pub(super) struct Registry {
    pub tenants: Vec<Tenant>,
    pub apps: HashMap<String, App>,
}

impl Registry {
    pub fn add_tenant(&mut self, tenant_id: &str, domain: &str) {
        let domain = domain.to_ascii_lowercase();
        if let Some(t) = self.tenant_mut(tenant_id) {
            if !domain.is_empty() && !t.domains.contains(&domain) {
                t.domains.push(domain);
            }
            return;
        }
        self.tenants.push(Tenant {
            id: tenant_id.to_ascii_lowercase(),
            domains: if domain.is_empty() { Vec::new() } else { vec![domain] },
            consents: HashMap::new(),
            refuse_consent: false,
        });
    }

    /// Finds a tenant by id or by one of its domain names, case-insensitively.
    pub fn tenant(&self, id_or_domain: &str) -> Option<&Tenant> {
        let key = id_or_domain.to_ascii_lowercase();
        self.tenants.iter().find(|t| t.id == key || t.domains.contains(&key))
    }

    pub fn tenant_mut(&mut self, id_or_domain: &str) -> Option<&mut Tenant> {
        let key = id_or_domain.to_ascii_lowercase();
        self.tenants.iter_mut().find(|t| t.id == key || t.domains.contains(&key))
    }

    pub fn app(&self, app_id: &str) -> Option<&App> {
        self.apps.get(&app_id.to_ascii_lowercase())
    }

    pub fn register_app(&mut self, new: NewApp) -> Result<AppInfo, RegistryError> {
        let app_id = match new.app_id {
            Some(id) => uuid::Uuid::parse_str(&id).map_err(|_| RegistryError::InvalidAppId(id))?.to_string(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        if self.apps.contains_key(&app_id) {
            return Err(RegistryError::DuplicateApp(app_id));
        }
        let certificates = match &new.certificate_pem {
            Some(pem) => vec![parse_certificate(pem)?],
            None => Vec::new(),
        };
        // A registration needs some credential: generate a secret like the portal's "New client secret".
        let secret = match new.secret {
            Some(s) => Some(s),
            None if certificates.is_empty() => Some(generate_secret()),
            None => None,
        };
        let app = App {
            app_id: app_id.clone(),
            display_name: new.display_name.unwrap_or_else(|| format!("app-{}", &app_id[..8])),
            secrets: secret.iter().cloned().collect(),
            certificates,
            roles: new.roles,
            redirect_uris: new.redirect_uris,
        };
        let mut info = app_info(&app);
        info.secret = secret;
        self.apps.insert(app_id, app);
        Ok(info)
    }

    pub fn list_apps(&self) -> Vec<AppInfo> {
        let mut apps: Vec<AppInfo> = self.apps.values().map(app_info).collect();
        apps.sort_by(|a, b| a.app_id.cmp(&b.app_id));
        apps
    }
}

pub(super) fn app_info(app: &App) -> AppInfo {
    AppInfo {
        app_id: app.app_id.clone(),
        display_name: app.display_name.clone(),
        secret: None,
        certificate_thumbprints: app.certificates.iter().map(|c| hex::encode_upper(&c.sha1)).collect(),
        roles: app.roles.clone(),
        redirect_uris: app.redirect_uris.clone(),
    }
}

fn generate_secret() -> String {
    let bytes: [u8; 30] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Reads the thumbprints and RSA public key of a PEM certificate.
fn parse_certificate(pem_text: &str) -> Result<AppCertificate, RegistryError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes())
        .map_err(|e| RegistryError::InvalidCertificate(format!("not a PEM certificate: {e}")))?;
    let cert =
        pem.parse_x509().map_err(|e| RegistryError::InvalidCertificate(format!("not an X.509 certificate: {e}")))?;
    let spki = cert.public_key();
    // Client assertions are RS256 / PS256: only RSA keys can verify them.
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err(RegistryError::InvalidCertificate("the certificate's key is not an RSA key".into()));
    }
    Ok(AppCertificate {
        sha1: sha1::Sha1::digest(&pem.contents).to_vec(),
        sha256: sha2::Sha256::digest(&pem.contents).to_vec(),
        public_key_pkcs1: spki.subject_public_key.data.to_vec(),
    })
}
