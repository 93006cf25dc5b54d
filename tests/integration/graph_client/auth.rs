//! Token acquisition with a secret and a certificate, the typed errors of a bad configuration, and the
//! one token refresh on 401.

use std::time::Duration;

use entrasync::graph::{AssertionAlgorithm, DeltaRequest, GraphError, GraphTenant};
use entrasync::model::{Cloud, ObjectClass};
use graph_sim::state::TenantSpec;
use graph_sim::{GraphSim, SimOptions};

use super::sim::{quick_client, round, start, upserted_ids};

#[tokio::test]
async fn secret_and_certificate_credentials_both_reach_the_directory() {
    let env = start(25, 0, 0, &["User.Read.All"]);
    let truth = env.sim.state().truth(&env.tenant_id, ObjectClass::User).expect("truth");
    let expected: std::collections::BTreeSet<String> = truth.objects.keys().cloned().collect();
    assert_eq!(expected.len(), 25, "expected the emulator to hold the 25 users it was asked for");
    let tenants = [
        env.secret_tenant(),
        env.certificate_tenant(AssertionAlgorithm::Ps256),
        env.certificate_tenant(AssertionAlgorithm::Rs256),
    ];
    for tenant in tenants {
        let client = quick_client();
        let pages = round(&client, tenant.clone(), DeltaRequest::full(ObjectClass::User))
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", tenant.credentials));
        assert_eq!(upserted_ids(&pages), expected, "{:?}: expected every user of the tenant", tenant.credentials);
        assert!(
            pages.last().expect("pages").next.is_delta(),
            "{:?}: expected the round to end with a deltaLink",
            tenant.credentials
        );
    }
}

#[tokio::test]
async fn a_wrong_secret_is_a_typed_error_with_the_fix() {
    let env = start(1, 0, 0, &["User.Read.All"]);
    let err =
        round(&quick_client(), env.with_secret("the-secret-id-not-its-value"), DeltaRequest::full(ObjectClass::User))
            .await
            .expect_err("wrong secret");
    assert!(matches!(err, GraphError::InvalidClientSecret { .. }), "{err:?}");
    assert!(err.to_string().contains("not its ID"), "{err}");
    assert!(err.is_configuration_error(), "expected a wrong secret to count as a configuration error: {err:?}");
}

#[tokio::test]
async fn unknown_tenant_and_unknown_app_are_told_apart() {
    let env = start(1, 0, 0, &["User.Read.All"]);
    let client = quick_client();
    let mut wrong_tenant = env.secret_tenant();
    wrong_tenant.tenant_id = uuid::Uuid::new_v4().to_string();
    let err = client.check_credentials(&wrong_tenant).await.expect_err("unknown tenant");
    assert!(matches!(err, GraphError::TenantNotFound { .. }), "{err:?}");

    let mut wrong_app = env.secret_tenant();
    wrong_app.credentials = std::sync::Arc::new(entrasync::graph::AppCredentials::with_secret(
        uuid::Uuid::new_v4().to_string(),
        crate::support::secret("x"),
    ));
    let err = client.check_credentials(&wrong_app).await.expect_err("unknown app");
    assert!(matches!(err, GraphError::UnknownApplication { .. }), "{err:?}");
}

#[tokio::test]
async fn missing_consent_names_the_permission_to_grant() {
    // Consented for users only: devices need Device.Read.All.
    let env = start(2, 0, 2, &["User.Read.All"]);
    let client = quick_client();
    round(&client, env.secret_tenant(), DeltaRequest::full(ObjectClass::User)).await.expect("users are consented");
    let err =
        round(&client, env.secret_tenant(), DeltaRequest::full(ObjectClass::Device)).await.expect_err("no consent");
    match &err {
        GraphError::ConsentMissing { class, permissions, .. } => {
            assert_eq!(*class, ObjectClass::Device, "expected the error to name the class without consent");
            assert_eq!(*permissions, ["Device.Read.All"], "expected the error to name the permission to grant");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("Device.Read.All"), "{err}");
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_round_goes_on() {
    let env = start(3, 0, 0, &["User.Read.All"]);
    let client = quick_client();
    let tenant = env.secret_tenant();
    round(&client, tenant.clone(), DeltaRequest::full(ObjectClass::User)).await.expect("first round");
    let unauthorized = || env.sim.state().global_counters().by_status.get(&401).copied().unwrap_or(0);
    assert_eq!(unauthorized(), 0, "expected no 401 while the token is fresh");
    // The emulator's clock moves past the token's lifetime; our cached token still looks fresh to us.
    env.sim.state().advance_clock(chrono::Duration::hours(2));
    let pages = round(&client, tenant, DeltaRequest::full(ObjectClass::User)).await.expect("second round");
    assert_eq!(unauthorized(), 1, "exactly one request with the stale token");
    assert_eq!(
        pages.iter().map(|p| p.stats.requests).sum::<u32>(),
        pages.len() as u32 + 1,
        "expected one request per page plus the one retried after the refresh"
    );
}

#[tokio::test]
async fn a_token_graph_keeps_rejecting_is_an_auth_error_after_one_refresh() {
    // Tokens come from `login`, which knows the tenant; `graph` does not, so it answers 401 to every token.
    let login = start(1, 0, 0, &["User.Read.All"]);
    let graph = GraphSim::start(SimOptions::default()).expect("second emulator");
    graph.state().create_tenant(TenantSpec { users: 1, ..TenantSpec::default() }).expect("other tenant");
    let tenant = GraphTenant {
        cloud: Cloud::Custom { login_url: login.sim.base_url(), graph_url: graph.base_url() },
        ..login.secret_tenant()
    };
    let started = std::time::Instant::now();
    let err = round(&quick_client(), tenant, DeltaRequest::full(ObjectClass::User)).await.expect_err("401");
    assert!(matches!(err, GraphError::Unauthorized { .. }), "{err:?}");
    let counters = graph.state().global_counters();
    assert_eq!(counters.by_status.get(&401).copied(), Some(2), "one retry with a fresh token, then give up");
    assert!(started.elapsed() < Duration::from_secs(5), "a 401 is not retried with backoff");
}
