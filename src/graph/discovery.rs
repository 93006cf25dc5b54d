//! Tenant discovery: a tenant given as a domain (`contoso.onmicrosoft.com`) resolved to its directory id
//! through the cloud's OpenID discovery document, as the identity platform publishes it per tenant
//! (`{login host}/{tenant}/v2.0/.well-known/openid-configuration`; entra-docs
//! `docs/identity-platform/v2-protocols-oidc.md`, "Find your app's OpenID configuration document URI").

use std::time::Duration;

use serde::Deserialize;
use uuid::Uuid;

use super::client::{GraphClient, GraphErrorBody};
use super::error::GraphError;
use super::retry::RetryPolicy;
use crate::model::Cloud;

/// The directory id of `tenant`: a GUID as is, a domain name through the OpenID discovery document of
/// `cloud`. An unknown domain is [`GraphError::UnknownDomain`]; text that is neither a GUID nor a DNS
/// name is [`GraphError::InvalidTenantName`] (checked before any request).
pub async fn resolve_tenant_id(client: &GraphClient, cloud: &Cloud, tenant: &str) -> Result<Uuid, GraphError> {
    let tenant = tenant.trim();
    if let Ok(id) = Uuid::parse_str(tenant) {
        return Ok(id);
    }
    let domain = dns_name(tenant).ok_or_else(|| GraphError::InvalidTenantName { value: tenant.to_owned() })?;
    let url = format!("{}/{domain}/v2.0/.well-known/openid-configuration", cloud.login_url());
    let answer = client.get_public(&url, &lookup_policy(&client.options().retry)).await?;
    if answer.status.is_success() {
        return tenant_id_of(&answer.body).ok_or_else(|| GraphError::MalformedResponse {
            url,
            detail: "the OpenID configuration names no tenant id in token_endpoint or issuer".to_owned(),
        });
    }
    let refusal: TokenError = serde_json::from_slice(&answer.body).unwrap_or_default();
    let aadsts = |code: i64| {
        refusal.error_codes.contains(&code) || refusal.error_description.starts_with(&format!("AADSTS{code}:"))
    };
    if refusal.error == "invalid_tenant" || aadsts(90002) || answer.status == reqwest::StatusCode::NOT_FOUND {
        tracing::info!(%domain, cloud = cloud.name(), "tenant domain unknown to OpenID discovery");
        return Err(GraphError::UnknownDomain { domain, cloud: cloud.name().to_owned() });
    }
    if aadsts(900023) {
        return Err(GraphError::InvalidTenantName { value: tenant.to_owned() });
    }
    let message = match refusal.error_description.lines().next() {
        Some(line) if !line.is_empty() => line.to_owned(),
        _ => GraphErrorBody::parse(&answer.body).message,
    };
    Err(GraphError::UnexpectedStatus { status: answer.status.as_u16(), code: refusal.error, message })
}

/// A discovery lookup answers an operator who waits: a few quick attempts, not a sync round's patience.
pub(crate) fn lookup_policy(client: &RetryPolicy) -> RetryPolicy {
    RetryPolicy {
        max_attempts: client.max_attempts.min(3),
        max_total_wait: client.max_total_wait.min(Duration::from_secs(20)),
        base_delay: client.base_delay,
        max_delay: client.max_delay.min(Duration::from_secs(10)),
    }
}

/// The lower-cased domain if `text` is a DNS name: at least two labels of letters, digits and inner
/// hyphens, 63 characters each, 253 in all, and a top-level label that is not all digits (no IP address).
pub(crate) fn dns_name(text: &str) -> Option<String> {
    let name = text.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let tld_ok = labels.last().is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
    (name.len() <= 253 && labels.len() >= 2 && labels.iter().all(label_ok) && tld_ok).then_some(name)
}

#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<i64>,
}

#[derive(Deserialize)]
struct OpenIdConfiguration {
    #[serde(default)]
    token_endpoint: String,
    #[serde(default)]
    issuer: String,
}

/// The GUID path segment of `token_endpoint` (`{host}/{tid}/oauth2/v2.0/token`), else of `issuer`
/// (`{host}/{tid}/v2.0`).
fn tenant_id_of(body: &[u8]) -> Option<Uuid> {
    let doc: OpenIdConfiguration = serde_json::from_slice(body).ok()?;
    [doc.token_endpoint, doc.issuer].iter().find_map(|url| {
        let path = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        path.split('/').skip(1).find_map(|segment| Uuid::parse_str(segment).ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_validated_before_any_request() {
        assert_eq!(dns_name("Contoso.OnMicrosoft.com").as_deref(), Some("contoso.onmicrosoft.com"));
        assert_eq!(dns_name("a-b.example.").as_deref(), Some("a-b.example"));
        for bad in ["contoso", "", "-a.com", "a-.com", "a..com", "a b.com", "10.0.0.1", "a/b.com", "ünï.com", "a.com/x"]
        {
            assert_eq!(dns_name(bad), None, "{bad:?}");
        }
        assert_eq!(dns_name(&format!("{}.com", "a".repeat(64))), None);
    }

    #[test]
    fn the_tenant_id_comes_from_the_token_endpoint_or_the_issuer() {
        let id = "6b1c2a4e-0000-4000-8000-000000000001";
        let doc = format!(r#"{{"token_endpoint":"https://login.microsoftonline.com/{id}/oauth2/v2.0/token"}}"#);
        assert_eq!(tenant_id_of(doc.as_bytes()), Uuid::parse_str(id).ok());
        let doc = format!(r#"{{"token_endpoint":"x","issuer":"https://login.microsoftonline.com/{id}/v2.0"}}"#);
        assert_eq!(tenant_id_of(doc.as_bytes()), Uuid::parse_str(id).ok());
        assert_eq!(tenant_id_of(br#"{"issuer":"https://login/{tenantid}/v2.0"}"#), None);
        assert_eq!(tenant_id_of(b"<html>"), None);
    }
}
