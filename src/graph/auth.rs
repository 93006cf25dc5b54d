//! Access tokens from the Microsoft identity platform (OAuth2 client credentials), cached per
//! (cloud, tenant, client id) and refreshed before they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::client::GraphTenant;
use super::credentials::ClientCredential;
use super::error::GraphError;
use crate::model::Cloud;

/// A bearer token for Graph. The `serial` tells a refreshed token from the one that got a 401.
#[derive(Clone)]
pub struct AccessToken {
    pub(crate) secret: SecretString,
    pub(crate) expires_at: Instant,
    pub(crate) lifetime: Duration,
    pub(crate) serial: u64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken").field("serial", &self.serial).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    cloud: Cloud,
    tenant_id: String,
    client_id: String,
}

type Slot = Arc<tokio::sync::Mutex<Option<AccessToken>>>;

/// Tokens by (cloud, tenant, client id). One async lock per key, so concurrent workers of one
/// tenant share one token request instead of stampeding the token endpoint.
#[derive(Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<TokenKey, Slot>>,
    next_serial: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    fn slot(&self, tenant: &GraphTenant) -> Slot {
        let key = TokenKey {
            cloud: tenant.cloud.clone(),
            tenant_id: tenant.tenant_id.clone(),
            client_id: tenant.credentials.client_id.clone(),
        };
        // A poisoned map only means another thread panicked mid-insert; the map itself is sound.
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(key).or_default().clone()
    }

    /// Fetches a new token even when a fresh one is cached, and caches it for everyone (it carries the
    /// roles consented to most recently).
    pub(crate) async fn replace<F, Fut>(&self, tenant: &GraphTenant, fetch: F) -> Result<AccessToken, GraphError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<TokenResponse, GraphError>>,
    {
        let slot = self.slot(tenant);
        let mut cached = slot.lock().await;
        let token = self.issue(tenant, fetch).await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    async fn issue<F, Fut>(&self, tenant: &GraphTenant, fetch: F) -> Result<AccessToken, GraphError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<TokenResponse, GraphError>>,
    {
        let requested_at = Instant::now();
        let response = fetch().await?;
        let lifetime = Duration::from_secs(response.expires_in.seconds());
        let token = AccessToken {
            secret: response.access_token,
            expires_at: requested_at + lifetime,
            lifetime,
            serial: self.next_serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        tracing::debug!(tenant_id = %tenant.tenant_id, expires_in_s = lifetime.as_secs(), "graph token acquired");
        Ok(token)
    }

    /// Returns a token valid for at least `margin` (less for short-lived tokens), fetching one with `fetch` when needed.
    /// `rejected` is a token Graph answered 401 to: it is never handed out again.
    pub(crate) async fn get<F, Fut>(
        &self,
        tenant: &GraphTenant,
        margin: Duration,
        rejected: Option<&AccessToken>,
        fetch: F,
    ) -> Result<AccessToken, GraphError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<TokenResponse, GraphError>>,
    {
        let slot = self.slot(tenant);
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref() {
            let margin = refresh_margin(margin, Some(token.lifetime));
            let fresh = token.expires_at.saturating_duration_since(Instant::now()) > margin;
            let was_rejected = rejected.is_some_and(|r| r.serial == token.serial);
            if fresh && !was_rejected {
                return Ok(token.clone());
            }
        }
        let token = self.issue(tenant, fetch).await?;
        *cached = Some(token.clone());
        Ok(token)
    }
}

/// The refresh margin for a token that lives `lifetime`: 5 minutes, or a quarter of short lifetimes.
pub(crate) fn refresh_margin(configured: Duration, lifetime_hint: Option<Duration>) -> Duration {
    match lifetime_hint {
        Some(lifetime) => configured.min(lifetime / 4),
        None => configured,
    }
}

/// The token endpoint URL of a tenant in a cloud.
pub fn token_url(cloud: &Cloud, tenant_id: &str) -> String {
    format!("{}/{}/oauth2/v2.0/token", cloud.login_url(), tenant_id)
}

/// The form fields of a client-credentials request (secret or freshly signed assertion).
pub(crate) fn token_form(
    tenant: &GraphTenant,
    token_url: &str,
) -> Result<Vec<(&'static str, SecretString)>, GraphError> {
    let credentials = &tenant.credentials;
    let mut form = vec![
        ("grant_type", SecretString::from("client_credentials".to_owned())),
        ("client_id", SecretString::from(credentials.client_id.clone())),
        ("scope", SecretString::from(tenant.cloud.graph_scope())),
    ];
    match &credentials.credential {
        ClientCredential::Secret(secret) => form.push(("client_secret", secret.clone())),
        ClientCredential::Certificate(certificate) => {
            let assertion =
                certificate.assertion(&credentials.client_id, token_url, SystemTime::now()).map_err(|e| {
                    GraphError::CertificateUnusable {
                        client_id: credentials.client_id.clone(),
                        detail: format!("signing the client assertion failed: {e}"),
                    }
                })?;
            form.push((
                "client_assertion_type",
                SecretString::from("urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned()),
            ));
            form.push(("client_assertion", SecretString::from(assertion)));
        }
    }
    Ok(form)
}

/// Encodes the form for the request body; the only place the secret is exposed.
pub(crate) fn encode_form(form: &[(&'static str, SecretString)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in form {
        serializer.append_pair(name, value.expose_secret());
    }
    serializer.finish()
}

/// A successful token response (`expires_in` arrives as a number or a digit string).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: SecretString,
    pub(crate) expires_in: Lifetime,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Lifetime {
    Number(u64),
    Text(String),
}

impl Lifetime {
    fn seconds(&self) -> u64 {
        match self {
            Lifetime::Number(n) => *n,
            // An unreadable lifetime: assume the documented default of one hour.
            Lifetime::Text(text) => text.trim().parse().unwrap_or(3599),
        }
    }
}

/// The identity platform's error body.
#[derive(Deserialize, Default)]
struct TokenErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<i64>,
}

/// Maps a token-endpoint refusal to the error that tells the operator what to fix.
pub(crate) fn token_error(tenant: &GraphTenant, status: u16, body: &[u8]) -> GraphError {
    let parsed: TokenErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let client_id = tenant.credentials.client_id.clone();
    let has = |code: i64| {
        parsed.error_codes.contains(&code) || parsed.error_description.starts_with(&format!("AADSTS{code}:"))
    };
    if has(7000215) {
        GraphError::InvalidClientSecret { client_id }
    } else if has(7000222) {
        GraphError::ClientSecretExpired { client_id }
    } else if has(700016) {
        GraphError::UnknownApplication { client_id, tenant_id: tenant.tenant_id.clone() }
    } else if has(90002) || has(90038) || parsed.error == "invalid_tenant" {
        GraphError::TenantNotFound { tenant_id: tenant.tenant_id.clone(), cloud: tenant.cloud.name().to_owned() }
    } else if has(700027) || has(700023) || has(700024) || has(7000274) || has(7000277) {
        GraphError::InvalidCertificate { client_id, detail: first_line(&parsed.error_description) }
    } else {
        let error = if parsed.error.is_empty() { format!("HTTP {status}") } else { parsed.error };
        GraphError::TokenRejected { client_id, error, description: first_line(&parsed.error_description) }
    }
}

/// AADSTS descriptions carry trace ids on later lines; the first line is the message.
fn first_line(description: &str) -> String {
    description.lines().next().unwrap_or_default().trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::credentials::AppCredentials;
    use crate::graph::TenantSize;

    fn tenant() -> GraphTenant {
        GraphTenant {
            cloud: Cloud::Global,
            tenant_id: "contoso".to_owned(),
            credentials: Arc::new(AppCredentials::with_secret("app-1", SecretString::from("s".to_owned()))),
            size: TenantSize::Small,
        }
    }

    #[test]
    fn token_errors_name_the_fix() {
        let t2 = r#"{"error":"invalid_scope","error_description":"AADSTS70011: The provided value for the input parameter 'scope' is not valid.\r\nTrace ID: 2","error_codes":[70011]}"#;
        match token_error(&tenant(), 400, t2.as_bytes()) {
            GraphError::TokenRejected { error, description, .. } => {
                assert_eq!(error, "invalid_scope");
                assert!(description.starts_with("AADSTS70011") && !description.contains("Trace ID"));
            }
            other => panic!("{other:?}"),
        }
        let t3 = r#"{"error":"invalid_tenant","error_description":"AADSTS90002: Tenant 'tenant_id' not found.\r\nTrace ID: e","error_codes":[90002]}"#;
        assert!(matches!(token_error(&tenant(), 400, t3.as_bytes()), GraphError::TenantNotFound { .. }));
        let wrong = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#;
        let err = token_error(&tenant(), 401, wrong.as_bytes());
        assert!(matches!(err, GraphError::InvalidClientSecret { .. }));
        assert!(err.to_string().contains("not its ID"));
        let unknown = r#"{"error":"unauthorized_client","error_description":"AADSTS700016: Application not found","error_codes":[700016]}"#;
        assert!(matches!(token_error(&tenant(), 400, unknown.as_bytes()), GraphError::UnknownApplication { .. }));
        assert!(matches!(token_error(&tenant(), 400, b"<html>"), GraphError::TokenRejected { .. }));
    }

    #[test]
    fn token_lifetime_accepts_numbers_and_strings() {
        let a: TokenResponse =
            serde_json::from_str(r#"{"token_type":"Bearer","expires_in":3599,"access_token":"x"}"#).expect("a");
        let b: TokenResponse =
            serde_json::from_str(r#"{"expires_in":"120","ext_expires_in":"120","access_token":"y"}"#).expect("b");
        assert_eq!((a.expires_in.seconds(), b.expires_in.seconds()), (3599, 120));
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_token_request_and_a_rejected_token_is_replaced_once() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicU32::new(0));
        let fetch = |fetches: Arc<AtomicU32>| async move {
            fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(TokenResponse { access_token: SecretString::from("t".to_owned()), expires_in: Lifetime::Number(3600) })
        };
        let margin = Duration::from_secs(300);
        let mut callers = Vec::new();
        for _ in 0..10 {
            let (cache, fetches) = (cache.clone(), fetches.clone());
            callers.push(tokio::spawn(async move { cache.get(&tenant(), margin, None, || fetch(fetches)).await }));
        }
        let mut serials = std::collections::BTreeSet::new();
        for caller in callers {
            serials.insert(caller.await.expect("task").expect("token").serial);
        }
        assert_eq!((fetches.load(Ordering::SeqCst), serials.len()), (1, 1));

        let first = cache.get(&tenant(), margin, None, || fetch(fetches.clone())).await.expect("cached");
        let second = cache.get(&tenant(), margin, Some(&first), || fetch(fetches.clone())).await.expect("refreshed");
        assert_ne!(first.serial, second.serial);
        // Another worker that also saw the old token get a 401 reuses the refreshed one.
        let third = cache.get(&tenant(), margin, Some(&first), || fetch(fetches.clone())).await.expect("shared");
        assert_eq!((third.serial, fetches.load(Ordering::SeqCst)), (second.serial, 2));
    }

    #[test]
    fn short_lived_tokens_refresh_earlier() {
        let five_min = Duration::from_secs(300);
        assert_eq!(refresh_margin(five_min, Some(Duration::from_secs(3600))), five_min);
        assert_eq!(refresh_margin(five_min, Some(Duration::from_secs(60))), Duration::from_secs(15));
    }

    #[test]
    fn certificate_form_carries_an_assertion_not_a_secret() {
        let form = token_form(&tenant(), "https://login/x").expect("form");
        let names: Vec<_> = form.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["grant_type", "client_id", "scope", "client_secret"]);
        assert!(encode_form(&form).contains("scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"));
    }
}
