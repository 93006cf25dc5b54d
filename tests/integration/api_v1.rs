//! The operator API (/api/v1) over HTTP: access, problem details, every endpoint. A real service
//! (Postgres, RabbitMQ, workers) and the Graph emulator as a custom cloud.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::service_support::World;
use crate::support::app::{spawn_app, TestApp};
use crate::support::eventually_some;

/// What the sync reads, and the directory's name and domains.
const ALL_ROLES: [&str; 4] = ["User.Read.All", "GroupMember.Read.All", "Device.Read.All", "Organization.Read.All"];

const ADMIN: &str = "es_admin-token-for-the-api-tests-0123456789abcdef";

/// A running service with the operator API, an emulator, and an HTTP client.
struct Api {
    world: World,
    app: TestApp,
    http: reqwest::Client,
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
    text: String,
}

impl Api {
    async fn start(roles: &str) -> Api {
        Api::start_with(roles, &[]).await
    }

    async fn start_with(roles: &str, extra: &[(&str, &str)]) -> Api {
        let world = World::start().await;
        let mut vars = vec![("ENTRASYNC_ADMIN_TOKEN", ADMIN), ("ENTRASYNC_SERVE_ROLES", roles)];
        vars.extend_from_slice(extra);
        let settings = world.settings(&vars);
        let app = spawn_app(&settings).await;
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Api { world, app, http }
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.app.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let text = response.text().await.expect("body");
        Answer { status, content_type, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call(method, path, Some(ADMIN), body).await
    }

    fn cloud(&self) -> Value {
        let base = self.world.sim.base_url();
        json!({ "cloud": "custom", "login_url": base, "graph_url": base })
    }

    /// An emulated app requesting the sync's permissions, stored as a credential profile through the API.
    async fn profile(&self, name: &str) -> (i64, String) {
        let secret = format!("secret-{}", uuid::Uuid::new_v4().simple());
        let roles = ALL_ROLES.iter().map(|r| (*r).to_owned()).collect();
        let app = self
            .world
            .sim
            .state()
            .identity
            .register_app(graph_sim::identity::NewApp {
                secret: Some(secret.clone()),
                roles,
                display_name: Some(name.to_owned()),
                ..Default::default()
            })
            .expect("app");
        let created = self
            .admin(
                Method::POST,
                "/api/v1/credential-profiles",
                Some(json!({ "name": name, "client_id": app.app_id, "secret": secret })),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        (created.body["id"].as_i64().expect("id"), app.app_id)
    }

    /// An emulated directory with a few objects; the app consented with `roles`.
    fn directory(&self, domain: &str, app_id: &str, roles: &[&str]) -> String {
        let state = self.world.sim.state();
        let info = state
            .create_tenant(graph_sim::state::TenantSpec {
                domain: Some(domain.to_owned()),
                seed: Some(7),
                users: 30,
                groups: 4,
                devices: 6,
                ..Default::default()
            })
            .expect("tenant");
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        state.identity.grant_consent(&info.tenant_id, app_id, &roles).expect("consent");
        info.tenant_id
    }
}

fn is_problem(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.content_type, "application/problem+json", "{}", answer.text);
    assert_eq!(answer.body["status"], status.as_u16(), "{}", answer.text);
    assert!(answer.body["detail"].as_str().is_some_and(|d| d.len() > 10), "a detail to act on: {}", answer.text);
}

#[tokio::test]
async fn tokens_roles_and_failed_sign_ins() {
    let api = Api::start("api").await;
    is_problem(&api.call(Method::GET, "/api/v1/tenants", None, None).await, StatusCode::UNAUTHORIZED);
    is_problem(&api.call(Method::GET, "/api/v1/tenants", Some("es_wrong"), None).await, StatusCode::UNAUTHORIZED);

    let session = api.admin(Method::GET, "/api/v1/session", None).await;
    assert_eq!(session.body, json!({ "token_name": "bootstrap", "role": "admin" }), "{}", session.text);

    let viewer =
        api.admin(Method::POST, "/api/v1/tokens", Some(json!({ "name": "dashboards", "role": "viewer" }))).await;
    assert_eq!(viewer.status, StatusCode::CREATED, "{}", viewer.text);
    let viewer_token = viewer.body["token"].as_str().expect("token shown once").to_owned();
    assert!(viewer_token.starts_with("es_") && viewer_token.len() == 46, "{viewer_token}");
    let listed = api.admin(Method::GET, "/api/v1/tokens", None).await;
    assert!(!listed.text.contains(&viewer_token), "the token is never listed: {}", listed.text);

    let read = api.call(Method::GET, "/api/v1/tenants", Some(&viewer_token), None).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    let write = api
        .call(Method::POST, "/api/v1/tokens", Some(&viewer_token), Some(json!({ "name": "x", "role": "admin" })))
        .await;
    is_problem(&write, StatusCode::FORBIDDEN);

    let id = viewer.body["id"].as_i64().expect("id");
    assert_eq!(api.admin(Method::DELETE, &format!("/api/v1/tokens/{id}"), None).await.status, StatusCode::NO_CONTENT);
    is_problem(&api.call(Method::GET, "/api/v1/session", Some(&viewer_token), None).await, StatusCode::UNAUTHORIZED);

    let audit = api.admin(Method::GET, "/api/v1/audit?target_type=token", None).await;
    let actions: Vec<&str> =
        audit.body["items"].as_array().expect("items").iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.len() >= 2, "token creation and revocation are audited: {}", audit.text);

