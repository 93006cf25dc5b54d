//! The emulator's token-signing key (RSA 2048, RS256 like the real service) and its JWKS entry.
//! One key per process: generating RSA keys is slow, and every emulator in a test binary can share it.

use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sha1::Digest as _;

pub(super) struct SigningKey {
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// `kid` and `x5t`: base64url SHA-1 of the key's certificate, as Entra publishes them.
    pub kid: String,
    jwk: Value,
}

impl SigningKey {
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }
}

static KEY: OnceLock<Option<SigningKey>> = OnceLock::new();

/// Whether this process has generated (or tried to generate) its key yet.
pub(super) fn generated() -> bool {
    KEY.get().is_some()
}

/// The process-wide signing key; `None` only if key generation failed (logged).
pub(super) fn signing_key() -> Option<&'static SigningKey> {
    KEY.get_or_init(|| match generate() {
        Ok(key) => Some(key),
        Err(e) => {
            tracing::error!(error = %e, "graph-sim could not generate its token-signing key");
            None
        }
    })
    .as_ref()
}

fn generate() -> anyhow::Result<SigningKey> {
    use anyhow::Context as _;
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).context("generating an RSA key")?;
    let pkcs1 = private.to_pkcs1_der().context("encoding the key as PKCS#1")?;
    let pkcs8 = private.to_pkcs8_der().context("encoding the key as PKCS#8")?;
    // A self-signed certificate for the key, so the JWKS carries `x5c` / `x5t` like Entra's.
    let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .context("loading the RSA key into rcgen")?;
    let params = rcgen::CertificateParams::new(Vec::<String>::new()).context("certificate parameters")?;
    let mut params = params;
    params.distinguished_name.push(rcgen::DnType::CommonName, "accounts.accesscontrol.windows.net");
    let cert = params.self_signed(&key_pair).context("self-signing the key's certificate")?;
    let der = cert.der().to_vec();
    let kid = URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&der));
    let public = private.to_public_key();
    let n = URL_SAFE_NO_PAD.encode(public.n().to_bytes_be());
    let e = URL_SAFE_NO_PAD.encode(public.e().to_bytes_be());
    let jwk = json!({
        "kty": "RSA", "use": "sig", "kid": kid, "x5t": kid, "n": n, "e": e,
        "x5c": [STANDARD.encode(&der)],
    });
    let decoding = DecodingKey::from_rsa_components(&n, &e).context("building the decoding key")?;
    Ok(SigningKey { encoding: EncodingKey::from_rsa_der(pkcs1.as_bytes()), decoding, kid, jwk })
}
