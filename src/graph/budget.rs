//! A rate budget that keeps entrasync under Graph's published identity limits (resource units per
//! application across tenants, and per application + tenant by tenant size) before Graph has to
//! answer 429.
//!
//! Each limit is a token bucket shared by all workers of all instances through a
//! [`BudgetCoordinator`] (Postgres in production: `store::rate_budget`). Instances lease units in
//! batches and spend them locally, so the coordinator is consulted once per `lease_batch` requests.
//! When Graph reports `x-ms-throttle-limit-percentage` above our target, the shared bucket is
//! lowered to what Graph says is left, which slows every instance down at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use reqwest::header::HeaderMap;

use super::client::{GraphTenant, TenantSize};
use super::error::GraphError;
use crate::metrics::GraphMetrics;

/// Graph's published limits and how much of them entrasync may use.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetLimits {
    /// Resource units per application across all tenants, per `app_window`.
    pub app_units: f64,
    pub app_window: Duration,
    /// Resource units per (application, tenant) per `tenant_window`, by tenant size.
    pub tenant_units_small: f64,
    pub tenant_units_medium: f64,
    pub tenant_units_large: f64,
    pub tenant_window: Duration,
    /// Fraction of each limit entrasync may use in any one window (Graph throttles below the limit
    /// under load).
    pub target_fraction: f64,
    /// Share of that target available as a burst; the rest arrives as steady refill. Burst plus one
    /// window of refill equals the target, so even a fixed-window limiter never sees more.
    pub burst_share: f64,
    /// Units leased from the coordinator at a time.
    pub lease_batch: u32,
    /// Leased units unspent after this long are dropped, so a lowered shared bucket (or another
    /// instance's need) takes effect everywhere within this time.
    pub lease_ttl: Duration,
    /// Units one delta page costs before Graph tells us (`x-ms-resource-unit`); delta with `$select` is 1.
    pub request_cost: f64,
    /// Give up on one request after waiting this long for budget.
    pub max_wait: Duration,
}

impl Default for BudgetLimits {
    fn default() -> Self {
        Self {
            app_units: 150_000.0,
            app_window: Duration::from_secs(20),
            tenant_units_small: 3_500.0,
            tenant_units_medium: 5_000.0,
            tenant_units_large: 8_000.0,
            tenant_window: Duration::from_secs(10),
            target_fraction: 0.8,
            burst_share: 0.25,
            lease_batch: 20,
            lease_ttl: Duration::from_secs(1),
            request_cost: 1.0,
            max_wait: Duration::from_secs(120),
        }
    }
}

/// One shared token bucket: its key and shape. Capacity and refill come from the limits, so every
/// instance describes the same bucket the same way.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketSpec {
    pub key: String,
    /// Graph's full limit for this bucket, in units per window (before `target_fraction`).
    pub limit: f64,
    /// Most units the bucket holds (the burst entrasync allows itself).
    pub capacity: f64,
    pub refill_per_second: f64,
}

/// The coordinator's answer to a lease.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grant {
    /// Units handed out (0..=wanted).
    pub granted: u32,
    /// When nothing was granted: how long until one unit is back.
    pub retry_after: Duration,
}

/// Shares buckets between workers and instances. Implemented in-process ([`InProcessCoordinator`])
/// and in Postgres (`store::rate_budget::PostgresBudgetCoordinator`).
pub trait BudgetCoordinator: Send + Sync + 'static {
    /// Takes up to `wanted` whole units from the bucket (creating it full if unknown).
    fn lease<'a>(&'a self, bucket: &'a BucketSpec, wanted: u32) -> BoxFuture<'a, anyhow::Result<Grant>>;

    /// Lowers the bucket to at most `tokens` (may be negative: a debt every instance waits out).
    fn lower_to<'a>(&'a self, bucket: &'a BucketSpec, tokens: f64) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Whether the buckets are rows of `graph_rate_budget`, so a lease can also be taken inside another
    /// transaction (`store::rate_budget::lease_in`): a sync run takes its tenant's first lease in its start
    /// transaction instead of a transaction of its own.
    fn stored_in_postgres(&self) -> bool {
        false
    }
}

/// Token-bucket arithmetic shared by every coordinator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    pub tokens: f64,
}

