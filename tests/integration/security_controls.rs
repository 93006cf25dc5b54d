//! The security controls of docs/security.md that had no test of their own, against the real service
//! (in-process, `api` role, its own database and RabbitMQ names): every route of the OpenAPI document
//! refuses a missing or revoked token and a viewer's write; tokens are stored only as SHA-256 and
//! credential material only sealed with the secrets key (the raw rows and every table are read); the
//! console's headers and no CORS grant; the Graph client follows no redirect (the bearer token stays on the
//! Graph host); the Kubernetes manifests keep the pod locked down.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{secret, settings_with, TestAmqp, TestDb};

const ADMIN: &str = "es_security-controls-bootstrap-token-0123456789";

/// A service with the operator API on a free port.
struct Stack {
    address: String,
    handle: actix_web::dev::ServerHandle,
    pool: entrasync::store::Pool,
    secrets_key: String,
    /// The admin token `serve` created because none existed (only without `ENTRASYNC_ADMIN_TOKEN`).
    generated_admin: Option<String>,
    http: reqwest::Client,
    _db: TestDb,
    _amqp: TestAmqp,
}

impl Stack {
    async fn start(admin_token: Option<&str>) -> Stack {
        Stack::start_with(admin_token, &[]).await
    }

    async fn start_with(admin_token: Option<&str>, extra: &[(&str, &str)]) -> Stack {
        use base64::Engine;
        let db = TestDb::migrated().await;
        let amqp = TestAmqp::new();
        let secrets_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        let mut vars = vec![
            ("ENTRASYNC_DATABASE_URL", db.url.as_str()),
            ("ENTRASYNC_AMQP_PREFIX", amqp.prefix.as_str()),
            ("ENTRASYNC_SECRETS_KEY", secrets_key.as_str()),
            ("ENTRASYNC_SERVE_ROLES", "api"),
        ];
        if let Some(token) = admin_token {
            vars.push(("ENTRASYNC_ADMIN_TOKEN", token));
        }
        vars.extend_from_slice(extra);
        let mut settings = settings_with(&vars);
        settings.http.listen = "127.0.0.1:0".parse().expect("loopback address");
        let app = entrasync::startup::Application::build(&settings).await.expect("build application");
        let generated_admin = app.new_admin_token().map(str::to_owned);
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Stack { address, handle, pool: db.pool(), secrets_key, generated_admin, http, _db: db, _amqp: amqp }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, String) {
        let mut request = self.http.request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        (status, response.text().await.expect("body"))
    }

    /// An admin call that must succeed; its JSON answer.
    async fn admin(&self, method: Method, path: &str, body: Value) -> Value {
        let (status, text) = self.call(method, path, Some(ADMIN), Some(&body)).await;
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).expect("json")
    }

    async fn audit_rows(&self) -> i64 {
        let client = self.pool.get().await.expect("connection");
        client.query_one("SELECT count(*) FROM audit_log", &[]).await.expect("count").get(0)
    }
}

/// A request body the handler accepts, so that what answers is the role check and not validation.
/// A write route missing here is sent without a body, and fails the test if it needs one.
fn body_for(method: &str, template: &str) -> Option<Value> {
    let client_id = "8a1f7d1c-64b0-4a53-9e0f-3f3d4ad0a6a1";
    let object = "5b0c6a3e-1d2f-4e5a-8b9c-0d1e2f3a4b5c";
    Some(match (method, template) {
        ("POST", "/api/v1/credential-profiles") => {
            json!({"name": "viewer-made", "client_id": client_id, "secret": "a-secret"})
        }
        ("PATCH", "/api/v1/credential-profiles/{id}") => json!({"name": "renamed"}),
        ("POST", "/api/v1/credential-profiles/{id}/consent") => json!({"cloud": "global"}),
        ("PUT", "/api/v1/credential-profiles/{id}/material") => json!({"secret": "another-secret"}),
        ("POST", "/api/v1/expressions/evaluate") => json!({"expression": "\"x\"", "object": {}}),
        ("POST", "/api/v1/expressions/validate") => json!({"expression": "\"x\""}),
        ("POST", "/api/v1/tenants" | "/api/v1/test-connection") => {
            json!({"tenant": "contoso.example", "cloud": "global", "credential_profile_id": 1})
        }
        ("PATCH", "/api/v1/tenants/{id}") => json!({"enabled": false}),
        ("POST", "/api/v1/tenants/{id}/asset-groups") => json!({"name": "group"}),
        (
            "POST",
            "/api/v1/tenants/{id}/asset-groups/{group_id}/members" | "/api/v1/tenants/{id}/tags/{tag_id}/objects",
        ) => {
            json!({"object_ids": [object]})
        }
        ("PUT", "/api/v1/tenants/{id}/mappings/{class}") => json!({"mappings": [], "scoping": []}),
        ("POST", "/api/v1/tenants/{id}/sync") => json!({"mode": "delta"}),
        ("POST", "/api/v1/tenants/{id}/tag-mappings") => {
            json!({"source": "department", "target": "custom", "key": "dept"})
        }
        ("POST", "/api/v1/tenants/{id}/tags") => json!({"key": "k", "value": "v"}),
        ("POST", "/api/v1/tokens") => json!({"name": "viewer-made", "role": "admin"}),
        _ => return None,
    })
}