    // Failed sign-ins: after ten in a minute, even the right token is refused for a while.
    for _ in 0..10 {
        api.call(Method::GET, "/api/v1/session", Some("es_guess"), None).await;
    }
    let locked = api.admin(Method::GET, "/api/v1/session", None).await;
    is_problem(&locked, StatusCode::TOO_MANY_REQUESTS);
    api.app.handle.stop(true).await;
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx() {
    let api = Api::start("api").await;
    let unknown_field =
        api.admin(Method::POST, "/api/v1/tokens", Some(json!({ "name": "a", "role": "viewer", "rol": 1 }))).await;
    is_problem(&unknown_field, StatusCode::BAD_REQUEST);
    assert!(unknown_field.body["detail"].as_str().unwrap_or_default().contains("rol"), "{}", unknown_field.text);

    let not_json = api
        .http
        .post(format!("{}/api/v1/tokens", api.app.address))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()
        .await
        .expect("request");
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    let huge =
        api.admin(Method::POST, "/api/v1/tokens", Some(json!({ "name": "x".repeat(70_000), "role": "viewer" }))).await;
    is_problem(&huge, StatusCode::PAYLOAD_TOO_LARGE);

    let long_name =
        api.admin(Method::POST, "/api/v1/tokens", Some(json!({ "name": "x".repeat(201), "role": "viewer" }))).await;
    is_problem(&long_name, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(long_name.body["field"], "name");

    is_problem(&api.admin(Method::GET, "/api/v1/runs?limit=7", None).await, StatusCode::UNPROCESSABLE_ENTITY);
    is_problem(&api.admin(Method::GET, "/api/v1/runs?cursor=garbage", None).await, StatusCode::UNPROCESSABLE_ENTITY);
    is_problem(&api.admin(Method::GET, "/api/v1/runs?class=printer", None).await, StatusCode::BAD_REQUEST);
    is_problem(&api.admin(Method::GET, "/api/v1/runs?sort=up", None).await, StatusCode::BAD_REQUEST);
    is_problem(&api.admin(Method::GET, "/api/v1/tenants/abc", None).await, StatusCode::NOT_FOUND);
    is_problem(&api.admin(Method::GET, "/api/v1/tenants/999999", None).await, StatusCode::NOT_FOUND);
    is_problem(&api.admin(Method::GET, "/api/v1/no-such-thing", None).await, StatusCode::NOT_FOUND);
    let cloud = api
        .admin(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({ "tenant": "contoso.onmicrosoft.com", "cloud": "mars", "credential_profile_id": 1 })),
        )
        .await;
    is_problem(&cloud, StatusCode::BAD_REQUEST);
    assert!(cloud.body["detail"].as_str().unwrap_or_default().contains("us_gov"), "names the clouds: {}", cloud.text);

    let openapi = api.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(openapi.status, StatusCode::OK);
    assert!(openapi.body["openapi"].as_str().unwrap_or_default().starts_with("3.1"), "{}", &openapi.text[..200]);
    for path in [
        "/api/v1/credential-profiles",
        "/api/v1/tenants",
        "/api/v1/tenants/{id}/test-connection",
        "/api/v1/tenants/{id}/sync",
        "/api/v1/runs",
        "/api/v1/runs.csv",
    ] {
        assert!(openapi.body["paths"][path].is_object(), "the document describes {path}");
    }
    api.app.handle.stop(true).await;
}

#[tokio::test]
async fn profiles_tenants_test_connection_manual_sync_history_and_delete() {
    let api = Api::start("api,worker").await;
    let (profile, app_id) = api.profile("prod app").await;
    let sim_tenant =
        api.directory("contoso.example", &app_id, &["User.Read.All", "GroupMember.Read.All", "Organization.Read.All"]);

    // Test connection before adding: devices lack their permission.
    let mut new_tenant = api.cloud();
    new_tenant["tenant"] = json!("contoso.example");
    new_tenant["credential_profile_id"] = json!(profile);
    let test = api.admin(Method::POST, "/api/v1/test-connection", Some(new_tenant.clone())).await;
    assert_eq!(test.status, StatusCode::OK, "{}", test.text);
    assert_eq!(test.body["entra_tenant_id"], sim_tenant, "the domain resolves to the directory: {}", test.text);
    assert_eq!(test.body["users"]["status"], "granted", "{}", test.text);
    assert_eq!(test.body["devices"]["status"], "needs_additional_permissions", "{}", test.text);
    assert_eq!(test.body["devices"]["missing"], json!(["Device.Read.All"]), "{}", test.text);

    // Add by domain: the name comes from the directory.
    let created = api.admin(Method::POST, "/api/v1/tenants", Some(new_tenant.clone())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_i64().expect("id");
    assert_eq!(created.body["entra_tenant_id"], sim_tenant);
    assert_eq!(created.body["name"], "Contoso", "{}", created.text);
    assert_eq!(created.body["full_scan_next_run"], true);
    let again = api.admin(Method::POST, "/api/v1/tenants", Some(new_tenant)).await;
    is_problem(&again, StatusCode::CONFLICT);

    // Tenant and cloud are fixed; the name may change.
    let fixed = api.admin(Method::PATCH, &format!("/api/v1/tenants/{id}"), Some(json!({ "cloud": "china" }))).await;
    is_problem(&fixed, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fixed.body["field"], "cloud");
    let renamed =
        api.admin(Method::PATCH, &format!("/api/v1/tenants/{id}"), Some(json!({ "name": "Contoso EU" }))).await;
    assert_eq!(renamed.body["name"], "Contoso EU", "{}", renamed.text);

    // "Check now" records the status the tenant list shows.
    let checked = api.admin(Method::POST, &format!("/api/v1/tenants/{id}/permissions/check"), None).await;
    assert_eq!(checked.body["permission_status"], "needs_additional_permissions", "{}", checked.text);
    assert!(checked.body["permissions_checked_at"].is_string(), "{}", checked.text);

    // The stored tenant's check records its permission status.
    api.world.sim.state().identity.grant_consent(&sim_tenant, &app_id, &ALL_ROLES.map(str::to_owned)).expect("consent");
    let test = api.admin(Method::POST, &format!("/api/v1/tenants/{id}/test-connection"), None).await;
    assert_eq!(test.body["status"], "granted", "{}", test.text);
    let listed = api.admin(Method::GET, "/api/v1/tenants", None).await;
    assert_eq!(listed.body[0]["permission_status"], "granted", "{}", listed.text);

    // A profile in use cannot go.
    let in_use = api.admin(Method::DELETE, &format!("/api/v1/credential-profiles/{profile}"), None).await;
    is_problem(&in_use, StatusCode::CONFLICT);
    assert!(in_use.body["detail"].as_str().unwrap_or_default().contains("Contoso EU"), "{}", in_use.text);

    // Manual sync of every class, recorded with trigger api.
    let queued = api.admin(Method::POST, &format!("/api/v1/tenants/{id}/sync"), Some(json!({ "mode": "full" }))).await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.text);
    assert_eq!(queued.body["jobs"].as_array().map(Vec::len), Some(3));
    let runs = eventually_some(Duration::from_secs(60), || async {
        let page = api.admin(Method::GET, &format!("/api/v1/runs?tenant_id={id}"), None).await;
        let items = page.body["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 3 && items.iter().all(|r| r["status"] == "success")).then_some(page)
    })
    .await
    .expect("three successful runs");
    assert_eq!(runs.body["total"], 3, "{}", runs.text);
    assert!(runs.body["items"].as_array().expect("items").iter().all(|r| r["trigger"] == "api"), "{}", runs.text);

    // The CSV has the same rows.
    let csv = api.admin(Method::GET, &format!("/api/v1/runs.csv?tenant_id={id}"), None).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.content_type.starts_with("text/csv"), "{}", csv.content_type);
    let mut reader = csv::Reader::from_reader(csv.text.as_bytes());
    assert_eq!(reader.headers().expect("header").iter().next(), Some("run_id"));
    assert_eq!(reader.records().count(), 3, "{}", csv.text);

    // Directory objects are browsable.
    let users = api.admin(Method::GET, &format!("/api/v1/tenants/{id}/objects?class=user"), None).await;
    let first = users.body["items"][0]["object_id"].as_str().expect("a user").to_owned();
    let user = api.admin(Method::GET, &format!("/api/v1/tenants/{id}/objects/user/{first}"), None).await;
    assert!(user.body["attrs"]["displayName"].is_string(), "{}", user.text);

    // Delete needs the name, then removes everything stored.
    let unconfirmed = api.admin(Method::DELETE, &format!("/api/v1/tenants/{id}"), None).await;
    is_problem(&unconfirmed, StatusCode::CONFLICT);
    let deleted = api.admin(Method::DELETE, &format!("/api/v1/tenants/{id}?confirm=Contoso%20EU"), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    let client = api.world.pool.get().await.expect("connection");
    let left: i64 = client
        .query_one("SELECT (SELECT count(*) FROM directory_objects WHERE tenant_id = $1) + (SELECT count(*) FROM sync_runs WHERE tenant_id = $1)", &[&id])
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0, "objects and history are gone with the tenant");
    assert_eq!(
        api.admin(Method::DELETE, &format!("/api/v1/credential-profiles/{profile}"), None).await.status,
        StatusCode::NO_CONTENT
    );
    api.app.handle.stop(true).await;
}

#[tokio::test]
async fn admin_consent_grants_a_tenant_and_adds_one_by_consent() {
    let api = Api::start("api").await;
    let (profile, app_id) = api.profile("consent app").await;
    let sim_tenant = api.directory("fabrikam.example", &app_id, &[]);

    // "Add by consent": the emulator's prompt for any organization, answered for fabrikam.
    let start =
        api.admin(Method::POST, &format!("/api/v1/credential-profiles/{profile}/consent"), Some(api.cloud())).await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    let url = start.body["url"].as_str().expect("url").to_owned();
    assert!(url.contains("/organizations/adminconsent"), "{url}");
    let location = follow_consent(&api, &url, "fabrikam.example", true).await;
    assert!(location.starts_with("/#/tenants/"), "back to the console: {location}");
    let tenants = api.admin(Method::GET, "/api/v1/tenants", None).await;
    let tenant = &tenants.body[0];
    assert_eq!(tenant["entra_tenant_id"], sim_tenant, "{}", tenants.text);
    assert_eq!(tenant["name"], "Fabrikam", "{}", tenants.text);
    assert_eq!(tenant["permission_status"], "granted", "consent grants the requested roles: {}", tenants.text);
    assert!(
        tenant["verified_domains"].as_array().is_some_and(|d| d.iter().any(|d| d == "fabrikam.example")),
        "{}",
        tenants.text
    );

    // "Grant permissions" for the stored tenant, refused by its admin.
    let id = tenant["id"].as_i64().expect("id");
    api.world.sim.state().identity.set_refuse_consent(&sim_tenant, true).expect("refuse");
    let grant = api.admin(Method::POST, &format!("/api/v1/tenants/{id}/consent"), None).await;
    let url = grant.body["url"].as_str().expect("url").to_owned();
    let location = follow_consent(&api, &url, "", false).await;
    assert!(location.contains("consent=refused"), "{location}");
    let after = api.admin(Method::GET, &format!("/api/v1/tenants/{id}"), None).await;
    assert_eq!(after.body["consent_state"], "refused", "{}", after.text);

    api.app.handle.stop(true).await;
}

/// Drives the emulator's consent: the tenant-specific endpoint answers at once, the organizations page
/// is a form. Returns where entrasync's callback sends the browser.
async fn follow_consent(api: &Api, url: &str, domain: &str, accept: bool) -> String {
    let mut response = api.http.get(url).send().await.expect("consent prompt");
    if response.status() == StatusCode::OK {
        // The prompt page: submit its form as the admin of `domain`.
        let page = response.text().await.expect("page");
        assert!(page.contains("consent-accept"), "{page}");
        let target = reqwest::Url::parse(url).expect("url");
        let mut form: Vec<(String, String)> =
            target.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        form.push(("tenant".to_owned(), domain.to_owned()));
        form.push(("action".to_owned(), if accept { "accept" } else { "cancel" }.to_owned()));
        response = api.http.post(target.as_str()).form(&form).send().await.expect("consent answer");
    }
    assert_eq!(response.status(), StatusCode::FOUND, "the identity platform redirects");
    let callback = response.headers()["location"].to_str().expect("location").to_owned();
    assert!(callback.contains("/api/v1/consent/callback"), "{callback}");
    let back = api.http.get(&callback).send().await.expect("callback");
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let location = back.headers()["location"].to_str().expect("location").to_owned();
    let replay = api.http.get(&callback).send().await.expect("replay");
    let replayed = replay.headers()["location"].to_str().expect("location").to_owned();
    assert!(replayed.contains("consent_error"), "a used state is refused: {replayed}");
    location
}

/// Waits for the tenant's runs (newest first) to reach `count` with none running; returns them.
async fn settled_runs(api: &Api, tenant: i64, count: usize) -> Vec<Value> {
    eventually_some(Duration::from_secs(60), || async {
        let page = api.admin(Method::GET, &format!("/api/v1/runs?tenant_id={tenant}"), None).await;
        let items = page.body["items"].as_array().cloned().unwrap_or_default();
        (items.len() == count && items.iter().all(|r| r["status"] != "running")).then_some(items)
    })
    .await
    .unwrap_or_else(|| panic!("{count} finished runs of tenant {tenant}"))
}

#[tokio::test]
async fn held_deletions_block_reset_quarantine_and_profile_rotation() {
    let api = Api::start_with("api,worker", &[("ENTRASYNC_SYNC_DELETION_THRESHOLD", "2")]).await;
    let (profile, app_id) = api.profile("ops app").await;
    let sim_tenant = api.directory("northwind.example", &app_id, &ALL_ROLES);
    let mut body = api.cloud();
    body["tenant"] = json!(sim_tenant);
    body["credential_profile_id"] = json!(profile);
    body["name"] = json!("Northwind");
    let id = api.admin(Method::POST, "/api/v1/tenants", Some(body)).await.body["id"].as_i64().expect("id");

    // A first full round of users, then three users deleted: the guard (threshold 2) holds them.
    let sync = |mode: &str| json!({ "classes": ["user"], "mode": mode });
    api.admin(Method::POST, &format!("/api/v1/tenants/{id}/sync"), Some(sync("full"))).await;
    assert_eq!(settled_runs(&api, id, 1).await[0]["status"], "success");
    let state = api.world.sim.state();
    let users = state.ids(&sim_tenant, entrasync::model::ObjectClass::User, true).expect("ids");
    for user in &users[1..4] {
        state.delete_object(&sim_tenant, user, true).expect("delete");
    }
    api.admin(Method::POST, &format!("/api/v1/tenants/{id}/sync"), Some(sync("delta"))).await;
    assert_eq!(settled_runs(&api, id, 2).await[0]["status"], "held");
    let held = api.admin(Method::GET, &format!("/api/v1/tenants/{id}/held-deletions"), None).await;
    assert_eq!(held.body[0]["count"], 3, "{}", held.text);
    let run = held.body[0]["run_id"].as_str().expect("run").to_owned();
    let allowed = api.admin(Method::POST, &format!("/api/v1/tenants/{id}/held-deletions/{run}/allow"), None).await;
    assert_eq!(allowed.body, json!({ "resolved": 3, "deleted": 3 }), "{}", allowed.text);
    let again = api.admin(Method::POST, &format!("/api/v1/tenants/{id}/held-deletions/{run}/allow"), None).await;
    is_problem(&again, StatusCode::NOT_FOUND);
    let gone = api.admin(Method::GET, &format!("/api/v1/tenants/{id}/objects/user/{}", users[1]), None).await;
    is_problem(&gone, StatusCode::NOT_FOUND);

    // Rejected holds delete nothing.
    for user in &users[4..7] {
        state.delete_object(&sim_tenant, user, true).expect("delete");
    }
    api.admin(Method::POST, &format!("/api/v1/tenants/{id}/sync"), Some(sync("delta"))).await;
    assert_eq!(settled_runs(&api, id, 3).await[0]["status"], "held");
    let held = api.admin(Method::GET, &format!("/api/v1/tenants/{id}/held-deletions"), None).await;
    let run = held.body[0]["run_id"].as_str().expect("run").to_owned();
    let rejected = api.admin(Method::POST, &format!("/api/v1/tenants/{id}/held-deletions/{run}/reject"), None).await;
    assert_eq!(rejected.body, json!({ "resolved": 3, "deleted": 0 }), "{}", rejected.text);
    let kept = api.admin(Method::GET, &format!("/api/v1/tenants/{id}/objects/user/{}", users[4]), None).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.text);

