//! The one HTTP client for Graph and its token endpoint: built once, retries, 401 refresh, budget.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::auth::{self, AccessToken, TokenCache};
use super::budget::RateBudget;
use super::credentials::AppCredentials;
use super::error::{read_permissions, GraphError};
use super::retry::{parse_retry_after, RetryCause, RetryPolicy};
use crate::metrics::{GraphMetrics, GraphTarget, WaitCause};
use crate::model::{Cloud, ObjectClass, Trigger};

/// Settings of a [`GraphClient`]; `Default` is right for production.
#[derive(Debug, Clone)]
pub struct GraphClientOptions {
    pub user_agent: String,
    pub connect_timeout: Duration,
    /// Whole-request timeout (a delta page of 200 objects takes well under a second).
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// Refresh a token this long before it expires (a quarter of its lifetime if shorter).
    pub token_refresh_margin: Duration,
    /// Extra trusted root certificates (PEM), e.g. the emulator's CA when it serves HTTPS.
    pub extra_root_certificates_pem: Vec<String>,
    /// The largest response body read; a larger one fails the request (not retried) instead of
    /// filling memory. Graph's delta pages are a few MB at most.
    pub max_body_bytes: usize,
}

impl Default for GraphClientOptions {
    fn default() -> Self {
        Self {
            user_agent: format!("entrasync/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            token_refresh_margin: Duration::from_secs(300),
            extra_root_certificates_pem: Vec::new(),
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Graph's published tenant sizes, which set the per-(app, tenant) resource-unit quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TenantSize {
    /// Fewer than 50 users.
    Small,
    /// 50 to 500 users.
    #[default]
    Medium,
    /// More than 500 users.
    Large,
}

impl TenantSize {
    /// Users beyond this many do not change the size: a count may stop here.
    pub const USERS_THAT_DECIDE: u64 = 501;

    pub fn from_user_count(users: u64) -> Self {
        match users {
            0..50 => TenantSize::Small,
            50..=500 => TenantSize::Medium,
            _ => TenantSize::Large,
        }
    }
}

/// One tenant as seen through one app registration: where it lives and how to sign in.
#[derive(Debug, Clone)]
pub struct GraphTenant {
    pub cloud: Cloud,
    /// Tenant GUID or verified domain.
    pub tenant_id: String,
    pub credentials: Arc<AppCredentials>,
    /// Sets the rate budget of this (app, tenant); use the stored user count.
    pub size: TenantSize,
}

/// `x-ms-throttle-priority`: Graph sheds low-priority traffic first. Background rounds send `Low`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestPriority {
    #[default]
    Normal,
    Low,
}

impl RequestPriority {
    /// Scheduled background rounds are `Low`; anything an operator or system asked for is `Normal`.
    pub fn for_trigger(trigger: Trigger) -> Self {
        match trigger {
            Trigger::Schedule => RequestPriority::Low,
            Trigger::Manual | Trigger::Api | Trigger::Queue => RequestPriority::Normal,
        }
    }
}

/// What fetching one page cost; the sync engine adds these up into the run's history.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RequestStats {
    /// HTTP requests sent to Graph (retries and the 401 retry included; token requests excluded).
    pub requests: u32,
    /// Waits after a 429.
    pub throttled_waits: u32,
    /// Waits after a 503, 504 or connection failure.
    pub unavailable_waits: u32,
    /// Time slept before retries.
    pub waited: Duration,
    /// Time spent waiting for the shared rate budget.
    pub budget_waited: Duration,
}

impl RequestStats {
    pub fn add(&mut self, other: &RequestStats) {
        self.requests += other.requests;
        self.throttled_waits += other.throttled_waits;
        self.unavailable_waits += other.unavailable_waits;
        self.waited += other.waited;
        self.budget_waited += other.budget_waited;
    }
}

/// The Microsoft Graph client. Cheap to clone; build one per process and share it.
#[derive(Clone)]
pub struct GraphClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    pub(crate) options: GraphClientOptions,
    tokens: TokenCache,
    budget: Option<Arc<RateBudget>>,
    /// Requests, latency and retry waits (see [`GraphClient::with_metrics`]).
    metrics: Option<GraphMetrics>,
}

/// A response that is not worth retrying: its status and whole body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

