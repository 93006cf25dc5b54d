//! Graph emulator: injected faults — 429 (Retry-After integer, fraction, HTTP date, missing), 503, 504,
//! slow responses, dropped connections, malformed JSON, 410 sync reset, throttle headers, triggers
//! (probability, every Nth, time window, limit), tenant scoping, and resource-unit enforcement.

use std::time::{Duration, Instant};

use graph_sim::faults::{FaultKind, FaultRule, FaultTrigger, RetryAfter};
use graph_sim::throttle::ResourceLimits;
use serde_json::json;

use crate::graph_sim_harness::{start, Sim};

fn rule(sim: &Sim, kind: FaultKind, trigger: FaultTrigger) -> FaultRule {
    FaultRule { tenant: Some(sim.tenant.clone()), kind, trigger, path_contains: None, limit: None }
}

async fn retry_after_for(
    sim: &Sim,
    retry_after: RetryAfter,
) -> (u16, Option<String>, serde_json::Value, reqwest::header::HeaderMap) {
    sim.state().clear_faults(None);
    sim.state().add_fault(rule(sim, FaultKind::Throttle { retry_after }, FaultTrigger::Always)).expect("fault");
    let page = sim.get(&sim.url("/v1.0/users/delta")).await;
    let value = page.headers.get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (page.status, value, page.body, page.headers)
}

#[tokio::test]
async fn throttling_429_comes_with_each_retry_after_form() {
    let sim = start(5, 0, 0).await;
    let (status, value, body, headers) = retry_after_for(&sim, RetryAfter::Seconds(5)).await;
    assert_eq!((status, value.as_deref()), (429, Some("5")), "expected a 429 with Retry-After: 5: {body}");
    assert_eq!(body["error"]["code"], "TooManyRequests", "expected Graph's error code: {body}");
    assert_eq!(body["error"]["innerError"]["status"], "429", "expected the status in innerError: {body}");
    let scope = headers.get("x-ms-throttle-scope").and_then(|v| v.to_str().ok()).expect("scope");
    assert!(scope.starts_with("Tenant_Application/ReadWrite/") && scope.ends_with(&sim.tenant), "{scope}");
    assert!(headers.get("x-ms-resource-unit").is_some(), "expected x-ms-resource-unit on a 429: {headers:?}");
    let (_, value, _, _) = retry_after_for(&sim, RetryAfter::Fraction(2.128)).await;
    assert_eq!(value.as_deref(), Some("2.128"), "expected a fractional Retry-After verbatim");
    let (_, value, _, _) = retry_after_for(&sim, RetryAfter::HttpDate(30)).await;
    let value = value.expect("date");
    let at = httpdate::parse_http_date(&value).expect("an HTTP date");
    assert!(at > std::time::SystemTime::now(), "expected a Retry-After date in the future: {value}");
    let (status, value, _, _) = retry_after_for(&sim, RetryAfter::Missing).await;
    assert_eq!((status, value), (429, None), "expected a 429 without Retry-After");
    sim.state().clear_faults(None);
    let page = sim.get(&sim.url("/v1.0/users/delta")).await;
    assert_eq!(page.status, 200, "expected 200 once the faults are cleared: {}", page.body);
}

#[tokio::test]
async fn service_unavailable_and_gateway_timeout() {
    let sim = start(5, 0, 0).await;
    let id = sim
        .state()
        .add_fault(rule(
            &sim,
            FaultKind::ServiceUnavailable { retry_after: Some(RetryAfter::Seconds(3)) },
            FaultTrigger::Always,
        ))
        .expect("fault");
    let page = sim.get(&sim.url("/v1.0/users/delta")).await;
    assert_eq!(page.status, 503, "expected the injected 503: {}", page.body);
    assert_eq!(
        page.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("3"),
        "expected the 503's Retry-After: 3"
    );
    assert!(page.body["error"]["code"].is_string(), "expected an error code in the body: {}", page.body);
    assert!(sim.state().remove_fault(id), "expected the 503 fault {id} to exist until removed");
    sim.state().add_fault(rule(&sim, FaultKind::GatewayTimeout, FaultTrigger::Always)).expect("fault");
    let page = sim.get(&sim.url("/v1.0/users/delta")).await;
    assert_eq!(page.status, 504, "expected the injected 504: {}", page.body);
    let counters = sim.state().tenant_counters(&sim.tenant).expect("counters");
    assert_eq!(counters.faults_injected, 2, "expected both injected faults counted: {counters:?}");
}

