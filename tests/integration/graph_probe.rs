//! Test connection, tenant discovery by domain, the organization read and admin consent, against the emulator over HTTP.

use std::sync::Arc;

use entrasync::graph::{
    admin_consent_url, organization, resolve_tenant_id, test_connection, AppCredentials, ConnectionReport,
    ConsentOutcome, GraphError, GraphTenant, TenantSize,
};
use entrasync::model::{Cloud, PermissionStatus};
use graph_sim::faults::FaultKind;
use graph_sim::identity::NewApp;
use graph_sim::state::TenantSpec;
use graph_sim::{GraphSim, RunningSim, SimOptions};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::graph_client::sim::{quick_client, start, SimTenant};
use crate::support::secret;

const ALL_READ: [&str; 3] = ["User.Read.All", "GroupMember.Read.All", "Device.Read.All"];

async fn probe(env: &SimTenant) -> ConnectionReport {
    test_connection(&quick_client(), &env.secret_tenant()).await
}

fn statuses(report: &ConnectionReport) -> [PermissionStatus; 3] {
    [report.users.status, report.groups.status, report.devices.status]
}

// ---- test connection ----

#[tokio::test]
async fn consented_read_permissions_are_granted_for_every_set() {
    let env = start(5, 3, 4, &ALL_READ);
    let report = probe(&env).await;
    assert!(report.token.ok, "expected a token: {:?}", report.token);
    assert_eq!(report.token.roles, ALL_READ, "expected the token's roles claim as consented");
    assert_eq!(statuses(&report), [PermissionStatus::Granted; 3], "{report:#?}");
    assert_eq!(report.overall(), PermissionStatus::Granted);
    assert!(report.checks().iter().all(|(_, c)| c.missing.is_empty()), "nothing is missing: {report:#?}");
    // Groups with membership: the list and one group's members were read.
    let counters = env.sim.state().tenant_counters(&env.tenant_id).expect("counters");
    assert_eq!(counters.by_endpoint.get("groups/members").copied(), Some(1), "{:?}", counters.by_endpoint);

    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["users"]["status"], "granted");
    assert_eq!(json["token"]["ok"], true);
    assert!(json["users"].get("detail").is_none(), "absent details are left out: {json}");
}

#[tokio::test]
async fn a_missing_device_permission_is_named_with_the_consent_to_grant() {
    let env = start(2, 1, 2, &["User.Read.All", "GroupMember.Read.All"]);
    let report = probe(&env).await;
    assert_eq!(
        statuses(&report),
        [PermissionStatus::Granted, PermissionStatus::Granted, PermissionStatus::NeedsAdditionalPermissions],
        "{report:#?}"
    );
    assert_eq!(report.devices.missing, ["Device.Read.All"]);
    assert!(report.devices.next_step.contains("grant admin consent"), "{}", report.devices.next_step);
    assert!(report.devices.next_step.contains(&env.app_id), "names the app: {}", report.devices.next_step);
    let detail = report.devices.detail.as_deref().unwrap_or_default();
    assert!(detail.contains("403") && detail.contains("Authorization_RequestDenied"), "{detail}");
    assert_eq!(report.overall(), PermissionStatus::NeedsAdditionalPermissions);
    assert_eq!(serde_json::to_value(report.devices.status).expect("json"), "needs_additional_permissions");
}

#[tokio::test]
async fn directory_read_all_lists_devices_but_the_device_delta_still_needs_device_read_all() {
    let env = start(2, 1, 2, &["Directory.Read.All"]);
    let report = probe(&env).await;
    assert_eq!(
        statuses(&report),
        [PermissionStatus::Granted, PermissionStatus::Granted, PermissionStatus::NeedsAdditionalPermissions],
        "{report:#?}"
    );
    assert_eq!(report.devices.missing, ["Device.Read.All"]);
    assert!(report.devices.detail.as_deref().unwrap_or_default().contains("delta"), "{:?}", report.devices.detail);
}

#[tokio::test]
async fn no_consent_at_all_needs_every_least_privileged_permission() {
    let env = start(1, 1, 1, &[]);
    let report = probe(&env).await;
    assert!(report.token.ok && report.token.roles.is_empty(), "a token without roles: {:?}", report.token);
    assert_eq!(statuses(&report), [PermissionStatus::NeedsAdditionalPermissions; 3], "{report:#?}");
    let missing: Vec<_> = report.checks().iter().flat_map(|(_, c)| c.missing.clone()).collect();
    assert_eq!(missing, ALL_READ);
}

