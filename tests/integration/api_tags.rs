//! The tag endpoints of /api/v1 over HTTP: viewers read and get 403 on writes, the duplicate rule (409
//! naming the existing mapping) and the limit (422 naming the setting), deletion answers (204 at once,
//! 202 pending), tag sync now (202 and a job), manual values, asset groups and their members, an
//! object's tags, and an audit row for every write. A real service (api role) on its own database.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::service_support::{create_tenants, World};
use crate::support::app::spawn_app;

const ADMIN: &str = "es_admin-token-for-the-tag-api-tests-0123456789abc";

struct Api {
    world: World,
    address: String,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        let world = World::start().await;
        let settings = world.settings(&[("ENTRASYNC_ADMIN_TOKEN", ADMIN), ("ENTRASYNC_SERVE_ROLES", "api")]);
        let app = spawn_app(&settings).await;
        Api { world, address: app.address, http: reqwest::Client::new() }
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.address)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let text = response.text().await.expect("body");
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(content_type, "application/problem+json", "{status}: {text}");
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, path, ADMIN, body).await
    }

    async fn viewer(&self) -> String {
        let (status, body) =
            self.admin(Method::POST, "/api/v1/tokens", Some(json!({ "name": "tags viewer", "role": "viewer" }))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().expect("token").to_owned()
    }

    async fn audit(&self, action: &str) -> Vec<entrasync::store::audit::AuditEntry> {
        let query = entrasync::store::audit::AuditQuery { limit: 1000, ..Default::default() };
        let entries = entrasync::store::audit::list(&self.world.pool, &query).await.expect("audit");
        entries.into_iter().filter(|e| e.action == action).collect()
    }
}

async fn store_user(api: &Api, tenant: i64, id: Uuid, attrs: Value) {
    let text = entrasync::store::wire::JsonText::from_json_bytes(serde_json::to_vec(&attrs).unwrap());
    let mut writes = entrasync::store::objects::ObjectWrites::default();
    writes.push(id, rand::random::<i64>(), &text, None);
    let client = api.world.pool.get().await.unwrap();
    entrasync::store::objects::upsert(&client, tenant, entrasync::model::ObjectClass::User, &writes).await.unwrap();
}