/// What viewers may do besides reading: the expression checks (docs/api.md).
const VIEWER_WRITES: [&str; 2] = ["POST /api/v1/expressions/evaluate", "POST /api/v1/expressions/validate"];
/// What viewers may not read.
const ADMIN_READS: [&str; 1] = ["GET /api/v1/tokens"];

/// A concrete path for a template: ids of the right type (existence does not matter before the role check).
fn concrete(template: &str, tenant: i64) -> String {
    let mut path = template
        .replace("{id}", &tenant.to_string())
        .replace("{class}", "user")
        .replace("{object_id}", "5b0c6a3e-1d2f-4e5a-8b9c-0d1e2f3a4b5c")
        .replace("{run_id}", "0f4e6a1b-2c3d-4e5f-8a9b-1c2d3e4f5a6b");
    for name in ["{group_id}", "{tag_id}", "{mapping_id}"] {
        path = path.replace(name, "1");
    }
    assert!(!path.contains('{'), "a path parameter this test does not know: {template}");
    if template == "/api/v1/tenants/{id}" {
        path.push_str("?confirm=nobody");
    }
    path
}

/// Every operation of the served OpenAPI document, and whether the document says it needs no token.
async fn operations(stack: &Stack) -> Vec<(String, String, bool)> {
    let (status, text) = stack.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK, "the document needs no token: {text}");
    let doc: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(doc["security"], json!([{"bearer": []}]), "bearer is the document's default security");
    let mut out = Vec::new();
    for (template, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let open = op.get("security").is_some_and(|s| s == &json!([]));
            out.push((method.to_uppercase(), template.clone(), open));
        }
    }
    assert!(out.len() >= 50, "the document lists the API: {} operations", out.len());
    out
}