#[tokio::test]
async fn a_wrong_secret_fails_every_set_naming_the_aadsts_code_and_the_fix() {
    let env = start(1, 0, 0, &ALL_READ);
    let report = test_connection(&quick_client(), &env.with_secret("the-secret-id-not-its-value")).await;
    assert!(!report.token.ok);
    let error = report.token.error.as_deref().unwrap_or_default();
    assert!(error.contains("AADSTS7000215") && error.contains("not its ID"), "{error}");
    assert_eq!(statuses(&report), [PermissionStatus::Error; 3], "{report:#?}");
    assert!(report.users.next_step.contains("AADSTS7000215"), "{}", report.users.next_step);
    assert_eq!(report.overall(), PermissionStatus::Error);
    assert!(!serde_json::to_string(&report).expect("json").contains("the-secret-id-not-its-value"));
}

#[tokio::test]
async fn an_unknown_tenant_or_app_is_an_error_naming_its_code() {
    let env = start(1, 0, 0, &ALL_READ);
    let mut tenant = env.secret_tenant();
    tenant.tenant_id = Uuid::new_v4().to_string();
    let report = test_connection(&quick_client(), &tenant).await;
    assert_eq!(statuses(&report), [PermissionStatus::Error; 3]);
    assert!(report.users.next_step.contains("AADSTS90002"), "{}", report.users.next_step);

    let mut app = env.secret_tenant();
    app.credentials = Arc::new(AppCredentials::with_secret(Uuid::new_v4().to_string(), secret("x")));
    let report = test_connection(&quick_client(), &app).await;
    assert!(report.users.next_step.contains("AADSTS700016"), "{}", report.users.next_step);
}

#[tokio::test]
async fn graph_refusing_an_app_that_holds_the_role_needs_settings() {
    let env = start(2, 1, 2, &ALL_READ);
    env.fault(FaultKind::Forbidden, "/devices", 10);
    let report = probe(&env).await;
    assert_eq!(
        statuses(&report),
        [PermissionStatus::Granted, PermissionStatus::Granted, PermissionStatus::GrantedNeedsSettings],
        "{report:#?}"
    );
    assert!(report.devices.missing.is_empty(), "nothing to grant: {report:#?}");
    assert!(report.devices.next_step.contains("Conditional Access"), "{}", report.devices.next_step);
    assert_eq!(report.overall(), PermissionStatus::GrantedNeedsSettings);

    // The members read counts too: a refusal there is the groups set's.
    env.sim.state().clear_faults(None);
    env.fault(FaultKind::Forbidden, "/members", 10);
    let report = probe(&env).await;
    assert_eq!(report.groups.status, PermissionStatus::GrantedNeedsSettings, "{report:#?}");
}

#[tokio::test]
async fn consent_granted_after_a_test_counts_at_the_next_test() {
    let env = start(1, 1, 1, &["User.Read.All"]);
    let client = quick_client();
    let before = test_connection(&client, &env.secret_tenant()).await;
    assert_eq!(before.overall(), PermissionStatus::NeedsAdditionalPermissions);
    let roles: Vec<String> = ALL_READ.iter().map(|r| (*r).to_owned()).collect();
    env.sim.state().identity.grant_consent(&env.tenant_id, &env.app_id, &roles).expect("consent");
    // Same client: its cached token predates the consent, so the test must fetch a new one.
    let after = test_connection(&client, &env.secret_tenant()).await;
    assert_eq!(after.overall(), PermissionStatus::Granted, "{after:#?}");
}

#[tokio::test]
async fn graph_out_of_reach_is_an_error_per_set() {
    let env = start(1, 0, 0, &ALL_READ);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut tenant = env.secret_tenant();
    tenant.cloud = Cloud::Custom { login_url: env.sim.base_url(), graph_url: format!("http://127.0.0.1:{port}") };
    let report = test_connection(&quick_client(), &tenant).await;
    assert!(report.token.ok);
    assert_eq!(statuses(&report), [PermissionStatus::Error; 3], "{report:#?}");
    assert!(report.users.next_step.contains("did not answer"), "{}", report.users.next_step);
}

#[test]
fn permission_status_wire_names_are_snake_case() {
    for status in PermissionStatus::ALL {
        let json = serde_json::to_value(status).expect("json");
        assert_eq!(json, status.as_str());
        assert_eq!(serde_json::from_value::<PermissionStatus>(json).expect("parse"), status);
    }
    assert_eq!(serde_json::to_value(PermissionStatus::GrantedNeedsSettings).expect("json"), "granted_needs_settings");
}