/// One kind of request the retry loop can send again.
trait Attempt {
    /// The tenant and what the request is for: the labels of its metrics (`None`: not counted).
    fn labels(&self) -> Option<(&GraphTenant, GraphTarget)>;
    /// Builds the request for one attempt (acquiring budget or a token as needed).
    fn request(
        &mut self,
        stats: &mut RequestStats,
    ) -> impl Future<Output = Result<reqwest::RequestBuilder, GraphError>> + Send;
    /// Sees every response's status and headers (throttle feedback).
    fn observe(&mut self, _status: StatusCode, _retry_after: Option<Duration>, _headers: &HeaderMap) {}
}

impl GraphClient {
    /// A client without a shared rate budget (tests, one-off tools).
    pub fn new(options: GraphClientOptions) -> Result<Self, GraphError> {
        Self::build(options, None)
    }

    /// A client whose Graph requests all draw from `budget`.
    pub fn with_rate_budget(options: GraphClientOptions, budget: Arc<RateBudget>) -> Result<Self, GraphError> {
        Self::build(options, Some(budget))
    }

    fn build(options: GraphClientOptions, budget: Option<Arc<RateBudget>>) -> Result<Self, GraphError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(options.user_agent.clone())
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            // Links are followed verbatim; a redirect would carry the bearer token elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        for pem in &options.extra_root_certificates_pem {
            let certificate = reqwest::Certificate::from_pem(pem.as_bytes())
                .map_err(|e| anyhow::anyhow!("extra root certificate is not PEM: {e}"))?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder.build().map_err(|e| anyhow::anyhow!("building the HTTP client failed: {e}"))?;
        let inner = Inner { http, options, tokens: TokenCache::default(), budget, metrics: None };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Records every request's answer and latency and every retry wait on `metrics` (one call per event,
    /// from the request loop). Only tenants addressed by their GUID are counted: the `tenant` label is the
    /// directory id, never a domain name. Call it on a new client; a client already cloned gets a token
    /// cache of its own.
    pub fn with_metrics(self, metrics: GraphMetrics) -> Self {
        let inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => Inner { metrics: Some(metrics), ..inner },
            Err(shared) => Inner {
                http: shared.http.clone(),
                options: shared.options.clone(),
                tokens: TokenCache::default(),
                budget: shared.budget.clone(),
                metrics: Some(metrics),
            },
        };
        Self { inner: Arc::new(inner) }
    }

    /// The shared rate budget its requests draw from, if any.
    pub fn rate_budget(&self) -> Option<&RateBudget> {
        self.inner.budget.as_deref()
    }

    pub fn options(&self) -> &GraphClientOptions {
        &self.inner.options
    }

    /// Acquires (or reuses) a token: a cheap way to check a tenant's credentials.
    pub async fn check_credentials(&self, tenant: &GraphTenant) -> Result<(), GraphError> {
        self.token(tenant, None).await.map(|_| ())
    }

    async fn token(&self, tenant: &GraphTenant, rejected: Option<&AccessToken>) -> Result<AccessToken, GraphError> {
        let margin = self.inner.options.token_refresh_margin;
        self.inner.tokens.get(tenant, margin, rejected, || self.request_token(tenant)).await
    }

    /// POSTs the client-credentials request, retrying throttling and outages like any request.
    async fn request_token(&self, tenant: &GraphTenant) -> Result<auth::TokenResponse, GraphError> {
        self.request_token_with(tenant, &self.inner.options.retry).await
    }

    /// Requests a new token whatever the cache holds, and caches it: a test connection must see the
    /// roles consented to since the cached token was issued.
    pub(crate) async fn fresh_token(
        &self,
        tenant: &GraphTenant,
        policy: &RetryPolicy,
    ) -> Result<AccessToken, GraphError> {
        self.inner.tokens.replace(tenant, || self.request_token_with(tenant, policy)).await
    }

    async fn request_token_with(
        &self,
        tenant: &GraphTenant,
        policy: &RetryPolicy,
    ) -> Result<auth::TokenResponse, GraphError> {
        let url = auth::token_url(&tenant.cloud, &tenant.tenant_id);
        let mut stats = RequestStats::default();
        let attempt = TokenAttempt { client: self, tenant, url: &url };
        let answer = self.execute(attempt, policy, &mut stats).await?;
        if answer.status.is_server_error() {
            // An outage of the identity platform, not a verdict on our credentials.
            return Err(GraphError::UnexpectedStatus {
                status: answer.status.as_u16(),
                code: "token endpoint error".to_owned(),
                message: String::from_utf8_lossy(&answer.body).chars().take(300).collect(),
            });
        }
        if !answer.status.is_success() {
            return Err(auth::token_error(tenant, answer.status.as_u16(), &answer.body));
        }
        serde_json::from_slice(&answer.body).map_err(|e| GraphError::TokenRejected {
            client_id: tenant.credentials.client_id.clone(),
            error: "unreadable token response".to_owned(),
            description: e.to_string(),
        })
    }

    /// GETs a Graph URL for `class` objects; returns the 200 body. Retries per the policy, refreshes
    /// the token once on 401, and maps error answers to [`GraphError`].
    pub(crate) async fn get_graph(
        &self,
        tenant: &GraphTenant,
        url: &str,
        class: ObjectClass,
        priority: RequestPriority,
        stats: &mut RequestStats,
    ) -> Result<Bytes, GraphError> {
        let policy = &self.inner.options.retry;
        let answer = self.get_answer(tenant, url, Some(class), priority, policy, stats).await?;
        if answer.status == StatusCode::OK {
            return Ok(answer.body);
        }
        Err(graph_error(tenant, class, answer.status, GraphErrorBody::parse(&answer.body)))
    }

    /// GETs a Graph URL and returns whatever final answer came (any status but 401), for callers that
    /// classify refusals themselves (test connection, `/organization`). Retries per `policy` and
    /// refreshes the token once on 401. `class` labels the request's metrics (`None`: not counted).
    pub(crate) async fn get_answer(
        &self,
        tenant: &GraphTenant,
        url: &str,
        class: Option<ObjectClass>,
        priority: RequestPriority,
        policy: &RetryPolicy,
        stats: &mut RequestStats,
    ) -> Result<Answer, GraphError> {
        let mut rejected: Option<AccessToken> = None;
        loop {
            let token = self.token(tenant, rejected.as_ref()).await?;
            let attempt = GraphAttempt { client: self, tenant, url, class, priority, token: &token, attempts: 0 };
            let answer = self.execute(attempt, policy, stats).await?;
            if answer.status == StatusCode::UNAUTHORIZED {
                let error = GraphErrorBody::parse(&answer.body);
                if rejected.is_none() {
                    tracing::info!(tenant_id = %tenant.tenant_id, code = %error.code, "graph answered 401, refreshing the token once");
                    rejected = Some(token);
                    continue;
                }
                return Err(GraphError::Unauthorized {
                    client_id: tenant.credentials.client_id.clone(),
                    tenant_id: tenant.tenant_id.clone(),
                    code: error.code,
                });
            }
            return Ok(answer);
        }
    }

    /// GETs a public document of the identity platform (no token, no budget), e.g. OpenID discovery.
    pub(crate) async fn get_public(&self, url: &str, policy: &RetryPolicy) -> Result<Answer, GraphError> {
        self.execute(PublicAttempt { client: self, url }, policy, &mut RequestStats::default()).await
    }

    /// Sends `attempt` until it gets an answer that is not retryable, or the policy gives up.
    async fn execute(
        &self,
        mut attempt: impl Attempt,
        policy: &RetryPolicy,
        stats: &mut RequestStats,
    ) -> Result<Answer, GraphError> {
        let meter = Meter::new(self.inner.metrics.as_ref(), attempt.labels());
        let mut attempts = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            attempts += 1;
            let request = attempt.request(stats).await?;
            let sent = Instant::now();
            let (cause, retry_after, last) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let cause = match status {
                        StatusCode::TOO_MANY_REQUESTS => Some(RetryCause::Throttled),
                        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => Some(RetryCause::Unavailable),
                        _ => None,
                    };
                    let retry_after = headers
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    attempt.observe(status, retry_after, &headers);
                    match cause {
                        Some(cause) => {
                            // Not read: the body of a 429/503 is dropped with the response.
                            meter.answered(Some(status), sent.elapsed());
                            (cause, retry_after, format!("HTTP {}", status.as_u16()))
                        }
                        None => match read_body(response, self.inner.options.max_body_bytes).await {
                            Ok(body) => {
                                meter.answered(Some(status), sent.elapsed());
                                return Ok(Answer { status, body });
                            }
                            Err(BodyError::TooLarge { url, limit }) => {
                                meter.answered(Some(status), sent.elapsed());
                                let detail = format!(
                                    "the response is larger than {limit} bytes (GraphClientOptions::max_body_bytes); \
                                     nothing of it was applied"
                                );
                                return Err(GraphError::MalformedResponse { url, detail });
                            }
                            // The connection dropped mid-body: the same as a failed connection.
                            Err(BodyError::Read(e)) => {
                                meter.answered(None, sent.elapsed());
                                (RetryCause::Connection, None, format!("reading the body failed: {e}"))
                            }
                        },
                    }
                }
                Err(e) if e.is_builder() => return Err(anyhow::anyhow!("invalid request: {e}").into()),
                Err(e) => {
                    meter.answered(None, sent.elapsed());
                    (RetryCause::Connection, None, format!("connection failed: {}", error_chain(&e)))
                }
            };
            let wait = policy.delay(attempts, retry_after);
            if !policy.allows(attempts, waited, wait) {
                tracing::warn!(attempts, waited_ms = waited.as_millis() as u64, last = %last, "graph retries exhausted");
                return Err(GraphError::RetriesExhausted { attempts, waited, last });
            }
            match cause {
                RetryCause::Throttled => stats.throttled_waits += 1,
                RetryCause::Unavailable | RetryCause::Connection => stats.unavailable_waits += 1,
            }
            tracing::info!(
                attempt = attempts,
                wait_ms = wait.as_millis() as u64,
                told_ms = retry_after.map(|d| d.as_millis() as u64),
                cause = ?cause,
                last = %last,
                "graph request will be retried"
            );
            tokio::time::sleep(wait).await;
            meter.retry_waited(cause, wait);
            waited += wait;
            stats.waited += wait;
        }
    }
}