#[tokio::test]
async fn every_route_refuses_anonymous_callers_revoked_tokens_and_viewer_writes() {
    let stack = Stack::start(Some(ADMIN)).await;
    let viewer = stack.admin(Method::POST, "/api/v1/tokens", json!({"name": "reader", "role": "viewer"})).await;
    let viewer = viewer["token"].as_str().expect("viewer token").to_owned();
    let revoked = stack.admin(Method::POST, "/api/v1/tokens", json!({"name": "gone", "role": "admin"})).await;
    let (revoked_id, revoked) =
        (revoked["id"].as_i64().expect("id"), revoked["token"].as_str().expect("token").to_owned());
    let (status, _) = stack.call(Method::DELETE, &format!("/api/v1/tokens/{revoked_id}"), Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // A tenant id that exists, so reads of it answer 200 rather than 404.
    let tenant = {
        let client = stack.pool.get().await.expect("connection");
        client
            .execute(
                "INSERT INTO credential_profiles (name, client_id, kind, secret_ciphertext) \
                 VALUES ('p', gen_random_uuid(), 'secret', '\\x00')",
                &[],
            )
            .await
            .expect("profile");
        let row = client
            .query_one(
                "INSERT INTO tenants (name, entra_tenant_id, cloud, credential_profile_id) \
                 SELECT 'security', gen_random_uuid(), 'global', id FROM credential_profiles RETURNING id",
                &[],
            )
            .await
            .expect("tenant");
        row.get::<_, i64>(0)
    };

    let ops = operations(&stack).await;
    let open: Vec<String> = ops.iter().filter(|o| o.2).map(|(m, t, _)| format!("{m} {t}")).collect();
    assert_eq!(open, ["GET /api/v1/consent/callback"], "the only operations the document leaves open");
    let audit_before = stack.audit_rows().await;
    let mut problems = Vec::new();

    // No token: 401 on every operation, before any body is looked at.
    for (method, template, _) in ops.iter().filter(|o| !o.2) {
        let path = concrete(template, tenant);
        let body = body_for(method, template);
        let (status, text) =
            stack.call(Method::from_bytes(method.as_bytes()).expect("method"), &path, None, body.as_ref()).await;
        if status != StatusCode::UNAUTHORIZED {
            problems.push(format!("anonymous {method} {path}: {status} {text}"));
        }
    }

    // A viewer: reads answer, writes are refused by the role check (403 naming the role).
    for (method, template, _) in ops.iter().filter(|o| !o.2) {
        let key = format!("{method} {template}");
        let path = concrete(template, tenant);
        let body = body_for(method, template);
        let (status, text) = stack
            .call(Method::from_bytes(method.as_bytes()).expect("method"), &path, Some(&viewer), body.as_ref())
            .await;
        let may =
            if method == "GET" { !ADMIN_READS.contains(&key.as_str()) } else { VIEWER_WRITES.contains(&key.as_str()) };
        if may {
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) || status.is_server_error() {
                problems.push(format!("viewer {method} {path} should be allowed: {status} {text}"));
            }
        } else if status != StatusCode::FORBIDDEN || !text.contains("viewer role") {
            problems.push(format!("viewer {method} {path} should be 403 by role: {status} {text}"));
        }
    }
    assert_eq!(stack.audit_rows().await, audit_before, "refused requests changed nothing that is audited");

    // A revoked admin token: refused everywhere (401, then 429 once ten wrong tokens locked the address out),
    // and the refusal never echoes the token.
    for (method, template, _) in ops.iter().filter(|o| !o.2) {
        let path = concrete(template, tenant);
        let body = body_for(method, template);
        let (status, text) = stack
            .call(Method::from_bytes(method.as_bytes()).expect("method"), &path, Some(&revoked), body.as_ref())
            .await;
        if !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS) || text.contains(&revoked) {
            problems.push(format!("revoked token {method} {path}: {status} {text}"));
        }
    }
    assert_eq!(stack.audit_rows().await, audit_before, "refused requests changed nothing that is audited");
    assert!(
        problems.is_empty(),
        "{} operations not refused as they should be:\n{}",
        problems.len(),
        problems.join("\n")
    );
    stack.handle.stop(true).await;
}

/// The plain and the hex forms of a value: bytea columns print as hex in a row's text.
fn forms(value: &str) -> [String; 2] {
    [value.to_owned(), hex::encode(value.as_bytes())]
}

/// Every row of every table of the database, as text.
async fn whole_database(pool: &entrasync::store::Pool) -> String {
    let client = pool.get().await.expect("connection");
    let tables = client
        .query(
            "SELECT quote_ident(table_name) FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            &[],
        )
        .await
        .expect("tables");
    let mut text = String::new();
    for table in tables {
        let name: String = table.get(0);
        let sql = format!("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {name} t");
        let rows: String = client.query_one(&sql, &[]).await.expect("rows").get(0);
        text.push_str(&rows);
    }
    assert!(text.contains("credential_profile.create"), "the scan read the audit log");
    text
}