// ---- discovery and organization ----

struct Named {
    sim: RunningSim,
    tenant_id: String,
    app_id: String,
}

const DOMAIN: &str = "contoso.onmicrosoft.com";
const APP_SECRET: &str = "probe-secret";
const REDIRECT: &str = "http://127.0.0.1:9/api/v1/consent/callback";

/// A tenant with a domain and a display name, and an app requesting the read permissions (not consented).
fn named(display_name: Option<&str>) -> Named {
    let sim = GraphSim::start(SimOptions::default()).expect("start emulator");
    let spec = TenantSpec {
        domain: Some(DOMAIN.into()),
        display_name: display_name.map(str::to_owned),
        users: 2,
        seed: Some(3),
        ..TenantSpec::default()
    };
    let tenant = sim.state().create_tenant(spec).expect("tenant");
    let app = sim
        .state()
        .identity
        .register_app(NewApp {
            display_name: Some("entrasync <probe> app".into()),
            secret: Some(APP_SECRET.into()),
            roles: ALL_READ.iter().map(|r| (*r).to_owned()).chain(["Organization.Read.All".to_owned()]).collect(),
            redirect_uris: vec![REDIRECT.into()],
            ..NewApp::default()
        })
        .expect("app");
    Named { sim, tenant_id: tenant.tenant_id, app_id: app.app_id }
}

impl Named {
    fn cloud(&self) -> Cloud {
        Cloud::Custom { login_url: self.sim.base_url(), graph_url: self.sim.base_url() }
    }

    fn tenant(&self) -> GraphTenant {
        GraphTenant {
            cloud: self.cloud(),
            tenant_id: self.tenant_id.clone(),
            credentials: Arc::new(AppCredentials::with_secret(self.app_id.clone(), secret(APP_SECRET))),
            size: TenantSize::Small,
        }
    }

    fn consent(&self, roles: &[&str]) {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        self.sim.state().identity.grant_consent(&self.tenant_id, &self.app_id, &roles).expect("consent");
    }
}

#[tokio::test]
async fn a_domain_resolves_to_the_tenant_guid_and_a_guid_is_taken_as_is() {
    let env = named(None);
    let client = quick_client();
    let expected = Uuid::parse_str(&env.tenant_id).expect("guid");
    for given in [DOMAIN, "Contoso.OnMicrosoft.com", " contoso.onmicrosoft.com "] {
        let id = resolve_tenant_id(&client, &env.cloud(), given).await.unwrap_or_else(|e| panic!("{given}: {e}"));
        assert_eq!(id, expected, "{given}");
    }
    // A GUID is not looked up: even one the emulator does not know comes back unchanged.
    let other = Uuid::new_v4();
    assert_eq!(resolve_tenant_id(&client, &env.cloud(), &other.to_string()).await.expect("guid"), other);
}

#[tokio::test]
async fn an_unknown_domain_or_a_non_domain_is_a_typed_error() {
    let env = named(None);
    let client = quick_client();
    let err = resolve_tenant_id(&client, &env.cloud(), "fabrikam.onmicrosoft.com").await.expect_err("unknown");
    assert!(matches!(err, GraphError::UnknownDomain { .. }), "{err:?}");
    assert!(err.to_string().contains("is not an Entra tenant of cloud custom"), "{err}");
    for bad in ["contoso", "not a domain", "a/b.com", "-x.com", "10.1.2.3"] {
        let err = resolve_tenant_id(&client, &env.cloud(), bad).await.expect_err(bad);
        assert!(matches!(err, GraphError::InvalidTenantName { .. }), "{bad}: {err:?}");
    }
    let requests = env.sim.state().global_counters().requests;
    assert_eq!(requests, 0, "discovery is not Graph: the emulator's Graph counters stay at zero");
}

#[tokio::test]
async fn organization_reads_the_display_name_and_verified_domains() {
    let env = named(Some("Contoso Ltd"));
    env.sim.state().identity.add_tenant(&env.tenant_id, "contoso.com");
    env.consent(&["Organization.Read.All"]);
    let org = organization(&quick_client(), &env.tenant()).await.expect("organization");
    assert_eq!(org.id.to_string(), env.tenant_id);
    assert_eq!(org.display_name, "Contoso Ltd");
    assert_eq!(org.verified_domains, [DOMAIN, "contoso.com"]);
    assert_eq!(org.default_domain.as_deref(), Some(DOMAIN));

    // Without the permission: a typed error naming it.
    env.consent(&["User.Read.All"]);
    let err = organization(&quick_client(), &env.tenant()).await.expect_err("denied");
    assert!(matches!(err, GraphError::ReadDenied { .. }), "{err:?}");
    assert!(err.to_string().contains("Organization.Read.All"), "{err}");
}

