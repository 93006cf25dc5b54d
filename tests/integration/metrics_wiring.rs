//! Production code paths move their series (issue 6): the Graph client counts every answer and transport
//! failure, its retry waits and its rate budget; a job run by a sync worker counts the delivery, the run
//! and the Graph requests of its round. The emulator's own counters are the truth the counts are held to.

use std::sync::Arc;
use std::time::Duration;

use entrasync::graph::{BudgetLimits, DeltaRequest, GraphClient, GraphClientOptions, RateBudget, RetryPolicy};
use entrasync::metrics::Metrics;
use entrasync::model::{Cloud, ObjectClass, SyncMode, Trigger};
use entrasync::queue::SyncJob;
use graph_sim::faults::{FaultKind, FaultRule, FaultTrigger, RetryAfter};

use crate::graph_client::sim;
use crate::observability::sample;
use crate::service_support::{start_observed_service, stored_runs, World};
use crate::support::app::free_port;
use crate::support::eventually;

/// The sum of every sample of `name` carrying all `label="value"` pairs given (0 when there is none).
fn total(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// Retries quick enough for a test, long enough to honour a told wait.
fn quick_retries(max_attempts: u32) -> GraphClientOptions {
    GraphClientOptions {
        retry: RetryPolicy {
            max_attempts,
            max_total_wait: Duration::from_secs(30),
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(200),
        },
        ..GraphClientOptions::default()
    }
}

#[tokio::test]
async fn graph_client_counts_token_and_delta_requests_throttled_waits_and_budget() {
    let env = sim::start(25, 0, 0, &["User.Read.All"]);
    let tenant = env.secret_tenant();
    let t = env.tenant_id.as_str();
    let metrics = Metrics::new();
    let budget = Arc::new(RateBudget::in_process(BudgetLimits::default()).with_metrics(metrics.graph.clone()));
    let planned_rate = budget.tenant_bucket(&tenant).refill_per_second;
    let client =
        GraphClient::with_rate_budget(quick_retries(6), budget).expect("client").with_metrics(metrics.graph.clone());
    // The first delta request is throttled once, with a wait of 0.3 s.
    env.fault(FaultKind::Throttle { retry_after: RetryAfter::Fraction(0.3) }, "users/delta", 1);

    let pages = sim::round(&client, tenant, DeltaRequest::full(ObjectClass::User)).await.expect("round completes");
    let text = metrics.render();
    let requests = "entrasync_graph_requests_total";
    let user = [("tenant", t), ("class", "user")];

    assert_eq!(sample(&text, requests, &[("tenant", t), ("class", "token"), ("code", "200")]), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, requests, &[("tenant", t), ("class", "user"), ("code", "200")]),
        Some(pages.len() as f64),
        "expected one 200 counted per page"
    );
    assert_eq!(
        sample(&text, requests, &[("tenant", t), ("class", "user"), ("code", "429")]),
        Some(1.0),
        "expected the one injected 429 counted"
    );
    // Held to the emulator's count of what it answered: every request counted once, by its status.
    let seen = env.sim.state().tenant_counters(&env.tenant_id).expect("emulator counters");
    let delta_requests = seen.by_endpoint.get("users/delta").copied().unwrap_or(0) as f64;
    assert_eq!(total(&text, requests, &user), delta_requests, "{seen:?}");
    assert_eq!(env.responses(429), 1, "expected the emulator to have answered exactly one 429");
    assert_eq!(
        total(&text, "entrasync_graph_request_duration_seconds_count", &[("class", "user")]),
        delta_requests,
        "one latency per answer"
    );
    assert_eq!(
        total(&text, "entrasync_graph_request_duration_seconds_count", &[("class", "token")]),
        1.0,
        "expected one latency for the one token request"
    );

    let throttled = [("tenant", t), ("class", "user"), ("cause", "throttled")];
    assert_eq!(
        sample(&text, "entrasync_graph_retry_waits_total", &throttled),
        Some(1.0),
        "expected one throttled wait"
    );
    let waited = sample(&text, "entrasync_graph_retry_wait_seconds_total", &throttled).expect("seconds waited");
    assert!((0.3..5.0).contains(&waited), "waited as told, not less: {waited}");
    assert_eq!(
        sample(&text, "entrasync_graph_retry_waits_total", &[("tenant", t), ("cause", "unavailable")]),
        None,
        "expected no wait for unavailability: none was injected"
    );

    // The budget: one unit per delta request (the emulator charges 1 for a delta page with $select); the
    // token endpoint is not Graph and costs nothing.
    let spent = sample(&text, "entrasync_graph_rate_budget_spent_units_total", &[("tenant", t)]).expect("spent");
    assert_eq!(spent, delta_requests, "expected one budget unit spent per delta request");
    assert_eq!(
        sample(&text, "entrasync_graph_rate_budget_units_per_second", &[("tenant", t)]),
        Some(planned_rate),
        "expected the tenant bucket's planned refill rate"
    );
    assert!(
        sample(&text, "entrasync_graph_rate_budget_wait_seconds_total", &[("tenant", t)]).is_some(),
        "expected the budget's waits exported (zero or more)"
    );
}

