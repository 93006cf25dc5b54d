//! Graph emulator: the HTTP admin API, deterministic generation, truth readback, counters, the clock,
//! national clouds and Bearer checks on Graph endpoints.

use entrasync::model::ObjectClass;
use graph_sim::clouds::SimCloud;
use graph_sim::state::TenantSpec;
use graph_sim::{GraphSim, SimOptions};
use serde_json::{json, Value};

use crate::graph_sim_harness::{start, start_with, ALL_READ_ROLES};

async fn admin(http: &reqwest::Client, method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("admin request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn http_admin_api_creates_mutates_and_reads_back_the_truth() {
    use reqwest::Method;
    let sim = GraphSim::start(SimOptions::default()).expect("start");
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let (status, info) = admin(
        &http,
        Method::POST,
        format!("{base}/_sim/tenants"),
        Some(json!({"seed": 42, "users": 100, "groups": 10, "devices": 20, "domain": "contoso.example"})),
    )
    .await;
    assert_eq!(status, 201, "{info}");
    let tenant = info["tenant_id"].as_str().expect("tenant id").to_owned();
    assert_eq!(info["users"], 100, "expected the 100 users asked for: {info}");
    let (status, body) =
        admin(&http, Method::POST, format!("{base}/_sim/tenants"), Some(json!({"tenant_id": tenant}))).await;
    assert_eq!(status, 409, "expected a second tenant with the same id to conflict: {body}");
    let (status, created) = admin(
        &http,
        Method::POST,
        format!("{base}/_sim/tenants/{tenant}/users"),
        Some(json!({"displayName": "Ada Lovelace", "department": "Research"})),
    )
    .await;
    assert_eq!(status, 201, "expected the user to be created: {created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let (_, obj) = admin(&http, Method::GET, format!("{base}/_sim/tenants/{tenant}/objects/{id}"), None).await;
    assert_eq!(obj["displayName"], "Ada Lovelace", "expected the created user read back: {obj}");
    assert!(
        obj["userPrincipalName"].as_str().expect("upn").ends_with("@contoso.example"),
        "expected a UPN in the tenant's domain: {obj}"
    );
    let (status, body) = admin(
        &http,
        Method::PATCH,
        format!("{base}/_sim/tenants/{tenant}/objects/{id}"),
        Some(json!({"jobTitle": "Analyst"})),
    )
    .await;
    assert_eq!(status, 204, "expected the update to be accepted: {body}");
    let (status, err) =
        admin(&http, Method::PATCH, format!("{base}/_sim/tenants/{tenant}/objects/{id}"), Some(json!({"shoeSize": 9})))
            .await;
    assert_eq!(status, 400, "{err}");
    let groups: Vec<String> = serde_json::from_value(
        admin(&http, Method::GET, format!("{base}/_sim/tenants/{tenant}/ids/groups?live=true"), None).await.1,
    )
    .expect("ids");
    let (status, changed) = admin(
        &http,
        Method::POST,
        format!("{base}/_sim/tenants/{tenant}/groups/{}/members", groups[3]),
        Some(json!({"id": id})),
    )
    .await;
    assert_eq!(
        (status, changed["changed"].clone()),
        (200, json!(true)),
        "expected the user added to group {}: {changed}",
        groups[3]
    );
    let (_, truth) = admin(&http, Method::GET, format!("{base}/_sim/tenants/{tenant}/truth/groups"), None).await;
    assert!(
        truth["memberships"][&groups[3]].as_array().expect("members").contains(&json!(id)),
        "expected the truth to list {id} as a member of {}",
        groups[3]
    );
    let (status, outcome) =
        admin(&http, Method::DELETE, format!("{base}/_sim/tenants/{tenant}/objects/{id}"), None).await;
    assert_eq!(
        (status, outcome["outcome"].clone()),
        (200, json!("soft_deleted")),
        "expected a plain DELETE to soft-delete the user: {outcome}"
    );
    let (_, truth) = admin(&http, Method::GET, format!("{base}/_sim/tenants/{tenant}/truth/users"), None).await;
    assert_eq!(truth["soft_deleted"], json!([id]), "expected the truth to list the user as soft-deleted");
    assert_eq!(
        truth["objects"].as_object().expect("objects").len(),
        100,
        "expected 100 live users: 100 generated + Ada − Ada deleted"
    );
    let (status, body) =
        admin(&http, Method::POST, format!("{base}/_sim/tenants/{tenant}/objects/{id}/restore"), None).await;
    assert_eq!(status, 204, "expected a soft-deleted user to be restorable: {body}");
    let (status, body) =
        admin(&http, Method::DELETE, format!("{base}/_sim/tenants/{tenant}/objects/{id}?permanent=true"), None).await;
    assert_eq!(status, 200, "expected a permanent delete to be accepted: {body}");
    let (status, _) =
        admin(&http, Method::POST, format!("{base}/_sim/tenants/{tenant}/objects/{id}/restore"), None).await;
    assert_eq!(status, 409, "a permanently deleted user cannot be restored");
    let (status, summary) = admin(
        &http,
        Method::POST,
        format!("{base}/_sim/tenants/{tenant}/mutations"),
        Some(json!({"seed": 1, "count": 50})),
    )
    .await;
    assert_eq!(status, 200, "expected random mutations to be applied: {summary}");
    let total: u64 = summary.as_object().expect("summary").values().filter_map(Value::as_u64).sum();
    assert!(total > 30, "{summary}");
    let (status, generated) =
        admin(&http, Method::POST, format!("{base}/_sim/tenants/{tenant}/generate"), Some(json!({"users": 1000})))
            .await;
    assert_eq!(status, 200, "expected more users to be generated: {generated}");
    assert_eq!(generated["users"], 1000, "expected the 1,000 users asked for: {generated}");
    let (_, clock) = admin(&http, Method::GET, format!("{base}/_sim/clock"), None).await;
    let (_, later) =
        admin(&http, Method::POST, format!("{base}/_sim/clock/advance"), Some(json!({"seconds": 86400}))).await;
    let before: chrono::DateTime<chrono::Utc> = serde_json::from_value(clock["now"].clone()).expect("time");
    let after: chrono::DateTime<chrono::Utc> = serde_json::from_value(later["now"].clone()).expect("time");
    assert!(after - before >= chrono::Duration::hours(24), "expected the clock a day on: {before} → {after}");
    let (status, body) = admin(&http, Method::GET, format!("{base}/_sim/tenants/nope/truth/users"), None).await;
    assert_eq!(status, 404, "expected an unknown tenant to be 404: {body}");
}

#[tokio::test]
async fn the_same_seed_generates_the_same_directory() {
    let spec = || TenantSpec {
        tenant_id: Some("11111111-2222-4333-8444-555555555555".into()),
        seed: Some(99),
        users: 300,
        groups: 20,
        devices: 30,
        ..TenantSpec::default()
    };
    let a = GraphSim::start(SimOptions::default()).expect("start");
    let b = GraphSim::start(SimOptions::default()).expect("start");
    a.state().create_tenant(spec()).expect("tenant");
    b.state().create_tenant(spec()).expect("tenant");
    let tenant = "11111111-2222-4333-8444-555555555555";
    for class in ObjectClass::ALL {
        assert_eq!(
            a.state().truth(tenant, class).expect("truth"),
            b.state().truth(tenant, class).expect("truth"),
            "{class}"
        );
    }
    let other = GraphSim::start(SimOptions::default()).expect("start");
    other.state().create_tenant(TenantSpec { seed: Some(100), ..spec() }).expect("tenant");
    assert_ne!(
        a.state().truth(tenant, ObjectClass::User).expect("truth"),
        other.state().truth(tenant, ObjectClass::User).expect("truth"),
        "expected another seed to generate other users"
    );
    let users = a.state().truth(tenant, ObjectClass::User).expect("truth");
    let user = users.objects.values().next().expect("a user");
    for prop in [
        "displayName",
        "givenName",
        "surname",
        "userPrincipalName",
        "accountEnabled",
        "userType",
        "createdDateTime",
        "city",
        "country",
    ] {
        assert!(user.contains_key(prop), "{prop} in {user:?}");
    }
}

#[tokio::test]
async fn a_million_user_directory_generates_with_large_groups() {
    // How fast it generates is a benchmark figure (docs/benchmarks.md), not asserted here.
    let sim = GraphSim::start(SimOptions::default()).expect("start");
    let info = sim
        .state()
        .create_tenant(TenantSpec { users: 1_000_000, groups: 2_000, devices: 10_000, ..TenantSpec::default() })
        .expect("tenant");
    assert_eq!(info.users, 1_000_000, "expected the million users asked for");
    let truth = sim.state().truth(&info.tenant_id, ObjectClass::Group).expect("truth");
    let largest = truth.memberships.values().filter(|m| m.len() < 1_000_000).map(Vec::len).max().unwrap_or(0);
    // Group 1 draws 50,000–60,000 members with replacement from the million (graph-sim's generate.rs):
    // ~2.5 % of the draws repeat, so it holds 48,700 distinct members or more, whatever the tenant's seed.
    assert!(largest >= 48_000, "a group of ~50,000+ members besides All Company, got {largest}");
}

#[tokio::test]
async fn counters_count_requests_per_tenant() {
    let sim = start(10, 0, 0).await;
    let _ = sim.walk(&sim.url("/v1.0/users/delta")).await;
    let _ = sim.get(&sim.url("/v1.0/users?$top=1000")).await;
    let counters = sim.state().tenant_counters(&sim.tenant).expect("counters");
    assert_eq!(counters.by_endpoint.get("users/delta"), Some(&1), "expected one delta request: {counters:?}");
    assert_eq!(counters.by_endpoint.get("users/list"), Some(&1), "expected one list request: {counters:?}");
    assert_eq!(counters.by_status.get(&200), Some(&1), "expected one 200 (the delta page): {counters:?}");
    assert_eq!(counters.by_status.get(&400), Some(&1), "expected one 400 ($top=1000): {counters:?}");
    assert_eq!(counters.objects_served, 10, "expected the 10 users served once: {counters:?}");
}

#[tokio::test]
async fn bearer_tokens_are_required_and_roles_checked_per_endpoint() {
    let sim = start(3, 1, 1).await;
    let response = reqwest::get(sim.url("/v1.0/users/delta")).await.expect("request");
    assert_eq!(response.status().as_u16(), 401, "expected a request without a token to be 401");
    assert!(
        response.headers().get("www-authenticate").is_some(),
        "expected a WWW-Authenticate challenge: {:?}",
        response.headers()
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken", "expected Graph's error code: {body}");
    // Directory.Read.All reads users and groups but not devices/delta (Device.Read.All only).
    let spec = TenantSpec { users: 3, devices: 1, ..TenantSpec::default() };
    let directory_reader = start_with(SimOptions::default(), spec, &["Directory.Read.All"]).await;
    let page = directory_reader.get(&directory_reader.url("/v1.0/users/delta")).await;
    assert_eq!(page.status, 200, "expected Directory.Read.All to read users/delta: {}", page.body);
    let page = directory_reader.get(&directory_reader.url("/v1.0/devices/delta")).await;
    assert_eq!(page.status, 403, "expected Directory.Read.All not to read devices/delta: {}", page.body);
    assert_eq!(page.body["error"]["code"], "Authorization_RequestDenied", "expected Graph's error code: {}", page.body);
    let page = directory_reader.get(&directory_reader.url("/v1.0/devices")).await;
    assert_eq!(page.status, 200, "expected Directory.Read.All to list devices: {}", page.body);
    let users_only = start_with(SimOptions::default(), TenantSpec::default(), &["User.Read.All"]).await;
    let page = users_only.get(&users_only.url("/v1.0/groups/delta")).await;
    assert_eq!(page.status, 403, "expected User.Read.All not to read groups/delta: {}", page.body);
    let _ = ALL_READ_ROLES;
}

#[tokio::test]
async fn national_clouds_are_recognised_by_path_prefix_and_host_header() {
    let spec = TenantSpec { cloud: SimCloud::UsGov, users: 4, ..TenantSpec::default() };
    let sim = start_with(SimOptions::default(), spec, &["User.Read.All"]).await;
    let page = sim.get(&sim.url("/graph.microsoft.us/v1.0/users/delta")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.delta().expect("delta").starts_with(&sim.url("/graph.microsoft.us/v1.0/users/delta?")),
        "links keep the cloud prefix"
    );
    let page = sim.get_with(&sim.url("/v1.0/users/delta"), &[("Host", "graph.microsoft.us")]).await;
    assert_eq!(page.status, 200, "expected the US Gov host header to be recognised: {}", page.body);
    let delta = page.delta().expect("delta");
    assert!(
        delta.starts_with("http://graph.microsoft.us/v1.0/users/delta?"),
        "expected links on the US Gov host: {delta}"
    );
    // The tenant lives in US Gov: the global and China endpoints do not accept its token.
    let page = sim.get(&sim.url("/v1.0/users/delta")).await;
    assert_eq!(page.status, 401, "expected the global endpoint to refuse a US Gov token: {}", page.body);
    let page = sim.get(&sim.url("/microsoftgraph.chinacloudapi.cn/v1.0/users/delta")).await;
    assert_eq!(page.status, 401, "expected the China endpoint to refuse a US Gov token: {}", page.body);
    let page = sim.get(&sim.url("/graph.example.org/v1.0/users/delta")).await;
    assert_eq!(page.status, 404, "expected an unknown cloud prefix to be 404: {}", page.body);
}