/// A Graph token of the app, as raw text, for requests the client does not make.
async fn raw_token(env: &Named) -> String {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", env.app_id.as_str()),
        ("client_secret", APP_SECRET),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let url = format!("{}/{}/oauth2/v2.0/token", env.sim.base_url(), env.tenant_id);
    let body: Value =
        reqwest::Client::new().post(url).form(&form).send().await.expect("token").json().await.expect("json");
    body["access_token"].as_str().expect("access_token").to_owned()
}

#[tokio::test]
async fn the_emulated_organization_has_the_documented_shape() {
    let env = named(None);
    env.consent(&["Directory.Read.All"]);
    let token = raw_token(&env).await;
    let http = reqwest::Client::new();
    for prefix in ["", "/graph.microsoft.com"] {
        let url = format!("{}{prefix}/v1.0/organization", env.sim.base_url());
        let response = http.get(&url).bearer_auth(&token).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let body: Value = response.json().await.expect("json");
        let org = &body["value"][0];
        assert_eq!(org["id"], env.tenant_id.as_str());
        assert_eq!(org["displayName"], "Contoso", "the default name comes from the domain");
        assert_eq!(
            org["verifiedDomains"],
            serde_json::json!([{"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": true,
                                "isInitial": true, "name": DOMAIN, "type": "Managed"}])
        );
        assert!(body["@odata.context"].as_str().unwrap_or_default().ends_with("/v1.0/$metadata#organization"));
    }
    let url = format!("{}/v1.0/organization?$select=displayName", env.sim.base_url());
    let body: Value = http.get(url).bearer_auth(&token).send().await.expect("select").json().await.expect("json");
    let keys: Vec<&String> = body["value"][0].as_object().expect("object").keys().collect();
    assert_eq!(keys, ["displayName", "id"], "$select keeps id and the selected property");
    let url = format!("{}/v1.0/organization?$select=nope", env.sim.base_url());
    let response = http.get(url).bearer_auth(&token).send().await.expect("bad select");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    env.consent(&["User.Read.All"]);
    let token = raw_token(&env).await;
    let url = format!("{}/v1.0/organization", env.sim.base_url());
    let response = http.get(url).bearer_auth(&token).send().await.expect("denied");
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "User.Read.All does not read the organization");
}

// ---- admin consent ----

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// The consent outcome and `state` of a redirect to the callback.
fn redirect_outcome(response: &reqwest::Response) -> (ConsentOutcome, Option<String>) {
    assert_eq!(response.status(), StatusCode::FOUND, "expected the consent redirect");
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).expect("Location");
    assert!(location.starts_with(REDIRECT), "{location}");
    let url = url::Url::parse(location).expect("url");
    let state = url.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned());
    (ConsentOutcome::from_query(url.query_pairs()), state)
}

