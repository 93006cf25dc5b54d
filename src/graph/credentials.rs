//! App-registration credentials: a client secret, or a certificate whose key signs a client assertion.
//!
//! Secrets stay inside `SecretString` / `EncodingKey` and never reach `Debug` output or logs.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha1::Digest as _;

/// How long a client assertion is valid; Entra accepts 5–10 minutes.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// The identity entrasync signs in as in one tenant: an app registration's client id and credential.
#[derive(Clone)]
pub struct AppCredentials {
    pub client_id: String,
    pub credential: ClientCredential,
}

impl AppCredentials {
    pub fn with_secret(client_id: impl Into<String>, secret: SecretString) -> Self {
        Self { client_id: client_id.into(), credential: ClientCredential::Secret(secret) }
    }

    pub fn with_certificate(client_id: impl Into<String>, certificate: CertificateCredential) -> Self {
        Self { client_id: client_id.into(), credential: ClientCredential::Certificate(certificate) }
    }
}

impl fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCredentials")
            .field("client_id", &self.client_id)
            .field("credential", &self.credential)
            .finish()
    }
}

/// The secret half of [`AppCredentials`].
#[derive(Clone)]
pub enum ClientCredential {
    Secret(SecretString),
    Certificate(CertificateCredential),
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientCredential::Secret(_) => f.write_str("Secret([redacted])"),
            ClientCredential::Certificate(cert) => write!(f, "Certificate({cert:?})"),
        }
    }
}

/// Signature algorithm of the client assertion. Entra documents PS256; RS256 is what most tools send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssertionAlgorithm {
    #[default]
    Ps256,
    Rs256,
}

/// A certificate credential: the RSA private key plus the thumbprints of its certificate.
#[derive(Clone)]
pub struct CertificateCredential {
    key: EncodingKey,
    algorithm: AssertionAlgorithm,
    /// SHA-1 thumbprint, base64url (`x5t`).
    x5t: String,
    /// SHA-256 thumbprint, base64url (`x5t#S256`).
    x5t_s256: String,
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("algorithm", &self.algorithm)
            .field("x5t", &self.x5t)
            .finish_non_exhaustive()
    }
}

/// Why a certificate credential cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("the certificate PEM holds no CERTIFICATE block: {0}")]
    Certificate(String),
    #[error("the private key PEM is not an RSA key (PKCS#1 or PKCS#8): {0}")]
    PrivateKey(String),
}