impl TokenBucket {
    /// Tokens after `elapsed` of refill, capped at capacity.
    pub fn refilled(self, bucket: &BucketSpec, elapsed: Duration) -> Self {
        let tokens = (self.tokens + elapsed.as_secs_f64() * bucket.refill_per_second).min(bucket.capacity);
        Self { tokens }
    }

    /// Takes up to `wanted` whole units; returns the grant and the bucket afterwards.
    pub fn take(self, bucket: &BucketSpec, wanted: u32) -> (Grant, Self) {
        if self.tokens >= 1.0 {
            let granted = (self.tokens.floor() as u32).min(wanted);
            let grant = Grant { granted, retry_after: Duration::ZERO };
            (grant, Self { tokens: self.tokens - f64::from(granted) })
        } else {
            let missing = 1.0 - self.tokens;
            let seconds = if bucket.refill_per_second > 0.0 { missing / bucket.refill_per_second } else { 1.0 };
            let grant = Grant { granted: 0, retry_after: Duration::from_secs_f64(seconds.clamp(0.001, 60.0)) };
            (grant, self)
        }
    }
}

/// Buckets in this process only: for a single instance, tests and tools.
#[derive(Default)]
pub struct InProcessCoordinator {
    buckets: Mutex<HashMap<String, (TokenBucket, Instant)>>,
}

impl InProcessCoordinator {
    fn with_bucket<T>(&self, bucket: &BucketSpec, change: impl FnOnce(TokenBucket) -> (T, TokenBucket)) -> T {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (state, at) = buckets.entry(bucket.key.clone()).or_insert((TokenBucket { tokens: bucket.capacity }, now));
        let (result, next) = change(state.refilled(bucket, now.saturating_duration_since(*at)));
        *state = next;
        *at = now;
        result
    }
}

impl BudgetCoordinator for InProcessCoordinator {
    fn lease<'a>(&'a self, bucket: &'a BucketSpec, wanted: u32) -> BoxFuture<'a, anyhow::Result<Grant>> {
        Box::pin(async move { Ok(self.with_bucket(bucket, |state| state.take(bucket, wanted))) })
    }

    fn lower_to<'a>(&'a self, bucket: &'a BucketSpec, tokens: f64) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.with_bucket(bucket, |state| ((), TokenBucket { tokens: state.tokens.min(tokens) }));
            Ok(())
        })
    }
}

/// The budget a [`super::GraphClient`] draws from before every Graph request.
pub struct RateBudget {
    limits: BudgetLimits,
    coordinator: Arc<dyn BudgetCoordinator>,
    local: Mutex<LocalState>,
    /// Units spent, time waited and the planned rate, per tenant (see [`RateBudget::with_metrics`]).
    metrics: Option<GraphMetrics>,
}

#[derive(Debug, Clone, Copy)]
struct LocalUnits {
    units: f64,
    leased_at: Instant,
}

impl LocalUnits {
    fn empty() -> Self {
        Self { units: 0.0, leased_at: Instant::now() }
    }
}

#[derive(Default)]
struct LocalState {
    /// Units leased but not yet spent, per bucket key (negative: spent more than leased).
    units: HashMap<String, LocalUnits>,
    /// Bucket levels Graph told us to lower to, applied by the next acquire.
    pending_lowering: HashMap<String, (BucketSpec, f64)>,
}

impl RateBudget {
    pub fn new(coordinator: Arc<dyn BudgetCoordinator>, limits: BudgetLimits) -> Self {
        Self { limits, coordinator, local: Mutex::new(LocalState::default()), metrics: None }
    }