    // Block stops manual syncs (and scheduling); reset lifts it.
    let blocked = api.admin(Method::POST, &format!("/api/v1/tenants/{id}/block"), None).await;
    assert_eq!(blocked.body["blocked"], true, "{}", blocked.text);
    is_problem(
        &api.admin(Method::POST, &format!("/api/v1/tenants/{id}/sync"), Some(sync("delta"))).await,
        StatusCode::CONFLICT,
    );
    let reset = api.admin(Method::POST, &format!("/api/v1/tenants/{id}/reset"), None).await;
    assert_eq!(reset.body["blocked"], false, "{}", reset.text);

    // A quarantine shows since when and why; lifting it is one call.
    let client = api.world.pool.get().await.expect("connection");
    client
        .execute("UPDATE tenants SET quarantined_at = now(), quarantine_reason = 'AADSTS7000215' WHERE id = $1", &[&id])
        .await
        .expect("quarantine");
    let shown = api.admin(Method::GET, &format!("/api/v1/tenants/{id}"), None).await;
    assert_eq!(shown.body["quarantine_reason"], "AADSTS7000215", "{}", shown.text);
    assert!(shown.body["quarantined_at"].is_string());
    let lifted = api.admin(Method::DELETE, &format!("/api/v1/tenants/{id}/quarantine"), None).await;
    assert_eq!(lifted.body["quarantined_at"], Value::Null, "{}", lifted.text);

    // Rename and rotate the profile; the material never comes back.
    let renamed = api
        .admin(Method::PATCH, &format!("/api/v1/credential-profiles/{profile}"), Some(json!({ "name": "ops app v2" })))
        .await;
    assert_eq!(renamed.body["name"], "ops app v2", "{}", renamed.text);
    let rotated = api
        .admin(
            Method::PUT,
            &format!("/api/v1/credential-profiles/{profile}/material"),
            Some(json!({ "secret": "rotated-secret-value" })),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    assert!(!rotated.text.contains("rotated-secret-value"));
    let both = api
        .admin(
            Method::PUT,
            &format!("/api/v1/credential-profiles/{profile}/material"),
            Some(json!({ "secret": "x", "certificate_pem": "y" })),
        )
        .await;
    is_problem(&both, StatusCode::UNPROCESSABLE_ENTITY);
    let audit = api.admin(Method::GET, &format!("/api/v1/audit?target_type=tenant&target_id={id}"), None).await;
    let actions: Vec<&str> =
        audit.body["items"].as_array().expect("items").iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["tenant.block", "tenant.reset", "tenant.lift_quarantine", "tenant.sync"] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }
    api.app.handle.stop(true).await;
}