#[tokio::test]
async fn graph_client_counts_connection_failures_and_never_labels_a_domain() {
    // Nothing listens on a freshly freed port: every attempt is refused.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let env = sim::start(1, 0, 0, &["User.Read.All"]);
    let guid_tenant = entrasync::graph::GraphTenant {
        cloud: Cloud::Custom { login_url: closed.clone(), graph_url: closed },
        ..env.secret_tenant()
    };
    let domain_tenant =
        entrasync::graph::GraphTenant { tenant_id: "contoso.onmicrosoft.com".to_owned(), ..guid_tenant.clone() };
    let metrics = Metrics::new();
    let client = GraphClient::new(quick_retries(3)).expect("client").with_metrics(metrics.graph.clone());

    assert!(client.check_credentials(&guid_tenant).await.is_err(), "nothing answers");
    assert!(client.check_credentials(&domain_tenant).await.is_err(), "nothing answers");
    let text = metrics.render();
    let t = env.tenant_id.as_str();
    let failed = [("tenant", t), ("class", "token"), ("code", "error")];
    assert_eq!(sample(&text, "entrasync_graph_requests_total", &failed), Some(3.0), "three attempts:\n{text}");
    let unavailable = [("tenant", t), ("class", "token"), ("cause", "unavailable")];
    assert_eq!(sample(&text, "entrasync_graph_retry_waits_total", &unavailable), Some(2.0), "two waits between");
    assert!(!text.contains("contoso"), "a domain is not a tenant label:\n{text}");
    assert_eq!(total(&text, "entrasync_graph_requests_total", &[]), 3.0, "the domain tenant is not counted");
}