#[tokio::test]
async fn tag_mappings_limit_duplicates_deletion_and_roles() {
    let api = Api::start().await;
    let tenant = create_tenants(&api.world.pool, 1).await[0];
    let base = format!("/api/v1/tenants/{tenant}/tag-mappings");
    let viewer = api.viewer().await;

    let (status, created) = api
        .admin(Method::POST, &base, Some(json!({ "source": "Department", "target": "custom", "key": "Dept" })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["source"], "department", "stored canonically");
    assert_eq!(created["pending_deletion"], false);
    let first = created["id"].as_i64().unwrap();
    assert_eq!(api.audit("tag_mapping.create").await.len(), 1);

    // Viewers read, never write.
    let (status, listed) = api.call(Method::GET, &base, &viewer, None).await;
    assert_eq!((status, listed["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "{listed}");
    assert_eq!(listed["limit"], 5, "the setting's default: {listed}");
    let (status, _) = api
        .call(Method::POST, &base, &viewer, Some(json!({ "source": "city", "target": "custom", "key": "City" })))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api.call(Method::DELETE, &format!("{base}/{first}"), &viewer, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api.call(Method::POST, &format!("/api/v1/tenants/{tenant}/tag-sync"), &viewer, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Same in both: 409 naming the existing mapping; one side alone: fine.
    let (status, problem) = api
        .admin(Method::POST, &base, Some(json!({ "source": "department", "target": "custom", "key": "dept" })))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains(&format!("tag mapping {first}")), "{problem}");
    for body in [
        json!({ "source": "department", "target": "asset_group" }),
        json!({ "source": "companyName", "target": "custom", "key": "Dept" }),
        json!({ "source": "group_membership", "target": "custom", "key": "Groups" }),
        json!({ "source": "extensionAttribute7", "target": "asset_group" }),
    ] {
        let (status, answer) = api.admin(Method::POST, &base, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let (status, problem) =
        api.admin(Method::POST, &base, Some(json!({ "source": "city", "target": "custom", "key": "City" }))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("tags.max_mappings") && detail.contains("ENTRASYNC_TAGS_MAX_MAPPINGS"), "{detail}");
    // Bad values: 422 naming the field.
    for (body, field) in [
        (json!({ "source": "mail", "target": "custom", "key": "Mail" }), "source"),
        (json!({ "source": "city", "target": "custom" }), "key"),
        (json!({ "source": "city", "target": "asset_group", "key": "x" }), "key"),
    ] {
        let (status, problem) = api.admin(Method::POST, &base, Some(body)).await;
        assert_eq!((status, problem["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{problem}");
    }

    // Never synced: 204, gone. Then a synced one: 202, pending, and it no longer counts.
    assert_eq!(api.admin(Method::DELETE, &format!("{base}/{first}"), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(api.admin(Method::DELETE, &format!("{base}/{first}"), None).await.0, StatusCode::NOT_FOUND);
    let ada = Uuid::new_v4();
    store_user(&api, tenant, ada, json!({ "displayName": "ada", "companyName": "Contoso" })).await;
    let recorder = entrasync::sync::PgRunRecorder::new(api.world.pool.clone());
    let request = entrasync::tags::TagSyncRequest {
        tenant_id: tenant,
        trigger: entrasync::model::Trigger::Manual,
        job_id: None,
        instance_id: None,
        options: Default::default(),
    };
    entrasync::tags::run_tag_sync(&api.world.pool, &recorder, &request).await.expect("tag sync");
    let (_, listed) = api.admin(Method::GET, &base, None).await;
    let company = listed["items"].as_array().unwrap().iter().find(|m| m["source"] == "companyName").unwrap().clone();
    assert_eq!(company["values"], 1, "{company}");
    let (status, pending) = api.admin(Method::DELETE, &format!("{base}/{}", company["id"]), None).await;
    assert_eq!((status, &pending["pending_deletion"]), (StatusCode::ACCEPTED, &json!(true)), "{pending}");
    let (status, answer) =
        api.admin(Method::POST, &base, Some(json!({ "source": "city", "target": "custom", "key": "City" }))).await;
    assert_eq!(status, StatusCode::CREATED, "the pending mapping does not count: {answer}");
    assert_eq!(api.audit("tag_mapping.delete").await.len(), 2);

    // Tag sync now: a job, audited.
    let (status, queued) = api.admin(Method::POST, &format!("/api/v1/tenants/{tenant}/tag-sync"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert!(queued["job_id"].as_str().and_then(|id| Uuid::parse_str(id).ok()).is_some(), "{queued}");
    assert_eq!(api.audit("tenant.tag_sync").await.len(), 1);
    let (status, _) = api.admin(Method::GET, "/api/v1/tenants/999999/tag-mappings", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn manual_tags_asset_groups_and_an_objects_tags() {
    let api = Api::start().await;
    let tenant = create_tenants(&api.world.pool, 1).await[0];
    let viewer = api.viewer().await;
    let (ada, bob) = (Uuid::new_v4(), Uuid::new_v4());
    store_user(&api, tenant, ada, json!({ "displayName": "ada" })).await;
    store_user(&api, tenant, bob, json!({ "displayName": "bob" })).await;
    let tags = format!("/api/v1/tenants/{tenant}/tags");
    let groups = format!("/api/v1/tenants/{tenant}/asset-groups");

    let (status, value) = api.admin(Method::POST, &tags, Some(json!({ "key": "Site", "value": "Oslo" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{value}");
    assert_eq!(value["origin"], "manual");
    let site = value["id"].as_i64().unwrap();
    let (status, _) = api.admin(Method::POST, &tags, Some(json!({ "key": "site", "value": "Oslo" }))).await;
    assert_eq!(status, StatusCode::CONFLICT, "keys compare case-insensitively");
    let (status, _) = api.call(Method::POST, &tags, &viewer, Some(json!({ "key": "Site", "value": "Rome" }))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, assigned) =
        api.admin(Method::POST, &format!("{tags}/{site}/objects"), Some(json!({ "object_ids": [ada, bob] }))).await;
    assert_eq!((status, &assigned["assigned"]), (StatusCode::OK, &json!(2)), "{assigned}");
    let unknown = Uuid::new_v4();
    let (status, problem) =
        api.admin(Method::POST, &format!("{tags}/{site}/objects"), Some(json!({ "object_ids": [unknown] }))).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("object_ids")),
        "{problem}"
    );
    let (status, page) = api.call(Method::GET, &format!("{tags}/{site}/objects"), &viewer, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");
    let (status, listed) = api.call(Method::GET, &format!("{tags}?kind=custom"), &viewer, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["items"][0]["objects"], 2, "{listed}");
    let path = format!("{tags}/{site}/objects/{bob}");
    assert_eq!(api.call(Method::DELETE, &path, &viewer, None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(api.admin(Method::DELETE, &path, None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(api.admin(Method::DELETE, &path, None).await.0, StatusCode::NOT_FOUND);

    let (status, group) = api.admin(Method::POST, &groups, Some(json!({ "name": "Finance" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let finance = group["id"].as_i64().unwrap();
    let (status, _) = api.admin(Method::POST, &groups, Some(json!({ "name": "FINANCE" }))).await;
    assert_eq!(status, StatusCode::CONFLICT, "asset group names compare case-insensitively");
    let members = format!("{groups}/{finance}/members");
    let (status, _) = api.admin(Method::POST, &members, Some(json!({ "object_ids": [bob] }))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = api.call(Method::GET, &members, &viewer, None).await;
    assert_eq!(page["items"][0]["object_id"], json!(bob), "{page}");
    assert_eq!(page["items"][0]["manual"], true);
    let (_, listed) = api.call(Method::GET, &groups, &viewer, None).await;
    assert_eq!((listed["items"][0]["name"].as_str(), &listed["items"][0]["members"]), (Some("Finance"), &json!(1)));
    // A custom value is not an asset group (and the other way round).
    assert_eq!(api.admin(Method::GET, &format!("{groups}/{site}/members"), None).await.0, StatusCode::NOT_FOUND);

    let (status, bobs) =
        api.call(Method::GET, &format!("/api/v1/tenants/{tenant}/objects/user/{bob}/tags"), &viewer, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bobs.as_array().unwrap().len(), 1, "{bobs}");
    assert_eq!((bobs[0]["kind"].as_str(), bobs[0]["value"].as_str()), (Some("asset_group"), Some("Finance")));

    assert_eq!(api.call(Method::DELETE, &format!("{groups}/{finance}"), &viewer, None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(api.admin(Method::DELETE, &format!("{groups}/{finance}"), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(api.admin(Method::DELETE, &format!("{tags}/{site}"), None).await.0, StatusCode::NO_CONTENT);
    let (_, empty) = api.admin(Method::GET, &tags, None).await;
    assert_eq!(empty["items"], json!([]), "{empty}");
    for action in ["tag.create", "tag.assign", "tag.unassign", "tag.delete"] {
        assert!(!api.audit(action).await.is_empty(), "expected an audit row for {action}");
    }
    assert_eq!(api.audit("tag.create").await.len(), 2);
    assert_eq!(api.audit("tag.assign").await.len(), 2, "the refused assignment wrote nothing");
}