enum BodyError {
    TooLarge { url: String, limit: usize },
    Read(reqwest::Error),
}

/// Reads a response body of at most `limit` bytes: refused up front when `Content-Length` says it is
/// larger, and stopped as soon as the bytes read pass the limit otherwise (chunked bodies).
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Bytes, BodyError> {
    let too_large = |response: &reqwest::Response| BodyError::TooLarge { url: response.url().to_string(), limit };
    match response.content_length() {
        Some(length) if length > limit as u64 => return Err(too_large(&response)),
        // Announced and within the limit (Graph's pages are): read it whole in one buffer.
        Some(_) => return response.bytes().await.map_err(BodyError::Read),
        None => {}
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large(&response));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The tenant label of a Graph tenant: its directory GUID, or `None` for a tenant addressed by a domain
/// name (not counted, so no label value comes from outside the tenant list's GUIDs).
pub(crate) fn tenant_label(tenant: &GraphTenant) -> Option<uuid::Uuid> {
    uuid::Uuid::parse_str(&tenant.tenant_id).ok()
}

/// The metrics of one request (all its attempts): a no-op without metrics or a GUID tenant.
struct Meter<'a> {
    labels: Option<(&'a GraphMetrics, uuid::Uuid, GraphTarget)>,
}

impl<'a> Meter<'a> {
    fn new(metrics: Option<&'a GraphMetrics>, labels: Option<(&GraphTenant, GraphTarget)>) -> Self {
        let labels = labels.and_then(|(tenant, target)| Some((metrics?, tenant_label(tenant)?, target)));
        Self { labels }
    }

    /// A response came back with `status`, or none did (`None`: connection failure, timeout, cut body).
    fn answered(&self, status: Option<StatusCode>, latency: Duration) {
        if let Some((metrics, tenant, target)) = self.labels {
            metrics.request_finished(tenant, target, status.map(|s| s.as_u16()), latency);
        }
    }

    /// Slept `waited` before retrying.
    fn retry_waited(&self, cause: RetryCause, waited: Duration) {
        if let Some((metrics, tenant, target)) = self.labels {
            let cause = match cause {
                RetryCause::Throttled => WaitCause::Throttled,
                RetryCause::Unavailable | RetryCause::Connection => WaitCause::Unavailable,
            };
            metrics.retry_waited(tenant, target, cause, waited);
        }
    }
}

struct TokenAttempt<'a> {
    client: &'a GraphClient,
    tenant: &'a GraphTenant,
    url: &'a str,
}