#[tokio::test]
async fn a_worker_run_job_moves_job_run_graph_and_budget_series() {
    let world = World::start().await;
    let tenant = world.tenant(21, 40, 10).await;
    let t = tenant.entra_tenant_id.to_string();
    let t = t.as_str();
    let settings = world.settings(&[("ENTRASYNC_SERVE_ROLES", "worker"), ("ENTRASYNC_SYNC_WORKERS_PER_CLASS", "1")]);
    world
        .sim
        .state()
        .add_fault(FaultRule {
            tenant: Some(tenant.sim_tenant.clone()),
            kind: FaultKind::Throttle { retry_after: RetryAfter::Fraction(0.2) },
            trigger: FaultTrigger::Always,
            path_contains: Some("users/delta".to_owned()),
            limit: Some(1),
        })
        .expect("fault");
    let (service, broker, metrics) = start_observed_service(&settings);
    broker.connection(Duration::from_secs(10)).await.expect("connected");

    let before = metrics.render();
    assert_eq!(
        sample(&before, "entrasync_worker_pool_size", &[("class", "user")]),
        Some(1.0),
        "expected the one user worker configured"
    );
    assert_eq!(total(&before, "entrasync_worker_jobs_total", &[]), 0.0, "expected no job counted before publishing");
    assert_eq!(
        total(&before, "entrasync_graph_requests_total", &[]),
        0.0,
        "expected no Graph request before a job ran"
    );

    broker
        .publish(&SyncJob::new(tenant.entra_tenant_id, ObjectClass::User, SyncMode::Full, Trigger::Queue))
        .await
        .expect("publish");
    let stranger = SyncJob::new(uuid::Uuid::new_v4(), ObjectClass::User, SyncMode::Delta, Trigger::Queue);
    broker.publish(&stranger).await.expect("publish");
    let acked = [("class", "user"), ("outcome", "acked")];
    let dead = [("class", "user"), ("outcome", "dead_lettered")];
    let settled = || {
        let text = metrics.render();
        async move {
            sample(&text, "entrasync_worker_jobs_total", &acked) == Some(1.0)
                && sample(&text, "entrasync_worker_jobs_total", &dead) == Some(1.0)
        }
    };
    assert!(eventually(Duration::from_secs(60), settled).await, "jobs not settled:\n{}", metrics.render());
    let text = metrics.render();

    // The delivery, settled once; none left in flight.
    assert_eq!(
        sample(&text, "entrasync_worker_jobs_in_flight", &[("class", "user")]),
        Some(0.0),
        "expected no user job left in flight once both were settled"
    );
    assert_eq!(total(&text, "entrasync_worker_jobs_total", &[]), 2.0, "{text}");
    // The run, as the history recorded it, with every user written.
    let runs = stored_runs(&world.pool).await;
    assert_eq!(runs.len(), 1, "expected one run: the stranger's job is dead-lettered without one");
    assert_eq!(runs[0].status, "success", "expected the run to succeed: {:?}", runs[0].error);
    let full_success = [("tenant", t), ("class", "user"), ("mode", "full"), ("status", "success")];
    assert_eq!(sample(&text, "entrasync_sync_runs_total", &full_success), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "entrasync_sync_runs_in_progress", &[("class", "user"), ("mode", "full")]),
        Some(0.0),
        "expected no run in progress after the job settled"
    );
    let users = world.sim.state().truth(&tenant.sim_tenant, ObjectClass::User).expect("truth").objects.len();
    let changed = [("tenant", t), ("class", "user"), ("outcome", "changed")];
    assert_eq!(
        sample(&text, "entrasync_sync_objects_total", &changed),
        Some(users as f64),
        "expected every user counted as changed by the first full round"
    );
    let pages = sample(&text, "entrasync_sync_pages_total", &[("tenant", t), ("class", "user")]);
    assert!(pages.is_some_and(|p| p >= 4.0), "expected 40 users in pages of 10 to count 4+ pages, got {pages:?}");
    // Its Graph requests through the worker's client: a token, the pages, the one 429 and its wait.
    let requests = "entrasync_graph_requests_total";
    assert_eq!(
        sample(&text, requests, &[("tenant", t), ("class", "token"), ("code", "200")]),
        Some(1.0),
        "expected one token request"
    );
    assert_eq!(
        sample(&text, requests, &[("tenant", t), ("class", "user"), ("code", "429")]),
        Some(1.0),
        "expected the one injected 429 counted"
    );
    let seen = world.sim.state().tenant_counters(&tenant.sim_tenant).expect("emulator counters");
    let delta_requests = seen.by_endpoint.get("users/delta").copied().unwrap_or(0) as f64;
    assert_eq!(total(&text, requests, &[("tenant", t), ("class", "user")]), delta_requests, "{seen:?}");
    let throttled = [("tenant", t), ("class", "user"), ("cause", "throttled")];
    assert_eq!(
        sample(&text, "entrasync_graph_retry_waits_total", &throttled),
        Some(1.0),
        "expected one throttled wait"
    );
    let waited = sample(&text, "entrasync_graph_retry_wait_seconds_total", &throttled);
    assert!(waited.is_some_and(|s| s >= 0.2), "expected at least the told 0.2 s waited, got {waited:?}");
    // The shared (Postgres) rate budget of the worker's client.
    assert_eq!(
        sample(&text, "entrasync_graph_rate_budget_spent_units_total", &[("tenant", t)]),
        Some(delta_requests),
        "expected one budget unit spent per delta request"
    );
    let rate = sample(&text, "entrasync_graph_rate_budget_units_per_second", &[("tenant", t)]);
    assert!(rate.is_some_and(|r| r > 0.0), "expected a positive planned budget rate, got {rate:?}");

    service.shutdown().await;
    broker.close().await;
}