#[tokio::test]
async fn every_nth_and_limit_and_path_filters_pick_requests() {
    let sim = start(5, 0, 0).await;
    sim.state()
        .add_fault(FaultRule {
            path_contains: Some("users/delta".into()),
            limit: Some(2),
            ..rule(&sim, FaultKind::GatewayTimeout, FaultTrigger::EveryNth { n: 3 })
        })
        .expect("fault");
    let mut statuses = Vec::new();
    for _ in 0..9 {
        statuses.push(sim.get(&sim.url("/v1.0/users/delta")).await.status);
    }
    assert_eq!(
        statuses,
        vec![200, 200, 504, 200, 200, 504, 200, 200, 200],
        "expected every third request to fail, twice (the limit)"
    );
    assert_eq!(sim.get(&sim.url("/v1.0/users")).await.status, 200, "other paths unaffected");
}

#[tokio::test]
async fn probability_and_time_window_triggers() {
    let mut sim = start(5, 0, 0).await;
    sim.state().add_fault(rule(&sim, FaultKind::GatewayTimeout, FaultTrigger::Probability { p: 0.5 })).expect("fault");
    let mut failures = 0;
    for _ in 0..60 {
        failures += usize::from(sim.get(&sim.url("/v1.0/users")).await.status == 504);
    }
    assert!((10..=50).contains(&failures), "about half of 60 failed: {failures}");
    sim.state().clear_faults(Some(&sim.tenant));
    let now = sim.state().now();
    let window =
        FaultTrigger::Window { from: now + chrono::Duration::hours(1), until: now + chrono::Duration::hours(2) };
    sim.state().add_fault(rule(&sim, FaultKind::GatewayTimeout, window)).expect("fault");
    let page = sim.get(&sim.url("/v1.0/users")).await;
    assert_eq!(page.status, 200, "expected no fault before its window opens: {}", page.body);
    sim.state().advance_clock(chrono::Duration::minutes(90));
    sim.renew_token().await;
    let page = sim.get(&sim.url("/v1.0/users")).await;
    assert_eq!(page.status, 504, "expected the fault inside its window (at +90 min): {}", page.body);
    sim.state().advance_clock(chrono::Duration::minutes(60));
    sim.renew_token().await;
    let page = sim.get(&sim.url("/v1.0/users")).await;
    assert_eq!(page.status, 200, "expected no fault after its window closed (at +150 min): {}", page.body);
}

#[tokio::test]
async fn faults_of_one_tenant_leave_others_alone_and_global_faults_hit_all() {
    let a = start(3, 0, 0).await;
    let b_tenant = a
        .state()
        .create_tenant(graph_sim::state::TenantSpec { users: 3, ..Default::default() })
        .expect("tenant")
        .tenant_id;
    let b_token =
        graph_sim::bench::token_for(&a.sim.base_url(), a.state(), &b_tenant, &["User.Read.All"]).await.expect("token");
    let b = Sim {
        sim: graph_sim::GraphSim::start(Default::default()).expect("unused"),
        tenant: b_tenant,
        token: b_token,
        http: reqwest::Client::new(),
    };
    let b_url = a.url("/v1.0/users/delta");
    let b_status =
        || async { b.http.get(&b_url).bearer_auth(&b.token).send().await.expect("request").status().as_u16() };
    a.state().add_fault(rule(&a, FaultKind::GatewayTimeout, FaultTrigger::Always)).expect("fault");
    assert_eq!(a.get(&a.url("/v1.0/users/delta")).await.status, 504, "expected tenant a's fault to hit tenant a");
    assert_eq!(b_status().await, 200, "expected tenant a's fault to leave tenant b alone");
    a.state().clear_faults(None);
    a.state()
        .add_fault(FaultRule { tenant: None, ..rule(&a, FaultKind::GatewayTimeout, FaultTrigger::Always) })
        .expect("fault");
    assert_eq!(b_status().await, 504, "expected a global fault to hit tenant b");
    assert_eq!(a.get(&a.url("/v1.0/users/delta")).await.status, 504, "expected a global fault to hit tenant a");
}

#[tokio::test]
async fn slow_responses_are_delayed() {
    let sim = start(3, 0, 0).await;
    sim.state().add_fault(rule(&sim, FaultKind::Slow { delay_ms: 700 }, FaultTrigger::Always)).expect("fault");
    let started = Instant::now();
    let page = sim.get(&sim.url("/v1.0/users/delta")).await;
    let elapsed = started.elapsed();
    assert_eq!(page.status, 200, "expected a slow response to still succeed: {}", page.body);
    assert!(elapsed >= Duration::from_millis(700), "expected the answer delayed by at least 700 ms, took {elapsed:?}");
}