impl Attempt for TokenAttempt<'_> {
    fn labels(&self) -> Option<(&GraphTenant, GraphTarget)> {
        Some((self.tenant, GraphTarget::Token))
    }

    async fn request(&mut self, _stats: &mut RequestStats) -> Result<reqwest::RequestBuilder, GraphError> {
        // A fresh form per attempt: each assertion carries its own jti and validity window.
        let form = auth::token_form(self.tenant, self.url)?;
        Ok(self
            .client
            .inner
            .http
            .post(self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(auth::encode_form(&form)))
    }
}

struct GraphAttempt<'a> {
    client: &'a GraphClient,
    tenant: &'a GraphTenant,
    url: &'a str,
    class: Option<ObjectClass>,
    priority: RequestPriority,
    token: &'a AccessToken,
    attempts: u32,
}

impl Attempt for GraphAttempt<'_> {
    fn labels(&self) -> Option<(&GraphTenant, GraphTarget)> {
        self.class.map(|class| (self.tenant, GraphTarget::Delta(class)))
    }

    async fn request(&mut self, stats: &mut RequestStats) -> Result<reqwest::RequestBuilder, GraphError> {
        if let Some(budget) = &self.client.inner.budget {
            stats.budget_waited += budget.acquire(self.tenant).await?;
        }
        stats.requests += 1;
        self.attempts += 1;
        let mut request = self
            .client
            .inner
            .http
            .get(self.url)
            .bearer_auth(self.token.secret.expose_secret())
            .header("client-request-id", uuid::Uuid::new_v4().to_string());
        if self.attempts > 1 {
            request = request.header("Retry-Attempt", (self.attempts - 1).to_string());
        }
        if self.priority == RequestPriority::Low {
            request = request.header("x-ms-throttle-priority", HeaderValue::from_static("Low"));
        }
        Ok(request)
    }

    fn observe(&mut self, status: StatusCode, retry_after: Option<Duration>, headers: &HeaderMap) {
        if let Some(budget) = &self.client.inner.budget {
            budget.observe(self.tenant, status.as_u16(), retry_after, headers);
        }
    }
}