#[tokio::test]
async fn tokens_are_stored_as_sha256_and_credential_material_only_sealed_with_the_secrets_key() {
    use entrasync::store::secret_box::SecretBox;
    // No ENTRASYNC_ADMIN_TOKEN: serve creates the first admin token and shows it once.
    let stack = Stack::start(None).await;
    let generated = stack.generated_admin.clone().expect("serve created an admin token");
    let (status, text) = stack
        .call(Method::POST, "/api/v1/tokens", Some(&generated), Some(&json!({"name": "ops", "role": "viewer"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let viewer = serde_json::from_str::<Value>(&text).expect("json")["token"].as_str().expect("token").to_owned();

    let client_secret = format!("canary-secret-{}", uuid::Uuid::new_v4().simple());
    let key_pem = crate::support::test_rsa_key_pem();
    let certificate_pem = {
        let key = rcgen::KeyPair::from_pem(key_pem).expect("test key");
        let params = rcgen::CertificateParams::new(vec!["entrasync-security-test".to_owned()]).expect("params");
        params.self_signed(&key).expect("certificate").pem()
    };
    let mut profiles = Vec::new();
    for body in [
        json!({"name": "secret", "client_id": uuid::Uuid::new_v4(), "secret": client_secret}),
        json!({"name": "certificate", "client_id": uuid::Uuid::new_v4(), "certificate_pem": certificate_pem,
               "private_key_pem": key_pem}),
    ] {
        let (status, text) =
            stack.call(Method::POST, "/api/v1/credential-profiles", Some(&generated), Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
        profiles.push(serde_json::from_str::<Value>(&text).expect("json")["id"].as_i64().expect("id"));
    }

    // Tokens: only their SHA-256, in the one column for it.
    let client = stack.pool.get().await.expect("connection");
    for (name, token) in [("bootstrap", &generated), ("ops", &viewer)] {
        let row = client
            .query_one("SELECT token_hash FROM api_tokens WHERE name = $1 AND revoked_at IS NULL", &[&name])
            .await
            .expect("token row");
        let stored: Vec<u8> = row.get(0);
        assert_eq!(stored, Sha256::digest(token.as_bytes()).to_vec(), "token {name} is stored as its SHA-256");
    }

    // Credential material: sealed under ENTRASYNC_SECRETS_KEY, opened by it and by no other key.
    let sealer = SecretBox::from_setting(&secret(&stack.secrets_key)).expect("key");
    let other = SecretBox::from_setting(&secret(&{
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    }))
    .expect("other key");
    let row = client
        .query_one(
            "SELECT kind, secret_ciphertext, private_key_ciphertext FROM credential_profiles WHERE id = $1",
            &[&profiles[0]],
        )
        .await
        .expect("secret profile");
    let (kind, sealed, no_key): (String, Vec<u8>, Option<Vec<u8>>) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((kind.as_str(), no_key), ("secret", None));
    assert_eq!(sealer.open(&sealed).expect("opens").expose_secret(), client_secret);
    assert!(other.open(&sealed).is_err(), "another key cannot open it");
    let row = client
        .query_one(
            "SELECT kind, secret_ciphertext, certificate_pem, private_key_ciphertext FROM credential_profiles WHERE id = $1",
            &[&profiles[1]],
        )
        .await
        .expect("certificate profile");
    let (kind, no_secret, certificate, sealed): (String, Option<Vec<u8>>, String, Vec<u8>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((kind.as_str(), no_secret), ("certificate", None));
    assert_eq!(certificate, certificate_pem, "the certificate is public and kept as given");
    assert_eq!(sealer.open(&sealed).expect("opens").expose_secret(), key_pem);
    assert!(other.open(&sealed).is_err(), "another key cannot open it");
    drop(client);

    // Nowhere in the database in clear: not in the profiles, the audit log, or any other table.
    let everything = whole_database(&stack.pool).await;
    let key_line = key_pem.lines().nth(1).expect("a base64 line of the key").to_owned();
    for (what, value) in [
        ("client secret", client_secret.as_str()),
        ("private key", key_line.as_str()),
        ("private key header", "PRIVATE KEY"),
        ("generated admin token", generated.as_str()),
        ("viewer token", viewer.as_str()),
        ("secrets key", stack.secrets_key.as_str()),
    ] {
        for form in forms(value) {
            assert!(!everything.contains(&form), "the {what} is stored in clear ({form:.20}…)");
        }
    }
    stack.handle.stop(true).await;
}

#[tokio::test]
async fn the_console_sends_its_security_headers_and_no_origin_is_granted_cors() {
    let stack = Stack::start(Some(ADMIN)).await;
    for path in ["/", "/console/app.js", "/console/app.css"] {
        let response = stack.http.get(format!("{}{path}", stack.address)).send().await.expect("GET");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-"), "{path}: {csp}");
    }

    // Another origin: a preflight gets no grant, and neither does a request with a valid token.
    let evil = "https://evil.example";
    let preflight = stack
        .http
        .request(Method::OPTIONS, format!("{}/api/v1/tenants", stack.address))
        .header("origin", evil)
        .header("access-control-request-method", "DELETE")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .expect("preflight");
    let granted: BTreeSet<String> = preflight
        .headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-allow"))
        .collect();
    assert!(granted.is_empty(), "a preflight from {evil} was granted: {granted:?}");
    let read = stack
        .http
        .get(format!("{}/api/v1/session", stack.address))
        .header("origin", evil)
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("read");
    assert_eq!(read.status(), StatusCode::OK);
    assert!(read.headers().get("access-control-allow-origin").is_none(), "{:?}", read.headers());

    // The name of the bootstrap token is reserved (it stands for ENTRASYNC_ADMIN_TOKEN).
    let (status, text) = stack
        .call(Method::POST, "/api/v1/tokens", Some(ADMIN), Some(&json!({"name": "Bootstrap", "role": "admin"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
    stack.handle.stop(true).await;
}

fn repo_yaml(path: &str) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

fn yaml_at<'a>(value: &'a serde_yaml::Value, path: &[&str]) -> &'a serde_yaml::Value {
    path.iter().fold(value, |v, key| &v[*key])
}

#[test]
fn the_kubernetes_pod_is_locked_down_and_secrets_stay_out_of_the_configmap_and_published_ports() {
    use serde_yaml::Value as Y;
    let mut problems = Vec::new();
    let deployment = repo_yaml("deploy/k8s/deployment.yaml").into_iter().next().expect("a Deployment");
    let pod = yaml_at(&deployment, &["spec", "template", "spec"]);
    let expect = |problems: &mut Vec<String>, what: &str, got: &Y, want: Y| {
        if *got != want {
            problems.push(format!("{what} is {got:?}, expected {want:?}"));
        }
    };
    expect(&mut problems, "automountServiceAccountToken", &pod["automountServiceAccountToken"], Y::Bool(false));
    expect(&mut problems, "pod runAsNonRoot", yaml_at(pod, &["securityContext", "runAsNonRoot"]), Y::Bool(true));
    expect(
        &mut problems,
        "pod seccompProfile.type",
        yaml_at(pod, &["securityContext", "seccompProfile", "type"]),
        Y::from("RuntimeDefault"),
    );
    for flag in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[flag] == Y::Bool(true) {
            problems.push(format!("the pod sets {flag}"));
        }
    }
    let containers = pod["containers"].as_sequence().expect("containers");
    assert!(!containers.is_empty());
    for container in containers {
        let name = container["name"].as_str().unwrap_or("?");
        let security = &container["securityContext"];
        expect(
            &mut problems,
            &format!("{name} allowPrivilegeEscalation"),
            &security["allowPrivilegeEscalation"],
            Y::Bool(false),
        );
        expect(
            &mut problems,
            &format!("{name} readOnlyRootFilesystem"),
            &security["readOnlyRootFilesystem"],
            Y::Bool(true),
        );
        if security["privileged"] == Y::Bool(true) {
            problems.push(format!("{name} is privileged"));
        }
        let drops: Vec<&str> =
            security["capabilities"]["drop"].as_sequence().into_iter().flatten().filter_map(Y::as_str).collect();
        if drops != ["ALL"] || !security["capabilities"]["add"].is_null() {
            problems.push(format!("{name} capabilities: drop {drops:?}, add {:?}", security["capabilities"]["add"]));
        }
        // Secrets come from the Secret only, never as literal values in the manifest.
        for item in container["env"].as_sequence().into_iter().flatten() {
            let var = item["name"].as_str().unwrap_or_default();
            if is_secret_setting(var) && !item["value"].is_null() {
                problems.push(format!("{name} sets the secret {var} as a literal value"));
            }
        }
    }

    // The ConfigMap holds no secret setting; the example Secret is not applied by the kustomization.
    let configmap = repo_yaml("deploy/k8s/configmap.yaml").into_iter().next().expect("a ConfigMap");
    for key in configmap["data"].as_mapping().expect("data").keys().filter_map(Y::as_str) {
        if is_secret_setting(key) {
            problems.push(format!("the ConfigMap holds the secret setting {key}"));
        }
    }
    let kustomization = repo_yaml("deploy/k8s/kustomization.yaml").into_iter().next().expect("kustomization");
    let resources: Vec<&str> =
        kustomization["resources"].as_sequence().into_iter().flatten().filter_map(Y::as_str).collect();
    if resources.iter().any(|r| r.contains("secret")) {
        problems.push(format!("the kustomization applies a Secret: {resources:?}"));
    }
    // Reached only inside the cluster: the Service is not a NodePort or LoadBalancer.
    let service = repo_yaml("deploy/k8s/service.yaml").into_iter().next().expect("a Service");
    expect(&mut problems, "Service type", &service["spec"]["type"], Y::from("ClusterIP"));

    // The development stack publishes every port on loopback only (its Postgres and RabbitMQ use
    // well-known credentials).
    let compose = repo_yaml("docker-compose.yml").into_iter().next().expect("compose");
    for (name, svc) in compose["services"].as_mapping().expect("services") {
        for port in svc["ports"].as_sequence().into_iter().flatten() {
            let text = port.as_str().map(str::to_owned).unwrap_or_else(|| format!("{port:?}"));
            if !text.starts_with("127.0.0.1:") {
                problems.push(format!("compose service {name:?} publishes {text} beyond loopback"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn is_secret_setting(env: &str) -> bool {
    entrasync::config::SETTINGS.iter().any(|s| s.secret && s.env == env)
}

/// Finding F1 of docs/security.md (fixed): tokio-postgres accepts the password as a URL parameter
/// (`postgres://app@db/entrasync?password=…`); `entrasync config`, `Debug` and configuration errors
/// must mask it like the userinfo password.
#[test]
fn a_database_password_given_as_a_url_parameter_is_masked() {
    let vars = [("ENTRASYNC_DATABASE_URL", "postgres://app@db:5432/entrasync?password=hunter2&sslmode=disable")];
    let settings = settings_with(&vars);
    assert!(!settings.describe().contains("hunter2"), "{}", settings.describe());
    assert!(!format!("{settings:?}").contains("hunter2"));
    let bad = [("ENTRASYNC_DATABASE_URL", "postgres://app@/entrasync?password=hunter2")];
    if let Err(error) =
        entrasync::config::Settings::from_sources(None, bad.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    {
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}

/// A one-route-at-a-time HTTP/1.1 server: the login endpoint answers a token, every Graph request a
/// redirect to `elsewhere`. Returns its address.
async fn redirecting_graph(elsewhere: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let elsewhere = elsewhere.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // The head is enough: the token request's small body is not needed.
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request).to_string();
                let answer = if head.contains("/oauth2/v2.0/token") {
                    let body = r#"{"token_type":"Bearer","expires_in":3599,"access_token":"graph-bearer-token"}"#;
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    format!(
                        "HTTP/1.1 302 Found\r\nlocation: {elsewhere}/v1.0/users/delta\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                };
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    address
}

#[tokio::test]
async fn a_graph_redirect_is_not_followed_so_the_bearer_token_never_leaves_the_graph_host() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use entrasync::graph::{AppCredentials, DeltaRequest, GraphClient, GraphClientOptions, GraphTenant, TenantSize};
    use futures::StreamExt;

    // Elsewhere counts every connection it gets.
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let elsewhere_url = format!("http://{}", elsewhere.local_addr().expect("address"));
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = elsewhere.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let graph = redirecting_graph(elsewhere_url).await;
    let graph_url = graph.clone();
    let tenant = GraphTenant {
        cloud: entrasync::model::Cloud::Custom { login_url: graph.clone(), graph_url: graph },
        tenant_id: uuid::Uuid::new_v4().to_string(),
        credentials: Arc::new(AppCredentials::with_secret(uuid::Uuid::new_v4().to_string(), secret("app-secret"))),
        size: TenantSize::Small,
    };
    let client = GraphClient::new(GraphClientOptions::default()).expect("client");
    let mut pages = client.delta_pages(tenant, DeltaRequest::full(entrasync::model::ObjectClass::User));
    let first = tokio::time::timeout(std::time::Duration::from_secs(60), pages.next()).await.expect("an answer");
    let error = match first {
        Some(Err(error)) => format!("{error:?}"),
        other => panic!("a redirect is an error, not a page: {other:?}"),
    };
    assert!(error.contains("302"), "the Graph request got the redirect (after a token): {error}");
    drop(pages);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(reached.load(Ordering::SeqCst), 0, "the redirect was followed to another host");

    // The harness catches a client that follows redirects: reqwest's default policy does.
    let following = reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).build().expect("client");
    let _ = following.get(format!("{graph_url}/v1.0/users/delta")).send().await;
    assert_eq!(reached.load(Ordering::SeqCst), 1, "a following client reaches the other host");
}

/// Finding F2 of docs/security.md (fixed): an admin token alone cannot choose where a credential
/// profile's secret is sent. A custom cloud through the API must be on a host of
/// `api.custom_cloud_hosts`; otherwise the request is refused before anything is sent.
#[tokio::test]
async fn a_custom_cloud_outside_the_allowed_hosts_is_refused_before_any_secret_is_sent() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    // Where a hostile admin would like the secret to go: counts every connection it gets.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let collector = format!("http://127.0.0.1:{port}");
    // A service allowing `hosts`, holding one real credential profile, and the request that names it
    // with the collector as its custom cloud.
    let stack_and_request = |hosts: String| {
        let collector = collector.clone();
        async move {
            let stack = Stack::start_with(Some(ADMIN), &[("ENTRASYNC_API_CUSTOM_CLOUD_HOSTS", hosts.as_str())]).await;
            let secret =
                json!({"name": "real", "client_id": uuid::Uuid::new_v4().to_string(), "secret": "the-real-secret"});
            let profile = stack.admin(Method::POST, "/api/v1/credential-profiles", secret).await;
            let body = json!({"tenant": "contoso.example", "credential_profile_id": profile["id"], "cloud": "custom",
                              "login_url": collector, "graph_url": collector});
            (stack, body)
        }
    };

    for (allowed, expected) in [
        ("", "api.custom_cloud_hosts".to_owned()),
        ("login.example,127.0.0.1:1", format!("127.0.0.1:{port} is not one of the hosts")),
    ] {
        let (stack, body) = stack_and_request(allowed.to_owned()).await;
        for path in ["/api/v1/test-connection", "/api/v1/tenants"] {
            let (status, text) = stack.call(Method::POST, path, Some(ADMIN), Some(&body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path} with hosts {allowed:?}: {text}");
            assert!(text.contains(&expected), "{path}: expected {expected:?} in {text}");
        }
        stack.handle.stop(true).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0, "the refused requests must not reach the collector");

    // Listed, the same host is used (the connection test reaches it and fails there).
    let (stack, body) = stack_and_request(format!("127.0.0.1:{port}")).await;
    let (status, text) = stack.call(Method::POST, "/api/v1/test-connection", Some(ADMIN), Some(&body)).await;
    assert!(!text.contains("custom_cloud_hosts"), "an allowed host must be accepted: {status} {text}");
    assert!(connections.load(Ordering::SeqCst) > 0, "expected the allowed host to be contacted: {status} {text}");
    stack.handle.stop(true).await;
}

/// Finding F4 of docs/security.md (fixed): behind a trusted proxy the failed sign-in limit counts per
/// client (`X-Forwarded-For`), so one guesser does not lock every operator out.
#[tokio::test]
async fn behind_a_trusted_proxy_a_guesser_locks_out_only_itself() {
    let stack = Stack::start_with(Some(ADMIN), &[("ENTRASYNC_API_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let call = |client: &'static str, token: &'static str| {
        let request = stack
            .http
            .get(format!("{}/api/v1/tenants", stack.address))
            .bearer_auth(token)
            .header("X-Forwarded-For", client);
        async move { request.send().await.expect("request").status() }
    };
    for _ in 0..10 {
        assert_eq!(call("203.0.113.7", "es_wrong-guess").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(call("203.0.113.7", ADMIN).await, StatusCode::TOO_MANY_REQUESTS, "the guesser is locked out");
    assert_eq!(call("203.0.113.8", ADMIN).await, StatusCode::OK, "an operator behind the same proxy is not");
    stack.handle.stop(true).await;
}
