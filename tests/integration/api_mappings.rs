//! The mappings API over HTTP (docs/api.md, docs/mappings.md): a class's mapping set read and replaced
//! as a whole with versions (409 on a stale one), every validation problem in one 422 with field paths
//! and expression positions, viewers read but do not write, each change audited and followed by a
//! `remap` job on the class's queue; expressions validated and evaluated on an inline or a stored object.
//! The service runs with the `api` role only, so the queued job stays in the queue to be looked at.

use lapin::options::BasicGetOptions;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::service_support::World;
use crate::support::app::{spawn_app, TestApp};
use crate::support::AMQP_URL;

const ADMIN: &str = "es_admin-token-for-the-mapping-api-tests-0123456789";

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
    async fn start() -> Api {
        let world = World::start().await;
        let settings = world.settings(&[
            ("ENTRASYNC_ADMIN_TOKEN", ADMIN),
            ("ENTRASYNC_SERVE_ROLES", "api"),
            ("ENTRASYNC_DATABASE_POOL_SIZE", "4"),
        ]);
        let app = spawn_app(&settings).await;
        Api { world, app, http: reqwest::Client::new() }
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.app.address)).bearer_auth(token);
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
        self.call(method, path, ADMIN, body).await
    }

    async fn viewer_token(&self) -> String {
        let created =
            self.admin(Method::POST, "/api/v1/tokens", Some(json!({"name": "viewer", "role": "viewer"}))).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        created.body["token"].as_str().expect("token").to_owned()
    }

    /// The next message on `{prefix}.sync.<class>`, as JSON.
    async fn next_job(&self, class: &str) -> Option<Value> {
        let connection = lapin::Connection::connect(AMQP_URL, Default::default()).await.expect("amqp");
        let channel = connection.create_channel().await.expect("channel");
        let queue = format!("{}.sync.{class}", self.world.amqp.prefix);
        let message =
            channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }).await.expect("basic.get");
        let job = message.map(|m| serde_json::from_slice(&m.delivery.data).expect("job JSON"));
        let _ = connection.close(0, "done".into()).await;
        job
    }
}

fn is_problem(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.content_type, "application/problem+json", "{}", answer.text);
    assert_eq!(answer.body["status"], status.as_u16(), "{}", answer.text);
}

fn a_set(version: Option<i64>) -> Value {
    let mut set = json!({
        "mappings": [
            {"target": "alias", "source": {"type": "expression", "expression": "Join(\".\", [givenName], [surname])"}},
            {"target": "mailCopy", "source": {"type": "direct", "attribute": "mail"}, "default_if_null": "none"},
            {"target": "origin", "source": {"type": "constant", "value": "entra"}, "apply": "on_create"},
            {"target": "country", "source": {"type": "none"}, "default_if_null": "DE"}
        ],
        "scoping": [{"clauses": [{"attribute": "userType", "operator": "equals", "value": "Member"},
                                 {"attribute": "department", "operator": "is_not_null"}]}]
    });
    if let Some(version) = version {
        set["version"] = json!(version);
    }
    set
}