/// Submits the consent page's form as a browser would.
async fn answer(env: &Named, segment: &str, tenant: &str, action: &str, state: &str) -> reqwest::Response {
    let form = [
        ("client_id", env.app_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("state", state),
        ("tenant", tenant),
        ("action", action),
    ];
    let url = format!("{}/{segment}/adminconsent", env.sim.base_url());
    no_redirects().post(url).form(&form).send().await.expect("answer")
}

#[tokio::test]
async fn consent_through_the_page_grants_for_the_directory_the_admin_names() {
    let env = named(None);
    let url = admin_consent_url(&env.cloud(), None, &env.app_id, REDIRECT, "st\"ate<1>").expect("url");
    assert_eq!(url.path(), "/organizations/adminconsent");
    let response = no_redirects().get(url.clone()).send().await.expect("page");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = response.text().await.expect("html");
    for needle in [
        "<title>Permissions requested</title>",
        "entrasync &lt;probe&gt; app",
        "Read all devices",
        "(GroupMember.Read.All)",
        "Sign in as the admin of",
        "id=\"consent-tenant\"",
        "id=\"consent-accept\"",
        "id=\"consent-cancel\"",
        "action=\"adminconsent\"",
        "value=\"st&quot;ate&lt;1&gt;\"",
    ] {
        assert!(page.contains(needle), "expected {needle:?} in the page:\n{page}");
    }
    assert!(!page.contains("<probe>") && !page.contains("st\"ate"), "user text is escaped");
    assert!(!page.contains("http://") || !page.contains("<script src"), "no external assets");

    let response = answer(&env, "organizations", DOMAIN, "accept", "s1").await;
    let (outcome, state) = redirect_outcome(&response);
    assert_eq!(outcome, ConsentOutcome::Granted { tenant: Uuid::parse_str(&env.tenant_id).expect("guid") });
    assert_eq!(state.as_deref(), Some("s1"));
    let consents = env.sim.state().identity.consent_state(&env.tenant_id).expect("consent").consents;
    assert_eq!(consents.get(&env.app_id).map(Vec::len), Some(4), "the app's requested roles: {consents:?}");

    // With consent in place, the test connection passes.
    let report = test_connection(&quick_client(), &env.tenant()).await;
    assert_eq!(report.overall(), PermissionStatus::Granted, "{report:#?}");
}

#[tokio::test]
async fn cancel_or_a_refusing_tenant_redirects_with_the_documented_error() {
    let env = named(None);
    let refused = ConsentOutcome::Refused {
        error: "permission_denied".into(),
        description: "The admin canceled the request".into(),
    };
    let (outcome, state) = redirect_outcome(&answer(&env, "common", DOMAIN, "cancel", "s2").await);
    assert_eq!((outcome, state.as_deref()), (refused.clone(), Some("s2")));

    env.sim.state().identity.set_refuse_consent(&env.tenant_id, true).expect("refuse");
    let (outcome, _) = redirect_outcome(&answer(&env, "organizations", &env.tenant_id, "accept", "s3").await);
    assert_eq!(outcome, refused);
    let consents = env.sim.state().identity.consent_state(&env.tenant_id).expect("consent").consents;
    assert!(consents.is_empty(), "nothing granted: {consents:?}");
}

#[tokio::test]
async fn an_unknown_directory_shows_the_page_again_saying_why() {
    let env = named(None);
    for typed in ["fabrikam.onmicrosoft.com", ""] {
        let response = answer(&env, "organizations", typed, "accept", "s").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{typed:?}");
        assert!(response.headers().get("location").is_none());
        let page = response.text().await.expect("html");
        assert!(page.contains("id=\"consent-error\"") && page.contains("id=\"consent-tenant\""), "{page}");
    }
    // A request the page cannot serve (unknown app) is the identity platform's error, not a page.
    let url = admin_consent_url(&env.cloud(), None, &Uuid::new_v4().to_string(), REDIRECT, "s").expect("url");
    let response = no_redirects().get(url).send().await.expect("unknown app");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error_codes"][0], 700016);
}

#[tokio::test]
async fn tenant_specific_consent_answers_at_once_or_through_the_page_when_switched_on() {
    let env = named(None);
    let url = admin_consent_url(&env.cloud(), Some(DOMAIN), &env.app_id, REDIRECT, "s4").expect("url");
    let (outcome, state) = redirect_outcome(&no_redirects().get(url.clone()).send().await.expect("consent"));
    assert_eq!(outcome, ConsentOutcome::Granted { tenant: Uuid::parse_str(&env.tenant_id).expect("guid") });
    assert_eq!(state.as_deref(), Some("s4"));

    env.sim.state().identity.set_consent_page(true);
    let response = no_redirects().get(url).send().await.expect("page");
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.expect("html");
    assert!(page.contains(&format!("value=\"{DOMAIN}\" readonly")), "the directory is fixed: {page}");
    // The field is ignored on a tenant-specific path: the path names the directory.
    let (outcome, _) = redirect_outcome(&answer(&env, DOMAIN, "ignored.example", "accept", "s5").await);
    assert!(matches!(outcome, ConsentOutcome::Granted { .. }), "{outcome:?}");
    let (outcome, _) = redirect_outcome(&answer(&env, &env.tenant_id, "", "cancel", "s6").await);
    assert!(matches!(outcome, ConsentOutcome::Refused { .. }), "{outcome:?}");

    let http = reqwest::Client::new();
    let switch = format!("{}/_sim/consent-page", env.sim.base_url());
    let body: Value = http
        .put(&switch)
        .json(&serde_json::json!({"enabled": false}))
        .send()
        .await
        .expect("switch")
        .json()
        .await
        .expect("json");
    assert_eq!(body["enabled"], false);
    assert!(!env.sim.state().identity.consent_page());
}