impl CertificateCredential {
    /// Builds the credential from a PEM private key (PKCS#1 or PKCS#8, RSA) and the PEM certificate
    /// uploaded to the app registration (the first certificate of a chain is used).
    pub fn from_pem(
        private_key_pem: &SecretString,
        certificate_pem: &str,
        algorithm: AssertionAlgorithm,
    ) -> Result<Self, CertificateError> {
        let certificate = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
            .next()
            .ok_or_else(|| CertificateError::Certificate("no certificate found".to_owned()))?
            .map_err(|e| CertificateError::Certificate(e.to_string()))?;
        let key = EncodingKey::from_rsa_pem(private_key_pem.expose_secret().as_bytes())
            .map_err(|e| CertificateError::PrivateKey(e.to_string()))?;
        Ok(Self {
            key,
            algorithm,
            x5t: URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(certificate.as_ref())),
            x5t_s256: URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(certificate.as_ref())),
        })
    }

    /// The SHA-1 thumbprint as Entra shows it (upper-case hex) — for operators matching certificates.
    pub fn thumbprint_hex(&self) -> String {
        URL_SAFE_NO_PAD.decode(&self.x5t).map(hex::encode_upper).unwrap_or_default()
    }

    /// Signs a client assertion for `client_id` addressed to the token endpoint `token_url`.
    pub fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        now: SystemTime,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut header = Header::new(match self.algorithm {
            AssertionAlgorithm::Ps256 => Algorithm::PS256,
            AssertionAlgorithm::Rs256 => Algorithm::RS256,
        });
        header.typ = Some("JWT".to_owned());
        header.x5t = Some(self.x5t.clone());
        header.x5t_s256 = Some(self.x5t_s256.clone());
        let claims = AssertionClaims {
            aud: token_url,
            iss: client_id,
            sub: client_id,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now_secs,
            iat: now_secs,
            exp: now_secs + ASSERTION_LIFETIME.as_secs(),
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
    }
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: u64,
    iat: u64,
    exp: u64,
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    /// A self-signed certificate for a freshly generated RSA key (no private key is committed).
    fn rsa_certificate() -> (SecretString, String, Vec<u8>) {
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        let generated = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("rsa key");
        let key_pem = generated.to_pkcs8_pem(LineEnding::LF).expect("pem").to_string();
        let key_pem = key_pem.as_str();
        let key = rcgen::KeyPair::from_pem(key_pem).expect("rsa key");
        let params = rcgen::CertificateParams::new(vec!["entrasync-test".to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("self-signed");
        (SecretString::from(key_pem.to_owned()), cert.pem(), cert.der().to_vec())
    }

    #[derive(serde::Deserialize)]
    struct Claims {
        aud: String,
        iss: String,
        sub: String,
        jti: String,
        nbf: u64,
        exp: u64,
    }

    #[test]
    fn assertion_carries_the_claims_and_thumbprints_entra_checks() {
        let (key_pem, cert_pem, cert_der) = rsa_certificate();
        let token_url = "https://login.microsoftonline.com/contoso/oauth2/v2.0/token";
        for algorithm in [AssertionAlgorithm::Ps256, AssertionAlgorithm::Rs256] {
            let credential = CertificateCredential::from_pem(&key_pem, &cert_pem, algorithm).expect("credential");
            let jwt = credential.assertion("app-1", token_url, SystemTime::now()).expect("signed");

            let header = jsonwebtoken::decode_header(&jwt).expect("header");
            let expected_alg = if algorithm == AssertionAlgorithm::Ps256 { Algorithm::PS256 } else { Algorithm::RS256 };
            assert_eq!(header.alg, expected_alg);
            assert_eq!(header.x5t.as_deref(), Some(URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&cert_der)).as_str()));
            assert_eq!(
                header.x5t_s256.as_deref(),
                Some(URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&cert_der)).as_str())
            );

            // Verify the signature with the certificate's public key, as Entra does.
            let public = rcgen_public_key_pem(&key_pem);
            let mut validation = Validation::new(expected_alg);
            validation.set_audience(&[token_url]);
            validation.set_issuer(&["app-1"]);
            let claims = jsonwebtoken::decode::<Claims>(
                &jwt,
                &DecodingKey::from_rsa_pem(public.as_bytes()).expect("public key"),
                &validation,
            )
            .expect("valid signature")
            .claims;
            assert_eq!((claims.aud.as_str(), claims.iss.as_str(), claims.sub.as_str()), (token_url, "app-1", "app-1"));
            assert!(!claims.jti.is_empty());
            assert_eq!(claims.exp - claims.nbf, 600);
        }
    }

    #[test]
    fn assertions_are_unique() {
        let (key_pem, cert_pem, _) = rsa_certificate();
        let credential =
            CertificateCredential::from_pem(&key_pem, &cert_pem, AssertionAlgorithm::Ps256).expect("credential");
        let a = credential.assertion("app", "https://t", SystemTime::now()).expect("a");
        let b = credential.assertion("app", "https://t", SystemTime::now()).expect("b");
        assert_ne!(a, b, "jti must differ so Entra does not reject a replay");
    }

    #[test]
    fn bad_pem_is_a_typed_error_and_secrets_do_not_print() {
        let (key_pem, cert_pem, _) = rsa_certificate();
        assert!(matches!(
            CertificateCredential::from_pem(&key_pem, "not a pem", AssertionAlgorithm::Ps256),
            Err(CertificateError::Certificate(_))
        ));
        assert!(matches!(
            CertificateCredential::from_pem(
                &SecretString::from("junk".to_owned()),
                &cert_pem,
                AssertionAlgorithm::Ps256
            ),
            Err(CertificateError::PrivateKey(_))
        ));
        let secret = AppCredentials::with_secret("app", SecretString::from("hunter2-secret".to_owned()));
        assert!(!format!("{secret:?}").contains("hunter2"));
        let cert = CertificateCredential::from_pem(&key_pem, &cert_pem, AssertionAlgorithm::Ps256).expect("credential");
        let printed = format!("{:?}", AppCredentials::with_certificate("app", cert));
        assert!(!printed.contains("PRIVATE KEY") && printed.contains("x5t"));
    }

    fn rcgen_public_key_pem(private_pem: &SecretString) -> String {
        let key = rcgen::KeyPair::from_pem(private_pem.expose_secret()).expect("key");
        key.public_key_pem()
    }
}