#[tokio::test]
async fn a_class_mapping_set_is_read_replaced_validated_versioned_audited_and_remapped() {
    let api = Api::start().await;
    let tenant = api.world.tenant(31, 5, 50).await;
    let path = format!("/api/v1/tenants/{}/mappings/user", tenant.tenant_id);

    let empty = api.admin(Method::GET, &path, None).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    assert_eq!(empty.body, json!({"version": 0, "updated_at": null, "mappings": [], "scoping": []}));

    // Viewers read, but do not write.
    let viewer = api.viewer_token().await;
    assert_eq!(api.call(Method::GET, &path, &viewer, None).await.status, StatusCode::OK);
    is_problem(&api.call(Method::PUT, &path, &viewer, Some(a_set(Some(0)))).await, StatusCode::FORBIDDEN);
    assert_eq!(api.admin(Method::GET, &path, None).await.body["version"], 0, "the viewer changed nothing");

    // Clear the tenant's full-scan flag so the scoping change is seen to set it.
    let patched = api
        .admin(
            Method::PATCH,
            &format!("/api/v1/tenants/{}", tenant.tenant_id),
            Some(json!({"full_scan_next_run": false})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);

    let saved = api.admin(Method::PUT, &path, Some(a_set(Some(0)))).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
    assert_eq!(saved.body["version"], 1);
    assert_eq!(saved.body["full_scan_requested"], true);
    assert_eq!(saved.body["mappings"][1]["apply"], "always", "defaults are filled in: {}", saved.text);
    let job_id = saved.body["remap_job_id"].as_str().expect("a remap job").to_owned();
    let read = api.admin(Method::GET, &path, None).await;
    assert_eq!(read.body["version"], 1);
    assert_eq!(read.body["mappings"], saved.body["mappings"]);
    let mut scoping = a_set(None)["scoping"].clone();
    scoping[0]["clauses"][1]["value"] = Value::Null;
    assert_eq!(read.body["scoping"], scoping, "absent values read as null");
    assert!(read.body["updated_at"].is_string(), "{}", read.text);
    let flagged = api.admin(Method::GET, &format!("/api/v1/tenants/{}", tenant.tenant_id), None).await;
    assert_eq!(flagged.body["full_scan_next_run"], true, "{}", flagged.text);

    // The remap job waits on the class's queue (no worker runs here).
    let job = api.next_job("user").await.expect("the remap job is queued");
    assert_eq!(job["kind"], "remap", "{job}");
    assert_eq!(job["job_id"], job_id.as_str());
    assert_eq!(job["object_class"], "user");
    assert_eq!(job["tenant"], tenant.entra_tenant_id.to_string());
    assert_eq!(api.next_job("user").await, None, "one job per change");

    // The same set again changes nothing and queues nothing.
    let same = api.admin(Method::PUT, &path, Some(a_set(Some(1)))).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.text);
    assert_eq!((same.body["version"].clone(), same.body["remap_job_id"].clone()), (json!(1), Value::Null));
    assert_eq!(api.next_job("user").await, None);

    // A change based on an old version is refused; the stored set is kept.
    let mut changed = a_set(Some(0));
    changed["mappings"].as_array_mut().unwrap().pop();
    let stale = api.admin(Method::PUT, &path, Some(changed.clone())).await;
    is_problem(&stale, StatusCode::CONFLICT);
    assert!(stale.body["detail"].as_str().unwrap().contains("version is 1"), "{}", stale.text);
    changed["version"] = json!(-1);
    let negative = api.admin(Method::PUT, &path, Some(changed.clone())).await;
    is_problem(&negative, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(negative.body["problems"][0]["field"], "version", "{}", negative.text);
    changed["version"] = json!(1);
    let second = api.admin(Method::PUT, &path, Some(changed)).await;
    assert_eq!((second.status, second.body["version"].clone()), (StatusCode::OK, json!(2)), "{}", second.text);
    assert_eq!(second.body["full_scan_requested"], false, "the scoping did not change");
    assert!(api.next_job("user").await.is_some());

    // Every problem at once, with its field and, for the expression, the character.
    let invalid = json!({
        "mappings": [
            {"target": "id", "source": {"type": "direct", "attribute": "mail"}},
            {"target": "alias", "source": {"type": "expression", "expression": "Join(\".\", [givenName]"}},
            {"target": "ALIAS", "source": {"type": "constant", "value": "x"}},
            {"target": "stamp", "source": {"type": "expression", "expression": "Now()"}}
        ],
        "scoping": [{"clauses": [{"attribute": "department", "operator": "equals"},
                                 {"attribute": "employeeId", "operator": "regex_match", "value": "(1[0-9"}]}]
    });
    let refused = api.admin(Method::PUT, &path, Some(invalid)).await;
    is_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    let problems = refused.body["problems"].as_array().expect("problems");
    let fields: Vec<&str> = problems.iter().map(|p| p["field"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "mappings[0].target",
            "mappings[1].source.expression",
            "mappings[2].target",
            "mappings[3].apply",
            "scoping[0].clauses[0].value",
            "scoping[0].clauses[1].value"
        ],
        "{}",
        refused.text
    );
    assert_eq!(refused.body["field"], "mappings[0].target");
    let position = problems[1]["position"].as_u64().expect("the expression's position");
    assert!(position > 10, "{}", refused.text);
    assert!(problems[1]["message"].as_str().unwrap().contains(&format!("at character {position}")), "{}", refused.text);
    assert!(problems.iter().all(|p| p["message"].as_str().is_some_and(|m| m.len() > 10)));
    assert_eq!(api.admin(Method::GET, &path, None).await.body["version"], 2, "nothing stored");

    // Unknown fields are a 400, unknown tenants a 404, unknown classes a 404.
    let mut extra = a_set(None);
    extra["mappings"][0]["flow"] = json!("always");
    is_problem(&api.admin(Method::PUT, &path, Some(extra)).await, StatusCode::BAD_REQUEST);
    is_problem(&api.admin(Method::GET, "/api/v1/tenants/999999/mappings/user", None).await, StatusCode::NOT_FOUND);
    is_problem(
        &api.admin(Method::PUT, "/api/v1/tenants/999999/mappings/user", Some(a_set(None))).await,
        StatusCode::NOT_FOUND,
    );
    is_problem(
        &api.admin(Method::GET, &format!("/api/v1/tenants/{}/mappings/printer", tenant.tenant_id), None).await,
        StatusCode::NOT_FOUND,
    );

    // Two audited changes (the no-op and the refused ones left no row), newest first.
    let audit = api
        .admin(Method::GET, &format!("/api/v1/audit?target_type=mapping_set&target_id={}/user", tenant.tenant_id), None)
        .await;
    let items = audit.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{}", audit.text);
    assert_eq!(items[0]["action"], "mapping_set.update");
    assert_eq!(items[0]["actor"], "token:bootstrap");
    assert_eq!(items[0]["before"]["version"], 1);
    assert_eq!(items[0]["after"]["version"], 2);
    assert_eq!(items[1]["before"], Value::Null);

    // "Sync now" can ask for a re-map of a class (a sync job of mode remap, run as one), but a tag sync
    // is not per class: it is refused with the endpoint that queues it.
    while api.next_job("user").await.is_some() {}
    let sync_path = format!("/api/v1/tenants/{}/sync", tenant.tenant_id);
    let remap = api.admin(Method::POST, &sync_path, Some(json!({"classes": ["user"], "mode": "remap"}))).await;
    assert_eq!(remap.status, StatusCode::ACCEPTED, "{}", remap.text);
    let job = api.next_job("user").await.expect("the queued re-map");
    assert_eq!(job["mode"], "remap", "{job}");
    let tag_sync = api.admin(Method::POST, &sync_path, Some(json!({"mode": "tag_sync"}))).await;
    is_problem(&tag_sync, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(tag_sync.text.contains("/tag-sync"), "{}", tag_sync.text);
    api.app.handle.stop(true).await;
}

#[tokio::test]
async fn expressions_are_validated_and_evaluated_on_an_inline_or_a_stored_object() {
    let api = Api::start().await;
    let tenant = api.world.tenant(32, 5, 50).await;
    let viewer = api.viewer_token().await;

    let good = api
        .call(
            Method::POST,
            "/api/v1/expressions/validate",
            &viewer,
            Some(json!({"expression": "Join(\".\", [givenName], [Surname])"})),
        )
        .await;
    assert_eq!(good.status, StatusCode::OK, "{}", good.text);
    assert_eq!(good.body, json!({"valid": true, "attributes": ["givenName", "Surname"], "deterministic": true}));
    let now = api.admin(Method::POST, "/api/v1/expressions/validate", Some(json!({"expression": "Now()"}))).await;
    assert_eq!(
        (now.body["valid"].clone(), now.body["deterministic"].clone()),
        (json!(true), json!(false)),
        "{}",
        now.text
    );
    let bad =
        api.admin(Method::POST, "/api/v1/expressions/validate", Some(json!({"expression": "Join(\".\", [a]"}))).await;
    assert_eq!(bad.status, StatusCode::OK, "{}", bad.text);
    assert_eq!(bad.body["valid"], false);
    assert!(bad.body["error"]["position"].as_u64().is_some_and(|p| p >= 10), "{}", bad.text);
    assert!(bad.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", bad.text);

    // Inline object.
    let inline = api
        .call(
            Method::POST,
            "/api/v1/expressions/evaluate",
            &viewer,
            Some(json!({"expression": "Join(\".\", [givenName], [surname])", "object": {"givenName": "Ada", "surname": "Lovelace"}})),
        )
        .await;
    assert_eq!(inline.status, StatusCode::OK, "{}", inline.text);
    assert_eq!(inline.body, json!({"result": "Ada.Lovelace"}));
    let missing = api
        .admin(Method::POST, "/api/v1/expressions/evaluate", Some(json!({"expression": "[nothing]", "object": {}})))
        .await;
    assert_eq!(missing.body, json!({"result": null}), "{}", missing.text);
    let unparsable = api
        .admin(
            Method::POST,
            "/api/v1/expressions/evaluate",
            Some(json!({"expression": "Join(\".\", [a]", "object": {}})),
        )
        .await;
    is_problem(&unparsable, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unparsable.body["field"], "expression");
    assert!(unparsable.body["position"].as_u64().is_some_and(|p| p >= 10), "{}", unparsable.text);

    // A stored object (written here as a round would have stored it).
    let object_id = Uuid::new_v4();
    let client = api.world.pool.get().await.unwrap();
    client
        .execute(
            "INSERT INTO directory_objects (tenant_id, object_class, object_id, marker, attrs) VALUES ($1, 'user', $2, 0, $3)",
            &[&tenant.tenant_id, &object_id, &json!({"givenName": "Grace", "surname": "Hopper"})],
        )
        .await
        .unwrap();
    let stored = api
        .call(
            Method::POST,
            "/api/v1/expressions/evaluate",
            &viewer,
            Some(json!({"expression": "Join(\" \", [surname], [givenName])", "tenant_id": tenant.tenant_id,
                        "class": "user", "object_id": object_id})),
        )
        .await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text);
    assert_eq!(stored.body, json!({"result": "Hopper Grace"}));
    let unknown = api
        .admin(
            Method::POST,
            "/api/v1/expressions/evaluate",
            Some(json!({"expression": "[a]", "tenant_id": tenant.tenant_id, "class": "user", "object_id": Uuid::new_v4()})),
        )
        .await;
    is_problem(&unknown, StatusCode::NOT_FOUND);
    let both = api
        .admin(
            Method::POST,
            "/api/v1/expressions/evaluate",
            Some(json!({"expression": "[a]", "object": {}, "tenant_id": tenant.tenant_id, "class": "user", "object_id": object_id})),
        )
        .await;
    is_problem(&both, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(both.body["field"], "object");
    let half = api
        .admin(
            Method::POST,
            "/api/v1/expressions/evaluate",
            Some(json!({"expression": "[a]", "tenant_id": tenant.tenant_id})),
        )
        .await;
    is_problem(&half, StatusCode::UNPROCESSABLE_ENTITY);
    api.app.handle.stop(true).await;
}
