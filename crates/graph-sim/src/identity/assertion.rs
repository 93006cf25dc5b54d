//! Client assertions (certificate credentials): a JWT signed with the key of a certificate
//! registered on the app, RS256 or PS256, naming the certificate by `x5t` (SHA-1) or `x5t#S256`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::aadsts::AadError;
use super::registry::{App, AppCertificate};

/// Tolerated clock skew between the client and the emulator, in seconds.
const CLOCK_SKEW_SECS: i64 = 300;

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    aud: String,
    iss: String,
    sub: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
}

/// Verifies `assertion` for `app`; `audience_ok` decides whether the `aud` names this token endpoint.
pub(super) fn verify(
    assertion: &str,
    app: &App,
    audience_ok: impl Fn(&str) -> bool,
    now: DateTime<Utc>,
) -> Result<(), AadError> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| AadError::malformed_assertion())?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(AadError::assertion_bad_signature());
    }
    let certificate = find_certificate(app, header.x5t.as_deref(), header.x5t_s256.as_deref())
        .ok_or_else(|| AadError::assertion_certificate_unknown(&app.app_id))?;
    let mut validation = Validation::new(header.alg);
    // Time and audience are checked below, with AADSTS codes of their own and the emulator's clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let key = DecodingKey::from_rsa_der(&certificate.public_key_pkcs1);
    let claims = match jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return Err(match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature
                | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_)
                | jsonwebtoken::errors::ErrorKind::Crypto(_) => AadError::assertion_bad_signature(),
                _ => AadError::malformed_assertion(),
            })
        }
    };
    if !claims.iss.eq_ignore_ascii_case(&app.app_id) || !claims.sub.eq_ignore_ascii_case(&app.app_id) {
        return Err(AadError::assertion_client_mismatch());
    }
    if !audience_ok(&claims.aud) {
        return Err(AadError::assertion_audience(&claims.aud));
    }
    let nbf = claims.nbf.unwrap_or(i64::MIN);
    let t = now.timestamp();
    if claims.exp + CLOCK_SKEW_SECS < t || nbf - CLOCK_SKEW_SECS > t {
        return Err(AadError::assertion_time(now, claims.nbf.unwrap_or(0), claims.exp));
    }
    Ok(())
}

fn find_certificate<'a>(app: &'a App, x5t: Option<&str>, x5t_s256: Option<&str>) -> Option<&'a AppCertificate> {
    let sha1 = x5t.and_then(decode_thumbprint);
    let sha256 = x5t_s256.and_then(decode_thumbprint);
    app.certificates.iter().find(|c| {
        sha1.as_deref().is_some_and(|t| t == c.sha1.as_slice())
            || sha256.as_deref().is_some_and(|t| t == c.sha256.as_slice())
    })
}

/// Thumbprints arrive base64url (RFC 7515) or, from some clients, standard base64 with padding.
fn decode_thumbprint(text: &str) -> Option<Vec<u8>> {
    let normalized: String = text
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            other => other,
        })
        .collect();
    URL_SAFE_NO_PAD.decode(normalized).ok()
}

#[cfg(test)]
mod tests {
    use super::decode_thumbprint;

    #[test]
    fn thumbprints_decode_from_both_base64_alphabets() {
        let bytes = [0xfbu8, 0xff, 0x01, 0x3e];
        assert_eq!(decode_thumbprint("+/8BPg==").as_deref(), Some(&bytes[..]));
        assert_eq!(decode_thumbprint("-_8BPg").as_deref(), Some(&bytes[..]));
        assert_eq!(decode_thumbprint("not base64!"), None);
    }
}
