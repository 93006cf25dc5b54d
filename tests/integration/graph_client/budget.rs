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
    let coordinator = PostgresBudgetCoordinator::new(db.pool());

    // A full bucket grants at once: the first request leases a whole batch (20 of 40), so it never waited
    // (the budget waits only when a lease grants nothing); the second spends from that batch.
    other.acquire(&tenant).await.expect("budget");
    let left = coordinator.stored_tokens(&key).await.expect("read bucket");
    assert!(
        left.is_some_and(|tokens| (tokens - 20.0).abs() < 1e-9),
        "expected the first lease to take a batch of 20 from the full bucket of 40, leaving 20: {left:?}"
    );
    other.acquire(&tenant).await.expect("budget");
    let leased_by = Instant::now();

    // Graph says this (app, tenant) used 180 % of its limit: the bucket drops to 100 · (0.8 − 1.8),
    // bounded at minus one capacity: −40, a debt of one second of refill. The reporting instance lowers
    // the shared bucket when it next acquires, so after `reported`: nobody is granted a unit before the
    // debt is refilled, 41 units at 40 per second, 1.025 s later.
    let mut headers = HeaderMap::new();
    headers.insert("x-ms-throttle-limit-percentage", "1.8".parse().expect("header"));
    reporter.observe(&tenant, 200, None, &headers);
    let reported = Instant::now();
    let reporting = {
        let reporter = reporter.clone();
        let tenant = tenant.clone();
        tokio::spawn(async move { reporter.acquire(&tenant).await })
    };
    // Lowered: the stored level drops from 20 to −40 and, as every later grant takes whole units, stays
    // below one unit until the other instance leases again (a state that stays true, so no poll misses it).
    let lowered = crate::support::eventually(Duration::from_secs(30), || async {
        coordinator.stored_tokens(&key).await.expect("read bucket").is_some_and(|tokens| tokens < 1.0)
    })
    .await;
    assert!(lowered, "the report must lower the shared bucket");

    // The other instance's leased slice goes stale `lease_ttl` after its lease: that is a span of time
    // itself, so it is slept out (measured from after the lease, so never too short). Then the other
    // instance leases from the shared bucket and must wait out the debt, like the reporter.
    tokio::time::sleep_until((leased_by + limits.lease_ttl + Duration::from_millis(10)).into()).await;
    other.acquire(&tenant).await.expect("budget");
    let granted_after = reported.elapsed();
    let debt = Duration::from_millis(950); // 1.025 s less slack for the two clocks (database, process)
    assert!(
        granted_after >= debt,
        "the other instance did not slow down: granted {granted_after:?} after the report, expected ≥ {debt:?}"
    );
    let reporter_waited = reporting.await.expect("task").expect("budget");
    assert!(
        reporter_waited >= debt,
        "expected the reporting instance to wait out the debt it reported (≥ {debt:?}), waited {reporter_waited:?}"
    );
}

/// The emulator enforcing a quota of 20 units per 10 s for the (app, tenant): a round of 22 pages
/// without the budget is throttled; with a budget sized for that quota it never is.
#[tokio::test]
async fn the_budget_keeps_a_round_under_the_enforced_quota() {
    use entrasync::graph::{DeltaRequest, GraphClient, GraphClientOptions, GraphError, RetryPolicy};
    use entrasync::model::ObjectClass;
    use graph_sim::settings::SettingsPatch;
    use graph_sim::state::TenantSpec;
    use graph_sim::throttle::ResourceLimits;

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
    let elapsed = started.elapsed();
    assert!(pages.len() > 20, "the round must need more than one window's quota: {} pages", pages.len());
    assert_eq!(env.responses(429), 0, "expected the budget to keep the round under the quota: no 429");
    // Paced by the budget: a burst of 10, then one page per second. However slow the machine, the round
    // cannot be quicker than that; the time spent in requests only shortens the waits for budget.
    let paced = Duration::from_secs(pages.len() as u64 - 10 - 1);
    let budget_waited: Duration = pages.iter().map(|p| p.stats.budget_waited).sum();
    assert!(
        elapsed >= paced && budget_waited > Duration::ZERO,
        "expected the budget to pace {} pages over at least {paced:?}: took {elapsed:?}, waited {budget_waited:?}",
        pages.len()
    );
    assert!(elapsed < Duration::from_secs(30), "expected pacing near 1 page/s, not far slower: {elapsed:?}");
}

/// Counts leases per bucket, delegating to the Postgres coordinator.
struct CountingLeases {
    inner: PostgresBudgetCoordinator,
    leased: std::sync::Mutex<Vec<String>>,
}

impl entrasync::graph::BudgetCoordinator for CountingLeases {
    fn lease<'a>(
        &'a self,
        bucket: &'a entrasync::graph::BucketSpec,
        wanted: u32,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<entrasync::graph::Grant>> {
        self.leased.lock().expect("lock").push(bucket.key.clone());
        self.inner.lease(bucket, wanted)
    }

    fn lower_to<'a>(
        &'a self,
        bucket: &'a entrasync::graph::BucketSpec,
        tokens: f64,
    ) -> futures::future::BoxFuture<'a, anyhow::Result<()>> {
        self.inner.lower_to(bucket, tokens)
    }

    fn stored_in_postgres(&self) -> bool {
        self.inner.stored_in_postgres()
    }
}

/// A sync run takes its tenant's first lease in its start transaction (issue 16, target 5: one
/// transaction less per run); only the app's bucket is leased on its own, and the tenant's bucket row
/// is charged a whole lease batch.
#[tokio::test]
async fn a_run_takes_its_tenants_first_lease_in_its_start_transaction() {
    use entrasync::graph::{GraphClient, GraphClientOptions};
    use entrasync::model::ObjectClass;
    use entrasync::sync::{run_round, PassThrough, RoundDeps};

    use crate::sync_support::{spec, SyncWorld};

    let world = SyncWorld::start().await;
    let tenant = world.tenant(spec(61, 5, 0, 0), 100).await;
    let limits = BudgetLimits { lease_batch: 7, ..BudgetLimits::default() };
    let coordinator = Arc::new(CountingLeases {
        inner: PostgresBudgetCoordinator::new(world.pool.clone()),
        leased: Default::default(),
    });
    let budget = Arc::new(RateBudget::new(coordinator.clone(), limits.clone()));
    let graph = GraphClient::with_rate_budget(GraphClientOptions::default(), budget.clone()).expect("client");
    let deps = RoundDeps { pool: &world.pool, graph: &graph, policy: Arc::new(PassThrough), recorder: &world.recorder };

    let report = run_round(&deps, &world.request(&tenant, ObjectClass::User)).await.expect("round");
    assert_eq!(report.counts.total, 5, "{report:?}");

    let tenant_key = budget.tenant_bucket(&tenant.graph_tenant).key;
    let app_key = budget.app_bucket(&tenant.graph_tenant).key;
    let leased = coordinator.leased.lock().expect("lock").clone();
    assert!(!leased.contains(&tenant_key), "the tenant's bucket was leased on its own: {leased:?}");
    assert!(leased.contains(&app_key), "the app's bucket is still leased through the coordinator: {leased:?}");
    let capacity = budget.tenant_bucket(&tenant.graph_tenant).capacity;
    let left = coordinator.inner.stored_tokens(&tenant_key).await.expect("read bucket").expect("bucket row");
    assert!(
        left <= capacity - f64::from(limits.lease_batch) + 1.0,
        "the start transaction charged the tenant's bucket a batch of {}: {left} of {capacity} left",
        limits.lease_batch
    );
}