    /// Records the budget's use on `metrics`: units spent, time waited, and each tenant's planned rate.
    /// Only tenants addressed by their GUID are counted (the `tenant` label is the directory id).
    pub fn with_metrics(mut self, metrics: GraphMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The metrics and the tenant's label value, when both exist.
    fn meter(&self, tenant: &GraphTenant) -> Option<(&GraphMetrics, uuid::Uuid)> {
        let metrics = self.metrics.as_ref()?;
        Some((metrics, super::client::tenant_label(tenant)?))
    }

    /// A budget coordinated in this process only.
    pub fn in_process(limits: BudgetLimits) -> Self {
        Self::new(Arc::new(InProcessCoordinator::default()), limits)
    }

    pub fn limits(&self) -> &BudgetLimits {
        &self.limits
    }

    /// The application-wide bucket (all tenants) of the tenant's app registration.
    pub fn app_bucket(&self, tenant: &GraphTenant) -> BucketSpec {
        let limit = self.limits.app_units;
        self.spec(
            format!("app:{}:{}", tenant.cloud.name(), tenant.credentials.client_id),
            limit,
            self.limits.app_window,
        )
    }

    /// The (application, tenant) bucket, sized by the tenant's size.
    pub fn tenant_bucket(&self, tenant: &GraphTenant) -> BucketSpec {
        let limit = match tenant.size {
            TenantSize::Small => self.limits.tenant_units_small,
            TenantSize::Medium => self.limits.tenant_units_medium,
            TenantSize::Large => self.limits.tenant_units_large,
        };
        let key = format!("tenant:{}:{}:{}", tenant.cloud.name(), tenant.credentials.client_id, tenant.tenant_id);
        self.spec(key, limit, self.limits.tenant_window)
    }

    fn spec(&self, key: String, limit: f64, window: Duration) -> BucketSpec {
        let target = limit * self.limits.target_fraction;
        let burst_share = self.limits.burst_share.clamp(0.01, 0.99);
        let refill_per_second = target * (1.0 - burst_share) / window.as_secs_f64().max(0.001);
        BucketSpec { key, limit, capacity: target * burst_share, refill_per_second }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalState> {
        self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until one request's cost is available in both buckets and spends it. Returns the time waited.
    pub async fn acquire(&self, tenant: &GraphTenant) -> Result<Duration, GraphError> {
        let started = Instant::now();
        let pending: Vec<(BucketSpec, f64)> = self.lock().pending_lowering.drain().map(|(_, v)| v).collect();
        for (bucket, tokens) in pending {
            self.coordinator.lower_to(&bucket, tokens).await.map_err(GraphError::Budget)?;
        }
        let cost = self.limits.request_cost;
        let tenant_bucket = self.tenant_bucket(tenant);
        let meter = self.meter(tenant);
        if let Some((metrics, id)) = meter {
            metrics.set_budget_rate(id, tenant_bucket.refill_per_second);
        }
        for bucket in [tenant_bucket, self.app_bucket(tenant)] {
            loop {
                if self.spend_local(&bucket.key, cost) {
                    break;
                }
                let grant =
                    self.coordinator.lease(&bucket, self.limits.lease_batch).await.map_err(GraphError::Budget)?;
                if grant.granted > 0 {
                    self.credit(&bucket.key, grant);
                    continue;
                }
                let waited = started.elapsed();
                if waited + grant.retry_after > self.limits.max_wait {
                    if let Some((metrics, id)) = meter {
                        metrics.budget_waited(id, waited);
                    }
                    return Err(GraphError::RateBudgetExhausted { waited });
                }
                tracing::debug!(bucket = %bucket.key, wait_ms = grant.retry_after.as_millis() as u64, "waiting for graph rate budget");
                tokio::time::sleep(grant.retry_after).await;
            }
        }
        let waited = started.elapsed();
        if let Some((metrics, id)) = meter {
            metrics.budget_spent(id, cost);
            metrics.budget_waited(id, waited);
        }
        Ok(waited)
    }

    /// The tenant's bucket and the units to lease for it, when a run about to start may take that lease in
    /// its own start transaction: the buckets live in Postgres, this instance holds no fresh units of the
    /// tenant's bucket, and Graph asked for no lowering of it (those go through [`RateBudget::acquire`]).
    pub fn run_start_lease(&self, tenant: &GraphTenant) -> Option<(BucketSpec, u32)> {
        if !self.coordinator.stored_in_postgres() {
            return None;
        }
        let bucket = self.tenant_bucket(tenant);
        let local = self.lock();
        let fresh = local
            .units
            .get(&bucket.key)
            .is_some_and(|slice| slice.units > 0.0 && slice.leased_at.elapsed() <= self.limits.lease_ttl);
        if fresh || local.pending_lowering.contains_key(&bucket.key) {
            return None;
        }
        drop(local);
        Some((bucket, self.limits.lease_batch))
    }

    /// Adds leased units to this instance's slice of the bucket: a debt (negative units) is paid from
    /// them, stale units are not counted again.
    pub fn credit(&self, bucket_key: &str, grant: Grant) {
        if grant.granted == 0 {
            return;
        }
        let mut local = self.lock();
        let slice = local.units.entry(bucket_key.to_owned()).or_insert_with(LocalUnits::empty);
        if slice.units > 0.0 && slice.leased_at.elapsed() > self.limits.lease_ttl {
            slice.units = 0.0;
        }
        slice.units += f64::from(grant.granted);
        slice.leased_at = Instant::now();
    }

    /// Spends `cost` from this instance's leased slice of `key`, if it holds enough fresh units.
    fn spend_local(&self, key: &str, cost: f64) -> bool {
        let mut local = self.lock();
        let Some(slice) = local.units.get_mut(key) else { return false };
        if slice.units > 0.0 && slice.leased_at.elapsed() > self.limits.lease_ttl {
            slice.units = 0.0; // stale: the shared picture may have changed since the lease
        }
        if slice.units >= cost {
            slice.units -= cost;
            return true;
        }
        false
    }

    /// Reads Graph's feedback on a response: the real cost (`x-ms-resource-unit`), how close the
    /// (app, tenant) is to its limit (`x-ms-throttle-limit-percentage`, sent only above 0.8), and a
    /// 429 despite the budget, which empties the throttled scope's bucket for the told wait so every
    /// worker and instance pauses, not just the one that was told.
    pub fn observe(&self, tenant: &GraphTenant, status: u16, retry_after: Option<Duration>, headers: &HeaderMap) {
        let number =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok());
        let tenant_bucket = self.tenant_bucket(tenant);
        let app_bucket = self.app_bucket(tenant);
        let mut local = self.lock();
        if let Some(units) = number("x-ms-resource-unit").filter(|u| u.is_finite() && *u > self.limits.request_cost) {
            // We charged `request_cost`; the rest becomes a local debt paid from the next lease.
            let extra = units - self.limits.request_cost;
            if let Some((metrics, id)) = self.meter(tenant) {
                metrics.budget_spent(id, extra);
            }
            for bucket in [&tenant_bucket, &app_bucket] {
                local.units.entry(bucket.key.clone()).or_insert_with(LocalUnits::empty).units -= extra;
            }
        }
        if let Some(used) = number("x-ms-throttle-limit-percentage").filter(|p| p.is_finite()) {
            if let Some(level) = lowered_level(&tenant_bucket, self.limits.target_fraction, used) {
                tracing::info!(bucket = %tenant_bucket.key, used, level, "graph reports the tenant near its limit, slowing down");
                // Leased units were granted under a rosier picture: give them up.
                local.units.insert(tenant_bucket.key.clone(), LocalUnits::empty());
                local.pending_lowering.insert(tenant_bucket.key.clone(), (tenant_bucket.clone(), level));
            }
        }
        if status == 429 {
            // `x-ms-throttle-scope`: `Application/...` for the app-wide limit, else the (app, tenant) one.
            let scope = headers.get("x-ms-throttle-scope").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let bucket = if scope.starts_with("Application/") { app_bucket } else { tenant_bucket };
            let wait = retry_after.unwrap_or(Duration::from_secs(1));
            let level = throttled_level(&bucket, wait);
            tracing::info!(bucket = %bucket.key, level, "graph throttled despite the budget, pausing the bucket");
            local.units.insert(bucket.key.clone(), LocalUnits::empty());
            local.pending_lowering.insert(bucket.key.clone(), (bucket, level));
        }
    }
}

/// After a 429 telling us to wait `wait`: a debt that takes about that long to refill (at most one capacity).
pub fn throttled_level(bucket: &BucketSpec, wait: Duration) -> f64 {
    (-(wait.as_secs_f64() * bucket.refill_per_second)).max(-bucket.capacity)
}

/// When Graph says `used` (fraction of the full limit) exceeds our target, the bucket may hold only
/// what is left below the target: `limit · (target − used)`, a debt when negative (bounded by one
/// capacity so a wild value cannot stall a tenant for long).
pub fn lowered_level(bucket: &BucketSpec, target_fraction: f64, used: f64) -> Option<f64> {
    (used > target_fraction).then(|| (bucket.limit * (target_fraction - used)).max(-bucket.capacity))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use secrecy::SecretString;

    use super::*;
    use crate::graph::credentials::AppCredentials;
    use crate::model::Cloud;

    fn tenant(id: &str, size: TenantSize) -> GraphTenant {
        GraphTenant {
            cloud: Cloud::Global,
            tenant_id: id.to_owned(),
            credentials: Arc::new(AppCredentials::with_secret("app", SecretString::from("s".to_owned()))),
            size,
        }
    }

    fn bucket(capacity: f64, refill: f64) -> BucketSpec {
        BucketSpec { key: "k".to_owned(), limit: capacity, capacity, refill_per_second: refill }
    }

    #[test]
    fn bucket_grants_whole_units_and_says_when_more_come() {
        let spec = bucket(10.0, 2.0);
        let (grant, after) = TokenBucket { tokens: 3.5 }.take(&spec, 20);
        assert_eq!(grant.granted, 3);
        assert!((after.tokens - 0.5).abs() < 1e-9);
        let (grant, _) = after.take(&spec, 20);
        assert_eq!(grant.granted, 0);
        assert_eq!(grant.retry_after, Duration::from_millis(250));
        let refilled = after.refilled(&spec, Duration::from_secs(100));
        assert_eq!(refilled.tokens, 10.0, "refill stops at capacity");
        let (debt, _) = TokenBucket { tokens: -3.0 }.take(&spec, 1);
        assert_eq!(debt.retry_after, Duration::from_secs(2), "a debt is waited out");
    }

    #[test]
    fn buckets_follow_graph_limits_and_tenant_size() {
        let budget = RateBudget::in_process(BudgetLimits::default());
        let small = budget.tenant_bucket(&tenant("a", TenantSize::Small));
        // Target 2,800 per 10 s: 700 as burst, 2,100 refilled over the window.
        assert!((small.capacity - 700.0).abs() < 1e-9);
        assert!((small.refill_per_second - 210.0).abs() < 1e-9);
        assert_eq!(budget.tenant_bucket(&tenant("a", TenantSize::Large)).limit, 8_000.0);
        let app = budget.app_bucket(&tenant("a", TenantSize::Small));
        assert_eq!(app, budget.app_bucket(&tenant("b", TenantSize::Large)), "one app bucket across tenants");
        assert!((app.refill_per_second - 4_500.0).abs() < 1e-9);
        assert_ne!(small.key, budget.tenant_bucket(&tenant("b", TenantSize::Small)).key);
    }

    #[test]
    fn throttle_percentage_lowers_the_bucket_only_above_target() {
        let spec = bucket(4_000.0, 400.0);
        let spec = BucketSpec { limit: 5_000.0, ..spec };
        assert_eq!(lowered_level(&spec, 0.8, 0.8), None);
        assert!((lowered_level(&spec, 0.8, 0.9).unwrap_or_default() - -500.0).abs() < 1e-6);
        assert_eq!(lowered_level(&spec, 0.8, 9.0), Some(-4_000.0));
    }

    #[tokio::test]
    async fn a_429_pauses_the_throttled_scope_for_the_told_wait() {
        let coordinator = Arc::new(CountingCoordinator::default());
        let budget = RateBudget::new(coordinator.clone(), BudgetLimits::default());
        let t = tenant("a", TenantSize::Small);
        budget.acquire(&t).await.expect("budget");
        let mut headers = HeaderMap::new();
        headers.insert("x-ms-throttle-scope", "Application/ReadWrite/app/a".parse().expect("header"));
        budget.observe(&t, 429, Some(Duration::from_millis(200)), &headers);
        let waited = budget.acquire(&t).await.expect("budget");
        // The app bucket refills at 4,500/s: a 0.2 s debt is 900 units.
        let lowered = coordinator.lowered.lock().expect("lock").clone();
        assert!(lowered.len() == 1 && (lowered[0] + 900.0).abs() < 1e-6, "{lowered:?}");
        assert!(waited >= Duration::from_millis(190), "{waited:?}");
    }

    #[tokio::test]
    async fn metrics_count_the_real_cost_and_the_planned_rate_of_guid_tenants_only() {
        let metrics = crate::metrics::Metrics::new();
        let budget = RateBudget::in_process(BudgetLimits::default()).with_metrics(metrics.graph.clone());
        let guid = "6f1c2a4e-0000-4000-8000-00000000abcd";
        let t = tenant(guid, TenantSize::Small);
        budget.acquire(&t).await.expect("budget");
        let mut headers = HeaderMap::new();
        headers.insert("x-ms-resource-unit", "3".parse().expect("header"));
        budget.observe(&t, 200, None, &headers);
        budget.acquire(&tenant("contoso.onmicrosoft.com", TenantSize::Small)).await.expect("budget");
        let text = metrics.render();
        let spent = format!("entrasync_graph_rate_budget_spent_units_total{{tenant=\"{guid}\"}} 3\n");
        assert!(text.contains(&spent), "one unit charged, two more reported by Graph:\n{text}");
        let rate = format!("entrasync_graph_rate_budget_units_per_second{{tenant=\"{guid}\"}} 210\n");
        assert!(text.contains(&rate), "the small tenant's refill rate:\n{text}");
        assert!(!text.contains("contoso"), "a domain never becomes a label:\n{text}");
    }

    /// Counts leases, to show the local fast path.
    #[derive(Default)]
    struct CountingCoordinator {
        inner: InProcessCoordinator,
        leases: std::sync::atomic::AtomicU32,
        lowered: Mutex<Vec<f64>>,
    }

    impl BudgetCoordinator for CountingCoordinator {
        fn lease<'a>(&'a self, bucket: &'a BucketSpec, wanted: u32) -> BoxFuture<'a, anyhow::Result<Grant>> {
            self.leases.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.lease(bucket, wanted)
        }
        fn lower_to<'a>(&'a self, bucket: &'a BucketSpec, tokens: f64) -> BoxFuture<'a, anyhow::Result<()>> {
            self.lowered.lock().expect("lock").push(tokens);
            self.inner.lower_to(bucket, tokens)
        }
    }

    #[tokio::test]
    async fn local_fast_path_leases_once_per_batch() {
        let coordinator = Arc::new(CountingCoordinator::default());
        let limits = BudgetLimits { lease_batch: 10, ..BudgetLimits::default() };
        let budget = RateBudget::new(coordinator.clone(), limits);
        let t = tenant("a", TenantSize::Small);
        for _ in 0..100 {
            budget.acquire(&t).await.expect("budget");
        }
        // Two buckets, 100 units each, 10 per lease.
        assert_eq!(coordinator.leases.load(std::sync::atomic::Ordering::Relaxed), 20);
    }

    #[tokio::test]
    async fn an_empty_bucket_paces_requests_to_its_refill_rate() {
        // Burst 2.5 units, refilled at 25/s: 30 requests need ≥ (30 − 2.5)/25 = 1.1 s.
        let limits = BudgetLimits {
            tenant_units_small: 5.0,
            tenant_window: Duration::from_millis(100),
            target_fraction: 1.0,
            burst_share: 0.5,
            lease_batch: 1,
            ..BudgetLimits::default()
        };
        let budget = RateBudget::in_process(limits);
        let t = tenant("a", TenantSize::Small);
        let started = Instant::now();
        for _ in 0..30 {
            budget.acquire(&t).await.expect("budget");
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(1050), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    }

    #[tokio::test]
    async fn graph_feedback_charges_real_cost_and_lowers_the_shared_bucket() {
        let coordinator = Arc::new(CountingCoordinator::default());
        let limits = BudgetLimits { lease_batch: 5, ..BudgetLimits::default() };
        let budget = RateBudget::new(coordinator.clone(), limits);
        let t = tenant("a", TenantSize::Medium);
        budget.acquire(&t).await.expect("budget");
        let mut headers = HeaderMap::new();
        headers.insert("x-ms-resource-unit", "3".parse().expect("header"));
        budget.observe(&t, 200, None, &headers);
        // 5 leased − 1 spent − 2 extra = 2 left: two more requests fit, the third leases again.
        let leases_before = coordinator.leases.load(std::sync::atomic::Ordering::Relaxed);
        budget.acquire(&t).await.expect("budget");
        budget.acquire(&t).await.expect("budget");
        assert_eq!(coordinator.leases.load(std::sync::atomic::Ordering::Relaxed), leases_before);
        budget.acquire(&t).await.expect("budget");
        assert!(coordinator.leases.load(std::sync::atomic::Ordering::Relaxed) > leases_before);

        headers.clear();
        headers.insert("x-ms-throttle-limit-percentage", "0.9".parse().expect("header"));
        budget.observe(&t, 200, None, &headers);
        // Lowered to 5,000 · (0.8 − 0.9) = −500 units, refilled at 300/s: about 1.7 s of waiting.
        let waited = budget.acquire(&t).await.expect("budget");
        let lowered = coordinator.lowered.lock().expect("lock").clone();
        assert!(lowered.len() == 1 && (lowered[0] + 500.0).abs() < 1e-6, "{lowered:?}");
        assert!(waited >= Duration::from_millis(1600), "{waited:?}");
    }
}
