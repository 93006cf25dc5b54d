//! HTTPS for the emulator: a CA and a server certificate generated at start (rcgen), valid for
//! loopback and the national clouds' login and Graph host names, so TLS-only clients that trust the
//! CA (written to a file the caller names) connect as to the real service. See `docs/graph-sim.md`.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Host names the server certificate covers besides loopback: one emulator answers for every cloud.
pub const CLOUD_HOST_NAMES: [&str; 11] = [
    "login.microsoftonline.com",
    "login.windows.net",
    "login.microsoft.com",
    "graph.microsoft.com",
    "login.microsoftonline.us",
    "graph.microsoft.us",
    "dod-graph.microsoft.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
    "microsoftgraph.chinacloudapi.cn",
    "graph.chinacloudapi.cn",
];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating the emulator's certificates failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("building the TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("writing the CA certificate to {path} failed: {source}")]
    WriteCa { path: String, source: std::io::Error },
}

/// A generated CA, the server certificate it signed, and the matching rustls configuration.
pub struct TlsMaterial {
    pub server_config: rustls::ServerConfig,
    /// PEM of the CA certificate clients must trust.
    pub ca_pem: String,
}

/// Generates a CA and a server certificate for loopback, `extra_names` and the cloud host names.
pub fn generate(extra_names: &[String]) -> Result<TlsMaterial, TlsError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "entrasync graph-sim CA");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut names: Vec<String> =
        ["localhost", "127.0.0.1", "::1"].iter().map(std::string::ToString::to_string).collect();
    names.extend(CLOUD_HOST_NAMES.iter().map(std::string::ToString::to_string));
    names.extend(extra_names.iter().cloned());
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name.push(DnType::CommonName, "entrasync graph-sim");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // Strict verifiers (Python 3.13's VERIFY_X509_STRICT) require the authority key identifier.
    params.use_authority_key_identifier_extension = true;
    let server_key = KeyPair::generate()?;
    let server_cert = params.signed_by(&server_key, &ca)?;

    let chain = vec![server_cert.der().clone(), CertificateDer::from(ca.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(TlsMaterial { server_config, ca_pem: ca.pem() })
}

/// Generates the certificates, writes the CA's PEM to `ca_path`, and returns the server configuration.
pub fn server_config_writing_ca(ca_path: &Path, extra_names: &[String]) -> Result<rustls::ServerConfig, TlsError> {
    let material = generate(extra_names)?;
    std::fs::write(ca_path, &material.ca_pem)
        .map_err(|source| TlsError::WriteCa { path: ca_path.display().to_string(), source })?;
    tracing::info!(path = %ca_path.display(), "graph-sim wrote its CA certificate");
    Ok(material.server_config)
}
