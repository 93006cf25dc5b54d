//! Throttling and outages: every `Retry-After` form is honoured (never retried sooner than told),
//! 503/504/dropped connections are retried, and the bounds hold.

use std::time::{Duration, Instant};

use entrasync::graph::{DeltaRequest, GraphClient, GraphClientOptions, GraphError, RequestStats, RetryPolicy};
use entrasync::model::ObjectClass;
use graph_sim::faults::{FaultKind, RetryAfter};

use super::sim::{quick_client, round, start};

fn total(pages: &[entrasync::graph::DeltaPage]) -> RequestStats {
    let mut stats = RequestStats::default();
    for page in pages {
        stats.add(&page.stats);
    }
    stats
}

#[tokio::test]
async fn a_429_storm_with_every_retry_after_form_completes_and_waits_as_told() {
    // (form, 429s in a row, the least total wait that honours it, the most the policy plans: a told wait
    // gets up to 5 % (at least 20 ms) of jitter, a backoff step up to 50 %)
    let storms = [
        (RetryAfter::Seconds(1), 2, Duration::from_secs(2), Duration::from_millis(2 * 1050)),
        (RetryAfter::Fraction(0.6), 3, Duration::from_millis(1800), Duration::from_millis(3 * 630)),
        // An HTTP date has whole seconds: "2 s from now" is at least 1 s away, and at most 2 s.
        (RetryAfter::HttpDate(2), 1, Duration::from_secs(1), Duration::from_millis(2100)),
        // No header: exponential backoff from 50 ms (50 + 100 + 200).
        (RetryAfter::Missing, 3, Duration::from_millis(350), Duration::from_millis(525)),
    ];
    for (form, times, least, most) in storms {
        let env = start(5, 0, 0, &["User.Read.All"]);
        let client = quick_client();
        let tenant = env.secret_tenant();
        client.check_credentials(&tenant).await.expect("token first, so only Graph requests are timed");
        env.fault(FaultKind::Throttle { retry_after: form.clone() }, "users/delta", times);
        let started = Instant::now();
        let pages = round(&client, tenant, DeltaRequest::full(ObjectClass::User)).await.expect("round completes");
        let elapsed = started.elapsed();
        let stats = total(&pages);
        assert_eq!(env.responses(429), times, "{form:?}");
        assert_eq!(stats.throttled_waits as u64, times, "{form:?}");
        assert_eq!(stats.requests as u64, pages.len() as u64 + times, "{form:?}");
        assert!(elapsed >= least, "{form:?}: retried sooner than told ({elapsed:?} < {least:?})");
        assert!(stats.waited >= least, "{form:?}: {stats:?}");
        // What the client slept is what it planned (`waited`), exactly: held to the policy, not to how
        // long the machine took.
        assert!(stats.waited <= most, "{form:?}: waited far too long ({:?} > {most:?})", stats.waited);
    }
}

#[tokio::test]
async fn unavailable_timeouts_and_dropped_connections_are_retried() {
    let env = start(5, 0, 0, &["User.Read.All"]);
    let client = quick_client();
    let outages = [
        FaultKind::ServiceUnavailable { retry_after: Some(RetryAfter::Fraction(0.2)) },
        FaultKind::ServiceUnavailable { retry_after: None },
        FaultKind::GatewayTimeout,
        FaultKind::DropConnection,
    ];
    // One fault per round: faults installed together would all fire on the same request.
    for outage in outages {
        env.fault(outage.clone(), "users/delta", 2);
        let pages = round(&client, env.secret_tenant(), DeltaRequest::full(ObjectClass::User)).await.expect("round");
        let stats = total(&pages);
        assert_eq!(stats.unavailable_waits, 2, "{outage:?}: {stats:?}");
        assert_eq!(stats.requests as usize, pages.len() + 2, "{outage:?}");
        assert_eq!(super::sim::upserted_ids(&pages).len(), 5, "{outage:?}");
    }
}

#[tokio::test]
async fn throttling_beyond_the_bounds_is_a_typed_error() {
    let env = start(2, 0, 0, &["User.Read.All"]);
    let tenant = env.secret_tenant();
    let bounded = |max_attempts, max_total_wait| {
        GraphClient::new(GraphClientOptions {
            retry: RetryPolicy { max_attempts, max_total_wait, ..RetryPolicy::default() },
            ..GraphClientOptions::default()
        })
        .expect("client")
    };

    // Attempts: three 429s of 0.1 s, then no fourth attempt.
    env.fault(FaultKind::Throttle { retry_after: RetryAfter::Fraction(0.1) }, "users/delta", 10);
    let err = round(&bounded(3, Duration::from_secs(60)), tenant.clone(), DeltaRequest::full(ObjectClass::User))
        .await
        .expect_err("attempts exhausted");
    assert!(matches!(err, GraphError::RetriesExhausted { attempts: 3, .. }), "{err:?}");
    assert_eq!(env.responses(429), 3, "expected exactly three attempts, each answered 429");
    env.sim.state().clear_faults(None);

    // Total wait: told to wait 60 s with 10 s allowed → give up at once instead of sleeping.
    env.fault(FaultKind::Throttle { retry_after: RetryAfter::Seconds(60) }, "users/delta", 10);
    let err = round(&bounded(8, Duration::from_secs(10)), tenant, DeltaRequest::full(ObjectClass::User))
        .await
        .expect_err("wait budget exhausted");
    assert!(matches!(err, GraphError::RetriesExhausted { attempts: 1, .. }), "{err:?}");
    // `waited` is what the client slept before giving up: nothing, rather than a time that depends on load.
    let GraphError::RetriesExhausted { waited, .. } = &err else { unreachable!("matched above") };
    assert_eq!(*waited, Duration::ZERO, "expected to give up at once instead of sleeping: {err:?}");
}
