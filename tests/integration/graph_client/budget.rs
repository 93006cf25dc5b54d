//! The shared rate budget coordinated through Postgres: several "instances" (each its own pool and
//! `RateBudget`) draw from one bucket, so together they never exceed it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use entrasync::graph::{AppCredentials, BudgetLimits, GraphTenant, RateBudget, TenantSize};
use entrasync::model::Cloud;
use entrasync::store::rate_budget::PostgresBudgetCoordinator;
use reqwest::header::HeaderMap;

use crate::support::{secret, TestDb};

fn tenant() -> GraphTenant {
    GraphTenant {
        cloud: Cloud::Global,
        tenant_id: "2f0c2a3e-0000-4000-8000-000000000001".to_owned(),
        credentials: Arc::new(AppCredentials::with_secret("budget-app", secret("s"))),
        size: TenantSize::Small,
    }
}

fn instance(db: &TestDb, limits: &BudgetLimits) -> Arc<RateBudget> {
    Arc::new(RateBudget::new(Arc::new(PostgresBudgetCoordinator::new(db.pool())), limits.clone()))
}

#[tokio::test]
async fn instances_sharing_postgres_stay_within_one_bucket() {
    let db = TestDb::migrated().await;
    // 20 units of burst, refilled at 20 per second, for the (app, tenant) of a small tenant.
    let limits = BudgetLimits {
        tenant_units_small: 40.0,
        tenant_window: Duration::from_secs(1),
        target_fraction: 1.0,
        burst_share: 0.5,
        lease_batch: 5,
        ..BudgetLimits::default()
    };
    let instances: Vec<_> = (0..3).map(|_| instance(&db, &limits)).collect();
    let started = Instant::now();
    let mut workers = Vec::new();
    for budget in &instances {
        for _ in 0..2 {
            let budget = budget.clone();
            workers.push(tokio::spawn(async move {
                for _ in 0..15 {
                    budget.acquire(&tenant()).await.expect("budget");
                }
            }));
        }
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    let elapsed = started.elapsed();
    // 90 requests from one bucket of 20 + 20/s need at least 3.5 s; three private buckets would
    // have needed 0.5 s.
    assert!(elapsed >= Duration::from_millis(3400), "the instances overspent the shared bucket: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(15), "pacing far slower than the refill rate: {elapsed:?}");
}

#[tokio::test]
async fn graph_near_its_limit_slows_every_instance() {
    let db = TestDb::migrated().await;
    // Limit 100 per second, target 80 %, half of it as burst: capacity 40, refill 40/s.
    let limits = BudgetLimits {
        tenant_units_small: 100.0,
        tenant_window: Duration::from_secs(1),
        burst_share: 0.5,
        lease_ttl: Duration::from_millis(100),
        ..BudgetLimits::default()
    };
    let reporter = instance(&db, &limits);
    let other = instance(&db, &limits);
    let tenant = tenant();
    let key = reporter.tenant_bucket(&tenant).key;

    other.acquire(&tenant).await.expect("budget");
    let quick = Instant::now();
    other.acquire(&tenant).await.expect("budget");
    assert!(quick.elapsed() < Duration::from_millis(300), "a full bucket must not wait");

    // Graph says this (app, tenant) used 180 % of its limit: the bucket drops to 100 · (0.8 − 1.8),
    // bounded at minus one capacity: −40, a debt of one second of refill.
    let mut headers = HeaderMap::new();
    headers.insert("x-ms-throttle-limit-percentage", "1.8".parse().expect("header"));
    reporter.observe(&tenant, 200, None, &headers);
    let reporting = {
        let reporter = reporter.clone();
        let tenant = tenant.clone();
        tokio::spawn(async move { reporter.acquire(&tenant).await })
    };
    let coordinator = PostgresBudgetCoordinator::new(db.pool());
    let lowered = crate::support::eventually(Duration::from_secs(5), || async {
        coordinator.stored_tokens(&key).await.expect("read bucket").is_some_and(|tokens| tokens < -30.0)
    })
    .await;
    assert!(lowered, "the report must lower the shared bucket");

    // Once its leased slice goes stale, the other instance waits out what is left of the debt
    // (about 0.7 s after the polling and the 150 ms below).
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    other.acquire(&tenant).await.expect("budget");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400), "the other instance did not slow down: {waited:?}");
    assert!(reporting.await.expect("task").expect("budget") >= Duration::from_millis(400));
}

/// The emulator enforcing a quota of 20 units per 10 s for the (app, tenant): a round of 22 pages
/// without the budget is throttled; with a budget sized for that quota it never is.
#[tokio::test]
async fn the_budget_keeps_a_round_under_the_enforced_quota() {
    use entrasync::graph::{DeltaRequest, GraphClient, GraphClientOptions, GraphError, RetryPolicy};
    use graph_sim::settings::SettingsPatch;
    use graph_sim::state::TenantSpec;
    use graph_sim::throttle::ResourceLimits;
    use entrasync::model::ObjectClass;

    use super::sim::{round, start};

    let env = start(22, 0, 0, &["User.Read.All"]);
    let state = env.sim.state();
    state.set_resource_limits(true, ResourceLimits { app_tenant_per_10s: Some(20), app_per_20s: None });
    let one_per_page = SettingsPatch { page_size: Some(1), ..SettingsPatch::default() };
    state.update_settings(&env.tenant_id, &one_per_page).expect("settings");
    let no_retries = GraphClientOptions {
        retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() },
        ..GraphClientOptions::default()
    };

    // Control: a second tenant with the same quota, read without a budget, hits it.
    let other = state.create_tenant(TenantSpec { users: 22, seed: Some(8), ..TenantSpec::default() }).expect("tenant");
    state.identity.grant_consent(&other.tenant_id, &env.app_id, &["User.Read.All".to_owned()]).expect("consent");
    state.update_settings(&other.tenant_id, &one_per_page).expect("settings");
    let unbudgeted = GraphClient::new(no_retries.clone()).expect("client");
    let control = GraphTenant { tenant_id: other.tenant_id.clone(), ..env.secret_tenant() };
    let err = round(&unbudgeted, control, DeltaRequest::full(ObjectClass::User)).await.expect_err("throttled");
    assert!(matches!(err, GraphError::RetriesExhausted { .. }), "{err:?}");

    // Budget: the whole quota per window (burst 10, then 1 per second), and no retries to hide a 429.
    let limits = BudgetLimits {
        tenant_units_small: 20.0,
        tenant_window: Duration::from_secs(10),
        target_fraction: 1.0,
        burst_share: 0.5,
        lease_batch: 2,
        ..BudgetLimits::default()
    };
    let budget = Arc::new(RateBudget::in_process(limits));
    let budgeted = GraphClient::with_rate_budget(no_retries, budget).expect("client");
    let started = Instant::now();
    let pages =
        round(&budgeted, env.secret_tenant(), DeltaRequest::full(ObjectClass::User)).await.expect("paced round");
    assert!(pages.len() > 20, "the round must need more than one window's quota: {} pages", pages.len());
    assert_eq!(env.responses(429), 0);
    let budget_waited: Duration = pages.iter().map(|p| p.stats.budget_waited).sum();
    assert!(budget_waited >= Duration::from_secs(8), "{budget_waited:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
}