#[tokio::test]
async fn dropped_connections_and_malformed_json_break_the_body() {
    let sim = start(300, 0, 0).await;
    sim.state()
        .add_fault(FaultRule { limit: Some(1), ..rule(&sim, FaultKind::DropConnection, FaultTrigger::Always) })
        .expect("fault");
    let response =
        sim.http.get(sim.url("/v1.0/users/delta")).bearer_auth(&sim.token).send().await.expect("headers arrive");
    assert_eq!(response.status().as_u16(), 200, "expected the status line before the connection drops");
    assert!(response.bytes().await.is_err(), "the body is cut off");
    sim.state()
        .add_fault(FaultRule { limit: Some(1), ..rule(&sim, FaultKind::MalformedJson, FaultTrigger::Always) })
        .expect("fault");
    let response = sim.http.get(sim.url("/v1.0/users/delta")).bearer_auth(&sim.token).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 200, "expected malformed JSON to come with a 200");
    let body = response.bytes().await.expect("complete body");
    assert!(
        serde_json::from_slice::<serde_json::Value>(&body).is_err(),
        "expected a body that is not JSON: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(sim.get(&sim.url("/v1.0/users/delta")).await.status, 200, "limits of 1 are used up");
}

#[tokio::test]
async fn sync_reset_answers_410_with_the_initial_query_in_location() {
    let sim = start(10, 0, 0).await;
    let (_, delta) = sim.walk(&sim.url("/v1.0/users/delta?$select=displayName")).await;
    sim.state().add_fault(rule(&sim, FaultKind::SyncReset, FaultTrigger::Always)).expect("fault");
    assert_eq!(sim.get(&sim.url("/v1.0/users/delta")).await.status, 200, "a request without a token is not reset");
    let page = sim.get(&delta).await;
    assert_eq!(page.status, 410, "expected the injected sync reset: {}", page.body);
    let location = page.headers.get("location").and_then(|v| v.to_str().ok()).expect("location");
    assert_eq!(
        location,
        sim.url("/v1.0/users/delta?$select=displayName&$deltatoken="),
        "expected Location to restart the initial query, $select included"
    );
    sim.state().clear_faults(None);
    let (pages, _) = sim.walk(location).await;
    assert_eq!(pages.iter().map(|p| p.value().len()).sum::<usize>(), 10, "the Location restarts a full round");
}

#[tokio::test]
async fn throttle_headers_are_added_to_successful_responses() {
    let sim = start(3, 0, 0).await;
    let page = sim.get(&sim.url("/v1.0/users?$select=displayName")).await;
    assert_eq!(
        page.headers.get("x-ms-resource-unit").and_then(|v| v.to_str().ok()),
        Some("1"),
        "GET users (2) with $select (-1)"
    );
    assert!(
        page.headers.get("x-ms-throttle-limit-percentage").is_none(),
        "expected no limit percentage far below the limit: {:?}",
        page.headers
    );
    sim.state()
        .add_fault(rule(&sim, FaultKind::ThrottleHeaders { limit_percentage: 1.2 }, FaultTrigger::Always))
        .expect("fault");
    let page = sim.get(&sim.url("/v1.0/users")).await;
    assert_eq!(page.status, 200, "expected throttle headers on a successful answer: {}", page.body);
    assert_eq!(
        page.headers.get("x-ms-throttle-limit-percentage").and_then(|v| v.to_str().ok()),
        Some("1.2"),
        "expected the injected limit percentage"
    );
    assert_eq!(
        page.headers.get("x-ms-resource-unit").and_then(|v| v.to_str().ok()),
        Some("2"),
        "expected GET users without $select to cost 2 units"
    );
}

#[tokio::test]
async fn resource_unit_quotas_are_enforced_when_switched_on() {
    let sim = start(3, 0, 0).await;
    sim.state().set_resource_limits(true, ResourceLimits { app_tenant_per_10s: Some(4), app_per_20s: None });
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(sim.get(&sim.url("/v1.0/users")).await); // 2 units each
    }
    assert_eq!(
        statuses.iter().map(|p| p.status).collect::<Vec<_>>(),
        vec![200, 200, 429, 429],
        "expected two requests of 2 units within the quota of 4, then 429s"
    );
    assert!(statuses[1].headers.get("x-ms-throttle-limit-percentage").is_some(), "4 of 4 units used: above 0.8");
    let throttled = &statuses[2];
    let retry: u64 = throttled
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("integer Retry-After");
    assert!((1..=10).contains(&retry), "expected Retry-After within the 10 s window, got {retry}");
    assert!(
        throttled
            .headers
            .get("x-ms-throttle-scope")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|s| s.starts_with("Tenant_Application/")),
        "expected the (app, tenant) quota as the throttle scope: {:?}",
        throttled.headers.get("x-ms-throttle-scope")
    );
    sim.state().advance_clock(chrono::Duration::seconds(11));
    assert_eq!(sim.get(&sim.url("/v1.0/users")).await.status, 200, "a new window");
    sim.state().set_resource_limits(false, ResourceLimits::default());
    let _ = json!(null);
}