/// An unauthenticated GET of the identity platform (discovery documents).
struct PublicAttempt<'a> {
    client: &'a GraphClient,
    url: &'a str,
}

impl Attempt for PublicAttempt<'_> {
    fn labels(&self) -> Option<(&GraphTenant, GraphTarget)> {
        None
    }

    async fn request(&mut self, _stats: &mut RequestStats) -> Result<reqwest::RequestBuilder, GraphError> {
        Ok(self.client.inner.http.get(self.url))
    }
}

/// Graph's error body; parsed leniently (any field may be missing, `innerError` varies).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct GraphErrorBody {
    #[serde(default)]
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) message: String,
}

impl GraphErrorBody {
    pub(crate) fn parse(body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Envelope {
            error: GraphErrorBody,
        }
        serde_json::from_slice::<Envelope>(body).map(|e| e.error).unwrap_or_default()
    }
}

/// Maps a non-retryable, non-401 Graph answer to the error the caller acts on.
pub(crate) fn graph_error(
    tenant: &GraphTenant,
    class: ObjectClass,
    status: StatusCode,
    body: GraphErrorBody,
) -> GraphError {
    let code_is = |name: &str| body.code.eq_ignore_ascii_case(name);
    if status == StatusCode::GONE {
        return GraphError::DeltaTokenExpired {
            reason: format!("410 Gone ({}): Graph reset the sync state", body.code),
        };
    }
    if status.is_client_error()
        && (code_is("syncStateNotFound") || code_is("resyncRequired") || code_is("Directory_ExpiredPageToken"))
    {
        return GraphError::DeltaTokenExpired {
            reason: format!("{} {}: {}", status.as_u16(), body.code, body.message),
        };
    }
    if status == StatusCode::FORBIDDEN && (code_is("Authorization_RequestDenied") || body.code.is_empty()) {
        return GraphError::ConsentMissing {
            client_id: tenant.credentials.client_id.clone(),
            tenant_id: tenant.tenant_id.clone(),
            class,
            permissions: read_permissions(class),
        };
    }
    GraphError::UnexpectedStatus { status: status.as_u16(), code: body.code, message: body.message }
}

/// reqwest hides the cause (reset, refused, timeout) in its source chain.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn tenant() -> GraphTenant {
        GraphTenant {
            cloud: Cloud::Global,
            tenant_id: "t".to_owned(),
            credentials: Arc::new(AppCredentials::with_secret("app", SecretString::from("s".to_owned()))),
            size: TenantSize::Small,
        }
    }

    fn map(status: u16, body: &str, class: ObjectClass) -> GraphError {
        let status = StatusCode::from_u16(status).expect("status");
        graph_error(&tenant(), class, status, GraphErrorBody::parse(body.as_bytes()))
    }

    #[test]
    fn expired_delta_tokens_in_any_spelling_mean_full_resync() {
        let expired = r#"{"error":{"code":"syncStateNotFound","message":"The sync state generation is not found."}}"#;
        assert!(map(400, expired, ObjectClass::User).requires_full_resync());
        assert!(map(410, r#"{"error":{"code":"SyncStateNotFound"}}"#, ObjectClass::User).requires_full_resync());
        assert!(map(400, r#"{"error":{"code":"RESYNCREQUIRED"}}"#, ObjectClass::Group).requires_full_resync());
        assert!(map(410, "", ObjectClass::Device).requires_full_resync());
        assert!(!map(400, r#"{"error":{"code":"Request_UnsupportedQuery"}}"#, ObjectClass::User).requires_full_resync());
    }

    #[test]
    fn forbidden_names_the_missing_permission() {
        let e3 = r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"request-id":"<guid>","date":"<date>"}}}"#;
        let users = map(403, e3, ObjectClass::User);
        assert!(matches!(users, GraphError::ConsentMissing { .. }));
        assert!(users.to_string().contains("User.Read.All"), "{users}");
        assert!(map(403, e3, ObjectClass::Device).to_string().contains("Device.Read.All"));
        assert!(map(403, e3, ObjectClass::Group).to_string().contains("GroupMember.Read.All"));
    }

    #[tokio::test]
    async fn background_requests_are_low_priority_and_retries_are_numbered() {
        let client = GraphClient::new(GraphClientOptions::default()).expect("client");
        let tenant = tenant();
        let token = AccessToken {
            secret: SecretString::from("token-value".to_owned()),
            expires_at: std::time::Instant::now(),
            lifetime: Duration::from_secs(3600),
            serial: 0,
        };
        let url = "https://graph.microsoft.com/v1.0/users/delta";
        let mut stats = RequestStats::default();
        let mut low = GraphAttempt {
            client: &client,
            tenant: &tenant,
            url,
            class: Some(ObjectClass::User),
            priority: RequestPriority::Low,
            token: &token,
            attempts: 0,
        };
        let first = low.request(&mut stats).await.expect("request").build().expect("build");
        assert_eq!(first.headers()["x-ms-throttle-priority"], "Low");
        assert_eq!(first.headers()["authorization"], "Bearer token-value");
        assert!(first.headers().contains_key("client-request-id"));
        assert!(!first.headers().contains_key("retry-attempt"));
        let second = low.request(&mut stats).await.expect("request").build().expect("build");
        assert_eq!(second.headers()["retry-attempt"], "1");
        assert_eq!(stats.requests, 2);

        let mut normal = GraphAttempt {
            client: &client,
            tenant: &tenant,
            url,
            class: Some(ObjectClass::User),
            priority: RequestPriority::Normal,
            token: &token,
            attempts: 0,
        };
        let request = normal.request(&mut stats).await.expect("request").build().expect("build");
        assert!(!request.headers().contains_key("x-ms-throttle-priority"));
    }

    #[test]
    fn tenant_size_follows_graph_thresholds() {
        assert_eq!(TenantSize::from_user_count(49), TenantSize::Small);
        assert_eq!(TenantSize::from_user_count(50), TenantSize::Medium);
        assert_eq!(TenantSize::from_user_count(500), TenantSize::Medium);
        assert_eq!(TenantSize::from_user_count(501), TenantSize::Large);
    }
}
